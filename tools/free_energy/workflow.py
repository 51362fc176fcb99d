"""Collective-variable and free-energy tools: learn a CV from basin data (multitask network), run umbrella sampling
along it, and compute the free-energy profile and basin free-energy differences with MBAR and WHAM. Each tool stores
what the next one needs in the workspace and returns its id, so learn_cv -> umbrella_sampling -> free_energy_profile
chains by reference."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from tools.core.errors import ToolInputError
from tools.core.paths import workspace_path
from tools.core.registry import ToolContext, ToolInput, tool
from tools.free_energy.atomistic import add_quenched_frames, umbrella_atomistic
from tools.free_energy.base import (
    ID_PATTERN,
    UmbrellaSamplingInput,
    UmbrellaSamplingOutput,
    find_stored,
    line_centers,
    new_id,
    root,
    round_list,
    samples_output,
)

ToyName = Literal["mueller_brown_5d", "three_well_5d"]


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run small-batch torch work on one thread (much faster than several threads fighting for shared cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------------- learn_cv


class LearnCVInput(ToolInput):
    system: ToyName | None = Field(
        default=None,
        description="Toy system whose basins are sampled by short unbiased Langevin runs (one per minimum) to make "
        "the training data. Give either this or data_file.",
    )
    data_file: str | None = Field(
        default=None,
        description="Workspace-relative .npz with arrays 'x' (n, n_inputs), 'labels' (n,; basin index, -1 = "
        "unlabelled) and optionally 'energies' (n,). For an atomistic system x holds flattened positions (n, "
        "n_atoms*3, Angstrom) and 'numbers' (n_atoms,) the atomic numbers, with optional 'cell' (3, 3) and 'pbc' "
        "(3,): umbrella_sampling can then run MD on it with a potential. CV features use plain Cartesian distances "
        "(no minimum image), so give unwrapped positions. Give either this or system.",
    )
    preset: Literal["multitask", "classifier", "autoencoder"] = Field(
        default="multitask",
        description="Loss weights: multitask = classification + energy regression (Sun et al. 2022); classifier = "
        "classification only; autoencoder = reconstruction only (the unsupervised baseline).",
    )
    w_class: float | None = Field(default=None, ge=0, le=100, description="Override the classification loss weight.")
    w_energy: float | None = Field(default=None, ge=0, le=100, description="Override the energy loss weight.")
    w_recon: float | None = Field(default=None, ge=0, le=100, description="Override the reconstruction loss weight.")
    w_smooth: float = Field(
        default=0.0, ge=0, le=100,
        description="Smoothness weight: penalises a CV that rises as a step between basins (where no data constrain "
        "it), which harmonic umbrella windows cannot hold. 0.1 halved the steepest slope of the alanine dipeptide CV "
        "at equal classification accuracy; 0 (default) trains as Sun et al.",
    )
    latent_dim: int = Field(
        default=1, ge=1, le=2,
        description="CV dimension. umbrella_sampling biases component 0, or both on a 2D grid (dimensions=2).",
    )
    hidden: list[int] = Field(default=[32, 32], min_length=1, max_length=4, description="Encoder hidden widths.")
    features: Literal["identity", "distances", "torsions"] = Field(
        default="identity",
        description="Input features: raw inputs, distances of atom pairs, or sin/cos of torsions (inputs are then "
        "flattened Cartesian positions, n_atoms * 3).",
    )
    feature_atoms: list[list[int]] = Field(
        default_factory=list, max_length=500, description="Atom index pairs (distances) or quadruples (torsions)."
    )
    n_walkers: int = Field(default=8, ge=1, le=64, description="Walkers started in each minimum (toy data).")
    n_steps: int = Field(default=2000, ge=100, le=200_000, description="Langevin steps per walker (toy data).")
    high_temperature_factor: float | None = Field(
        default=None, ge=1.0, le=5.0, description="Also run as many walkers at this multiple of kT (toy data)."
    )
    add_samples_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Umbrella samples of an earlier round (a samples_id from umbrella_sampling on the same toy "
        "system or the same atoms): their frames join the training data, labelled by the toy system's basin rule, "
        "or for atoms by the labelled basin whose minimum their energy minimisation with the run's potential ends "
        "in (up to 600 frames; frames ending in other minima stay unlabelled). The retrained CV then also knows the "
        "transition region that basin runs never visit. Iterate learn_cv -> umbrella_sampling -> learn_cv.",
    )
    epochs: int = Field(default=60, ge=1, le=2000, description="Training epochs.")
    seed: int = Field(default=0, ge=0, description="Seed for data generation and training.")

    @model_validator(mode="after")
    def _one_source(self) -> LearnCVInput:
        if (self.system is None) == (self.data_file is None):
            raise ValueError("give exactly one of system (a toy system name) or data_file (an .npz in the workspace)")
        for h in self.hidden:
            if not 2 <= h <= 512:
                raise ValueError(f"hidden widths must be between 2 and 512, got {h}")
        return self


class LearnCVOutput(BaseModel):
    cv_id: str = Field(description="Id of the trained CV; pass it to umbrella_sampling.")
    checkpoint_uri: str = Field(description="artifact:// URI of the checkpoint (config, weights, metadata).")
    data_uri: str = Field(description="artifact:// URI of the training data (.npz).")
    histogram_plot_uri: str = Field(description="PNG: CV distribution of each basin.")
    map_plot_uri: str | None = Field(default=None, description="PNG: CV contours over the toy 2D surface.")
    system: str | None
    preset: str
    loss_weights: dict[str, float]
    n_samples: int
    basin_names: list[str]
    basin_counts: list[int]
    basin_cv_centroids: dict[str, list[float]] = Field(description="Mean CV of each basin (validation data).")
    classifier_accuracy: float | None = Field(description="Classification-head accuracy on validation data.")
    cv_separation_accuracy: float = Field(description="Nearest-centroid accuracy of the basins in CV space.")
    cv_max_overlap: float = Field(description="Largest overlap coefficient of two basins' CV distributions.")
    energy_rmse: float | None
    reconstruction_rmse: float | None
    separates_basins: bool
    torsion_fold_fraction: float | None = Field(
        default=None,
        description="torsion features only: of training-frame pairs within 0.1 of each other in the CV, the fraction "
        "more than 90 deg apart in some torsion (states the CV folds together, which umbrella windows cannot tell "
        "apart)",
    )
    message: str = Field(description="Plain-language verdict on whether the CV separates the basins.")
    seconds: float


def _toy_data(inp: LearnCVInput, ctx: ToolContext) -> tuple[dict[str, np.ndarray], Any]:
    """Training data from short unbiased runs in each basin of the named toy system."""
    from models.potentials.toy import basin_trajectories, get_toy_system

    system = get_toy_system(str(inp.system))
    data = basin_trajectories(
        system,
        n_walkers=inp.n_walkers,
        n_steps=inp.n_steps,
        stride=max(1, inp.n_steps // 200),
        seed=inp.seed,
        high_temperature_factor=inp.high_temperature_factor,
        callback=lambda done, total, _: ctx.progress(0.3 * done / total, 1.0, "sampling basins"),
    )
    return {"x": data["x"], "labels": data["label"], "energies": data["energy"]}, system


def _add_umbrella_frames(data: dict[str, np.ndarray], system: Any, samples_id: str, ctx: ToolContext) -> None:
    """Append an earlier round's umbrella frames (labels by the basin rule, exact energies) to the training data."""
    from models.free_energy.estimators import UmbrellaSamples

    path = find_stored(ctx, "umbrella", samples_id, "samples.npz", "umbrella samples", "umbrella_sampling")
    samples = UmbrellaSamples.load(path)
    x, origin = samples.x, samples.metadata.get("system", system.name)
    if origin != system.name or x.ndim != 2 or x.shape[1] != data["x"].shape[1] or len(x) == 0:
        raise ToolInputError(
            f"umbrella samples {samples_id} come from another system ({origin}, frames of dimension "
            f"{x.shape[1] if x.ndim == 2 else 0}), not {system.name}"
        )
    data["x"] = np.concatenate([data["x"], x])
    data["labels"] = np.concatenate([data["labels"], system.basin_of(x)])
    data["energies"] = np.concatenate([data["energies"], system.energy(x)])


