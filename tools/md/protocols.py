"""The MD engine behind `run_md` and reusable temperature protocols (heat / melt / quench schedules).

Everything here is a plain function on ASE `Atoms` and any ASE calculator, so other tools (crystallization,
active learning) reuse it without going through the tool layer: `make_dynamics` builds an ASE integrator for an
ensemble, `run_dynamics` runs it while recording frames and a thermo log, `heat_melt_quench` builds a schedule and
`run_schedule` drives a thermostat through it (linear ramps of the target temperature between holds).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.md import MolecularDynamics

from models.potentials.labels import ENERGY, FORCES, STRESS
from tools.core.registry import ProgressFn

Ensemble = Literal["nve", "nvt_langevin", "nvt_nose_hoover", "nvt_bussi", "npt"]
ENSEMBLES: tuple[str, ...] = ("nve", "nvt_langevin", "nvt_nose_hoover", "nvt_bussi", "npt")
ScheduleThermostat = Literal["langevin", "bussi", "npt_berendsen"]
THERMO_FIELDS = ("step", "time_fs", "epot_eV", "ekin_eV", "etot_eV", "temperature_K", "pressure_GPa", "volume_A3",
                 "density_g_cm3", "target_temperature_K")


@dataclass
class DynamicsSettings:
    """How to integrate: ensemble, target temperature/pressure, time step and coupling times (ASE conventions)."""

    ensemble: str = "nvt_langevin"
    temperature_K: float = 300.0
    timestep_fs: float = 1.0
    pressure_GPa: float = 0.0
    friction_per_fs: float = 0.01  # Langevin friction
    tdamp_fs: float | None = None  # thermostat time constant (Nose-Hoover, Bussi, MTK); default 100 time steps
    pdamp_fs: float | None = None  # barostat time constant (MTK); default 1000 time steps
    npt_cell: Literal["isotropic", "anisotropic"] = "isotropic"
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject values ASE would accept but that make no physical sense."""
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"unknown ensemble {self.ensemble!r}; choose one of {', '.join(ENSEMBLES)}")
        if not (self.temperature_K >= 0 and math.isfinite(self.temperature_K)):
            raise ValueError(f"temperature_K must be >= 0, got {self.temperature_K}")
        if not (0 < self.timestep_fs <= 10):
            raise ValueError(f"timestep_fs must be in (0, 10] fs, got {self.timestep_fs}")

    @property
    def tdamp(self) -> float:
        """Thermostat time constant in ASE time units."""
        return (self.tdamp_fs or 100.0 * self.timestep_fs) * units.fs

    @property
    def pdamp(self) -> float:
        """Barostat time constant in ASE time units."""
        return (self.pdamp_fs or 1000.0 * self.timestep_fs) * units.fs


