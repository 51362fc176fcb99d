"""Scripted research tasks: a YAML file with a list of steps (tool + arguments; later steps may reference earlier
outputs as ${step_name.field.sub.0.field}) or a goal for the agent; results are written as a report.

The Markdown report gives, per step, what the tool found: a search's ranked table (with how the score is made and
the hull each E_hull is measured against), an MD run's temperature, length and energy drift, the ids and formulas
of structures, every other scalar field with the unit its name states, and the step's files as links (plots
embedded). The display helpers here (one formula spelling, rounded numbers) are shared with the CLI tables."""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from tools.core.errors import ToolError, ToolInputError, describe
from tools.core.paths import ARTIFACT_SCHEME
from tools.core.registry import ProgressFn, ToolContext, get_tool
from tools.core.settings import get_settings

REFERENCE = re.compile(r"\$\{([A-Za-z_][\w-]*)((?:\.[\w-]+)*)\}")


class Step(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z_][\w-]*$")
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Task(BaseModel):
    title: str = "matsearch task"
    steps: list[Step] = Field(default_factory=list)
    goal: str | None = Field(default=None, description="A goal for the agent instead of (or after) fixed steps")


def load_task(path: Path) -> Task:
    """Read and validate a task file; ToolInputError naming the problem otherwise."""
    if not path.is_file():
        raise ToolInputError(f"task file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
        task = Task.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ToolInputError(f"task file {path} is invalid: {exc}") from exc
    names = [s.name for s in task.steps]
    if len(set(names)) != len(names):
        raise ToolInputError("step names must be unique")
    if not task.steps and not task.goal:
        raise ToolInputError("a task needs steps or a goal")
    return task


def _lookup(results: dict[str, Any], name: str, path: str) -> Any:
    if name not in results:
        raise ToolInputError(f"reference to unknown or later step {name!r}")
    value: Any = results[name]
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise ToolInputError(f"${{{name}{path}}}: no field {part!r}")
    return value


def substitute(value: Any, results: dict[str, Any]) -> Any:
    """Replace ${step.path} references; a string that is exactly one reference keeps the referenced type."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole:
            return _lookup(results, whole.group(1), whole.group(2))
        return REFERENCE.sub(lambda m: str(_lookup(results, m.group(1), m.group(2))), value)
    if isinstance(value, list):
        return [substitute(v, results) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, results) for k, v in value.items()}
    return value


def run_task(path: Path, progress: ProgressFn | None = None, on_step: Any = None) -> dict[str, Any]:
    """Run every step in order, then the goal (agent or offline planner); write report.json and report.md."""
    task = load_task(path)
    settings = get_settings()
    results: dict[str, Any] = {}
    log: list[dict[str, Any]] = []
    for step in task.steps:
        if on_step:
            on_step(step.name, step.tool)
        args = substitute(step.arguments, results)
        started = time.time()
        try:
            output = get_tool(step.tool).run(args, ToolContext(settings=settings, progress_fn=progress))
        except ToolError as exc:
            log.append({"step": step.name, "tool": step.tool, "arguments": args, "error": describe(exc)})
            break
        results[step.name] = output.model_dump(mode="json")
        log.append(
            {
                "step": step.name,
                "tool": step.tool,
                "arguments": args,
                "seconds": round(time.time() - started, 2),
                "output": results[step.name],
            }
        )
    answer = None
    run_id = f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if task.goal and not any("error" in entry for entry in log):
        answer = _pursue_goal(task.goal, progress, thread=f"task-{run_id}")  # chat can follow up on it
    workspace = settings.resolved_workspace()
    folder = workspace / "tasks" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    thread = f"task-{run_id}" if task.goal else None
    report = {"title": task.title, "task_file": str(path), "steps": log, "goal": task.goal, "answer": answer,
              "thread": thread}
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (folder / "report.md").write_text(report_markdown(task, log, answer, folder, workspace))
    return {"report_dir": str(folder), "steps": log, "answer": answer, "results": results, "thread": thread}


def report_markdown(task: Task, log: list[dict[str, Any]], answer: str | None, folder: Path, workspace: Path) -> str:
    """The task report: an overview line per step, then per step its arguments and what its output says."""
    lines = [f"# {task.title}", ""]
    for entry in log:
        status = f"error: {entry['error']}" if "error" in entry else f"ok ({entry['seconds']} s)"
        lines.append(f"- **{entry['step']}** `{entry['tool']}` {status}")
    for number, entry in enumerate(log, 1):
        lines += ["", f"## {number}. {entry['step']}: `{entry['tool']}`", ""]
        lines += [f"Arguments: `{_short_json(entry['arguments'])}`", ""]
        if "error" in entry:
            lines += [f"**Failed:** {entry['error']}"]
            continue
        lines += summarize_output(entry["tool"], entry["output"], entry["arguments"], folder, workspace)
    if answer:
        lines += ["", "## Goal", "", task.goal or "", "", answer]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Display helpers, shared with the CLI tables (agent/cli.py)

# Unit suffixes of output field names, longest first: 'mean_temperature_K' -> K, 'energy_per_atom_eV' -> eV/atom.
UNIT_SUFFIXES = [
    ("_meV_per_atom_per_ps", "meV/atom/ps"),
    ("_per_atom_eV", "eV/atom"),
    ("_hull_eV", "eV/atom"),
    ("_cm2_s", "cm²/s"),
    ("_g_cm3", "g/cm³"),
    ("_per_fs", "1/fs"),
    ("_A3", "Å³"),
    ("_A2", "Å²"),
    ("_GPa", "GPa"),
    ("_meV", "meV"),
    ("_eV", "eV"),
    ("_deg", "°"),
    ("_ps", "ps"),
    ("_fs", "fs"),
    ("_K", "K"),
    ("_A", "Å"),
    ("_s", "s"),
]

SCORE_EXPLANATION = (
    "Ranking: tiers first (has the required elements, a formula the request named, the requested family, only "
    "the named elements, a converged relaxation), then stability. score = -stability, higher is better: above "
    "the hull it is -E_hull; on the hull it is how far (eV/atom) the structure lies below the hull of its "
    "competing phases (-E_form when no hull could be built)."
)


def canonical_formula(formula: str | None) -> str:
    """The one spelling of a formula shown to users: pymatgen's reduced formula ('La1Mn1O3', 'Mn La O3' ->
    'LaMnO3'); text that is no formula is returned unchanged."""
    if not formula:
        return ""
    try:
        from pymatgen.core import Composition

        return Composition(formula).reduced_formula
    except Exception:  # not a formula (a label, a free-text name): show it as given
        return formula


FORMULA_TOKEN = re.compile(r"(?<![\w-])(?=[A-Za-z]*\d)(?:[A-Z][a-z]?\d*(?:\.\d+)?){2,}(?![\w-])")


def canonical_formulas_in(text: str) -> str:
    """Free text (a note, a reason) with every formula written the one way: 'Mg3Al2Si3O12' -> 'Mg3Al2(SiO4)3'.
    Only words of two or more element symbols with at least one digit count as formulas ('CIF', 'P6_3/mmc',
    'Mg2+' are left alone)."""

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        spelled = canonical_formula(token)
        return spelled if spelled and _is_formula(token) else token

    return FORMULA_TOKEN.sub(one, text)


def _is_formula(token: str) -> bool:
    from pymatgen.core import Element

    return all(Element.is_valid_symbol(sym) for sym in re.findall(r"[A-Z][a-z]?", token))


def fmt_number(value: Any, decimals: int | None = None) -> str:
    """A number for display: `decimals` places when given, else 4 significant digits (1 decimal from 1000 up);
    '' for None; ints, bools and text as they are."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if decimals is not None:
        text = f"{value:.{decimals}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text  # no '-0.000'
    if abs(value) >= 1000:
        return f"{value:.1f}"
    if value == 0:
        return "0"
    return f"{value:.4g}" if abs(value) >= 1e-3 else f"{value:.2e}"


