"""Physics checks of the equivariant potentials: symmetries, autograd forces/stress, locality, I/O, training, NVE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.neighborlist import neighbor_list as ase_neighbor_list
from scipy.spatial.transform import Rotation

from models.potentials.calculator import PotentialCalculator
from models.potentials.equivariant import EquivariantPotential, PotentialConfig, compute_energy_forces_stress, predict
from models.potentials.neighbors import collate, neighbor_list
from models.potentials.training import TrainConfig, read_dataset, train_potential
from models.potentials.universal import get_calculator, load_universal

KINDS = ["nequip", "allegro"]


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny cells gain nothing from threads


def tiny(kind: str, **kw: object) -> EquivariantPotential:
    """A tiny float64 model (fast, numerically precise) with non-trivial per-species scale and shift."""
    args = dict(kind=kind, species=["Cu", "Al"], cutoff=3.5, l_max=2, num_layers=2, num_features=4, num_basis=4,
                latent_dim=8, radial_mlp_width=8, parity=True, avg_num_neighbors=12.0, dtype="float64",
                name=f"tiny-{kind}")
    args.update(kw)
    torch.manual_seed(0)
    model = EquivariantPotential(PotentialConfig(**args))
    with torch.no_grad():
        model.scale.copy_(torch.tensor([0.7, 1.3], dtype=torch.float64))
        model.shift.copy_(torch.tensor([-3.5, -2.0], dtype=torch.float64))
    return model.eval()


def structure(seed: int = 0) -> Atoms:
    """A rattled, sheared 2-species cell smaller than two cutoffs (periodic images matter)."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.numbers[[1, 3]] = 13
    atoms.set_cell(atoms.cell.array + np.array([[0.0, 0.3, 0.1], [0.2, 0.0, -0.1], [0.1, 0.2, 0.0]]),
                   scale_atoms=True)
    atoms.rattle(0.15, seed=seed)
    return atoms


def run(model: EquivariantPotential, atoms_list: list[Atoms], stress: bool = True) -> dict[str, np.ndarray]:
    """Model outputs as numpy arrays."""
    out = compute_energy_forces_stress(model, model.collate(atoms_list), compute_stress=stress)
    return {k: v.numpy() for k, v in out.items()}


def test_neighbor_list_matches_ase_for_small_triclinic_cell() -> None:
    """vesin neighbour list equals ase's (same pairs and distance vectors), including many periodic images."""
    atoms = structure()
    ei, shifts = neighbor_list(atoms, 5.0)
    i, j, s = ase_neighbor_list("ijS", atoms, 5.0)
    ours = {(a, b, *sh) for a, b, sh in zip(ei[0], ei[1], shifts.tolist(), strict=True)}
    ref = {(a, b, *sh) for a, b, sh in zip(i, j, s.tolist(), strict=True)}
    assert ours == ref and len(ours) > 30 * len(atoms)
    mol = Atoms("Cu2Al", positions=[[0, 0, 0], [2.0, 0, 0], [0, 2.0, 0]], pbc=False)
    ei, shifts = neighbor_list(mol, 2.5)
    assert ei.shape == (2, 4) and not shifts.any()


@pytest.mark.parametrize("kind", KINDS)
def test_rotation_reflection_invariance_and_equivariance(kind: str) -> None:
    """Energy is invariant and forces/stress rotate under rotations and reflections of positions and cell."""
    model = tiny(kind)
    atoms = structure()
    ref = run(model, [atoms])
    for k, improper in enumerate([False, True]):
        rot = Rotation.random(random_state=k).as_matrix() * (-1.0 if improper else 1.0)
        rotated = atoms.copy()
        rotated.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
        rotated.positions = atoms.positions @ rot.T
        out = run(model, [rotated])
        assert abs(out["energy"][0] - ref["energy"][0]) < 1e-10 * abs(ref["energy"][0])
        np.testing.assert_allclose(out["forces"], ref["forces"] @ rot.T, atol=1e-10)
        np.testing.assert_allclose(out["stress"][0], rot @ ref["stress"][0] @ rot.T, atol=1e-10)
        np.testing.assert_allclose(out["features"], ref["features"], atol=1e-10)
    assert np.abs(ref["forces"]).max() > 1e-3  # non-trivial forces, so equivariance is really tested


