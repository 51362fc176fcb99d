"""What the free-energy tools (tools/free_energy/workflow.py) and their atomistic branch
(tools/free_energy/atomistic.py)
share: CVs and umbrella samples stored in the workspace by id, the umbrella_sampling input and output, window
placement along a CV, and the stored samples' report."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from tools.core.errors import ToolInputError
from tools.core.registry import ToolContext, ToolInput

ID_PATTERN = r"^[a-z]+-[0-9a-f]{10}$"


def root(ctx: ToolContext, kind: str) -> Path:
    """workspace/free_energy/{kind}: where CVs and umbrella samples live so later tools find them by id."""
    path = ctx.workspace / "free_energy" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_id(prefix: str) -> str:
    """A short random id such as cv-0123456789 (matches ID_PATTERN)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def find_stored(ctx: ToolContext, kind: str, ident: str, filename: str, what: str, made_by: str) -> Path:
    """The stored file of an id; ToolInputError naming the tool that makes it when absent."""
    path = root(ctx, kind) / ident / filename
    if not path.exists():
        raise ToolInputError(f"no {what} with id {ident!r} in this workspace; create one with {made_by} first")
    return path


def round_list(values: Any, digits: int = 4) -> list[float | None]:
    """Rounded floats with NaN/inf as None (JSON-safe)."""
    return [None if not np.isfinite(v) else round(float(v), digits) for v in np.asarray(values, dtype=float)]


class BasinRule(ToolInput):
    """Basins of atomistic frames by the distance between two atoms cut at edges: a rule of the user's own, for
    basins that quenching cannot tell apart (one minimum, such as the short and the long half of a bond)."""

    atoms: list[int] = Field(min_length=2, max_length=2, description="The two atoms' indices (0-based, as in 'x').")
    edges_A: list[float] = Field(
        min_length=1, max_length=19,
        description="Ascending distances (Angstrom): basin 0 below edges_A[0], basin b from edges_A[b-1] up to "
        "edges_A[b], the last basin from the last edge up.",
    )

    @model_validator(mode="after")
    def _valid(self) -> BasinRule:
        if min(self.atoms) < 0 or self.atoms[0] == self.atoms[1]:
            raise ValueError(f"atoms must be two different non-negative indices, got {self.atoms}")
        if min(self.edges_A) <= 0 or any(b <= a for a, b in zip(self.edges_A, self.edges_A[1:], strict=False)):
            raise ValueError(f"edges_A must be positive and ascending, got {self.edges_A}")
        return self

    def describe(self) -> str:
        """The rule in words, for reports."""
        return f"the distance between atoms {self.atoms[0]} and {self.atoms[1]} cut at {self.edges_A} A"


