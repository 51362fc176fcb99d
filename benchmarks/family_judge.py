"""Judge for the search benchmark: is a returned structure a member of the requested family, and are its elements on
the right sites?

Judged against the typed cells of known members (models/data/reference_cells.json: forsterite, TiNiSn, YAG, ...,
written from published crystallography), never against the project's own templates (models/crystals/prototypes.py) or
its
matcher (tools/discovery/family_match.py), so a wrong template cannot pass its own test. Nothing here imports tools/.

``judge_family(structure, family)`` returns a dict:

* ``match``: anonymous StructureMatcher fit to any typed member of the family with the tolerances of the GenMS /
  DiffCSP match rate (ltol 0.3, stol 0.5, angle_tol 10); ``match_strict``: the same at ltol 0.2, stol 0.3,
  angle_tol 5; ``reference``: the first member that fitted;
* ``frame_match``: the structure's site frame (its cations merged into one species and its anions into another; for a
  Heusler the doubled element against the rest) lines up with the reference's. ``sites`` then maps each site set of
  the reference frame to the structure's elements on it. A set is named by its roles ("A", "B/C" where the frame
  cannot tell B from C, e.g. the two octahedral sites of a double perovskite), for spinels by its Wyckoff letter
  ("8a" tetrahedral, "16d" octahedral);
* ``ordering_ok``: for the families where an anonymous fit does not pin down which element sits where: perovskites
  (the largest cation on A), half-Heusler (the late transition metal on the tetrahedral 4c site), spinel / inverse
  spinel (the minority / the majority cation on tetrahedral 8a), garnet (the largest cation on dodecahedral 24c),
  olivine (the most highly charged, smallest cation tetrahedral), Heusler (the doubled element on 8c). None for
  the other families, or when the rule cannot be applied (the reason says why);
* ``reason``: one line.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Species, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.crystals.reference_cells import KNOWN_MEMBERS, reference_cell  # noqa: E402

LOOSE = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10, primitive_cell=True, scale=True, attempt_supercell=True)
STRICT = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5, primitive_cell=True, scale=True, attempt_supercell=True)
# site-by-site alignment onto the reference (get_s2_like_s1 needs primitive_cell=False)
ALIGN = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10, primitive_cell=False, scale=True, attempt_supercell=True)

ANIONS = frozenset({"N", "O", "F", "S", "Cl", "Se", "Br", "Te", "I"})
LATE_TM = frozenset({"Fe", "Co", "Ni", "Cu", "Ru", "Rh", "Pd", "Ag", "Os", "Ir", "Pt", "Au"})  # groups 8-11
PEROVSKITES = ("perovskite", "orthorhombic perovskite", "double perovskite")
SPINELS = ("spinel", "inverse spinel")
ORDERING_FAMILIES = (*PEROVSKITES, *SPINELS, "half-heusler", "garnet", "olivine", "heusler")
# Sites of a reference frame within this distance (A) of a symmetry image are one site set: the frame cannot tell
# them apart (double perovskite B/C, chalcopyrite A/B, ilmenite A/B once their cations are merged).
ORBIT_TOL = 0.25
# frame species, one per class of site
_CATION, _ANION, _MAJOR, _MINOR = "Na", "Cl", "Cu", "Al"


def _role_class(family: str, role: str, merge_all: bool) -> str:
    if family == "half-heusler" or (family == "heusler" and merge_all):
        return _CATION
    if family == "heusler":
        return _MAJOR if role == "A" else _MINOR
    return _ANION if role == "X" else _CATION


def _element_classes(structure: Structure, family: str, merge_all: bool = False) -> dict[str, str] | None:
    """element -> frame class of the structure's elements; None when the family's classes do not apply."""
    comp = structure.composition
    elements = [el.symbol for el in comp.elements]
    if family == "half-heusler" or (family == "heusler" and merge_all):
        return dict.fromkeys(elements, _CATION)
    if family == "heusler":  # the doubled element (half the atoms) against the rest
        major = [el for el in elements if abs(comp.get_atomic_fraction(el) - 0.5) < 0.02]
        return {el: _MAJOR if el in major else _MINOR for el in elements} if len(major) == 1 else None
    anions = [el for el in elements if el in ANIONS] or [max(comp.elements, key=lambda e: e.X).symbol]
    if len(anions) == len(elements):
        return None
    return {el: _ANION if el in anions else _CATION for el in elements}


@cache
def _reference_frame(name: str, family: str, merge_all: bool = False) -> Structure:
    """The reference cell with each site's species replaced by its role's class, reduced to the primitive cell.
    Site property `orbit` names the site set of the frame (its symmetry orbit) by the roles on it ("B/C" when the
    frame makes B and C equivalent), or by the Wyckoff letter for spinels."""
    ref = reference_cell(name)
    frame = Structure(
        ref.lattice,
        [_role_class(family, role, merge_all) for role in ref.site_properties["role"]],
        ref.frac_coords,
    )
    orbit = [""] * len(frame)
    for indices in SpacegroupAnalyzer(frame, symprec=ORBIT_TOL).get_symmetrized_structure().equivalent_indices:
        if family in SPINELS:
            label = "/".join(sorted({ref[i].properties["wyckoff"] for i in indices}))
        else:
            label = "/".join(sorted({ref[i].properties["role"] for i in indices}))
        for i in indices:
            orbit[i] = label
    frame.add_site_property("orbit", orbit)
    return frame.get_primitive_structure(tolerance=ORBIT_TOL)


def site_alignment(structure: Structure, family: str, name: str, merge_all: bool = False) -> list[tuple[str, str]]:
    """(element, reference site set) of every site of the structure, from aligning its frame with the reference's
    frame; [] when the frames do not line up."""
    classes = _element_classes(structure, family, merge_all)
    if classes is None:
        return []
    ref = _reference_frame(name, family, merge_all)
    elements = [site.specie.symbol for site in structure]
    frame = Structure(structure.lattice, [classes[el] for el in elements], structure.frac_coords)
    if len(frame) % len(ref):
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            aligned = ALIGN.get_s2_like_s1(frame, ref)
        except Exception:  # the matcher fails on some degenerate cells: no alignment
            return []
    if aligned is None or len(aligned) < len(frame):
        return []
    if any(aligned[i].specie != frame[i].specie for i in range(len(frame))):
        return []
    return [(el, aligned[i].properties["orbit"]) for i, el in enumerate(elements)]


def _oxidation(structure: Structure) -> dict[str, float]:
    """The most likely charge-balanced oxidation states ({} when there are none)."""
    try:
        guesses = structure.composition.reduced_composition.oxi_state_guesses(max_sites=-1)
    except Exception:  # pymatgen cannot enumerate some compositions
        guesses = []
    return dict(guesses[0]) if guesses else {}


def _radii(structure: Structure) -> dict[str, float]:
    """Ionic radius of each element at its most likely oxidation state (average ionic / atomic radius otherwise)."""
    ox = _oxidation(structure)
    out = {}
    for el in structure.composition.elements:
        radius = None
        state = ox.get(el.symbol)
        if state is not None and float(state).is_integer() and state != 0:
            try:
                radius = Species(el.symbol, int(state)).ionic_radius
            except Exception:  # no tabulated radius for this ion
                radius = None
        out[el.symbol] = float(radius or el.average_ionic_radius or el.atomic_radius or 1.0)
    return out


def _on(sites: dict[str, set[str]], roles: set[str]) -> set[str] | None:
    """Elements on the site sets of these roles; None when the frame cannot separate them from other roles."""
    out: set[str] = set()
    for label, elements in sites.items():
        labelled = set(label.split("/"))
        if labelled & roles and not labelled <= roles:
            return None
        if labelled <= roles:
            out |= elements
    return out


def _names(elements: Iterable[str]) -> str:
    return "/".join(sorted(elements)) or "nothing"


def _ordering(structure: Structure, family: str, sites: dict[str, set[str]]) -> tuple[bool | None, str]:
    """The family's site-ordering rule on the aligned site sets: (ok, why)."""
    comp = structure.composition
    classes = _element_classes(structure, family) or {}
    cations = [el for el, c in classes.items() if c != _ANION]
    if family in (*PEROVSKITES, "garnet"):
        big, small = ({"A"}, {"B", "C"})
        a_site, others = _on(sites, big), _on(sites, small)
        if not a_site or not others:
            return None, "the frame does not separate the A site from the others"
        radii = _radii(structure)
        ok = not a_site & others and min(radii[el] for el in a_site) > max(radii[el] for el in others)
        site = "dodecahedral 24c" if family == "garnet" else "A site"
        return ok, (
            f"{site} holds {_names(a_site)} ({min(radii[el] for el in a_site):.2f} A), the others "
            f"{_names(others)} ({max(radii[el] for el in others):.2f} A)"
        )
    if family == "half-heusler":
        late = [el for el in cations if el in LATE_TM]
        if len(late) != 1:
            return None, f"no single late transition metal among {_names(cations)}"
        on_4c = _on(sites, {"B"})
        return on_4c == {late[0]}, f"tetrahedral 4c holds {_names(on_4c or ())}, expected {late[0]}"
    if family in SPINELS:
        amounts = {el: comp[el] for el in cations}
        if len(amounts) != 2 or len(set(amounts.values())) != 2:
            return None, f"needs two cations in unequal amounts, got {_names(amounts)}"
        expected = (min if family == "spinel" else max)(amounts, key=amounts.get)
        tet = sites.get("8a", set())
        kind = "a normal" if family == "spinel" else "an inverse"
        return tet == {expected}, f"tetrahedral 8a holds {_names(tet)}, {kind} spinel has {expected} there"
    if family == "olivine":
        ox, radii = _oxidation(structure), _radii(structure)
        if not ox:
            return None, "no charge-balanced oxidation states"
        expected = max(cations, key=lambda el: (ox.get(el, 0), -radii[el]))
        tet = _on(sites, {"C"})
        return tet == {expected}, f"tetrahedral site holds {_names(tet or ())}, expected {expected}"
    return None, "no site-ordering rule for this family"


