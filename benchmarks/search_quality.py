"""Search quality with the GenMS paper's metrics (Table 1), for matsearch's hierarchical search and for a baseline
of random pyxtal structures of the same formulas, in one run.

Metrics over the returned structures: CIF validity (parses in pymatgen), structural validity (min distance > 0.5 A),
compositional validity (charge neutral by pymatgen's oxidation-state guesser), formation energy per atom (eV/atom,
from the same potential), uniqueness (reduced formula not among the project's reference compounds), and match rate
(StructureMatcher.fit_anonymous against the family prototype; stol 0.5, ltol 0.3, angle_tol 10).
GenMS reports match rate 0.93 / 0.86 / 0.89 and compositional validity 0.85 / 0.89 / 1.00 for perovskite / pyrochlore /
spinel.

Run: .venv/bin/python benchmarks/search_quality.py [--budget 6] [--requests "a perovskite" ...]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Structure

REQUESTS = {
    "a perovskite": "perovskite",
    "a pyrochlore": "pyrochlore",
    "a spinel": "spinel",
    "a double perovskite oxide containing La and Mn": "double perovskite",
    "a rock salt oxide": "rock salt",
}
GENMS = {"perovskite": (0.93, 0.85), "pyrochlore": (0.86, 0.89), "spinel": (0.89, 1.00)}


def metrics(structures: list[Structure], family: str, formation: list[float | None]) -> dict[str, float]:
    """The GenMS metrics over a list of returned structures."""
    from tools.family_match import matches_family
    from tools.language import charge_balanced
    from tools.potentials import shipped_references
    from tools.structures import min_interatomic_distance

    known = {Composition(v["formula"]).reduced_formula for v in shipped_references("chgnet")["compounds"].values()}
    n = max(len(structures), 1)
    cif_ok = struct_ok = comp_ok = unique = match = 0
    for s in structures:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Structure.from_str(s.to(fmt="cif"), fmt="cif")
            cif_ok += 1
        except Exception:  # noqa: S112 - counted as invalid
            continue
        struct_ok += min_interatomic_distance(s) > 0.5
        comp_ok += charge_balanced(s.composition)
        unique += s.composition.reduced_formula not in known
        match += matches_family(s, family)
    energies = [e for e in formation if e is not None]
    return {
        "n": len(structures),
        "cif_validity": cif_ok / n,
        "structural_validity": struct_ok / n,
        "compositional_validity": comp_ok / n,
        "uniqueness": unique / n,
        "match_rate": match / n,
        "formation_energy_per_atom": float(np.mean(energies)) if energies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=int, default=6)
    parser.add_argument("--requests", nargs="*", default=list(REQUESTS)[:3])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("MATSEARCH_WORKSPACE", tempfile.mkdtemp(prefix="matsearch-bench-"))
    from models.diffusion.baseline import random_pyxtal_structures
    from tools.potentials import elemental_references, get_potential, relax
    from tools.registry import ToolContext, get_tool
    from tools.settings import get_settings

    settings = get_settings()
    results = {}
    for request in args.requests:
        family = REQUESTS.get(request, "perovskite")
        start = time.time()
        out = get_tool("hierarchical_search").run(
            {"request": request, "budget": args.budget, "n_formulas": 4, "top_k": 50, "use_llm": False}, ToolContext()
        )
        store = ToolContext().store
        ours = [store.get(c.id).structure for c in out.ranked]
        ours_ef = [c.formation_energy_per_atom_eV for c in out.ranked]
        search_s = time.time() - start
        # Baseline: random symmetric pyxtal structures of the same formulas, relaxed the same way.
        calc = get_potential(settings.potential, settings)
        refs = elemental_references(settings.potential, settings)
        base, base_ef = [], []
        for i, c in enumerate(out.ranked):
            species = [el.symbol for el, amt in store.get(c.id).structure.composition.items() for _ in range(int(amt))]
            for s in random_pyxtal_structures(species, 1, seed=i):
                base.append(s)
                try:
                    r = relax(s, calc, settings.potential, fmax=0.1, max_steps=200)
                    base_ef.append(refs.formation_energy_per_atom(r.structure, r.energy))
                except Exception:
                    base_ef.append(None)
        results[request] = {
            "family": family,
            "search_seconds": round(search_s, 1),
            "matsearch": metrics(ours, family, ours_ef),
            "pyxtal_random": metrics(base, family, base_ef),
            "genms": GENMS.get(family),
        }
        r = results[request]
        print(f"{request!r} ({family}), {r['search_seconds']} s:")
        for name in ("matsearch", "pyxtal_random"):
            m = r[name]
            print(
                f"  {name:14s} n={m['n']:2d} match={m['match_rate']:.2f} comp_valid={m['compositional_validity']:.2f} "
                f"struct_valid={m['structural_validity']:.2f} cif_valid={m['cif_validity']:.2f} "
                f"unique={m['uniqueness']:.2f} E_form={m['formation_energy_per_atom']:.3f} eV/atom"
            )
        if r["genms"]:
            print(f"  GenMS (paper)  match={r['genms'][0]:.2f} comp_valid={r['genms'][1]:.2f}")
        ratio = r["matsearch"]["match_rate"] / max(r["pyxtal_random"]["match_rate"], 1e-9)
        print(f"  match-rate ratio matsearch / pyxtal random: {ratio:.1f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
