"""The tool registry: one typed definition per tool, from which the MCP tool, the LangChain tool and the CLI
subcommand are all made. Writing a new tool means writing one decorated function."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import logging
import pkgutil
import re
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError

from models.progress import ProgressFn
from tools.core.errors import ToolError, ToolInputError, ToolInternalError, ToolRuntimeError
from tools.core.paths import PATTERN_MEANINGS
from tools.core.settings import Settings, apply_torch_threads, get_settings

CostClass = Literal["instant", "minutes", "long"]

# What a tool reaches beyond its own process and workspace files, declared on each tool (`@tool(reaches=...)`);
# the MCP hints follow from it: reaching anything makes a tool open-world, and one that asks an LLM is never
# idempotent (the same arguments may get another answer).
LLM = "an LLM (when one is configured)"
DASK = "Dask workers (when an address is set)"
STORE = "the memory store (a remote chromadb server when chroma_url is set)"
ANY_TOOL = "whatever the tool it starts reaches"

# Tools live in the capability packages of tools/ (core holds the job tools too); the adapters only read them.
_NOT_TOOL_PACKAGES = ("tools.adapters",)


class ToolInput(BaseModel):
    """The base of every tool's input model (and the models nested in one): an argument the tool does not know is
    refused with its name and the valid ones, never silently ignored (`n=-3` for `n_samples` once made 8)."""

    model_config = ConfigDict(extra="forbid")


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field annotation can hold (inside lists, unions, Optional, dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _nested_models(arg)]


def check_strict_inputs(model: type[BaseModel], seen: set[type] | None = None) -> None:
    """TypeError when the input model, or a model nested in it, would ignore unknown fields."""
    seen = set() if seen is None else seen
    if model in seen:
        return
    seen.add(model)
    if model.model_config.get("extra") != "forbid":
        raise TypeError(f"{model.__name__} is a tool input model: derive it from ToolInput (extra='forbid')")
    for info in model.model_fields.values():
        for nested in _nested_models(info.annotation):
            check_strict_inputs(nested, seen)


class Cancelled(ToolRuntimeError):
    """Raised inside a tool when its caller cancelled it."""


_stores: dict[str, Any] = {}
_stores_lock = threading.Lock()


def open_store(settings: Settings) -> Any:
    """The process-wide memory store for these settings (opened once: chromadb clients are heavy)."""
    from memory.store import StructureStore

    key = settings.chroma_url or str(settings.resolved_workspace() / "memory")
    with _stores_lock:
        if key not in _stores:
            try:
                if settings.chroma_url:
                    token = settings.chroma_token.get_secret_value() if settings.chroma_token else None
                    _stores[key] = StructureStore(url=settings.chroma_url, auth_token=token,
                                                  auth_header=settings.chroma_auth_header)
                else:
                    _stores[key] = StructureStore(key)
            except Exception as exc:  # an unreachable chromadb server is a runtime problem, not a crash
                raise ToolRuntimeError(f"memory store at {key} is unavailable: {exc}") from exc
        return _stores[key]


@dataclass
class ToolContext:
    """What a running tool may use: settings, the memory store, the workspace, progress and cancellation."""

    settings: Settings = field(default_factory=get_settings)
    progress_fn: ProgressFn | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    tool_name: str = ""
    # How the caller reaches this process: "http" (a server that outlives its clients), "stdio" (the server ends
    # when its client process does, and background jobs with it), or None (the CLI or Python).
    transport: Literal["http", "stdio"] | None = None
    # Longest a call may be estimated to take before it is refused and sent to job_start (the MCP adapter sets it:
    # its clients time out; the CLI waits with a progress bar, and a job has no limit).
    direct_limit_s: float | None = None

    @property
    def store(self) -> Any:
        return open_store(self.settings)

    @property
    def workspace(self) -> Path:
        return self.settings.resolved_workspace()

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress (becomes MCP progress notifications / rich bars); raises Cancelled if cancelled."""
        if self.cancel_event.is_set():
            raise Cancelled(f"{self.tool_name or 'tool'} was cancelled")
        if self.progress_fn is not None:
            self.progress_fn(done, total, message)

    def artifact_dir(self) -> Path:
        """A fresh directory under workspace/artifacts for this call's files."""
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}"
        path = self.workspace / "artifacts" / (self.tool_name or "tool") / stamp
        path.mkdir(parents=True, exist_ok=True)
        return path

    def artifact_uri(self, path: Path) -> str:
        """The artifact:// URI of a file written under the workspace."""
        return "artifact://" + path.resolve().relative_to(self.workspace).as_posix()


