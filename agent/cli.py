"""The `matsearch` command line: serve the MCP server, list and call tools, use memory, run the demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tools.adapters.cli import add_tool_commands, first_sentence
from tools.core.registry import load_tools

app = typer.Typer(help="matsearch: agent-based materials discovery tools.", no_args_is_help=True)
call_app = typer.Typer(help="Call any registry tool directly (one subcommand per tool).", no_args_is_help=True)
memory_app = typer.Typer(help="Structure memory: store, get and search.", no_args_is_help=True)
app.add_typer(call_app, name="call")
app.add_typer(memory_app, name="memory")
potential_app = typer.Typer(help="Our own equivariant potentials: train.", no_args_is_help=True)
app.add_typer(potential_app, name="potential")
diffusion_app = typer.Typer(help="The crystal diffusion generator: train.", no_args_is_help=True)
app.add_typer(diffusion_app, name="diffusion")


@diffusion_app.command(
    "train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False
)
def diffusion_train(ctx: typer.Context) -> None:
    """Train or resume the diffusion model (options as `python -m models.diffusion.train --help`)."""
    from models.diffusion.train import main as train_main

    train_main(list(ctx.args))

@app.callback()
def _global_options(
    dask: str = typer.Option(
        None, "--dask", metavar="ADDRESS", help="Dask scheduler for batch relaxations (MATSEARCH_DASK_ADDRESS)."
    ),
) -> None:
    """Options every subcommand shares."""
    if dask:
        import os

        from tools.core.settings import get_settings

        os.environ["MATSEARCH_DASK_ADDRESS"] = dask
        get_settings.cache_clear()


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


@app.command()
def web(
    host: str = typer.Option("127.0.0.1", help="HTTP bind address (beyond loopback needs --token)."),
    port: int = typer.Option(8765, help="HTTP port."),
    token: str = typer.Option(None, envvar="MATSEARCH_HTTP_TOKEN", help="Bearer token the page and /mcp require."),
) -> None:
    """Serve the web page (structures in 3D, memory search, jobs) and MCP over HTTP; prints the page's address."""
    import server

    server.main(["--web", "--host", host, "--port", str(port)] + (["--token", token] if token else []))


@app.command("tools")
def list_tools(as_json: bool = typer.Option(False, "--json", help="Print names, costs and schemas as JSON.")) -> None:
    """List every tool with its cost class and first line of description."""
    if as_json:
        out = {n: {"cost": s.cost, "input_schema": s.input_model.model_json_schema()} for n, s in _specs.items()}
        json.dump(out, sys.stdout, indent=2)
        return
    table = compact_table(title=None)
    table.add_column("tool", no_wrap=True)
    table.add_column("cost", no_wrap=True)
    table.add_column("what it does", ratio=1, min_width=20)
    for name, spec in _specs.items():
        table.add_row(name, spec.cost, escape(first_sentence(spec.description)))
    console.print(table)


def compact_table(title: str | None) -> Table:
    """A table that fits an 80-column terminal: a rule under the header, no outer edge, one space between
    columns' padding (columns are added by the caller: no_wrap for ids, formulas and numbers, wrapping text)."""
    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")


DEMO_REQUEST = "a double perovskite oxide containing La and Mn"


@app.command()
def search(
    request: str = typer.Argument(..., help="What material you want, in plain language."),
    budget: int = typer.Option(10, help="Structure evaluations (relaxations) to spend."),
    n_formulas: int = typer.Option(4, help="Formulas proposed by the language level."),
    seed: int = typer.Option(0, help="Random seed (same seed, same result)."),
    potential: str = typer.Option(None, help="Scoring potential (default: configured)."),
    no_llm: bool = typer.Option(False, "--no-llm", help="Use the offline proposer even if an LLM is configured."),
) -> None:
    """The hierarchical search: formulas -> structures -> relaxed, scored candidates, with a report."""
    from tools.adapters.cli import exit_with, run_with_progress
    from tools.core.errors import ToolError
    from tools.core.registry import get_tool

    args = {"request": request, "budget": budget, "n_formulas": n_formulas, "seed": seed, "use_llm": not no_llm}
    if potential:
        args["potential"] = potential
    try:
        out = run_with_progress(get_tool("hierarchical_search"), args)
    except ToolError as exc:
        exit_with(exc)
    show_search(out)


