"""Trajectory analysis for MD runs: radial distribution functions and their peaks, mean-squared displacement and
diffusion coefficients, density, and PNG plots. Plain functions on lists of ASE Atoms so any tool can reuse them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from tools.core.plotting import figure, save

AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660
A2_PER_FS_TO_CM2_PER_S = 0.1  # 1 A^2/fs = 1e-16 cm^2 / 1e-15 s


@dataclass
class RDFResult:
    """g(r) on bin centres (total and per element pair) with the positions of its peaks."""

    r: np.ndarray
    g: np.ndarray
    partial: dict[str, np.ndarray] = field(default_factory=dict)
    peaks: list[float] = field(default_factory=list)
    partial_peaks: dict[str, list[float]] = field(default_factory=dict)
    r_max: float = 0.0  # the range actually used (A), at most half the shortest perpendicular cell width
    r_max_requested: float = 0.0
    note: str = ""  # why r_max is smaller than requested, empty when it is not


def half_min_width(atoms: Atoms) -> float:
    """Half the shortest perpendicular width of the cell over its periodic directions (A; inf when none is).

    Within this distance every atom sees at most one copy of each neighbour and never its own periodic image
    (the minimum-image convention); a g(r) beyond it counts images as neighbours."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not pbc.any():
        return float("inf")
    cell = atoms.cell.array
    volume = abs(float(np.linalg.det(cell)))
    widths = [volume / float(np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))) for k in range(3)]
    return 0.5 * min(w for w, periodic in zip(widths, pbc, strict=True) if periodic)


