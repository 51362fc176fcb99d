"""Stored structures listed as MCP resources: resources/list pages through memory with a cursor, each entry is
structure://{id} named by formula and space group, and reading one back gives its CIF; through the real `mcp`
client, in process and over stdio."""

from __future__ import annotations

import asyncio
import sys

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from memory.store import StructureStore
from server import build_server
from tests.conftest import ROOT, perovskite, rocksalt, server_env
from tools.core.registry import open_store
from tools.core.settings import get_settings


def _fill(store: StructureStore) -> dict[str, str]:
    """Five structures (one with an energy); reduced formula -> id."""
    ids = {}
    for structure, energy in ((rocksalt(), -24.0), (rocksalt(5.64, "Na", "Cl"), None), (perovskite(), None),
                              (perovskite(3.99, "Ba"), None), (rocksalt(4.6, "Ca"), None)):
        ids[structure.composition.reduced_formula] = store.add(structure, provenance={"tool": "test"},
                                                               energy=energy).id
    return ids


async def _all_pages(client: Client) -> tuple[list, int]:
    """Every listed resource, following next_cursor; and how many pages that took."""
    listed, cursor, pages = [], None, 0
    while True:
        page = await client.list_resources(cursor=cursor)
        listed += page.resources
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return listed, pages


def test_store_pages_are_stable_and_complete(tmp_path):
    store = StructureStore(tmp_path / "mem")
    ids = _fill(store)
    first, nxt = store.list_page(0, 2)
    assert len(first) == 2 and nxt == 2
    seen = [r["id"] for r in first]
    while nxt is not None:
        page, nxt = store.list_page(nxt, 2)
        seen += [r["id"] for r in page]
    assert sorted(seen) == sorted(ids.values()) and len(seen) == 5
    assert [r["id"] for r in store.list_page(0, 2)[0]] == seen[:2]  # same order on a second read
    mgo = next(r for r in first + store.list_page(0, 5)[0] if r["id"] == ids["MgO"])
    assert mgo["reduced_formula"] == "MgO" and mgo["spacegroup_symbol"] == "Fm-3m"
    assert mgo["energy_per_atom"] == pytest.approx(-3.0) and "cif" not in mgo
    with pytest.raises(ValueError):
        store.list_page(-1, 2)


def test_resources_list_pages_stored_structures_in_process(workspace):
    ids = _fill(open_store(get_settings()))

    async def run() -> None:
        async with Client(build_server(get_settings(), resource_page_size=2)) as client:
            first = await client.list_resources()
            assert len(first.resources) == 2 and first.next_cursor
            listed, pages = await _all_pages(client)
            assert pages == 3
            by_uri = {str(r.uri): r for r in listed}
            assert set(by_uri) == {f"structure://{i}" for i in ids.values()}
            mgo = by_uri[f"structure://{ids['MgO']}"]
            assert mgo.name == "MgO Fm-3m" and mgo.mime_type == "chemical/x-cif"
            assert "energy -3.0000 eV/atom" in mgo.description and "Fm-3m (No. 225)" in mgo.description
            nacl = by_uri[f"structure://{ids['NaCl']}"]
            assert "energy" not in nacl.description  # none known, none made up
            cif = await client.read_resource(mgo.uri)
            assert cif.contents[0].mime_type == "chemical/x-cif" and "Mg" in cif.contents[0].text
            with pytest.raises(MCPError, match="invalid resources/list cursor"):
                await client.list_resources(cursor="not-a-cursor")
            templates = await client.list_resource_templates()
            assert "structure://{id}" in {t.uri_template for t in templates.resource_templates}

    asyncio.run(run())


@pytest.mark.slow
def test_resources_list_over_stdio(workspace):
    """server.py as a subprocess: the default page size (100) lists three stored structures on one page."""
    ids = _fill(open_store(get_settings()))

    async def run() -> None:
        params = StdioServerParameters(command=sys.executable, args=[str(ROOT / "server.py")],
                                       env=server_env(workspace))
        async with Client(params, read_timeout_seconds=300) as client:
            page = await client.list_resources()
            assert page.next_cursor is None
            assert {str(r.uri) for r in page.resources} == {f"structure://{i}" for i in ids.values()}
            sto = next(r for r in page.resources if str(r.uri) == f"structure://{ids['SrTiO3']}")
            assert sto.name == "SrTiO3 Pm-3m"
            cif = await client.read_resource(sto.uri)
            assert "_cell_length_a" in cif.contents[0].text and "Sr" in cif.contents[0].text

    asyncio.run(run())
