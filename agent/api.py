"""A small Python API for notebooks and scripts: call any tool, search, chat, run a task file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tools.core.registry import ToolContext, get_tool, load_tools


def call(tool_name: str, **arguments: Any) -> BaseModel:
    """Run one registry tool with keyword arguments and return its typed output."""
    return get_tool(tool_name).run(arguments, ToolContext())


def search(request: str, budget: int = 10, seed: int = 0, **options: Any) -> BaseModel:
    """The hierarchical search on a plain-language request."""
    return call("hierarchical_search", request=request, budget=budget, seed=seed, **options)


def tools() -> list[str]:
    """Names of every tool."""
    return sorted(load_tools())


def chat(message: str, thread_id: str = "notebook") -> str:
    """One chat turn with the LLM agent (or the offline planner when no LLM is configured)."""
    from tools.core.settings import get_settings

    if get_settings().llm_base_url:
        from agent.llm_agent import MatsearchAgent

        agent = MatsearchAgent()
        try:
            return agent.ask(message, thread_id=thread_id).answer
        finally:
            agent.close()
    from agent.offline_planner import OfflinePlanner

    return OfflinePlanner(thread=thread_id).reply(message).text  # follow-ups ("show the best one") persist


def run(task_file: str | Path) -> dict[str, Any]:
    """Run a scripted research task (YAML)."""
    from agent.tasks import run_task

    return run_task(Path(task_file))
