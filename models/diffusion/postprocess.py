"""Optional post-processing of sampled cells: snap near-symmetric samples onto their space group (spglib)."""

from __future__ import annotations

import warnings

from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer


def symmetrize(structure: Structure, symprec: float = 0.1) -> Structure:
    """The primitive standard cell of the space group found at tolerance symprec (Angstrom); the input if none fits.

    Diffusion samples carry small residual noise; snapping atoms onto the Wyckoff positions they are close to removes
    it without changing the composition (a result with another composition is rejected)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refined = SpacegroupAnalyzer(structure, symprec=symprec).get_primitive_standard_structure()
    except Exception:  # spglib finds no cell at this tolerance
        return structure
    if refined.composition.reduced_composition != structure.composition.reduced_composition:
        return structure
    if len(refined) > len(structure) or abs(refined.volume / len(refined) - structure.volume / len(structure)) > (
        0.2 * structure.volume / len(structure)
    ):
        return structure
    return refined