@pytest.mark.parametrize("kind", KINDS)
def test_translation_permutation_and_wrapping(kind: str) -> None:
    """Translating, wrapping into the cell or permuting atoms changes nothing but the atom order."""
    model = tiny(kind)
    atoms = structure(1)
    ref = run(model, [atoms])
    moved = atoms.copy()
    moved.positions += np.array([1.3, -2.7, 5.1])
    wrapped = moved.copy()
    wrapped.wrap()
    assert not np.allclose(wrapped.positions, moved.positions)
    perm = np.array([2, 0, 3, 1])
    permuted = atoms[perm]
    outs = run(model, [moved, wrapped, permuted])
    np.testing.assert_allclose(outs["energy"], ref["energy"][0], rtol=1e-12)
    np.testing.assert_allclose(outs["forces"][:8], np.concatenate([ref["forces"]] * 2), atol=1e-10)
    np.testing.assert_allclose(outs["forces"][8:], ref["forces"][perm], atol=1e-10)
    np.testing.assert_allclose(outs["atomic_energies"][8:], ref["atomic_energies"][perm], atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_energy_is_smooth_across_the_cutoff(kind: str) -> None:
    """Energy and force of a dimer change continuously as the pair leaves the cutoff sphere (no jump)."""
    model = tiny(kind, cutoff=3.0)
    dimers = [Atoms("CuAl", positions=[[0, 0, 0], [r, 0, 0]]) for r in (2.5, 3.0 - 1e-3, 3.0 + 1e-3)]
    out = run(model, dimers, stress=False)
    isolated = run(model, [Atoms("Cu", positions=[[0, 0, 0]]), Atoms("Al", positions=[[0, 0, 0]])], stress=False)
    e_inf = isolated["energy"].sum()
    assert abs(out["energy"][0] - e_inf) > 1e-4  # the pair does interact inside the cutoff
    assert abs(out["energy"][1] - e_inf) < 1e-8 and abs(out["energy"][2] - e_inf) < 1e-12
    assert np.abs(out["forces"][2:4]).max() < 1e-5 < 1e-3 < np.abs(out["forces"][0:2]).max()


@pytest.mark.parametrize("kind", KINDS)
def test_supercell_is_extensive(kind: str) -> None:
    """A 2x1x1 supercell has twice the energy, the same stress and tiled forces."""
    model = tiny(kind)
    atoms = structure(2)
    ref = run(model, [atoms])
    out = run(model, [atoms.repeat((2, 1, 1))])
    assert abs(out["energy"][0] - 2 * ref["energy"][0]) < 1e-10 * abs(ref["energy"][0])
    np.testing.assert_allclose(out["forces"], np.concatenate([ref["forces"]] * 2), atol=1e-10)
    np.testing.assert_allclose(out["stress"], ref["stress"], atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_forces_match_finite_differences(kind: str) -> None:
    """Autograd forces equal central finite differences of the energy (relative error < 1e-3, float64)."""
    model = tiny(kind)
    atoms = structure(3)
    forces = run(model, [atoms], stress=False)["forces"]
    h = 1e-4
    fd = np.zeros_like(forces)
    for a in range(len(atoms)):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, c] += h
            minus.positions[a, c] -= h
            e = run(model, [plus, minus], stress=False)["energy"]
            fd[a, c] = -(e[0] - e[1]) / (2 * h)
    assert np.abs(forces).max() > 1e-3
    assert np.abs(fd - forces).max() < 1e-3 * np.abs(forces).max()


@pytest.mark.parametrize("kind", KINDS)
def test_stress_matches_finite_strain(kind: str) -> None:
    """Stress equals (1/V) dE/d(strain) from finite symmetric strains (ASE sign convention)."""
    model = tiny(kind)
    atoms = structure(4)
    stress = run(model, [atoms])["stress"][0]
    h = 1e-5
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] += h / 2
            eps[b, a] += h / 2
            strained = []
            for sign in (1.0, -1.0):
                s = atoms.copy()
                s.set_cell(atoms.cell.array @ (np.eye(3) + sign * eps), scale_atoms=True)
                strained.append(s)
            e = run(model, strained, stress=False)["energy"]
            fd[a, b] = (e[0] - e[1]) / (2 * h) / atoms.get_volume()
    assert np.abs(stress).max() > 1e-4
    np.testing.assert_allclose(stress, fd, atol=1e-3 * np.abs(stress).max())


