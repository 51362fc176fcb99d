"""Strict inputs, through the real MCP client (in process) and the Python path: an unknown argument is named with the
valid ones, a bad value reads as one sentence, names and potentials resolve in one place, size limits say what the
tool can do about them, long instant work goes to a job, and job_resume is idempotent."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from mcp import Client
from pymatgen.core import Lattice, Structure

from server import build_server
from tests.conftest import cif_of, rocksalt
from tools.core.errors import ToolInputError
from tools.core.jobs import get_job_manager
from tools.core.registry import ToolContext, get_tool, load_tools
from tools.core.settings import get_settings
from tools.potentials.calculators import resolve_potential


def call_all(calls: list[tuple[str, dict]]) -> list[tuple[bool, str, dict | None]]:
    """Each (tool, arguments) through one in-process MCP client session: (is_error, text, structured)."""

    async def main() -> list[tuple[bool, str, dict | None]]:
        out = []
        async with Client(build_server()) as client:
            for name, args in calls:
                result = await client.call_tool(name, args)
                text = " ".join(c.text for c in result.content if hasattr(c, "text"))
                out.append((result.is_error, text, result.structured_content))
        return out

    return asyncio.run(main())


def test_every_input_model_refuses_unknown_fields_and_says_so_in_its_schema(workspace):
    async def schemas() -> dict[str, dict]:
        async with Client(build_server()) as client:
            return {t.name: t.input_schema for t in (await client.list_tools()).tools}

    published = asyncio.run(schemas())
    assert set(published) == set(load_tools())
    for name, schema in published.items():
        assert schema.get("additionalProperties") is False, name
        assert get_tool(name).input_model.model_config.get("extra") == "forbid", name


def test_unknown_argument_is_named_with_the_nearest_valid_one(workspace):
    (err, text, _), (nested_err, nested, _) = call_all([
        ("generate_structures", {"formula": "NaCl", "n": -3}),
        ("analyze_structure", {"structure": {"idd": "s-0"}}),
    ])
    assert err and "'n' is not a known argument" in text and "did you mean 'n_samples'" in text
    assert "formula, formula_units" in text  # the valid names are listed
    assert not (workspace / "memory").exists() or not get_tool("search_structures").run(
        {"formula": "NaCl"}).hits  # nothing was generated or stored
    assert nested_err and "'structure.idd' is not a known argument (did you mean 'id'?)" in nested


def test_bad_values_read_as_one_sentence_per_field(workspace):
    results = call_all([
        ("run_md", {"structure": {"id": "s-0"}, "temperature_K": -5, "steps": "many"}),
        ("search_structures", {"query": "x", "n": "abc"}),
        ("store_structure", {}),
    ])
    texts = [text for _, text, _ in results]
    assert all(err for err, _, _ in results)
    for text in texts:
        assert "pydantic" not in text and "type=" not in text and "\n" not in text, text
    assert "temperature_K should be greater than or equal to 0 (got -5)" in texts[0]
    assert "steps should be a valid integer" in texts[0]  # every bad field, in one answer
    assert "n should be a valid integer" in texts[1] and "(got 'abc')" in texts[1]
    assert "'structure' is required" in texts[2]


@pytest.mark.parametrize("tool, args", [
    ("active_learning", {"structures": [{"id": "s-0"}], "run_name": ".."}),
    ("train_potential", {"data_path": "x.extxyz", "name": "../outside"}),
])
def test_file_names_are_checked_by_one_rule(workspace, tool, args):
    with pytest.raises(ToolInputError, match="must be 1-64 letters, digits"):
        get_tool(tool).run(args)


def test_potentials_resolve_in_one_place(workspace):
    """A path outside the workspace is refused with the valid names; the shipped checkpoint is accepted by name
    wherever a potential is, not by training alone."""
    calls = [(tool, {"potential": "/etc/passwd", **extra}) for tool, extra in [
        ("relax_structure", {"structure": {"text": cif_of(rocksalt())}}),
        ("evaluate_potential", {"structures": [{"text": cif_of(rocksalt())}]}),
        ("estimate_uncertainty", {"structures": [{"text": cif_of(rocksalt())}]}),
        ("run_md", {"structure": {"text": cif_of(rocksalt())}}),
    ]]
    for err, text, _ in call_all(calls):
        assert err and "outside the workspace" in text and "allegro_distilled" in text and "chgnet" in text, text
    assert resolve_potential("allegro_distilled", workspace).endswith("allegro_distilled.pt")
    assert resolve_potential(" CHGNet ", workspace) == "chgnet"
    shipped = {"potential": "allegro_distilled", "reference": "allegro_distilled"}
    out = get_tool("evaluate_potential").run({**shipped, "structures": [{"text": cif_of(rocksalt())}]})
    assert out.energy_mae_meV_per_atom == pytest.approx(0.0, abs=1e-6)


def test_size_limit_offers_allow_large_only_where_the_tool_has_it(workspace, monkeypatch):
    monkeypatch.setenv("MATSEARCH_MAX_ATOMS", "4")
    get_settings.cache_clear()
    cif = cif_of(rocksalt())  # 8 atoms
    with pytest.raises(ToolInputError, match="pass allow_large=true") as stored:
        get_tool("store_structure").run({"structure": {"text": cif}})
    with pytest.raises(ToolInputError, match="max_atoms setting") as analysed:
        get_tool("analyze_structure").run({"structure": {"text": cif}})
    assert "allow_large" not in str(analysed.value) and "limit of 4" in str(stored.value)
    assert get_tool("store_structure").run({"structure": {"text": cif}, "allow_large": True}).id


def test_long_instant_work_is_sent_to_a_job_with_an_estimate(workspace):
    base = Structure(Lattice.cubic(4.21), ["Mg"] * 4 + ["O"] * 4, [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5],
                                                                  [.5, 0, 0], [0, .5, 0], [0, 0, .5], [.5, .5, .5]])
    big = cif_of(base * (11, 11, 11))  # 10,648 atoms: minutes of parsing and matching
    started = time.perf_counter()
    [(err, text, _)] = call_all([("store_structure", {"structure": {"text": big}, "allow_large": True})])
    assert err and "start it as a job instead" in text and "min here" in text, text
    assert time.perf_counter() - started < 30  # refused before parsing, not after minutes
    spec = get_tool("store_structure")
    inp = spec.validate({"structure": {"text": big}, "allow_large": True})
    assert spec.estimated_seconds(inp) > 60
    spec.check_direct_cost(inp, ToolContext())  # a job or the CLI has no direct-call limit: no refusal


def _labelled_copper(path: Path) -> None:
    frames = []
    for strain in (0.99, 1.0, 1.01):
        atoms = bulk("Cu", "fcc", a=3.6 * strain, cubic=True)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    write(str(path), frames, format="extxyz")


def test_job_resume_is_idempotent_and_stdio_jobs_carry_a_note(workspace):
    args = {"potential": "emt", "data_path": "copper.extxyz"}
    [(err, text, started)] = call_all([("job_start", {"tool": "evaluate_potential", "arguments": args})])
    assert not err and "stdio" in started["note"] and "--http" in started["note"]
    manager = get_job_manager(get_settings())
    job_id = started["job_id"]
    assert manager.wait(job_id, 60).state == "failed"  # the data file is not there yet
    _labelled_copper(workspace / "copper.extxyz")
    first = get_tool("job_resume").run({"job_id": job_id})
    second = get_tool("job_resume").run({"job_id": job_id})
    assert second.job_id == first.job_id != job_id  # one resumed run, whoever asks twice
    assert manager.wait(first.job_id, 60).state == "succeeded"
    assert get_tool("job_resume").run({"job_id": job_id}).job_id == first.job_id  # still that one once done
    assert get_tool("job_status").run({"job_id": job_id}).resumed_as == first.job_id
    journal = json.loads((workspace / "jobs" / f"{job_id}.json").read_text())
    assert journal["resumed_as"] == first.job_id  # survives a restart of the server
    assert len(get_tool("job_list").run({}).jobs) == 2
