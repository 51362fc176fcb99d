"""The chromadb structure memory: provenance, dedup, three searches, persistence and the HTTP server mode."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memory.fingerprint import FINGERPRINT_DIM, structure_fingerprint
from memory.store import StructureStore
from tests.conftest import free_port, perovskite, rocksalt


@pytest.fixture
def store(tmp_path: Path) -> StructureStore:
    return StructureStore(tmp_path / "mem")


def test_store_keeps_metadata_and_provenance(store):
    prov = {"tool": "test", "parameters": {"x": 1}, "parent_ids": ["s-parent"]}
    res = store.add(perovskite(), provenance=prov, energy=-40.0, properties={"band_gap": 3.2}, tags=["perovskite"])
    assert not res.deduplicated and res.id.startswith("s-")
    record = store.get(res.id)
    meta = record.metadata
    assert meta["reduced_formula"] == "SrTiO3"
    assert meta["spacegroup_symbol"] == "Pm-3m" and meta["spacegroup_number"] == 221
    assert meta["n_sites"] == 5 and meta["elements"] == "|O|Sr|Ti|"
    assert meta["energy_per_atom"] == pytest.approx(-8.0)
    assert record.provenance["parent_ids"] == ["s-parent"] and record.properties == {"band_gap": 3.2}
    assert record.structure.matches(perovskite())


def test_dedup_returns_existing_id(store):
    first = store.add(rocksalt(), provenance={"tool": "a"}, tags=["first"])
    shifted = rocksalt(a=4.22)  # same prototype, 0.2% strain: StructureMatcher equivalent
    shifted.translate_sites(list(range(len(shifted))), [0.1, 0.1, 0.1])
    second = store.add(shifted, provenance={"tool": "b"}, tags=["second"], description="a periclase sample")
    assert second.deduplicated and second.id == first.id  # no numbers come with it: the match is reused
    assert store.count() == 1
    record = store.get(first.id)
    assert record.metadata["tags"] == "first,second"  # new tags and description merged, not lost
    assert "a periclase sample" in store.texts.get(ids=[first.id], include=["documents"])["documents"][0]
    other = store.add(rocksalt(cation="Ni"), provenance={"tool": "c"})
    assert not other.deduplicated and store.count() == 2


def test_numbers_on_an_approximate_duplicate_make_a_new_linked_record(store):
    """A property only sits on the structure it was computed on: a matching but different cell that brings an
    energy or properties is its own record, linked to the match by provenance; the match keeps no numbers."""
    first = store.add(rocksalt(), provenance={"tool": "a"})
    strained = rocksalt(a=4.22)
    second = store.add(strained, provenance={"tool": "relax", "parent_ids": ["s-x"]}, energy=-12.0,
                       properties={"note": "second"})
    assert not second.deduplicated and second.id != first.id and store.count() == 2
    assert "energy" not in store.get(first.id).metadata and store.get(first.id).properties == {}
    new = store.get(second.id)
    assert new.properties == {"note": "second"} and new.metadata["energy"] == -12.0
    assert new.provenance["parent_ids"] == ["s-x", first.id] and new.provenance["equivalent_to"] == first.id
    assert abs(new.structure.lattice.a - strained.lattice.a) < 1e-4  # the record is the cell the numbers are for


def test_restoring_the_same_content_merges_without_replacing(store):
    """The identical structure again: new properties, tags and description are added; a stored value is never
    silently replaced by a different one (the earlier stays, the new one is recorded under provenance)."""
    first = store.add(perovskite(), provenance={"tool": "a"}, energy=-40.0, properties={"gap": 3.2}, tags=["x"])
    again = store.add(perovskite(), provenance={"tool": "b", "parent_ids": ["s-p"]}, energy=-41.0,
                      properties={"gap": 3.0, "bulk_modulus": 180.0}, tags=["y"], description="titanate standard")
    assert again.deduplicated and again.id == first.id and store.count() == 1
    record = store.get(first.id)
    assert record.metadata["energy"] == -40.0 and record.properties == {"gap": 3.2, "bulk_modulus": 180.0}
    conflicts = {(c["key"], c["value"], c["tool"]) for c in record.provenance["conflicting_values"]}
    assert conflicts == {("gap", 3.0, "b"), ("energy", -41.0, "b")}
    assert record.provenance["parent_ids"] == ["s-p"] and record.metadata["tags"] == "x,y"
    document = store.texts.get(ids=[first.id], include=["documents"])["documents"][0]
    assert "titanate standard" in document and "tags: x,y" in document and "-8.000 eV/atom" in document
    store.add(perovskite(), energy=-40.0 + 1e-9, properties={"gap": 3.2})  # the same values: no new conflict
    assert len(store.get(first.id).provenance["conflicting_values"]) == 2


def test_three_searches(store):
    ids = {
        "SrTiO3": store.add(perovskite(), description="cubic perovskite titanate").id,
        "BaTiO3": store.add(perovskite(4.0, "Ba"), description="perovskite ferroelectric").id,
        "MgO": store.add(rocksalt(), description="rock salt magnesia").id,
        "NaCl": store.add(rocksalt(5.64, "Na", "Cl"), description="table salt").id,
    }
    text = store.search_text("a perovskite titanate", n=2)
    assert {r.metadata["reduced_formula"] for r, _ in text} == {"SrTiO3", "BaTiO3"}
    by_elements = store.search_composition(elements=["Ti", "O"])
    assert {r.id for r in by_elements} == {ids["SrTiO3"], ids["BaTiO3"]}
    assert [r.id for r in store.search_composition(formula="Mg2O2")] == [ids["MgO"]]
    assert store.search_composition(elements=["Na", "Cl"], only_elements=True)[0].id == ids["NaCl"]
    similar = store.search_similar(rocksalt(5.0, "K", "Br"), n=4)
    assert {similar[0][0].id, similar[1][0].id} == {ids["MgO"], ids["NaCl"]}  # rock salts before perovskites
    assert similar[0][1] > similar[2][1]


def test_fingerprint_is_scale_free_and_fixed_length():
    a, b = structure_fingerprint(rocksalt(4.0)), structure_fingerprint(rocksalt(4.6))
    assert len(a) == FINGERPRINT_DIM
    assert sum(x * y for x, y in zip(a, b, strict=True)) > 0.999


def test_memory_persists_across_clients(tmp_path):
    first = StructureStore(tmp_path / "mem")
    sid = first.add(perovskite(), provenance={"tool": "test"}).id
    del first
    again = StructureStore(tmp_path / "mem")
    assert again.get(sid) is not None and again.count() == 1


def _start_chroma(chroma: str, path: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [chroma, "run", "--path", str(path), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_chromadb_http_server_mode_survives_a_server_restart(tmp_path):
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(chroma).exists():
        pytest.skip("the chroma CLI is not installed")
    port = free_port()
    proc = _start_chroma(chroma, tmp_path / "server-db", port)
    try:
        deadline = time.time() + 60
        while True:
            try:
                store = StructureStore(url=f"http://127.0.0.1:{port}")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        sid = store.add(rocksalt(), provenance={"tool": "http-test"}).id
        assert StructureStore(url=f"http://127.0.0.1:{port}").get(sid).metadata["reduced_formula"] == "MgO"
        proc.terminate()  # the server goes away mid-run ...
        proc.wait(timeout=30)
        proc = _start_chroma(chroma, tmp_path / "server-db", port)  # ... and comes back on the same data
        again = store.add(perovskite(), provenance={"tool": "http-test"})  # same client object reconnects
        assert store.get(sid) is not None and store.get(again.id) is not None and store.count() == 2
        assert store.add(perovskite(), provenance={"tool": "retry"}).id == again.id  # idempotent write
    finally:
        proc.terminate()
        proc.wait(timeout=30)
