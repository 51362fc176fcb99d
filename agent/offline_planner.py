"""The offline planner: with no LLM configured, map a chat message to the same tool sequence an LLM agent would
use (search, show results, recall memory, run MD on a result), and say plainly that it is the planner.

With a thread id the planner keeps what a follow-up needs (the last search's ranked results, the structure last
talked about) in workspace/agent/offline_threads/<thread>.json, so "what did you find last time?", "show the best
one" and "run MD on it" still work after the chat restarts; the structures themselves are read back from memory."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.core.errors import ToolError, ToolInputError, describe
from tools.core.registry import ProgressFn, ToolContext, get_tool
from tools.core.settings import get_settings
from tools.discovery.request import parse_request

PREFIX = "(offline planner: no LLM is configured, so I map your message to tools directly)"
MD_STEPS, MD_TIMESTEP_FS, MD_DEFAULT_K = 200, 2.0, 300.0
MD_SMALL_CELL = 32  # below this many atoms an MD cell mostly sees its own periodic images: the reply says so
ID_PATTERN = re.compile(r"\bs-[0-9a-f]{6,16}\b")
ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5,
            "5th": 5}
LAST_SEARCH = re.compile(
    r"\b(last time|last search|last results?|previous (search|results?)|(you|did you) (find|found|get|got)|"
    r"found (earlier|before)|results again)\b"
)
ONE_RESULT = re.compile(r"\b(one|it|that|this|best|winner|first|second|third|fourth|fifth|[1-5](st|nd|rd|th))\b|"
                        r"\b(rank|number|no\.?|#)\s*\d")
MANY_RESULTS = re.compile(r"\b(results|all|list|table|candidates|ranking|top \d+)\b")
ENSEMBLE_NAMES = {"nvt_langevin": "NVT (Langevin thermostat)", "nvt_nose_hoover": "NVT (Nose-Hoover chain)",
                  "nvt_bussi": "NVT (Bussi thermostat)", "nve": "NVE", "npt": "NPT"}


def thread_state_path(thread: str) -> Path:
    """Where a chat thread's planner state lives: a file name safe for any thread id (odd ids get a hash)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", thread)[:64].strip("._") or "thread"
    if stem != thread:
        stem += "-" + hashlib.sha256(thread.encode()).hexdigest()[:8]
    return get_settings().resolved_workspace() / "agent" / "offline_threads" / f"{stem}.json"


@dataclass
class PlannerState:
    """What the planner remembers within a conversation: the last search (its request, ranked candidates, report,
    the hull references E_hull was computed against) and the structure the conversation is about (for 'it')."""

    last_ranked: list[dict[str, Any]] = field(default_factory=list)
    request: str = ""
    potential: str = ""
    evaluations: int = 0
    report_uri: str = ""
    hull_references: dict[str, list[str]] = field(default_factory=dict)
    searched_at: str = ""
    focus_id: str | None = None

    @classmethod
    def load(cls, path: Path | None) -> PlannerState:
        """The state saved at `path`; an empty state when there is none or it cannot be read."""
        if path is None or not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text())
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        except (OSError, ValueError, TypeError):
            return cls()

    def save(self, path: Path | None) -> None:
        """Write the state atomically (a crash mid-write keeps the previous file)."""
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, default=str))
        tmp.replace(path)


@dataclass
class PlannedReply:
    text: str
    tool_calls: list[tuple[str, dict[str, Any]]]
    outputs: list[str]


