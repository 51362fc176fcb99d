"""Umbrella sampling of alanine dipeptide on a grid of windows in a learned 2D CV or in (phi, psi) themselves.

A 1D CV learned on the periodic (phi, psi) torus holds several routes between C7eq and C7ax at the same CV value
(across phi = 0, across phi = +-180, and sub-basins such as alpha_L beside C7ax); the barriers between them lie
across the CV, where no 1D window helps (benchmarks/RESULTS.md has the numbers). A 2D latent trained
with the reconstruction head as well is close to one-to-one on the sampled torus (data pairs more than 90 deg apart
that land within 0.15 of each other in the latent: 0.03 % against 6.5 % without it), so 2D windows leave no
slow coordinate unbiased. The windows' MBAR is models.free_energy.estimators.mbar_basins_nd. Used by
free_energy_alanine.py
with `--latent-dim 2` and `--reference-grid N`. Independent 2D windows still leave slow mixing inside some windows
(the torus cannot map one-to-one onto a plane, and where the latent is compressed a window spans a barrier), so by
default the windows run as one replica-exchange grid (free_energy_alanine.reus_lockstep with
models.free_energy.estimators.grid_pairs); `--no-exchange` samples them one by one.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from models.sampling.cv import MultitaskCV

N_GRID = 145  # points per torsion in the tabulated CV (2.5 deg)


def latent_of_torsions(model: MultitaskCV, phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """The scaled latent s (n, d) of torsions (phi, psi); the network's features are [sin phi, sin psi, cos phi,
    cos psi]."""
    feats = torch.as_tensor(np.stack([np.sin(phi), np.sin(psi), np.cos(phi), np.cos(psi)], -1), dtype=torch.float64)
    with torch.no_grad():
        z = model.encoder((feats - model.in_mean) / model.in_std)
        return ((z - model.s_shift) / model.s_scale).numpy()


def torus_image(model: MultitaskCV, n: int = N_GRID) -> tuple[np.ndarray, np.ndarray]:
    """The latent of a periodic (phi, psi) grid: tables (d, n, n) with phi fastest (OpenMM's Continuous2DFunction
    order) and the flat points (n*n, d)."""
    grid = np.linspace(-np.pi, np.pi, n)
    gphi, gpsi = np.meshgrid(grid, grid, indexing="xy")
    flat = latent_of_torsions(model, gphi.ravel(), gpsi.ravel())
    tables = flat.T.reshape(-1, n, n).copy()
    tables[:, :, -1] = tables[:, :, 0]
    tables[:, -1, :] = tables[:, 0, :]
    return tables, flat


def tabulated_bias(
    model: MultitaskCV, torsions: dict[str, tuple[int, int, int, int]], expression: str, parameters: tuple[str, ...]
):  # noqa: ANN201
    """OpenMM CustomCVForce of `expression` in the learned latent, each component tabulated on the periodic
    (phi, psi) grid as a Continuous2DFunction named sa, sb, ... of the torsion CVs named in `torsions`; the
    `parameters` are global (0 until set). Force group 2."""
    import openmm as mm

    tables, _ = torus_image(model)
    bias = mm.CustomCVForce(expression)
    for name in parameters:
        bias.addGlobalParameter(name, 0.0)
    for name, idx in torsions.items():
        t = mm.CustomTorsionForce("theta")
        t.addTorsion(*idx, [])
        bias.addCollectiveVariable(name, t)
    for name, table in zip(("sa", "sb"), tables, strict=False):
        bias.addTabulatedFunction(
            name, mm.Continuous2DFunction(N_GRID, N_GRID, table.ravel().tolist(), -np.pi, np.pi, -np.pi, np.pi, True)
        )
    bias.setForceGroup(2)
    return bias


def bias_2d(model: MultitaskCV, torsions: dict[str, tuple[int, int, int, int]]):  # noqa: ANN201
    """Harmonic 2D window 0.5 kb ((s1 - c1)^2 + (s2 - c2)^2) in the learned latent (global parameters kb, c1, c2)."""
    return tabulated_bias(
        model, torsions, "0.5*kb*((sa(phi,psi)-c1)^2+(sb(phi,psi)-c2)^2)", ("kb", "c1", "c2")
    )


def grid_windows(s_torus: np.ndarray, spacing: float, reach: float = 1.0) -> np.ndarray:
    """Window centers (K, 2) on a square grid of `spacing` over the latent image of the whole (phi, psi) torus
    (models.free_energy.estimators.grid_window_centers): the overlap graph is then connected across the barriers too."""
    from models.free_energy.estimators import grid_window_centers

    return grid_window_centers(s_torus, spacing, reach)


def window_rows(
    model: MultitaskCV, frames: np.ndarray, k: int, torsions: dict[str, tuple[int, int, int, int]],
    basin_of, torsion,  # noqa: ANN001
) -> dict[str, np.ndarray]:
    """Per-frame latent s (n, 2), basin, window index k and (phi, psi) of one 2D window's frames (n, atoms, 3)."""
    phi, psi = torsion(frames, torsions["phi"]), torsion(frames, torsions["psi"])
    return {
        "s": latent_of_torsions(model, phi, psi),
        "basin": basin_of(frames),
        "window": np.full(len(frames), k),
        "x": np.stack([phi, psi], -1),
    }


def run_windows_2d(
    sample_window, model: MultitaskCV, centers: np.ndarray, pool_pos: np.ndarray, pool_s: np.ndarray,
    torsions: dict[str, tuple[int, int, int, int]], basin_of, torsion,  # noqa: ANN001
) -> dict[str, np.ndarray]:
    """Sample every 2D window (`sample_window(k, center, start_positions)` -> frames (n, atoms, 3) or None), each
    started from the pooled configuration nearest its center in the latent; returns the per-frame latent s (n, 2),
    basin, window index and (phi, psi), and the windows kept (a window whose integration blew up is dropped)."""
    rows: dict[str, list] = {"s": [], "basin": [], "window": [], "x": []}
    kept = []
    t0 = time.time()
    for k, c in enumerate(centers):
        start = pool_pos[int(np.argmin(((pool_s - c) ** 2).sum(1)))]
        frames = sample_window(k, c, start)
        if frames is None:
            print(f"2D window {k} at {np.round(c, 2)} dropped: the integration blew up", flush=True)
            continue
        for key, value in window_rows(model, frames, len(kept), torsions, basin_of, torsion).items():
            rows[key].append(value)
        kept.append(k)
        print(
            f"2D window {len(kept) - 1}/{len(centers)}: center {np.round(c, 2)}, "
            f"mean s {np.round(rows['s'][-1].mean(0), 2)}, "
            f"phi>0 {rows['basin'][-1].mean():.2f} ({time.time() - t0:.0f} s)",
            flush=True,
        )
    out = {key: np.concatenate(v) for key, v in rows.items()}
    out["centers"] = centers[kept]
    return out


def snake_grid(n: int) -> np.ndarray:
    """Centers (n*n, 2) of an n x n periodic (phi, psi) grid in boustrophedon order, so each window is next to the
    one before it and can start from its last frame."""
    axis = np.linspace(-np.pi, np.pi, n, endpoint=False)
    rows = [[(p, q) for q in (axis if i % 2 == 0 else axis[::-1])] for i, p in enumerate(axis)]
    return np.array([c for row in rows for c in row])
