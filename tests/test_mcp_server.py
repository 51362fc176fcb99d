"""server.py driven by the real `mcp` client as a subprocess, over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import base64
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import ROOT, cif_of, free_port, perovskite, rocksalt, server_env, start_http_server

pytestmark = pytest.mark.slow  # server.py as a subprocess over stdio and HTTP


def stdio_client(workspace: Path) -> Client:
    params = StdioServerParameters(command=sys.executable, args=[str(ROOT / "server.py")], env=server_env(workspace))
    return Client(params, read_timeout_seconds=300)


async def exercise(client: Client) -> str:
    """List tools, store, search by text and similarity, read structure://{id}; returns the stored id."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {"store_structure", "search_structures", "analyze_structure", "job_wait"} <= set(tools)
    assert tools["store_structure"].output_schema["properties"]["id"]["type"] == "string"
    assert tools["get_structure"].annotations.read_only_hint is True

    stored = await client.call_tool(
        "store_structure", {"structure": {"text": cif_of(perovskite())}, "description": "cubic perovskite"}
    )
    assert not stored.is_error, stored.content
    sid = stored.structured_content["id"]
    assert any(getattr(c, "uri", None) == f"structure://{sid}" for c in stored.content)  # a resource link
    await client.call_tool("store_structure", {"structure": {"text": cif_of(rocksalt())}})

    text = await client.call_tool("search_structures", {"query": "perovskite titanate", "n": 1})
    assert text.structured_content["hits"][0]["id"] == sid
    similar = await client.call_tool(
        "search_structures", {"similar_to": {"text": cif_of(perovskite(4.0, "Ba"))}, "n": 2}
    )
    assert similar.structured_content["mode"] == "similarity"
    assert similar.structured_content["hits"][0]["id"] == sid

    cif = await client.read_resource(f"structure://{sid}")
    assert "_cell_length_a" in cif.contents[0].text and "Sr" in cif.contents[0].text
    return sid


async def bad_inputs_keep_server_alive(client: Client) -> None:
    broken = await client.call_tool("store_structure", {"structure": {"text": "data_x\n_cell_length_a 3\nloop_"}})
    assert broken.is_error and "could not parse" in broken.content[0].text
    unknown = await client.call_tool("search_structures", {"elements": ["Zz"]})
    assert unknown.is_error and "unknown element 'Zz'" in unknown.content[0].text
    wrong_type = await client.call_tool("search_structures", {"n": "many"})
    assert wrong_type.is_error and "n" in wrong_type.content[0].text
    missing = await client.call_tool("get_structure", {"id": "s-0000"})
    assert missing.is_error and "no structure" in missing.content[0].text
    no_tool = await client.call_tool("job_start", {"tool": "rm_rf", "arguments": {}})
    assert no_tool.is_error and "unknown tool" in no_tool.content[0].text
    with pytest.raises(Exception, match="outside the workspace|security|Unknown resource"):
        await client.read_resource("artifact://../../etc/passwd")
    with pytest.raises(Exception, match="outside the workspace|security|Unknown resource|does not exist"):
        await client.read_resource("artifact://artifacts/%2E%2E/%2E%2E/%2E%2E/etc/passwd")
    ok = await client.call_tool("search_structures", {"formula": "SrTiO3"})  # still serving
    assert not ok.is_error and ok.structured_content["hits"]


UNDESCRIBED_ELSEWHERE: set[str] = set()  # every input property of every tool has a description


def undescribed_properties(tools: list) -> set[str]:
    """'tool: property' (and 'tool: Model.property' inside $defs) for every input property with no description."""
    missing = set()
    for t in tools:
        models = [("", t.input_schema)] + [(f"{name}.", d) for name, d in t.input_schema.get("$defs", {}).items()]
        for prefix, schema in models:
            missing |= {f"{t.name}: {prefix}{name}" for name, prop in schema.get("properties", {}).items()
                        if not prop.get("description", "").strip()}
    return missing


