"""Umbrella sampling along a learned CV, MBAR and WHAM: basin free energies match exact numerical integration, WHAM
agrees with MBAR, poor window overlap is reported with the matrix, the ASE bias has consistent forces, and the tools
chain learn_cv -> umbrella_sampling -> free_energy_profile by reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.free_energy.estimators import (
    UmbrellaSamples,
    decorrelate,
    default_windows,
    exchange_neighbours,
    exchange_pairs,
    grid_pairs,
    mbar_analysis,
    mbar_basins_nd,
    merge_samples,
    refine_windows,
    sparse_stretches,
    umbrella_toy,
    unsampled_stretches,
    wham_analysis,
)
from models.potentials.toy import basin_trajectories, get_toy_system
from models.sampling.cv import CVConfig, train_cv
from tools.core.errors import ToolInputError
from tools.core.registry import ToolContext, get_tool

TOLERANCE_KT = 0.3


@pytest.fixture(scope="module")
def mueller_brown_run() -> dict:
    """A small umbrella-sampling run on the 5D Mueller-Brown model along a learned multitask CV (fixed seeds)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        system = get_toy_system("mueller_brown_5d")
        data = basin_trajectories(system, n_walkers=8, n_steps=2000, stride=10, seed=1)
        config = CVConfig.preset("multitask", n_inputs=5, n_classes=system.n_basins)
        model, _ = train_cv(config, data["x"], data["label"], data["energy"], epochs=40, seed=0)
        s = model.cv_numpy(data["x"])[:, 0]
        basin_s = np.array([np.median(s[data["label"] == b]) for b in range(system.n_basins)])
        centers, kappa = default_windows(basin_s, 24)
        samples = umbrella_toy(system, model, centers, kappa, data["x"], n_walkers=8, n_steps=4000, seed=0)
        decorrelated, _ = decorrelate(samples)
    finally:
        torch.set_num_threads(before)
    return {"system": system, "samples": decorrelated, "mbar": mbar_analysis(decorrelated)}


@pytest.mark.slow
def test_umbrella_mbar_matches_exact_basin_free_energy(mueller_brown_run: dict) -> None:
    system, result = mueller_brown_run["system"], mueller_brown_run["mbar"]
    exact = system.exact_basin_free_energies()
    deviation = np.abs(result.basin_df - exact)
    print(
        f"Mueller-Brown dF MBAR {np.round(result.basin_df, 3)} +- {np.round(result.basin_df_err, 3)}, exact "
        f"{np.round(exact, 3)}, |error| {np.round(deviation, 3)} kT (tolerance {TOLERANCE_KT})"
    )
    assert np.all(deviation < TOLERANCE_KT)
    assert np.all(result.basin_df_err[1:] < 0.2)  # uncertainties are reported and small enough to mean something
    assert not any("do not overlap" in w for w in result.warnings)
    assert result.extra["convergence"]["warning"] is None
    assert np.nanmin(result.profile) == pytest.approx(0.0)


@pytest.mark.slow
def test_wham_agrees_with_mbar(mueller_brown_run: dict) -> None:
    samples, mbar = mueller_brown_run["samples"], mueller_brown_run["mbar"]
    wham = wham_analysis(samples, n_bootstrap=5)
    assert np.max(np.abs(wham.basin_df - mbar.basin_df)) < 0.1
    ok = np.isfinite(wham.profile) & np.isfinite(mbar.profile) & (mbar.profile < 6)
    assert ok.sum() > 20
    assert np.max(np.abs(wham.profile[ok] - mbar.profile[ok])) < 0.2
    assert np.all(wham.basin_df_err[1:] > 0)


