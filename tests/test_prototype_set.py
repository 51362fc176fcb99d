"""The relaxed prototype set builder (models/data/build_prototype_set, issue 30): charge-balanced decoration, the
unseen-set exclusion, and a relaxation loop that resumes where it stopped."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.emt import EMT
from pymatgen.core import Composition, Lattice, Species, Structure

import models.data.build_prototype_set as bps

ROCKSALT, ZINCBLENDE, CINNABAR = "AB_cF8_225_a_b", "AB_cF8_216_c_a", "AB_hP6_154_a_b"  # AFLOW labels


@pytest.fixture(scope="module")
def candidates() -> list[dict]:
    """Rock salt and cinnabar decorated with pymatgen's own ICSD substitution predictor (its tables load in ~5 s)."""
    return bps.build_candidates(only=[ROCKSALT, CINNABAR], log=None)


def test_ionic_decorations_are_charge_balanced(candidates: list[dict]) -> None:
    ionic = [r for r in candidates if r["kind"] == "ionic"]
    assert {r["source"] for r in ionic} == {"charge_balance", "substitution"}
    assert len(ionic) > 200
    substituted = {r["formula"] for r in ionic if r["source"] == "substitution"}
    assert substituted and substituted <= {r["formula"] for r in ionic}
    for rec in ionic:
        assert Composition(rec["formula"]).oxi_state_guesses(max_sites=-20), rec["formula"]
        assert len(bps.record_structure(rec)) <= bps.MAX_ATOMS


def test_substitutions_across_charges_are_refused() -> None:
    class Across:
        def composition_prediction(self, composition: dict) -> list[dict]:
            ti, o = Species("Ti", 4), Species("O", -2)
            return [{"probability": 0.5, "substitutions": {Species("Zn", 2): ti, Species("O", -2): o}},
                    {"probability": 0.4, "substitutions": {Species("Sn", 4): ti, Species("O", -2): o}}]

    ((_, rutile),) = bps.aflow_prototypes(bps.MAX_ATOMS, frozenset({"A2B_tP6_136_f_a"}))
    assert bps.substitution_maps(rutile, Across(), 10) == [{"Ti": "Sn", "O": "O"}]


def test_unseen_formulas_are_excluded(candidates: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    unseen = bps.unseen_formulas()
    assert {"GaAs", "InAs", "CdTe", "Si"} <= unseen
    assert not {r["formula"] for r in candidates} & unseen
    # the exclusion is what keeps them out: zincblende GaAs, InAs, CdTe are made without it
    monkeypatch.setattr(bps, "unseen_formulas", lambda: set())
    open_set = {r["formula"] for r in bps.build_candidates(only=[ZINCBLENDE], log=None)}
    assert {"GaAs", "InAs", "CdTe"} <= open_set


def test_committed_relaxed_cells_exclude_unseen_formulas() -> None:
    if not bps.RELAXED_FILE.exists():
        pytest.skip("no relaxed cells committed yet")
    with gzip.open(bps.RELAXED_FILE, "rt", encoding="utf-8") as fh:
        formulas = {r["formula"] for r in json.load(fh)}
    assert formulas and not formulas & bps.unseen_formulas()


def _fcc(symbol: str, a: float) -> dict:
    s = Structure(Lattice.cubic(a), [symbol] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    s.perturb(0.05, min_distance=0.0)
    rec = bps.candidate_record(s, "A_cF4_225_a", "elemental", "test")
    return rec


def test_relaxation_resumes_and_packs(tmp_path: Path) -> None:
    cache, committed = tmp_path / "cache", tmp_path / "relaxed.json.gz"
    cells = [_fcc("Cu", 3.7), _fcc("Al", 4.0), _fcc("Ni", 3.6)]
    calc = EMT()
    assert bps.relax_all(cells[:2], calc, cache, committed, chunk=1, log=None) == 2
    assert bps.relax_all(cells, calc, cache, committed, chunk=1, log=None) == 1  # only the new cell
    results = bps.read_results(cache, committed)
    assert set(results) == {c["id"] for c in cells}
    assert all(r["status"] == "kept" and r["converged"] for r in results.values())
    assert np.isfinite([r["energy_per_atom"] for r in results.values()]).all()
    assert bps.pack(cache, committed) == {"kept": 3}
    for path in cache.glob("*.jsonl"):
        path.unlink()
    assert bps.relax_all(cells, calc, cache, committed, log=None) == 0  # the committed file is the cache now
    assert len(bps.relaxed_records(committed)) == 3


def test_blown_up_cell_is_dropped() -> None:
    squashed = _fcc("Cu", 1.6)  # atoms at 0.45 of the Cu-Cu covalent sum: EMT pushes the cell far apart
    res = bps.relax_record(squashed, EMT(), max_steps=20)
    assert res["status"] == "dropped" and "reason" in res
