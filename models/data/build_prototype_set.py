"""Build the relaxed prototype set of the diffusion generator (issue 30), resumably.

Candidates: every AFLOW prototype pymatgen ships with <= 40 atoms in its primitive cell, decorated by ICSD
substitution probabilities (ionic prototypes, charge balanced by construction), by element pools (intermetallic and
elemental prototypes), plus charge-balanced cation/anion pairs across the periodic table in the common binary
AB, AB2, A2B3, AB3 (and A2B, A3B) ionic prototypes, metal pairs in the common intermetallic ones and each element's
fcc/bcc/hcp (and diamond/simple cubic for the p block) structures. Deduplicated on (reduced formula, space group of
the prototype, atoms); no reduced formula of benchmarks/data/unseen_cells.json is ever a candidate.

Relaxation: CHGNet (FIRE, FrechetCellFilter, capped steps) one cell at a time on one thread, appended in chunks to
workspace/diffusion_set/relaxed.w<k>.jsonl; cells already in those files or in the committed
models/data/diffusion_relaxed.json.gz are skipped, so any rerun continues where the last one stopped.

python -m models.data.build_prototype_set relax --minutes 60 [--worker 0 --workers 2]
python -m models.data.build_prototype_set pack    # cache -> models/data/diffusion_relaxed.json.gz
python -m models.data.build_prototype_set stats   # counts per kind / prototype, planned vs relaxed
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import os
import random
import sys
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import covalent_radii
from pymatgen.core import Composition, Element, Species, Structure

from models.data.splits import split_of

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RELAXED_FILE = HERE / "diffusion_relaxed.json.gz"
CACHE_DIR = ROOT / "workspace" / "diffusion_set"
UNSEEN_FILE = ROOT / "benchmarks" / "data" / "unseen_cells.json"
MAX_ATOMS = 40
MIN_COV_RATIO_BUILD = 0.7  # candidate kept only if every pair is >= 0.7 of its covalent radii sum
MIN_COV_RATIO_RELAXED = 0.6  # a relaxed cell closer than this "blew up" and is dropped
MAX_VOLUME_CHANGE = 2.0  # relaxed/initial volume outside [1/2, 2] -> dropped

_EXCLUDED_Z = {2, 10, 18, 36, 43, 54, 61, 84, 85, 86}  # noble gases, Tc, Pm, Po, At
SUPPORTED: tuple[str, ...] = tuple(Element.from_Z(z).symbol for z in range(1, 84) if z not in _EXCLUDED_Z)
ANIONS = ("N", "P", "As", "Sb", "O", "S", "Se", "Te", "F", "Cl", "Br", "I", "H")
NOT_CATIONS = {"H", "N", "O", "F", "Cl", "Br", "I"}
NONMETALS = {"H", "B", "C", "N", "O", "F", "P", "S", "Cl", "Se", "Br", "I"}


def element_class(symbol: str) -> str:
    """Chemical class used for pool decoration: alkali, alkaline, rare earth, early/late TM, p-metal, metalloid, ..."""
    el = Element(symbol)
    if symbol in NONMETALS:
        return "nonmetal"
    if el.is_alkali:
        return "alkali"
    if el.is_alkaline:
        return "alkaline"
    if el.is_rare_earth or el.is_lanthanoid or symbol in ("Sc", "Y") or el.is_actinoid:
        return "rare_earth"
    if el.is_transition_metal:
        return "early_tm" if el.group <= 7 else "late_tm"
    if symbol in ("Si", "Ge", "As", "Sb", "Te"):
        return "metalloid"
    return "p_metal"


def class_pools() -> dict[str, list[str]]:
    """Supported elements grouped by element_class."""
    pools: dict[str, list[str]] = defaultdict(list)
    for symbol in SUPPORTED:
        pools[element_class(symbol)].append(symbol)
    return dict(pools)


def unseen_formulas(path: Path = UNSEEN_FILE) -> set[str]:
    """Reduced formulas of the held-out unseen-cell evaluation set: never a training candidate."""
    entries = json.loads(path.read_text())["entries"]
    return {Composition(e["formula"]).reduced_formula for e in entries}


def min_cov_ratio(s: Structure) -> float:
    """Smallest (distance / covalent radii sum) over all atom pairs, periodic images included; inf for one atom
    in a cell whose images are far."""
    radii = np.array([covalent_radii[site.specie.Z] for site in s])
    cutoff = 2.0 * float(radii.max()) + 0.5
    i, j, _, d = s.get_neighbor_list(cutoff)
    if len(d) == 0:
        return float("inf")
    return float(np.min(d / (radii[i] + radii[j])))


# --------------------------------------------------------------------------- prototypes


@lru_cache(maxsize=8)
def aflow_prototypes(
    max_atoms: int = MAX_ATOMS, wanted: frozenset[str] | None = None
) -> tuple[tuple[str, Structure], ...]:
    """(AFLOW label, primitive Niggli-reduced structure) of every library entry (or of the `wanted` labels) with
    <= max_atoms atoms; labels that repeat get a #k suffix."""
    from models.crystals.prototypes import aflow_library

    out: list[tuple[str, Structure]] = []
    seen: Counter[str] = Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tags, s in aflow_library():
            seen[tags["aflow"]] += 1
            label = tags["aflow"] if seen[tags["aflow"]] == 1 else f"{tags['aflow']}#{seen[tags['aflow']]}"
            if wanted is not None and label not in wanted:
                continue
            prim = s.get_primitive_structure().get_reduced_structure()
            if len(prim) <= max_atoms:
                out.append((label, prim))
    return tuple(out)


