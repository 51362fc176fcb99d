"""The keys of a labelled frame and of a potential's predictions, named once (as nequip names its data keys), and
the one reader of a frame's labels. A frame (ase.Atoms) carries its labels in its calculator's results (ASE's
extxyz reader makes a single-point calculator of them) or in info/arrays under the key or a REF_/dft_ variant."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

ENERGY = "energy"  # total energy (eV)
FREE_ENERGY = "free_energy"  # ASE's force-consistent energy: the energy label when ENERGY is absent
FORCES = "forces"  # per-atom forces (N, 3), eV/A
STRESS = "stress"  # eV/A^3: Voigt 6 in ASE results and in label dicts, 3x3 inside the models
ATOMIC_ENERGIES = "atomic_energies"  # per-atom energy contributions (N,) predicted by a matsearch potential
FEATURES = "features"  # per-atom invariant latent features (N, latent_dim) of a matsearch potential
N_ATOMS = "n_atoms"
LABEL_PREFIXES = ("", "REF_", "dft_")  # extxyz conventions: energy=, REF_energy=, dft_energy= ...


def _results(atoms: Atoms) -> dict[str, Any]:
    return getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}


def _stored(table: dict[str, Any], key: str) -> Any:
    """The first of key, REF_key, dft_key present in an info or arrays table, or None."""
    return next((table[p + key] for p in LABEL_PREFIXES if p + key in table), None)


def energy_label(atoms: Atoms) -> float | None:
    """The energy label (eV): the calculator's energy (else free_energy), else an info entry; None when absent."""
    results = _results(atoms)
    for key in (ENERGY, FREE_ENERGY):
        if key in results:
            return float(results[key])
    value = _stored(atoms.info, ENERGY)
    return None if value is None else float(value)


def forces_label(atoms: Atoms) -> np.ndarray | None:
    """The force labels (N, 3) in eV/A: the calculator's, else an arrays entry; None when absent."""
    value = _results(atoms).get(FORCES)
    value = _stored(atoms.arrays, FORCES) if value is None else value
    return None if value is None else np.asarray(value, dtype=np.float64)


def stress_label(atoms: Atoms) -> np.ndarray | None:
    """The stress label as a 3x3 matrix (eV/A^3): the calculator's, else an info entry (Voigt 6 or 3x3)."""
    value = _results(atoms).get(STRESS)
    value = _stored(atoms.info, STRESS) if value is None else value
    if value is None:
        return None
    stress = np.asarray(value, dtype=np.float64)
    return voigt_6_to_full_3x3_stress(stress) if stress.size == 6 else stress.reshape(3, 3)


def read_labels(atoms: Atoms) -> dict[str, Any]:
    """A frame's labels as a dict: ENERGY, FORCES, STRESS (Voigt 6) and N_ATOMS; None where a label is absent."""
    stress = stress_label(atoms)
    return {
        ENERGY: energy_label(atoms),
        FORCES: forces_label(atoms),
        STRESS: None if stress is None else full_3x3_to_voigt_6_stress(stress),
        N_ATOMS: len(atoms),
    }
