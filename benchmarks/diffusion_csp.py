"""Crystal-structure-prediction benchmark of the diffusion generator against a random pyxtal baseline.

One sample per test composition (the DiffCSP protocol): match rate and RMSE with StructureMatcher(stol=0.5,
angle_tol=10, ltol=0.3) on CDVAE perov_5 / carbon_24 test.csv subsets (read from ../shared/data, never copied) and on
the project's own held-out prototype split, next to the published DiffCSP/CDVAE numbers.

The literature's stol 0.5 accepts cells that are not the target (issue 31: raw SnO2 samples with P4mm/Pmm2
symmetry matched rutile), so every set also reports a strict match (stol 0.3, ltol 0.2, angle_tol 5) and, with
--relax-n, the fraction of the first N samples that match (loose and strict) after a short CHGNet relaxation.

--validity: validity (the generator's own check: no atoms closer than 0.5 A, finite cell) per formula and cell size
(formula units), and the match rate of the small training prototypes (rutile TiO2, wurtzite GaN) against their
templates: where the one-sample CSP numbers above (5-atom perov_5 cells) do not carry over to larger cells.

    python benchmarks/diffusion_csp.py --n 200 --steps 200 [--carbon-n 50] [--relax-n 40] [--out results.json]
    python benchmarks/diffusion_csp.py --n 0 --own-n 0 --speed-threads --validity [--validity-n 10]

--unseen-n N (issue 30): the first N hand-typed known compounds of benchmarks/data/unseen_cells.json, none of whose
formulas is in the training set; per compound 20 samples (--unseen-samples) at its primitive cell's atoms, scored
against it: any-of-20 and one-sample (first sample) match rates, the fraction of valid samples (no pair closer than
0.5 A; and no pair closer than 0.5x the covalent radii sum), by cell size (2-8, 9-20, 21-40 atoms), beside as many
pyxtal random structures of the same cell content, matched with the same StructureMatcher tolerances.

    python benchmarks/diffusion_csp.py --n 0 --own-n 0 --speed-threads --unseen-n 40 --out unseen.json

--repair (issue 30): the unseen set also scored after the generator's validity step (overlaps at 0.5x covalent radii
or 0.5 A pushed apart, cell kept; still-invalid samples redrawn, up to 2 rounds), with its counts, and the 20-atom
speed also measured with that step, in the same run:

    python benchmarks/diffusion_csp.py --n 0 --own-n 0 --speed-threads 1 --unseen-n 10 --repair --out r.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.data.build_diffusion_set import CDVAE_DIR, read_cdvae, read_prototypes  # noqa: E402
from models.diffusion import DEFAULT_CHECKPOINT, CrystalDiffusion, sample_batch  # noqa: E402
from models.diffusion.baseline import random_pyxtal_structures  # noqa: E402
from models.diffusion.postprocess import ensure_valid, symmetrize  # noqa: E402
from models.diffusion.sampling import DEFAULT_STEP_LR  # noqa: E402

PUBLISHED = {
    "perov_5": {"DiffCSP": (52.02, 0.0760), "CDVAE": (45.31, 0.1138)},
    "carbon_24": {"DiffCSP": (17.54, 0.2759), "CDVAE": (17.09, 0.2969)},
}


def structure_ok(s: Structure) -> bool:
    """DiffCSP structural validity: every interatomic distance > 0.5 A and volume > 0.1 A^3."""
    if not np.all(np.isfinite(s.lattice.matrix)) or s.volume < 0.1:
        return False
    if len(s) == 1:
        return min(s.lattice.abc) > 0.5
    dm = s.distance_matrix + np.eye(len(s)) * 10.0
    return bool(dm.min() > 0.5)


LOOSE = {"stol": 0.5, "angle_tol": 10, "ltol": 0.3}  # the DiffCSP / CDVAE literature's tolerances
STRICT = {"stol": 0.3, "angle_tol": 5, "ltol": 0.2}  # issue 31: tight enough not to accept a wrong cell


def _rms(matcher: StructureMatcher, pred: Structure, gt: Structure) -> float | None:
    """RMS distance of a match, None when the matcher finds none (or fails)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = matcher.get_rms_dist(pred, gt)
    except Exception:
        got = None
    return None if got is None else float(got[0])


