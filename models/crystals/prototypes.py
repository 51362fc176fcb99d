"""Crystal prototypes of the common inorganic families, decorated with any elements: templates for the search's
family matching, for reference compounds of the local hull, and for the generator's training data.

Most come from the AFLOW prototype library that pymatgen ships; the rest (double perovskite, pyrochlore, olivine,
garnet, half-Heusler, layered rock salt, CsCl, antifluorite, inverse spinel) are built here from their Wyckoff
positions. Every family's decorated template is checked against the typed cell of a known member
(models/crystals/reference_cells.py, tests/test_prototypes.py).

Roles (what each letter of RATIOS means):
- perovskite / orthorhombic perovskite ABX3: A 12-coordinate large cation, B octahedral.
- double perovskite A2BCX6 (rock-salt ordered, Fm-3m): A large cation, B and C octahedral.
- spinel AB2X4: A tetrahedral (8a), B octahedral (16d); inverse spinel B(AB)X4: A octahedral, B half tetrahedral.
- rock salt, CsCl, zincblende, wurtzite AX; fluorite and rutile AX2; antifluorite A2X; corundum A2X3.
- ilmenite ABX3 (FeTiO3: A=Fe, B=Ti); pyrochlore A2B2X7 (A 16d 8-coordinate, B 16c octahedral);
  layered oxide ABX2 (LiCoO2: A=Li, B=Co).
- heusler A2BC (Cu2MnAl: A=Cu on 8c); half-heusler ABC (TiNiSn, F-43m: A=Ti and C=Sn form rock salt, B=Ni on the
  tetrahedrally coordinated 4c site).
- garnet A3B2C3X12 (Ia-3d: A dodecahedral 24c, B octahedral 16a, C tetrahedral 24d; Y3Al5O12 has B=C=Al).
- olivine ABCX4 (Pnma: A M1 octahedral 4a, B M2 octahedral 4c, C tetrahedral 4c; Mg2SiO4 has A=B=Mg, LiFePO4
  A=Li, B=Fe, C=P).
- chalcopyrite ABX2 (I-42d: CuInSe2 A=Cu 4a, B=In 4b, X=Se 8d).
- thcr2si2 AB2X2 (I4/mmm, the "122" type of BaFe2As2 and CaZn2As2-like Zintl pnictides: A 2a between layers of
  edge-sharing BX4 tetrahedra, B 4d, X 4e).
"""

from __future__ import annotations

import gzip
import json
import re
import warnings
from functools import cache, lru_cache
from pathlib import Path

import pymatgen.core
from pymatgen.core import Element, Lattice, Structure

_AFLOW = Path(pymatgen.core.__file__).parent.parent / "analysis" / "prototypes" / "aflow_prototypes.json.gz"


