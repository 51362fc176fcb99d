"""Memory tools: store a structure with provenance, fetch it back, and search by text, formula or similarity."""

from __future__ import annotations

import io
from typing import Literal

from pydantic import BaseModel, Field

from memory.keys import REDUCED_FORMULA_KEY, element_flag_key
from tools.core.common import StructureSummary, check_element_symbols, parse_formula
from tools.core.errors import ToolInputError
from tools.core.provenance import provenance
from tools.core.registry import STORE, ToolContext, ToolInput, tool
from tools.structures.io import StructureRef, resolve_structure, structure_to_atoms


class StoreStructureInput(ToolInput):
    structure: StructureRef = Field(description="The structure: {'id': memory id} or {'text': CIF/POSCAR/extxyz}.")
    description: str | None = Field(default=None, max_length=2000, description="Free text kept for text search.")
    tags: list[str] = Field(default_factory=list, max_length=50, description="Short labels, e.g. ['perovskite'].")
    energy_eV: float | None = Field(default=None, description="Total energy of the cell in eV, if known.")
    properties: dict[str, float | int | str | bool] = Field(default_factory=dict, description="Known properties.")
    parent_ids: list[str] = Field(default_factory=list, description="Ids of the structures this one came from.")
    allow_large: bool = Field(default=False, description="Accept cells above the atom limit.")


class StoreStructureOutput(BaseModel):
    id: str
    deduplicated: bool = Field(description="True when an equivalent structure was already stored (its id returned).")
    structure: StructureSummary


def rough_atom_count(ref: StructureRef) -> int:
    """An atom count read without parsing (parsing a huge CIF is itself slow): the line count of the text, which
    for CIF (one atom-site row per line), POSCAR and extxyz is about the number of atoms; 1 for a memory id."""
    return 1 if ref.text is None else ref.text.count("\n") + 1


def store_seconds(n_atoms: int) -> float:
    """Seconds to parse, analyse and de-duplicate one cell of n atoms on 2 cores: 0.4 s for a unit cell, ~11 s at
    2744 atoms and ~95 s at 8000 (pymatgen CIF parsing and StructureMatcher grow as about n^1.8)."""
    return 0.4 + 11.0 * (n_atoms / 2744) ** 1.8


@tool(cost="instant", reaches=(STORE,), idempotent=True,
      estimate=lambda inp: store_seconds(rough_atom_count(inp.structure)))
def store_structure(inp: StoreStructureInput, ctx: ToolContext) -> StoreStructureOutput:
    """Store a crystal structure in matsearch memory with its provenance and return its id.

    The structure is validated (parsable, real elements, no overlapping atoms). If an equivalent structure
    (pymatgen StructureMatcher) is already stored, its id is returned and nothing is duplicated.
    """
    structure = resolve_structure(inp.structure, ctx.store, ctx.settings.max_atoms, inp.allow_large)
    result = ctx.store.add(
        structure,
        provenance=provenance("store_structure", {"description": inp.description, "tags": inp.tags}, inp.parent_ids),
        energy=inp.energy_eV,
        properties=dict(inp.properties),
        tags=inp.tags,
        description=inp.description,
    )
    record = ctx.store.get(result.id)
    return StoreStructureOutput(
        id=result.id, deduplicated=result.deduplicated, structure=StructureSummary.from_record(record)
    )


class StoreStructuresInput(ToolInput):
    structures: list[StoreStructureInput] = Field(
        min_length=1, max_length=5000, description="The structures to store, each as store_structure takes it."
    )


class StoredItem(BaseModel):
    id: str
    deduplicated: bool = Field(description="True when an equivalent structure was already stored (its id returned).")
    formula: str


class StoreStructuresOutput(BaseModel):
    n_new: int = Field(description="Structures written as new records.")
    n_deduplicated: int = Field(description="Structures that were already stored (their ids returned).")
    items: list[StoredItem] = Field(description="One per input structure, in input order.")


@tool(cost="instant", reaches=(STORE,), idempotent=True,
      estimate=lambda inp: sum(0.05 + store_seconds(rough_atom_count(s.structure)) - 0.4 for s in inp.structures))
