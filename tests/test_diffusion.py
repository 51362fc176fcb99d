"""Tests of the crystal diffusion generator: denoiser symmetries, training signal, seeded sampling, checkpoint I/O
and the generate_structures tool."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from models.diffusion import DEFAULT_CHECKPOINT, CrystalDiffusion, DiffusionConfig, sample_batch, sample_structures
from models.diffusion.data import collate, record_to_item, structure_to_record
from models.diffusion.model import full_graph, wrapped_normal_score
from tests.conftest import perovskite, rocksalt
from tools.core.settings import get_settings

ELEMENTS = ["Sr", "Ti", "O", "Mg", "Na", "Cl", "C"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run far faster on one thread (two threads on a busy 2-core box spin-wait ~100x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(seed: int = 0) -> CrystalDiffusion:
    torch.manual_seed(seed)
    return CrystalDiffusion(DiffusionConfig(hidden=32, n_layers=2, n_freqs=4, time_dim=16, timesteps=100,
                                            elements=ELEMENTS)).eval()


def random_cell(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.tensor([8, 22, 38, 8, 12, 8, 11][:n])
    return z, torch.rand((n, 3), generator=gen), (torch.eye(3) * 2 + 0.3 * torch.randn((3, 3), generator=gen))[None]


def run(model: CrystalDiffusion, z: torch.Tensor, frac: torch.Tensor, lat: torch.Tensor, t: int = 37
        ) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model(z, frac, lat, torch.tensor([t]), torch.tensor([len(z)]))


def test_wrapped_normal_score_matches_finite_difference_and_is_periodic() -> None:
    sigma = torch.tensor(0.3, dtype=torch.float64)
    x = torch.linspace(-0.45, 0.45, 7, dtype=torch.float64)
    k = torch.arange(-5, 6, dtype=torch.float64)

    def logp(v: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.exp(-((v.unsqueeze(-1) + k) ** 2) / (2 * sigma**2)).sum(-1))

    h = 1e-6
    fd = (logp(x + h) - logp(x - h)) / (2 * h)
    assert torch.allclose(wrapped_normal_score(x, sigma), fd, atol=1e-5)
    assert torch.allclose(wrapped_normal_score(x + 1.0, sigma), wrapped_normal_score(x, sigma), atol=1e-9)


def test_denoiser_permutation_equivariance() -> None:
    model = tiny_model()
    z, frac, lat = random_cell(6, 1)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    eps_a, score_a = run(model, z, frac, lat)
    eps_b, score_b = run(model, z[perm], frac[perm], lat)
    assert torch.allclose(eps_a, eps_b, atol=1e-5)
    assert torch.allclose(score_a[perm], score_b, atol=1e-5)
    assert not torch.allclose(score_a, score_b, atol=1e-3)  # the permutation does move the per-atom outputs


def test_denoiser_invariant_to_periodic_translation() -> None:
    model = tiny_model()
    z, frac, lat = random_cell(5, 2)
    shifted = torch.remainder(frac + torch.tensor([0.37, -0.61, 0.93]), 1.0)
    eps_a, score_a = run(model, z, frac, lat)
    eps_b, score_b = run(model, z, shifted, lat)
    assert torch.allclose(eps_a, eps_b, atol=1e-4)
    assert torch.allclose(score_a, score_b, atol=1e-4)


def test_denoiser_rotation_equivariance() -> None:
    model = tiny_model()
    z, frac, lat = random_cell(5, 3)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(4)))
    eps_a, score_a = run(model, z, frac, lat)
    eps_b, score_b = run(model, z, frac, lat @ q.T)  # rows are lattice vectors: rotate each row
    assert torch.allclose(eps_a @ q.T, eps_b, atol=1e-4)
    assert torch.allclose(score_a, score_b, atol=1e-4)
    # with a different lattice shape the outputs do change (the test is not vacuous)
    eps_c, _ = run(model, z, frac, lat * torch.tensor([1.0, 1.3, 0.8]))
    assert not torch.allclose(eps_a, eps_c, atol=1e-3)


def test_full_graph_connects_each_cell_only() -> None:
    src, dst, batch = full_graph(torch.tensor([2, 3]))
    assert len(src) == 4 + 9
    assert torch.equal(batch[src], batch[dst])
    assert batch.tolist() == [0, 0, 1, 1, 1]


def training_batch() -> dict[str, torch.Tensor]:
    cells = [rocksalt(), perovskite(), rocksalt(5.6, "Na", "Cl"), perovskite(4.0, "Sr", "Ti")]
    return collate([record_to_item(structure_to_record(s)) for s in cells])


def test_loss_decreases_on_tiny_overfit() -> None:
    torch.manual_seed(0)
    model = CrystalDiffusion(DiffusionConfig(hidden=48, n_layers=2, n_freqs=4, time_dim=16, timesteps=100,
                                             elements=ELEMENTS))
    batch = training_batch()

    def fixed_loss() -> float:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(99)
            return float(np.mean([float(model.loss(batch, generator=gen)["loss"]) for _ in range(8)]))

    before = fixed_loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(150):
        loss = model.loss(batch, generator=gen)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_loss()
    assert math.isfinite(after)
    assert after < 0.75 * before, (before, after)


def test_sampler_is_seeded_and_keeps_composition() -> None:
    model = tiny_model()
    species = ["Sr", "Ti", "O", "O", "O"]
    a = sample_structures(model, species, n_samples=3, n_steps=20, seed=5)
    b = sample_structures(model, species, n_samples=3, n_steps=20, seed=5)
    c = sample_structures(model, species, n_samples=3, n_steps=20, seed=6)
    assert len(a) == 3
    for s, t in zip(a, b, strict=True):
        assert np.array_equal(s.frac_coords, t.frac_coords)
        assert np.array_equal(s.lattice.matrix, t.lattice.matrix)
        assert s.composition.reduced_formula == "SrTiO3" and len(s) == 5
    assert not np.allclose(a[0].frac_coords, c[0].frac_coords)
    mixed = sample_batch(model, [["Na", "Cl"], ["C"] * 4], n_steps=10, seed=0)
    assert [s.composition.formula for s in mixed] == ["Na1 Cl1", "C4"]


def test_unsupported_element_is_named() -> None:
    with pytest.raises(ValueError, match="'U'"):
        sample_structures(tiny_model(), ["U", "O", "O"], n_samples=1, n_steps=5, seed=0)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = tiny_model(seed=3)
    path = tmp_path / "d.pt"
    model.save(path, metrics={"val_loss": 1.5}, metadata={"note": "test"})
    loaded = CrystalDiffusion.load(path)
    assert loaded.config == model.config
    assert loaded.metadata["metrics"]["val_loss"] == 1.5 and loaded.metadata["note"] == "test"
    assert loaded.checkpoint_sha256 and len(loaded.checkpoint_sha256) == 64
    z, frac, lat = random_cell(5, 7)
    for x, y in zip(run(model, z, frac, lat), run(loaded, z, frac, lat), strict=True):
        assert torch.equal(x, y)
    s1 = sample_structures(model, ["Mg", "O"], 2, n_steps=10, seed=1)
    s2 = sample_structures(loaded, ["Mg", "O"], 2, n_steps=10, seed=1)
    assert np.array_equal(s1[1].frac_coords, s2[1].frac_coords)


# ---- the registry tool ------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "tiny_diffusion.pt"
    tiny_model().save(path)
    monkeypatch.setenv("MATSEARCH_DIFFUSION_CHECKPOINT", str(path))
    get_settings.cache_clear()
    return path


def test_tool_generates_and_stores(workspace: Path, tiny_checkpoint: Path) -> None:
    from tools.core.registry import ToolContext, get_tool

    seen: list[tuple[float, float | None]] = []
    ctx = ToolContext(progress_fn=lambda done, total, msg: seen.append((done, total)))
    out = get_tool("generate_structures").run({"formula": "NaCl", "n_samples": 3, "n_steps": 10, "seed": 2}, ctx)
    assert out.formula == "NaCl" and out.formula_units == 2 and out.atoms_per_cell == 4
    assert len(out.samples) == 3 and out.n_valid == sum(s.valid for s in out.samples)
    assert seen and seen[-1][0] == seen[-1][1]
    for sample in out.samples:
        if sample.valid:
            record = ctx.store.get(sample.structure.id)
            assert record is not None
            assert record.provenance["tool"] == "generate_structures"
            assert record.provenance["parameters"]["seed"] == 2
            assert record.provenance["parameters"]["checkpoint_sha256"] == out.checkpoint_sha256
            assert sample.structure.reduced_formula == "NaCl" and sample.structure.n_sites == 4
        else:
            assert sample.problem


def test_tool_rejects_bad_formulas(workspace: Path, tiny_checkpoint: Path) -> None:
    from tools.core.errors import ToolInputError
    from tools.core.registry import get_tool

    spec = get_tool("generate_structures")
    with pytest.raises(ToolInputError, match="Xx|Xq|cannot read"):
        spec.run({"formula": "Xq2O3"})
    with pytest.raises(ToolInputError, match="'U'"):
        spec.run({"formula": "UO2", "n_samples": 1})
    with pytest.raises(ToolInputError, match="limit of 64"):
        spec.run({"formula": "SrTiO3", "formula_units": 13})
    with pytest.raises(ToolInputError, match="n_samples"):
        spec.run({"formula": "NaCl", "n_samples": 0})


def test_tool_pyxtal_method(workspace: Path) -> None:
    from tools.core.registry import ToolContext, get_tool

    out = get_tool("generate_structures").run(
        {"formula": "MgO", "method": "pyxtal", "n_samples": 2, "seed": 1, "store": False}, ToolContext()
    )
    assert out.n_valid == 2 and all(s.cif and "Mg" in s.cif for s in out.samples)


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.exists(), reason="trained checkpoint models/checkpoints/diffusion.pt absent")
def test_trained_checkpoint_gives_valid_structures() -> None:
    model = CrystalDiffusion.load(DEFAULT_CHECKPOINT)
    for species in (["Sr", "Ti", "O", "O", "O"], ["Zn", "Zn", "S", "S"], ["Ca", "Mg", "O", "O"]):  # in and out of set
        structures = sample_structures(model, species, n_samples=4, n_steps=50, seed=0)
        for s in structures:
            assert np.isfinite(s.volume) and 0.3 * len(s) < s.volume < 200 * len(s)
        dmins = [min_distance(s) for s in structures]
        assert sum(d > 0.5 for d in dmins) >= 2, (species, dmins)


def min_distance(structure: Structure) -> float:
    from tools.structures.io import min_interatomic_distance

    return min_interatomic_distance(structure)


def test_structure_record_round_trip() -> None:
    s = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    item = record_to_item(structure_to_record(s))
    assert item["z"].tolist() == [11, 17] and torch.allclose(item["lattice"], torch.eye(3) * 4)


def test_symmetrize_snaps_noisy_cell_and_keeps_composition() -> None:
    from models.diffusion.postprocess import symmetrize

    noisy = perovskite()
    rng = np.random.default_rng(0)
    noisy = Structure(noisy.lattice, noisy.species, noisy.frac_coords + rng.normal(0, 0.004, (5, 3)))
    assert noisy.get_space_group_info(symprec=1e-4)[1] != 221
    snapped = symmetrize(noisy, 0.1)
    assert snapped.get_space_group_info(symprec=1e-4)[1] == 221
    assert snapped.composition == noisy.composition