@dataclass
class ToolSpec:
    """A registered tool: typed input/output models, an LLM-facing description and a cost class."""

    name: str
    fn: Callable[[Any, ToolContext], BaseModel]
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    description: str
    cost: CostClass
    read_only: bool
    idempotent: bool
    destructive: bool
    reaches: frozenset[str] = frozenset()
    estimate: Callable[[Any], float] | None = None

    def validate(self, arguments: dict[str, Any] | BaseModel) -> BaseModel:
        """Arguments to the input model; a readable ToolInputError listing every bad field."""
        if isinstance(arguments, self.input_model):
            return arguments
        try:
            return self.input_model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolInputError(
                f"invalid arguments for {self.name}: {format_validation_error(exc, self.input_model)}"
            ) from exc

    def run(self, arguments: dict[str, Any] | BaseModel, ctx: ToolContext | None = None) -> BaseModel:
        """Validate and run; every failure leaves as a ToolError with a message fit for a user: ToolInputError
        from validation and the tool's own checks, ToolRuntimeError from the tool, and for anything else (a bug)
        a ToolInternalError with an id under which the traceback is logged."""
        inp = self.validate(arguments)
        ctx = ctx or ToolContext()
        ctx.tool_name = self.name
        self.check_direct_cost(inp, ctx)
        apply_torch_threads(ctx.settings)
        try:
            return self.fn(inp, ctx)
        except ToolError:
            raise
        except Exception as exc:  # input errors were raised as ToolInputError by validation or explicit checks
            raise internal_error(self.name, exc, ctx.settings) from exc

    def check_direct_cost(self, inp: BaseModel, ctx: ToolContext) -> None:
        """ToolInputError with the estimate when this call would run past the caller's direct-call limit: such
        work runs as a job (job_start), where the client's timeout cannot cut it off half done."""
        if ctx.direct_limit_s is None or self.estimate is None:
            return
        seconds = float(self.estimate(inp))
        if seconds > ctx.direct_limit_s:
            raise ToolInputError(
                f"{self.name} with these arguments would take about {seconds / 60:.1f} min here, longer than a direct "
                f"call may run ({ctx.direct_limit_s:.0f} s); start it as a job instead: job_start with tool "
                f"'{self.name}' and the same arguments, then job_wait / job_result")

    def estimated_seconds(self, arguments: dict[str, Any] | BaseModel) -> float | None:
        """The tool's own cost estimate for these arguments, if it has one."""
        return None if self.estimate is None else float(self.estimate(self.validate(arguments)))


log = logging.getLogger("matsearch.tools")
log.addHandler(logging.NullHandler())  # a library logger: the server's logging shows it; a CLI user sees no trace
ERROR_LOG = "logs/tool-errors.log"  # under the workspace: the tracebacks of internal errors, by id
MAX_CAUSE_CHARS = 200


def internal_error(tool_name: str, exc: BaseException, settings: Settings | None = None) -> ToolInternalError:
    """The caller's view of an unexpected failure: a short id to report and the exception in one line. The
    traceback goes to the `matsearch.tools` logger (the server log) and to workspace/logs/tool-errors.log."""
    error_id = secrets.token_hex(4)
    trace = "".join(traceback.format_exception(exc))
    log.error("internal error %s in tool %s", error_id, tool_name, exc_info=exc)
    where = "the server log"
    if settings is not None:
        try:
            path = settings.resolved_workspace() / ERROR_LOG
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                fh.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {error_id} {tool_name}\n{trace}\n")
            where += f" and {ERROR_LOG} in the workspace"
        except OSError as write_error:
            log.warning("could not write the error log in the workspace: %s", write_error)
    cause = " ".join(f"{type(exc).__name__}: {exc}".split())
    if len(cause) > MAX_CAUSE_CHARS:
        cause = cause[: MAX_CAUSE_CHARS - 3] + "..."
    return ToolInternalError(
        f"{tool_name} failed unexpectedly ({cause}); this is a fault in matsearch, not in the arguments: report "
        f"error id {error_id} (the traceback is in {where})", error_id)