def fmt_energy(value: float | None) -> str:
    """An energy per atom (eV/atom) for display: 3 decimals."""
    return fmt_number(value, 3)


def field_unit(name: str) -> tuple[str, str]:
    """(label, unit) of an output field from its name: 'mean_temperature_K' -> ('mean temperature', 'K')."""
    for suffix, unit in UNIT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            label = name[: -len(suffix)] + ("_per_atom" if suffix == "_per_atom_eV" else "")
            if suffix == "_hull_eV":
                label = name[: -len("_eV")]
            return label.replace("_", " "), unit
    return name.replace("_", " "), ""


def hull_lines(out: Any, systems: list[str] | None = None) -> tuple[str, list[tuple[str, str]]]:
    """What each E_hull of a search was computed against: a sentence (the final hull of the candidate's chemical
    system with the search's potential, from its elements, its reference compounds and every relaxed structure of
    that system in memory, the candidates included) and (system, its reference compounds) rows; `systems` limits
    the rows."""
    from pymatgen.core import Element

    head = (
        f"E_hull (eV/atom) is measured against the final convex hull of each chemical system, computed with "
        f"{out.potential}: the elements, the reference compounds below, and every relaxed structure of that system "
        f"in memory (these candidates included)."
    )
    if not out.hull_references:
        return head.replace("the reference compounds below", "binary reference compounds"), []
    rows = []
    for system, names in out.hull_references.items():
        if systems is not None and system not in systems:
            continue
        compounds = [n for n in names if not Element.is_valid_symbol(n)]
        shown = [f"{canonical_formula(n.split(':')[0])} ({n.split(':', 1)[1]})" if ":" in n else canonical_formula(n)
                 for n in compounds]
        rows.append((system, ", ".join(shown) if shown else "elements only (no reference compound)"))
    return head, rows


