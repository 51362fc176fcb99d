"""GMM uncertainty on latent features: ranks unfamiliar environments higher, calibrates to eV/A, travels with the
checkpoint, costs little next to a force call; the ensemble baseline and the two tools."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from models.potentials.equivariant import EquivariantPotential, PotentialConfig, compute_energy_forces_stress
from models.potentials.training import TrainConfig, train_potential
from models.potentials.uncertainty import (
    EnsembleUncertainty,
    GMMUncertainty,
    UncertainPotentialCalculator,
    estimate_gmm,
    fit_gmm_uncertainty,
    train_ensemble,
)
from tools.core.errors import ToolInputError
from tools.core.registry import ToolContext, get_tool
from tools.md.protocols import DynamicsSettings, run_dynamics

CONFIG = dict(kind="allegro", species=["Cu", "Al"], cutoff=4.0, l_max=1, num_layers=2, num_features=8, num_basis=6,
              latent_dim=16, radial_mlp_width=16)
TRAIN_CFG = TrainConfig(epochs=12, batch_size=4, lr=1e-2, ema_decay=0.9)


def _labelled(frames: list[Atoms]) -> list[Atoms]:
    """Attach EMT energies/forces/stress as single-point labels."""
    out = []
    for f in frames:
        g = Atoms(f.numbers, positions=f.positions, cell=f.cell, pbc=True)
        g.calc = EMT()
        labels = dict(energy=g.get_potential_energy(), forces=g.get_forces(), stress=g.get_stress())
        g.calc = SinglePointCalculator(g, **labels)
        out.append(g)
    return out


def md_frames(temperature: float, n: int, seed: int) -> list[Atoms]:
    """n EMT-labelled frames of 16-atom fcc Cu from Langevin MD."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    res = run_dynamics(atoms, EMT(), DynamicsSettings("nvt_langevin", temperature, 2.0, friction_per_fs=0.02,
                                                      seed=seed), steps=10 * n, log_every=10)
    return _labelled(res.frames[1:])


def distorted(n: int) -> list[Atoms]:
    """Strongly rattled Cu cells (far from anything in training)."""
    out = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
        a.rattle(0.25, seed=100 + k)
        out.append(a)
    return _labelled(out)


def with_aluminium(n: int) -> list[Atoms]:
    """Training-like Cu cells with two Al atoms: an element the model's species list has but its data never had."""
    out = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
        a.rattle(0.03, seed=200 + k)
        a.numbers[[0, 5]] = 13
        out.append(a)
    return _labelled(out)


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny cells gain nothing from threads


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, single_thread) -> dict:
    """A tiny potential trained on 300 K Cu, its GMM fitted on train and calibrated on 300 K + 900 K frames."""
    train, val = md_frames(300, 24, 0), md_frames(300, 4, 1) + md_frames(900, 4, 2)
    path = tmp_path_factory.mktemp("unc") / "cu.pt"
    torch.manual_seed(0)
    train_potential(train, val, PotentialConfig(**CONFIG), TRAIN_CFG, path)
    model = EquivariantPotential.load(path)
    unc = fit_gmm_uncertainty(model, train, val)
    return {"path": path, "model": model, "unc": unc, "train": train, "val": val}


def test_uncertainty_higher_for_distorted_and_unseen_element_environments(fitted) -> None:
    """Per-structure max and mean uncertainty rank training-like < strongly distorted and < unseen-element cells."""
    model, unc = fitted["model"], fitted["unc"]
    familiar = estimate_gmm(model, unc, md_frames(300, 4, 5))
    for unfamiliar in (estimate_gmm(model, unc, distorted(4)), estimate_gmm(model, unc, with_aluminium(4))):
        assert min(u.max for u in unfamiliar) > max(u.max for u in familiar)
        assert np.mean([u.mean for u in unfamiliar]) > 2 * np.mean([u.mean for u in familiar])
        assert max(float(unc.extrapolating(u.nll).mean()) for u in unfamiliar) > 0.5
    al = estimate_gmm(model, unc, with_aluminium(1))[0]
    assert al.nll[[0, 5]].min() > np.median(al.nll)  # the Al atoms themselves are the least familiar


def test_calibration_is_monotone_and_in_force_units(fitted) -> None:
    """The isotonic map is non-decreasing, and on validation atoms it predicts errors of the right size (eV/A)."""
    unc = fitted["unc"]
    grid = np.linspace(unc.calib_x.min() - 50, unc.calib_x.max() + 500, 400)
    mapped = unc.to_force_error(grid)
    assert unc.calibrated and np.all(np.diff(mapped) >= -1e-12) and mapped[-1] > mapped[0]
    stats = unc.metadata["calibration"]
    assert stats["n_val_atoms"] == 8 * 16
    assert stats["spearman"] > 0.3  # 900 K atoms are both less familiar and less accurate
    assert stats["mae_eV_A"] < stats["mean_error_eV_A"]  # better than a constant guess of zero
    assert 0.001 < stats["mean_error_eV_A"] < 1.0


