"""Umbrella sampling of an atomistic system through the tools (learn_cv on positions with atomic numbers ->
umbrella_sampling with ASE Langevin MD on a real potential -> free_energy_profile), checked against the exact free
energy of a Cu dimer from numerical integration of r^2 exp(-U(r)/kT), and its input errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.md.langevin import Langevin

from models.potentials.universal import get_calculator
from models.sampling.adatom import hop_data, slab_with_adatom
from tools.core.errors import ToolInputError
from tools.core.registry import ToolContext, get_tool

T = 300.0


def _dimer_data(n_steps: int = 2000) -> tuple[np.ndarray, np.ndarray, float]:
    """Unbiased Langevin MD of Cu2 on EMT at 300 K: flattened positions every 5 steps, labels 1 where the bond is
    longer than its median (the two 'basins' are the short and the long half of the bond's distribution; one
    minimum, so only a rule of the user's can tell them apart) and that median."""
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.2]])
    atoms.calc = get_calculator("emt")
    dyn = Langevin(atoms, 2 * units.fs, temperature_K=T, friction=0.01 / units.fs, fixcm=False,
                   rng=np.random.default_rng(1))
    frames: list[np.ndarray] = []
    dyn.attach(lambda: frames.append(atoms.positions.ravel().copy()), interval=5)
    dyn.run(n_steps)
    x = np.array(frames)
    r = np.linalg.norm(x[:, 3:] - x[:, :3], axis=1)
    edge = float(np.median(r))
    return x, (r >= edge).astype(int), edge


def _exact_dimer_df(edge: float) -> float:
    """F(r >= edge) - F(r < edge) in kT for two Cu atoms in free space on EMT at T, from the potential alone: the
    bond length r is distributed as r^2 exp(-U(r)/kT), integrated numerically on a 0.5 mA grid."""
    r = np.linspace(1.7, 3.4, 3401)
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.2]])
    atoms.calc = get_calculator("emt")
    energy = []
    for length in r:
        atoms.positions = [[0, 0, 0], [0, 0, length]]
        energy.append(atoms.get_potential_energy())
    w = r**2 * np.exp(-(np.array(energy) - min(energy)) / (units.kB * T))
    return float(-np.log(w[r >= edge].sum() / w[r < edge].sum()))


