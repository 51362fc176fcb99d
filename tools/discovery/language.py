"""The language level of the search: a request -> ranked candidate formulas with reasons, from an LLM when one is
configured (any OpenAI-compatible endpoint) and always validated; the offline chemistry proposer otherwise or as
the fallback when the LLM is down or answers malformed JSON."""

from __future__ import annotations

import json
import re
import sys
from typing import Literal

from pydantic import BaseModel, Field
from pymatgen.core import Composition, Element

from memory.keys import REDUCED_FORMULA_KEY, SPACEGROUP_SYMBOL_KEY
from models.crystals.prototypes import GENERIC_FAMILIES
from prompts import render_prompt
from tools.core.registry import LLM, STORE, ToolContext, ToolInput, tool
from tools.core.settings import Settings
from tools.discovery.lexicon import COMPOUND_CLASSES
from tools.discovery.oxidation import charge_balanced
from tools.discovery.proposer import FAMILIES, family_of, propose_formulas_offline, unmet_constraint
from tools.discovery.request import MaterialsRequest, decline_reason, parse_request, set_compound_class


class Proposal(BaseModel):
    formula: str
    family: str | None
    reason: str
    score: float | None = None
    source: Literal["offline", "llm"]
    named: bool = Field(default=False, description="The formula was typed in the request (or derived from one)")
    sites: dict[str, str] = Field(
        default_factory=dict, description="Role -> ion of the family's sites (e.g. A: La3+), when the proposer set them"
    )


class ProposeInput(ToolInput):
    request: str = Field(min_length=1, max_length=2000, description="What material is wanted, in plain language.")
    n: int = Field(default=6, ge=1, le=50, description="How many formulas to propose.")
    use_llm: bool = Field(default=True, description="Use the configured LLM when there is one.")


class ProposeOutput(BaseModel):
    request: str
    constraints: dict[str, object] = Field(description="The reading of the request the proposals honour.")
    reader: Literal["offline", "llm"] = Field(default="offline", description="Who read the request.")
    proposer: Literal["offline", "llm"]
    declined: str | None = Field(default=None, description="Why chemistry rules the request out, when it does.")
    note: str | None = Field(default=None, description="Why the offline proposer was used, when an LLM failed.")
    proposals: list[Proposal]


class LLMReading(BaseModel):
    """The JSON schema the LLM fills when it reads a request (validated before use)."""

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    family: str | None = None
    compound_class: str | None = None
    formulas: list[str] = Field(default_factory=list)
    n_elements: int | None = Field(default=None, ge=1, le=8)
    goal: str | None = None
    application: str | None = None
    decline: str | None = None


def reading_from_llm(raw: dict, text: str) -> MaterialsRequest:
    """A MaterialsRequest from the LLM's structured reading; ValueError when it is not a valid reading (unknown
    element, family or class), so the offline reading is used instead."""
    reading = LLMReading.model_validate(raw)
    for symbol in [*reading.include, *reading.exclude]:
        if not Element.is_valid_symbol(symbol):
            raise ValueError(f"the LLM's reading names an unknown element {symbol!r}")
    family = (reading.family or "").lower() or None
    if family is not None and family_of(family) is None:
        raise ValueError(f"the LLM's reading names an unknown family {reading.family!r}")
    cls_name = (reading.compound_class or "").lower() or None
    if cls_name is not None and cls_name not in COMPOUND_CLASSES:
        raise ValueError(f"the LLM's reading names an unknown compound class {reading.compound_class!r}")
    formulas = []
    for f in reading.formulas:
        Composition(f)  # raises on nonsense
        formulas.append(f)
    req = MaterialsRequest(
        text=text,
        include=list(dict.fromkeys(reading.include)),
        exclude=sorted(set(reading.exclude)),
        family=family,
        formulas=formulas,
        n_elements=reading.n_elements,
        goal=reading.goal if reading.goal in ("stable", "metastable", "novel") else "stable",
        application=reading.application,
        decline=reading.decline or None,
        reader="llm",
    )
    if cls_name:
        set_compound_class(req, cls_name)
    if req.decline is None:
        req.decline = decline_reason(req)
    return req


