"""Benchmark: multitask vs classifier-only vs autoencoder CVs on the 5D Mueller-Brown and 5D three-well models.

For each system one set of basin training data is generated; each CV preset is trained on it and then drives
umbrella sampling of identical cost (windows x walkers x steps, same seeds); MBAR and WHAM basin free-energy
differences are compared with the exact values from numerical integration. Prints one table (errors in kT).

    .venv/bin/python benchmarks/free_energy_toy.py            # full sizes (~15-25 min on 2 shared cores)
    .venv/bin/python benchmarks/free_energy_toy.py --quick    # small sizes (~3 min)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.free_energy.estimators import (  # noqa: E402
    decorrelate,
    default_windows,
    grid_window_centers,
    hull_grid_spacing,
    mbar_analysis,
    mbar_basins_nd,
    umbrella_toy,
    wham_analysis,
)
from models.potentials.toy import basin_trajectories, get_toy_system  # noqa: E402
from models.sampling.cv import PRESETS, CVConfig, train_cv  # noqa: E402

GRID_PRESET = "multitask-2d"  # a 2D multitask CV (plus reconstruction) and windows on a grid over both components


def run_one(system_name: str, preset: str, data: dict, sizes: dict, seed: int) -> dict:
    """Train one CV preset and run umbrella sampling + MBAR/WHAM on it; the free-energy errors against exact.
    GRID_PRESET runs about 4x the windows with a quarter of the walkers each (equal walker-steps)."""
    system = get_toy_system(system_name)
    exact = system.exact_basin_free_energies()
    t0 = time.time()
    grid = preset == GRID_PRESET
    extra = {"latent_dim": 2, "w_recon": 1.0} if grid else {}
    config = CVConfig.preset("multitask" if grid else preset, n_inputs=system.dim, n_classes=system.n_basins, **extra)
    model, metrics = train_cv(config, data["x"], data["label"], data["energy"], epochs=sizes["epochs"], seed=seed)
    t_train = time.time() - t0
    if grid:
        return run_grid(system, model, metrics, data, sizes, seed, exact, t_train)
    s = model.cv_numpy(data["x"])[:, 0]
    basin_s = np.array([np.median(s[data["label"] == b]) for b in range(system.n_basins)])
    centers, kappa = default_windows(basin_s, sizes["windows"])
    t1 = time.time()
    samples = umbrella_toy(
        system,
        model,
        centers,
        kappa,
        data["x"],
        n_walkers=sizes["walkers"],
        n_steps=sizes["steps"],
        n_equil=sizes["equil"],
        seed=seed,
    )
    t_us = time.time() - t1
    dec, g = decorrelate(samples)
    mbar = mbar_analysis(dec)
    wham = wham_analysis(dec, n_bootstrap=10, convergence=False)
    return {
        **result_row(system_name, preset, seed, metrics, exact, mbar.basin_df, mbar.basin_df_err, samples, t_train,
                     t_us),
        "wham_kT": np.round(wham.basin_df, 4).tolist(),
        "max_stat_inefficiency": round(float(g.max()), 2),
        "min_neighbour_overlap": round(float(min(mbar.overlap[i, i + 1] for i in range(len(centers) - 1))), 4),
        "converged": mbar.extra.get("convergence", {}).get("warning") is None,
        "umbrella_walker_steps": sizes["windows"] * sizes["walkers"] * sizes["steps"],
    }


def result_row(
    system_name: str, preset: str, seed: int, metrics: dict, exact: np.ndarray, basin_df: np.ndarray,
    basin_err: np.ndarray, samples, t_train: float, t_us: float,  # noqa: ANN001
) -> dict:
    """The fields every preset's row shares: CV quality, MBAR basin dF against exact, exchange and timings."""
    err = basin_df - exact
    return {
        "system": system_name,
        "preset": preset,
        "seed": seed,
        "separation_accuracy": metrics["separation"]["accuracy"],
        "separation_overlap": metrics["separation"]["max_overlap"],
        "classifier_accuracy": metrics["classifier_accuracy"],
        "exact_kT": np.round(exact, 4).tolist(),
        "mbar_kT": np.round(basin_df, 4).tolist(),
        "mbar_err_kT": np.round(basin_err, 4).tolist(),
        "error_kT": np.round(err, 4).tolist(),
        "max_abs_error_kT": round(float(np.max(np.abs(err))), 4),
        "exchange_acceptance": samples.metadata["exchange_acceptance"],
        "train_s": round(t_train, 1),
        "umbrella_s": round(t_us, 1),
    }


