"""Umbrella sampling of an atomistic system along a learned CV with ASE: one Langevin run per harmonic window on any
ASE calculator (the bias through models.sampling.cv_bias.BiasedCalculator, forces by autograd through the CV network),
with
optional replica exchange between windows neighbouring along the CV (REUS). Gives UmbrellaSamples for MBAR/WHAM."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from models.free_energy.estimators import UmbrellaSamples, exchange_neighbours, window_kappas
from models.progress import ProgressFn
from models.sampling.cv import MultitaskCV
from models.sampling.cv_bias import BiasedCalculator, network_cv


def umbrella_ase(
    starts: list[Atoms],
    base_calc: Calculator,
    model: MultitaskCV,
    centers: np.ndarray,
    kappa: float | np.ndarray,
    temperature_K: float,
    n_steps: int,
    n_equil: int,
    stride: int,
    timestep_fs: float = 1.0,
    friction_per_fs: float = 0.01,
    exchange_every: int | None = None,
    seed: int = 0,
    callback: ProgressFn | None = None,
) -> UmbrellaSamples:
    """Langevin MD at `temperature_K` in every window k (bias kappa_k/2 (s - centers[k])^2 kT on CV component 0),
    window k started from `starts[k]`; a frame every `stride` steps after `n_equil`. With `exchange_every`, replicas
    swap windows with a neighbour (alternating pairs, Metropolis on the bias energies) at the first frame boundary
    after every that many steps. Frames come unlabelled (basin -1): their basins follow the system's own rule
    (quenching, models.sampling.quench, or a rule of the caller's), never the CV. ValueError when a window's dynamics
    blow up
    (non-finite positions)."""
    centers = np.asarray(centers, dtype=float)
    kappas = window_kappas(kappa, len(centers))
    kT = units.kB * temperature_K
    rng = np.random.default_rng(seed)
    replicas, dynamics, calcs = _replicas(
        starts, base_calc, model, centers, kappas * kT, temperature_K, timestep_fs, friction_per_fs, seed
    )
    window_of = np.arange(len(centers))
    every = max(1, round(exchange_every / stride)) if exchange_every else 0
    rows: dict[str, list] = {"window": [], "frame": [], "s": [], "x": []}
    attempts = accepted = 0
    n_blocks = n_steps // stride
    for block in range(n_blocks):
        _advance(dynamics, replicas, centers, window_of, stride)
        x = np.stack([a.positions.ravel() for a in replicas])
        s = model.cv_numpy(x)[:, 0]
        step = (block + 1) * stride
        if step > n_equil:
            rows["window"].append(window_of.copy())
            rows["frame"].append(np.full(len(replicas), block))
            rows["s"].append(s)
            rows["x"].append(x)
        if every and (block + 1) % every == 0:
            window_of, tried, ok = exchange_neighbours(s, window_of, centers, kappas, rng, (block // every) % 2)
            attempts, accepted = attempts + tried, accepted + ok
            _retarget(calcs, centers, kappas, window_of, kT)
        if callback is not None:
            callback(step, n_blocks * stride, None)
    metadata = {
        "engine": "ase-langevin",
        "temperature_K": temperature_K,
        "kT_eV": kT,
        "timestep_fs": timestep_fs,
        "friction_per_fs": friction_per_fs,
        "n_steps": n_steps,
        "n_equil": n_equil,
        "stride": stride,
        "exchange_every": exchange_every,
        "acceptance": None,
        "exchange_acceptance": accepted / attempts if attempts else None,
    }
    return _samples(rows, centers, kappa, kT, metadata)


def _replicas(
    starts: list[Atoms], base_calc: Calculator, model: MultitaskCV, centers: np.ndarray, k_eV: np.ndarray,
    temperature_K: float, timestep_fs: float, friction_per_fs: float, seed: int,
) -> tuple[list[Atoms], list[Langevin], list[BiasedCalculator]]:
    """One replica per window: a copy of its start under the window's bias (force constant k_eV[k], eV), velocities
    and Langevin noise from their own seeded generators, so a seed repeats every window's trajectory."""
    replicas, dynamics, calcs = [], [], []
    for k, start in enumerate(starts):
        atoms = start.copy()
        calc = BiasedCalculator(base_calc, network_cv(model), center=centers[k], k=k_eV[k])
        atoms.calc = calc
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed + 7919 * k))
        dynamics.append(
            Langevin(
                atoms,
                timestep_fs * units.fs,
                temperature_K=temperature_K,
                friction=friction_per_fs / units.fs,
                fixcm=False,
                rng=np.random.default_rng(seed + 104729 + k),
            )
        )
        replicas.append(atoms)
        calcs.append(calc)
    return replicas, dynamics, calcs


def _advance(
    dynamics: list[Langevin], replicas: list[Atoms], centers: np.ndarray, window_of: np.ndarray, stride: int
) -> None:
    """Run every replica `stride` steps; ValueError naming the window whose positions went non-finite (the MD blew
    up), so a bad timestep or kappa fails loudly instead of sampling garbage."""
    for k, dyn in enumerate(dynamics):
        dyn.run(stride)
        if not np.all(np.isfinite(replicas[k].positions)):
            raise ValueError(
                f"MD in the window at s = {centers[window_of[k]]:.3g} blew up (non-finite positions); lower "
                "timestep_fs or kappa"
            )


def _retarget(
    calcs: list[BiasedCalculator], centers: np.ndarray, kappas: np.ndarray, window_of: np.ndarray, kT: float
) -> None:
    """Point each replica's bias at the window it now holds after an exchange, dropping its cached energy and forces
    (they belong to the old window)."""
    for r, calc in enumerate(calcs):
        if calc.center != centers[window_of[r]]:
            calc.center, calc.k = float(centers[window_of[r]]), float(kappas[window_of[r]] * kT)
            calc.reset()  # the cached energy and forces belong to the old window


def _samples(
    rows: dict[str, list], centers: np.ndarray, kappa: float | np.ndarray, kT: float, metadata: dict[str, Any]
) -> UmbrellaSamples:
    """The collected frames as UmbrellaSamples: one walker per window, basins unlabelled (-1) for the caller's
    rule."""
    x = np.concatenate(rows["x"])
    return UmbrellaSamples(
        centers=centers,
        kappa=kappa,
        kT=kT,
        window=np.concatenate(rows["window"]),
        walker=np.zeros(len(x), dtype=int),
        frame=np.concatenate(rows["frame"]),
        s=np.concatenate(rows["s"]),
        basin=np.full(len(x), -1),
        x=x,
        metadata=metadata,
    )