def _llm_formula_problem(formula: str, family: str | None, req: MaterialsRequest) -> str | None:
    """Why an LLM's formula cannot stand for the reading, or None when it can: it must parse into real elements (40
    atoms at most), honour the reading's constraints by the offline proposer's own test (required elements, the
    class's anions, excluded, either-or, allowed) and, unless intermetallic, balance charge."""
    if not formula.strip():
        return "no formula given"
    try:
        comp = Composition(formula)
    except Exception:  # noqa: BLE001 - an unparsable formula from the model is refused
        return "not a formula"
    if not comp.elements or not all(isinstance(el, Element) for el in comp.elements):
        return "not a formula of real elements"
    if comp.num_atoms > 40:
        return "over 40 atoms in its formula unit"
    unmet = unmet_constraint(req, formula)
    if unmet:
        return unmet
    known = family_of(family)
    ionic = (known is None or known.ionic) and req.compound_class != "intermetallic"
    if ionic and not charge_balanced(comp):
        return "no oxidation states balance its charge"
    return None


def validate_llm_proposals(raw: list[dict], req: MaterialsRequest, rejected: list[str] | None = None) -> list[Proposal]:
    """Keep LLM proposals whose formula parses, uses real elements, honours the reading's constraints (the offline
    proposer's test: required, excluded, class anions, either-or, allowed) and balances charge; with `rejected`,
    each refused proposal is appended to it as 'formula: why'."""
    out, seen = [], set()
    for item in raw:
        try:
            formula, family = str(item["formula"]), item.get("family") or req.family
        except (KeyError, TypeError, AttributeError):
            formula, family = "", None
        why = _llm_formula_problem(formula, family, req)
        if why is not None:
            if rejected is not None:
                rejected.append(f"{formula or str(item)[:40]}: {why}")
            continue
        key = Composition(formula).reduced_formula
        if key in seen:
            continue
        seen.add(key)
        out.append(Proposal(formula=formula, family=family, reason=str(item.get("reason", ""))[:500], source="llm"))
    return out


def ask_llm(req: MaterialsRequest, n: int, settings: Settings, memory_lines: list[str]) -> dict:
    """One chat-completion call; returns the parsed object with 'reading' and 'proposals' (raises on transport or
    JSON errors)."""
    from openai import OpenAI

    client = OpenAI(base_url=settings.llm_base_url, api_key=settings.llm_api_key or "not-needed", timeout=60)
    prompt = render_prompt(
        "propose_formulas",
        request=req.text,
        n=str(n),
        families=", ".join([*FAMILIES, *GENERIC_FAMILIES]),
        classes=", ".join(COMPOUND_CLASSES),
        constraints=json.dumps(req.constraints()),
        memory="\n".join(memory_lines) or "(none yet)",
    )
    reply = client.chat.completions.create(
        model=settings.llm_model or "default",
        messages=[{"role": "user", "content": prompt}],
        temperature=0.2,
        response_format={"type": "json_object"},
    )
    text = reply.choices[0].message.content or ""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match is None:
        raise ValueError("the LLM answer holds no JSON object")
    data = json.loads(match.group(0))
    if not isinstance(data.get("proposals"), list):
        raise ValueError("the LLM answer has no 'proposals' list")
    return data


def memory_context(req: MaterialsRequest, ctx: ToolContext, n: int = 5) -> list[str]:
    """Lines describing similar stored structures, for the LLM prompt (retrieval from memory)."""
    lines = []
    for record, score in ctx.store.search_text(req.text, n=n):
        hull = record.properties.get("e_above_hull_eV")
        lines.append(
            f"{record.metadata[REDUCED_FORMULA_KEY]} {record.metadata[SPACEGROUP_SYMBOL_KEY]} "
            f"e_above_hull={hull if hull is not None else 'n/a'} (similarity {score:.2f})"
        )
    return lines


def _declined(req: MaterialsRequest, reason: str, note: str | None = None) -> ProposeOutput:
    return ProposeOutput(
        request=req.text, constraints=req.constraints(), reader=req.reader, proposer="offline",  # type: ignore[arg-type]
        declined=reason, note=note, proposals=[],
    )


