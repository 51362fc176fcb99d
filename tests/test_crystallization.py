"""Crystallization predictor: packing, subcells, the validity filter, and the tool end to end on a tiny Si cell
with CHGNet (real melt-quench MD, real relaxations)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator
from pymatgen.core import Composition, Lattice, Structure

from tools.core.errors import ToolInputError
from tools.core.registry import ToolContext, get_tool
from tools.core.settings import get_settings
from tools.crystallization.amorphous import integer_formula, pair_distance, random_packed_cell
from tools.crystallization.motifs import (
    Candidate,
    ValidityCriteria,
    best_match,
    candidate_polymorphs,
    kept_structure,
    matches,
    merge_relaxed_duplicates,
    validity_problems,
)
from tools.crystallization.subcells import enumerate_subcells, selection_order
from tools.potentials.calculators import get_potential, relax
from tools.structures.io import atoms_to_structure, min_interatomic_distance, structure_to_cif

TINY_SI = dict(composition="Si", potential="chgnet", seed=3, n_atoms=16, n_replicas=1, melt_steps=60,
               quench_steps=60, hold_steps=20, d_frac=0.25, n_max=6, max_reference_relaxations=1,
               density_g_cm3=2.25, fmax=0.1, max_relax_steps=40, n_min=2)


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    """Tiny cells gain nothing from threads on 2 shared cores (and one thread keeps runs bitwise repeatable)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_random_packing_has_composition_density_and_no_overlaps() -> None:
    """TiO2 x 8: 24 atoms in the requested volume, every pair >= 0.75 x covalent sum, same seed -> same cell."""
    unit = integer_formula(Composition("TiO2"), 64)
    atoms = random_packed_cell(unit, 8, volume_per_atom=11.0, seed=5)
    assert atoms.get_chemical_formula() == "O16Ti8"
    assert atoms.get_volume() == pytest.approx(24 * 11.0, rel=1e-9)
    symbols = atoms.get_chemical_symbols()
    dist = atoms.get_all_distances(mic=True)
    for i in range(len(atoms)):
        for j in range(i + 1, len(atoms)):
            assert dist[i, j] >= atoms.info["packing_fraction_of_covalent"] * pair_distance(symbols[i], symbols[j])
    again = random_packed_cell(unit, 8, volume_per_atom=11.0, seed=5)
    assert np.array_equal(atoms.positions, again.positions)
    assert not np.allclose(atoms.positions, random_packed_cell(unit, 8, 11.0, seed=6).positions)


def test_impossible_stoichiometry_is_rejected() -> None:
    """A formula unit that cannot fit in the cell, or a zero amount, is a clear input error."""
    assert integer_formula(Composition("Ti0.3333O0.6667"), 64).formula.replace(" ", "") == "Ti1O2"
    with pytest.raises(ToolInputError, match="impossible stoichiometry"):
        integer_formula(Composition("Ti0.001O0.999"), 64)


def test_subcells_counts_scaling_and_composition_filter() -> None:
    """On a 4x4x4 simple-cubic grid of atoms, boxes of the 0.25 grid hold s^3 atoms; subcell cells are scaled."""
    a = 2.5
    atoms = Atoms("Si64", scaled_positions=[[(i + 0.5) / 4, (j + 0.5) / 4, (k + 0.5) / 4] for i in range(4)
                                            for j in range(4) for k in range(4)], cell=[4 * a] * 3, pbc=True)
    grid = enumerate_subcells(atoms, d_frac=0.25, n_min=1, n_max=8, cubic_only=True)
    # cubic boxes of side 1 (64 positions, 1 atom) and side 2 (27 positions, 8 atoms)
    assert len(grid) == 64 + 27
    assert sorted(set(grid.n_atoms.tolist())) == [1, 8]
    big = int(np.argmax(grid.n_atoms))
    cell = grid.structure(big)
    assert len(cell) == 8 and cell.lattice.abc == pytest.approx((2 * a, 2 * a, 2 * a))
    assert min_interatomic_distance(cell) == pytest.approx(a)
    assert len(enumerate_subcells(atoms, 0.25, 2, 8, cubic_only=False)) > 27  # 1x1x2 boxes etc. join in
    # composition filter: a rock-salt-like checkerboard keeps only boxes with equal Na and Cl counts
    checker = atoms.copy()
    checker.set_chemical_symbols(["Na" if (i + j + k) % 2 else "Cl" for i in range(4) for j in range(4)
                                  for k in range(4)])
    kept = enumerate_subcells(checker, 0.25, 2, 8, cubic_only=False, target=Composition("NaCl"))
    assert len(kept) > 0
    for index in range(len(kept)):
        comp = kept.structure(index).composition
        assert comp["Na"] == comp["Cl"]
    order = selection_order(len(kept), seed=1)
    assert np.array_equal(order, selection_order(len(kept), seed=1)) and sorted(order) == list(range(len(kept)))


