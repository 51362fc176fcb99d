"""PNG plots for the CV and free-energy tools (set up by tools.core.plotting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.core.plotting import figure, save


def plot_cv_histograms(s: np.ndarray, labels: np.ndarray, names: list[str], path: Path, title: str) -> Path:
    """Histogram of the (first) CV component for each labelled basin: separated peaks mean a separating CV."""
    fig, ax = figure(figsize=(6, 3.4))
    s1 = s[:, 0]
    edges = np.linspace(s1.min(), s1.max() + 1e-9, 60)
    for b, name in enumerate(names):
        if np.any(labels == b):
            ax.hist(s1[labels == b], bins=edges, alpha=0.55, density=True, label=f"basin {name}")
    if np.any(labels < 0):
        ax.hist(s1[labels < 0], bins=edges, histtype="step", color="k", density=True, label="unlabelled")
    ax.set_xlabel("CV s")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_cv_map(
    xs: np.ndarray, ys: np.ndarray, fes: np.ndarray, cv: np.ndarray, points: np.ndarray | None, path: Path, title: str
) -> Path:
    """Contours of the learned CV over the exact 2D free-energy surface of a toy system (harmonic dims at zero)."""
    fig, ax = figure(figsize=(5.5, 4.5))
    im = ax.contourf(xs, ys, np.minimum(fes, 15.0), 30, cmap="viridis")
    fig.colorbar(im, ax=ax, label="F / kT")
    cs = ax.contour(xs, ys, cv, 15, colors="w", linewidths=0.7)
    ax.clabel(cs, fontsize=6)
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=1, c="r", alpha=0.15)
    ax.set_xlabel("active x")
    ax.set_ylabel("active y")
    ax.set_title(title)
    return save(fig, path)


def plot_windows(s: np.ndarray, window: np.ndarray, centers: np.ndarray, path: Path) -> Path:
    """Histogram of s in each umbrella window: neighbouring histograms must overlap."""
    fig, ax = figure(figsize=(6.5, 3.2))
    edges = np.linspace(s.min(), s.max() + 1e-9, 120)
    for k in range(len(centers)):
        if np.any(window == k):
            ax.hist(s[window == k], bins=edges, histtype="step")
    ax.set_xlabel("CV s")
    ax.set_ylabel("count")
    ax.set_title("umbrella windows")
    return save(fig, path)


def plot_profiles(profiles: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Free-energy profiles F(s) in kT with error bands, one line per method."""
    fig, ax = figure(figsize=(6, 3.6))
    for name, (x, f, err) in profiles.items():
        ok = np.isfinite(f)
        ax.plot(x[ok], f[ok], label=name)
        e = np.nan_to_num(err[ok])
        ax.fill_between(x[ok], f[ok] - e, f[ok] + e, alpha=0.25)
    ax.set_xlabel("CV s")
    ax.set_ylabel("F / kT")
    ax.set_title(title)
    ax.legend()
    return save(fig, path)


def plot_surfaces(
    exact: tuple[np.ndarray, np.ndarray, np.ndarray],
    estimate: tuple[np.ndarray, np.ndarray, np.ndarray],
    path: Path,
    title: str,
) -> Path:
    """Exact and reweighted (umbrella + MBAR weights) 2D free-energy surfaces of a toy system, side by side."""
    fig, axes = figure(1, 2, figsize=(10, 4), sharex=True, sharey=True)
    levels = np.linspace(0, 12, 25)
    for ax, (xs, ys, f), name in zip(axes, (exact, estimate), ("exact", "umbrella sampling + MBAR"), strict=True):
        im = ax.contourf(xs, ys, np.minimum(f, 12.0), levels, cmap="viridis")
        ax.set_title(name)
        ax.set_xlabel("active x")
    axes[0].set_ylabel("active y")
    fig.colorbar(im, ax=axes, label="F / kT")
    fig.suptitle(title)
    return save(fig, path, tight=False)


def plot_grid_windows(s: np.ndarray, window: np.ndarray, centers: np.ndarray, path: Path) -> Path:
    """2D umbrella windows: the grid centers over the sampled CV values, coloured by window, so holes and windows
    dragged off their center show."""
    fig, ax = figure(figsize=(5.2, 4.6))
    ax.scatter(s[:, 0], s[:, 1], c=window % 20, cmap="tab20", s=1, alpha=0.4, rasterized=True)
    ax.scatter(centers[:, 0], centers[:, 1], marker="+", c="k", s=18, linewidths=0.7)
    ax.set_xlabel("CV s0")
    ax.set_ylabel("CV s1")
    ax.set_title(f"{len(centers)} umbrella windows (+ = center)")
    return save(fig, path)


def plot_cv_surface(s: np.ndarray, weights: np.ndarray, path: Path, title: str, n_bins: int = 40) -> Path:
    """F(s0, s1) in kT (minimum 0) over a 2D CV, from samples s (n, 2) and their unbiased (MBAR) weights."""
    hist, ex, ey = np.histogram2d(s[:, 0], s[:, 1], bins=n_bins, weights=weights)
    with np.errstate(divide="ignore"):
        f = -np.log(hist.T)
    f = np.where(np.isfinite(f), f - np.min(f[np.isfinite(f)]), np.nan)  # unvisited bins stay blank
    fig, ax = figure(figsize=(5.6, 4.6))
    im = ax.contourf(0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1]), np.minimum(f, 12.0), np.linspace(0, 12, 25),
                     cmap="viridis")
    fig.colorbar(im, ax=ax, label="F / kT")
    ax.set_xlabel("CV s0")
    ax.set_ylabel("CV s1")
    ax.set_title(title)
    return save(fig, path)
