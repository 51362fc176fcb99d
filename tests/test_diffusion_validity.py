"""Sample validity of the diffusion generator (issue 30): the covalent-radius overlap check, the push-apart repair,
redraws of what cannot be repaired, and their counts in generate_structures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from models.diffusion import CrystalDiffusion, ensure_valid, is_valid_sample, repair_overlaps
from models.diffusion.postprocess import covalent_radii, overlap_ratio
from tests.conftest import perovskite, rocksalt
from tests.test_diffusion import one_thread, tiny_checkpoint  # noqa: F401  (fixtures: one torch thread, tiny model)


def brute_force_ratio(s: Structure) -> float:
    """min d_ij / (r_i + r_j) over all pairs and images within two cells (independent of the neighbour list)."""
    radii = covalent_radii(s)
    best = np.inf
    shifts = np.array([[a, b, c] for a in range(-2, 3) for b in range(-2, 3) for c in range(-2, 3)])
    for i in range(len(s)):
        for j in range(len(s)):
            vec = s.frac_coords[j] - s.frac_coords[i] + shifts
            d = np.linalg.norm(vec @ s.lattice.matrix, axis=1)
            if i == j:
                d = d[np.any(shifts != 0, axis=1)]
            best = min(best, float(d.min() / (radii[i] + radii[j])))
    return best


def overlapping_cell() -> Structure:
    """Rocksalt-like MgO with a Mg and an O 0.2 A apart, and two O atoms nearly on top of each other across the
    periodic boundary (only the image search sees that pair)."""
    return Structure(Lattice.orthorhombic(4.2, 4.2, 4.4), ["Mg", "O", "Mg", "O", "O", "Mg"],
                     [[0, 0, 0], [0.05, 0, 0], [0.5, 0.5, 0], [0.5, 0.5, 0.99], [0.0, 0.5, 0.01], [0.5, 0.0, 0.5]])


def test_check_matches_brute_force_with_periodic_images() -> None:
    s = overlapping_cell()
    assert overlap_ratio(s, 1.0, 0.0) == pytest.approx(brute_force_ratio(s), rel=1e-9)
    assert not is_valid_sample(s)
    ok = rocksalt()
    assert is_valid_sample(ok) and is_valid_sample(perovskite())
    assert min(1.5, brute_force_ratio(ok) / 0.5) == pytest.approx(overlap_ratio(ok), rel=1e-9)


def test_overlapping_structure_is_repaired_keeping_cell_and_composition() -> None:
    s = overlapping_cell()
    res = repair_overlaps(s)
    assert res.valid and res.repaired and 0 < res.steps <= 60
    fixed = res.structure
    assert is_valid_sample(fixed) and brute_force_ratio(fixed) >= 0.5
    assert np.allclose(fixed.lattice.matrix, s.lattice.matrix) and fixed.composition == s.composition
    assert res.max_displacement_A < 1.5
    # coincident atoms (distance 0) get pushed apart too
    same = Structure(Lattice.cubic(4.0), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    assert repair_overlaps(same).valid


def test_repair_leaves_valid_structures_untouched() -> None:
    for s in (rocksalt(), perovskite()):
        res = repair_overlaps(s)
        assert res.valid and not res.repaired and res.structure is s and res.max_displacement_A == 0.0
    # in a cell with one overlapping pair, only the two atoms of that pair move
    s = Structure(Lattice.cubic(8.0), ["Si"] * 4, [[0, 0, 0], [0.02, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.75]])
    fixed = repair_overlaps(s).structure
    moved = np.linalg.norm(fixed.cart_coords - s.cart_coords, axis=1)
    assert moved[0] > 0 and moved[1] > 0 and np.all(moved[2:] == 0)


def test_unrepairable_samples_are_redrawn_and_counted() -> None:
    tiny = Structure(Lattice.cubic(0.6), ["Si"], [[0, 0, 0]])  # overlaps its own image: cannot be repaired
    calls: list[tuple[int, int]] = []

    def redraw(n: int, round_: int) -> list[Structure]:
        calls.append((n, round_))
        return [tiny] * n if round_ == 1 else [Structure(Lattice.cubic(3.0), ["Si"], [[0, 0, 0]])] * n

    rep = ensure_valid([rocksalt(), overlapping_cell(), tiny, tiny], redraw, max_redraws=3)
    assert rep.status == ["valid", "repaired", "redrawn", "redrawn"]
    assert (rep.n_repaired, rep.n_redrawn, rep.n_redraw_samples, rep.redraw_rounds, rep.n_still_invalid) == (
        1, 2, 4, 2, 0)
    assert calls == [(2, 1), (2, 2)] and rep.redraws == [0, 0, 2, 2]
    rep = ensure_valid([tiny], lambda n, r: [tiny] * n, max_redraws=2)
    assert rep.status == ["invalid"] and rep.n_still_invalid == 1 and rep.n_redraw_samples == 2


@pytest.mark.usefixtures("tiny_checkpoint")
def test_generate_structures_reports_counts_and_returns_only_valid(workspace: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import models.diffusion.sampling as sampling
    from tools.core.registry import ToolContext, get_tool

    real = sampling.sample_batch

    def spoiled(model: CrystalDiffusion, species_lists: list[list[str]], **kw: object) -> list[Structure]:
        """The first draw spoiled: sample 0 has two atoms 0.1 A apart (repairable), sample 1 a 0.4 A cell
        (unrepairable: redrawn)."""
        out = real(model, species_lists, **kw)
        if kw.get("seed") == 3:
            s0 = out[0].copy()
            s0.translate_sites([1], s0.cart_coords[0] - s0.cart_coords[1] + [0.1, 0, 0], frac_coords=False)
            out[0] = s0
            out[1] = Structure(Lattice.cubic(0.4), out[1].species, out[1].frac_coords)
        return out

    monkeypatch.setattr(sampling, "sample_batch", spoiled)
    ctx = ToolContext()
    out = get_tool("generate_structures").run(
        {"formula": "SrTiO3", "formula_units": 2, "n_samples": 4, "n_steps": 5, "seed": 3, "max_redraws": 2}, ctx)
    assert out.samples[0].status == "repaired" and out.samples[0].max_displacement_A > 0
    assert out.samples[1].status == "redrawn" and out.samples[1].redraws >= 1
    assert out.n_repaired >= 1 and out.n_redrawn >= 1 and out.redraw_rounds >= 1
    assert out.n_valid + out.n_still_invalid == 4 and out.n_redraw_samples >= out.n_redrawn
    assert (out.note is not None) == (out.n_still_invalid > 0)
    for sample in out.samples:
        if sample.valid:
            record = ctx.store.get(sample.structure.id)
            assert is_valid_sample(record.structure) and brute_force_ratio(record.structure) >= 0.5
            assert record.provenance["parameters"]["validity"]["status"] == sample.status
        else:
            assert sample.status == "invalid" and sample.problem
    assert sum(s.status == "repaired" for s in out.samples) <= out.n_repaired
    no_fix = get_tool("generate_structures").run(
        {"formula": "SrTiO3", "formula_units": 2, "n_samples": 4, "n_steps": 5, "seed": 3,
         "min_distance_fraction": 0.8, "max_redraws": 0, "store": False}, ctx)
    assert no_fix.n_redraw_samples == 0 and no_fix.redraw_rounds == 0
    assert not no_fix.samples[1].valid and no_fix.samples[1].status == "invalid" and no_fix.note


def test_generate_structures_validity_inputs_are_bounded(workspace: Path) -> None:
    from tools.core.errors import ToolInputError
    from tools.core.registry import get_tool

    spec = get_tool("generate_structures")
    for bad in ({"min_distance_fraction": 1.5}, {"min_distance_fraction": -0.1}, {"max_redraws": 9}):
        with pytest.raises(ToolInputError):
            spec.run({"formula": "NaCl", "method": "pyxtal", "n_samples": 1, **bad})
