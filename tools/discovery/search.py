"""The hierarchical search (GenMS-style): request -> formulas (language level) -> structures (diffusion model and
family prototypes) -> relaxed energies and stability (potential), as a best-first tree search under a budget of
structure evaluations. Memory is the transposition table: a structure equivalent to one already relaxed with the
same potential is reused, not evaluated again (an unconverged stored relaxation is relaxed on from where it
stopped). Writes a Markdown + JSON report, CIFs and a plot.

The numbers it delivers: after the tree search every candidate's E_hull is recomputed against the FINAL hull of its
chemical system (references + every relaxed structure memory holds for that system with that potential, the
candidates included), so E_hull >= 0 up to round-off and polymorphs read relative to the best; the stored records'
e_above_hull_eV is updated to it. Ranking is by tiers, then stability (see _rank): required elements, formulas the
request named, the requested family, only the named elements, converged relaxations; then E_hull above the hull,
and on it the energy below the competing phases (`stability`). Each delivered CIF is the relaxed structure whose
energy is reported (`verify_delivery` recomputes it)."""

from __future__ import annotations

import functools
import heapq
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field
from pymatgen.analysis.phase_diagram import PDEntry
from pymatgen.core import Composition, Structure

from memory.store import is_converged_relaxation, is_relaxation, relaxation_labels, relaxation_tags, symmetry_of
from models.crystals.prototypes import decorate, roles_of
from tools.core.errors import ToolInputError, ToolRuntimeError
from tools.core.executor import get_executor
from tools.core.executor_tasks import relax_payload, relax_task
from tools.core.provenance import provenance
from tools.core.registry import DASK, LLM, STORE, ToolContext, ToolInput, get_tool, tool
from tools.discovery.family_match import matches_family
from tools.discovery.language import Proposal, ProposeOutput, propose_request
from tools.discovery.request import MaterialsRequest
from tools.potentials.calculators import REFERENCE_CLOCK, get_potential, single_point
from tools.potentials.properties import compute_properties, reference_compound_keys, system_hull
from tools.structures.io import structure_to_cif

# Families whose primitive cell the diffusion model cannot reach (it samples up to 64 atoms and is trained on small
# cells): the decorated prototype is their structure path, and the search says so.
PROTOTYPE_ONLY = {"garnet": "the garnet primitive cell has 80 atoms, beyond the diffusion model"}
FAMILY_BONUS = 0.05  # eV/atom credit for a family match in the tree search's node priority only (not the ranking)
UNVISITED_PRIORITY = 10.0  # above any reachable priority (-E_hull + bonus, a few eV at most)
SUSPECT_E_HULL = -0.05  # eV/atom: an E_hull this far below the final hull is flagged (it should be >= 0)
EXPLORATION = 0.03  # eV/atom-equivalent bonus for formulas tried fewer times (UCB-style)
RELAX_FMAX, RELAX_STEPS = 0.1, 120
ROUND_SIZE = 2  # structures relaxed per round (fixed, so results do not depend on the executor)


class SearchInput(ToolInput):
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
    generator: str = Field(description="'prototype', 'diffusion' or 'pyxtal' (elements the diffusion model lacks)")
    spacegroup: str
    energy_per_atom_eV: float
    formation_energy_per_atom_eV: float
    e_above_hull_eV: float | None = Field(
        description="Energy above the final hull of its chemical system (references + every relaxed structure of the "
        "system in memory with this potential, this one included), eV/atom"
    )
    family_match: bool
    has_required_elements: bool
    score: float = Field(description="Higher is better: minus the stability number (E_hull above the hull, the "
                         "energy below the competing phases on it); the ranking's tiers come first, see rank")
    reused: bool = Field(description="True when memory already held this structure relaxed (not re-evaluated)")
    parent_id: str | None
    converged: bool = Field(default=True, description="The relaxation met its force threshold (fmax) in its steps")
    e_hull_at_evaluation_eV: float | None = Field(
        default=None, description="E_hull against the hull known when it was evaluated (the search's working value)"
    )
    decomposition_energy_eV: float | None = Field(
        default=None, description="Energy relative to the hull of the competing phases (other compositions), eV/atom: "
        "E_hull when above it, negative when on it (how far below its competitors); the ranking uses it"
    )
    proposal_rank: int = Field(default=0, description="The formula's place in the language level's ranking")
    named_formula: bool = Field(default=False, description="A formula the request named (ranked first)")
    only_named_elements: bool = Field(
        default=False, description="Made of the elements the request named (and its anion) only: YAG for 'a garnet "
        "with Y and Al' before Ga-substituted garnets"
    )
    e_hull_suspect: bool = Field(
        default=False, description="E_hull still below -0.05 eV/atom against the final hull: do not trust it"
    )


class TreeNode(BaseModel):
    formula: str
    family: str | None
    reason: str
    source: str
    evaluations: int
    best_score: float | None
    children: list[str]
    status: str = Field(default="", description="What the search did with this formula and why it stopped")