def _synthetic_samples(centers: np.ndarray, kappa: float, n: int = 400, seed: int = 0) -> UmbrellaSamples:
    """Exact window samples of F(s) = a/2 (s - m)^2 (a = 40, m = mean center) under harmonic windows: Gaussians of
    precision a + kappa; basin 1 is s > m, so the exact basin dF is 0."""
    rng = np.random.default_rng(seed)
    a, m = 40.0, float(centers.mean())
    k = len(centers)
    window = np.repeat(np.arange(k), n)
    means = (a * m + kappa * centers) / (a + kappa)
    s = rng.normal(np.repeat(means, n), 1.0 / np.sqrt(a + kappa))
    basin = (s > m).astype(int)
    return UmbrellaSamples(
        centers, kappa, 1.0, window, window.copy(), np.tile(np.arange(n), k), s, basin, np.zeros((len(s), 0))
    )


def test_non_overlapping_windows_warn_with_matrix() -> None:
    good = mbar_analysis(_synthetic_samples(np.linspace(0, 1, 11), kappa=100.0), n_bins=20)
    assert not any("overlap" in w for w in good.warnings)
    assert abs(good.basin_df[1]) < 3 * good.basin_df_err[1] + 0.05  # symmetric landscape: exact dF = 0
    bad = mbar_analysis(_synthetic_samples(np.array([0.0, 1.0, 2.0, 3.0]), kappa=400.0), n_bins=20)
    text = "\n".join(bad.warnings)
    assert "do not overlap" in text and "Overlap matrix" in text
    assert "0-1" in text and "2-3" in text
    assert "1." in text.split("Overlap matrix")[1]  # the matrix itself (diagonal ~1) is printed


def _tilted_samples(
    centers: np.ndarray, kappas: np.ndarray, tilt: float, n: int = 400, seed: int = 0
) -> UmbrellaSamples:
    """Exact window samples of F(s) = a/2 s^2 + tilt * s (a = 40) under windows with their own force constants
    (Gaussians of precision a + kappa_k); basin 1 is s > 0."""
    rng = np.random.default_rng(seed)
    a, k = 40.0, len(centers)
    window = np.repeat(np.arange(k), n)
    means = (kappas * centers - tilt) / (a + kappas)
    s = rng.normal(np.repeat(means, n), np.repeat(1.0 / np.sqrt(a + kappas), n))
    return UmbrellaSamples(
        centers,
        kappas,
        1.0,
        window,
        window.copy(),
        np.tile(np.arange(n), k),
        s,
        (s > 0).astype(int),
        np.zeros((len(s), 0)),
    )


def test_refined_stiffer_windows_close_the_gap_and_recover_the_exact_free_energy() -> None:
    """Windows with a gap (no overlap) are refined: new, stiffer windows go where sampling stopped; with per-window
    force constants MBAR and WHAM then reproduce the exact basin dF of a tilted landscape."""
    from scipy.stats import norm

    tilt, a = 6.0, 40.0
    exact = -np.log(norm.sf(tilt / np.sqrt(a)) / norm.cdf(tilt / np.sqrt(a)))  # F(s>0) - F(s<0) in kT
    centers = np.array([-0.9, -0.8, -0.7, 0.7, 0.8, 0.9])
    kappas = np.full(len(centers), 60.0)
    first = _tilted_samples(centers, kappas, tilt)
    before = mbar_analysis(first, n_bins=20, convergence=False)
    assert any("do not overlap" in w for w in before.warnings)
    new_c, new_k = refine_windows(first)
    # the hole no sample visits (between the groups' means -0.48 and 0.36), filled at the new windows' thermal width
    assert 2 <= len(new_c) <= 12 and np.all((new_c > -0.48) & (new_c < 0.36)) and np.all(new_k == 4 * 60.0)
    merged = merge_samples(first, _tilted_samples(new_c, new_k, tilt, seed=1))
    assert merged.n_windows == 6 + len(new_c) and merged.metadata["refined_windows"] == len(new_c)
    for round_ in range(3):  # as the tool does: refine until nothing is left uncovered
        new_c, new_k = refine_windows(merged, mbar_analysis(merged, n_bins=20, convergence=False).overlap)
        if not len(new_c):
            break
        merged = merge_samples(merged, _tilted_samples(new_c, new_k, tilt, seed=2 + round_))
    print(f"{merged.n_windows} windows after refinement")
    after = mbar_analysis(merged, n_bins=20, convergence=False)
    assert not any("do not overlap" in w for w in after.warnings)
    assert abs(after.basin_df[1] - exact) < 3 * after.basin_df_err[1] + 0.05
    assert abs(wham_analysis(merged, n_bins=40, n_bootstrap=3, convergence=False).basin_df[1] - exact) < 0.15
    assert len(refine_windows(merged)[0]) == 0  # nothing left to refine


