"""umbrella_sampling for atomistic systems: windows along a CV learned from positions (learn_cv on an .npz with
atomic numbers), Langevin MD per window with any of our potentials (models.sampling.umbrella_ase), frames labelled by
the
system's basins (quenching, or a distance rule of the user's), samples stored for free_energy_profile like the toy
systems' ones; and the frames of such a run labelled by quenching for another learn_cv round."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tools.core.errors import ToolInputError
from tools.core.registry import ProgressFn, ToolContext
from tools.free_energy.base import (
    BasinRule,
    UmbrellaSamplingInput,
    UmbrellaSamplingOutput,
    find_stored,
    line_centers,
    samples_output,
)

MAX_MD_STEPS = 5_000_000  # windows x steps: beyond this a call would run for days with any potential
MAX_QUENCHED = 600  # umbrella frames quenched per learn_cv round: ~3 min with EMT on a 28-atom slab (busy machine)
MAX_QUENCHED_SAMPLES = 10_000  # umbrella frames labelled by quenching per run: ~50 min with EMT on that slab
REFERENCES_PER_BASIN = 8  # training frames quenched per labelled basin to find its minima


def _frame_atoms(data: dict[str, np.ndarray], x: np.ndarray | None = None) -> Any:
    """ASE Atoms of one flattened training frame (no positions: the template of the data's atoms)."""
    from ase import Atoms

    cell = data["cell"]
    return Atoms(numbers=data["numbers"], positions=None if x is None else x.reshape(-1, 3),
                 cell=cell if cell.any() else None, pbc=data["pbc"])


def quench_references(
    data: dict[str, np.ndarray], calc: Any, progress: ProgressFn | None = None
) -> dict[str, Any]:
    """The reference minima for quench_labels: up to REFERENCES_PER_BASIN training frames per labelled basin of
    `data`, minimised with `calc` (models.sampling.quench), with their basins and the atoms' template. ToolInputError
    when two
    basins' references end in the same minimum (quenching cannot tell them apart). The caller holds the potential's
    lock."""
    from models.sampling.quench import quench, shared_minima

    labelled = data["labels"]
    if not (labelled >= 0).any():
        raise ToolInputError("no labelled training frames to take basin minima from: label some, or give a basin_rule")
    ref_idx = np.concatenate([
        idx[np.unique(np.linspace(0, len(idx) - 1, min(REFERENCES_PER_BASIN, len(idx))).round().astype(int))]
        for idx in (np.flatnonzero(labelled == b) for b in np.unique(labelled[labelled >= 0]))
    ])
    template = _frame_atoms(data)
    minima = quench(data["x"][ref_idx], template, calc, callback=progress)["minima"]
    shared = shared_minima(minima, labelled[ref_idx], template)
    if shared:
        raise ToolInputError(
            "quenching cannot tell basins " + ", ".join(f"{a} and {b}" for a, b in shared) + " apart: training "
            "frames of both end in the same minimum. Label the frames by a rule of your own (umbrella_sampling: "
            "basin_rule)"
        )
    return {"minima": minima, "labels": labelled[ref_idx], "template": template}


def quench_labels(
    frames: np.ndarray, references: dict[str, Any], calc: Any, progress: ProgressFn | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The basin of each flattened frame by quenching (models.sampling.quench): the labelled basin whose reference
    minimum
    (quench_references) the frame's energy minimisation with `calc` ends in, -1 for any other minimum; with the
    frames' quench results (energies before minimisation, whether each converged). The caller holds the lock."""
    from models.sampling.quench import match_minima, quench

    quenched = quench(frames, references["template"], calc, callback=progress)
    labels = match_minima(quenched["minima"], references["minima"], references["labels"], references["template"])
    return labels, quenched


def rule_labels(frames: np.ndarray, data: dict[str, np.ndarray], rule: BasinRule) -> np.ndarray:
    """The basin of each flattened frame by a distance rule: how many of rule.edges_A the distance between its two
    atoms (minimum image where periodic) reaches."""
    from ase.geometry import find_mic

    i, j = rule.atoms
    pos = frames.reshape(len(frames), -1, 3)
    d = pos[:, j] - pos[:, i]
    if data["pbc"].any():
        d = find_mic(d, data["cell"], data["pbc"])[0]
    return np.searchsorted(np.asarray(rule.edges_A), np.linalg.norm(d, axis=1), side="right")


def _label_basins(
    inp: UmbrellaSamplingInput, ctx: ToolContext, model: Any, data: dict[str, np.ndarray], samples: Any, calc: Any,
    references: dict[str, Any] | None,
) -> list[str]:
    """Label the umbrella frames' basins in place, by inp.basin_rule or by quenching against `references`, and
    return the basin names (the CV's when the basins are its training data's)."""
    names = list(model.metadata.get("basin_names") or [str(b) for b in range(model.config.n_classes)])
    if inp.basin_rule is not None:
        samples.basin = rule_labels(samples.x, data, inp.basin_rule)
        samples.metadata["basins_from"] = inp.basin_rule.describe()
        n_rule = len(inp.basin_rule.edges_A) + 1
        return names if len(names) == n_rule else [str(b) for b in range(n_rule)]
    samples.basin, quenched = quench_labels(samples.x, references, calc, lambda done, total, _: ctx.progress(
        done, total, f"labelling basins: quenching frame {done}/{total}"))
    unconverged = int((~quenched["converged"]).sum())
    samples.metadata["basins_from"] = (
        f"quenching with {samples.metadata['potential']}: each frame takes the basin of the training frames' minimum "
        f"its minimisation ends in; {int((samples.basin < 0).sum())} of {len(samples.basin)} ended elsewhere and stay "
        "unlabelled" + (f"; {unconverged} minimisations stopped before converging" if unconverged else "")
    )
    return names


def umbrella_atomistic(
    inp: UmbrellaSamplingInput, ctx: ToolContext, model: Any, data: dict[str, np.ndarray], start: float
) -> UmbrellaSamplingOutput:
    """Windows along CV component 0 over the training frames' CV values, each a Langevin MD run at
    inp.temperature_K with the potential plus the harmonic bias, started from the training frame nearest its center;
    replica exchange between neighbouring windows every inp.exchange_every steps. The frames' basins follow the
    system, not the CV: quenching with the potential (quench_labels) or inp.basin_rule, so windows at one CV value
    can hold different basins (a barrier the CV hides)."""
    from models.sampling.umbrella_ase import umbrella_ase
    from tools.md.run import potential_calculator
    from tools.potentials.calculators import check_supported

    if inp.dimensions == 2:
        raise ToolInputError("atomistic systems run windows along one CV component: use dimensions=1")
    if inp.refine_rounds:
        raise ToolInputError("refine_rounds applies to the toy systems; for an atomistic system add windows with "
                             "n_windows, s_min and s_max")
    if inp.n_walkers not in (None, 1):
        raise ToolInputError(f"atomistic systems run one MD per window; n_walkers must be 1, got {inp.n_walkers}")
    if inp.n_windows * inp.n_steps > MAX_MD_STEPS:
        raise ToolInputError(
            f"{inp.n_windows} windows x {inp.n_steps} steps is {inp.n_windows * inp.n_steps:,} MD steps; at most "
            f"{MAX_MD_STEPS:,} per call"
        )
    n_frames = inp.n_windows * (inp.n_steps // inp.stride - inp.n_equil // inp.stride)
    if inp.basin_rule is None and n_frames > MAX_QUENCHED_SAMPLES:
        raise ToolInputError(
            f"{n_frames:,} frames ({inp.n_windows} windows x {n_frames // inp.n_windows}) would each be quenched to "
            f"label its basin; at most {MAX_QUENCHED_SAMPLES:,}: raise stride, or give a basin_rule"
        )
    if inp.basin_rule is not None and max(inp.basin_rule.atoms) >= len(data["numbers"]):
        raise ToolInputError(f"basin_rule.atoms {inp.basin_rule.atoms}: the data have {len(data['numbers'])} atoms")
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
        references = None if inp.basin_rule is not None else quench_references(
            data, calc, lambda done, total, _: ctx.progress(done, total, f"quenching reference frame {done}/{total}"))
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
                callback=lambda done, total, _: ctx.progress(
                    done, total, f"MD step {done}/{total} in {len(centers)} windows ({time.time() - t0:.0f} s)"
                ),
            )
        except ValueError as exc:
            raise ToolInputError(str(exc)) from exc
        samples.metadata["potential"] = potential
        names = _label_basins(inp, ctx, model, data, samples, calc, references)
    return samples_output(inp, ctx, model, None, names, samples, kappa, start)


def add_quenched_frames(
    data: dict[str, np.ndarray], samples_id: str, ctx: ToolContext, max_frames: int = MAX_QUENCHED
) -> str:
    """Append up to `max_frames` frames of an atomistic umbrella run (evenly over the run) to the training data,
    each labelled by quenching (quench_labels) with the run's potential against the data's labelled basins; a frame
    ending in any other minimum stays unlabelled (-1). With energies in the data, all frames' energies are
    recomputed with that potential so they share one zero. Returns a sentence for learn_cv's message."""
    from models.free_energy.estimators import UmbrellaSamples
    from models.sampling.quench import frame_energies
    from tools.md.run import potential_calculator

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
    calc, lock = potential_calculator(potential, ctx.settings)
    with lock:
        references = quench_references(data, calc)
        labels, quenched = quench_labels(frames, references, calc, lambda done, total, _: ctx.progress(
            0.2 * done / total, 1.0, f"quenching frame {done}/{total}"))
        if data["energies"] is not None:  # one potential for every frame's energy, so the energy head sees one zero
            recomputed = frame_energies(data["x"], references["template"], calc)
            data["energies"] = np.concatenate([recomputed, quenched["energy"]])
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
