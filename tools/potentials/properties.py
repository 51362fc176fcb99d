"""Potential tools: relax a structure, and predict properties (energy, formation energy, energy above the local
hull, density, symmetry) for a batch, with the universal potentials or our own checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Structure

from memory.store import (
    relaxation_labels,
    relaxation_tags,
    symmetry_of,
)
from tools.core.common import StructureSummary
from tools.core.errors import ToolInputError
from tools.core.provenance import provenance
from tools.core.registry import STORE, ToolContext, ToolInput, tool
from tools.potentials.calculators import elemental_references, get_potential, relax, single_point
from tools.potentials.hull import REFERENCE_STEPS, LocalHull, missing_binaries
from tools.structures.io import StructureRef, resolve_structure

PotentialName = str
MAX_BATCH = 200
PREDICT_FMAX, PREDICT_STEPS = 0.05, 300  # predict_properties(relax=True): force threshold (eV/A) and step limit


def potential_field(default: str | None = None) -> object:
    return Field(
        default=default,
        description="'chgnet', 'sevennet-0', 'emt' (ASE's EMT, a few fcc metals) or a matsearch checkpoint path; "
        "default: the configured potential.",
        max_length=500,
    )


class RelaxInput(ToolInput):
    structure: StructureRef = Field(description="The structure to relax: a memory id or CIF / POSCAR / extxyz text.")
    potential: str | None = potential_field()
    fmax: float = Field(default=0.05, gt=0.001, le=5.0, description="Force convergence threshold, eV/A.")
    max_steps: int = Field(default=300, ge=1, le=5000, description="Optimizer steps at most (1-5000); a relaxation "
                           "that stops here unconverged is stored as unconverged.")
    relax_cell: bool = Field(default=True, description="Also relax the cell (FrechetCellFilter).")
    optimizer: Literal["FIRE", "BFGS"] = Field(default="FIRE", description="ASE optimizer: FIRE (robust far from a "
                                                "minimum) or BFGS (faster near one).")
    store: bool = Field(default=True, description="Store the relaxed structure in memory.")


class Properties(BaseModel):
    energy_eV: float
    energy_per_atom_eV: float
    formation_energy_per_atom_eV: float
    e_above_hull_eV: float | None = Field(description="Energy above the local reference hull, eV/atom")
    density_g_cm3: float
    volume_per_atom_A3: float
    spacegroup: str
    spacegroup_number: int
    potential: str


class RelaxOutput(BaseModel):
    id: str | None = Field(description="Memory id of the relaxed structure when stored")
    uri: str | None
    formula: str
    converged: bool
    steps: int
    initial_energy_eV: float
    max_force_eV_A: float
    properties: Properties
    cif: str | None = Field(default=None, description="CIF of the relaxed structure when it was not stored")
    notes: list[str] = Field(default_factory=list, description="What qualifies the numbers, e.g. a hull reference "
                             "compound that could not be built (E_hull may then read too low)")


def unconverged_note(fmax: float, max_steps: int, max_force: float) -> str:
    """The note on a relaxation that did not reach its force threshold."""
    return (f"relaxation did not converge (max force {max_force:.3f} > fmax {fmax} eV/A after {max_steps} steps): "
            "the energy is an upper bound of the minimum's, stored as unconverged (not relaxed, no hull competitor)")


def _potential(inp_potential: str | None, ctx: ToolContext) -> str:
    return inp_potential or ctx.settings.potential


def compute_properties(
    structure: Structure, energy: float, potential: str, ctx: ToolContext, hull: bool = True,
    notes: list[str] | None = None,
) -> Properties:
    """Formation energy and local-hull energy from references computed with the same potential; the hull's notes
    (references left out) are added to `notes` when given."""
    refs = elemental_references(potential, ctx.settings)
    formation = refs.formation_energy_per_atom(structure, energy)
    e_hull = None
    if hull:
        elements = [el.symbol for el in structure.composition.elements]
        system = system_hull(elements, potential, ctx)
        e_hull = system.e_above_hull(structure.composition, energy)
        if notes is not None:
            notes += [note for note in system.notes if note not in notes]
    symbol, number, _ = symmetry_of(structure)
    return Properties(
        energy_eV=round(energy, 6),
        energy_per_atom_eV=round(energy / len(structure), 6),
        formation_energy_per_atom_eV=round(formation, 6),
        e_above_hull_eV=None if e_hull is None else round(e_hull, 6),
        density_g_cm3=round(float(structure.density), 4),
        volume_per_atom_A3=round(structure.volume / len(structure), 4),
        spacegroup=symbol,
        spacegroup_number=number,
        potential=potential,
    )


def memory_entries(
    composition: Composition, potential: str, ctx: ToolContext, unconverged: list[str] | None = None
) -> list[PDEntry]:
    """Relaxed structures in memory within this chemical system, scored by the same potential: hull competitors.

    Only converged relaxations compete: an unconverged one stopped short of its minimum, so it is not a phase, and
    a relaxation that fails to converge is often one that ran into a region the potential was never trained on
    (a collapsing cell, a hole), where its energy is no bound to trust. Their ids go to `unconverged` when given."""
    out = []
    for row in ctx.store.hull_rows([el.symbol for el in composition.elements], potential):
        if row.converged:
            out.append(PDEntry(Composition(row.formula), row.energy, name=row.id))
        elif unconverged is not None:
            unconverged.append(row.id)
    return out


@dataclass
class SystemHull:
    """The hull of one chemical system with one potential, as it stands now: references (elements, binary
    compounds) and every relaxed (converged) structure memory holds for the system with that potential, plus any
    extra entries. A reference compound whose relaxation did not converge stays in, as the upper bound of its
    minimum that its energy is (leaving it out would thin the hull further), and is named in `notes`."""

    elements: list[str]
    diagram: PhaseDiagram
    references: list[str]
    n_memory: int
    missing_binaries: list[str]
    notes: list[str] = field(default_factory=list)  # references left out or unconverged, memory left out

    def e_above_hull(self, composition: Composition, energy: float) -> float:
        """Energy above this hull (eV/atom); >= 0 up to round-off for an entry that is part of it."""
        target = PDEntry(composition, energy, name="candidate")
        return float(self.diagram.get_decomp_and_e_above_hull(target, allow_negative=True)[1])

    def decomposition_energy(self, composition: Composition, energy: float) -> float:
        """Energy (eV/atom) relative to the hull of the *competing* phases (every other composition): equal to
        E_hull for an unstable entry, negative for one on the hull (how far below its competitors it lies)."""
        target = PDEntry(composition, energy, name="candidate")
        return float(self.diagram.get_phase_separation_energy(target))


def system_hull(
    elements: list[str], potential: str, ctx: ToolContext, extra: list[PDEntry] | None = None
) -> SystemHull:
    """The current hull of a chemical system: references + memory's converged relaxations (+ extra entries; the
    caller passes converged ones only). Its notes name the references it could not build, the reference compounds
    whose relaxation did not converge (kept as upper bounds), and how many unconverged relaxations in memory it
    left out."""
    elements = sorted(set(elements))
    refs = LocalHull(elemental_references(potential, ctx.settings), ctx.workspace / "references")
    reference_entries = refs.reference_entries(elements)
    unconverged: list[str] = []
    memory = memory_entries(Composition({el: 1 for el in elements}), potential, ctx, unconverged)
    entries = reference_entries + memory + list(extra or [])
    notes = [f"hull reference {d} could not be built and was left out: E_hull may read too low" for d in refs.dropped]
    notes += [f"hull reference {key} did not converge in {REFERENCE_STEPS} steps and was kept as an upper bound of "
              "its energy: E_hull may read too low" for key in refs.unconverged]
    if unconverged:
        notes.append(f"{len(unconverged)} unconverged relaxation(s) in memory left out of the "
                     f"{'-'.join(elements)} hull (not at a minimum): {', '.join(unconverged[:5])}"
                     f"{' ...' if len(unconverged) > 5 else ''}")
    return SystemHull(
        elements=elements,
        diagram=PhaseDiagram(entries),
        references=[str(e.name) for e in reference_entries],
        n_memory=len(memory),
        missing_binaries=missing_binaries(elements, entries),
        notes=notes,
    )


def reference_compound_keys(potential: str, ctx: ToolContext) -> set[str]:
    """The reference compounds relaxed so far for a potential in this workspace (shipped + cached)."""
    return set(LocalHull(elemental_references(potential, ctx.settings), ctx.workspace / "references").compounds)


@tool(cost="minutes", reaches=(STORE,), estimate=lambda inp: 0.05 * inp.max_steps)
def relax_structure(inp: RelaxInput, ctx: ToolContext) -> RelaxOutput:
    """Relax a crystal structure (positions and, by default, the cell) with an interatomic potential, then report
    its energy, formation energy per atom (against elemental references relaxed with the same potential), energy
    above the local convex hull, density and space group. The relaxed structure is stored in memory; one that did
    not converge in max_steps is stored as unconverged (relaxed False), is no hull competitor and is never reused
    as relaxed, and the notes say so."""
    potential = _potential(inp.potential, ctx)
    structure = resolve_structure(inp.structure, ctx.store, ctx.settings.max_atoms)
    calc = get_potential(potential, ctx.settings)
    ctx.progress(0, inp.max_steps, "relaxing")
    result = relax(
        structure,
        calc,
        potential,
        inp.fmax,
        inp.max_steps,
        inp.relax_cell,
        inp.optimizer,
        on_step=lambda n: ctx.progress(n, inp.max_steps, f"step {n}"),
    )
    ctx.progress(inp.max_steps, inp.max_steps, "references and hull")
    notes: list[str] = [] if result.converged else [unconverged_note(inp.fmax, inp.max_steps, result.max_force)]
    props = compute_properties(result.structure, result.energy, potential, ctx, notes=notes)
    record_id = uri = cif = None
    if inp.store:
        stored = ctx.store.add(
            result.structure,
            provenance=provenance("relax_structure", inp.model_dump(exclude={"structure"}), [inp.structure.id]),
            energy=result.energy,
            properties={**props.model_dump(), **relaxation_labels(result.converged)},
            tags=relaxation_tags(result.converged),
        )
        record_id, uri = stored.id, f"structure://{stored.id}"
    else:
        cif = str(result.structure.to(fmt="cif"))
    return RelaxOutput(
        id=record_id,
        uri=uri,
        formula=result.structure.composition.reduced_formula,
        converged=result.converged,
        steps=result.steps,
        initial_energy_eV=round(result.initial_energy, 6),
        max_force_eV_A=round(result.max_force, 5),
        properties=props,
        cif=cif,
        notes=notes,
    )


class PredictInput(ToolInput):
    structures: list[StructureRef] = Field(min_length=1, max_length=MAX_BATCH, description="Structures to score: "
                                           "memory ids or CIF / POSCAR / extxyz texts.")
    potential: str | None = potential_field()
    relax: bool = Field(default=False, description="Relax each structure first (slower, meaningful energies).")
    hull: bool = Field(default=True, description="Compute energy above the local reference hull.")
    store: bool = Field(default=True, description="Store relaxed structures in memory.")


class PredictedItem(BaseModel):
    index: int
    structure: StructureSummary | None = None
    properties: Properties | None = None
    error: str | None = Field(default=None, description="Why this structure could not be scored")
    notes: list[str] = Field(default_factory=list, description="What qualifies the numbers, e.g. a hull reference "
                             "compound that could not be built (E_hull may then read too low)")


class PredictOutput(BaseModel):
    potential: str
    items: list[PredictedItem]


@tool(cost="minutes", reaches=(STORE,), estimate=lambda inp: (8.0 if inp.relax else 0.3) * len(inp.structures))
def predict_properties(inp: PredictInput, ctx: ToolContext) -> PredictOutput:
    """Predict properties for a batch of structures with an interatomic potential: total energy, energy per atom,
    formation energy per atom, energy above the local hull (eV/atom), density, volume per atom and space group.
    With relax=True each structure is relaxed first and stored (as unconverged, relaxed False, with a note, when
    the relaxation did not converge). A structure that fails gets an error entry; the rest of the batch still runs."""
    potential = _potential(inp.potential, ctx)
    calc = get_potential(potential, ctx.settings)
    items = []
    for i, ref in enumerate(inp.structures):
        ctx.progress(i, len(inp.structures), f"structure {i + 1}/{len(inp.structures)}")
        try:
            structure = resolve_structure(ref, ctx.store, ctx.settings.max_atoms)
            converged = True
            notes: list[str] = []
            if inp.relax:
                res = relax(structure, calc, potential, fmax=PREDICT_FMAX, max_steps=PREDICT_STEPS)
                structure, energy, converged = res.structure, res.energy, res.converged
                if not converged:
                    notes.append(unconverged_note(PREDICT_FMAX, PREDICT_STEPS, res.max_force))
            else:
                energy = single_point(structure, calc, potential)
            props = compute_properties(structure, energy, potential, ctx, hull=inp.hull, notes=notes)
        except ToolInputError as exc:
            items.append(PredictedItem(index=i, error=str(exc)))
            continue
        summary = None
        if inp.relax and inp.store:
            stored = ctx.store.add(
                structure,
                provenance=provenance("predict_properties", {"potential": potential, "relax": True}, [ref.id]),
                energy=energy,
                properties={**props.model_dump(), **relaxation_labels(converged)},
                tags=relaxation_tags(converged),
            )
            summary = StructureSummary.from_record(ctx.store.get(stored.id))
        elif ref.id:
            summary = StructureSummary.from_record(ctx.store.get(ref.id))
        items.append(PredictedItem(index=i, structure=summary, properties=props, notes=notes))
    ctx.progress(len(inp.structures), len(inp.structures), "done")
    return PredictOutput(potential=potential, items=items)
