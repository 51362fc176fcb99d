"""Tensors for the diffusion model: structure records (species, lattice, fractional coordinates) to collated batches."""

from __future__ import annotations

from typing import Any

import torch
from pymatgen.core import Element, Structure
from torch import Tensor

from models.diffusion.model import full_graph


def record_to_item(record: dict[str, Any]) -> dict[str, Tensor]:
    """One record (species, lattice rows in Angstrom, frac) to tensors."""
    return {
        "z": torch.tensor([Element(s).Z for s in record["species"]], dtype=torch.long),
        "frac": torch.tensor(record["frac"], dtype=torch.float32).reshape(-1, 3) % 1.0,
        "lattice": torch.tensor(record["lattice"], dtype=torch.float32).reshape(3, 3),
    }


def structure_to_record(structure: Structure) -> dict[str, Any]:
    """A pymatgen Structure (ordered) to a record."""
    return {
        "species": [site.specie.symbol for site in structure],
        "lattice": structure.lattice.matrix.tolist(),
        "frac": (structure.frac_coords % 1.0).tolist(),
    }


def collate(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Concatenate items into one batch with per-cell fully connected edges."""
    n_atoms = torch.tensor([len(it["z"]) for it in items], dtype=torch.long)
    src, dst, batch = full_graph(n_atoms)
    return {
        "z": torch.cat([it["z"] for it in items]),
        "frac": torch.cat([it["frac"] for it in items]),
        "lattice": torch.stack([it["lattice"] for it in items]),
        "n_atoms": n_atoms,
        "batch": batch,
        "src": src,
        "dst": dst,
    }