def test_validity_keeps_relaxations_that_lower_the_energy() -> None:
    """Energy decreased -> valid; energy rose -> rejected (the check the reference code has inverted)."""
    crit = ValidityCriteria(min_distance_A=1.3)
    assert validity_problems(-10.0, -12.0, -0.1, 2.3, crit) == []
    assert validity_problems(-12.0, -12.0005, 0.0, 2.3, crit) == []  # converged already: within tolerance
    assert "energy rose" in validity_problems(-12.0, -10.0, -0.1, 2.3, crit)[0]
    assert "formation energy" in validity_problems(-10.0, -12.0, 0.9, 2.3, crit)[0]
    assert "fused" in validity_problems(-10.0, -12.0, -0.1, 1.0, crit)[0]
    assert validity_problems(-10.0, float("nan"), -0.1, 2.3, crit) == ["non-finite energy"]


@pytest.mark.slow
def test_real_relaxation_of_compressed_diamond_is_valid(workspace: Path) -> None:
    """CHGNet relaxes a 6 %-compressed diamond Si cell: energy falls, it stays diamond, and passes the filter."""
    calc = get_potential("chgnet", get_settings())
    start = atoms_to_structure(bulk("Si", "diamond", a=5.1, cubic=True))
    res = relax(start, calc, "chgnet", fmax=0.05, max_steps=150)
    assert res.energy < res.initial_energy
    assert res.structure.lattice.a > 5.3
    assert validity_problems(res.initial_energy, res.energy, 0.0, min_interatomic_distance(res.structure),
                             ValidityCriteria(min_distance_A=1.3)) == []
    si = candidate_polymorphs(Composition("Si"))
    diamond = next(c for c in si if c.label.startswith("diamond"))
    assert matches(res.structure, diamond.structure)
    assert not matches(res.structure, next(c for c in si if c.label.startswith("fcc")).structure)


def test_a_memory_that_fails_is_said_so_not_read_as_empty() -> None:
    """A memory search that raises is not "no stored polymorphs": the candidates come with a note naming the
    failure (the tool puts it in its notes), or, when the caller keeps no notes, the error itself."""

    class BrokenStore:
        def search_composition(self, **kwargs: object) -> list:
            raise ConnectionError("chromadb server went away")

    notes: list[str] = []
    candidates = candidate_polymorphs(Composition("Si"), BrokenStore(), notes=notes)
    assert any(c.label.startswith("diamond") for c in candidates) and not any(c.source == "memory" for c in candidates)
    assert notes == ["memory could not be searched for stored Si structures (ConnectionError: chromadb server went "
                     "away): candidates come from prototypes and pyxtal only"]
    with pytest.raises(ConnectionError, match="went away"):
        candidate_polymorphs(Composition("Si"), BrokenStore())


def test_the_formulas_own_polymorphs_come_first_and_stay_distinct() -> None:
    """TiO2's candidates start with its own minerals (anatase, rutile, brookite) and keep rutile apart from
    marcasite, which the loose StructureMatcher fit alone would merge (same 6-atom cell, different space group);
    NiTi's B2 (CsCl) is among the first 16 (the candidates the tool relaxes by default)."""
    tio2 = sorted(candidate_polymorphs(Composition("TiO2")), key=lambda c: c.priority)
    first = {c.label.split(" (")[0] for c in tio2[:3]}
    assert first == {"Anatase", "Rutile", "Brookite"}
    assert not any(c.label.startswith("None") for c in tio2)  # AFLOW writes a missing designation as 'None'
    niti = sorted(candidate_polymorphs(Composition("NiTi")), key=lambda c: (c.priority, c.n_primitive))
    assert any(c.label.startswith("B2 ") for c in niti[:16])  # CsCl-type: a Strukturbericht name, no mineral
    rutile = next(c for c in tio2 if c.label.startswith("Rutile"))
    marcasite = next(c for c in tio2 if c.label.startswith("Marcasite"))
    assert (rutile.space_group, marcasite.space_group) == (136, 58)
    assert rutile.n_primitive == marcasite.n_primitive == 6