class SearchOutput(BaseModel):
    request: str
    constraints: dict[str, object]
    reader: str = Field(default="offline", description="Who read the request: 'offline' rules or the 'llm'")
    proposer: str
    declined: str | None = Field(
        default=None, description="Why chemistry rules the request out (noble gases, contradictions, no charge "
        "balance); then nothing is searched"
    )
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
    notes: list[str] = Field(default_factory=list, description="Every note of the search (`note` joins them)")
    hull_references: dict[str, list[str]] = Field(
        default_factory=dict, description="Per chemical system: the reference phases of its final hull"
    )
    reference_relaxations: int = Field(default=0, description="Hull reference compounds this search relaxed")
    reference_seconds: float = Field(
        default=0.0, description="Seconds of `seconds` spent relaxing hull references (computed once, then cached)"
    )


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
    drawn: int = 0  # valid diffusion structures drawn
    exhausted: bool = False
    stop_reason: str = ""  # why the formula has nothing left (set when exhausted)
    had_prototype: bool = False
    prototype_only: bool = False  # the family's cell is beyond the diffusion model: its prototype is the path
    method: str = "diffusion"  # 'pyxtal' once the diffusion model refused the formula's elements
    seen: set[str] = field(default_factory=set)  # memory ids of the structures queued so far

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
    if not family or roles_of(family) is None or not node.sites:
        return None
    roles, _ = roles_of(family)
    elements = {}
    for role in roles:
        label = node.sites.get(role) or node.sites.get(f"{role}1")
        if label is None:
            return None
        elements[role] = _symbol(label)
    try:
        structure = decorate(family, elements)
        for role in [r[:-1] for r in node.sites if r.endswith("2") and r[:-1] in roles]:
            structure = _split_site(structure, elements[role], _symbol(node.sites[f"{role}2"]))
    except Exception:  # a volume-predictor failure skips the prototype; diffusion still runs
        return None
    if Composition(structure.composition.reduced_formula) != Composition(node.proposal.formula).reduced_composition:
        return None
    return structure


def _symbol(label: str) -> str:
    """'Mn2+' -> 'Mn'."""
    return "".join(ch for ch in label if ch.isalpha())


def _split_site(structure: Structure, first: str, second: str) -> Structure:
    """A role shared 1:1 by two elements ((Mn,Zn)Fe2O4): the second half of the first element's sites, in cell
    order, takes the second element (the cell is doubled along a when it holds an odd number of them). One ordered
    decoration of the family, not necessarily its lowest-energy ordering: the relaxation and the other generators
    explore the rest."""
    sites = [i for i, site in enumerate(structure) if site.specie.symbol == first]
    if len(sites) % 2:
        structure = structure.copy()
        structure.make_supercell([2, 1, 1])
        sites = [i for i, site in enumerate(structure) if site.specie.symbol == first]
    ordered = structure.copy()
    for i in sites[len(sites) // 2:]:
        ordered.replace(i, second)
    return ordered


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
            "method": node.method,
        },
        ToolContext(settings=ctx.settings, cancel_event=ctx.cancel_event),
    )
    items = []
    for sample in out.samples:
        if sample.valid and sample.structure is not None:
            record = ctx.store.get(sample.structure.id)
            items.append((node.method, record.structure, record.id))
    return items