@lru_cache(maxsize=1)
def substitution_predictor() -> Any:
    """pymatgen's ICSD-derived SubstitutionPredictor (threshold 1e-4), loaded once."""
    from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionPredictor

    return SubstitutionPredictor(threshold=1e-4)


def ionic_species(comp: Composition) -> dict[str, Species] | None:
    """Integer oxidation states of a charge-balanced ionic reading of the composition (an anion from ANIONS with a
    negative state, every other element positive), or None (intermetallic, mixed valence)."""
    try:
        guesses = comp.reduced_composition.oxi_state_guesses(max_sites=-20)
    except Exception:
        return None
    for guess in guesses[:3]:
        if any(abs(v - round(v)) > 1e-6 for v in guess.values()):
            continue
        negative = [el for el, v in guess.items() if v < 0]
        if not negative or any(el not in ANIONS for el in negative) or any(v == 0 for v in guess.values()):
            continue
        return {el: Species(el, int(round(v))) for el, v in guess.items()}
    return None


def prototype_kind(s: Structure) -> str:
    """'elemental', 'ionic' or 'intermetallic'."""
    if len(s.composition.elements) == 1:
        return "elemental"
    return "ionic" if ionic_species(s.composition) is not None else "intermetallic"


def substitution_maps(s: Structure, predictor: Any, top: int) -> list[dict[str, str]]:
    """Old element -> new element maps of the `top` most probable ICSD substitutions of an ionic prototype's
    composition (oxidation states kept, so each is charge balanced)."""
    species = ionic_species(s.composition)
    if species is None:
        return []
    try:
        preds = predictor.composition_prediction({sp: 1.0 for sp in species.values()})
    except ValueError:  # a species outside the ICSD probability table
        return []
    preds.sort(key=lambda p: -p["probability"])
    counts = s.composition.reduced_composition
    maps = []
    for pred in preds[:top]:
        new_of_old = {str(old): new for new, old in pred["substitutions"].items()}
        # the table also substitutes across charges (Ti4+ -> Zn2+): keep only neutral decorations
        charge = sum(counts[el] * new_of_old[str(sp)].oxi_state for el, sp in species.items())
        mapping = {el: new_of_old[str(sp)].symbol for el, sp in species.items()}
        if abs(charge) < 1e-6 and len(set(mapping.values())) == len(mapping):
            maps.append(mapping)
    return maps


def charge_balanced(formula: str) -> bool:
    """Whether pymatgen finds a neutral assignment of ICSD oxidation states to the formula."""
    return bool(Composition(formula).oxi_state_guesses(max_sites=-20))


