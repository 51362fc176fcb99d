"""MD runner: energy conservation, thermostats and barostat, RDF/MSD analysis, schedules, the run_md tool."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read
from pymatgen.io.ase import AseAtomsAdaptor

from tools.core.errors import ToolInputError
from tools.core.registry import ToolContext, get_tool
from tools.md.analysis import diffusion_coefficient, fit_diffusion, half_min_width, msd, rdf
from tools.md.protocols import DynamicsSettings, heat_melt_quench, run_dynamics, run_schedule
from tools.structures.io import structure_to_cif

A_CU = 3.61


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny cells gain nothing from threads


def cu(rep: tuple[int, int, int] = (2, 2, 2)) -> Atoms:
    """Conventional fcc Cu supercell (4 atoms per repeat)."""
    return bulk("Cu", "fcc", a=A_CU, cubic=True).repeat(rep)


def test_nve_conserves_energy_with_emt() -> None:
    """Velocity Verlet at 2 fs keeps the total energy within 0.5 meV/atom while atoms really move."""
    atoms = cu()
    res = run_dynamics(atoms, EMT(), DynamicsSettings("nve", 600.0, 2.0, seed=3), steps=200, log_every=5)
    etot = np.array([r["etot_eV"] for r in res.rows])
    temps = np.array([r["temperature_K"] for r in res.rows])
    assert len(res.rows) == 41 and res.rows[-1]["step"] == 200
    assert np.abs(etot - etot[0]).max() / len(atoms) < 5e-4
    assert temps[5:].mean() > 150  # equipartition: about half the initial 600 K, far from zero
    assert np.ptp([r["epot_eV"] for r in res.rows]) > 0.1  # kinetic and potential energy really exchange


@pytest.mark.parametrize("ensemble", ["nvt_langevin", "nvt_bussi", "nvt_nose_hoover"])
def test_thermostats_hold_the_target_temperature(ensemble: str) -> None:
    """Starting far below (50 K), each thermostat brings the lattice to 500 K and holds it there on average."""
    atoms = cu()
    settings = DynamicsSettings(ensemble, 500.0, 2.0, friction_per_fs=0.05, tdamp_fs=20.0, seed=1)
    res = run_dynamics(atoms, EMT(), settings, steps=250, log_every=5, initial_temperature_K=50.0)
    temps = np.array([r["temperature_K"] for r in res.rows])
    assert temps[0] == pytest.approx(50.0, rel=0.5)
    assert abs(temps[len(temps) // 3 :].mean() - 500.0) < 0.15 * 500.0


def test_npt_mtk_reaches_target_pressure() -> None:
    """Isotropic MTK at 20 GPa compresses fcc Cu and its mean pressure approaches the target."""
    atoms = cu((2, 2, 1))
    v0 = atoms.get_volume()
    settings = DynamicsSettings("npt", 300.0, 2.0, pressure_GPa=20.0, tdamp_fs=50.0, pdamp_fs=100.0, seed=0)
    res = run_dynamics(atoms, EMT(), settings, steps=150, log_every=5)
    late = res.rows[len(res.rows) // 3 :]
    assert np.mean([r["volume_A3"] for r in late]) < 0.95 * v0
    assert abs(np.mean([r["pressure_GPa"] for r in late]) - 20.0) < 5.0


def test_rdf_peaks_at_known_neighbour_distances() -> None:
    """fcc Cu peaks at a/sqrt2, a, a*sqrt(3/2); rock-salt MgO partials at a/2 (Mg-O) and a/sqrt2 (Mg-Mg)."""
    res = rdf([cu((3, 3, 3))], r_max=5.0, n_bins=250)
    assert res.r_max == 5.0 and not res.note  # 3x3x3 cell: half its width (5.4 A) is beyond 5 A
    assert res.peaks[:3] == pytest.approx([A_CU / 2**0.5, A_CU, A_CU * 1.5**0.5], abs=0.03)
    hot = run_dynamics(cu(), EMT(), DynamicsSettings("nvt_langevin", 300.0, 2.0, seed=2), steps=100, log_every=10)
    assert rdf(hot.frames[3:], r_max=4.0).peaks[0] == pytest.approx(A_CU / 2**0.5, abs=0.1)
    mgo = bulk("MgO", "rocksalt", a=4.21, cubic=True).repeat((2, 2, 2))
    res = rdf([mgo], r_max=3.5, n_bins=175)
    assert res.partial_peaks["Mg-O"][0] == pytest.approx(2.105, abs=0.03)
    assert res.partial_peaks["Mg-Mg"][0] == pytest.approx(4.21 / 2**0.5, abs=0.03)
    assert res.peaks[0] == pytest.approx(2.105, abs=0.03)


def test_msd_recovers_known_diffusion_across_periodic_boundaries() -> None:
    """A Brownian walk with D = 0.5 A^2/ps, written wrapped into a small cell, gives back D after unwrapping."""
    rng = np.random.default_rng(0)
    n_atoms, n_frames, dt_fs, d_a2_fs = 400, 120, 30.0, 5e-4
    steps = rng.normal(scale=np.sqrt(2 * d_a2_fs * dt_fs), size=(n_frames, n_atoms, 3))
    steps[0] = 0
    pos = rng.uniform(0, 6, size=(n_atoms, 3)) + np.cumsum(steps, axis=0)
    frames = [Atoms(["Ar"] * n_atoms, positions=p, cell=np.eye(3) * 6.0, pbc=True) for p in pos]
    for f in frames:
        f.wrap()
    lags, values = msd(frames)
    d_cm2_s = diffusion_coefficient(lags * dt_fs, values)
    assert d_cm2_s == pytest.approx(d_a2_fs * 0.1, rel=0.15)
    fit = fit_diffusion(lags * dt_fs, values)  # MSD reaches 6 D t = 5.4 A^2 and grows linearly: no warning
    assert fit.loglog_slope == pytest.approx(1.0, abs=0.1) and fit.msd_end_A2 > 3.0 and not fit.warning
    wrapped = np.stack([f.positions for f in frames])
    crossed = (np.abs(np.diff(wrapped, axis=0)) > 3.0).any(axis=(0, 2)).sum()
    assert crossed > 50  # many atoms crossed the boundary: unwrapping mattered


def test_rdf_stops_at_half_the_shortest_cell_width() -> None:
    """An ideal gas of 14 atoms in a sheared cell: g(r) is flat near 1 up to half the shortest perpendicular width
    (2.08 A here, though every cell vector is at least 5 A long) and says why it stops there; asked for 12 A, the old
    range let every atom count its own periodic images as neighbours."""
    rng = np.random.default_rng(4)
    cell = np.array([[5.0, 0.0, 0.0], [4.0, 6.0, 0.0], [0.0, 0.0, 7.0]])  # width along a: V / |b x c| = 4.16 A
    widths = [abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
              for k in range(3)]
    assert min(widths) < min(np.linalg.norm(cell, axis=1))  # the sheared direction is the narrow one
    gas = [Atoms(["Ar"] * 14, scaled_positions=rng.uniform(size=(14, 3)), cell=cell, pbc=True) for _ in range(400)]
    assert half_min_width(gas[0]) == pytest.approx(min(widths) / 2)
    res = rdf(gas, r_max=12.0, n_bins=240)
    assert res.r_max == pytest.approx(min(widths) / 2) and res.r_max_requested == 12.0
    assert res.r[-1] < res.r_max and len(res.r) == round(240 * res.r_max / 12.0)  # same bin width as asked
    assert "r_max = 2.08 Å" in res.note and "periodic images" in res.note
    far = res.g[res.r > 1.0]
    assert abs(far.mean() - 13 / 14) < 0.05 and far.max() < 1.6  # ideal gas: flat
    solid = rdf([cu()], r_max=6.0)  # 2x2x2 fcc Cu: 3.61 A, only the first neighbour shell fits
    assert solid.r_max == pytest.approx(A_CU) and solid.peaks == pytest.approx([A_CU / 2**0.5], abs=0.03)
    assert rdf([cu((3, 3, 3))], r_max=6.0).r_max == pytest.approx(1.5 * A_CU)
    molecule = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 3.0]], cell=np.eye(3) * 4, pbc=False)
    assert half_min_width(molecule) == float("inf")


def test_diffusion_warns_outside_the_diffusive_regime() -> None:
    """Free flight (an ideal gas at 300 K) is ballistic, MSD = 3 kT/m t^2; a vibrating EMT Cu crystal stays caged
    below 1 A^2. Both give a number, each with a warning that says why it is not a diffusion coefficient."""
    from ase import units

    rng = np.random.default_rng(1)
    n, mass, kT = 300, 39.948, 300 * units.kB
    v = rng.normal(scale=np.sqrt(kT / mass), size=(n, 3)) * units.fs  # A per fs
    x0 = rng.uniform(0, 20, size=(n, 3))
    gas = [Atoms(["Ar"] * n, positions=x0 + v * t, cell=np.eye(3) * 20, pbc=True) for t in np.arange(0, 400, 10.0)]
    for f in gas:
        f.wrap()
    lags, values = msd(gas)
    t = lags * 10.0
    expected = 3 * kT / mass * (t * units.fs) ** 2
    assert values[-1] == pytest.approx(expected[-1], rel=0.15)
    fit = fit_diffusion(t, values)
    assert fit.loglog_slope == pytest.approx(2.0, abs=0.05)
    assert "t^2.00" in fit.warning and "ballistic" in fit.warning and "not reliable" in fit.warning

    hot = run_dynamics(cu(), EMT(), DynamicsSettings("nvt_langevin", 300.0, 2.0, friction_per_fs=0.05, seed=5),
                       steps=300, log_every=5)
    lags, values = msd(hot.frames[10:])
    fit = fit_diffusion(lags * 10.0, values)
    assert values[-1] < 0.5 and fit.loglog_slope < 0.5
    assert "caged" in fit.warning and "have not left their sites" in fit.warning


def test_run_md_report_states_rdf_range_and_diffusion_regime(workspace) -> None:
    """The run_md output (from real EMT dynamics of 32-atom Cu) gives the RDF range it used with the reason, the
    MSD slope, and the diffusion warning (a crystal at 300 K: MSD of 0.02 A^2) in its warnings."""
    from tools.md.run import RunMDInput, _report

    atoms = cu()
    res = run_dynamics(atoms, EMT(), DynamicsSettings("nvt_langevin", 300.0, 2.0, seed=0), steps=100, log_every=5)
    structure = AseAtomsAdaptor.get_structure(atoms)
    inp = RunMDInput(structure={"text": structure_to_cif(structure)}, ensemble="nvt_langevin", steps=100,
                     log_every=5, timestep_fs=2.0, rdf_r_max=6.0)
    out = _report(inp, ToolContext(tool_name="run_md"), "emt", structure, atoms, res.frames, res.rows,
                  res.wall_time_s, ToolContext(tool_name="run_md").artifact_dir())
    assert out.rdf_r_max_A == pytest.approx(A_CU)
    assert any("r_max = 3.61 Å" in w and "requested 6.00 Å" in w for w in out.warnings)
    assert out.msd_loglog_slope is not None and not 0.7 <= out.msd_loglog_slope <= 1.3  # 80 fs lags: not diffusive
    assert any("diffusive regime" in w for w in out.warnings)


def test_heat_melt_quench_schedule_follows_its_targets() -> None:
    """The protocol helper ramps the thermostat target; the lattice follows it up, holds and cools down."""
    schedule = heat_melt_quench(T_low=200, T_high=1600, heat_steps=100, melt_steps=100, quench_steps=100,
                                final_steps=60)
    assert [s.name for s in schedule] == ["heat", "melt", "quench", "hold"]
    seen: list[float] = []
    res = run_schedule(cu(), EMT(), schedule, timestep_fs=2.0, log_every=10, friction_per_fs=0.05, seed=0,
                       progress=lambda done, total, msg: seen.append(done))
    rows = res.rows
    stages = [f.info["stage"] for f in res.frames]
    assert stages[0] == "heat" and stages[-1] == "hold" and "melt" in stages and "quench" in stages
    targets = [r["target_temperature_K"] for r in rows]
    assert targets[0] == pytest.approx(200) and max(targets) == pytest.approx(1600)
    assert targets[-1] == pytest.approx(200)
    melt = [r["temperature_K"] for r, s in zip(rows, stages, strict=True) if s == "melt"]
    hold = [r["temperature_K"] for r, s in zip(rows, stages, strict=True) if s == "hold"]
    assert 1100 < np.mean(melt) < 2100 and np.mean(hold) < 600
    assert seen and seen[-1] <= 360


def _emt_frames(n: int, seed: int) -> list[Atoms]:
    """EMT-labelled rattled/strained Cu cells for a quick fit."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=A_CU * (1 + rng.uniform(-0.02, 0.02)), cubic=True).repeat((2, 1, 1))
        atoms.rattle(0.08, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        labels = dict(energy=atoms.get_potential_energy(), forces=atoms.get_forces(), stress=atoms.get_stress())
        atoms.calc = SinglePointCalculator(atoms, **labels)
        out.append(atoms)
    return out


@pytest.mark.slow
def test_run_md_tool_with_our_potential_conserves_energy(workspace, tmp_path) -> None:
    """Through the registry: NVE with a briefly trained matsearch potential writes trajectory, log and plots."""
    from models.potentials.equivariant import PotentialConfig
    from models.potentials.training import TrainConfig, train_potential

    ckpt = workspace / "potentials" / "cu.pt"  # a potential is a name or a file inside the workspace
    ckpt.parent.mkdir(parents=True)
    cfg = PotentialConfig(kind="allegro", species=["Cu"], cutoff=4.0, l_max=1, num_layers=2, num_features=8,
                          num_basis=6, latent_dim=16, radial_mlp_width=16)
    train_potential(_emt_frames(10, 0), _emt_frames(3, 1), cfg, TrainConfig(epochs=6, lr=1e-2, ema_decay=0.9), ckpt)
    cif = structure_to_cif(AseAtomsAdaptor.get_structure(cu((2, 1, 1))))
    args = {"structure": {"text": cif}, "potential": str(ckpt), "ensemble": "nve", "temperature_K": 300,
            "timestep_fs": 1.0, "steps": 100, "log_every": 5}
    out = get_tool("run_md").run(args, ToolContext())
    assert out.n_atoms == 8 and out.frames_recorded == 21 and out.potential == str(ckpt)
    traj = read(workspace / out.trajectory_uri.removeprefix("artifact://"), index=":")
    assert len(traj) == 21 and traj[-1].get_forces().shape == (8, 3)
    with open(workspace / out.thermo_log_uri.removeprefix("artifact://")) as fh:
        rows = list(csv.DictReader(fh))
    etot = np.array([float(r["etot_eV"]) for r in rows])
    assert len(rows) == 21 and np.abs(etot - etot[0]).max() / 8 < 1e-3
    assert float(rows[-1]["volume_A3"]) == pytest.approx(2 * A_CU**3, rel=1e-6)
    for uri in (out.thermo_plot_uri, out.rdf_plot_uri, out.msd_plot_uri):
        assert (workspace / uri.removeprefix("artifact://")).stat().st_size > 5000
    assert out.mean_density_g_cm3 == pytest.approx(8 * 63.546 / (2 * A_CU**3) * 1.66054, rel=1e-3)


@pytest.mark.slow
def test_run_md_tool_with_chgnet_stores_final_frame(workspace) -> None:
    """A short CHGNet NVE run on 4 atoms: small energy drift, RDF range capped by the cell, final frame in memory."""
    cif = structure_to_cif(AseAtomsAdaptor.get_structure(cu((1, 1, 1))))
    out = get_tool("run_md").run({"structure": {"text": cif}, "potential": "chgnet", "ensemble": "nve",
                                  "temperature_K": 300, "timestep_fs": 1.0, "steps": 40, "log_every": 4,
                                  "store_final": True, "equilibration_fraction": 0.0}, ToolContext())
    assert out.frames_recorded == 11 and abs(out.energy_drift_meV_per_atom_per_ps) < 20
    with open(workspace / out.thermo_log_uri.removeprefix("artifact://")) as fh:
        etot = np.array([float(r["etot_eV"]) for r in csv.DictReader(fh)])
    assert np.abs(etot - etot[0]).max() / 4 < 2e-3
    # 4 atoms: half the cell width (1.8 A) is short of the first neighbour shell, so no RDF peak, and it says why
    assert out.rdf_peaks_A == [] and out.rdf_r_max_A == pytest.approx(A_CU / 2)
    assert any("half the shortest perpendicular cell width" in w for w in out.warnings)
    assert out.mean_pressure_GPa is not None
    final = out.final_structure
    assert final is not None and final.n_sites == 4 and final.provenance["tool"] == "run_md"
    assert final.provenance["parameters"]["ensemble"] == "nve"


@pytest.mark.slow
def test_run_md_as_a_job_reports_progress_and_result(workspace) -> None:
    """run_md through the job queue (what MCP clients use for long runs): an estimate up front, progress while it
    runs, and the same result model at the end, with its trajectory on disk."""
    cif = structure_to_cif(AseAtomsAdaptor.get_structure(cu((1, 1, 1))))
    args = {"structure": {"text": cif}, "potential": "chgnet", "ensemble": "nvt_langevin", "temperature_K": 300,
            "timestep_fs": 2.0, "steps": 30, "log_every": 5}
    started = get_tool("job_start").run({"tool": "run_md", "arguments": args}, ToolContext())
    assert started.estimated_seconds is not None and started.estimated_seconds > 0
    info = started
    for _ in range(12):
        info = get_tool("job_wait").run({"job_id": started.job_id, "timeout_s": 50}, ToolContext())
        if info.state not in ("queued", "running"):
            break
    assert info.state == "succeeded", info.error
    assert info.total is not None and info.progress == info.total
    assert info.result["frames_recorded"] == 7 and info.result["ensemble"] == "nvt_langevin"
    traj = read(workspace / info.result["trajectory_uri"].removeprefix("artifact://"), index=":")
    assert len(traj) == 7


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"temperature_K": -5}, "temperature_K"),
        ({"timestep_fs": 20}, "timestep_fs"),
        ({"steps": 10**7}, "steps"),
        ({"ensemble": "nvt_magic"}, "ensemble"),
        ({"potential": "no-such-potential"}, "no-such-potential"),
        ({"steps": 50_000, "log_every": 1}, "log_every"),
        ({"ensemble": "nvt_bussi", "temperature_K": 0}, "cannot start from rest"),
        ({"ensemble": "nvt_nose_hoover", "initial_temperature_K": 0}, "cannot start from rest"),
    ],
)
def test_run_md_rejects_bad_input(workspace, change: dict, fragment: str) -> None:
    """Out-of-range numbers, unknown ensembles and potentials fail with a message naming the problem."""
    cif = structure_to_cif(AseAtomsAdaptor.get_structure(cu((1, 1, 1))))
    with pytest.raises(ToolInputError, match=fragment):
        get_tool("run_md").run({"structure": {"text": cif}, "steps": 10, **change}, ToolContext())


def test_run_md_repeats_a_small_cell_to_min_atoms(workspace) -> None:
    """A 1-atom fcc Cu cell with min_atoms=32 runs as a near-cubic supercell of at least 32 atoms (EMT, real
    dynamics), and the output says which repeats were used; a limit above the atom cap is refused by name."""
    from tools.md.run import supercell_repeats

    prim = bulk("Cu", "fcc", a=A_CU)
    assert math.prod(supercell_repeats(prim, 32)) >= 32
    cif = structure_to_cif(AseAtomsAdaptor.get_structure(prim))
    args = {"structure": {"text": cif}, "potential": "emt", "ensemble": "nvt_langevin", "temperature_K": 300,
            "steps": 20, "log_every": 5, "min_atoms": 32}
    out = get_tool("run_md").run(args, ToolContext())
    assert out.n_atoms >= 32 and out.n_atoms == math.prod(out.supercell)
    assert max(out.supercell) - min(out.supercell) <= 1
    with pytest.raises(ToolInputError, match="min_atoms=90000"):
        get_tool("run_md").run({**args, "min_atoms": 90000}, ToolContext())