def _reusable(structure: Structure, parent: str | None, potential: str, ctx: ToolContext) -> object | None:
    """A stored relaxation of this structure with this potential (the transposition table): the relaxation child
    of the same stored parent, or any relaxation record the structure matches, converged ones first. An
    unconverged one is followed to its stored continuation (a relaxation whose parent it is), so the caller gets
    the furthest point reached: reuse it when converged, else relax on from its structure."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)
    records = ctx.store.search_composition(formula=structure.composition.reduced_formula, n=200)
    usable = sorted(
        (
            r
            for r in records
            if is_relaxation(r.properties)
            and r.properties.get("potential") == potential
            and "e_above_hull_eV" in r.properties
        ),
        key=lambda r: not is_converged_relaxation(r.properties),
    )

    def child_of(parent_id: str) -> object | None:
        return next((r for r in usable if parent_id in r.provenance.get("parent_ids", [])), None)

    found = child_of(parent) if parent else None
    if found is None or not is_converged_relaxation(found.properties):
        match = next((r for r in usable if matcher.fit(structure, r.structure)), None)
        if match is not None and (found is None or is_converged_relaxation(match.properties)):
            found = match
    followed: set[str] = set()  # follow an unconverged relaxation to its stored continuations (no cycles)
    while found is not None and not is_converged_relaxation(found.properties) and found.id not in followed:
        followed.add(found.id)
        found = child_of(found.id) or found
    return found


@tool(cost="long", reaches=(LLM, DASK, STORE), estimate=lambda inp: 12.0 * inp.budget + 5.0)
def hierarchical_search(inp: SearchInput, ctx: ToolContext) -> SearchOutput:
    """Search for materials matching a plain-language request, e.g. 'a stable double perovskite oxide with La and
    Mn'. The language level proposes formulas; for each, the diffusion model samples crystal structures (and the
    family prototype is tried); every structure is relaxed with the potential and scored by energy above the local
    convex hull and by whether it matches the requested family. A best-first tree search spends the budget (number
    of relaxations) on the most promising formulas. At the end every E_hull is recomputed against the final hull
    (so it reads >= 0; polymorphs relative to the best), and results are ranked: required elements, formulas the
    request named, the requested family, compounds of only the named elements, converged relaxations, then
    stability (E_hull, or on the hull how far below its competitors). They are stored in memory with their parents and
    written as a report (Markdown + JSON), CIFs and a plot; `notes` says what was skipped or under-spent and why.
    `constraints` shows how the request was read (and `reader` by whom); a request chemistry rules out (noble-gas
    compounds, contradictions, no charge balance) comes back `declined` with the reason, and nothing is relaxed.
    Run it as a job for budgets above a few structures."""
    start = time.time()
    potential = inp.potential or ctx.settings.potential
    ctx.progress(0, inp.budget, "reading the request and proposing formulas")
    # Propose. Twice the formulas asked for: the first n_formulas are searched, the rest wait in reserve and are
    # opened when every open formula is exhausted with budget left (e.g. prototype-only families such as garnets).
    req, proposed = propose_request(inp.request, 2 * inp.n_formulas, ctx, inp.use_llm)
    if proposed.declined:
        return _declined_output(inp, req, proposed, potential, start, ctx)
    search = _Search(inp, ctx, req, proposed, potential, start, _formula_nodes(proposed))
    # Expand, sample and relax: rounds of the likeliest formulas' next structures until the budget is spent.
    search.explore()
    # Rescore every candidate against the final hull of its system, rank, report.
    ctx.progress(inp.budget, inp.budget, "final hull and report")
    final, hull_references, hull_notes = _final_hull(
        search.candidates, search.energies, potential, search.search_id, ctx
    )
    ranked = _rank(final, family_required=req.family is not None)
    return _report(search, proposed, ranked, hull_references, hull_notes)


def _formula_nodes(proposed: ProposeOutput) -> list[FormulaNode]:
    """Propose: one tree node per proposed formula, in the proposer's order, with the roles of its family."""
    from tools.discovery.proposer import sites_for

    nodes = []
    for i, p in enumerate(proposed.proposals):  # an LLM's proposal gets its roles from the family here
        node_sites = p.sites or (sites_for(p.formula, p.family) if p.family else {})
        nodes.append(FormulaNode(p, i, node_sites, prototype_only=bool(p.family in PROTOTYPE_ONLY)))
    return nodes


# A structure on its way to the relaxation: its formula node, generator, structure and parent record.
_Pick = tuple[FormulaNode, str, Structure, str | None]