def test_a_wall_crossed_only_in_passing_is_refined() -> None:
    """Windows piled up at the foot of a steep wall, with 3 % of their frames crossing it: no bin is empty, yet the
    wall is sampled only in passing, so refinement puts stiffer windows on it and the analysis says so."""
    rng = np.random.default_rng(0)
    centers = np.linspace(0.0, 1.0, 11)
    kappa, n = 400.0, 500
    s, window = [], []
    for k, c in enumerate(centers):
        if 0.3 < c < 0.6:  # windows 4 and 5: stuck at 0.3, a few frames thrown across to 0.7
            frames = rng.normal(0.3, 0.03, n)
            crossing = rng.random(n) < 0.03
            frames[crossing] = rng.uniform(0.3, 0.7, crossing.sum())
        else:
            frames = rng.normal(c, 1.0 / np.sqrt(kappa), n)
        s.append(frames)
        window.append(np.full(n, k))
    s_all, w_all = np.concatenate(s), np.concatenate(window)
    samples = UmbrellaSamples(centers, kappa, 1.0, w_all, w_all.copy(), np.tile(np.arange(n), 11), s_all,
                              (s_all > 0.5).astype(int), np.zeros((len(s_all), 0)))
    assert not [lo for lo, hi, _ in unsampled_stretches(samples, sparse_fraction=0.0)]  # no empty gap at all
    stretches = sparse_stretches(samples)
    assert len(stretches) == 1
    lo, hi, k = stretches[0]
    assert 0.35 < lo < 0.42 and 0.45 < hi < 0.55 and k == kappa
    new_c, new_k = refine_windows(samples)
    assert len(new_c) >= 2 and np.all((new_c > lo) & (new_c < hi)) and np.all(new_k == 4 * kappa)
    assert any("only in passing" in w for w in mbar_analysis(samples, n_bins=20, convergence=False).warnings)


def test_windows_stuck_in_different_basins_at_the_same_cv_warn_of_a_hidden_barrier() -> None:
    """Same CV values, different basins (each window kept the basin it started in): said plainly; a CV whose basins
    follow s does not trigger it."""
    centers = np.linspace(-0.5, 0.5, 6)
    honest = _tilted_samples(centers, np.full(6, 100.0), tilt=0.0)
    assert not any("hidden barrier" in w for w in mbar_analysis(honest, n_bins=20, convergence=False).warnings)
    stuck = _tilted_samples(centers, np.full(6, 100.0), tilt=0.0)
    stuck.basin = np.where(np.isin(stuck.window, [1, 3, 5]), 1, 0)  # neighbours alternate between basins
    text = "\n".join(mbar_analysis(stuck, n_bins=20, convergence=False).warnings)
    assert "hidden barrier" in text and "0-1" in text


