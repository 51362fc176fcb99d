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

from prompts import render_prompt
from tools.errors import ToolInputError
from tools.proposer import ANION_CHARGE, FAMILIES, propose_formulas_offline
from tools.registry import ToolContext, tool
from tools.request import MaterialsRequest, parse_request
from tools.settings import Settings


class Proposal(BaseModel):
    formula: str
    family: str | None
    reason: str
    score: float | None = None
    source: Literal["offline", "llm"]


class ProposeInput(BaseModel):
    request: str = Field(min_length=1, max_length=2000, description="What material is wanted, in plain language.")
    n: int = Field(default=6, ge=1, le=50, description="How many formulas to propose.")
    use_llm: bool = Field(default=True, description="Use the configured LLM when there is one.")


class ProposeOutput(BaseModel):
    request: str
    constraints: dict[str, object]
    proposer: Literal["offline", "llm"]
    note: str | None = Field(default=None, description="Why the offline proposer was used, when an LLM failed.")
    proposals: list[Proposal]


def constraints_of(req: MaterialsRequest) -> dict[str, object]:
    return {
        "include": req.include,
        "exclude": req.exclude,
        "family": req.family,
        "anion": req.anion,
        "n_elements": req.n_elements,
        "goal": req.goal,
    }


def charge_balanced(comp: Composition) -> bool:
    """True when pymatgen finds an oxidation-state assignment summing to zero (intermetallics pass trivially)."""
    if not any(el.symbol in ANION_CHARGE for el in comp.elements):
        return True
    try:
        return bool(comp.oxi_state_guesses(max_sites=-50))
    except Exception:  # pymatgen gives up on some large compositions
        return False


def validate_llm_proposals(raw: list[dict], req: MaterialsRequest) -> list[Proposal]:
    """Keep LLM proposals whose formula parses, uses real elements, honours the constraints, balances charge."""
    out, seen = [], set()
    for item in raw:
        try:
            comp = Composition(str(item["formula"]))
        except Exception:  # noqa: S112 - an unparsable formula from the model is dropped
            continue
        symbols = {el.symbol for el in comp.elements}
        if not all(isinstance(el, Element) for el in comp.elements) or comp.num_atoms > 40:
            continue
        if not set(req.include) <= symbols or symbols & set(req.exclude):
            continue
        if req.family in FAMILIES and FAMILIES[req.family].ionic and not charge_balanced(comp):
            continue
        key = comp.reduced_formula
        if key in seen:
            continue
        seen.add(key)
        out.append(
            Proposal(
                formula=str(item["formula"]),
                family=item.get("family") or req.family,
                reason=str(item.get("reason", ""))[:500],
                source="llm",
            )
        )
    return out


def ask_llm(req: MaterialsRequest, n: int, settings: Settings, memory_lines: list[str]) -> list[dict]:
    """One chat-completion call; returns the parsed 'proposals' list (raises on transport or JSON errors)."""
    from openai import OpenAI

    client = OpenAI(base_url=settings.llm_base_url, api_key=settings.llm_api_key or "not-needed", timeout=60)
    prompt = render_prompt(
        "propose_formulas",
        request=req.text,
        n=str(n),
        constraints=json.dumps(constraints_of(req)),
        memory="\n".join(memory_lines) or "(none yet)",
    )
    reply = client.chat.completions.create(
        model=settings.llm_model or "default", messages=[{"role": "user", "content": prompt}], temperature=0.2
    )
    text = reply.choices[0].message.content or ""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match is None:
        raise ValueError("the LLM answer holds no JSON object")
    data = json.loads(match.group(0))
    if not isinstance(data.get("proposals"), list):
        raise ValueError("the LLM answer has no 'proposals' list")
    return data["proposals"]


def memory_context(req: MaterialsRequest, ctx: ToolContext, n: int = 5) -> list[str]:
    """Lines describing similar stored structures, for the LLM prompt (retrieval from memory)."""
    lines = []
    for record, score in ctx.store.search_text(req.text, n=n):
        hull = record.properties.get("e_above_hull_eV")
        lines.append(
            f"{record.metadata['reduced_formula']} {record.metadata['spacegroup_symbol']} "
            f"e_above_hull={hull if hull is not None else 'n/a'} (similarity {score:.2f})"
        )
    return lines


def propose(request: str, n: int, ctx: ToolContext, use_llm: bool = True) -> ProposeOutput:
    """Formulas for a request: the LLM's when configured and valid, else the offline proposer's."""
    req = parse_request(request)
    note = None
    if use_llm and ctx.settings.llm_base_url:
        try:
            raw = ask_llm(req, n, ctx.settings, memory_context(req, ctx))
            valid = validate_llm_proposals(raw, req)
            if valid:
                return ProposeOutput(
                    request=req.text, constraints=constraints_of(req), proposer="llm", proposals=valid[:n]
                )
            note = "the LLM proposed no valid formula; used the offline proposer"
        except Exception as exc:  # any LLM failure falls back to the offline proposer, never a crash
            note = (
                f"the LLM at {ctx.settings.llm_base_url} failed ({type(exc).__name__}: {str(exc)[:200]}); "
                "used the offline proposer"
            )
            print(f"matsearch: {note}", file=sys.stderr)
    offline = propose_formulas_offline(req, n)
    if not offline:
        raise ToolInputError(
            f"no charge-balanced formula fits the request {req.text!r} (constraints {constraints_of(req)}); "
            "relax a constraint, e.g. allow more elements or another family"
        )
    proposals = [
        Proposal(formula=p.formula, family=p.family, reason=p.reason, score=p.score, source="offline") for p in offline
    ]
    return ProposeOutput(
        request=req.text, constraints=constraints_of(req), proposer="offline", note=note, proposals=proposals
    )


@tool(cost="instant", read_only=True, idempotent=True)
def propose_formulas(inp: ProposeInput, ctx: ToolContext) -> ProposeOutput:
    """Propose candidate chemical formulas for a plain-language materials request (the language level of the
    hierarchical search). Parses elements to include/exclude, the structure family (perovskite, double
    perovskite, spinel, rock salt, fluorite, pyrochlore, garnet, olivine, Heusler, ...), the anion and the goal;
    returns charge-balanced formulas ranked by ICSD substitution likelihood with the chemistry behind each, or an
    LLM's validated proposals when an LLM endpoint is configured."""
    return propose(inp.request, inp.n, ctx, inp.use_llm)
