"""Umbrella sampling of an atomistic system through the tools (learn_cv on positions with atomic numbers ->
umbrella_sampling with ASE Langevin MD on a real potential -> free_energy_profile), checked against the exact free
energy of a Cu dimer from numerical integration of r^2 exp(-U(r)/kT), and its input errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.md.langevin import Langevin

from benchmarks.free_energy_adatom import hop_data, slab_with_adatom
from models.cv import MultitaskCV
from models.universal import get_calculator
from tools.errors import ToolInputError
from tools.registry import ToolContext, get_tool

T = 300.0


def _dimer_data(n_steps: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased Langevin MD of Cu2 on EMT at 300 K: flattened positions every 5 steps and labels 1 where the bond is
    longer than its median (the two 'basins' are the short and the long half of the bond's distribution)."""
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.2]])
    atoms.calc = get_calculator("emt")
    dyn = Langevin(atoms, 2 * units.fs, temperature_K=T, friction=0.01 / units.fs, fixcm=False,
                   rng=np.random.default_rng(1))
    frames: list[np.ndarray] = []
    dyn.attach(lambda: frames.append(atoms.positions.ravel().copy()), interval=5)
    dyn.run(n_steps)
    x = np.array(frames)
    r = np.linalg.norm(x[:, 3:] - x[:, :3], axis=1)
    return x, (r > np.median(r)).astype(int)


def _exact_dimer_df(model: MultitaskCV) -> float:
    """F(basin 1) - F(basin 0) in kT with basins as the CV's classification head assigns them along the bond: the
    bond length r of two atoms in free space is distributed as r^2 exp(-U(r)/kT)."""
    r = np.linspace(1.7, 3.4, 3401)
    x = np.zeros((len(r), 6))
    x[:, 5] = r
    basin = model.predict_class(x)
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.2]])
    atoms.calc = get_calculator("emt")
    energy = []
    for length in r:
        atoms.positions = [[0, 0, 0], [0, 0, length]]
        energy.append(atoms.get_potential_energy())
    w = r**2 * np.exp(-(np.array(energy) - min(energy)) / (units.kB * T))
    return float(-np.log(w[basin == 1].sum() / w[basin == 0].sum()))


def test_atomistic_umbrella_sampling_reproduces_the_exact_dimer_free_energy(workspace) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    x, labels = _dimer_data()
    np.savez(workspace / "dimer.npz", x=x, labels=labels, numbers=np.array([29, 29]))
    ctx = ToolContext()
    cv = get_tool("learn_cv").run(
        {"data_file": "dimer.npz", "preset": "classifier", "features": "distances", "feature_atoms": [[0, 1]],
         "epochs": 60, "w_smooth": 1.0},  # a classifier alone makes s(r) a step, which harmonic windows cannot hold
        ctx,
    )
    assert cv.separates_basins
    run = {"cv_id": cv.cv_id, "potential": "emt", "n_windows": 10, "n_steps": 800, "n_equil": 100, "stride": 5,
           "timestep_fs": 5.0, "exchange_every": 25, "temperature_K": T}
    us = get_tool("umbrella_sampling").run(run, ctx)
    assert us.system is None and us.potential == "emt" and us.langevin_acceptance is None
    assert 0.2 < us.exchange_acceptance < 0.9
    assert min(us.samples_per_window) > 50
    fe = get_tool("free_energy_profile").run({"samples_id": us.samples_id, "method": "mbar"}, ctx)
    model = MultitaskCV.load(workspace / cv.checkpoint_uri.removeprefix("artifact://"))
    exact = _exact_dimer_df(model)
    est = fe.basins[1]
    assert est.error_kT < 0.3
    assert abs(est.dF_kT - exact) < 3 * est.error_kT + 0.05, (est.dF_kT, est.error_kT, exact)

    # bad inputs: each names the problem
    errors = {
        "dimensions=1": {**run, "dimensions": 2},
        "n_walkers must be 1": {**run, "n_walkers": 2},
        "refine_rounds": {**run, "refine_rounds": 1},
        "neither a universal potential": {**run, "potential": "no-such-potential"},
        "at most": {**run, "n_windows": 100, "n_steps": 100_000},
    }
    for message, bad in errors.items():
        with pytest.raises(ToolInputError, match=message):
            get_tool("umbrella_sampling").run(bad, ctx)


