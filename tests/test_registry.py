"""One tool definition feeds MCP, LangChain and the CLI; errors stay readable on every path."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from tests.conftest import cif_of, perovskite
from tools.adapters.langchain import langchain_tool
from tools.core.errors import ToolInputError, ToolInternalError, ToolRuntimeError
from tools.core.registry import REGISTRY, ToolContext, ToolInput, get_tool, load_tools, tool


class EchoInput(ToolInput):
    word: str = Field(description="a word")
    times: int = Field(default=2, ge=1, le=5)


class EchoOutput(BaseModel):
    text: str


def test_one_function_is_one_tool_everywhere(workspace):
    @tool(cost="instant", reaches=(), read_only=True)
    def echo_twice(inp: EchoInput, ctx: ToolContext) -> EchoOutput:
        """Repeat a word."""
        return EchoOutput(text=" ".join([inp.word] * inp.times))

    try:
        spec = REGISTRY["echo_twice"]
        assert spec.input_model is EchoInput and spec.output_model is EchoOutput and spec.read_only
        assert spec.run({"word": "hi", "times": 3}).text == "hi hi hi"
        lc = langchain_tool(spec)
        assert lc.name == "echo_twice" and set(lc.args) == {"word", "times"}
        assert json.loads(lc.invoke({"word": "yo"}))["text"] == "yo yo"
        rejected = lc.invoke({"word": "yo", "times": 9})  # an observation, not a crash
        assert rejected.startswith("input error:") and "times" in rejected
        with pytest.raises(ToolInputError, match="times"):
            spec.run({"word": "x", "times": 0})
    finally:
        REGISTRY.pop("echo_twice", None)


def test_every_registered_tool_is_well_formed():
    specs = load_tools()
    assert {"store_structure", "get_structure", "search_structures", "analyze_structure", "job_start"} <= set(specs)
    for spec in specs.values():
        assert spec.description and spec.cost in {"instant", "minutes", "long"}
        spec.input_model.model_json_schema()
        spec.output_model.model_json_schema()


def test_langchain_tool_reports_bad_structure_as_observation(workspace):
    lc = langchain_tool(get_tool("store_structure"))
    observation = lc.invoke({"structure": {"text": "not a structure"}})
    assert "could not parse" in observation


def test_cli_subcommands_from_registry(workspace, tmp_path):
    from agent.cli import app

    path = tmp_path / "sto.cif"
    path.write_text(cif_of(perovskite()))
    runner = CliRunner()
    stored = runner.invoke(app, ["memory", "store-structure", "--structure", str(path), "--tags", '["perovskite"]'])
    assert stored.exit_code == 0, stored.output
    sid = json.loads(stored.stdout)["id"]
    got = runner.invoke(app, ["call", "get-structure", "--id", sid, "--format", "poscar"])
    assert got.exit_code == 0 and "Sr" in json.loads(got.stdout)["text"]
    bad = runner.invoke(app, ["call", "search-structures", "--elements", '["Zz"]'])
    assert bad.exit_code == 2 and "unknown element" in bad.stderr
    listing = runner.invoke(app, ["tools"])
    assert listing.exit_code == 0 and "analyze_structure" in listing.stdout


def test_cli_short_help_is_whole_first_sentences():
    """The tool listing and `call --help` show each tool's first sentence, whole: not its first docstring line (cut
    mid-sentence at the wrap), and not stopped by 'e.g.' or by 'Nat.' inside a citation."""
    from tools.adapters.cli import first_sentence

    for spec in load_tools().values():
        flat = " ".join(spec.description.split())
        short = first_sentence(spec.description)
        assert flat.startswith(short) and short[-1] in ".!?", (spec.name, short)
        assert short.count("(") == short.count(")"), (spec.name, short)
    assert first_sentence(get_tool("predict_crystallization").description).endswith("Nat. Comput. Sci. 2025).")
    assert first_sentence(get_tool("hierarchical_search").description).endswith("with La and Mn'.")
    assert first_sentence("Relax a crystal\nwith a potential. Then report.") == "Relax a crystal with a potential."


class FragileInput(ToolInput):
    word: str = Field(description="a word; 'bad' is refused, 'value-bug' and 'key-bug' hit a fault in the tool")


def test_input_errors_and_internal_faults_are_told_apart_on_every_path(workspace):
    """A ValueError or KeyError inside a tool is a fault of the tool, not of the caller's arguments: it becomes a
    ToolInternalError with an id under which the traceback is logged; only the tool's own checks (and validation)
    give input errors. MCP, LangChain and the CLI label each kind, and none shows a traceback."""
    import asyncio

    import typer
    from mcp import Client
    from mcp.server.mcpserver import MCPServer

    from tools.adapters.cli import add_tool_commands
    from tools.adapters.mcp import register_all
    from tools.core.settings import get_settings

    @tool(cost="instant", reaches=())
    def fragile_echo(inp: FragileInput, ctx: ToolContext) -> EchoOutput:
        """Echo a word, with a fault."""
        if inp.word == "bad":
            raise ToolInputError("the word 'bad' is not allowed")
        if inp.word == "key-bug":
            return EchoOutput(text={}["missing"])
        if inp.word == "value-bug":
            return EchoOutput(text=str(int("not a number")))
        return EchoOutput(text=inp.word)

    try:
        spec = REGISTRY["fragile_echo"]
        with pytest.raises(ToolInputError, match="'bad' is not allowed"):
            spec.run({"word": "bad"})
        ids = []
        for word, cause in (("value-bug", "ValueError: invalid literal"), ("key-bug", "KeyError: 'missing'")):
            with pytest.raises(ToolInternalError) as info:
                spec.run({"word": word})
            assert isinstance(info.value, ToolRuntimeError) and not isinstance(info.value, ValueError)
            assert cause in str(info.value) and info.value.error_id in str(info.value)
            assert "Traceback" not in str(info.value)
            ids.append(info.value.error_id)
        log = (workspace / "logs" / "tool-errors.log").read_text()
        assert all(i in log for i in ids) and "Traceback" in log and "int(\"not a number\")" in log

        lc = langchain_tool(spec)
        assert lc.invoke({"word": "bad"}) == "input error: the word 'bad' is not allowed"
        internal = lc.invoke({"word": "key-bug"})
        assert internal.startswith("internal error: fragile_echo failed unexpectedly") and "error id" in internal

        app = typer.Typer()
        app.callback()(lambda: None)  # a group, so the subcommand is called by name as in agent.cli
        add_tool_commands(app, {"fragile_echo": spec})
        runner = CliRunner()
        bad = runner.invoke(app, ["fragile-echo", "--word", "bad"])
        assert bad.exit_code == 2 and "input error: the word 'bad'" in bad.stderr
        fault = runner.invoke(app, ["fragile-echo", "--word", "value-bug"])
        assert fault.exit_code == 1 and "internal error:" in fault.stderr and "error id" in fault.stderr
        assert "Traceback" not in fault.output

        server = MCPServer("test", log_level="CRITICAL")
        register_all(server, {"fragile_echo": spec}, get_settings)

        async def call(word: str) -> str:
            async with Client(server) as client:
                result = await client.call_tool("fragile_echo", {"word": word})
                assert result.is_error
                return result.content[0].text

        assert "input error: the word 'bad' is not allowed" in asyncio.run(call("bad"))
        text = asyncio.run(call("value-bug"))
        assert "internal error: fragile_echo failed unexpectedly" in text and "Traceback" not in text
    finally:
        REGISTRY.pop("fragile_echo", None)