def test_uncertainty_travels_with_the_checkpoint(fitted, tmp_path: Path) -> None:
    """attach_to_checkpoint -> load gives identical values; the calculator reports them with its forces."""
    path = tmp_path / "cu.pt"
    shutil.copy(fitted["path"], path)
    fitted["unc"].attach_to_checkpoint(path)
    again = GMMUncertainty.load(path)
    model = EquivariantPotential.load(path)  # the checkpoint is still a normal model checkpoint
    frame = fitted["val"][-1]
    expected = estimate_gmm(model, fitted["unc"], [frame])[0]
    assert np.allclose(estimate_gmm(model, again, [frame])[0].per_atom, expected.per_atom)
    calc = UncertainPotentialCalculator(path)
    atoms = frame.copy()
    atoms.calc = calc
    forces = atoms.get_forces()
    assert np.allclose(calc.results["uncertainty"], expected.per_atom, rtol=1e-5, atol=1e-8)
    assert np.allclose(forces, expected.forces, atol=1e-5)
    standalone = again.save(tmp_path / "gmm.pt")
    assert np.allclose(GMMUncertainty.load(standalone).nll(frame_features(model, frame)), expected.nll)


def frame_features(model: EquivariantPotential, frame: Atoms) -> np.ndarray:
    """Latent features of one frame."""
    return model(model.collate([frame]))["features"].detach().numpy()


def test_gmm_costs_a_small_fraction_of_a_force_call(fitted) -> None:
    """Evaluating the mixture on a frame's features costs < 10% of the force call that produced them."""
    model, unc = fitted["model"], fitted["unc"]
    frame = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    batch = model.collate([frame])
    feats = compute_energy_forces_stress(model, batch, compute_stress=False)["features"].numpy()

    def best(fn, reps: int = 7) -> float:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    force = best(lambda: compute_energy_forces_stress(model, model.collate([frame]), compute_stress=False))
    gmm = best(lambda: unc.per_atom(feats))
    assert gmm < 0.1 * force


def test_ensemble_baseline_spread_grows_off_distribution(fitted, tmp_path: Path) -> None:
    """Two members trained from different seeds disagree more on distorted cells than on training-like ones."""
    cfg = TrainConfig(epochs=6, batch_size=4, lr=1e-2, ema_decay=0.9)
    paths = train_ensemble(fitted["train"][:12], fitted["val"], PotentialConfig(**CONFIG), cfg, tmp_path, 2)
    ens = EnsembleUncertainty.load(paths)
    familiar = ens.estimate(md_frames(300, 3, 6))
    off = ens.estimate(distorted(3))
    assert np.mean([u.max for u in off]) > np.mean([u.max for u in familiar])
    assert all(u.per_atom.shape == (16,) for u in off)


def test_fit_and_estimate_uncertainty_tools(fitted, workspace: Path, tmp_path: Path) -> None:
    """fit_uncertainty stores the GMM in a checkpoint; estimate_uncertainty flags the distorted trajectory frame."""
    data = workspace / "artifacts" / "data"
    data.mkdir(parents=True)
    ckpt = workspace / "tool.pt"
    shutil.copy(fitted["path"], ckpt)
    write(data / "train.extxyz", fitted["train"])
    write(data / "val.extxyz", fitted["val"])
    ctx = ToolContext()
    with pytest.raises(ToolInputError, match="fit_uncertainty"):
        get_tool("estimate_uncertainty").run({"structures": [{"text": "x"}], "potential": str(ckpt)}, ctx)
    fit = get_tool("fit_uncertainty").run({"potential": str(ckpt), "training_data": "artifact://artifacts/data/"
                                           "train.extxyz", "validation_data": str(data / "val.extxyz")}, ctx)
    assert fit.calibrated and fit.n_train_atoms == 24 * 16 and fit.calibration["n_val_atoms"] == 128
    assert fit.potential == str(ckpt.resolve()) and fit.copied_from is None  # a workspace checkpoint: fitted in place
    frames = md_frames(300, 2, 9) + distorted(1)
    write(data / "traj.extxyz", frames)
    out = get_tool("estimate_uncertainty").run({"trajectory": "artifact://artifacts/data/traj.extxyz",
                                                "potential": str(ckpt), "threshold_eV_A": 0.2}, ctx)
    assert out.units == "eV/A" and out.n_structures == 3
    assert [s.above_threshold for s in out.structures] == [False, False, True]
    assert out.structures[2].extrapolating and out.structures[2].max_eV_A > out.structures[0].max_eV_A
    assert (workspace / out.per_atom_uri.removeprefix("artifact://")).stat().st_size > 1000
    assert out.uncertainty_seconds < out.force_call_seconds
    with pytest.raises(ToolInputError, match="universal"):
        get_tool("estimate_uncertainty").run({"trajectory": "artifact://artifacts/data/traj.extxyz",
                                              "potential": "chgnet"}, ctx)
    with pytest.raises(ToolInputError, match="outside the workspace"):
        get_tool("estimate_uncertainty").run({"trajectory": "artifact://../../etc/passwd", "potential": str(ckpt)},
                                             ctx)