def chemical_system(formula: str) -> str:
    """'LaMnO3' -> 'La-Mn-O' (sorted elements, as the search keys its hulls)."""
    try:
        from pymatgen.core import Composition

        return "-".join(sorted(el.symbol for el in Composition(formula).elements))
    except Exception:
        return ""


# ---------------------------------------------------------------------------------------------------------------
# Per-step summaries of tool outputs


def summarize_output(
    tool: str, output: dict[str, Any], arguments: dict[str, Any], folder: Path, workspace: Path
) -> list[str]:
    """Markdown lines saying what a tool's output found: a tool-specific part (search table, MD sentence,
    structures table), the other scalar fields with their units, and the output's files as links."""
    used: set[str] = set()
    lines: list[str] = []
    if tool == "hierarchical_search":
        lines += _search_summary(output, used)
    elif tool == "run_md" or {"mean_temperature_K", "energy_drift_meV_per_atom_per_ps"} <= output.keys():
        lines += _md_summary(output, arguments, used)
    if tool != "hierarchical_search":
        lines += _structures_table(output, used)
    analysis = _analysis_lines(output, used)
    scalars = _scalar_lines(output, used)
    lines += scalars if not analysis else scalars[:-1] + analysis + [""]
    lines += _link_lines(output, folder, workspace)
    return lines


def _search_summary(output: dict[str, Any], used: set[str]) -> list[str]:
    from tools.discovery.search import SearchOutput

    out = SearchOutput.model_validate({k: v for k, v in output.items() if k in SearchOutput.model_fields})
    used.update(SearchOutput.model_fields)
    lines = [
        f"Request: *{out.request}*. Formulas from the {out.proposer} proposer, scored with {out.potential}: "
        f"{out.evaluations} relaxed, {out.reused} reused from memory, {fmt_number(out.seconds)} s.",
        "",
    ]
    if out.declined:
        return lines + [f"Declined, nothing searched: {out.declined}", ""]
    if out.ranked:
        lines += [
            "| rank | id | formula | space group | E_hull (eV/atom) | E_form (eV/atom) | score | family match | "
            "generator | converged |",
            "|---:|---|---|---|---:|---:|---:|---|---|---|",
        ]
        for c in out.ranked:
            lines.append(
                f"| {c.rank} | {c.id} | {canonical_formula(c.formula)} | {c.spacegroup} | "
                f"{fmt_energy(c.e_above_hull_eV)}{' (suspect)' if c.e_hull_suspect else ''} | "
                f"{fmt_energy(c.formation_energy_per_atom_eV)} | {fmt_number(c.score, 3)} | "
                f"{'yes' if c.family_match else 'no'} | {c.generator} | {'yes' if c.converged else 'NO'} |"
            )
        systems = sorted({chemical_system(c.formula) for c in out.ranked})
        head, rows = hull_lines(out, systems)
        lines += ["", SCORE_EXPLANATION, "", head, ""] + [f"- {system}: {names}" for system, names in rows] + [""]
    else:
        lines += ["No candidate was relaxed.", ""]
    if out.best:
        lines += [f"Best: {out.best.id} ({canonical_formula(out.best.formula)}, {out.best.spacegroup}), E_hull "
                  f"{fmt_energy(out.best.e_above_hull_eV)} eV/atom.", ""]
    if out.notes:
        lines += ["Notes:", ""] + [f"- {canonical_formulas_in(n)}" for n in out.notes] + [""]
    return lines