def _fields_at(model: type[BaseModel] | None, path: tuple[Any, ...]) -> list[str]:
    """The field names of the model found at `path` (names and list indices) inside `model`, if any."""
    models = [model] if model is not None else []
    for step in path:
        if isinstance(step, int):
            continue
        nxt = [m.model_fields[step].annotation for m in models if step in m.model_fields]
        models = [n for annotation in nxt for n in _nested_models(annotation)]
    return sorted({name for m in models for name in m.model_fields})


def _one_problem(err: Any, model: type[BaseModel] | None) -> str:
    """One pydantic error as a sentence a user can act on: the argument, what is wrong, what was given."""
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc)
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        given = str(loc[-1])
        close = difflib.get_close_matches(given, valid, n=1, cutoff=0.5) or [v for v in valid if v.startswith(given)]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = f"; the valid ones are {', '.join(valid)}" if valid else ""
        return f"{where!r} is not a known argument{hint}{known}"
    if err["type"] == "missing":
        return f"{where!r} is required"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
            return msg if not loc else f"{where}: {msg}"
    if err["type"] == "string_pattern_mismatch" and err["ctx"]["pattern"] in PATTERN_MEANINGS:
        return f"{where} must be {PATTERN_MEANINGS[err['ctx']['pattern']]} (got {err.get('input')!r})"
    given = repr(err.get("input"))
    given = given if len(given) <= 60 else given[:57] + "..."
    if msg.startswith("Input should be "):
        return f"{where or 'the input'} should be {msg[len('Input should be '):]} (got {given})"
    return f"{where or 'the input'}: {msg[0].lower() + msg[1:]} (got {given})"


def format_validation_error(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One sentence per bad field, without pydantic's type codes or web links; with `model`, an unknown argument
    is answered with the nearest valid name and the list of valid ones."""
    return "; ".join(_one_problem(err, model) for err in exc.errors())


REGISTRY: dict[str, ToolSpec] = {}


def tool(
    *,
    reaches: Collection[str],
    cost: CostClass = "instant",
    read_only: bool = False,
    idempotent: bool = False,
    destructive: bool = False,
    estimate: Callable[[Any], float] | None = None,
    name: str | None = None,
) -> Callable[[Callable[..., BaseModel]], Callable[..., BaseModel]]:
    """Register `fn(inp: InputModel, ctx: ToolContext) -> OutputModel` as a tool (its docstring is the description).
    `reaches` is required: what the tool touches beyond its process and workspace (LLM, DASK, STORE, ANY_TOOL; ()
    for nothing), so no tool is advertised as closed-world by forgetting to say."""

    def register(fn: Callable[..., BaseModel]) -> Callable[..., BaseModel]:
        hints = get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        input_model = hints[params[0]]
        output_model = hints["return"]
        if not (issubclass(input_model, BaseModel) and issubclass(output_model, BaseModel)):
            raise TypeError(f"tool {fn.__name__}: input and output must be pydantic models")
        check_strict_inputs(input_model)
        spec = ToolSpec(
            name=name or fn.__name__,
            fn=fn,
            input_model=input_model,
            output_model=output_model,
            description=inspect.cleandoc(fn.__doc__ or "").strip(),
            cost=cost,
            read_only=read_only,
            idempotent=idempotent,
            destructive=destructive,
            reaches=frozenset(reaches),
            estimate=estimate,
        )
        if not spec.description:
            raise TypeError(f"tool {spec.name} needs a docstring: it is the description an LLM reads")
        REGISTRY[spec.name] = spec
        return fn

    return register


@cache
def tool_modules() -> tuple[str, ...]:
    """Every module under tools/ that defines a tool (an `@tool` decorator in its source), found by walking the
    packages: a new capability registers by existing, not by being added to a list."""
    import tools

    found = []
    for info in pkgutil.walk_packages(tools.__path__, "tools."):
        if info.ispkg or info.name.startswith(_NOT_TOOL_PACKAGES):
            continue
        spec = importlib.util.find_spec(info.name)
        if spec and spec.origin and re.search(r"^@tool\b", Path(spec.origin).read_text(), re.MULTILINE):
            found.append(info.name)
    return tuple(sorted(found))


def load_tools() -> dict[str, ToolSpec]:
    """Import every tool module so the registry is complete, and return it."""
    for module in tool_modules():
        importlib.import_module(module)
    return REGISTRY


def get_tool(name: str) -> ToolSpec:
    """A registered tool by name; ToolInputError naming the valid ones otherwise."""
    tools = load_tools()
    if name not in tools:
        raise ToolInputError(f"unknown tool {name!r}; available: {', '.join(sorted(tools))}")
    return tools[name]
