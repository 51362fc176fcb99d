"""Rerun every benchmark row that the README's "Measured" table quotes, in one run, and write the table.

Each row runs its script (peers inside the same run, so every ratio compares like with like), reads the headline
number and the named peer's number from that run's output, and compares the headline with the figure the README
quotes. The table written (default `benchmarks/RESULTS_TABLE.md`) marks a row whose run failed, whose output could
not be read, or whose headline did not reproduce the quoted figure; such a row is not to be quoted. A `--quick` run
uses reduced sizes: its rows are marked "quick" and are a smoke test, never a figure to quote.

    .venv/bin/python benchmarks/run_all.py                         # every row at full size: many hours
    .venv/bin/python benchmarks/run_all.py --quick --only reader_quality potential_speed
    .venv/bin/python benchmarks/run_all.py --list                  # rows, commands, rough full-size cost

Logs of each run go to `--work` (default runs/run_all/<row>/run.log). The table (`--table`, default
benchmarks/RESULTS_TABLE.md, with a JSON record beside it) always lists every row: a row not run this time keeps its
last record, a row never run says so. `--quick` writes runs/run_all/RESULTS_TABLE_quick.md instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TABLE = ROOT / "benchmarks" / "RESULTS_TABLE.md"


class Unreadable(ValueError):
    """The run finished but its output does not hold the numbers the row needs."""


@dataclass
class Outcome:
    """What one row's run gave: the headline (compared with the quoted figure), text for the table's cells."""

    headline: float
    result: str
    peer: str


def _find(pattern: str, text: str, group: int = 1, flags: int = 0) -> str:
    """The last match of pattern in text (runs print progress first, the summary last)."""
    found = list(re.finditer(pattern, text, flags))
    if not found:
        raise Unreadable(f"no match for {pattern!r}")
    return found[-1].group(group)


def _num(pattern: str, text: str, group: int = 1) -> float:
    return float(_find(pattern, text, group))


# -- one parser per row: stdout text and the row's work folder -> Outcome ------------------------------------------

def parse_search_quality(text: str, work: Path) -> Outcome:
    summary = json.loads(next(work.glob("summary-*.json")).read_text()) if list(work.glob("summary-*.json")) else {}
    if not summary:
        raise Unreadable("no summary-*.json")
    fam, comp, both = summary["family_match"], summary["composition_valid"], summary["both"]
    return Outcome(fam, f"family match **{fam:.3f}**, composition valid {comp:.3f}, both {both:.3f}, correct decline "
                        f"{summary['correct_decline']:.3f}, n = {summary['n']}",
                   "GenMS paper (its own requests): match 0.93 / 0.86 / 0.89 (a published figure, not rerun)")


def parse_reader_quality(text: str, work: Path) -> Outcome:
    top1 = _num(r"top1_proposal_valid\s+([0-9.]+)", text)
    fields = _num(r"all_fields\s+([0-9.]+)", text)
    return Outcome(top1, f"top-1 proposal valid **{top1:.3f}**, all fields of a request {fields:.3f}",
                   "none in this run (the README's peers are other request sets)")


def parse_diffusion_csp(text: str, work: Path) -> Outcome:
    res = json.loads((work / "diffusion_csp.json").read_text())
    perov = res["sets"]["perov_5"]
    ours, base = perov["diffusion"], perov["pyxtal_random"]
    ratio = ours["match_rate_pct"] / base["match_rate_pct"] if base["match_rate_pct"] else float("inf")
    after = ""
    if "relaxed_match_rate_pct" in ours:
        after = (f"; after CHGNet relaxation {ours['relaxed_match_rate_pct']:.1f} % (strict "
                 f"{ours['relaxed_strict_match_rate_pct']:.1f} %) of the first {ours['relaxed_of']}")
    speed = res.get("speed_20_atom_cells_per_s", {})
    speed_text = (f"; 20-atom cells {speed['diffusion_1_threads']}/s on 1 thread" if "diffusion_1_threads" in speed
                  else "")
    return Outcome(ours["match_rate_pct"],
                   f"perov_5 match **{ours['match_rate_pct']:.1f} %** at stol 0.5 (n = {ours['n']}), strict (stol 0.3,"
                   f" ltol 0.2, angle 5) {ours['strict_match_rate_pct']:.1f} %{after}{speed_text}",
                   f"pyxtal random {base['match_rate_pct']:.1f} % (strict {base['strict_match_rate_pct']:.1f} %): "
                   f"{ratio:.1f}x; DiffCSP paper 52.0 % (stol 0.5, not rerun)")


def parse_scale(text: str, work: Path) -> Outcome:
    base = _num(r"in-process, 1 torch thread\(s\): ([0-9.]+)", text)
    rate = _num(r"dask x2: ([0-9.]+) structures/s = ([0-9.]+)x", text)
    ratio = _num(r"dask x2: ([0-9.]+) structures/s = ([0-9.]+)x", text, 2)
    return Outcome(ratio, f"2 Dask workers {rate:.2f} structures/s",
                   f"in-process, 1 thread: {base:.2f}/s ({ratio:.2f}x)")


def parse_uncertainty(text: str, work: Path) -> Outcome:
    gmm = _num(r"per-atom Spearman vs true force error: GMM ([-0-9.]+)", text)
    ens = _num(r"per-atom Spearman vs true force error: GMM [-0-9.]+\s+\d+-member ensemble ([-0-9.]+)", text)
    g_over = _num(r"GMM ([0-9.]+) %\s+ensemble", text)
    e_over = _num(r"ensemble ([0-9.]+) %", text)
    return Outcome(gmm, f"GMM Spearman **{gmm:.2f}** at {g_over:.1f} % of a force call",
                   f"deep ensemble {ens:.2f} at {e_over:.0f} %")


def parse_active_learning(text: str, work: Path) -> Outcome:
    ratio = _num(r"\(ratio ([0-9.]+)\)", text)
    rnd = _num(r"random reaches ([0-9.]+) meV/A", text)
    labels = _num(r"with ([0-9.]+) labels; uncertainty", text)
    return Outcome(ratio, f"uncertainty selection needs **{ratio:.3f}** of random's labels",
                   f"random selection: {rnd:.1f} meV/A at {labels:.0f} labels")


def parse_free_energy_toy(text: str, work: Path) -> Outcome:
    rows = json.loads((work / "free_energy_toy.json").read_text())

    def worst(preset: str) -> float:
        errs = [r["max_abs_error_kT"] for r in rows if r["preset"] == preset]
        if not errs:
            raise Unreadable(f"no rows for preset {preset}")
        return max(errs)

    two_d, one_d = worst("multitask-2d"), worst("multitask")
    peers = ", ".join(f"{p} {worst(p):.3f}" for p in ("classifier", "autoencoder")
                      if any(r["preset"] == p for r in rows))
    return Outcome(two_d, f"2D multitask CV + MBAR: worst basin dF error **{two_d:.3f} kT** over both systems",
                   f"1D multitask {one_d:.3f}; {peers} kT (worst over systems)")


def parse_free_energy_alanine(text: str, work: Path) -> Outcome:
    mean = _num(r"mean of \d+ CVs: ([-0-9.]+) \+- ([0-9.]+) kT", text)
    sem = _num(r"mean of \d+ CVs: ([-0-9.]+) \+- ([0-9.]+) kT", text, 2)
    ref = _find(r"reference \(umbrella along phi, MBAR\): ([-0-9.]+ \+- [0-9.]+) kT; difference ([-0-9.]+ \+- [0-9.]+)",
                text, 0)
    return Outcome(mean, f"2D CV, seeds 0-2: **{mean:.2f} +- {sem:.2f} kT**",
                   f"{ref} (the reference is the given --reference-kT, measured in an earlier run)")


def parse_free_energy_adatom(text: str, work: Path) -> Outcome:
    df = _num(r"MBAR: ([-0-9.]+) \+- ([0-9.]+) kT", text)
    err = _num(r"MBAR: ([-0-9.]+) \+- ([0-9.]+) kT", text, 2)
    neb = _num(r"NEB energy barrier [0-9.]+ eV = ([0-9.]+) kT", text)
    along = _num(r"free-energy barrier along the CV: ([0-9.]+) kT", text)
    return Outcome(df, f"seed 0, last CV round: F(B) - F(A) **{df:.2f} +- {err:.2f} kT**",
                   f"exact 0; NEB barrier {neb:.1f} kT, along the CV {along:.1f} kT")


def parse_crystallization(text: str, work: Path) -> Outcome:
    right = _num(r"accuracy: (\d+)/(\d+)", text)
    total = _num(r"accuracy: (\d+)/(\d+)", text, 2)
    rows = re.findall(r"^\| (\w+) \| ([^|]+) \| ([^|]+) \| (True|False) \|", text, re.M)
    listed = "; ".join(f"{s} {p.strip()} ({'right' if ok == 'True' else 'wrong'})" for s, _, p, ok in rows)
    return Outcome(right, f"**{right:.0f} of {total:.0f} correct**: {listed}",
                   "known first-crystallizing polymorphs (literature)")


def parse_potential_accuracy(text: str, work: Path) -> Outcome:
    e = _num(r"energy MAE ([0-9.]+) meV/atom \(target", text)
    f = _num(r"force MAE ([0-9.]+) meV/A \(target", text)
    try:  # --skip-ranking (the quick row) prints no ranking
        rho = _find(r"polymorph ranking: mean Spearman ([-0-9.]+)", text)
        ranking = f"; polymorph Spearman {rho}, ground state {_find(r'ground state matches ([0-9]+/[0-9]+)', text)}"
    except Unreadable:
        ranking = ""
    return Outcome(e, f"held-out energy **{e:.0f} meV/atom**, force {f:.0f} meV/A (targets 15 / 60){ranking}",
                   "CHGNet, whose labels it was distilled from, is the reference")


def parse_potential_speed(text: str, work: Path) -> Outcome:
    res = json.loads((work / "potential_speed.json").read_text())["results"]
    sizes = sorted(res["allegro_distilled"]["sizes"], key=int)
    big = sizes[-1]

    def rate(name: str, n: str) -> float:
        if name not in res:
            raise Unreadable(f"{name} did not run")
        return res[name]["sizes"][n]["atom_steps_per_s"]

    ours, seven, chg = rate("allegro_distilled", big), rate("sevennet-0", big), rate("chgnet", big)
    small = " / ".join(f"{rate('allegro_distilled', n) / rate('sevennet-0', n):.1f}x at {n}" for n in sizes[:-1])
    try:  # contention hurts the peers unequally: say how loaded the machine was
        load = f"; load average {_find(r'load average before/after: ([0-9.]+/[0-9.]+)', text)}"
    except Unreadable:
        load = ""
    return Outcome(ours / seven, f"shipped Allegro {ours:,.0f} atom-steps/s at {big} atoms: **{ours / seven:.1f}x "
                                 f"SevenNet-0** ({small}{load})",
                   f"SevenNet-0 {seven:,.0f}, CHGNet {chg:,.0f} atom-steps/s (same run)")


def parse_memory_scale(text: str, work: Path) -> Outcome:
    rows = json.loads((work / "memory_scale.json").read_text())
    big = max(rows, key=lambda r: r["N"])
    keys = ("formula", "element", "text", "similarity", "hull")
    ours = ", ".join(f"{k} {big[k][0]:.1f}/{big[k][1]:.1f}" for k in keys)
    peer = ", ".join(f"{k} {big[k + '_peer'][0]:.1f}/{big[k + '_peer'][1]:.1f}" for k in keys)
    worst = max(big[k][1] for k in keys)
    return Outcome(worst, f"{big['N']:,} records stored in {big['store_s'] / 60:.1f} min; p50/p95 ms: {ours}; "
                          f"worst p95 **{worst:.1f} ms**; a new client's first search {big['cold_s']:.1f} s",
                   f"same run: one-by-one store {big['store_peer_s'] / 60:.0f} min (extrapolated); chromadb filter "
                   f"(formula, element), bare query (text, similarity), old scan (hull): {peer}")


@dataclass(frozen=True)
class Row:
    """One README row: its script, full-size and quick arguments ({work} is the row's folder), the figure the
    README quotes and how far a rerun may land from it."""

    key: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    parse: Callable[[str, Path], Outcome]
    quoted: float
    tolerance: float
    cost: str
    env: dict[str, str] = field(default_factory=dict)
    threads: int = 0  # a speed row: the threads it runs itself; not quoted when other jobs load the machine

    @property
    def script(self) -> str:
        return f"benchmarks/{self.key}.py"


ROWS: tuple[Row, ...] = (
    Row("search_quality", ("--split", "blind4", "--shuffle", "0", "--limit", "46", "--out", "{work}"),
        ("--split", "dev", "--limit", "2", "--out", "{work}"), parse_search_quality, 1.0, 0.05,
        "~30 min per 46 requests on a quiet machine; the blind4 split was run once (the next report needs a new one)"),
    Row("reader_quality", ("--split", "blind4"), ("--split", "blind4", "--limit", "16"), parse_reader_quality, 0.852,
        0.005, "about three minutes (quick: 16 requests, seconds)"),
    Row("diffusion_csp", ("--n", "200", "--carbon-n", "40", "--own-n", "0", "--steps", "200", "--relax-n", "40",
                          "--speed-threads", "1", "--out", "{work}/diffusion_csp.json"),
        ("--n", "20", "--own-n", "0", "--steps", "50", "--relax-n", "5", "--speed-threads",
         "--out", "{work}/diffusion_csp.json"), parse_diffusion_csp, 55.5, 7.0, "~40 min"),
    Row("scale", ("--n", "8", "--workers", "1", "2"), ("--n", "4", "--workers", "2"), parse_scale, 1.58, 0.3,
        "~5 min", threads=2),
    Row("uncertainty", ("--members", "4", "--epochs", "30", "--train-frames", "40"),
        ("--members", "2", "--epochs", "5", "--train-frames", "10"), parse_uncertainty, 0.82, 0.05, "~20 min"),
    Row("active_learning", ("--seeds", *map(str, range(16)), "--out", "{work}/active_learning.json"),
        ("--seeds", "0", "--iterations", "3", "--md-steps", "50", "--out", "{work}/active_learning.json"),
        parse_active_learning, 0.496, 0.1, "~72 min on 2 cores (two processes of 8 seeds in the recorded run)"),
    Row("free_energy_toy", ("--json", "{work}/free_energy_toy.json"),
        ("--quick", "--json", "{work}/free_energy_toy.json"), parse_free_energy_toy, 0.174, 0.15, "15-25 min"),
    Row("free_energy_alanine", ("--latent-dim", "2", "--window-frames", "150", "--cv-seeds", "0", "1", "2", "--jobs",
                                "1", "--log-dir", "{work}/logs", "--reference-kT", "4.59", "0.10",
                                "--grid-reference-kT", "4.43", "0.12"),
        ("--quick", "--latent-dim", "2", "--cv-seeds", "0", "1", "--jobs", "1", "--log-dir", "{work}/logs",
         "--reference-kT", "4.59", "0.10"), parse_free_energy_alanine, 4.39, 0.6, "~80 min"),
    Row("free_energy_adatom", ("--seed", "0"), ("--seed", "0", "--windows", "12", "--steps", "300", "--data-steps",
                                                "500"), parse_free_energy_adatom, -0.18, 1.0, "~30 min"),
    Row("crystallization", ("--systems", "Si,TiO2,NiTi,ZnO,SiO2,ZrO2", "--threads", "1", "--out",
                            "{work}/crystallization.json"),
        ("--quick", "--systems", "Si", "--out", "{work}/crystallization.json"), parse_crystallization, 2, 0,
        "~4 h on 1 thread"),
    Row("potential_accuracy", ("--json", "{work}/potential_accuracy.json"),
        ("--skip-ranking", "--json", "{work}/potential_accuracy.json"), parse_potential_accuracy, 139.4, 10.0,
        "~15 min (rebuilds the held-out set with CHGNet labels)"),
    Row("potential_speed", ("--models", "allegro_distilled", "sevennet-0", "chgnet", "--sizes", "64", "512",
                            "--threads", "2", "--json", "{work}/potential_speed.json"),
        ("--models", "allegro_distilled", "sevennet-0", "chgnet", "--sizes", "64", "256", "--threads", "2",
         "--budget-s", "2", "--json", "{work}/potential_speed.json"), parse_potential_speed, 17.0, 4.0,
        "~4 min", threads=2),
    Row("memory_scale", ("--sizes", "1000", "10000", "100000", "--queries", "30", "--one-by-one", "50", "--json",
                         "{work}/memory_scale.json"),
        ("--sizes", "200", "--queries", "5", "--one-by-one", "10", "--json", "{work}/memory_scale.json"),
        parse_memory_scale, 14.5, 25.0, "~70 min (batch store of 100k records: 64 min on 2026-12-08)", threads=2),
)
BY_KEY = {row.key: row for row in ROWS}


def readme_rows(readme: Path = README) -> list[str]:
    """The script name (stem) of every row of the README's "Measured" table, in order."""
    text = readme.read_text()
    start = text.index("## Measured")
    end = text.find("\n## ", start + 1)
    section = text[start: end if end > 0 else len(text)]
    names = []
    for line in section.splitlines():
        match = re.match(r"\|\s*`([\w/]+)\.py", line)
        if match:
            names.append(Path(match.group(1)).name)
    return names


def run_row(row: Row, quick: bool, work_root: Path, timeout_s: float | None) -> dict[str, Any]:
    """Run one row's script, parse it, and judge it against the quoted figure."""
    work = work_root / row.key
    work.mkdir(parents=True, exist_ok=True)
    args = [a.replace("{work}", str(work)) for a in (row.quick if quick else row.full)]
    cmd = [sys.executable, row.script, *args]
    log = work / "run.log"
    start, load_before = time.time(), os.getloadavg()[0]
    shown = [a.replace(f"{ROOT}/", "") for a in args]  # paths inside the checkout, relative to it
    record: dict[str, Any] = {"row": row.key, "command": " ".join([f"benchmarks/{row.key}.py", *shown]),
                              "quick": quick}
    try:
        with log.open("w") as handle:
            proc = subprocess.run(cmd, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout_s,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore", **row.env})
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    record["seconds"] = round(time.time() - start, 1)
    record["ran"] = time.strftime("%Y-%m-%d", time.gmtime(start))
    load_after, cores = os.getloadavg()[0], os.cpu_count() or 1
    record["load_average"] = f"{load_before:.1f}/{load_after:.1f} on {cores} cores"
    text = log.read_text(errors="replace")
    if code != 0:
        record.update(status="failed", detail=f"exit {code}; see {log}: {text.strip().splitlines()[-1:] or ''}")
        return record
    try:
        out = row.parse(text, work)
    except (Unreadable, OSError, KeyError, ValueError, StopIteration) as exc:
        record.update(status="unreadable", detail=f"the output does not hold the row's numbers ({exc}); see {log}")
        return record
    record.update(headline=out.headline, result=out.result, peer=out.peer)
    if quick:
        record["status"] = "quick"
    elif row.threads and max(load_before, load_after - row.threads) > cores:
        record["status"] = "loaded"  # other jobs alone filled the machine: they slow the peers unequally
        record["detail"] = (f"load average {record['load_average']}, {row.threads} of it this run's: timings from "
                            "a loaded machine are not quoted")
    elif abs(out.headline - row.quoted) <= row.tolerance:
        record["status"] = "reproduced"
    else:
        record["status"] = "not reproduced"
        record["detail"] = (f"headline {out.headline:.3g} against the quoted {row.quoted:g} "
                            f"(tolerance {row.tolerance:g})")
    return record


def merged(records: list[dict[str, Any]], previous: Path) -> list[dict[str, Any]]:
    """This run's records, in table order, with the previous table's record for each row not run this time and a
    "not run" placeholder for a row never run; rows of this run win."""
    old: dict[str, dict[str, Any]] = {}
    if previous.is_file():
        old = {r["row"]: r for r in json.loads(previous.read_text()).get("rows", []) if r["status"] != "not run"}
    new = {r["row"]: r for r in records}
    out = []
    for row in ROWS:
        record = new.get(row.key) or old.get(row.key)
        full = " ".join(row.full).replace("{work}", f"runs/run_all/{row.key}")
        out.append(record or {"row": row.key, "status": "not run", "seconds": 0.0, "command": f"{row.script} {full}"})
    return out


def markdown(records: list[dict[str, Any]], stamp: str) -> str:
    """The table the README includes: a row that failed, did not reproduce or was not run says so and quotes
    nothing."""
    lines = [f"<!-- written by benchmarks/run_all.py, last on {stamp}; each row says when it ran; do not edit -->", "",
             "| benchmark | result | peer in the same run | status |", "|---|---|---|---|"]
    for r in records:
        cmd = f"`{r['command']}` ({r['seconds']:.0f} s{', ' + r['ran'] if 'ran' in r else ''})"
        if r["status"] == "not run":
            lines.append(f"| `{r['command']}` | **not quoted: not rerun by run_all yet** | - | not run |")
        elif r["status"] in ("failed", "unreadable"):
            lines.append(f"| {cmd} | **not quoted: run {r['status']}** ({r['detail']}) | - | {r['status']} |")
        elif r["status"] in ("not reproduced", "loaded"):
            why = "did not reproduce" if r["status"] == "not reproduced" else "measured on a loaded machine"
            lines.append(f"| {cmd} | **not quoted: {why}** ({r['detail']}; this run: {r['result']}) | "
                         f"{r['peer']} | {r['status']} |")
        elif r["status"] == "quick":
            lines.append(f"| {cmd} | reduced sizes, a smoke test, not a figure to quote: {r['result']} | {r['peer']} "
                         f"| quick |")
        else:
            lines.append(f"| {cmd} | {r['result']} | {r['peer']} | reproduced |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """CLI: run the selected rows one after another and write the table (and a JSON record beside it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (a smoke test; rows marked quick)")
    parser.add_argument("--only", nargs="+", default=None, metavar="ROW", help=f"rows to run: {', '.join(BY_KEY)}")
    parser.add_argument("--list", action="store_true", help="print the rows, their commands and cost, and exit")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "run_all")
    parser.add_argument("--table", type=Path, default=None,
                        help=f"default {TABLE.relative_to(ROOT)} (rows not run keep their last record); with --quick "
                             "runs/run_all/RESULTS_TABLE_quick.md")
    parser.add_argument("--timeout-s", type=float, default=None, help="per row")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only or []) - set(BY_KEY))
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(BY_KEY)}")
    rows = [r for r in ROWS if args.only is None or r.key in args.only]
    if args.list:
        for r in rows:
            print(f"{r.key:20s} {r.cost}\n    full:  {r.script} {' '.join(r.full)}\n    quick: {r.script} "
                  f"{' '.join(r.quick)}")
        return []
    table = args.table or (ROOT / "runs" / "run_all" / "RESULTS_TABLE_quick.md" if args.quick else TABLE)
    table.parent.mkdir(parents=True, exist_ok=True)
    records = []
    for row in rows:
        print(f"{row.key}: running ({'quick' if args.quick else 'full size'})", flush=True)
        record = run_row(row, args.quick, args.work, args.timeout_s)
        records.append(record)
        print(f"{row.key}: {record['status']} in {record['seconds']:.0f} s: "
              f"{record.get('result') or record.get('detail')}" + (f" | peer: {record['peer']}" if "peer" in record
                                                                     else ""), flush=True)
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())  # after every row: a long run keeps what it did
        every = merged([record], table.with_suffix(".json"))
        table.write_text(markdown(every, stamp))
        table.with_suffix(".json").write_text(json.dumps({"written": stamp, "rows": every}, indent=1))
    print(f"table: {table}")
    return records


if __name__ == "__main__":
    main()
