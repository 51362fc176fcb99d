"""The search index held in memory: composition search and hull rows answered by numpy over every record.

A chromadb metadata filter costs time in proportion to what it returns (about 190 ms for the 17k records holding
O among 100k), so "the 20 lowest-energy oxides" or "every relaxation inside Mg-O" cannot stay under 50 ms as a
store grows. The table keeps, per record, its energy per atom (float32, as the index collection's vector), its
elements as a bit mask, its formulas and its hull fields; a query is a few vector operations. The store fills it
from the index collection once and then applies its own writes to it (see StructureStore._table).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.core import Element

from memory.keys import (
    CHEMSYS_KEY,
    FORMULA_KEY,
    HULL_CONVERGED_KEY,
    HULL_ENERGY_KEY,
    HULL_POTENTIAL_KEY,
    HULL_RELAXATION_KEY,
    INDEX_ROW_KEY,
    REDUCED_FORMULA_KEY,
)

_WORDS = 2  # uint64 words of the element mask (Z up to 128)


def element_mask(elements: list[str] | set[str]) -> np.ndarray:
    """The bit mask of a set of element symbols: bit Z-1 set for each element."""
    mask = np.zeros(_WORDS, dtype=np.uint64)
    for symbol in elements:
        z = Element(symbol).Z - 1
        mask[z // 64] |= np.uint64(1) << np.uint64(z % 64)
    return mask


def packed_row(formula: str, reduced: str, chemsys: str, hull: dict[str, Any]) -> dict[str, str]:
    """An index entry's metadata: one JSON key (chromadb returns metadata at ~6 us per key and record, so a table
    of 100k records loads in about a second instead of eight keys' worth)."""
    fields = [hull.get(k) for k in (HULL_POTENTIAL_KEY, HULL_ENERGY_KEY, HULL_RELAXATION_KEY, HULL_CONVERGED_KEY)]
    return {INDEX_ROW_KEY: json.dumps([formula, reduced, chemsys, *fields])}


Row = tuple[str, str, str, tuple[str, float, bool, bool] | None]  # formula, reduced, chemsys, hull fields


def _unpacked_all(lights: list[dict[str, Any]]) -> list[Row]:
    """Formula, reduced formula, chemsys and hull fields (potential, energy, relaxation, converged) of index
    entries' metadata, packed (all decoded by one json.loads) or written as separate keys (older entries)."""
    packed = [str(light[INDEX_ROW_KEY]) for light in lights if INDEX_ROW_KEY in light]
    decoded = iter(json.loads("[" + ",".join(packed) + "]"))
    rows = []
    for light in lights:
        if INDEX_ROW_KEY in light:
            formula, reduced, chemsys, potential, energy, relaxation, converged = next(decoded)
        else:
            formula, reduced = light.get(FORMULA_KEY, ""), light.get(REDUCED_FORMULA_KEY, "")
            chemsys, potential, energy = light.get(CHEMSYS_KEY, ""), light.get(HULL_POTENTIAL_KEY), light.get(
                HULL_ENERGY_KEY)
            relaxation, converged = light.get(HULL_RELAXATION_KEY), light.get(HULL_CONVERGED_KEY)
        hull = None if potential is None or energy is None else (
            str(potential), float(energy), bool(relaxation), bool(converged))
        rows.append((str(formula), str(reduced), str(chemsys), hull))
    return rows


@dataclass(frozen=True)
class HullRow:
    """A stored relaxation as a hull entry: record id, cell formula, total energy (eV), converged or not."""

    id: str
    formula: str
    energy: float
    converged: bool


