"""The unseen-cell evaluation set of the diffusion generator (issue 30): hand-typed known compounds whose reduced
formulas are not in the generator's training set.

`load_unseen_cells()` builds each entry of benchmarks/data/unseen_cells.json (space group, lattice parameters,
Wyckoff sites, citation) into its primitive cell; `training_formulas()` returns the reduced formulas of the shipped
model's training data (decorated prototypes of models/data/diffusion_prototypes.json.gz plus the CDVAE perov_5 and
carbon_24 val.csv cells, read from ../shared/data), so the set can be checked against it.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Composition, Lattice, Structure

ROOT = Path(__file__).resolve().parents[1]
UNSEEN_FILE = ROOT / "benchmarks" / "data" / "unseen_cells.json"
SIZE_BUCKETS = ((2, 8), (9, 20), (21, 40))


def training_formulas(splits: Iterable[str] = ("train", "val", "test"), include_cdvae: bool = True) -> set[str]:
    """Reduced formulas of the diffusion training data (models/data/build_diffusion_set): the decorated prototypes,
    the CHGNet-relaxed cells of models/data/diffusion_relaxed.json.gz and the CDVAE perov_5 / carbon_24 val.csv
    cells, restricted to the given splits of the 90/5/5 split (all three by default: the strict check, since val/test
    cells steer tuning too). The CDVAE files are read by their formula
    column only (fast); missing files are skipped with a warning."""
    from models.data.build_diffusion_set import CDVAE_DIR, read_prototypes, split_of
    from models.data.build_prototype_set import relaxed_records

    wanted = set(splits)
    out = {r["formula"] for r in [*read_prototypes(), *relaxed_records()] if r["split"] in wanted}
    if include_cdvae:
        import pandas as pd

        for name in ("perov_5", "carbon_24"):
            path = CDVAE_DIR / name / "val.csv"
            if not path.exists():
                print(f"warning: {path} not found; its formulas are not in the set", file=sys.stderr)
                continue
            frame = pd.read_csv(path, usecols=["material_id", "formula"] if name == "perov_5" else ["material_id"])
            formulas = frame["formula"] if name == "perov_5" else ["C"] * len(frame)  # carbon_24: carbon only
            for mid, formula in zip(frame["material_id"], formulas, strict=True):
                reduced = Composition(formula).reduced_formula
                # same split rule as build_diffusion_set.read_cdvae: carbon by material id, the rest by formula
                if split_of(str(mid) if name == "carbon_24" else reduced) in wanted:
                    out.add(reduced)
    return out


def _snap(coords: list[float]) -> list[float]:
    """Typed fractions (0.33333, 0.66667, 0.125) snapped to the exact multiple of 1/24 within 1e-4: a rounded 1/3
    would otherwise be expanded by the symmetry operations into near-duplicate atoms."""
    c = np.asarray(coords, dtype=float)
    k = np.round(c * 24.0)
    return np.where(np.abs(c - k / 24.0) < 1e-4, k / 24.0, c).tolist()


def build_entry(entry: dict[str, Any]) -> Structure:
    """The primitive cell of one entry (Structure.from_spacegroup on the typed sites, then the primitive cell)."""
    lat = entry["lattice"]
    lattice = Lattice.from_parameters(lat["a"], lat["b"], lat["c"], lat["alpha"], lat["beta"], lat["gamma"])
    sites = entry["sites"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conventional = Structure.from_spacegroup(
            entry.get("setting", entry["spacegroup"]), lattice, [s["species"] for s in sites],
            [_snap(s["coords"]) for s in sites],
        )
        return conventional.get_primitive_structure()


def read_entries(path: Path = UNSEEN_FILE) -> list[dict[str, Any]]:
    """The raw entries of unseen_cells.json, in file order (classes interleaved, so any prefix spans them)."""
    return json.loads(path.read_text())["entries"]


def load_unseen_cells(n: int | None = None, path: Path = UNSEEN_FILE) -> list[tuple[dict[str, Any], Structure]]:
    """(entry, primitive structure) for the first n entries (all when n is None)."""
    entries = read_entries(path)
    if n is not None:
        entries = entries[:n]
    return [(e, build_entry(e)) for e in entries]


def covalent_radii_ratio(s: Structure) -> float:
    """The smallest interatomic distance divided by the sum of the two atoms' covalent radii (Cordero et al.,
    pymatgen's CovalentRadius), over all pairs with periodic images; inf for one atom in a large cell."""
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius

    if not np.all(np.isfinite(s.lattice.matrix)) or s.volume < 1e-6:
        return 0.0
    radii = np.array([CovalentRadius.radius.get(site.specie.symbol, 1.5) for site in s])
    dm = s.distance_matrix
    if len(s) == 1:
        return float(min(s.lattice.abc) / (2 * radii[0]))
    # self-images: the shortest lattice vector
    np.fill_diagonal(dm, min(s.lattice.abc))
    return float((dm / (radii[:, None] + radii[None, :])).min())


def size_bucket(n_atoms: int) -> str:
    """'2-8', '9-20' or '21-40' (the cell-size buckets of the report)."""
    for lo, hi in SIZE_BUCKETS:
        if lo <= n_atoms <= hi:
            return f"{lo}-{hi}"
    return f">{SIZE_BUCKETS[-1][1]}" if n_atoms > SIZE_BUCKETS[-1][1] else f"<{SIZE_BUCKETS[0][0]}"
