"""How well the language level reads requests: constraint-extraction accuracy per field (include, exclude, family,
compound class, formulas, element count, application, decline) on the request suite, judged by
benchmarks/request_judge.py (written apart from the reader), plus the validity of the top offline proposal.

The suite is split before building: develop on `--split dev`; run `--split heldout` (or the blind third suite,
`--split fresh`) only to report.
A decline counts when the reader declines or the proposer finds no formula for the reading.

With `--llm-base-url URL [--llm-model NAME]` the same suite goes through the LLM path (the OpenAI-compatible wire
protocol, one JSON call per request that returns the structured reading and proposals, validated with pymatgen);
rows say which reader was used (an invalid LLM reading falls back to the offline one and counts as such).

Run: .venv/bin/python benchmarks/reader_quality.py [--split dev|heldout|fresh|all] [--show-misses] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from request_judge import FIELDS, composition_valid, load_suite, score_reading, summarise  # noqa: E402


def offline_reading(text: str) -> tuple[dict, list[str]]:
    """The offline reader's fields as the judge reads them, and the offline proposer's formulas."""
    from tools.core.errors import ToolInputError
    from tools.discovery.proposer import propose_formulas_offline
    from tools.discovery.request import read_request

    try:
        req = read_request(text)
    except ToolInputError as exc:
        return {"decline": str(exc)}, []
    reading = req.constraints()
    formulas: list[str] = []
    if not req.decline:
        formulas = [p.formula for p in propose_formulas_offline(req, 5)]
        if not formulas:
            reading["decline"] = "no formula fits"
    return reading, formulas


def llm_reading(text: str) -> tuple[dict, list[str], str]:
    """The reading and proposals through the configured LLM endpoint (settings from the environment)."""
    from tools.core.errors import ToolInputError
    from tools.core.registry import ToolContext
    from tools.discovery.language import propose_request

    try:
        req, out = propose_request(text, 5, ToolContext(), use_llm=True)
    except ToolInputError as exc:
        return {"decline": str(exc)}, [], "offline"
    reading = req.constraints()
    if out.declined:
        reading["decline"] = out.declined
    return reading, [p.formula for p in out.proposals], out.reader


SPLITS = ["dev", "heldout", "fresh", "report", "blind", "blind2", "blind3", "blind4", "all"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", default="dev", choices=SPLITS)
    parser.add_argument("--show-misses", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None, help="only the first N requests of the split (a smoke test)")
    parser.add_argument("--llm-base-url", default=None, help="read through this OpenAI-compatible endpoint")
    parser.add_argument("--llm-model", default=None)
    args = parser.parse_args()
    if args.llm_base_url:
        import os
        import tempfile

        os.environ["OPENAI_BASE_URL"] = args.llm_base_url
        os.environ.setdefault("MATSEARCH_WORKSPACE", tempfile.mkdtemp(prefix="matsearch-reader-"))
        if args.llm_model:
            os.environ["MATSEARCH_LLM_MODEL"] = args.llm_model
    readers: dict[str, int] = {}
    cases = load_suite(None if args.split == "all" else args.split)[: args.limit]
    rows, start = [], time.time()
    for case in cases:
        if args.llm_base_url:
            reading, formulas, used = llm_reading(case["request"])
        else:
            reading, formulas, used = (*offline_reading(case["request"]), "offline")
        readers[used] = readers.get(used, 0) + 1
        scores = score_reading(reading, case)
        if not case.get("decline"):
            ok, reasons = composition_valid(formulas[0], case) if formulas else (False, ["no proposal"])
            scores["top1_proposal_valid"] = ok
        rows.append({"id": case["id"], "scores": scores, "reading": reading, "top": formulas[:3],
                     "reasons": [] if case.get("decline") else reasons})
        if args.show_misses and not all(scores.values()):
            wrong = [f for f, v in scores.items() if not v]
            print(f"{case['id']} {case['request']!r}\n   wrong: {wrong}  top: {formulas[:3]}")
            for f in wrong:
                if f in FIELDS:
                    print(f"   {f}: got {reading.get(f)!r} want {case.get(f)!r} also {case.get('also_ok', {}).get(f)}")
            if rows[-1]["reasons"]:
                print(f"   proposal: {rows[-1]['reasons']}")
    summary = summarise(rows)
    print(f"reader: {readers}, split {args.split}, {summary['n']} requests, {time.time() - start:.1f} s")
    for key, value in summary.items():
        if key != "n":
            print(f"  {key:22s} {value:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
