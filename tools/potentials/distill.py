"""Distil a fast potential for the study at hand: a small Allegro- or NequIP-style student trained on one chemical
system, from frames a teacher (CHGNet, SevenNet-0, a registered DFT code) labels where the student's own uncertainty
says it is needed.

The loop is the active learner's (tools/potentials/active_learning.py): seed frames (rattled, strained copies of the
seeds) -> train -> explore with the student's own MD across the temperature range -> score frames with its GMM
uncertainty -> label the most uncertain, diverse ones -> fine-tune; it stops at the target force error, the label
budget, the round limit or the time budget. What distillation adds: a held-out test set of teacher MD frames from
runs never used in training (errors per round and per temperature), the potential saved under a name that every
tool accepts, a card that says what it was trained on and how good it is, and its speed against the teacher."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from pydantic import BaseModel, Field
from pymatgen.core import Composition

from tools.core.errors import ToolInputError
from tools.core.executor import get_executor
from tools.core.paths import NAME_PATTERN
from tools.core.plotting import figure, save
from tools.core.registry import DASK, STORE, ToolContext, ToolInput, tool
from tools.potentials.active_learning import (
    ActiveLearner,
    ALConfig,
    Size,
    checkpoint_errors,
    label,
    load_frames,
    reference_calculator,
    save_frames,
)
from tools.potentials.calculators import check_supported
from tools.structures.io import StructureRef, resolve_structure, structure_to_atoms

TEST_SEED_OFFSET = 50_000  # test MD runs use seeds no training or validation run uses
MAX_SEED_ATOMS = 500


class DistillInput(ToolInput):
    name: str = Field(pattern=NAME_PATTERN, description="Name of the distilled potential: saved as "
                      "<workspace>/potentials/<name>.pt, then accepted as `potential` by every tool. Resume key.")
    structures: list[StructureRef] = Field(min_length=1, max_length=10, description="Seed structures of the system "
                                           "(the phases the study needs: polymorphs, a supercell of the liquid ...).")
    teacher: str = Field(default="chgnet", max_length=500, description="Labeller: chgnet, sevennet-0, emt, a "
                         "registered DFT calculator, or any potential name or workspace checkpoint.")
    temperatures_K: list[float] = Field(default=[300.0, 1000.0], min_length=1, max_length=8, description=(
        "MD temperatures to cover (1-5000 K); include one above melting for the liquid."))
    strains: list[float] = Field(default=[-0.03, 0.0, 0.03], min_length=1, max_length=7, description=(
        "Linear strains of the seeds (-0.2..0.2) that training and exploration start from (pressure range)."))
    target_force_mae_meV_A: float = Field(default=40.0, gt=0, description="Stop once validation reaches it.")
    label_budget: int = Field(default=300, ge=4, le=100_000, description="Teacher labels allowed in all.")
    per_round: int = Field(default=4, ge=1, le=200, description="Frames labelled per round.")
    rounds: int = Field(default=20, ge=1, le=200, description="Most rounds of explore-label-retrain.")
    max_minutes: float = Field(default=45.0, gt=0, le=24 * 60, description="Wall-time budget (all sessions).")
    student: Literal["allegro", "nequip"] = Field(
        default="allegro", description="allegro (strictly local, fastest) or nequip (message passing, accurate).")
    size: Size = Field(default="small", description="Student size preset: tiny, small, or medium (a wider latent: "
                       "about 1.2x small's MD cost and 2x its epoch time).")
    cutoff_A: float = Field(default=4.5, ge=2.0, le=8.0, description="Student cutoff radius in Angstrom.")
    md_steps: int = Field(default=300, ge=10, le=20_000, description="Exploration MD steps per temperature per round.")
    timestep_fs: float = Field(default=2.0, gt=0, le=10, description="MD time step in fs.")
    n_initial: int = Field(default=12, ge=2, le=1000, description="Seed frames labelled before the first training.")
    n_validation: int = Field(default=12, ge=1, le=1000, description="Teacher MD frames for early stopping.")
    n_test_per_temperature: int = Field(default=6, ge=1, le=200,
                                        description="Held-out teacher MD frames per temperature (never trained on).")
    epochs_initial: int = Field(default=60, ge=1, le=5000, description="Epochs of the first student.")
    epochs_finetune: int = Field(default=25, ge=1, le=5000, description="Epochs of each warm-started refit.")
    speed_atoms: int = Field(default=1000, ge=0, le=20_000,
                             description="Cell size for the student-vs-teacher speed test (0: skip it).")
    selection: Literal["uncertainty", "random"] = Field(
        default="uncertainty", description="How frames are picked for labels: uncertainty (the method) or random "
        "(the baseline it is measured against).")
    seed: int = Field(default=0, ge=0, description="Random seed (same seed, same run).")
    resume: bool = Field(default=True, description="Continue a run of this name instead of refusing.")


class DistillRound(BaseModel):
    round: int
    n_labels: int = Field(description="Teacher-labelled training frames after this round.")
    test_force_mae_meV_A: float
    test_energy_mae_meV_atom: float
    val_force_mae_meV_A: float


class TemperatureError(BaseModel):
    temperature_K: float
    n_frames: int
    force_mae_meV_A: float
    energy_mae_meV_atom: float


class PhaseError(TemperatureError):
    seed: str = Field(description="The seed the held-out MD started from (its phase): input order, formula, "
                      "volume per atom.")


class SpeedTest(BaseModel):
    n_atoms: int
    student_atom_steps_per_s: float
    teacher_atom_steps_per_s: float
    speedup: float = Field(description="Student over teacher, same cell, same process.")


class DistillOutput(BaseModel):
    potential: str = Field(description="The name to pass as `potential` to any tool.")
    checkpoint: str
    stop_reason: str
    n_labels: int
    rounds: list[DistillRound]
    test_errors: list[TemperatureError] = Field(description="Final student on the held-out frames, per temperature.")
    phase_errors: list[PhaseError] = Field(description="The same per seed (phase) and temperature; empty for a "
                                           "held-out set made before seeds were recorded.")
    speed: SpeedTest | None
    minutes: float = Field(description="Wall time the run has used, over all sessions.")
    card_uri: str
    plot_uri: str


def _seeds(inp: DistillInput, ctx: ToolContext) -> list[Atoms]:
    """The seed cells at every requested strain (each strain scales the cell and the atoms with it)."""
    base = [structure_to_atoms(resolve_structure(r, ctx.store if r.id else None, ctx.settings.max_atoms))
            for r in inp.structures]
    if sum(len(a) for a in base) > MAX_SEED_ATOMS:
        raise ToolInputError(f"distillation starts from small cells (at most {MAX_SEED_ATOMS} atoms in all)")
    if any(not (-0.2 <= s <= 0.2) for s in inp.strains):
        raise ToolInputError("strains must lie between -0.2 and 0.2")
    if any(not (1 <= t <= 5000) for t in inp.temperatures_K):
        raise ToolInputError("temperatures_K values must be between 1 and 5000 K")
    seeds = []
    for atoms in base:
        for strain in sorted(set(inp.strains), key=abs):
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array * (1.0 + strain), scale_atoms=True)
            seeds.append(strained)
    return seeds


def _test_set(path: Path, seeds: list[Atoms], teacher: Calculator, inp: DistillInput, progress: Any) -> list[Atoms]:
    """Held-out frames: teacher MD at each temperature from each unstrained seed, with seeds no training run uses,
    sampled after a third of the run; labelled once and kept on disk (a resumed run tests on the same frames)."""
    from tools.md.protocols import DynamicsSettings, run_dynamics

    if path.is_file():
        return load_frames(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = []
    starts = seeds[:: max(1, len(set(inp.strains)))]  # the strain-0 (smallest |strain|) copy of each seed
    per = inp.n_test_per_temperature
    for t_index, temp in enumerate(inp.temperatures_K):
        for s_index, start in enumerate(starts):
            n = max(1, round(per / len(starts)))
            every = max(1, inp.md_steps // (2 * n))
            atoms = start.copy()
            settings = DynamicsSettings("nvt_langevin", temp, inp.timestep_fs, friction_per_fs=0.02,
                                        seed=inp.seed + TEST_SEED_OFFSET + 97 * t_index + s_index)
            run = run_dynamics(atoms, teacher, settings, inp.md_steps, every)
            for frame in run.frames[len(run.frames) // 3:][-n:]:
                labelled = label(frame, teacher)
                labelled.info["temperature_K"] = float(temp)
                labelled.info["seed"] = _seed_name(s_index, start)
                frames.append(labelled)
            progress(t_index + 1, len(inp.temperatures_K), f"held-out teacher MD at {temp:g} K")
    save_frames(path, frames)
    return frames


def _seed_name(index: int, atoms: Atoms) -> str:
    """How the held-out report names a seed (its phase): place in the input, formula, density."""
    return f"seed {index + 1}: {atoms.get_chemical_formula()}, {atoms.get_volume() / len(atoms):.2f} A^3/atom"


def _timed_test_set(run_dir: Path, seeds: list[Atoms], teacher: Calculator, inp: DistillInput,
                    progress: Any) -> tuple[list[Atoms], float]:
    """The held-out set (made once) and the minutes making it took, kept beside it so a resumed run counts them
    against the same time budget."""
    clock = run_dir / "test_set_minutes.json"
    made_before = (run_dir / "test.extxyz").is_file() and clock.is_file()
    started = time.perf_counter()
    frames = _test_set(run_dir / "test.extxyz", seeds, teacher, inp, progress)
    if made_before:
        return frames, float(json.loads(clock.read_text())["minutes"])
    minutes = (time.perf_counter() - started) / 60.0
    clock.write_text(json.dumps({"minutes": minutes}))
    return frames, minutes


def _per_temperature(checkpoint: Path, frames: list[Atoms]) -> list[TemperatureError]:
    out = []
    for temp in sorted({float(f.info["temperature_K"]) for f in frames}):
        group = [f for f in frames if float(f.info["temperature_K"]) == temp]
        force, energy = checkpoint_errors(checkpoint, group)
        out.append(TemperatureError(temperature_K=temp, n_frames=len(group), force_mae_meV_A=round(force, 2),
                                    energy_mae_meV_atom=round(energy, 3)))
    return out


def _per_phase(checkpoint: Path, frames: list[Atoms]) -> list[PhaseError]:
    groups: dict[tuple[str, float], list[Atoms]] = {}
    for f in frames:
        if "seed" in f.info:
            groups.setdefault((str(f.info["seed"]), float(f.info["temperature_K"])), []).append(f)
    out = []
    for (seed, temp), group in sorted(groups.items()):
        force, energy = checkpoint_errors(checkpoint, group)
        out.append(PhaseError(seed=seed, temperature_K=temp, n_frames=len(group), force_mae_meV_A=round(force, 2),
                              energy_mae_meV_atom=round(energy, 3)))
    return out


def _atom_steps_per_s(calc: Calculator, atoms: Atoms, calls: int) -> float:
    """Force calls per second times atoms, after one warm-up call, on rattled copies (no cached results)."""
    rng = np.random.default_rng(0)
    work = atoms.copy()
    work.calc = calc
    work.get_forces()
    started = time.perf_counter()
    for _ in range(calls):
        work.positions += rng.normal(scale=0.005, size=work.positions.shape)
        work.get_forces()
    return len(work) * calls / (time.perf_counter() - started)


def speed_test(checkpoint: Path, teacher: Calculator, seed: Atoms, n_atoms: int) -> SpeedTest:
    """Student and teacher force calls on the same supercell of at least n_atoms atoms, in this process."""
    from models.potentials.calculator import PotentialCalculator

    reps = max(1, int(np.ceil((n_atoms / len(seed)) ** (1 / 3))))
    cell = seed.repeat((reps, reps, reps))
    student = _atom_steps_per_s(PotentialCalculator.from_checkpoint(checkpoint), cell, 5)
    reference = _atom_steps_per_s(teacher, cell, 2)
    return SpeedTest(n_atoms=len(cell), student_atom_steps_per_s=round(student, 1),
                     teacher_atom_steps_per_s=round(reference, 1), speedup=round(student / reference, 2))


def _plot(rounds: list[DistillRound], path: Path, title: str) -> Path:
    fig, ax = figure(figsize=(6.5, 3.6))
    labels = [r.n_labels for r in rounds]
    ax.plot(labels, [r.test_force_mae_meV_A for r in rounds], "o-", label="held-out test force MAE")
    ax.plot(labels, [r.val_force_mae_meV_A for r in rounds], "s--", label="validation force MAE")
    ax.set_xlabel("teacher-labelled training frames")
    ax.set_ylabel("force MAE (meV/Å)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save(fig, path)


def _card(inp: DistillInput, out: dict[str, Any], seeds: list[Atoms], counts: dict[str, int]) -> str:
    """The potential's card: what it was trained on, how good it is where, how fast, how to make it again."""
    formulas = sorted({Composition(a.get_chemical_formula()).reduced_formula for a in seeds})
    lines = [
        f"# {inp.name}: {inp.student}-style potential distilled from {inp.teacher}",
        "",
        f"- System: {', '.join(formulas)} (seeds at strains {', '.join(f'{s:+g}' for s in inp.strains)}); "
        f"temperatures {', '.join(f'{t:g}' for t in inp.temperatures_K)} K.",
        f"- Data: {counts['train']} teacher-labelled training frames ({out['n_labels']} labels in all), "
        f"{counts['val']} validation and {counts['test']} held-out test frames (teacher MD with seeds training "
        "never used).",
        f"- Stopped: {out['stop_reason']} after {len(out['rounds']) - 1} rounds, {out['minutes']:.1f} min.",
        "",
        "| round | labels | test force MAE (meV/Å) | test energy MAE (meV/atom) |",
        "|---|---|---|---|",
        *[f"| {r['round']} | {r['n_labels']} | {r['test_force_mae_meV_A']:.1f} | {r['test_energy_mae_meV_atom']:.2f} |"
          for r in out["rounds"]],
        "",
        "Final errors on the held-out frames, per temperature:",
        "",
        "| T (K) | frames | force MAE (meV/Å) | energy MAE (meV/atom) |",
        "|---|---|---|---|",
        *[f"| {e['temperature_K']:g} | {e['n_frames']} | {e['force_mae_meV_A']:.1f} | {e['energy_mae_meV_atom']:.2f} |"
          for e in out["test_errors"]],
        "",
    ]
    if out["phase_errors"]:
        lines += ["Per seed (phase) and temperature:", "", "| seed | T (K) | frames | force MAE (meV/Å) | energy MAE "
                  "(meV/atom) |", "|---|---|---|---|---|",
                  *[f"| {e['seed']} | {e['temperature_K']:g} | {e['n_frames']} | {e['force_mae_meV_A']:.1f} | "
                    f"{e['energy_mae_meV_atom']:.2f} |" for e in out["phase_errors"]], ""]
    if out["speed"]:
        sp = out["speed"]
        lines.append(f"Speed at {sp['n_atoms']} atoms, same process: {sp['student_atom_steps_per_s']:.0f} atom-steps/s "
                     f"against the teacher's {sp['teacher_atom_steps_per_s']:.0f} ({sp['speedup']:.1f}x).")
        lines.append("")
    lines += [
        "Fit for: MD, relaxation and sampling of this system inside the temperatures and strains above. Outside "
        "them the student has not seen the teacher: run MD with `uncertainty_guard=true` and check the fraction of "
        "frames outside its calibrated domain.",
        "",
        "Reproduce (same seed, same run): `job_start` with tool `distill_potential` and arguments",
        "",
        "```json",
        json.dumps(inp.model_dump(mode="json"), indent=1),
        "```",
    ]
    return "\n".join(lines) + "\n"


