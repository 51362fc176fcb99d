"""Every memory record a tool stores carries one provenance shape: tool, parameters, parent ids, UTC time."""

from __future__ import annotations

import re

from memory.keys import PARAMETERS_KEY as PARAMETERS
from memory.keys import PARENT_IDS_KEY as PARENT_IDS
from memory.keys import TIME_KEY as TIME
from memory.keys import TOOL_KEY as TOOL
from tests.conftest import cif_of, rocksalt
from tools.core.provenance import provenance
from tools.core.registry import ToolContext, get_tool

UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_provenance_names_the_tool_its_parameters_and_the_parents_it_came_from() -> None:
    prov = provenance("relax_structure", {"fmax": 0.05}, ["s-1", None, "s-2"])
    assert set(prov) == {TOOL, PARAMETERS, PARENT_IDS, TIME}
    assert prov[TOOL] == "relax_structure" and prov[PARAMETERS] == {"fmax": 0.05}
    assert prov[PARENT_IDS] == ["s-1", "s-2"]  # an inline structure (no id) is no parent
    assert UTC.match(prov[TIME])


def test_a_stored_structure_carries_that_provenance(workspace) -> None:
    ctx = ToolContext()
    out = get_tool("store_structure").run(
        {"structure": {"text": cif_of(rocksalt())}, "parent_ids": ["s-parent"], "tags": ["t"]}, ctx
    )
    record = ctx.store.get(out.structure.id)
    assert record.provenance[TOOL] == "store_structure" and record.provenance[PARENT_IDS] == ["s-parent"]
    assert record.provenance[PARAMETERS] == {"description": None, "tags": ["t"]} and UTC.match(record.provenance[TIME])
