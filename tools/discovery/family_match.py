"""Does a structure belong to a structure family? StructureMatcher against the family's prototype, anonymous in
species, with elements that share a role merged first (so ordered variants such as MgNiO2 match rock salt), and
with the template's shareable roles merged where the structure has fewer elements (Mg2SiO4 olivine, Y3Al5O12
garnet). An anonymous fit cannot tell which element sits on which site; `matches_family_ordered` can, and
`family_roles` says which element fills which role."""

from __future__ import annotations

import itertools
import warnings

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure

from models.crystals.prototypes import SHAREABLE_ROLES, decorate, roles_of, template

# The tolerances the GenMS / DiffCSP literature uses for match rate.
MATCHER = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10, primitive_cell=True, scale=True, attempt_supercell=True)
_STANDINS = ("Li", "Be", "B", "O")  # one distinct element per role, only to build the merged-role frames


def merge_roles(structure: Structure, groups: list[list[str]]) -> Structure:
    """Replace every element of each group by the group's first element."""
    merged = structure.copy()
    mapping = {el: group[0] for group in groups for el in group[1:] if el in {s.symbol for s in merged.species}}
    if mapping:
        merged.replace_species(mapping)
    return merged


def _frames(family: str) -> list[Structure]:
    """The family template, then the template with each shareable role group filled by one element."""
    family = family.lower()
    roles, _ = roles_of(family)
    out = [template(family).copy()]
    for group in SHAREABLE_ROLES.get(family, ()):
        elements = dict(zip(roles, _STANDINS, strict=False))
        for role in group[1:]:
            elements[role] = elements[group[0]]
        out.append(decorate(family, elements, volume_per_atom=10.0))
    return out


def matches_family(structure: Structure, family: str, shared_roles: list[list[str]] | None = None) -> bool:
    """True when the structure (with shared-role elements merged) fits the family prototype anonymously."""
    if roles_of(family) is None:
        return False
    candidate = merge_roles(structure, shared_roles or [])
    n_elements = len(candidate.composition.elements)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for frame in _frames(family):
            if len(frame.composition.elements) != n_elements:
                continue
            try:
                if MATCHER.fit_anonymous(candidate, frame):
                    return True
            except Exception:  # the matcher fails on some degenerate cells: no match
                continue
    return False


def _ordered_prototype(structure: Structure, family: str, roles: dict[str, str]) -> Structure:
    """The template decorated with `roles` at the structure's volume per atom (the fit rescales anyway)."""
    return decorate(family, roles, volume_per_atom=structure.volume / max(len(structure), 1))


def matches_family_ordered(structure: Structure, family: str, roles: dict[str, str]) -> bool:
    """True when the structure fits the family template decorated with `roles` (role -> element), species by
    species: the right frame with the wrong site ordering (Ni on the Ti site of TiNiSn) is rejected."""
    family = family.lower()
    if roles_of(family) is None:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bool(MATCHER.fit(structure, _ordered_prototype(structure, family, roles)))
        except KeyError:
            raise
        except Exception:  # the matcher fails on some degenerate cells: no match
            return False


def role_assignments(structure: Structure, family: str) -> list[dict[str, str]]:
    """Every role -> element assignment of the structure's elements whose formula is the structure's (each element
    used at least once; one element may fill several roles, e.g. Mg on both olivine M sites)."""
    family = family.lower()
    if roles_of(family) is None:
        return []
    roles, ratio = roles_of(family)
    elements = sorted(el.symbol for el in structure.composition.elements)
    target = structure.composition.reduced_composition
    out = []
    for choice in itertools.product(elements, repeat=len(roles)):
        if set(choice) != set(elements):
            continue
        amounts: dict[str, int] = {}
        for el, n in zip(choice, ratio, strict=True):
            amounts[el] = amounts.get(el, 0) + n
        if Composition(amounts).reduced_composition.almost_equals(target):
            out.append(dict(zip(roles, choice, strict=True)))
    return out


# Assignments within this rms (normalised, as StructureMatcher's stol) of the best one are geometrically
# equivalent (rock salt A<->X, half-Heusler A<->C, Heusler B<->C, double perovskite B<->C) or nearly so
# (chalcopyrite A<->B, distinguished only by the anion's x); the family's role convention decides between them.
TIE_RMS = 0.05


def _convention_penalty(structure: Structure, family: str, roles: dict[str, str]) -> int:
    """How far an assignment is from the role conventions of models/crystals/prototypes.py (0 = follows them): X is
    the most
    electronegative element; Heusler C is the p-block element; chalcopyrite A and double-perovskite B hold the
    lower oxidation state (Cu+ In3+, Mg2+ W6+)."""
    from pymatgen.core import Element

    penalty = 0
    anion = max(structure.composition.elements, key=lambda el: el.X).symbol
    if "X" in roles and roles["X"] != anion:
        penalty += 4
    if family in ("heusler", "half-heusler") and Element(roles["C"]).block != "p":
        penalty += 2
    pair = {"chalcopyrite": ("A", "B"), "double perovskite": ("B", "C")}.get(family)
    if pair:
        guesses = structure.composition.reduced_composition.oxi_state_guesses(max_sites=-1)
        if guesses and guesses[0].get(roles[pair[0]], 0) > guesses[0].get(roles[pair[1]], 0):
            penalty += 1
    return penalty


def family_roles(structure: Structure, family: str) -> dict[str, str] | None:
    """Which element fills which role of the family (e.g. TiNiSn half-Heusler: A=Ti, B=Ni, C=Sn), found by fitting
    the template decorated with every composition-consistent assignment, species by species. Of the assignments
    that fit, those within TIE_RMS of the lowest rms are equivalent by geometry and the role conventions pick one;
    None when none fits."""
    family = family.lower()
    fits: list[tuple[float, dict[str, str]]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for roles in role_assignments(structure, family):
            proto = _ordered_prototype(structure, family, roles)
            try:
                if not MATCHER.fit(structure, proto):
                    continue
                rms = MATCHER.get_rms_dist(structure, proto)
            except Exception:  # a degenerate cell: this assignment does not fit
                continue
            fits.append((rms[0] if rms else MATCHER.stol, roles))
    if not fits:
        return None
    best = min(rms for rms, _ in fits)
    tied = [roles for rms, roles in fits if rms <= best + TIE_RMS]
    return min(tied, key=lambda roles: _convention_penalty(structure, family, roles))
