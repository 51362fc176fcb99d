"""Amorphous precursors for the crystallization predictor: a random packed cell of a composition (no close
overlaps) and a melt-quench schedule (NVT hold at T_high, linear cool, hold) driven by the shared MD protocols."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, covalent_radii
from pymatgen.core import Composition, Element

from tools.core.errors import ToolInputError
from tools.core.registry import ProgressFn
from tools.md.protocols import Recorder, heat_melt_quench, run_schedule
from tools.potentials.calculators import potential_lock
from tools.potentials.uncertainty import outside_domain_by_stage

LOG_FRAMES = 20  # thermo rows per replica
GUARD_FRAMES = 100  # frames per replica that the uncertainty guard checks (a few % of the MD's force calls)


def integer_formula(comp: Composition, max_atoms: int) -> Composition:
    """The smallest integer formula unit of a composition; ToolInputError when none fits in `max_atoms` atoms."""
    if any(amount <= 0 for amount in comp.values()):
        raise ToolInputError(f"impossible stoichiometry {comp.formula!r}: every amount must be positive")
    formula, _ = comp.get_integer_formula_and_factor(max_denominator=max_atoms)
    unit = Composition(formula)
    ratio_in = np.array([comp.get_atomic_fraction(el) for el in comp.elements])
    ratio_out = np.array([unit.get_atomic_fraction(el) for el in comp.elements])
    lost = set(comp.elements) != set(unit.elements)
    if lost or unit.num_atoms > max_atoms or not np.allclose(ratio_in, ratio_out, atol=1e-3):
        raise ToolInputError(
            f"impossible stoichiometry {comp.formula!r}: it has no integer formula unit of at most {max_atoms} "
            "atoms (the cell size, n_atoms)"
        )
    return unit


def formula_units(unit: Composition, n_atoms: int) -> int:
    """How many formula units make a cell of at least `n_atoms` atoms (the fewest that do)."""
    return max(1, int(np.ceil(n_atoms / unit.num_atoms - 1e-9)))


def pair_distance(a: str, b: str) -> float:
    """Sum of ASE covalent radii of two elements, A."""
    return float(covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]])


def random_packed_cell(
    unit: Composition, n_units: int, volume_per_atom: float, seed: int, min_fraction: float = 0.75
) -> Atoms:
    """Atoms of `n_units` formula units placed at random in a cube of the given volume, every pair at least
    `min_fraction` x (sum of covalent radii) apart; the fraction shrinks by 10 % when packing fails."""
    symbols = [el.symbol for el, amount in unit.items() for _ in range(int(round(amount)) * n_units)]
    rng = np.random.default_rng(seed)
    rng.shuffle(symbols)
    n = len(symbols)
    length = float((n * volume_per_atom) ** (1.0 / 3.0))
    radii = np.array([covalent_radii[atomic_numbers[s]] for s in symbols])
    fraction = min_fraction
    for _ in range(12):
        positions = np.zeros((n, 3))
        placed = 0
        for i in range(n):
            for _trial in range(2000):
                trial = rng.random(3) * length
                if placed:
                    delta = positions[:placed] - trial
                    delta -= length * np.round(delta / length)
                    dist = np.sqrt((delta**2).sum(axis=1))
                    if np.any(dist < fraction * (radii[:placed] + radii[i])):
                        continue
                positions[i] = trial
                placed += 1
                break
            else:
                break
        if placed == n:
            atoms = Atoms(symbols, positions=positions, cell=[length] * 3, pbc=True)
            atoms.info["packing_fraction_of_covalent"] = fraction
            return atoms
        fraction *= 0.9
    raise ToolInputError(f"could not pack {n} atoms into {n * volume_per_atom:.1f} A^3: the density is too high")


def default_T_high(unit: Composition) -> float:
    """A melt temperature well above melting: 1.5 x the highest elemental melting point, within [2000, 4000] K."""
    melts = []
    for el in unit.elements:
        value = Element(el.symbol).melting_point
        if value is not None:
            melts.append(float(value))
    return float(np.clip(1.5 * max(melts, default=1500.0), 2000.0, 4000.0))


@dataclass
class MeltQuenchSchedule:
    """NVT melt-quench: hold at T_high, cool linearly to T_low, hold at T_low (Langevin, steps of timestep_fs)."""

    T_high: float = 2500.0
    T_low: float = 300.0
    melt_steps: int = 1000
    quench_steps: int = 2000
    hold_steps: int = 500
    timestep_fs: float = 2.0
    friction_per_fs: float = 0.01

    @property
    def total_steps(self) -> int:
        """MD steps per replica."""
        return self.melt_steps + self.quench_steps + self.hold_steps

    def quench_rate_K_per_ps(self) -> float:
        """Cooling rate of the linear quench in K/ps."""
        return (self.T_high - self.T_low) / max(self.quench_steps * self.timestep_fs / 1000.0, 1e-12)

    def as_dict(self) -> dict[str, float]:
        """Plain dict (for reports and provenance)."""
        return {**asdict(self), "quench_rate_K_per_ps": round(self.quench_rate_K_per_ps(), 3)}


@dataclass
class AmorphousReplica:
    """One quenched amorphous cell and its MD summary."""

    atoms: Atoms
    seed: int
    final_temperature_K: float
    final_epot_per_atom: float
    density_g_cm3: float
    wall_time_s: float
    # the uncertainty guard's outside_domain_by_stage of the recorded frames; None when not guarded
    outside_by_stage: dict[str, dict[str, float]] | None = None
    stage_wall_s: dict[str, float] = field(default_factory=dict)  # MD and guard seconds


def melt_quench(
    atoms: Atoms,
    calc: Calculator,
    potential: str,
    schedule: MeltQuenchSchedule,
    seed: int,
    progress: ProgressFn | None = None,
    guard: Path | None = None,
) -> AmorphousReplica:
    """Run the schedule on a copy of `atoms` with the shared MD protocols (holding the potential's lock). With a
    `guard` checkpoint (tools.potentials.uncertainty.guard_checkpoint of the potential), GUARD_FRAMES frames are
    kept and the share outside its calibrated domain is measured per stage (melt, quench, hold)."""
    work = atoms.copy()
    stages = heat_melt_quench(
        T_low=schedule.T_low,
        T_high=schedule.T_high,
        heat_steps=0,
        melt_steps=schedule.melt_steps,
        quench_steps=schedule.quench_steps,
        final_steps=schedule.hold_steps,
    )
    if not stages:
        raise ToolInputError("the melt-quench schedule has no steps")
    log_every = max(1, schedule.total_steps // (LOG_FRAMES if guard is None else GUARD_FRAMES))
    with potential_lock(potential):
        try:
            result = run_schedule(
                work,
                calc,
                stages,
                timestep_fs=schedule.timestep_fs,
                thermostat="langevin",
                log_every=log_every,
                seed=seed,
                recorder=Recorder(keep_frames=guard is not None),
                progress=progress,
                friction_per_fs=schedule.friction_per_fs,
            )
            epot = float(work.get_potential_energy())
        finally:
            work.calc = None
    last = result.rows[-1]
    if not np.isfinite(epot):
        raise ToolInputError(f"{potential} gave a non-finite energy during the melt-quench")
    start = time.perf_counter()
    outside = None if guard is None else outside_domain_by_stage(guard, result.frames)
    guard_s = time.perf_counter() - start
    quenched = Atoms(work.get_chemical_symbols(), positions=work.get_positions(), cell=work.cell, pbc=True)
    quenched.wrap()
    return AmorphousReplica(
        atoms=quenched,
        seed=seed,
        final_temperature_K=float(last["temperature_K"]),
        final_epot_per_atom=epot / len(work),
        density_g_cm3=float(last["density_g_cm3"]),
        wall_time_s=result.wall_time_s + guard_s,
        outside_by_stage=outside,
        stage_wall_s={"md": result.wall_time_s, **({"guard": guard_s} if guard is not None else {})},
    )
