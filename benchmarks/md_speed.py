"""MD speed of each potential through the matsearch MD engine: Langevin steps/s for 64, 512 and 1000 atoms of fcc Cu.

Each potential runs in its own subprocess (clean memory and thread settings); our Allegro/NequIP models use their
default configs untrained (speed does not depend on the weights). Ratios are printed against SevenNet-0.
Run: `.venv/bin/python benchmarks/md_speed.py [--models allegro nequip chgnet sevennet-0 emt] [--sizes 64 512 1000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.isolated_workers import run_isolated  # noqa: E402

MODELS = ("emt", "allegro", "nequip", "chgnet", "sevennet-0")
REPEATS = {64: (2, 2, 4), 512: (4, 4, 8), 1000: (5, 5, 10)}


def calculator(name: str):  # noqa: ANN201 - an ASE calculator
    """ASE EMT, one of our untrained default models, or a universal model."""
    if name == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    if name in ("allegro", "nequip"):
        from models.potentials.calculator import PotentialCalculator
        from models.potentials.equivariant import EquivariantPotential, PotentialConfig

        return PotentialCalculator(EquivariantPotential(PotentialConfig(kind=name, species=["Cu"])))
    from models.potentials.universal import load_universal

    return load_universal(name)


def worker(name: str, sizes: list[int], threads: int, min_steps: int, budget_s: float) -> dict:
    """Seconds per Langevin MD step of one potential at each size (after 2 warm-up steps)."""
    import torch
    from ase.build import bulk

    from tools.md.protocols import DynamicsSettings, run_dynamics

    torch.set_num_threads(threads)
    calc = calculator(name)
    out: dict = {"model": name, "sizes": {}}
    for n in sizes:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(REPEATS[n])
        settings = DynamicsSettings("nvt_langevin", 300.0, 2.0, seed=0)
        run_dynamics(atoms, calc, settings, steps=2, log_every=1000)  # warm-up
        steps = min_steps
        t0 = time.perf_counter()
        run_dynamics(atoms, calc, settings, steps=steps, log_every=1000, init_velocities=False)
        elapsed = time.perf_counter() - t0
        if elapsed < budget_s / 4:  # fast model: time a longer run for a steadier number
            steps = max(steps, int(steps * budget_s / max(elapsed, 1e-3) / 2))
            t0 = time.perf_counter()
            run_dynamics(atoms, calc, settings, steps=steps, log_every=1000, init_velocities=False)
            elapsed = time.perf_counter() - t0
        out["sizes"][str(n)] = {"steps": steps, "steps_per_s": steps / elapsed, "s_per_step": elapsed / steps}
    return out


def main() -> None:
    """Run each potential in a subprocess and print steps/s and ratios vs SevenNet-0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 512, 1000], choices=sorted(REPEATS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-steps", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.sizes, args.threads, args.min_steps, args.budget_s)))
        return
    results = {}
    for name in args.models:
        result = run_isolated(__file__, name, args)
        if result is None:
            continue
        results[name] = result
        print(f"{name}: {results[name]['sizes']}", flush=True)
    ref = results.get("sevennet-0")
    print(f"\nthreads={args.threads}  load average={os.getloadavg()[0]:.2f}")
    print(f"{'model':<12}{'atoms':>7}{'steps/s':>10}{'s/step':>10}{'x SevenNet-0':>14}")
    for name, res in results.items():
        for n, row in res["sizes"].items():
            ratio = row["steps_per_s"] / ref["sizes"][n]["steps_per_s"] if ref and n in ref["sizes"] else float("nan")
            print(f"{name:<12}{n:>7}{row['steps_per_s']:>10.3f}{row['s_per_step']:>10.3f}{ratio:>14.2f}")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "results": results}, indent=2))


if __name__ == "__main__":
    main()