def initialize_velocities(atoms: Atoms, temperature_K: float, seed: int = 0) -> None:
    """Maxwell-Boltzmann velocities at `temperature_K` with zero total momentum (reproducible from `seed`)."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    if temperature_K <= 0:
        atoms.set_momenta(np.zeros((len(atoms), 3)))
        return
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)


def make_dynamics(atoms: Atoms, settings: DynamicsSettings) -> MolecularDynamics:
    """The ASE integrator for an ensemble (VelocityVerlet, Langevin, Nose-Hoover chain, Bussi, MTK NPT)."""
    dt = settings.timestep_fs * units.fs
    rng = np.random.default_rng(settings.seed + 1)
    if settings.ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt)
    if settings.ensemble == "nvt_langevin":
        from ase.md.langevin import Langevin

        return Langevin(atoms, timestep=dt, temperature_K=settings.temperature_K,
                        friction=settings.friction_per_fs / units.fs, fixcm=False, rng=rng)
    if settings.ensemble == "nvt_nose_hoover":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=settings.temperature_K, tdamp=settings.tdamp)
    if settings.ensemble == "nvt_bussi":
        from ase.md.bussi import Bussi

        return Bussi(atoms, timestep=dt, temperature_K=settings.temperature_K, taut=settings.tdamp, rng=rng)
    # npt: Martyna-Tobias-Klein with Nose-Hoover chains (isotropic volume or fully flexible cell)
    if not atoms.pbc.all():
        raise ValueError("NPT needs a fully periodic cell")
    from ase.md.nose_hoover_chain import MTKNPT, IsotropicMTKNPT

    cls = IsotropicMTKNPT if settings.npt_cell == "isotropic" else MTKNPT
    return cls(atoms, timestep=dt, temperature_K=max(settings.temperature_K, 1e-6),
               pressure_au=settings.pressure_GPa * units.GPa, tdamp=settings.tdamp, pdamp=settings.pdamp)


def _pressure_GPa(atoms: Atoms) -> float:
    """Instantaneous pressure including the kinetic term; NaN when the calculator gives no stress."""
    if not atoms.pbc.all():
        return float("nan")
    try:
        stress = atoms.get_stress(include_ideal_gas=True, voigt=True)
    except Exception:  # calculators without stress (or non-periodic models) simply have no pressure
        return float("nan")
    return float(-np.mean(stress[:3]) / units.GPa)


def thermo_row(atoms: Atoms, step: int, time_fs: float, target_K: float | None = None) -> dict[str, float]:
    """One thermo-log line: energies, temperature, pressure, volume and density of the current state."""
    epot = float(atoms.get_potential_energy())
    ekin = float(atoms.get_kinetic_energy())
    periodic = bool(atoms.pbc.all())
    volume = float(atoms.get_volume()) if periodic else float("nan")
    density = float(atoms.get_masses().sum() / volume * 1.66053906660) if periodic else float("nan")
    return {
        "step": int(step),
        "time_fs": float(time_fs),
        "epot_eV": epot,
        "ekin_eV": ekin,
        "etot_eV": epot + ekin,
        "temperature_K": float(atoms.get_temperature()),
        "pressure_GPa": _pressure_GPa(atoms),
        "volume_A3": volume,
        "density_g_cm3": density,
        "target_temperature_K": float("nan") if target_K is None else float(target_K),
    }


def snapshot(atoms: Atoms, info: dict[str, Any] | None = None) -> Atoms:
    """A detached copy of the current frame carrying the energy, forces (and stress) just computed."""
    frame = atoms.copy()
    frame.set_momenta(atoms.get_momenta())
    results: dict[str, Any] = {ENERGY: atoms.get_potential_energy(), FORCES: atoms.get_forces()}
    calc = atoms.calc
    if calc is not None and STRESS in getattr(calc, "results", {}):
        results[STRESS] = np.array(calc.results[STRESS])
    frame.calc = SinglePointCalculator(frame, **results)
    frame.info.update(info or {})
    return frame


@dataclass
class Recorder:
    """Collects frames and thermo rows, streaming them to an extxyz trajectory and a CSV log when paths are set."""

    trajectory_path: Path | None = None
    thermo_path: Path | None = None
    keep_frames: bool = True
    frames: list[Atoms] = field(default_factory=list)
    rows: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Start fresh files (a header line for the CSV)."""
        if self.trajectory_path is not None:
            self.trajectory_path.write_text("")
        if self.thermo_path is not None:
            with self.thermo_path.open("w", newline="") as fh:
                csv.writer(fh).writerow(THERMO_FIELDS)

    def record(self, atoms: Atoms, step: int, time_fs: float, target_K: float | None = None,
               stage: str | None = None) -> None:
        """Append the current state to the log (and the trajectory / in-memory frames)."""
        row = thermo_row(atoms, step, time_fs, target_K)
        self.rows.append(row)
        if self.thermo_path is not None:
            with self.thermo_path.open("a", newline="") as fh:
                csv.writer(fh).writerow([_fmt(row[k]) for k in THERMO_FIELDS])
        info: dict[str, Any] = {"step": int(step), "time_fs": float(time_fs), "temperature_K": row["temperature_K"]}
        if stage:
            info["stage"] = stage
        frame = snapshot(atoms, info)
        if self.trajectory_path is not None:
            from ase.io import write

            write(self.trajectory_path, frame, format="extxyz", append=True)
        if self.keep_frames:
            self.frames.append(frame)


