"""The distillation data generator for the shipped potential: round 5's element-pair decorations never repeat an
earlier composition or a held-out one, and its frames are what their names say (volume scan, vacancy, antisite)."""

from __future__ import annotations

import numpy as np
from ase.build import bulk
from pymatgen.core import Composition

from models.data.potential_distill import (
    ANION_FORMERS,
    DECORATIONS,
    HELD_OUT,
    ROUND_ENDS,
    _formula,
    frames_for,
    gets_md,
    pair_decorations,
)


def test_pair_decorations_cover_new_bond_types_without_held_out_or_repeated_compositions() -> None:
    pairs = pair_decorations()
    formulas = [Composition(_formula(f, r)).reduced_formula for f, r in pairs]
    earlier = {Composition(_formula(f, r)).reduced_formula for f, r in DECORATIONS}
    assert len(formulas) == len(set(formulas)) and not set(formulas) & (earlier | HELD_OUT)
    assert pairs == pair_decorations(), "not deterministic"
    bonds = {frozenset(r.values()) for _, r in pairs}
    assert frozenset({"Al", "N"}) in bonds and frozenset({"Sr", "O"}) in bonds and frozenset({"Sr", "F"}) in bonds
    metal_pairs = [r for _, r in pairs if not set(r.values()) & set(ANION_FORMERS)]
    assert len(metal_pairs) > 300


def test_pair_frames_scan_volume_and_make_a_vacancy_and_an_antisite() -> None:
    atoms = bulk("NaCl", "rocksalt", a=5.6, cubic=True)
    frames = dict(frames_for("pair-rock_salt-NaCl", atoms))
    volumes = {tag: f.get_volume() / atoms.get_volume() for tag, f in frames.items() if tag.startswith("volume")}
    assert sorted(round(v, 3) for v in volumes.values()) == [0.85, 0.93, 1.07, 1.15]
    assert len(frames["vacancy"]) == len(atoms) - 1
    swapped = np.array(frames["antisite"].get_chemical_symbols()) != np.array(atoms.get_chemical_symbols())
    assert swapped.sum() == 2 and frames["antisite"].get_chemical_formula() == atoms.get_chemical_formula()
    assert [t for t, _ in frames_for("rock_salt-NaCl", atoms)][:2] == ["base", "rattle0-0.02"], "earlier rounds"


def test_md_snapshots_follow_a_fixed_schedule_by_structure_index() -> None:
    """Which crystals get MD frames depends only on their index (never on how many a build covers), so partial,
    resumed and parallel builds give the shipped model's data."""
    assert [n for n in range(12) if gets_md(n)] == [0, 5, 10]
    assert gets_md(593 + 89 - (593 % 89)) and not gets_md(595)
    assert not any(gets_md(n) for n in range(ROUND_ENDS[1], ROUND_ENDS[1] + 800)), "round 5 (element pairs)"