def _heusler_ordering(structure: Structure, name: str, sites: dict[str, set[str]] | None) -> tuple[bool | None, str]:
    """Heusler: the doubled element on 8c. The doubled-vs-rest frame lines up only when it is there; a bcc frame that
    lines up only with every element merged has the doubled element elsewhere (e.g. the inverse Heusler)."""
    if sites:
        on_8c = _on(sites, {"A"}) or set()
        comp = structure.composition
        major = {el.symbol for el in comp.elements if abs(comp.get_atomic_fraction(el) - 0.5) < 0.02}
        return on_8c == major, f"8c holds {_names(on_8c)}"
    if _element_classes(structure, "heusler") is None:
        return None, "no element makes up half the atoms"
    if site_alignment(structure, "heusler", name, merge_all=True):
        return False, "bcc frame, but the doubled element is not on 8c"
    return None, "the site frame does not line up with the reference"


# Roles one element may fill together in real members of the family (Co3O4 and Fe3O4 are spinels, Fe2SiO4 an
# olivine, Fe3Si a D0_3 Heusler): a candidate with fewer elements is compared with the reference so merged.
MERGEABLE_ROLES = {"spinel": ("A", "B"), "inverse spinel": ("A", "B"), "olivine": ("A", "B"), "garnet": ("B", "C"),
                   "heusler": ("A", "B")}


