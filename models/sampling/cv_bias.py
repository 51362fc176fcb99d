"""Harmonic CV bias for any ASE calculator: E_total = E_base + k/2 (s(x) - center)^2, forces = base forces - dBias/dx
with ds/dx from autograd, so umbrella windows run on any potential; simple differentiable CVs (distance, dihedral)
and a wrapper for trained CV networks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from models.sampling.cv import MultitaskCV, dihedral

CVFunction = Callable[[torch.Tensor, Atoms], torch.Tensor]


def distance_cv(i: int, j: int, mic: bool = True) -> CVFunction:
    """CV = distance between atoms i and j (minimum image in periodic directions when `mic`)."""

    def cv(pos: torch.Tensor, atoms: Atoms) -> torch.Tensor:
        d = pos[j] - pos[i]
        if mic and atoms.pbc.any():
            cell = torch.as_tensor(np.asarray(atoms.cell), dtype=pos.dtype)
            frac = torch.linalg.solve(cell.T, d)
            pbc = torch.as_tensor(atoms.pbc)
            frac = torch.where(pbc, frac - torch.round(frac.detach()), frac)
            d = cell.T @ frac
        return torch.linalg.norm(d)

    return cv


def dihedral_cv(a: int, b: int, c: int, d: int) -> CVFunction:
    """CV = dihedral angle (radians) of atoms a-b-c-d (no periodic images: for molecules)."""

    def cv(pos: torch.Tensor, atoms: Atoms) -> torch.Tensor:
        return dihedral(pos[a], pos[b], pos[c], pos[d])

    return cv


def network_cv(model: MultitaskCV, component: int = 0) -> CVFunction:
    """CV = one component of a trained CV network applied to the flattened positions (features as configured)."""

    def cv(pos: torch.Tensor, atoms: Atoms) -> torch.Tensor:
        return model.cv(pos.reshape(1, -1).to(torch.float64))[0, component]

    return cv


class BiasedCalculator(Calculator):
    """Wrap an ASE calculator with a harmonic bias k/2 (s - center)^2 on a differentiable CV (energies in eV, k in
    eV per CV unit squared); results also carry the CV value and the bias energy."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, base_calc: Calculator, cv_fn: CVFunction, center: float, k: float, **kwargs: Any) -> None:
        """base_calc: any ASE calculator; cv_fn(positions tensor (N, 3), atoms) -> scalar tensor."""
        super().__init__(**kwargs)
        self.base_calc = base_calc
        self.cv_fn = cv_fn
        self.center = float(center)
        self.k = float(k)

    def cv_value_and_grad(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        """The CV s(x) and ds/dx (N, 3) by autograd."""
        with torch.enable_grad():
            pos = torch.as_tensor(atoms.get_positions(), dtype=torch.float64).requires_grad_(True)
            s = self.cv_fn(pos, atoms)
            (grad,) = torch.autograd.grad(s, pos)
        return float(s.detach()), grad.numpy()

    def calculate(
        self, atoms: Atoms | None = None, properties: list[str] | None = None, system_changes: list[str] = all_changes
    ) -> None:
        """Base energy and forces plus the bias and its forces."""
        super().calculate(atoms, properties or ["energy"], system_changes)
        atoms = self.atoms
        base = atoms.copy()
        base.calc = self.base_calc
        e_base = float(base.get_potential_energy())
        f_base = np.asarray(base.get_forces())
        s, ds = self.cv_value_and_grad(atoms)
        delta = s - self.center
        bias = 0.5 * self.k * delta * delta
        self.results = {
            "energy": e_base + bias,
            "free_energy": e_base + bias,
            "forces": f_base - self.k * delta * ds,
            "cv": s,
            "bias_energy": bias,
            "base_energy": e_base,
        }