async def schemas_are_described(client: Client) -> None:
    """Every input property of every tool, as a client lists it, says what it is (required ones included)."""
    tools = (await client.list_tools()).tools
    assert undescribed_properties(tools) <= UNDESCRIBED_ELSEWHERE, undescribed_properties(tools) - UNDESCRIBED_ELSEWHERE
    by_name = {t.name: t.input_schema for t in tools}
    assert "job_list" in by_name["job_wait"]["properties"]["job_id"]["description"]  # required: description kept
    assert by_name["job_wait"]["required"] == ["job_id"] and "job_id" in by_name["job_status"]["required"]
    templates = {t.uri_template: t.mime_type for t in (await client.list_resource_templates()).resource_templates}
    assert templates["artifact://{+path}.png"] == "image/png" and templates["structure://{id}"] == "chemical/x-cif"
    arguments = [(p.name, a) for p in (await client.list_prompts()).prompts for a in p.arguments or []]
    assert arguments and all(len(a.description or "") > len(a.name) + 10 for _, a in arguments), arguments


def test_stdio_server(workspace):
    async def main() -> None:
        async with stdio_client(workspace) as client:
            await exercise(client)
            await bad_inputs_keep_server_alive(client)
            await schemas_are_described(client)

    asyncio.run(main())


def test_http_server_progress_jobs_and_artifacts(workspace):
    port = free_port()
    proc = start_http_server(workspace, port)
    try:

        async def main() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=300) as client:
                sid = await exercise(client)
                await bad_inputs_keep_server_alive(client)
                progress: list[tuple[float, float | None, str | None]] = []

                async def on_progress(done: float, total: float | None, message: str | None) -> None:
                    progress.append((done, total, message))

                analysis = await client.call_tool(
                    "analyze_structure", {"structure": {"id": sid}}, progress_callback=on_progress
                )
                assert not analysis.is_error and analysis.structured_content["spacegroup"] == "Pm-3m"
                assert progress and progress[-1][1] == 3  # MCP progress notifications arrived over HTTP
                png = await client.read_resource(analysis.structured_content["xrd_plot_uri"])
                assert png.contents[0].mime_type == "image/png"  # an image a client can show, not octet-stream
                assert base64.b64decode(png.contents[0].blob).startswith(b"\x89PNG\r\n\x1a\n")
                link = next(c for c in analysis.content if str(getattr(c, "uri", "")) == str(png.contents[0].uri))
                assert link.mime_type == "image/png"

                job = await client.call_tool("job_start", {"tool": "analyze_structure",
                                                           "arguments": {"structure": {"id": sid}}})
                done = await client.call_tool("job_wait", {"job_id": job.structured_content["job_id"],
                                                           "timeout_s": 50})
                assert done.structured_content["state"] == "succeeded"
                assert done.structured_content["result"]["crystal_system"] == "cubic"

        asyncio.run(main())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_memory_and_jobs_survive_sigkill(workspace):
    port = free_port()
    proc = start_http_server(workspace, port)
    url = f"http://127.0.0.1:{port}/mcp"

    async def write() -> tuple[str, str]:
        async with Client(url, read_timeout_seconds=300) as client:
            stored = await client.call_tool("store_structure", {"structure": {"text": cif_of(perovskite())}})
            job = await client.call_tool("job_start", {"tool": "search_structures", "arguments": {"formula": "SrTiO3"}})
            job_id = job.structured_content["job_id"]
            await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 30})
            return stored.structured_content["id"], job_id

    try:
        sid, job_id = asyncio.run(write())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    proc = start_http_server(workspace, port)
    try:

        async def read() -> None:
            async with Client(url, read_timeout_seconds=300) as client:
                got = await client.call_tool("get_structure", {"id": sid})
                assert not got.is_error and got.structured_content["structure"]["reduced_formula"] == "SrTiO3"
                again = await client.call_tool("store_structure", {"structure": {"text": cif_of(perovskite())}})
                assert again.structured_content["id"] == sid and again.structured_content["deduplicated"]
                status = await client.call_tool("job_result", {"job_id": job_id})
                assert status.structured_content["state"] == "succeeded"
                assert status.structured_content["result"]["hits"][0]["id"] == sid

        asyncio.run(read())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_http_refuses_foreign_origins_and_requires_tokens(workspace):
    import httpx

    port = free_port()
    proc = start_http_server(workspace, port)
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        evil = httpx.post(url, json=init, headers=headers | {"origin": "http://evil.example"}, timeout=30)
        assert evil.status_code == 403  # DNS-rebinding / cross-origin request refused
        rebound = httpx.post(url, json=init, headers=headers | {"host": "evil.example"}, timeout=30)
        assert rebound.status_code == 421
        local = httpx.post(url, json=init, headers=headers | {"origin": f"http://127.0.0.1:{port}"}, timeout=30)
        assert local.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    token_port = free_port()
    env = server_env(workspace) | {"MATSEARCH_HTTP_TOKEN": "s3cret"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--http", "--port", str(token_port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{token_port}/mcp"
        deadline = time.time() + 120
        while True:
            try:
                anonymous = httpx.post(url, json=init, headers=headers, timeout=30)
                break
            except httpx.ConnectError:
                assert time.time() < deadline
                time.sleep(0.3)
        assert anonymous.status_code == 401
        authorised = httpx.post(url, json=init, headers=headers | {"authorization": "Bearer s3cret"}, timeout=30)
        assert authorised.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    refused = subprocess.run([sys.executable, str(ROOT / "server.py"), "--http", "--host", "0.0.0.0"],
                             cwd=ROOT, env=server_env(workspace), capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "needs a bearer token" in refused.stderr


# Every tool's MCP hints against what it does: (read-only, destructive, idempotent, open world, what it does).
# Open world: it may reach an LLM, Dask workers, the memory store (remote with chroma_url) or another tool.
ANNOTATIONS = {
    "active_learning": (False, False, False, True, "trains a potential, stores frames, explores on Dask"),
    "analyze_structure": (False, False, False, True, "reads a stored structure, writes a new XRD plot"),
    "distill_potential": (False, False, False, True, "trains a potential from stored seeds, explores on Dask"),
    "estimate_cost": (True, False, True, False, "asks a tool's estimate"),
    "estimate_uncertainty": (False, False, False, True, "reads stored structures, writes an extxyz"),
    "evaluate_potential": (True, False, False, True, "reads stored structures, runs potentials"),
    "fit_uncertainty": (False, True, False, False, "replaces the uncertainty inside a checkpoint"),
    "free_energy_profile": (False, False, False, False, "writes plots and a result file"),
    "generate_structures": (False, False, False, True, "stores generated structures"),
    "get_structure": (True, False, True, True, "reads the store"),
    "hierarchical_search": (False, False, False, True, "asks an LLM, relaxes on Dask, writes the store"),
    "job_cancel": (False, True, False, False, "stops a job"),
    "job_list": (True, False, True, False, "reads the job journal"),
    "job_result": (True, False, True, False, "reads the job journal"),
    "job_resume": (False, False, False, True, "starts a tool again"),
    "job_start": (False, False, False, True, "starts any tool"),
    "job_status": (True, False, True, False, "reads the job journal"),
    "job_wait": (True, False, True, False, "reads the job journal"),
    "learn_cv": (False, False, False, False, "trains a CV, writes files"),
    "predict_crystallization": (False, False, False, True, "reads and writes the store, relaxes on Dask"),
    "predict_properties": (False, False, False, True, "reads and writes the store"),
    "propose_formulas": (True, False, False, True, "may ask an LLM: answers can differ between calls"),
    "relax_structure": (False, False, False, True, "reads and writes the store"),
    "run_md": (False, False, False, True, "reads and writes the store, writes a trajectory"),
    "search_structures": (True, False, True, True, "reads the store"),
    "store_structure": (False, False, True, True, "writes the store (a duplicate is found, not added)"),
    "store_structures": (False, False, True, True, "writes the store in batches (duplicates found, not added)"),
    "train_potential": (False, False, False, True, "reads stored structures, writes a checkpoint"),
    "umbrella_sampling": (False, False, False, False, "runs MD, writes samples"),
}


def test_every_tool_declares_what_it_does(tmp_path):
    from server import build_server
    from tools.core.settings import Settings

    tools = {t.name: t.annotations for t in asyncio.run(build_server(Settings(workspace=tmp_path)).list_tools())}
    assert set(tools) == set(ANNOTATIONS), "a tool was added or removed: give it a row here"
    wrong = {
        name: got
        for name, (read_only, destructive, idempotent, open_world, _) in ANNOTATIONS.items()
        if (got := (tools[name].read_only_hint, tools[name].destructive_hint, tools[name].idempotent_hint,
                    tools[name].open_world_hint)) != (read_only, destructive, idempotent, open_world)
    }
    assert not wrong, wrong
