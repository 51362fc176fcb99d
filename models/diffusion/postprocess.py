"""Post-processing of sampled cells: snap near-symmetric samples onto their space group (spglib); check samples
for overlapping atoms (covalent radii), push overlaps apart, and redraw what cannot be repaired."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer


def symmetrize(structure: Structure, symprec: float = 0.1) -> Structure:
    """The primitive standard cell of the space group found at tolerance symprec (Angstrom); the input if none fits.

    Diffusion samples carry small residual noise; snapping atoms onto the Wyckoff positions they are close to removes
    it without changing the composition (a result with another composition is rejected)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refined = SpacegroupAnalyzer(structure, symprec=symprec).get_primitive_standard_structure()
    except Exception:  # spglib finds no cell at this tolerance
        return structure
    if refined.composition.reduced_composition != structure.composition.reduced_composition:
        return structure
    if len(refined) > len(structure) or abs(refined.volume / len(refined) - structure.volume / len(structure)) > (
        0.2 * structure.volume / len(structure)
    ):
        return structure
    return refined


# ---- sample validity: covalent-radius overlap check, push-apart repair, redraw ---------------------------------------

DEFAULT_MIN_FRACTION = 0.5  # closest pair must be >= this fraction of the sum of the two covalent radii
DEFAULT_MIN_DISTANCE_A = 0.5  # and never closer than this (DiffCSP's validity criterion)
REPAIR_MARGIN = 1.1  # repair pushes overlapping pairs to this multiple of their threshold, so the check passes
REPAIR_STEPS = 60

Redraw = Callable[[int, int], list[Structure]]  # (number of structures, redraw round 1, 2, ...) -> new structures


def covalent_radii(structure: Structure) -> np.ndarray:
    """Covalent radius (Cordero et al. 2008, pymatgen's table) of each site's element in Angstrom (1.5 if unknown)."""
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius

    return np.array([CovalentRadius.radius.get(site.specie.symbol, 1.5) for site in structure], dtype=float)


def _cell_ok(structure: Structure) -> bool:
    matrix = structure.lattice.matrix
    return bool(np.all(np.isfinite(matrix)) and np.all(np.isfinite(structure.frac_coords))
                and abs(np.linalg.det(matrix)) > 1e-3 * len(structure))


