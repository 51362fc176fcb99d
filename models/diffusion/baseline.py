"""Random symmetric structures from pyxtal: the baseline the diffusion model is compared with, and a fallback."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
from pymatgen.core import Structure


def random_pyxtal_structures(species: list[str], n_samples: int, seed: int = 0, max_tries: int = 60) -> list[Structure]:
    """n_samples random pyxtal crystals of this cell content (random space group, seeded with random_state=)."""
    from pyxtal import pyxtal

    counts = Counter(species)
    elements, num_ions = list(counts), [counts[e] for e in counts]
    rng = np.random.default_rng(seed)
    out: list[Structure] = []
    for i in range(n_samples):
        made = None
        for attempt in range(max_tries):
            sg = int(rng.integers(1, 231)) if attempt < max_tries - 1 else 1
            crystal = pyxtal()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    crystal.from_random(3, sg, elements, num_ions, random_state=int(seed) * 100003 + i * 1009 + attempt)
            except Exception:  # composition incompatible with this space group's Wyckoff positions
                continue
            if crystal.valid:
                made = crystal.to_pymatgen()
                break
        if made is None:
            raise RuntimeError(f"pyxtal could not place {dict(counts)} in any space group")
        out.append(made)
    return out
