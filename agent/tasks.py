"""Scripted research tasks: a YAML file with a list of steps (tool + arguments; later steps may reference earlier
outputs as ${step_name.field.sub.0.field}) or a goal for the agent; results are written as a report."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from tools.core.errors import ToolError, ToolInputError, describe
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
    if task.goal and not any("error" in entry for entry in log):
        answer = _pursue_goal(task.goal, progress)
    folder = settings.resolved_workspace() / "tasks" / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    report = {"title": task.title, "task_file": str(path), "steps": log, "goal": task.goal, "answer": answer}
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=str))
    lines = [f"# {task.title}", ""]
    for entry in log:
        status = f"error: {entry['error']}" if "error" in entry else f"ok ({entry['seconds']} s)"
        lines.append(f"- **{entry['step']}** `{entry['tool']}` {status}")
    if answer:
        lines += ["", "## Goal", "", task.goal or "", "", answer]
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    return {"report_dir": str(folder), "steps": log, "answer": answer, "results": results}


def _pursue_goal(goal: str, progress: ProgressFn | None) -> str:
    """The LLM agent when configured, else the offline planner."""
    if get_settings().llm_base_url:
        from agent.llm_agent import MatsearchAgent

        agent = MatsearchAgent(progress=progress)
        try:
            return agent.ask(goal, thread_id=f"task-{int(time.time())}").answer
        finally:
            agent.close()
    from agent.offline_planner import OfflinePlanner

    return OfflinePlanner(progress=progress).reply(goal).text
