"""The hierarchical search (GenMS-style): request -> formulas (language level) -> structures (diffusion model and
family prototypes) -> relaxed energies and stability (potential), as a best-first tree search under a budget of
structure evaluations. Memory is the transposition table: a structure equivalent to one already relaxed with the
same potential is reused, not evaluated again. Writes a Markdown + JSON report, CIFs and a plot."""

from __future__ import annotations

import heapq
import json
import math
import time
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from pymatgen.core import Composition, Structure

from memory.store import symmetry_of
from models.prototypes import RATIOS, decorate
from tools.errors import ToolInputError, ToolRuntimeError
from tools.executor import get_executor
from tools.executor_tasks import relax_payload, relax_task
from tools.family_match import matches_family
from tools.language import Proposal, propose
from tools.potential_tools import compute_properties
from tools.registry import ToolContext, get_tool, tool
from tools.request import parse_request
from tools.structures import structure_to_cif

FAMILY_BONUS = 0.05  # eV/atom-equivalent credit for matching the requested family
UNVISITED_PRIORITY = 10.0  # above any reachable score (scores are -E_hull + bonus, a few eV at most)
EXPLORATION = 0.03  # eV/atom-equivalent bonus for formulas tried fewer times (UCB-style)
RELAX_FMAX, RELAX_STEPS = 0.1, 120
ROUND_SIZE = 2  # structures relaxed per round (fixed, so results do not depend on the executor)


class SearchInput(BaseModel):
    request: str = Field(min_length=1, max_length=2000, description="The materials request in plain language.")
    budget: int = Field(default=10, ge=1, le=500, description="Structure evaluations (relaxations) to spend.")
    n_formulas: int = Field(default=4, ge=1, le=20, description="Formulas the language level proposes.")
    samples_per_formula: int = Field(default=2, ge=1, le=16, description="Diffusion samples drawn per expansion.")
    diffusion_steps: int = Field(default=100, ge=5, le=1000, description="Denoising steps per diffusion sample.")
    potential: str | None = Field(default=None, description="Scoring potential; default the configured one.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed: same inputs and seed, same result.")
    use_llm: bool = Field(default=True, description="Use the configured LLM for the language level.")
    top_k: int = Field(default=5, ge=1, le=50, description="Rows in the ranked result.")


class Candidate(BaseModel):
    rank: int
    id: str
    uri: str
    formula: str
    family: str | None
    generator: str = Field(description="'diffusion' or 'prototype'")
    spacegroup: str
    energy_per_atom_eV: float
    formation_energy_per_atom_eV: float
    e_above_hull_eV: float | None
    family_match: bool
    has_required_elements: bool
    score: float = Field(description="Higher is better: -E_hull plus the family-match credit")
    reused: bool = Field(description="True when memory already held this structure relaxed (not re-evaluated)")
    parent_id: str | None


class TreeNode(BaseModel):
    formula: str
    family: str | None
    reason: str
    source: str
    evaluations: int
    best_score: float | None
    children: list[str]


class SearchOutput(BaseModel):
    request: str
    constraints: dict[str, object]
    proposer: str
    note: str | None
    potential: str
    evaluations: int
    reused: int
    seconds: float
    best: Candidate | None
    ranked: list[Candidate]
    per_formula: list[Candidate] = Field(
        default_factory=list,
        description="The search's answer for each formula: its best-scoring polymorph (lowest E_hull, requested "
        "family preferred), in rank order",
    )
    tree: list[TreeNode]
    report_uri: str
    report_json_uri: str
    plot_uri: str | None


@dataclass
class FormulaNode:
    """A formula child of the request: its proposal, structures queued for evaluation and scores seen."""

    proposal: Proposal
    order: int
    sites: dict[str, str] = field(default_factory=dict)
    queue: list[tuple[str, Structure, str | None]] = field(default_factory=list)  # (generator, structure, parent)
    scores: list[float] = field(default_factory=list)
    pending: int = 0  # structures of this formula in the batch being relaxed (count as visits)
    children: list[str] = field(default_factory=list)
    diffusion_draws: int = 0
    exhausted: bool = False

    def priority(self, total: int) -> float:
        """UCB-style: best score so far plus an exploration bonus; a formula not yet evaluated comes first (in the
        proposer's order), as unvisited children do in UCT, so every proposed formula gets at least one look."""
        if not self.scores and not self.pending:
            return UNVISITED_PRIORITY - 0.01 * self.order
        base = max(self.scores) if self.scores else 0.2 - 0.01 * self.order
        visits = len(self.scores) + self.pending
        return base + EXPLORATION * math.sqrt(math.log(total + 2) / (visits + 1))