def test_atomistic_cv_data_errors(workspace) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)) + [0, 0, 0, 0, 0, 2.5]
    labels = np.repeat([0, 1], 20)
    learn = get_tool("learn_cv")
    cases = {
        "one integer atomic number per atom": {"numbers": np.array([26, 26, 26])},
        "atomic numbers must be 1-118": {"numbers": np.array([0, 200])},
        "non-zero volume": {"numbers": np.array([26, 26]), "pbc": np.ones(3, bool)},
    }
    for message, extra in cases.items():
        np.savez(workspace / "bad.npz", x=x, labels=labels, **extra)
        with pytest.raises(ToolInputError, match=message):
            learn.run({"data_file": "bad.npz", "epochs": 2}, ToolContext())
    # iron has no EMT parameters: the MD never starts and the error names the element
    np.savez(workspace / "fe.npz", x=x, labels=labels, numbers=np.array([26, 26]))
    cv = learn.run({"data_file": "fe.npz", "preset": "classifier", "features": "distances",
                    "feature_atoms": [[0, 1]], "epochs": 2}, ToolContext())
    with pytest.raises(ToolInputError, match="no parameters for Fe"):
        get_tool("umbrella_sampling").run({"cv_id": cv.cv_id, "potential": "emt", "n_steps": 100, "n_equil": 0},
                                          ToolContext())


def test_umbrella_frames_on_the_barrier_are_labelled_by_the_hollow_they_quench_into(workspace) -> None:
    """A CV learned from the two hollows' frames alone, its umbrella windows across the hop, and a second learn_cv
    round that adds those frames labelled by quenching: every labelled frame whose adatom sits clearly on one side of
    the bridge must carry that side's hollow."""
    workspace.mkdir(parents=True, exist_ok=True)
    slab, step = slab_with_adatom()
    x, labels, pairs = hop_data(slab, step, 600, seed=0)
    np.savez(workspace / "adatom.npz", x=x, labels=labels, numbers=slab.numbers, cell=np.asarray(slab.cell),
             pbc=slab.pbc)
    adatom = pairs[0][0]
    learn = {"data_file": "adatom.npz", "preset": "classifier", "features": "distances", "epochs": 40,
             "w_smooth": 10.0, "feature_atoms": pairs}
    ctx = ToolContext()
    cv = get_tool("learn_cv").run(learn, ctx)
    assert cv.separates_basins
    us = get_tool("umbrella_sampling").run(
        {"cv_id": cv.cv_id, "potential": "emt", "n_windows": 8, "n_steps": 400, "n_equil": 100, "stride": 10,
         "timestep_fs": 2.0, "exchange_every": 50, "temperature_K": T}, ctx
    )
    again = get_tool("learn_cv").run({**learn, "add_samples_id": us.samples_id}, ctx)
    assert again.n_samples == len(x) + us.n_samples and "labelled by the basin whose minimum" in again.message
    with np.load(workspace / again.data_uri.removeprefix("artifact://")) as z:
        added_x, added_labels = z["x"][len(x):], z["labels"][len(x):]
    along = (added_x.reshape(len(added_x), -1, 3)[:, adatom, 0] - slab.positions[-1, 0]) / step[0]  # 0: A, 1: B
    clear = (np.abs(along - 0.5) > 0.2) & (added_labels >= 0)  # frames in other hollows stay unlabelled (-1)
    assert clear.sum() > 20 and np.all(added_labels[clear] == (along[clear] > 0.5))
    assert {0, 1} <= set(added_labels.tolist())  # the windows reach both hollows
    # a samples id of atoms joined to data without atomic numbers: nothing to quench with
    np.savez(workspace / "plain.npz", x=x, labels=labels)
    with pytest.raises(ToolInputError, match="needs atomistic data"):
        get_tool("learn_cv").run({"data_file": "plain.npz", "add_samples_id": us.samples_id}, ctx)
    with pytest.raises(ToolInputError, match="no umbrella samples"):
        get_tool("learn_cv").run({**learn, "add_samples_id": "us-0123456789"}, ctx)


def test_atomistic_branch_does_not_import_the_free_energy_tools() -> None:
    """tools/free_energy.py uses tools/free_energy_atomistic.py, never the other way round (both take what they share
    from tools/free_energy_base.py)."""
    import subprocess
    import sys

    code = "import sys, tools.free_energy_atomistic; print('tools.free_energy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
