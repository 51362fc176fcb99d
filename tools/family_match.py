"""Does a structure belong to a structure family? StructureMatcher against the family's prototype, anonymous in
species, with elements that share a role merged first (so ordered variants such as MgNiO2 match rock salt)."""

from __future__ import annotations

import warnings

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from models.prototypes import RATIOS, template

# The tolerances the GenMS / DiffCSP literature uses for match rate.
MATCHER = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10, primitive_cell=True, scale=True, attempt_supercell=True)


def merge_roles(structure: Structure, groups: list[list[str]]) -> Structure:
    """Replace every element of each group by the group's first element."""
    merged = structure.copy()
    mapping = {el: group[0] for group in groups for el in group[1:] if el in {s.symbol for s in merged.species}}
    if mapping:
        merged.replace_species(mapping)
    return merged


def matches_family(structure: Structure, family: str, shared_roles: list[list[str]] | None = None) -> bool:
    """True when the structure (with shared-role elements merged) fits the family prototype anonymously."""
    if family.lower() not in RATIOS:
        return False
    candidate = merge_roles(structure, shared_roles or [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bool(MATCHER.fit_anonymous(candidate, template(family).copy()))
        except Exception:  # the matcher fails on some degenerate cells: no match
            return False
