"""Build the diffusion generator's training set offline: decorated prototypes (ICSD substitution probabilities,
DLS volumes) written to a small JSON file, plus readers for the DFT-relaxed CDVAE perov_5/carbon_24 splits."""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Lattice, Species, Structure

from models.data.splits import split_of

HERE = Path(__file__).resolve().parent
PROTOTYPE_FILE = HERE / "diffusion_prototypes.json.gz"
CDVAE_DIR = HERE.parents[2] / "shared" / "data" / "cdvae"
MAX_ATOMS = 24


@dataclass
class Prototype:
    """A prototype: a space-group description with roles (site labels) and one or more parent decorations."""

    name: str
    spacegroup: str
    lattice: Callable[[], Lattice]
    roles: list[str]
    coords: list[list[float]]
    parents: list[dict[str, str]]  # role -> species string with oxidation state, e.g. {"A": "Mg2+", "X": "O2-"}


def _cubic(a: float) -> Callable[[], Lattice]:
    return lambda: Lattice.cubic(a)


def _hex(a: float, c: float) -> Callable[[], Lattice]:
    return lambda: Lattice.hexagonal(a, c)


PROTOTYPES: list[Prototype] = [
    Prototype(
        "rocksalt",
        "Fm-3m",
        _cubic(4.2),
        ["A", "X"],
        [[0, 0, 0], [0.5, 0.5, 0.5]],
        [{"A": "Mg2+", "X": "O2-"}, {"A": "Na+", "X": "Cl-"}],
    ),
    Prototype("cscl", "Pm-3m", _cubic(4.1), ["A", "X"], [[0, 0, 0], [0.5, 0.5, 0.5]], [{"A": "Cs+", "X": "Cl-"}]),
    Prototype(
        "zincblende",
        "F-43m",
        _cubic(5.4),
        ["A", "X"],
        [[0, 0, 0], [0.25, 0.25, 0.25]],
        [{"A": "Zn2+", "X": "S2-"}, {"A": "Ga3+", "X": "N3-"}],
    ),
    Prototype(
        "wurtzite",
        "P6_3mc",
        _hex(3.8, 6.2),
        ["A", "X"],
        [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.375]],
        [{"A": "Zn2+", "X": "O2-"}, {"A": "Ga3+", "X": "N3-"}],
    ),
    Prototype(
        "fluorite",
        "Fm-3m",
        _cubic(5.46),
        ["A", "X"],
        [[0, 0, 0], [0.25, 0.25, 0.25]],
        [{"A": "Ca2+", "X": "F-"}, {"A": "Ce4+", "X": "O2-"}],
    ),
    Prototype(
        "antifluorite",
        "Fm-3m",
        _cubic(4.6),
        ["X", "A"],
        [[0, 0, 0], [0.25, 0.25, 0.25]],
        [{"A": "Li+", "X": "O2-"}, {"A": "Na+", "X": "S2-"}],
    ),
    Prototype(
        "rutile",
        "P4_2/mnm",
        lambda: Lattice.tetragonal(4.59, 2.96),
        ["A", "X"],
        [[0, 0, 0], [0.305, 0.305, 0]],
        [{"A": "Ti4+", "X": "O2-"}, {"A": "Mg2+", "X": "F-"}],
    ),
    Prototype(
        "perovskite",
        "Pm-3m",
        _cubic(3.9),
        ["A", "B", "X"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]],
        [{"A": "Sr2+", "B": "Ti4+", "X": "O2-"}, {"A": "Cs+", "B": "Pb2+", "X": "I-"}],
    ),
    Prototype(
        "double_perovskite",
        "Fm-3m",
        _cubic(7.9),
        ["A", "B", "C", "X"],
        [[0.25, 0.25, 0.25], [0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0, 0]],
        [{"A": "Ba2+", "B": "Mg2+", "C": "W6+", "X": "O2-"}],
    ),
    Prototype(
        "spinel",
        "Fd-3m",
        _cubic(8.08),
        ["A", "B", "X"],
        [[0, 0, 0], [0.625, 0.625, 0.625], [0.3875, 0.3875, 0.3875]],
        [{"A": "Mg2+", "B": "Al3+", "X": "O2-"}],
    ),
    Prototype(
        "pyrochlore",
        "Fd-3m",
        _cubic(10.1),
        ["A", "B", "X", "Y"],
        [[0.125, 0.125, 0.125], [0.625, 0.625, 0.625], [0.455, 0.25, 0.25], [0.5, 0.5, 0.5]],
        [{"A": "Y3+", "B": "Ti4+", "X": "O2-", "Y": "O2-"}],
    ),
    Prototype(
        "layered_alpha_NaFeO2",
        "R-3m",
        _hex(2.82, 14.05),
        ["A", "B", "X"],
        [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.26]],
        [{"A": "Li+", "B": "Co3+", "X": "O2-"}],
    ),
    Prototype(
        "corundum", "R-3c", _hex(4.76, 13.0), ["A", "X"], [[0, 0, 0.352], [0.306, 0, 0.25]], [{"A": "Al3+", "X": "O2-"}]
    ),
    Prototype(
        "ilmenite",
        "R-3",
        _hex(5.09, 14.09),
        ["A", "B", "X"],
        [[0, 0, 0.355], [0, 0, 0.146], [0.317, 0.02, 0.245]],
        [{"A": "Fe2+", "B": "Ti4+", "X": "O2-"}],
    ),
    Prototype(
        "nias", "P6_3/mmc", _hex(3.6, 5.0), ["A", "X"], [[0, 0, 0], [1 / 3, 2 / 3, 0.25]], [{"A": "Fe2+", "X": "S2-"}]
    ),
    Prototype(
        "cdi2",
        "P-3m1",
        _hex(4.24, 6.84),
        ["A", "X"],
        [[0, 0, 0], [1 / 3, 2 / 3, 0.25]],
        [{"A": "Cd2+", "X": "I-"}, {"A": "Ti4+", "X": "S2-"}],
    ),
]