class OfflinePlanner:
    """Rule-based planner over the registry tools. `thread` names a conversation whose state persists on disk
    (the chat passes its --thread); without one the state lives only in this object."""

    def __init__(
        self,
        progress: ProgressFn | None = None,
        on_tool: Callable[[str, dict], None] | None = None,
        thread: str | None = None,
    ) -> None:
        self.thread = thread
        self.state_path = thread_state_path(thread) if thread is not None else None
        self.state = PlannerState.load(self.state_path)
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
        if LAST_SEARCH.search(lowered):
            return self._recall_last()
        wants_one = ID_PATTERN.search(lowered) or ONE_RESULT.search(lowered)
        if re.search(r"\b(show|results|best|top|details?|cif|structure of)\b", lowered) or (
            ID_PATTERN.search(lowered) and re.search(r"\b(what|show|tell)\b", lowered)
        ):
            if not self.state.last_ranked and not ID_PATTERN.search(lowered):
                return self._no_search_yet()
            if wants_one and not MANY_RESULTS.search(lowered):
                return self._show_one(lowered, calls, outputs)
            return self._recall_last()
        if re.search(r"\b(memory|remember|stored|what do you have|recall|past)\b", lowered):
            out = self._call("search_structures", {"query": message, "n": 5}, calls, outputs)
            rows = [f"- {h.id} {h.reduced_formula} {h.spacegroup} (similarity {h.score})" for h in out.hits]
            return "From memory:\n" + ("\n".join(rows) or "nothing stored yet")
        try:
            reading = parse_request(message)
        except ToolInputError as exc:
            return str(exc)
        if reading.decline:
            return f"I would not search for that: {reading.decline}."
        out = self._call("hierarchical_search", {"request": message, "budget": 6}, calls, outputs)
        self.state = PlannerState(
            last_ranked=[c.model_dump() for c in out.ranked],
            request=out.request,
            potential=out.potential,
            evaluations=out.evaluations,
            report_uri=out.report_uri,
            hull_references=dict(out.hull_references),
            searched_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            focus_id=out.ranked[0].id if out.ranked else None,
        )
        self.state.save(self.state_path)
        head = f"Searched '{out.request}': {out.evaluations} structures relaxed with {out.potential}"
        if out.note:
            head += f" (note: {out.note})"
        if not out.ranked:
            return f"{head}. Nothing made it into the ranking."
        return f"{head}.\n\n{self._listing(self.state.last_ranked)}\n\n{self._hull_line()}Report: {out.report_uri}"

    # -- follow-ups ---------------------------------------------------------------------------------------------

    def _no_search_yet(self) -> str:
        where = f" in thread '{self.thread}'" if self.thread is not None else ""
        return (f"I have not run a search{where} yet. Ask for a material first, e.g. 'a stable spinel with Mg and "
                "Al'; then 'show the best one' or 'run MD on it at 600 K'.")

    def _recall_last(self) -> str:
        state = self.state
        if not state.last_ranked:
            return self._no_search_yet()
        when = f" ({state.searched_at})" if state.searched_at else ""
        return (
            f"Last time{when} I searched '{state.request}' and relaxed {state.evaluations} structures with "
            f"{state.potential}. The ranked results, best first:\n\n{self._listing(state.last_ranked)}\n\n"
            f"{self._hull_line()}Report: {state.report_uri}\n\n"
            "Say 'show the best one' (or 'show the second one', or an id) for its numbers and CIF, or "
            "'run MD on it at 600 K'."
        )

    def _target(self, lowered: str) -> dict[str, Any] | None:
        """The candidate a follow-up means: an id in the message, an ordinal or rank, 'it' (the structure last talked
        about), otherwise the best one."""
        ranked = self.state.last_ranked
        match = ID_PATTERN.search(lowered)
        if match:
            wanted = match.group(0)
            hit = next((c for c in ranked if c["id"].startswith(wanted)), None)
            return hit or {"id": wanted, "formula": None}
        if not ranked:
            return None
        rank = re.search(r"\b(?:rank|number|no\.?|#)\s*(\d+)", lowered)
        word = next((n for w, n in ORDINALS.items() if re.search(rf"\b{w}\b", lowered)), None)
        index = int(rank.group(1)) if rank else word
        if index is not None:
            return next((c for c in ranked if c.get("rank") == index), ranked[min(max(index, 1), len(ranked)) - 1])
        if re.search(r"\b(it|that|this)\b", lowered) and not re.search(r"\bbest\b", lowered) and self.state.focus_id:
            return next((c for c in ranked if c["id"] == self.state.focus_id), ranked[0])
        return ranked[0]

    def _focus(self, target: dict[str, Any]) -> None:
        self.state.focus_id = target["id"]
        self.state.save(self.state_path)

    def _show_one(self, lowered: str, calls: list, outputs: list) -> str:
        target = self._target(lowered)
        if target is None:
            return self._no_search_yet()
        out = self._call("get_structure", {"id": target["id"]}, calls, outputs)
        summary = out.structure
        self._focus({"id": summary.id})
        if target.get("rank") is None:
            text = (f"{summary.id} is {summary.reduced_formula} ({summary.spacegroup}, {summary.n_sites} atoms in the "
                    f"cell, density {summary.density_g_cm3:g} g/cm3)")
            if summary.energy_per_atom_eV is not None:
                text += f", energy {summary.energy_per_atom_eV:.4f} eV/atom"
            return f"{text}. Stored in memory as {summary.uri}; its CIF:\n\n```\n{out.text.strip()}\n```"
        place = "the best result" if target["rank"] == 1 else f"result number {target['rank']}"
        numbers = [
            f"E_hull {_num(target.get('e_above_hull_eV'))} eV/atom",
            f"formation energy {_num(target.get('formation_energy_per_atom_eV'))} eV/atom",
            f"total energy {_num(target.get('energy_per_atom_eV'))} eV/atom with {self.state.potential}",
        ]
        facts = [
            "it matches the requested family" if target.get("family_match") else "it is outside the requested family",
            "its relaxation converged" if target.get("converged", True) else "its relaxation did not converge",
            "memory already held it" if target.get("reused") else f"the {target.get('generator')} generator made it",
        ]
        if target.get("e_hull_suspect"):
            facts.append("its E_hull is suspiciously negative: do not trust it")
        return (
            f"{_sentence(place)[:-1]} of '{self.state.request}' is {summary.id}: {summary.reduced_formula} "
            f"({summary.spacegroup}, {summary.n_sites} atoms in the cell, density {summary.density_g_cm3:g} g/cm3). "
            f"{'; '.join(numbers)}. {_sentence('; '.join(facts))}\n\n{self._hull_line()}"
            f"Stored in memory as {summary.uri}; its CIF:\n\n```\n{out.text.strip()}\n```"
        )

    def _md(self, lowered: str, calls: list, outputs: list) -> str:
        target = self._target(lowered)
        if target is None:
            return "Run a search first; then I can run MD on its best result (or give a memory id)."
        match = re.search(r"(\d{1,5}(?:\.\d+)?)\s*k\b", lowered)
        temperature = float(match.group(1)) if match else MD_DEFAULT_K
        steps_match = re.search(r"(\d{1,6})\s*steps?\b", lowered)
        steps = int(steps_match.group(1)) if steps_match else MD_STEPS
        args = {
            "structure": {"id": target["id"]},
            "ensemble": "nvt_langevin",
            "temperature_K": temperature,
            "steps": steps,
            "timestep_fs": MD_TIMESTEP_FS,
        }
        atoms_match = re.search(r"(\d{1,5})\s*atoms?\b", lowered)  # 'run MD on it with 128 atoms'
        if atoms_match:
            args["min_atoms"] = int(atoms_match.group(1))
        out = self._call("run_md", args, calls, outputs)
        self._focus(target)
        return self._md_sentences(target, temperature, out)

    def _md_sentences(self, target: dict[str, Any], temperature: float, out: Any) -> str:
        """The MD result as sentences with units (the full numbers stay in the summary artifact)."""
        name = f"{target['id']} ({target['formula']})" if target.get("formula") else target["id"]
        ensemble = ENSEMBLE_NAMES.get(out.ensemble, out.ensemble)
        parts = [
            f"I ran {out.steps} steps of {ensemble} molecular dynamics on {name}, {out.n_atoms} atoms"
            + (f" (a {'x'.join(map(str, out.supercell))} supercell)" if out.supercell != [1, 1, 1] else "") + ", with "
            f"{out.potential} at a target temperature of {temperature:g} K: {out.simulated_time_ps:g} ps of "
            f"simulated time ({MD_TIMESTEP_FS:g} fs steps), {out.wall_time_s:.1f} s of wall time.",
            f"The temperature averaged {out.mean_temperature_K:.0f} K (standard deviation "
            f"{out.std_temperature_K:.0f} K) over the production part.",
        ]
        final = out.final_potential_energy_eV / max(out.n_atoms, 1)
        mean = _mean_potential_energy(out.thermo_log_uri)
        energy = f"The potential energy ended at {final:.4f} eV/atom"
        if mean is not None:
            energy += f" (mean {mean / max(out.n_atoms, 1):.4f} eV/atom over the production part)"
        parts.append(energy + f"; the total energy drifted by {out.energy_drift_meV_per_atom_per_ps:.2f} meV/atom "
                     "per ps (the thermostat exchanges energy, so this is not a conservation check).")
        if out.mean_pressure_GPa is not None:
            parts.append(f"Mean pressure {out.mean_pressure_GPa:.2f} GPa"
                         + (f", mean density {out.mean_density_g_cm3:.3f} g/cm3." if out.mean_density_g_cm3 else "."))
        if out.rdf_peaks_A:
            peaks = ", ".join(f"{p:.2f}" for p in out.rdf_peaks_A[:4])
            parts.append(f"The radial distribution function peaks at {peaks} Angstrom.")
        parts.append(f"Mean squared displacement at the end: {out.msd_final_A2:.3f} Angstrom^2.")
        if out.n_atoms < MD_SMALL_CELL:
            parts.append(f"A {out.n_atoms}-atom cell is small for MD (atoms see their own periodic images); ask "
                         "e.g. 'run MD on it with 64 atoms' for a supercell (slower: the cost grows with the atoms).")
        text = " ".join(parts)
        if out.warnings:
            text += "\n\nNotes: " + "; ".join(out.warnings) + "."
        return (f"{text}\n\nThermo plot: {out.thermo_plot_uri}; trajectory: {out.trajectory_uri}; "
                f"thermo log: {out.thermo_log_uri}.")

    # -- formatting ----------------------------------------------------------------------------------------------

    def _hull_line(self) -> str:
        refs = self.state.hull_references
        if not refs:
            return ""
        systems = "; ".join(f"{system}: {', '.join(phases)}" for system, phases in refs.items())
        return f"E_hull is measured against the hull of these competing phases ({systems}).\n\n"

    @staticmethod
    def _listing(ranked: list[dict[str, Any]]) -> str:
        """One line per candidate (full id, formula, space group, E_hull, formation energy): readable at 80 columns,
        unlike a table that squeezes the ids."""
        rows = []
        for c in ranked:
            family = "family match" if c.get("family_match") else "other family"
            rows.append(
                f"{c['rank']}. {c['id']} {c['formula']} ({c['spacegroup']}): E_hull {_num(c.get('e_above_hull_eV'))} "
                f"eV/atom, formation energy {_num(c.get('formation_energy_per_atom_eV'))} eV/atom, {family}"
            )
        return "\n".join(rows)


def _sentence(text: str) -> str:
    """Upper-case the first letter (only) and end with a full stop."""
    return text[:1].upper() + text[1:] + "."


def _num(value: float | None, digits: int = 4) -> str:
    return "unknown" if value is None else f"{value:.{digits}f}"


def _mean_potential_energy(thermo_uri: str) -> float | None:
    """Mean potential energy (eV, whole cell) over the production part (after the first 20 %) of an MD thermo log."""
    path = get_settings().resolved_workspace() / thermo_uri.removeprefix("artifact://")
    try:
        with path.open(newline="") as fh:
            values = [float(row["epot_eV"]) for row in csv.DictReader(fh)]
    except (OSError, KeyError, ValueError):
        return None
    production = values[int(len(values) * 0.2):] or values
    return sum(production) / len(production) if production else None
