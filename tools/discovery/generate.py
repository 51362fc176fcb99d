"""The generate_structures tool: candidate crystal structures for a formula from the diffusion model (or pyxtal)."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from pymatgen.core import Structure

from tools.core.common import StructureSummary, parse_formula
from tools.core.errors import ToolInputError, ToolRuntimeError
from tools.core.provenance import provenance
from tools.core.registry import STORE, ToolContext, ToolInput, tool
from tools.core.settings import Settings
from tools.structures.io import MIN_DISTANCE_A, validate_structure

if TYPE_CHECKING:
    from models.diffusion.postprocess import ValidityReport

MAX_ATOMS_PER_CELL = 64
DEFAULT_MIN_ATOMS = 4  # the default formula_units is the smallest giving at least this many atoms

_model_cache: dict[str, Any] = {}
_model_lock = threading.Lock()


def checkpoint_path(settings: Settings) -> Path:
    """The diffusion checkpoint: settings.diffusion_checkpoint (MATSEARCH_DIFFUSION_CHECKPOINT) or the committed
    models/checkpoints/diffusion.pt."""
    from models.diffusion import DEFAULT_CHECKPOINT

    return settings.diffusion_checkpoint or DEFAULT_CHECKPOINT


def load_model(path: Path) -> Any:
    """The CrystalDiffusion model of this checkpoint, loaded once per process and file version."""
    from models.diffusion import CrystalDiffusion

    if not path.exists():
        raise ToolRuntimeError(f"diffusion checkpoint {path} is missing: train it (python -m models.diffusion.train)")
    key = f"{path.resolve()}:{path.stat().st_mtime_ns}"
    with _model_lock:
        if key not in _model_cache:
            _model_cache.clear()
            _model_cache[key] = CrystalDiffusion.load(path)
        return _model_cache[key]


class GenerateInput(ToolInput):
    formula: str = Field(description="Chemical formula, e.g. 'SrTiO3' or 'Li2MnO3'.")
    formula_units: int | None = Field(
        default=None, ge=1, le=32,
        description="Formula units per cell; default: the smallest number giving at least 4 atoms.",
    )
    n_samples: int = Field(default=8, ge=1, le=64, description="How many structures to sample.")
    n_steps: int = Field(
        default=200,
        ge=5,
        le=1000,
        description="Diffusion steps: 200 gives the most precise raw positions; 50 is 3.5x faster at the same match "
        "rate with coarser positions (fine when the samples are relaxed).",
    )
    seed: int = Field(default=0, description="Random seed; same inputs and seed give the same structures.")
    method: Literal["diffusion", "pyxtal"] = Field(
        default="diffusion", description="'diffusion' (trained model) or 'pyxtal' (random symmetric baseline)."
    )
    symmetrize: bool = Field(
        default=False, description="Snap each sample onto the space group it is within 0.1 A of (spglib)."
    )
    min_distance_fraction: float = Field(
        default=0.5, ge=0.0, le=0.8,
        description="A sample is valid when no two atoms (periodic images included) are closer than this fraction "
        "of the sum of their covalent radii (and never closer than 0.5 A); 0 keeps only the 0.5 A rule.",
    )
    max_redraws: int = Field(
        default=2, ge=0, le=5,
        description="Rounds of sampling again (new seed) for samples still invalid after the overlap repair; 0: none.",
    )
    store: bool = Field(default=True, description="Store valid structures in memory (with provenance).")


class GeneratedStructure(BaseModel):
    index: int = Field(description="Sample index within this call.")
    valid: bool
    problem: str | None = Field(default=None, description="Why the sample was rejected, when invalid.")
    min_distance_A: float | None = None
    status: Literal["valid", "repaired", "redrawn", "invalid"] = Field(
        default="valid", description="'valid' as sampled; 'repaired' (overlapping atoms pushed apart, cell kept); "
        "'redrawn' (a later draw replaced it); 'invalid' (still overlapping after every redraw).",
    )
    redraws: int = Field(default=0, description="How many times this sample was drawn again.")
    max_displacement_A: float = Field(default=0.0, description="Largest atom move made by the repair.")
    structure: StructureSummary | None = Field(default=None, description="Summary of the stored structure.")
    cif: str | None = Field(default=None, description="CIF text when store=false.")


class GenerateOutput(BaseModel):
    formula: str
    formula_units: int
    atoms_per_cell: int
    method: str
    n_requested: int
    n_valid: int
    n_repaired: int = Field(default=0, description="Returned samples whose overlapping atoms were pushed apart.")
    n_redrawn: int = Field(default=0, description="Samples replaced by a new draw at least once.")
    n_redraw_samples: int = Field(default=0, description="Structures drawn again in all (the count of redraws).")
    redraw_rounds: int = Field(default=0, description="Redraw batches run (at most max_redraws).")
    n_still_invalid: int = Field(default=0, description="Samples still invalid after repair and every redraw.")
    note: str | None = Field(default=None, description="What the caller should know, e.g. about invalid samples.")
    samples: list[GeneratedStructure]
    checkpoint_sha256: str | None = None
    seconds: float


def _formula_units(n_per_unit: int, requested: int | None) -> int:
    """Requested units, or the smallest count with >= DEFAULT_MIN_ATOMS atoms; ToolInputError above the atom limit."""
    units = requested or max(1, math.ceil(DEFAULT_MIN_ATOMS / n_per_unit))
    if n_per_unit * units > MAX_ATOMS_PER_CELL:
        raise ToolInputError(
            f"{n_per_unit * units} atoms per cell is above the limit of {MAX_ATOMS_PER_CELL}; use fewer formula units"
        )
    return units


def _estimate(inp: GenerateInput) -> float:
    """Rough seconds on 2 CPU cores (measured: ~2 model calls per step, batched over samples)."""
    try:
        comp = parse_formula(inp.formula).reduced_composition
        atoms = int(comp.num_atoms) * (inp.formula_units or max(1, math.ceil(DEFAULT_MIN_ATOMS / comp.num_atoms)))
    except Exception:
        atoms = 10
    if inp.method == "pyxtal":
        return 0.5 * inp.n_samples
    return 2.0 + inp.n_steps * 2 * (0.005 + 2e-5 * inp.n_samples * atoms * atoms)


@tool(cost="minutes", reaches=(STORE,), read_only=False, estimate=_estimate)
def generate_structures(inp: GenerateInput, ctx: ToolContext) -> GenerateOutput:
    """Generate candidate crystal structures for a chemical formula and store them in memory.

    The default method is a trained diffusion model (DiffCSP-style: it denoises the lattice and the fractional
    coordinates jointly, with the atoms fixed by the formula); 'pyxtal' gives random symmetric structures instead.
    The cell holds formula_units copies of the reduced formula (default: smallest count with >= 4 atoms, at most 64
    atoms). Every sample is checked (finite cell, no atoms closer than 0.5 A); valid ones are stored with provenance
    (model, checkpoint hash, seed, steps) and returned as summaries with ids. Validity: no two atoms closer than
    min_distance_fraction x the sum of their covalent radii (and 0.5 A), finite cell. A sample that fails is first
    repaired (overlapping atoms pushed apart by a short soft-sphere steepest descent, cell kept), and one that still
    fails is sampled again with a new seed, up to max_redraws rounds; n_repaired, n_redrawn and n_redraw_samples
    count them. Samples still invalid after that are kept in the list, flagged (valid=false, status 'invalid', with
    the reason) and not stored, and `note` says so: n_valid can be below n_samples, never padded with bad cells.
    Samples are unrelaxed: relax them with a potential before trusting energies. Same seed, same result.
    """
    start = time.time()
    comp = parse_formula(inp.formula).reduced_composition
    if abs(comp.num_atoms - round(comp.num_atoms)) > 1e-6:
        raise ToolInputError(f"formula {inp.formula!r} has fractional amounts; give integer stoichiometry")
    n_per_unit = int(round(comp.num_atoms))
    units = _formula_units(n_per_unit, inp.formula_units)
    species = [el.symbol for el, amt in comp.items() for _ in range(int(round(amt)) * units)]
    ctx.progress(0, inp.n_steps, "loading model")
    sha = None
    if inp.method == "diffusion":
        from models.diffusion import sample_valid_structures

        path = checkpoint_path(ctx.settings)
        model = load_model(path)
        sha = model.checkpoint_sha256
        try:
            model.atomic_numbers(species)
        except ValueError as exc:
            raise ToolInputError(f"{exc}; try method='pyxtal'") from exc
        report = sample_valid_structures(
            model, species, inp.n_samples, n_steps=inp.n_steps, seed=inp.seed,
            min_fraction=inp.min_distance_fraction, min_distance=MIN_DISTANCE_A, max_redraws=inp.max_redraws,
            progress=lambda done, total: ctx.progress(done, total, f"diffusion step {done}/{total}"),
        )
        model_info: dict[str, Any] = {"model": "CrystalDiffusion", "checkpoint": path.name, "checkpoint_sha256": sha}
    else:
        from models.diffusion.baseline import random_pyxtal_structures
        from models.diffusion.postprocess import ensure_valid
        from models.diffusion.sampling import REDRAW_SEED_STRIDE

        report = ensure_valid(
            random_pyxtal_structures(species, inp.n_samples, seed=inp.seed),
            lambda n, r: random_pyxtal_structures(species, n, seed=inp.seed + r * REDRAW_SEED_STRIDE),
            min_fraction=inp.min_distance_fraction, min_distance=MIN_DISTANCE_A, max_redraws=inp.max_redraws,
        )
        model_info = {"model": "pyxtal.from_random"}
    structures = report.structures
    if inp.symmetrize:
        from models.diffusion.postprocess import is_valid_sample, symmetrize

        snapped = [symmetrize(s, 0.1) for s in structures]  # kept only where the snap leaves no overlap
        structures = [t if is_valid_sample(t, inp.min_distance_fraction, MIN_DISTANCE_A) else s
                      for s, t in zip(structures, snapped, strict=True)]
    samples = [_finish_sample(i, s, inp, units, model_info, ctx, report) for i, s in enumerate(structures)]
    n_bad = sum(not s.valid for s in samples)
    note = None
    if n_bad:
        note = (f"{n_bad} of {inp.n_samples} samples are still invalid (atoms closer than "
                f"{inp.min_distance_fraction} x their covalent radii sum, or a degenerate cell) after repair and "
                f"{report.redraw_rounds} redraw round(s); they are flagged (valid=false) and not stored: raise "
                "max_redraws or n_samples, or use fewer formula_units.")
    return GenerateOutput(
        formula=comp.reduced_formula, formula_units=units, atoms_per_cell=len(species), method=inp.method,
        n_requested=inp.n_samples, n_valid=sum(s.valid for s in samples), n_repaired=report.n_repaired,
        n_redrawn=report.n_redrawn, n_redraw_samples=report.n_redraw_samples, redraw_rounds=report.redraw_rounds,
        n_still_invalid=n_bad, note=note, samples=samples,
        checkpoint_sha256=sha, seconds=round(time.time() - start, 2),
    )


def _finish_sample(index: int, structure: Structure, inp: GenerateInput, units: int, model_info: dict[str, Any],
                   ctx: ToolContext, report: ValidityReport) -> GeneratedStructure:
    """Validate one sample; store it (with provenance) when valid and asked to."""
    from models.diffusion.postprocess import is_valid_sample
    from tools.structures.io import min_interatomic_distance, structure_to_cif

    flags = {"status": report.status[index], "redraws": report.redraws[index],
             "max_displacement_A": report.max_displacement_A[index]}
    try:
        validate_structure(structure)
    except ToolInputError as exc:
        return GeneratedStructure(index=index, valid=False, problem=str(exc), **{**flags, "status": "invalid"})
    dmin = round(min_interatomic_distance(structure), 4)
    if not is_valid_sample(structure, inp.min_distance_fraction, MIN_DISTANCE_A):
        return GeneratedStructure(
            index=index, valid=False, min_distance_A=dmin, **{**flags, "status": "invalid"},
            problem=f"atoms closer than {inp.min_distance_fraction} x their covalent radii sum after repair and "
            f"{report.redraws[index]} redraw(s)",
        )
    if not inp.store:
        return GeneratedStructure(index=index, valid=True, min_distance_A=dmin, cif=structure_to_cif(structure),
                                  **flags)
    origin = provenance(
        "generate_structures",
        {"formula": inp.formula, "formula_units": units, "n_steps": inp.n_steps, "seed": inp.seed,
         "sample_index": index, "method": inp.method, "symmetrize": inp.symmetrize,
         "min_distance_fraction": inp.min_distance_fraction, "max_redraws": inp.max_redraws,
         "validity": flags, **model_info},
    )
    result = ctx.store.add(structure, provenance=origin, tags=["generated", inp.method])
    record = ctx.store.get(result.id)
    summary = StructureSummary.from_record(record)
    return GeneratedStructure(index=index, valid=True, min_distance_A=dmin, structure=summary, **flags)
