"""The official MCP Inspector CLI (npm) lists the tools of server.py and calls one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, server_env

pytestmark = pytest.mark.slow  # the npm MCP Inspector against server.py

INSPECTOR = "@modelcontextprotocol/inspector"


def inspector(workspace, *args: str) -> dict:
    cmd = ["npx", "--yes", INSPECTOR, "--cli", sys.executable, str(ROOT / "server.py"), *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=server_env(workspace), capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.skipif(shutil.which("npx") is None, reason="node/npx is not installed, so the Inspector CLI cannot run")
def test_inspector_lists_and_calls(workspace):
    listed = inspector(workspace, "--method", "tools/list")
    names = {t["name"] for t in listed["tools"]}
    assert {"store_structure", "search_structures", "analyze_structure"} <= names
    assert all("outputSchema" in t for t in listed["tools"])
    called = inspector(
        workspace, "--method", "tools/call", "--tool-name", "search_structures", "--tool-arg", 'elements=["Fe","O"]'
    )
    assert called["isError"] is False and called["structuredContent"]["mode"] == "composition"
    failed = inspector(workspace, "--method", "tools/call", "--tool-name", "get_structure", "--tool-arg", "id=s-none")
    assert failed["isError"] is True and "no structure with id 's-none'" in failed["content"][0]["text"]