class _Search:
    """One search under way: the open formula nodes (and those in reserve), the priority heap over them, the
    candidates relaxed or reused so far, and the notes on what was skipped and why."""

    def __init__(
        self,
        inp: SearchInput,
        ctx: ToolContext,
        req: MaterialsRequest,
        proposed: ProposeOutput,
        potential: str,
        start: float,
        nodes: list[FormulaNode],
    ) -> None:
        """Open the first n_formulas nodes (their prototypes queued); keep the rest in reserve."""
        self.inp, self.ctx, self.req, self.potential, self.start = inp, ctx, req, potential, start
        self.reserve = nodes[inp.n_formulas:]
        self.nodes = nodes[: inp.n_formulas]
        self.search_id = f"search-{int(start)}-{inp.seed}"
        for node in self.nodes:
            self.queue_prototype(node)
        self.references_before = reference_compound_keys(potential, ctx)
        self.clock_before = REFERENCE_CLOCK["seconds"]
        self.candidates: list[Candidate] = []
        self.energies: dict[str, float] = {}  # candidate id -> total energy (eV) of that stored relaxed structure
        self.evaluations = self.reused = self.steps = 0
        self.notes: list[str] = [proposed.note] if proposed.note else []
        self.notes += [_prototype_only_note(n) for n in self.nodes if n.prototype_only]
        self.diffusion_down: list[str] = []  # the model itself is unavailable: no formula gets diffusion samples
        self.required = set(req.include)
        self.allowed_anions = req.asked_anions()
        self.executor = get_executor(ctx.settings)
        self.max_draws = math.ceil(inp.budget / inp.samples_per_formula) + 2  # per formula: enough for the budget
        self.max_steps = 4 * inp.budget + len(nodes) * (self.max_draws * inp.samples_per_formula + 2)
        self.heap = [(-n.priority(0), n.order) for n in self.nodes]
        heapq.heapify(self.heap)

    def explore(self) -> None:
        """The best-first tree search: rounds of the likeliest formulas' next structures until the budget is spent,
        nothing is left to relax, or the step bound is reached."""
        while (self.evaluations < self.inp.budget and (self.heap or self.open_reserve())
               and self.steps < self.max_steps):
            batch = self.next_round()
            if batch:
                self.relax(batch)

    def push(self, node: FormulaNode, in_flight: int = 0) -> None:
        """Put a formula node back on the heap at its priority (with `in_flight` structures taken this round)."""
        heapq.heappush(self.heap, (-node.priority(self.evaluations + in_flight), node.order))

    def next_round(self) -> list[_Pick]:
        """Expand: the next structures of the likeliest formulas for one round (at most ROUND_SIZE, within the
        budget), drawing samples for a formula whose queue is empty; reused ones are recorded at no cost."""
        batch: list[_Pick] = []
        while (self.heap and len(batch) < min(ROUND_SIZE, self.inp.budget - self.evaluations)
               and self.steps < self.max_steps):
            self.steps += 1  # bounds the loop even when every structure drawn is already in memory
            _, order = heapq.heappop(self.heap)
            node = self.nodes[order]
            if not node.queue:
                self.refill(node)
            if not node.queue:
                if not node.exhausted:  # a draw without a valid structure: draw again later (max_draws bounds it)
                    self.push(node, len(batch))
                continue  # exhausted (refill said why): the other formulas go on
            pick = self.reuse_or_pick(node)
            if pick is not None:
                batch.append(pick)
                node.pending += 1
            if node.queue or not node.exhausted:
                self.push(node, len(batch))
        return batch

    def reuse_or_pick(self, node: FormulaNode) -> _Pick | None:
        """The node's next queued structure: recorded as reused when memory holds its converged relaxation with this
        potential (the transposition table), else returned to be relaxed."""
        generator, structure, parent = node.queue.pop(0)
        record = _reusable(structure, parent, self.potential, self.ctx)
        if record is not None and not is_converged_relaxation(record.properties):
            # an unconverged stored relaxation is no result: relax on from where it stopped (costs budget)
            structure, parent, record = record.structure, record.id, None
        if record is None:
            return node, generator, structure, parent
        self.reused += 1
        converged = bool(record.properties.get("converged", False))
        self.record(node, generator, parent, record.structure, record.id, record.properties, True, converged)
        return None

    def queue_prototype(self, node: FormulaNode) -> None:
        """Queue the family prototype decorated with the formula's roles (stored as a generated node)."""
        proto = _prototype_structure(node, node.proposal.family)
        if proto is not None:
            stored = self.ctx.store.add(
                proto,
                provenance=_provenance(self.search_id, self.inp, node.proposal.formula, "prototype", None),
                tags=["generated"],
            )
            node.queue.append(("prototype", proto, stored.id))
            node.had_prototype = True
            node.seen.add(stored.id)

    def refill(self, node: FormulaNode) -> None:
        """Sample: draw diffusion samples for a formula whose queue is empty; mark it exhausted when none can come."""
        if node.prototype_only:
            node.exhausted = True
            node.stop_reason = f"prototype only: {PROTOTYPE_ONLY[node.proposal.family]}"
            return
        if self.diffusion_down:
            node.exhausted, node.stop_reason = True, "diffusion model unavailable"
            return
        if node.diffusion_draws >= self.max_draws:
            node.exhausted, node.stop_reason = True, f"no diffusion draws left (limit {self.max_draws} per formula)"
            return
        try:
            items = _draw_diffusion(node, self.inp, self.ctx)
        except ToolInputError as exc:  # this formula only: the next formula may still be sampled
            if node.method == "diffusion" and "not supported by this diffusion model" in str(exc):
                # Elements outside the model's training set (P, for phosphides): random symmetric structures.
                node.method = "pyxtal"
                self.notes.append(f"diffusion refused {node.proposal.formula} ({exc}); random symmetric pyxtal "
                                  "structures instead")
                self.refill(node)
                return
            node.exhausted, node.stop_reason = True, f"{node.method} refused it ({exc})"
            self.notes.append(f"{node.method} refused {node.proposal.formula}: {exc}")
            return
        except ToolRuntimeError as exc:
            self.diffusion_down.append(str(exc))
            self.notes.append(f"diffusion model unavailable ({exc}); prototypes only")
            node.exhausted, node.stop_reason = True, "diffusion model unavailable"
            return
        fresh = []
        for item in items:  # two samples that memory holds as one record are one structure to relax
            if item[2] not in node.seen:
                node.seen.add(item[2])
                fresh.append(item)
        node.drawn += len(fresh)
        node.queue.extend(fresh)

    def open_reserve(self) -> bool:
        """Open the next reserve formula (with its prototype) when the open ones have nothing left."""
        if not self.reserve:
            return False
        node = self.reserve.pop(0)
        node.order = len(self.nodes)
        self.nodes.append(node)
        self.queue_prototype(node)
        if node.prototype_only:
            self.notes.append(_prototype_only_note(node))
        self.push(node)
        self.notes.append(
            f"opened reserve formula {node.proposal.formula}: the first formulas had nothing left to relax"
        )
        return True

    def relax(self, batch: list[_Pick]) -> None:
        """Relax: one round's structures as a batch on the executor; each is stored with its provenance, scored and
        recorded, and its formula goes back on the heap."""
        self.ctx.progress(
            self.evaluations,
            self.inp.budget,
            f"relaxing {', '.join(n.proposal.formula for n, *_ in batch)} ({self.executor.name})",
        )
        payloads = [relax_payload(s, self.potential, RELAX_FMAX, RELAX_STEPS, self.ctx.settings.device,
                                  str(self.ctx.workspace)) for _, _, s, _ in batch]
        results = self.executor.map(relax_task, payloads, cancel=self.ctx.cancel_event)
        for (node, generator, _, parent), result in zip(batch, results, strict=True):
            node.pending -= 1
            relaxed = Structure.from_str(result["cif"], fmt="cif")
            prop_model = compute_properties(relaxed, result["energy"], self.potential, self.ctx)
            stored = self.ctx.store.add(
                relaxed,
                provenance=_provenance(self.search_id, self.inp, node.proposal.formula, generator, parent,
                                       potential=self.potential, fmax=RELAX_FMAX),
                energy=result["energy"],
                properties={**prop_model.model_dump(), **relaxation_labels(result["converged"])},
                tags=[*relaxation_tags(result["converged"]), "search"],
                description=f"candidate for request: {self.inp.request}",
            )
            self.evaluations += 1
            self.record(node, generator, parent, relaxed, stored.id, prop_model.model_dump(), False,
                        bool(result["converged"]))
            self.push(node)
        self.heap = _dedup_heap(self.heap)

    def record(
        self,
        node: FormulaNode,
        generator: str,
        parent: str | None,
        relaxed: Structure,
        stored_id: str,
        props: dict,
        was_reused: bool,
        converged: bool,
    ) -> None:
        """Score a relaxed node, attach it to its formula, and keep it for ranking."""
        e_hull, formation = props.get("e_above_hull_eV"), props["formation_energy_per_atom_eV"]
        shared = [[_symbol(node.sites[r[:-1] + "1"]), _symbol(node.sites[r])] for r in node.sites
                  if r.endswith("2") and r[:-1] + "1" in node.sites]
        family_ok = matches_family(relaxed, node.proposal.family, shared) if node.proposal.family else False
        score = -(e_hull if e_hull is not None else formation)
        node.scores.append(score + (FAMILY_BONUS if family_ok else 0.0))  # the tree search's priority signal
        node.children.append(stored_id)
        self.energies[stored_id] = float(props["energy_eV"])
        elements = {el.symbol for el in relaxed.composition.elements}
        self.candidates.append(
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
                has_required_elements=self.required <= elements,
                only_named_elements=len(self.required) >= 2 and elements <= self.required | self.allowed_anions,
                score=round(score, 4),
                reused=was_reused,
                parent_id=parent,
                converged=converged,
                proposal_rank=node.order,
                named_formula=node.proposal.named
                and relaxed.composition.reduced_formula == Composition(node.proposal.formula).reduced_formula,
                e_hull_at_evaluation_eV=None if e_hull is None else round(e_hull, 4),
            )
        )