def _file_data(path: Path) -> dict[str, np.ndarray]:
    """Training arrays from a user .npz, validated (shapes, integer labels, finite values)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ToolInputError(f"could not read {path.name} as an .npz file: {exc}") from exc
    if "x" not in arrays or not ({"labels", "label"} & set(arrays)):
        raise ToolInputError(f"{path.name} needs arrays 'x' and 'labels'; it has {sorted(arrays)}")
    x = np.asarray(arrays["x"], dtype=float)
    x = x.reshape(len(x), -1)
    labels = np.asarray(arrays.get("labels", arrays.get("label")))
    if not np.issubdtype(labels.dtype, np.integer):
        raise ToolInputError("labels must be integers (basin index, -1 for unlabelled)")
    energies = arrays.get("energies", arrays.get("energy"))
    if len(labels) != len(x) or (energies is not None and len(energies) != len(x)):
        raise ToolInputError(
            f"x has {len(x)} rows but labels/energies have {len(labels)}/{None if energies is None else len(energies)}"
        )
    if len(x) < 20:
        raise ToolInputError(f"need at least 20 samples to learn a CV, got {len(x)}")
    if not np.all(np.isfinite(x)):
        raise ToolInputError("x contains NaN or infinite values")
    data = {"x": x, "labels": labels.astype(int), "energies": None if energies is None else np.asarray(energies, float)}
    if "numbers" in arrays:
        data.update(_atomistic_arrays(arrays, x.shape[1], path.name))
    return data


def _atomistic_arrays(arrays: dict[str, np.ndarray], n_inputs: int, name: str) -> dict[str, np.ndarray]:
    """The atoms behind flattened positions x: atomic numbers (n_atoms,), cell (3, 3; zeros for none) and pbc (3,),
    validated, so umbrella_sampling can run MD on them."""
    numbers = np.asarray(arrays["numbers"])
    if numbers.ndim != 1 or not np.issubdtype(numbers.dtype, np.integer) or 3 * len(numbers) != n_inputs:
        raise ToolInputError(
            f"{name}: 'numbers' must hold one integer atomic number per atom, {n_inputs // 3} for x's {n_inputs} "
            f"columns (x = flattened positions); got shape {numbers.shape}"
        )
    if numbers.min() < 1 or numbers.max() > 118:
        raise ToolInputError(f"{name}: atomic numbers must be 1-118, got {numbers.min()}-{numbers.max()}")
    cell = np.asarray(arrays.get("cell", np.zeros((3, 3))), dtype=float)
    pbc = np.asarray(arrays.get("pbc", np.zeros(3, dtype=bool)), dtype=bool)
    if cell.shape != (3, 3) or pbc.shape != (3,) or not np.all(np.isfinite(cell)):
        raise ToolInputError(f"{name}: 'cell' must be a finite 3 x 3 matrix and 'pbc' 3 booleans")
    if pbc.any() and abs(np.linalg.det(cell)) < 1e-6:
        raise ToolInputError(f"{name}: periodic boundaries need a cell with non-zero volume")
    return {"numbers": numbers.astype(int), "cell": cell, "pbc": pbc}


def _cv_verdict(sep: dict[str, Any], names: list[str]) -> str:
    """A plain sentence saying whether the CV separates the basins, and which pair overlaps most if not."""
    if sep["separates"]:
        return (
            f"The CV separates the labelled basins ({', '.join(names)}): nearest-centroid accuracy "
            f"{sep['accuracy']:.2f}, largest distribution overlap {sep['max_overlap']:.2f}."
        )
    worst = max(sep["pair_overlaps"].items(), key=lambda kv: kv[1]) if sep["pair_overlaps"] else None
    pair = ""
    if worst:
        a, b = (int(v) for v in worst[0].split("-"))
        pair = f" Basins {names[a]} and {names[b]} overlap most ({worst[1]:.2f})."
    return (
        f"The CV does NOT separate the labelled basins: nearest-centroid accuracy {sep['accuracy']:.2f} "
        f"(needs >= 0.9) and largest distribution overlap {sep['max_overlap']:.2f} (needs <= 0.1).{pair} "
        "Free energies along it would mix basins; use more or better-labelled data, other features, or the "
        "multitask preset."
    )


def _fold_verdict(fold: tuple[float, int] | None, latent_dim: int) -> str:
    """A sentence when a CV on torsions folds states more than 90 deg apart onto one value (empty otherwise)."""
    from models.sampling.cv import TORSION_FOLD_LIMIT

    if fold is None or fold[0] <= TORSION_FOLD_LIMIT:
        return ""
    hint = "latent_dim=2 or " if latent_dim == 1 else ""
    return (
        f" It folds the torsions: {100 * fold[0]:.2f} % of training-frame pairs within 0.1 in the CV are more than "
        f"90 deg apart in some torsion (alanine dipeptide sampled wrong above {100 * TORSION_FOLD_LIMIT:.2f} %); "
        f"umbrella windows cannot tell those states apart. Use {hint}more data from each basin."
    )


@dataclass
class _CVData:
    """The arrays a CV is trained on (x, labels, energies, and numbers/cell/pbc for atoms), the basin names, the toy
    system they come from (None for a file), and what add_samples_id added (a sentence for the message)."""

    arrays: dict[str, Any]
    names: list[str]
    system: Any = None
    added: str = ""


@dataclass
class _StoredCV:
    """A trained CV as stored under its cv_id: model, config, validation metrics and the files written."""

    cv_id: str
    model: Any
    config: Any
    metrics: dict[str, Any]
    folder: Path
    checkpoint: Path
    data_path: Path


@tool(cost="minutes", reaches=(),
      estimate=lambda inp: 5.0 + 0.002 * inp.n_walkers * inp.n_steps / 10 + 0.1 * inp.epochs)
def learn_cv(inp: LearnCVInput, ctx: ToolContext) -> LearnCVOutput:
    """Learn a low-dimensional collective variable (CV, a reaction coordinate) that separates labelled basins, with a
    multitask neural network after Sun et al. (JCTC 2022): a shared encoder maps inputs to a 1D or 2D latent CV,
    trained to classify the basin and (multitask preset) predict the potential energy; presets 'classifier' and
    'autoencoder' are the single-task baselines. Data come either from short unbiased Langevin runs in each basin of
    a named toy system (5D Mueller-Brown, 5D three-well) or from an .npz file in the workspace (flattened positions
    with atomic numbers for an atomistic system, which umbrella_sampling then runs with a potential). Returns a cv_id
    for umbrella_sampling, validation metrics and a plain verdict on whether the CV separates the basins (accuracy >=
    0.9 and overlap <= 0.1), with PNG plots. add_samples_id retrains on an earlier round's umbrella frames as well
    (labelled by a toy system's basin rule, or for atoms by the basin whose minimum their energy minimisation ends
    in): a CV learned from basin data alone can leave the transition region unsampled or hide a barrier orthogonal
    to it, and one more round with those frames can fix that. On torsion features it also says how often the CV
    folds states more than 90 deg apart onto one value (torsion_fold_fraction), which the windows then cannot tell
    apart."""
    from models.sampling.cv import torsion_fold_fraction

    start = time.time()
    with _single_thread():
        data = _training_data(inp, ctx)
        cv = _train_and_store_cv(inp, ctx, data)
        fold = torsion_fold_fraction(cv.model, data.arrays["x"])
        histogram, map_uri = _cv_plots(inp, ctx, cv, data)
    return _learn_cv_output(inp, ctx, cv, data, fold, histogram, map_uri, time.time() - start)


def _training_data(inp: LearnCVInput, ctx: ToolContext) -> _CVData:
    """The training data: a toy system's basin runs or the user's .npz, plus an earlier round's frames if asked."""
    if inp.system is not None:
        arrays, system = _toy_data(inp, ctx)
        if inp.add_samples_id is not None:
            _add_umbrella_frames(arrays, system, inp.add_samples_id, ctx)
        return _CVData(arrays, list(system.basin_names), system)
    arrays = _file_data(workspace_path(str(inp.data_file), ctx.workspace, "data_file"))
    added = add_quenched_frames(arrays, inp.add_samples_id, ctx) if inp.add_samples_id is not None else ""
    n_cls = int(arrays["labels"].max()) + 1 if arrays["labels"].max() >= 0 else 0
    return _CVData(arrays, [str(i) for i in range(n_cls)], added=added)