def _pairs(atoms: Atoms, r_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full periodic neighbour list (i, j, d) within r_max from vesin (ase fallback for odd cells)."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    try:
        from vesin import NeighborList

        box = np.ascontiguousarray(atoms.cell.array if pbc.any() else np.zeros((3, 3)), dtype=np.float64)
        points = np.ascontiguousarray(atoms.positions, dtype=np.float64)
        periodic = pbc.tolist() if pbc.any() else False
        i, j, d = NeighborList(cutoff=float(r_max), full_list=True).compute(points, box, periodic, quantities="ijd")
    except Exception:  # vesin rejects degenerate or mixed boxes in some versions; ase's list is vectorised too
        from ase.neighborlist import neighbor_list

        i, j, d = neighbor_list("ijd", atoms, float(r_max))
    return np.asarray(i), np.asarray(j), np.asarray(d)


def find_peaks(r: np.ndarray, g: np.ndarray, min_height: float = 1.0, min_prominence: float = 0.3) -> list[float]:
    """Positions of the local maxima of g(r) above `min_height` with at least `min_prominence` (scipy)."""
    from scipy.signal import find_peaks as scipy_peaks

    if len(g) < 3:
        return []
    idx, _ = scipy_peaks(g, height=min_height, prominence=min_prominence)
    return [round(float(r[k]), 4) for k in idx]


def rdf(frames: Sequence[Atoms], r_max: float = 6.0, n_bins: int = 200, partials: bool = True) -> RDFResult:
    """Frame-averaged radial distribution function g(r) of periodic cells (total and per element pair).

    The range stops at half the shortest perpendicular cell width (over all frames) when `r_max` is larger, keeping
    the bin width: beyond it atoms meet their own periodic images, which show up as sharp false peaks. The range
    used and the reason are in the result's `r_max` and `note`."""
    if not frames:
        raise ValueError("rdf needs at least one frame")
    if r_max <= 0 or n_bins < 2:
        raise ValueError("rdf needs r_max > 0 and n_bins >= 2")
    requested, limit = float(r_max), min(half_min_width(a) for a in frames)
    note = ""
    if limit < requested:
        n_bins = max(2, round(n_bins * limit / requested))
        r_max = limit
        note = (f"RDF computed up to r_max = {limit:.2f} Å, half the shortest perpendicular cell width, instead of "
                f"the requested {requested:.2f} Å: farther out atoms meet their own periodic images; use a larger "
                "supercell for a longer range")
    edges = np.linspace(0.0, r_max, n_bins + 1)
    r = 0.5 * (edges[1:] + edges[:-1])
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    symbols = sorted(set(frames[0].get_chemical_symbols()))
    pair_keys = [f"{a}-{b}" for k, a in enumerate(symbols) for b in symbols[k:]]
    total = np.zeros(n_bins)
    part = {key: np.zeros(n_bins) for key in pair_keys}
    for atoms in frames:
        n, volume = len(atoms), atoms.get_volume()
        i, j, d = _pairs(atoms, r_max)
        hist, _ = np.histogram(d, bins=edges)
        total += hist / (n * (n / volume) * shell)
        if partials and len(symbols) > 1:
            sym = np.array(atoms.get_chemical_symbols())
            counts = {s: int((sym == s).sum()) for s in symbols}
            for key in pair_keys:
                a, b = key.split("-")
                mask = (sym[i] == a) & (sym[j] == b)
                h, _ = np.histogram(d[mask], bins=edges)
                part[key] += h / (counts[a] * (counts[b] / volume) * shell)
    total /= len(frames)
    result = RDFResult(r=r, g=total, peaks=find_peaks(r, total), r_max=float(r_max), r_max_requested=requested,
                       note=note)
    if partials and len(symbols) > 1:
        result.partial = {key: v / len(frames) for key, v in part.items()}
        result.partial_peaks = {key: find_peaks(r, v) for key, v in result.partial.items()}
    return result


def unwrapped_positions(frames: Sequence[Atoms]) -> np.ndarray:
    """Cartesian positions (F, N, 3) with periodic jumps removed (minimum-image steps between saved frames)."""
    frac = np.stack([a.get_scaled_positions(wrap=False) for a in frames])
    steps = np.diff(frac, axis=0)
    pbc = np.asarray(frames[0].pbc, dtype=bool)
    steps[..., pbc] -= np.round(steps[..., pbc])
    frac_unwrapped = np.concatenate([frac[:1], frac[:1] + np.cumsum(steps, axis=0)])
    cells = np.stack([a.cell.array for a in frames])
    return np.einsum("fni,fij->fnj", frac_unwrapped, cells)


def msd(frames: Sequence[Atoms], max_lag_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Mean-squared displacement (A^2) vs lag in frames, averaged over atoms and time origins; (lags, msd)."""
    if len(frames) < 2:
        return np.zeros(1, dtype=int), np.zeros(1)
    pos = unwrapped_positions(frames)
    pos = pos - pos.mean(axis=1, keepdims=True)  # remove centre-of-mass drift (equal weights)
    max_lag = max(1, int((len(frames) - 1) * max_lag_fraction))
    lags = np.arange(0, max_lag + 1)
    out = np.zeros(len(lags))
    for k, lag in enumerate(lags[1:], start=1):
        disp = pos[lag:] - pos[:-lag]
        out[k] = float(np.mean(np.sum(disp**2, axis=-1)))
    return lags, out


# The Einstein fit is meaningful once MSD grows linearly in t (log-log slope 1) and atoms have left their sites: in
# a solid MSD plateaus at the vibrational amplitude (well under 1 A^2), ballistic motion gives MSD ~ t^2.
DIFFUSIVE_SLOPE = (0.7, 1.3)
MIN_DIFFUSIVE_MSD_A2 = 3.0  # an RMS displacement of about 1.7 A: most of a nearest-neighbour distance


@dataclass
class DiffusionFit:
    """Einstein diffusion coefficient with the evidence that the MSD is in the diffusive regime."""

    coefficient_cm2_s: float
    loglog_slope: float  # d ln MSD / d ln t over the fitted window: 1 diffusive, 2 ballistic, about 0 caged
    msd_end_A2: float
    warning: str = ""  # empty when the fitted window looks diffusive


def fit_diffusion(times_fs: np.ndarray, msd_A2: np.ndarray, fit_from: float = 0.2) -> DiffusionFit:
    """Linear fit MSD(t) = 6 D t over the lags after the first `fit_from` (skipping the ballistic start), with a
    warning when that window is not diffusive: the log-log slope is outside DIFFUSIVE_SLOPE or the MSD stays below
    MIN_DIFFUSIVE_MSD_A2."""
    times_fs, msd_A2 = np.asarray(times_fs, dtype=float), np.asarray(msd_A2, dtype=float)
    end = float(msd_A2[-1]) if len(msd_A2) else 0.0
    if len(times_fs) < 3:
        return DiffusionFit(0.0, float("nan"), end, "too few MSD points for a diffusion coefficient")
    start = max(1, int(len(times_fs) * fit_from))
    t, m = times_fs[start:], msd_A2[start:]
    d = max(float(np.polyfit(t, m, 1)[0]) / 6.0, 0.0) * A2_PER_FS_TO_CM2_PER_S
    ok = (t > 0) & (m > 0)
    slope = float(np.polyfit(np.log(t[ok]), np.log(m[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")
    reasons = []
    if not DIFFUSIVE_SLOPE[0] <= slope <= DIFFUSIVE_SLOPE[1]:
        kind = "ballistic" if slope > DIFFUSIVE_SLOPE[1] else "caged or vibrating in place"
        reasons.append(f"MSD grows as t^{slope:.2f} over the fitted window, not linearly ({kind})")
    if end < MIN_DIFFUSIVE_MSD_A2:
        reasons.append(f"MSD reaches only {end:.2f} Å² (below {MIN_DIFFUSIVE_MSD_A2:.0f} Å²: atoms have not left "
                       "their sites)")
    warning = ""
    if reasons:
        warning = (f"diffusion coefficient {d:.3g} cm²/s is not reliable, the MSD has not reached the diffusive "
                   f"regime: {'; '.join(reasons)}; run longer or hotter, or read it as an upper bound")
    return DiffusionFit(d, round(slope, 4), end, warning)


def diffusion_coefficient(times_fs: np.ndarray, msd_A2: np.ndarray, fit_from: float = 0.2) -> float:
    """Einstein diffusion coefficient in cm^2/s from a linear fit of MSD(t) = 6 D t (see fit_diffusion)."""
    return fit_diffusion(times_fs, msd_A2, fit_from).coefficient_cm2_s


def density_g_cm3(atoms: Atoms) -> float:
    """Mass density of a periodic cell in g/cm^3."""
    return float(atoms.get_masses().sum() / atoms.get_volume() * AMU_PER_A3_TO_G_PER_CM3)


def plot_thermo(rows: Sequence[dict[str, float]], path: Path, title: str = "") -> Path:
    """Four stacked panels (energy, temperature, pressure, volume) vs time, written as a PNG."""
    t = np.array([row["time_fs"] for row in rows]) / 1000.0
    panels = [("etot_eV", "E (eV)"), ("temperature_K", "T (K)"), ("pressure_GPa", "P (GPa)"),
              ("volume_A3", "V (Å³)")]
    fig, axes = figure(len(panels), 1, figsize=(6.5, 7), sharex=True)
    for ax, (key, label) in zip(axes, panels, strict=True):
        ax.plot(t, [row.get(key, np.nan) for row in rows], lw=1.0, label="E total" if key == "etot_eV" else None)
        ax.set_ylabel(label)
    if "epot_eV" in rows[0]:
        axes[0].plot(t, [row["epot_eV"] for row in rows], lw=0.8, label="E pot")
        axes[0].legend(loc="best", fontsize=7)
    axes[-1].set_xlabel("time (ps)")
    axes[0].set_title(title)
    return save(fig, path)


def plot_rdf(result: RDFResult, path: Path, title: str = "") -> Path:
    """g(r) (total and partials) with its peaks marked, written as a PNG."""
    fig, ax = figure(figsize=(6.5, 3.5))
    ax.plot(result.r, result.g, lw=1.4, label="total", color="k")
    for key, g in result.partial.items():
        ax.plot(result.r, g, lw=0.9, label=key)
    for p in result.peaks:
        ax.axvline(p, color="gray", lw=0.5, ls=":")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=7)
    return save(fig, path)


def plot_msd(times_fs: np.ndarray, msd_A2: np.ndarray, path: Path, diffusion_cm2_s: float, title: str = "") -> Path:
    """MSD vs lag time with the fitted diffusion coefficient in the legend, written as a PNG."""
    fig, ax = figure(figsize=(6.5, 3.5))
    ax.plot(np.asarray(times_fs) / 1000.0, msd_A2, lw=1.2, label=f"D = {diffusion_cm2_s:.3g} cm²/s")
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("MSD (Å²)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    return save(fig, path)
