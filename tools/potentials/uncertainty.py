"""Uncertainty tools: fit the single-model GMM uncertainty of a matsearch potential, and estimate per-atom and
per-structure uncertainty of structures or of a trajectory artifact."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from pydantic import BaseModel, Field, model_validator

from models.potentials.labels import ENERGY, FEATURES
from tools.core.errors import ToolInputError
from tools.core.paths import workspace_path
from tools.core.registry import STORE, ToolContext, ToolInput, tool
from tools.potentials.calculators import resolve_potential
from tools.structures.io import StructureRef, resolve_structure, structure_to_atoms

MAX_STRUCTURES = 2000
_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def checkpoint_path(potential: str, workspace: Path) -> Path:
    """A matsearch checkpoint inside the workspace or shipped with matsearch (universal models have no latent GMM);
    ToolInputError otherwise."""
    resolved = Path(resolve_potential(potential, workspace))
    if not resolved.is_file():
        raise ToolInputError(
            f"{potential!r} is a universal or classical potential; GMM uncertainty needs a matsearch checkpoint "
            "(the shipped allegro_distilled, or one made here with active_learning or train_potential)")
    return resolved


def load_model(path: Path, device: str = "cpu") -> object:
    """Cached EquivariantPotential for a checkpoint on a torch device (reloaded when the file changes)."""
    from models.potentials.equivariant import EquivariantPotential

    key = f"{path}:{path.stat().st_mtime_ns}@{device}"
    with _MODELS_LOCK:
        if key not in _MODELS:
            try:
                _MODELS[key] = EquivariantPotential.load(path, map_location=device)
            except Exception as exc:
                raise ToolInputError(f"cannot load checkpoint {path}: {exc}") from exc
        return _MODELS[key]


def guard_checkpoint(potential: str, workspace: Path) -> Path:
    """The checkpoint of a potential that can guard its own MD (a matsearch model with a fitted GMM, e.g. one made
    by distill_potential or active_learning); ToolInputError saying why not otherwise."""
    from models.potentials.uncertainty import has_uncertainty

    path = checkpoint_path(potential, workspace)
    if not has_uncertainty(path):
        raise ToolInputError(f"{potential!r} carries no fitted uncertainty: fit_uncertainty first, or use a "
                             "potential from distill_potential or active_learning")
    return path


def outside_domain(checkpoint: Path, frames: list[Atoms]) -> tuple[float, float]:
    """(fraction of frames with an atom beyond the calibrated uncertainty range, largest per-atom force-error
    estimate in eV/A): how much of a trajectory the potential extrapolated."""
    return _summary(_frame_flags(checkpoint, frames))


def _frame_flags(checkpoint: Path, frames: list[Atoms]) -> list[tuple[bool, float]]:
    """Per frame: (an atom beyond the calibrated range, largest per-atom force-error estimate in eV/A); the model
    and its GMM are loaded once."""
    from models.potentials.uncertainty import GMMUncertainty, latent_features

    if not frames:
        return []
    model = load_model(checkpoint)
    gmm = GMMUncertainty.load(checkpoint)
    flags = []
    for features in latent_features(model, frames):
        values, nll = gmm.per_atom(features)
        flags.append((bool(gmm.extrapolating(nll).any()), float(values.max())))
    return flags


def _summary(flags: list[tuple[bool, float]]) -> tuple[float, float]:
    if not flags:
        return 0.0, 0.0
    return sum(out for out, _ in flags) / len(flags), max(0.0, *(worst for _, worst in flags))


GUARD_WARN_FRACTION = 0.0  # the guard warns when more than this share of the frames left the calibrated domain


def domain_warning(potential: str, fraction: float, frames: str = "the frames") -> str | None:
    """The uncertainty guard's warning when more than GUARD_WARN_FRACTION of `frames` (e.g. "the melt frames") left
    the potential's calibrated domain; None otherwise."""
    if fraction <= GUARD_WARN_FRACTION:
        return None
    return (f"{100 * fraction:.0f} % of {frames} left {potential}'s calibrated domain (forces there are "
            "extrapolated): extend its training to these conditions, e.g. distill_potential with them")


