"""Crystallization predictor: which polymorph emerges first when an amorphous phase crystallizes.

After Aykol, Merchant, Batzner, Wei and Cubuk (Nature Computational Science 2025): melt-quench an amorphous cell
with a universal potential, cut it into local motifs (subcells on a fractional grid), relax every motif, and
identify what it becomes. By Ostwald's rule of stages the polymorph whose motifs the amorphous phase most readily
relaxes into nucleates first; the ground state by energy is reported beside it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from pydantic import BaseModel, Field, field_validator, model_validator
from pymatgen.core import Composition, Structure

from memory.store import symmetry_of
from tools.core.common import StructureSummary, parse_formula
from tools.core.errors import ToolInputError
from tools.core.executor import Executor, InProcessExecutor, get_executor
from tools.core.executor_tasks import atoms_to_xyz, melt_quench_task, relax_payload, relax_task, xyz_to_atoms
from tools.core.plotting import figure, save
from tools.core.provenance import provenance
from tools.core.registry import DASK, STORE, ToolContext, ToolInput, tool
from tools.crystallization.amorphous import (
    AmorphousReplica,
    MeltQuenchSchedule,
    default_T_high,
    formula_units,
    integer_formula,
    melt_quench,
    pair_distance,
    random_packed_cell,
)
from tools.crystallization.motifs import (
    Candidate,
    Motif,
    ValidityCriteria,
    candidate_polymorphs,
    identify,
    kept_structure,
    merge_relaxed_duplicates,
    primitive_size,
    validity_problems,
)
from tools.crystallization.ranking import Share, rule, size_normalised_shares, within_window
from tools.crystallization.subcells import SubcellGrid, enumerate_subcells, selection_order
from tools.potentials.calculators import elemental_references, get_potential
from tools.potentials.uncertainty import domain_warning, guard_checkpoint
from tools.structures.io import (
    StructureRef,
    atoms_to_structure,
    min_interatomic_distance,
    resolve_structure,
    structure_to_atoms,
    structure_to_cif,
)

WEAK_PREDICTION_FRACTION = 0.25  # a predicted polymorph with a smaller share than this is flagged as weak
MIN_SUPPORT = 3  # ... and one backed by fewer low-energy motifs than this
MOTIF_CHUNK = 8  # motif relaxations handed to the executor at once (the wall-time limit is checked between chunks)
OVERLAP_SKIP_A = 0.5  # subcells whose new periodic images bring atoms closer than this are skipped unrelaxed


class CrystallizationInput(ToolInput):
    """Inputs of predict_crystallization: composition, potential, budget, seed and every schedule parameter."""

    composition: str = Field(min_length=1, max_length=100, description="Formula of the amorphous phase, e.g. 'TiO2'.")
    potential: str | None = Field(
        default=None, max_length=500,
        description="'chgnet', 'sevennet-0' or a matsearch checkpoint path; default: the configured potential.",
    )
    teacher: str | None = Field(
        default=None, max_length=500,
        description="A more accurate potential (e.g. chgnet) that relaxes the candidate polymorphs and re-relaxes the "
        "distinct low-energy motifs before they are identified and ranked, while `potential` (e.g. a distilled "
        "student) runs the melt-quench MD and the bulk of the subcell relaxations. None: `potential` does all.")
    teacher_relaxations: int = Field(
        default=40, ge=1, le=2000, description="Most distinct low-energy motifs the teacher re-relaxes.")
    budget: int = Field(
        default=400, ge=1, le=5000,
        description="Subcell (motif) relaxations to spend, at least 1; the dominant cost with the MD.",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed for packing, MD and subcell selection.")
    n_atoms: int = Field(default=100, ge=2, le=512,
                         description="Atoms per amorphous cell, at least (rounded up to whole formula units).")
    n_replicas: int = Field(default=3, ge=1, le=16, description="Independent melt-quench replicas.")
    density_g_cm3: float | None = Field(
        default=None, gt=0.05, le=30, description="Amorphous density; default: density_fraction x the reference phase."
    )
    density_fraction: float = Field(
        default=0.95, gt=0.3, le=1.5, description="Amorphous density as a fraction of the lowest-energy reference."
    )
    T_high: float | None = Field(
        default=None, gt=300, le=6000, description="Melt temperature, K; default 1.5 x highest elemental melting point."
    )
    T_low: float = Field(default=300.0, gt=0, le=2000, description="Temperature after the quench, K.")
    melt_steps: int = Field(default=1000, ge=0, le=200_000, description="MD steps held at T_high.")
    quench_steps: int = Field(default=2000, ge=1, le=500_000, description="MD steps of the linear cool.")
    hold_steps: int = Field(default=500, ge=0, le=200_000, description="MD steps held at T_low after the quench.")
    timestep_fs: float = Field(default=2.0, gt=0, le=5, description="MD time step, fs.")
    friction_per_fs: float = Field(default=0.01, gt=0, le=1, description="Langevin friction, 1/fs.")
    d_frac: float = Field(default=0.1, ge=0.02, le=1.0, description="Grid spacing (fractional) of subcell bounds: "
                          "0.1 cuts a 100-atom cell into cubic boxes of about 3, 6, 12, 22, 34 and 51 atoms.")
    n_min: int = Field(default=2, ge=1, le=64, description="Fewest atoms in a subcell.")
    n_max: int = Field(default=48, ge=1, le=64, description="Most atoms in a subcell (48 holds most polymorphs' "
                       "conventional cells, as in the paper).")
    cubic_only: bool = Field(default=True, description="Only boxes with equal fractional edges (as in the paper).")
    only_target_composition: bool = Field(default=True, description="Only subcells with the target's element ratios.")
    fmax: float = Field(default=0.05, gt=0.001, le=2.0, description="Relaxation force threshold, eV/A.")
    max_relax_steps: int = Field(default=300, ge=1, le=5000, description="FIRE steps per motif relaxation.")
    energy_window_eV: float | None = Field(
        default=0.15, gt=0, le=5, description="Rank polymorphs among the valid motifs within this energy per atom of "
        "the lowest one (None: all valid motifs).")
    formation_min_eV: float = Field(default=-5.0, ge=-20, le=0, description="Lowest credible formation energy/atom.")
    formation_max_eV: float = Field(default=0.5, ge=-5, le=5, description="Highest accepted formation energy/atom.")
    min_distance_A: float | None = Field(
        default=None, gt=0, le=4, description="Fusion threshold, A; default 0.6 x the smallest covalent pair sum."
    )
    max_reference_relaxations: int = Field(
        default=12, ge=0, le=100, description="Candidate polymorphs relaxed for the ground state and density."
    )
    n_random_candidates: int = Field(default=0, ge=0, le=50, description="Extra pyxtal random candidate crystals.")
    max_wall_s: float | None = Field(default=None, gt=0, description="Stop relaxing motifs after this wall time, s.")
    store: bool = Field(default=True, description="Store the relaxed polymorphs and amorphous cells in memory.")
    uncertainty_guard: bool = Field(default=True, description=(
        "For a potential with a fitted uncertainty (a student from distill_potential or active_learning): report per "
        "melt-quench stage the share of MD frames with an atom outside its calibrated range, and warn when any "
        "left it (as run_md's guard). Ignored, with a note, for potentials without one."))
    precursor: StructureRef | None = Field(
        default=None, description="Your own amorphous cell of the composition: used instead of the melt-quench MD.",
    )

    @field_validator("budget", mode="before")
    @classmethod
    def _budget_positive(cls, value: Any) -> Any:
        """A budget below one relaxation can predict nothing."""
        if isinstance(value, int | float) and value < 1:
            raise ValueError(f"budget must be at least 1 subcell relaxation, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CrystallizationInput:
        """n_min <= n_max and a formation window that is not empty."""
        if self.n_min > self.n_max:
            raise ValueError(f"n_min ({self.n_min}) must not exceed n_max ({self.n_max})")
        if self.formation_min_eV >= self.formation_max_eV:
            raise ValueError("formation_min_eV must be below formation_max_eV")
        return self

    def schedule(self, unit: Composition) -> MeltQuenchSchedule:
        """The melt-quench schedule these inputs describe."""
        return MeltQuenchSchedule(
            T_high=self.T_high or default_T_high(unit), T_low=self.T_low, melt_steps=self.melt_steps,
            quench_steps=self.quench_steps, hold_steps=self.hold_steps, timestep_fs=self.timestep_fs,
            friction_per_fs=self.friction_per_fs,
        )


class PolymorphOutcome(BaseModel):
    """One polymorph (or unidentified motif cluster) among the relaxed motifs."""

    label: str
    source: str = Field(description="memory, prototype, pyxtal-database, pyxtal-random, unidentified or other")
    spacegroup: str
    count: int
    frequency: float = Field(description="Fraction of valid target-composition motifs")
    count_in_window: int = Field(description="Its motifs within energy_window_eV of the lowest motif")
    share: float = Field(description="Size-normalised share in the window: the ranking score (see ranking_rule)")
    rank: int = Field(description="Rank by share: 1 is the predicted first polymorph when identified")
    min_energy_per_atom_eV: float
    min_formation_energy_per_atom_eV: float
    reference_energy_per_atom_eV: float | None = Field(description="The relaxed candidate's energy when relaxed")
    e_above_ground_state_eV: float = Field(description="Lowest energy/atom of this polymorph above the ground state")
    rank_by_frequency: int
    rank_by_energy: int
    structure: StructureSummary | None = Field(default=None, description="Stored lowest-energy motif")


class ReferencePolymorph(BaseModel):
    """A relaxed candidate polymorph (the thermodynamic side of the comparison)."""

    label: str
    source: str
    spacegroup: str
    energy_per_atom_eV: float
    e_above_ground_state_eV: float
    kept_structure: bool = Field(description="False when relaxation turned it into another structure")
    same_as: str | None = Field(None, description="the better-known candidate it relaxed into (same structure and "
                                "energy), which stands for it in the ranking")
    structure: StructureSummary | None = None


class StageGuard(BaseModel):
    """The uncertainty guard's count for one melt-quench stage (over the replicas it is given for)."""

    frames: int = Field(description="MD frames checked")
    fraction_outside: float = Field(description="Share of them with an atom beyond the calibrated uncertainty range")
    max_uncertainty_eV_A: float = Field(description="Largest per-atom force-error estimate among them")