class IndexTable:
    """Every record's index entry in numpy arrays (grown by doubling), with the ids of each reduced formula."""

    def __init__(self, capacity: int = 1024) -> None:
        self.ids: list[str] = []
        self._position: dict[str, int] = {}
        self._energy = np.full(capacity, np.inf, dtype=np.float32)
        self._mask = np.zeros((capacity, _WORDS), dtype=np.uint64)
        self._n_elements = np.zeros(capacity, dtype=np.int16)
        self._formula: list[str] = []
        self._reduced: list[str] = []
        self._by_reduced: dict[str, set[int]] = {}
        self._hull: dict[int, tuple[str, float, bool, bool]] = {}  # position -> potential, energy, relax., converged
        self._systems: dict[str, tuple[np.ndarray, int]] = {}  # chemsys -> mask, element count (few systems)

    def __len__(self) -> int:
        return len(self.ids)

    def _reserve(self, size: int) -> None:
        """Room for `size` entries in the arrays (doubling)."""
        if size <= len(self._energy):
            return
        size = max(size, 2 * len(self._energy))
        self._energy = np.concatenate([self._energy, np.full(size - len(self._energy), np.inf, dtype=np.float32)])
        self._mask = np.concatenate([self._mask, np.zeros((size - len(self._mask), _WORDS), dtype=np.uint64)])
        self._n_elements = np.concatenate([self._n_elements, np.zeros(size - len(self._n_elements), dtype=np.int16)])

    def _system(self, chemsys: str) -> tuple[np.ndarray, int]:
        """The element mask and element count of a chemical system ("O-Sr-Ti"), computed once per system."""
        if chemsys not in self._systems:
            elements = [e for e in chemsys.split("-") if e]
            self._systems[chemsys] = element_mask(elements), len(elements)
        return self._systems[chemsys]

    def upsert(self, ids: list[str], vectors: Any, lights: list[dict[str, Any]]) -> None:
        """Add or replace entries (vectors [energy per atom, spread] and metadata, as the index collection holds
        them: see packed_row). Arrays are written in bulk, so loading 100k entries costs about a second."""
        if not ids:
            return
        rows = _unpacked_all(lights)
        positions = np.empty(len(ids), dtype=np.int64)
        for k, record_id in enumerate(ids):
            position = self._position.get(record_id)
            if position is None:
                position = len(self.ids)
                self.ids.append(record_id)
                self._position[record_id] = position
                self._formula.append("")
                self._reduced.append("")
            else:
                self._by_reduced.get(self._reduced[position], set()).discard(position)
            positions[k] = position
        self._reserve(len(self.ids))
        systems = [self._system(row[2]) for row in rows]
        self._energy[positions] = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)[:, 0]
        self._mask[positions] = np.stack([m for m, _ in systems])
        self._n_elements[positions] = [n for _, n in systems]
        for position, (formula, reduced, _, hull) in zip(positions.tolist(), rows, strict=True):
            self._formula[position], self._reduced[position] = formula, reduced
            self._by_reduced.setdefault(reduced, set()).add(position)
            if hull is not None:
                self._hull[position] = hull
            else:
                self._hull.pop(position, None)

    def matching(
        self, reduced_formula: str | None = None, elements: list[str] | None = None, only_elements: bool = False,
        within: list[str] | None = None,
    ) -> np.ndarray:
        """Positions of the records with this reduced formula, containing all these elements (exactly them with
        only_elements), and made only of elements `within` (each condition only when given)."""
        n = len(self.ids)
        keep = np.ones(n, dtype=bool)
        if reduced_formula is not None:
            chosen = np.zeros(n, dtype=bool)
            chosen[list(self._by_reduced.get(reduced_formula, ()))] = True
            keep &= chosen
        masks = self._mask[:n]
        if elements:
            want = element_mask(set(elements))
            keep &= np.all((masks & want) == want, axis=1)
            if only_elements:
                keep &= self._n_elements[:n] == len(set(elements))
        if within:
            outside = ~element_mask(set(within))
            keep &= np.all((masks & outside) == 0, axis=1) & (self._n_elements[:n] > 0)
        return np.flatnonzero(keep)

    def lowest(self, positions: np.ndarray, n: int) -> list[str]:
        """Ids among these positions that can be among the n lowest energies: all at or below the n-th lowest
        float32 energy (float32 rounding never reverses an order, so ties at the cutoff are all returned)."""
        if len(positions) > n:
            energies = self._energy[positions]
            cutoff = np.partition(energies, n - 1)[n - 1]
            positions = positions[energies <= cutoff]
        return [self.ids[p] for p in positions]

    def hull_rows(self, elements: list[str], potential: str) -> list[HullRow]:
        """Relaxations made only of these elements and scored with this potential, converged or not."""
        rows = []
        for position in self.matching(within=elements):
            hull = self._hull.get(int(position))
            if hull is not None and hull[0] == potential and hull[2]:
                rows.append(HullRow(self.ids[position], self._formula[position], hull[1], hull[3]))
        return rows