def test_a_match_far_off_the_polymorphs_relaxed_energy_is_no_match() -> None:
    """Small cells fit several prototypes; the relaxed energy (same potential) decides: a
    motif 2 eV/atom (or 0.1) below a kept candidate is not that polymorph, one at its energy is."""
    diamond = next(c for c in candidate_polymorphs(Composition("Si")) if c.label.startswith("diamond"))
    diamond.relaxed, diamond.energy_per_atom, diamond.kept, diamond.converged = diamond.structure, -5.4, True, True
    motif = diamond.structure.copy()
    assert best_match(motif, [diamond], -5.35) is diamond
    assert best_match(motif, [diamond], -7.4) is None
    assert best_match(motif, [diamond], -5.5) is None  # 0.1 eV/atom below the relaxed polymorph: another structure
    diamond.converged = False  # an unfinished relaxation is no energy bound
    assert best_match(motif, [diamond], -5.5) is diamond
    diamond.converged = True
    assert best_match(motif, [diamond]) is diamond  # no energy given: geometry alone
    diamond.kept = False  # its relaxation left the polymorph: its energy says nothing about it
    assert best_match(motif, [diamond], -7.4) is diamond


def _relax_candidate(cand: Candidate, calc: Calculator, max_steps: int) -> None:
    """Relax a candidate with CHGNet as the tool does and record what the tool records."""
    result = relax(cand.structure, calc, "chgnet", fmax=0.05, max_steps=max_steps)
    cand.relaxed, cand.energy_per_atom = result.structure, result.energy / len(result.structure)
    cand.converged, cand.kept = result.converged, kept_structure(cand)


@pytest.mark.slow
def test_a_prototype_that_relaxes_into_diamond_carries_diamonds_name() -> None:
    """The 2-atom R-3m beta-oxygen prototype relaxes into diamond Si under CHGNet (same energy within 1 meV/atom). A
    different space group keeps it apart before relaxation; afterwards it is merged into diamond, so diamond, not
    'beta oxygen', is the ground state and the name of a diamond motif. hcp and bcc, close in energy and fitted by
    the loose matcher, keep their own names (different relaxed space groups). Tetragonal L'2 TiO2 relaxes into cubic
    fluorite and is named fluorite, though it comes first."""
    cands = candidate_polymorphs(Composition("Si"))
    diamond = next(c for c in cands if c.label.startswith("diamond"))
    beta = next(c for c in cands if "A_hR2_166_c" in c.label)
    assert cands.index(diamond) < cands.index(beta) and beta.space_group == 166
    calc = get_potential("chgnet", get_settings())
    for cand in (diamond, beta):
        _relax_candidate(cand, calc, max_steps=200)
    assert abs(diamond.energy_per_atom - beta.energy_per_atom) < 0.005
    assert merge_relaxed_duplicates(cands) == 1
    assert beta.same_as == diamond.label and diamond.same_as is None
    # hcp and bcc Si relax to within 10 meV/atom and the loose matcher fits them, yet they stay two polymorphs
    bcc, hcp = (next(c for c in cands if c.label.startswith(name)) for name in ("bcc", "hcp"))
    for cand in (bcc, hcp):
        _relax_candidate(cand, calc, max_steps=200)
    assert abs(bcc.energy_per_atom - hcp.energy_per_atom) < 0.01 and matches(bcc.relaxed, hcp.relaxed)
    assert merge_relaxed_duplicates([bcc, hcp]) == 0 and hcp.same_as is None
    # of two that relax into one structure, the one that kept its own space group names it: L'2 TiO2 -> fluorite
    tio2 = candidate_polymorphs(Composition("TiO2"))
    l2, fluorite = (next(c for c in tio2 if c.label.startswith(name)) for name in ("L\\'2", "Fluorite"))
    assert tio2.index(l2) < tio2.index(fluorite)
    for cand in (l2, fluorite):
        _relax_candidate(cand, calc, max_steps=300)
    assert merge_relaxed_duplicates([l2, fluorite]) == 1 and l2.same_as == fluorite.label
    motif = atoms_to_structure(bulk("Si", "diamond", a=5.47, cubic=True))
    assert best_match(motif, [diamond, beta], diamond.energy_per_atom) is diamond
    assert best_match(motif, [beta], beta.energy_per_atom) is beta  # without diamond there is nothing to defer to
    beta.kept = False  # a duplicate answers to its polymorph's energy, kept or not: 0.1 eV/atom below is not diamond
    assert best_match(motif, [diamond, beta], diamond.energy_per_atom - 0.1) is None