def pool_maps(s: Structure, rng: random.Random, limit: int) -> list[dict[str, str]]:
    """Up to `limit` random maps sending each element to a distinct supported element of its own class."""
    pools = class_pools()
    elements = sorted({site.specie.symbol for site in s})
    choices = [pools.get(element_class(el), [el]) for el in elements]
    total = int(np.prod([len(c) for c in choices]))
    maps: list[dict[str, str]] = []
    seen: set[tuple[str, ...]] = set()
    for _ in range(min(limit * 4, total * 4)):
        pick = tuple(rng.choice(c) for c in choices)
        if len(set(pick)) == len(pick) and pick not in seen:
            seen.add(pick)
            maps.append(dict(zip(elements, pick, strict=True)))
            if len(maps) >= limit:
                break
    return maps


def oxidation_states(symbol: str) -> tuple[int, ...]:
    """Common oxidation states that ICSD also has (pymatgen's oxi_state_guesses uses the ICSD ones)."""
    el = Element(symbol)
    icsd = set(el.icsd_oxidation_states)
    return tuple(q for q in el.common_oxidation_states if q in icsd) if icsd else tuple(el.common_oxidation_states)


@lru_cache(maxsize=1)
def charge_balanced_pairs() -> tuple[tuple[str, int, str, int], ...]:
    """(cation, +q, anion, -p) over every supported element with a common positive state and every anion."""
    pairs = []
    for cat in SUPPORTED:
        if cat in NOT_CATIONS:
            continue
        for q in oxidation_states(cat):
            if q <= 0:
                continue
            for an in ANIONS:
                if an == cat:
                    continue
                for p in oxidation_states(an):
                    if p < 0:
                        pairs.append((cat, q, an, -p))
    return tuple(pairs)


def binary_ionic_maps(s: Structure) -> list[dict[str, str]]:
    """Every charge-balanced cation/anion pair whose stoichiometry fits a binary prototype, either way round."""
    comp = s.composition.reduced_composition
    (e1, n1), (e2, n2) = [(el.symbol, int(round(n))) for el, n in comp.items()]
    maps = []
    seen = set()
    for cat, q, an, p in charge_balanced_pairs():
        g = np.gcd(q, p)
        n_cat, n_an = p // g, q // g  # cation:anion counts of the neutral formula
        for a_site, b_site, na, nb in ((e1, e2, n1, n2), (e2, e1, n2, n1)):
            if (na, nb) == (n_cat, n_an) and (cat, an, a_site) not in seen:
                seen.add((cat, an, a_site))
                maps.append({a_site: cat, b_site: an})
    return maps


# binary prototypes (AFLOW labels) decorated with every charge-balanced pair / with metal pairs
BINARY_IONIC = (
    "AB_cF8_225_a_b", "AB_cP2_221_b_a", "AB_cF8_216_c_a", "AB_hP4_186_b_b", "AB_hP4_194_c_a",  # AB
    "AB2_cF12_225_a_c", "A2B_tP6_136_f_a", "AB2_hP3_164_a_d", "AB2_hP6_194_c_f", "A2B_tI12_141_e_a",  # AB2
    "A2B3_hR10_167_c_e", "A2B3_hR5_166_c_ac",  # A2B3
    "A3B_cP4_221_d_a", "AB3_hR8_148_c_f", "AB3_hR8_155_c_de",  # AB3
    "A2B_cP6_224_b_a", "A3B_hP4_191_bc_a", "AB3_hP8_194_c_bf",  # A2B (cuprite; fluorite both ways), A3B
)
BINARY_METAL = (
    "AB_cP2_221_b_a", "AB_tP2_123_a_d",  # B2, L1_0
    "A2B_cF24_227_d_a", "AB2_hP12_194_f_ah", "AB2_hP3_191_a_d", "AB2_tI6_139_a_e",  # C15, C14, C32, C11b
    "A3B2_hP5_164_ad_d",  # A3B2 (D5_13)
    "AB3_cP4_221_a_c", "A3B_hP8_194_h_c", "A3B_tI8_139_bd_a", "A3B_cP8_223_c_a",  # L1_2, D0_19, D0_22, A15
)
ELEMENTAL = {"fcc": "A_cF4_225_a", "bcc": "A_cI2_229_a", "hcp": "A_hP2_194_c", "diamond": "A_cF8_227_a",
             "sc": "A_cP1_221_a"}


