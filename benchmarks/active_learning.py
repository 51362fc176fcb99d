"""Learning curves of active learning: uncertainty-selected vs randomly selected frames on the same label budget.

Both runs start from the same labelled rattled cells and the same validation set (EMT reference MD of fcc Cu at the
exploration temperatures), explore with MD of their current model, and label `--per-iter` frames per iteration;
one picks the most uncertain diverse frames (GMM on latent features), the other picks at random from the same kind
of candidate pool. Reported: validation force MAE vs labelled frames for both, and how many labels the uncertainty
strategy needed to reach the random strategy's final error (target: at most half).

Every seed is an independent repeat (own initial data, validation set and MD); the target is judged on the
seed-averaged learning curves, and each seed's ratio is printed beside it.

The defaults are the scenario of record: exploration at 300, 800 and 1400 K (300 MD steps), 2 labels per iteration
over 12 iterations, the mean atom uncertainty per frame, DP-GEN's upper trust level 0.3 eV/A. Results per scenario
and seed set, dated with their commands: benchmarks/RESULTS.md.

Run: `.venv/bin/python benchmarks/active_learning.py [--seeds 0 1 2 3] [--out result.json]`
(narrow scenario: `--temperatures 600 1200 --md-steps 100 --upper 0 --per-iter 4 --iterations 6 --frame-score max`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(strategy: str, args: argparse.Namespace, work: Path) -> list[dict]:
    """One active-learning run; its history (one entry per iteration, iteration 0 = initial model)."""
    from ase.build import bulk

    from tools.potentials.active_learning import ActiveLearner, ALConfig, reference_calculator

    cfg = ALConfig(run_name=strategy, reference="emt", temperatures_K=args.temperatures, md_steps=args.md_steps,
                   sample_every=args.sample_every, iterations=args.iterations, max_new_per_iteration=args.per_iter,
                   threshold_eV_A=0.0, upper_threshold_eV_A=args.upper or None, frame_score=args.frame_score,
                   strategy=strategy, n_initial=args.initial, n_validation=args.validation,
                   epochs_initial=args.epochs, epochs_finetune=args.finetune_epochs, seed=args.seed)
    run_dir = work / strategy
    shutil.rmtree(run_dir, ignore_errors=True)
    start = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    t0 = time.perf_counter()
    learner = ActiveLearner(run_dir, cfg, [start], reference_calculator("emt"),
                            progress=lambda d, t, m: None)
    state = learner.run()
    for h in state["history"]:
        print(f"  {strategy:11s} it {h['iteration']} labels {h['n_train']:3d} force MAE "
              f"{h['val_force_mae_meV_A']:7.1f} meV/A  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return state["history"]


def labels_to_reach(history: list[dict], target: float) -> int | None:
    """Fewest labelled frames at which a run's validation force MAE was at or below `target`."""
    hits = [h["n_train"] for h in history if h["val_force_mae_meV_A"] <= target]
    return min(hits) if hits else None


def mean_curve(histories: list[list[dict]]) -> list[dict]:
    """Seed-averaged learning curve: per iteration, the mean labels and mean validation force MAE."""
    n = min(len(h) for h in histories)
    return [{"n_train": float(np.mean([h[i]["n_train"] for h in histories])),
             "val_force_mae_meV_A": float(np.mean([h[i]["val_force_mae_meV_A"] for h in histories]))}
            for i in range(n)]


def compare(curves: dict[str, list[dict]]) -> dict:
    """Random's final error and labels, and the labels uncertainty selection needed to reach that error."""
    final_random = curves["random"][-1]["val_force_mae_meV_A"]
    needed = labels_to_reach(curves["uncertainty"], final_random)
    random_labels = curves["random"][-1]["n_train"]
    return {"random_final_mae_meV_A": round(final_random, 2),
            "uncertainty_final_mae_meV_A": round(curves["uncertainty"][-1]["val_force_mae_meV_A"], 2),
            "random_labels": random_labels, "uncertainty_labels_to_reach_random_final": needed,
            "label_ratio": None if needed is None else round(needed / random_labels, 3)}


def main() -> None:
    """Run both strategies for every seed and print the learning curves and the label ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--per-iter", type=int, default=2)
    parser.add_argument("--initial", type=int, default=4)
    parser.add_argument("--validation", type=int, default=12)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 800.0, 1400.0])
    parser.add_argument("--md-steps", type=int, default=300)
    parser.add_argument("--sample-every", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3],
                        help="independent repeats; the target is judged on the seed-averaged curves")
    parser.add_argument("--upper", type=float, default=0.3,
                        help="upper uncertainty trust level in eV/A for the uncertainty strategy (DP-GEN style); "
                        "0 for none")
    parser.add_argument("--frame-score", choices=["max", "mean"], default="mean",
                        help="a frame's uncertainty: its most uncertain atom, or the mean over its atoms")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/matsearch-bench-al"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    per_seed: dict[int, dict[str, list[dict]]] = {}
    for seed in args.seeds:
        args.seed = seed
        print(f"seed {seed}", flush=True)
        per_seed[seed] = {s: run(s, args, args.work / f"seed{seed}") for s in ("uncertainty", "random")}
    averaged = {s: mean_curve([c[s] for c in per_seed.values()]) for s in ("uncertainty", "random")}
    summary = compare(averaged)
    result = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "seed"},
        "curves": {seed: {s: [{"labels": h["n_train"], "val_force_mae_meV_A": round(h["val_force_mae_meV_A"], 2),
                               "max_uncertainty_eV_A": h["max_uncertainty"]} for h in hist]
                          for s, hist in curves.items()} for seed, curves in per_seed.items()},
        "per_seed": {seed: compare(curves) for seed, curves in per_seed.items()},
        "mean_curves": averaged,
        **summary,
        "target_met": bool(summary["label_ratio"] is not None and summary["label_ratio"] <= 0.5),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    for seed, r in result["per_seed"].items():
        print(f"seed {seed}: random {r['random_final_mae_meV_A']} meV/A at {r['random_labels']} labels; uncertainty "
              f"{r['uncertainty_final_mae_meV_A']} meV/A; label ratio {r['label_ratio']}")
    print(f"\nseed-averaged: random reaches {summary['random_final_mae_meV_A']} meV/A with "
          f"{summary['random_labels']:.1f} labels; uncertainty selection reaches it with "
          f"{summary['uncertainty_labels_to_reach_random_final']} labels (ratio {summary['label_ratio']}); "
          f"target (<= half) met: {result['target_met']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