def test_bad_inputs_give_clear_errors(workspace: Path) -> None:
    """Unknown element, impossible stoichiometry, zero budget, inverted n range -> ToolInputError naming it."""
    spec = get_tool("predict_crystallization")
    with pytest.raises(ToolInputError, match="budget"):
        spec.validate({"composition": "Si", "budget": 0})
    with pytest.raises(ToolInputError, match="n_min"):
        spec.validate({"composition": "Si", "n_min": 9, "n_max": 4})
    with pytest.raises(ToolInputError, match="Xx|unknown element|cannot read"):
        spec.run({"composition": "Xx2O3", "budget": 1}, ToolContext())
    with pytest.raises(ToolInputError, match="impossible stoichiometry"):
        spec.run({"composition": "Ti0.001O0.999", "budget": 1}, ToolContext())
    with pytest.raises(ToolInputError, match="impossible stoichiometry"):
        spec.run({"composition": "Al2O3", "budget": 1, "n_max": 4}, ToolContext())


@pytest.mark.slow
def test_si_melt_quench_end_to_end_is_deterministic_and_respects_budget(workspace: Path) -> None:
    """Tiny amorphous Si (16 atoms, real CHGNet melt-quench and relaxations): budget, ranking, ground state,
    artifacts, stored polymorphs with provenance; the same seed repeats the same motifs."""
    spec = get_tool("predict_crystallization")
    events: list[tuple[float, float | None, str | None]] = []
    out = spec.run({**TINY_SI, "budget": 3}, ToolContext(progress_fn=lambda d, t, m: events.append((d, t, m))))
    assert 1 <= out.n_relaxed <= 3 and out.n_subcells_total > out.n_relaxed
    assert out.replicas[0].n_atoms == 16 and out.replicas[0].density_g_cm3 == pytest.approx(2.25, rel=1e-3)
    assert out.ground_state is not None and out.ground_state.startswith("diamond")  # relaxed diamond reference
    assert out.ground_state_energy_per_atom_eV == pytest.approx(-5.31, abs=0.1)  # CHGNet diamond Si
    assert sum(p.count for p in out.polymorphs) == out.n_valid
    assert sum(sum(c.values()) for c in out.labels_by_size.values()) == out.n_valid
    assert sorted(p.rank_by_energy for p in out.polymorphs) == list(range(1, len(out.polymorphs) + 1))
    assert all(p.e_above_ground_state_eV >= -1e-6 for p in out.polymorphs)
    assert events and events[-1][0] == events[-1][1]
    root = get_settings().resolved_workspace()
    report = json.loads((root / out.json_uri.removeprefix("artifact://")).read_text())
    assert len(report["motifs"]) == out.n_relaxed
    assert all(m["energy_eV"] <= m["initial_energy_eV"] + 1e-3 for m in report["motifs"] if m["valid"])
    assert "Predicted first polymorph" in (root / out.report_uri.removeprefix("artifact://")).read_text()
    if out.polymorphs:
        assert (root / out.histogram_uri.removeprefix("artifact://")).stat().st_size > 1000
        stored = out.polymorphs[0].structure
        assert stored is not None and stored.provenance["tool"] == "predict_crystallization"
        assert stored.provenance["parent_ids"] == [out.replicas[0].structure_id]
    assert out.references[0].structure is not None and out.references[0].label.startswith("diamond")
    # same seed -> same amorphous cell and the same first motifs (no reference relaxations needed for that)
    again = spec.run({**TINY_SI, "budget": 2, "max_reference_relaxations": 0, "store": False}, ToolContext())
    assert again.n_relaxed == 2
    assert again.replicas[0].final_epot_per_atom_eV == pytest.approx(out.replicas[0].final_epot_per_atom_eV, abs=1e-5)
    redo = json.loads((root / again.json_uri.removeprefix("artifact://")).read_text())["motifs"]
    first = report["motifs"][:2]
    assert [m["n_atoms"] for m in redo] == [m["n_atoms"] for m in first]
    assert [m["energy_eV"] for m in redo] == pytest.approx([m["energy_eV"] for m in first], abs=1e-4)


