"""Candidate polymorphs of a composition (memory, AFLOW prototypes, ASE elemental structures, pyxtal's CIF
database and optional pyxtal random crystals), the physical-validity filter for relaxed motifs, and motif
identification (space group + StructureMatcher against the candidates, clustering of the unidentified)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Element, Structure

from memory.store import symmetry_of
from models.crystals.prototypes import aflow_library
from tools.discovery.family_match import MATCHER

# Identification of relaxed structures uses pymatgen's standard tolerances (a motif box may be a supercell); the
# loose generative match-rate tolerances (MATCHER) fit 7-atom P1 Si cells to simple cubic. MATCHER stays for
# candidate deduplication and for whether a prototype kept its structure when relaxed from a far-off geometry.
IDENTIFY_MATCHER = StructureMatcher(attempt_supercell=True)

MAX_CANDIDATE_SITES = 24


@dataclass
class Candidate:
    """A named candidate polymorph; `energy_per_atom` is set once relaxed with the potential."""

    label: str
    structure: Structure
    source: str  # "memory", "prototype", "pyxtal-database", "pyxtal-random"
    memory_id: str | None = None
    priority: int = 3  # relaxation order: memory 0, named elemental or this formula's own structure type 1, other
    # named (mineral or Strukturbericht) types 2, other prototypes 3, random 4; smaller cells first from level 2
    energy_per_atom: float | None = None
    converged: bool = False  # the relaxation reached fmax: only then is its energy the polymorph's minimum
    relaxed: Structure | None = None
    kept: bool = False  # set with `relaxed`: kept_structure(self), so the rankings need not recompute it
    n_primitive: int = 0
    space_group: int = 0
    same_as: str | None = None  # set by merge_relaxed_duplicates: the candidate whose structure it relaxed into

    def __post_init__(self) -> None:
        """Cache the primitive-cell size (a motif can only match when its size is a multiple of it) and the space
        group (two prototypes with different groups are different polymorphs, however loosely they fit)."""
        if not self.space_group:
            self.space_group = symmetry_of(self.structure)[1]
        if not self.n_primitive:
            self.n_primitive = primitive_size(self.structure)


def primitive_size(structure: Structure) -> int:
    """Atoms in the primitive cell (the cell as given when spglib fails on a degenerate cell)."""
    try:
        return len(structure.get_primitive_structure())
    except Exception:  # spglib fails on some cells: fall back to the cell as given
        return len(structure)


def _group_and_size(structure: Structure) -> tuple[int, int]:
    """Space-group number and primitive-cell size: two structures the loose matcher fits (hcp and bcc Si) differ
    here."""
    return symmetry_of(structure)[1], primitive_size(structure)


@lru_cache(maxsize=1)
def _aflow_structures() -> tuple[tuple[str, Structure], ...]:
    """(name, structure) of every AFLOW prototype pymatgen ships; name = mineral, else Strukturbericht, else label."""
    out = []
    for tags, structure in aflow_library():
        name = _tag(tags, "mineral") or _tag(tags, "strukturbericht") or _tag(tags, "aflow") or "prototype"
        out.append((f"{name} ({_tag(tags, 'aflow')})".strip(), structure))
    return tuple(out)


@lru_cache(maxsize=1)
def _aflow_is_named() -> tuple[bool, ...]:
    """Whether each AFLOW prototype (same order as _aflow_structures) is a classical structure type: it carries a
    mineral name or a Strukturbericht designation (B2 = CsCl, L1_0, C15 ...)."""
    return tuple(bool(_tag(tags, "mineral") or _tag(tags, "strukturbericht")) for tags, _ in aflow_library())


def _tag(tags: dict[str, str], key: str) -> str:
    """An AFLOW tag, '' when absent (the file writes a missing Strukturbericht designation as the text 'None')."""
    value = str(tags.get(key) or "").strip()
    return "" if value == "None" else value


@lru_cache(maxsize=32)
def _pyxtal_database(elements: frozenset[str]) -> tuple[tuple[str, Structure], ...]:
    """The CIFs that pyxtal ships (quartz, cristobalite, ...) that mention every one of `elements`, parsed."""
    import pyxtal

    folder = Path(pyxtal.__file__).parent / "database" / "cifs"
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(folder.glob("*.cif")):
            text = path.read_text(errors="ignore")
            if not all(re.search(rf"\b{el}\d*\b", text) for el in elements):
                continue  # cheap text filter before the (slow) CIF parse
            try:
                structure = Structure.from_file(path)
            except Exception:  # molecular or malformed CIFs: not candidates
                continue
            if len(structure) <= 200:
                out.append((path.stem, structure))
    return tuple(out)


def _decorate(proto: Structure, target: Composition) -> Structure | None:
    """Put the target's elements on a prototype with the same anonymous formula: species ranked by amount, ties
    broken by electronegativity, so e.g. Ti takes the 'A' of anatase's A2B... as the minority species."""
    proto_comp = proto.composition.reduced_composition
    if proto_comp.anonymized_formula != target.reduced_composition.anonymized_formula:
        return None

    def order(comp: Composition) -> list[str]:
        return [el.symbol for el in sorted(comp.elements, key=lambda e: (comp[e], Element(e.symbol).X))]

    mapping = dict(zip(order(proto_comp), order(target.reduced_composition), strict=True))
    decorated = proto.copy()
    decorated.replace_species(mapping)
    return decorated