def test_allegro_is_strictly_local_nequip_is_not() -> None:
    """Moving an atom outside atom 0's cutoff sphere leaves atom 0's Allegro energy unchanged (not NequIP's)."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))
    atoms.numbers[::5] = 13
    atoms.rattle(0.05, seed=5)
    cutoff = 3.0
    d = atoms.get_distances(0, range(len(atoms)), mic=True)
    far = int(np.flatnonzero((d > cutoff + 0.5) & (d < 2 * cutoff - 0.8))[0])
    near = int(np.flatnonzero((d > 0.1) & (d < cutoff - 0.5))[0])
    for kind in KINDS:
        model = tiny(kind, cutoff=cutoff, l_max=1)
        base = run(model, [atoms], stress=False)["atomic_energies"]
        changes = {}
        for label, k in (("far", far), ("near", near)):
            moved = atoms.copy()
            moved.positions[k] += np.array([0.15, -0.1, 0.2])
            changes[label] = abs(run(model, [moved], stress=False)["atomic_energies"][0] - base[0])
        assert changes["near"] > 1e-6
        if kind == "allegro":
            assert changes["far"] < 1e-12
        else:
            assert changes["far"] > 1e-9  # two message-passing layers see 2 cutoffs away


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_and_dtypes(kind: str, tmp_path) -> None:
    """A saved checkpoint reloads to identical predictions; a float32 copy agrees to float32 precision."""
    model = tiny(kind)
    path = model.save(tmp_path / "m.pt", metrics={"note": "unit"})
    loaded = EquivariantPotential.load(path)
    atoms = [structure(5), structure(6).repeat((1, 2, 1))]
    a, b = run(model, atoms), run(loaded, atoms)
    for key in ("energy", "forces", "stress", "features"):
        np.testing.assert_array_equal(a[key], b[key])
    assert loaded.config == model.config and loaded.metrics == {"note": "unit"}
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == 1 and payload["species"] == ["Cu", "Al"] and payload["cutoff"] == 3.5
    cfg32 = PotentialConfig.from_dict({**model.config.to_dict(), "dtype": "float32"})
    m32 = EquivariantPotential(cfg32)
    m32.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    c = run(m32, atoms)
    assert c["forces"].dtype == np.float32
    np.testing.assert_allclose(c["energy"], a["energy"], rtol=1e-5)
    np.testing.assert_allclose(c["forces"], a["forces"], atol=1e-4)
    # batched predict == one-at-a-time calculator
    preds = predict(loaded, atoms, batch_size=2)
    calc = PotentialCalculator(path)
    for at, pred in zip(atoms, preds, strict=True):
        at = at.copy()
        at.calc = calc
        assert abs(at.get_potential_energy() - pred["energy"]) < 1e-10
        np.testing.assert_allclose(at.get_forces(), pred["forces"], atol=1e-10)
        np.testing.assert_allclose(at.get_stress(voigt=False), pred["stress"], atol=1e-12)


def test_calculator_errors_and_nonperiodic(tmp_path) -> None:
    """Unsupported elements raise ValueError naming element and model; molecules get forces but no stress."""
    model = tiny("allegro")
    calc = PotentialCalculator(model)
    bad = structure()
    bad.numbers[0] = 26
    bad.numbers[1] = 8
    bad.calc = calc
    with pytest.raises(ValueError, match=r"Fe.*tiny-allegro|O, Fe.*tiny-allegro") as err:
        bad.get_potential_energy()
    assert "Fe" in str(err.value) and "O" in str(err.value) and "tiny-allegro" in str(err.value)
    with pytest.raises(ValueError, match="tiny-nequip"):
        tiny("nequip").collate([bad])
    mol = Atoms("Cu2Al", positions=[[0, 0, 0], [2.3, 0, 0], [0.3, 2.2, 0.1]])
    mol.calc = calc
    forces = mol.get_forces()
    assert np.abs(forces.sum(axis=0)).max() < 1e-10 and np.abs(forces).max() > 1e-4  # momentum conserved
    with pytest.raises(PropertyNotImplementedError):
        mol.get_stress()
    assert isinstance(get_calculator(model.save(tmp_path / "c.pt")), PotentialCalculator)
    with pytest.raises(ValueError, match="sevennet-0, chgnet"):
        load_universal("no-such-model")
    with pytest.raises(ValueError, match="neither"):
        get_calculator(tmp_path / "missing.pt")


def emt_data(n: int, seed: int) -> list[Atoms]:
    """Rattled, strained Cu/Al cells labelled with EMT energies, forces and stresses."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.08 * rng.uniform(-1, 1), cubic=True)
        if k % 2:
            atoms.numbers[rng.choice(4, 2, replace=False)] = 13
        atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        labels = dict(energy=atoms.get_potential_energy(), forces=atoms.get_forces(), stress=atoms.get_stress())
        atoms.calc = SinglePointCalculator(atoms, **labels)
        out.append(atoms)
    return out