def _reference_variants(name: str, family: str, n_elements: int) -> list[Structure]:
    """The typed reference cell, and when the candidate has fewer elements, the cell with the family's mergeable
    roles given one species."""
    ref = reference_cell(name)
    out = [ref]
    pair = MERGEABLE_ROLES.get(family)
    if pair and n_elements < len(ref.composition.elements):
        roles = ref.site_properties["role"]
        first = next(ref[i].specie for i, r in enumerate(roles) if r == pair[0])
        merged = ref.copy()
        for i, role in enumerate(roles):
            if role == pair[1]:
                merged.replace(i, first)
        out.append(merged)
    return out


def judge_family(structure: Structure, family: str) -> dict:
    """Match against the typed known members of the family, site ordering, and a reason (see the module doc)."""
    family = family.lower()
    out: dict = {"family": family, "match": False, "match_strict": False, "reference": None, "frame_match": False}
    out.update(sites=None, ordering_ok=None)
    members = KNOWN_MEMBERS.get(family)
    if not members:
        return {**out, "reason": f"no typed reference cell for family {family!r}"}
    if not structure.is_ordered:
        return {**out, "reason": "disordered structure: not judged"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, _ in members:
            loose = strict = False
            for ref in _reference_variants(name, family, len(structure.composition.elements)):
                try:
                    loose = bool(LOOSE.fit_anonymous(structure, ref))
                    strict = loose and bool(STRICT.fit_anonymous(structure, ref))
                except Exception:  # the matcher fails on some degenerate cells: no match
                    loose = strict = False
                if loose:
                    break
            if loose and out["reference"] is None:
                out["reference"] = name
            out["match"] |= loose
            out["match_strict"] |= strict
    ref_name = out["reference"] or members[0][0]
    n_ref = len(reference_cell(ref_name).composition.elements)
    if not out["match"] and len(structure.composition.elements) > n_ref and site_alignment(structure, family, ref_name):
        # More elements than the reference ((Mn,Zn)Fe2O4, an ordered solid solution): its cation/anion frame
        # lines up with the reference's, site by site.
        out["match"], out["reference"] = True, ref_name
    if out["match"]:
        fit = f"anonymous fit to {ref_name}" + (" (strict too)" if out["match_strict"] else " (not strict)")
    else:
        fit = f"no anonymous fit to {_names(name for name, _ in members)}"
    sites: dict[str, set[str]] = {}
    for element, label in site_alignment(structure, family, ref_name):
        sites.setdefault(label, set()).add(element)
    if sites:
        out["frame_match"] = True
        out["sites"] = {label: sorted(elements) for label, elements in sorted(sites.items())}
    if family not in ORDERING_FAMILIES:
        return {**out, "reason": f"{fit}; site ordering not judged for {family}"}
    if family == "heusler":
        ok, why = _heusler_ordering(structure, ref_name, sites)
    elif not sites:
        ok, why = None, "the site frame does not line up with the reference"
    else:
        ok, why = _ordering(structure, family, sites)
    out["ordering_ok"] = ok
    return {**out, "reason": f"{fit}; {why}"}