def _elemental(symbol: str) -> list[tuple[str, Structure]]:
    """Simple elemental structures from ASE (diamond, fcc, bcc, hcp, simple cubic) at a rough volume."""
    from ase.build import bulk

    from tools.structures.io import atoms_to_structure

    r = float(Element(symbol).atomic_radius or 1.4)
    builds = {
        "diamond (A4, ase)": bulk(symbol, "diamond", a=8 * r / np.sqrt(3)),
        "fcc (A1, ase)": bulk(symbol, "fcc", a=2 * np.sqrt(2) * r),
        "bcc (A2, ase)": bulk(symbol, "bcc", a=4 * r / np.sqrt(3)),
        "hcp (A3, ase)": bulk(symbol, "hcp", a=2 * r, c=3.266 * r),
        "simple cubic (Ah, ase)": bulk(symbol, "sc", a=2 * r),
    }
    return [(name, atoms_to_structure(atoms)) for name, atoms in builds.items()]


def _random_pyxtal(target: Composition, n: int, seed: int) -> list[tuple[str, Structure]]:
    """n pyxtal random crystals of the formula unit in random space groups (seeded)."""
    from pyxtal import pyxtal

    rng = np.random.default_rng(seed)
    elements = [el.symbol for el in target.elements]
    counts = [int(round(target[el])) for el in target.elements]
    out: list[tuple[str, Structure]] = []
    for attempt in range(8 * n):
        if len(out) >= n:
            break
        group = int(rng.integers(2, 231))
        crystal = pyxtal()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crystal.from_random(3, group, elements, [c * 2 for c in counts], random_state=seed + attempt)
            out.append((f"pyxtal random #{len(out) + 1} (spg {group})", crystal.to_pymatgen()))
        except Exception:  # pyxtal refuses incompatible Wyckoff combinations: try another group
            continue
    return out


def candidate_polymorphs(
    target: Composition, store: Any = None, n_random: int = 0, seed: int = 0, max_sites: int = MAX_CANDIDATE_SITES,
    notes: list[str] | None = None,
) -> list[Candidate]:
    """Distinct candidate polymorphs of the target's reduced formula: prototypes, pyxtal's database, random pyxtal
    crystals, then memory records that are none of these; duplicates (StructureMatcher) keep the first name.
    A memory that fails to answer adds no candidates and a line to `notes` saying so (raised when no `notes`)."""
    reduced = target.reduced_composition
    found: list[Candidate] = []
    stored: list[Candidate] = []
    if store is not None:
        try:
            records = store.search_composition(formula=reduced.reduced_formula, n=20)
        except Exception as exc:  # an unreachable memory must not pass for one without this formula
            if notes is None:
                raise
            records = []
            notes.append(f"memory could not be searched for stored {reduced.reduced_formula} structures "
                         f"({type(exc).__name__}: {str(exc)[:120]}): candidates come from prototypes and pyxtal only")
        for record in records:
            sym, _, _ = symmetry_of(record.structure)
            stored.append(Candidate(f"memory {record.id} ({sym})", record.structure, "memory", memory_id=record.id,
                                    priority=0))
    raw: list[tuple[str, Structure, str, int]] = []
    if len(reduced.elements) == 1:
        raw += [(n, s, "prototype", 1) for n, s in _elemental(reduced.elements[0].symbol)]
    for (name, proto), named in zip(_aflow_structures(), _aflow_is_named(), strict=True):
        if len(proto) <= max_sites:
            decorated = _decorate(proto, reduced)
            if decorated is not None:
                own = proto.composition.reduced_formula == reduced.reduced_formula  # rutile for TiO2
                raw.append((name, decorated, "prototype", (1 if own else 2) if named else 3))
    for name, structure in _pyxtal_database(frozenset(el.symbol for el in reduced.elements)):
        if structure.composition.reduced_formula == reduced.reduced_formula and len(structure) <= max_sites:
            raw.append((f"{name} (pyxtal database)", structure, "pyxtal-database", 2))
    if n_random:
        raw += [(n, s, "pyxtal-random", 4) for n, s in _random_pyxtal(reduced, n_random, seed)]
    # the formula's own structure types (elements: reference state first), then other named ones with simple
    # (small) cells first: a duplicate keeps the best-known name, the relaxation budget goes to the likeliest
    # polymorphs, and a stored structure that is a known polymorph keeps the polymorph's name
    built = sorted((Candidate(name, structure, source, priority=priority) for name, structure, source, priority
                    in raw), key=lambda c: (c.priority, c.n_primitive if c.priority > 1 else 0))
    for candidate in built + stored:
        if not any(_same(candidate, other) for other in found):
            found.append(candidate)
    return found