def show_search(out: object, con: Console | None = None) -> None:
    """Print a search result for a reader in a terminal as narrow as 80 columns: the formulas the language level
    proposed (with why), the ranked candidates (ids shortened, formulas in one spelling, energies to 3 decimals),
    how the score is made, what each E_hull is measured against, and where the report and plot are."""
    from agent.tasks import (
        SCORE_EXPLANATION,
        canonical_formula,
        canonical_formulas_in,
        chemical_system,
        fmt_energy,
        fmt_number,
        hull_lines,
    )

    con = con or console
    con.print(f"[bold]{escape(out.request)}[/bold]", highlight=False)
    con.print(
        f"read by: {out.reader}; formulas from: {out.proposer}; potential: {out.potential}; {out.evaluations} "
        f"relaxed, {out.reused} reused from memory; {fmt_number(out.seconds)} s",
        highlight=False,
    )
    if out.declined:
        con.print(f"[red]declined:[/red] {escape(out.declined)}", highlight=False)
        return
    for note in out.notes or ([out.note] if out.note else []):
        con.print(f"[yellow]note:[/yellow] {escape(canonical_formulas_in(note))}", highlight=False)
    sources = {node.source for node in out.tree}
    tree = compact_table("Formulas proposed" + (f" ({next(iter(sources))})" if len(sources) == 1 else ""))
    tree.add_column("formula", no_wrap=True)
    tree.add_column("family", min_width=6)
    if len(sources) > 1:
        tree.add_column("source", no_wrap=True)
    tree.add_column("evals", justify="right", no_wrap=True)
    tree.add_column("best\nscore", justify="right", no_wrap=True)
    tree.add_column("why", ratio=1, min_width=16)
    for node in out.tree:
        row = [canonical_formula(node.formula), node.family or ""]
        row += [node.source] if len(sources) > 1 else []
        row += [str(node.evaluations), fmt_number(node.best_score, 3), escape(canonical_formulas_in(node.reason))]
        tree.add_row(*row)
    con.print(tree, highlight=False)
    wide = con.width >= 100
    table = compact_table("Ranked candidates (relaxed)")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("id", no_wrap=True)
    table.add_column("formula", no_wrap=True)
    table.add_column("space\ngroup", no_wrap=True)
    table.add_column("E_hull\neV/at", justify="right", no_wrap=True)
    table.add_column("E_form\neV/at", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("family\nmatch", no_wrap=True)
    if wide:
        table.add_column("generator", no_wrap=True)
        table.add_column("converged", no_wrap=True)
    for c in out.ranked:
        row = [
            str(c.rank),
            c.id[:10],
            canonical_formula(c.formula),
            c.spacegroup,
            fmt_energy(c.e_above_hull_eV) + ("?" if c.e_hull_suspect else ""),
            fmt_energy(c.formation_energy_per_atom_eV),
            fmt_number(c.score, 3),
            "yes" if c.family_match else "no",
        ]
        row += [c.generator, "yes" if c.converged else "NO"] if wide else []
        table.add_row(*row)
    con.print(table, highlight=False)
    if out.ranked:
        systems = sorted({chemical_system(c.formula) for c in out.ranked})
        con.print(SCORE_EXPLANATION, highlight=False)
        head, rows = hull_lines(out, systems)
        con.print(head, highlight=False)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1)
        for system, names in rows:
            grid.add_row(f"  {system}:", names)
        con.print(grid, highlight=False)
        if any(c.e_hull_suspect for c in out.ranked):
            con.print("?: E_hull below -0.05 eV/atom against the final hull: do not trust it.", highlight=False)
        if not all(c.converged for c in out.ranked):
            con.print("not converged: " + ", ".join(c.id for c in out.ranked if not c.converged), highlight=False)
    if out.best:
        con.print(f"best: {out.best.id} ({canonical_formula(out.best.formula)}, {out.best.spacegroup})",
                  highlight=False)
    for label, uri in (("report", out.report_uri), ("plot", out.plot_uri)):
        if uri:
            con.print(f"{label}: {_local_path(uri)}", soft_wrap=True, highlight=False)


def _local_path(uri: str) -> str:
    """An artifact:// URI as the file's path in the workspace (what a terminal user opens)."""
    from tools.core.paths import ARTIFACT_SCHEME
    from tools.core.settings import get_settings

    if not uri.startswith(ARTIFACT_SCHEME):
        return uri
    return str(get_settings().resolved_workspace() / uri.removeprefix(ARTIFACT_SCHEME))


@app.command()
def demo(
    budget: int = typer.Option(6, help="Structure evaluations for the demo search."),
) -> None:
    """The main job on the embedded defaults: a hierarchical search for a La-Mn double perovskite oxide."""
    search(DEMO_REQUEST, budget=budget, n_formulas=3, seed=0, potential=None, no_llm=True)


@app.command("memory-demo")
def memory_demo() -> None:
    """Store, analyse and search the reference crystals that pymatgen ships (the memory path on its own)."""
    from agent.demo import run_demo

    run_demo(console)


