"""Speed of our Allegro/NequIP potentials vs SevenNet-0 and CHGNet on CPU: atom-steps/s and peak RSS.

One MD-like step = energy + forces + stress after moving the atoms (so nothing is cached). Each model runs in its
own subprocess so that peak RSS is per model. Run: `.venv/bin/python benchmarks/potential_speed.py [--threads 2]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.isolated_workers import run_isolated  # noqa: E402

MODELS = ("allegro_distilled", "allegro", "nequip", "sevennet-0", "chgnet")
SHIPPED = ROOT / "models" / "checkpoints" / "allegro_distilled.pt"


def cu_cell(n_atoms: int):  # noqa: ANN201 - ase.Atoms, imported lazily
    """Rattled fcc Cu with n_atoms (64 or 512: 2x2x4 or 4x4x8 cubic cells)."""
    from ase.build import bulk

    reps = {64: (2, 2, 4), 512: (4, 4, 8), 256: (4, 4, 4), 1024: (4, 8, 8)}[n_atoms]
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(reps)
    atoms.rattle(0.05, seed=0)
    return atoms


def make_calculator(name: str):  # noqa: ANN201 - ase Calculator
    """The shipped distilled Allegro model, our untrained default-config models (speed does not depend on weights)
    or a universal model."""
    if name == "allegro_distilled":
        from models.potentials.calculator import PotentialCalculator

        return PotentialCalculator.from_checkpoint(SHIPPED)
    if name in ("allegro", "nequip"):
        from models.potentials.calculator import PotentialCalculator
        from models.potentials.equivariant import EquivariantPotential, PotentialConfig

        return PotentialCalculator(EquivariantPotential(PotentialConfig(kind=name, species=["Cu", "Al"])))
    from models.potentials.universal import load_universal

    return load_universal(name)


def worker(name: str, sizes: list[int], threads: int, min_steps: int, budget_s: float) -> dict:
    """Time steps of one model on each size; returns per-size seconds/step and the process peak RSS."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    calc = make_calculator(name)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    out = {"model": name, "load_s": load_s, "sizes": {}}
    for n in sizes:
        atoms = cu_cell(n)
        atoms.calc = calc
        atoms.get_forces()
        atoms.get_stress()  # warm-up (and first-call compilation, if any)
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < min_steps or (time.perf_counter() - start < budget_s and len(times) < 50):
            atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
            t = time.perf_counter()
            atoms.get_forces()
            atoms.get_stress()
            times.append(time.perf_counter() - t)
        best, median = min(times), float(np.median(times))
        out["sizes"][str(n)] = {"s_per_step_median": median, "s_per_step_best": best, "steps": len(times),
                                "atom_steps_per_s": n / best}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def main() -> None:
    """Run every model in a subprocess and print a table with ratios vs SevenNet-0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 512])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-steps", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=8.0, help="time per model and size after min steps")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.worker:
        res = worker(args.worker, args.sizes, args.threads, args.min_steps, args.budget_s)
        print("RESULT " + json.dumps(res), flush=True)
        return
    results = {}
    load0 = os.getloadavg()[0]
    for name in args.models:
        result = run_isolated(__file__, name, args)
        if result is None:
            continue
        results[name] = result
    ref = results.get("sevennet-0")
    print(f"threads={args.threads}  load average before/after: {load0:.2f}/{os.getloadavg()[0]:.2f}")
    print("atom-steps/s and ratios use the best step (robust to other load on the machine); median shown too")
    print(f"{'model':<19}{'atoms':>7}{'s/step med':>12}{'s/step best':>13}{'atom-steps/s':>14}{'x SevenNet-0':>14}"
          f"{'peak RSS MB':>13}")
    for name, res in results.items():
        for n, row in res["sizes"].items():
            ratio = row["atom_steps_per_s"] / ref["sizes"][n]["atom_steps_per_s"] if ref else float("nan")
            print(f"{name:<19}{n:>7}{row['s_per_step_median']:>12.3f}{row['s_per_step_best']:>13.3f}"
                  f"{row['atom_steps_per_s']:>14.0f}{ratio:>14.2f}{res['peak_rss_mb']:>13.0f}")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "results": results}, indent=2))


if __name__ == "__main__":
    main()
