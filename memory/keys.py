"""The names of what memory keeps, each once (nequip-style data keys): the metadata of a stored record, which
memory/store.py writes and the tools, the agent, server.py and the web page read; the provenance keys the store
reads and merges; and the property keys it copies into filterable metadata. Code says FORMULA_KEY, not "formula".
The strings are what records on disk already carry: never change one (old records would stop reading)."""

from __future__ import annotations

# Metadata of a record (chromadb metadata: str, int, float or bool values; None is left out).
FORMULA_KEY = "formula"  # the cell's formula without spaces, e.g. "Sr2Ti2O6"
REDUCED_FORMULA_KEY = "reduced_formula"  # the reduced formula, e.g. "SrTiO3": what formula search filters on
ELEMENTS_KEY = "elements"  # the sorted element symbols between bars, e.g. "|O|Sr|Ti|"
N_ELEMENTS_KEY = "n_elements"  # how many elements
N_SITES_KEY = "n_sites"  # atoms in the cell
SPACEGROUP_SYMBOL_KEY = "spacegroup_symbol"  # e.g. "Pm-3m" (P1 when spglib gives up)
SPACEGROUP_NUMBER_KEY = "spacegroup_number"  # 1 to 230
CRYSTAL_SYSTEM_KEY = "crystal_system"  # e.g. "cubic"
DENSITY_KEY = "density"  # g/cm3
VOLUME_PER_ATOM_KEY = "volume_per_atom"  # A^3 per atom
TOOL_KEY = "tool"  # the tool that stored the record (its provenance's tool, also a provenance key)
PARENT_IDS_KEY = "parent_ids"  # the records it came from: a list in provenance, "|"-joined in metadata
CREATED_AT_KEY = "created_at"  # UTC time of storing, ISO 8601 (the provenance's time)
PROVENANCE_JSON_KEY = "provenance_json"  # the whole provenance, JSON
PROPERTIES_JSON_KEY = "properties_json"  # the whole properties dict, JSON
TAGS_KEY = "tags"  # the tags, ","-joined
CIF_KEY = "cif"  # the structure itself, as CIF text
DESCRIPTION_KEY = "description"  # the callers' descriptions, "\n"-joined
ENERGY_KEY = "energy"  # total energy of the cell, eV
ENERGY_PER_ATOM_KEY = "energy_per_atom"  # eV/atom: what composition search ranks by
FORMATION_ENERGY_PER_ATOM_KEY = "formation_energy_per_atom"  # eV/atom, from properties (filterable)
E_ABOVE_HULL_KEY = "e_above_hull"  # eV/atom, from properties (filterable)
WRITE_ID_KEY = "write_id"  # which write made the record (tells a concurrent writer's record from this one's)
CHEMSYS_KEY = "chemsys"  # the sorted elements "-"-joined, e.g. "O-Sr-Ti": what hull queries filter on
HULL_V_KEY = "hull_v"  # the hull-metadata schema the record was written with
INDEX_V_KEY = "index_v"  # the search-index schema the record was written with
HULL_PREFIX = "hull_"  # the hull fields below (and HULL_V_KEY) start with it
HULL_POTENTIAL_KEY = "hull_potential"  # the potential the record's energy was computed with
HULL_ENERGY_KEY = "hull_energy_eV"  # total energy of the cell for the hull, eV
HULL_RELAXATION_KEY = "hull_relaxation"  # the record is a relaxation outcome, converged or not
HULL_CONVERGED_KEY = "hull_converged"  # ...and that relaxation converged
INDEX_ROW_KEY = "row"  # an index entry's one metadata key: its formulas, chemsys and hull fields as JSON
ELEMENT_FLAG_PREFIX = "el_"  # el_<El>: True for each element (the older element filter)
HAS_ELEMENT_PREFIX = "has_"  # has_<El>: 1 for each element (the indexed element filter)


def element_flag_key(element: str) -> str:
    """The older element-filter key of an element, e.g. "el_Ti"."""
    return f"{ELEMENT_FLAG_PREFIX}{element}"


def has_element_key(element: str) -> str:
    """The indexed element-filter key of an element, e.g. "has_Ti"."""
    return f"{HAS_ELEMENT_PREFIX}{element}"


# Provenance (besides TOOL_KEY and PARENT_IDS_KEY above).
PARAMETERS_KEY = "parameters"  # the parameters the tool ran with
TIME_KEY = "time"  # UTC time the tool stored the record, ISO 8601
EQUIVALENT_TO_KEY = "equivalent_to"  # a stored record this one matches (StructureMatcher) but is kept apart from
CONFLICTING_VALUES_KEY = "conflicting_values"  # values a repeated store brought that differ from the stored ones
MERGED_STORES_KEY = "merged_stores"  # the repeated stores that added tags, a description or properties

# Properties the store reads (a tool's Properties; `relaxed` and `converged` are memory.store's RELAXED, CONVERGED).
POTENTIAL_KEY = "potential"  # the potential the properties were computed with
ENERGY_EV_KEY = "energy_eV"  # total energy of the cell, eV
EV_SUFFIX = "_eV"  # the tools' spelling of an indexed property: e_above_hull_eV for e_above_hull
