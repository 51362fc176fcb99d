"""Periodic neighbour lists and graph batches for equivariant potentials (vesin backend, no O(N^2) loops)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import vesin
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from models.potentials.labels import energy_label, forces_label, stress_label


def neighbor_list(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Full neighbour list of `atoms` within `cutoff`: edge_index (2,E) int64 (centre i, neighbour j), shifts (E,3).

    The vector of edge (i, j) is positions[j] - positions[i] + shifts @ cell; works for any mix of periodic axes and
    cells smaller than the cutoff (vesin searches all needed images).
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    points = np.ascontiguousarray(atoms.positions, dtype=np.float64)
    if len(atoms) == 0:
        return np.zeros((2, 0), dtype=np.int64), np.zeros((0, 3), dtype=np.int64)
    box = np.ascontiguousarray(atoms.cell.array, dtype=np.float64)
    if not pbc.any():
        box = np.zeros((3, 3))
    try:
        calc = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
        i, j, s = calc.compute(points, box, pbc.tolist() if pbc.any() else False, quantities="ijS")
    except Exception:  # pragma: no cover - vesin refuses degenerate boxes; ase's vectorised list is the fallback
        from ase.neighborlist import neighbor_list as ase_neighbor_list

        i, j, s = ase_neighbor_list("ijS", atoms, float(cutoff))
    edge_index = np.stack([np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)])
    return edge_index, np.asarray(s, dtype=np.int64).reshape(-1, 3)


def species_indices(numbers: np.ndarray, species: Sequence[str], model_name: str = "model") -> np.ndarray:
    """Map atomic numbers to the model's species indices; ValueError naming unsupported elements and the model."""
    table = np.full(119, -1, dtype=np.int64)
    for k, sym in enumerate(species):
        table[atomic_numbers[sym]] = k
    numbers = np.asarray(numbers, dtype=np.int64)
    idx = table[numbers]
    if (idx < 0).any():
        bad = sorted({chemical_symbols[z] for z in numbers[idx < 0]})
        raise ValueError(
            f"Element(s) {', '.join(bad)} not supported by model '{model_name}' (supports: {', '.join(species)})"
        )
    return idx


@dataclass
class Graph:
    """One structure as numpy arrays: species index, positions, cell, neighbour list and optional labels."""

    species: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    edge_index: np.ndarray
    shifts: np.ndarray
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None


def atoms_to_graph(
    atoms: Atoms, species: Sequence[str], cutoff: float, model_name: str = "model", labels: bool = True
) -> Graph:
    """Convert one ase.Atoms into a Graph (neighbour list computed once, labels read if present)."""
    idx = species_indices(atoms.numbers, species, model_name)
    edge_index, shifts = neighbor_list(atoms, cutoff)
    energy, forces, stress = None, None, None
    if labels:
        energy, forces, stress = energy_label(atoms), forces_label(atoms), stress_label(atoms)
    return Graph(
        species=idx,
        positions=np.asarray(atoms.positions, dtype=np.float64),
        cell=np.asarray(atoms.cell.array, dtype=np.float64),
        pbc=np.asarray(atoms.pbc, dtype=bool),
        edge_index=edge_index,
        shifts=shifts,
        energy=energy,
        forces=forces,
        stress=stress,
    )


@dataclass
class AtomsBatch:
    """Many structures as one disjoint graph: node arrays concatenated, edges offset, per-structure cells."""

    positions: torch.Tensor  # (N, 3)
    species: torch.Tensor  # (N,) long
    cell: torch.Tensor  # (B, 3, 3)
    pbc: torch.Tensor  # (B, 3) bool
    batch: torch.Tensor  # (N,) long, structure index of each atom
    edge_index: torch.Tensor  # (2, E) long, row 0 = centre i, row 1 = neighbour j
    shifts: torch.Tensor  # (E, 3) integer cell shifts stored in the float dtype
    num_atoms: torch.Tensor  # (B,) long
    energy: torch.Tensor | None = None  # (B,)
    forces: torch.Tensor | None = None  # (N, 3)
    stress: torch.Tensor | None = None  # (B, 3, 3)
    stress_mask: torch.Tensor | None = None  # (B,) bool, True where a stress label exists
    extra: dict = field(default_factory=dict)

    @property
    def num_graphs(self) -> int:
        """Number of structures in the batch."""
        return int(self.num_atoms.shape[0])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> AtomsBatch:
        """Copy to a device and/or float dtype (integer tensors keep their dtype)."""

        def conv(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            if t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        changes = {k: conv(getattr(self, k)) for k in self.__dataclass_fields__ if k != "extra"}
        return replace(self, **changes)


def collate_graphs(graphs: Sequence[Graph], dtype: torch.dtype = torch.float32) -> AtomsBatch:
    """Concatenate Graphs into one AtomsBatch (edge indices offset by the atoms before each structure)."""
    counts = np.array([len(g.species) for g in graphs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    edge_index = np.concatenate([g.edge_index + off for g, off in zip(graphs, offsets, strict=True)], axis=1)
    batch = np.repeat(np.arange(len(graphs)), counts)
    out = AtomsBatch(
        positions=torch.as_tensor(np.concatenate([g.positions for g in graphs]), dtype=dtype),
        species=torch.as_tensor(np.concatenate([g.species for g in graphs]), dtype=torch.long),
        cell=torch.as_tensor(np.stack([g.cell for g in graphs]), dtype=dtype),
        pbc=torch.as_tensor(np.stack([g.pbc for g in graphs])),
        batch=torch.as_tensor(batch, dtype=torch.long),
        edge_index=torch.as_tensor(edge_index, dtype=torch.long),
        shifts=torch.as_tensor(np.concatenate([g.shifts for g in graphs]), dtype=dtype),
        num_atoms=torch.as_tensor(counts, dtype=torch.long),
    )
    if all(g.energy is not None for g in graphs):
        out.energy = torch.tensor([g.energy for g in graphs], dtype=dtype)
    if all(g.forces is not None for g in graphs):
        out.forces = torch.as_tensor(np.concatenate([g.forces for g in graphs]), dtype=dtype)
    if any(g.stress is not None for g in graphs):
        out.stress = torch.as_tensor(
            np.stack([g.stress if g.stress is not None else np.zeros((3, 3)) for g in graphs]), dtype=dtype
        )
        out.stress_mask = torch.tensor([g.stress is not None for g in graphs])
    return out


def collate(
    atoms_list: Sequence[Atoms],
    species: Sequence[str],
    cutoff: float,
    dtype: torch.dtype = torch.float32,
    model_name: str = "model",
    labels: bool = True,
) -> AtomsBatch:
    """Turn a list of ase.Atoms into one AtomsBatch (neighbour lists, species indices, optional labels)."""
    graphs = [atoms_to_graph(a, species, cutoff, model_name, labels) for a in atoms_list]
    return collate_graphs(graphs, dtype)


def edge_vectors(
    positions: torch.Tensor, cell: torch.Tensor, batch: torch.Tensor, edge_index: torch.Tensor, shifts: torch.Tensor
) -> torch.Tensor:
    """Edge vectors r_j - r_i + shift @ cell (differentiable in positions and cell)."""
    i, j = edge_index[0], edge_index[1]
    offset = torch.einsum("ek,ekl->el", shifts, cell[batch[i]])
    return positions[j] - positions[i] + offset