class UmbrellaSamplingInput(ToolInput):
    cv_id: str = Field(
        pattern=ID_PATTERN,
        description="A CV from learn_cv: trained on a toy system, or on atomistic data (positions with 'numbers').",
    )
    n_windows: int = Field(
        default=24, ge=2, le=400,
        description="Number of harmonic windows along the CV (at most 100), or with dimensions=2 roughly how many "
        "grid windows should cover the CV's 2D image of the data (sets the grid spacing unless grid_spacing is given).",
    )
    dimensions: Literal[1, 2] = Field(
        default=1,
        description="1: windows along CV component 0. 2: isotropic windows on a square grid over both components of a "
        "2D CV (latent_dim=2), covering the convex hull of the training data's CV values plus one spacing, with "
        "replica exchange along both grid axes. A 1D CV puts several routes between basins at the same CV value; "
        "2D windows bias the routes apart.",
    )
    grid_spacing: float | None = Field(
        default=None, gt=0, le=1e3, description="dimensions=2: grid spacing in CV units (default from n_windows)."
    )
    s_min: float | None = Field(default=None, description="First window center (default: below the basin CVs).")
    s_max: float | None = Field(default=None, description="Last window center (default: above the basin CVs).")
    kappa: float | None = Field(
        default=None,
        gt=0,
        le=1e7,
        description="Force constant in kT per CV unit squared, bias kappa/2 (s - center)^2 kT; default 1/spacing^2.",
    )
    n_walkers: int | None = Field(
        default=None, ge=1, le=32,
        description="Independent walkers per window (toy systems, default 4; atomistic systems run one MD per window).",
    )
    n_steps: int = Field(default=4000, ge=100, le=500_000, description="Langevin (MD) steps per walker.")
    n_equil: int = Field(default=500, ge=0, description="Steps discarded as equilibration (must be < n_steps).")
    stride: int = Field(default=10, ge=1, le=10_000, description="Keep a frame every this many steps.")
    exchange_every: int = Field(
        default=50,
        ge=0,
        le=100_000,
        description="Try configuration swaps between neighbouring windows every this many steps (Hamiltonian "
        "replica exchange; relaxes barriers hidden orthogonal to the CV); 0 disables.",
    )
    refine_rounds: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Rounds of adaptive refinement: where the CV was never sampled or neighbouring windows do not "
        "overlap, add windows 4x stiffer, spaced by their thermal width, and sample them too.",
    )
    potential: str | None = Field(
        default=None,
        max_length=500,
        description="Atomistic CVs: 'chgnet', 'sevennet-0', 'emt', or a checkpoint path of a matsearch potential; "
        "default from settings.",
    )
    basin_rule: BasinRule | None = Field(
        default=None,
        description="Atomistic CVs: label the frames' basins by this distance rule. Default: by quenching, each frame "
        "minimised with the potential and given the basin of the training frames' minimum it ends in (frames that "
        "end in any other minimum stay unlabelled); basins that share a minimum need a rule.",
    )
    temperature_K: float = Field(default=300.0, gt=0, le=5000, description="Atomistic CVs: MD temperature (K).")
    timestep_fs: float = Field(default=1.0, gt=0, le=10, description="Atomistic CVs: MD time step (fs).")
    seed: int = Field(default=0, ge=0, description="Random seed of the sampling (same seed, same result).")

    @model_validator(mode="after")
    def _consistent(self) -> UmbrellaSamplingInput:
        if self.n_equil >= self.n_steps:
            raise ValueError(f"n_equil ({self.n_equil}) must be smaller than n_steps ({self.n_steps})")
        if (self.n_steps - self.n_equil) // self.stride < 2:
            raise ValueError("fewer than 2 frames per walker would be kept: lower stride or n_equil")
        if self.dimensions == 1 and self.n_windows > 100:
            raise ValueError(f"n_windows ({self.n_windows}) is at most 100 along one CV component")
        if self.dimensions == 2 and (self.s_min is not None or self.s_max is not None or self.refine_rounds):
            raise ValueError("s_min, s_max and refine_rounds apply to dimensions=1 only")
        if self.s_min is not None and self.s_max is not None and self.s_min >= self.s_max:
            raise ValueError(f"s_min ({self.s_min}) must be below s_max ({self.s_max})")
        return self


class UmbrellaSamplingOutput(BaseModel):
    samples_id: str = Field(description="Id of the stored samples; pass it to free_energy_profile.")
    samples_uri: str = Field(description="artifact:// URI of the samples (.npz: centers, kappa, window, s, x, ...).")
    windows_plot_uri: str = Field(description="PNG: CV histogram of each window.")
    cv_id: str
    system: str | None = Field(description="The toy system, or None for an atomistic system from user data.")
    potential: str | None = Field(default=None, description="Atomistic systems: the potential the MD ran on.")
    basins_from: str | None = Field(
        default=None, description="Atomistic systems: how the frames' basins were labelled (quenching or basin_rule)."
    )
    centers: list[float] | list[list[float]] = Field(description="Window centers (dimensions=2: [s0, s1] pairs).")
    grid_spacing: float | None = Field(default=None, description="dimensions=2: the grid spacing in CV units.")
    kappa: float = Field(description="Force constant of the initial windows, kT per CV unit squared.")
    kappas: list[float] = Field(description="Force constant of every window (refined windows are stiffer).")
    refined_windows: int = Field(description="Windows added by adaptive refinement.")
    n_samples: int
    samples_per_window: list[int]
    langevin_acceptance: float | None = Field(description="Toy systems: Metropolis acceptance of the MALA walkers.")
    exchange_acceptance: float | None
    warnings: list[str]
    seconds: float