def _pooled(per_replica: list[dict[str, dict[str, float]]]) -> dict[str, StageGuard]:
    """Per stage, the guard's counts over all replicas (shares weighted by frames)."""
    out: dict[str, StageGuard] = {}
    for stages in per_replica:
        for stage, g in stages.items():
            old = out.get(stage, StageGuard(frames=0, fraction_outside=0.0, max_uncertainty_eV_A=0.0))
            frames = old.frames + int(g["frames"])
            outside = old.fraction_outside * old.frames + g["fraction_outside"] * g["frames"]
            out[stage] = StageGuard(frames=frames, fraction_outside=round(outside / max(frames, 1), 4),
                                    max_uncertainty_eV_A=round(max(old.max_uncertainty_eV_A,
                                                                   g["max_uncertainty_eV_A"]), 4))
    return out


class ReplicaSummary(BaseModel):
    """One melt-quench replica."""

    seed: int
    n_atoms: int
    density_g_cm3: float
    final_temperature_K: float | None = Field(description="None for a given precursor")
    final_epot_per_atom_eV: float | None
    n_subcells: int
    wall_time_s: float
    structure_id: str | None = None
    frames_outside_domain: dict[str, StageGuard] | None = Field(
        default=None, description="Uncertainty guard per stage (melt, quench, hold); None when not guarded")


class CrystallizationOutput(BaseModel):
    """The prediction, the counts behind it, and the artifacts."""

    composition: str
    potential: str
    teacher: str | None = Field(default=None, description="The potential that decided energies and identities")
    n_teacher_relaxed: int = Field(default=0, description="Distinct motifs the teacher re-relaxed")
    seed: int
    predicted_first_polymorph: str | None = Field(
        description="The identified polymorph with the largest size-normalised share of low-energy motifs")
    ranking_rule: str = Field(description="How the polymorphs were ranked, in words")
    lowest_energy_motif: str | None = Field(description="Label of the lowest-energy valid motif")
    ground_state: str | None = Field(description="Lowest energy/atom among relaxed candidates and motifs")
    ground_state_energy_per_atom_eV: float | None
    ostwald_differs: bool | None = Field(description="True when the predicted first polymorph is not the ground state")
    polymorphs: list[PolymorphOutcome] = Field(
        description="Ranked by share (rank_by_frequency: raw counts, rank_by_energy: lowest energy, beside it)")
    references: list[ReferencePolymorph]
    replicas: list[ReplicaSummary]
    schedule: dict[str, float]
    n_subcells_total: int
    n_relaxed: int
    n_valid: int
    n_skipped_overlap: int
    rejections: dict[str, int]
    labels_by_size: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="valid motifs per subcell atom count, by polymorph: a box smaller than a "
        "polymorph's smallest cell cannot hold it, so the smallest boxes can decide the overall frequencies")
    budget: int
    wall_time_s: float
    stage_wall_s: dict[str, float] = Field(
        default_factory=dict, description="Seconds per stage: candidates, melt_quench, subcells, motifs, teacher, "
        "identify_rank")
    md_guard: dict[str, StageGuard] | None = Field(
        default=None, description="Uncertainty guard of the melt-quench MD per stage, over all replicas: the share "
        "of frames with an atom outside the potential's calibrated range; None when not guarded (see notes)")
    md_frames_outside_domain_fraction: float | None = Field(
        default=None, description="The same share over every guarded MD frame")
    warnings: list[str] = Field(default_factory=list, description="e.g. MD frames outside the calibrated domain")
    report_uri: str
    json_uri: str
    histogram_uri: str | None
    notes: list[str]


