"""Spot checks of the shipped Allegro-style potential against CHGNet (the reference it was distilled from) that a
user of the model card needs: a relaxed lattice constant and volume, and energy/force agreement on a training
composition (issue 31).

- Si, diamond: relaxed with each potential (FIRE + FrechetCellFilter, fmax 0.01 eV/A, <= 300 steps) from a = 5.43 A;
  lattice constant a and the volume difference against CHGNet's.
- Rutile TiO2 (a training composition, built as the training data were: the rutile template with pymatgen's DLS
  volume, unrelaxed) and the same cell relaxed by CHGNet: a 2x2x2 supercell and 8 Gaussian rattles of it (std
  0.02-0.10 A, as the training frames); energy MAE per atom, force MAE per component, mean per-atom cosine of the
  force vectors. And the relaxed volume with each potential.

    .venv/bin/python benchmarks/potential_checks.py [--model models/checkpoints/allegro_distilled.pt] [--json out.json]

About a minute on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHIPPED = ROOT / "models" / "checkpoints" / "allegro_distilled.pt"


def relax_cell(atoms, calc, fmax: float = 0.01, steps: int = 300):  # noqa: ANN001, ANN201 - ase objects
    """Relax positions and cell (FIRE + FrechetCellFilter); returns the relaxed copy."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    atoms = atoms.copy()
    atoms.calc = calc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=steps)
    return atoms


def silicon(calcs: dict[str, Any]) -> dict[str, Any]:
    """Relaxed diamond-Si lattice constant and volume per potential, and the differences against CHGNet."""
    from ase.build import bulk

    out: dict[str, Any] = {}
    for name, calc in calcs.items():
        relaxed = relax_cell(bulk("Si", "diamond", a=5.43, cubic=True), calc)
        vol = relaxed.get_volume() / len(relaxed)
        out[name] = {"a_A": round(float(np.cbrt(vol * 8)), 4), "volume_A3_per_atom": round(float(vol), 3),
                     "energy_eV_per_atom": round(float(relaxed.get_potential_energy() / len(relaxed)), 4)}
    ref = out["chgnet"]
    for row in out.values():
        row["a_vs_chgnet_pct"] = round(100 * (row["a_A"] / ref["a_A"] - 1), 2)
        row["volume_vs_chgnet_pct"] = round(100 * (row["volume_A3_per_atom"] / ref["volume_A3_per_atom"] - 1), 2)
    return out


def frame_errors(frames: list, model, ref) -> dict[str, float]:  # noqa: ANN001 - ase calculators
    """Energy MAE (meV/atom), force MAE (meV/A per component) and mean per-atom force cosine over frames."""
    de, df, cos = [], [], []
    for atoms in frames:
        got, want = atoms.copy(), atoms.copy()
        got.calc, want.calc = model, ref
        de.append(abs(got.get_potential_energy() - want.get_potential_energy()) / len(atoms))
        fg, fw = got.get_forces(), want.get_forces()
        df.append(np.abs(fg - fw).mean())
        norms = np.linalg.norm(fg, axis=1) * np.linalg.norm(fw, axis=1)
        keep = norms > 1e-6
        cos.extend(((fg * fw).sum(axis=1)[keep] / norms[keep]).tolist())
    return {"frames": len(frames), "energy_mae_meV_per_atom": round(1000 * float(np.mean(de)), 1),
            "force_mae_meV_per_A": round(1000 * float(np.mean(df)), 1),
            "force_cosine_mean": round(float(np.mean(cos)), 3) if cos else float("nan")}


def rutile(model, ref) -> dict[str, Any]:  # noqa: ANN001 - ase calculators
    """Rutile TiO2 (training composition): the DLS-volume cell and the CHGNet-relaxed cell, each with 8 rattles."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from models.crystals.prototypes import decorate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = AseAtomsAdaptor.get_atoms(decorate("rutile", {"A": "Ti", "X": "O"}))
    cells = {"dls_volume_unrelaxed": start, "chgnet_relaxed": relax_cell(start, ref, fmax=0.02)}
    own = relax_cell(start, model, fmax=0.02)
    v_ref, v_own = (c.get_volume() / len(c) for c in (cells["chgnet_relaxed"], own))
    out: dict[str, Any] = {"relaxed_volume": {"model_A3_per_atom": round(float(v_own), 3),
                                              "chgnet_A3_per_atom": round(float(v_ref), 3),
                                              "volume_vs_chgnet_pct": round(100 * (v_own / v_ref - 1), 2)}}
    for label, cell in cells.items():
        cell = cell.copy()
        cell.calc = None
        super_ = cell.repeat((2, 2, 2))
        frames = [super_]
        for i, std in enumerate(np.linspace(0.02, 0.10, 8)):
            rattled = super_.copy()
            rattled.rattle(stdev=float(std), seed=i)
            frames.append(rattled)
        out[label] = {"volume_A3_per_atom": round(float(cell.get_volume() / len(cell)), 3),
                      **frame_errors(frames, model, ref)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI: run both checks, print a summary, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    from models.potentials.universal import get_calculator

    torch.set_num_threads(args.threads)
    t0 = time.time()
    model, ref = get_calculator(args.model), get_calculator("chgnet")
    name = args.model.stem
    res = {"model": str(args.model), "si": silicon({name: model, "chgnet": ref}), "rutile_TiO2": rutile(model, ref)}
    res["seconds"] = round(time.time() - t0, 1)
    si = res["si"]
    print(f"Si diamond relaxed: {name} a = {si[name]['a_A']:.3f} A, CHGNet {si['chgnet']['a_A']:.3f} A "
          f"({si[name]['a_vs_chgnet_pct']:+.1f} % in a, {si[name]['volume_vs_chgnet_pct']:+.1f} % in volume)")
    vol = res["rutile_TiO2"]["relaxed_volume"]
    print(f"rutile TiO2 relaxed: {name} {vol['model_A3_per_atom']} A^3/atom, CHGNet {vol['chgnet_A3_per_atom']} "
          f"({vol['volume_vs_chgnet_pct']:+.1f} % in volume)")
    for label, row in res["rutile_TiO2"].items():
        if label == "relaxed_volume":
            continue
        print(f"rutile TiO2 {label} (2x2x2, {row['frames']} frames): energy {row['energy_mae_meV_per_atom']} "
              f"meV/atom, force MAE {row['force_mae_meV_per_A']} meV/A, per-atom force cosine "
              f"{row['force_cosine_mean']}")
    print(f"{res['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
