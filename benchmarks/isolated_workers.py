"""Run each model of a speed benchmark in its own Python process (so peak memory and thread settings are
per model), reading back the one `RESULT {json}` line the worker prints."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_isolated(script: str, name: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """`script --worker NAME ...` in a fresh process; its RESULT payload, or None (with the error on stderr)."""
    cmd = [sys.executable, script, "--worker", name, "--threads", str(args.threads), "--min-steps",
           str(args.min_steps), "--budget-s", str(args.budget_s), "--sizes", *map(str, args.sizes)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1][len("RESULT ") :])
