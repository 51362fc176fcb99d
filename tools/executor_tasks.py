"""Task functions that executors run (in this process or on Dask workers): small, picklable inputs and outputs
(CIF text, numbers); models are loaded once per worker process through the calculator cache."""

from __future__ import annotations

from typing import Any

from pymatgen.core import Structure

from tools.settings import Settings


def relax_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Relax one structure given as CIF with a named potential; returns the relaxed CIF and energies."""
    from tools.potentials import get_potential, relax
    from tools.structures import structure_to_cif

    structure = Structure.from_str(payload["cif"], fmt="cif")
    settings = Settings(device=payload.get("device", "cpu"))
    calc = get_potential(payload["potential"], settings)
    result = relax(structure, calc, payload["potential"], fmax=payload["fmax"], max_steps=payload["max_steps"])
    return {
        "cif": structure_to_cif(result.structure),
        "energy": result.energy,
        "initial_energy": result.initial_energy,
        "steps": result.steps,
        "converged": result.converged,
        "max_force": result.max_force,
    }