def propose_request(
    request: str, n: int, ctx: ToolContext, use_llm: bool = True
) -> tuple[MaterialsRequest, ProposeOutput]:
    """The reading used and the formulas for a request: the LLM's reading and proposals when configured and valid,
    else the offline reader and proposer. A request chemistry rules out comes back declined, with the reason."""
    offline_req = parse_request(request)
    req = offline_req
    note = None
    if use_llm and ctx.settings.llm_base_url:
        try:
            data = ask_llm(offline_req, n, ctx.settings, memory_context(offline_req, ctx))
            if isinstance(data.get("reading"), dict):
                try:
                    req = reading_from_llm(data["reading"], offline_req.text)
                except (ValueError, TypeError) as exc:
                    note = f"the LLM's reading was invalid ({str(exc)[:160]}); used the offline reading"
            if req.decline:
                return req, _declined(req, req.decline, note)
            rejected: list[str] = []
            valid = validate_llm_proposals(data["proposals"], req, rejected)
            if valid:
                return req, ProposeOutput(
                    request=req.text, constraints=req.constraints(), reader=req.reader,  # type: ignore[arg-type]
                    proposer="llm", note=note, proposals=valid[:n],
                )
            why = f" ({'; '.join(rejected[:3])[:300]})" if rejected else ""
            note = f"the LLM proposed no valid formula{why}; used the offline proposer"
        except Exception as exc:  # any LLM failure falls back to the offline proposer, never a crash
            note = (
                f"the LLM at {ctx.settings.llm_base_url} failed ({type(exc).__name__}: {str(exc)[:200]}); "
                "used the offline proposer"
            )
            print(f"matsearch: {note}", file=sys.stderr)
    if req.decline:
        return req, _declined(req, req.decline, note)
    offline = propose_formulas_offline(req, n)
    if not offline:
        reason = (
            f"no charge-balanced formula of the asked kind can be built: {describe_constraints(req)}; relax a "
            "constraint (allow more elements, another family or class)"
        )
        return req, _declined(req, reason, note)
    proposals = [
        Proposal(
            formula=p.formula, family=p.family or None, reason=p.reason, score=p.score, source="offline", named=p.named,
            sites=p.sites,
        )
        for p in offline
    ]
    return req, ProposeOutput(
        request=req.text, constraints=req.constraints(), reader=req.reader,  # type: ignore[arg-type]
        proposer="offline", note=note, proposals=proposals,
    )


def describe_constraints(req: MaterialsRequest) -> str:
    """The reading in words, for messages."""
    parts = []
    if req.family:
        parts.append(req.family)
    if req.compound_class:
        parts.append(req.compound_class)
    if req.include:
        parts.append("with " + ", ".join(req.include))
    if req.only:
        parts.append("only " + ", ".join(req.only))
    if req.exclude:
        parts.append("without " + ", ".join(req.exclude[:12]) + (" ..." if len(req.exclude) > 12 else ""))
    if req.n_elements:
        parts.append(f"{req.n_elements} elements")
    return " ".join(parts) or "no constraint read"


def propose(request: str, n: int, ctx: ToolContext, use_llm: bool = True) -> ProposeOutput:
    """Formulas for a request (see propose_request)."""
    return propose_request(request, n, ctx, use_llm)[1]


@tool(cost="instant", reaches=(LLM, STORE), read_only=True, idempotent=True)
def propose_formulas(inp: ProposeInput, ctx: ToolContext) -> ProposeOutput:
    """Propose candidate chemical formulas for a plain-language materials request (the language level of the
    hierarchical search). Reads elements to include or exclude (negations such as 'lead-free' or 'without Co'),
    the structure family (perovskite, double perovskite, spinel, rock salt, fluorite, pyrochlore, garnet, olivine,
    chalcopyrite, Heusler, ...), the compound class (oxide, halide, chalcogenide, phosphate, titanate, ...),
    formulas named, the application and the goal; returns charge-balanced formulas ranked by ICSD substitution
    likelihood with the chemistry behind each (an LLM's validated reading and proposals when an endpoint is
    configured). A request chemistry rules out (noble-gas compounds, contradictions) comes back with `declined`
    saying why."""
    return propose(inp.request, inp.n, ctx, inp.use_llm)