def _report(
    search: _Search,
    proposed: ProposeOutput,
    ranked: list[Candidate],
    hull_references: dict[str, list[str]],
    hull_notes: list[str],
) -> SearchOutput:
    """Report: the output (ranked candidates, the formula tree, every note), written as Markdown, JSON, CIFs, plot."""
    inp, ctx = search.inp, search.ctx
    notes, relaxed_refs = _closing_notes(search, ranked, hull_notes)
    output = SearchOutput(
        request=search.req.text,
        constraints=proposed.constraints,
        reader=proposed.reader,
        proposer=proposed.proposer,
        note="; ".join(notes) or None,
        potential=search.potential,
        evaluations=search.evaluations,
        reused=search.reused,
        seconds=round(time.time() - search.start, 1),
        best=ranked[0] if ranked else None,
        ranked=ranked[: inp.top_k],
        per_formula=_best_per_formula(ranked),
        tree=_tree(search.nodes, ranked),
        report_uri="",
        report_json_uri="",
        plot_uri=None,
        notes=notes,
        hull_references=hull_references,
        reference_relaxations=relaxed_refs,
        reference_seconds=round(REFERENCE_CLOCK["seconds"] - search.clock_before, 1),
    )
    return _write_report(output, ranked, ctx)


def _closing_notes(search: _Search, ranked: list[Candidate], hull_notes: list[str]) -> tuple[list[str], int]:
    """Every note of the search, once each (the search's, the hull's, references relaxed, quality, budget), and
    how many hull reference compounds it relaxed; each formula node gets its stop reason."""
    notes = search.notes + hull_notes
    relaxed_refs = len(reference_compound_keys(search.potential, search.ctx) - search.references_before)
    if relaxed_refs:
        notes.append(
            f"hull references: {relaxed_refs} reference compounds relaxed by this search with {search.potential} "
            "(cached for later searches; at most 6 per metal pair of an anion-free system and 1-2 per metal-anion "
            "pair)"
        )
    notes += _quality_notes(ranked)
    notes = list(dict.fromkeys(notes))  # one note per fact (a formula refused twice is said once)
    for node in search.nodes:
        node.stop_reason = node.stop_reason or _open_reason(node)
    if search.evaluations < search.inp.budget:
        notes.append(_budget_note(search.evaluations, search.reused, search.inp, search.nodes,
                                  search.steps >= search.max_steps))
    return notes, relaxed_refs