def outside_domain_by_stage(checkpoint: Path, frames: list[Atoms]) -> dict[str, dict[str, float]]:
    """outside_domain per MD stage (the frames' info['stage'], e.g. melt, quench, hold, in order of appearance):
    {stage: {"frames": n, "fraction_outside": share, "max_uncertainty_eV_A": largest estimate}}."""
    stages: dict[str, list[tuple[bool, float]]] = {}
    for frame, flag in zip(frames, _frame_flags(checkpoint, frames), strict=True):
        stages.setdefault(str(frame.info.get("stage", "md")), []).append(flag)
    out = {}
    for stage, flags in stages.items():
        fraction, worst = _summary(flags)
        out[stage] = {"frames": len(flags), "fraction_outside": fraction, "max_uncertainty_eV_A": worst}
    return out


def read_frames(path: Path, every: int = 1, limit: int = MAX_STRUCTURES) -> list[Atoms]:
    """Frames of an extxyz (or any ASE-readable) trajectory, every `every`-th, at most `limit`."""
    from ase.io import read

    try:
        frames = read(str(path), index=f"::{every}")
    except Exception as exc:
        raise ToolInputError(f"cannot read trajectory {path.name}: {exc}") from exc
    frames = frames if isinstance(frames, list) else [frames]
    if len(frames) > limit:
        raise ToolInputError(f"{len(frames)} frames selected (limit {limit}); raise `every`")
    return frames


class FitUncertaintyInput(ToolInput):
    potential: str = Field(max_length=1000, description="A matsearch potential checkpoint: a workspace path or "
                           "artifact:// URI, a name trained here, or a shipped one ('allegro_distilled').")
    training_data: str = Field(max_length=1000, description="extxyz of the structures the potential was trained on "
                               "(artifact:// URI or workspace path).")
    validation_data: str | None = Field(default=None, max_length=1000, description="Labelled extxyz (forces) used "
                                        "to calibrate NLL to force error in eV/A; uncalibrated NLL without it.")
    n_components: list[int] = Field(default=[1, 2, 4, 8], min_length=1, max_length=10,
                                    description="Mixture sizes to try; the best by BIC is kept.")
    seed: int = Field(default=0, ge=0, description="Random seed of the mixture fits (same seed, same result).")


class FitUncertaintyOutput(BaseModel):
    potential: str = Field(description="Path of the checkpoint now holding the uncertainty: the given one when it is "
                           "in the workspace, else a workspace copy (pass it to estimate_uncertainty).")
    checkpoint_uri: str = Field(description="artifact:// URI of that checkpoint.")
    copied_from: str | None = Field(default=None, description="The checkpoint outside the workspace (a shipped "
                                    "one) that was copied, left unchanged; None when fitted in place.")
    n_components: int
    n_train_atoms: int
    calibrated: bool
    calibration: dict[str, float] = Field(default_factory=dict, description="Spearman and MAE on validation atoms.")
    train_nll_quantiles: dict[str, float]
    seconds: float


@tool(cost="minutes", reaches=(), destructive=True)  # replaces the uncertainty stored in the checkpoint
def fit_uncertainty(inp: FitUncertaintyInput, ctx: ToolContext) -> FitUncertaintyOutput:
    """Fit the single-model uncertainty of a matsearch potential: a Gaussian mixture on the per-atom latent
    features of its training structures, calibrated on labelled validation structures to an expected per-atom
    force error in eV/A. The result is stored inside the checkpoint, so estimate_uncertainty and MD can use it; a
    checkpoint outside the workspace (a shipped one) is copied into it first and never modified."""
    from models.potentials.uncertainty import fit_gmm_uncertainty

    if any(k < 1 or k > 64 for k in inp.n_components):
        raise ToolInputError("n_components values must be between 1 and 64")
    path = checkpoint_path(inp.potential, ctx.workspace)
    model = load_model(path, ctx.settings.device)
    start = time.perf_counter()
    train = read_frames(workspace_path(inp.training_data, ctx.workspace, "training_data"), limit=100_000)
    val = (read_frames(workspace_path(inp.validation_data, ctx.workspace, "validation_data"), limit=100_000)
           if inp.validation_data else [])
    ctx.progress(1, 3, "fitting the mixture")
    try:
        unc = fit_gmm_uncertainty(model, train, val or None, inp.n_components, inp.seed)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ToolInputError(str(exc)) from exc
    ctx.progress(2, 3, "saving into the checkpoint")
    fitted = _workspace_copy(path, ctx)
    unc.attach_to_checkpoint(fitted)
    return FitUncertaintyOutput(
        potential=str(fitted), checkpoint_uri=ctx.artifact_uri(fitted),
        copied_from=None if fitted == path else str(path),
        n_components=unc.n_components, n_train_atoms=int(unc.metadata["n_train_atoms"]), calibrated=unc.calibrated,
        calibration=unc.metadata.get("calibration", {}), train_nll_quantiles=unc.train_nll_quantiles,
        seconds=round(time.perf_counter() - start, 3))


