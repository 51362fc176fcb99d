"""Potential training tools: train (or resume) an equivariant potential on labelled structures, and measure a
potential's errors against labels or against a reference potential."""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from pydantic import BaseModel, Field, model_validator

from models.potentials.labels import ENERGY, FORCES, N_ATOMS, STRESS, energy_label, read_labels
from tools.core.errors import ToolInputError, ToolRuntimeError
from tools.core.paths import NAME_PATTERN, checkpoint_file, workspace_path
from tools.core.registry import STORE, ProgressFn, ToolContext, ToolInput, tool
from tools.potentials.calculators import check_supported, get_potential, potential_lock, resolve_potential
from tools.structures.io import StructureRef, resolve_structure, structure_to_atoms

MAX_FRAMES = 100_000  # labelled frames one training run reads (a 2-core machine trains ~150 frames/s)


class _TimeUp(Exception):
    """Raised from the epoch callback once the wall-clock budget is spent (after that epoch's checkpoint)."""


# ----------------------------------------------------------------------------------------------------------------
# Plain functions shared by the tools and the CLI
# ----------------------------------------------------------------------------------------------------------------
def read_labelled(path: Path, limit: int = MAX_FRAMES) -> list[Atoms]:
    """Labelled frames of an extxyz file; ToolInputError when unreadable, empty, too many or missing energies."""
    from ase.io import read

    try:
        frames = read(str(path), index=":")
    except Exception as exc:
        raise ToolInputError(f"cannot read {path.name} as extxyz: {exc}") from exc
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise ToolInputError(f"{path.name} holds no structures")
    if len(frames) > limit:
        raise ToolInputError(f"{path.name} holds {len(frames)} structures, more than the limit {limit}")
    unlabelled = [k for k, a in enumerate(frames) if energy_label(a) is None]
    if unlabelled:
        raise ToolInputError(
            f"{path.name}: {len(unlabelled)} structure(s) have no energy label (first index {unlabelled[0]})"
        )
    return frames


def label_with(calc: Calculator, frames: Sequence[Atoms], name: str, progress: ProgressFn | None = None) -> list[Atoms]:
    """Copies of `frames` carrying the energy, forces and (periodic) stress of `calc` as single-point labels."""
    out = []
    with potential_lock(name):
        for k, atoms in enumerate(frames):
            check_supported(calc, atoms, name)
            work = atoms.copy()
            work.calc = calc
            energy = float(work.get_potential_energy())
            forces = np.asarray(work.get_forces(), dtype=np.float64)
            stress = np.asarray(work.get_stress(), dtype=np.float64) if work.pbc.all() else None
            labelled = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            labelled.info.update(atoms.info)
            labelled.calc = SinglePointCalculator(labelled, energy=energy, forces=forces, stress=stress)
            out.append(labelled)
            if progress is not None:
                progress(k + 1, len(frames), f"labelled {k + 1}/{len(frames)} with {name}")
    return out


def rattled_copies(atoms: Atoms, copies: int, amplitude: float, seed: int) -> list[Atoms]:
    """The structure plus `copies` Gaussian-rattled versions (std `amplitude` A)."""
    rng = np.random.default_rng(seed)
    out = [atoms.copy()]
    for _ in range(copies):
        frame = atoms.copy()
        frame.positions += rng.normal(0.0, amplitude, size=frame.positions.shape)
        out.append(frame)
    return out


def split_by_structure(frames: Sequence[Atoms], val_fraction: float, seed: int = 0) -> tuple[list[Atoms], list[Atoms]]:
    """Train/validation split keeping all frames of one `structure_id` together (random frames without ids).

    A structure is in validation when a hash of (seed, id) falls below val_fraction, so the split of a structure
    does not change when more structures are added to the data set (resume on a grown set keeps its validation set).
    """
    from models.potentials.training import split_dataset

    ids = [a.info.get("structure_id") for a in frames]
    if val_fraction <= 0:
        return list(frames), []
    if any(i is None for i in ids) or len(set(ids)) < 3:
        return split_dataset(frames, val_fraction, seed)
    score = {i: zlib.crc32(f"{seed}:{i}".encode()) / 2**32 for i in set(ids)}
    val_ids = {i for i, v in score.items() if v < val_fraction} or {min(score, key=score.__getitem__)}
    return [a for a in frames if a.info.get("structure_id") not in val_ids], [
        a for a in frames if a.info.get("structure_id") in val_ids
    ]