@pytest.mark.slow
def test_diamond_is_found_among_motifs_of_a_disordered_precursor(workspace: Path) -> None:
    """From a rattled 64-atom diamond precursor, the 8-atom motifs relax back to diamond and are named so; the
    polymorph is stored with its space group."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.translate(np.diag(atoms.cell) / 16)  # atoms sit mid-way between the grid planes of d_frac = 0.5
    atoms.wrap()
    atoms.rattle(0.08, seed=2)
    text = structure_to_cif(atoms_to_structure(atoms))
    out = get_tool("predict_crystallization").run(
        {"composition": "Si", "potential": "chgnet", "budget": 2, "precursor": {"text": text}, "d_frac": 0.5,
         "n_min": 8, "n_max": 8, "max_reference_relaxations": 1, "fmax": 0.1, "max_relax_steps": 60},
        ToolContext(),
    )
    assert out.n_subcells_total == 8 and out.n_relaxed == 2 and out.n_valid == 2
    assert list(out.labels_by_size) == ["8"] and sum(out.labels_by_size["8"].values()) == 2
    assert out.predicted_first_polymorph is not None and out.predicted_first_polymorph.startswith("diamond")
    assert out.polymorphs[0].count == 2 and out.polymorphs[0].frequency == 1.0
    assert out.polymorphs[0].e_above_ground_state_eV < 0.05
    assert out.ostwald_differs is False
    # 2 of 2 motifs back it, but two motifs in one box size are few: the answer says so (issue 28)
    assert any("rests on 2 low-energy motif(s) in 1 subcell size(s)" in note for note in out.notes), out.notes
    # share 2/7: the one size's 2 votes over those 2 plus the 5 unearned votes of the ranking rule
    assert out.polymorphs[0].share == pytest.approx(2 / 7, abs=1e-3) and out.polymorphs[0].rank == 1
    assert out.polymorphs[0].structure is not None and out.polymorphs[0].structure.spacegroup_number == 227


def test_structure_helpers_agree() -> None:
    """A subcell of the diamond lattice cut on the 0.5 grid is itself diamond-like (8 atoms, no overlaps)."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    grid = enumerate_subcells(atoms, d_frac=0.5, n_min=8, n_max=8)
    assert len(grid) == 8
    cell = grid.structure(0)
    assert isinstance(cell, Structure) and cell.lattice.abc == pytest.approx((5.43,) * 3)
    assert matches(cell, Structure(Lattice.cubic(5.43), ["Si"] * 8, atoms_to_structure(
        bulk("Si", "diamond", a=5.43, cubic=True)).frac_coords))


def test_a_relaxation_that_keeps_symmetry_keeps_the_polymorph() -> None:
    def anatase(c: float) -> Structure:
        return Structure.from_spacegroup("I4_1/amd", Lattice.tetragonal(3.78, c), ["Ti", "O"],
                                         [[0, 0, 0], [0, 0, 0.2083]])  # origin choice 1

    start = Candidate("Anatase", anatase(9.5), "prototype")
    start.relaxed = anatase(19.0)  # a prototype lattice far from this chemistry's: beyond the matcher, still anatase
    assert not matches(start.relaxed, start.structure)
    assert kept_structure(start)
    broken = start.relaxed.copy()
    broken.translate_sites([0], [0.05, 0.02, 0.0])  # one Ti off its site: the symmetry is gone
    start.relaxed = broken
    assert not kept_structure(start)
    start.relaxed = None
    assert not kept_structure(start)