def test_decorrelation_follows_the_basin_indicator_when_it_is_slower_than_the_cv() -> None:
    """s is white noise but the basin flips every 50 frames (a barrier across the CV): g follows the basin
    indicator (about 50), not s (about 1), so MBAR is not handed 25 times too many 'independent' samples."""
    rng = np.random.default_rng(0)
    n = 2000
    s = rng.normal(0.0, 0.1, n)
    samples = UmbrellaSamples(
        centers=np.array([0.0]), kappa=100.0, kT=1.0, window=np.zeros(n, int), walker=np.zeros(n, int),
        frame=np.arange(n), s=s, basin=(np.arange(n) // 50) % 2, x=s[:, None],
    )
    kept, g = decorrelate(samples)
    assert 20.0 < g[0] < 120.0
    assert len(kept.s) <= n / 20
    samples.basin = np.zeros(n, int)  # one basin: the indicator is constant and s alone sets g
    assert decorrelate(samples)[1][0] < 2.0


def _gaussian_grid_samples(centers: np.ndarray, kappa: float, mean: np.ndarray, n: int, seed: int) -> tuple:
    """Exact iid samples of each window's biased distribution for F(s) = |s - mean|^2 / 2 (kT) in 2D: Gaussians of
    precision 1 + kappa centered at (mean + kappa c) / (1 + kappa). Basin 1 where s_0 > 0."""
    rng = np.random.default_rng(seed)
    mu = (mean + kappa * centers) / (1.0 + kappa)
    s = (mu[:, None, :] + rng.normal(size=(len(centers), n, 2)) / np.sqrt(1.0 + kappa)).reshape(-1, 2)
    window = np.repeat(np.arange(len(centers)), n)
    return s, (s[:, 0] > 0).astype(int), window


@pytest.mark.slow
def test_mbar_on_a_2d_grid_of_windows_recovers_the_exact_basin_free_energy() -> None:
    """A 5 x 5 grid of windows on a 2D Gaussian free energy: F(s_0 > 0) - F(s_0 < 0) = -ln(Phi(m)/(1 - Phi(m))),
    recovered within its error bar; with periodic components and everything shifted across the wrap, the same
    answer; two far-apart groups of windows are reported as two clusters."""
    from scipy.stats import norm

    mean = np.array([0.3, -0.2])
    axis = np.linspace(-2.0, 2.0, 5)
    centers = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    s, basin, window = _gaussian_grid_samples(centers, 1.0, mean, 400, seed=0)
    exact = -np.log(norm.cdf(0.3) / norm.cdf(-0.3))
    res = mbar_basins_nd(s, basin, window, centers, 1.0)
    assert res["clusters"] == 1 and res["g"].max() < 3.0
    assert abs(res["basin_df"][1] - exact) < max(4 * res["basin_err"][1], 0.05)
    assert res["basin_df"][1] - exact == pytest.approx(0.0, abs=0.1)
    period = 8 * np.pi  # longer than any distance here: the nearest image is the plain difference
    wrap = lambda a: (a + period / 2) % period - period / 2  # noqa: E731
    shift = period / 2 - 0.5  # moves the grid across the wrap
    shifted = mbar_basins_nd(wrap(s + shift), basin, window, wrap(centers + shift), 1.0, period=period)
    assert shifted["basin_df"][1] == pytest.approx(res["basin_df"][1], abs=1e-6)
    apart = np.concatenate([centers[:2], centers[:2] + 50.0])
    s2, basin2, window2 = _gaussian_grid_samples(apart, 1.0, mean, 200, seed=1)
    assert mbar_basins_nd(s2, basin2, window2, apart, 1.0)["clusters"] == 2


@pytest.mark.slow
def test_replica_exchange_keeps_each_windows_biased_distribution_exact() -> None:
    """REUS on a 1D double well (barrier 4 kT): Metropolis walkers in 8 harmonic windows that swap windows every
    sweep keep each window's exact biased distribution (mean s from numerical integration) and travel across
    windows; identical windows always swap."""
    rng = np.random.default_rng(0)  # statistical error of a window mean here: 0.01-0.03 (barrier windows)
    centers, kappa = np.linspace(-1.4, 1.4, 8), 1.0 / 0.4**2

    def energy(s: np.ndarray, window: np.ndarray) -> np.ndarray:
        return 4.0 * (s**2 - 1.0) ** 2 + 0.5 * kappa * (s - centers[window]) ** 2

    grid = np.linspace(-3.0, 3.0, 6001)
    exact = np.array([np.sum(grid * np.exp(-energy(grid, np.full_like(grid, k, int))))
                      / np.sum(np.exp(-energy(grid, np.full_like(grid, k, int)))) for k in range(8)])
    s, window_of = centers.copy(), np.arange(8)
    sums, counts, attempts, accepted, visited = np.zeros(8), np.zeros(8), 0, 0, {0}
    for step in range(40000):
        trial = s + rng.normal(0.0, 0.15, 8)
        take = rng.random(8) < np.exp(-(energy(trial, window_of) - energy(s, window_of)))
        s = np.where(take, trial, s)
        window_of, n_try, n_ok = exchange_neighbours(s, window_of, centers, kappa, rng, parity=step % 2)
        attempts, accepted = attempts + n_try, accepted + n_ok
        visited.add(int(window_of[0]))
        if step >= 2000:
            np.add.at(sums, window_of, s)
            np.add.at(counts, window_of, 1)
    assert np.max(np.abs(sums / counts - exact)) < 0.05, (sums / counts, exact)
    assert 0.1 < accepted / attempts < 0.95 and len(visited) == 8
    same = np.zeros(4)
    swapped, n_try, n_ok = exchange_neighbours(np.array([0.0, 3.0, -2.0, 1.0]), np.arange(4), same, 50.0, rng, 0)
    assert n_try == n_ok == 2 and swapped.tolist() == [1, 0, 3, 2]


@pytest.mark.slow
def test_replica_exchange_on_a_2d_grid_of_windows_keeps_each_biased_distribution_exact() -> None:
    """REUS on a 2D grid (grid_pairs + exchange_pairs): walkers in 3 x 3 windows on a double well in x (barrier
    4 kT) times a harmonic y keep each window's exact biased mean (numerical integration) while swapping along
    both axes; every grid edge is tried once per 4 sweeps and windows off the grid have no partner."""
    rng = np.random.default_rng(1)  # max error of a window mean over seeds: 0.03-0.09; swapping always errs by ~1
    axis = np.array([-1.0, 0.0, 1.0])
    centers = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    kappa = 1.0 / 0.5**2

    def energy(s: np.ndarray, window: np.ndarray) -> np.ndarray:
        bias = 0.5 * kappa * ((s - centers[window]) ** 2).sum(-1)
        return 4.0 * (s[..., 0] ** 2 - 1.0) ** 2 + 0.5 * s[..., 1] ** 2 + bias

    g = np.linspace(-3.5, 3.5, 351)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    exact = []
    for k in range(9):
        w = np.exp(-energy(grid, np.full(len(grid), k)))
        exact.append((grid * w[:, None]).sum(0) / w.sum())
    edges = {tuple(sorted(p)) for sweep in range(4) for p in grid_pairs(centers, 1.0, sweep)}
    assert len(edges) == 12 and all(np.abs(centers[i] - centers[j]).sum() == 1.0 for i, j in edges)
    s, window_of = centers.copy(), np.arange(9)
    sums, counts, attempts, accepted = np.zeros((9, 2)), np.zeros(9), 0, 0
    for step in range(30000):
        trial = s + rng.normal(0.0, 0.3, s.shape)
        take = rng.random(9) < np.exp(-(energy(trial, window_of) - energy(s, window_of)))
        s = np.where(take[:, None], trial, s)
        pairs = grid_pairs(centers, 1.0, step)
        window_of, n_try, n_ok = exchange_pairs(s, window_of, centers, kappa, rng, pairs)
        attempts, accepted = attempts + n_try, accepted + n_ok
        if step >= 2000:
            np.add.at(sums, window_of, s)
            np.add.at(counts, window_of, 1)
    assert np.max(np.abs(sums / counts[:, None] - np.array(exact))) < 0.15
    assert 0.1 < accepted / attempts < 0.95
    assert grid_pairs(centers[[0, 2, 4]], 1.0, 0) == []  # no two of these are one spacing apart


def test_biased_calculator_forces_match_finite_differences() -> None:
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.cluster import Icosahedron

    from models.sampling.cv import MultitaskCV
    from models.sampling.cv_bias import BiasedCalculator, distance_cv, network_cv

    torch.manual_seed(0)
    net = MultitaskCV(
        CVConfig.preset(
            "classifier", n_inputs=13 * 3, n_classes=2, features="distances", feature_atoms=[[0, 3], [1, 5], [2, 7]]
        )
    )
    cases = [
        (Icosahedron("Cu", 2), distance_cv(0, 3), 2.0),
        (bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2), distance_cv(0, 3), 2.0),
        (Icosahedron("Cu", 2), network_cv(net), 1.0),  # a CV network on pair distances
    ]
    for atoms, cv_fn, center in cases:
        atoms.rattle(0.05, seed=1)
        calc = BiasedCalculator(EMT(), cv_fn, center=center, k=5.0)
        atoms.calc = calc
        forces = atoms.get_forces()
        assert calc.results["bias_energy"] > 1e-3  # the bias is active
        base = atoms.copy()
        base.calc = EMT()
        assert np.abs(forces - base.get_forces()).max() > 0.01
        h = 1e-5
        for a in (0, 3, 5):
            for c in range(3):
                pos = atoms.get_positions()
                pos[a, c] += h
                atoms.set_positions(pos)
                e_plus = atoms.get_potential_energy()
                pos[a, c] -= 2 * h
                atoms.set_positions(pos)
                e_minus = atoms.get_potential_energy()
                pos[a, c] += h
                atoms.set_positions(pos)
                assert -(e_plus - e_minus) / (2 * h) == pytest.approx(forces[a, c], abs=1e-5)


