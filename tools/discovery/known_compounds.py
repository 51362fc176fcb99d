"""Compounds known to exist: the 2,135 solids whose formation enthalpy was measured (pymatgen's experimental
correction set, each with its Materials Project id), read from the installed pymatgen. The offline proposer ranks a
known compound ahead of an equally fitting unknown one: a request that does not ask for novelty is answered best by a
compound someone has made."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import pymatgen.entries
from pymatgen.core import Composition

_SOURCE = Path(pymatgen.entries.__file__).resolve().parents[1] / "analysis" / "compatibility" / "exp_compounds.json.gz"


@cache
def formation_enthalpies() -> dict[str, float]:
    """Measured formation enthalpy (eV/atom) by reduced formula; empty when this pymatgen does not ship the set."""
    try:
        with gzip.open(_SOURCE) as fh:
            rows = json.loads(fh.read())
    except (OSError, ValueError):
        return {}
    out: dict[str, float] = {}
    for row in rows:
        try:
            comp = Composition(row["formula"])
            out[comp.reduced_formula] = float(row["exp energy"]) / comp.num_atoms
        except (KeyError, ValueError, TypeError, ZeroDivisionError):
            continue
    return out


def known_formulas() -> frozenset[str]:
    """Reduced formulas of the measured compounds."""
    return frozenset(formation_enthalpies())


def is_known(formula: str) -> bool:
    """Whether a formula (any multiple of the formula unit) is a measured compound."""
    try:
        return Composition(formula).reduced_formula in formation_enthalpies()
    except ValueError:
        return False