# Single-thread CPU seconds on the 2-core machine (Cu, 2026-12-07; see predict_crystallization's docstring): (MD per
# atom per step, one motif or candidate relaxation on the default grid of 2-48-atom boxes, max_relax_steps=300).
# CHGNet's relaxation figure is the older one for 2-12-atom boxes (not re-measured), SevenNet's is scaled from it by
# the MD ratio; a potential not named here is a matsearch checkpoint (a distilled student), measured as the shipped
# allegro_distilled. IDENTIFY_S: identifying and ranking one relaxed motif (0.4-0.7 s measured).
COST_S = {"chgnet": (3e-3, 4.0), "sevennet-0": (1e-2, 13.0), "emt": (1.0e-4, 1.3)}
STUDENT_COST_S = (9e-4, 4.0)
IDENTIFY_S = 0.6


def _cost(potential: str | None) -> tuple[float, float]:
    """(MD seconds per atom per step, seconds per relaxation) of a potential (CHGNet when not given)."""
    return COST_S.get((potential or "chgnet").lower(), STUDENT_COST_S)


def _estimate(inp: CrystallizationInput) -> float:
    """Seconds on 2 CPU cores: the melt-quench MD and the subcell relaxations with `potential`, the candidates and
    the re-relaxed motifs with the teacher (or `potential`), at the COST_S rates, and their identification."""
    md_s, relax_s = _cost(inp.potential)
    decider_s = _cost(inp.teacher or inp.potential)[1]
    steps = inp.melt_steps + inp.quench_steps + inp.hold_steps
    md = 0.0 if inp.precursor else inp.n_replicas * steps * md_s * inp.n_atoms
    scale = min(1.0, inp.max_relax_steps / 300)
    teacher = decider_s * inp.teacher_relaxations if inp.teacher else 0.0
    relaxations = scale * (relax_s * inp.budget + teacher + decider_s * inp.max_reference_relaxations)
    return 20.0 + md + relaxations + IDENTIFY_S * inp.budget


def _finite(value: float, digits: int) -> float | None:
    """Rounded value, or None when it is not a number (JSON has no NaN)."""
    return round(value, digits) if np.isfinite(value) else None


def _reason(problem: str) -> str:
    """Group rejection messages by their kind."""
    return problem.split(" (")[0].split(":")[0].split(" -")[0].split(" outside")[0].split(" [")[0]


def _fallback_volume_per_atom(unit: Composition) -> float:
    """A rough volume per atom from covalent radii (packing fraction 0.34, as in diamond)."""
    from ase.data import atomic_numbers, covalent_radii

    vol = sum(amount * 4.19 * covalent_radii[atomic_numbers[el.symbol]] ** 3 for el, amount in unit.items())
    return float(vol / unit.num_atoms / 0.34)


@dataclass
class _Run:
    """One prediction's shared state: its inputs, formula unit, potential and schedule, the executor, the notes
    for the report, and the progress count (one unit per candidate relaxation, `md_units` per melt-quench replica,
    one per motif relaxation)."""

    inp: CrystallizationInput
    ctx: ToolContext
    unit: Composition
    potential: str
    calc: Any
    refs: Any
    schedule: MeltQuenchSchedule
    params: dict[str, Any]
    start: float
    notes: list[str] = field(default_factory=list)
    executor: Executor = field(default_factory=InProcessExecutor)
    md_units: int = 1
    total: float = 0.0
    done: float = 0.0
    guard: Path | None = None  # the checkpoint whose uncertainty guards the melt-quench MD
    stage_s: dict[str, float] = field(default_factory=dict)
    clock: float = 0.0

    def lap(self, stage: str) -> None:
        """Book the seconds since the last lap to `stage`."""
        now = time.perf_counter()
        self.stage_s[stage] = round(self.stage_s.get(stage, 0.0) + now - (self.clock or self.start), 2)
        self.clock = now

    @property
    def teacher(self) -> str | None:
        """The potential that re-relaxes and decides, if the inputs name one."""
        return self.inp.teacher

    @property
    def decider(self) -> str:
        """The potential whose energies decide: the teacher when there is one."""
        return self.teacher or self.potential

    def payload(self, structure: Structure, potential: str | None = None) -> dict[str, Any]:
        """A relaxation task for the executor, with this run's (or the given) potential and relaxation settings."""
        return relax_payload(structure, potential or self.potential, self.inp.fmax, self.inp.max_relax_steps,
                             self.ctx.settings.device, str(self.ctx.workspace))

    def progress(self, done: float, message: str) -> None:
        """Report `done` of the run's total progress units."""
        self.ctx.progress(done, self.total, message)


@tool(cost="long", reaches=(DASK, STORE), estimate=_estimate)
def predict_crystallization(inp: CrystallizationInput, ctx: ToolContext) -> CrystallizationOutput:
    """Predict which crystal polymorph forms first when the amorphous phase of a composition is annealed
    (Ostwald's rule of stages, after Aykol et al., Nat. Comput. Sci. 2025). Melt-quench MD with an interatomic
    potential makes amorphous cells (n_replicas, schedule T_high/melt_steps/quench_steps/hold_steps); every small
    box on a fractional grid (d_frac, n_min..n_max atoms) becomes a periodic motif that is relaxed (FIRE + cell
    filter, at most `budget` relaxations), checked for physical validity, and matched against candidate polymorphs
    from memory, AFLOW prototypes and pyxtal. Returns the most frequent polymorph (the predicted first to
    nucleate), the lowest-energy motif and the ground state by energy, every polymorph ranked by frequency and by
    energy, a Markdown/JSON report and a histogram; relaxed polymorphs are stored in memory. Slow: run it as a job.

    Defaults follow the paper's scale: 3 replicas of >= 100-atom cells (1000 melt + 2000 quench + 500 hold steps of
    2 fs), subcells of 2-48 atoms on a 0.1 grid, 400 relaxations. Measured on Cu, single-thread, on the 2-core
    machine while other jobs shared it (load 5-8; wall ~3-4x the CPU time), CPU seconds per stage:
    EMT at these defaults, 913 s in all (2803 s wall): candidates 10, melt-quench 106 (3 replicas), subcells 0.2,
    motif relaxations 534 (1.3 s each), identify and rank 265. The shipped allegro_distilled (a distilled student)
    with a CHGNet teacher, 1 replica and 60 relaxations: candidates 17, melt-quench 316 per replica (9e-4 s per atom
    per step), motif relaxations 3.95 s each, identify and rank 0.4 s each. Scaled to these defaults a student run
    is about 950 s of MD + 1580 s of relaxations + ~250 s of identification + the teacher's 40 re-relaxations:
    about 50 min on 2 unloaded cores (the job's estimate, from these rates: 3013 s). CHGNet alone (3e-3 s per atom
    per MD step) is estimated at 85 min: pass n_replicas, n_atoms, budget or max_wall_s to shorten a run."""
    run = _start(inp, ctx)
    candidates = candidate_polymorphs(run.unit, ctx.store, inp.n_random_candidates, int(inp.seed), notes=run.notes)
    to_relax = _plan(run, candidates)
    reference = _relax_candidates(run, candidates, to_relax)
    volume_per_atom = _amorphous_volume_per_atom(run, reference)
    run.lap("candidates")
    replicas, replica_ids = _amorphous_replicas(run, volume_per_atom)
    run.lap("melt_quench")
    subcells = _select_subcells(run, replicas)
    run.lap("subcells")
    motifs = _relax_motifs(run, subcells.picked)
    run.lap("motifs")
    n_teacher = _teacher_rerelax(run, motifs) if run.teacher else 0
    run.lap("teacher")
    identify(motifs, candidates, run.unit)
    result = _result(run, candidates, motifs, replicas, replica_ids, subcells)
    result.teacher, result.n_teacher_relaxed = run.teacher, n_teacher
    ctx.progress(run.total, run.total, "writing report")
    run.lap("identify_rank")
    result.stage_wall_s = run.stage_s
    return _write_artifacts(result, motifs, candidates, ctx)