def test_extxyz_labels_from_calc_or_info(tmp_path) -> None:
    """Energy, forces and stress labels are read from extxyz, whether stored by a calculator or as REF_ keys."""
    data = emt_data(2, 3)
    write(tmp_path / "calc.extxyz", data)
    plain = []
    for atoms in data:
        bare = atoms.copy()
        bare.info["REF_energy"] = atoms.get_potential_energy()
        bare.arrays["REF_forces"] = atoms.get_forces()
        bare.info["REF_stress"] = atoms.get_stress(voigt=False).ravel()
        plain.append(bare)
    write(tmp_path / "info.extxyz", plain)
    for name in ("calc.extxyz", "info.extxyz"):
        batch = collate(read_dataset(tmp_path / name), ["Cu", "Al"], 4.0, torch.float64)
        np.testing.assert_allclose(batch.energy.numpy(), [a.get_potential_energy() for a in data], rtol=1e-9)
        np.testing.assert_allclose(batch.forces.numpy(), np.concatenate([a.get_forces() for a in data]), atol=1e-8)
        np.testing.assert_allclose(batch.stress.numpy(), [a.get_stress(voigt=False) for a in data], atol=1e-9)
        assert bool(batch.stress_mask.all())


@pytest.mark.parametrize("kind", KINDS)
def test_training_lowers_validation_error_and_resumes(kind: str, tmp_path) -> None:
    """A tiny EMT fit lowers validation errors; resume continues from the saved epoch with the saved state."""
    train, val = emt_data(12, 0), emt_data(4, 1)
    cfg = PotentialConfig(kind=kind, species=["Cu", "Al"], cutoff=4.0, l_max=1, num_layers=2, num_features=8,
                          num_basis=6, latent_dim=16, radial_mlp_width=16)
    path = tmp_path / "run.pt"
    calls: list[int] = []
    tcfg = TrainConfig(epochs=8, batch_size=4, lr=1e-2, ema_decay=0.9, seed=1)
    first = train_potential(train, val, cfg, tcfg, path, progress=lambda d, t, m: calls.append(d))
    hist = first["history"]
    assert calls == list(range(1, 9)) and first["epochs_completed"] == 8
    assert hist[-1]["val_forces_mae_meV_per_A"] < 0.6 * hist[0]["val_forces_mae_meV_per_A"]
    assert first["val_loss"] < 0.5 * hist[0]["val_loss"]
    loaded = EquivariantPotential.load(path)
    assert loaded.config.avg_num_neighbors > 10  # fitted from the data, not the default
    assert loaded.metrics["best_epoch"] == first["best_epoch"]
    ref_e = np.array([a.get_potential_energy() / len(a) for a in val])
    pred_e = np.array([p["energy"] / len(a) for p, a in zip(predict(loaded, val), val, strict=True)])
    assert 1000 * np.abs(pred_e - ref_e).mean() == pytest.approx(first["val_energy_mae_meV_per_atom"], rel=1e-3)

    calls.clear()
    more = train_potential(train, val, cfg, TrainConfig(**{**tcfg.__dict__, "epochs": 11}), path, resume=True,
                           progress=lambda d, t, m: calls.append(d))
    assert calls == [9, 10, 11] and more["epochs_completed"] == 11
    assert [h["epoch"] for h in more["history"]] == list(range(1, 12))
    assert more["history"][:8] == hist  # the earlier epochs came from the checkpoint, not a rerun
    assert more["val_loss"] <= first["val_loss"]


