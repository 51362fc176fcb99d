"""Registry -> CLI: each ToolSpec becomes a typer subcommand with one --option per input field.

Each option shows its type in --help: INTEGER and FLOAT options are parsed by click; BOOLEAN, a choice [a|b],
JSON (lists and objects; a list also takes comma-separated values) and PATH|ID (a structure: a file path read as
CIF/POSCAR/extxyz by suffix, or a memory id) are parsed here. Every value then goes through the tool's input model,
which validates ranges, choices and the rest."""

from __future__ import annotations

import inspect
import json
import re
import types
from typing import Any, Literal, NoReturn, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tools.core.errors import ToolError, ToolInputError
from tools.core.registry import ToolContext, ToolSpec
from tools.structures.io import StructureRef

err_console = Console(stderr=True)


def _without_none(annotation: Any) -> Any:
    """`X | None` -> X (other unions unchanged)."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def option_kind(annotation: Any) -> tuple[str, Any, str | None]:
    """How a field becomes an option: (kind, annotation typer parses with, metavar). Kinds: 'int', 'float' (click
    parses them, --help shows INTEGER / FLOAT), 'bool', 'choice', 'structure', 'structures', 'list', 'json' and
    'str' (a string the input model parses; the metavar says which)."""
    base = _without_none(annotation)
    if base is StructureRef:
        return "structure", str | None, "PATH|ID"
    if get_origin(base) is list and get_args(base) and _without_none(get_args(base)[0]) is StructureRef:
        return "structures", str | None, "PATHS|IDS"
    if base is bool:
        return "bool", str | None, "BOOLEAN"
    if base is int:
        return "int", int | None, "INTEGER"
    if base is float:
        return "float", float | None, "FLOAT"
    if get_origin(base) is Literal:
        return "choice", str | None, "[" + "|".join(str(v) for v in get_args(base)) + "]"
    if get_origin(base) is list:
        return "list", str | None, "JSON"
    if base is str:
        return "str", str | None, "TEXT"
    return "json", str | None, "JSON"


def _json_or_raw(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _convert(annotation: Any, raw: Any) -> Any:
    """A CLI value to one the input model can validate (numbers arrive parsed by click)."""
    if not isinstance(raw, str):
        return raw
    kind = option_kind(annotation)[0]
    if kind == "structure":
        return StructureRef.from_path_or_id(raw).model_dump()
    if kind == "structures":
        items = _json_or_raw(raw) if raw.lstrip().startswith("[") else [p.strip() for p in raw.split(",") if p.strip()]
        if not isinstance(items, list):
            return items
        return [StructureRef.from_path_or_id(i).model_dump() if isinstance(i, str) else i for i in items]
    if kind == "list":
        value = _json_or_raw(raw)
        if isinstance(value, str):  # not JSON: comma-separated values
            return [p.strip() for p in raw.split(",") if p.strip()]
        return value
    if kind == "json":
        return _json_or_raw(raw)
    if kind == "choice":
        literal = get_args(_without_none(annotation))
        return next((v for v in literal if str(v) == raw), raw)
    return raw  # str and bool: the input model parses 'true'/'false'/'1'/'0' itself


def _help(field: Any, kind: str) -> str:
    """The field's description (rich markup escaped: '[x]' stays text), what a structure or list option takes, and
    its default."""
    text = escape(field.description or "")
    if kind == "structure":
        text += " (a file path or a memory id)"
    elif kind == "structures":
        text += " (file paths or memory ids: comma-separated, or a JSON list)"
    elif kind == "list":
        text += " (a JSON list, or comma-separated values)"
    default = field.default
    if not field.is_required() and default is not None and isinstance(default, bool | int | float | str):
        shown = str(default).lower() if isinstance(default, bool) else repr(default) if default == "" else default
        text += f" (default: {shown})"
    return text.strip()


def run_with_progress(spec: ToolSpec, arguments: dict[str, Any]) -> BaseModel:
    """Run a tool with a rich progress bar on stderr."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(spec.name, total=None, note="")

        def progress(done: float, total: float | None, message: str | None) -> None:
            bar.update(task, completed=done, total=total, note=message or "")

        return spec.run(arguments, ToolContext(progress_fn=progress))


def exit_with(exc: ToolError) -> NoReturn:
    """Print a tool error as one line on stderr, labelled with its kind, and exit: 2 for an input error (fix the
    options), 1 for a runtime or internal error (the options were fine)."""
    err_console.print(f"[red]{exc.kind}:[/red] {exc}", highlight=False)
    raise typer.Exit(2 if isinstance(exc, ToolInputError) else 1) from None


def cli_command(spec: ToolSpec) -> Any:
    """A typer command function for one tool; prints the output as JSON on stdout."""
    fields = spec.input_model.model_fields

    def command(**kwargs: Any) -> None:
        arguments = {k: _convert(fields[k].annotation, v) for k, v in kwargs.items() if v is not None}
        try:
            output = run_with_progress(spec, arguments)
        except ToolError as exc:
            exit_with(exc)
        typer.echo(output.model_dump_json(indent=2))

    params = []
    for name, field in fields.items():
        kind, annotation, metavar = option_kind(field.annotation)
        option = typer.Option(
            ... if field.is_required() else None,
            f"--{name.replace('_', '-')}",
            help=_help(field, kind),
            metavar=metavar,
            show_default=False,
        )
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=option))
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = spec.description
    return command


def first_sentence(text: str) -> str:
    """The first sentence of a (docstring-wrapped) description, whole and on one line: short help never stops
    mid-sentence at a line break. A full stop before a lower-case word ('e.g. a') or inside brackets ('(Aykol et
    al., Nat. Commun.)') does not end it."""
    flat = " ".join(text.split())
    for end in re.finditer(r"[.!?](?=\s+[A-Z`])", flat):
        head = flat[: end.end()]
        if head.count("(") == head.count(")"):
            return head
    return flat


def add_tool_commands(app: typer.Typer, specs: dict[str, ToolSpec]) -> None:
    """Register one subcommand per tool (name with dashes) on a typer app."""
    for spec in specs.values():
        app.command(spec.name.replace("_", "-"), help=spec.description, short_help=first_sentence(spec.description))(
            cli_command(spec))
