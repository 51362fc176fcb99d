"""Crystal-structure-prediction benchmark of the diffusion generator against a random pyxtal baseline.

One sample per test composition (the DiffCSP protocol): match rate and RMSE with StructureMatcher(stol=0.5,
angle_tol=10, ltol=0.3) on CDVAE perov_5 / carbon_24 test.csv subsets (read from ../shared/data, never copied) and on
the project's own held-out prototype split, next to the published DiffCSP/CDVAE numbers.

    python benchmarks/diffusion_csp.py --n 200 --steps 200 [--carbon-n 50] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.data.build_diffusion_set import CDVAE_DIR, read_cdvae, read_prototypes  # noqa: E402
from models.diffusion import DEFAULT_CHECKPOINT, CrystalDiffusion, sample_batch  # noqa: E402
from models.diffusion.baseline import random_pyxtal_structures  # noqa: E402
from models.diffusion.postprocess import symmetrize  # noqa: E402
from models.diffusion.sampling import DEFAULT_STEP_LR  # noqa: E402

PUBLISHED = {
    "perov_5": {"DiffCSP": (52.02, 0.0760), "CDVAE": (45.31, 0.1138)},
    "carbon_24": {"DiffCSP": (17.54, 0.2759), "CDVAE": (17.09, 0.2969)},
}


def structure_ok(s: Structure) -> bool:
    """DiffCSP structural validity: every interatomic distance > 0.5 A and volume > 0.1 A^3."""
    if not np.all(np.isfinite(s.lattice.matrix)) or s.volume < 0.1:
        return False
    if len(s) == 1:
        return min(s.lattice.abc) > 0.5
    dm = s.distance_matrix + np.eye(len(s)) * 10.0
    return bool(dm.min() > 0.5)


def match_stats(preds: list[Structure], targets: list[Structure]) -> dict[str, float]:
    """Match rate (%) and mean RMSE of matched pairs; invalid predictions count as misses."""
    matcher = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)
    rms = []
    n_valid = 0
    for pred, gt in zip(preds, targets, strict=True):
        if not structure_ok(pred):
            continue
        n_valid += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = matcher.get_rms_dist(pred, gt)
        except Exception:
            got = None
        if got is not None:
            rms.append(got[0])
    return {
        "n": len(targets),
        "match_rate_pct": round(100.0 * len(rms) / max(len(targets), 1), 2),
        "rmse": round(float(np.mean(rms)), 4) if rms else float("nan"),
        "validity_pct": round(100.0 * n_valid / max(len(targets), 1), 2),
    }


def relaxed_energy(structures: list[Structure], n: int, potential: str = "chgnet") -> dict[str, float]:
    """Mean energy per atom (eV/atom) of the first n structures after a short relaxation with the reference potential
    (FIRE + cell filter, fmax 0.1 eV/A, <= 100 steps); invalid structures and failed relaxations are skipped."""
    from tools.core.settings import get_settings
    from tools.potentials.calculators import get_potential, relax

    calc = get_potential(potential, get_settings())
    energies = []
    for s in structures[:n]:
        if not structure_ok(s):
            continue
        try:
            r = relax(s, calc, potential, fmax=0.1, max_steps=100)
        except Exception:  # noqa: BLE001 - a failed relaxation has no energy to report
            continue
        if np.isfinite(r.energy):
            energies.append(r.energy / len(s))
    return {"relaxed_n": len(energies), "relaxed_energy_eV_per_atom": round(float(np.mean(energies)), 4)
            if energies else float("nan")}


def run_set(name: str, targets: list[Structure], model: CrystalDiffusion, steps: int, seed: int,
            batch: int, step_lr: float = DEFAULT_STEP_LR, baseline: bool = True, relax_n: int = 0) -> dict[str, Any]:
    """Diffusion and pyxtal samples (one per target) and their scores."""
    species = [[site.specie.symbol for site in s] for s in targets]
    t0 = time.time()
    preds: list[Structure] = []
    for start in range(0, len(species), batch):
        preds += sample_batch(model, species[start:start + batch], n_steps=steps, seed=seed + start,
                              step_lr=step_lr)
        print(f"  {name}: diffusion {len(preds)}/{len(species)} ({time.time() - t0:.0f} s)", file=sys.stderr,
              flush=True)
    t_diff = time.time() - t0
    diff_stats = {**match_stats(preds, targets), "structures_per_s": round(len(preds) / t_diff, 2)}
    sym = [symmetrize(p, 0.1) for p in preds]
    sym_stats = {**match_stats(sym, targets), "structures_per_s": diff_stats["structures_per_s"]}
    if relax_n > 0:
        diff_stats.update(relaxed_energy(preds, relax_n))
    out = {"diffusion": diff_stats, "diffusion_symmetrized": sym_stats, "published": PUBLISHED.get(name, {})}
    if baseline:
        t0 = time.time()
        base = [random_pyxtal_structures(sp, 1, seed=seed + i)[0] for i, sp in enumerate(species)]
        t_base = time.time() - t0
        out["pyxtal_random"] = {**match_stats(base, targets), "structures_per_s": round(len(base) / t_base, 2)}
        if relax_n > 0:
            out["pyxtal_random"].update(relaxed_energy(base, relax_n))
    return out


def speed_20_atoms(model: CrystalDiffusion, steps: int, batch: int, threads: list[int]) -> dict[str, float]:
    """Structures/s for 20-atom cells (Sr4Ti4O12) sampled in one batch at `steps`, per torch thread count, next to
    pyxtal random generation of the same cells."""
    species = ["Sr"] * 4 + ["Ti"] * 4 + ["O"] * 12
    out: dict[str, float] = {}
    before = torch.get_num_threads()
    for n in threads:
        torch.set_num_threads(n)
        sample_batch(model, [species] * 2, n_steps=5, seed=0)  # warm-up
        t0 = time.perf_counter()
        sample_batch(model, [species] * batch, n_steps=steps, seed=0)
        out[f"diffusion_{n}_threads"] = round(batch / (time.perf_counter() - t0), 3)
    torch.set_num_threads(before)
    t0 = time.perf_counter()
    random_pyxtal_structures(species, 8, seed=0)
    out["pyxtal_random"] = round(8 / (time.perf_counter() - t0), 3)
    return out


def cdvae_targets(name: str, n: int, seed: int) -> list[Structure]:
    """A seeded random subset of n structures of CDVAE {name}/test.csv (only those CIFs are parsed)."""
    import pandas as pd

    frame = pd.read_csv(CDVAE_DIR / name / "test.csv")
    idx = np.random.default_rng(seed).permutation(len(frame))[:n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [Structure.from_str(frame.iloc[int(i)]["cif"], fmt="cif") for i in idx]


def perov_val_targets(n: int) -> list[Structure]:
    """perov_5 val.csv cells of the project's *val* split (held out from training): the set for tuning the sampler."""
    recs = [r for r in read_cdvae("perov_5", "val") if r["split"] == "val"][:n]
    return [Structure(Lattice(r["lattice"]), r["species"], r["frac"]) for r in recs]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI: run every requested set and print a table (and write JSON with --out)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--n", type=int, default=200, help="perov_5 test structures (0 to skip)")
    parser.add_argument("--carbon-n", type=int, default=0, help="carbon_24 test structures (0 to skip)")
    parser.add_argument("--own-n", type=int, default=80, help="project held-out prototypes (0 to skip)")
    parser.add_argument("--val-n", type=int, default=0,
                        help="tuning mode: perov_5 cells of the project's val split (not trained on); 0 to skip")
    parser.add_argument("--step-lr", type=float, default=DEFAULT_STEP_LR, help="corrector step size (0: none)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--speed-threads", type=int, nargs="*", default=[1, 2],
                        help="thread counts for the 20-atom speed check (none to skip)")
    parser.add_argument("--relax-n", type=int, default=0,
                        help="relax the first N samples of each method with CHGNet and report mean eV/atom")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = CrystalDiffusion.load(args.checkpoint)
    results: dict[str, Any] = {"checkpoint_sha256": model.checkpoint_sha256, "steps": args.steps, "seed": args.seed,
                               "step_lr": args.step_lr,
                               "checkpoint_step": model.metadata.get("step"), "sets": {}}
    if args.speed_threads:
        results["speed_20_atom_cells_per_s"] = speed = speed_20_atoms(model, args.steps, 32, args.speed_threads)
        print("20-atom cells (Sr4Ti4O12), structures/s at", args.steps, "steps, batch 32:",
              ", ".join(f"{k} {v}" for k, v in speed.items()))
    if args.val_n > 0:
        results["sets"]["perov_5_val_split"] = run_set("perov_5_val", perov_val_targets(args.val_n), model,
                                                       args.steps, args.seed, args.batch, args.step_lr, baseline=False)
    sets: list[tuple[str, int]] = [("perov_5", args.n), ("carbon_24", args.carbon_n)]
    for name, n in sets:
        if n <= 0:
            continue
        if not (CDVAE_DIR / name / "test.csv").exists():
            print(f"skipping {name}: {CDVAE_DIR / name / 'test.csv'} not found", file=sys.stderr)
            continue
        results["sets"][name] = run_set(name, cdvae_targets(name, n, args.seed), model, args.steps, args.seed,
                                        args.batch, args.step_lr, relax_n=args.relax_n)
    if args.own_n > 0:
        own = [r for r in read_prototypes() if r["split"] == "test"][: args.own_n]
        known = set(model.config.elements)
        own = [r for r in own if set(r["species"]) <= known]
        targets = [Structure(Lattice(r["lattice"]), r["species"], r["frac"]) for r in own]
        results["sets"]["own_prototypes_test"] = run_set("own", targets, model, args.steps, args.seed, args.batch,
                                                         args.step_lr, relax_n=args.relax_n)
    print(f"{'set':<22}{'method':<22}{'n':>5}{'match %':>9}{'RMSE':>8}{'valid %':>9}{'struct/s':>10}"
          f"{'E_relax eV/at':>15}")
    for name, res in results["sets"].items():
        for method in ("diffusion", "diffusion_symmetrized", "pyxtal_random"):
            if method not in res:
                continue
            r = res[method]
            print(f"{name:<22}{method:<22}{r['n']:>5}{r['match_rate_pct']:>9.2f}{r['rmse']:>8.4f}"
                  f"{r['validity_pct']:>9.1f}{r['structures_per_s']:>10.2f}"
                  + (f"{r['relaxed_energy_eV_per_atom']:>10.3f} (n={r['relaxed_n']})" if "relaxed_n" in r else ""))
        for method, (rate, rmse) in res["published"].items():
            print(f"{name:<22}{method + ' (paper)':<22}{'':>5}{rate:>9.2f}{rmse:>8.4f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