def _tree(nodes: list[FormulaNode], ranked: list[Candidate]) -> list[TreeNode]:
    """The formula level of the search tree: each formula's evaluations, best ranked score, children and status."""
    best_by_id = {c.id: c.score for c in ranked}
    return [
        TreeNode(
            formula=n.proposal.formula,
            family=n.proposal.family,
            reason=n.proposal.reason,
            source=n.proposal.source,
            evaluations=len(n.scores),
            best_score=max((best_by_id[i] for i in n.children if i in best_by_id), default=None),
            children=n.children,
            status=_node_status(n),
        )
        for n in nodes
    ]


def _final_hull(
    candidates: list[Candidate], energies: dict[str, float], potential: str, search_id: str, ctx: ToolContext
) -> tuple[list[Candidate], dict[str, list[str]], list[str]]:
    """Every candidate's E_hull against the final hull of its chemical system (references + every relaxed
    structure memory holds for it with this potential + the converged candidates themselves: an unconverged one is
    scored against that hull but is no competitor), written back to the stored record (computed on that very
    structure); the hull's references per system, and notes on thin hulls and on what the hull left out."""
    systems: dict[tuple[str, ...], list[Candidate]] = {}
    for c in candidates:
        systems.setdefault(tuple(sorted(el.symbol for el in Composition(c.formula).elements)), []).append(c)
    updates: dict[str, dict[str, object]] = {}
    references: dict[str, list[str]] = {}
    notes: list[str] = []
    for elements, members in sorted(systems.items()):
        records = {c.id: ctx.store.get(c.id) for c in members}
        records = {i: r for i, r in records.items() if r is not None}
        converged = {c.id for c in members if c.converged}
        extra = [PDEntry(r.structure.composition, energies[i], name=i) for i, r in records.items() if i in converged]
        hull = system_hull(list(elements), potential, ctx, extra)
        name = "-".join(elements)
        references[name] = hull.references
        notes += [n for n in hull.notes if n not in notes]
        if hull.missing_binaries:
            notes.append(
                f"thin hull for {name}: no {', '.join(hull.missing_binaries)} compound among its references or in "
                "memory, so E_hull may read too low"
            )
        for i, record in records.items():
            value = hull.e_above_hull(record.structure.composition, energies[i])
            value = 0.0 if -1e-6 < value < 0 else value
            basis = (
                f"final hull of {search_id}: {len(hull.references)} references, {hull.n_memory} relaxed structures "
                "in memory"
            )
            ctx.store.update(i, properties={"e_above_hull_eV": round(value, 6), "e_above_hull_basis": basis})
            # On the hull: how far below the competing phases (negative); above it: E_hull itself, so a polymorph
            # above its own composition's ground state never outranks a compound on the hull.
            decomposition = stability(
                value, functools.partial(hull.decomposition_energy, record.structure.composition, energies[i])
            )
            updates[i] = {"e_above_hull_eV": round(value, 4), "score": round(-decomposition, 4) + 0.0,
                          "decomposition_energy_eV": round(decomposition, 4), "e_hull_suspect": value < SUSPECT_E_HULL}
    final = [c.model_copy(update=updates[c.id]) if c.id in updates else c for c in candidates]
    return final, references, notes


def stability(e_hull: float, below_competitors: Callable[[], float]) -> float:
    """The ranking's stability number: E_hull for a structure above the hull (a polymorph above its composition's
    ground state included), and for one on it the (negative) energy below the hull of the competing phases."""
    if e_hull > 1e-4:
        return e_hull
    return min(below_competitors(), 0.0)


def _quality_notes(ranked: list[Candidate]) -> list[str]:
    """Flags on the delivered numbers: E_hull below the final hull, relaxations that did not converge."""
    notes = []
    suspect = [c for c in ranked if c.e_hull_suspect]
    if suspect:
        notes.append(
            "E_hull below -0.05 eV/atom even against the final hull (distrust): "
            + ", ".join(f"{c.id} ({c.formula}, {c.e_above_hull_eV})" for c in suspect)
        )
    unconverged = [c for c in ranked if not c.converged]
    if unconverged:
        notes.append(
            f"{len(unconverged)} relaxation(s) did not converge (fmax {RELAX_FMAX} eV/A in {RELAX_STEPS} steps): "
            f"{', '.join(c.id for c in unconverged)}; ranked after converged ones of their tier, their energy is an "
            "upper bound of their local minimum's"
        )
    return notes


