"""Hostile input through the real MCP client: random types, huge numbers, unicode, broken CIF/POSCAR/extxyz and
path-traversal strings for every tool's arguments never crash the server and always give a readable error."""

from __future__ import annotations

import asyncio
import math
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client, StdioServerParameters

from tests.conftest import ROOT, server_env

pytestmark = pytest.mark.slow  # server.py as a subprocess, hypothesis through the MCP client

BROKEN_STRUCTURES = [
    "data_x\n_cell_length_a 3\nloop_\n_atom_site_label\n",
    "Si\n1.0\n0 0 0\n0 0 0\n0 0 0\nSi\n1\nDirect\n0 0 0\n",
    "2\nLattice=\"1 0 0 0 1 0 0 0 1\"\nXx 0 0 0\nXx 0 0 0\n",
    "1\nLattice=\"nan 0 0 0 1 0 0 0 1\" Properties=species:S:1:pos:R:3\nFe 0 0 0\n",
]
TRAVERSAL = ["../../etc/passwd", "/etc/shadow", "..\\..\\windows", "artifact://../../x", "%2e%2e/%2e%2e/etc/passwd"]
hostile = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=200),
    st.sampled_from(["é漢字🙂\u0000\u202e", "", " " * 1000, "a" * 10000]),
    st.sampled_from(TRAVERSAL),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from(BROKEN_STRUCTURES).map(lambda t: {"text": t}),
    st.sampled_from(TRAVERSAL).map(lambda p: {"id": p}),
)


def hostile_cases() -> list[tuple[int, dict]]:
    """Hypothesis draws the hostile argument sets (derandomized: the same ones every run)."""
    cases: list[tuple[int, dict]] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(tool_index=st.integers(min_value=0, max_value=10_000), field_index=st.integers(0, 50), value=hostile,
           extra=st.dictionaries(st.text(max_size=8), hostile, max_size=2))
    def collect(tool_index: int, field_index: int, value: object, extra: dict) -> None:
        cases.append((tool_index, {"__field__": field_index, "__value__": value, **extra}))

    collect()
    return cases


@pytest.fixture(scope="module")
def cases() -> list[tuple[int, dict]]:
    """Drawn once per module for whichever test asks first: no test relies on another having run."""
    return hostile_cases()


def test_collect_hostile_cases(cases: list[tuple[int, dict]]) -> None:
    """The drawn sets (sent in one server session below) are many, bounded and reach many tools and fields."""
    assert 50 <= len(cases) <= 150
    assert len({tool_index for tool_index, _ in cases}) > 10 and len({c["__field__"] for _, c in cases}) > 10


def _arguments(schema: dict, case: dict) -> dict:
    props = list((schema.get("properties") or {}).keys())
    args = {k: v for k, v in case.items() if not k.startswith("__")}
    if props:
        args[props[case["__field__"] % len(props)]] = case["__value__"]
    return {k: v for k, v in args.items() if not (isinstance(v, float) and math.isnan(v))}


def test_fuzz_every_tool_through_mcp(workspace, cases):
    params = StdioServerParameters(command=sys.executable, args=[str(ROOT / "server.py")], env=server_env(workspace))

    async def main() -> None:
        async with Client(params, read_timeout_seconds=300) as client:
            tools = (await client.list_tools()).tools
            seen_errors = 0
            for tool_index, case in cases:
                tool = tools[tool_index % len(tools)]
                arguments = _arguments(tool.input_schema, case)
                if (tool.meta or {}).get("matsearch/cost") != "instant":
                    required = tool.input_schema.get("required") or []
                    if not required:
                        continue  # a costly tool with all-default arguments could legitimately run for minutes
                    for name in required:  # keep costly tools on the validation path: a required field is missing
                        arguments.pop(name, None)
                result = await client.call_tool(tool.name, arguments)
                if result.is_error:
                    seen_errors += 1
                    text = result.content[0].text
                    assert text.strip() and text.strip() != f"Error executing tool {tool.name}", (tool.name, case)
            assert seen_errors > len(cases) // 2
            assert {t.name for t in (await client.list_tools()).tools} == {t.name for t in tools}  # still serving

    asyncio.run(main())
