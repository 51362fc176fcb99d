"""One reader of a frame's labels: the calculator's results first, else extxyz info/arrays under the key or its
REF_/dft_ variant; training graphs, evaluation and uncertainty all read through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from models.potentials.labels import (
    ENERGY,
    FORCES,
    N_ATOMS,
    STRESS,
    energy_label,
    forces_label,
    read_labels,
    stress_label,
)
from models.potentials.neighbors import atoms_to_graph
from models.potentials.uncertainty import reference_forces

VOIGT = np.array([1.0, 2.0, 3.0, 0.4, 0.5, 0.6])


def test_labels_from_a_single_point_calculator_and_through_extxyz(tmp_path: Path) -> None:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    forces = np.arange(12.0).reshape(4, 3)
    atoms.calc = SinglePointCalculator(atoms, energy=-14.0, forces=forces, stress=VOIGT)
    write(tmp_path / "a.extxyz", atoms)
    for frame in (atoms, read(tmp_path / "a.extxyz")):
        assert energy_label(frame) == -14.0 and np.allclose(forces_label(frame), forces)
        assert stress_label(frame).shape == (3, 3) and stress_label(frame)[0, 1] == 0.6
        labels = read_labels(frame)
        assert labels[ENERGY] == -14.0 and np.allclose(labels[STRESS], VOIGT) and labels[N_ATOMS] == 4


def test_ref_and_dft_keys_are_read_everywhere_and_missing_labels_are_none() -> None:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    assert read_labels(atoms) == {ENERGY: None, FORCES: None, STRESS: None, N_ATOMS: 4}
    atoms.info["REF_energy"] = -3.5
    atoms.arrays["dft_forces"] = np.ones((4, 3))
    atoms.info["REF_stress"] = VOIGT.reshape(1, 6)
    graph = atoms_to_graph(atoms, ["Cu"], 3.0)
    assert graph.energy == -3.5 and np.allclose(graph.forces, 1.0) and graph.stress.reshape(3, 3)[2, 2] == 3.0
    assert np.allclose(read_labels(atoms)[FORCES], 1.0) and np.allclose(reference_forces(atoms), 1.0)
