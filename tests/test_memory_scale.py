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


def test_formula_search_returns_the_n_lowest_energies_of_all_matches(store: StructureStore) -> None:
    """60 MgO cells stored with energies in random order: n=5 gives the true 5 lowest, not 5 of the first fetched."""
    rng = random.Random(7)
    energies = [rng.uniform(-12.0, -8.0) for _ in range(60)]
    base, cells = rocksalt(), []
    for i in range(len(energies)):
        cells.append(base.copy())
        cells[-1].scale_lattice(base.volume * (1.0 + 0.01 * i))
    results = store.add_many([{"structure": c, "provenance": {"tool": "test"}, "energy": e}
                              for c, e in zip(cells, energies, strict=True)])
    ids = {r.id: e / len(base) for r, e in zip(results, energies, strict=True)}
    assert store.count() == 60
    want = sorted(ids.items(), key=lambda kv: kv[1])[:5]
    got = store.search_composition(formula="MgO", n=5)
    assert [r.id for r in got] == [i for i, _ in want]
    assert [r.metadata["energy_per_atom"] for r in got] == pytest.approx([e for _, e in want])
    by_elements = store.search_composition(elements=["Mg", "O"], n=5)
    assert [r.id for r in by_elements] == [i for i, _ in want]


def _relaxation(potential: str, energy: float, converged: bool = True) -> dict:
    return {"potential": potential, "energy_eV": energy, "relaxed": converged, "converged": converged}