def _prototype_structure(node: FormulaNode, family: str | None) -> Structure | None:
    """The family prototype decorated with the proposal's elements, when roles are known."""
    if not family or family not in RATIOS or not node.sites:
        return None
    roles, _ = RATIOS[family]
    elements = {}
    for role in roles:
        label = node.sites.get(role) or node.sites.get(f"{role}1")
        if label is None:
            return None
        elements[role] = "".join(ch for ch in label if ch.isalpha())
    if any(r.endswith("2") for r in node.sites):
        return None  # a shared site needs an ordered supercell: leave it to the diffusion model
    try:
        structure = decorate(family, elements)
    except Exception:  # a volume-predictor failure skips the prototype; diffusion still runs
        return None
    if Composition(structure.composition.reduced_formula) != Composition(node.proposal.formula).reduced_composition:
        return None
    return structure


def _draw_diffusion(node: FormulaNode, inp: SearchInput, ctx: ToolContext) -> list[tuple[str, Structure, str | None]]:
    """Sample structures for the formula from the diffusion model (stored in memory as generated nodes)."""
    seed = inp.seed * 1000 + node.order * 37 + node.diffusion_draws
    node.diffusion_draws += 1
    out = get_tool("generate_structures").run(
        {
            "formula": node.proposal.formula,
            "n_samples": inp.samples_per_formula,
            "n_steps": inp.diffusion_steps,
            "seed": seed,
            "store": True,
        },
        ToolContext(settings=ctx.settings, cancel_event=ctx.cancel_event),
    )
    items = []
    for sample in out.samples:
        if sample.valid and sample.structure is not None:
            record = ctx.store.get(sample.structure.id)
            items.append(("diffusion", record.structure, record.id))
    return items


