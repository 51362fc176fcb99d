"""Crystal prototypes of the common inorganic families, decorated with any elements: templates for the search's
family matching, for reference compounds of the local hull, and for the generator's training data.

Most come from the AFLOW prototype library that pymatgen ships; the rest (double perovskite, pyrochlore, olivine,
layered rock salt, CsCl, antifluorite, inverse spinel) are built here from their Wyckoff positions.
"""

from __future__ import annotations

import gzip
import json
import warnings
from functools import cache, lru_cache
from pathlib import Path

import pymatgen.core
from pymatgen.core import Lattice, Structure

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
    "half-heusler": ("half-heusler", {"Mg": "A", "Ag": "B", "As": "C"}),
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
    "olivine": (("A", "B", "X"), (2, 1, 4)),
    "layered oxide": (("A", "B", "X"), (1, 1, 2)),
    "heusler": (("A", "B", "C"), (2, 1, 1)),
    "half-heusler": (("A", "B", "C"), (1, 1, 1)),
}
FAMILIES = tuple(RATIOS)


@lru_cache(maxsize=1)
def _aflow_entries() -> dict[str, Structure]:
    """AFLOW prototype structures by mineral tag (read once from pymatgen's data file)."""
    with gzip.open(_AFLOW, "rt") as handle:
        data = json.load(handle)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in data:
            mineral = (entry["tags"].get("mineral") or "").lower()
            if mineral:
                snl = entry["snl"]
                out[mineral] = Structure.from_dict(snl.get("structure", snl))
    return out


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
    if family == "olivine":  # Mg2SiO4, Pnma
        return Structure.from_spacegroup(
            "Pnma",
            Lattice.orthorhombic(10.2, 5.98, 4.75),
            ["Li", "Li", "Be", "O", "O", "O"],
            [
                [0, 0, 0],
                [0.277, 0.25, 0.991],
                [0.094, 0.25, 0.427],
                [0.092, 0.25, 0.766],
                [0.448, 0.25, 0.221],
                [0.163, 0.033, 0.278],
            ],
        )
    if family == "layered oxide":  # alpha-NaFeO2 / LiCoO2, R-3m
        return Structure.from_spacegroup(
            "R-3m", Lattice.hexagonal(2.82, 14.05), ["Li", "Be", "O"], [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.24]]
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


_STANDIN = {"A": "Li", "B": "Be", "C": "B", "X": "O"}


@cache
def template(family: str) -> Structure:
    """The family's template with stand-in species Li (A), Be (B), B (C), O (X); cached, so callers copy it."""
    family = family.lower()
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
    roles, _ = RATIOS[family.lower()]
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