def line_centers(
    inp: UmbrellaSamplingInput, s_pool: np.ndarray, labels: np.ndarray, span_data: bool = False
) -> tuple[np.ndarray, float]:
    """Window centers along CV component 0 and their force constant (kT per CV unit squared): an even grid over the
    basins' median CV values with a margin (models.free_energy.estimators.default_windows), or with `span_data` over the
    training frames' CV values (1st to 99th percentile, so the basins' tails get windows too), or from s_min to
    s_max; inp.kappa overrides the default 1/spacing^2."""
    from models.free_energy.estimators import default_windows

    if span_data:
        centers = np.linspace(*np.percentile(s_pool, [1, 99]), inp.n_windows)
    else:
        basin_s = np.array([np.median(s_pool[labels == b]) for b in np.unique(labels[labels >= 0])])
        centers = default_windows(basin_s, inp.n_windows)[0]
    if inp.s_min is not None or inp.s_max is not None:
        lo = centers[0] if inp.s_min is None else inp.s_min
        hi = centers[-1] if inp.s_max is None else inp.s_max
        if lo >= hi:
            raise ToolInputError(f"window range is empty: s_min {lo:.3g} >= s_max {hi:.3g}")
        centers = np.linspace(lo, hi, inp.n_windows)
    return centers, float(inp.kappa if inp.kappa is not None else 1.0 / (centers[1] - centers[0]) ** 2)


def samples_output(
    inp: UmbrellaSamplingInput, ctx: ToolContext, model: Any, system_name: str | None, basin_names: list[str],
    samples: Any, kappa: float, start: float, spacing: float | None = None,
) -> UmbrellaSamplingOutput:
    """Store umbrella samples (with their provenance), plot the windows (along s, or on the 2D grid when `spacing`
    is given) and report them, with plain-word warnings."""
    from models.free_energy.estimators import window_kappas
    from tools.free_energy.plots import plot_grid_windows, plot_windows

    samples.metadata.update(
        {"cv_id": inp.cv_id, "cv_preset": model.metadata.get("preset"), "system": system_name,
         "basin_names": basin_names}
    )
    if spacing is not None:
        samples.metadata["grid_spacing"] = spacing
    samples_id = new_id("us")
    folder = root(ctx, "umbrella") / samples_id
    folder.mkdir(parents=True)
    path = samples.save(folder / "samples.npz")
    plotter = plot_windows if spacing is None else plot_grid_windows
    plot = plotter(samples.s, samples.window, samples.centers, folder / "windows.png")
    counts = np.bincount(samples.window, minlength=samples.n_windows)
    notes = []
    if samples.metadata["acceptance"] is not None and samples.metadata["acceptance"] < 0.5:
        notes.append(f"Langevin acceptance is low ({samples.metadata['acceptance']:.2f}): kappa may be too stiff")
    visited = set(np.unique(samples.basin[samples.basin >= 0]).tolist())
    missing = [name for b, name in enumerate(basin_names) if b not in visited]
    if missing:
        fix = "widen the window range" if spacing is None else "use a finer grid_spacing"
        notes.append(f"basins never visited by any window: {', '.join(missing)}; {fix}")
    centers = (
        round_list(samples.centers, 5) if spacing is None else [round_list(c, 5) for c in samples.centers]
    )
    return UmbrellaSamplingOutput(
        samples_id=samples_id,
        samples_uri=ctx.artifact_uri(path),
        windows_plot_uri=ctx.artifact_uri(plot),
        cv_id=inp.cv_id,
        system=system_name,
        potential=samples.metadata.get("potential"),
        basins_from=samples.metadata.get("basins_from"),
        centers=centers,
        grid_spacing=None if spacing is None else round(spacing, 5),
        kappa=round(kappa, 4),
        kappas=round_list(window_kappas(samples.kappa, samples.n_windows), 4),
        refined_windows=int(samples.metadata.get("refined_windows", 0)),
        n_samples=len(samples.s),
        samples_per_window=counts.tolist(),
        langevin_acceptance=samples.metadata["acceptance"],
        exchange_acceptance=samples.metadata["exchange_acceptance"] if inp.exchange_every else None,
        warnings=notes,
        seconds=round(time.time() - start, 2),
    )