def _reusable(structure: Structure, parent: str | None, potential: str, ctx: ToolContext) -> object | None:
    """A stored relaxation of this structure with this potential (the transposition table): the relaxed child of
    the same stored parent, or any relaxed record the structure matches."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)
    records = ctx.store.search_composition(formula=structure.composition.reduced_formula, n=200)
    usable = [
        r
        for r in records
        if r.properties.get("relaxed")
        and r.properties.get("potential") == potential
        and "e_above_hull_eV" in r.properties
    ]
    for record in usable:
        if parent and parent in record.provenance.get("parent_ids", []):
            return record
    for record in usable:
        if matcher.fit(structure, record.structure):
            return record
    return None


@tool(cost="long", estimate=lambda inp: 12.0 * inp.budget + 5.0)
def hierarchical_search(inp: SearchInput, ctx: ToolContext) -> SearchOutput:
    """Search for materials matching a plain-language request, e.g. 'a stable double perovskite oxide with La and
    Mn'. The language level proposes formulas; for each, the diffusion model samples crystal structures (and the
    family prototype is tried); every structure is relaxed with the potential and scored by energy above the local
    convex hull and by whether it matches the requested family. A best-first tree search spends the budget (number
    of relaxations) on the most promising formulas. Results are ranked, stored in memory with their parents, and
    written as a report (Markdown + JSON), CIFs and a plot. Run it as a job for budgets above a few structures."""
    start = time.time()
    potential = inp.potential or ctx.settings.potential
    req = parse_request(inp.request)
    ctx.progress(0, inp.budget, "proposing formulas")
    proposed = propose(inp.request, inp.n_formulas, ctx, inp.use_llm)
    from tools.proposer import propose_formulas_offline

    sites = {p.formula: p.sites for p in propose_formulas_offline(req, max(inp.n_formulas, 8))}
    nodes = [FormulaNode(p, i, sites.get(p.formula, {})) for i, p in enumerate(proposed.proposals)]
    search_id = f"search-{int(start)}-{inp.seed}"
    for node in nodes:
        proto = _prototype_structure(node, node.proposal.family)
        if proto is not None:
            stored = ctx.store.add(
                proto,
                provenance=_provenance(search_id, inp, node.proposal.formula, "prototype", None),
                tags=["generated"],
            )
            node.queue.append(("prototype", proto, stored.id))

    candidates: list[Candidate] = []
    state = {"evaluations": 0, "reused": 0, "note": None}
    required = set(req.include)
    executor = get_executor(ctx.settings)
    heap = [(-n.priority(0), n.order) for n in nodes]
    heapq.heapify(heap)

    def record_candidate(
        node: FormulaNode,
        generator: str,
        parent: str | None,
        relaxed: Structure,
        stored_id: str,
        props: dict,
        was_reused: bool,
    ) -> None:
        """Score a relaxed node, attach it to its formula, and keep it for ranking."""
        e_hull, formation = props.get("e_above_hull_eV"), props["formation_energy_per_atom_eV"]
        family_ok = matches_family(relaxed, node.proposal.family) if node.proposal.family else False
        score = -(e_hull if e_hull is not None else formation) + (FAMILY_BONUS if family_ok else 0.0)
        node.scores.append(score)
        node.children.append(stored_id)
        candidates.append(
            Candidate(
                rank=0,
                id=stored_id,
                uri=f"structure://{stored_id}",
                formula=relaxed.composition.reduced_formula,
                family=node.proposal.family,
                generator=generator,
                spacegroup=symmetry_of(relaxed)[0],
                energy_per_atom_eV=round(props["energy_per_atom_eV"], 4),
                formation_energy_per_atom_eV=round(formation, 4),
                e_above_hull_eV=None if e_hull is None else round(e_hull, 4),
                family_match=family_ok,
                has_required_elements=required <= {el.symbol for el in relaxed.composition.elements},
                score=round(score, 4),
                reused=was_reused,
                parent_id=parent,
            )
        )

    steps = 0
    while state["evaluations"] < inp.budget and heap and steps < 4 * inp.budget + len(nodes):
        # One round: take the best nodes' next structures (reused ones cost nothing), relax the rest as a batch.
        batch: list[tuple[FormulaNode, str, Structure, str | None]] = []
        while heap and len(batch) < min(ROUND_SIZE, inp.budget - state["evaluations"]):
            steps += 1  # bounds the loop even when every structure drawn is already in memory
            if steps > 4 * inp.budget + len(nodes):
                break
            _, order = heapq.heappop(heap)
            node = nodes[order]
            if not node.queue and state["note"] is None:
                try:
                    node.queue.extend(_draw_diffusion(node, inp, ctx))
                except ToolInputError as exc:
                    node.exhausted = True
                    state["note"] = f"diffusion skipped {node.proposal.formula}: {exc}"
                except ToolRuntimeError as exc:
                    state["note"] = f"diffusion model unavailable ({exc}); prototypes only"
            if not node.queue:
                continue  # nothing left to evaluate for this formula
            generator, structure, parent = node.queue.pop(0)
            record = _reusable(structure, parent, potential, ctx)
            if record is not None:
                state["reused"] += 1
                record_candidate(node, generator, parent, record.structure, record.id, record.properties, True)
            else:
                batch.append((node, generator, structure, parent))
                node.pending += 1
            if node.queue or not node.exhausted:
                heapq.heappush(heap, (-node.priority(state["evaluations"] + len(batch)), node.order))
        if not batch:
            continue
        ctx.progress(
            state["evaluations"],
            inp.budget,
            f"relaxing {', '.join(n.proposal.formula for n, *_ in batch)} ({executor.name})",
        )
        payloads = [relax_payload(s, potential, RELAX_FMAX, RELAX_STEPS, ctx.settings.device) for _, _, s, _ in batch]
        results = executor.map(relax_task, payloads, cancel=ctx.cancel_event)
        for (node, generator, _, parent), result in zip(batch, results, strict=True):
            node.pending -= 1
            relaxed = Structure.from_str(result["cif"], fmt="cif")
            prop_model = compute_properties(relaxed, result["energy"], potential, ctx)
            stored = ctx.store.add(
                relaxed,
                provenance=_provenance(
                    search_id, inp, node.proposal.formula, generator, parent, potential=potential, fmax=RELAX_FMAX
                ),
                energy=result["energy"],
                properties={**prop_model.model_dump(), "relaxed": True, "converged": result["converged"]},
                tags=["relaxed", "search"],
                description=f"candidate for request: {inp.request}",
            )
            state["evaluations"] += 1
            record_candidate(node, generator, parent, relaxed, stored.id, prop_model.model_dump(), False)
            heapq.heappush(heap, (-node.priority(state["evaluations"]), node.order))
        heap = _dedup_heap(heap)
    evaluations, reused, diffusion_note = state["evaluations"], state["reused"], state["note"]
    ranked = _rank(candidates)
    ctx.progress(inp.budget, inp.budget, "writing report")
    tree = [
        TreeNode(
            formula=n.proposal.formula,
            family=n.proposal.family,
            reason=n.proposal.reason,
            source=n.proposal.source,
            evaluations=len(n.scores),
            best_score=max(n.scores) if n.scores else None,
            children=n.children,
        )
        for n in nodes
    ]
    note = "; ".join(x for x in (proposed.note, diffusion_note) if x) or None
    output = SearchOutput(
        request=req.text,
        constraints=proposed.constraints,
        proposer=proposed.proposer,
        note=note,
        potential=potential,
        evaluations=evaluations,
        reused=reused,
        seconds=round(time.time() - start, 1),
        best=ranked[0] if ranked else None,
        ranked=ranked[: inp.top_k],
        per_formula=_best_per_formula(ranked),
        tree=tree,
        report_uri="",
        report_json_uri="",
        plot_uri=None,
    )
    return _write_report(output, ranked, ctx)


def _provenance(
    search_id: str, inp: SearchInput, formula: str, generator: str, parent: str | None, **extra: object
) -> dict[str, object]:
    """Provenance of a search node: the search, the request, the formula and generator, and its parent."""
    return {
        "tool": "hierarchical_search",
        "parameters": {
            "search": search_id,
            "request": inp.request,
            "formula": formula,
            "generator": generator,
            "seed": inp.seed,
            **extra,
        },
        "parent_ids": [parent] if parent else [],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _dedup_heap(heap: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """One heap entry per formula node (the most recent priority wins)."""
    latest: dict[int, float] = {}
    for priority, order in heap:
        latest[order] = priority
    out = [(p, o) for o, p in latest.items()]
    heapq.heapify(out)
    return out


def _best_per_formula(ranked: list[Candidate]) -> list[Candidate]:
    """The first (best-ranked) candidate of each reduced formula: one answer per composition, as GenMS returns."""
    seen: set[str] = set()
    out = []
    for c in ranked:
        if c.formula not in seen:
            seen.add(c.formula)
            out.append(c)
    return out


def _rank(candidates: list[Candidate]) -> list[Candidate]:
    """Unique structures by score, best first (deterministic tie-break on id)."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        if c.id not in best or c.score > best[c.id].score:
            best[c.id] = c
    ordered = sorted(best.values(), key=lambda c: (-c.has_required_elements, -c.score, c.id))
    return [c.model_copy(update={"rank": i + 1}) for i, c in enumerate(ordered)]


