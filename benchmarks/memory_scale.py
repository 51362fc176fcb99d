"""Structure memory at scale: batch store, searches and the hull query at N = 1k, 10k (and 100k).

Structures are real decorated prototypes (models/crystals/prototypes.py: rock salt, CsCl, zincblende, fluorite,
rutile, perovskite) with random element substitutions from a fixed pool and random lattice strains (up to 4%), so
chemical systems overlap as in a real workspace; ~70% carry a converged EMT-like relaxation (potential, energy_eV,
relaxed), ~10% an unconverged one. Everything is stored in real chromadb on disk.

Each row is measured against a named peer in the same run:
- batch store (`StructureStore.add_many`, structures prepared in 2 worker processes) vs the one-by-one path (`add`,
  timed on a sample, per-structure rate x N);
- formula / element search (all matches ranked, from the in-memory index table) vs one chromadb metadata filter
  returning only the ids of every match (the previous design's floor; its cost grows with the matches);
- text / similarity search vs the bare chromadb query without building records (the floor);
- hull rows for a candidate (`hull_rows`, from the index table) vs the old scan (every record inside the system
  fetched and its CIF parsed);
- and the first search of a new client, which loads the index table (once per store object).
The run also prints how many of the texts asked for were run through the encoder (the rest came from its cache).

Usage: `.venv/bin/python benchmarks/memory_scale.py [--sizes 1000 10000 100000] [--queries 40] [--dir DIR]`.

Results, dated and with their commands, are in benchmarks/RESULTS.md under `memory_scale.py`. Issue 26's goals:
100k stored in under 20 min on 2 cores; every search and the hull rows p95 < 50 ms at 100k.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402

from memory import embedding  # noqa: E402
from memory.keys import (  # noqa: E402
    ENERGY_EV_KEY,
    HULL_ENERGY_KEY,
    HULL_POTENTIAL_KEY,
    HULL_RELAXATION_KEY,
    POTENTIAL_KEY,
    REDUCED_FORMULA_KEY,
    TOOL_KEY,
    has_element_key,
)
from memory.store import CONVERGED, RELAXED, StructureStore, _hull_fields  # noqa: E402
from models.crystals.prototypes import decorate  # noqa: E402

FAMILIES = {  # family -> roles and the element pools they draw from
    "rock salt": {"A": "cation", "X": "anion"},
    "cscl": {"A": "cation", "X": "anion"},
    "zincblende": {"A": "cation", "X": "anion"},
    "fluorite": {"A": "cation", "X": "anion"},
    "rutile": {"A": "cation", "X": "anion"},
    "perovskite": {"A": "large", "B": "cation", "X": "anion"},
}
POOLS = {
    "cation": ["Mg", "Ca", "Zn", "Ni", "Co", "Fe", "Mn", "Ti", "Zr", "Sn", "Cu", "Cd"],
    "large": ["Sr", "Ba", "La", "K", "Na", "Pb"],
    "anion": ["O", "S", "Se", "F", "Cl", "N"],
}
TEXTS = ["cubic perovskite oxide", "rock salt sulfide", "fluorite structure fluoride", "tetragonal rutile",
         "zincblende semiconductor selenide", "relaxed nickel oxide", "barium titanate", "low energy nitride"]


def synthetic(rng: random.Random, templates: dict[tuple, Structure]) -> dict:
    """One store item: a decorated prototype (cached per decoration), strained, with random relaxation labels."""
    family = rng.choice(list(FAMILIES))
    roles = {role: rng.choice(POOLS[pool]) for role, pool in FAMILIES[family].items()}
    if len(set(roles.values())) < len(roles):
        roles["X"] = "O" if roles["X"] != "O" else "S"
    key = (family, tuple(sorted(roles.items())))
    if key not in templates:
        templates[key] = decorate(family, roles)
    base = templates[key]
    strain = np.eye(3) + np.diag([rng.uniform(-0.04, 0.04) for _ in range(3)])
    cell = Structure(Lattice(base.lattice.matrix @ strain), base.species, base.frac_coords)
    energy = len(cell) * rng.uniform(-8.0, -2.0)
    roll = rng.random()
    if roll < 0.7:
        props = {POTENTIAL_KEY: "emt", ENERGY_EV_KEY: energy, RELAXED: True, CONVERGED: True}
    elif roll < 0.8:
        props = {POTENTIAL_KEY: "emt", ENERGY_EV_KEY: energy, RELAXED: False, CONVERGED: False}
    else:
        props = {}
    return {"structure": cell, "provenance": {TOOL_KEY: "benchmark"}, "energy": energy, "properties": props,
            "tags": [family.replace(" ", "-")]}


def percentiles(fn: Callable[[object], object], args: list) -> tuple[float, float]:
    """p50 and p95 of fn over args, in ms."""
    times = []
    for arg in args:
        t0 = time.perf_counter()
        fn(arg)
        times.append(1000 * (time.perf_counter() - t0))
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def old_hull_scan(store: StructureStore, elements: list[str], potential: str) -> list:
    """The scan memory_entries did before hull metadata: every record made only of these elements, CIF parsed."""
    rows = []
    for record in store.search_composition(n=10**9, within=sorted(elements)):
        fields = _hull_fields(record.properties)
        if fields.get(HULL_POTENTIAL_KEY) == potential and fields[HULL_RELAXATION_KEY]:
            rows.append((record.id, record.structure.composition, fields[HULL_ENERGY_KEY]))
    return rows


def chroma_filter(store: StructureStore, where: dict) -> list:
    """The previous design's floor: one chromadb metadata filter returning the ids of every match (no metadata);
    its cost grows with the matches."""
    return store.texts.get(where=where, include=[])["ids"]


def measure(store: StructureStore, rng: random.Random, items: list[dict], n_queries: int) -> dict:
    """p50/p95 (ms) of each query and its peer on the store as it stands."""
    sample = rng.sample(items, min(n_queries, len(items)))
    formulas = [it["structure"].composition.reduced_formula for it in sample]
    elements = [rng.choice([el.symbol for el in it["structure"].composition.elements]) for it in sample]
    systems = [sorted(el.symbol for el in it["structure"].composition.elements) for it in sample]
    texts = [TEXTS[i % len(TEXTS)] for i in range(len(sample))]
    from memory.embedding import embed_texts
    from memory.fingerprint import structure_fingerprint

    out = {
        "formula": percentiles(lambda f: store.search_composition(formula=f, n=5), formulas),
        "formula_peer": percentiles(lambda f: chroma_filter(store, {REDUCED_FORMULA_KEY: f}), formulas),
        "element": percentiles(lambda e: store.search_composition(elements=[e], n=20), elements),
        "element_peer": percentiles(lambda e: chroma_filter(store, {has_element_key(e): 1}), elements),
        "text": percentiles(lambda q: store.search_text(q, 5), texts),
        "text_peer": percentiles(
            lambda q: store.texts.query(query_embeddings=embed_texts([q]), n_results=5, include=["distances"]), texts
        ),
        "similarity": percentiles(lambda it: store.search_similar(it["structure"], 5), sample),
        "similarity_peer": percentiles(
            lambda it: store.fingerprints.query(
                query_embeddings=[structure_fingerprint(it["structure"])], n_results=5, include=["distances"]
            ),
            sample,
        ),
        "hull": percentiles(lambda els: store.hull_rows(els, "emt"), systems),
        "hull_peer": percentiles(lambda els: old_hull_scan(store, els, "emt"), systems[: max(5, n_queries // 4)]),
    }
    # The answers agree: same hull rows both ways (on a few systems).
    for els in systems[:5]:
        new = sorted(r.id for r in store.hull_rows(els, "emt"))
        old = sorted(r[0] for r in old_hull_scan(store, els, "emt"))
        assert new == old, (els, len(new), len(old))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="store sizes to measure at")
    parser.add_argument("--queries", type=int, default=40, help="queries per measurement")
    parser.add_argument("--one-by-one", type=int, default=100, help="structures stored one by one for the peer rate")
    parser.add_argument("--batch-size", type=int, default=256, help="add_many batch size")
    parser.add_argument("--workers", type=int, default=None,
                        help="add_many worker processes (default: add_many's own choice, 2 on 2 cores)")
    parser.add_argument("--dir", type=Path, default=None, help="store directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    rng = random.Random(0)
    root = args.dir or Path(tempfile.mkdtemp(prefix="memory_scale-"))
    templates: dict[tuple, Structure] = {}
    t0 = time.perf_counter()
    items = [synthetic(rng, templates) for _ in range(max(args.sizes))]
    print(f"generated {len(items)} structures ({len(templates)} decorations) in {time.perf_counter() - t0:.1f} s",
          flush=True)

    # Peer: the one-by-one path, on its own store, for a sample.
    single = StructureStore(root / "one_by_one")
    single.add(items[0]["structure"], provenance={})  # load the embedding model outside the timing
    t0 = time.perf_counter()
    for item in items[1 : 1 + args.one_by_one]:
        single.add(**item)
    per_one = (time.perf_counter() - t0) / args.one_by_one
    print(f"one-by-one add: {1000 * per_one:.1f} ms per structure ({args.one_by_one} stored)", flush=True)

    store = StructureStore(root / "batch")
    rows, stored, batch_seconds = [], 0, 0.0
    for size in sorted(args.sizes):
        t0 = time.perf_counter()
        results = store.add_many(items[stored:size], batch_size=args.batch_size, workers=args.workers)
        batch_seconds += time.perf_counter() - t0
        new = sum(not r.deduplicated for r in results)
        stored = size
        print(f"N={size}: batch store {batch_seconds:.1f} s total ({1000 * batch_seconds / size:.1f} ms per "
              f"structure; {store.count()} records, {new} new in this step)", flush=True)
        m = measure(store, rng, items[:size], args.queries)
        t0 = time.perf_counter()  # a new client: its first search loads the in-memory index table
        StructureStore(root / "batch").search_composition(elements=["O"], n=20)
        m["cold_s"] = time.perf_counter() - t0
        print(f"  first search of a new client (loads the index table): {m['cold_s']:.1f} s; texts embedded "
              f"{embedding.STATS['encoded']} of {embedding.STATS['texts']} asked (the rest from the cache)",
              flush=True)
        rows.append({"N": size, "records": store.count(), "store_s": batch_seconds,
                     "store_peer_s": per_one * size, "encoded": embedding.STATS["encoded"],
                     "texts": embedding.STATS["texts"], **m})
        for key in ("formula", "element", "text", "similarity", "hull"):
            print(f"  {key:10s} p50/p95 {m[key][0]:7.1f} / {m[key][1]:7.1f} ms   peer {m[key + '_peer'][0]:7.1f} / "
                  f"{m[key + '_peer'][1]:7.1f} ms", flush=True)

    print("\n| N | records | batch store (s) | one-by-one, extrapolated (s) | formula p50/p95 ms (chromadb filter) | "
          "element p50/p95 ms (chromadb filter) | text p50/p95 ms (bare query) | similarity p50/p95 ms (bare query) | "
          "hull p50/p95 ms (old scan) | new client's first search (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k][0]:.1f}/{r[k][1]:.1f} ({r[k + '_peer'][0]:.1f}/{r[k + '_peer'][1]:.1f})"
                 for k in ("formula", "element", "text", "similarity", "hull")]
        head = f"| {r['N']} | {r['records']} | {r['store_s']:.0f} | {r['store_peer_s']:.0f} | "
        print(head + " | ".join(cells) + f" | {r['cold_s']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