def _same(a: Candidate, b: Candidate) -> bool:
    """Two candidates are the same polymorph: same space group and primitive size, and a species-aware
    StructureMatcher fit (the loose fit alone merges rutile into marcasite)."""
    if a.n_primitive != b.n_primitive or a.space_group != b.space_group:
        return False
    return matches(a.structure, b.structure)


def matches(x: Structure, y: Structure, matcher: StructureMatcher = MATCHER) -> bool:
    """Species-aware StructureMatcher fit, by default with the loose tolerances (False when the matcher fails)."""
    if x.composition.reduced_formula != y.composition.reduced_formula:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bool(matcher.fit(x, y))
        except Exception:  # the matcher fails on some degenerate cells: no match
            return False


def kept_structure(candidate: Candidate) -> bool:
    """True when relaxation left a candidate its polymorph: it still fits its starting geometry, or it kept the same
    space group and primitive-cell size. Prototype internal coordinates can sit far from this chemistry's (the
    decorated anatase's O moves by 0.4 normalised RMS under CHGNet and stays I4_1/amd), so the fit alone would
    throw the true ground state out of the thermodynamic ranking."""
    if candidate.relaxed is None:
        return False
    if matches(candidate.relaxed, candidate.structure):
        return True
    return _group_and_size(candidate.relaxed) == (candidate.space_group, candidate.n_primitive)


def rms_distance(x: Structure, y: Structure) -> float | None:
    """Normalised RMS displacement of the identification fit of x onto y; None when they do not match."""
    if x.composition.reduced_formula != y.composition.reduced_formula:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = IDENTIFY_MATCHER.get_rms_dist(x, y)
        except Exception:  # the matcher fails on some degenerate cells: no match
            return None
    return None if result is None else float(result[0])


# Two relaxed candidates within this energy (eV/atom) that the matcher fits are one polymorph.
RELAXED_DUPLICATE_EV = 0.01


def merge_relaxed_duplicates(candidates: list[Candidate], tolerance_eV: float = RELAXED_DUPLICATE_EV) -> int:
    """Mark each candidate that relaxed into another's relaxed structure (same space group and primitive size,
    energy within tolerance_eV per atom, a matcher fit) with `same_as` = the other's label; returns how many were
    marked. The name that survives is a candidate that kept its own space group, first in priority order: the
    2-atom R-3m beta-oxygen prototype that relaxes into diamond Si (a different space group before relaxation, so
    not merged then) becomes diamond, and the tetragonal L'2 TiO2 that relaxes into cubic fluorite, fluorite."""
    marked = 0
    done = [(c, c.relaxed, c.energy_per_atom, _group_and_size(c.relaxed)) for c in candidates
            if c.relaxed is not None and c.energy_per_atom is not None]
    done.sort(key=lambda t: t[3][0] != t[0].space_group)  # stable: priority order within each half
    for i, (cand, relaxed, energy, shape) in enumerate(done):
        for earlier, earlier_relaxed, earlier_energy, earlier_shape in done[:i]:
            if (earlier.kept and earlier.same_as is None and shape == earlier_shape
                    and abs(energy - earlier_energy) <= tolerance_eV
                    and matches(relaxed, earlier_relaxed, IDENTIFY_MATCHER)):
                cand.same_as = earlier.label
                marked += 1
                break
    return marked


# Fits within this normalised RMS of the best one are a tie, which the earlier (better-known) candidate wins.
MATCH_TIE_RMS = 0.02

# A motif relaxed with the same potential as a kept, converged candidate cannot be that polymorph when its energy per
# atom lies more than ENERGY_CONSISTENCY_EV above (generous for distorted or defective motifs the loose matcher
# tolerates) or more than ENERGY_BELOW_EV below (the same structure cannot relax lower; a symmetry-broken distortion
# that does is another structure). Stops the loose matcher calling a 3-atom TiO2 cell at -9.24 eV/atom the omega
# structure that relaxes to -7.40, or a C222_1 Si cell 0.18 eV/atom below simple cubic "simple cubic".
ENERGY_CONSISTENCY_EV = 0.25
ENERGY_BELOW_EV = 0.05