# family -> (AFLOW mineral tag, role of each template element in the template's sorted-species order)
_AFLOW_FAMILIES: dict[str, tuple[str, dict[str, str]]] = {
    "rock salt": ("halite, rock salt", {"Na": "A", "Cl": "X"}),
    "zincblende": ("zincblende, sphalerite", {"Zn": "A", "S": "X"}),
    "wurtzite": ("wurtzite", {"Zn": "A", "S": "X"}),
    "fluorite": ("fluorite", {"Ca": "A", "F": "X"}),
    "rutile": ("rutile", {"Ti": "A", "O": "X"}),
    "corundum": ("corundum", {"Al": "A", "O": "X"}),
    "perovskite": ("(cubic) perovskite", {"Ca": "A", "Ti": "B", "O": "X"}),
    "orthorhombic perovskite": ("orthorhombic perovskite", {"Ca": "A", "Ti": "B", "O": "X"}),
    "spinel": ("spinel", {"Mg": "A", "Al": "B", "O": "X"}),
    "ilmenite": ("ilmenite", {"Fe": "A", "Ti": "B", "O": "X"}),
    "heusler": ("heusler", {"Cu": "A", "Mn": "B", "Al": "C"}),
    "chalcopyrite": ("chalcopyrite", {"Cu": "A", "Fe": "B", "S": "X"}),  # CuFeS2: Cu 4a, Fe 4b, S 8d
}
RATIOS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "rock salt": (("A", "X"), (1, 1)),
    "cscl": (("A", "X"), (1, 1)),
    "zincblende": (("A", "X"), (1, 1)),
    "wurtzite": (("A", "X"), (1, 1)),
    "fluorite": (("A", "X"), (1, 2)),
    "antifluorite": (("A", "X"), (2, 1)),
    "rutile": (("A", "X"), (1, 2)),
    "corundum": (("A", "X"), (2, 3)),
    "perovskite": (("A", "B", "X"), (1, 1, 3)),
    "orthorhombic perovskite": (("A", "B", "X"), (1, 1, 3)),
    "double perovskite": (("A", "B", "C", "X"), (2, 1, 1, 6)),
    "spinel": (("A", "B", "X"), (1, 2, 4)),
    "inverse spinel": (("A", "B", "X"), (1, 2, 4)),
    "ilmenite": (("A", "B", "X"), (1, 1, 3)),
    "pyrochlore": (("A", "B", "X"), (2, 2, 7)),
    "olivine": (("A", "B", "C", "X"), (1, 1, 1, 4)),
    "layered oxide": (("A", "B", "X"), (1, 1, 2)),
    "heusler": (("A", "B", "C"), (2, 1, 1)),
    "half-heusler": (("A", "B", "C"), (1, 1, 1)),
    "garnet": (("A", "B", "C", "X"), (3, 2, 3, 12)),
    "chalcopyrite": (("A", "B", "X"), (1, 1, 2)),
    "thcr2si2": (("A", "B", "X"), (1, 2, 2)),
}
FAMILIES = tuple(RATIOS)
# Roles that one element may fill together in a known member (Fe3O4 spinel, Mg2SiO4 olivine, Y3Al5O12 garnet):
# the template with those roles merged is a valid frame for a structure with fewer elements.
SHAREABLE_ROLES: dict[str, tuple[tuple[str, ...], ...]] = {
    "spinel": (("A", "B"),),
    "inverse spinel": (("A", "B"),),
    "olivine": (("A", "B"),),
    "garnet": (("B", "C"),),
}


@lru_cache(maxsize=1)
def aflow_library() -> tuple[tuple[dict[str, str], Structure], ...]:
    """Every entry of pymatgen's AFLOW prototype library as (tags, structure), read once: the one reader of it."""
    with gzip.open(_AFLOW, "rt") as handle:
        data = json.load(handle)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in data:
            snl = entry["snl"]
            out.append((entry["tags"], Structure.from_dict(snl.get("structure", snl))))
    return tuple(out)


@lru_cache(maxsize=1)
def _aflow_entries() -> dict[str, Structure]:
    """AFLOW prototype structures by mineral tag (the last entry of a repeated tag, as before)."""
    return {(tags.get("mineral") or "").lower(): s for tags, s in aflow_library() if tags.get("mineral")}


