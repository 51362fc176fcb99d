"""Throughput of batch relaxation (structures relaxed per second) in-process vs a Dask LocalCluster with 1, 2, ...
worker processes, in one run, printed as ratios against in-process with one torch thread (what each Dask worker
runs). The same executor interface the search uses.

Run: .venv/bin/python benchmarks/scale.py [--n 8] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import time

from models.crystals.prototypes import decorate
from tools.core.executor import DaskExecutor, InProcessExecutor
from tools.core.executor_tasks import relax_payload, relax_task

CATIONS = ["Mg", "Ni", "Co", "Zn", "Ca", "Sr", "Fe", "Mn", "Cu", "Cd", "Ba", "Pb"]


def payloads(n: int, potential: str) -> list[dict]:
    """n rattled rock-salt oxides to relax (different chemistry each, so no caching helps)."""
    out = []
    for i in range(n):
        s = decorate("rock salt", {"A": CATIONS[i % len(CATIONS)], "X": "O"}) * (2, 1, 1)
        s.perturb(0.05)
        out.append(relax_payload(s, potential, fmax=0.05, max_steps=100))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--potential", default="chgnet")
    args = parser.parse_args()
    items = payloads(args.n, args.potential)
    import torch

    relax_task(items[0])  # load the model in this process first, as a warm server would have
    default_threads = torch.get_num_threads()
    rates = {}
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        start = time.perf_counter()
        InProcessExecutor().map(relax_task, items)
        rates[threads] = args.n / (time.perf_counter() - start)
        print(f"in-process, {threads} torch thread(s): {rates[threads]:.3f} structures/s")
    torch.set_num_threads(default_threads)
    base = rates[1]  # a Dask worker runs one torch thread: compare like with like
    from distributed import LocalCluster

    for workers in args.workers:
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            executor = DaskExecutor(cluster.scheduler_address)
            executor.map(relax_task, items[:workers])  # warm-up: each worker loads the model once
            start = time.perf_counter()
            executor.map(relax_task, items)
            rate = args.n / (time.perf_counter() - start)
            executor.client.close()
        print(f"dask x{workers}: {rate:.3f} structures/s = {rate / base:.2f}x in-process (1 thread)")


if __name__ == "__main__":
    main()