@pytest.mark.slow
def test_tools_chain_by_reference(workspace) -> None:
    ctx = ToolContext()
    learned = get_tool("learn_cv").run(
        {"system": "mueller_brown_5d", "n_walkers": 6, "n_steps": 1500, "epochs": 30, "seed": 1}, ctx
    )
    assert learned.separates_basins and "separates the labelled basins" in learned.message
    assert (workspace / learned.checkpoint_uri.removeprefix("artifact://")).is_file()
    assert (workspace / learned.map_plot_uri.removeprefix("artifact://")).is_file()
    us = get_tool("umbrella_sampling").run(
        {"cv_id": learned.cv_id, "n_windows": 12, "n_walkers": 2, "n_steps": 1500, "n_equil": 300, "seed": 2}, ctx
    )
    assert len(us.centers) == 12 and min(us.samples_per_window) > 0 and us.langevin_acceptance > 0.5
    fe = get_tool("free_energy_profile").run({"samples_id": us.samples_id, "n_bootstrap": 3}, ctx)
    assert [b.basin for b in fe.basins] == ["A", "BC"]
    assert fe.basins[1].exact_kT == pytest.approx(2.172, abs=0.01)
    assert all(b.deviation_kT is not None and abs(b.deviation_kT) < 1.5 for b in fe.basins)  # short run: loose
    assert fe.basins_wham is not None and fe.max_mbar_wham_difference_kT < 0.2
    assert len(fe.overlap_matrix) == 12 and fe.min_neighbour_overlap > 0
    for uri in (fe.profile_plot_uri, fe.surface_plot_uri, fe.result_uri, us.windows_plot_uri):
        assert (workspace / uri.removeprefix("artifact://")).is_file()
    # too few, too stiff windows leave gaps: one refinement round adds 4x stiffer windows in them
    sparse = {"cv_id": learned.cv_id, "n_windows": 4, "kappa": 400.0, "n_walkers": 2, "n_steps": 800, "n_equil": 200}
    refined = get_tool("umbrella_sampling").run({**sparse, "refine_rounds": 1, "seed": 3}, ctx)
    assert refined.refined_windows > 0 and len(refined.centers) == len(refined.kappas) == 4 + refined.refined_windows
    assert refined.kappas[:4] == [400.0] * 4 and set(refined.kappas[4:]) == {1600.0}
    assert min(refined.samples_per_window) > 0
    fe_refined = get_tool("free_energy_profile").run({"samples_id": refined.samples_id, "n_bootstrap": 2}, ctx)
    assert fe_refined.min_neighbour_overlap > 0
    # a second CV round learns from the umbrella frames too (labelled by the basin rule): more data, still separating
    again = get_tool("learn_cv").run(
        {"system": "mueller_brown_5d", "n_walkers": 6, "n_steps": 1500, "epochs": 30, "seed": 1,
         "add_samples_id": us.samples_id}, ctx
    )
    assert again.n_samples == learned.n_samples + us.n_samples and again.separates_basins
    assert sum(again.basin_counts) == again.n_samples  # every umbrella frame got a basin label
    plain = np.random.default_rng(0).normal(size=(40, 5))
    np.savez(workspace / "plain.npz", x=plain, labels=np.repeat([0, 1], 20))  # no atomic numbers: nothing to quench
    with pytest.raises(ToolInputError, match="needs atomistic data"):
        get_tool("learn_cv").run({"data_file": "plain.npz", "add_samples_id": us.samples_id}, ctx)
    with pytest.raises(ToolInputError, match="another system"):
        get_tool("learn_cv").run({"system": "three_well_5d", "n_walkers": 2, "n_steps": 200,
                                  "add_samples_id": us.samples_id}, ctx)
    with pytest.raises(ToolInputError, match="no umbrella samples"):
        get_tool("free_energy_profile").run({"samples_id": "us-0123456789"}, ctx)
    with pytest.raises(ToolInputError, match="n_equil"):
        get_tool("umbrella_sampling").run({"cv_id": learned.cv_id, "n_steps": 200, "n_equil": 500}, ctx)