def match_stats(preds: list[Structure], targets: list[Structure]) -> dict[str, float]:
    """Match rate (%) and mean RMSE of matched pairs at the literature's tolerances, and the strict match rate;
    invalid predictions count as misses."""
    loose, strict = StructureMatcher(**LOOSE), StructureMatcher(**STRICT)
    rms = []
    n_valid = n_strict = 0
    for pred, gt in zip(preds, targets, strict=True):
        if not structure_ok(pred):
            continue
        n_valid += 1
        got = _rms(loose, pred, gt)
        if got is not None:
            rms.append(got)
            n_strict += _rms(strict, pred, gt) is not None
    total = max(len(targets), 1)
    return {
        "n": len(targets),
        "match_rate_pct": round(100.0 * len(rms) / total, 2),
        "strict_match_rate_pct": round(100.0 * n_strict / total, 2),
        "rmse": round(float(np.mean(rms)), 4) if rms else float("nan"),
        "validity_pct": round(100.0 * n_valid / total, 2),
    }


def relaxed_energy(structures: list[Structure], n: int, potential: str = "chgnet",
                   targets: list[Structure] | None = None) -> dict[str, float]:
    """Mean energy per atom (eV/atom) of the first n structures after a short relaxation with the reference potential
    (FIRE + cell filter, fmax 0.1 eV/A, <= 100 steps); invalid structures and failed relaxations are skipped. With
    targets: the share of those n that match their target after relaxation (loose and strict tolerances; invalid
    samples and failed relaxations count as misses)."""
    from tools.core.settings import get_settings
    from tools.potentials.calculators import get_potential, relax

    calc = get_potential(potential, get_settings())
    energies = []
    relaxed: list[Structure | None] = []
    for s in structures[:n]:
        if not structure_ok(s):
            relaxed.append(None)
            continue
        try:
            r = relax(s, calc, potential, fmax=0.1, max_steps=100)
        except Exception:  # noqa: BLE001 - a failed relaxation has no energy to report
            relaxed.append(None)
            continue
        if np.isfinite(r.energy):
            energies.append(r.energy / len(s))
        relaxed.append(r.structure if np.isfinite(r.energy) else None)
    out = {"relaxed_n": len(energies), "relaxed_energy_eV_per_atom": round(float(np.mean(energies)), 4)
           if energies else float("nan")}
    if targets is not None and relaxed:
        loose, strict = StructureMatcher(**LOOSE), StructureMatcher(**STRICT)
        pairs = [(r, t) for r, t in zip(relaxed, targets[: len(relaxed)], strict=True) if r is not None]
        n_loose = sum(_rms(loose, r, t) is not None for r, t in pairs)
        n_strict = sum(_rms(strict, r, t) is not None for r, t in pairs)
        raw = match_stats(structures[: len(relaxed)], targets[: len(relaxed)])
        out.update({"relaxed_of": len(relaxed),
                    "raw_match_rate_pct_first_n": raw["match_rate_pct"],
                    "raw_strict_match_rate_pct_first_n": raw["strict_match_rate_pct"],
                    "relaxed_match_rate_pct": round(100.0 * n_loose / len(relaxed), 2),
                    "relaxed_strict_match_rate_pct": round(100.0 * n_strict / len(relaxed), 2)})
    return out


def run_set(name: str, targets: list[Structure], model: CrystalDiffusion, steps: int, seed: int,
            batch: int, step_lr: float = DEFAULT_STEP_LR, baseline: bool = True, relax_n: int = 0) -> dict[str, Any]:
    """Diffusion and pyxtal samples (one per target) and their scores."""
    species = [[site.specie.symbol for site in s] for s in targets]
    t0 = time.time()
    preds: list[Structure] = []
    for start in range(0, len(species), batch):
        preds += sample_batch(model, species[start:start + batch], n_steps=steps, seed=seed + start,
                              step_lr=step_lr)
        print(f"  {name}: diffusion {len(preds)}/{len(species)} ({time.time() - t0:.0f} s)", file=sys.stderr,
              flush=True)
    t_diff = time.time() - t0
    diff_stats = {**match_stats(preds, targets), "structures_per_s": round(len(preds) / t_diff, 2)}
    sym = [symmetrize(p, 0.1) for p in preds]
    sym_stats = {**match_stats(sym, targets), "structures_per_s": diff_stats["structures_per_s"]}
    if relax_n > 0:
        diff_stats.update(relaxed_energy(preds, relax_n, targets=targets))
    out = {"diffusion": diff_stats, "diffusion_symmetrized": sym_stats, "published": PUBLISHED.get(name, {})}
    if baseline:
        t0 = time.time()
        base = [random_pyxtal_structures(sp, 1, seed=seed + i)[0] for i, sp in enumerate(species)]
        t_base = time.time() - t0
        out["pyxtal_random"] = {**match_stats(base, targets), "structures_per_s": round(len(base) / t_base, 2)}
        if relax_n > 0:
            out["pyxtal_random"].update(relaxed_energy(base, relax_n, targets=targets))
    return out