def _train_and_store_cv(inp: LearnCVInput, ctx: ToolContext, data: _CVData) -> _StoredCV:
    """Train the preset's CV network on the data (a config the data cannot serve is an input error) and store it."""
    from models.sampling.cv import CVConfig, train_cv

    arrays = data.arrays
    overrides = {
        k: v
        for k, v in (("w_class", inp.w_class), ("w_energy", inp.w_energy), ("w_recon", inp.w_recon))
        if v is not None
    }
    if inp.preset == "multitask" and arrays["energies"] is None and "w_energy" not in overrides:
        overrides["w_energy"] = 0.0  # no energies in the file: the classification task alone remains
    try:
        config = CVConfig.preset(
            inp.preset,
            n_inputs=arrays["x"].shape[1],
            n_classes=max(len(data.names), 2),
            latent_dim=inp.latent_dim,
            hidden=list(inp.hidden),
            features=inp.features,
            feature_atoms=[list(a) for a in inp.feature_atoms],
            w_smooth=inp.w_smooth,
            **overrides,
        )
        if config.features != "identity" and arrays["x"].shape[1] % 3:
            raise ValueError("distance/torsion features need flattened Cartesian positions (n_atoms * 3 columns)")
        if config.feature_atoms and max(max(a) for a in config.feature_atoms) >= arrays["x"].shape[1] // 3:
            raise ValueError("feature_atoms refers to an atom index beyond the number of atoms in x")
        model, metrics = train_cv(
            config,
            arrays["x"],
            arrays["labels"],
            arrays["energies"],
            epochs=inp.epochs,
            seed=inp.seed,
            callback=lambda done, total, note: ctx.progress(
                0.3 + 0.6 * done / total, 1.0, f"training epoch {done}/{total}, {note}"
            ),
        )
    except ValueError as exc:
        raise ToolInputError(str(exc)) from exc
    return _store_cv(inp, ctx, data, model, config, metrics)


