"""The headline search judged as a stranger would: the independent request suite (benchmarks/data/
search_requests.json, split before building: develop on `dev`, run `heldout` only to report) through
`hierarchical_search` at a fixed budget, offline, judged apart from the code under test:

- family match of the top-1 answer: StructureMatcher against the typed cell of a KNOWN MEMBER of the requested
  family (benchmarks/family_judge.py; literature tolerances ltol 0.3, stol 0.5, angle 10, and strict ltol 0.2,
  stol 0.3, angle 5 beside it), with a site-ordering check where an anonymous match cannot see ordering;
- compositional validity (benchmarks/request_judge.py): required elements present, none excluded, charge
  balanced, the compound class and element count honoured, one of the acceptable formulas when the case has them;
- correct decline on requests chemistry rules out;
- the numbers: every delivered CIF is the relaxed structure (single-point energy with the same potential within
  5 meV/atom of the reported value) and no top-1 E_hull below -0.05 eV/atom against the final hull without a flag;
- wall time per request (target <= 60 s at budget 8 on 2 cores, hull references cached).

Every case's result is written as it finishes (one JSON line in --out), and a rerun skips finished cases, so a
long run resumes. The GenMS paper's figures (Table 1: match 0.93 / 0.86 / 0.89, compositional validity 0.85 /
0.89 / 1.00 for perovskite / pyrochlore / spinel) print beside ours; they are on other requests and models.

Run: .venv/bin/python benchmarks/search_quality.py --split dev --out runs/search-dev [--ids q001 q004] [--limit N]
[--shuffle SEED: a seeded random order, so a run cut short is a random sample]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from request_judge import composition_valid, load_suite  # noqa: E402

GENMS = {"perovskite": (0.93, 0.85), "pyrochlore": (0.86, 0.89), "spinel": (0.89, 1.00)}
E_HULL_FLOOR = -0.05


def run_case(case: dict, budget: int, n_formulas: int, seed: int) -> dict:
    """One request through the search, judged; never raises (an exception is a wrong answer with its reason)."""
    from family_judge import judge_family
    from pymatgen.core import Structure

    from tools.core.errors import ToolInputError
    from tools.core.registry import ToolContext, get_tool
    from tools.discovery.search import verify_delivery

    row: dict = {"id": case["id"], "request": case["request"], "split": case["split"],
                 "gold_family": case.get("family"), "gold_decline": bool(case.get("decline"))}
    start = time.time()
    try:
        out = get_tool("hierarchical_search").run(
            {"request": case["request"], "budget": budget, "n_formulas": n_formulas, "use_llm": False,
             "seed": seed, "top_k": 10},
            ToolContext(),
        )
    except ToolInputError as exc:
        row.update(seconds=round(time.time() - start, 1), declined=str(exc), error=None)
        return row
    except Exception as exc:  # noqa: BLE001 - a crash is a wrong answer, reported with its trace
        row.update(seconds=round(time.time() - start, 1), declined=None, error=f"{type(exc).__name__}: {exc}",
                   trace=traceback.format_exc()[-2000:])
        return row
    row["seconds"] = round(time.time() - start, 1)
    row["declined"] = getattr(out, "declined", None)
    row["evaluations"] = out.evaluations
    row["reference_seconds"] = getattr(out, "reference_seconds", 0.0)
    row["notes"] = out.notes if hasattr(out, "notes") else [out.note]
    best = out.best
    if best is None:
        return row
    ctx = ToolContext()
    structure: Structure = ctx.store.get(best.id).structure
    row["top1"] = {"formula": best.formula, "id": best.id, "spacegroup": best.spacegroup,
                   "generator": best.generator, "e_above_hull_eV": best.e_above_hull_eV,
                   "e_hull_suspect": getattr(best, "e_hull_suspect", False), "converged": best.converged,
                   "family_match_search": best.family_match}
    ok, reasons = composition_valid(best.formula, case)
    row["composition_valid"], row["composition_reasons"] = ok, reasons
    if case.get("family"):
        verdict = judge_family(structure, case["family"])
        row["family"] = {k: verdict.get(k) for k in ("match", "match_strict", "ordering_ok", "reference", "reason")}
    checks = verify_delivery(out, ctx)
    top_check = [c for c in checks if c.id == best.id]
    row["delivered_ok"] = bool(top_check and top_check[0].ok)
    row["delivered_all_ok"] = all(c.ok for c in checks)
    row["delivered_worst_meV"] = round(1000 * max((abs(c.recomputed_eV - c.energy_per_atom_eV) for c in checks),
                                                  default=0.0), 2)
    e_hull = best.e_above_hull_eV
    row["hull_violation"] = e_hull is not None and e_hull < E_HULL_FLOOR and not row["top1"]["e_hull_suspect"]
    return row


def rejudged(done: dict[str, dict], cases: dict[str, dict]) -> dict[str, dict]:
    """Finished rows with the family verdict recomputed on their stored top-1 structure (after a judge fix)."""
    from family_judge import judge_family

    from tools.core.registry import ToolContext

    store = ToolContext().store
    for case_id, row in done.items():
        case = cases.get(case_id)
        if case is None or not case.get("family") or not row.get("top1"):
            continue
        record = store.get(row["top1"]["id"])
        if record is not None:
            verdict = judge_family(record.structure, case["family"])
            row["family"] = {k: verdict.get(k) for k in ("match", "match_strict", "ordering_ok", "reference", "reason")}
    return done


def _net(row: dict) -> float:
    """Wall time without the hull references this request relaxed first (cached for every later search)."""
    return row["seconds"] - float(row.get("reference_seconds") or 0.0)


def family_right(row: dict) -> bool:
    fam = row.get("family") or {}
    return bool(fam.get("match")) and fam.get("ordering_ok") is not False


def summarise(rows: list[dict]) -> dict:
    """Top-1 rates over the cases they apply to."""
    answer = [r for r in rows if not r["gold_decline"]]
    with_family = [r for r in answer if r["gold_family"]]
    declines = [r for r in rows if r["gold_decline"]]
    answered = [r for r in answer if r.get("top1")]

    def rate(items: list, test) -> float:  # noqa: ANN001
        return sum(1 for r in items if test(r)) / len(items) if items else float("nan")

    return {
        "n": len(rows),
        "family_match": rate(with_family, family_right),
        "family_match_strict": rate(with_family, lambda r: bool((r.get("family") or {}).get("match_strict"))
                                    and (r.get("family") or {}).get("ordering_ok") is not False),
        "composition_valid": rate(answer, lambda r: bool(r.get("composition_valid"))),
        "both": rate(with_family, lambda r: family_right(r) and bool(r.get("composition_valid"))),
        "correct_decline": rate(declines, lambda r: bool(r.get("declined")) or (r.get("top1") is None
                                                                                 and not r.get("error"))),
        "false_decline": rate(answer, lambda r: bool(r.get("declined"))),
        "delivered_cif_relaxed": rate(answered, lambda r: bool(r.get("delivered_ok"))),
        "hull_violations": sum(1 for r in answered if r.get("hull_violation")),
        "errors": sum(1 for r in rows if r.get("error")),
        "mean_seconds": sum(r["seconds"] for r in rows) / len(rows) if rows else float("nan"),
        "max_seconds": max((r["seconds"] for r in rows), default=float("nan")),
        "mean_seconds_net_of_references": sum(_net(r) for r in rows) / len(rows) if rows else float("nan"),
        "max_seconds_net_of_references": max((_net(r) for r in rows), default=float("nan")),
        "over_60_s_net": sum(1 for r in rows if _net(r) > 60),
    }


SPLITS = ["dev", "heldout", "fresh", "report", "blind", "blind2", "blind3", "blind4", "all"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="dev", choices=SPLITS)
    parser.add_argument("--out", type=Path, required=True, help="folder for results.jsonl and the workspace")
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--n-formulas", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ids", nargs="*", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--shuffle", type=int, default=None, metavar="SEED",
                        help="run the cases in a seeded random order, so a run cut short is a random sample")
    parser.add_argument("--rejudge", action="store_true",
                        help="recompute the family verdicts of finished cases from their stored top-1 structures")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MATSEARCH_WORKSPACE", str(args.out / "workspace"))
    results = args.out / "results.jsonl"
    done = {}
    if results.exists():
        for line in results.read_text().splitlines():
            row = json.loads(line)
            done[row["id"]] = row
    cases = load_suite(None if args.split == "all" else args.split)
    if args.ids:
        cases = [c for c in cases if c["id"] in set(args.ids)]
    if args.shuffle is not None:
        import random

        random.Random(args.shuffle).shuffle(cases)
    cases = cases[: args.limit] if args.limit else cases
    if args.rejudge and done:
        done = rejudged(done, {c["id"]: c for c in cases})
        results.write_text("".join(json.dumps(r, default=str) + "\n" for r in done.values()))
    rows = []
    for i, case in enumerate(cases):
        if case["id"] in done:
            rows.append(done[case["id"]])
            continue
        row = run_case(case, args.budget, args.n_formulas, args.seed)
        rows.append(row)
        with results.open("a") as handle:
            handle.write(json.dumps(row, default=str) + "\n")
        top = row.get("top1") or {}
        print(f"[{i + 1}/{len(cases)}] {case['id']} {row['seconds']:6.1f} s  {top.get('formula', '-'):14s} "
              f"family={family_right(row) if case.get('family') else '-'} comp={row.get('composition_valid')} "
              f"declined={bool(row.get('declined'))} {row.get('error') or ''}", flush=True)
    summary = summarise(rows)
    print(f"\nsearch quality, split {args.split}, budget {args.budget}, offline, {summary['n']} requests")
    for key, value in summary.items():
        print(f"  {key:24s} {value:.3f}" if isinstance(value, float) else f"  {key:24s} {value}")
    print("  GenMS (paper, its own requests): match 0.93 / 0.86 / 0.89, compositional validity 0.85 / 0.89 / 1.00 "
          "(perovskite / pyrochlore / spinel)")
    for family, (match, valid) in GENMS.items():
        mine = [r for r in rows if r["gold_family"] == family and not r["gold_decline"]]
        if mine:
            m = sum(family_right(r) for r in mine) / len(mine)
            v = sum(bool(r.get("composition_valid")) for r in mine) / len(mine)
            print(f"  {family:12s} ours match {m:.2f} valid {v:.2f} (n={len(mine)})  GenMS match {match} valid {valid}")
    (args.out / f"summary-{args.split}.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
