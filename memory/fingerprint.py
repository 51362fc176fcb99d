"""A fixed-length structure fingerprint for similarity search: composition plus a scale-free radial histogram.

Distances are divided by the mean atomic spacing (V/N)^(1/3), so the same prototype with other elements or a
strained cell lands close by; the composition part separates chemistries.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Element, Structure
from vesin import NeighborList

N_ELEMENTS = 103
RDF_BINS = 48
RDF_MAX_REDUCED = 3.0
FINGERPRINT_DIM = N_ELEMENTS + RDF_BINS
COMPOSITION_WEIGHT = 0.5


def composition_vector(structure: Structure) -> np.ndarray:
    """Atomic fractions indexed by atomic number (unit length)."""
    vec = np.zeros(N_ELEMENTS)
    for species, amount in structure.composition.element_composition.items():
        z = Element(str(species)).Z
        if z <= N_ELEMENTS:
            vec[z - 1] += amount
    norm = np.linalg.norm(vec)
    return vec / norm if norm > 0 else vec


def reduced_rdf(structure: Structure) -> np.ndarray:
    """Gaussian-smeared pair-distance histogram in units of the mean atomic spacing (unit length)."""
    spacing = (structure.volume / len(structure)) ** (1.0 / 3.0)
    cutoff = RDF_MAX_REDUCED * spacing
    points = np.ascontiguousarray(structure.cart_coords, dtype=np.float64)
    box = np.ascontiguousarray(structure.lattice.matrix, dtype=np.float64)
    (dist,) = NeighborList(cutoff=cutoff, full_list=False).compute(points, box, periodic=True, quantities="d")
    centers = np.linspace(0.0, RDF_MAX_REDUCED, RDF_BINS)
    width = RDF_MAX_REDUCED / RDF_BINS
    reduced = np.asarray(dist) / spacing
    hist = np.zeros(RDF_BINS)
    for start in range(0, len(reduced), 20000):  # chunked so huge cells stay within memory
        chunk = reduced[start : start + 20000, None]
        hist += np.exp(-0.5 * ((chunk - centers[None, :]) / width) ** 2).sum(axis=0)
    hist /= len(structure) * (centers**2 + width**2)  # per atom, shell-area normalised
    norm = np.linalg.norm(hist)
    return hist / norm if norm > 0 else hist


def structure_fingerprint(structure: Structure) -> list[float]:
    """Unit-length fingerprint of FINGERPRINT_DIM floats for cosine similarity search."""
    vec = np.concatenate([COMPOSITION_WEIGHT * composition_vector(structure), reduced_rdf(structure)])
    return (vec / np.linalg.norm(vec)).astype(np.float32).tolist()


CONTENT_DECIMALS = 5  # lattice lengths (Å), angles (degrees) and fractional coordinates, as the content id rounds them


def content_key(structure: Structure, decimals: int = CONTENT_DECIMALS) -> str:
    """The structure's content as canonical text: lattice parameters, then every site's species and fractional
    coordinates (wrapped into [0, 1)), rounded and sorted. The same structure gives the same text in any process
    whatever its site order or periodic images, so a content id hashed from it makes concurrent writes of one
    structure land on one record; a different geometry (a relaxed cell) differs at the 1e-5 level and stays apart."""
    lattice = " ".join(f"{x:.{decimals}f}" for x in np.round(structure.lattice.parameters, decimals) + 0.0)
    frac = np.round(np.mod(structure.frac_coords, 1.0), decimals) % 1.0 + 0.0  # 0.999999 -> 1.0 -> 0.0; no -0.0
    sites = sorted(
        f"{site.species_string} " + " ".join(f"{x:.{decimals}f}" for x in xyz)
        for site, xyz in zip(structure, frac, strict=True)
    )
    return lattice + "\n" + "\n".join(sites)
