"""Structure equivalence for de-duplication: pymatgen's StructureMatcher with each structure reduced once.

StructureMatcher.fit reduces both structures (primitive cell, Niggli) on every call; a batch store compares each
new structure with up to a few stored candidates, and the same stored candidates again and again. Reducing each
structure once, and keeping stored records' reduced cells by id (a content id names one structure for good), gives
the same answers as `fit` at a fraction of the cost.
"""

from __future__ import annotations

from collections import OrderedDict

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

REDUCED_CACHE_SIZE = 8192  # stored records whose reduced cells are kept
MATCHER = StructureMatcher(ltol=0.05, stol=0.1, angle_tol=2, primitive_cell=True, scale=False)


def reduced_for_matching(structure: Structure) -> Structure:
    """The structure as MATCHER compares it (species processed, primitive, Niggli reduced)."""
    (processed,) = MATCHER._process_species([structure])
    return MATCHER._get_reduced_structure(processed, primitive_cell=True, niggli=True)


class Equivalence:
    """Strict, unscaled equivalence (ltol 0.05, stol 0.1, 2 degrees): the same structure up to numerical noise and
    small strain, never a different volume."""

    def __init__(self) -> None:
        self.matcher = MATCHER
        self._stored: OrderedDict[str, Structure] = OrderedDict()

    def reduced(self, structure: Structure) -> Structure:
        """The structure as the matcher compares it (see reduced_for_matching)."""
        return reduced_for_matching(structure)

    def stored_reduced(self, record_id: str) -> Structure | None:
        """The kept reduced cell of a stored record, if any (most recently used kept longest)."""
        found = self._stored.get(record_id)
        if found is not None:
            self._stored.move_to_end(record_id)
        return found

    def keep(self, record_id: str, reduced: Structure) -> None:
        """Remember a stored record's reduced cell."""
        self._stored[record_id] = reduced
        self._stored.move_to_end(record_id)
        while len(self._stored) > REDUCED_CACHE_SIZE:
            self._stored.popitem(last=False)

    def same(self, reduced_a: Structure, reduced_b: Structure) -> bool:
        """Whether two reduced cells are the same structure (StructureMatcher.fit on already reduced cells)."""
        return bool(self.matcher.fit(reduced_a, reduced_b, skip_structure_reduction=True))
