"""Accuracy of the shipped Allegro-style potential vs its CHGNet reference: energy/force/stress MAE on held-out
compositions (never in training), and the Spearman rank correlation of relaxed energies over polymorphs of the
same composition.

    python benchmarks/potential_accuracy.py [--checkpoint models/checkpoints/allegro_distilled.pt]
        [--test DATA/test.extxyz] [--max-steps 150] [--threads 1] [--json out.json]

Without --test the held-out frames are rebuilt and labelled here (same recipe and seeds as the training data).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.data.potential_distill import base_structures, is_held_out, label, perturbed_frames  # noqa: E402
from models.potentials.labels import read_labels  # noqa: E402
from tools.potentials.training import errors, predictions, read_labelled  # noqa: E402

# composition -> polymorph families (models/crystals/prototypes.py roles)
POLYMORPHS: dict[str, list[tuple[str, dict[str, str]]]] = {
    "MgO": [(f, {"A": "Mg", "X": "O"}) for f in ("rock salt", "cscl", "zincblende", "wurtzite")],
    "ZnO": [(f, {"A": "Zn", "X": "O"}) for f in ("rock salt", "cscl", "zincblende", "wurtzite")],
    "AlN": [(f, {"A": "Al", "X": "N"}) for f in ("rock salt", "zincblende", "wurtzite")],
    "TiO2": [(f, {"A": "Ti", "X": "O"}) for f in ("rutile", "fluorite")],
    "ZrO2": [(f, {"A": "Zr", "X": "O"}) for f in ("rutile", "fluorite")],
    "CaTiO3": [(f, {"A": "Ca", "B": "Ti", "X": "O"}) for f in ("perovskite", "ilmenite")],
    "MgTiO3": [(f, {"A": "Mg", "B": "Ti", "X": "O"}) for f in ("perovskite", "ilmenite")],
}


def held_out_frames(calc: Calculator) -> list[Atoms]:
    """Rattled/strained frames of the held-out structures, labelled by the reference (no MD frames)."""
    frames = []
    for name, atoms in base_structures():
        if is_held_out(atoms):
            for tag, frame in perturbed_frames(name, atoms):
                labelled = label(frame, calc)
                labelled.info.update({"structure_id": name, "frame": tag})
                frames.append(labelled)
    return frames


def relaxed_energy(atoms: Atoms, calc: Calculator, fmax: float, max_steps: int) -> float:
    """Energy per atom after FIRE relaxation of positions and cell."""
    work = atoms.copy()
    work.calc = calc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FIRE(FrechetCellFilter(work), logfile=None).run(fmax=fmax, steps=max_steps)
    return float(work.get_potential_energy()) / len(work)


def polymorph_ranking(
    ours: Calculator | None, ref: Calculator, fmax: float, max_steps: int, cache: Path | None = None
) -> dict:
    """Relaxed energies per atom by both potentials; Spearman within each composition and pooled.

    Reference energies are read from / written to `cache` (JSON keyed by composition, family, fmax, steps) when given.
    """
    from pymatgen.io.ase import AseAtomsAdaptor
    from scipy.stats import spearmanr

    from models.crystals.prototypes import decorate

    cached = json.loads(cache.read_text()) if cache and cache.exists() else {}
    rows, per_comp = [], {}
    for comp, options in POLYMORPHS.items():
        e_ours, e_ref = [], []
        for family, roles in options:
            atoms = AseAtomsAdaptor.get_atoms(decorate(family, roles))
            key = f"{comp}|{family}|{fmax}|{max_steps}"
            if key not in cached:
                cached[key] = relaxed_energy(atoms, ref, fmax, max_steps)
                if cache:
                    cache.write_text(json.dumps(cached, indent=1))
            e_ref.append(cached[key])
            e_ours.append(cached[key] if ours is None else relaxed_energy(atoms, ours, fmax, max_steps))
            rows.append({"composition": comp, "family": family, "ours_eV_atom": e_ours[-1], "ref_eV_atom": e_ref[-1]})
        rho = (
            float(spearmanr(e_ours, e_ref).statistic)
            if len(options) > 2
            else float(np.sign((e_ours[1] - e_ours[0]) * (e_ref[1] - e_ref[0])))
        )
        per_comp[comp] = {"spearman": rho, "ground_state_match": int(np.argmin(e_ours) == np.argmin(e_ref))}
    # pooled: energies relative to each composition's lowest reference polymorph
    rel_ours, rel_ref = [], []
    for comp in POLYMORPHS:
        sub = [r for r in rows if r["composition"] == comp]
        base_o, base_r = min(r["ours_eV_atom"] for r in sub), min(r["ref_eV_atom"] for r in sub)
        rel_ours += [r["ours_eV_atom"] - base_o for r in sub]
        rel_ref += [r["ref_eV_atom"] - base_r for r in sub]
    return {
        "rows": rows,
        "per_composition": per_comp,
        "mean_spearman": float(np.mean([v["spearman"] for v in per_comp.values()])),
        "pooled_spearman_relative": float(spearmanr(rel_ours, rel_ref).statistic),
        "ground_state_matches": sum(v["ground_state_match"] for v in per_comp.values()),
        "relative_energy_mae_meV_atom": float(1000 * np.mean(np.abs(np.array(rel_ours) - np.array(rel_ref)))),
    }


def main(argv: list[str] | None = None) -> dict:
    """Run both checks and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "checkpoints" / "allegro_distilled.pt")
    parser.add_argument("--test", type=Path, default=None, help="labelled held-out extxyz (default: rebuild)")
    parser.add_argument("--fmax", type=float, default=0.05)
    parser.add_argument("--max-steps", type=int, default=150)
    parser.add_argument("--skip-ranking", action="store_true")
    parser.add_argument("--only-reference", action="store_true", help="just fill the reference cache")
    parser.add_argument("--ref-cache", type=Path, default=None, help="JSON cache of CHGNet relaxed energies")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train", type=Path, default=None,
                        help="the training extxyz: also report the validation split (same hash split as training, "
                             "--val-fraction) and the fit on every 10th training frame")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from models.potentials.calculator import PotentialCalculator
    from models.potentials.universal import get_calculator

    torch.set_num_threads(args.threads)
    ours = PotentialCalculator.from_checkpoint(args.checkpoint)
    need_ref = args.only_reference or args.test is None or not args.skip_ranking
    ref = get_calculator("chgnet") if need_ref else None
    if args.only_reference:
        return polymorph_ranking(None, ref, args.fmax, args.max_steps, args.ref_cache)
    t0 = time.perf_counter()
    frames = read_labelled(args.test) if args.test else held_out_frames(ref)
    trained = set(ours.model.species)
    frames = [a for a in frames if set(a.get_chemical_symbols()) <= trained]
    pred = predictions(ours, frames, "ours")
    result: dict = {"checkpoint": str(args.checkpoint), "held_out": errors(pred, [read_labels(a) for a in frames])}
    ids = sorted({str(a.info.get("structure_id")) for a in frames})
    result["held_out"]["structures"] = ids
    per = {}
    for sid in ids:
        idx = [k for k, a in enumerate(frames) if str(a.info.get("structure_id")) == sid]
        per[sid] = errors([pred[k] for k in idx], [read_labels(frames[k]) for k in idx])
    result["held_out_per_structure"] = {
        k: {m: round(v[m], 1) for m in ("energy_mae_meV_per_atom", "forces_mae_meV_per_A")} for k, v in per.items()
    }
    result["held_out_seconds"] = round(time.perf_counter() - t0, 1)
    if args.train:
        from tools.potentials.training import split_by_structure

        fit_frames, val_frames = split_by_structure(read_labelled(args.train), args.val_fraction)
        for name, subset in (("validation", val_frames), ("training_fit", fit_frames[::10])):
            result[name] = errors(predictions(ours, subset, "ours"), [read_labels(a) for a in subset])
            result[name]["structures"] = len({str(a.info.get("structure_id")) for a in subset})
    if not args.skip_ranking:
        t1 = time.perf_counter()
        result["ranking"] = polymorph_ranking(ours, ref, args.fmax, args.max_steps, args.ref_cache)
        result["ranking_seconds"] = round(time.perf_counter() - t1, 1)
    h = result["held_out"]
    print(f"held-out frames: {h['n_structures']} from {len(ids)} structures ({', '.join(ids)})")
    print(
        f"energy MAE {h['energy_mae_meV_per_atom']:.1f} meV/atom (target < 15), "
        f"force MAE {h.get('forces_mae_meV_per_A', float('nan')):.1f} meV/A (target < 60), "
        f"stress MAE {h.get('stress_mae_meV_per_A3', float('nan')):.2f} meV/A^3"
    )
    for sid, v in result["held_out_per_structure"].items():
        print(f"  {sid:28s} E {v['energy_mae_meV_per_atom']:7.1f} meV/atom   F {v['forces_mae_meV_per_A']:7.1f} meV/A")
    for name in ("validation", "training_fit"):
        if name in result:
            v = result[name]
            print(f"{name}: {v['n_structures']} frames of {v['structures']} structures: energy MAE "
                  f"{v['energy_mae_meV_per_atom']:.1f} meV/atom, force MAE {v.get('forces_mae_meV_per_A', 0):.1f} "
                  f"meV/A, stress MAE {v.get('stress_mae_meV_per_A3', 0):.2f} meV/A^3")
    if "ranking" in result:
        r = result["ranking"]
        print(
            f"polymorph ranking: mean Spearman {r['mean_spearman']:.2f}, pooled (relative energies) "
            f"{r['pooled_spearman_relative']:.2f}, ground state matches {r['ground_state_matches']}/{len(POLYMORPHS)}, "
            f"relative-energy MAE {r['relative_energy_mae_meV_atom']:.1f} meV/atom"
        )
        for row in r["rows"]:
            print(
                f"  {row['composition']:7s} {row['family']:12s} ours {row['ours_eV_atom']:8.3f}  "
                f"chgnet {row['ref_eV_atom']:8.3f} eV/atom"
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