def metal_pair_maps(s: Structure, rng: random.Random, limit: int) -> list[dict[str, str]]:
    """Up to `limit` random ordered pairs of distinct metals for a binary intermetallic prototype."""
    metals = [el for el in SUPPORTED if element_class(el) not in ("nonmetal",)]
    e1, e2 = sorted({site.specie.symbol for site in s})
    pairs = [p for p in itertools.permutations(metals, 2)]
    rng.shuffle(pairs)
    return [{e1: a, e2: b} for a, b in pairs[:limit]]


def elemental_maps(s: Structure, name: str) -> list[dict[str, str]]:
    """Each supported element in a common elemental structure (diamond and simple cubic for the p block only)."""
    (old,) = {site.specie.symbol for site in s}
    if name in ("diamond", "sc"):
        return [{old: el} for el in SUPPORTED if Element(el).block == "p"]
    return [{old: el} for el in SUPPORTED]


# --------------------------------------------------------------------------- candidates


def decorate(base: Structure, mapping: dict[str, str], volume_predictor: Any) -> Structure | None:
    """The prototype with elements replaced, scaled to the DLS volume; None if it clashes or is absurd."""
    s = base.copy()
    s.replace_species({old: new for old, new in mapping.items()})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = volume_predictor.get_predicted_structure(s)
    except Exception:
        return None
    vpa = s.volume / len(s)
    if not np.isfinite(vpa) or vpa < 3.0 or vpa > 100.0 or min_cov_ratio(s) < MIN_COV_RATIO_BUILD:
        return None
    return s


def spacegroup_of(label: str) -> int:
    """Space-group number from an AFLOW label (A2B_tP6_136_f_a -> 136)."""
    return int(label.split("#")[0].split("_")[2])


def candidate_record(s: Structure, prototype: str, kind: str, source: str) -> dict[str, Any]:
    """A candidate as a plain record (same fields as build_diffusion_set plus id, kind)."""
    formula = s.composition.reduced_formula
    return {
        "id": f"{prototype}|{formula}",
        "formula": formula,
        "prototype": prototype,
        "kind": kind,
        "source": source,
        "species": [site.specie.symbol for site in s],
        "lattice": np.round(s.lattice.matrix, 5).tolist(),
        "frac": np.round(s.frac_coords % 1.0, 5).tolist(),
        "split": split_of(formula),
    }


def _jobs(
    per_ionic: int, per_pool: int, per_metal_pair: int, seed: int, wanted: set[str] | None = None
) -> Iterator[tuple[str, str, str, list]]:
    """(prototype label, kind, source, element maps) for every decoration job of the recipe (or of `wanted`)."""
    protos = dict(aflow_prototypes(MAX_ATOMS, frozenset(wanted) if wanted is not None else None))
    for name, label in ELEMENTAL.items():
        if wanted is None or label in wanted:
            maps = elemental_maps(protos[label], name)
            random.Random(f"{seed}:{label}:elements").shuffle(maps)  # any prefix spans the periodic table
            yield label, "elemental", f"elemental:{name}", maps
    for label in BINARY_IONIC:
        if wanted is None or label in wanted:
            maps = binary_ionic_maps(protos[label])
            random.Random(f"{seed}:{label}:ions").shuffle(maps)
            yield label, "ionic", "charge_balance", maps
    for label in BINARY_METAL:
        if wanted is None or label in wanted:
            rng = random.Random(f"{seed}:{label}:pairs")
            yield label, "intermetallic", "metal_pairs", metal_pair_maps(protos[label], rng, per_metal_pair)
    for label, s in protos.items():
        kind = prototype_kind(s)
        if kind == "ionic":
            yield label, kind, "substitution", substitution_maps(s, substitution_predictor(), per_ionic)
        else:
            yield label, kind, "pool", pool_maps(s, random.Random(f"{seed}:{label}"), per_pool)


