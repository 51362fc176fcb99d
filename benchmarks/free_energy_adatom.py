"""Benchmark: the free energy of a Cu adatom hopping between two hollow sites of Cu(100), through the tools.

A materials use of the atomistic umbrella path: unbiased Langevin MD (EMT, 300 K) of the adatom in hollow A and in
the neighbouring hollow B gives labelled frames (positions with atomic numbers, cell, pbc); `learn_cv` learns a CV
from the adatom's distances to the six top-layer atoms around both hollows; `umbrella_sampling` runs Langevin MD with
EMT in windows along it (replica exchange between neighbours); `free_energy_profile` gives F(B) - F(A) by MBAR.
The two hollows are mirror images of each other in the slab, so the exact answer is 0. Printed beside it: the
free-energy barrier along the CV and the energy barrier of the hop from a nudged elastic band (ASE NEB, same
potential, same run) - not the same quantity (the CV is not the minimum-energy path and the barrier holds entropy),
but they should be close.

Why: the hop is the materials counterpart of the alanine benchmark with an exact answer, and it runs through the
tools an agent calls (learn_cv, umbrella_sampling, free_energy_profile) rather than through benchmark code. A CV
learned from basin frames alone can step across the unsampled barrier, so by default one more CV round
(`--cv-rounds 1`) adds the windows' frames, each labelled by the hollow its energy minimisation ends in
(models.sampling.quench). Results, dated with their commands: benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/free_energy_adatom.py [--windows 32] [--steps 3000] [--seed 0] [--cv-rounds 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.sampling.adatom import T, hop_data, hopped, neb_barrier, slab_with_adatom  # noqa: E402


def main() -> None:
    """Data, CV, umbrella sampling and MBAR through the tools; print F(B) - F(A) against 0 and the barriers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3000, help="MD steps (2 fs) per window")
    parser.add_argument("--data-steps", type=int, default=3000, help="unbiased MD steps (2 fs) per hollow")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--w-smooth", type=float, default=10.0,
        help="CV smoothness weight (learn_cv w_smooth): the data hold no frames on the barrier, and a CV that steps "
        "there leaves it unsampled (w_smooth 1: 0.16-0.87 of the CV unsampled with 12 windows)",
    )
    parser.add_argument(
        "--cv-rounds", type=int, default=1,
        help="retrain the CV on the last round's umbrella frames, labelled by the hollow they quench into "
        "(learn_cv add_samples_id), and sample again, N times",
    )
    args = parser.parse_args()
    workspace = Path(os.environ.setdefault("MATSEARCH_WORKSPACE", tempfile.mkdtemp(prefix="bench-adatom-")))
    workspace.mkdir(parents=True, exist_ok=True)
    import torch
    from ase import units

    from tools.core.registry import ToolContext, get_tool

    torch.set_num_threads(1)
    t0 = time.time()
    slab_a, step = slab_with_adatom()
    barrier_ev = neb_barrier(slab_a, hopped(slab_a, step))
    t_neb = time.time() - t0
    x, labels, pairs = hop_data(slab_a, step, args.data_steps, args.seed)
    np.savez(workspace / "adatom.npz", x=x, labels=labels, numbers=slab_a.numbers, cell=np.asarray(slab_a.cell),
             pbc=slab_a.pbc)
    ctx = ToolContext()
    learn = {"data_file": "adatom.npz", "preset": "classifier", "features": "distances", "epochs": 60,
             "w_smooth": args.w_smooth, "feature_atoms": pairs, "seed": args.seed}
    kT_ev = units.kB * T
    print(f"NEB energy barrier {barrier_ev:.3f} eV = {barrier_ev / kT_ev:.1f} kT ({t_neb:.0f} s)", flush=True)
    samples_id = None
    for cv_round in range(args.cv_rounds + 1):
        cv = get_tool("learn_cv").run({**learn, "add_samples_id": samples_id}, ctx)
        print(f"CV round {cv_round}: {cv.message} ({cv.n_samples} frames, {cv.seconds:.0f} s)", flush=True)
        us = get_tool("umbrella_sampling").run(
            {"cv_id": cv.cv_id, "potential": "emt", "n_windows": args.windows, "n_steps": args.steps,
             "n_equil": 200, "stride": 10, "timestep_fs": 2.0, "exchange_every": 50, "temperature_K": T,
             "seed": args.seed + cv_round},
            ctx,
        )
        samples_id = us.samples_id
        print(f"umbrella: {args.windows} windows x {args.steps * 2 / 1000:.0f} ps, exchange acceptance "
              f"{us.exchange_acceptance:.2f}, {us.seconds:.0f} s; warnings {us.warnings}", flush=True)
        fe = get_tool("free_energy_profile").run({"samples_id": us.samples_id, "method": "both"}, ctx)
        mbar, wham = fe.basins[1], (fe.basins_wham or [None, None])[1]
        profile = np.array([p.F_kT for p in fe.profile if p.F_kT is not None])
        print(f"\n=== Cu adatom on Cu(100), EMT, 300 K: F(hollow B) - F(hollow A) (exact 0 by symmetry); "
              f"CV round {cv_round} ===")
        print(f"MBAR: {mbar.dF_kT:.3f} +- {mbar.error_kT:.3f} kT" + (f"; WHAM: {wham.dF_kT:.3f} kT" if wham else ""))
        print(f"free-energy barrier along the CV: {profile.max() - profile.min():.1f} kT (NEB energy barrier "
              f"{barrier_ev / kT_ev:.1f} kT)")
        print(f"min neighbour overlap {fe.min_neighbour_overlap}; warnings {fe.warnings}; "
              f"total {time.time() - t0:.0f} s\n", flush=True)


if __name__ == "__main__":
    main()