def _pairs(positions: np.ndarray, cell: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half periodic neighbour list within cutoff: i, j and the vectors r_j + images - r_i (vesin; ase fallback)."""
    import vesin

    points = np.ascontiguousarray(positions, dtype=np.float64)
    box = np.ascontiguousarray(cell, dtype=np.float64)
    try:
        i, j, vec = vesin.NeighborList(cutoff=float(cutoff), full_list=False).compute(
            points, box, periodic=True, quantities="ijD")
    except Exception:  # pragma: no cover - vesin refuses some degenerate boxes; ase's list is the fallback
        from ase import Atoms
        from ase.neighborlist import neighbor_list

        i, j, vec = neighbor_list("ijD", Atoms(positions=points, cell=box, pbc=True), float(cutoff))
        keep = (i < j) | ((i == j) & (np.arange(len(i)) % 2 == 0))  # ase gives a full list: keep each pair once
        i, j, vec = i[keep], j[keep], vec[keep]
    return np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64), np.asarray(vec, dtype=float).reshape(-1, 3)


def _thresholds(radii: np.ndarray, i: np.ndarray, j: np.ndarray, min_fraction: float,
                min_distance: float) -> np.ndarray:
    return np.maximum(min_fraction * (radii[i] + radii[j]), min_distance)


def overlap_ratio(structure: Structure, min_fraction: float = DEFAULT_MIN_FRACTION,
                  min_distance: float = DEFAULT_MIN_DISTANCE_A) -> float:
    """Smallest (pair distance / pair threshold) over all pairs with periodic images, where the threshold is
    max(min_fraction x sum of covalent radii, min_distance); >= 1 means valid. Capped at 1.5 (pairs further apart are
    not searched); 0 for a non-finite or degenerate cell."""
    if not _cell_ok(structure):
        return 0.0
    radii = covalent_radii(structure)
    cutoff = 1.5 * max(min_fraction * 2 * float(radii.max()), min_distance)
    i, j, vec = _pairs(structure.cart_coords, structure.lattice.matrix, cutoff)
    if not len(i):
        return 1.5
    d = np.linalg.norm(vec, axis=1)
    return float(min(1.5, (d / _thresholds(radii, i, j, min_fraction, min_distance)).min()))


def is_valid_sample(structure: Structure, min_fraction: float = DEFAULT_MIN_FRACTION,
                    min_distance: float = DEFAULT_MIN_DISTANCE_A) -> bool:
    """Finite, non-degenerate cell and no pair (periodic images included) closer than
    max(min_fraction x sum of their covalent radii, min_distance)."""
    return overlap_ratio(structure, min_fraction, min_distance) >= 1.0


@dataclass
class RepairResult:
    structure: Structure  # the input itself when it was already valid or could not be repaired
    valid: bool
    repaired: bool  # atoms were moved and the result passes the check
    steps: int
    max_displacement_A: float


def repair_overlaps(structure: Structure, min_fraction: float = DEFAULT_MIN_FRACTION,
                    min_distance: float = DEFAULT_MIN_DISTANCE_A, max_steps: int = REPAIR_STEPS,
                    seed: int = 0) -> RepairResult:
    """Push overlapping atoms apart, keeping the cell: steepest descent (step 1/2) on the soft-sphere energy
    E = sum over overlapping pairs of (t - d)^2 / 2 with t = REPAIR_MARGIN x threshold, i.e. each overlapping pair
    is moved apart along its vector by half its deficit per atom and step, until the check passes or max_steps.

    A valid structure is returned as it is (not a copy, no atom moved). Only atoms in overlapping pairs move. A
    cell too short along a lattice vector (an atom overlaps its own image) cannot be repaired this way."""
    if not _cell_ok(structure):
        return RepairResult(structure, False, False, 0, 0.0)
    radii = covalent_radii(structure)
    cell = structure.lattice.matrix
    cutoff = REPAIR_MARGIN * max(min_fraction * 2 * float(radii.max()), min_distance)
    start = structure.cart_coords.copy()
    pos = start.copy()
    rng = np.random.default_rng(seed)
    for step in range(max_steps + 1):
        i, j, vec = _pairs(pos, cell, cutoff)
        d = np.linalg.norm(vec, axis=1)
        thr = _thresholds(radii, i, j, min_fraction, min_distance)
        if not np.any(d < thr):
            if step == 0:
                return RepairResult(structure, True, False, 0, 0.0)
            out = Structure(structure.lattice, structure.species, pos, coords_are_cartesian=True,
                            site_properties=structure.site_properties or None)
            moved = float(np.linalg.norm(pos - start, axis=1).max())
            return RepairResult(out, True, True, step, moved)
        if step == max_steps or np.any((i == j) & (d < thr)):  # out of steps, or an atom overlaps its own image
            break
        target = REPAIR_MARGIN * thr
        over = (d < target) & (i != j)
        i, j, vec, d, target = i[over], j[over], vec[over], d[over], target[over]
        unit = np.empty_like(vec)
        tiny = d < 1e-8
        unit[~tiny] = vec[~tiny] / d[~tiny, None]
        if tiny.any():  # coincident atoms: a random direction
            r = rng.normal(size=(int(tiny.sum()), 3))
            unit[tiny] = r / np.linalg.norm(r, axis=1, keepdims=True)
        push = 0.5 * (target - d)[:, None] * unit
        disp = np.zeros_like(pos)
        np.add.at(disp, i, -push)
        np.add.at(disp, j, push)
        pos = pos + disp
    return RepairResult(structure, False, False, max_steps, 0.0)


@dataclass
class ValidityReport:
    """Samples after the check, repair and redraw. status per sample: 'valid' (as sampled), 'repaired', 'redrawn'
    (a later draw, valid or repaired), 'invalid' (still failing after max_redraws rounds; the last draw is kept)."""

    structures: list[Structure]
    status: list[str]
    redraws: list[int]  # per sample: how many times it was redrawn
    n_repaired: int  # returned samples whose atoms were moved by the repair
    n_redrawn: int  # samples replaced by a redraw at least once
    n_redraw_samples: int  # structures drawn in redraw rounds in all
    redraw_rounds: int
    n_still_invalid: int
    min_fraction: float
    min_distance_A: float
    max_displacement_A: list[float] = field(default_factory=list)  # per sample, by the repair (0: not moved)

    @property
    def valid(self) -> list[bool]:
        return [s != "invalid" for s in self.status]


def ensure_valid(structures: list[Structure], redraw: Redraw | None = None,
                 min_fraction: float = DEFAULT_MIN_FRACTION, min_distance: float = DEFAULT_MIN_DISTANCE_A,
                 max_redraws: int = 2, repair: bool = True) -> ValidityReport:
    """Check every sample; repair overlapping ones (repair_overlaps); redraw those still invalid with `redraw`
    (called with the number needed and the round, 1..max_redraws; each round's new samples are repaired too)."""
    n = len(structures)
    out = list(structures)
    status = ["invalid"] * n
    redraws = [0] * n
    moved = [0.0] * n
    repaired_flags = [False] * n

    def settle(k: int, s: Structure, fresh: bool) -> None:
        res = repair_overlaps(s, min_fraction, min_distance, seed=k) if repair else RepairResult(
            s, is_valid_sample(s, min_fraction, min_distance), False, 0, 0.0)
        out[k], moved[k] = res.structure, res.max_displacement_A
        if res.valid:
            status[k] = "redrawn" if fresh else ("repaired" if res.repaired else "valid")
        repaired_flags[k] = res.repaired

    for k, s in enumerate(structures):
        settle(k, s, False)
    rounds = drawn = 0
    for r in range(1, max_redraws + 1):
        todo = [k for k in range(n) if status[k] == "invalid"]
        if not todo or redraw is None:
            break
        fresh = redraw(len(todo), r)
        rounds, drawn = r, drawn + len(todo)
        for k, s in zip(todo, fresh, strict=True):
            redraws[k] += 1
            settle(k, s, True)
    return ValidityReport(
        structures=out, status=status, redraws=redraws,
        n_repaired=sum(f and st != "invalid" for f, st in zip(repaired_flags, status, strict=True)),
        n_redrawn=sum(r > 0 for r in redraws), n_redraw_samples=drawn, redraw_rounds=rounds,
        n_still_invalid=status.count("invalid"), min_fraction=min_fraction, min_distance_A=min_distance,
        max_displacement_A=[round(m, 4) for m in moved])
