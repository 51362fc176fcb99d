"""CV network and toy systems: the learned CV separates the basins, checkpoints round-trip, gradients are right,
sample weights balance classes, the sampler is exact and the exact basin free energies are consistent."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from models.potentials.toy import basin_trajectories, get_toy_system, langevin
from models.sampling.cv import (
    CVConfig,
    MultitaskCV,
    assess_separation,
    chord_roughness,
    fold_fraction,
    sample_weights,
    train_cv,
)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", ["mueller_brown_5d", "three_well_5d"])
def test_multitask_cv_separates_toy_basins(name: str) -> None:
    system = get_toy_system(name)
    data = basin_trajectories(system, n_walkers=6, n_steps=1500, stride=10, seed=1)
    assert set(np.unique(data["label"])) == set(range(system.n_basins))
    config = CVConfig.preset("multitask", n_inputs=5, n_classes=system.n_basins)
    model, metrics = train_cv(config, data["x"], data["label"], data["energy"], epochs=40, seed=0)
    sep = metrics["separation"]
    assert sep["separates"], sep
    assert metrics["classifier_accuracy"] > 0.9
    assert metrics["energy_rmse"] is not None and np.isfinite(metrics["energy_rmse"])  # the energy head was trained
    # the scaled CV puts basin 0 at 0 and the farthest basin at 1
    s = model.cv_numpy(data["x"])[:, 0]
    means = [np.mean(s[data["label"] == b]) for b in range(system.n_basins)]
    assert abs(means[0]) < 0.05 and abs(max(means, key=abs) - 1.0) < 0.05


def test_checkpoint_round_trip_and_cv_gradient(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-1, 0.3, (100, 4)), rng.normal(1, 0.3, (100, 4))])
    labels = np.repeat([0, 1], 100)
    energies = (x**2).sum(1)
    config = CVConfig.preset("multitask", n_inputs=4, n_classes=2, latent_dim=2, hidden=[16])
    model, _ = train_cv(config, x, labels, energies, epochs=5)
    path = model.save(tmp_path / "cv.pt", {"note": "test"})
    again = MultitaskCV.load(path)
    assert again.metadata["note"] == "test" and again.config == model.config
    np.testing.assert_allclose(again.cv_numpy(x), model.cv_numpy(x), atol=1e-12)
    s, grad = again.cv_and_grad(x[:3], component=1)
    h = 1e-6
    for i in range(4):
        step = np.zeros(4)
        step[i] = h
        fd = (again.cv_numpy(x[:3] + step)[:, 1] - again.cv_numpy(x[:3] - step)[:, 1]) / (2 * h)
        np.testing.assert_allclose(grad[:, i], fd, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="not a matsearch CV checkpoint"):
        torch.save({"foo": 1}, tmp_path / "bad.pt")
        MultitaskCV.load(tmp_path / "bad.pt")


class _OpensAFile:
    """Unpickling this calls open(path, 'w'): a stand-in for code a crafted checkpoint would run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def test_checkpoint_loads_without_unpickling_objects(tmp_path) -> None:
    model = MultitaskCV(CVConfig.preset("classifier", n_inputs=2, n_classes=2, hidden=[4]))
    # numpy scalars and tuples in the metadata are stored as plain data, readable by a weights-only load
    path = model.save(tmp_path / "cv.pt", {"n": np.int64(3), "accuracy": np.float32(0.5), "pair": (0, 1)})
    blob = torch.load(path, weights_only=True)
    assert blob["metadata"] == {"n": 3, "accuracy": 0.5, "pair": [0, 1]} and isinstance(blob["metadata"]["n"], int)
    assert MultitaskCV.load(path).metadata["pair"] == [0, 1]
    with pytest.raises(TypeError):
        model.save(tmp_path / "odd.pt", {"path": tmp_path})  # not JSON-able: it would not load back safely
    # a checkpoint carrying an object is refused, and the object's code never runs
    marker = tmp_path / "opened"
    trap = {"kind": "matsearch-cv", "config": asdict(model.config), "state_dict": model.state_dict(),
            "metadata": {"note": _OpensAFile(str(marker))}}
    torch.save(trap, tmp_path / "trap.pt")
    with pytest.raises(ValueError, match="objects other than tensors"):
        MultitaskCV.load(tmp_path / "trap.pt")
    assert not marker.exists()


