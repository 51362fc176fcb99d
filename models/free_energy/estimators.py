"""Umbrella sampling along a learned CV on the toy systems, and its analysis: MBAR (pymbar 4) and WHAM free-energy
profiles along the CV, basin free-energy differences by reweighting to the unbiased ensemble, uncertainties, the
window overlap matrix and a convergence check (first half against second half)."""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.potentials.toy import ToySystem, langevin
from models.progress import ProgressFn
from models.sampling.cv import MultitaskCV

MIN_NEIGHBOUR_OVERLAP = 0.03
OUT_OF_BASIN = 1.0e8  # reduced potential of samples outside a restricted state (zero weight)


def import_pymbar() -> Any:
    """pymbar, imported with its stdout banner sent to stderr (stdout may be an MCP stdio stream)."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pymbar
    return pymbar


@dataclass
class UmbrellaSamples:
    """Samples of harmonic-window umbrella sampling along one CV: bias kappa/2 (s - center_k)^2 in kT units."""

    centers: np.ndarray
    kappa: float | np.ndarray  # one force constant for all windows, or one per window (refined windows are stiffer)
    kT: float
    window: np.ndarray
    walker: np.ndarray
    frame: np.ndarray
    s: np.ndarray
    basin: np.ndarray
    x: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_windows(self) -> int:
        """Number of umbrella windows."""
        return len(self.centers)

    def save(self, path: str | Path) -> Path:
        """Write all samples and metadata to one .npz file."""
        import json

        path = Path(path)
        np.savez_compressed(
            path,
            centers=self.centers,
            kappa=self.kappa,
            kT=self.kT,
            window=self.window,
            walker=self.walker,
            frame=self.frame,
            s=self.s,
            basin=self.basin,
            x=self.x,
            metadata=json.dumps(self.metadata),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> UmbrellaSamples:
        """Read samples written by save(); ValueError naming what is missing otherwise."""
        import json

        with np.load(Path(path), allow_pickle=False) as z:
            missing = {"centers", "kappa", "window", "s"} - set(z.files)
            if missing:
                raise ValueError(f"{path} is not an umbrella samples file (missing {sorted(missing)})")
            n = len(z["s"])
            return cls(
                centers=z["centers"],
                kappa=float(z["kappa"]) if z["kappa"].ndim == 0 else np.asarray(z["kappa"], float),
                kT=float(z["kT"]) if "kT" in z.files else 1.0,
                window=z["window"].astype(int),
                walker=z["walker"] if "walker" in z.files else np.zeros(n, int),
                frame=z["frame"] if "frame" in z.files else np.arange(n),
                s=z["s"],
                basin=z["basin"] if "basin" in z.files else -np.ones(n, int),
                x=z["x"] if "x" in z.files else np.zeros((n, 0)),
                metadata=json.loads(str(z["metadata"])) if "metadata" in z.files else {},
            )

    def subset(self, mask: np.ndarray) -> UmbrellaSamples:
        """The samples selected by a boolean mask (same windows)."""
        return UmbrellaSamples(
            self.centers,
            self.kappa,
            self.kT,
            self.window[mask],
            self.walker[mask],
            self.frame[mask],
            self.s[mask],
            self.basin[mask],
            self.x[mask],
            dict(self.metadata),
        )


def umbrella_toy(
    system: ToySystem,
    model: MultitaskCV,
    centers: np.ndarray,
    kappa: float | np.ndarray,
    start_pool: np.ndarray,
    n_walkers: int = 4,
    n_steps: int = 5000,
    n_equil: int = 500,
    stride: int = 10,
    seed: int = 0,
    component: int | tuple[int, ...] = 0,
    exchange_every: int | None = 50,
    callback: ProgressFn | None = None,
) -> UmbrellaSamples:
    """Umbrella sampling of a toy system along CV component `component`: all windows run together as one batch of
    MALA walkers on E(x) + kT kappa/2 (s(x) - center)^2 (bias forces from autograd through the CV network). Each
    window starts from the configurations of `start_pool` whose CV is nearest its center; frames before n_equil are
    dropped. With `exchange_every`, neighbouring windows try to swap configurations every that many steps
    (Hamiltonian replica exchange, Metropolis on the bias energies), which relaxes barriers hidden orthogonal to the
    CV; samples stay attached to their window. With a tuple of components (e.g. (0, 1)) the windows are isotropic
    in those components (centers (K, d), usually a grid_window_centers grid, whose neighbours exchange along every
    axis: grid_pairs), and the samples' s is (n, d)."""
    components, centers = _toy_components(centers, component)
    centers_2d = centers.reshape(len(centers), -1)
    x0 = _toy_starts(model, start_pool, components, centers_2d, n_walkers)
    kappas = window_kappas(kappa, len(centers))
    biased = _toy_biased(system, model, components, centers_2d, kappas, n_walkers)
    exchange = _ToyExchange(model, components, centers, kappas, n_walkers, exchange_every)
    frames, _, stats = langevin(biased, x0, system.kT, system.dt, n_steps, stride, seed, callback=callback,
                                hook=exchange)
    return _toy_samples(
        system, model, frames[n_equil // stride:], centers, kappa, kappas, n_walkers, components,
        metadata={
            "system": system.name,
            "n_steps": n_steps,
            "n_equil": n_equil,
            "stride": stride,
            "seed": seed,
            "n_walkers": n_walkers,
            "acceptance": round(stats.acceptance, 4),
            "component": component,
            "exchange_every": exchange_every,
            "exchange_acceptance": round(exchange.accepted / max(exchange.tried, 1), 4),
            "basin_names": list(system.basin_names),
        },
    )


def _toy_components(centers: np.ndarray, component: int | tuple[int, ...]) -> tuple[tuple[int, ...], np.ndarray]:
    """The CV components biased and the centers as floats, checked against each other (one component: (K,) centers,
    several: (K, d)), so a mismatch fails before any sampling."""
    components = (component,) if isinstance(component, int) else tuple(component)
    centers = np.asarray(centers, dtype=float)
    multi = centers.ndim == 2
    if multi != (not isinstance(component, int)) or (multi and centers.shape[1] != len(components)):
        raise ValueError(f"centers of shape {centers.shape} do not match CV component(s) {component}")
    return components, centers


def _toy_starts(
    model: MultitaskCV, start_pool: np.ndarray, components: tuple[int, ...], centers_2d: np.ndarray, n_walkers: int
) -> np.ndarray:
    """The starting walkers, window by window: the n_walkers pool configurations whose CV lies nearest the window's
    center (repeated when the pool is smaller), so every window begins in its own stretch of the CV."""
    s_pool = model.cv_numpy(start_pool)[:, list(components)]
    starts = []
    for c in centers_2d:
        nearest = np.argsort(((s_pool - c) ** 2).sum(1))[:n_walkers]
        starts.append(start_pool[np.resize(nearest, n_walkers)])
    return np.concatenate(starts)


def _toy_biased(
    system: ToySystem, model: MultitaskCV, components: tuple[int, ...], centers_2d: np.ndarray, kappas: np.ndarray,
    n_walkers: int,
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The biased energy and gradient of the whole batch (walker i in the window of row i // n_walkers): the
    system's E(x) plus kT kappa/2 (s - center)^2 per biased component, forces through the CV network's autograd."""
    centre_of = np.repeat(centers_2d, n_walkers, axis=0)
    kappa_of = np.repeat(kappas, n_walkers)
    kt = system.kT

    def biased(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, g = system.energy_grad(x)
        for i, c in enumerate(components):
            s, ds = model.cv_and_grad(x, c)
            d = s - centre_of[:, i]
            e, g = e + 0.5 * kt * kappa_of * d * d, g + (kt * kappa_of * d)[:, None] * ds
        return e, g

    return biased


class _ToyExchange:
    """The replica-exchange hook of langevin: every exchange_every steps, walker slot w of every window forms one
    ladder (or grid) whose neighbours swap configurations by Metropolis on the bias; counts the swaps tried and
    accepted for the exchange acceptance."""

    def __init__(
        self, model: MultitaskCV, components: tuple[int, ...], centers: np.ndarray, kappas: np.ndarray,
        n_walkers: int, exchange_every: int | None,
    ) -> None:
        self.model, self.components, self.centers = model, components, centers
        self.centers_2d = centers.reshape(len(centers), -1)
        self.kappas, self.n_walkers, self.exchange_every = kappas, n_walkers, exchange_every
        self.n_win = len(centers)
        self.spacing = _grid_spacing(self.centers_2d) if centers.ndim == 2 else None
        self.tried = self.accepted = 0

    def __call__(self, step: int, x: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """The batch after this step's swaps, or None when no exchange falls on this step."""
        n_win, n_walkers = self.n_win, self.n_walkers
        if not self.exchange_every or step % self.exchange_every or n_win < 2:
            return None
        s_now = self.model.cv_numpy(x)[:, list(self.components)].reshape(n_win, n_walkers, -1)
        xw = x.reshape(n_win, n_walkers, -1)
        out = np.empty_like(xw)
        sweep = step // self.exchange_every
        pairs = None if self.spacing is None else grid_pairs(self.centers_2d, self.spacing, sweep)
        for w in range(n_walkers):  # walker slot w of every window forms one exchange ladder (or grid)
            if pairs is None:
                moved, tried, accepted = exchange_neighbours(
                    s_now[:, w, 0], np.arange(n_win), self.centers, self.kappas, rng, parity=sweep % 2
                )
            else:
                moved, tried, accepted = exchange_pairs(
                    s_now[:, w], np.arange(n_win), self.centers_2d, self.kappas, rng, pairs
                )
            out[moved, w] = xw[:, w]  # the configuration held in window k moves to window moved[k]
            self.tried += tried
            self.accepted += accepted
        return out.reshape(x.shape)


def _toy_samples(
    system: ToySystem, model: MultitaskCV, frames: np.ndarray, centers: np.ndarray, kappa: float | np.ndarray,
    kappas: np.ndarray, n_walkers: int, components: tuple[int, ...], metadata: dict[str, Any],
) -> UmbrellaSamples:
    """The kept frames as UmbrellaSamples, each labelled with its window, walker and frame and sorted by them (window
    first), with the CV and the system's own basin of every sample."""
    n_win = len(centers)
    n_frames = frames.shape[0]
    x = frames.reshape(-1, system.dim)
    s = model.cv_numpy(x)[:, list(components)] if centers.ndim == 2 else model.cv_numpy(x)[:, components[0]]
    window = np.tile(np.repeat(np.arange(n_win), n_walkers), n_frames)
    walker = np.tile(np.arange(n_win * n_walkers), n_frames)
    frame = np.repeat(np.arange(n_frames), n_win * n_walkers)
    order = np.lexsort((frame, walker, window))
    return UmbrellaSamples(
        centers=centers,
        kappa=float(kappa) if np.ndim(kappa) == 0 else kappas.copy(),
        kT=system.kT,
        window=window[order],
        walker=walker[order],
        frame=frame[order],
        s=s[order],
        basin=system.basin_of(x)[order],
        x=x[order],
        metadata=metadata,
    )


def _grid_spacing(centers: np.ndarray) -> float:
    """The spacing of a square grid of window centers (K, d): the smallest distance between two of them."""
    from scipy.spatial import cKDTree

    if len(centers) < 2:
        return 1.0
    distance, _ = cKDTree(centers).query(centers, k=2)
    return float(distance[:, 1].min())


def grid_window_centers(
    s_points: np.ndarray, spacing: float, reach: float = 1.0, fill_hull: bool = False
) -> np.ndarray:
    """Window centers (K, d) on a square grid of `spacing` over the CV values s_points (n, d), kept within `reach`
    spacings of a point (with `fill_hull`, of a point or of the points' convex hull): every configuration has a
    window near it. The points must cover every region whose free energy matters, barriers included (the image of a
    whole torsion torus, or the hull of basin data): windows kept only near sampled basins leave no overlap across
    the barrier between them (alanine: two window clusters, 4.0 +- 10.1 kT)."""
    from scipy.spatial import Delaunay, cKDTree

    s_points = np.asarray(s_points, float).reshape(len(s_points), -1)
    lo, hi = s_points.min(0) - spacing, s_points.max(0) + spacing
    axes = [np.arange(lo[i], hi[i] + 1e-9, spacing) for i in range(s_points.shape[1])]
    centers = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, s_points.shape[1])
    distance, _ = cKDTree(s_points).query(centers)
    keep = distance <= reach * spacing
    if fill_hull:
        keep |= Delaunay(s_points).find_simplex(centers) >= 0
    return centers[keep]


def hull_grid_spacing(s_points: np.ndarray, n_windows: int) -> float:
    """The grid spacing that puts about n_windows windows inside the convex hull of 2D CV values s_points (n, 2).
    ValueError when the points span no area (the two CV components are degenerate)."""
    from scipy.spatial import ConvexHull

    try:
        area = ConvexHull(np.asarray(s_points, float)).volume  # a 2D hull's volume is its area
    except Exception as exc:  # noqa: BLE001  (scipy's QhullError: points on a line)
        raise ValueError(f"the CV values span no area: {str(exc).splitlines()[0]}") from None
    return float(np.sqrt(area / n_windows))


def default_windows(s_basins: np.ndarray, n_windows: int, margin: float = 0.25) -> tuple[np.ndarray, float]:
    """Evenly spaced window centers spanning the basin CV values (plus a margin of the span at both ends) and a
    force constant kappa (kT per s^2) giving neighbouring windows a thermal width of one spacing."""
    lo, hi = float(np.min(s_basins)), float(np.max(s_basins))
    span = max(hi - lo, 1e-6)
    centers = np.linspace(lo - margin * span, hi + margin * span, n_windows)
    spacing = centers[1] - centers[0] if n_windows > 1 else span
    return centers, 1.0 / spacing**2


def window_kappas(kappa: float | np.ndarray, n_windows: int) -> np.ndarray:
    """The force constant of each window (a scalar kappa applies to all); ValueError on a length mismatch."""
    kappas = (
        np.broadcast_to(np.asarray(kappa, dtype=float), (n_windows,))
        if np.ndim(kappa) == 0
        else np.asarray(kappa, float)
    )
    if kappas.shape != (n_windows,):
        raise ValueError(f"{kappas.shape[0]} force constants for {n_windows} windows")
    return kappas


def reduced_bias(s: np.ndarray, centers: np.ndarray, kappa: float | np.ndarray) -> np.ndarray:
    """u_kn: the reduced (kT) bias energy of every sample n in every window k (kappa scalar or per window)."""
    centers = np.asarray(centers)
    return 0.5 * window_kappas(kappa, len(centers))[:, None] * (s[None, :] - centers[:, None]) ** 2


def exchange_neighbours(
    s: np.ndarray,
    window_of: np.ndarray,
    centers: np.ndarray,
    kappa: float | np.ndarray,
    rng: np.random.Generator,
    parity: int,
) -> tuple[np.ndarray, int, int]:
    """One sweep of replica exchange umbrella sampling (REUS) along a 1D CV: swaps between windows neighbouring in
    order of center, pairs starting at `parity` 0 or 1 so that even and odd sweeps alternate (exchange_pairs)."""
    by_center = np.argsort(centers, kind="stable")
    pairs = [(int(by_center[a]), int(by_center[a + 1])) for a in range(parity % 2, len(by_center) - 1, 2)]
    return exchange_pairs(s, window_of, centers, kappa, rng, pairs)


def exchange_pairs(
    s: np.ndarray,
    window_of: np.ndarray,
    centers: np.ndarray,
    kappa: float | np.ndarray,
    rng: np.random.Generator,
    pairs: list[tuple[int, int]],
) -> tuple[np.ndarray, int, int]:
    """Metropolis swaps of the windows held by replicas, for disjoint window pairs (i, j), with harmonic biases
    u_k(s) = 0.5 kappa_k |s - c_k|^2 in kT in a CV of any dimension (s (n,) or (n, d), centers (K,) or (K, d)).

    s[r] is replica r's current CV and window_of[r] its window. A swap is accepted with
    min(1, exp(-(u_i(s_b) + u_j(s_a) - u_i(s_a) - u_j(s_b)))) (same temperature), which keeps the product of the
    biased Boltzmann distributions stationary. Returns the new window_of, attempts and acceptances."""
    kappas = window_kappas(kappa, len(centers))
    s = np.asarray(s, float).reshape(len(s), -1)
    centers = np.asarray(centers, float).reshape(len(centers), -1)
    window_of = np.asarray(window_of).copy()
    replica_in = np.empty(len(centers), int)
    replica_in[window_of] = np.arange(len(window_of))
    attempts = accepted = 0

    def u(k: int, r: int) -> float:
        return 0.5 * kappas[k] * float(np.sum((s[r] - centers[k]) ** 2))

    for i, j in pairs:
        a, b = replica_in[i], replica_in[j]
        delta = u(i, b) + u(j, a) - u(i, a) - u(j, b)
        attempts += 1
        if delta <= 0.0 or rng.random() < math.exp(-delta):
            accepted += 1
            window_of[a], window_of[b] = j, i
            replica_in[i], replica_in[j] = b, a
    return window_of, attempts, accepted


def grid_pairs(centers: np.ndarray, spacing: float, sweep: int) -> list[tuple[int, int]]:
    """Disjoint pairs of windows on a square grid (centers (K, d), `spacing` apart) for REUS sweep `sweep`: pairs one
    spacing apart along axis (sweep // 2) % d, starting on even or odd grid lines (sweep % 2), so that 2 d
    successive sweeps try every edge of the grid once. Windows missing from the grid simply have no partner."""
    centers = np.asarray(centers, float).reshape(len(centers), -1)
    index = np.rint((centers - centers.min(0)) / spacing).astype(int)
    axis, parity = (sweep // 2) % centers.shape[1], sweep % 2
    where = {tuple(row): k for k, row in enumerate(index)}
    pairs = []
    for k, row in enumerate(index):
        if row[axis] % 2 != parity:
            continue
        up = row.copy()
        up[axis] += 1
        j = where.get(tuple(up))
        if j is not None:
            pairs.append((k, j))
    return pairs


def _window_means(samples: UmbrellaSamples) -> np.ndarray:
    """Mean sampled CV of each window (NaN for a window without samples)."""
    present = [np.any(samples.window == k) for k in range(samples.n_windows)]
    return np.array([samples.s[samples.window == k].mean() if ok else np.nan for k, ok in enumerate(present)])


def unsampled_stretches(
    samples: UmbrellaSamples, hole_widths: float = 0.5, sparse_fraction: float = 0.1
) -> list[tuple[float, float, float]]:
    """(lo, hi, kappa) of every stretch of the CV between the lowest and highest window means that no sample visits
    and that is wider than `hole_widths` thermal widths of the softest window, or that samples only cross in
    passing (`sparse_stretches`); kappa is the stiffer force constant of the windows that bound it. MBAR cannot
    see such holes (its overlap matrix only compares the windows' bias energies), yet the free energy across them
    is unknown or rests on a handful of frames."""
    stretches = _empty_stretches(samples, hole_widths) + sparse_stretches(samples, hole_widths, sparse_fraction)
    merged: list[tuple[float, float, float]] = []
    for lo, hi, kappa in sorted(stretches):
        if merged and lo <= merged[-1][1]:
            m_lo, m_hi, m_kappa = merged[-1]
            merged[-1] = (m_lo, max(m_hi, hi), max(m_kappa, kappa))
        else:
            merged.append((lo, hi, kappa))
    return merged


def sparse_stretches(
    samples: UmbrellaSamples, bin_widths: float = 0.5, fraction: float = 0.1
) -> list[tuple[float, float, float]]:
    """(lo, hi, kappa) of the runs of bins (`bin_widths` thermal widths of the softest window wide) between the
    lowest and highest window means that hold fewer than `fraction` of the median bin's samples. A free-energy wall
    steeper than the windows' springs piles neighbouring windows up at its foot; a few frames still cross it, so no
    bin is empty, yet the barrier top is sampled only in passing. kappa: the stiffest window whose center or mean
    lies within one bin of the run."""
    kappas = window_kappas(samples.kappa, samples.n_windows)
    means = _window_means(samples)
    if len(samples.s) < 2 or np.isnan(means).all():
        return []
    lo_all, hi_all = float(np.nanmin(means)), float(np.nanmax(means))
    width = bin_widths / np.sqrt(kappas.min())
    n_bins = int(np.ceil((hi_all - lo_all) / width))
    if n_bins < 3:
        return []
    counts, edges = np.histogram(samples.s, bins=n_bins, range=(lo_all, hi_all))
    occupied = counts[counts > 0]
    sparse = counts < fraction * float(np.median(occupied)) if len(occupied) else np.zeros(n_bins, bool)
    out = []
    k = 0
    while k < n_bins:
        if not sparse[k]:
            k += 1
            continue
        j = k
        while j + 1 < n_bins and sparse[j + 1]:
            j += 1
        lo, hi = float(edges[k]), float(edges[j + 1])
        near = [w for w in range(samples.n_windows)
                if any(lo - width <= v <= hi + width for v in (samples.centers[w], means[w]) if np.isfinite(v))]
        out.append((lo, hi, float(max(kappas[near]) if near else kappas.max())))
        k = j + 1
    return out


def _empty_stretches(samples: UmbrellaSamples, hole_widths: float) -> list[tuple[float, float, float]]:
    """(lo, hi, kappa) of the gaps between consecutive samples wider than `hole_widths` thermal widths of the softest
    window, between the lowest and highest window means."""
    kappas = window_kappas(samples.kappa, samples.n_windows)
    means = _window_means(samples)
    if len(samples.s) < 2 or np.isnan(means).all():
        return []
    order = np.argsort(samples.s)
    s_sorted, w_sorted = samples.s[order], samples.window[order]
    lo_all, hi_all = np.nanmin(means), np.nanmax(means)
    out = []
    for i in np.flatnonzero(np.diff(s_sorted) > hole_widths / np.sqrt(kappas.min())):
        if s_sorted[i + 1] > lo_all and s_sorted[i] < hi_all:
            out.append(
                (float(s_sorted[i]), float(s_sorted[i + 1]), float(max(kappas[w_sorted[i]], kappas[w_sorted[i + 1]])))
            )
    return out


def refine_windows(
    samples: UmbrellaSamples,
    overlap: np.ndarray | None = None,
    threshold: float = MIN_NEIGHBOUR_OVERLAP,
    stiffen: float = 4.0,
    max_per_gap: int = 12,
    max_new: int = 24,
    hole_widths: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """New (centers, kappas) for the poorly sampled stretches of the CV: holes that no sample visits (wider than
    `hole_widths` thermal widths of the softest window, between the lowest and highest window means) and, given the
    MBAR `overlap` matrix, the stretch between the sampled means of neighbouring windows whose overlap is below
    `threshold`. A steep free energy drags samples away from their centers and leaves such stretches; the new
    windows are `stiffen` times stiffer than the windows at the stretch's ends, so that they hold their place on the
    slope, and are spaced by their thermal width 1/sqrt(kappa) (at most `max_per_gap` per stretch, `max_new` in all).
    Empty arrays when nothing is left uncovered. Refinement cannot repair a CV with a barrier hidden orthogonal to
    it (windows at the same CV value stuck in different basins): that needs a better CV."""
    kappas = window_kappas(samples.kappa, samples.n_windows)
    means = _window_means(samples)
    if len(samples.s) < 2 or np.isnan(means).all():
        return np.zeros(0), np.zeros(0)
    stretches = unsampled_stretches(samples, hole_widths)  # (lo, hi, kappa of the stiffer end)
    if overlap is not None:
        by_center = [k for k in np.argsort(samples.centers) if not np.isnan(means[k])]
        for a, b in zip(by_center[:-1], by_center[1:], strict=True):
            if overlap[a, b] < threshold:
                lo, hi = sorted((means[a], means[b]))
                if not any(lo < s_hi and hi > s_lo for s_lo, s_hi, _ in stretches):  # a hole covers it
                    stretches.append((lo, hi, max(kappas[a], kappas[b])))
    new_c: list[float] = []
    new_k: list[float] = []
    for lo, hi, kappa_end in stretches:
        kappa_new = stiffen * kappa_end
        count = int(np.clip(np.ceil((hi - lo) * np.sqrt(kappa_new)) - 1, 1, max_per_gap))
        new_c += list(np.linspace(lo, hi, count + 2)[1:-1])
        new_k += [kappa_new] * count
    return np.array(new_c[:max_new]), np.array(new_k[:max_new])


def refine_umbrella(
    samples: UmbrellaSamples,
    run_windows: Callable[[UmbrellaSamples, np.ndarray, np.ndarray, int], UmbrellaSamples],
    rounds: int,
    on_round: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
) -> UmbrellaSamples:
    """Up to `rounds` rounds of adaptive refinement with any sampler: find the poorly sampled stretches
    (`refine_windows` on the decorrelated samples, as the final analysis sees them, with their MBAR overlap),
    sample the new windows with `run_windows(samples so far, centers, kappas, round)` and merge; stop early when
    nothing is left uncovered. `on_round(round, centers, kappas)` is called before each round's sampling."""
    for round_ in range(rounds):
        decorrelated, _ = decorrelate(samples)  # the samples MBAR and its warnings will use: find holes in them
        new_c, new_k = refine_windows(decorrelated, mbar_analysis(decorrelated, convergence=False).overlap)
        if not len(new_c):
            break
        if on_round is not None:
            on_round(round_, new_c, new_k)
        samples = merge_samples(samples, run_windows(samples, new_c, new_k, round_))
    return samples


def merge_samples(first: UmbrellaSamples, more: UmbrellaSamples) -> UmbrellaSamples:
    """One set of samples from two runs at different windows (window and walker indices of `more` are shifted)."""
    n = first.n_windows
    walker_shift = int(first.walker.max()) + 1 if first.walker.size else 0
    kappas = np.concatenate([window_kappas(first.kappa, n), window_kappas(more.kappa, more.n_windows)])
    return UmbrellaSamples(
        centers=np.concatenate([first.centers, more.centers]),
        kappa=kappas,
        kT=first.kT,
        window=np.concatenate([first.window, more.window + n]),
        walker=np.concatenate([first.walker, more.walker + walker_shift]),
        frame=np.concatenate([first.frame, more.frame]),
        s=np.concatenate([first.s, more.s]),
        basin=np.concatenate([first.basin, more.basin]),
        x=np.concatenate([first.x, more.x]) if first.x.shape[1:] == more.x.shape[1:] else np.zeros((0, 0)),
        metadata={**first.metadata, "refined_windows": first.metadata.get("refined_windows", 0) + more.n_windows},
    )


def statistical_inefficiency(samples: UmbrellaSamples) -> np.ndarray:
    """Statistical inefficiency g per window (median over its walkers' time series), by pymbar.timeseries: the
    larger of g of s and g of each basin's indicator. Basin free energies are averages of those indicators, and a
    barrier across the CV makes them decorrelate far more slowly than s (alanine: g 9-26 against 1-3 for s), so g
    of s alone would overstate the independent samples and understate the error."""
    pymbar = import_pymbar()
    n_b = _n_basins(samples)
    g = np.ones(samples.n_windows)
    for k in range(samples.n_windows):
        gs = []
        for w in np.unique(samples.walker[samples.window == k]):
            mask = (samples.window == k) & (samples.walker == w)
            observables = [samples.s[mask]] + [(samples.basin[mask] == b).astype(float) for b in range(n_b)]
            g_walker = [_inefficiency(pymbar, series) for series in observables]
            if any(v is not None for v in g_walker):
                gs.append(max(v for v in g_walker if v is not None))
        g[k] = float(np.median(gs)) if gs else 1.0
    return g


def _inefficiency(pymbar: Any, series: np.ndarray) -> float | None:
    """pymbar's statistical inefficiency of one time series; None when it is too short or constant."""
    if len(series) <= 3 or np.ptp(series) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(pymbar.timeseries.statistical_inefficiency(series))


def decorrelate(samples: UmbrellaSamples) -> tuple[UmbrellaSamples, np.ndarray]:
    """Keep every ceil(g)-th frame of each walker (g the window's statistical inefficiency) so that the samples are
    nearly independent, as MBAR and WHAM uncertainties assume."""
    g = statistical_inefficiency(samples)
    keep = np.zeros(len(samples.s), bool)
    for k in range(samples.n_windows):
        step = max(1, math.ceil(g[k]))
        for w in np.unique(samples.walker[samples.window == k]):
            idx = np.flatnonzero((samples.window == k) & (samples.walker == w))
            keep[idx[::step]] = True
    return samples.subset(keep), g


@dataclass
class FreeEnergyResult:
    """A free-energy analysis: profile F(s) in kT (minimum 0), basin dF relative to basin 0 in kT, window free
    energies, the overlap matrix and any warnings."""

    method: str
    bin_centers: np.ndarray
    profile: np.ndarray
    profile_err: np.ndarray
    basin_df: np.ndarray | None
    basin_df_err: np.ndarray | None
    window_f: np.ndarray
    overlap: np.ndarray | None
    warnings: list[str] = field(default_factory=list)
    weights: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _bin_edges(s: np.ndarray, n_bins: int) -> np.ndarray:
    """Evenly spaced bin edges covering every sample."""
    lo, hi = float(np.min(s)), float(np.max(s))
    return np.linspace(lo, hi + 1e-9 * max(1.0, abs(hi)), n_bins + 1)


def _n_basins(samples: UmbrellaSamples) -> int:
    """Number of basins labelled in the samples (0 when unlabelled)."""
    return int(samples.basin.max()) + 1 if samples.basin.size and samples.basin.max() >= 0 else 0


def overlap_warning(overlap: np.ndarray, centers: np.ndarray, threshold: float = MIN_NEIGHBOUR_OVERLAP) -> str | None:
    """A warning naming neighbouring windows whose MBAR overlap is below `threshold`, with the overlap matrix."""
    order = np.argsort(centers)
    bad = [
        (int(order[i]), int(order[i + 1]), float(overlap[order[i], order[i + 1]]))
        for i in range(len(order) - 1)
        if overlap[order[i], order[i + 1]] < threshold
    ]
    if not bad:
        return None
    pairs = ", ".join(f"{a}-{b} ({o:.3g})" for a, b, o in bad)
    matrix = np.array2string(overlap, precision=3, suppress_small=True, max_line_width=200)
    return (
        f"windows do not overlap enough: neighbouring windows {pairs} have overlap < {threshold}; the free "
        f"energies across those gaps are unreliable. Add windows between them or lower the force constant. "
        f"Overlap matrix (rows/columns = windows in order of center):\n{matrix}"
    )


def hidden_barrier_warning(samples: UmbrellaSamples, min_fraction_gap: float = 0.8) -> str | None:
    """A warning when windows that sample the same CV values sit in different basins (the basin share of one is
    above `min_fraction_gap` more than the other's): a barrier hidden orthogonal to the CV keeps each window where it
    started, so the basin populations along s, and the basin free energies, are not equilibrated."""
    n_b = _n_basins(samples)
    if n_b < 2:
        return None
    stats = []
    for k in range(samples.n_windows):
        mask = (samples.window == k) & (samples.basin >= 0)
        if mask.sum() >= 5:
            s_k = samples.s[mask]
            share = np.bincount(samples.basin[mask], minlength=n_b) / mask.sum()
            stats.append((k, *np.quantile(s_k, [0.1, 0.9]), share))
    pairs = []
    for i, (a, lo_a, hi_a, sh_a) in enumerate(stats):
        for b, lo_b, hi_b, sh_b in stats[i + 1 :]:
            if lo_a <= hi_b and lo_b <= hi_a and np.abs(sh_a - sh_b).max() > min_fraction_gap:
                pairs.append(f"{a}-{b}")
    if not pairs:
        return None
    shown = ", ".join(pairs[:8]) + (f" and {len(pairs) - 8} more" if len(pairs) > 8 else "")
    return (
        f"hidden barrier: windows {shown} sample the same CV values but sit in different basins, so a barrier "
        "orthogonal to the CV keeps each window where it started and the basin free energies are not equilibrated. "
        "Refining windows cannot fix this; learn a CV that resolves the transition (add transition-region or "
        "high-temperature data) or use replica exchange between windows."
    )


def mbar_analysis(samples: UmbrellaSamples, n_bins: int = 40, convergence: bool = True) -> FreeEnergyResult:
    """MBAR (pymbar 4) over all windows: window free energies (compute_free_energy_differences), the profile along s
    and basin free energies as perturbed states of the unbiased ensemble restricted to a bin / basin, with analytical
    uncertainties; the overlap matrix; and the basin dF of each half of the run as a convergence check."""
    pymbar = import_pymbar()
    order = np.argsort(samples.window, kind="stable")
    s, win, basin = samples.s[order], samples.window[order], samples.basin[order]
    n_k = np.bincount(win, minlength=samples.n_windows)
    u_kn = reduced_bias(s, samples.centers, samples.kappa)
    notes: list[str] = []
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        mbar = pymbar.MBAR(u_kn, n_k, solver_protocol="robust")
        diffs = mbar.compute_free_energy_differences(compute_uncertainty=False)
        overlap = np.asarray(mbar.compute_overlap()["matrix"])
        edges = _bin_edges(s, n_bins)
        bins = np.clip(np.digitize(s, edges) - 1, 0, n_bins - 1)
        filled = np.flatnonzero(np.bincount(bins, minlength=n_bins) > 0)
        n_b = _n_basins(samples)
        present_basins = [b for b in range(n_b) if np.any(basin == b)]
        states = [np.where(bins == m, 0.0, OUT_OF_BASIN) for m in filled]
        states += [np.where(basin == b, 0.0, OUT_OF_BASIN) for b in present_basins]
        pert = mbar.compute_perturbed_free_energies(np.array(states), compute_uncertainty=True)
    f_ij, df_ij = np.asarray(pert["Delta_f"]), np.asarray(pert["dDelta_f"])
    nb = len(filled)
    centers_b = 0.5 * (edges[:-1] + edges[1:])
    profile = np.full(n_bins, np.nan)
    err = np.full(n_bins, np.nan)
    ref = int(np.argmin(f_ij[0, :nb]))
    profile[filled] = f_ij[ref, :nb]
    err[filled] = df_ij[ref, :nb]
    basin_df = basin_err = None
    if present_basins and 0 in present_basins:
        basin_df = np.full(n_b, np.nan)
        basin_err = np.full(n_b, np.nan)
        for j, b in enumerate(present_basins):
            basin_df[b] = f_ij[nb, nb + j]
            basin_err[b] = df_ij[nb, nb + j]
    elif n_b:
        notes.append("basin 0 was never visited, so basin free energies relative to it are undefined")
    warn = overlap_warning(overlap, samples.centers)
    if warn:
        notes.append(warn)
    holes = unsampled_stretches(samples)
    if holes:
        spans = ", ".join(f"{lo:.3g} to {hi:.3g}" for lo, hi, _ in holes[:6])
        notes.append(
            f"the CV was never (or only in passing) sampled from {spans}: the free energy across that stretch is "
            "unknown or rests on a few frames (a steep rise dragged the windows away from their centers). Add "
            "stiffer windows there (refine_rounds) or learn a CV with data from the transition region."
        )
    hidden = hidden_barrier_warning(samples)
    if hidden:
        notes.append(hidden)
    from scipy.special import logsumexp

    log_w = -logsumexp(np.log(np.maximum(n_k, 1))[:, None] + np.asarray(mbar.f_k)[:, None] - u_kn, axis=0)
    weights = np.empty(len(s))
    weights[order] = np.exp(log_w - log_w.max())
    weights /= weights.sum()
    result = FreeEnergyResult(
        "mbar", centers_b, profile, err, basin_df, basin_err, np.asarray(diffs["Delta_f"])[0], overlap, notes, weights
    )
    if convergence and basin_df is not None:
        result.extra["convergence"] = convergence_check(samples, result, lambda sub: mbar_analysis(sub, n_bins, False))
        if result.extra["convergence"].get("warning"):
            notes.append(result.extra["convergence"]["warning"])
    return result


def wham(
    s: np.ndarray,
    window: np.ndarray,
    centers: np.ndarray,
    kappa: float | np.ndarray,
    edges: np.ndarray,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray]:
    """Binned WHAM: window free energies f_k (f_0 = 0) and -ln p_m of each bin (inf for empty bins), in kT. The WHAM
    equations are solved as the minimum of their convex likelihood (Zhu & Hummer 2012) with L-BFGS, which gives the
    same fixed point as the classic self-consistent iteration, much faster."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    n_bins = len(edges) - 1
    k_win = len(centers)
    bins = np.clip(np.digitize(s, edges) - 1, 0, n_bins - 1)
    counts = np.zeros((k_win, n_bins))
    np.add.at(counts, (window, bins), 1.0)
    n_k = counts.sum(1)
    h_m = counts.sum(0)
    occupied = h_m > 0
    mid = 0.5 * (edges[:-1] + edges[1:])
    u_km = reduced_bias(mid[occupied], centers, kappa)
    log_nk = np.log(np.maximum(n_k, 1.0))[:, None]
    h = h_m[occupied]

    def objective(free: np.ndarray) -> tuple[float, np.ndarray]:
        f = np.concatenate([[0.0], free])
        a = log_nk + f[:, None] - u_km
        log_d = logsumexp(a, axis=0)
        value = float((h * log_d).sum() - (n_k * f).sum())
        grad = (h[None, :] * np.exp(a - log_d[None, :])).sum(1) - n_k
        return value, grad[1:]

    opt = minimize(objective, np.zeros(k_win - 1), jac=True, method="L-BFGS-B", options={"gtol": tol, "maxiter": 5000})
    f = np.concatenate([[0.0], opt.x])
    neg_log_p = np.full(n_bins, np.inf)
    neg_log_p[occupied] = -(np.log(h) - logsumexp(log_nk + f[:, None] - u_km, axis=0))
    return f, neg_log_p


def _wham_once(
    s: np.ndarray, window: np.ndarray, basin: np.ndarray, samples: UmbrellaSamples, edges: np.ndarray, n_basins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One WHAM solve: window f_k, profile, per-sample unbiased weights (binless reweighting with the WHAM f_k) and
    basin dF relative to basin 0."""
    from scipy.special import logsumexp

    f, neg_log_p = wham(s, window, samples.centers, samples.kappa, edges)
    n_k = np.bincount(window, minlength=samples.n_windows)
    u_kn = reduced_bias(s, samples.centers, samples.kappa)
    log_w = -logsumexp(np.log(np.maximum(n_k, 1))[:, None] + f[:, None] - u_kn, axis=0)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    probs = np.array([w[basin == b].sum() for b in range(n_basins)])
    with np.errstate(divide="ignore"):
        basin_df = -np.log(probs / probs[0]) if n_basins and probs[0] > 0 else np.full(n_basins, np.nan)
    return f, neg_log_p - np.nanmin(np.where(np.isfinite(neg_log_p), neg_log_p, np.nan)), w, basin_df


def wham_analysis(
    samples: UmbrellaSamples, n_bins: int = 40, n_bootstrap: int = 20, seed: int = 0, convergence: bool = True
) -> FreeEnergyResult:
    """WHAM along s: profile, window free energies, basin dF (binless reweighting with the WHAM window free
    energies), with bootstrap uncertainties (resampling within each window)."""
    edges = _bin_edges(samples.s, n_bins)
    n_b = _n_basins(samples)
    f, profile, weights, basin_df = _wham_once(samples.s, samples.window, samples.basin, samples, edges, n_b)
    rng = np.random.default_rng(seed)
    boot_prof, boot_df = [], []
    groups = [np.flatnonzero(samples.window == k) for k in range(samples.n_windows)]
    for _ in range(n_bootstrap):
        idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups if len(g)])
        _, p_b, _, df_b = _wham_once(samples.s[idx], samples.window[idx], samples.basin[idx], samples, edges, n_b)
        boot_prof.append(p_b)
        boot_df.append(df_b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof_err = np.nanstd(np.where(np.isfinite(boot_prof), boot_prof, np.nan), axis=0) if n_bootstrap else None
        df_err = np.nanstd(np.array(boot_df), axis=0) if n_bootstrap and n_b else None
    profile = np.where(np.isfinite(profile), profile, np.nan)
    result = FreeEnergyResult(
        "wham",
        0.5 * (edges[:-1] + edges[1:]),
        profile,
        prof_err if prof_err is not None else np.full(n_bins, np.nan),
        basin_df if n_b else None,
        df_err,
        f,
        None,
        [],
        weights,
        {"n_bootstrap": n_bootstrap},
    )
    if convergence and n_b:
        result.extra["convergence"] = convergence_check(
            samples, result, lambda sub: wham_analysis(sub, n_bins, 0, seed, False)
        )
        if result.extra["convergence"].get("warning"):
            result.warnings.append(result.extra["convergence"]["warning"])
    return result


def convergence_check(
    samples: UmbrellaSamples, full: FreeEnergyResult, analyse: Callable[[UmbrellaSamples], FreeEnergyResult]
) -> dict[str, Any]:
    """Basin dF from the first and the second half of every window's frames; a warning when they differ by more
    than 0.5 kT or three combined standard errors."""
    cut = np.median(samples.frame)
    halves = []
    for mask in (samples.frame <= cut, samples.frame > cut):
        sub = samples.subset(mask)
        if np.all(np.bincount(sub.window, minlength=samples.n_windows) > 0):
            halves.append(analyse(sub).basin_df)
    if len(halves) < 2 or halves[0] is None or halves[1] is None:
        return {"first_half": None, "second_half": None, "warning": None}
    a, b = np.asarray(halves[0]), np.asarray(halves[1])
    diff = np.abs(a - b)
    err = full.basin_df_err if full.basin_df_err is not None else np.zeros_like(a)
    limit = np.maximum(0.5, 3.0 * np.sqrt(2.0) * np.nan_to_num(err))
    worst = float(np.nanmax(diff)) if np.any(np.isfinite(diff)) else float("nan")
    warning = None
    if not np.isfinite(worst) or np.any(diff[np.isfinite(diff)] > limit[np.isfinite(diff)]):
        warning = (
            f"not converged: basin dF from the first half of the run {np.round(a, 2).tolist()} kT vs the "
            f"second half {np.round(b, 2).tolist()} kT; run longer or add walkers"
        )
    return {
        "first_half": np.round(a, 4).tolist(),
        "second_half": np.round(b, 4).tolist(),
        "max_difference": round(worst, 4) if np.isfinite(worst) else None,
        "warning": warning,
    }


def reweighted_histogram_2d(
    xy: np.ndarray, weights: np.ndarray, extent: tuple[float, float, float, float], n_bins: int = 60
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2D free-energy surface (kT, minimum 0, NaN where unsampled) of points xy with unbiased weights."""
    x0, x1, y0, y1 = extent
    h, ex, ey = np.histogram2d(xy[:, 0], xy[:, 1], bins=n_bins, range=[[x0, x1], [y0, y1]], weights=weights)
    with np.errstate(divide="ignore"):
        f = -np.log(h.T)
    f[~np.isfinite(f)] = np.nan
    return 0.5 * (ex[:-1] + ex[1:]), 0.5 * (ey[:-1] + ey[1:]), f - np.nanmin(f)


def window_clusters(overlap: np.ndarray, threshold: float = 0.01) -> int:
    """Number of connected clusters of windows whose symmetrised MBAR overlap exceeds `threshold`. More than one
    means the data do not fix the free-energy offsets between the clusters (MBAR's error then explodes)."""
    from scipy.sparse.csgraph import connected_components

    return int(connected_components(0.5 * (overlap + overlap.T) > threshold, directed=False)[0])


def mbar_basins_nd(
    s: np.ndarray,
    basin: np.ndarray,
    window: np.ndarray,
    centers: np.ndarray,
    kappa: float | np.ndarray,
    period: float | None = None,
) -> dict[str, Any]:
    """Basin free energies (kT, relative to basin 0) from umbrella windows with isotropic harmonic biases
    0.5 kappa_k |s - c_k|^2 in a d-dimensional CV (d = 2 for a grid of windows on a 2D latent or on two torsions).

    s (n, d), basin (n,) and window (n,) per frame, in time order within each window; centers (K, d). With `period`
    every component is periodic (torsions: 2 pi) and distances use the nearest image. Each window's frames are
    thinned by the largest statistical inefficiency of its displacements from its center and its basin
    indicators, as decorrelate does in 1D. Returns basin_df / basin_err (per basin, NaN where unvisited), the
    inefficiencies g, the overlap matrix, each window's best overlap with another window, and the number of
    connected window clusters."""
    pymbar = import_pymbar()
    s = np.asarray(s, float).reshape(len(s), -1)
    centers = np.asarray(centers, float).reshape(len(centers), -1)
    basin, window = np.asarray(basin, int), np.asarray(window, int)
    kappas = window_kappas(kappa, len(centers))
    n_basins = int(basin.max()) + 1 if len(basin) else 0

    def nearest(d: np.ndarray) -> np.ndarray:
        return d if period is None else (d + 0.5 * period) % period - 0.5 * period

    local = nearest(s - centers[window])  # displacement from the own window's center: no jumps at a wrap
    keep = np.zeros(len(s), bool)
    g = np.ones(len(centers))
    for k in range(len(centers)):
        idx = np.flatnonzero(window == k)
        series = [local[idx, i] for i in range(s.shape[1])]
        series += [(basin[idx] == b).astype(float) for b in range(n_basins)]
        values = [v for v in (_inefficiency(pymbar, x) for x in series) if v is not None]
        g[k] = max(values, default=1.0)
        keep[idx[:: max(1, math.ceil(g[k]))]] = True
    order = np.flatnonzero(keep)[np.argsort(window[keep], kind="stable")]
    s, basin, window = s[order], basin[order], window[order]
    u_kn = 0.5 * kappas[:, None] * (nearest(s[None, :, :] - centers[:, None, :]) ** 2).sum(-1)
    present = [b for b in range(n_basins) if np.any(basin == b)]
    basin_df, basin_err = np.full(n_basins, np.nan), np.full(n_basins, np.nan)
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        mbar = pymbar.MBAR(u_kn, np.bincount(window, minlength=len(centers)), solver_protocol="robust")
        overlap = np.asarray(mbar.compute_overlap()["matrix"])
        if 0 in present:
            states = np.array([np.where(basin == b, 0.0, OUT_OF_BASIN) for b in present])
            out = mbar.compute_perturbed_free_energies(states)
            basin_df[present] = np.asarray(out["Delta_f"])[0]
            basin_err[present] = np.asarray(out["dDelta_f"])[0]
        from scipy.special import logsumexp

        n_k = np.bincount(window, minlength=len(centers))
        log_w = -logsumexp(np.log(np.maximum(n_k, 1))[:, None] + np.asarray(mbar.f_k)[:, None] - u_kn, axis=0)
        weights = np.exp(log_w - log_w.max())
    off = overlap - np.diag(np.diag(overlap))
    return {
        "frames": order,
        "weights": weights / weights.sum(),
        "basin_df": basin_df,
        "basin_err": basin_err,
        "g": g,
        "overlap": overlap,
        "best_neighbour_overlap": off.max(1),
        "clusters": window_clusters(overlap),
        "n_used": int(len(s)),
    }