def _open_reason(node: FormulaNode) -> str:
    """Why a formula that was not exhausted stopped: the budget went elsewhere, or it still had work queued."""
    if node.queue:
        return f"{len(node.queue)} structure(s) still queued when the budget was spent"
    return "not expanded further before the budget was spent"


def _node_status(node: FormulaNode) -> str:
    """One line: prototype, diffusion draws and why the formula stopped."""
    parts = ["prototype tried" if node.had_prototype else "no prototype"]
    if node.diffusion_draws:
        parts.append(f"{node.diffusion_draws} diffusion draws ({node.drawn} new valid structures)")
    parts.append(node.stop_reason)
    return "; ".join(p for p in parts if p)


def _budget_note(evaluations: int, reused: int, inp: SearchInput, nodes: list[FormulaNode], step_limit: bool) -> str:
    """Why fewer relaxations than the budget were spent."""
    why = "step limit reached" if step_limit else "every formula exhausted"
    per_node = "; ".join(f"{n.proposal.formula}: {_node_status(n)}" for n in nodes) or "no formula proposed"
    return (
        f"budget under-spent: {evaluations} of {inp.budget} relaxations, {reused} structures reused from memory; "
        f"{why} ({per_node})"
    )


def _prototype_only_note(node: FormulaNode) -> str:
    return f"{node.proposal.formula}: prototype only ({PROTOTYPE_ONLY[node.proposal.family]})"


def _declined_output(
    inp: SearchInput, req: MaterialsRequest, proposed: ProposeOutput, potential: str, start: float, ctx: ToolContext
) -> SearchOutput:
    """The answer to a request chemistry rules out: no search, the reason, and a one-paragraph report."""
    output = SearchOutput(
        request=req.text,
        constraints=proposed.constraints,
        reader=proposed.reader,
        proposer=proposed.proposer,
        declined=proposed.declined,
        note=f"declined: {proposed.declined}",
        notes=[f"declined: {proposed.declined}"] + ([proposed.note] if proposed.note else []),
        potential=potential,
        evaluations=0,
        reused=0,
        seconds=round(time.time() - start, 1),
        best=None,
        ranked=[],
        tree=[],
        report_uri="",
        report_json_uri="",
        plot_uri=None,
    )
    return _write_report(output, [], ctx)


def _provenance(
    search_id: str, inp: SearchInput, formula: str, generator: str, parent: str | None, **extra: object
) -> dict[str, object]:
    """Provenance of a search node: the search, the request, the formula and generator, and its parent."""
    parameters = {"search": search_id, "request": inp.request, "formula": formula, "generator": generator,
                  "seed": inp.seed, **extra}
    return provenance("hierarchical_search", parameters, [parent])


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


