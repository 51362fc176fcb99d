"""umbrella_sampling for atomistic systems: windows along a CV learned from positions (learn_cv on an .npz with
atomic numbers), Langevin MD per window with any of our potentials (models.umbrella_ase), samples stored for
free_energy_profile like the toy systems' ones."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tools.errors import ToolInputError
from tools.free_energy_base import (
    UmbrellaSamplingInput,
    UmbrellaSamplingOutput,
    find_stored,
    line_centers,
    samples_output,
)
from tools.registry import ToolContext

MAX_MD_STEPS = 5_000_000  # windows x steps: beyond this a call would run for days with any potential
MAX_QUENCHED = 600  # umbrella frames quenched per learn_cv round: ~3 min with EMT on a 28-atom slab (busy machine)
REFERENCES_PER_BASIN = 8  # training frames quenched per labelled basin to find its minima


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
    centers, kappa = line_centers(inp, s_pool, labels, span_data=True)
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
    return samples_output(inp, ctx, model, None, names, samples, kappa, start)


def add_quenched_frames(
    data: dict[str, np.ndarray], samples_id: str, ctx: ToolContext, max_frames: int = MAX_QUENCHED
) -> str:
    """Append up to `max_frames` frames of an atomistic umbrella run (evenly over the run) to the training data,
    each labelled by the basin whose minimum its energy minimisation with the run's potential ends in
    (models.quench): the minima of up to REFERENCES_PER_BASIN training frames per labelled basin are the reference;
    a frame ending in any other minimum stays unlabelled (-1). With energies in the data, all frames' energies are
    recomputed with that potential so they share one zero. Returns a sentence for learn_cv's message."""
    from ase import Atoms

    from models.free_energy import UmbrellaSamples
    from models.quench import frame_energies, match_minima, quench
    from tools.md import potential_calculator

    if "numbers" not in data:
        raise ToolInputError(
            "add_samples_id with a data_file needs atomistic data (flattened positions with 'numbers'), whose "
            "umbrella frames can be labelled by quenching them"
        )
    samples = UmbrellaSamples.load(find_stored(ctx, "umbrella", samples_id, "samples.npz", "umbrella samples",
                                         "umbrella_sampling"))
    potential = samples.metadata.get("potential")
    if samples.metadata.get("engine") != "ase-langevin" or not potential:
        raise ToolInputError(f"umbrella samples {samples_id} are not from an atomistic run (no potential to quench "
                             "their frames with)")
    if samples.x.ndim != 2 or samples.x.shape[1] != data["x"].shape[1]:
        raise ToolInputError(
            f"umbrella samples {samples_id} hold frames of {samples.x.shape[-1] // 3} atoms, the data "
            f"{data['x'].shape[1] // 3}: add samples of a CV learned on the same atoms"
        )
    pick = np.unique(np.linspace(0, len(samples.x) - 1, min(max_frames, len(samples.x))).round().astype(int))
    frames = samples.x[pick]
    ref_idx = np.concatenate([
        idx[np.unique(np.linspace(0, len(idx) - 1, min(REFERENCES_PER_BASIN, len(idx))).round().astype(int))]
        for idx in (np.flatnonzero(data["labels"] == b) for b in np.unique(data["labels"][data["labels"] >= 0]))
    ])
    cell = data["cell"]
    template = Atoms(numbers=data["numbers"], cell=cell if cell.any() else None, pbc=data["pbc"])
    calc, lock = potential_calculator(potential, ctx.settings)
    total = len(ref_idx) + len(frames)
    with lock:
        references = quench(data["x"][ref_idx], template, calc, callback=lambda done, _: ctx.progress(
            0.2 * done / total, 1.0, f"quenching frame {done}/{total}"))
        quenched = quench(frames, template, calc, callback=lambda done, _: ctx.progress(
            0.2 * (len(ref_idx) + done) / total, 1.0, f"quenching frame {len(ref_idx) + done}/{total}"))
        if data["energies"] is not None:  # one potential for every frame's energy, so the energy head sees one zero
            recomputed = frame_energies(data["x"], template, calc)
            data["energies"] = np.concatenate([recomputed, quenched["energy"]])
    labels = match_minima(quenched["minima"], references["minima"], data["labels"][ref_idx], template)
    data["x"] = np.concatenate([data["x"], frames])
    data["labels"] = np.concatenate([data["labels"], labels])
    counts = np.bincount(labels[labels >= 0], minlength=int(data["labels"].max()) + 1).tolist()
    other = int((labels < 0).sum())
    unconverged = int((~quenched["converged"]).sum())
    return (
        f" Added {len(frames)} frames of umbrella samples {samples_id}, labelled by the basin whose minimum their "
        f"minimisation with {potential} ends in (per basin {counts}; {other} ended in minima of no labelled basin and "
        "stay unlabelled"
        + (f"; {unconverged} minimisations stopped before converging" if unconverged else "")
        + ")" + ("; every frame's energy is from that potential" if data["energies"] is not None else "") + "."
    )
