"""Small models shared by many tools: the summary of a stored structure and element/formula validation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pymatgen.core import Composition, Element

from memory.keys import (
    DENSITY_KEY,
    ENERGY_PER_ATOM_KEY,
    FORMULA_KEY,
    N_SITES_KEY,
    REDUCED_FORMULA_KEY,
    SPACEGROUP_NUMBER_KEY,
    SPACEGROUP_SYMBOL_KEY,
)
from tools.core.errors import ToolInputError


class StructureSummary(BaseModel):
    """What a tool says about a stored structure; the full CIF is at `uri` (a structure:// resource)."""

    id: str
    uri: str = Field(description="MCP resource URI of the CIF, structure://{id}")
    formula: str
    reduced_formula: str
    spacegroup: str
    spacegroup_number: int
    n_sites: int
    density_g_cm3: float
    energy_per_atom_eV: float | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    score: float | None = Field(default=None, description="Search similarity in [-1, 1] when from a search")

    @classmethod
    def from_record(cls, record: Any, score: float | None = None) -> StructureSummary:
        meta = record.metadata
        return cls(
            id=record.id,
            uri=f"structure://{record.id}",
            formula=meta[FORMULA_KEY],
            reduced_formula=meta[REDUCED_FORMULA_KEY],
            spacegroup=meta[SPACEGROUP_SYMBOL_KEY],
            spacegroup_number=int(meta[SPACEGROUP_NUMBER_KEY]),
            n_sites=int(meta[N_SITES_KEY]),
            density_g_cm3=round(float(meta[DENSITY_KEY]), 4),
            energy_per_atom_eV=meta.get(ENERGY_PER_ATOM_KEY),
            properties=record.properties,
            provenance=record.provenance,
            score=None if score is None else round(score, 4),
        )


def check_element_symbols(symbols: list[str]) -> list[str]:
    """Validated element symbols (case-normalised); ToolInputError naming any unknown one."""
    out = []
    for raw in symbols:
        sym = raw.strip().capitalize()
        if not Element.is_valid_symbol(sym):
            raise ToolInputError(f"unknown element {raw!r}")
        out.append(sym)
    return out


def parse_formula(formula: str) -> Composition:
    """A formula string to a Composition; ToolInputError naming the problem otherwise."""
    try:
        comp = Composition(formula)
    except Exception as exc:
        raise ToolInputError(f"cannot read formula {formula!r}: {exc}") from exc
    if comp.num_atoms <= 0:
        raise ToolInputError(f"formula {formula!r} has no atoms")
    for el in comp.elements:
        if not isinstance(el, Element):
            raise ToolInputError(f"unknown element {el!s} in formula {formula!r}")
    return comp
