"""The unseen-cell set (issue 30): every entry builds, has a sane density and no clashing atoms, and no reduced
formula is in the diffusion model's training data."""

from __future__ import annotations

from collections import Counter

import pytest
import spglib
from pymatgen.core import Composition

from benchmarks.unseen_cells import covalent_radii_ratio, load_unseen_cells, size_bucket, training_formulas
from models.data.build_diffusion_set import CDVAE_DIR


@pytest.fixture(scope="module")
def cells():
    return load_unseen_cells()


def test_every_entry_builds_and_is_sane(cells):
    bad = []
    for entry, s in cells:
        problems = []
        if len(s) != entry["n_atoms"]:
            problems.append(f"{len(s)} atoms, expected {entry['n_atoms']}")
        if s.composition.reduced_formula != Composition(entry["formula"]).reduced_formula:
            problems.append(f"formula {s.composition.reduced_formula}")
        rel = s.density / entry["density_g_cm3"] - 1
        if abs(rel) > 0.15:
            problems.append(f"density {s.density:.3f} vs {entry['density_g_cm3']} ({rel:+.1%})")
        ratio = covalent_radii_ratio(s)
        if ratio < 0.7:
            problems.append(f"closest pair at {ratio:.2f} x covalent radii sum")
        cell = (s.lattice.matrix, s.frac_coords, [site.specie.Z for site in s])
        data = spglib.get_symmetry_dataset(cell, symprec=0.01)  # pymatgen's analyzer fails on hexagonal cells here
        sg = data["number"] if isinstance(data, dict) else data.number
        if sg != entry["spacegroup"]:
            problems.append(f"space group {sg}, typed {entry['spacegroup']}")
        if not entry.get("citation"):
            problems.append("no citation")
        if problems:
            bad.append(f"{entry['id']} {entry['name']}: " + "; ".join(problems))
    assert not bad, "\n".join(bad)


def test_set_spans_classes_and_sizes(cells):
    entries = [e for e, _ in cells]
    assert len(entries) >= 40
    assert len({e["id"] for e in entries}) == len(entries)
    classes = Counter(e["class"] for e in entries)
    for needed in ("oxide", "halide", "chalcogenide", "nitride", "intermetallic", "element"):
        assert classes[needed] >= 3, classes
    sizes = Counter(size_bucket(len(s)) for _, s in cells)
    assert set(sizes) == {"2-8", "9-20", "21-40"}, sizes
    assert sizes["21-40"] >= 5


def test_elements_are_in_the_model_vocabulary(cells):
    import torch

    from models.diffusion import DEFAULT_CHECKPOINT

    config = torch.load(DEFAULT_CHECKPOINT, map_location="cpu", weights_only=False)["config"]
    known = set(config["elements"])
    outside = {el.symbol for _, s in cells for el in s.composition} - known
    assert not outside


def test_no_formula_is_in_the_training_set(cells):
    if not (CDVAE_DIR / "perov_5" / "val.csv").exists():
        pytest.skip(f"{CDVAE_DIR} not found: only the prototype formulas could be checked")
    seen = training_formulas()
    assert "C" in seen and "TiO2" in seen  # carbon_24 and the rutile prototypes are in it
    clash = sorted({s.composition.reduced_formula for _, s in cells} & seen)
    assert not clash