def _write_report(output: SearchOutput, ranked: list[Candidate], ctx: ToolContext) -> SearchOutput:
    """report.md, report.json, cifs/ and energy_vs_candidate.png in a fresh artifact directory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = ctx.artifact_dir()
    (folder / "cifs").mkdir()
    for c in ranked:
        record = ctx.store.get(c.id)
        if record is not None:
            (folder / "cifs" / f"{c.rank:02d}_{c.formula}_{c.id}.cif").write_text(structure_to_cif(record.structure))
    plot_uri = None
    if ranked:
        fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
        values = [
            c.e_above_hull_eV if c.e_above_hull_eV is not None else c.formation_energy_per_atom_eV for c in ranked
        ]
        colors = ["tab:green" if c.family_match else "tab:gray" for c in ranked]
        ax.bar(range(len(ranked)), values, color=colors)
        ax.set_xticks(range(len(ranked)), [f"{c.formula}\n{c.generator[:4]}" for c in ranked], fontsize=7, rotation=45)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylabel("E above local hull (eV/atom)")
        ax.set_title(f"Candidates for: {output.request[:60]}", fontsize=9)
        fig.tight_layout()
        fig.savefig(folder / "energy_vs_candidate.png")
        plt.close(fig)
        plot_uri = ctx.artifact_uri(folder / "energy_vs_candidate.png")
    output = output.model_copy(
        update={
            "report_uri": ctx.artifact_uri(folder / "report.md"),
            "report_json_uri": ctx.artifact_uri(folder / "report.json"),
            "plot_uri": plot_uri,
        }
    )
    lines = [
        f"# matsearch: {output.request}",
        "",
        f"Proposer: {output.proposer}; potential: {output.potential}; {output.evaluations} relaxations, "
        f"{output.reused} reused from memory; {output.seconds} s.",
        "",
    ]
    if output.note:
        lines += [f"Note: {output.note}", ""]
    if output.per_formula:
        lines += ["## Answer: the best structure of each formula", ""]
        lines += [
            f"- {c.formula}: {c.id} ({c.spacegroup}, {'requested family' if c.family_match else 'other family'}), "
            f"E_hull {c.e_above_hull_eV} eV/atom"
            for c in output.per_formula
        ]
        lines += ["", "## Every evaluated structure", ""]
    lines += [
        "| rank | id | formula | family match | generator | space group | E_hull (eV/atom) | "
        "E_form (eV/atom) | score |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in ranked:
        lines.append(
            f"| {c.rank} | {c.id} | {c.formula} | {'yes' if c.family_match else 'no'} | {c.generator} | "
            f"{c.spacegroup} | {c.e_above_hull_eV} | {c.formation_energy_per_atom_eV} | {c.score} |"
        )
    lines += ["", "## Search tree", ""]
    for n in output.tree:
        lines.append(
            f"- **{n.formula}** ({n.family}, {n.source}): {n.reason}; {n.evaluations} evaluated, "
            f"best score {n.best_score}; children: {', '.join(n.children) or 'none'}"
        )
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    (folder / "report.json").write_text(
        json.dumps(
            output.model_dump(mode="json") | {"all_candidates": [c.model_dump(mode="json") for c in ranked]}, indent=1
        )
    )
    return output