def speed_20_atoms(model: CrystalDiffusion, steps: int, batch: int, threads: list[int],
                   repair: bool = False) -> dict[str, float]:
    """Structures/s for 20-atom cells (Sr4Ti4O12) sampled in one batch at `steps`, per torch thread count, next to
    pyxtal random generation of the same cells. With repair: also the same batch followed by the validity check,
    overlap repair and redraws (models.diffusion.postprocess.ensure_valid, defaults), timed in the same run."""
    species = ["Sr"] * 4 + ["Ti"] * 4 + ["O"] * 12
    out: dict[str, float] = {}
    before = torch.get_num_threads()
    for n in threads:
        torch.set_num_threads(n)
        sample_batch(model, [species] * 2, n_steps=5, seed=0)  # warm-up
        t0 = time.perf_counter()
        sample_batch(model, [species] * batch, n_steps=steps, seed=0)
        out[f"diffusion_{n}_threads"] = round(batch / (time.perf_counter() - t0), 3)
        if repair:
            t0 = time.perf_counter()
            raw = sample_batch(model, [species] * batch, n_steps=steps, seed=0)
            rep = ensure_valid(raw, _redraw(model, species, steps, 0, DEFAULT_STEP_LR))
            out[f"diffusion_repaired_{n}_threads"] = round(batch / (time.perf_counter() - t0), 3)
            out[f"repaired_{n}_threads_redraw_samples"] = rep.n_redraw_samples
            out[f"repaired_{n}_threads_still_invalid"] = rep.n_still_invalid
    torch.set_num_threads(before)
    t0 = time.perf_counter()
    random_pyxtal_structures(species, 8, seed=0)
    out["pyxtal_random"] = round(8 / (time.perf_counter() - t0), 3)
    return out


VALIDITY_CELLS = (("SrTiO3", (1, 2, 4)), ("BaTiO3", (1, 2, 4)), ("La2Zr2O7", (1, 2)))
PROTOTYPE_TARGETS = (("TiO2", "rutile", {"A": "Ti", "X": "O"}), ("GaN", "wurtzite", {"A": "Ga", "X": "N"}))


