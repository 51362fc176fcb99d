"""Basins of atomistic frames by quenching: a frame belongs to the basin its local energy minimisation ends in (its
inherent structure), judged where a classifier is reliable, at the minimum. This labels transition-region frames
(umbrella windows on a barrier) that no basin run visited, so a CV can be retrained on them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.optimize import FIRE


def quench_basins(
    frames: np.ndarray,
    template: Atoms,
    calc: Calculator,
    classify: Callable[[np.ndarray], np.ndarray],
    fmax: float = 0.05,
    max_steps: int = 300,
    callback: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Minimise each flattened frame (n, n_atoms*3; Angstrom) with FIRE on `calc` (atoms from `template`: numbers,
    cell, pbc) to max force `fmax` eV/A or `max_steps`, and label it with classify(minimised frames). Returns
    labels (n,), the frames' potential energies (eV, before minimisation), the minima's energies and whether each
    minimisation converged."""
    minima = np.empty((len(frames), 3 * len(template)))
    energy, e_min, converged = np.empty(len(frames)), np.empty(len(frames)), np.zeros(len(frames), bool)
    for i, x in enumerate(frames):
        atoms = template.copy()
        atoms.positions = np.asarray(x, float).reshape(-1, 3)
        atoms.calc = calc
        energy[i] = atoms.get_potential_energy()
        opt = FIRE(atoms, logfile=None)
        converged[i] = bool(opt.run(fmax=fmax, steps=max_steps))
        e_min[i] = atoms.get_potential_energy()
        minima[i] = atoms.positions.ravel()
        if callback is not None:
            callback(i + 1, len(frames))
    return {
        "labels": np.asarray(classify(minima), dtype=int),
        "energy": energy,
        "minimum_energy": e_min,
        "converged": converged,
    }


def frame_energies(frames: np.ndarray, template: Atoms, calc: Calculator) -> np.ndarray:
    """Potential energies (eV) of flattened frames (n, n_atoms*3; Angstrom) with `calc`, atoms from `template`."""
    atoms = template.copy()
    atoms.calc = calc
    out = np.empty(len(frames))
    for i, x in enumerate(frames):
        atoms.positions = np.asarray(x, float).reshape(-1, 3)
        out[i] = atoms.get_potential_energy()
    return out
