"""The `run_md` tool: molecular dynamics with a universal potential or one of ours, with trajectory, thermo log,
analysis (RDF, MSD/diffusion, density) and plots written as artifacts."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from pydantic import BaseModel, Field

from tools.core.common import StructureSummary
from tools.core.errors import ToolInputError
from tools.core.provenance import provenance
from tools.core.registry import STORE, ToolContext, ToolInput, tool
from tools.core.settings import Settings
from tools.md.analysis import density_g_cm3, fit_diffusion, msd, plot_msd, plot_rdf, plot_thermo, rdf
from tools.md.protocols import DynamicsSettings, Recorder, run_dynamics
from tools.potentials.calculators import check_supported
from tools.potentials.uncertainty import domain_warning, guard_checkpoint, outside_domain
from tools.structures.io import StructureRef, atoms_to_structure, resolve_structure, structure_to_atoms

MAX_STEPS = 100_000
MAX_FRAMES = 5_000
SECONDS_PER_ATOM_STEP = {"chgnet": 2.5e-3, "sevennet-0": 1e-2}  # measured on 2 CPU cores (ASSETS.md)


def potential_calculator(potential: str, settings: Settings) -> tuple[Calculator, threading.RLock]:
    """The shared ASE calculator of a potential and the lock that serialises its use across tools and jobs."""
    from tools.potentials.calculators import get_potential, potential_lock

    return get_potential(potential, settings), potential_lock(potential)


class RunMDInput(ToolInput):
    structure: StructureRef = Field(description="The structure: {'id': memory id} or {'text': CIF/POSCAR/extxyz}.")
    potential: str | None = Field(
        default=None, max_length=1000,
        description="'chgnet', 'sevennet-0', 'emt' (ASE's EMT: Al, Cu, Ag, Au, Ni, Pd, Pt), or a checkpoint path of a "
        "matsearch potential; default from settings.")
    ensemble: Literal["nve", "nvt_langevin", "nvt_nose_hoover", "nvt_bussi", "npt"] = Field(
        default="nvt_langevin",
        description="nve (velocity Verlet), nvt_langevin, nvt_nose_hoover (chain), nvt_bussi (stochastic velocity "
                    "rescaling) or npt (Martyna-Tobias-Klein with Nose-Hoover chains).")
    temperature_K: float = Field(default=300.0, ge=0, le=20_000, description="Target (or initial, NVE) temperature.")
    pressure_GPa: float = Field(default=0.0, ge=-50, le=500, description="Target pressure for NPT.")
    npt_cell: Literal["isotropic", "anisotropic"] = Field(
        default="isotropic", description="NPT: scale the volume only, or let every cell vector fluctuate.")
    timestep_fs: float = Field(default=1.0, gt=0, le=10, description="Integration time step in fs (at most 10).")
    steps: int = Field(default=1000, ge=1, le=MAX_STEPS, description=f"Number of MD steps (at most {MAX_STEPS}).")
    seed: int = Field(default=0, ge=0, description="Seed of the initial velocities and stochastic thermostats.")
    log_every: int = Field(default=10, ge=1, le=MAX_STEPS, description="Record a frame and a log line every N steps.")
    initial_temperature_K: float | None = Field(
        default=None, ge=0, le=20_000, description="Temperature of the initial velocities (default temperature_K).")
    friction_per_fs: float = Field(default=0.01, gt=0, le=1, description="Langevin friction in 1/fs.")
    tdamp_fs: float | None = Field(default=None, gt=0, le=1e5, description="Thermostat time constant (default 100 dt).")
    pdamp_fs: float | None = Field(default=None, gt=0, le=1e6, description="Barostat time constant (default 1000 dt).")
    equilibration_fraction: float = Field(
        default=0.2, ge=0, lt=1, description="Leading fraction of frames left out of averages and analysis.")
    rdf_r_max: float = Field(default=6.0, gt=0.5, le=15, description=(
        "Largest distance of the RDF in Angstrom; capped at half the shortest perpendicular cell width."))
    store_final: bool = Field(default=False, description="Store the final frame in memory (with provenance).")
    min_atoms: int = Field(default=1, ge=1, le=100_000, description=(
        "Repeat the cell (whole repeats, the thinnest direction first) until it holds at least this many atoms: "
        "MD of a 4-atom primitive cell sees its own periodic images; 64-128 atoms is a usual minimum."))
    allow_large: bool = Field(default=False, description="Accept cells above the atom limit.")
    uncertainty_guard: bool = Field(default=False, description=(
        "For a matsearch potential with fitted uncertainty (from distill_potential or active_learning): report "
        "the fraction of recorded frames that left the model's calibrated domain."))


class RunMDOutput(BaseModel):
    potential: str
    supercell: list[int] = Field(default=[1, 1, 1], description="Repeats of the given cell along a, b, c.")
    ensemble: str
    n_atoms: int
    steps: int
    simulated_time_ps: float
    frames_recorded: int
    mean_temperature_K: float = Field(description="Average over the production part (after equilibration_fraction).")
    std_temperature_K: float
    mean_pressure_GPa: float | None = Field(description="None when the potential gives no stress.")
    mean_volume_A3: float | None
    mean_density_g_cm3: float | None
    final_potential_energy_eV: float
    energy_drift_meV_per_atom_per_ps: float = Field(
        description="Slope of the total energy (conserved in NVE; includes the bath otherwise).")
    rdf_peaks_A: list[float] = Field(description="Positions of the peaks of the production-part total g(r).")
    rdf_r_max_A: float | None = Field(default=None, description=(
        "Range of the RDF in Angstrom: rdf_r_max, or half the shortest perpendicular cell width when smaller "
        "(farther out atoms meet their own periodic images); None for a non-periodic cell."))
    partial_rdf_peaks_A: dict[str, list[float]] = Field(default_factory=dict)
    msd_final_A2: float
    diffusion_coefficient_cm2_s: float = Field(description=(
        "Einstein estimate 6 D t fit to the MSD; see warnings when the MSD is not diffusive (e.g. a solid)."))
    msd_loglog_slope: float | None = Field(default=None, description=(
        "d ln MSD / d ln t over the fitted window: about 1 when diffusive, 2 ballistic, near 0 in a solid."))
    wall_time_s: float
    steps_per_second: float
    trajectory_uri: str = Field(description="artifact:// URI of the extxyz trajectory (energies, forces, velocities).")
    thermo_log_uri: str = Field(description="artifact:// URI of the CSV thermo log (E, T, P, volume, density).")
    summary_uri: str
    thermo_plot_uri: str
    rdf_plot_uri: str
    msd_plot_uri: str
    final_structure: StructureSummary | None = None
    frames_outside_domain_fraction: float | None = Field(default=None, description=(
        "With uncertainty_guard: share of the recorded frames with an atom beyond the potential's calibrated "
        "uncertainty range (its forces there are extrapolated)."))
    max_uncertainty_eV_A: float | None = Field(default=None, description=(
        "With uncertainty_guard: the largest per-atom force-error estimate over the recorded frames."))
    warnings: list[str] = Field(default_factory=list)


def _estimate(inp: RunMDInput) -> float:
    """Seconds: atoms x steps x per-atom-step cost of the potential (atoms from the text when inline)."""
    n_atoms = 64
    if inp.structure.text:
        try:
            from tools.structures.io import parse_structure

            n_atoms = len(parse_structure(inp.structure.text, inp.structure.format, allow_large=True))
        except Exception:  # an estimate must never fail; the run reports the real error
            pass
    per = SECONDS_PER_ATOM_STEP.get((inp.potential or "chgnet").lower(), 5e-4)
    return 5.0 + n_atoms * inp.steps * per


def _mean(values: list[float]) -> float | None:
    """Mean of the finite values, None when there are none."""
    arr = np.array([v for v in values if math.isfinite(v)])
    return float(arr.mean()) if len(arr) else None


@tool(cost="minutes", reaches=(STORE,), estimate=_estimate)
def run_md(inp: RunMDInput, ctx: ToolContext) -> RunMDOutput:
    """Run molecular dynamics of a crystal with a machine-learned potential (CHGNet, SevenNet-0 or a matsearch
    checkpoint) through ASE: NVE, NVT (Langevin, Nose-Hoover chain, Bussi) or NPT (MTK). Writes the trajectory
    (extxyz), a thermo log (energy, temperature, pressure, volume, density) and PNG plots as artifacts, and
    reports averages, energy drift, RDF peaks, mean-squared displacement and the diffusion coefficient. Use it to
    test thermal stability, melt a structure, measure diffusion or equilibrate density; optionally stores the
    final frame in memory. Runs take minutes: start it as a job for long runs."""
    if inp.steps // inp.log_every + 1 > MAX_FRAMES:
        raise ToolInputError(
            f"{inp.steps // inp.log_every + 1} frames would be recorded (limit {MAX_FRAMES}); raise log_every")
    if inp.ensemble == "npt" and inp.temperature_K <= 0:
        raise ToolInputError("npt needs temperature_K > 0")
    start_K = inp.temperature_K if inp.initial_temperature_K is None else inp.initial_temperature_K
    if start_K <= 0 and inp.ensemble in ("nvt_bussi", "nvt_nose_hoover", "npt"):
        raise ToolInputError(f"{inp.ensemble} rescales velocities and cannot start from rest: give "
                             "initial_temperature_K (or temperature_K) above 0 K")
    potential = inp.potential or ctx.settings.potential
    structure = resolve_structure(inp.structure, ctx.store if inp.structure.id else None, ctx.settings.max_atoms,
                                  inp.allow_large)
    atoms = structure_to_atoms(structure)
    repeats = supercell_repeats(atoms, inp.min_atoms)
    if repeats != (1, 1, 1):
        atoms = atoms.repeat(repeats)
        if len(atoms) > ctx.settings.max_atoms and not inp.allow_large:
            raise ToolInputError(f"min_atoms={inp.min_atoms} makes a {'x'.join(map(str, repeats))} supercell of "
                                 f"{len(atoms)} atoms, above the limit of {ctx.settings.max_atoms}; lower min_atoms "
                                 "or pass allow_large=true")
        structure = atoms_to_structure(atoms)
    guard = guard_checkpoint(potential, ctx.workspace) if inp.uncertainty_guard else None  # refused before the run
    ctx.progress(0, inp.steps, f"loading potential {potential}")
    calc, lock = potential_calculator(potential, ctx.settings)
    check_supported(calc, atoms, potential)
    settings = DynamicsSettings(
        ensemble=inp.ensemble, temperature_K=inp.temperature_K, timestep_fs=inp.timestep_fs,
        pressure_GPa=inp.pressure_GPa, friction_per_fs=inp.friction_per_fs, tdamp_fs=inp.tdamp_fs,
        pdamp_fs=inp.pdamp_fs, npt_cell=inp.npt_cell, seed=inp.seed)
    out_dir = ctx.artifact_dir()
    recorder = Recorder(out_dir / "trajectory.extxyz", out_dir / "thermo.csv")
    with lock:
        result = run_dynamics(atoms, calc, settings, inp.steps, inp.log_every, recorder, ctx.progress,
                              initial_temperature_K=inp.initial_temperature_K)
    ctx.progress(inp.steps, inp.steps, "analysing the trajectory")
    outside = None if guard is None else outside_domain(guard, result.frames)
    return _report(inp, ctx, potential, structure, atoms, result.frames, result.rows, result.wall_time_s, out_dir,
                   outside, repeats)


def supercell_repeats(atoms: Atoms, min_atoms: int) -> tuple[int, int, int]:
    """Whole repeats along a, b, c that give at least min_atoms, growing the thinnest direction (smallest
    perpendicular width times its repeat) each time, so the supercell stays as near cubic as the cell allows."""
    repeats = [1, 1, 1]
    if not atoms.pbc.all() or len(atoms) == 0:
        return (1, 1, 1)
    volume = abs(atoms.cell.volume)
    widths = [volume / np.linalg.norm(np.cross(atoms.cell[(i + 1) % 3], atoms.cell[(i + 2) % 3])) for i in range(3)]
    while len(atoms) * math.prod(repeats) < min_atoms:
        thinnest = min(range(3), key=lambda i: widths[i] * repeats[i])
        repeats[thinnest] += 1
    return (repeats[0], repeats[1], repeats[2])


def _report(inp: RunMDInput, ctx: ToolContext, potential: str, structure: object, atoms: Atoms,
            frames: list[Atoms], rows: list[dict[str, float]], wall: float, out_dir: Path,
            outside: tuple[float, float] | None = None, repeats: tuple[int, int, int] = (1, 1, 1)) -> RunMDOutput:
    """Averages, drift, RDF/MSD analysis, plots, summary JSON and the optional stored final frame; `outside` is the
    uncertainty guard's (fraction of frames outside the calibrated domain, largest force-error estimate)."""
    n = len(atoms)
    start = int(len(rows) * inp.equilibration_fraction)
    prod_rows, prod_frames = rows[start:], frames[start:]
    temps = np.array([r["temperature_K"] for r in prod_rows])
    t_fs = np.array([r["time_fs"] for r in rows])
    etot = np.array([r["etot_eV"] for r in rows])
    drift = float(np.polyfit(t_fs / 1000.0, etot / n, 1)[0] * 1000.0) if len(rows) > 2 else 0.0
    warnings: list[str] = []
    periodic = bool(atoms.pbc.all())
    rdf_res = rdf(prod_frames, r_max=inp.rdf_r_max) if periodic else None
    lags, msd_vals = msd(prod_frames)
    dt_frame = inp.log_every * inp.timestep_fs
    diffusion = fit_diffusion(lags * dt_frame, msd_vals)
    diff = diffusion.coefficient_cm2_s
    if len(prod_frames) < 10:
        warnings.append(f"only {len(prod_frames)} production frames: averages and MSD are rough")
    if rdf_res is not None and rdf_res.note:
        warnings.append(rdf_res.note)
    if diffusion.warning:
        warnings.append(diffusion.warning)
    if outside is not None and (warning := domain_warning(potential, outside[0])):
        warnings.append(warning)
    if inp.ensemble == "nve" and abs(drift) > 5.0:
        warnings.append(f"NVE energy drift {drift:.2f} meV/atom/ps is large: reduce timestep_fs")
    pressures = [r["pressure_GPa"] for r in prod_rows]
    mean_p = _mean(pressures)
    if inp.ensemble == "npt" and mean_p is not None and abs(mean_p - inp.pressure_GPa) > 2.0:
        warnings.append(f"mean pressure {mean_p:.2f} GPa is far from the target: run longer or adjust pdamp_fs")
    title = f"{structure.composition.reduced_formula} {inp.ensemble} {potential}"  # type: ignore[attr-defined]
    thermo_png = plot_thermo(rows, out_dir / "thermo.png", title)
    if rdf_res is not None:
        rdf_png = plot_rdf(rdf_res, out_dir / "rdf.png", title)
    else:
        from tools.md.analysis import RDFResult

        rdf_png = plot_rdf(RDFResult(r=np.zeros(1), g=np.zeros(1)), out_dir / "rdf.png", title + " (no RDF)")
    msd_png = plot_msd(lags * dt_frame, msd_vals, out_dir / "msd.png", diff, title)
    final_summary = None
    if inp.store_final:
        final = atoms_to_structure(atoms)
        record = provenance("run_md", inp.model_dump(exclude={"structure"}) | {"potential": potential},
                            [inp.structure.id])
        added = ctx.store.add(final, provenance=record, energy=float(rows[-1]["epot_eV"]),
                              description=f"final frame of {inp.ensemble} MD at {inp.temperature_K} K")
        final_summary = StructureSummary.from_record(ctx.store.get(added.id))
    output = RunMDOutput(
        potential=potential,
        supercell=list(repeats),
        ensemble=inp.ensemble,
        n_atoms=n,
        steps=inp.steps,
        simulated_time_ps=round(inp.steps * inp.timestep_fs / 1000.0, 6),
        frames_recorded=len(frames),
        mean_temperature_K=round(float(temps.mean()), 3),
        std_temperature_K=round(float(temps.std()), 3),
        mean_pressure_GPa=None if mean_p is None else round(mean_p, 5),
        mean_volume_A3=_mean([r["volume_A3"] for r in prod_rows]),
        mean_density_g_cm3=float(np.mean([density_g_cm3(f) for f in prod_frames])) if periodic else None,
        final_potential_energy_eV=float(rows[-1]["epot_eV"]),
        energy_drift_meV_per_atom_per_ps=round(drift, 5),
        rdf_peaks_A=rdf_res.peaks if rdf_res else [],
        partial_rdf_peaks_A=rdf_res.partial_peaks if rdf_res else {},
        rdf_r_max_A=round(rdf_res.r_max, 4) if rdf_res else None,
        msd_final_A2=round(float(msd_vals[-1]), 6),
        diffusion_coefficient_cm2_s=diff,
        msd_loglog_slope=diffusion.loglog_slope if math.isfinite(diffusion.loglog_slope) else None,
        wall_time_s=round(wall, 3),
        steps_per_second=round(inp.steps / max(wall, 1e-9), 3),
        trajectory_uri=ctx.artifact_uri(out_dir / "trajectory.extxyz"),
        thermo_log_uri=ctx.artifact_uri(out_dir / "thermo.csv"),
        summary_uri=ctx.artifact_uri(out_dir / "summary.json"),
        thermo_plot_uri=ctx.artifact_uri(thermo_png),
        rdf_plot_uri=ctx.artifact_uri(rdf_png),
        msd_plot_uri=ctx.artifact_uri(msd_png),
        final_structure=final_summary,
        frames_outside_domain_fraction=None if outside is None else round(outside[0], 4),
        max_uncertainty_eV_A=None if outside is None else round(outside[1], 4),
        warnings=warnings,
    )
    (out_dir / "summary.json").write_text(json.dumps(output.model_dump(mode="json"), indent=2))
    return output
