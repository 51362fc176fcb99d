"""Registry -> CLI: each ToolSpec becomes a typer subcommand with one --option per input field.

Options are strings parsed by the input model: JSON for lists and objects, and for a structure field a file
path (read as CIF/POSCAR/extxyz by suffix) or a memory id."""

from __future__ import annotations

import inspect
import json
import re
from typing import Any, NoReturn, get_args

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tools.core.errors import ToolError, ToolInputError
from tools.core.registry import ToolContext, ToolSpec
from tools.structures.io import StructureRef

err_console = Console(stderr=True)


def _is_structure_field(annotation: Any) -> bool:
    return annotation is StructureRef or StructureRef in get_args(annotation)


def _convert(annotation: Any, raw: str) -> Any:
    """A CLI string to a value the input model can validate."""
    if _is_structure_field(annotation):
        return StructureRef.from_path_or_id(raw).model_dump()
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, list | dict | bool | int | float) else raw


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
        required = field.is_required()
        help_text = (field.description or "") + (
            " [file path or memory id]" if _is_structure_field(field.annotation) else ""
        )
        option = typer.Option(... if required else None, f"--{name.replace('_', '-')}", help=help_text)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str | None, default=option))
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
