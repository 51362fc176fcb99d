"""umbrella_sampling for atomistic systems: windows along a CV learned from positions (learn_cv on an .npz with
atomic numbers), Langevin MD per window with any of our potentials (models.umbrella_ase), samples stored for
free_energy_profile like the toy systems' ones."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tools.errors import ToolInputError
from tools.free_energy import UmbrellaSamplingInput, UmbrellaSamplingOutput, _line_centers, _samples_output
from tools.registry import ToolContext

MAX_MD_STEPS = 5_000_000  # windows x steps: beyond this a call would run for days with any potential


def _frame_atoms(data: dict[str, np.ndarray], x: np.ndarray) -> Any:
    """ASE Atoms of one flattened training frame."""
    from ase import Atoms

    cell = data["cell"]
    return Atoms(numbers=data["numbers"], positions=x.reshape(-1, 3), cell=cell if cell.any() else None,
                 pbc=data["pbc"])


def umbrella_atomistic(
    inp: UmbrellaSamplingInput, ctx: ToolContext, model: Any, data: dict[str, np.ndarray], start: float
) -> UmbrellaSamplingOutput:
    """Windows along CV component 0 over the training frames' CV values, each a Langevin MD run at
    inp.temperature_K with the potential plus the harmonic bias, started from the training frame nearest its center;
    replica exchange between neighbouring windows every inp.exchange_every steps; frames labelled by the CV's
    classification head."""
    from models.umbrella_ase import umbrella_ase
    from tools.md import potential_calculator
    from tools.potentials import check_supported

    if inp.dimensions == 2:
        raise ToolInputError("atomistic systems run windows along one CV component: use dimensions=1")
    if inp.refine_rounds:
        raise ToolInputError("refine_rounds applies to the toy systems; for an atomistic system add windows with "
                             "n_windows, s_min and s_max")
    if inp.n_walkers not in (None, 1):
        raise ToolInputError(f"atomistic systems run one MD per window; n_walkers must be 1, got {inp.n_walkers}")
    if model.config.w_class == 0:
        raise ToolInputError(
            f"CV {inp.cv_id} has no classification head (preset autoencoder), which labels the frames' basins in "
            "atomistic runs; learn it with the multitask or classifier preset"
        )
    if inp.n_windows * inp.n_steps > MAX_MD_STEPS:
        raise ToolInputError(
            f"{inp.n_windows} windows x {inp.n_steps} steps is {inp.n_windows * inp.n_steps:,} MD steps; at most "
            f"{MAX_MD_STEPS:,} per call"
        )
    pool, labels = data["x"], data["labels"]
    s_pool = model.cv_numpy(pool)[:, 0]
    centers, kappa = _line_centers(inp, s_pool, labels, span_data=True)
    starts = [_frame_atoms(data, pool[int(np.argmin(np.abs(s_pool - c)))]) for c in centers]
    potential = inp.potential or ctx.settings.potential
    ctx.progress(0, inp.n_steps, f"loading potential {potential}")
    calc, lock = potential_calculator(potential, ctx.settings)
    check_supported(calc, starts[0], potential)
    t0 = time.time()
    with lock:
        try:
            samples = umbrella_ase(
                starts,
                calc,
                model,
                centers,
                kappa,
                inp.temperature_K,
                n_steps=inp.n_steps,
                n_equil=inp.n_equil,
                stride=inp.stride,
                timestep_fs=inp.timestep_fs,
                exchange_every=inp.exchange_every or None,
                seed=inp.seed,
                callback=lambda done, total: ctx.progress(
                    done, total, f"MD step {done}/{total} in {len(centers)} windows ({time.time() - t0:.0f} s)"
                ),
            )
        except ValueError as exc:
            raise ToolInputError(str(exc)) from exc
    samples.metadata["potential"] = potential
    names = list(model.metadata.get("basin_names") or [str(b) for b in range(model.config.n_classes)])
    return _samples_output(inp, ctx, model, None, names, samples, kappa, start)