def _workspace_copy(path: Path, ctx: ToolContext) -> Path:
    """The checkpoint to store a fitted uncertainty in: `path` when it lies in the workspace, else a copy in this
    call's artifact folder, so no file outside the workspace is ever rewritten."""
    if path.is_relative_to(ctx.workspace.resolve()):
        return path
    copy = ctx.artifact_dir() / path.name
    shutil.copyfile(path, copy)
    return copy


class EstimateUncertaintyInput(ToolInput):
    structures: list[StructureRef] = Field(default_factory=list, max_length=200,
                                           description="Structures (memory ids or inline text).")
    trajectory: str | None = Field(default=None, max_length=1000,
                                   description="artifact:// URI of an extxyz trajectory (e.g. from run_md).")
    every: int = Field(default=1, ge=1, le=10_000, description="Use every N-th trajectory frame.")
    potential: str = Field(max_length=1000, description="A matsearch checkpoint with a fitted uncertainty (workspace "
                           "path, artifact:// URI, a name trained here, or a shipped one).")
    method: str = Field(default="gmm", pattern="^(gmm|ensemble)$",
                        description="'gmm' (single model, near-free) or 'ensemble' (force spread of members).")
    ensemble: list[str] = Field(default_factory=list, max_length=16,
                                description="Member checkpoints for method='ensemble' (the potential is added), "
                                "given as `potential` is.")
    threshold_eV_A: float | None = Field(default=None, gt=0, le=100,
                                         description="Flag structures whose max per-atom uncertainty exceeds this.")

    @model_validator(mode="after")
    def _one_source(self) -> EstimateUncertaintyInput:
        if bool(self.structures) == (self.trajectory is not None):
            raise ValueError("give either 'structures' or 'trajectory'")
        return self


class StructureUncertaintyOut(BaseModel):
    index: int
    formula: str
    n_atoms: int
    max_eV_A: float = Field(description="Largest per-atom uncertainty (eV/A when calibrated, raw NLL otherwise).")
    mean_eV_A: float
    most_uncertain_atoms: list[int] = Field(description="Indices of the (up to 5) most uncertain atoms.")
    extrapolating: bool = Field(description="Some atom lies beyond the calibrated range (unfamiliar environment).")
    above_threshold: bool | None = None
    energy_eV: float | None = None


class EstimateUncertaintyOutput(BaseModel):
    method: str
    units: str
    n_structures: int
    structures: list[StructureUncertaintyOut] = Field(description="Per structure, in input order (first 200).")
    n_above_threshold: int | None = None
    max_eV_A: float
    force_call_seconds: float = Field(description="Time of the model pass(es) that produced forces and features.")
    uncertainty_seconds: float = Field(description="Extra time of the uncertainty itself.")
    per_atom_uri: str = Field(description="artifact:// URI of an extxyz with per-atom 'uncertainty' arrays.")
    summary_uri: str


def _gmm_of(path: Path) -> object:
    """The GMM stored in a checkpoint; ToolInputError explaining how to fit one otherwise."""
    from models.potentials.uncertainty import GMMUncertainty

    try:
        return GMMUncertainty.load(path)
    except ValueError as exc:
        raise ToolInputError(f"{exc}; run fit_uncertainty on this checkpoint first") from exc


