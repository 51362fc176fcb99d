"""Family by meaning: when a request describes a structure instead of naming it ("corner-sharing octahedra with a
big cation in the cage"), match it to family descriptions with the MiniLM sentence embedder the project ships
(retrieval, as GenMS used Wikipedia). Used only for requests that talk about structure and name no family."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

DESCRIPTIONS: dict[str, str] = {
    "perovskite": "perovskite ABX3: corner-sharing BX6 octahedra with a large A cation in the cuboctahedral cage",
    "double perovskite": "double perovskite A2BB'X6: two B cations ordered like rock salt on corner-sharing "
                         "octahedra",
    "spinel": "spinel AB2X4: cubic close-packed anions, A cations in tetrahedral holes, B in octahedral holes",
    "inverse spinel": "inverse spinel: the divalent cation octahedral, half the trivalent cations tetrahedral",
    "rock salt": "rock salt: two interpenetrating face-centred cubic lattices, every ion octahedrally coordinated",
    "cscl": "caesium chloride: simple cubic, each ion in the body centre of a cube of eight counter-ions",
    "zincblende": "zinc blende: cubic, every atom tetrahedrally bonded as in diamond with two species",
    "wurtzite": "wurtzite: hexagonal close packing with every atom tetrahedrally coordinated",
    "fluorite": "fluorite AX2: cations in a face-centred cubic lattice, anions filling all tetrahedral holes, "
                "cation eightfold coordinated",
    "antifluorite": "antifluorite A2X: anions face-centred cubic, small cations in all tetrahedral holes",
    "rutile": "rutile AX2: chains of edge-sharing octahedra along c, tetragonal, threefold coordinated anions",
    "corundum": "corundum A2X3: hexagonal close-packed oxygen with two thirds of octahedral holes filled",
    "ilmenite": "ilmenite ABX3: ordered corundum derivative with alternating layers of two cations",
    "pyrochlore": "pyrochlore A2B2X7: fluorite-derived with ordered anion vacancies, corner-sharing tetrahedra "
                  "network, geometrically frustrated",
    "garnet": "garnet A3B2C3O12: cubic framework of tetrahedra and octahedra with dodecahedral sites",
    "olivine": "olivine: isolated tetrahedra with cations in octahedral M1 and M2 sites, orthorhombic",
    "layered oxide": "layered oxide: alternating slabs of edge-sharing transition metal octahedra and lithium "
                     "layers, intercalation",
    "heusler": "full Heusler X2YZ: ordered body-centred cubic intermetallic of four interpenetrating fcc lattices",
    "half-heusler": "half-Heusler XYZ: rock salt lattice with one fcc sublattice of tetrahedral sites filled, "
                    "18-electron semiconductor",
    "chalcopyrite": "chalcopyrite ABX2: tetragonal superstructure of zinc blende with two ordered cations",
}
STRUCTURAL_WORDS = re.compile(
    r"\b(octahedra|octahedral|tetrahedra|tetrahedral|corner[- ]sharing|edge[- ]sharing|face[- ]sharing|"
    r"close[- ]packed|sublattice|framework|cage|layers?|slabs|coordinated|coordination|cubic|hexagonal|"
    r"tetragonal|orthorhombic|structure type|lattice|interpenetrating)\b",
    re.IGNORECASE,
)
THRESHOLD, MARGIN = 0.55, 0.04


@lru_cache(maxsize=1)
def _description_vectors() -> tuple[list[str], np.ndarray]:
    from memory.embedding import embed_texts

    names = list(DESCRIPTIONS)
    return names, np.asarray(embed_texts([DESCRIPTIONS[n] for n in names]))


def semantic_family(text: str) -> tuple[str, float] | None:
    """(family, similarity) when the request describes a structure and one description is clearly closest."""
    if not STRUCTURAL_WORDS.search(text):
        return None
    from memory.embedding import embed_texts

    names, vectors = _description_vectors()
    sims = vectors @ np.asarray(embed_texts([text])[0])
    order = np.argsort(-sims)
    best, second = float(sims[order[0]]), float(sims[order[1]])
    if best < THRESHOLD or best - second < MARGIN:
        return None
    return names[int(order[0])], best
