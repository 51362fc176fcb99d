"""A Cu adatom hopping between hollow sites of Cu(100) on EMT: a small atomistic system with two basins and a known
barrier, for the free-energy tests and the adatom benchmark (benchmarks/free_energy_adatom.py)."""

from __future__ import annotations

import numpy as np

T = 300.0  # K: the temperature of the basin MD


def slab_with_adatom():  # noqa: ANN201
    """A relaxed 3 x 3 x 3 Cu(100) slab (8 A vacuum) with a Cu adatom in a hollow site, on EMT; and the in-plane
    vector to the neighbouring hollow."""
    from ase.build import add_adsorbate, fcc100
    from ase.optimize import BFGS

    from models.potentials.universal import get_calculator

    slab = fcc100("Cu", size=(3, 3, 3), vacuum=8.0)
    add_adsorbate(slab, "Cu", 1.7, "hollow")
    slab.calc = get_calculator("emt")
    BFGS(slab, logfile=None).run(fmax=0.01)
    step = np.array([slab.cell[0, 0] / 3, 0.0, 0.0])  # one surface lattice spacing along x
    return slab, step


def basin_frames(slab, seed: int, n_steps: int) -> np.ndarray:  # noqa: ANN001
    """Flattened positions every 10 steps of unbiased Langevin MD (2 fs, 300 K) from `slab`."""
    from ase import units
    from ase.md.langevin import Langevin

    atoms = slab.copy()
    atoms.calc = slab.calc
    dyn = Langevin(atoms, 2 * units.fs, temperature_K=T, friction=0.01 / units.fs, fixcm=False,
                   rng=np.random.default_rng(seed))
    frames: list[np.ndarray] = []
    dyn.attach(lambda: frames.append(atoms.positions.ravel().copy()), interval=10)
    dyn.run(n_steps)
    return np.array(frames[5:])  # the first 100 fs relax the kinetic energy


def hopped(slab, step: np.ndarray):  # noqa: ANN001, ANN201
    """`slab` with its adatom (the last atom) moved by `step` into the next hollow, on the same calculator."""
    hop = slab.copy()
    hop.positions[-1] += step
    hop.calc = slab.calc
    return hop


def hop_data(slab, step: np.ndarray, n_steps: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:  # noqa: ANN001
    """CV data of the hop: frames of unbiased MD in hollow A (`slab`) and in hollow B (the adatom moved by `step`),
    labels 0 / 1, and the CV's distance pairs (the adatom to the six top-layer atoms nearest the bridge between)."""
    x = np.concatenate([basin_frames(s, seed + k, n_steps) for k, s in enumerate((slab, hopped(slab, step)))])
    labels = np.repeat([0, 1], len(x) // 2)
    adatom = len(slab) - 1
    top = np.flatnonzero(slab.positions[:-1, 2] > slab.positions[:-1, 2].max() - 0.1)
    mid = slab.positions[-1, :2] + step[:2] / 2
    around = top[np.argsort(np.linalg.norm(slab.positions[top, :2] - mid, axis=1))[:6]]
    return x, labels, [[adatom, int(i)] for i in around]


def neb_barrier(slab_a, slab_b) -> float:  # noqa: ANN001
    """Energy barrier (eV) of the hop A -> B by a climbing-image nudged elastic band with 5 images."""
    from ase.mep import NEB
    from ase.optimize import FIRE

    from models.potentials.universal import get_calculator

    images = [slab_a.copy() for _ in range(6)] + [slab_b.copy()]
    for image in images:
        image.calc = get_calculator("emt")
    neb = NEB(images, climb=True)
    neb.interpolate()
    FIRE(neb, logfile=None).run(fmax=0.03, steps=500)
    energies = [image.get_potential_energy() for image in images]
    return max(energies) - energies[0]
