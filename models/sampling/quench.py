"""Basins of atomistic frames by quenching: a frame belongs to the basin whose minimum its local energy minimisation
ends in (its inherent structure). This labels transition-region frames (umbrella windows on a barrier) that no basin
run visited, so a CV can be retrained on them; a frame that ends in a minimum of no labelled basin stays unlabelled."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.geometry import find_mic
from ase.optimize import FIRE

from models.progress import ProgressFn


def quench(
    frames: np.ndarray,
    template: Atoms,
    calc: Calculator,
    fmax: float = 0.05,
    max_steps: int = 300,
    callback: ProgressFn | None = None,
) -> dict[str, np.ndarray]:
    """Minimise each flattened frame (n, n_atoms*3; Angstrom) with FIRE on `calc` (atoms from `template`: numbers,
    cell, pbc) to max force `fmax` eV/A or `max_steps`. Returns the minima (n, n_atoms*3), the frames' potential
    energies (eV, before minimisation) and whether each minimisation converged."""
    minima = np.empty((len(frames), 3 * len(template)))
    energy, converged = np.empty(len(frames)), np.zeros(len(frames), bool)
    for i, x in enumerate(frames):
        atoms = template.copy()
        atoms.positions = np.asarray(x, float).reshape(-1, 3)
        atoms.calc = calc
        energy[i] = atoms.get_potential_energy()
        converged[i] = bool(FIRE(atoms, logfile=None).run(fmax=fmax, steps=max_steps))
        minima[i] = atoms.positions.ravel()
        if callback is not None:
            callback(i + 1, len(frames), None)
    return {"minima": minima, "energy": energy, "converged": converged}


def match_minima(
    minima: np.ndarray, references: np.ndarray, reference_labels: np.ndarray, template: Atoms, tol: float = 0.3
) -> np.ndarray:
    """Label of the reference minimum each minimum coincides with: every atom within `tol` A of it (minimum image,
    after removing a rigid translation, since a free slab drifts), else -1 (a minimum of no labelled basin)."""
    labels = np.full(len(minima), -1)
    for i, m in enumerate(minima):
        worst = []
        for ref in references:
            d = (np.asarray(m) - np.asarray(ref)).reshape(-1, 3)
            if template.pbc.any():
                d = find_mic(d, template.cell, template.pbc)[0]
            worst.append(float(np.linalg.norm(d - d.mean(0), axis=1).max()))
        j = int(np.argmin(worst))
        labels[i] = int(reference_labels[j]) if worst[j] <= tol else -1
    return labels


def shared_minima(
    minima: np.ndarray, labels: np.ndarray, template: Atoms, tol: float = 0.3
) -> list[tuple[int, int]]:
    """Pairs of basin labels (a < b) whose reference minima coincide (match_minima with the same `tol`): quenching
    cannot tell those basins apart, since a frame of either ends in the same minimum."""
    pairs = set()
    for b in np.unique(labels):
        others = labels != b
        if others.any():
            hit = match_minima(minima[others], minima[labels == b], labels[labels == b], template, tol) >= 0
            pairs |= {(int(min(a, b)), int(max(a, b))) for a in labels[others][hit]}
    return sorted(pairs)


def frame_energies(frames: np.ndarray, template: Atoms, calc: Calculator) -> np.ndarray:
    """Potential energies (eV) of flattened frames (n, n_atoms*3; Angstrom) with `calc`, atoms from `template`."""
    atoms = template.copy()
    atoms.calc = calc
    out = np.empty(len(frames))
    for i, x in enumerate(frames):
        atoms.positions = np.asarray(x, float).reshape(-1, 3)
        out[i] = atoms.get_potential_energy()
    return out
