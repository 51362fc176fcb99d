"""The offline planner: with no LLM configured, map a chat message to the same tool sequence an LLM agent would
use (search, show results, recall memory, run MD on a result), and say plainly that it is the planner."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tools.core.errors import ToolError, ToolInputError, describe
from tools.core.registry import ProgressFn, ToolContext, get_tool
from tools.discovery.request import parse_request

PREFIX = "(offline planner: no LLM is configured, so I map your message to tools directly)"


@dataclass
class PlannerState:
    """What the planner remembers within a conversation: the last search's ranked ids."""

    last_ranked: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PlannedReply:
    text: str
    tool_calls: list[tuple[str, dict[str, Any]]]
    outputs: list[str]


class OfflinePlanner:
    """Rule-based planner over the registry tools."""

    def __init__(self, progress: ProgressFn | None = None, on_tool: Callable[[str, dict], None] | None = None) -> None:
        self.state = PlannerState()
        self.progress = progress
        self.on_tool = on_tool or (lambda name, args: None)

    def _call(self, name: str, args: dict[str, Any], calls: list, outputs: list) -> Any:
        self.on_tool(name, args)
        calls.append((name, args))
        out = get_tool(name).run(args, ToolContext(progress_fn=self.progress))
        outputs.append(out.model_dump_json())
        return out

    def reply(self, message: str) -> PlannedReply:
        """Plan and run the tools for one message; errors become plain sentences."""
        calls: list = []
        outputs: list = []
        try:
            text = self._route(message.strip(), calls, outputs)
        except ToolError as exc:
            text = f"That did not work ({describe(exc)})"
        return PlannedReply(f"{PREFIX}\n{text}", calls, outputs)

    def _route(self, message: str, calls: list, outputs: list) -> str:
        lowered = message.lower()
        if not message:
            return "Say what material you are looking for, e.g. 'a stable spinel with Mg and Al'."
        if re.search(r"\b(md|molecular dynamics|simulate|anneal|heat)\b", lowered):
            return self._md(lowered, calls, outputs)
        if re.search(r"\b(memory|remember|stored|what do you have|recall|past)\b", lowered):
            out = self._call("search_structures", {"query": message, "n": 5}, calls, outputs)
            rows = [f"- {h.id} {h.reduced_formula} {h.spacegroup} (similarity {h.score})" for h in out.hits]
            return "From memory:\n" + ("\n".join(rows) or "nothing stored yet")
        if re.search(r"\b(show|results|best|top)\b", lowered) and self.state.last_ranked:
            return self._table(self.state.last_ranked)
        try:
            reading = parse_request(message)
        except ToolInputError as exc:
            return str(exc)
        if reading.decline:
            return f"I would not search for that: {reading.decline}."
        out = self._call("hierarchical_search", {"request": message, "budget": 6}, calls, outputs)
        self.state.last_ranked = [c.model_dump() for c in out.ranked]
        head = f"Searched '{out.request}': {out.evaluations} structures relaxed with {out.potential}"
        if out.note:
            head += f" (note: {out.note})"
        return f"{head}.\n{self._table(self.state.last_ranked)}\nReport: {out.report_uri}"

    def _md(self, lowered: str, calls: list, outputs: list) -> str:
        if not self.state.last_ranked:
            return "Run a search first; then I can run MD on its best result."
        target = self.state.last_ranked[0]
        match = re.search(r"(\d{2,5})\s*k\b", lowered)
        temperature = float(match.group(1)) if match else 300.0
        args = {
            "structure": {"id": target["id"]},
            "ensemble": "nvt_langevin",
            "temperature_K": temperature,
            "steps": 200,
            "timestep_fs": 2.0,
        }
        out = self._call("run_md", args, calls, outputs)
        data = out.model_dump()
        summary = {k: v for k, v in data.items() if isinstance(v, int | float | str) and k != "trajectory_uri"}
        return f"MD of {target['id']} ({target['formula']}) at {temperature} K: {summary}"

    @staticmethod
    def _table(ranked: list[dict[str, Any]]) -> str:
        rows = [
            "| rank | id | formula | space group | E_hull eV/atom | E_form eV/atom | family match |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in ranked:
            rows.append(
                f"| {c['rank']} | {c['id']} | {c['formula']} | {c['spacegroup']} | {c['e_above_hull_eV']} | "
                f"{c['formation_energy_per_atom_eV']} | {c['family_match']} |"
            )
        return "\n".join(rows)