def _fmt(value: float) -> str:
    """CSV number formatting (integers stay integers)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.8g}"


@dataclass
class DynamicsResult:
    """What a dynamics run produced: recorded frames, thermo rows, steps done and wall time."""

    frames: list[Atoms]
    rows: list[dict[str, float]]
    steps: int
    wall_time_s: float


def run_dynamics(
    atoms: Atoms,
    calculator: Calculator,
    settings: DynamicsSettings,
    steps: int,
    log_every: int = 10,
    recorder: Recorder | None = None,
    progress: ProgressFn | None = None,
    initial_temperature_K: float | None = None,
    init_velocities: bool = True,
    step_offset: int = 0,
) -> DynamicsResult:
    """Integrate `steps` steps of `atoms` (modified in place) with `calculator`, recording every `log_every` steps.

    `progress(done, total, message)` is called about 100 times per run (and may raise to cancel).
    """
    import time

    if steps < 0 or log_every < 1:
        raise ValueError("steps must be >= 0 and log_every >= 1")
    atoms.calc = calculator
    if init_velocities:
        t0 = settings.temperature_K if initial_temperature_K is None else initial_temperature_K
        if t0 <= 0 and settings.ensemble in ("nvt_bussi", "nvt_nose_hoover", "npt"):
            raise ValueError(f"{settings.ensemble} rescales velocities and cannot start from rest: "
                             "give an initial temperature above 0 K")
        initialize_velocities(atoms, t0, settings.seed)
    dyn = make_dynamics(atoms, settings)
    rec = recorder or Recorder()
    dt_fs = settings.timestep_fs
    target = None if settings.ensemble == "nve" else settings.temperature_K

    def log() -> None:
        step = step_offset + dyn.nsteps
        rec.record(atoms, step, step * dt_fs, target)

    def report() -> None:
        if progress is not None:
            progress(dyn.nsteps, steps, f"step {dyn.nsteps}/{steps}, T = {atoms.get_temperature():.0f} K")

    dyn.attach(log, interval=log_every)
    dyn.attach(report, interval=max(1, steps // 100))
    start = time.perf_counter()
    dyn.run(steps)
    if steps % log_every:  # always end the log on the final state
        log()
    return DynamicsResult(rec.frames, rec.rows, steps, time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------------------------
# Temperature protocols
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Stage:
    """One segment of a schedule: the target temperature goes linearly from T_start to T_end over `steps` steps."""

    name: str
    steps: int
    T_start: float
    T_end: float

    def __post_init__(self) -> None:
        """Steps and temperatures must be non-negative."""
        if self.steps < 0 or self.T_start < 0 or self.T_end < 0:
            raise ValueError(f"stage {self.name!r}: steps and temperatures must be >= 0")

    def target(self, k: int) -> float:
        """Target temperature after k of this stage's steps."""
        return self.T_start + (self.T_end - self.T_start) * (k / max(self.steps, 1))


def heat_melt_quench(
    T_low: float,
    T_high: float,
    heat_steps: int,
    melt_steps: int,
    quench_steps: int,
    final_steps: int,
    T_final: float | None = None,
) -> list[Stage]:
    """The classic amorphisation / crystallisation schedule: heat T_low -> T_high, hold (melt), cool linearly to
    T_final (default T_low), hold. Zero-step stages are dropped."""
    t_final = T_low if T_final is None else T_final
    stages = [
        Stage("heat", heat_steps, T_low, T_high),
        Stage("melt", melt_steps, T_high, T_high),
        Stage("quench", quench_steps, T_high, t_final),
        Stage("hold", final_steps, t_final, t_final),
    ]
    return [s for s in stages if s.steps > 0]


def quench_rate_K_per_ps(stage: Stage, timestep_fs: float) -> float:
    """Cooling (negative) or heating rate of a stage in K/ps."""
    return (stage.T_end - stage.T_start) / max(stage.steps * timestep_fs / 1000.0, 1e-12)