@pytest.mark.slow
def test_tools_chain_on_a_2d_grid_of_windows(workspace) -> None:
    """A 2D CV of the three-well model (three basins: a 1D CV puts two routes at the same value) drives windows on a
    grid over both components (umbrella_sampling dimensions=2); MBAR over the grid recovers the exact basin free
    energies (measured: +0.20 +- 0.15 and -0.09 +- 0.13 kT off; short run, so 0.5 kT here) and plots F(s0, s1)."""
    ctx = ToolContext()
    learned = get_tool("learn_cv").run(
        {"system": "three_well_5d", "latent_dim": 2, "w_recon": 1.0, "n_walkers": 6, "n_steps": 1500, "epochs": 30,
         "seed": 1}, ctx
    )
    assert learned.separates_basins
    grid = {"cv_id": learned.cv_id, "dimensions": 2, "n_windows": 60, "n_walkers": 2, "n_steps": 1500, "n_equil": 300}
    us = get_tool("umbrella_sampling").run({**grid, "seed": 2}, ctx)
    assert 40 <= len(us.centers) <= 120 and all(len(c) == 2 for c in us.centers)
    assert us.kappa == pytest.approx(1.0 / us.grid_spacing**2, rel=1e-3) and min(us.samples_per_window) > 0
    assert us.exchange_acceptance is not None and 0.2 < us.exchange_acceptance < 0.95
    fe = get_tool("free_energy_profile").run({"samples_id": us.samples_id}, ctx)
    assert [b.basin for b in fe.basins] == ["left", "right", "top"] and fe.profile == []
    assert all(abs(b.deviation_kT) < 0.5 for b in fe.basins), fe.basins
    assert fe.min_neighbour_overlap > 0.03 and set(fe.convergence) >= {"first_half_kT", "second_half_kT"}
    assert any("MBAR alone" in w for w in fe.warnings)
    for uri in (fe.profile_plot_uri, fe.surface_plot_uri, fe.result_uri, us.windows_plot_uri):
        assert (workspace / uri.removeprefix("artifact://")).is_file()
    with pytest.raises(ToolInputError, match="at most 400"):
        get_tool("umbrella_sampling").run({**grid, "grid_spacing": 0.1}, ctx)
    with pytest.raises(ToolInputError, match="dimensions=1 only"):
        get_tool("umbrella_sampling").run({**grid, "s_min": 0.0}, ctx)
    one_d = get_tool("learn_cv").run({"system": "three_well_5d", "n_walkers": 2, "n_steps": 300, "epochs": 2}, ctx)
    with pytest.raises(ToolInputError, match="latent_dim=2"):
        get_tool("umbrella_sampling").run({**grid, "cv_id": one_d.cv_id}, ctx)


