"""The `matsearch` command line: serve the MCP server, list and call tools, use memory, run the demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
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


@app.command("tools")
def list_tools(as_json: bool = typer.Option(False, "--json", help="Print names, costs and schemas as JSON.")) -> None:
    """List every tool with its cost class and first line of description."""
    if as_json:
        out = {n: {"cost": s.cost, "input_schema": s.input_model.model_json_schema()} for n, s in _specs.items()}
        json.dump(out, sys.stdout, indent=2)
        return
    table = Table("tool", "cost", "what it does")
    for name, spec in _specs.items():
        table.add_row(name, spec.cost, first_sentence(spec.description))
    console.print(table)


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


def show_search(out: object) -> None:
    """Print a search result as rich tables."""
    console.print(
        f"[bold]{out.request}[/bold]  reader={out.reader}  proposer={out.proposer}  potential={out.potential}  "
        f"{out.evaluations} relaxed, {out.reused} reused, {out.seconds} s"
    )
    if out.declined:
        console.print(f"[red]declined:[/red] {out.declined}")
        return
    if out.note:
        console.print(f"[yellow]note:[/yellow] {out.note}")
    tree = Table("formula", "family", "source", "evaluated", "best score", "why", title="Formulas (language level)")
    for node in out.tree:
        tree.add_row(
            node.formula,
            node.family or "",
            node.source,
            str(node.evaluations),
            "" if node.best_score is None else f"{node.best_score:.3f}",
            node.reason[:70],
        )
    console.print(tree)
    table = Table(
        "rank",
        "id",
        "formula",
        "generator",
        "space group",
        "E_hull eV/at",
        "E_form eV/at",
        "family",
        title="Ranked candidates (relaxed)",
    )
    for c in out.ranked:
        table.add_row(
            str(c.rank),
            c.id,
            c.formula,
            c.generator,
            c.spacegroup,
            str(c.e_above_hull_eV),
            str(c.formation_energy_per_atom_eV),
            "yes" if c.family_match else "no",
        )
    console.print(table)
    console.print(f"report: {out.report_uri}\nplot:   {out.plot_uri}")


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
    from agent.tasks import run_task
    from tools.adapters.cli import err_console, exit_with
    from tools.core.errors import ToolError

    try:
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
    console.print(f"report: {out['report_dir']}/report.md")
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