def store_structures(inp: StoreStructuresInput, ctx: ToolContext) -> StoreStructuresOutput:
    """Store many crystal structures in matsearch memory at once (embedded and written in batches); same rules as
    store_structure: an equivalent structure already stored (or earlier in the list) is not duplicated."""
    structures = [resolve_structure(s.structure, ctx.store, ctx.settings.max_atoms, s.allow_large)
                  for s in inp.structures]
    items = [
        {
            "structure": structure,
            "provenance": provenance("store_structures", {"description": s.description, "tags": s.tags}, s.parent_ids),
            "energy": s.energy_eV,
            "properties": dict(s.properties),
            "tags": s.tags,
            "description": s.description,
        }
        for s, structure in zip(inp.structures, structures, strict=True)
    ]
    results = ctx.store.add_many(items)
    out = [StoredItem(id=r.id, deduplicated=r.deduplicated, formula=st.composition.reduced_formula)
           for r, st in zip(results, structures, strict=True)]
    n_dup = sum(r.deduplicated for r in results)
    return StoreStructuresOutput(n_new=len(results) - n_dup, n_deduplicated=n_dup, items=out)


class GetStructureInput(ToolInput):
    id: str = Field(min_length=1, max_length=100, description="Memory id, e.g. 's-1a2b3c4d5e6f7a8b'.")
    format: Literal["cif", "poscar", "extxyz"] = Field(default="cif", description="Text format of the structure.")


class GetStructureOutput(BaseModel):
    structure: StructureSummary
    format: str
    text: str


@tool(cost="instant", reaches=(STORE,), read_only=True, idempotent=True)
def get_structure(inp: GetStructureInput, ctx: ToolContext) -> GetStructureOutput:
    """Fetch a stored structure by id: its summary (formula, space group, energies, provenance) and its text."""
    record = ctx.store.get(inp.id)
    if record is None:
        raise ToolInputError(f"no structure with id {inp.id!r} in memory")
    if inp.format == "cif":
        text = record.cif
    elif inp.format == "poscar":
        from pymatgen.io.vasp import Poscar

        text = Poscar(record.structure).get_str()
    else:
        from ase.io import write

        buf = io.StringIO()
        write(buf, structure_to_atoms(record.structure), format="extxyz")
        text = buf.getvalue()
    return GetStructureOutput(structure=StructureSummary.from_record(record), format=inp.format, text=text)


class SearchStructuresInput(ToolInput):
    query: str | None = Field(default=None, max_length=2000, description="Natural-language text to match.")
    formula: str | None = Field(default=None, max_length=200, description="Reduced formula to match, e.g. 'LaMnO3'.")
    elements: list[str] = Field(default_factory=list, max_length=20, description="Elements that must be present.")
    only_elements: bool = Field(default=False, description="With elements: no other elements allowed.")
    similar_to: StructureRef | None = Field(default=None, description="Find structures similar to this one.")
    n: int = Field(default=5, ge=1, le=100, description="How many results.")


class SearchStructuresOutput(BaseModel):
    mode: Literal["similarity", "text", "composition"]
    hits: list[StructureSummary]


@tool(cost="instant", reaches=(STORE,), read_only=True, idempotent=True)
def search_structures(inp: SearchStructuresInput, ctx: ToolContext) -> SearchStructuresOutput:
    """Search matsearch memory: by structural similarity (`similar_to`), by meaning of a text `query`,
    or by `formula` / `elements`. Text search can be narrowed by formula and elements. Results carry ids,
    formulas, space groups, energies and similarity scores."""
    elements = check_element_symbols(inp.elements)
    formula = parse_formula(inp.formula).reduced_formula if inp.formula else None
    store = ctx.store
    if inp.similar_to is not None:
        structure = resolve_structure(inp.similar_to, store, ctx.settings.max_atoms)
        hits = [StructureSummary.from_record(r, s) for r, s in store.search_similar(structure, inp.n)]
        return SearchStructuresOutput(mode="similarity", hits=hits)
    if inp.query:
        clauses = [{REDUCED_FORMULA_KEY: formula}] if formula else []
        clauses += [{element_flag_key(e): True} for e in elements]
        where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        hits = [StructureSummary.from_record(r, s) for r, s in store.search_text(inp.query, inp.n, where)]
        return SearchStructuresOutput(mode="text", hits=hits)
    if formula or elements:
        records = store.search_composition(formula, elements, inp.only_elements, inp.n)
        return SearchStructuresOutput(mode="composition", hits=[StructureSummary.from_record(r) for r in records])
    raise ToolInputError("give a query, a formula, elements or similar_to")