def _md_summary(output: dict[str, Any], arguments: dict[str, Any], used: set[str]) -> list[str]:
    """One paragraph: ensemble, potential, atoms, steps and time; temperature (target and measured), pressure,
    density, energy drift, RDF peaks and diffusion, with units; then the run's warnings."""
    get = output.get
    target = arguments.get("temperature_K")
    parts = [
        f"{get('ensemble', 'MD')} with {get('potential', '?')}: {get('n_atoms', '?')} atoms, {get('steps', '?')} "
        f"steps ({fmt_number(get('simulated_time_ps'))} ps)"
        + ("" if target is None else f" at a target of {fmt_number(target)} K"),
        f"mean temperature {fmt_number(get('mean_temperature_K'), 1)} ± {fmt_number(get('std_temperature_K'), 1)} K",
    ]
    if get("mean_pressure_GPa") is not None:
        parts.append(f"mean pressure {fmt_number(get('mean_pressure_GPa'), 2)} GPa")
    if get("mean_density_g_cm3") is not None:
        parts.append(f"density {fmt_number(get('mean_density_g_cm3'), 3)} g/cm³")
    parts.append(f"energy drift {fmt_number(get('energy_drift_meV_per_atom_per_ps'), 3)} meV/atom/ps")
    parts.append(f"final potential energy {fmt_number(get('final_potential_energy_eV'), 3)} eV")
    if get("rdf_peaks_A"):
        parts.append("RDF peaks at " + ", ".join(fmt_number(r, 2) for r in get("rdf_peaks_A")) + " Å")
    if get("diffusion_coefficient_cm2_s") is not None:
        parts.append(f"diffusion coefficient {fmt_number(get('diffusion_coefficient_cm2_s'))} cm²/s")
    used.update({"ensemble", "potential", "n_atoms", "steps", "simulated_time_ps", "mean_temperature_K",
                 "std_temperature_K", "mean_pressure_GPa", "mean_density_g_cm3", "energy_drift_meV_per_atom_per_ps",
                 "final_potential_energy_eV", "rdf_peaks_A", "diffusion_coefficient_cm2_s", "warnings"})
    lines = ["; ".join(parts) + ".", ""]
    if get("warnings"):
        lines += ["Warnings:", ""] + [f"- {w}" for w in get("warnings")] + [""]
    return lines