def _start(inp: CrystallizationInput, ctx: ToolContext) -> _Run:
    """Check that a formula unit fits in a motif; load the potential, its elemental references and schedule."""
    start = time.perf_counter()
    unit = integer_formula(parse_formula(inp.composition), inp.n_atoms)
    if inp.only_target_composition and unit.num_atoms > inp.n_max:
        raise ToolInputError(
            f"impossible stoichiometry for the motifs: a {unit.reduced_formula} formula unit has "
            f"{int(unit.num_atoms)} atoms, more than n_max={inp.n_max}; raise n_max or set only_target_composition "
            "to false"
        )
    potential = inp.potential or ctx.settings.potential
    calc = get_potential(potential, ctx.settings)
    if inp.teacher:
        get_potential(inp.teacher, ctx.settings)  # a bad teacher name is refused before any MD
    refs = elemental_references(inp.teacher or potential, ctx.settings)
    run = _Run(inp=inp, ctx=ctx, unit=unit, potential=potential, calc=calc, refs=refs, schedule=inp.schedule(unit),
               params=inp.model_dump(exclude={"store"}), start=start)
    if inp.uncertainty_guard and inp.precursor is None:
        try:  # run_md's condition: a matsearch checkpoint with a fitted uncertainty
            run.guard = guard_checkpoint(potential, ctx.workspace)
        except ToolInputError as exc:
            run.notes.append(f"uncertainty_guard ignored for the melt-quench MD: {exc}")
    return run


