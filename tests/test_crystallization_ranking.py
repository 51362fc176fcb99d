"""Ranking the first polymorph from relaxed motifs: low-energy motifs only, counted per subcell size over the sizes
that can hold each polymorph, so the smallest boxes cannot outvote the rest; and a toy metal (EMT Cu) recovers fcc
from its own quenched melt."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from tools.core.registry import get_tool
from tools.crystallization.motifs import Motif
from tools.crystallization.ranking import size_normalised_shares, within_window

CELL = Structure(Lattice.cubic(3.0), ["Cu"], [[0, 0, 0]])


def motif(label: str, n_atoms: int, energy_per_atom: float = -1.0) -> Motif:
    return Motif(index=0, replica=0, n_atoms=n_atoms, initial_energy=0.0, energy=energy_per_atom * n_atoms,
                 energy_per_atom=energy_per_atom, formation_energy_per_atom=-0.5, steps=10, converged=True,
                 structure=CELL, spacegroup="P1", spacegroup_number=1, label=label, source="prototype")


def test_small_boxes_cannot_outvote_the_rest() -> None:
    """'small' (2-atom primitive) fills every 2-atom box and wins on raw counts (12 against 6); 'large' (6-atom
    primitive) takes three quarters of the boxes that can hold it, and wins on the size-normalised share."""
    motifs = ([motif("small", 2)] * 10 + [motif("large", 6)] * 3 + [motif("small", 6)]
              + [motif("large", 12)] * 3 + [motif("small", 12)])
    shares = size_normalised_shares(motifs, {"small": 2, "large": 6})
    assert shares["small"].in_window == 12 and shares["large"].in_window == 6
    assert shares["small"].sizes == [2, 6, 12] and shares["large"].sizes == [6, 12]
    assert shares["small"].share == pytest.approx((1.0 + 0.25 + 0.25) / 3)
    assert shares["large"].share == pytest.approx(0.75)


def test_only_motifs_near_the_lowest_count() -> None:
    motifs = [motif("a", 4, -3.00), motif("a", 4, -2.95), motif("b", 4, -2.70), motif("b", 4, -2.60)]
    kept = within_window(motifs, 0.1)
    assert [m.energy_per_atom for m in kept] == [-3.00, -2.95]
    assert within_window(motifs, None) == motifs
    assert set(size_normalised_shares(kept, {})) == {"a"}


@pytest.mark.slow
def test_emt_copper_recovers_fcc_from_its_quenched_melt(workspace: Path) -> None:
    """A real melt-quench (EMT, 32 atoms), subcells of 2-8 atoms relaxed as crystals: fcc ranks first."""
    out = get_tool("predict_crystallization").run({
        "composition": "Cu", "potential": "emt", "n_atoms": 32, "n_replicas": 1, "T_high": 2500, "melt_steps": 300,
        "quench_steps": 1000, "hold_steps": 200, "budget": 16, "n_min": 2, "n_max": 8, "d_frac": 0.25,
        "max_reference_relaxations": 4, "store": False, "seed": 1})
    assert out.predicted_first_polymorph is not None and out.predicted_first_polymorph.startswith("fcc")
    first = out.polymorphs[0]
    assert first.rank == 1 and first.share > 0.5 and first.count_in_window >= 3
    assert "smallest boxes cannot outvote" in out.ranking_rule
    assert sorted(p.rank for p in out.polymorphs) == list(range(1, len(out.polymorphs) + 1))


@pytest.mark.slow
def test_a_distilled_student_runs_the_bulk_and_the_teacher_decides(workspace: Path) -> None:
    """A student distilled from EMT runs the melt-quench and the subcell relaxations; EMT relaxes the candidates and
    re-relaxes the distinct low-energy motifs, so every energy in the ranking is EMT's, on the stored structure."""
    from ase.calculators.emt import EMT

    from tests.test_distill import TINY
    from tools.core.registry import ToolContext
    from tools.structures.io import structure_to_atoms

    get_tool("distill_potential").run({**TINY, "name": "cu-student", "rounds": 1, "temperatures_K": [300, 1500]})
    out = get_tool("predict_crystallization").run({
        "composition": "Cu", "potential": "cu-student", "teacher": "emt", "n_atoms": 32, "n_replicas": 1,
        "T_high": 1800, "melt_steps": 200, "quench_steps": 600, "hold_steps": 100, "budget": 10, "n_min": 2,
        "n_max": 8, "d_frac": 0.25, "max_reference_relaxations": 3, "teacher_relaxations": 6, "seed": 1},
        ToolContext())
    assert out.potential == "cu-student" and out.teacher == "emt" and 1 <= out.n_teacher_relaxed <= 6
    assert out.polymorphs, out.notes
    for polymorph in out.polymorphs:
        cif = get_tool("get_structure").run({"id": polymorph.structure.id}).text
        atoms = structure_to_atoms(Structure.from_str(cif, fmt="cif"))
        atoms.calc = EMT()
        assert atoms.get_potential_energy() / len(atoms) == pytest.approx(polymorph.min_energy_per_atom_eV, abs=2e-3)
    assert all(r.energy_per_atom_eV < 1.5 for r in out.references)  # EMT's candidates, not the student's
