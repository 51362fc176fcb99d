"""The `matsearch` command line: serve the MCP server, list and call tools, use memory, run the demo."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.table import Table

from tools.cli_adapter import add_tool_commands
from tools.registry import load_tools

app = typer.Typer(help="matsearch: agent-based materials discovery tools.", no_args_is_help=True)
call_app = typer.Typer(help="Call any registry tool directly (one subcommand per tool).", no_args_is_help=True)
memory_app = typer.Typer(help="Structure memory: store, get and search.", no_args_is_help=True)
app.add_typer(call_app, name="call")
app.add_typer(memory_app, name="memory")

_specs = load_tools()
add_tool_commands(call_app, _specs)
add_tool_commands(memory_app, {k: _specs[k] for k in ("store_structure", "get_structure", "search_structures")})
console = Console()


@app.command()
def serve(
    http: bool = typer.Option(False, "--http", help="Serve streamable HTTP instead of stdio."),
    host: str = typer.Option("127.0.0.1", help="HTTP bind address."),
    port: int = typer.Option(8765, help="HTTP port."),
) -> None:
    """Run the MCP server (stdio by default)."""
    import server

    server.main(["--http", "--host", host, "--port", str(port)] if http else [])


@app.command("tools")
def list_tools(as_json: bool = typer.Option(False, "--json", help="Print names, costs and schemas as JSON.")) -> None:
    """List every tool with its cost class and first line of description."""
    if as_json:
        out = {n: {"cost": s.cost, "input_schema": s.input_model.model_json_schema()} for n, s in _specs.items()}
        json.dump(out, sys.stdout, indent=2)
        return
    table = Table("tool", "cost", "what it does")
    for name, spec in _specs.items():
        table.add_row(name, spec.cost, spec.description.split("\n")[0])
    console.print(table)


@app.command()
def demo() -> None:
    """Run the demo on the embedded defaults (store, analyse and search reference structures)."""
    from agent.demo import run_demo

    run_demo(console)


if __name__ == "__main__":
    app()