def _spacegroup(s: Structure) -> str:
    """International symbol at symprec 0.1 ('?' when spglib fails)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        return SpacegroupAnalyzer(s, symprec=0.1).get_space_group_symbol()
    except Exception:  # noqa: BLE001 - spglib fails on degenerate cells
        return "?"


def validity_by_cell_size(model: CrystalDiffusion, n: int, steps: int, seed: int, step_lr: float,
                          relax: bool) -> dict[str, Any]:
    """Validity (share of n samples with no atoms closer than 0.5 A) per formula and number of formula units, and
    the loose/strict match rate of n samples of two small training prototypes against their templates (raw and,
    with relax, after a short CHGNet relaxation), with the space groups of the raw loose matches."""
    from pymatgen.core import Composition

    from models.crystals.prototypes import decorate
    from tools.structures.io import min_interatomic_distance

    out: dict[str, Any] = {"cells": [], "prototypes": []}
    for formula, units in VALIDITY_CELLS:
        base = [el.symbol for el, k in Composition(formula).items() for _ in range(int(k))]
        for z in units:
            t0 = time.time()
            samples = sample_batch(model, [base * z] * n, n_steps=steps, seed=seed, step_lr=step_lr)
            dmins = [min_interatomic_distance(s) if np.all(np.isfinite(s.lattice.matrix)) else 0.0
                     for s in samples]
            row = {"formula": formula, "formula_units": z, "atoms": len(base) * z, "n": n,
                   "valid": sum(structure_ok(s) for s in samples),
                   "median_min_distance_A": round(float(np.median(dmins)), 3), "seconds": round(time.time() - t0, 1)}
            out["cells"].append(row)
            print(f"  validity {formula} x{z} ({row['atoms']} atoms): {row['valid']}/{n} valid, median d_min "
                  f"{row['median_min_distance_A']} A", file=sys.stderr, flush=True)
    for formula, family, roles in PROTOTYPE_TARGETS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target = decorate(family, roles)
        species = [site.specie.symbol for site in target]
        samples = sample_batch(model, [species] * n, n_steps=steps, seed=seed, step_lr=step_lr)
        stats = match_stats(samples, [target] * n)
        loose = StructureMatcher(**LOOSE)
        groups = [_spacegroup(s) for s in samples if structure_ok(s) and _rms(loose, s, target) is not None]
        row = {"formula": formula, "prototype": family, "atoms": len(species), "target_spacegroup": _spacegroup(target),
               **stats, "loose_match_spacegroups": groups}
        if relax:
            row.update(relaxed_energy(samples, n, targets=[target] * n))
        out["prototypes"].append(row)
        print(f"  prototype {formula} {family}: loose {stats['match_rate_pct']} %, strict "
              f"{stats['strict_match_rate_pct']} % of {n}; loose matches' space groups {groups}", file=sys.stderr,
              flush=True)
    return out


def _score_samples(samples: list[Structure | None], target: Structure) -> dict[str, Any]:
    """Per-sample validity (0.5 A; 0.5x covalent radii sum) and loose/strict match of samples against one target;
    an invalid (or missing) sample counts as a miss."""
    from benchmarks.unseen_cells import covalent_radii_ratio

    loose, strict = StructureMatcher(**LOOSE), StructureMatcher(**STRICT)
    valid, valid_cov, matched, matched_strict, rms = [], [], [], [], []
    for s in samples:
        ok = s is not None and structure_ok(s)
        valid.append(ok)
        valid_cov.append(ok and covalent_radii_ratio(s) >= 0.5)
        got = _rms(loose, s, target) if ok else None
        matched.append(got is not None)
        matched_strict.append(got is not None and _rms(strict, s, target) is not None)
        if got is not None:
            rms.append(got)
    return {"n": len(samples), "valid": int(sum(valid)), "valid_covalent": int(sum(valid_cov)),
            "matched": int(sum(matched)), "matched_strict": int(sum(matched_strict)),
            "first_matched": bool(matched and matched[0]),
            "first_matched_strict": bool(matched_strict and matched_strict[0]),
            "any_matched": any(matched), "any_matched_strict": any(matched_strict),
            "best_rms": round(min(rms), 4) if rms else None}


UNSEEN_METHODS = ("diffusion", "diffusion_repaired", "pyxtal_random")
REDRAW_STRIDE = 1_000_003


def _redraw(model: CrystalDiffusion, species: list[str], steps: int, seed: int, step_lr: float
            ) -> Callable[[int, int], list[Structure]]:
    """ensure_valid's redraw: round r samples n cells again with seed + r x REDRAW_STRIDE."""
    return lambda n, r: sample_batch(model, [species] * n, n_steps=steps, seed=seed + r * REDRAW_STRIDE,
                                     step_lr=step_lr)


