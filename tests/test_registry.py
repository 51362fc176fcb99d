"""One tool definition feeds MCP, LangChain and the CLI; errors stay readable on every path."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from tests.conftest import cif_of, perovskite
from tools.errors import ToolInputError
from tools.langchain_adapter import langchain_tool
from tools.registry import REGISTRY, ToolContext, get_tool, load_tools, tool


class EchoInput(BaseModel):
    word: str = Field(description="a word")
    times: int = Field(default=2, ge=1, le=5)


class EchoOutput(BaseModel):
    text: str


def test_one_function_is_one_tool_everywhere(workspace):
    @tool(cost="instant", read_only=True)
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
        assert "validation error" in lc.invoke({"word": "yo", "times": 9}).lower()  # observation, not a crash
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