def run_grid(system, model, metrics: dict, data: dict, sizes: dict, seed: int, exact: np.ndarray,  # noqa: ANN001
             t_train: float) -> dict:
    """GRID_PRESET: windows on a square grid over the convex hull of the data's 2D CV values (about 4x
    sizes["windows"], sizes["walkers"] // 4 walkers each), exchange along both axes, MBAR over both components."""
    s = model.cv_numpy(data["x"])[:, :2]
    spacing = hull_grid_spacing(s, 4 * sizes["windows"])
    centers = grid_window_centers(s, spacing, fill_hull=True)
    walkers = max(1, sizes["walkers"] // 4)
    t1 = time.time()
    samples = umbrella_toy(
        system, model, centers, 1.0 / spacing**2, data["x"], n_walkers=walkers, n_steps=sizes["steps"],
        n_equil=sizes["equil"], seed=seed, component=(0, 1),
    )
    t_us = time.time() - t1
    res = mbar_basins_nd(samples.s, samples.basin, samples.window, samples.centers, samples.kappa)
    return {
        **result_row(system.name, GRID_PRESET, seed, metrics, exact, res["basin_df"], res["basin_err"], samples,
                     t_train, t_us),
        "wham_kT": None,
        "max_stat_inefficiency": round(float(res["g"].max()), 2),
        "min_neighbour_overlap": round(float(res["best_neighbour_overlap"].min()), 4),
        "converged": None,
        "umbrella_walker_steps": len(centers) * walkers * sizes["steps"],
        "grid_windows": len(centers),
    }


def main() -> None:
    """Run every system x preset (x seed) and print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--seeds", type=int, default=1, help="independent repeats (data, training and sampling)")
    parser.add_argument("--systems", nargs="+", default=["mueller_brown_5d", "three_well_5d"])
    parser.add_argument("--presets", nargs="+", default=[*PRESETS, GRID_PRESET])
    parser.add_argument("--json", type=Path, default=None, help="also write all rows to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = (
        {"data_walkers": 6, "data_steps": 1500, "epochs": 40, "windows": 16, "walkers": 4, "steps": 3000, "equil": 300}
        if args.quick
        else {
            "data_walkers": 8,
            "data_steps": 3000,
            "epochs": 80,
            "windows": 24,
            "walkers": 8,
            "steps": 8000,
            "equil": 1000,
        }
    )
    print(f"sizes: {sizes}", flush=True)
    rows = []
    for system_name in args.systems:
        for seed in range(args.seeds):
            system = get_toy_system(system_name)
            data = basin_trajectories(
                system, n_walkers=sizes["data_walkers"], n_steps=sizes["data_steps"], stride=10, seed=100 + seed
            )
            for preset in args.presets:
                row = run_one(system_name, preset, data, sizes, seed)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(
        "\nsystem            preset        seed  sep.acc  overlap  dF MBAR (kT)             exact (kT)       "
        "max|err| kT  converged"
    )
    for r in rows:
        print(
            f"{r['system']:<17} {r['preset']:<12} {r['seed']:>4}  {r['separation_accuracy']:>7.3f}  "
            f"{r['separation_overlap']:>7.3f}  {str(np.round(r['mbar_kT'], 2).tolist()):<24} "
            f"{str(np.round(r['exact_kT'], 2).tolist()):<16} {r['max_abs_error_kT']:>9.3f}  {r['converged']}"
        )
    print("\nmean max|error| (kT) per preset over systems and seeds:")
    for preset in args.presets:
        errs = [r["max_abs_error_kT"] for r in rows if r["preset"] == preset]
        print(f"  {preset:<12} {np.mean(errs):.3f}  (worst {np.max(errs):.3f}, n={len(errs)})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