def summarize_unseen(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates per method over all compounds and per cell-size bucket: any-of-k and one-sample match (loose and
    strict), fraction of valid samples (0.5 A and 0.5x covalent radii), mean fraction of samples that match."""
    from benchmarks.unseen_cells import SIZE_BUCKETS

    groups = {"all": rows}
    for lo, hi in SIZE_BUCKETS:
        groups[f"{lo}-{hi}"] = [r for r in rows if r["bucket"] == f"{lo}-{hi}"]
    out: dict[str, Any] = {}
    for method in UNSEEN_METHODS:
        if not rows or method not in rows[0]:
            continue
        out[method] = {}
        for name, group in groups.items():
            scored = [r[method] for r in group]
            n_s = sum(s["n"] for s in scored)
            if not scored:
                out[method][name] = {"compounds": 0}
                continue
            out[method][name] = {
                "compounds": len(scored), "samples": n_s,
                "any_match_rate": round(float(np.mean([s["any_matched"] for s in scored])), 3),
                "one_sample_match_rate": round(float(np.mean([s["first_matched"] for s in scored])), 3),
                "any_match_rate_strict": round(float(np.mean([s["any_matched_strict"] for s in scored])), 3),
                "one_sample_match_rate_strict": round(float(np.mean([s["first_matched_strict"] for s in scored])), 3),
                "sample_match_fraction": round(sum(s["matched"] for s in scored) / max(n_s, 1), 3),
                "valid_fraction": round(sum(s["valid"] for s in scored) / max(n_s, 1), 3),
                "valid_covalent_fraction": round(sum(s["valid_covalent"] for s in scored) / max(n_s, 1), 3),
            }
    return out


def run_unseen(model: CrystalDiffusion, n: int, steps: int, seed: int, step_lr: float, n_samples: int = 20,
               partial_out: Path | None = None, repair: bool = False) -> dict[str, Any]:
    """The first n compounds of the unseen-cell set: n_samples diffusion samples (sample_batch, as the other sets)
    and n_samples pyxtal random structures of each primitive cell's content, each scored against the known cell.
    With repair: also the same raw samples after ensure_valid (overlap check at 0.5x covalent radii and 0.5 A,
    push-apart repair, up to 2 redraw rounds), scored as 'diffusion_repaired' with its counts and extra time."""
    from benchmarks.unseen_cells import load_unseen_cells, size_bucket

    cells = load_unseen_cells(n)
    rows: list[dict[str, Any]] = []
    t_start = time.time()
    for i, (entry, target) in enumerate(cells):
        species = [site.specie.symbol for site in target]
        t0 = time.time()
        samples = sample_batch(model, [species] * n_samples, n_steps=steps, seed=seed + 1009 * i, step_lr=step_lr)
        t_diff = time.time() - t0
        repaired: dict[str, Any] = {}
        if repair:
            t0 = time.time()
            rep = ensure_valid(samples, _redraw(model, species, steps, seed + 1009 * i, step_lr))
            t_rep = time.time() - t0
            repaired = {"diffusion_repaired": {
                **_score_samples(rep.structures, target), "extra_s": round(t_rep, 2),
                "n_repaired": rep.n_repaired, "n_redrawn": rep.n_redrawn, "n_redraw_samples": rep.n_redraw_samples,
                "n_still_invalid": rep.n_still_invalid}}
        t0 = time.time()
        try:
            base: list[Structure | None] = list(random_pyxtal_structures(species, n_samples, seed=seed + 1009 * i))
        except RuntimeError:  # pyxtal found no space group for this content: every baseline sample is a miss
            base = [None] * n_samples
        t_base = time.time() - t0
        row = {"id": entry["id"], "name": entry["name"], "formula": entry["formula"], "class": entry["class"],
               "atoms": len(target), "bucket": size_bucket(len(target)),
               "diffusion": {**_score_samples(samples, target), "sampling_s": round(t_diff, 1)},
               "pyxtal_random": {**_score_samples(base, target), "sampling_s": round(t_base, 1)}, **repaired}
        rows.append(row)
        d, b = row["diffusion"], row["pyxtal_random"]
        print(f"  unseen {i + 1}/{len(cells)} {entry['id']} {entry['formula']} ({len(target)} atoms): diffusion "
              f"{d['matched']}/{d['n']} match (strict {d['matched_strict']}), first {int(d['first_matched'])}, valid "
              f"{d['valid']} ({d['valid_covalent']} cov); pyxtal {b['matched']}/{b['n']} match, valid {b['valid']}; "
              f"{t_diff:.0f} s + {t_base:.0f} s (total {time.time() - t_start:.0f} s)", file=sys.stderr, flush=True)
        if repaired:
            r = repaired["diffusion_repaired"]
            print(f"    repaired: valid {r['valid']} ({r['valid_covalent']} cov), match {r['matched']}, repaired "
                  f"{r['n_repaired']}, redrawn {r['n_redrawn']} ({r['n_redraw_samples']} draws), still invalid "
                  f"{r['n_still_invalid']}, +{r['extra_s']} s", file=sys.stderr, flush=True)
        if partial_out is not None:
            partial_out.parent.mkdir(parents=True, exist_ok=True)
            partial_out.write_text(json.dumps({"partial": True, "compounds": rows}, indent=1))
    return {"n_compounds": len(rows), "samples_per_compound": n_samples, "seconds": round(time.time() - t_start, 1),
            "summary": summarize_unseen(rows), "compounds": rows}


def print_unseen(res: dict[str, Any]) -> None:
    """The unseen-cell table: one row per method and cell-size bucket."""
    k = res["samples_per_compound"]
    print(f"unseen cells: {res['n_compounds']} compounds, {k} samples each ({res['seconds']:.0f} s)")
    print(f"{'method':<20}{'atoms':<8}{'cmpds':>6}{f'any-of-{k}':>10}{'(strict)':>9}{'one-sample':>11}{'(strict)':>9}"
          f"{'sample match':>13}{'valid 0.5A':>11}{'valid 0.5cov':>13}")
    for method, groups in res["summary"].items():
        for name, g in groups.items():
            if not g["compounds"]:
                continue
            print(f"{method:<20}{name:<8}{g['compounds']:>6}{g['any_match_rate']:>10.3f}{g['any_match_rate_strict']:>9.3f}"
                  f"{g['one_sample_match_rate']:>11.3f}{g['one_sample_match_rate_strict']:>9.3f}"
                  f"{g['sample_match_fraction']:>13.3f}{g['valid_fraction']:>11.3f}{g['valid_covalent_fraction']:>13.3f}")


def cdvae_targets(name: str, n: int, seed: int) -> list[Structure]:
    """A seeded random subset of n structures of CDVAE {name}/test.csv (only those CIFs are parsed)."""
    import pandas as pd

    frame = pd.read_csv(CDVAE_DIR / name / "test.csv")
    idx = np.random.default_rng(seed).permutation(len(frame))[:n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [Structure.from_str(frame.iloc[int(i)]["cif"], fmt="cif") for i in idx]


def perov_val_targets(n: int) -> list[Structure]:
    """perov_5 val.csv cells of the project's *val* split (held out from training): the set for tuning the sampler."""
    recs = [r for r in read_cdvae("perov_5", "val") if r["split"] == "val"][:n]
    return [Structure(Lattice(r["lattice"]), r["species"], r["frac"]) for r in recs]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI: run every requested set and print a table (and write JSON with --out)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--n", type=int, default=200, help="perov_5 test structures (0 to skip)")
    parser.add_argument("--carbon-n", type=int, default=0, help="carbon_24 test structures (0 to skip)")
    parser.add_argument("--own-n", type=int, default=80, help="project held-out prototypes (0 to skip)")
    parser.add_argument("--val-n", type=int, default=0,
                        help="tuning mode: perov_5 cells of the project's val split (not trained on); 0 to skip")
    parser.add_argument("--step-lr", type=float, default=DEFAULT_STEP_LR, help="corrector step size (0: none)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--speed-threads", type=int, nargs="*", default=[1, 2],
                        help="thread counts for the 20-atom speed check (none to skip)")
    parser.add_argument("--relax-n", type=int, default=0,
                        help="relax the first N samples of each method with CHGNet and report mean eV/atom")
    parser.add_argument("--validity", action="store_true",
                        help="validity per formula and cell size, and match of training prototypes (issue 31)")
    parser.add_argument("--validity-n", type=int, default=10, help="samples per formula and cell size")
    parser.add_argument("--unseen-n", type=int, default=0,
                        help="first N compounds of benchmarks/data/unseen_cells.json (issue 30); 0 to skip")
    parser.add_argument("--unseen-samples", type=int, default=20, help="samples per unseen compound")
    parser.add_argument("--repair", action="store_true",
                        help="unseen set and 20-atom speed: also after the overlap repair and redraws (issue 30)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = CrystalDiffusion.load(args.checkpoint)
    results: dict[str, Any] = {"checkpoint_sha256": model.checkpoint_sha256, "steps": args.steps, "seed": args.seed,
                               "step_lr": args.step_lr,
                               "checkpoint_step": model.metadata.get("step"), "sets": {}}
    if args.speed_threads:
        results["speed_20_atom_cells_per_s"] = speed = speed_20_atoms(model, args.steps, 32, args.speed_threads,
                                                                     repair=args.repair)
        print("20-atom cells (Sr4Ti4O12), structures/s at", args.steps, "steps, batch 32:",
              ", ".join(f"{k} {v}" for k, v in speed.items()))
    if args.validity:
        results["validity"] = validity_by_cell_size(model, args.validity_n, args.steps, args.seed, args.step_lr,
                                                     relax=args.relax_n > 0)
    if args.unseen_n > 0:
        results["unseen_cells"] = run_unseen(model, args.unseen_n, args.steps, args.seed, args.step_lr,
                                             args.unseen_samples, partial_out=args.out, repair=args.repair)
    if args.val_n > 0:
        results["sets"]["perov_5_val_split"] = run_set("perov_5_val", perov_val_targets(args.val_n), model,
                                                       args.steps, args.seed, args.batch, args.step_lr, baseline=False)
    sets: list[tuple[str, int]] = [("perov_5", args.n), ("carbon_24", args.carbon_n)]
    for name, n in sets:
        if n <= 0:
            continue
        if not (CDVAE_DIR / name / "test.csv").exists():
            print(f"skipping {name}: {CDVAE_DIR / name / 'test.csv'} not found", file=sys.stderr)
            continue
        results["sets"][name] = run_set(name, cdvae_targets(name, n, args.seed), model, args.steps, args.seed,
                                        args.batch, args.step_lr, relax_n=args.relax_n)
    if args.own_n > 0:
        own = [r for r in read_prototypes() if r["split"] == "test"][: args.own_n]
        known = set(model.config.elements)
        own = [r for r in own if set(r["species"]) <= known]
        targets = [Structure(Lattice(r["lattice"]), r["species"], r["frac"]) for r in own]
        results["sets"]["own_prototypes_test"] = run_set("own", targets, model, args.steps, args.seed, args.batch,
                                                         args.step_lr, relax_n=args.relax_n)
    if "validity" in results:
        print(f"{'formula':<12}{'Z':>3}{'atoms':>7}{'valid':>9}{'median d_min A':>16}")
        for r in results["validity"]["cells"]:
            print(f"{r['formula']:<12}{r['formula_units']:>3}{r['atoms']:>7}{r['valid']:>5}/{r['n']:<3}"
                  f"{r['median_min_distance_A']:>16.3f}")
        for r in results["validity"]["prototypes"]:
            after = (f"; after relaxation {r['relaxed_match_rate_pct']:.0f} % "
                     f"(strict {r['relaxed_strict_match_rate_pct']:.0f} %)" if "relaxed_match_rate_pct" in r else "")
            print(f"{r['formula']} as {r['prototype']} ({r['target_spacegroup']}): match {r['match_rate_pct']:.0f} % "
                  f"(strict {r['strict_match_rate_pct']:.0f} %) of {r['n']}, valid {r['validity_pct']:.0f} %{after}; "
                  f"space groups of loose matches: {', '.join(r['loose_match_spacegroups']) or '-'}")
    if "unseen_cells" in results:
        print_unseen(results["unseen_cells"])
    print(f"{'set':<22}{'method':<22}{'n':>5}{'match %':>9}{'strict %':>9}{'RMSE':>8}{'valid %':>9}{'struct/s':>10}"
          f"{'E_relax eV/at':>15}{'relaxed match % (strict)':>26}")
    for name, res in results["sets"].items():
        for method in ("diffusion", "diffusion_symmetrized", "pyxtal_random"):
            if method not in res:
                continue
            r = res[method]
            relaxed = ""
            if "relaxed_n" in r:
                relaxed = f"{r['relaxed_energy_eV_per_atom']:>10.3f} (n={r['relaxed_n']})"
            if "relaxed_match_rate_pct" in r:
                relaxed += (f"  {r['relaxed_match_rate_pct']:.1f} ({r['relaxed_strict_match_rate_pct']:.1f}) of first "
                            f"{r['relaxed_of']}; raw {r['raw_match_rate_pct_first_n']:.1f} "
                            f"({r['raw_strict_match_rate_pct_first_n']:.1f})")
            print(f"{name:<22}{method:<22}{r['n']:>5}{r['match_rate_pct']:>9.2f}{r['strict_match_rate_pct']:>9.2f}"
                  f"{r['rmse']:>8.4f}{r['validity_pct']:>9.1f}{r['structures_per_s']:>10.2f}" + relaxed)
        for method, (rate, rmse) in res["published"].items():
            print(f"{name:<22}{method + ' (paper)':<22}{'':>5}{rate:>9.2f}{rmse:>8.4f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
