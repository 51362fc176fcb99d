"""ASE calculator front for matsearch equivariant potentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from models.potentials.equivariant import EquivariantPotential, compute_energy_forces_stress
from models.potentials.labels import ATOMIC_ENERGIES, ENERGY, FEATURES, FORCES, FREE_ENERGY, STRESS
from models.potentials.neighbors import species_indices


class PotentialCalculator(Calculator):
    """Energy, forces, stress (periodic cells), per-atom energies and latent features from an EquivariantPotential."""

    # "energies" is ASE's name for per-atom energies (the model's ATOMIC_ENERGIES)
    implemented_properties = [ENERGY, FREE_ENERGY, FORCES, STRESS, "energies", FEATURES]

    def __init__(
        self,
        model: EquivariantPotential | str | Path,
        device: str | torch.device = "cpu",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Wrap a model instance or a checkpoint path; `name` overrides the model's display name in messages."""
        super().__init__(**kwargs)
        if not isinstance(model, EquivariantPotential):
            model = EquivariantPotential.load(model, map_location=device)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.model_name = name or model.name

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> PotentialCalculator:
        """Load a checkpoint file and wrap it."""
        return cls(EquivariantPotential.load(path, map_location=device), device=device)

    def check_species(self, atoms: Atoms) -> None:
        """Raise ValueError naming unsupported element(s) and the model."""
        species_indices(atoms.numbers, self.model.species, self.model_name)

    def calculate(
        self, atoms: Atoms | None = None, properties: list[str] | None = None, system_changes: list[str] = all_changes
    ) -> None:
        """Run the model once; stress is reported only for fully periodic cells."""
        super().calculate(atoms, properties or [ENERGY], system_changes)
        atoms = self.atoms
        self.check_species(atoms)
        periodic = bool(np.all(atoms.pbc))
        batch = self.model.collate([atoms]).to(self.device)
        out = compute_energy_forces_stress(self.model, batch, compute_stress=periodic)
        energy = float(out[ENERGY][0])
        self.results = {
            ENERGY: energy,
            FREE_ENERGY: energy,
            FORCES: out[FORCES].cpu().numpy().astype(np.float64),
            "energies": out[ATOMIC_ENERGIES].cpu().numpy().astype(np.float64),
            FEATURES: out[FEATURES].cpu().numpy().astype(np.float64),
        }
        if periodic:
            self.results[STRESS] = full_3x3_to_voigt_6_stress(out[STRESS][0].cpu().numpy().astype(np.float64))
