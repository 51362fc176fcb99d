"""Task functions that executors run (in this process or on Dask workers): small, picklable inputs and outputs
(CIF text, numbers); models are loaded once per worker process through the calculator cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from tools.core.settings import Settings


def relax_payload(structure: Structure, potential: str, fmax: float, max_steps: int, device: str = "cpu",
                  workspace: str | None = None) -> dict:
    """The picklable input of relax_task for one structure; `workspace` is where a potential's name resolves (the
    caller's, so a worker finds the same checkpoint)."""
    from tools.structures.io import structure_to_cif

    return {"cif": structure_to_cif(structure), "potential": potential, "fmax": fmax, "max_steps": max_steps,
            "device": device, "workspace": workspace}


def task_settings(payload: dict[str, Any]) -> Settings:
    """Settings for a task on a worker: the caller's device and workspace (the worker's own when not given)."""
    given = {k: payload[k] for k in ("device", "workspace") if payload.get(k)}
    return Settings(**given)


def relax_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Relax one structure given as CIF with a named potential; returns the relaxed CIF and energies."""
    from tools.potentials.calculators import get_potential, relax
    from tools.structures.io import structure_to_cif

    structure = Structure.from_str(payload["cif"], fmt="cif")
    settings = task_settings(payload)
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


def atoms_to_xyz(frames: list[Any]) -> str:
    """ASE Atoms as extxyz text (positions, cell, pbc): how frames cross process boundaries."""
    import io

    from ase.io import write

    buffer = io.StringIO()
    write(buffer, frames, format="extxyz")
    return buffer.getvalue()


def xyz_to_atoms(text: str) -> list[Any]:
    """extxyz text back to ASE Atoms."""
    import io

    from ase.io import read

    return list(read(io.StringIO(text), index=":", format="extxyz")) if text.strip() else []


def explore_md_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Langevin MD with a checkpointed potential (the active learner's current model) from one start frame; returns
    the sampled frames as extxyz text and, when an unstable model blew up, the error and the last step known to
    have completed (`failed_after_step`); the frames sampled before the blow-up are kept."""
    from models.potentials.equivariant import EquivariantPotential
    from models.potentials.uncertainty import GMMUncertainty, UncertainPotentialCalculator
    from tools.md.protocols import DynamicsSettings, Recorder, run_dynamics

    model = EquivariantPotential.load(payload["checkpoint"])
    calc = UncertainPotentialCalculator(model, GMMUncertainty.load(payload["checkpoint"]))
    atoms = xyz_to_atoms(payload["start"])[0]
    settings = DynamicsSettings("nvt_langevin", payload["temperature_K"], payload["timestep_fs"],
                                friction_per_fs=payload.get("friction_per_fs", 0.02), seed=payload["seed"])
    recorder, reached = Recorder(), [0]

    def progress(done: float, total: float | None, message: str | None) -> None:
        reached[0] = max(reached[0], int(done))

    error, failed_after = None, None
    try:
        run_dynamics(atoms, calc, settings, payload["steps"], payload["sample_every"], recorder=recorder,
                     progress=progress)
    except Exception as exc:  # noqa: BLE001 - an unstable early model may blow up; the caller reports it
        error = f"{type(exc).__name__}: {exc}"
        last_frame = int(recorder.rows[-1]["step"]) if recorder.rows else 0
        failed_after = max(reached[0], last_frame)
    frames = recorder.frames[1:]  # the start frame is not a sample
    for frame in frames:  # plain frames: the model's own numbers are not labels
        frame.calc = None
    return {"frames": atoms_to_xyz(frames), "error": error, "failed_after_step": failed_after}


def melt_quench_task(payload: dict[str, Any]) -> dict[str, Any]:
    """One melt-quench replica (tools.crystallization.amorphous.melt_quench) with a named potential; the quenched
    cell comes back as extxyz text with its MD summary."""
    from tools.crystallization.amorphous import MeltQuenchSchedule, melt_quench
    from tools.potentials.calculators import get_potential

    settings = task_settings(payload)
    calc = get_potential(payload["potential"], settings)
    schedule = MeltQuenchSchedule(**payload["schedule"])
    guard = Path(payload["guard"]) if payload.get("guard") else None  # a checkpoint whose uncertainty guards the MD
    rep = melt_quench(xyz_to_atoms(payload["start"])[0], calc, payload["potential"], schedule, seed=payload["seed"],
                      guard=guard)
    return {"atoms": atoms_to_xyz([rep.atoms]), "seed": rep.seed, "final_temperature_K": rep.final_temperature_K,
            "final_epot_per_atom": rep.final_epot_per_atom, "density_g_cm3": rep.density_g_cm3,
            "wall_time_s": rep.wall_time_s, "outside_by_stage": rep.outside_by_stage,
            "stage_wall_s": rep.stage_wall_s}