@tool(cost="minutes", reaches=(STORE,), read_only=False, estimate=lambda inp: 2.0 + 0.05 * max(len(inp.structures), 20))
def estimate_uncertainty(inp: EstimateUncertaintyInput, ctx: ToolContext) -> EstimateUncertaintyOutput:
    """Estimate how much to trust a matsearch potential on given structures or on the frames of an MD trajectory:
    per-atom uncertainty from a Gaussian mixture on the model's latent features (calibrated to expected force
    error in eV/A, costing a few percent of a force call), or the force spread of a deep ensemble. Returns
    per-structure max/mean values, the most uncertain atoms and which structures exceed a threshold; per-atom
    values are written to an extxyz artifact. Use it to decide whether MD results are reliable or what to label."""
    from models.potentials.equivariant import predict
    from models.potentials.uncertainty import EnsembleUncertainty

    path = checkpoint_path(inp.potential, ctx.workspace)
    model = load_model(path, ctx.settings.device)
    unc = _gmm_of(path) if inp.method == "gmm" else None
    if inp.trajectory is not None:
        frames = read_frames(workspace_path(inp.trajectory, ctx.workspace, "trajectory"), inp.every)
    else:
        frames = [structure_to_atoms(resolve_structure(ref, ctx.store if ref.id else None, ctx.settings.max_atoms))
                  for ref in inp.structures]
    try:
        for atoms in frames:
            from models.potentials.neighbors import species_indices

            species_indices(atoms.numbers, model.species, model.name)  # type: ignore[attr-defined]
    except ValueError as exc:
        raise ToolInputError(f"{exc}: the potential cannot describe these structures at all") from exc
    ctx.progress(0, len(frames), "force pass")
    if unc is not None:
        t0 = time.perf_counter()
        preds = predict(model, frames, compute_stress=False)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        values = [unc.per_atom(np.asarray(p[FEATURES])) for p in preds]  # type: ignore[attr-defined]
        t2 = time.perf_counter()
        per_atom = [v for v, _ in values]
        extrap = [bool(unc.extrapolating(n).any()) for _, n in values]  # type: ignore[attr-defined]
        energies = [float(p[ENERGY]) for p in preds]
        units = "eV/A" if unc.calibrated else "NLL"  # type: ignore[attr-defined]
    else:
        if not inp.ensemble:
            raise ToolInputError("method='ensemble' needs member checkpoints in 'ensemble'")
        members = [model, *(load_model(checkpoint_path(p, ctx.workspace), ctx.settings.device) for p in inp.ensemble)]
        t0 = time.perf_counter()
        first = predict(model, frames, compute_stress=False)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        est = EnsembleUncertainty(members).estimate(frames)  # type: ignore[arg-type]
        t2 = time.perf_counter() - (t1 - t0)  # the ensemble re-runs the first member: count it once
        per_atom = [e.per_atom for e in est]
        extrap = [False] * len(frames)
        energies = [float(p[ENERGY]) for p in first]
        units = "eV/A"
    out_dir = ctx.artifact_dir()
    from ase.io import write

    rows = []
    for k, (atoms, vals) in enumerate(zip(frames, per_atom, strict=True)):
        frame = atoms.copy()
        frame.arrays["uncertainty"] = np.asarray(vals, dtype=np.float64)
        write(out_dir / "uncertainty.extxyz", frame, format="extxyz", append=True)
        order = np.argsort(vals)[::-1][:5]
        rows.append(StructureUncertaintyOut(
            index=k, formula=atoms.get_chemical_formula(), n_atoms=len(atoms), max_eV_A=round(float(vals.max()), 6),
            mean_eV_A=round(float(vals.mean()), 6), most_uncertain_atoms=[int(i) for i in order],
            extrapolating=extrap[k], energy_eV=energies[k],
            above_threshold=None if inp.threshold_eV_A is None else bool(vals.max() > inp.threshold_eV_A)))
    result = EstimateUncertaintyOutput(
        method=inp.method, units=units, n_structures=len(frames), structures=rows[:200],
        n_above_threshold=None if inp.threshold_eV_A is None else sum(bool(r.above_threshold) for r in rows),
        max_eV_A=round(max(r.max_eV_A for r in rows), 6), force_call_seconds=round(t1 - t0, 6),
        uncertainty_seconds=round(max(t2 - t1, 0.0), 6), per_atom_uri=ctx.artifact_uri(out_dir / "uncertainty.extxyz"),
        summary_uri=ctx.artifact_uri(out_dir / "summary.json"))
    (out_dir / "summary.json").write_text(json.dumps(result.model_dump(mode="json"), indent=2))
    return result