def best_match(
    structure: Structure, candidates: list[Candidate], energy_per_atom: float | None = None
) -> Candidate | None:
    """The candidate that the structure fits with the smallest RMS displacement (prototype, or its relaxed form when
    relaxation kept it): small cells fit several polymorphs, so the first fit is not enough. With the structure's
    relaxed `energy_per_atom`, a kept, converged candidate whose relaxed energy lies more than ENERGY_CONSISTENCY_EV
    below it or ENERGY_BELOW_EV above it is no match. Near-ties (MATCH_TIE_RMS) go to the earlier candidate, and a
    candidate that relaxed into another (`same_as`) answers with that one."""
    by_label = {c.label: (k, c) for k, c in enumerate(candidates)}
    scored = []
    for order, cand in enumerate(candidates):
        if len(structure) % max(cand.n_primitive, 1):
            continue
        rank, named = by_label.get(cand.same_as or "", (order, cand))  # the polymorph it stands for
        if (energy_per_atom is not None and named.kept and named.converged and named.energy_per_atom is not None
                and not -ENERGY_BELOW_EV <= energy_per_atom - named.energy_per_atom <= ENERGY_CONSISTENCY_EV):
            continue
        # the relaxed form names the polymorph only when relaxation kept it (or turned it into `named`)
        refs = [cand.structure] + ([cand.relaxed] if cand.relaxed is not None and (cand.kept or cand.same_as) else [])
        dists = [d for ref in refs if (d := rms_distance(structure, ref)) is not None]
        if dists:
            scored.append((min(dists), rank, named))
    if not scored:
        return None
    best = min(d for d, _, _ in scored)
    return min((t for t in scored if t[0] <= best + MATCH_TIE_RMS), key=lambda t: t[1])[2]


@dataclass
class ValidityCriteria:
    """What a relaxed motif must satisfy to count: energy went down, formation energy in a window, no fusion."""

    energy_tolerance_eV: float = 1e-3
    formation_min_eV: float = -5.0
    formation_max_eV: float = 0.5
    min_distance_A: float = 1.0


def validity_problems(
    initial_energy: float, final_energy: float, formation_energy_per_atom: float, min_distance: float,
    criteria: ValidityCriteria,
) -> list[str]:
    """Why a relaxed motif is not physical (empty list = valid).

    A relaxation must not raise the energy: keep when final <= initial + tolerance. (Reading the reference
    check literally, a motif whose energy dropped would be rejected: that direction is wrong.)"""
    problems = []
    if not (np.isfinite(initial_energy) and np.isfinite(final_energy) and np.isfinite(formation_energy_per_atom)):
        return ["non-finite energy"]
    if final_energy > initial_energy + criteria.energy_tolerance_eV:
        problems.append(f"energy rose during relaxation ({initial_energy:.4f} -> {final_energy:.4f} eV)")
    if not criteria.formation_min_eV <= formation_energy_per_atom <= criteria.formation_max_eV:
        problems.append(
            f"formation energy {formation_energy_per_atom:.3f} eV/atom outside "
            f"[{criteria.formation_min_eV}, {criteria.formation_max_eV}]"
        )
    if min_distance < criteria.min_distance_A:
        problems.append(f"atoms fused: closest pair {min_distance:.3f} A < {criteria.min_distance_A} A")
    return problems


@dataclass
class Motif:
    """One relaxed subcell and what it was identified as."""

    index: int
    replica: int
    n_atoms: int
    initial_energy: float
    energy: float
    energy_per_atom: float
    formation_energy_per_atom: float
    steps: int
    converged: bool
    structure: Structure
    spacegroup: str
    spacegroup_number: int
    problems: list[str] = field(default_factory=list)
    label: str | None = None
    source: str | None = None
    relaxed_by: str = "potential"  # "teacher" once the teacher re-relaxed it (its energies are then the teacher's)

    @property
    def valid(self) -> bool:
        """Passed every validity check."""
        return not self.problems


def identify(motifs: list[Motif], candidates: list[Candidate], target: Composition) -> None:
    """Label each valid motif: the first candidate it matches, else a cluster of unidentified motifs of the same
    structure ('unidentified <formula> <space group> #k'); off-composition motifs are labelled by formula."""
    clusters: list[tuple[str, Structure]] = []
    reduced = target.reduced_composition.reduced_formula
    for motif in motifs:
        if not motif.valid:
            continue
        if motif.structure.composition.reduced_formula != reduced:
            motif.label, motif.source = f"{motif.structure.composition.reduced_formula} {motif.spacegroup}", "other"
            continue
        best = best_match(motif.structure, candidates, motif.energy_per_atom)
        if best is not None:
            motif.label, motif.source = best.label, best.source
        else:
            for name, rep in clusters:
                if matches(motif.structure, rep, IDENTIFY_MATCHER):
                    motif.label = name
                    break
            else:
                motif.label = f"unidentified {reduced} {motif.spacegroup} #{len(clusters) + 1}"
                clusters.append((motif.label, motif.structure))
            motif.source = "unidentified"
