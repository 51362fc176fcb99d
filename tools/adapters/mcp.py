"""Registry -> MCP: each ToolSpec becomes an MCP tool whose parameters are the input model's fields, whose
structured output is the output model, with progress notifications, cancellation and clean error messages."""

from __future__ import annotations

import contextlib
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError as MCPToolError
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp.types import CallToolResult, ResourceLink, TextContent, ToolAnnotations

from tools.core.errors import ToolError, describe
from tools.core.registry import LLM, ToolContext, ToolSpec
from tools.core.settings import Settings

LINK_SCHEMES = ("structure://", "artifact://")
# Longest a direct (non-job) MCP call may run, by cost class; longer work belongs in job_start.
TIME_LIMITS_S = {"instant": 300.0, "minutes": 3600.0, "long": 6 * 3600.0}
# A direct call whose own estimate exceeds this is refused with the estimate and sent to job_start: clients commonly
# time out after a minute, and an instant tool should answer well within it.
ESTIMATE_LIMITS_S = {"instant": 60.0, "minutes": 3600.0, "long": 6 * 3600.0}
MAX_LINKS = 50


def _links(value: Any, found: list[str]) -> list[str]:
    """Every structure:// or artifact:// URI inside a JSON value, in order, without repeats."""
    if isinstance(value, str):
        if value.startswith(LINK_SCHEMES) and value not in found:
            found.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _links(item, found)
    elif isinstance(value, list):
        for item in value:
            _links(item, found)
    return found


# The MIME type of each artifact file type tools write; artifact:// reads and resource links use it.
ARTIFACT_MIME = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".csv": "text/csv",
    ".md": "text/markdown",
    ".cif": "chemical/x-cif",
    ".extxyz": "text/plain",
    ".xyz": "text/plain",
    ".txt": "text/plain",
    ".log": "text/plain",
}


def is_text_mime(mime: str) -> bool:
    """Whether content of this MIME type is sent as text (else as a base64 blob)."""
    return mime.startswith("text/") or mime in ("application/json", "chemical/x-cif")


def _mime(uri: str) -> str:
    if uri.startswith("structure://"):
        return "chemical/x-cif"
    return ARTIFACT_MIME.get(uri[uri.rfind(".") :].lower(), "application/octet-stream")


def to_result(output: Any) -> CallToolResult:
    """Structured content plus a short JSON text block and resource links to every structure/artifact named."""
    data = output.model_dump(mode="json")
    links = [
        ResourceLink(uri=uri, name=uri.split("://", 1)[1], mime_type=_mime(uri)) for uri in _links(data, [])[:MAX_LINKS]
    ]
    text = TextContent(type="text", text=json.dumps(data, separators=(",", ":")))
    return CallToolResult(content=[text, *links], structured_content=data)


def mcp_function(spec: ToolSpec, settings: Callable[[], Settings]) -> Callable[..., Any]:
    """An async function whose signature mirrors spec.input_model, for MCPServer.add_tool."""

    async def call(ctx: Context, **kwargs: Any) -> CallToolResult:
        cancel = threading.Event()
        portal_token = anyio.lowlevel.current_token()

        def progress(done: float, total: float | None, message: str | None) -> None:
            with contextlib.suppress(Exception):  # a lost progress message must never fail the tool
                anyio.from_thread.run(ctx.report_progress, done, total, message, token=portal_token)

        # An HTTP request carries its starlette Request; over stdio (or in memory) there is none.
        transport = "http" if getattr(ctx.request_context, "request", None) is not None else "stdio"
        tool_ctx = ToolContext(settings=settings(), progress_fn=progress, cancel_event=cancel, transport=transport,
                               direct_limit_s=ESTIMATE_LIMITS_S[spec.cost])

        def work() -> Any:
            return spec.run(kwargs, tool_ctx)

        limit = TIME_LIMITS_S[spec.cost]
        try:
            with anyio.fail_after(limit):
                output = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except ToolError as exc:
            raise MCPToolError(describe(exc)) from exc  # 'input error: ...' or 'runtime error: ...'
        except TimeoutError as exc:
            cancel.set()
            raise MCPToolError(
                f"{spec.name} exceeded its {limit:.0f} s limit for a direct call; run it with job_start"
            ) from exc
        except anyio.get_cancelled_exc_class():
            cancel.set()  # the worker thread stops at its next progress report
            raise
        return to_result(output)

    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
    annotations: dict[str, Any] = {"ctx": Context, "return": CallToolResult}
    for name, field in spec.input_model.model_fields.items():
        # The FieldInfo as default carries description and constraints into the schema, required fields included
        # (a required FieldInfo stays required).
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=field.annotation, default=field)
        )
        annotations[name] = field.annotation
    call.__signature__ = inspect.Signature(params, return_annotation=CallToolResult)  # type: ignore[attr-defined]
    call.__annotations__ = annotations
    call.__name__ = spec.name
    call.__doc__ = spec.description
    return call


def annotations_for(spec: ToolSpec) -> ToolAnnotations:
    """MCP tool annotations from the spec's flags and what the tool reaches (`@tool(reaches=...)`): a tool that
    reaches anything outside is not a closed world, and one that asks an LLM may answer differently each time, so
    it is not idempotent."""
    reaches = spec.reaches
    return ToolAnnotations(
        title=spec.name.replace("_", " "),
        read_only_hint=spec.read_only,
        destructive_hint=spec.destructive,
        idempotent_hint=spec.idempotent and LLM not in reaches,
        open_world_hint=bool(reaches),
    )


class RegistryValidated(FuncMetadata):
    """The SDK's argument handling minus its validation: JSON strings are still pre-parsed (some clients send
    lists as strings), and the tool's own input model then validates in ToolSpec.run, so MCP users get the same
    one-sentence errors (unknown argument named, nearest valid name) as the CLI and LangChain, not pydantic dumps."""

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        return self.pre_parse_json(arguments_to_validate)


def register_all(server: Any, specs: dict[str, ToolSpec], settings: Callable[[], Settings]) -> None:
    """Add every registry tool to an MCPServer, with its output schema from the output model."""
    for spec in specs.values():
        fn = mcp_function(spec, settings)
        server.add_tool(
            fn,
            name=spec.name,
            description=f"{spec.description}\n\nCost: {spec.cost}.",
            annotations=annotations_for(spec),
            meta={"matsearch/cost": spec.cost},
            structured_output=False,
        )
        # The wrapper returns CallToolResult (for resource links); publish and validate against the output model.
        registered = server._tool_manager.get_tool(spec.name)
        registered.parameters["additionalProperties"] = False  # the input models forbid unknown arguments
        registered.fn_metadata = RegistryValidated(
            arg_model=registered.fn_metadata.arg_model,
            output_model=spec.output_model,
            output_schema=spec.output_model.model_json_schema(mode="serialization"),
        )