def test_learn_cv_input_errors_and_non_separating_data(workspace) -> None:
    ctx = ToolContext()
    tool = get_tool("learn_cv")
    with pytest.raises(ToolInputError, match="exactly one"):
        tool.run({"system": "three_well_5d", "data_file": "x.npz"}, ctx)
    with pytest.raises(ToolInputError, match="system"):
        tool.run({"system": "no_such_system"}, ctx)
    with pytest.raises(ToolInputError, match="does not exist"):
        tool.run({"data_file": "missing.npz"}, ctx)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    np.savez(workspace / "noise.npz", x=x, labels=rng.integers(0, 2, 300))  # labels unrelated to x
    out = tool.run({"data_file": "noise.npz", "preset": "classifier", "epochs": 20}, ctx)
    assert not out.separates_basins
    assert "does NOT separate" in out.message and out.cv_separation_accuracy < 0.9
    assert out.torsion_fold_fraction is None  # identity features: no known slow coordinates to check folds against
    with pytest.raises(ToolInputError, match="without atomic numbers"):
        get_tool("umbrella_sampling").run({"cv_id": out.cv_id}, ctx)


def _chain_with_torsions(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Flattened positions (n, 15) of a five-atom chain (bonds 1.5, angles 110 deg) with torsions (0-3) ~ phi and
    (1-4) ~ psi, built atom by atom (natural extension reference frame)."""
    n, angle = len(phi), np.deg2rad(110.0)
    pos = np.zeros((n, 5, 3))
    pos[:, 1] = [1.5, 0.0, 0.0]
    pos[:, 2] = pos[:, 1] + 1.5 * np.array([-np.cos(angle), np.sin(angle), 0.0])
    for i, tors in ((3, phi), (4, psi)):
        a, b, c = pos[:, i - 3], pos[:, i - 2], pos[:, i - 1]
        bc = (c - b) / np.linalg.norm(c - b, axis=1, keepdims=True)
        normal = np.cross(b - a, bc)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        m = np.cross(normal, bc)
        step = [-np.cos(angle), np.sin(angle) * np.cos(tors), np.sin(angle) * np.sin(tors)]
        pos[:, i] = c + step[0][..., None] * bc + step[1][:, None] * m + step[2][:, None] * normal
    return pos.reshape(n, -1)


def test_learn_cv_on_torsions_says_when_the_cv_folds_them(workspace) -> None:
    # two basins in phi, psi free around the whole circle: a 1D CV separates the basins but must fold psi
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 300)
    phi = np.where(labels == 0, -1.5, 1.2) + 0.3 * rng.normal(size=600)
    psi = rng.uniform(-np.pi, np.pi, 600)
    workspace.mkdir(parents=True, exist_ok=True)
    np.savez(workspace / "chain.npz", x=_chain_with_torsions(phi, psi), labels=labels)
    common = {"data_file": "chain.npz", "preset": "classifier", "features": "torsions", "epochs": 20,
              "feature_atoms": [[0, 1, 2, 3], [1, 2, 3, 4]]}
    out = get_tool("learn_cv").run(common, ToolContext())
    assert out.separates_basins
    # psi is all that distinguishes frames within a basin, so a large share of close CV pairs differ by > 90 deg in it
    assert out.torsion_fold_fraction > 0.3
    assert "folds the torsions" in out.message and "latent_dim=2" in out.message