# Intermetallic prototypes (no oxidation states): decorated from element pools.
HEUSLER_X = ["Fe", "Co", "Ni", "Cu", "Ru", "Rh", "Pd", "Ir", "Pt", "Au"]
HEUSLER_Y = ["Sc", "Ti", "V", "Cr", "Mn", "Fe", "Y", "Zr", "Nb", "Hf"]
HEUSLER_Z = ["Al", "Ga", "In", "Si", "Ge", "Sn", "Sb"]
B2_X = ["Fe", "Co", "Ni", "Cu", "Pd", "Ru", "Rh", "Ag", "Au"]
B2_Y = ["Al", "Ti", "Zr", "Ga", "Zn", "Be", "Sc", "Mg", "Hf"]


def _finish(structure: Structure, predictor: Any) -> Structure | None:
    """Primitive, Niggli-reduced, DLS-volume-scaled cell; None when too big or atoms clash."""
    try:
        s = structure.get_primitive_structure().get_reduced_structure()
        if len(s) > MAX_ATOMS:
            return None
        s.remove_oxidation_states()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = predictor.get_predicted_structure(s)
    except Exception:
        return None
    dmat = s.distance_matrix + np.eye(len(s)) * 100.0
    if len(s) > 1 and dmat.min() < 1.2:
        return None
    if not np.isfinite(s.volume) or s.volume / len(s) < 4.0 or s.volume / len(s) > 80.0:
        return None
    return s


PLACEHOLDERS = ["H", "He", "Li", "Be", "B", "C"]
_BASES: dict[str, Structure] = {}


def _decorate(proto: Prototype, role_species: dict[str, str]) -> Structure:
    """The prototype decorated with one element per role (the symmetry expansion is done once per prototype)."""
    if proto.name not in _BASES:
        _BASES[proto.name] = Structure.from_spacegroup(
            proto.spacegroup, proto.lattice(), PLACEHOLDERS[: len(proto.roles)], proto.coords
        )
    base = _BASES[proto.name]
    role_of = {PLACEHOLDERS[i]: r for i, r in enumerate(proto.roles)}
    species = [role_species[role_of[site.specie.symbol]] for site in base]
    return Structure(base.lattice, species, base.frac_coords)