def _rank(candidates: list[Candidate], family_required: bool = False) -> list[Candidate]:
    """Unique structures, best first, by tiers and then stability: required elements first; formulas the request
    named (or asked for by a swap) next; when the request names a family, family matches before other families;
    when it names two or more elements, compounds of only those (and the anion) first; converged relaxations
    before unconverged ones; then the energy relative to the competing phases (E_hull above
    the hull, negative below: a compound on the hull ranks by how far below its competitors it lies; E_form when
    there is no hull value), then the language level's order. A family match or a valid composition is a
    requirement, not a bonus that a wrong E_hull could outweigh."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        if c.id not in best or c.score > best[c.id].score:
            best[c.id] = c

    def key(c: Candidate) -> tuple:
        value = c.decomposition_energy_eV
        if value is None:
            value = c.e_above_hull_eV if c.e_above_hull_eV is not None else c.formation_energy_per_atom_eV
        return (not c.has_required_elements, not c.named_formula, family_required and not c.family_match,
                not c.only_named_elements, not c.converged,
                round(value, 3), c.proposal_rank, c.energy_per_atom_eV, c.id)

    ordered = sorted(best.values(), key=key)
    return [c.model_copy(update={"rank": i + 1}) for i, c in enumerate(ordered)]


class DeliveryCheck(BaseModel):
    id: str
    cif: str = Field(description="The delivered CIF file (report cifs/ folder)")
    energy_per_atom_eV: float = Field(description="The energy per atom the search reported for it")
    recomputed_eV: float = Field(description="Single-point energy per atom of the delivered CIF, same potential")
    ok: bool


def verify_delivery(
    output: SearchOutput, ctx: ToolContext, potential: str | None = None, tolerance: float = 0.005
) -> list[DeliveryCheck]:
    """Recompute the single-point energy of every delivered CIF (the report's cifs/ folder) with the search's
    potential and compare it with the reported energy_per_atom_eV (ok within `tolerance` eV/atom): each delivered
    CIF must be the relaxed structure whose energy is reported."""
    potential = potential or output.potential
    folder = ctx.workspace / Path(output.report_uri.removeprefix("artifact://")).parent
    reported = json.loads((folder / "report.json").read_text())["all_candidates"]
    by_id = {c["id"]: c for c in reported}
    calc = get_potential(potential, ctx.settings)
    checks = []
    for path in sorted((folder / "cifs").glob("*.cif")):
        cid = path.stem.rsplit("_", 1)[-1]
        structure = Structure.from_str(path.read_text(), fmt="cif")
        recomputed = single_point(structure, calc, potential) / len(structure)
        reported_energy = float(by_id[cid]["energy_per_atom_eV"])
        checks.append(
            DeliveryCheck(
                id=cid,
                cif=str(path),
                energy_per_atom_eV=reported_energy,
                recomputed_eV=round(recomputed, 6),
                ok=abs(recomputed - reported_energy) <= tolerance,
            )
        )
    return checks


def _write_report(output: SearchOutput, ranked: list[Candidate], ctx: ToolContext) -> SearchOutput:
    """report.md, report.json, cifs/ and energy_vs_candidate.png in a fresh artifact directory."""
    from tools.core.plotting import figure, save

    folder = ctx.artifact_dir()
    (folder / "cifs").mkdir()
    for c in ranked:
        record = ctx.store.get(c.id)
        if record is not None:
            (folder / "cifs" / f"{c.rank:02d}_{c.formula}_{c.id}.cif").write_text(structure_to_cif(record.structure))
    plot_uri = None
    if ranked:
        fig, ax = figure(figsize=(7, 3.6))
        values = [
            c.e_above_hull_eV if c.e_above_hull_eV is not None else c.formation_energy_per_atom_eV for c in ranked
        ]
        colors = ["tab:green" if c.family_match else "tab:gray" for c in ranked]
        ax.bar(range(len(ranked)), values, color=colors)
        ax.set_xticks(range(len(ranked)), [f"{c.formula}\n{c.generator[:4]}" for c in ranked], fontsize=7, rotation=45)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylabel("E above local hull (eV/atom)")
        ax.set_title(f"Candidates for: {output.request[:60]}", fontsize=9)
        save(fig, folder / "energy_vs_candidate.png")
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
        f"Reader: {output.reader}; proposer: {output.proposer}; potential: {output.potential}; "
        f"{output.evaluations} relaxations, {output.reused} reused from memory; {output.seconds} s.",
        "",
        "Reading of the request: "
        + ", ".join(f"{k} {v}" for k, v in output.constraints.items() if v not in (None, [], "offline", "llm")),
        "",
    ]
    if output.declined:
        lines += ["## Declined", "", f"Nothing was searched: {output.declined}.", ""]
    if output.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in output.notes] + [""]
    if output.hull_references:
        lines += ["## Hull", ""]
        lines += [
            f"- hull references considered for {system} ({output.potential}): {', '.join(names)}; plus every relaxed "
            f"structure of the system in memory with {output.potential}"
            for system, names in output.hull_references.items()
        ]
        lines += [
            f"- {output.reference_relaxations} reference compounds relaxed by this search (the rest came from the "
            "cache); E_hull is recomputed for every candidate against this final hull, so it reads >= 0 and "
            "polymorphs read relative to the best",
            "",
        ]
    if output.per_formula:
        lines += ["## Answer: the best structure of each formula", ""]
        lines += [
            f"- {c.formula}: {c.id} ({c.spacegroup}, {'requested family' if c.family_match else 'other family'}"
            f"{'' if c.converged else ', relaxation NOT converged'}), E_hull {c.e_above_hull_eV} eV/atom"
            for c in output.per_formula
        ]
        lines += ["", "## Every evaluated structure", ""]
    lines += [
        "Ranked by tiers, then stability: required elements, named formula, family match (when a family is "
        "requested), only the named elements, converged relaxation; then E_hull against the final hull, and on it "
        "the energy below the competing phases (E_hull at evaluation: the value against the hull known then).",
        "",
        "| rank | id | formula | family match | generator | space group | converged | E_hull (eV/atom) | "
        "E_hull at evaluation | E_form (eV/atom) | E (eV/atom) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in ranked:
        flag = " (suspect)" if c.e_hull_suspect else ""
        lines.append(
            f"| {c.rank} | {c.id} | {c.formula} | {'yes' if c.family_match else 'no'} | {c.generator} | "
            f"{c.spacegroup} | {'yes' if c.converged else 'NO'} | {c.e_above_hull_eV}{flag} | "
            f"{c.e_hull_at_evaluation_eV} | {c.formation_energy_per_atom_eV} | {c.energy_per_atom_eV} |"
        )
    lines += ["", "## Search tree", ""]
    for n in output.tree:
        lines.append(
            f"- **{n.formula}** ({n.family}, {n.source}): {n.reason}; {n.evaluations} evaluated, "
            f"best score {n.best_score}; {n.status}; children: {', '.join(n.children) or 'none'}"
        )
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    (folder / "report.json").write_text(
        json.dumps(
            output.model_dump(mode="json") | {"all_candidates": [c.model_dump(mode="json") for c in ranked]}, indent=1
        )
    )
    return output