@pytest.mark.slow
def test_atomistic_umbrella_sampling_reproduces_the_exact_dimer_free_energy(workspace) -> None:
    """Basins by the user's rule (bond length cut at the data's median), not by the CV: every frame's label follows
    the rule, and MBAR's F(long) - F(short) matches Boltzmann integration of the EMT dimer potential."""
    workspace.mkdir(parents=True, exist_ok=True)
    x, labels, edge = _dimer_data()
    np.savez(workspace / "dimer.npz", x=x, labels=labels, numbers=np.array([29, 29]))
    ctx = ToolContext()
    cv = get_tool("learn_cv").run(
        {"data_file": "dimer.npz", "preset": "classifier", "features": "distances", "feature_atoms": [[0, 1]],
         "epochs": 60, "w_smooth": 1.0},  # a classifier alone makes s(r) a step, which harmonic windows cannot hold
        ctx,
    )
    assert cv.separates_basins
    run = {"cv_id": cv.cv_id, "potential": "emt", "n_windows": 10, "n_steps": 800, "n_equil": 100, "stride": 5,
           "timestep_fs": 5.0, "exchange_every": 25, "temperature_K": T,
           "basin_rule": {"atoms": [0, 1], "edges_A": [edge]}}
    us = get_tool("umbrella_sampling").run(run, ctx)
    assert us.system is None and us.potential == "emt" and us.langevin_acceptance is None
    assert us.basins_from == f"the distance between atoms 0 and 1 cut at [{edge}] A"
    assert 0.2 < us.exchange_acceptance < 0.9
    assert min(us.samples_per_window) > 50
    with np.load(workspace / us.samples_uri.removeprefix("artifact://")) as z:
        r, basin = np.linalg.norm(z["x"][:, 3:] - z["x"][:, :3], axis=1), z["basin"]
    np.testing.assert_array_equal(basin, r >= edge)
    fe = get_tool("free_energy_profile").run({"samples_id": us.samples_id, "method": "mbar"}, ctx)
    exact = _exact_dimer_df(edge)
    est = fe.basins[1]
    assert est.error_kT < 0.3
    assert abs(est.dF_kT - exact) < 3 * est.error_kT + 0.05, (est.dF_kT, est.error_kT, exact)

    # bad inputs: each names the problem
    errors = {
        "dimensions=1": {**run, "dimensions": 2},
        "n_walkers must be 1": {**run, "n_walkers": 2},
        "refine_rounds": {**run, "refine_rounds": 1},
        "A potential is one of": {**run, "potential": "no-such-potential"},
        "at most": {**run, "n_windows": 100, "n_steps": 100_000},
        "would each be quenched": {**run, "basin_rule": None, "n_windows": 100, "n_steps": 2000, "stride": 10},
        "the data have 2 atoms": {**run, "basin_rule": {"atoms": [0, 2], "edges_A": [edge]}},
        "ascending": {**run, "basin_rule": {"atoms": [0, 1], "edges_A": [2.5, 2.0]}},
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


def test_basins_that_share_a_minimum_need_a_rule(workspace) -> None:
    """Short and long bonds of one dimer quench into the same minimum: quenching cannot label them, and
    umbrella_sampling says so before any MD (the autoencoder CV, which has no classification head, is accepted)."""
    workspace.mkdir(parents=True, exist_ok=True)
    r = np.linspace(2.0, 2.5, 40)
    x = np.zeros((len(r), 6))
    x[:, 5] = r
    np.savez(workspace / "aligned.npz", x=x, labels=(r > 2.25).astype(int), numbers=np.array([29, 29]))
    cv = get_tool("learn_cv").run({"data_file": "aligned.npz", "preset": "autoencoder", "features": "distances",
                                   "feature_atoms": [[0, 1]], "epochs": 2}, ToolContext())
    with pytest.raises(ToolInputError, match="cannot tell basins 0 and 1 apart.*basin_rule"):
        get_tool("umbrella_sampling").run({"cv_id": cv.cv_id, "potential": "emt", "n_steps": 100, "n_equil": 0},
                                          ToolContext())


@pytest.mark.slow
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

    def along_of(frames: np.ndarray) -> np.ndarray:
        """The adatom's position along the hop in hop lengths (0: hollow A, 1: hollow B)."""
        return (frames.reshape(len(frames), -1, 3)[:, adatom, 0] - slab.positions[-1, 0]) / step[0]

    # the umbrella frames' own basins come from quenching, not from the CV: the hollow on the frame's side of the bridge
    assert us.basins_from.startswith("quenching with emt")
    with np.load(workspace / us.samples_uri.removeprefix("artifact://")) as z:
        along, basin = along_of(z["x"]), z["basin"]
    clear = (np.abs(along - 0.5) > 0.2) & (basin >= 0)
    assert clear.sum() > 100 and np.all(basin[clear] == (along[clear] > 0.5)) and {0, 1} <= set(basin.tolist())
    again = get_tool("learn_cv").run({**learn, "add_samples_id": us.samples_id}, ctx)
    assert again.n_samples == len(x) + us.n_samples and "labelled by the basin whose minimum" in again.message
    with np.load(workspace / again.data_uri.removeprefix("artifact://")) as z:
        added_x, added_labels = z["x"][len(x):], z["labels"][len(x):]
    along = along_of(added_x)  # 0: A, 1: B
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
    """tools/free_energy/workflow.py uses tools/free_energy/atomistic.py, never the other way round (both take what
    they share
    from tools/free_energy/base.py)."""
    import subprocess
    import sys

    code = "import sys, tools.free_energy.atomistic; print('tools.free_energy.workflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