def _built(family: str) -> Structure:
    """Templates not in the AFLOW set, from Wyckoff positions, with generic species A, B, C, X stand-ins."""
    # Stand-in elements carry the roles (A=Li, B=Be, C=B, X=O) until decorate() substitutes real ones.
    if family == "cscl":
        return Structure(Lattice.cubic(3.0), ["Li", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    if family == "antifluorite":
        return Structure.from_spacegroup(
            "Fm-3m", Lattice.cubic(5.0), ["O", "Li"], [[0, 0, 0], [0.25, 0.25, 0.25]]
        ).get_primitive_structure()
    if family == "double perovskite":
        return Structure.from_spacegroup(
            "Fm-3m",
            Lattice.cubic(7.9),
            ["Li", "Be", "B", "O"],
            [[0.25, 0.25, 0.25], [0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0, 0]],
        ).get_primitive_structure()
    if family == "pyrochlore":  # Fd-3m origin 2: A 16d, B 16c, O 48f (x=0.33), O' 8b
        return Structure.from_spacegroup(
            "Fd-3m:2",
            Lattice.cubic(10.4),
            ["Li", "Be", "O", "O"],
            [[0.5, 0.5, 0.5], [0, 0, 0], [0.33, 0.125, 0.125], [0.375, 0.375, 0.375]],
        ).get_primitive_structure()
    if family == "olivine":  # Mg2SiO4 forsterite positions, Pnma: A on M1 (4a), B on M2 (4c), C tetrahedral (4c)
        return Structure.from_spacegroup(
            "Pnma",
            Lattice.orthorhombic(10.2, 5.98, 4.75),
            ["Li", "Be", "B", "O", "O", "O"],
            [
                [0, 0, 0],
                [0.277, 0.25, 0.991],
                [0.094, 0.25, 0.427],
                [0.092, 0.25, 0.766],
                [0.448, 0.25, 0.221],
                [0.163, 0.033, 0.278],
            ],
        )
    if family == "layered oxide":  # alpha-NaFeO2 / LiCoO2, R-3m; O z=0.26 makes B-O (1.92 A) shorter than A-O
        return Structure.from_spacegroup(
            "R-3m", Lattice.hexagonal(2.82, 14.05), ["Li", "Be", "O"], [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.26]]
        ).get_primitive_structure()
    if family == "half-heusler":  # MgAgAs type, F-43m: A 4a and C 4b form rock salt, B on the 4c site (4 A + 4 C)
        return Structure.from_spacegroup(
            "F-43m", Lattice.cubic(5.93), ["Li", "B", "Be"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]
        ).get_primitive_structure()
    if family == "garnet":  # Y3Al5O12, Ia-3d: A 24c dodecahedral, B 16a octahedral, C 24d tetrahedral, O 96h
        return Structure.from_spacegroup(
            "Ia-3d",
            Lattice.cubic(12.0),
            ["Li", "Be", "B", "O"],
            [[0.125, 0, 0.25], [0, 0, 0], [0.375, 0, 0.25], [-0.0306, 0.0512, 0.1500]],
        ).get_primitive_structure()
    if family == "thcr2si2":  # BaFe2As2 positions, I4/mmm: A 2a, B 4d, X 4e (z=0.354); c/a 3.3
        return Structure.from_spacegroup(
            "I4/mmm", Lattice.tetragonal(3.96, 13.0), ["Li", "Be", "O"], [[0, 0, 0], [0, 0.5, 0.25], [0, 0, 0.354]]
        ).get_primitive_structure()
    if family == "inverse spinel":  # B(AB)X4: A on octahedral 16d with half of B, the other B on tetrahedral 8a
        normal = template("spinel")
        tet = [i for i, s in enumerate(normal) if s.specie.symbol == "Li"]
        octa = [i for i, s in enumerate(normal) if s.specie.symbol == "Be"]
        inv = normal.copy()
        for i in tet:
            inv.replace(i, "Be")
        for i in octa[: len(tet)]:
            inv.replace(i, "Li")
        return inv
    raise KeyError(family)


_STANDIN = {"A": "Li", "B": "Be", "C": "B", "D": "Na", "E": "Mg", "X": "O"}

# More structure types from the AFLOW library, by name -> (mineral tag, Pearson symbol): the proposer fills their
# roles by ICSD substitution from the prototype's own ions, and the search builds them as decorated prototypes.
GENERIC_FAMILIES: dict[str, tuple[str, str]] = {
    "anatase": ("anatase", "tI12"),
    "pyrite": ("pyrite", "cP12"),
    "marcasite": ("marcasite", "oP6"),
    "skutterudite": ("skutterudite", "cI32"),
    "cinnabar": ("cinnabar", "hP6"),
    "cuprite": ("cuprite", "cP6"),
    "baddeleyite": ("baddeleyite", "mP12"),
    "cotunnite": ("cotunnite", "oP12"),
    "molybdenite": ("molybdenite", "hP6"),
    "tenorite": ("tenorite", "mC8"),
    "hausmannite": ("hausmannite", "tI28"),
    "stannite": ("stannite", "tI16"),
    "enargite": ("enargite", "oP16"),
    "cubic laves": ("cubic laves", "cF24"),
    "hexagonal laves": ("hexagonal laves", "hP12"),
    "max phase": ("max phase", "hP16"),
    "tungsten carbide": ("tungsten carbide", "hP2"),
    "millerite": ("millerite", "hR6"),
    "cementite": ("cementite", "oP16"),
    "zintl": ("zintl phase", "cF16"),
    "cdi2": ("trigonal omega", "hP3"),
    "alb2": ("hexagonal omega structure", "hP3"),
    "k2nif4": ("(la,ba)cuo4", "tI14"),
    "zircon": ("zircon", "tI24"),
    "quartz": ("quartz (alpha)", "hP9"),
    "cristobalite": ("low (alpha) cristobalite", "tP12"),
}
_ANION_ORDER = ("F", "O", "Cl", "N", "Br", "I", "S", "Se", "Te", "C", "As", "P", "Sb")


_NOT_A_TYPE = re.compile(r"superconductor|parent of|theoretical|different elements|high pressure|stable at|bergman|"
                         r"bainite|^i4/mcm$")  # a tag that names no type: the formula names it instead
_MOLECULAR = re.compile(r"cubane|ammonia|cyanogen|monoxide|cyanide|thiocyanate")  # molecular crystals: left out
_BUILT_HERE = {"half-heusler", "cscl-type"}  # typed families built from Wyckoff positions, not from AFLOW
_ALLOY_MARKERS = frozenset({"Cr", "Fe", "Ni"})  # steel-phase variants that label Wyckoff sites by element
MAX_TYPE_ATOMS = 40  # sites of a structure type's cell: the prototype path decorates cells up to this size


def _clean_name(mineral: str) -> str | None:
    """A mineral tag as a chemist would type it ('Khatyrkite' -> 'khatyrkite'); None for a tag that names no type."""
    name = mineral.lower().strip()
    if not name or _NOT_A_TYPE.search(name) or not re.fullmatch(r"[a-z][a-z' -]*[a-z]", name) or len(name.split()) > 4:
        return None
    return name


def strukturbericht_code(tags: dict[str, str]) -> str | None:
    """The Strukturbericht designation in the form people type it ('L1_2' -> 'l12', 'C1_b' -> 'c1b'), or None."""
    code = (tags.get("strukturbericht") or "").strip()
    if not re.fullmatch(r"[A-Z]\d{1,2}(?:_[a-z0-9]{1,2})?", code):  # not 'B_h': 'bh', 'ca' read as words
        return None
    return code.replace("_", "").lower()


def _is_compound_type(structure: Structure) -> bool:
    """A structure type worth offering: two or more elements, not a molecule, not a steel-phase site label."""
    elements = {el.symbol for el in structure.composition.elements}
    if len(elements) < 2 or len(structure) > MAX_TYPE_ATOMS or elements >= _ALLOY_MARKERS:
        return False
    return not ({"C", "N"} <= elements or ("H" in elements and elements & {"C", "N"}))


@lru_cache(maxsize=1)
def structure_types() -> dict[str, tuple[dict[str, str], Structure]]:
    """Every compound structure type of pymatgen's AFLOW library, by family name -> (tags, prototype): the curated
    names of GENERIC_FAMILIES first, then the mineral name ('khatyrkite'), else '<formula>-type' ('cr3si-type' for
    A15). The typed families (_AFLOW_FAMILIES) are left to their own builders."""
    curated = {key: name for name, key in GENERIC_FAMILIES.items()}
    typed = {mineral for mineral, _ in _AFLOW_FAMILIES.values()}
    out: dict[str, tuple[dict[str, str], Structure]] = {}
    for tags, structure in aflow_library():
        mineral = (tags.get("mineral") or "").lower()
        if mineral in typed or _MOLECULAR.search(mineral) or not _is_compound_type(structure):
            continue
        name = curated.get((mineral, tags.get("pearson") or ""))
        if name is None:
            name = _clean_name(mineral) or f"{structure.composition.reduced_formula.lower()}-type"
            if name in _BUILT_HERE:
                continue
            if name in out or name in RATIOS:
                name = f"{name} {(tags.get('pearson') or '').lower()}"
        out.setdefault(name, (tags, structure))
    return out


@cache
def generic_roles(family: str) -> tuple[tuple[str, ...], tuple[int, ...], dict[str, str]] | None:
    """Roles of an AFLOW structure type: its anion (the first of _ANION_ORDER present, when the type has a
    cation too) is X, the other elements are A, B, C, ... by increasing electronegativity. Returns (roles, ratio,
    role -> the prototype's own element), or None for an unknown name."""
    entry = structure_types().get(family)
    return None if entry is None else formula_roles(entry[1].composition.reduced_composition.get_el_amt_dict())


_SINGLE_ANIONS = frozenset({"O", "S", "Se", "Te", "N", "F", "Cl", "Br", "I"})


def formula_roles(
    amounts: dict[str, float], one_anion: bool = False
) -> tuple[tuple[str, ...], tuple[int, ...], dict[str, str]] | None:
    """(roles, ratio, role -> element) of a reduced formula as generic_roles reads a prototype; None for more
    cations than stand-in species, and with one_anion for a formula of two simple anions (Li6PS5Cl)."""
    mixed = one_anion and len(_SINGLE_ANIONS & set(amounts)) > 1
    if mixed or any(abs(v - round(v)) > 1e-6 for v in amounts.values()):
        return None
    anion = next((a for a in _ANION_ORDER if a in amounts), None) if len(amounts) > 1 else None
    cations = sorted((el for el in amounts if el != anion), key=lambda el: (Element(el).X, el))
    if len(cations) > 4:
        return None  # more roles than the stand-in species can carry
    roles = [chr(ord("A") + i) for i in range(len(cations))] + (["X"] if anion else [])
    own = dict(zip(roles, [*cations, *([anion] if anion else [])], strict=True))
    return tuple(roles), tuple(int(amounts[own[r]]) for r in roles), own


def roles_of(family: str) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
    """(roles, ratio) of a family: one of RATIOS or an AFLOW structure type of GENERIC_FAMILIES; None if unknown."""
    family = family.lower()
    if family in RATIOS:
        return RATIOS[family]
    generic = generic_roles(family)
    return None if generic is None else generic[:2]


@cache
def template(family: str) -> Structure:
    """The family's template with stand-in species Li (A), Be (B), B (C), O (X); cached, so callers copy it."""
    family = family.lower()
    generic = generic_roles(family)
    if generic is not None:
        proto = structure_types()[family][1].copy()
        proto.replace_species({el: _STANDIN[role] for role, el in generic[2].items()})
        return proto
    if family not in RATIOS:
        raise KeyError(f"unknown structure family {family!r}; known: {', '.join(FAMILIES)}")
    if family in _AFLOW_FAMILIES:
        mineral, roles = _AFLOW_FAMILIES[family]
        proto = _aflow_entries()[mineral].copy()
        proto.replace_species({el: _STANDIN[role] for el, role in roles.items()})
        return proto
    return _built(family)


def decorate(family: str, elements: dict[str, str], volume_per_atom: float | None = None) -> Structure:
    """The template with roles replaced by real elements (e.g. {"A": "La", "B": "Mn", "X": "O"}), volume-scaled.

    The volume comes from pymatgen's data-mined bond-length predictor unless given.
    """
    proto = template(family).copy()
    roles, _ = roles_of(family) or RATIOS[family.lower()]
    missing = [r for r in roles if r not in elements]
    if missing:
        raise KeyError(f"family {family!r} needs elements for roles {missing}")
    proto.replace_species({_STANDIN[r]: elements[r] for r in roles})
    if volume_per_atom is not None:
        proto.scale_lattice(volume_per_atom * len(proto))
    else:
        proto = predicted_volume(proto)
    return proto


def predicted_volume(structure: Structure) -> Structure:
    """Rescale to pymatgen's DLS (data-mined bond length) volume; falls back to atomic radii."""
    from pymatgen.analysis.structure_prediction.volume_predictor import DLSVolumePredictor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return DLSVolumePredictor().get_predicted_structure(structure)
        except Exception:  # no bond-length data for a pair: scale to touching atomic radii instead
            vol = sum(4.19 * (site.specie.atomic_radius or 1.5) ** 3 for site in structure) / 0.6
            scaled = structure.copy()
            scaled.scale_lattice(vol)
            return scaled
