"""TorchScript export of our equivariant potentials for MD engines (LAMMPS ML-IAP style: edge vectors in,
per-atom energies and per-edge forces out), and a Python runner that checks the export against the eager model.

The exported module works on one neighbour graph given as edge vectors, so it needs no cell or periodic images:
an MD engine passes its local + ghost atoms, the pairs (i, j) within the cutoff and r_ij = r_j - r_i. For the
Allegro-style member E_i depends only on the edges centred on i, so a spatially decomposed engine needs no extra
communication beyond one cutoff of ghost atoms.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress
from torch import nn

from models.potentials.equivariant import EquivariantPotential
from models.potentials.labels import ENERGY, FORCES, STRESS
from models.potentials.neighbors import neighbor_list, species_indices

EXPORT_FORMAT = "matsearch-torchscript-potential"


class EdgeEnergy(nn.Module):
    """Per-atom energies from species, edge vectors and edge index: the traced core of an exported potential."""

    def __init__(self, model: EquivariantPotential) -> None:
        """Share the network, per-species scale and shift of a trained model."""
        super().__init__()
        self.net = model.net
        self.scale = model.scale
        self.shift = model.shift

    def forward(self, species: torch.Tensor, vec: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """(N,) species indices, (E, 3) vectors r_j - r_i, (2, E) [i; j] -> (N,) atomic energies in eV."""
        raw, _ = self.net(species, vec, edge_index)
        return raw * self.scale[species] + self.shift[species]


class ExportedForces(nn.Module):
    """Scriptable wrapper: atomic energies and dE/dr_ij by autograd through the traced energy core."""

    def __init__(self, core: torch.jit.ScriptModule) -> None:
        """Wrap a traced EdgeEnergy."""
        super().__init__()
        self.core = core

    def forward(
        self, species: torch.Tensor, vec: torch.Tensor, edge_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return atomic energies (N,) and the per-edge gradient dE/dr_ij (E, 3) (pair forces up to sign)."""
        vec = vec.detach().requires_grad_(True)
        atomic = self.core(species, vec, edge_index)
        grads = torch.autograd.grad([atomic.sum()], [vec], allow_unused=True)
        grad = grads[0]
        if grad is None:
            grad = torch.zeros_like(vec)
        return atomic.detach(), grad


def _example_inputs(model: EquivariantPotential) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small periodic graph with every species, used only to trace the operations."""
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    species = np.arange(len(atoms)) % len(model.species)
    return _graph_tensors(atoms, species, model.cutoff, model.dtype)


def _graph_tensors(
    atoms: Atoms, species: np.ndarray, cutoff: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Species, edge vectors and edge index of a structure (vesin neighbour list with periodic images)."""
    edge_index, shifts = neighbor_list(atoms, cutoff)
    pos = np.asarray(atoms.positions, dtype=np.float64)
    vec = pos[edge_index[1]] - pos[edge_index[0]] + shifts @ np.asarray(atoms.cell.array, dtype=np.float64)
    return (
        torch.as_tensor(species, dtype=torch.long),
        torch.as_tensor(vec, dtype=dtype),
        torch.as_tensor(edge_index, dtype=torch.long),
    )


def export_torchscript(model: EquivariantPotential, path: str | Path | None = None) -> torch.jit.ScriptModule:
    """Trace the energy core, script the autograd wrapper, and (optionally) save with metadata as extra files."""
    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    core = torch.jit.trace(EdgeEnergy(model), _example_inputs(model), check_trace=False)
    scripted = torch.jit.script(ExportedForces(core))
    if path is not None:
        meta = {
            "format": EXPORT_FORMAT,
            "species": model.species,
            "cutoff": model.cutoff,
            "dtype": str(model.dtype).removeprefix("torch."),
            "name": model.name,
            "units": {"energy": "eV", "length": "Angstrom"},
            "inputs": "species (N,) long [index into species], vec (E,3) r_j - r_i, edge_index (2,E) [i; j]",
            "outputs": "atomic energies (N,), dE/dr_ij (E,3)",
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(scripted, str(path), _extra_files={"metadata.json": json.dumps(meta)})
    return scripted


class ExportedPotential:
    """Run an exported TorchScript potential on ase.Atoms: energy, forces and stress from the per-edge gradients."""

    def __init__(self, path: str | Path) -> None:
        """Load the module and its metadata (species, cutoff, dtype)."""
        extra = {"metadata.json": ""}
        self.module = torch.jit.load(str(path), _extra_files=extra)
        self.meta = json.loads(extra["metadata.json"])
        if self.meta.get("format") != EXPORT_FORMAT:
            raise ValueError(f"{path} is not a {EXPORT_FORMAT} file")
        self.species = list(self.meta["species"])
        self.cutoff = float(self.meta["cutoff"])
        self.dtype = getattr(torch, self.meta["dtype"])

    def compute(self, atoms: Atoms) -> dict[str, np.ndarray | float]:
        """Energy (eV), forces (eV/A) and, for periodic cells, Voigt stress (eV/A^3, ASE sign)."""
        species = species_indices(atoms.numbers, self.species, self.meta.get("name", "exported potential"))
        sp, vec, edge_index = _graph_tensors(atoms, species, self.cutoff, self.dtype)
        atomic, grad = self.module(sp, vec, edge_index)
        g = grad.detach().double().numpy()
        ei = edge_index.numpy()
        forces = np.zeros((len(atoms), 3))
        np.add.at(forces, ei[0], g)  # r_ij = r_j - r_i: dE/dr_i = -sum g, F_i = +sum g over edges centred on i
        np.add.at(forces, ei[1], -g)
        out: dict[str, np.ndarray | float] = {ENERGY: float(atomic.double().sum()), FORCES: forces}
        if atoms.pbc.all():
            virial = vec.double().numpy().T @ g  # sum_e r_e (x) dE/dr_e
            out[STRESS] = full_3x3_to_voigt_6_stress(virial / atoms.get_volume())
        return out


def main(argv: list[str] | None = None) -> None:
    """`python -m models.potentials.export CHECKPOINT OUT.pt [--float64]`: write the TorchScript module and check it."""
    import argparse

    from ase.build import bulk

    parser = argparse.ArgumentParser(description="Export a matsearch potential checkpoint to TorchScript.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--float64", action="store_true", help="export in double precision")
    args = parser.parse_args(argv)
    model = EquivariantPotential.load(args.checkpoint)
    if args.float64:
        model = model.double()
        model.config.dtype = "float64"
    export_torchscript(model, args.out)
    exported = ExportedPotential(args.out)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.numbers[:] = [atomic_number(s) for s in (model.species * 4)[:4]]
    atoms.rattle(0.05, seed=0)
    from models.potentials.equivariant import predict

    ref, got = predict(model, [atoms])[0], exported.compute(atoms)
    diff = max(abs(got[ENERGY] - ref[ENERGY]), float(np.abs(got[FORCES] - ref[FORCES]).max()))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB); max |diff| vs Python model {diff:.2e}")


def atomic_number(symbol: str) -> int:
    """Atomic number of a chemical symbol."""
    from ase.data import atomic_numbers

    return int(atomic_numbers[symbol])


if __name__ == "__main__":
    main()