def _structure_rows(value: Any, rows: list[dict[str, Any]], depth: int = 0) -> None:
    """Every structure-like dict (an id and a formula) in an output, in order; not below one another."""
    if depth > 4:
        return
    if isinstance(value, dict):
        if isinstance(value.get("id"), str) and ("reduced_formula" in value or "formula" in value):
            rows.append(value)
            return
        for v in value.values():
            _structure_rows(v, rows, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _structure_rows(v, rows, depth + 1)


def _structures_table(output: dict[str, Any], used: set[str]) -> list[str]:
    """The structures an output names, as a table: id, formula, space group, sites, energy, score."""
    rows: list[dict[str, Any]] = []
    _structure_rows(output, rows)
    if not rows:
        return []
    for key, value in output.items():  # the fields that held them are shown by the table
        found: list[dict[str, Any]] = []
        _structure_rows(value, found)
        if found:
            used.add(key)
    if "id" in output and isinstance(output.get("id"), str):
        used.add("id")
    cols = [("id", "id"), ("formula", "formula"), ("spacegroup", "space group"), ("n_sites", "sites"),
            ("energy_per_atom_eV", "E (eV/atom)"), ("deduplicated", "already stored"), ("score", "similarity")]
    present = [(k, h) for k, h in cols if k == "formula" or any(r.get(k) is not None for r in rows)]
    lines = ["| " + " | ".join(h for _, h in present) + " |", "|" + "---|" * len(present)]
    for r in rows[:30]:
        cells = []
        for key, _ in present:
            if key == "formula":
                cells.append(canonical_formula(r.get("reduced_formula") or r.get("formula")))
            elif key == "energy_per_atom_eV":
                cells.append(fmt_energy(r.get(key)))
            elif key == "deduplicated":
                cells.append("" if r.get(key) is None else "yes" if r[key] else "no")
            elif key == "score":
                cells.append(fmt_number(r.get(key), 3))
            else:
                cells.append(fmt_number(r.get(key)))
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > 30:
        lines.append(f"| ... {len(rows) - 30} more |")
    if "deduplicated" in output and isinstance(output.get("deduplicated"), bool):
        used.add("deduplicated")
        lines.insert(0, f"Stored as {output.get('id')}" + (" (already in memory: the existing id)" if
                                                              output["deduplicated"] else " (new record)") + ".\n")
    return lines + [""]


def _analysis_lines(output: dict[str, Any], used: set[str]) -> list[str]:
    """A structure analysis' coordination (per distinct site) and strongest XRD peaks, when the output has them."""
    lines = []
    sites = output.get("coordination")
    if isinstance(sites, list) and sites and all(isinstance(c, dict) and "element" in c for c in sites):
        used.add("coordination")
        parts = []
        for c in sites:
            neighbours = " ".join(f"{el}{n}" for el, n in sorted((c.get("neighbors") or {}).items()))
            bond = c.get("mean_bond_length_A")
            parts.append(f"{c['element']} (x{c.get('multiplicity', 1)}): CN {c.get('coordination_number')} "
                         f"[{neighbours}]" + ("" if bond is None else f", mean bond {fmt_number(bond, 3)} Å"))
        lines.append("- coordination: " + "; ".join(parts))
    peaks = output.get("xrd_peaks")
    if isinstance(peaks, list) and peaks and all(isinstance(p, dict) and "two_theta_deg" in p for p in peaks):
        used.add("xrd_peaks")
        lines.append("- strongest XRD peaks (Cu Kα; 2θ, hkl, relative intensity): " + ", ".join(
            f"{fmt_number(p['two_theta_deg'], 2)}° {p.get('hkl', '')} {fmt_number(p.get('intensity'), 0)}"
            for p in peaks[:6]))
    return lines


def _scalar_lines(output: dict[str, Any], used: set[str]) -> list[str]:
    """The output's top-level numbers, booleans and short texts (units from the field names), and short lists of
    numbers; formulas in the one spelling; not the fields already shown, nor links."""
    lines = []
    fields = {k: v for k, v in output.items() if k not in used}
    if "reduced_formula" in fields and "formula" in fields:
        fields.pop("formula")
    for key, value in fields.items():
        label, unit = field_unit(key)
        label = "formula" if key == "reduced_formula" else label
        if isinstance(value, str):
            if value.startswith(ARTIFACT_SCHEME) or "\n" in value or len(value) > 80 or key.endswith("uri"):
                continue
            text = canonical_formula(value) if "formula" in key else value
        elif isinstance(value, bool) or value is None:
            if value is None:
                continue
            text = "yes" if value else "no"
        elif isinstance(value, int | float):
            text = fmt_energy(value) if unit.startswith("eV") else fmt_number(value)
        elif isinstance(value, list) and value and len(value) <= 12 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            text = ", ".join(fmt_number(v) for v in value)
        elif isinstance(value, list) and value and key in ("warnings", "notes") and all(
                isinstance(v, str) for v in value):
            lines += [f"- {label}:"] + [f"  - {v}" for v in value]
            continue
        else:
            continue
        lines.append(f"- {label}: {text}{' ' + unit if unit else ''}")
    return lines + ([""] if lines else [])


def _artifact_links(value: Any, key: str, found: list[tuple[str, str]], depth: int = 0) -> None:
    if depth > 5:
        return
    if isinstance(value, str) and value.startswith(ARTIFACT_SCHEME):
        if value not in [u for _, u in found]:
            found.append((key, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            _artifact_links(v, k, found, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _artifact_links(v, key, found, depth + 1)


def _link_lines(output: dict[str, Any], folder: Path, workspace: Path) -> list[str]:
    """Every artifact:// file of the output as a Markdown link relative to the report (PNG plots embedded)."""
    found: list[tuple[str, str]] = []
    _artifact_links(output, "file", found)
    if not found:
        return []
    lines = ["Files:", ""]
    images = []
    for key, uri in found:
        target = workspace / uri.removeprefix(ARTIFACT_SCHEME)
        relative = Path(os.path.relpath(target, folder)).as_posix()
        label = key.removesuffix("_uri").replace("_", " ")
        lines.append(f"- [{label}]({relative}) (`{uri}`)")
        if relative.lower().endswith(".png"):
            images.append(f"![{label}]({relative})")
    return lines + [""] + ([*images, ""] if images else [])


def _short_json(value: Any, limit: int = 300) -> str:
    """Arguments as one line of JSON; long texts (inline CIFs) cut short."""

    def cut(v: Any) -> Any:
        if isinstance(v, str) and len(v) > 60:
            return v[:40] + f"... ({len(v)} characters)"
        if isinstance(v, dict):
            return {k: cut(x) for k, x in v.items()}
        if isinstance(v, list):
            return [cut(x) for x in v]
        return v

    text = json.dumps(cut(value), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pursue_goal(goal: str, progress: ProgressFn | None, thread: str) -> str:
    """The LLM agent when configured, else the offline planner; both keep the turn under the run's own thread, so
    `matsearch chat --thread <thread>` can follow up on what the task found."""
    if get_settings().llm_base_url:
        from agent.llm_agent import MatsearchAgent

        agent = MatsearchAgent(progress=progress)
        try:
            return agent.ask(goal, thread_id=thread).answer
        finally:
            agent.close()
    from agent.offline_planner import OfflinePlanner

    return OfflinePlanner(progress=progress, thread=thread).reply(goal).text