def build_candidates(
    per_ionic: int = 60, per_pool: int = 30, per_metal_pair: int = 120, seed: int = 0,
    only: Iterable[str] | None = None, log: Any = sys.stderr,
) -> list[dict[str, Any]]:
    """Every candidate of the recipe (optionally only some prototype labels), deduplicated on (formula, space group,
    atoms), unseen-set formulas excluded, ordered round-robin across prototypes so any prefix spans them."""
    from pymatgen.analysis.structure_prediction.volume_predictor import DLSVolumePredictor

    volume_predictor = DLSVolumePredictor()
    excluded = unseen_formulas()
    wanted = set(only) if only is not None else None
    protos = dict(aflow_prototypes(MAX_ATOMS, frozenset(wanted) if wanted is not None else None))
    seen: set[tuple[str, int, int]] = set()
    by_proto: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for label, kind, source, maps in _jobs(per_ionic, per_pool, per_metal_pair, seed, wanted):
        t0, n0 = time.time(), len(by_proto[label])
        for mapping in maps:
            formula = Composition(
                {mapping[el.symbol]: n for el, n in protos[label].composition.items()}).reduced_formula
            key = (formula, spacegroup_of(label), len(protos[label]))
            if formula in excluded or key in seen or any(el not in SUPPORTED for el in mapping.values()):
                continue
            if kind == "ionic" and not charge_balanced(formula):
                continue
            s = decorate(protos[label], mapping, volume_predictor)
            if s is None:
                continue
            seen.add(key)
            by_proto[label].append(candidate_record(s, label, kind, source))
        print(f"{label} [{kind}/{source}]: {len(by_proto[label]) - n0} cells ({time.time() - t0:.1f} s)",
              file=log, flush=True)
    return round_robin(by_proto)