def _store_cv(inp: LearnCVInput, ctx: ToolContext, data: _CVData, model: Any, config: Any,
              metrics: dict[str, Any]) -> _StoredCV:
    """Save the CV (with its metadata) and its training data under a new cv_id, where umbrella_sampling finds them."""
    cv_id = new_id("cv")
    folder = root(ctx, "cv") / cv_id
    folder.mkdir(parents=True)
    model.metadata.update(
        {
            "cv_id": cv_id,
            "system": inp.system,
            "preset": inp.preset,
            "added_samples_id": inp.add_samples_id,
            "basin_names": data.names,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    checkpoint = model.save(folder / "cv.pt")
    arrays = data.arrays
    data_path = folder / "data.npz"
    np.savez_compressed(
        data_path,
        x=arrays["x"],
        labels=arrays["labels"],
        **({"energies": arrays["energies"]} if arrays["energies"] is not None else {}),
        **{k: arrays[k] for k in ("numbers", "cell", "pbc") if k in arrays},
    )
    return _StoredCV(cv_id, model, config, metrics, folder, checkpoint, data_path)


def _cv_plots(inp: LearnCVInput, ctx: ToolContext, cv: _StoredCV, data: _CVData) -> tuple[Path, str | None]:
    """The CV histogram of each basin and, for a toy system, the CV's contours over its exact free-energy surface."""
    from tools.free_energy.plots import plot_cv_histograms, plot_cv_map

    x, system, model = data.arrays["x"], data.system, cv.model
    s_all = model.cv_numpy(x)
    ctx.progress(0.95, 1.0, "plots")
    title = f"{inp.preset} CV ({inp.system or 'user data'})"
    histogram = plot_cv_histograms(s_all, data.arrays["labels"], data.names, cv.folder / "cv_histograms.png", title)
    if system is None:
        return histogram, None
    xs, ys, fes = system.exact_fes_2d(121)
    xx, yy = np.meshgrid(xs, ys)
    u = np.zeros((xx.size, system.dim))
    u[:, 0], u[:, 1] = xx.ravel(), yy.ravel()
    cv_grid = model.cv_numpy(system.to_cartesian(u))[:, 0].reshape(xx.shape)
    pts = system.active(x[:: max(1, len(x) // 3000)])
    path = plot_cv_map(xs, ys, fes, cv_grid, pts, cv.folder / "cv_map.png", f"{inp.preset} CV on {system.name}")
    return histogram, ctx.artifact_uri(path)


def _learn_cv_output(
    inp: LearnCVInput, ctx: ToolContext, cv: _StoredCV, data: _CVData, fold: tuple[float, int] | None,
    histogram: Path, map_uri: str | None, seconds: float,
) -> LearnCVOutput:
    """The tool's answer: where the CV is, how well it separates the basins, and the verdict in words."""
    config, metrics, sep = cv.config, cv.metrics, cv.metrics["separation"]
    names, labels = data.names, data.arrays["labels"]
    return LearnCVOutput(
        cv_id=cv.cv_id,
        checkpoint_uri=ctx.artifact_uri(cv.checkpoint),
        data_uri=ctx.artifact_uri(cv.data_path),
        histogram_plot_uri=ctx.artifact_uri(histogram),
        map_plot_uri=map_uri,
        system=inp.system,
        preset=inp.preset,
        loss_weights={"class": config.w_class, "energy": config.w_energy, "recon": config.w_recon,
                      "smooth": config.w_smooth},
        n_samples=len(data.arrays["x"]),
        basin_names=names,
        basin_counts=np.bincount(labels[labels >= 0], minlength=len(names)).tolist(),
        basin_cv_centroids={names[int(k)]: v for k, v in sep["centroids"].items()},
        classifier_accuracy=metrics["classifier_accuracy"],
        cv_separation_accuracy=sep["accuracy"],
        cv_max_overlap=sep["max_overlap"],
        energy_rmse=metrics["energy_rmse"],
        reconstruction_rmse=metrics["reconstruction_rmse"],
        separates_basins=sep["separates"],
        torsion_fold_fraction=None if fold is None else round(fold[0], 5),
        message=_cv_verdict(sep, names) + _fold_verdict(fold, config.latent_dim) + data.added,
        seconds=round(seconds, 2),
    )


# ---------------------------------------------------------------------------------------------- umbrella_sampling


def _walkers(inp: UmbrellaSamplingInput) -> dict[str, Any]:
    """The walker settings of umbrella_toy that every umbrella_sampling run takes from its input."""
    return {
        "n_walkers": inp.n_walkers or 4,
        "n_steps": inp.n_steps,
        "n_equil": inp.n_equil,
        "stride": inp.stride,
        "exchange_every": inp.exchange_every or None,
    }


def _umbrella_estimate(inp: UmbrellaSamplingInput) -> float:
    """Rough wall time in seconds (per-step overhead plus per-walker cost)."""
    return 3.0 + inp.n_steps * (1.5e-3 + 3e-5 * inp.n_windows * (inp.n_walkers or 4))


@tool(cost="long", reaches=(), estimate=_umbrella_estimate)
def umbrella_sampling(inp: UmbrellaSamplingInput, ctx: ToolContext) -> UmbrellaSamplingOutput:
    """Umbrella sampling along a learned CV (component 0): harmonic bias windows kappa/2 (s(x) - s_i)^2 kT, bias
    forces by autograd through the CV network. Toy systems: Metropolis-adjusted Langevin walkers (all windows in one
    batch). Atomistic systems (a CV learned from positions with atomic numbers): Langevin MD per window with the
    chosen potential (ASE; temperature_K, timestep_fs), each window started from the training frame nearest its
    center; its frames' basins come from quenching them with the potential (the training basin whose minimum each
    ends in) or from basin_rule, never from the CV. Both exchange configurations between neighbouring windows (REUS)
    every exchange_every steps. Window centers default to an even grid that spans the basin CV values with a margin
    (atomistic systems: the training frames' CV values, 1st to 99th percentile), or s_min to s_max. With
    dimensions=2 (toy systems, a CV learned with latent_dim=2) the windows sit on a square grid over both components
    instead and exchange along both axes. Long: run it as a job for big sizes. Returns a samples_id for
    free_energy_profile (MBAR/WHAM) and a plot of the windows."""
    from models.free_energy.estimators import refine_umbrella, umbrella_toy
    from models.potentials.toy import get_toy_system
    from models.sampling.cv import MultitaskCV

    start = time.time()
    ckpt = find_stored(ctx, "cv", inp.cv_id, "cv.pt", "CV", "learn_cv")
    model = MultitaskCV.load(ckpt)
    system_name = model.metadata.get("system")
    with np.load(ckpt.parent / "data.npz") as z:
        data = {k: z[k] for k in z.files}
    pool, labels = data["x"], data["labels"]
    if not system_name:
        if "numbers" not in data:
            raise ToolInputError(
                f"CV {inp.cv_id} was trained on user data without atomic numbers, so there is nothing to run MD on: "
                "learn_cv from an .npz with flattened positions in 'x' and 'numbers' (and 'cell', 'pbc' if periodic)"
            )
        return umbrella_atomistic(inp, ctx, model, data, start)
    if inp.basin_rule is not None:
        raise ToolInputError(f"basin_rule applies to atomistic CVs; {system_name} labels basins by its own rule")
    system = get_toy_system(system_name)
    if inp.dimensions == 2:
        return _umbrella_grid(inp, ctx, model, system, pool, start)
    with _single_thread():
        centers, kappa = line_centers(inp, model.cv_numpy(pool)[:, 0], labels)
        samples = umbrella_toy(
            system,
            model,
            centers,
            kappa,
            pool,
            seed=inp.seed,
            **_walkers(inp),
            callback=lambda done, total, _: ctx.progress(done, total, f"umbrella step {done}/{total}"),
        )

        def more_windows(so_far: Any, centers_new: np.ndarray, kappas_new: np.ndarray, round_: int) -> Any:
            return umbrella_toy(
                system,
                model,
                centers_new,
                kappas_new,
                np.concatenate([pool, so_far.x]),
                seed=inp.seed + round_ + 1,
                **_walkers(inp),
                callback=lambda done, total, _: ctx.progress(
                    done, total, f"refinement {round_ + 1}: {len(centers_new)} windows, step {done}/{total}"
                ),
            )

        samples = refine_umbrella(samples, more_windows, inp.refine_rounds)
    return _umbrella_output(inp, ctx, model, system, samples, kappa, start)


def _umbrella_output(
    inp: UmbrellaSamplingInput, ctx: ToolContext, model: Any, system: Any, samples: Any, kappa: float, start: float,
    spacing: float | None = None,
) -> UmbrellaSamplingOutput:
    """_samples_output for the samples of a toy system."""
    return samples_output(
        inp, ctx, model, system.name, list(system.basin_names), samples, kappa, start, spacing
    )


MAX_GRID_WINDOWS = 400


def _grid_centers(s_pool: np.ndarray, inp: UmbrellaSamplingInput) -> tuple[np.ndarray, float]:
    """Square-grid window centers over the convex hull of the pool's 2D CV values (plus one spacing) and the spacing:
    inp.grid_spacing, or the one that puts about inp.n_windows windows inside the hull."""
    from models.free_energy.estimators import grid_window_centers, hull_grid_spacing

    try:
        spacing = inp.grid_spacing or hull_grid_spacing(s_pool, inp.n_windows)
    except ValueError as exc:
        raise ToolInputError(f"the CV's two components are degenerate on the training data ({exc}); use "
                             "dimensions=1") from None
    n_axis = np.ceil(np.ptp(s_pool, axis=0) / spacing).astype(int) + 3
    if np.prod(n_axis) > 50 * MAX_GRID_WINDOWS:
        raise ToolInputError(
            f"grid_spacing {spacing:.3g} gives a {n_axis[0]} x {n_axis[1]} grid over the CV range; use a larger spacing"
        )
    centers = grid_window_centers(s_pool, spacing, fill_hull=True)
    if len(centers) > MAX_GRID_WINDOWS:
        raise ToolInputError(
            f"{len(centers)} grid windows at spacing {spacing:.3g}: at most {MAX_GRID_WINDOWS}; use a larger "
            "grid_spacing or fewer n_windows"
        )
    return centers, spacing


def _umbrella_grid(
    inp: UmbrellaSamplingInput, ctx: ToolContext, model: Any, system: Any, pool: np.ndarray, start: float
) -> UmbrellaSamplingOutput:
    """umbrella_sampling with dimensions=2: isotropic windows on a grid over both CV components, one MALA batch with
    replica exchange along both grid axes (models.free_energy.estimators.umbrella_toy with component (0, 1))."""
    from models.free_energy.estimators import umbrella_toy

    if model.config.latent_dim != 2:
        raise ToolInputError(
            f"CV {inp.cv_id} has {model.config.latent_dim} component(s): dimensions=2 needs a CV learned with "
            "latent_dim=2"
        )
    with _single_thread():
        centers, spacing = _grid_centers(model.cv_numpy(pool)[:, :2], inp)
        kappa = float(inp.kappa if inp.kappa is not None else 1.0 / spacing**2)
        samples = umbrella_toy(
            system,
            model,
            centers,
            kappa,
            pool,
            seed=inp.seed,
            component=(0, 1),
            **_walkers(inp),
            callback=lambda done, total, _: ctx.progress(
                done, total, f"umbrella step {done}/{total} ({len(centers)} grid windows)"
            ),
        )
    return _umbrella_output(inp, ctx, model, system, samples, kappa, start, spacing)


# -------------------------------------------------------------------------------------------- free_energy_profile


class FreeEnergyProfileInput(ToolInput):
    samples_id: str = Field(pattern=ID_PATTERN, description="Samples from umbrella_sampling.")
    method: Literal["mbar", "wham", "both"] = Field(
        default="both", description="MBAR (pymbar 4), binned WHAM, or both (MBAR is the primary result)."
    )
    n_bins: int = Field(default=40, ge=5, le=400, description="Bins of the profile along s.")
    decorrelate: bool = Field(
        default=True, description="Subsample each walker by its statistical inefficiency before the analysis."
    )
    n_bootstrap: int = Field(default=20, ge=0, le=500, description="Bootstrap samples for WHAM uncertainties.")


class BasinFreeEnergy(BaseModel):
    basin: str
    dF_kT: float | None = Field(description="Free energy of the basin relative to the first basin, in kT.")
    error_kT: float | None = Field(description="One standard error, kT.")
    exact_kT: float | None = Field(default=None, description="Exact value (toy systems: numerical integration).")
    deviation_kT: float | None = Field(default=None, description="dF - exact.")


class ProfilePoint(BaseModel):
    s: float
    F_kT: float | None
    error_kT: float | None


class FreeEnergyProfileOutput(BaseModel):
    samples_id: str
    method: str
    profile: list[ProfilePoint] = Field(
        description="F(s) in kT (minimum 0), from the primary method; empty for 2D windows, whose F(s0, s1) is the "
        "profile plot."
    )
    basins: list[BasinFreeEnergy]
    basins_wham: list[BasinFreeEnergy] | None = None
    max_mbar_wham_difference_kT: float | None = Field(default=None, description="Largest basin dF difference.")
    min_neighbour_overlap: float | None = Field(default=None, description="Smallest MBAR overlap of adjacent windows.")
    overlap_matrix: list[list[float]] | None = None
    statistical_inefficiency: list[float]
    n_samples_used: int
    convergence: dict[str, Any] = Field(default_factory=dict, description="Basin dF from each half of the run.")
    warnings: list[str] = Field(description="Window overlap, convergence and sampling problems, in plain words.")
    profile_plot_uri: str
    surface_plot_uri: str | None = None
    result_uri: str = Field(description="artifact:// URI of the full result as JSON.")
    seconds: float


def _basins(result: Any, names: list[str], exact: np.ndarray | None) -> list[BasinFreeEnergy]:
    """Basin free energies of an analysis, with exact values and deviations when known."""
    out = []
    if result.basin_df is None:
        return out
    for b, name in enumerate(names[: len(result.basin_df)]):
        df = result.basin_df[b]
        err = None if result.basin_df_err is None else result.basin_df_err[b]
        ex = None if exact is None else float(exact[b])
        ok = np.isfinite(df)
        out.append(
            BasinFreeEnergy(
                basin=name,
                dF_kT=round(float(df), 4) if ok else None,
                error_kT=round(float(err), 4) if err is not None and np.isfinite(err) else None,
                exact_kT=None if ex is None else round(ex, 4),
                deviation_kT=None if ex is None or not ok else round(float(df) - ex, 4),
            )
        )
    return out


@tool(cost="minutes", reaches=(), read_only=False, estimate=lambda inp: 10.0 + 0.5 * inp.n_bootstrap)
def free_energy_profile(inp: FreeEnergyProfileInput, ctx: ToolContext) -> FreeEnergyProfileOutput:
    """Free energy from umbrella-sampling samples: the profile F(s) along the CV and the free-energy difference of
    each basin relative to the first, in kT, with uncertainties, by MBAR (pymbar 4) and/or WHAM (bootstrap errors).
    Basin free energies reweight every sample to the unbiased ensemble, so basins are defined by the system's own
    rule (atomistic: quenching or basin_rule), not by the CV; toy systems also get the exact values from numerical
    integration and a 2D surface plot. Warns, with the overlap matrix, when neighbouring windows do not overlap, and
    when the two halves of the run disagree (not converged)."""
    from models.free_energy.estimators import (
        UmbrellaSamples,
        decorrelate,
        mbar_analysis,
        wham_analysis,
    )
    from tools.free_energy.plots import plot_profiles

    start = time.time()
    path = find_stored(ctx, "umbrella", inp.samples_id, "samples.npz", "umbrella samples", "umbrella_sampling")
    samples = UmbrellaSamples.load(path)
    if samples.s.ndim == 2:
        return _grid_free_energy(inp, ctx, samples, path, start)
    g = np.ones(samples.n_windows)
    if inp.decorrelate:
        ctx.progress(0.05, 1.0, "statistical inefficiency")
        samples, g = decorrelate(samples)
    system, exact, names = _samples_system(samples)
    n_basins = int(samples.basin.max()) + 1 if samples.basin.size else 0
    names = names or [str(b) for b in range(n_basins)]
    notes: list[str] = []
    results: dict[str, Any] = {}
    if inp.method in ("mbar", "both"):
        ctx.progress(0.2, 1.0, "MBAR")
        results["mbar"] = mbar_analysis(samples, inp.n_bins)
    if inp.method in ("wham", "both"):
        ctx.progress(0.6, 1.0, "WHAM")
        results["wham"] = wham_analysis(samples, inp.n_bins, inp.n_bootstrap, seed=0)
    primary = results.get("mbar") or results["wham"]
    for name, res in results.items():
        notes += [f"{name.upper()}: {w}" for w in res.warnings]
    overlap = results["mbar"].overlap if "mbar" in results else None
    min_overlap = None
    if overlap is not None:
        order = np.argsort(samples.centers)
        min_overlap = round(float(min(overlap[order[i], order[i + 1]] for i in range(len(order) - 1))), 4)
    basins = _basins(primary, names, exact)
    basins_wham = _basins(results["wham"], names, exact) if "wham" in results and "mbar" in results else None
    max_diff = None
    if basins_wham:
        diffs = [
            abs(a.dF_kT - b.dF_kT)
            for a, b in zip(basins, basins_wham, strict=False)
            if a.dF_kT is not None and b.dF_kT is not None
        ]
        max_diff = round(max(diffs), 4) if diffs else None
    if not basins:
        notes.append("no basin labels in the samples: only the profile along s is available")
    folder = path.parent
    stamp = time.strftime("%H%M%S")
    profiles = {k.upper(): (r.bin_centers, r.profile, r.profile_err) for k, r in results.items()}
    prof_png = plot_profiles(profiles, folder / f"profile-{stamp}.png", f"free energy along the CV ({inp.samples_id})")
    surface_uri = None
    if primary.weights is not None:
        surface_uri = _toy_surface(ctx, system, samples.x, primary.weights, folder / f"surface-{stamp}.png")
    out = FreeEnergyProfileOutput(
        samples_id=inp.samples_id,
        method=inp.method,
        profile=[
            ProfilePoint(s=round(float(x), 5), F_kT=f, error_kT=e)
            for x, f, e in zip(
                primary.bin_centers, round_list(primary.profile), round_list(primary.profile_err), strict=True
            )
        ],
        basins=basins,
        basins_wham=basins_wham,
        max_mbar_wham_difference_kT=max_diff,
        min_neighbour_overlap=min_overlap,
        overlap_matrix=None if overlap is None else np.round(overlap, 4).tolist(),
        statistical_inefficiency=round_list(g, 3),
        n_samples_used=len(samples.s),
        convergence=primary.extra.get("convergence", {}),
        warnings=notes,
        profile_plot_uri=ctx.artifact_uri(prof_png),
        surface_plot_uri=surface_uri,
        result_uri="",
        seconds=0.0,
    )
    return _stored_result(out, ctx, folder / f"free_energy-{stamp}.json", start)


def _samples_system(samples: Any) -> tuple[Any, np.ndarray | None, list[str]]:
    """The toy system the samples came from (None for user data), its exact basin free energies and the basin
    names (the system's, else those stored with the samples)."""
    names = list(samples.metadata.get("basin_names", []))
    if not samples.metadata.get("system"):
        return None, None, names
    from models.potentials.toy import get_toy_system

    system = get_toy_system(samples.metadata["system"])
    return system, system.exact_basin_free_energies(), list(system.basin_names)


def _toy_surface(ctx: ToolContext, system: Any, x: np.ndarray, weights: np.ndarray, path: Path) -> str | None:
    """URI of a plot of the exact and the reweighted (unbiased-weight) 2D surface of a toy system, or None when the
    samples are not of a toy system."""
    from models.free_energy.estimators import reweighted_histogram_2d
    from tools.free_energy.plots import plot_surfaces

    if system is None or x.shape[1] != system.dim:
        return None
    est = reweighted_histogram_2d(system.active(x), weights, system.grid_extent, 60)
    return ctx.artifact_uri(plot_surfaces(system.exact_fes_2d(121), est, path, f"{system.name}: exact vs reweighted"))


def _stored_result(out: FreeEnergyProfileOutput, ctx: ToolContext, path: Path, start: float) -> FreeEnergyProfileOutput:
    """The result with its wall time and the URI of its JSON copy, written next to the samples."""
    out.seconds = round(time.time() - start, 2)
    out.result_uri = ctx.artifact_uri(path)
    path.write_text(json.dumps(out.model_dump(), indent=1))
    return out


def _grid_free_energy(
    inp: FreeEnergyProfileInput, ctx: ToolContext, samples: Any, path: Path, start: float
) -> FreeEnergyProfileOutput:
    """free_energy_profile for 2D grid windows: basin free energies by MBAR over both CV components
    (models.free_energy.estimators.mbar_basins_nd, which thins each window by its own statistical inefficiency),
    halves of the
    run as a convergence check, and F(s0, s1) as the profile plot. WHAM is 1D here, so MBAR answers alone."""
    from types import SimpleNamespace

    from models.free_energy.estimators import MIN_NEIGHBOUR_OVERLAP, mbar_basins_nd
    from tools.free_energy.plots import plot_cv_surface

    system, exact, names = _samples_system(samples)
    notes = [] if inp.method == "mbar" else ["WHAM is 1D here: 2D grid windows are analysed by MBAR alone"]
    ctx.progress(0.2, 1.0, "MBAR over the 2D windows")
    res = mbar_basins_nd(samples.s, samples.basin, samples.window, samples.centers, samples.kappa)
    names = names or [str(b) for b in range(len(res["basin_df"]))]
    basins = _basins(SimpleNamespace(basin_df=res["basin_df"], basin_df_err=res["basin_err"]), names, exact)
    weakest = res["best_neighbour_overlap"]
    low = np.flatnonzero(weakest < MIN_NEIGHBOUR_OVERLAP)
    if len(low):
        notes.append(
            f"{len(low)} window(s) overlap no other window by {MIN_NEIGHBOUR_OVERLAP} or more (windows "
            f"{low[:10].tolist()}, best overlaps {np.round(weakest[low[:10]], 4).tolist()}): use a finer grid_spacing"
        )
    if res["clusters"] > 1:
        notes.append(
            f"the windows form {res['clusters']} groups with no overlap between them: free energies between groups "
            "are undetermined; use a finer grid_spacing or more steps"
        )
    ctx.progress(0.6, 1.0, "halves")
    halves = []
    cut = np.array([np.median(samples.frame[samples.window == k]) for k in range(samples.n_windows)])
    for first in (True, False):
        mask = (samples.frame <= cut[samples.window]) if first else (samples.frame > cut[samples.window])
        half = mbar_basins_nd(samples.s[mask], samples.basin[mask], samples.window[mask], samples.centers,
                              samples.kappa)
        halves.append(round_list(half["basin_df"]))
    convergence = {"first_half_kT": halves[0], "second_half_kT": halves[1]}
    spread = [abs(a - b) for a, b in zip(*halves, strict=True) if a is not None and b is not None]
    errs = [b.error_kT for b in basins if b.error_kT is not None]
    if spread and errs and max(spread) > max(0.3, 3 * max(errs)):
        convergence["warning"] = f"the halves of the run differ by up to {max(spread):.2f} kT: not converged"
        notes.append(convergence["warning"])
    folder = path.parent
    stamp = time.strftime("%H%M%S")
    used, weights = res["frames"], res["weights"]
    surface_png = plot_cv_surface(samples.s[used], weights, folder / f"profile-{stamp}.png",
                                  f"free energy over the 2D CV ({inp.samples_id})")
    surface_uri = _toy_surface(ctx, system, samples.x[used], weights, folder / f"surface-{stamp}.png")
    out = FreeEnergyProfileOutput(
        samples_id=inp.samples_id,
        method="mbar",
        profile=[],
        basins=basins,
        min_neighbour_overlap=round(float(weakest.min()), 4) if len(weakest) else None,
        overlap_matrix=None,
        statistical_inefficiency=round_list(res["g"], 3),
        n_samples_used=int(res["n_used"]),
        convergence=convergence,
        warnings=notes,
        profile_plot_uri=ctx.artifact_uri(surface_png),
        surface_plot_uri=surface_uri,
        result_uri="",
        seconds=0.0,
    )
    return _stored_result(out, ctx, folder / f"free_energy-{stamp}.json", start)
