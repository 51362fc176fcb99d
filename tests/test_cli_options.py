"""Numeric CLI options shown with their type (issue 26): `matsearch call <tool> --help` says INTEGER, FLOAT,
BOOLEAN, the choices, JSON or PATH|ID for each option, and the values still go through the tool's input model."""

from __future__ import annotations

import json
import re
from typing import get_args

from typer.testing import CliRunner

from tests.conftest import cif_of, rocksalt
from tools.core.registry import get_tool, load_tools


def _expected_metavar(annotation) -> str:
    from tools.adapters.cli import option_kind

    return option_kind(annotation)[2]


def test_call_help_shows_each_option_type():
    """Every tool's `--help` names the real type of each option: INTEGER, FLOAT, BOOLEAN, the choices, JSON for
    lists and objects, PATH|ID for a structure; never TEXT for a number."""
    from agent.cli import app

    runner = CliRunner()
    specs = load_tools()
    seen = set()
    for name, spec in specs.items():
        result = runner.invoke(app, ["call", name.replace("_", "-"), "--help"], env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        for field_name, field in spec.input_model.model_fields.items():
            option = f"--{field_name.replace('_', '-')}"
            line = next(line for line in result.output.splitlines() if option in line.split())
            metavar = _expected_metavar(field.annotation)
            assert metavar in line, (name, option, line)
            seen.add(metavar)
            base = field.annotation
            if base in (int, float) or set(get_args(base)) in ({int, type(None)}, {float, type(None)}):
                assert "TEXT" not in line.split(), (name, option, line)
    assert {"INTEGER", "FLOAT", "BOOLEAN", "JSON", "PATH|ID", "TEXT"} <= seen
    md = runner.invoke(app, ["call", "run-md", "--help"], env={"COLUMNS": "250"}).output
    assert re.search(r"--steps\s+INTEGER", md) and re.search(r"--temperature-K\s+FLOAT", md)
    assert re.search(r"--structure\s+PATH\|ID", md) and "[nve|nvt_langevin|nvt_nose_hoover|nvt_bussi|npt]" in md
    assert "(default: 1000)" in md


def test_typed_options_are_still_validated_by_the_input_model(workspace):
    """Click parses numbers; the values then go through the tool's input model: its range and its messages. A list
    option takes JSON or comma-separated values, a boolean 'true'/'false', a choice one of its names."""
    from agent.cli import app

    sid = get_tool("store_structure").run({"structure": {"text": cif_of(rocksalt())}}).id
    runner = CliRunner()
    found = runner.invoke(app, ["call", "search-structures", "--elements", "Mg,O", "--only-elements", "true",
                                "--n", "3"])
    assert found.exit_code == 0, found.output
    assert [h["id"] for h in json.loads(found.stdout)["hits"]] == [sid]
    zero = runner.invoke(app, ["call", "search-structures", "--elements", '["Mg"]', "--n", "0"])
    assert zero.exit_code == 2 and "n" in zero.stderr and "Traceback" not in zero.output
    word = runner.invoke(app, ["call", "search-structures", "--n", "three"])
    assert word.exit_code == 2 and "--n" in word.output and "valid integer" in word.output
    flag = runner.invoke(app, ["call", "search-structures", "--elements", "Mg", "--only-elements", "maybe"])
    assert flag.exit_code == 2 and "only_elements" in flag.stderr
    fmt = runner.invoke(app, ["call", "get-structure", "--id", sid, "--format", "poscar"])
    assert fmt.exit_code == 0 and "Mg" in json.loads(fmt.stdout)["text"]