def _set_target(dyn: MolecularDynamics, temperature_K: float) -> None:
    """Move a thermostat's target temperature (Langevin, Bussi, Berendsen NPT)."""
    kT = units.kB * temperature_K
    if hasattr(dyn, "target_kinetic_energy"):  # Bussi
        dyn.temp = kT
        dyn.target_kinetic_energy = 0.5 * kT * dyn.ndof
    elif hasattr(dyn, "set_temperature"):
        dyn.set_temperature(temperature_K=temperature_K)
    else:  # pragma: no cover - guarded by make_schedule_dynamics
        raise ValueError(f"{type(dyn).__name__} cannot change its target temperature")


def make_schedule_dynamics(
    atoms: Atoms, thermostat: str, temperature_K: float, timestep_fs: float, seed: int = 0,
    friction_per_fs: float = 0.01, tdamp_fs: float | None = None, pressure_GPa: float = 0.0,
) -> MolecularDynamics:
    """An integrator whose target temperature can be moved every step (for ramps)."""
    dt = timestep_fs * units.fs
    taut = (tdamp_fs or 100.0 * timestep_fs) * units.fs
    rng = np.random.default_rng(seed + 1)
    if thermostat == "langevin":
        from ase.md.langevin import Langevin

        return Langevin(atoms, timestep=dt, temperature_K=temperature_K, friction=friction_per_fs / units.fs,
                        fixcm=False, rng=rng)
    if thermostat == "bussi":
        from ase.md.bussi import Bussi

        return Bussi(atoms, timestep=dt, temperature_K=temperature_K, taut=taut, rng=rng)
    if thermostat == "npt_berendsen":
        from ase.md.nptberendsen import NPTBerendsen

        return NPTBerendsen(atoms, timestep=dt, temperature_K=temperature_K, taut=taut,
                            pressure_au=pressure_GPa * units.GPa, taup=10 * taut,
                            compressibility_au=1.0 / (100 * units.GPa))
    raise ValueError(f"unknown schedule thermostat {thermostat!r}; choose langevin, bussi or npt_berendsen")


def run_schedule(
    atoms: Atoms,
    calculator: Calculator,
    schedule: Sequence[Stage],
    timestep_fs: float = 2.0,
    thermostat: str = "langevin",
    log_every: int = 10,
    seed: int = 0,
    recorder: Recorder | None = None,
    progress: ProgressFn | None = None,
    friction_per_fs: float = 0.01,
    pressure_GPa: float = 0.0,
    init_velocities: bool = True,
) -> DynamicsResult:
    """Drive `atoms` through a temperature schedule with one thermostat, moving its target every step.

    Frames and thermo rows carry the stage name and target temperature; `progress` gets (step, total, message).
    """
    import time

    if not schedule:
        raise ValueError("the schedule has no stages")
    if not (0 < timestep_fs <= 10):
        raise ValueError(f"timestep_fs must be in (0, 10] fs, got {timestep_fs}")
    atoms.calc = calculator
    if init_velocities:
        initialize_velocities(atoms, schedule[0].T_start, seed)
    dyn = make_schedule_dynamics(atoms, thermostat, max(schedule[0].T_start, 1e-6), timestep_fs, seed,
                                 friction_per_fs, pressure_GPa=pressure_GPa)
    rec = recorder or Recorder()
    total = sum(s.steps for s in schedule)
    state: dict[str, Any] = {"stage": schedule[0], "offset": 0}

    def tick() -> None:
        stage, k = state["stage"], dyn.nsteps - state["offset"]
        _set_target(dyn, max(stage.target(k), 1e-6))

    def log() -> None:
        stage = state["stage"]
        rec.record(atoms, dyn.nsteps, dyn.nsteps * timestep_fs, stage.target(dyn.nsteps - state["offset"]), stage.name)

    def report() -> None:
        if progress is not None:
            progress(dyn.nsteps, total, f"{state['stage'].name}: T = {atoms.get_temperature():.0f} K")

    dyn.attach(tick, interval=1)
    dyn.attach(log, interval=log_every)
    dyn.attach(report, interval=max(1, total // 100))
    start = time.perf_counter()
    for stage in schedule:
        state["stage"], state["offset"] = stage, dyn.nsteps
        _set_target(dyn, max(stage.T_start, 1e-6))
        dyn.run(stage.steps)
    if total % log_every:
        log()
    return DynamicsResult(rec.frames, rec.rows, total, time.perf_counter() - start)
