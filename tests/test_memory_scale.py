"""Memory that stays right as it grows: ranked searches over every match, hull entries from metadata, batch stores."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from memory.store import StructureStore
from tests.conftest import rocksalt


@pytest.fixture
def store(tmp_path: Path) -> StructureStore:
    return StructureStore(tmp_path / "mem")


@pytest.mark.slow
def test_formula_search_returns_the_n_lowest_energies_of_all_matches(store: StructureStore) -> None:
    """60 MgO cells stored with energies in random order: n=5 gives the true 5 lowest, not 5 of the first fetched."""
    rng = random.Random(7)
    energies = [rng.uniform(-12.0, -8.0) for _ in range(60)]
    ids, base = {}, rocksalt()
    for i, energy in enumerate(energies):
        cell = base.copy()
        cell.scale_lattice(base.volume * (1.0 + 0.01 * i))
        res = store.add(cell, provenance={"tool": "test"}, energy=energy)
        ids[res.id] = energy / len(cell)
    assert store.count() == 60
    want = sorted(ids.items(), key=lambda kv: kv[1])[:5]
    got = store.search_composition(formula="MgO", n=5)
    assert [r.id for r in got] == [i for i, _ in want]
    assert [r.metadata["energy_per_atom"] for r in got] == pytest.approx([e for _, e in want])
    by_elements = store.search_composition(elements=["Mg", "O"], n=5)
    assert [r.id for r in by_elements] == [i for i, _ in want]