def test_hull_rows_come_from_one_metadata_query_and_old_records_still_count(
    store: StructureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relaxations inside Mg-O with the same potential are hull rows (converged flagged), read from metadata with no
    CIF parsed; other potentials, other systems and non-relaxations are not. A record stored before hull metadata
    (no hull_v) is given it on the first hull query (from its metadata, no CIF parsed) and found."""
    mgo = rocksalt()
    mg, nio, strained, old = mgo.copy(), mgo.copy(), mgo.copy(), mgo.copy()
    mg.replace_species({"O": "Mg"})
    nio.replace_species({"Mg": "Ni"})
    strained.scale_lattice(mgo.volume * 1.2)
    old.scale_lattice(mgo.volume * 1.1)
    a = store.add(mgo, provenance={}, properties=_relaxation("emt", -40.0)).id
    b = store.add(mg, provenance={}, properties=_relaxation("emt", -12.0, converged=False)).id
    store.add(mgo, provenance={}, properties=_relaxation("mace", -41.0))  # other potential (new record, linked)
    store.add(nio, provenance={}, properties=_relaxation("emt", -30.0))  # other system
    store.add(strained, provenance={}, properties={"potential": "emt", "energy_eV": -39.0})  # a single point
    # A record written before hull metadata existed: strip its hull keys as an old store would have lacked them.
    c = store.add(old, provenance={}, properties=_relaxation("emt", -39.5)).id
    got = store.texts.get(ids=[c], include=["metadatas", "documents", "embeddings"])
    meta = {k: v for k, v in got["metadatas"][0].items() if not k.startswith("hull_") and k != "chemsys"}
    store.texts.delete(ids=[c])
    store.texts.add(ids=[c], metadatas=[meta], documents=got["documents"], embeddings=got["embeddings"])
    store.index.delete(ids=[c])  # nor had it an index entry

    parsed: list[str] = []
    record = StructureStore._record
    monkeypatch.setattr(StructureStore, "_record", staticmethod(lambda i, m: parsed.append(i) or record(i, m)))
    rows = {r.id: r for r in store.hull_rows(["O", "Mg"], "emt")}
    assert set(rows) == {a, b, c} and parsed == []
    assert store.texts.get(ids=[c], include=["metadatas"])["metadatas"][0]["chemsys"] == "Mg-O"
    assert rows[a].converged and not rows[b].converged and rows[c].converged
    assert rows[a].formula == "Mg4O4" and rows[a].energy == -40.0
    assert {r.id for r in store.hull_rows(["Mg"], "emt")} == {b}


def test_hull_metadata_follows_properties_added_later(store: StructureStore) -> None:
    """A structure stored bare, then given a relaxation's numbers (same content merged, or update): a hull row."""
    mgo = rocksalt()
    nio = mgo.copy()
    nio.replace_species({"Mg": "Ni"})
    first = store.add(mgo, provenance={}).id
    assert store.hull_rows(["Mg", "O"], "emt") == []
    store.add(mgo, provenance={}, properties=_relaxation("emt", -40.0))
    assert [r.id for r in store.hull_rows(["Mg", "O"], "emt")] == [first]
    other = store.add(nio, provenance={}).id
    store.update(other, properties=_relaxation("emt", -30.0, converged=False))
    assert [(r.id, r.converged) for r in store.hull_rows(["Ni", "O"], "emt")] == [(other, False)]


@pytest.mark.parametrize("workers", [0, 2])
def test_add_many_stores_in_batches_with_the_rules_of_add(store: StructureStore, workers: int) -> None:
    """A batch of new cells, a same-content repeat (merged: tags, description), an approximate duplicate without
    numbers inside the batch (reused) and one with an energy (new record linked to its match), across two batches;
    the same whether structures are prepared here or in worker processes."""
    base = rocksalt()
    cells = []
    for i in range(6):
        cell = base.copy()
        cell.scale_lattice(base.volume * (1.0 + 0.05 * i))
        cells.append(cell)
    shifted = cells[0].copy()
    shifted.translate_sites(list(range(len(shifted))), [0.1, 0.1, 0.1])  # equivalent to cells[0]
    items = [{"structure": c, "provenance": {"tool": "t"}, "energy": -40.0 - i, "tags": ["a"]} for i, c in
             enumerate(cells)]
    items += [
        {"structure": cells[1], "tags": ["b"], "description": "again"},  # same content as item 1
        {"structure": shifted, "tags": ["c"]},  # equivalent to item 0, no numbers: reused
        {"structure": shifted, "energy": -39.0},  # equivalent to item 0, with an energy: a new linked record
    ]
    results = store.add_many(items, batch_size=4, workers=workers)
    assert [r.deduplicated for r in results] == [False] * 6 + [True, True, False]
    assert results[6].id == results[1].id and results[7].id == results[0].id
    assert store.count() == 7
    assert store.get(results[1].id).metadata["tags"] == "a,b"
    assert store.get(results[1].id).metadata["description"] == "again"
    assert store.get(results[0].id).metadata["tags"] == "a,c"
    assert store.get(results[8].id).provenance["equivalent_to"] == results[0].id
    again = store.add_many(items[:6], workers=workers)
    assert all(r.deduplicated for r in again) and [r.id for r in again] == [r.id for r in results[:6]]
    assert store.add(cells[2], provenance={}).id == results[2].id  # one-by-one add sees batch-written records


def test_store_structures_tool(workspace: Path) -> None:
    from tools.core.registry import ToolContext, get_tool
    from tools.structures.io import structure_to_cif

    base = rocksalt()
    other = base.copy()
    other.replace_species({"Mg": "Ni"})
    cifs = [structure_to_cif(base), structure_to_cif(other), structure_to_cif(base)]
    out = get_tool("store_structures").run(
        {"structures": [{"structure": {"text": c}, "tags": ["batch"]} for c in cifs]}, ToolContext()
    )
    assert (out.n_new, out.n_deduplicated) == (2, 1)
    assert [i.formula for i in out.items] == ["MgO", "NiO", "MgO"] and out.items[2].id == out.items[0].id


def test_a_repeated_store_merges_tags_and_description_and_provenance_keeps_both(store: StructureStore) -> None:
    """Same content again, then an approximate duplicate: tags and description merged, each store that brought
    something recorded under provenance `merged_stores` beside the first store's; a bare retry records nothing."""
    cell = rocksalt()
    shifted = cell.copy()
    shifted.translate_sites(list(range(len(shifted))), [0.1, 0.1, 0.1])
    first = store.add(cell, provenance={"tool": "a", "time": "t0"}, tags=["x"]).id
    store.add(cell, provenance={"tool": "b", "time": "t1"}, tags=["x", "y"], description="periclase")
    store.add(cell, provenance={"tool": "b", "time": "t2"}, tags=["y"], description="periclase")  # nothing new
    assert store.add(shifted, provenance={"tool": "c", "time": "t3"}, tags=["z"]).id == first
    record = store.get(first)
    assert record.metadata["tags"] == "x,y,z" and record.metadata["description"] == "periclase"
    assert record.provenance["tool"] == "a"
    assert record.provenance["merged_stores"] == [
        {"tool": "b", "time": "t1", "tags": ["y"], "description": "periclase"},
        {"tool": "c", "time": "t3", "tags": ["z"]},
    ]


def _cells(n: int, cation: str = "Mg", step: float = 0.01) -> list:
    """n rock-salt cells, each `step` larger in volume than the last (0.01: approximate duplicates)."""
    base = rocksalt(cation=cation)
    cells = []
    for i in range(n):
        cells.append(base.copy())
        cells[-1].scale_lattice(base.volume * (1.0 + step * i))
    return cells


def test_searches_fetch_only_the_records_they_return(store: StructureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Composition search ranks every match from the index (ids and energies) and fetches the metadata of the n it
    returns only; similarity search fetches its hits in one get; no search parses a CIF (a record's structure is
    parsed when first used)."""
    from pymatgen.core import Structure

    rng = random.Random(3)
    energies = [rng.uniform(-12.0, -8.0) for _ in range(40)]
    results = store.add_many([{"structure": c, "provenance": {}, "energy": e}
                              for c, e in zip(_cells(40), energies, strict=True)])
    store.add_many([{"structure": c, "provenance": {}} for c in _cells(5, "Ni")])  # no energy: ranked last
    want = [r.id for _, r in sorted(zip(energies, results, strict=True), key=lambda er: er[0])]

    store.search_composition(formula="NiO", n=1)  # the store's first search checks for unindexed records once
    fetched: list[int] = []
    get = store.texts.get

    def counting_get(*args, **kwargs):
        got = get(*args, **kwargs)
        if "metadatas" in (kwargs.get("include") or []):
            fetched.append(len(got["ids"]))
        return got

    parsed: list[str] = []
    from_str = Structure.from_str
    monkeypatch.setattr(store.texts, "get", counting_get)
    monkeypatch.setattr(Structure, "from_str", lambda *a, **k: parsed.append(1) or from_str(*a, **k))
    got = store.search_composition(elements=["O"], n=3)
    assert [r.id for r in got] == want[:3] and fetched == [3] and parsed == []
    fetched.clear()
    assert [r.id for r in store.search_composition(formula="MgO", n=40)] == want
    bare = sorted(r.id for r in store.search_composition(formula="NiO", n=5))  # no energy: last, by id
    assert [r.id for r in store.search_composition(elements=["O"], n=100)] == want + bare
    fetched.clear()
    hits = store.search_similar(_cells(1)[0], 4)
    assert len(hits) == 4 and fetched == [4] and parsed == []
    assert hits[0][0].structure.composition.reduced_formula == "MgO" and len(parsed) == 1


def test_ranking_follows_energies_added_later_and_exact_values(store: StructureStore) -> None:
    """Energies given after the store (update, a same-content merge) rank the record; energies closer than float32
    can tell apart still rank by their exact values."""
    a, b, c, d = _cells(4, step=0.25)
    ids = [store.add(x, provenance={}).id for x in (a, b, c, d)]
    assert len(set(ids)) == 4
    assert store.search_composition(formula="MgO", n=4)[0].metadata.get("energy_per_atom") is None
    store.update(ids[2], energy=-80.0)
    store.add(d, provenance={}, energy=-79.0)  # same content: the energy is merged into the bare record
    assert [r.id for r in store.search_composition(formula="MgO", n=2)] == [ids[2], ids[3]]
    # -10.0000001 and -10.0000002 per atom are one float32: the exact lower one comes first whatever the ids.
    low, high = sorted(ids[:2], reverse=True)  # the lower energy on the larger id: an id tie-break would be wrong
    store.update(low, energy=8 * -10.0000002)
    store.update(high, energy=8 * -10.0000001)
    assert [r.id for r in store.search_composition(elements=["Mg", "O"], only_elements=True, n=1)] == [low]
    assert [r.id for r in store.search_composition(formula="MgO", n=2)] == [low, high]


def test_records_stored_before_the_index_are_found(tmp_path: Path) -> None:
    """A store written before the search index (no has_<El> flags, no index entries): a new store object gives them
    both on its first search, and element filters (composition and text search) find every record."""
    path = tmp_path / "old"
    store = StructureStore(path)
    mgo = store.add(rocksalt(), provenance={}, energy=-40.0).id
    nio = store.add(rocksalt(cation="Ni"), provenance={}, energy=-30.0).id
    got = store.texts.get(include=["metadatas", "documents", "embeddings"])
    metas = [{k: v for k, v in m.items() if not k.startswith("has_") and k != "index_v"} for m in got["metadatas"]]
    store.texts.delete(ids=got["ids"])
    store.texts.add(ids=got["ids"], metadatas=metas, documents=got["documents"], embeddings=got["embeddings"])
    store.index.delete(ids=got["ids"])
    store.add(rocksalt(cation="Zn"), provenance={}, energy=-35.0)  # a new record beside them
    again = StructureStore(path)
    assert [r.id for r in again.search_composition(elements=["O"], n=5)][::2] == [mgo, nio]
    assert [r.id for r in again.search_composition(within=["Ni", "O"], n=5)] == [nio]
    assert {r.id for r, _ in again.search_text("oxide", 5, {"el_Mg": True})} == {mgo}
    assert again.index.count() == 3


def test_index_entries_without_hull_fields_are_rewritten(tmp_path: Path) -> None:
    """Index entries written before they held the hull fields (index_v 1, separate keys rather than the packed
    row) are rewritten on the next store object's first hull query, so the relaxation they index is a hull row."""
    from memory.store import _index_entry

    store = StructureStore(tmp_path / "mem")
    rid = store.add(rocksalt(), provenance={}, properties=_relaxation("emt", -40.0)).id
    meta = store.texts.get(ids=[rid], include=["metadatas"])["metadatas"][0]
    vector, _ = _index_entry(rid, meta)
    store.index.delete(ids=[rid])
    old = {"formula": "Mg4O4", "reduced_formula": "MgO", "chemsys": "Mg-O", "n_elements": 2, "has_Mg": 1, "has_O": 1}
    store.index.add(ids=[rid], embeddings=[vector], metadatas=[old])
    assert StructureStore(tmp_path / "mem").hull_rows(["Mg", "O"], "emt") == []  # read as written: no hull fields
    hull = {"hull_potential": "emt", "hull_energy_eV": -40.0, "hull_relaxation": True, "hull_converged": True}
    store.index.delete(ids=[rid])
    store.index.add(ids=[rid], embeddings=[vector], metadatas=[{**old, **hull}])
    assert [r.energy for r in StructureStore(tmp_path / "mem").hull_rows(["Mg", "O"], "emt")] == [-40.0]
    store.index.delete(ids=[rid])
    store.index.add(ids=[rid], embeddings=[vector], metadatas=[old])
    store.texts.update(ids=[rid], metadatas=[{"index_v": 1}])
    assert [r.id for r in StructureStore(tmp_path / "mem").hull_rows(["Mg", "O"], "emt")] == [rid]


def test_equivalence_on_cells_reduced_once_agrees_with_structure_matcher() -> None:
    """The store's de-duplication reduces each cell once and compares reduced cells: the same verdicts as pymatgen's
    StructureMatcher.fit on the raw cells, for equivalent (shifted, permuted, supercell, 2% strain) and different
    (15% strain, other element, other structure) pairs."""
    import numpy as np
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Lattice, Structure

    from memory.equivalence import Equivalence

    base = rocksalt()
    shifted = base.copy()
    shifted.translate_sites(list(range(len(shifted))), [0.13, 0.0, 0.27])
    permuted = Structure.from_sites(list(reversed(base.sites)))
    supercell = base.copy()
    supercell.make_supercell([2, 1, 1])
    strained = {f: Structure(Lattice(base.lattice.matrix @ np.diag([1 + f, 1, 1])), base.species, base.frac_coords)
                for f in (0.02, 0.15)}
    other_element = base.copy()
    other_element.replace_species({"Mg": "Ca"})
    cscl = Structure(Lattice.cubic(2.6), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    others = [shifted, permuted, supercell, strained[0.02], strained[0.15], other_element, cscl]
    equivalence = Equivalence()
    matcher = StructureMatcher(ltol=0.05, stol=0.1, angle_tol=2, primitive_cell=True, scale=False)
    verdicts = [equivalence.same(equivalence.reduced(base), equivalence.reduced(o)) for o in others]
    assert verdicts == [matcher.fit(base, o) for o in others]
    assert verdicts == [True, True, True, True, False, False, False]


def test_text_search_embeds_what_a_record_is_once_per_text() -> None:
    """The embedded text leaves out continuous numbers (two energies of one kind of cell share it), the document
    keeps them, and a text is encoded once (the cache returns the same vector)."""
    from memory import embedding
    from memory.store import describe, embedding_text

    meta = {"reduced_formula": "MgO", "spacegroup_symbol": "Fm-3m", "spacegroup_number": 225,
            "crystal_system": "cubic", "elements": "|Mg|O|", "n_sites": 8, "density": 3.58, "tags": "relaxed",
            "tool": "relax_structure"}
    low, high = {**meta, "energy_per_atom": -5.9}, {**meta, "energy_per_atom": -5.1}
    assert embedding_text(low, None) == embedding_text(high, None)
    assert "density" not in embedding_text(low, None) and "eV/atom" not in embedding_text(low, None)
    assert describe(rocksalt(), low, "note") == (
        "MgO crystal structure; space group Fm-3m (No. 225), cubic; elements Mg O; 8 atoms per cell, density 3.58 "
        "g/cm3; energy -5.900 eV/atom; tags: relaxed; made by relax_structure; note")
    text = embedding_text(low, "a rock salt oxide")
    first = embedding.embed_texts([text])[0]
    assert text in embedding._cache
    assert embedding.embed_texts(["another text", text])[1] == first
    assert abs(sum(x * x for x in first) - 1.0) < 1e-5


def test_composition_search_and_hull_rows_agree_with_a_scan_of_every_record(tmp_path: Path) -> None:
    """The in-memory index table against a brute-force scan of every stored record's metadata: same n lowest for
    element, exact-element and within queries, same hull rows, on 120 cells of 24 chemistries."""
    store = StructureStore(tmp_path / "mem")
    rng = random.Random(11)
    items = []
    for i in range(120):
        cation, anion = rng.choice(["Mg", "Ca", "Ni", "Zn"]), rng.choice(["O", "S", "Se", "Mg"])
        cell = rocksalt(4.0 + 0.01 * i, cation, anion if anion != cation else "O")
        props = _relaxation(rng.choice(["emt", "mace"]), rng.uniform(-40, -10), rng.random() < 0.8)
        items.append({"structure": cell, "provenance": {}, "energy": rng.uniform(-40, -10),
                      "properties": props if rng.random() < 0.7 else {}})
    store.add_many(items, workers=0)
    got = store.texts.get(include=["metadatas"])
    every = [store._record(i, m) for i, m in zip(got["ids"], got["metadatas"], strict=True)]

    def elements_of(r):
        return set(r.metadata["elements"].strip("|").split("|"))

    def lowest(keep, n):
        chosen = sorted((r for r in every if keep(r)), key=lambda r: (r.metadata["energy_per_atom"], r.id))
        return [r.id for r in chosen[:n]]

    for el in ("Mg", "O", "Se", "Zn"):
        want = lowest(lambda r, el=el: el in elements_of(r), 7)
        assert [r.id for r in store.search_composition(elements=[el], n=7)] == want
    pair = ["Ca", "S"]
    assert [r.id for r in store.search_composition(elements=pair, only_elements=True, n=5)] == lowest(
        lambda r: elements_of(r) == set(pair), 5)
    assert [r.id for r in store.search_composition(within=["Mg", "O", "Ni"], n=9)] == lowest(
        lambda r: elements_of(r) <= {"Mg", "O", "Ni"}, 9)
    for system in (["Mg", "O"], ["Ca", "Ni", "O", "S"]):
        want = {r.id for r in every if elements_of(r) <= set(system) and r.properties.get("potential") == "emt"
                and "relaxed" in r.properties}
        assert {r.id for r in store.hull_rows(system, "emt")} == want


def test_a_second_client_sees_records_written_after_its_table_was_loaded(tmp_path: Path) -> None:
    """Two store objects on one directory: the first loads its in-memory table, the second writes; the first's
    next search and hull query include the new record (the stamp written with every index write)."""
    first, second = StructureStore(tmp_path / "mem"), StructureStore(tmp_path / "mem")
    a = first.add(rocksalt(), provenance={}, energy=-40.0, properties=_relaxation("emt", -40.0)).id
    assert [r.id for r in first.search_composition(elements=["Mg"])] == [a]
    b = second.add(rocksalt(4.5), provenance={}, energy=-44.0, properties=_relaxation("emt", -44.0)).id
    assert [r.id for r in first.search_composition(elements=["Mg"])] == [b, a]
    assert {r.id for r in first.hull_rows(["Mg", "O"], "emt")} == {a, b}
    second.update(a, energy=-60.0)
    assert [r.id for r in first.search_composition(elements=["Mg"])] == [a, b]
