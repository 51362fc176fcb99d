"""Typed reference cells of known members of every structure family (models/data/reference_cells.json): the
published space group, lattice and Wyckoff positions of e.g. forsterite or TiNiSn, expanded with
`Structure.from_spacegroup`. They are typed independently of models/crystals/prototypes.py, so the templates can be
checked
against them, and the benchmark judges a structure against a real crystal rather than against the project's own
template.

Every site carries the properties `role` (the family role: A, B, C or X) and `wyckoff` (the Wyckoff letter of the
typed setting).
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

from pymatgen.core import Lattice, Structure

DATA = Path(__file__).resolve().parents[1] / "data" / "reference_cells.json"


@cache
def _entries() -> dict[str, dict]:
    data = json.loads(DATA.read_text())
    return {name: entry for name, entry in data.items() if not name.startswith("_")}


def reference_names() -> list[str]:
    """Names (formulas) of all typed reference cells."""
    return list(_entries())


def reference_entry(name: str) -> dict:
    """The typed data of one reference cell: family, spacegroup, lattice, sites, source (and note where approximate)."""
    try:
        return _entries()[name]
    except KeyError:
        raise KeyError(f"no reference cell {name!r}; known: {', '.join(_entries())}") from None


def _lattice(spec: dict[str, float]) -> Lattice:
    a = spec["a"]
    return Lattice.from_parameters(
        a, spec.get("b", a), spec.get("c", a), spec.get("alpha", 90), spec.get("beta", 90), spec.get("gamma", 90)
    )


def _site_roles(site: dict) -> dict[str, str]:
    """element -> role of one typed site (a disordered site maps each of its elements)."""
    species = site["species"] if "species" in site else {site["element"]: 1.0}
    role = site["role"]
    return dict(role) if isinstance(role, dict) else {el: role for el in species}


@cache
def _built(name: str) -> Structure:
    entry = reference_entry(name)
    species, coords, wyckoff, roles = [], [], [], []
    for site in entry["sites"]:
        species.append(site.get("species") or site["element"])
        coords.append(site["coords"])
        wyckoff.append(site["wyckoff"])
        roles.append(_site_roles(site))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cell = Structure.from_spacegroup(
            entry["spacegroup"],
            _lattice(entry["lattice"]),
            species,
            coords,
            site_properties={"wyckoff": wyckoff, "role_map": roles},
        )
    if not cell.is_ordered:
        cell = _ordered(cell, entry.get("ordering"))
    role = [site.properties["role_map"][site.specie.symbol] for site in cell]
    cell.add_site_property("role", role)
    cell.remove_site_property("role_map")
    return cell


def _ordered(cell: Structure, ordering: str | None) -> Structure:
    """Order the disordered sites: 'primitive' takes the primitive cell and fills each disordered orbit in site
    order, each element by its fraction (first element first)."""
    if ordering != "primitive":
        raise ValueError(f"disordered reference cell needs ordering='primitive', got {ordering!r}")
    prim = cell.get_primitive_structure()
    orbits: dict[str, list[int]] = {}
    for i, site in enumerate(prim):
        if not site.is_ordered:
            orbits.setdefault(site.properties["wyckoff"], []).append(i)
    for indices in orbits.values():
        fractions = prim[indices[0]].species.get_el_amt_dict()
        total = sum(fractions.values())
        pool = []
        for el, amount in fractions.items():
            pool += [el] * round(len(indices) * amount / total)
        if len(pool) != len(indices):
            raise ValueError(f"cannot order {fractions} over {len(indices)} sites of the primitive cell")
        for i, el in zip(indices, pool, strict=True):
            prim.replace(i, el, properties=prim[i].properties)
    return prim


def reference_cell(name: str) -> Structure:
    """The typed reference cell (a copy), with site properties `role` and `wyckoff`."""
    return _built(name).copy()


def reference_roles(name: str) -> dict[str, str]:
    """role -> element of a reference cell (e.g. Mg2SiO4: A=Mg, B=Mg, C=Si, X=O)."""
    out: dict[str, str] = {}
    for site in reference_entry(name)["sites"]:
        for el, role in _site_roles(site).items():
            if out.setdefault(role, el) != el and role != "X":
                raise ValueError(f"{name}: role {role} holds both {out[role]} and {el}")
    return out


def _known_members() -> dict[str, list[tuple[str, dict[str, str]]]]:
    out: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for name, entry in _entries().items():
        out.setdefault(entry["family"], []).append((name, reference_roles(name)))
    return out


# family -> [(reference cell name, role -> element)], in the data file's order (the first is the family's main one)
KNOWN_MEMBERS: dict[str, list[tuple[str, dict[str, str]]]] = _known_members()