@pytest.fixture
def meta_copies_to_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tensor.cpu() of a meta tensor (shapes, no data) gives host zeros of its shape: the meta device stands in for
    a GPU, so code that computes on the model's device and copies results to the host runs through."""
    real = torch.Tensor.cpu

    def cpu(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return torch.zeros(self.shape, dtype=self.dtype) if self.is_meta else real(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)


def test_prediction_and_features_run_on_the_models_device(tmp_path: Path, meta_copies_to_zeros: None) -> None:
    """A model on another device (meta): predict moves each batch there and copies results to the host, so the
    uncertainty's features come back as numpy arrays of the right shapes."""
    from models.potentials.equivariant import predict
    from models.potentials.uncertainty import latent_features

    path = EquivariantPotential(PotentialConfig(**CONFIG)).save(tmp_path / "m.pt")
    model = EquivariantPotential.load(path, map_location="meta")
    frames = [bulk("Cu", "fcc", a=3.61, cubic=True), with_aluminium(1)[0]]
    out = predict(model, frames)
    assert [r["forces"].shape for r in out] == [(4, 3), (16, 3)] and out[1]["stress"].shape == (3, 3)
    assert all(isinstance(r["energy"], float) and r["forces"].dtype == np.float64 for r in out)
    assert [f.shape for f in latent_features(model, frames)] == [(4, CONFIG["latent_dim"]), (16, CONFIG["latent_dim"])]


def test_uncertainty_tools_load_the_model_on_the_settings_device(workspace: Path, tmp_path: Path, monkeypatch) -> None:
    import tools.potentials.uncertainty
    from tools.core.settings import get_settings

    workspace.mkdir(parents=True)
    path = EquivariantPotential(PotentialConfig(**CONFIG)).save(workspace / "m.pt")
    real, devices = tools.potentials.uncertainty.load_model, []

    def load_model(p: Path, device: str = "cpu") -> object:
        devices.append(device)
        return real(p, device)

    monkeypatch.setattr(tools.potentials.uncertainty, "load_model", load_model)
    ctx = ToolContext(settings=get_settings().model_copy(update={"device": "meta"}))
    with pytest.raises(ToolInputError, match="fit_uncertainty"):  # no GMM yet: stops after loading the model
        get_tool("estimate_uncertainty").run({"structures": [{"text": "x"}], "potential": str(path)}, ctx)
    assert devices == ["meta"]
    assert next(real(path, "meta").parameters()).is_meta


def test_fit_uncertainty_never_rewrites_a_checkpoint_outside_the_workspace(
    fitted, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint path outside the workspace is refused and left as it was; a shipped checkpoint is fitted in a
    workspace copy whose path comes back, the shipped file unchanged (it used to be rewritten in place)."""
    import tools.core.paths

    data = workspace / "data"
    data.mkdir(parents=True)
    write(data / "train.extxyz", fitted["train"])
    outside = tmp_path / "elsewhere" / "model.pt"
    outside.parent.mkdir()
    shutil.copy(fitted["path"], outside)
    before = outside.read_bytes()
    ctx = ToolContext()
    fit = get_tool("fit_uncertainty")
    with pytest.raises(ToolInputError, match="outside the workspace"):
        fit.run({"potential": str(outside), "training_data": "data/train.extxyz", "n_components": [1]}, ctx)
    assert outside.read_bytes() == before
    monkeypatch.setattr(tools.core.paths, "SHIPPED_CHECKPOINTS", outside.parent.resolve())
    for spec in ("model", str(outside)):  # a shipped checkpoint by name or by its absolute path
        out = fit.run({"potential": spec, "training_data": "data/train.extxyz", "n_components": [1]}, ctx)
        copy = Path(out.potential)
        assert copy.is_relative_to(workspace.resolve()) and out.copied_from == str(outside.resolve())
        assert (workspace / out.checkpoint_uri.removeprefix("artifact://")).resolve() == copy
        assert GMMUncertainty.load(copy).n_components == 1
        assert outside.read_bytes() == before