def _plan(run: _Run, candidates: list[Candidate]) -> list[Candidate]:
    """Pick the candidates to relax (by priority), count the progress units and open the executor."""
    inp = run.inp
    run.md_units = max(1, run.schedule.total_steps // 50)
    to_relax = sorted(candidates, key=lambda c: c.priority)[: inp.max_reference_relaxations]
    run.total = (len(to_relax) + (0 if inp.precursor else inp.n_replicas * run.md_units) + inp.budget
                 + (inp.teacher_relaxations if inp.teacher else 0))
    run.progress(0, f"relaxing {len(to_relax)} candidate polymorphs of {run.unit.reduced_formula}")
    run.executor = get_executor(run.ctx.settings)
    return to_relax


def _relax_candidates(run: _Run, candidates: list[Candidate], to_relax: list[Candidate]) -> Candidate | None:
    """Relax the candidate polymorphs; return the lowest-energy one that kept its structure."""
    relaxed_refs = run.executor.map(
        relax_task, [run.payload(c.structure, run.decider) for c in to_relax], cancel=run.ctx.cancel_event,
        progress=lambda n, _t, _: run.progress(run.done + n, f"relaxed candidate {to_relax[n - 1].label}"),
    )
    for cand, res in zip(to_relax, relaxed_refs, strict=True):
        if np.isfinite(res["energy"]):
            cand.relaxed = Structure.from_str(res["cif"], fmt="cif")
            cand.energy_per_atom = res["energy"] / len(cand.relaxed)
            cand.converged = bool(res["converged"])
            cand.kept = kept_structure(cand)
    if merged := merge_relaxed_duplicates(candidates):
        run.notes.append(f"{merged} candidate(s) relaxed into a better-known candidate and carry its name")
    run.done += len(to_relax)
    kept = [c for c in candidates if c.kept]
    return min(kept, key=lambda c: c.energy_per_atom or np.inf, default=None)


def _amorphous_volume_per_atom(run: _Run, reference: Candidate | None) -> float:
    """Amorphous volume per atom: given density, else density_fraction x the reference, else a guess."""
    inp, unit = run.inp, run.unit
    if inp.density_g_cm3 is not None:
        mass = sum(el.atomic_mass * amount for el, amount in unit.items())
        return float(mass / unit.num_atoms / inp.density_g_cm3 * 1.66053906660)
    if reference is not None and reference.relaxed is not None:
        run.notes.append(f"amorphous density {inp.density_fraction:g} x relaxed {reference.label}")
        return reference.relaxed.volume / len(reference.relaxed) / inp.density_fraction
    run.notes.append("no relaxed reference phase: density guessed from covalent radii")
    return _fallback_volume_per_atom(unit)


def _amorphous_replicas(run: _Run, volume_per_atom: float) -> tuple[list[AmorphousReplica], list[str | None]]:
    """The amorphous cells (the precursor, or packed cells melt-quenched), stored, with their ids."""
    inp, ctx, unit, seed = run.inp, run.ctx, run.unit, int(run.inp.seed)
    n_units = formula_units(unit, inp.n_atoms)
    replicas: list[AmorphousReplica] = []
    replica_ids: list[str | None] = []
    if inp.precursor is not None:
        given = resolve_structure(inp.precursor, ctx.store, ctx.settings.max_atoms)
        if given.composition.reduced_formula != unit.reduced_formula:
            raise ToolInputError(f"the precursor is {given.composition.reduced_formula}, not {unit.reduced_formula}")
        replicas.append(AmorphousReplica(structure_to_atoms(given), seed, float("nan"), float("nan"),
                                         float(given.density), 0.0))
        replica_ids.append(inp.precursor.id)
        run.notes.append("amorphous cell given as precursor: no melt-quench MD")
    n_md = 0 if inp.precursor is not None else inp.n_replicas
    packed_cells = [random_packed_cell(unit, n_units, volume_per_atom, seed=seed * 1009 + k) for k in range(n_md)]
    for k, rep in enumerate(_melt_quench(run, packed_cells)):
        replicas.append(rep)
        run.done += run.md_units
        rid = None
        if inp.store:
            rid = ctx.store.add(
                atoms_to_structure(rep.atoms),
                provenance=provenance("predict_crystallization", {**run.params, "replica": k}),
                properties={"amorphous": True, "potential": run.potential, "seed": rep.seed,
                            "quench_rate_K_per_ps": run.schedule.quench_rate_K_per_ps()},
                tags=["amorphous", "crystallization"],
            ).id
        replica_ids.append(rid)
    return replicas, replica_ids


def _melt_quench(run: _Run, packed_cells: list[Atoms]) -> list[AmorphousReplica]:
    """Melt-quench packed cells on the executor's workers, or in this process with per-step progress."""
    seed, done, md_units = int(run.inp.seed), run.done, run.md_units
    if packed_cells and run.executor.name != "in-process":
        payloads = [{"start": atoms_to_xyz([cell]), "potential": run.potential, "schedule": asdict(run.schedule),
                     "seed": seed * 1009 + k, "device": run.ctx.settings.device,
                     "workspace": str(run.ctx.workspace), "guard": None if run.guard is None else str(run.guard)}
                    for k, cell in enumerate(packed_cells)]
        runs = run.executor.map(
            melt_quench_task, payloads, cancel=run.ctx.cancel_event,
            progress=lambda n, t, _: run.progress(done + md_units * n, f"replica {n}/{t} quenched"),
        )
        return [AmorphousReplica(xyz_to_atoms(r["atoms"])[0], r["seed"], r["final_temperature_K"],
                                 r["final_epot_per_atom"], r["density_g_cm3"], r["wall_time_s"],
                                 r.get("outside_by_stage"), r.get("stage_wall_s", {})) for r in runs]
    quenched = []
    for k, cell in enumerate(packed_cells):
        def md_progress(step: float, steps: float | None, message: str | None, base: float = done + md_units * k,
                        k: int = k) -> None:
            run.progress(base + md_units * step / max(steps or 1, 1), f"replica {k + 1}: {message or ''}")

        quenched.append(melt_quench(cell, run.calc, run.potential, run.schedule, seed=seed * 1009 + k,
                                    progress=md_progress, guard=run.guard))
    return quenched


@dataclass
class _Subcells:
    """The subcells cut from the amorphous replicas and those picked for relaxation."""

    grids: list[SubcellGrid]  # one per replica
    n_total: int
    picked: list[tuple[int, Structure]]  # (replica, subcell), in the seeded order, at most `budget`
    skipped_overlap: int  # subcells left out because their periodic images overlap


def _select_subcells(run: _Run, replicas: list[AmorphousReplica]) -> _Subcells:
    """Cut the replicas into grid subcells; pick up to `budget` in seeded order, skipping overlaps."""
    inp, unit = run.inp, run.unit
    target = unit if inp.only_target_composition else None
    grids = [enumerate_subcells(r.atoms, inp.d_frac, inp.n_min, inp.n_max, inp.cubic_only, target) for r in replicas]
    pool = [(k, i) for k, grid in enumerate(grids) for i in range(len(grid))]
    order = selection_order(len(pool), int(inp.seed))
    if not pool:
        raise ToolInputError(
            f"no subcell of the amorphous cells has {inp.n_min}-{inp.n_max} atoms"
            + (f" in the ratio of {unit.reduced_formula}" if target else "")
            + ": use a smaller d_frac, a wider [n_min, n_max] or more atoms"
        )
    skipped = 0
    picked: list[tuple[int, Structure]] = []
    for position in order:
        if len(picked) >= inp.budget:
            break
        k, i = pool[int(position)]
        sub = grids[k].structure(i)
        if len(sub) > 1 and min_interatomic_distance(sub) < OVERLAP_SKIP_A:
            skipped += 1
            continue
        picked.append((k, sub))
    return _Subcells(grids, len(pool), picked, skipped)


def _criteria(inp: CrystallizationInput, unit: Composition) -> ValidityCriteria:
    """What makes a relaxed motif physical, for these inputs."""
    pairs = [(a.symbol, b.symbol) for a in unit.elements for b in unit.elements]
    return ValidityCriteria(
        formation_min_eV=inp.formation_min_eV, formation_max_eV=inp.formation_max_eV,
        min_distance_A=inp.min_distance_A or 0.6 * min(pair_distance(a, b) for a, b in pairs),
    )


def _judged(res: dict[str, Any], start: Structure, refs: Any, criteria: ValidityCriteria) -> dict[str, Any]:
    """A relaxation result as Motif fields: structure, energies, symmetry and validity problems. A relaxation that
    diverged (non-finite energy, a cell that no longer reads back) is a motif with that problem, on its start."""
    n_atoms = len(start)
    try:
        relaxed = Structure.from_str(res["cif"], fmt="cif")
        finite = bool(np.isfinite(res["energy"]) and np.isfinite(relaxed.lattice.matrix).all())
    except Exception:  # noqa: BLE001 - an unreadable result is a diverged relaxation, judged as such
        relaxed, finite = start, False
    if not finite or len(relaxed) != n_atoms:
        return {"initial_energy": res["initial_energy"], "energy": float("nan"), "energy_per_atom": float("nan"),
                "formation_energy_per_atom": float("nan"), "steps": res["steps"], "converged": False,
                "structure": start, "spacegroup": "P1", "spacegroup_number": 1,
                "problems": ["non-finite energy (the relaxation diverged)"]}
    form = float(refs.formation_energy_per_atom(relaxed, res["energy"]))
    dmin = min_interatomic_distance(relaxed) if len(relaxed) > 1 else float(min(relaxed.lattice.abc))
    sym, num, _ = symmetry_of(relaxed)
    return {"initial_energy": res["initial_energy"], "energy": res["energy"],
            "energy_per_atom": res["energy"] / n_atoms, "formation_energy_per_atom": form, "steps": res["steps"],
            "converged": res["converged"], "structure": relaxed, "spacegroup": sym, "spacegroup_number": num,
            "problems": validity_problems(res["initial_energy"], res["energy"], form, dmin, criteria)}


def _teacher_rerelax(run: _Run, motifs: list[Motif]) -> int:
    """Re-relax the distinct valid motifs within twice the energy window of the lowest (student energies) with the
    teacher, lowest first, at most teacher_relaxations; motifs the student found identical (same size, space group
    and energy to 1 meV/atom) take their representative's result. Returns the number of teacher relaxations."""
    inp = run.inp
    window = None if inp.energy_window_eV is None else 2 * inp.energy_window_eV
    low = sorted(within_window([m for m in motifs if m.valid], window), key=lambda m: m.energy_per_atom)
    groups: dict[tuple[int, int, float], list[Motif]] = {}
    for m in low:
        groups.setdefault((m.n_atoms, m.spacegroup_number, round(m.energy_per_atom, 3)), []).append(m)
    chosen = list(groups.values())[: inp.teacher_relaxations]
    if len(groups) > len(chosen):
        run.notes.append(f"the teacher re-relaxed {len(chosen)} of {len(groups)} distinct low-energy motifs "
                         "(teacher_relaxations)")
    results = run.executor.map(
        relax_task, [run.payload(group[0].structure, run.decider) for group in chosen], cancel=run.ctx.cancel_event,
        progress=lambda n, t, _, d=run.done: run.progress(d + n, f"teacher re-relaxed motif {n}/{t}"),
    )
    criteria = _criteria(inp, run.unit)
    for group, res in zip(chosen, results, strict=True):
        fields = _judged(res, group[0].structure, run.refs, criteria)
        for m in group:
            for key, value in fields.items():
                setattr(m, key, value)
            m.relaxed_by = "teacher"
    run.done += inp.teacher_relaxations
    return len(chosen)


def _relax_motifs(run: _Run, selected: list[tuple[int, Structure]]) -> list[Motif]:
    """Relax the picked subcells as motifs, MOTIF_CHUNK at a time until max_wall_s; judge validity."""
    inp = run.inp
    criteria = _criteria(inp, run.unit)
    refs = elemental_references(run.potential, run.ctx.settings) if run.teacher else run.refs
    motifs: list[Motif] = []
    for first in range(0, len(selected), MOTIF_CHUNK):
        if inp.max_wall_s is not None and time.perf_counter() - run.start > inp.max_wall_s:
            run.notes.append(f"stopped after {len(motifs)} relaxations: max_wall_s reached")
            break
        chunk = selected[first:first + MOTIF_CHUNK]
        results = run.executor.map(
            relax_task, [run.payload(sub) for _, sub in chunk], cancel=run.ctx.cancel_event,
            progress=lambda n, _t, _, d=run.done: run.progress(d + n, f"motif {len(motifs) + n}/{inp.budget} relaxed"),
        )
        for (k, sub), res in zip(chunk, results, strict=True):
            motifs.append(Motif(index=len(motifs), replica=k, n_atoms=len(sub),
                                **_judged(res, sub, refs, criteria)))
            run.done += 1
        last = motifs[-1]
        message = f"motif {len(motifs)}/{inp.budget}: {last.spacegroup}, {last.energy_per_atom:.3f} eV/atom"
        run.progress(run.done, message)
    return motifs


def _result(
    run: _Run, candidates: list[Candidate], motifs: list[Motif], replicas: list[AmorphousReplica],
    replica_ids: list[str | None], subcells: _Subcells,
) -> CrystallizationOutput:
    """Rank the polymorphs by motif frequency and by energy; gather the counts behind the prediction."""
    inp = run.inp
    out = _rank(inp, run.ctx, run.unit, run.decider, candidates, motifs, replica_ids, run.params)
    rejections = Counter(_reason(p) for m in motifs for p in m.problems[:1])
    guarded = [r.outside_by_stage for r in replicas if r.outside_by_stage is not None]
    md_guard = _pooled(guarded) if guarded else None
    warnings = [w for stage, g in (md_guard or {}).items()
                if (w := domain_warning(run.potential, g.fraction_outside, f"the {stage} frames of the melt-quench"))]
    n_guarded = sum(g.frames for g in (md_guard or {}).values())
    overall = (None if md_guard is None else
               round(sum(g.fraction_outside * g.frames for g in md_guard.values()) / max(n_guarded, 1), 4))
    return CrystallizationOutput(
        composition=run.unit.reduced_formula, potential=run.potential, seed=inp.seed,
        schedule=run.schedule.as_dict(),
        replicas=[
            ReplicaSummary(seed=r.seed, n_atoms=len(r.atoms), density_g_cm3=round(r.density_g_cm3, 4),
                           final_temperature_K=_finite(r.final_temperature_K, 1),
                           final_epot_per_atom_eV=_finite(r.final_epot_per_atom, 5), n_subcells=len(g),
                           wall_time_s=round(r.wall_time_s, 2), structure_id=rid,
                           frames_outside_domain=None if r.outside_by_stage is None else _pooled([r.outside_by_stage]))
            for r, g, rid in zip(replicas, subcells.grids, replica_ids, strict=True)
        ],
        n_subcells_total=subcells.n_total, n_relaxed=len(motifs), n_valid=sum(m.valid for m in motifs),
        n_skipped_overlap=subcells.skipped_overlap, rejections=dict(rejections), labels_by_size=_labels_by_size(motifs),
        budget=inp.budget, md_guard=md_guard, md_frames_outside_domain_fraction=overall, warnings=warnings,
        wall_time_s=round(time.perf_counter() - run.start, 2), report_uri="", json_uri="", histogram_uri=None,
        notes=run.notes + out.pop("notes"), **out,
    )


def _labels_by_size(motifs: list[Motif]) -> dict[str, dict[str, int]]:
    """Valid motifs counted per subcell size (atoms) and label, most frequent first."""
    out: dict[str, dict[str, int]] = {}
    for n in sorted({m.n_atoms for m in motifs if m.valid}):
        counts = Counter(m.label or "?" for m in motifs if m.valid and m.n_atoms == n)
        out[str(n)] = dict(counts.most_common())
    return out


def _rank(
    inp: CrystallizationInput, ctx: ToolContext, unit: Composition, potential: str, candidates: list[Candidate],
    motifs: list[Motif], replica_ids: list[str | None], params: dict[str, Any],
) -> dict[str, Any]:
    """Polymorph frequencies and energies, the ground state, and the stored structures."""
    groups, on_target = _motif_groups(inp, motifs)
    ground, e0 = _ground_state(candidates, groups)
    store = _PolymorphStore(ctx, potential, params) if inp.store else None
    shares = _shares(inp, candidates, groups, on_target)
    polymorphs = _polymorph_outcomes(candidates, groups, on_target, shares, e0, replica_ids, store)
    references = _reference_outcomes(candidates, e0, store)
    predicted, notes = _prediction(polymorphs, shares)
    lowest = min(on_target, key=lambda m: m.energy_per_atom).label if on_target else None
    return {
        "predicted_first_polymorph": predicted, "lowest_energy_motif": lowest, "ground_state": ground,
        "ground_state_energy_per_atom_eV": None if e0 is None else round(e0, 6),
        "ostwald_differs": None if predicted is None or ground is None else predicted != ground,
        "ranking_rule": rule(inp.energy_window_eV),
        "polymorphs": polymorphs, "references": references, "notes": notes,
    }


def _motif_groups(inp: CrystallizationInput, motifs: list[Motif]) -> tuple[dict[str, list[Motif]], list[Motif]]:
    """The valid on-composition motifs grouped by label, and all of them; with a teacher only the teacher-relaxed
    ones count, so every energy compared comes from one potential."""
    decided = [m for m in motifs if not inp.teacher or m.relaxed_by == "teacher"]  # one potential's energies
    on_target = [m for m in decided if m.valid and m.source != "other"]
    groups: dict[str, list[Motif]] = {}
    for m in on_target:
        groups.setdefault(m.label or "?", []).append(m)
    return groups, on_target


def _ground_state(candidates: list[Candidate], groups: dict[str, list[Motif]]) -> tuple[str | None, float | None]:
    """The lowest-energy label and its energy per atom, over the relaxed candidates that kept their structure (and
    are nobody's duplicate) and the motif groups themselves: the thermodynamic side of the comparison."""
    energies: dict[str, float] = {}
    for cand in candidates:
        if cand.energy_per_atom is not None and cand.kept and cand.same_as is None:
            energies[cand.label] = cand.energy_per_atom
    for label, group in groups.items():
        energies[label] = min(energies.get(label, np.inf), min(m.energy_per_atom for m in group))
    ground = min(energies, key=lambda k: energies[k]) if energies else None
    return ground, energies[ground] if ground else None


@dataclass
class _PolymorphStore:
    """Stores a relaxed polymorph in memory with its energies and provenance (the call's parameters), so the
    outcome's structures can be looked up and reused."""

    ctx: ToolContext
    potential: str
    params: dict[str, Any]

    def __call__(
        self, structure: Structure, energy: float, props: dict[str, Any], parents: list[str | None]
    ) -> StructureSummary:
        """Store one structure with these extra properties and parents; its summary as stored."""
        refs = elemental_references(self.potential, self.ctx.settings)
        form = refs.formation_energy_per_atom(structure, energy)
        stored = self.ctx.store.add(
            structure,
            provenance=provenance("predict_crystallization", self.params, parents),
            energy=energy,
            properties={"relaxed": True, "potential": self.potential, "energy_eV": round(energy, 6),
                        "energy_per_atom_eV": round(energy / len(structure), 6),
                        "formation_energy_per_atom_eV": round(float(form), 6), **props},
            tags=["relaxed", "crystallization"],
        )
        return StructureSummary.from_record(self.ctx.store.get(stored.id))


def _shares(
    inp: CrystallizationInput, candidates: list[Candidate], groups: dict[str, list[Motif]], on_target: list[Motif]
) -> dict[str, Share]:
    """Each label's size-normalised share of the motifs within the energy window (the ranking rule's vote), with a
    known polymorph's primitive cell from its candidate and an unidentified cluster's from its smallest motif."""
    primitive = {c.label: c.n_primitive for c in candidates if c.label in groups}
    for label, group in groups.items():
        primitive.setdefault(label, min(primitive_size(m.structure) for m in group))
    return size_normalised_shares(within_window(on_target, inp.energy_window_eV), primitive)


def _polymorph_outcomes(
    candidates: list[Candidate], groups: dict[str, list[Motif]], on_target: list[Motif], shares: dict[str, Share],
    e0: float | None, replica_ids: list[str | None], store: _PolymorphStore | None,
) -> list[PolymorphOutcome]:
    """One outcome per motif group, ranked by share (then lowest energy, then label), with its ranks by frequency
    and by energy beside it; the group's lowest motif is stored when `store` is given."""
    def lowest(k: str) -> float:
        return min(m.energy_per_atom for m in groups[k])

    by_freq = sorted(groups, key=lambda k: (-len(groups[k]), lowest(k), k))
    by_energy = sorted(groups, key=lambda k: (lowest(k), k))
    none = Share("", 0.0, 0)
    by_share = sorted(groups, key=lambda k: (-shares.get(k, none).share, lowest(k), k))
    ref_energy = {c.label: c.energy_per_atom for c in candidates if c.energy_per_atom is not None}
    polymorphs = []
    for rank, label in enumerate(by_share, start=1):
        group = groups[label]
        best = min(group, key=lambda m: m.energy_per_atom)
        share = shares.get(label, none)
        summary = None
        if store is not None:
            parents = [replica_ids[best.replica]]
            summary = store(best.structure, best.energy,
                            {"crystallization_label": label, "motif_count": len(group),
                             "motif_frequency": round(len(group) / len(on_target), 4),
                             "motif_share": round(share.share, 4)}, parents)
        polymorphs.append(PolymorphOutcome(
            label=label, source=best.source or "unidentified", spacegroup=best.spacegroup, count=len(group),
            frequency=round(len(group) / len(on_target), 4), count_in_window=share.in_window,
            share=round(share.share, 4), rank=rank,
            min_energy_per_atom_eV=round(best.energy_per_atom, 6),
            min_formation_energy_per_atom_eV=round(min(m.formation_energy_per_atom for m in group), 6),
            reference_energy_per_atom_eV=None if ref_energy.get(label) is None else round(ref_energy[label], 6),
            e_above_ground_state_eV=round(best.energy_per_atom - (e0 or 0.0), 6),
            rank_by_frequency=by_freq.index(label) + 1, rank_by_energy=by_energy.index(label) + 1,
            structure=summary,
        ))
    return polymorphs


def _reference_outcomes(
    candidates: list[Candidate], e0: float | None, store: _PolymorphStore | None
) -> list[ReferencePolymorph]:
    """The relaxed candidate polymorphs, lowest energy first, each stored when `store` is given: the reference
    energies the motifs are compared against."""
    references = []
    for cand in candidates:
        if cand.energy_per_atom is None or cand.relaxed is None:
            continue
        kept = cand.kept
        summary = None
        if store is not None:
            parents = [cand.memory_id]
            summary = store(cand.relaxed, cand.energy_per_atom * len(cand.relaxed),
                            {"crystallization_reference": cand.label, "kept_structure": kept}, parents)
        references.append(ReferencePolymorph(
            label=cand.label, source=cand.source, spacegroup=symmetry_of(cand.relaxed)[0],
            energy_per_atom_eV=round(cand.energy_per_atom, 6),
            e_above_ground_state_eV=round(cand.energy_per_atom - (e0 or 0.0), 6), kept_structure=kept,
            same_as=cand.same_as, structure=summary,
        ))
    references.sort(key=lambda r: r.energy_per_atom_eV)
    return references


def _prediction(polymorphs: list[PolymorphOutcome], shares: dict[str, Share]) -> tuple[str | None, list[str]]:
    """The predicted first polymorph (the top-ranked identified one with a share) and notes when there is none or
    it rests on too few motifs, so a weak answer says so."""
    notes: list[str] = []
    identified = [p for p in polymorphs if p.source not in ("unidentified", "other") and p.share > 0]
    predicted = identified[0].label if identified else None
    if predicted is None:
        notes.append("no valid low-energy motif matched a known polymorph: raise the budget, n_max or the MD length")
    elif identified[0].count_in_window < MIN_SUPPORT or identified[0].share < WEAK_PREDICTION_FRACTION:
        top = identified[0]
        n_sizes = len(shares[top.label].sizes)
        notes.append(f"the prediction rests on {top.count_in_window} low-energy motif(s) in {n_sizes} subcell size(s), "
                     f"share {top.share:.2f}: treat it as weak (see the motifs by subcell size)")
    return predicted, notes


def _write_artifacts(
    result: CrystallizationOutput, motifs: list[Motif], candidates: list[Candidate], ctx: ToolContext
) -> CrystallizationOutput:
    """report.md, report.json (with every motif and candidate, structures as CIF, so identification can be redone
    offline) and histogram.png under the call's artifact directory."""
    folder = ctx.artifact_dir()
    hist = _histogram(result, folder / "histogram.png")
    result.histogram_uri = ctx.artifact_uri(hist) if hist else None
    json_path, md_path = folder / "report.json", folder / "report.md"
    result.report_uri, result.json_uri = ctx.artifact_uri(md_path), ctx.artifact_uri(json_path)
    motif_rows = [
        {"index": m.index, "replica": m.replica, "n_atoms": m.n_atoms, "label": m.label, "spacegroup": m.spacegroup,
         "initial_energy_eV": round(m.initial_energy, 6), "energy_eV": round(m.energy, 6),
         "energy_per_atom_eV": round(m.energy_per_atom, 6),
         "formation_energy_per_atom_eV": round(m.formation_energy_per_atom, 6), "steps": m.steps,
         "converged": m.converged, "valid": m.valid, "problems": m.problems, "cif": structure_to_cif(m.structure)}
        for m in motifs
    ]
    candidate_rows = [
        {"label": c.label, "source": c.source, "priority": c.priority, "space_group": c.space_group,
         "n_primitive": c.n_primitive, "energy_per_atom_eV": c.energy_per_atom, "converged": c.converged,
         "kept": c.kept, "same_as": c.same_as, "cif": structure_to_cif(c.structure),
         "relaxed_cif": None if c.relaxed is None else structure_to_cif(c.relaxed)}
        for c in candidates
    ]
    json_path.write_text(json.dumps({**result.model_dump(mode="json"), "motifs": motif_rows,
                                     "candidates": candidate_rows}, indent=1))
    md_path.write_text(_markdown(result))
    return result


def _markdown(r: CrystallizationOutput) -> str:
    """The human-readable report."""
    lines = [
        f"# Crystallization of amorphous {r.composition} ({r.potential})", "",
        "- Predicted first polymorph: "
        f"**{r.predicted_first_polymorph or 'none (no motif matched a known polymorph)'}**",
        f"- Ranked by: {r.ranking_rule}",
        *([f"- Decided by the teacher {r.teacher}: it relaxed the candidates and re-relaxed {r.n_teacher_relaxed} "
           f"distinct low-energy motifs; {r.potential} ran the MD and the other relaxations"] if r.teacher else []),
        f"- Lowest-energy motif: {r.lowest_energy_motif}",
        f"- Ground state by energy: {r.ground_state} ({r.ground_state_energy_per_atom_eV} eV/atom)",
        "- Ostwald's rule differs from thermodynamics: "
        f"{'unknown (no prediction)' if r.ostwald_differs is None else r.ostwald_differs}",
        f"- Motifs: {r.n_subcells_total} subcells, {r.n_relaxed} relaxed (budget {r.budget}), {r.n_valid} valid, "
        f"{r.n_skipped_overlap} skipped for overlaps; rejections: {r.rejections or 'none'}",
        f"- Schedule: {r.schedule}", f"- Wall time: {r.wall_time_s} s (per stage: {r.stage_wall_s})",
        *([f"- Uncertainty guard of the melt-quench ({r.potential}), share of frames outside its calibrated range: "
           + ", ".join(f"{stage} {g.fraction_outside:.2f} of {g.frames}" for stage, g in r.md_guard.items())]
          if r.md_guard is not None else []),
        *[f"- **Warning:** {w}" for w in r.warnings], "",
        "## Polymorphs among motifs", "",
        "| rank | share | in window | rank (count) | rank (energy) | polymorph | space group | count | frequency | "
        "min E (eV/atom) | E - E_gs (eV/atom) | stored |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in r.polymorphs:
        lines.append(
            f"| {p.rank} | {p.share:.3f} | {p.count_in_window} | {p.rank_by_frequency} | {p.rank_by_energy} | "
            f"{p.label} | {p.spacegroup} | {p.count} | "
            f"{p.frequency:.3f} | {p.min_energy_per_atom_eV:.4f} | {p.e_above_ground_state_eV:.4f} | "
            f"{p.structure.id if p.structure else ''} |"
        )
    if r.labels_by_size:
        lines += ["", "## Motifs by subcell size", "", "| atoms | valid | most frequent |", "|---|---|---|"]
        for n, counts in r.labels_by_size.items():
            top = ", ".join(f"{label} {count}" for label, count in list(counts.items())[:3])
            lines.append(f"| {n} | {sum(counts.values())} | {top} |")
    lines += ["", "## Relaxed candidate polymorphs (thermodynamics)", "",
              "| polymorph | source | space group | E (eV/atom) | E - E_gs | kept structure | relaxed into |",
              "|---|---|---|---|---|---|---|"]
    for ref in r.references:
        lines.append(f"| {ref.label} | {ref.source} | {ref.spacegroup} | {ref.energy_per_atom_eV:.4f} | "
                     f"{ref.e_above_ground_state_eV:.4f} | {ref.kept_structure} | {ref.same_as or ''} |")
    lines += ["", "## Amorphous replicas", ""]
    for rep in r.replicas:
        lines.append(f"- seed {rep.seed}: {rep.n_atoms} atoms, {rep.density_g_cm3} g/cm3, "
                     f"T_end {rep.final_temperature_K} K, {rep.n_subcells} subcells, {rep.wall_time_s} s")
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r.notes]
    return "\n".join(lines) + "\n"


def _histogram(r: CrystallizationOutput, path: Path) -> Path | None:
    """Bar chart of motif outcomes (counts per polymorph, identified in colour, energy above ground state)."""
    if not r.polymorphs:
        return None
    shown = r.polymorphs[:20]
    fig, ax = figure(figsize=(7, 0.35 * len(shown) + 1.6))
    colors = ["tab:blue" if p.source not in ("unidentified", "other") else "tab:gray" for p in shown]
    ax.barh(range(len(shown)), [p.count for p in shown], color=colors)
    ax.set_yticks(range(len(shown)), [f"{p.label[:40]} (+{p.e_above_ground_state_eV:.3f} eV)" for p in shown],
                  fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("relaxed motifs")
    ax.set_title(f"Amorphous {r.composition}: motif outcomes ({r.n_valid} valid of {r.n_relaxed})", fontsize=9)
    return save(fig, path)