@app.command()
def chat(thread: str = typer.Option("default", help="Conversation thread id (kept on disk).")) -> None:
    """Chat with the agent (an LLM when OPENAI_BASE_URL is set; otherwise the offline planner)."""
    from agent.chat import repl

    try:
        repl(console, thread)
    except ValueError as exc:  # configuration problems (bad MCP mount config, no endpoint) read as one line
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def run(task_file: str = typer.Argument(..., help="A task YAML file (see examples/).")) -> None:
    """Run a scripted multi-step research task and write its report."""
    from agent.chat import library_output_to, own_terminal
    from agent.tasks import run_task
    from tools.adapters.cli import err_console, exit_with
    from tools.core.errors import ToolError
    from tools.core.settings import get_settings

    own_terminal(err_console)  # steps and errors reach the terminal; library banners and warnings go to the log
    log_path = get_settings().resolved_workspace() / "agent" / "run.log"
    try:
        with library_output_to(log_path, f"matsearch run {task_file}"):
            out = run_task(
                Path(task_file), on_step=lambda name, tool: err_console.print(f"[cyan]step[/cyan] {name}: {tool}")
            )
    except ToolError as exc:
        exit_with(exc)
    for entry in out["steps"]:
        status = f"[red]{entry['error']}[/red]" if "error" in entry else f"ok in {entry['seconds']} s"
        console.print(f"{entry['step']} ({entry['tool']}): {status}")
    if out["answer"]:
        console.print(out["answer"])
    console.print(f"report: {out['report_dir']}/report.md", soft_wrap=True, highlight=False)
    console.print(f"library output (banners, warnings): {log_path}", soft_wrap=True, highlight=False)
    if any("error" in entry for entry in out["steps"]):
        raise typer.Exit(1)


@potential_app.command("train")
def potential_train(
    data: Path = typer.Argument(..., help="Labelled extxyz (energy, forces, optional stress).", exists=True),
    kind: str = typer.Option("allegro", help="allegro (strictly local) or nequip (message passing)."),
    epochs: int = typer.Option(50, help="Total epochs (including completed ones when resuming)."),
    out: Path = typer.Option(Path("potential.pt"), help="Checkpoint file (written every epoch)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the training state stored in --out."),
    cutoff: float = typer.Option(5.0, help="Radial cutoff, Angstrom."),
    l_max: int = typer.Option(1, help="Highest rotation order."),
    layers: int = typer.Option(2, help="Tensor-product / interaction layers."),
    features: int = typer.Option(16, help="Channels per irrep."),
    latent: int = typer.Option(32, help="Allegro edge-latent width (also the radial MLP width)."),
    batch_size: int = typer.Option(4, help="Structures per optimiser step."),
    lr: float = typer.Option(5e-3, help="Initial learning rate."),
    energy_weight: float = typer.Option(1.0, help="Weight of the energy-per-atom MSE."),
    forces_weight: float = typer.Option(1.0, help="Weight of the force MSE."),
    stress_weight: float = typer.Option(10.0, help="Weight of the stress MSE."),
    val_fraction: float = typer.Option(0.1, help="Share of structures (by structure_id) held for validation."),
    scheduler: str = typer.Option("plateau", help="LR schedule: plateau (on val loss) or cosine (over --epochs)."),
    patience: int = typer.Option(20, help="Early-stopping patience in epochs."),
    max_minutes: float = typer.Option(None, help="Stop after this wall-clock budget (resume later)."),
    threads: int = typer.Option(0, help="torch threads (0: torch's default)."),
    seed: int = typer.Option(0, help="Random seed."),
    init_from: Path = typer.Option(None, help="Fine-tune from this checkpoint (its architecture and weights)."),
    device: str = typer.Option("cpu", help="torch device to train on: cpu, cuda or cuda:N."),
) -> None:
    """Train (or resume) an equivariant potential on a labelled extxyz file, with a progress bar."""
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tools.adapters.cli import exit_with
    from tools.core.errors import ToolError
    from tools.potentials.training import read_labelled, train_on_frames

    if threads > 0:
        torch.set_num_threads(threads)
    try:
        frames = read_labelled(data)
        with Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("train", total=epochs, note=f"{len(frames)} structures")
            summary = train_on_frames(
                frames,
                out,
                kind=kind,
                epochs=epochs,
                resume=resume,
                hyper={
                    "cutoff": cutoff,
                    "l_max": l_max,
                    "num_layers": layers,
                    "num_features": features,
                    "latent_dim": latent,
                    "radial_mlp_width": latent,
                },
                train_options={
                    "batch_size": batch_size,
                    "lr": lr,
                    "w_energy": energy_weight,
                    "w_forces": forces_weight,
                    "w_stress": stress_weight,
                    "scheduler": scheduler,
                    "early_stopping_patience": patience,
                    "seed": seed,
                    "init_from": None if init_from is None else str(init_from),
                    "device": device,
                },
                val_fraction=val_fraction,
                max_seconds=None if max_minutes is None else 60.0 * max_minutes,
                progress=lambda done, total, msg: bar.update(task, completed=done, total=total, note=msg),
            )
    except ToolError as exc:
        exit_with(exc)
    except ValueError as exc:  # a check of the training code that the options did not anticipate
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    shown = {k: v for k, v in summary.items() if k != "history"}
    console.print_json(json.dumps(shown, default=str))


if __name__ == "__main__":
    app()