def test_chord_roughness_is_one_for_a_linear_cv_and_smoothing_flattens_the_step() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal([-2, 0], 0.2, (200, 2)), rng.normal([2, 0], 0.2, (200, 2))])
    labels = np.repeat([0, 1], 200)
    xt, lt = torch.as_tensor(x[:, :1]), torch.as_tensor(labels)
    linear = MultitaskCV(CVConfig.preset("classifier", n_inputs=1, n_classes=2, hidden=[]))
    assert chord_roughness(linear, xt, lt).item() == pytest.approx(1.0, abs=1e-9)  # rises uniformly along chords
    step = MultitaskCV(CVConfig.preset("classifier", n_inputs=1, n_classes=2, hidden=[1]))
    with torch.no_grad():  # z = tanh(20 f): flat on both basins, a cliff between them
        step.encoder[0].weight.fill_(20.0)
        step.encoder[0].bias.zero_()
        step.encoder[2].weight.fill_(1.0)
        step.encoder[2].bias.zero_()
    assert chord_roughness(step, xt, lt).item() > 3.0
    # trained: the smoothness term lowers the steepest slope between the basins towards the straight line's 0.25
    line = np.stack([np.linspace(-2, 2, 201), np.zeros(201)], -1)
    slopes = {}
    for w in (0.0, 1.0):
        config = CVConfig.preset("classifier", n_inputs=2, n_classes=2, w_smooth=w)
        model, metrics = train_cv(config, x, labels, epochs=60, seed=0)
        assert metrics["classifier_accuracy"] == 1.0
        slopes[w] = np.abs(np.gradient(model.cv_numpy(line)[:, 0], line[:, 0])).max()
    assert slopes[1.0] < slopes[0.0] and slopes[1.0] < 0.3, slopes
    with pytest.raises(ValueError, match="w_smooth"):
        CVConfig.preset("multitask", n_inputs=2, n_classes=2, w_smooth=-1.0)


def test_torsion_features_are_rotation_invariant() -> None:
    rng = np.random.default_rng(1)
    pos = rng.normal(size=(10, 5, 3))
    config = CVConfig.preset(
        "classifier", n_inputs=15, n_classes=2, features="torsions", feature_atoms=[[0, 1, 2, 3], [1, 2, 3, 4]]
    )
    model = MultitaskCV(config)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    a = model.features(torch.as_tensor(pos.reshape(10, -1)))
    b = model.features(torch.as_tensor((pos @ q.T).reshape(10, -1)))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="feature_atoms"):
        CVConfig.preset("classifier", n_inputs=15, n_classes=2, features="distances")


def test_sample_weights_balance_classes_and_energies() -> None:
    labels = np.array([0] * 90 + [1] * 10 + [-1] * 5)
    energies = np.concatenate([np.zeros(90), np.ones(10), np.full(5, 10.0)])
    w = sample_weights(labels, energies, n_classes=2, energy_histogram=False)
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum())
    w_e = sample_weights(labels, energies, n_classes=2, class_balance=False)
    assert w_e[-1] > 10 * w_e[0]  # the rare high-energy samples are up-weighted
    assert w_e.mean() == pytest.approx(1.0)


def test_separation_verdict_on_mixed_basins() -> None:
    rng = np.random.default_rng(0)
    good = assess_separation(
        np.r_[rng.normal(0, 0.1, 200), rng.normal(1, 0.1, 200)][:, None], np.repeat([0, 1], 200), 2
    )
    bad = assess_separation(rng.normal(0, 1, (400, 1)), np.repeat([0, 1], 200), 2)
    assert good["separates"] and good["accuracy"] > 0.99
    assert not bad["separates"] and bad["max_overlap"] > 0.5


def test_fold_fraction_is_zero_for_a_one_to_one_cv_and_large_for_a_folded_one() -> None:
    # torsions on the periodic torus: (phi, psi) itself tears the torus at +-pi (close states far apart in the CV,
    # harmless) but folds nothing; (|phi|, psi) puts phi and -phi on one value
    rng = np.random.default_rng(0)
    torus = rng.uniform(-np.pi, np.pi, (4000, 2))
    one_to_one, n_close = fold_fraction(torus, torus, radius=0.1, period=2 * np.pi)
    folded, _ = fold_fraction(np.c_[np.abs(torus[:, 0]), torus[:, 1]], torus, radius=0.1, period=2 * np.pi)
    assert n_close > 1000 and one_to_one == 0.0
    # half of the close pairs in (|phi|, psi) have opposite signs of phi, and half of those (pi/4 < |phi| < 3 pi/4)
    # are more than pi/2 apart on the torus: 1/4
    assert 0.2 < folded < 0.3
    # the wrap matters: phi = -3.1 and 3.1 are close on the torus, so a CV holding them together folds nothing
    wrapped = np.array([[-3.1, 0.0], [3.1, 0.0]])
    assert fold_fraction(np.zeros((2, 1)), wrapped, period=2 * np.pi) == (0.0, 1)
    assert fold_fraction(np.zeros((2, 1)), wrapped) == (1.0, 1)
    with pytest.raises(ValueError, match="frames"):
        fold_fraction(np.zeros((3, 1)), wrapped)


def test_langevin_samples_boltzmann_and_exact_free_energies() -> None:
    system = get_toy_system("three_well_5d")
    exact = system.exact_basin_free_energies()
    assert abs(exact[1]) < 1e-3  # left/right symmetry of the three-well model
    assert exact[2] == pytest.approx(system.exact_basin_free_energies(n_grid=1201)[2], abs=1e-3)
    # MALA on the harmonic dims alone: variance kT/k
    k = 4.0

    def harmonic(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 0.5 * k * (x**2).sum(1), k * x

    frames, _, stats = langevin(harmonic, np.zeros((64, 3)), 0.5, 0.05, 3000, stride=5, seed=3)
    assert 0.5 < stats.acceptance <= 1.0
    assert frames[100:].var() == pytest.approx(0.5 / k, rel=0.05)
