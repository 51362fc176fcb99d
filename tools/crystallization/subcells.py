"""Local motifs of an amorphous cell ("subcells"): every axis-aligned box on a fractional grid of spacing d_frac
whose atom count lies in [n_min, n_max] becomes its own periodic cell, scaled to the box.

Boxes are counted with 3D prefix sums of per-species bin histograms (vectorised per box shape), never by looping
over atoms per box, so a fine grid on a large cell stays cheap; selection is a seeded permutation."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from pymatgen.core import Composition, Lattice, Structure


@dataclass
class SubcellGrid:
    """All qualifying boxes of one parent cell: lower grid corner and size (in grid bins) of each box."""

    parent: Atoms
    n_bins: int
    lower: np.ndarray  # (N, 3) int
    size: np.ndarray  # (N, 3) int
    n_atoms: np.ndarray  # (N,) int

    def __len__(self) -> int:
        return len(self.lower)

    def structure(self, index: int) -> Structure:
        """Box `index` as its own periodic cell: the parent's lattice vectors scaled by the box's fractions."""
        frac = np.mod(self.parent.get_scaled_positions(wrap=True), 1.0)
        bins = np.minimum((frac * self.n_bins).astype(int), self.n_bins - 1)
        lo, size = self.lower[index], self.size[index]
        mask = np.all((bins >= lo) & (bins < lo + size), axis=1)
        lo_frac, span = lo / self.n_bins, size / self.n_bins
        new_frac = (frac[mask] - lo_frac) / span
        lattice = np.array(self.parent.cell) * span[:, None]
        symbols = [s for s, keep in zip(self.parent.get_chemical_symbols(), mask, strict=True) if keep]
        return Structure(Lattice(lattice), symbols, new_frac)


def _box_sums(prefix: np.ndarray, sx: int, sy: int, sz: int) -> np.ndarray:
    """Sums over every box of shape (sx, sy, sz) from a zero-padded 3D prefix-sum array (last axis: species)."""
    p = prefix
    return (
        p[sx:, sy:, sz:] - p[:-sx, sy:, sz:] - p[sx:, :-sy, sz:] - p[sx:, sy:, :-sz]
        + p[:-sx, :-sy, sz:] + p[:-sx, sy:, :-sz] + p[sx:, :-sy, :-sz] - p[:-sx, :-sy, :-sz]
    )


def enumerate_subcells(
    atoms: Atoms,
    d_frac: float,
    n_min: int,
    n_max: int,
    cubic_only: bool = True,
    target: Composition | None = None,
) -> SubcellGrid:
    """Every box of the d_frac grid with n_min..n_max atoms (cubic in fractional units if `cubic_only`, and with
    the target's element ratios if `target` is given)."""
    n_bins = max(1, int(round(1.0 / d_frac)))
    species = sorted(set(atoms.get_chemical_symbols()))
    symbols = np.array(atoms.get_chemical_symbols())
    frac = np.mod(atoms.get_scaled_positions(wrap=True), 1.0)
    bins = np.minimum((frac * n_bins).astype(int), n_bins - 1)
    hist = np.zeros((n_bins, n_bins, n_bins, len(species)), dtype=np.int64)
    for j, sp in enumerate(species):
        sel = bins[symbols == sp]
        np.add.at(hist[..., j], (sel[:, 0], sel[:, 1], sel[:, 2]), 1)
    prefix = np.zeros((n_bins + 1, n_bins + 1, n_bins + 1, len(species)), dtype=np.int64)
    prefix[1:, 1:, 1:] = hist.cumsum(0).cumsum(1).cumsum(2)
    unit = None
    if target is not None:
        unit = np.array([target.get(sp, 0.0) for sp in species], dtype=float)
        if any(el.symbol not in species for el in target.elements):
            return SubcellGrid(atoms, n_bins, np.zeros((0, 3), int), np.zeros((0, 3), int), np.zeros(0, int))
    shapes = ((s, s, s) for s in range(1, n_bins + 1)) if cubic_only else itertools.product(
        range(1, n_bins + 1), repeat=3
    )
    lowers, sizes, counts = [], [], []
    for sx, sy, sz in shapes:
        sums = _box_sums(prefix, sx, sy, sz)  # (n_bins - sx + 1, ..., n_species)
        total = sums.sum(axis=-1)
        ok = (total >= n_min) & (total <= n_max)
        if unit is not None:
            # element counts proportional to the target formula: c_j * u_0 == c_0 * u_j for every species j
            ref = int(np.argmax(unit > 0))
            for j in range(len(species)):
                ok &= np.isclose(sums[..., j] * unit[ref], sums[..., ref] * unit[j])
        idx = np.argwhere(ok)
        if len(idx):
            lowers.append(idx)
            sizes.append(np.tile([sx, sy, sz], (len(idx), 1)))
            counts.append(total[ok])
    if not lowers:
        return SubcellGrid(atoms, n_bins, np.zeros((0, 3), int), np.zeros((0, 3), int), np.zeros(0, int))
    return SubcellGrid(atoms, n_bins, np.concatenate(lowers), np.concatenate(sizes), np.concatenate(counts))


def selection_order(n: int, seed: int) -> np.ndarray:
    """A deterministic (seeded) order in which to visit n subcells: the first k are the subsample of size k."""
    return np.random.default_rng(seed).permutation(n)
