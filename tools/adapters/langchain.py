"""Registry -> LangChain: each ToolSpec becomes a StructuredTool with the same schema and description."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.tools import StructuredTool, ToolException

from tools.core.errors import ToolError, describe
from tools.core.registry import ProgressFn, ToolContext, ToolSpec, format_validation_error, load_tools
from tools.core.settings import Settings, get_settings


def langchain_tool(
    spec: ToolSpec, settings: Settings | None = None, progress: ProgressFn | None = None
) -> StructuredTool:
    """A StructuredTool that validates with the input model and returns the output model as JSON text."""

    def run(**kwargs: Any) -> str:
        ctx = ToolContext(settings=settings or get_settings(), progress_fn=progress)
        try:
            return spec.run(kwargs, ctx).model_dump_json()
        except ToolError as exc:
            raise ToolException(describe(exc)) from exc  # the kind tells the model whether to fix its call

    return StructuredTool.from_function(
        func=run,
        name=spec.name,
        description=spec.description,
        args_schema=spec.input_model,
        handle_tool_error=True,  # errors come back to the model as observations, never as crashes
        handle_validation_error=lambda exc: f"input error: invalid arguments for {spec.name}: "
        f"{format_validation_error(exc, spec.input_model)}",
    )


def langchain_tools(
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
    include: Callable[[ToolSpec], bool] | None = None,
) -> list[StructuredTool]:
    """Every registry tool (or those `include` accepts) as LangChain tools."""
    return [langchain_tool(s, settings, progress) for s in load_tools().values() if include is None or include(s)]