def _inverse_spinel(a_el: str, b_el: str, predictor: Any) -> Structure | None:
    """Inverse spinel B(AB)O4 from the normal spinel primitive cell by ordering A onto half the octahedral sites."""
    proto = next(p for p in PROTOTYPES if p.name == "spinel")
    s = _decorate(proto, {"A": "Mg", "B": "Al", "X": "O"}).get_primitive_structure()
    tet = [i for i, site in enumerate(s) if site.specie.symbol == "Mg"]
    octa = [i for i, site in enumerate(s) if site.specie.symbol == "Al"]
    for i in tet:
        s.replace(i, b_el)
    for k, i in enumerate(octa):
        s.replace(i, a_el if k < len(octa) // 2 else b_el)
    return _finish(s, predictor)


def _record(s: Structure, prototype: str, source: str) -> dict[str, Any]:
    return {
        "formula": s.composition.reduced_formula,
        "prototype": prototype,
        "source": source,
        "species": [site.specie.symbol for site in s],
        "lattice": np.round(s.lattice.matrix, 5).tolist(),
        "frac": np.round(s.frac_coords % 1.0, 5).tolist(),
        "split": split_of(s.composition.reduced_formula),
    }


def build_prototypes(per_parent: int = 150, threshold: float = 3e-4, seed: int = 0) -> list[dict[str, Any]]:
    """Decorate every prototype with the most probable charge-balanced substitutions of its parents."""
    from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionPredictor
    from pymatgen.analysis.structure_prediction.volume_predictor import DLSVolumePredictor

    predictor = DLSVolumePredictor()
    predictors: dict[float, Any] = {}
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()

    def add(s: Structure | None, name: str, source: str) -> None:
        if s is None:
            return
        key = (s.composition.reduced_formula, name)
        if key not in seen:
            seen.add(key)
            out.append(_record(s, name, source))

    for proto in PROTOTYPES:
        t0 = time.time()
        n_before = len(out)
        for parent in proto.parents:
            comp = {Species.from_str(sp): 1.0 for sp in set(parent.values())}
            # the probability is a product over species: loosen the threshold for multinary parents
            thr = threshold * (0.3 if len(comp) == 3 else 1.0)
            if thr not in predictors:
                predictors[thr] = SubstitutionPredictor(threshold=thr)
            try:
                preds = predictors[thr].composition_prediction(comp)
            except ValueError as exc:  # a parent species outside the ICSD probability table
                print(f"{proto.name}: skipped parent {parent}: {exc}", file=sys.stderr)
                continue
            preds.sort(key=lambda p: -p["probability"])
            for pred in preds[:per_parent]:
                new_of_old = {str(old): new.symbol for new, old in pred["substitutions"].items()}
                roles = {r: new_of_old[parent[r]] for r in proto.roles}
                add(_finish(_decorate(proto, roles), predictor), proto.name, "substitution")
                if proto.name == "spinel":
                    add(_inverse_spinel(roles["A"], roles["B"], predictor), "inverse_spinel", "substitution")
        print(f"{proto.name}: {len(out) - n_before} structures ({time.time() - t0:.0f} s)", file=sys.stderr)

    full_heusler = Prototype(
        "heusler", "Fm-3m", _cubic(5.8), ["X", "Y", "Z"], [[0.25, 0.25, 0.25], [0, 0, 0], [0.5, 0.5, 0.5]], []
    )
    half_heusler = Prototype(
        "half_heusler", "F-43m", _cubic(5.9), ["X", "Y", "Z"], [[0.25, 0.25, 0.25], [0, 0, 0], [0.5, 0.5, 0.5]], []
    )
    combos = [c for c in itertools.product(HEUSLER_X, HEUSLER_Y, HEUSLER_Z) if c[0] != c[1]]
    for proto in (full_heusler, half_heusler):
        for x, y, z in rng.sample(combos, 220):
            add(_finish(_decorate(proto, {"X": x, "Y": y, "Z": z}), predictor), proto.name, "pool")
    b2 = Prototype("b2", "Pm-3m", _cubic(3.0), ["X", "Y"], [[0, 0, 0], [0.5, 0.5, 0.5]], [])
    for x, y in itertools.product(B2_X, B2_Y):
        add(_finish(_decorate(b2, {"X": x, "Y": y}), predictor), "b2", "pool")
    print(f"intermetallics done: {len(out)} total", file=sys.stderr)
    return out


def write_prototypes(records: list[dict[str, Any]], path: Path = PROTOTYPE_FILE) -> None:
    """Write the prototype records as gzipped JSON (deterministic, a few hundred kB)."""
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(records, fh, separators=(",", ":"))


def read_prototypes(path: Path = PROTOTYPE_FILE) -> list[dict[str, Any]]:
    """The prototype records written by `write_prototypes`."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def read_cdvae(
    name: str, split: str, limit: int | None = None, cdvae_dir: Path = CDVAE_DIR
) -> Iterator[dict[str, Any]]:
    """Records of shared/data/cdvae/{name}/{split}.csv (read in place, never copied); FileNotFoundError if absent."""
    import pandas as pd

    path = cdvae_dir / name / f"{split}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: get the CDVAE benchmark splits (perov_5, carbon_24) into it")
    frame = pd.read_csv(path)
    if limit is not None:
        frame = frame.iloc[:limit]
    for row in frame.itertuples():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = Structure.from_str(row.cif, fmt="cif")
        rec = _record(s, name, f"cdvae/{name}/{split}")
        rec["material_id"] = str(row.material_id)
        # carbon_24 has one composition: split it by material id instead
        rec["split"] = split_of(str(row.material_id) if name == "carbon_24" else rec["formula"])
        yield rec


def training_records(include_cdvae: bool = True, include_relaxed: bool = True) -> list[dict[str, Any]]:
    """All training-set records: prototypes, the CHGNet-relaxed AFLOW-prototype cells of build_prototype_set
    (diffusion_relaxed.json.gz) and (when present) the CDVAE perov_5 and carbon_24 val splits."""
    records = read_prototypes()
    if include_relaxed:
        from models.data.build_prototype_set import relaxed_records

        records.extend(relaxed_records())
    if include_cdvae:
        for name in ("perov_5", "carbon_24"):
            try:
                records.extend(read_cdvae(name, "val"))
            except FileNotFoundError as exc:
                print(f"warning: {exc}", file=sys.stderr)
    return records


def main(argv: list[str] | None = None) -> None:
    """CLI: regenerate models/data/diffusion_prototypes.json.gz and print counts per prototype and split."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-parent", type=int, default=120)
    parser.add_argument("--out", type=Path, default=PROTOTYPE_FILE)
    args = parser.parse_args(argv)
    records = build_prototypes(per_parent=args.per_parent)
    write_prototypes(records, args.out)
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec["prototype"]] = counts.get(rec["prototype"], 0) + 1
        counts["split:" + rec["split"]] = counts.get("split:" + rec["split"], 0) + 1
    print(json.dumps({"total": len(records), **counts}, indent=1))


if __name__ == "__main__":
    main()