def train_on_frames(
    frames: Sequence[Atoms],
    checkpoint: Path,
    kind: str = "allegro",
    epochs: int = 50,
    resume: bool = False,
    hyper: dict[str, Any] | None = None,
    train_options: dict[str, Any] | None = None,
    val_fraction: float = 0.1,
    max_seconds: float | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Train (or resume) a potential on labelled frames, checkpointing every epoch; stops early at max_seconds.

    `hyper` holds PotentialConfig fields (cutoff, l_max, num_layers, num_features, ...), `train_options` TrainConfig
    fields (batch_size, lr, w_energy, ...). Species are those of the frames. Returns the summary metrics.
    """
    import torch

    from models.potentials.equivariant import PotentialConfig
    from models.potentials.training import TrainConfig, train_potential, validation_label

    species = sorted({s for a in frames for s in a.get_chemical_symbols()})
    try:  # the configurations check the caller's options (kind, sizes, scheduler, device)
        config = PotentialConfig(kind=kind, species=species, name=checkpoint.stem, **(hyper or {}))
        train_cfg = TrainConfig(epochs=epochs, **(train_options or {}))
    except ValueError as exc:
        raise ToolInputError(str(exc)) from exc
    if train_cfg.init_from and not (resume and checkpoint.is_file()):  # a resume ignores init_from
        check_init_from(Path(train_cfg.init_from), species)
    seed = int((train_options or {}).get("seed", 0))
    train, val = split_by_structure(frames, val_fraction, seed)
    if resume and checkpoint.is_file():
        payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if "training" not in payload:
            raise ToolInputError(f"{checkpoint.name} holds no training state to resume from")
        missing = sorted(set(species) - set(payload["config"]["species"]))
        if missing:
            raise ToolInputError(
                f"cannot resume {checkpoint.name}: element(s) {', '.join(missing)} are not among its species "
                f"{', '.join(payload['config']['species'])}; train a new potential instead"
            )
    start = time.perf_counter()

    def on_epoch(epoch: int, total: int, message: str) -> None:
        if progress is not None:
            progress(epoch, total, message)
        if max_seconds is not None and time.perf_counter() - start > max_seconds and epoch < total:
            raise _TimeUp

    time_limited = False
    try:
        summary = train_potential(train, val, config, train_cfg, checkpoint, resume=resume, progress=on_epoch)
    except _TimeUp:
        time_limited = True
        summary = checkpoint_summary(checkpoint)
    summary.update(
        {
            "time_limited": time_limited,
            "seconds": round(time.perf_counter() - start, 1),
            "n_train": len(train),
            "n_val": len(val),
            "validation": validation_label(len(val)),
            "species": species,
        }
    )
    return summary


def check_init_from(path: Path, species: Sequence[str]) -> None:
    """ToolInputError unless `path` is a potential checkpoint covering every element of the training data."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a file torch cannot read is the caller's choice of file
        raise ToolInputError(f"init_from {path.name} is not a matsearch potential checkpoint "
                             f"(torch cannot read it: {type(exc).__name__})") from exc
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise ToolInputError(f"init_from {path.name} is not a matsearch potential checkpoint")
    covered = set(payload["config"].get("species", []))
    missing = sorted(set(species) - covered)
    if missing:
        raise ToolInputError(f"init_from {path.name} does not support element(s) {', '.join(missing)} of the "
                             f"training data (it covers {' '.join(sorted(covered))}); train from scratch instead")


def checkpoint_summary(checkpoint: Path) -> dict[str, Any]:
    """Summary metrics and history stored in a training checkpoint."""
    import torch

    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = payload.get("training", {})
    return {**payload.get("metrics", {}), "history": list(state.get("history", []))}


def errors(predicted: Sequence[dict[str, Any]], reference: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Energy MAE (meV/atom), force MAE (meV/A) and stress MAE (meV/A^3) of predictions vs reference labels."""
    e_err, f_err, s_err = [], [], []
    for p, r in zip(predicted, reference, strict=True):
        n = len(r[FORCES]) if r.get(FORCES) is not None else int(r[N_ATOMS])
        e_err.append(abs(p[ENERGY] - r[ENERGY]) / n)
        if r.get(FORCES) is not None and p.get(FORCES) is not None:
            f_err.append(np.abs(np.asarray(p[FORCES]) - np.asarray(r[FORCES])).ravel())
        if r.get(STRESS) is not None and p.get(STRESS) is not None:
            s_err.append(np.abs(np.asarray(p[STRESS]) - np.asarray(r[STRESS])).ravel())
    e = np.asarray(e_err)
    out: dict[str, Any] = {
        "n_structures": len(e_err),
        "energy_mae_meV_per_atom": float(1000 * e.mean()),
        "energy_max_meV_per_atom": float(1000 * e.max()),
        "worst_index": int(e.argmax()),
    }
    if f_err:
        out["forces_mae_meV_per_A"] = float(1000 * np.concatenate(f_err).mean())
    if s_err:
        out["stress_mae_meV_per_A3"] = float(1000 * np.concatenate(s_err).mean())
    return out


def predictions(calc: Calculator, frames: Sequence[Atoms], name: str, progress: ProgressFn | None = None) -> list[dict]:
    """Energy, forces and (periodic) stress of `calc` on every frame, as plain dicts."""
    return [read_labels(a) for a in label_with(calc, frames, name, progress)]


# ----------------------------------------------------------------------------------------------------------------
# train_potential
# ----------------------------------------------------------------------------------------------------------------
class TrainPotentialInput(ToolInput):
    data_path: str | None = Field(
        default=None,
        max_length=1000,
        description="Labelled extxyz (energy, forces, optional stress) inside the workspace: a relative path, an "
        "absolute path under the workspace, or an artifact:// URI.",
    )
    structure_ids: list[str] | None = Field(
        default=None, min_length=1, max_length=500, description="Memory ids to label on the fly with `reference`."
    )
    reference: str = Field(default="chgnet", max_length=500, description="Labelling potential for structure_ids.")
    rattle_copies: int = Field(default=3, ge=0, le=20, description="Rattled copies per memory structure.")
    rattle_amplitude: float = Field(default=0.05, ge=0.0, le=0.3, description="Rattle std in Angstrom.")
    name: str = Field(
        default="potential",
        pattern=NAME_PATTERN,
        description="Checkpoint name: written to <workspace>/potentials/<name>.pt (resume continues this file).",
    )
    kind: Literal["allegro", "nequip"] = Field(default="allegro", description="Strictly local Allegro or NequIP.")
    epochs: int = Field(default=50, ge=1, le=5000, description="Total epochs (including already completed ones).")
    resume: bool = Field(default=False, description="Continue the training state stored in the named checkpoint.")
    cutoff: float = Field(default=5.0, gt=1.0, le=10.0, description="Radial cutoff in Angstrom.")
    l_max: int = Field(default=1, ge=0, le=3, description="Highest rotation order of the features (0-3).")
    num_layers: int = Field(default=2, ge=1, le=6, description="Tensor-product / interaction layers (1-6).")
    num_features: int = Field(default=16, ge=1, le=128, description="Channels per irrep.")
    batch_size: int = Field(default=4, ge=1, le=256, description="Structures per optimiser step.")
    lr: float = Field(default=5e-3, gt=0.0, le=1.0, description="Initial learning rate (AdamW).")
    energy_weight: float = Field(default=1.0, ge=0.0, le=1e4, description="Loss weight of the energy-per-atom MSE.")
    forces_weight: float = Field(default=1.0, ge=0.0, le=1e4, description="Loss weight of the force MSE.")
    stress_weight: float = Field(default=10.0, ge=0.0, le=1e4, description="Loss weight of the stress MSE.")
    val_fraction: float = Field(
        default=0.1, ge=0.0, le=0.5,
        description="Share of structures held for validation. 0 (or a single structure) holds none out: the val_* "
        "errors are then training errors, and the output's `validation` says so.")
    max_minutes: float | None = Field(default=None, gt=0.0, le=1440.0, description="Wall-clock budget; resumable.")
    seed: int = Field(default=0, ge=0, description="Random seed of initialisation, split and batches.")
    init_from: str | None = Field(
        default=None,
        max_length=1000,
        description="Fine-tune from this checkpoint (its architecture and weights, a fresh optimiser): "
        "'allegro_distilled' (the shipped model), a checkpoint name under <workspace>/potentials, or a workspace "
        "path / artifact:// URI. Its architecture replaces cutoff, l_max, num_layers and num_features.",
    )

    device: str = Field(
        default="cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="torch device to train on: cpu, cuda or cuda:N."
    )

    @model_validator(mode="after")
    def _one_source(self) -> TrainPotentialInput:
        if (self.data_path is None) == (self.structure_ids is None):
            raise ValueError("give exactly one of 'data_path' (labelled extxyz) or 'structure_ids' (memory ids)")
        return self


class EpochRecord(BaseModel):
    epoch: int
    train_loss: float
    val_energy_mae_meV_per_atom: float | None = None
    val_forces_mae_meV_per_A: float | None = None


class TrainPotentialOutput(BaseModel):
    checkpoint_uri: str = Field(description="artifact:// URI of the checkpoint (usable as `potential` elsewhere)")
    checkpoint_path: str
    data_uri: str | None = Field(default=None, description="artifact:// URI of the labelled data made on the fly")
    kind: str
    species: list[str]
    n_train: int
    n_val: int
    validation: str = Field(
        description="What the val_* errors measure: 'held-out (N structures)', or 'none (training error shown)' "
        "when no structure was held out (val_fraction=0 or a single structure)")
    epochs_completed: int
    best_epoch: int
    stopped_early: bool
    time_limited: bool = Field(description="True when max_minutes ran out first: call again with resume=true")
    seconds: float
    val_energy_mae_meV_per_atom: float | None
    val_forces_mae_meV_per_A: float | None
    val_stress_mae_meV_per_A3: float | None
    history: list[EpochRecord]


def _estimate_training(inp: TrainPotentialInput) -> float:
    """Rough seconds: ~0.02 s per structure-epoch on one core, plus labelling."""
    n = len(inp.structure_ids or []) * (1 + inp.rattle_copies)
    return 0.5 * n + 0.02 * max(n, 200) * inp.epochs


@tool(cost="long", reaches=(STORE,), estimate=_estimate_training)
def train_potential(inp: TrainPotentialInput, ctx: ToolContext) -> TrainPotentialOutput:
    """Train (or resume training of) an E(3)-equivariant interatomic potential of our own (Allegro-style strictly
    local, or NequIP-style message passing) on labelled structures: a labelled extxyz file inside the workspace, or
    memory structures labelled on the fly by a reference potential (e.g. chgnet) with rattled copies. Reports
    validation energy/force/stress errors (training errors when no structure is held out: `validation` says which)
    and returns the checkpoint as an artifact URI that relax_structure, predict_properties and md accept as
    `potential`. Run as a job for long trainings; max_minutes + resume lets
    training continue across calls."""
    workspace = ctx.workspace
    checkpoint = workspace / "potentials" / f"{inp.name}.pt"
    if checkpoint.exists() and not inp.resume:
        raise ToolInputError(f"checkpoint {inp.name!r} exists; pass resume=true to continue it or choose a new name")
    frames, data_uri = _training_frames(inp, ctx)
    ctx.progress(0, inp.epochs, f"training {inp.kind} on {len(frames)} structures")
    summary = train_on_frames(
        frames,
        checkpoint,
        kind=inp.kind,
        epochs=inp.epochs,
        resume=inp.resume,
        hyper={
            "cutoff": inp.cutoff,
            "l_max": inp.l_max,
            "num_layers": inp.num_layers,
            "num_features": inp.num_features,
        },
        train_options={
            "batch_size": inp.batch_size,
            "lr": inp.lr,
            "w_energy": inp.energy_weight,
            "w_forces": inp.forces_weight,
            "w_stress": inp.stress_weight,
            "seed": inp.seed,
            "init_from": None if inp.init_from is None else str(checkpoint_file(inp.init_from, workspace, "init_from")),
            "device": inp.device,
        },
        val_fraction=inp.val_fraction,
        max_seconds=None if inp.max_minutes is None else 60.0 * inp.max_minutes,
        progress=lambda d, t, m: ctx.progress(d, t, m),
    )
    return _train_output(inp, ctx, checkpoint, data_uri, summary)


def _training_frames(inp: TrainPotentialInput, ctx: ToolContext) -> tuple[list[Atoms], str | None]:
    """The labelled frames: the extxyz file, or memory structures (rattled) labelled by the reference and saved."""
    if inp.data_path is not None:
        return read_labelled(workspace_path(inp.data_path, ctx.workspace, "data_path")), None
    calc = get_potential(inp.reference, ctx.settings)
    raw: list[Atoms] = []
    for sid in inp.structure_ids or []:
        atoms = structure_to_atoms(resolve_structure(StructureRef(id=sid), ctx.store, ctx.settings.max_atoms))
        for frame in rattled_copies(atoms, inp.rattle_copies, inp.rattle_amplitude, inp.seed + len(raw)):
            frame.info["structure_id"] = sid
            raw.append(frame)
    frames = label_with(calc, raw, inp.reference, lambda d, t, m: ctx.progress(d, t, m))
    from ase.io import write

    data_file = ctx.artifact_dir() / "labelled.extxyz"
    write(str(data_file), frames, format="extxyz")
    return frames, ctx.artifact_uri(data_file)


def _train_output(
    inp: TrainPotentialInput, ctx: ToolContext, checkpoint: Path, data_uri: str | None, summary: dict[str, Any]
) -> TrainPotentialOutput:
    """The tool's answer from the training summary: the checkpoint, its errors and the per-epoch history."""
    history = [
        EpochRecord(
            epoch=int(h["epoch"]),
            train_loss=float(h["train_loss"]),
            val_energy_mae_meV_per_atom=h.get("val_energy_mae_meV_per_atom"),
            val_forces_mae_meV_per_A=h.get("val_forces_mae_meV_per_A"),
        )
        for h in summary.get("history", [])
    ]
    return TrainPotentialOutput(
        checkpoint_uri=ctx.artifact_uri(checkpoint),
        checkpoint_path=str(checkpoint),
        data_uri=data_uri,
        kind=inp.kind,
        species=summary["species"],
        n_train=summary["n_train"],
        n_val=summary["n_val"],
        validation=summary["validation"],
        epochs_completed=int(summary.get("epochs_completed") or 0),
        best_epoch=int(summary.get("best_epoch", -1)),
        stopped_early=bool(summary.get("stopped_early", False)),
        time_limited=summary["time_limited"],
        seconds=summary["seconds"],
        val_energy_mae_meV_per_atom=summary.get("val_energy_mae_meV_per_atom"),
        val_forces_mae_meV_per_A=summary.get("val_forces_mae_meV_per_A"),
        val_stress_mae_meV_per_A3=summary.get("val_stress_mae_meV_per_A3"),
        history=history,
    )


# ----------------------------------------------------------------------------------------------------------------
# evaluate_potential
# ----------------------------------------------------------------------------------------------------------------
class EvaluatePotentialInput(ToolInput):
    potential: str = Field(
        max_length=1000, description="'chgnet', 'sevennet-0', a checkpoint path or an artifact:// checkpoint URI."
    )
    data_path: str | None = Field(
        default=None, max_length=1000, description="Labelled extxyz inside the workspace (path or artifact:// URI)."
    )
    structures: list[StructureRef] | None = Field(
        default=None, min_length=1, max_length=500, description="Structures to compare against `reference`."
    )
    reference: str = Field(default="chgnet", max_length=1000, description="Reference potential for `structures`.")
    max_structures: int = Field(default=2000, ge=1, le=MAX_FRAMES, description="Use at most this many frames.")

    @model_validator(mode="after")
    def _one_source(self) -> EvaluatePotentialInput:
        if (self.data_path is None) == (self.structures is None):
            raise ValueError("give exactly one of 'data_path' (labelled extxyz) or 'structures' (vs a reference)")
        return self


class EvaluatePotentialOutput(BaseModel):
    potential: str
    against: str = Field(description="'labels in <file>' or the reference potential's name")
    n_structures: int
    n_atoms: int
    energy_mae_meV_per_atom: float
    energy_max_meV_per_atom: float
    forces_mae_meV_per_A: float | None = None
    stress_mae_meV_per_A3: float | None = None
    worst_index: int = Field(description="Index of the structure with the largest energy error")


@tool(cost="minutes", reaches=(STORE,), read_only=True,
      estimate=lambda inp: 0.3 * (len(inp.structures or []) * 2 or 200))
def evaluate_potential(inp: EvaluatePotentialInput, ctx: ToolContext) -> EvaluatePotentialOutput:
    """Measure an interatomic potential's errors: energy MAE (meV/atom), force MAE (meV/A) and stress MAE
    (meV/A^3), either against the labels of an extxyz file in the workspace, or against a reference potential
    (default chgnet) on given structures. Use it to check a trained potential before trusting its scores."""
    name = resolve_potential(inp.potential, ctx.workspace)
    calc = get_potential(name, ctx.settings)
    if inp.data_path is not None:
        path = workspace_path(inp.data_path, ctx.workspace, "data_path")
        frames = read_labelled(path)[: inp.max_structures]
        reference = [read_labels(a) for a in frames]
        against = f"labels in {path.name}"
    else:
        frames = [
            structure_to_atoms(resolve_structure(ref, ctx.store, ctx.settings.max_atoms))
            for ref in (inp.structures or [])[: inp.max_structures]
        ]
        ref_name = resolve_potential(inp.reference, ctx.workspace)
        ref_calc = get_potential(ref_name, ctx.settings)
        reference = predictions(ref_calc, frames, ref_name, lambda d, t, m: ctx.progress(d, 2 * t, "reference"))
        against = inp.reference
    total = len(frames)
    predicted = predictions(calc, frames, name, lambda d, t, m: ctx.progress(total + d, 2 * total, "potential"))
    metrics = errors(predicted, reference)
    if not all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)):
        raise ToolRuntimeError(f"{inp.potential} or its reference gave non-finite energies/forces: {metrics}")
    return EvaluatePotentialOutput(
        potential=inp.potential, against=against, n_atoms=sum(len(a) for a in frames), **metrics
    )