@tool(cost="long", reaches=(DASK, STORE), estimate=lambda inp: 60.0 * inp.max_minutes)
def distill_potential(inp: DistillInput, ctx: ToolContext) -> DistillOutput:
    """Distil a fast potential for one chemical system from a teacher (CHGNet by default) by uncertainty-driven
    active learning: seed frames -> train a small Allegro-style (or NequIP-style) student -> explore with its own MD
    over the temperatures and strains asked -> label the frames it is most uncertain about -> retrain, until the
    target force error, the label budget or the time budget. Tested on held-out teacher MD it never trained on.
    Saves the potential as <workspace>/potentials/<name>.pt (pass `name` as `potential` to relax, MD, sampling and
    crystallization tools) with a card, a learning curve and its speed against the teacher. Resumable by name."""
    seeds = _seeds(inp, ctx)
    run_dir = ctx.workspace / "distill" / inp.name
    if (run_dir / "state.json").is_file() and not inp.resume:
        raise ToolInputError(f"a distillation named {inp.name!r} exists; set resume=true or choose another name")
    teacher = reference_calculator(inp.teacher, ctx.settings)
    for atoms in seeds:
        check_supported(teacher, atoms, inp.teacher)
    test, test_minutes = _timed_test_set(run_dir, seeds, teacher, inp, ctx.progress)
    cfg = ALConfig(run_name=inp.name, reference=inp.teacher, temperatures_K=list(inp.temperatures_K),
                   md_steps=inp.md_steps, timestep_fs=inp.timestep_fs, iterations=inp.rounds,
                   max_new_per_iteration=inp.per_round, threshold_eV_A=0.0, frame_score="max",
                   target_force_mae_meV_A=inp.target_force_mae_meV_A, label_budget=inp.label_budget,
                   strategy=inp.selection,
                   n_initial=inp.n_initial, n_validation=inp.n_validation, kind=inp.student, size=inp.size,
                   cutoff_A=inp.cutoff_A, epochs_initial=inp.epochs_initial, epochs_finetune=inp.epochs_finetune,
                   seed=inp.seed, max_minutes=max(inp.max_minutes - test_minutes, 0.01))
    learner = ActiveLearner(run_dir, cfg, seeds, teacher, ctx.progress, None, get_executor(ctx.settings))
    state = learner.run()

    rounds = []
    for h in state["history"]:
        snapshot = run_dir / f"model_iter{h['iteration']}.pt"
        force, energy = checkpoint_errors(snapshot if snapshot.is_file() else learner.checkpoint, test)
        rounds.append(DistillRound(round=int(h["iteration"]), n_labels=int(h["n_train"]),
                                   test_force_mae_meV_A=round(force, 2), test_energy_mae_meV_atom=round(energy, 3),
                                   val_force_mae_meV_A=round(float(h["val_force_mae_meV_A"]), 2)))
    target = ctx.workspace / "potentials" / f"{inp.name}.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(learner.checkpoint, target)
    speed = speed_test(target, teacher, seeds[0], inp.speed_atoms) if inp.speed_atoms else None
    out = {"potential": inp.name, "checkpoint": str(target), "stop_reason": str(state["stop_reason"]),
           "n_labels": int(state["n_labels"]), "rounds": [r.model_dump() for r in rounds],
           "test_errors": [e.model_dump() for e in _per_temperature(target, test)],
           "phase_errors": [e.model_dump() for e in _per_phase(target, test)],
           "speed": speed.model_dump() if speed else None,
           "minutes": round(test_minutes + learner.seconds_spent() / 60.0, 2)}
    counts = {"train": len(load_frames(learner.train_path)), "val": len(load_frames(learner.val_path)),
              "test": len(test)}
    card = target.with_suffix(".md")
    card.write_text(_card(inp, out, seeds, counts))
    plot = _plot(rounds, run_dir / "learning_curve.png", f"distilling {inp.name} from {inp.teacher}")
    (run_dir / "report.json").write_text(json.dumps(out, indent=1))
    return DistillOutput(**out, card_uri=ctx.artifact_uri(card), plot_uri=ctx.artifact_uri(plot))