def test_resumed_cosine_schedule_follows_the_new_epoch_count(tmp_path) -> None:
    """A cosine run cut short (a session ended) and resumed with fewer total epochs anneals to min_lr at the new end,
    instead of stopping half-way down the old schedule."""
    train, val = emt_data(8, 0), emt_data(2, 1)
    cfg = PotentialConfig(kind="allegro", species=["Cu", "Al"], cutoff=4.0, l_max=1, num_layers=1, num_features=4,
                          num_basis=4, latent_dim=8, radial_mlp_width=8)
    tcfg = TrainConfig(epochs=10, batch_size=4, lr=1e-2, min_lr=1e-5, scheduler="cosine", seed=1)
    path = tmp_path / "cut.pt"

    def stop_after_two(done: int, total: int, msg: str) -> None:
        if done == 2:
            raise KeyboardInterrupt  # the checkpoint of epoch 2 is already written

    with pytest.raises(KeyboardInterrupt):
        train_potential(train, val, cfg, tcfg, path, progress=stop_after_two)
    resumed = train_potential(train, val, cfg, TrainConfig(**{**tcfg.__dict__, "epochs": 4}), path, resume=True)
    lrs = [h["lr"] for h in resumed["history"]]
    assert len(lrs) == 4 and lrs[1] > 1e-3  # epochs 1-2 ran on the 10-epoch schedule
    assert lrs[-1] == pytest.approx(1e-5, rel=1e-6)  # and the run still ends annealed

def test_fine_tuning_starts_from_the_pretrained_model(tmp_path) -> None:
    """init_from: the pretrained architecture and weights are the starting point (its first-epoch error is already
    far below a fresh model's), the same seed gives the same fresh weights, and foreign elements are refused."""
    train, val = emt_data(12, 0), emt_data(4, 1)
    cfg = PotentialConfig(kind="allegro", species=["Cu", "Al"], cutoff=4.0, l_max=1, num_layers=2, num_features=8,
                          num_basis=6, latent_dim=16, radial_mlp_width=16)
    tcfg = TrainConfig(epochs=8, batch_size=4, lr=1e-2, ema_decay=0.9, seed=1)
    pretrained = train_potential(train, val, cfg, tcfg, tmp_path / "pre.pt")
    new_train = emt_data(6, 2)
    one = TrainConfig(epochs=1, batch_size=4, lr=1e-3, ema_decay=0.9, seed=3)
    scratch = train_potential(new_train, val, cfg, one, tmp_path / "scratch.pt")
    again = train_potential(new_train, val, cfg, one, tmp_path / "scratch2.pt")
    assert scratch["history"][0]["val_loss"] == again["history"][0]["val_loss"]  # seeded initial weights
    other = PotentialConfig(kind="allegro", species=["Cu", "Al"], cutoff=3.0, l_max=0, num_layers=1, num_features=4)
    fine = TrainConfig(**{**one.__dict__, "init_from": str(tmp_path / "pre.pt")})
    tuned = train_potential(new_train, val, other, fine, tmp_path / "tuned.pt")
    loaded = EquivariantPotential.load(tmp_path / "tuned.pt")
    assert loaded.config.cutoff == 4.0 and loaded.config.num_features == 8  # the pretrained architecture
    assert tuned["history"][0]["val_forces_mae_meV_per_A"] < 0.5 * scratch["history"][0]["val_forces_mae_meV_per_A"]
    assert tuned["history"][0]["val_loss"] < 2 * pretrained["val_loss"]
    copper_only = emt_data(3, 4)
    for atoms in copper_only:
        atoms.numbers[0] = 28  # Ni: not in the pretrained model
    with pytest.raises(ValueError, match="does not support element.*Ni"):
        train_potential(copper_only, val, cfg, TrainConfig(epochs=1, init_from=str(tmp_path / "pre.pt")),
                        tmp_path / "bad.pt")


def test_nve_energy_conservation() -> None:
    """Velocity Verlet (1 fs, 200 steps) with a smooth float64 model conserves total energy to << kT."""
    model = tiny("allegro", cutoff=4.0, l_max=1)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.numbers[::3] = 13
    atoms.calc = PotentialCalculator(model)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    start = atoms.positions.copy()
    total, potential = [], []
    dyn.attach(lambda: (total.append(atoms.get_total_energy()), potential.append(atoms.get_potential_energy())))
    dyn.run(200)
    kt = units.kB * 300
    drift = np.abs(np.array(total) - total[0]).max()
    assert np.ptp(potential) > 0.1 * kt  # energy really flows between kinetic and potential
    assert np.abs(atoms.positions - start).max() > 0.02
    assert drift < 0.02 * kt
