"""Benchmark: predict_crystallization against experimentally known first-crystallizing polymorphs.

For each system the tool runs with a modest CPU budget (CHGNet by default); the table gives the predicted first
polymorph (most frequent identified motif), the rank by frequency of the known polymorph, the ground state by energy,
and the wall time. Known answers (what crystallizes first when the amorphous phase is annealed):

- Si -> diamond-cubic Si (solid-phase crystallization; a control: the only low-pressure polymorph).
  G. L. Olson and J. A. Roth, "Kinetics of solid phase crystallization in amorphous silicon",
  Mater. Sci. Rep. 3, 1 (1988).
- TiO2 -> anatase, not the ground-state rutile. H. Zhang and J. F. Banfield, "Phase transformation of
  nanocrystalline anatase-to-rutile via combined interface and surface nucleation", J. Mater. Res. 15, 437 (2000);
  also the headline example of M. Aykol et al., Nat. Comput. Sci. (2025), arXiv:2310.01117.
- SiO2 -> cristobalite, not quartz (devitrification of silica glass). F. E. Wagstaff, "Crystallization and melting
  kinetics of cristobalite", J. Am. Ceram. Soc. 52, 650 (1969).
- ZrO2 -> tetragonal (fluorite-derived) ZrO2, not monoclinic baddeleyite. R. C. Garvie, "The occurrence of
  metastable tetragonal zirconia as a crystallite size effect", J. Phys. Chem. 69, 1238 (1965); J. Livage, K. Doi
  and C. Mazieres, J. Am. Ceram. Soc. 51, 349 (1968).
- Al2O3 -> gamma-Al2O3 (defect spinel), not corundum. I. Levin and D. Brandon, "Metastable alumina polymorphs:
  crystal structures and transition sequences", J. Am. Ceram. Soc. 81, 1995 (1998).
- NiTi -> B2 (CsCl-type) austenite. J. Z. Chen and S. K. Wu, "Crystallization temperature and activation energy of
  rf-sputtered near-equiatomic TiNi and Ti50Ni40Cu10 thin films", J. Non-Cryst. Solids 288, 159 (2001).
- ZnO -> wurtzite. (Amorphous ZnO films crystallize to wurtzite on annealing; the only ambient polymorph, a
  second control.) Ü. Özgür et al., "A comprehensive review of ZnO materials and devices", J. Appl. Phys. 98,
  041301 (2005).

Label keys: a known polymorph counts as found when the tool's label contains one of the `accept` substrings
(AFLOW names: 'Anatase', 'Cristobalite', 'Fluorite' for the fluorite-derived tetragonal/cubic zirconia, 'spinel'
for the defect spinel, 'CsCl'/'B2', 'Wurtzite', 'diamond'). gamma-Al2O3 has no ordered prototype among the
candidates, so Al2O3 can only report "not in candidate set" unless memory holds one.

Run: `python benchmarks/crystallization.py [--quick] [--systems Si,TiO2] [--potential chgnet] [--d-frac 0.05]
[--out rows.json]`. `--reidentify WORKSPACE/artifacts/.../report.json` redoes only the motif identification of a saved
run with the current code (seconds, not the run's 10-40 minutes).

Why: the tool predicts, by Ostwald's rule of stages, the polymorph whose motifs the amorphous phase most readily
relaxes into; these systems test that against what experiment sees crystallize first, which for most of them is not
the ground state. Results, dated with their commands: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYSTEMS: dict[str, dict[str, object]] = {
    "Si": {"known": "diamond", "accept": ["diamond"], "n_atoms": 32},
    # n_max admits the smallest axis-aligned cell of each known polymorph: 12 atoms for anatase, alpha-cristobalite
    # and fluorite ZrO2 (with 8, TiO2 subcells could only hold rutile-like 6-atom boxes)
    "TiO2": {"known": "anatase", "accept": ["anatase"], "n_atoms": 48, "n_max": 12},
    "SiO2": {"known": "cristobalite", "accept": ["cristobalite"], "n_atoms": 48, "n_max": 12},
    "ZrO2": {"known": "tetragonal/cubic (fluorite-derived)", "accept": ["fluorite"], "n_atoms": 48, "n_max": 12},
    "Al2O3": {"known": "gamma (defect spinel)", "accept": ["spinel", "gamma"], "n_atoms": 40, "n_max": 10},
    "NiTi": {"known": "B2 (CsCl)", "accept": ["cscl", "b2"], "n_atoms": 32},
    "ZnO": {"known": "wurtzite", "accept": ["wurtzite"], "n_atoms": 32},
}


def run(
    names: list[str], potential: str, quick: bool, seed: int, out: Path | None = None, threads: int = 2,
    d_frac: float | None = None,
) -> list[dict[str, object]]:
    """Run the tool on each system and compare with the known first polymorph. With `out`, rows already there
    (same system, no error) are kept and skipped, and the file is rewritten after every system, so a run cut
    short by a session resumes where it stopped."""
    os.environ.setdefault("MATSEARCH_WORKSPACE", tempfile.mkdtemp(prefix="bench-cryst-"))
    import torch

    from tools.core.registry import ToolContext, get_tool

    os.environ["MATSEARCH_TORCH_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    spec = get_tool("predict_crystallization")
    rows: list[dict[str, object]] = []
    if out is not None and out.is_file():
        rows = [r for r in json.loads(out.read_text()) if "error" not in r and r["system"] in names]
    done = {r["system"] for r in rows}
    for name in names:
        if name in done:
            print(f"{name}: kept from {out}", flush=True)
            continue
        system = SYSTEMS[name]
        args = {
            "composition": name, "potential": potential, "seed": seed,
            "n_atoms": 16 if quick else system["n_atoms"], "n_replicas": 1 if quick else 2,
            "melt_steps": 100 if quick else 1000, "quench_steps": 200 if quick else 2000,
            "hold_steps": 50 if quick else 300, "budget": 12 if quick else 80,
            "n_max": system.get("n_max", 8), "d_frac": d_frac or (0.25 if quick else 0.2),
            "max_reference_relaxations": 8 if quick else 16, "fmax": 0.1 if quick else 0.05,
            "max_relax_steps": 150 if quick else 300,
        }
        start = time.perf_counter()
        try:
            result = spec.run(args, ToolContext())
        except Exception as exc:  # one failing system must not sink the table
            rows.append({"system": name, "known": system["known"], "error": f"{type(exc).__name__}: {exc}"})
            if out is not None:
                out.write_text(json.dumps(rows, indent=1))
            continue
        accept = [a.lower() for a in system["accept"]]  # type: ignore[union-attr]
        known = [p for p in result.polymorphs if any(a in p.label.lower() for a in accept)]
        predicted = result.predicted_first_polymorph or "-"
        rows.append({
            "system": name, "known": system["known"], "predicted": predicted,
            "correct": any(a in predicted.lower() for a in accept),
            "known_rank": min((p.rank for p in known), default=None),
            "known_rank_by_frequency": min((p.rank_by_frequency for p in known), default=None),
            "n_polymorphs": len(result.polymorphs), "ground_state": result.ground_state,
            "lowest_energy_motif": result.lowest_energy_motif, "n_valid": result.n_valid,
            "n_relaxed": result.n_relaxed, "wall_time_s": round(time.perf_counter() - start, 1),
            "report": result.report_uri,
        })
        print(json.dumps(rows[-1]), flush=True)
        if out is not None:
            out.write_text(json.dumps(rows, indent=1))
    rows.sort(key=lambda r: names.index(str(r["system"])))
    return rows


def reidentify(report: Path) -> list[tuple[str, int, float]]:
    """Redo motif identification on a saved report.json (motif and candidate CIFs) with the current code: no MD or
    relaxation, so identification rules can be checked against a full run in seconds. Returns (label, count,
    lowest energy per atom) by count."""
    from collections import Counter

    from pymatgen.core import Composition, Structure

    from memory.store import symmetry_of
    from tools.crystallization.motifs import Candidate, Motif, identify, merge_relaxed_duplicates

    data = json.loads(report.read_text())
    candidates = []
    for c in data["candidates"]:
        cand = Candidate(c["label"], Structure.from_str(c["cif"], fmt="cif"), c["source"], priority=c["priority"],
                         energy_per_atom=c["energy_per_atom_eV"], converged=c["converged"], kept=c["kept"],
                         n_primitive=c["n_primitive"], space_group=c["space_group"])
        cand.relaxed = Structure.from_str(c["relaxed_cif"], fmt="cif") if c["relaxed_cif"] else None
        candidates.append(cand)
    merge_relaxed_duplicates(candidates)
    motifs = []
    for m in data["motifs"]:
        structure = Structure.from_str(m["cif"], fmt="cif")
        motifs.append(Motif(
            index=m["index"], replica=m["replica"], n_atoms=m["n_atoms"], initial_energy=m["initial_energy_eV"],
            energy=m["energy_eV"], energy_per_atom=m["energy_per_atom_eV"],
            formation_energy_per_atom=m["formation_energy_per_atom_eV"], steps=m["steps"], converged=m["converged"],
            structure=structure, spacegroup=m["spacegroup"], spacegroup_number=symmetry_of(structure)[1],
            problems=m["problems"]))
    identify(motifs, candidates, Composition(data["composition"]))
    valid = [m for m in motifs if m.valid]
    counts = Counter(m.label or "?" for m in valid)
    return [(label, n, min(m.energy_per_atom for m in valid if m.label == label))
            for label, n in counts.most_common()]


def main() -> None:
    """CLI entry: run, print a Markdown table and the accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    parser.add_argument("--potential", default="chgnet")
    parser.add_argument("--quick", action="store_true", help="tiny cells and short MD (minutes per system)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the table reports 2-core wall times)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the rows as JSON here after every system; systems already there are skipped")
    parser.add_argument("--d-frac", type=float, default=None,
                        help="subcell grid spacing (default 0.2, quick 0.25; the reference a2c code uses 0.05)")
    parser.add_argument("--reidentify", type=Path, default=None,
                        help="only redo motif identification on this saved report.json and print the counts")
    args = parser.parse_args()
    if args.reidentify is not None:
        for label, count, energy in reidentify(args.reidentify):
            print(f"{count:4d}  {energy:9.4f} eV/atom  {label}")
        return
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    rows = run(names, args.potential, args.quick, args.seed, args.out, args.threads, args.d_frac)
    print("\n| system | known first | predicted first | correct | rank of known (share) | rank of known (count) | "
          "ground state | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['system']} | {r['known']} | error: {r['error']} | | | | | |")
            continue
        print(f"| {r['system']} | {r['known']} | {r['predicted']} | {r['correct']} | {r['known_rank']} | "
              f"{r['known_rank_by_frequency']} | {r['ground_state']} | {r['wall_time_s']} |")
    scored = [r for r in rows if "error" not in r]
    if scored:
        print(f"\naccuracy: {sum(bool(r['correct']) for r in scored)}/{len(scored)}")


if __name__ == "__main__":
    main()