def round_robin(by_key: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Interleave lists: first of each, then second of each, ..."""
    lists = [by_key[k] for k in sorted(by_key)]
    return [rec for group in itertools.zip_longest(*lists) for rec in group if rec is not None]


def cached_candidates(cache_dir: Path = CACHE_DIR, rebuild: bool = False) -> list[dict[str, Any]]:
    """The candidate list, built once and cached at cache_dir/candidates.json.gz."""
    path = cache_dir / "candidates.json.gz"
    if path.exists() and not rebuild:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    records = build_candidates()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(records, fh, separators=(",", ":"))
    return records


# --------------------------------------------------------------------------- relaxation


def record_structure(rec: dict[str, Any]) -> Structure:
    """The pymatgen Structure of a record."""
    return Structure(rec["lattice"], rec["species"], rec["frac"])


@dataclass
class _Relaxed:
    structure: Structure
    energy: float
    steps: int
    converged: bool
    max_force: float


def _relax(structure: Structure, calc: Any, fmax: float, max_steps: int) -> _Relaxed:
    """FIRE on positions and cell (FrechetCellFilter) with an ASE calculator; models know nothing of tools, so
    this is the plain ASE loop rather than tools.potentials.calculators.relax."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = calc
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converged = bool(opt.run(fmax=fmax, steps=max_steps))
    energy = float(atoms.get_potential_energy())
    max_force = float(np.abs(atoms.get_forces()).max()) if len(atoms) else 0.0
    atoms.calc = None
    return _Relaxed(AseAtomsAdaptor.get_structure(atoms), energy, int(opt.nsteps), converged, max_force)


def relax_record(rec: dict[str, Any], calc: Any, fmax: float = 0.1, max_steps: int = 200) -> dict[str, Any]:
    """Relax one candidate (FIRE + FrechetCellFilter); the result record, status 'kept' or 'dropped' (reason)."""
    s0 = record_structure(rec)
    t0, c0 = time.time(), time.process_time()
    base = {"id": rec["id"], "formula": rec["formula"], "prototype": rec["prototype"], "kind": rec["kind"],
            "source": rec["source"], "split": rec["split"], "n_atoms": len(s0)}
    try:
        out = _relax(s0, calc, fmax=fmax, max_steps=max_steps)
    except Exception as exc:  # noqa: BLE001 - a failed cell is recorded and skipped, never retried
        return {**base, "status": "dropped", "reason": f"error: {str(exc)[:80]}", "seconds": time.time() - t0}
    s = out.structure
    seconds = round(time.time() - t0, 2)
    cpu = round(time.process_time() - c0, 2)  # CPU seconds on one thread: the machine's other load is not in it
    ratio = s.volume / s0.volume
    reason = None
    if not np.isfinite(out.energy):
        reason = "non-finite energy"
    elif not 1 / MAX_VOLUME_CHANGE <= ratio <= MAX_VOLUME_CHANGE:
        reason = f"volume x{ratio:.2f}"
    elif len(s) > 1 and min_cov_ratio(s) < MIN_COV_RATIO_RELAXED:
        reason = f"atoms at {min_cov_ratio(s):.2f} of covalent radii sum"
    if reason is not None:
        return {**base, "status": "dropped", "reason": reason, "seconds": seconds, "cpu_seconds": cpu,
                "steps": out.steps}
    return {
        **base, "status": "kept", "converged": out.converged, "steps": out.steps, "seconds": seconds,
        "cpu_seconds": cpu, "max_force": round(out.max_force, 4), "energy_per_atom": round(out.energy / len(s), 5),
        "volume_ratio": round(ratio, 4), "species": [site.specie.symbol for site in s],
        "lattice": np.round(s.lattice.matrix, 5).tolist(), "frac": np.round(s.frac_coords % 1.0, 5).tolist(),
    }


def read_results(cache_dir: Path = CACHE_DIR, committed: Path = RELAXED_FILE) -> dict[str, dict[str, Any]]:
    """Every relaxation result so far by id: the committed file, then the cache's relaxed*.jsonl chunks."""
    results: dict[str, dict[str, Any]] = {}
    if committed.exists():
        with gzip.open(committed, "rt", encoding="utf-8") as fh:
            for rec in json.load(fh):
                results[rec["id"]] = rec
    for path in sorted(cache_dir.glob("relaxed*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            results[rec["id"]] = rec
    return results


def _owned(rec_id: str, worker: int, workers: int) -> bool:
    """Whether a cell belongs to this worker's shard (hash of its id)."""
    return int(hashlib.md5(rec_id.encode()).hexdigest(), 16) % workers == worker


def relax_all(
    candidates: list[dict[str, Any]], calc: Any, cache_dir: Path = CACHE_DIR, committed: Path = RELAXED_FILE,
    minutes: float = 60.0, chunk: int = 10, worker: int = 0, workers: int = 1, max_steps: int = 200,
    log: Any = sys.stderr,
) -> int:
    """Relax the cells not done yet (this worker's shard, in candidate order) until the time is up; results are
    appended every `chunk` cells to cache_dir/relaxed.w<worker>.jsonl. Returns the number relaxed now."""
    done = read_results(cache_dir, committed)
    todo = [r for r in candidates if r["id"] not in done and _owned(r["id"], worker, workers)]
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"relaxed.w{worker}.jsonl"
    stop = time.time() + 60.0 * minutes
    pending: list[dict[str, Any]] = []
    n, seconds, cpu = 0, 0.0, 0.0
    print(f"worker {worker}/{workers}: {len(done)} done, {len(todo)} to do", file=log, flush=True)

    def flush() -> None:
        with path.open("a") as fh:
            fh.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in pending)
        pending.clear()

    for rec in todo:
        if time.time() > stop:
            break
        res = relax_record(rec, calc, max_steps=max_steps)
        pending.append(res)
        n += 1
        seconds += res["seconds"]
        cpu += res.get("cpu_seconds", 0.0)
        if len(pending) >= chunk:
            flush()
            print(f"w{worker}: {n} cells, {seconds / n:.2f} s/cell wall, {cpu / n:.2f} s/cell CPU; last {res['id']} "
                  f"{res['status']}",
                  file=log, flush=True)
    flush()
    return n


def pack(
    cache_dir: Path = CACHE_DIR, committed: Path = RELAXED_FILE, candidate_ids: set[str] | None = None
) -> dict[str, int]:
    """Write every result so far (kept cells with structures, dropped ones as id + reason) to the committed file;
    with candidate_ids, results of cells no longer in the recipe are left out."""
    results = sorted(read_results(cache_dir, committed).values(), key=lambda r: r["id"])
    if candidate_ids is not None:
        results = [r for r in results if r["id"] in candidate_ids]
    with gzip.open(committed, "wt", encoding="utf-8", compresslevel=9) as fh:
        json.dump(results, fh, separators=(",", ":"))
    return dict(Counter(r["status"] for r in results))


def relaxed_records(path: Path = RELAXED_FILE, max_force: float = 0.3) -> list[dict[str, Any]]:
    """Training records from the committed relaxed cells: kept and converged, or with residual force <= max_force
    (eV/A); unseen-set formulas are excluded again as a guard."""
    if not path.exists():
        return []
    excluded = unseen_formulas()
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        results = json.load(fh)
    return [r for r in results if r["status"] == "kept" and (r["converged"] or r["max_force"] <= max_force)
            and r["formula"] not in excluded]


def stats(cache_dir: Path = CACHE_DIR, committed: Path = RELAXED_FILE) -> dict[str, Any]:
    """Counts of planned and relaxed cells per kind and source, elements covered, mean wall / CPU seconds and FIRE
    steps per cell."""
    candidates = cached_candidates(cache_dir)
    results = read_results(cache_dir, committed)
    kept = [r for r in results.values() if r["status"] == "kept"]
    timed = [r["seconds"] for r in results.values() if "seconds" in r]
    cpu = [r["cpu_seconds"] for r in results.values() if "cpu_seconds" in r]
    return {
        "planned": len(candidates),
        "planned_by_kind": dict(Counter(r["kind"] for r in candidates)),
        "planned_by_source": dict(Counter(r["source"].split(":")[0] for r in candidates)),
        "prototypes": len({r["prototype"] for r in candidates}),
        "elements_planned": len({e for r in candidates for e in r["species"]}),
        "relaxed": len(results),
        "status": dict(Counter(r["status"] for r in results.values())),
        "converged": sum(bool(r.get("converged")) for r in kept),
        "kept_by_kind": dict(Counter(r["kind"] for r in kept)),
        "kept_by_source": dict(Counter(r["source"].split(":")[0] for r in kept)),
        "kept_prototypes": len({r["prototype"] for r in kept}),
        "elements_kept": len({e for r in kept for e in r["species"]}),
        "seconds_per_cell": round(float(np.mean(timed)), 2) if timed else None,
        "cpu_seconds_per_cell": round(float(np.mean(cpu)), 2) if cpu else None,
        "steps_per_cell": round(float(np.mean([r["steps"] for r in results.values() if "steps" in r])), 1)
        if results else None,
        "atoms_per_cell": round(float(np.mean([r["n_atoms"] for r in results.values()])), 1) if results else None,
        "drop_reasons": dict(Counter(r["reason"].split(":")[0].split(" ")[0] for r in results.values()
                                     if r["status"] == "dropped")),
    }


def main(argv: list[str] | None = None) -> None:
    """CLI: build (candidates), relax (resumable, time-boxed), pack (to the committed file), stats."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "relax", "pack", "stats"))
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=200)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.command == "build":
        records = cached_candidates(rebuild=True)
        print(json.dumps({"candidates": len(records), **Counter(r["kind"] for r in records)}))
    elif args.command == "relax":
        import torch

        from models.potentials.universal import load_universal

        torch.set_num_threads(1)
        warnings.simplefilter("ignore")
        calc = load_universal("chgnet")
        relax_all(cached_candidates(), calc, minutes=args.minutes, worker=args.worker, workers=args.workers,
                  max_steps=args.max_steps)
    elif args.command == "pack":
        print(json.dumps(pack(candidate_ids={r["id"] for r in cached_candidates()})))
    else:
        print(json.dumps(stats(), indent=1))


if __name__ == "__main__":
    main()
