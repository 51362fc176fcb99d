"""Hardening: 20 concurrent MCP clients over streamable HTTP; SIGKILL during a search job, restart, resume."""

from __future__ import annotations

import asyncio
import signal
import time

import numpy as np
import pytest
from mcp import Client

from tests.conftest import cif_of, free_port, perovskite, rocksalt, start_http_server

pytestmark = pytest.mark.slow  # HTTP servers as subprocesses, 20 clients, SIGKILL and resume


def test_twenty_concurrent_clients(workspace):
    port = free_port()
    proc = start_http_server(workspace, port)
    url = f"http://127.0.0.1:{port}/mcp"
    latencies: list[float] = []

    async def seed() -> str:
        async with Client(url, read_timeout_seconds=300) as client:
            stored = await client.call_tool("store_structure", {"structure": {"text": cif_of(perovskite())}})
            await client.call_tool("search_structures", {"query": "warm up the embedder"})
            return stored.structured_content["id"]

    async def worker(index: int, sid: str) -> int:
        calls = [
            ("get_structure", {"id": sid}),
            ("search_structures", {"formula": "SrTiO3"}),
            ("estimate_cost", {"tool": "hierarchical_search", "arguments": {"request": "a spinel", "budget": 3}}),
            ("job_list", {"limit": 5}),
            ("store_structure", {"structure": {"text": cif_of(rocksalt(4.0 + 0.01 * index))}}),
            ("search_structures", {"query": f"rock salt number {index}", "n": 3}),
        ]
        ok = 0
        async with Client(url, read_timeout_seconds=300) as client:
            for name, args in calls:
                start = time.perf_counter()
                result = await client.call_tool(name, args)
                latencies.append(time.perf_counter() - start)
                ok += not result.is_error
        return ok

    async def main() -> list[int]:
        sid = await seed()
        return await asyncio.gather(*(worker(i, sid) for i in range(20)))

    try:
        counts = asyncio.run(main())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert counts == [6] * 20  # every call of every client succeeded: nobody starved
    p50, p95 = np.percentile(latencies, [50, 95])
    print(f"\n20 clients x 6 cheap calls: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {max(latencies):.2f} s")
    assert p95 < 60


def test_sigkill_during_search_then_resume(workspace):
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    proc = start_http_server(workspace, port)
    args = {"request": "a rock salt oxide with Mg and Ni", "budget": 3, "n_formulas": 1, "use_llm": False}

    async def start_and_wait_for_a_node() -> tuple[str, list[str]]:
        async with Client(url, read_timeout_seconds=300) as client:
            job = await client.call_tool("job_start", {"tool": "hierarchical_search", "arguments": args})
            job_id = job.structured_content["job_id"]
            assert job.structured_content["note"] is None  # the HTTP server outlives its clients: no stdio warning
            deadline = time.time() + 900
            while time.time() < deadline:  # wait until at least one relaxed node is stored, then kill
                hits = await client.call_tool("search_structures", {"elements": ["Mg", "Ni"], "n": 50})
                relaxed = [h["id"] for h in hits.structured_content["hits"] if h["properties"].get("relaxed")]
                if relaxed:
                    return job_id, relaxed
                await asyncio.sleep(1)
            raise AssertionError("no node was stored within 900 s")

    try:
        job_id, stored_before = asyncio.run(start_and_wait_for_a_node())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    proc = start_http_server(workspace, port)
    try:
        async def resume() -> None:
            async with Client(url, read_timeout_seconds=300) as client:
                status = await client.call_tool("job_status", {"job_id": job_id})
                assert status.structured_content["state"] == "interrupted"
                for sid in stored_before:  # everything stored before the kill is still there
                    assert not (await client.call_tool("get_structure", {"id": sid})).is_error
                new = await client.call_tool("job_resume", {"job_id": job_id})
                new_id = new.structured_content["job_id"]
                again = await client.call_tool("job_resume", {"job_id": job_id})
                assert again.structured_content["job_id"] == new_id  # resume is idempotent: one run, not two
                for _ in range(40):
                    done = await client.call_tool("job_wait", {"job_id": new_id, "timeout_s": 50})
                    if done.structured_content["state"] != "running":
                        break
                result = done.structured_content
                assert result["state"] == "succeeded", result
                assert result["result"]["reused"] >= 1  # the resumed search did not redo stored work
                hits = await client.call_tool("search_structures", {"elements": ["Mg", "Ni"], "n": 100})
                ids = [h["id"] for h in hits.structured_content["hits"]]
                assert len(ids) == len(set(ids))  # no duplicate ids

        asyncio.run(resume())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
