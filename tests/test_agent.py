"""The LLM agent through the real LangChain + openai stack against a local OpenAI-compatible server that speaks
the chat-completions wire protocol (tool_calls, streaming); the offline planner; the honesty rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.honesty import unsupported_numbers
from tests.fake_openai import FakeOpenAI
from tools.core.registry import ToolContext


def _tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in messages if m.get("role") == "tool" and m["content"].startswith("{")]


def scripted_policy(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """search -> generate -> predict -> memory -> answer, each step built from the previous tool results."""
    results = _tool_results(messages)
    if len(results) == 0:
        return {"tool_calls": [{"name": "hierarchical_search", "arguments": {
            "request": "a double perovskite oxide containing La and Mn", "budget": 1, "n_formulas": 1, "seed": 0,
            "use_llm": False}}]}
    search = results[0]
    best = search["best"]
    if len(results) == 1:
        return {"tool_calls": [{"name": "generate_structures", "arguments": {
            "formula": best["formula"], "n_samples": 1, "n_steps": 10, "seed": 5}}]}
    if len(results) == 2:
        generated = [s for s in results[1]["samples"] if s["valid"]]
        ref = {"id": generated[0]["structure"]["id"]} if generated else {"id": best["id"]}
        return {"tool_calls": [{"name": "predict_properties", "arguments": {"structures": [ref], "relax": False}}]}
    if len(results) == 3:
        return {"tool_calls": [{"name": "search_structures", "arguments": {"formula": best["formula"], "n": 10}}]}
    return {"content": (f"The best candidate is {best['id']} ({best['formula']}, {best['spacegroup']}) with an "
                        f"energy above the local hull of {best['e_above_hull_eV']} eV/atom and a formation energy "
                        f"of {best['formation_energy_per_atom_eV']} eV/atom.")}


@pytest.mark.slow
def test_agent_runs_tools_through_the_openai_wire_protocol(workspace, monkeypatch):
    from agent.llm_agent import MatsearchAgent
    from tools.core.settings import get_settings

    with FakeOpenAI(scripted_policy) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        get_settings.cache_clear()
        agent = MatsearchAgent()
        events = []
        result = agent.ask("Find me a stable double perovskite with La and Mn", thread_id="t1", on_event=events.append)
        agent.close()
        get_settings.cache_clear()
    assert [name for name, _ in result.tool_calls] == [
        "hierarchical_search", "generate_structures", "predict_properties", "search_structures"]
    assert all(body.get("stream") for body in server.requests)  # the agent streamed every turn
    assert any(e.kind == "text" for e in events) and any(e.kind == "tool_result" for e in events)
    assert "best candidate is s-" in result.answer
    assert result.unsupported_numbers == []  # every number came from a tool result
    store = ToolContext().store
    search = json.loads(result.tool_outputs[0])
    assert store.get(search["best"]["id"]).properties["relaxed"]
    generated = json.loads(result.tool_outputs[1])["samples"]
    assert any(s["valid"] and store.get(s["structure"]["id"]) is not None for s in generated)
    assert len(server.requests) == 5


def test_conversation_threads_persist(workspace, monkeypatch):
    from agent.llm_agent import MatsearchAgent
    from tools.core.settings import get_settings

    def remembering(messages: list[dict[str, Any]]) -> dict[str, Any]:
        users = [m["content"] for m in messages if m["role"] == "user"]
        return {"content": f"I have seen {len(users)} user messages; the first was: {users[0]}"}

    with FakeOpenAI(remembering) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        get_settings.cache_clear()
        first = MatsearchAgent()
        first.ask("remember the word cobalt", thread_id="persist")
        first.close()
        second = MatsearchAgent()  # a new process would open the same SQLite file
        reply = second.ask("what was my first message?", thread_id="persist")
        second.close()
        get_settings.cache_clear()
    assert "seen 2 user messages" in reply.answer and "cobalt" in reply.answer


def test_honesty_flags_invented_numbers():
    outputs = ['{"e_above_hull_eV": -0.0805, "formation_energy_per_atom_eV": -2.837}']
    assert unsupported_numbers("E_hull is -0.0805 eV/atom (about -0.08), formation -2.837", outputs) == []
    assert unsupported_numbers("its band gap is 2.4 eV and E_hull -0.0805", outputs) == ["2.4"]


def test_offline_planner_searches_and_says_so(workspace):
    from agent.offline_planner import OfflinePlanner

    planner = OfflinePlanner()
    empty = planner.reply("show me the best results")
    assert "offline planner" in empty.text and not empty.tool_calls
    recall = planner.reply("what do you have in memory about spinels?")
    assert recall.tool_calls[0][0] == "search_structures"
    nonsense = planner.reply("hello there")
    assert "could not find elements" in nonsense.text and not nonsense.tool_calls


@pytest.mark.slow
def test_agent_mounts_other_mcp_servers(workspace, tmp_path, monkeypatch):
    """A second MCP server (another server.py over stdio, its own workspace) is mounted: its tools reach the model as
    lab__*, calls go over MCP and land in that server's store; a server that cannot start is reported, not fatal."""
    import sys

    from agent.llm_agent import MatsearchAgent
    from memory.store import StructureStore
    from tests.conftest import ROOT, cif_of, perovskite, server_env
    from tools.core.settings import get_settings

    lab = tmp_path / "lab-workspace"
    config = {"mcpServers": {
        "lab": {"command": sys.executable, "args": [str(ROOT / "server.py")], "env": server_env(lab)},
        "down": {"command": str(tmp_path / "no-such-server")},
    }}

    def policy(messages: list[dict[str, Any]]) -> dict[str, Any]:
        results = [m for m in messages if m.get("role") == "tool"]
        if not results:
            return {"tool_calls": [{"name": "lab__store_structure", "arguments": {
                "structure": {"text": cif_of(perovskite())}, "description": "cubic SrTiO3 for the lab"}}]}
        if len(results) == 1:
            return {"tool_calls": [{"name": "lab__search_structures", "arguments": {"formula": "SrTiO3"}}]}
        return {"content": "stored in the lab server"}

    with FakeOpenAI(policy) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("MATSEARCH_MCP_SERVERS", json.dumps(config))
        get_settings.cache_clear()
        agent = MatsearchAgent()
        result = agent.ask("store SrTiO3 in the lab server", thread_id="mount")
        agent.close()
        get_settings.cache_clear()
    offered = {t["function"]["name"] for t in server.requests[0]["tools"]}
    assert {"lab__store_structure", "lab__hierarchical_search", "hierarchical_search"} <= offered
    assert "down" in agent.mount_errors and not any(name.startswith("down__") for name in offered)
    assert [name for name, _ in result.tool_calls] == ["lab__store_structure", "lab__search_structures"]
    stored = json.loads(result.tool_outputs[0])
    assert json.loads(result.tool_outputs[1])["hits"][0]["id"] == stored["id"]
    assert StructureStore(lab / "memory").get(stored["id"]).structure.composition.reduced_formula == "SrTiO3"
    assert ToolContext().store.count() == 0  # the local store was not touched


def test_mount_config_errors_name_the_problem(tmp_path):
    """Bad MATSEARCH_MCP_SERVERS values fail with a message that says what is wrong, before anything starts."""
    import pytest

    from agent.mcp_mounts import parse_mount_config

    cases = {
        str(tmp_path / "missing.json"): "neither inline JSON nor an existing file",
        "{not json": "not valid JSON",
        '{"mcpServers": []}': "must be",
        '{"mcpServers": {"a__b": {"url": "http://x"}}}': "server name 'a__b'",
        '{"mcpServers": {"lab": {"command": "x", "url": "http://x"}}}': "exactly one of 'command'",
        '{"mcpServers": {"lab": {}}}': "exactly one of 'command'",
    }
    for spec, fragment in cases.items():
        with pytest.raises(ValueError, match=fragment):
            parse_mount_config(spec)
    path = tmp_path / "mounts.json"
    path.write_text('{"mcpServers": {"lab": {"command": "python", "args": ["server.py"]}}}')
    assert parse_mount_config(str(path)) == {"lab": {"command": "python", "args": ["server.py"]}}
