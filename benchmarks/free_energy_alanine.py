"""Benchmark: alanine dipeptide in vacuum (OpenMM, amber force field via openmmtools' AlanineDipeptideVacuum).

1. Short unbiased MD in C7eq (phi < 0) and C7ax (phi > 0; reached by a brief restrained pull) gives labelled data.
2. A multitask CV network on sin/cos of phi and psi is trained on it (classification + energy).
3. Umbrella sampling along the learned CV runs natively in OpenMM: the CV, a function of (phi, psi) only, is tabulated
   on a periodic 2D grid (Continuous2DFunction) inside a CustomCVForce bias 0.5 k (s(phi, psi) - s0)^2.
4. Reference: umbrella sampling along phi itself (periodic harmonic CustomTorsionForce windows).
Both are analysed with MBAR; the basin free-energy difference F(C7ax) - F(C7eq) (basins by the sign of phi) is
printed with uncertainties. phi = atoms (4, 6, 8, 14), psi = (6, 8, 14, 16), 0-based. Each CV window starts from
the pooled configuration nearest its center; `--refine-rounds N` adds stiffer windows where the CV was not sampled
(models.free_energy.estimators.refine_windows).

Why: alanine dipeptide is the standard test of a learned CV: two slow torsions, and a reference that biases both
directly. On the periodic torus a 1D CV puts several routes between the basins at one CV value, and the barriers
between them lie across the CV, where no window helps; hence `--latent-dim 2` (a 2D CV with a replica-exchange grid
of 2D windows, alanine_2d.py), `--cv-seeds` (one CV's systematic error exceeds its MBAR error bar, so the seeds'
spread is reported) and a second reference, `--reference-grid N`: an N x N grid of windows in (phi, psi) themselves.
Windows exchange with their neighbours (REUS) by default, the references' too. `--reference-kT DF ERR` skips the
~10-minute reference along phi. Results, dated with their commands: benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/free_energy_alanine.py --latent-dim 2 --window-frames 150 --cv-seeds 0 1 2 \
        --jobs 1 --log-dir DIR --reference-kT 4.59 0.10 --grid-reference-kT 4.43 0.12           # ~80 min
    .venv/bin/python benchmarks/free_energy_alanine.py [--quick] [--seed 1] [--reference-kT 4.59 0.10]
    .venv/bin/python benchmarks/free_energy_alanine.py --reference-only --ref-frames 1500
    .venv/bin/python benchmarks/free_energy_alanine.py --reference-grid 24 --window-frames 150    # ~45-70 min
    .venv/bin/python benchmarks/free_energy_alanine.py --latent-dim 2 --grid-spacing 0.1 --window-frames 150 \
        --reference-kT 4.59 0.10 [--no-exchange] [--data-runs 1]                                  # 25-60 min
Needs `pip install openmm openmmtools` (not a CI test: minutes of MD).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alanine_2d import latent_of_torsions, tabulated_bias  # noqa: E402  (benchmarks/, first on sys.path)

from models.free_energy.estimators import (  # noqa: E402
    UmbrellaSamples,
    decorrelate,
    default_windows,
    mbar_analysis,
    mbar_basins_nd,
    refine_umbrella,
    refine_windows,
)
from models.sampling.cv import TORSION_FOLD_LIMIT, CVConfig, MultitaskCV, torsion_fold_fraction, train_cv  # noqa: E402

PHI = (4, 6, 8, 14)
PSI = (6, 8, 14, 16)
TEMPERATURE = 300.0
KT_KJ = 0.0083144626 * TEMPERATURE  # kJ/mol


def alanine_vacuum():  # noqa: ANN201
    """openmmtools' vacuum alanine dipeptide (amber force field shipped with OpenMM, HBond constraints)."""
    import openmm.app as app
    from openmmtools import testsystems

    return testsystems.AlanineDipeptideVacuum(constraints=app.HBonds)


def make_context(test, extra_forces: list, seed: int, temperature: float = TEMPERATURE):  # noqa: ANN001, ANN201
    """A CPU context of the test system plus extra forces, at `temperature` (300 K) with a 2 fs LangevinMiddle
    integrator."""
    import copy

    import openmm as mm
    import openmm.unit as unit

    system = copy.deepcopy(test.system)
    for force in extra_forces:
        system.addForce(copy.deepcopy(force))  # a System owns its forces: never share one
    integrator = mm.LangevinMiddleIntegrator(temperature * unit.kelvin, 1.0 / unit.picosecond, 2.0 * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    platform = mm.Platform.getPlatformByName("CPU")
    context = mm.Context(system, integrator, platform, {"Threads": os.environ.get("OPENMM_CPU_THREADS", "2")})
    context.setPositions(test.positions)
    context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
    return context, integrator


def torsion(pos: np.ndarray, idx: tuple[int, int, int, int]) -> np.ndarray:
    """IUPAC dihedral (radians) of frames pos (n, atoms, 3)."""
    p0, p1, p2, p3 = (pos[:, i] for i in idx)
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    y = np.linalg.norm(b2, axis=-1) * (b1 * n2).sum(-1)
    return np.arctan2(y, (n1 * n2).sum(-1))


def run_frames(context, integrator, n_frames: int, every: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Positions (n, atoms, 3) in nm and potential energies (kJ/mol) every `every` steps."""
    pos, energies = [], []
    for _ in range(n_frames):
        integrator.step(every)
        state = context.getState(getPositions=True, getEnergy=True, groups={0})
        pos.append(state.getPositions(asNumpy=True)._value)
        energies.append(state.getPotentialEnergy()._value)
    return np.array(pos), np.array(energies)


def window_record(model: MultitaskCV, pos: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-frame CV, window index, frame index, basin and (phi, psi) of window k's frames pos (n, atoms, 3)."""
    phi, psi = torsion(pos, PHI), torsion(pos, PSI)
    return {
        "s": cv_of_torsions(model, phi, psi),
        "window": np.full(len(pos), k),
        "frame": np.arange(len(pos)),
        "basin": basin_of(pos),
        "x": np.stack([phi, psi], -1),
    }


def announce_window(kind: str, k: int, center: float, kappa: float, record: dict[str, np.ndarray]) -> None:
    """One progress line per sampled window: where it was put and where it sat."""
    print(
        f"{kind} window {k}: center {center:.3f} (kappa {kappa:.0f}), mean s {record['s'].mean():.3f}, "
        f"phi>0 {record['basin'].mean():.2f}",
        flush=True,
    )


def samples_of(centers: np.ndarray, kappas: np.ndarray, records: list[dict[str, np.ndarray]]) -> UmbrellaSamples:
    """UmbrellaSamples (one walker per window, x = (phi, psi)) from the windows' records, in window order."""
    cat = {key: np.concatenate([r[key] for r in records]) for key in records[0]}
    return UmbrellaSamples(
        centers, kappas, 1.0, cat["window"], cat["window"].copy(), cat["frame"], cat["s"], cat["basin"], cat["x"]
    )


def run_cv_windows(
    test,
    bias,
    model: MultitaskCV,
    centers: np.ndarray,
    kappas: np.ndarray,  # noqa: ANN001
    pool_pos: np.ndarray,
    pool_s: np.ndarray,
    seed: int,
    sizes: dict,
) -> tuple:
    """Umbrella windows along the learned CV, each started from the pooled configuration whose CV is nearest its
    center (so a window never has to climb from its neighbour's basin); returns the samples, the grown pool
    (positions, CV) and the new frames' unbiased potential energies in kT."""
    context, integrator = make_context(test, [bias], seed)
    records, new_pos, new_e, kept = [], [], [], []
    for i, (c, kap) in enumerate(zip(centers, kappas, strict=True)):
        context.setParameter("s0", float(c))
        context.setParameter("kb", float(kap) * KT_KJ)
        frames = _window_frames(context, integrator, pool_pos[int(np.argmin(np.abs(pool_s - c)))], seed + i, sizes)
        if frames is None:
            print(f"CV window at {c:.3f} (kappa {kap:.0f}) dropped: the integration blew up even at 0.5 fs", flush=True)
            continue
        pos, e = frames
        k = len(kept)
        kept.append(i)
        new_e.append(e / KT_KJ)
        records.append(window_record(model, pos, k))
        new_pos.append(pos)
        announce_window("CV", k, c, kap, records[-1])
    if not kept:
        raise RuntimeError("every umbrella window blew up, even at 0.5 fs: lower the force constants")
    samples = samples_of(np.asarray(centers, float)[kept], np.asarray(kappas, float)[kept], records)
    return samples, np.concatenate([pool_pos, *new_pos]), np.concatenate([pool_s, samples.s]), np.concatenate(new_e)


def run_cv_windows_exchange(
    test,  # noqa: ANN001
    bias,  # noqa: ANN001
    model: MultitaskCV,
    centers: np.ndarray,
    kappas: np.ndarray,
    pool_pos: np.ndarray,
    pool_s: np.ndarray,
    seed: int,
    sizes: dict,
) -> tuple:
    """Replica exchange umbrella sampling along the learned CV (`reus_lockstep`), each replica started from the
    pooled configuration whose CV is nearest its window's center. Same return values as run_cv_windows."""

    def place(context, k: int) -> None:  # noqa: ANN001
        context.setParameter("s0", float(centers[k]))
        context.setParameter("kb", float(kappas[k]) * KT_KJ)

    def coordinates(pos: np.ndarray, _: np.ndarray) -> np.ndarray:
        return cv_of_torsions(model, torsion(pos, PHI), torsion(pos, PSI))

    starts = [pool_pos[int(np.argmin(np.abs(pool_s - c)))] for c in centers]
    pos_w, e_w = reus_lockstep(
        test, bias, place, coordinates, starts, centers, kappas, seed, sizes, sizes["window_frames"]
    )
    records = [window_record(model, pos_w[k], k) for k in range(len(centers))]
    for k, record in enumerate(records):
        announce_window("REUS", k, centers[k], kappas[k], record)
    samples = samples_of(np.asarray(centers, float), np.asarray(kappas, float), records)
    new_e = np.concatenate(e_w) / KT_KJ
    return samples, np.concatenate([pool_pos, *pos_w]), np.concatenate([pool_s, samples.s]), new_e


def reus_lockstep(
    test,  # noqa: ANN001
    bias,  # noqa: ANN001
    place,  # noqa: ANN001
    coordinates,  # noqa: ANN001
    starts: list[np.ndarray],
    centers: np.ndarray,
    kappas: np.ndarray,
    seed: int,
    sizes: dict,
    n_frames: int,
    pairs=None,  # noqa: ANN001
    ends: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Replica exchange umbrella sampling: one OpenMM context per window (`place(context, k)` sets window k's bias),
    all advanced in lockstep; every sizes["exchange_every"] steps neighbouring windows try to swap replicas
    (models.free_energy.estimators.exchange_neighbours on `coordinates(positions, windows)`, the biased coordinate of
    each
    replica as its window sees it; with `pairs(sweep)`, exchange_pairs over those window pairs, e.g. a 2D grid's),
    so a configuration stuck behind a barrier orthogonal to the biased coordinate can leave through other windows.
    Frames (every sizes["every"] steps) are recorded per window (the thermodynamic state), as MBAR needs; a blow-up
    restarts that replica from its last good positions. Prints the acceptance and the replicas' end-to-end
    traversals between the `ends` (two sets of windows; default the lowest and highest center): mixing along the
    orthogonal coordinates needs them. Returns positions (n, atoms, 3) and potential energies (kJ/mol) per window."""
    import openmm as mm
    import openmm.unit as unit

    from models.free_energy.estimators import exchange_neighbours, exchange_pairs

    n = len(centers)
    every = sizes["every"]
    swap_every = int(sizes.get("exchange_every", every))
    if swap_every <= 0 or every % swap_every:
        raise ValueError(f"exchange_every ({swap_every}) must divide the steps per frame ({every})")
    rng = np.random.default_rng(seed % 2**32)
    replicas = [make_context(test, [bias], seed + r) for r in range(n)]
    window_of = np.arange(n)
    last = []
    for r, (context, integrator) in enumerate(replicas):
        place(context, r)
        last.append(starts[r])
        context.setPositions(last[-1] * unit.nanometer)
        integrator.step(sizes["equil_steps"])
    pos_by_w: list[list] = [[] for _ in range(n)]
    e_by_w: list[list] = [[] for _ in range(n)]
    if ends is None:
        order = np.argsort(centers, kind="stable")
        ends = (order[:1], order[-1:])
    last_end = np.zeros(n, int)  # per replica: 0 none yet, -1 lowest window, +1 highest window
    traversals = np.zeros(n, int)
    attempts = accepted = resets = sweeps = 0
    t0 = time.time()
    for _f in range(n_frames):
        if _f and _f % max(1, n_frames // 10) == 0:
            print(f"REUS: frame {_f}/{n_frames}, swaps accepted {accepted / max(attempts, 1):.2f}, "
                  f"{int(traversals.sum())} traversals so far ({time.time() - t0:.0f} s)", flush=True)
        for sub in range(every // swap_every):
            record = sub == every // swap_every - 1  # the frame's last sub-step: store positions and energies
            for r, (context, integrator) in enumerate(replicas):
                try:
                    integrator.step(swap_every)
                except mm.OpenMMException:  # a blow-up: restart this replica from its last good positions
                    resets += 1
                    context.setPositions(last[r] * unit.nanometer)
                    context.setVelocitiesToTemperature(TEMPERATURE * unit.kelvin, seed + 7919 * resets)
                    integrator.step(swap_every)
                state = context.getState(getPositions=True, getEnergy=record, groups={0})
                last[r] = state.getPositions(asNumpy=True)._value
                if record:
                    pos_by_w[window_of[r]].append(last[r])
                    e_by_w[window_of[r]].append(state.getPotentialEnergy()._value)
            s_now = coordinates(np.array(last), window_of)
            if pairs is None:
                new_w, n_try, n_ok = exchange_neighbours(s_now, window_of, centers, kappas, rng, parity=sweeps % 2)
            else:
                new_w, n_try, n_ok = exchange_pairs(s_now, window_of, centers, kappas, rng, pairs(sweeps))
            sweeps += 1
            attempts, accepted = attempts + n_try, accepted + n_ok
            for r in np.flatnonzero(new_w != window_of):
                place(replicas[r][0], new_w[r])
            window_of = new_w
            for r, end in ((np.flatnonzero(np.isin(window_of, ends[0])), -1),
                           (np.flatnonzero(np.isin(window_of, ends[1])), 1)):
                traversals[r] += last_end[r] == -end
                last_end[r] = end
    print(
        f"replica exchange: {accepted}/{attempts} swaps accepted ({accepted / max(attempts, 1):.2f}) every "
        f"{swap_every} steps; {int(traversals.sum())} end-to-end traversals of the {n} windows "
        f"({int((traversals > 0).sum())} replicas made one); {resets} blow-up restart(s)",
        flush=True,
    )
    return [np.array(p) for p in pos_by_w], [np.array(e) for e in e_by_w]


def _window_frames(context, integrator, start: np.ndarray, seed: int, sizes: dict) -> tuple | None:  # noqa: ANN001
    """Equilibrate and sample one window from `start` (nm). A stiff refined window on a steep stretch of the CV can
    blow up the 2 fs integration (OpenMM: 'Particle coordinate is NaN'); then the window restarts from `start` with
    half the time step and twice the steps per frame (same simulated time), at most twice; None if it still fails
    (the caller drops the window: MBAR needs no particular set of windows)."""
    import openmm as mm
    import openmm.unit as unit

    for halvings in range(3):
        factor = 2**halvings
        integrator.setStepSize(2.0 / factor * unit.femtosecond)
        context.setPositions(start * unit.nanometer)
        context.setVelocitiesToTemperature(TEMPERATURE * unit.kelvin, seed + 7919 * halvings)
        try:
            integrator.step(sizes["equil_steps"] * factor)
            return run_frames(context, integrator, sizes["window_frames"], sizes["every"] * factor)
        except mm.OpenMMException as exc:
            if halvings == 2:
                return None
            print(
                f"  window blew up at dt = {2.0 / factor:g} fs ({exc}); restarting at {1.0 / factor:g} fs", flush=True
            )
        finally:
            integrator.setStepSize(2.0 * unit.femtosecond)
    raise AssertionError("unreachable")


def basin_data(test, pull, restrained: bool, seed: int, hot_K: float, sizes: dict) -> list[tuple]:  # noqa: ANN001
    """Unbiased MD from one basin for the CV data: a 20 ps pull and a 6 ps release in steps (when `restrained`),
    then 300 K (and `hot_K`) runs.
    Returns (temperature, basin labels by the sign of phi, positions, energies in kJ/mol) per temperature."""
    import openmm.unit as unit

    context, integrator = make_context(test, [pull], seed)
    context.setParameter("kr", 500.0 if restrained else 0.0)
    integrator.step(10000)
    if restrained:  # let go in steps: released at once, the pulled molecule often falls back over phi = 0 in ps
        for kr in (100.0, 20.0, 5.0):
            context.setParameter("kr", kr)
            integrator.step(1000)
    context.setParameter("kr", 0.0)
    runs = []
    # a hotter run (--hot-K) reaches the rest of each basin (alpha_R, beta) and the edges of the barrier
    for temperature in [TEMPERATURE] + ([hot_K] if hot_K else []):
        integrator.setTemperature(temperature * unit.kelvin)
        integrator.step(2500)
        pos, e = run_frames(context, integrator, sizes["data_frames"], sizes["every"])
        runs.append((temperature, basin_of(pos), pos, e))
    return runs


def cv_training_data(test, seed: int, sizes: dict, hot_K: float, data_runs: int = 1) -> tuple[np.ndarray, ...]:  # noqa: ANN001
    """Labelled CV data: unbiased runs from C7eq (the test structure) and from C7ax (after a restrained pull to
    phi = +70, psi = -70 deg), at 300 K and `hot_K`, each basin split into `data_runs` runs with their own starts.
    Returns flattened positions (n, atoms*3), basin labels by the sign of phi, and energies in kT."""
    import openmm as mm

    pull = mm.CustomTorsionForce("0.5*kr*min(d, 6.283185307-d)^2; d=abs(theta-t0)")
    pull.addGlobalParameter("kr", 500.0)
    pull.addPerTorsionParameter("t0")
    pull.addTorsion(*PHI, [np.deg2rad(70.0)])
    pull.addTorsion(*PSI, [np.deg2rad(-70.0)])
    pull.setForceGroup(1)
    frames, labels, energies = [], [], []
    piece = dict(sizes, data_frames=sizes["data_frames"] // data_runs)
    for basin, restrained in ((0, False), (1, True)):
        # C7ax lives ~100-200 ps at 300 K here (4 pulls: 0.27, 1, 1, 0.04 of 200 ps in C7ax), so its data can come
        # from several short runs, each from its own pull; a run spending less than a third of its 300 K time in
        # the basin is pulled again with another seed
        for run in range(data_runs):
            for attempt in range(6):
                try:
                    runs = basin_data(test, pull, restrained, seed + basin + 10 * attempt + 1000 * run, hot_K, piece)
                except mm.OpenMMException as exc:  # the stiff pull can blow up the 2 fs integration: another seed
                    print(f"basin {basin}: the run blew up ({exc}; attempt {attempt + 1}); starting again", flush=True)
                    continue
                share = float(np.mean(runs[0][1] == basin))
                if share >= 1 / 3:
                    break
                print(f"basin {basin}: the 300 K run spent {share:.2f} of its time there (attempt {attempt + 1}); "
                      "pulling again", flush=True)
            else:
                raise SystemExit(f"could not hold alanine dipeptide in basin {basin} for the CV data")
            for temperature, label, pos, e in runs:
                frames.append(pos.reshape(len(pos), -1))
                labels.append(label)
                energies.append(e / KT_KJ)
                print(
                    f"basin {basin} at {temperature:.0f} K (run {run + 1}/{data_runs}): {len(pos)} frames, "
                    f"fraction phi>0 = {label.mean():.2f}",
                    flush=True,
                )
    return np.concatenate(frames), np.concatenate(labels), np.concatenate(energies)


def basin_of(pos: np.ndarray) -> np.ndarray:
    """The basin rule of this benchmark: 1 (C7ax) where phi > 0, else 0 (C7eq), for frames pos (n, atoms, 3)."""
    return (torsion(pos, PHI) > 0).astype(int)


REGIONS = ("alpha_R", "C7ax", "alpha_L")  # beside C7eq/beta (phi < 0, psi outside alpha_R's band)


def region_of(x: np.ndarray) -> np.ndarray:
    """Conformational region of frames x = (phi, psi) in radians: 0 C7eq/beta, 1 alpha_R (phi < 0, -120 < psi < 50
    deg), 2 C7ax (phi > 0, psi < 0), 3 alpha_L (phi > 0, psi > 0)."""
    phi, psi = np.degrees(x[:, 0]), np.degrees(x[:, 1])
    return np.where(phi < 0, ((psi > -120) & (psi < 50)).astype(int), np.where(psi < 0, 2, 3))


def first_half(window: np.ndarray) -> np.ndarray:
    """Mask of the frames in the first half of their window (frames in time order within each window)."""
    mask = np.zeros(len(window), bool)
    for k in np.unique(window):
        idx = np.flatnonzero(window == k)
        mask[idx[: len(idx) // 2]] = True
    return mask


def basin_summary(s: np.ndarray, x: np.ndarray, basin: np.ndarray, window: np.ndarray, centers: np.ndarray,
                  kappa: float, period: float | None = None) -> dict:
    """MBAR on 2D umbrella frames (models.free_energy.estimators.mbar_basins_nd): the basin dF (phi > 0 vs phi < 0)
    with its
    error, each region's F against C7eq/beta (region_of on x = (phi, psi)), and the basin dF of each half of every
    window's frames (a drift between halves means the windows are not converged)."""
    def pad(values: np.ndarray) -> list[float]:  # NaN for a region no frame visited
        return [float(v) for v in values[1:]] + [float("nan")] * (len(REGIONS) + 1 - len(values))

    full = mbar_basins_nd(s, basin, window, centers, kappa, period=period)
    by_region = mbar_basins_nd(s, region_of(x), window, centers, kappa, period=period)
    half = first_half(window)
    halves = [
        float(mbar_basins_nd(s[m], basin[m], window[m], centers, kappa, period=period)["basin_df"][1])
        for m in (half, ~half)
    ]
    return {**full, "df": float(full["basin_df"][1]), "err": float(full["basin_err"][1]),
            "regions": pad(by_region["basin_df"]), "region_errs": pad(by_region["basin_err"]), "halves": halves}


def regions_text(values: list[float]) -> str:
    """F by region as printed: 'by region (alpha_R / C7ax / alpha_L) a / b / c'."""
    return f"by region ({' / '.join(REGIONS)}) " + " / ".join(f"{v:.2f}" for v in values)


def summary_line(r: dict) -> str:
    """dF +- err, then F by region and the halves, as the benchmark prints them."""
    return (f"{r['df']:.3f} +- {r['err']:.3f} kT; {regions_text(r['regions'])}; "
            f"halves {r['halves'][0]:.2f} / {r['halves'][1]:.2f}")


def cv_bias(model: MultitaskCV):  # noqa: ANN201
    """The learned CV, a function of (phi, psi) only, tabulated on a periodic 2D grid inside an OpenMM
    CustomCVForce bias 0.5 kb (s(phi, psi) - s0)^2 (force group 2)."""
    return tabulated_bias(model, {"phi": PHI, "psi": PSI}, "0.5*kb*(sa(phi,psi)-s0)^2", ("kb", "s0"))


def umbrella_along_cv(
    model: MultitaskCV,
    test,
    pool: dict,
    x: np.ndarray,
    y: np.ndarray,
    sizes: dict,
    seed: int,  # noqa: ANN001
) -> tuple[UmbrellaSamples, dict]:
    """Default windows between the basins' median CV values (plus `refine_rounds` of adaptive refinement), each
    started from the pooled configuration nearest its center; returns the samples and the grown pool."""
    bias = cv_bias(model)
    pool = dict(pool, s=model.cv_numpy(pool["pos"].reshape(len(pool["pos"]), -1))[:, 0])
    s_data = model.cv_numpy(x)[:, 0]
    centers, kappa = default_windows(np.array([np.median(s_data[y == b]) for b in (0, 1)]), sizes["windows"])

    def more_windows(
        _: UmbrellaSamples, new_c: np.ndarray, new_k: np.ndarray, round_: int, frames: int | None = None
    ) -> UmbrellaSamples:
        runner = run_cv_windows_exchange if sizes["exchange"] and len(new_c) > 1 else run_cv_windows
        run_sizes = dict(sizes, window_frames=frames or sizes["window_frames"])
        more, pool["pos"], pool["s"], e = runner(
            test, bias, model, new_c, new_k, pool["pos"], pool["s"], seed + 7 + 100 * round_, run_sizes
        )
        pool["e"] = np.concatenate([pool["e"], e])
        return more

    def announce(round_: int, new_c: np.ndarray, new_k: np.ndarray) -> None:
        print(
            f"refinement {round_ + 1}: {len(new_c)} windows at s = {np.round(new_c, 3).tolist()}, kappa x4", flush=True
        )

    kappas = np.full(len(centers), kappa)
    if sizes["exchange"] and sizes.get("pilot_frames"):
        # pilot ladder -> stiffer windows where it left holes -> one production ladder holding all windows, so
        # that replicas can travel the whole CV (refined windows sampled apart from the ladder would cut it)
        pilot = more_windows(None, centers, kappas, -1, sizes["pilot_frames"])  # type: ignore[arg-type]
        decorrelated, _ = decorrelate(pilot)
        new_c, new_k = refine_windows(decorrelated, mbar_analysis(decorrelated, convergence=False).overlap)
        if len(new_c):
            announce(0, new_c, new_k)
        order = np.argsort(np.concatenate([centers, new_c]), kind="stable")
        centers, kappas = np.concatenate([centers, new_c])[order], np.concatenate([kappas, new_k])[order]
        return more_windows(None, centers, kappas, 0), pool  # type: ignore[arg-type]
    us = more_windows(None, centers, kappas, -1)  # type: ignore[arg-type]
    return refine_umbrella(us, more_windows, sizes["refine_rounds"], announce), pool


def umbrella_2d(
    model: MultitaskCV, test, pool: dict, x: np.ndarray, y: np.ndarray, sizes: dict, seed: int,  # noqa: ANN001
    spacing: float, save: Path | None,
) -> dict:
    """Umbrella windows on a 2D grid of the learned latent (alanine_2d.grid_windows), each started from the pooled
    configuration nearest its center, and MBAR over both latent components. With sizes["exchange"] the windows run
    as one REUS grid (reus_lockstep; swaps along both axes, models.free_energy.estimators.grid_pairs), else
    independently."""
    from alanine_2d import bias_2d, grid_windows, latent_of_torsions, run_windows_2d, torus_image, window_rows

    from models.free_energy.estimators import grid_pairs

    torsions = {"phi": PHI, "psi": PSI}
    s_data = model.cv_numpy(x)
    centers = grid_windows(torus_image(model)[1], spacing)
    kappa = 1.0 / spacing**2
    print(f"2D windows: {len(centers)} on a {spacing} grid, kappa {kappa:.1f} kT per latent unit^2", flush=True)
    bias = bias_2d(model, torsions)
    if sizes["exchange"]:

        def place(context, k: int) -> None:  # noqa: ANN001
            context.setParameter("c1", float(centers[k][0]))
            context.setParameter("c2", float(centers[k][1]))
            context.setParameter("kb", kappa * KT_KJ)

        def coordinates(pos: np.ndarray, _: np.ndarray) -> np.ndarray:
            return latent_of_torsions(model, torsion(pos, PHI), torsion(pos, PSI))

        starts = [pool["pos"][int(np.argmin(((s_data - c) ** 2).sum(1)))] for c in centers]
        # traversals count trips between the windows at the two basins' median latent (within 1.5 spacings)
        ends = tuple(
            np.flatnonzero(np.linalg.norm(centers - np.median(s_data[y == b], 0), axis=1) <= 1.5 * spacing)
            for b in (0, 1)
        )
        pos_w, _ = reus_lockstep(
            test, bias, place, coordinates, starts, centers, np.full(len(centers), kappa), seed + 7, sizes,
            sizes["window_frames"], pairs=lambda sweep: grid_pairs(centers, spacing, sweep), ends=ends,
        )
        rows = [window_rows(model, pos, k, torsions, basin_of, torsion) for k, pos in enumerate(pos_w)]
        samples = {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}
        samples["centers"] = centers
    else:
        context, integrator = make_context(test, [bias], seed + 7)
        context.setParameter("kb", kappa * KT_KJ)

        def sample_window(k: int, center: np.ndarray, start: np.ndarray) -> np.ndarray | None:
            context.setParameter("c1", float(center[0]))
            context.setParameter("c2", float(center[1]))
            frames = _window_frames(context, integrator, start, seed + 7 + k, sizes)
            return None if frames is None else frames[0]

        samples = run_windows_2d(sample_window, model, centers, pool["pos"], s_data, torsions, basin_of, torsion)
    if save:
        np.savez(save, kappa=kappa, **samples)
    return {**basin_summary(samples["s"], samples["x"], samples["basin"], samples["window"], samples["centers"], kappa),
            "centers": samples["centers"]}


RESULT_KEYS = ("df", "err", "regions", "region_errs", "halves", "windows", "fold", "about")


def learned_2d(model_config: CVConfig, x: np.ndarray, y: np.ndarray, en: np.ndarray, pool: dict, test,  # noqa: ANN001
               sizes: dict, seed: int, spacing: float, save: Path | None) -> dict:
    """Train the 2D CV (seed `seed`), print its fold check on the training frames, run the 2D umbrella windows
    (umbrella_2d) and return basin_summary's numbers with the window count, fold fraction and a run description."""
    model, metrics = train_cv(model_config, x, y, en, epochs=80, seed=seed)
    fold, n_close = torsion_fold_fraction(model, x)
    print(
        f"2D CV: classifier accuracy {metrics['classifier_accuracy']}; of {n_close} training-frame pairs within "
        f"0.1 in the latent, {100 * fold:.2f} % are more than 90 deg apart in phi or psi"
        + (f" (above {100 * TORSION_FOLD_LIMIT:.2f} %: the CV folds the torus; more --data-runs help)"
           if fold > TORSION_FOLD_LIMIT else ""),
        flush=True,
    )
    res = umbrella_2d(model, test, pool, x, y, sizes, seed, spacing, save)
    weakest = res["best_neighbour_overlap"]
    about = (
        f"{len(res['centers'])} windows x {sizes['window_frames'] * sizes['every'] * 0.002:.0f} ps; max statistical "
        f"inefficiency {res['g'].max():.1f}; weakest window's best overlap {weakest.min():.3f}, "
        f"{int((weakest < 0.03).sum())} below 0.03; {res['clusters']} connected window cluster(s)"
    )
    return {**res, "windows": len(res["centers"]), "fold": float(fold), "about": about}


def child_argv(argv: list[str]) -> list[str]:
    """The command line of one seed of a --cv-seeds ensemble: `argv` without the ensemble's own options (--cv-seeds,
    --jobs, --log-dir, --grid-reference-kT)."""
    out, skipping = [], False
    for token in argv:
        name = token.split("=", 1)[0]
        if name in ("--cv-seeds", "--jobs", "--log-dir", "--grid-reference-kT"):
            skipping = "=" not in token
            continue
        if skipping and not token.startswith("--"):
            continue
        skipping = False
        out.append(token)
    return out


def same_run(a: list[str], b: list[str]) -> bool:
    """Whether two child command lines sample the same (they may differ in the reference they print against)."""
    def sans_reference(argv: list[str]) -> list[str]:
        i = argv.index("--reference-kT") if "--reference-kT" in argv else -1
        return argv if i < 0 else argv[:i] + argv[i + 3:]

    return sans_reference(a) == sans_reference(b)


def seed_ensemble(argv: list[str], seeds: list[int], jobs: int, log_dir: Path, save: Path | None) -> list[dict]:
    """Run this benchmark once per CV seed (each its own data, CV and windows) in `jobs` parallel processes, each
    logging to log_dir/seed_S.log and writing log_dir/seed_S.json (a seed whose .json holds the same command is
    reused, so a stopped ensemble resumes); returns their result dicts (RESULT_KEYS, the seed, the command; or the
    seed and why it failed) in seed order."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor, as_completed

    log_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    def one(seed: int) -> dict:
        log, out = log_dir / f"seed_{seed}.log", log_dir / f"seed_{seed}.json"
        extra = ["--seed", str(seed), "--result-json", str(out)]
        if save:
            extra += ["--save-samples", str(save.with_name(f"{save.stem}_seed{seed}{save.suffix}"))]
        command = [*child_argv(argv), *extra]
        earlier = json.loads(out.read_text()) if out.exists() else {}
        if same_run(earlier.get("argv") or [], command):  # this seed ran before with the same sampling
            print(f"seed {seed}: reusing {out}", flush=True)
            return earlier
        with log.open("w") as handle:
            rc = subprocess.run([sys.executable, __file__, *command], stdout=handle, stderr=subprocess.STDOUT,
                                check=False).returncode
        if rc or not out.exists():
            return {"seed": seed, "failed": f"exit status {rc}; see {log}"}
        return json.loads(out.read_text())

    print(f"CV seed ensemble: seeds {seeds}, {jobs} at a time; logs in {log_dir}", flush=True)
    results = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(one, s): s for s in seeds}
        for future in as_completed(futures):
            r = future.result()
            results[r["seed"]] = r
            done = f"failed ({r['failed']})" if "failed" in r else f"done: {summary_line(r)}"
            print(f"seed {r['seed']} {done} ({len(results)}/{len(seeds)}, {time.time() - t0:.0f} s)", flush=True)
    return [results[s] for s in seeds]


def ensemble_summary(results: list[dict]) -> dict:
    """Mean of the seeds' basin dF with the standard error of their spread (each CV carries its own systematic
    error, larger than its MBAR error bar: RESULTS.md), the spread itself, and the mean per region."""
    df = np.array([r["df"] for r in results])
    sd = float(df.std(ddof=1)) if len(df) > 1 else float("nan")
    return {
        "mean": float(df.mean()),
        "sem": sd / np.sqrt(len(df)),
        "sd": sd,
        "mbar_err": float(np.mean([r["err"] for r in results])),
        "regions": np.mean([r["regions"] for r in results], 0).tolist(),
    }


def reference_torsion_grid(test, sizes: dict, seed: int, n_grid: int, save: Path | None) -> dict:  # noqa: ANN001
    """Reference by 2D umbrella sampling in (phi, psi) themselves: an n_grid x n_grid periodic grid of harmonic
    windows (thermal width half a spacing), visited in boustrophedon order, each started from the last frame of the
    one before; MBAR with periodic distances (models.free_energy.estimators.mbar_basins_nd). Both slow torsions are
    biased, so no
    barrier is left across the windows but the ones no torsion sees. With sizes["exchange"] the swept frames only
    place the replicas of one replica-exchange grid (reus_lockstep; swaps with grid neighbours): independent
    windows at the phi = 0 crossing did not hold phi in 60 ps."""
    import openmm as mm
    from alanine_2d import snake_grid

    from models.free_energy.estimators import grid_pairs

    centers = snake_grid(n_grid)
    spacing = 2 * np.pi / n_grid
    kappa = 4.0 / spacing**2  # kT / rad^2: thermal width half a spacing (walls up to ~30 kT/rad)
    bias = mm.CustomCVForce(
        "0.5*kq*(min(dp, 6.283185307-dp)^2 + min(dq, 6.283185307-dq)^2); dp=abs(phi-p0); dq=abs(psi-q0)"
    )
    for name in ("kq", "p0", "q0"):
        bias.addGlobalParameter(name, 0.0)
    for name, idx in (("phi", PHI), ("psi", PSI)):
        angle = mm.CustomTorsionForce("theta")
        angle.addTorsion(*idx, [])
        bias.addCollectiveVariable(name, angle)
    bias.setForceGroup(3)

    def place(context, k: int) -> None:  # noqa: ANN001
        context.setParameter("kq", kappa * KT_KJ)
        context.setParameter("p0", float(centers[k][0]))
        context.setParameter("q0", float(centers[k][1]))

    context, integrator = make_context(test, [bias], seed + 17)
    exchange = sizes["exchange"]
    t0, frames_w = time.time(), []
    start = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    for k in range(len(centers)):
        place(context, k)
        if exchange:  # the sweep only places the replicas (1 ps each); they equilibrate in reus_lockstep
            integrator.step(500)
            frames_w.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value)
            continue
        frames = _window_frames(context, integrator, start, seed + 17 + k, sizes)
        if frames is None:
            print(f"torsion window {k} dropped: the integration blew up", flush=True)
            frames_w.append(np.empty((0, *start.shape)))
            continue
        frames_w.append(frames[0])
        start = frames[0][-1]
        if k % n_grid == n_grid - 1:
            print(f"torsion grid: {k + 1}/{len(centers)} windows ({time.time() - t0:.0f} s)", flush=True)
    if exchange:

        def coordinates(pos: np.ndarray, window_of: np.ndarray) -> np.ndarray:  # torsions within pi of the window
            x = np.stack([torsion(pos, PHI), torsion(pos, PSI)], -1)
            return centers[window_of] + (x - centers[window_of] + np.pi) % (2 * np.pi) - np.pi

        near = [np.deg2rad(c) for c in ((-83.0, 75.0), (70.0, -70.0))]  # C7eq, C7ax: traversals between them
        ends = tuple(
            np.flatnonzero(np.linalg.norm((centers - c + np.pi) % (2 * np.pi) - np.pi, axis=1) <= 1.5 * spacing)
            for c in near
        )
        frames_w, _ = reus_lockstep(
            test, bias, place, coordinates, frames_w, centers, np.full(len(centers), kappa), seed + 19, sizes,
            sizes["window_frames"], pairs=lambda sweep: grid_pairs(centers, spacing, sweep), ends=ends,
        )
    x = np.concatenate([np.stack([torsion(f, PHI), torsion(f, PSI)], -1) for f in frames_w])
    basin = np.concatenate([basin_of(f) for f in frames_w])
    window = np.concatenate([np.full(len(f), k) for k, f in enumerate(frames_w)])
    if save:
        np.savez(save, kappa=kappa, centers=centers, x=x, basin=basin, window=window)
    return {**basin_summary(x, x, basin, window, centers, kappa, period=2 * np.pi),
            "seconds": time.time() - t0, "windows": len(centers), "kappa": kappa}


def cv_of_torsions(model: MultitaskCV, phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """The learned CV (first latent component) as a function of (phi, psi)."""
    return latent_of_torsions(model, phi, psi)[:, 0]


def main() -> None:
    """Train the CV, run both umbrella samplings and print basin free-energy differences."""
    parser = _parser()
    args = parser.parse_args()
    if args.cv_seeds:
        _check_seed_ensemble(parser, args)
        ensemble_main(args)
        return
    torch.set_num_threads(1)
    sizes = _sizes(args)
    print("sizes", sizes, flush=True)
    test, seed = alanine_vacuum(), args.seed
    if args.reference_grid:
        _grid_reference_only(test, sizes, seed, args)
        return
    if args.reference_only:
        _phi_reference_only(test, sizes, seed)
        return
    t0 = time.time()
    data_runs = args.data_runs or (5 if args.latent_dim == 2 else 1)
    x, y, en = cv_training_data(test, seed, sizes, args.hot_K, data_runs)  # 1. labelled data
    config = _cv_config(args, x)
    pool = {"pos": x.reshape(len(x), -1, 3), "s": np.zeros(len(x)), "e": en}  # window starting configurations
    if args.latent_dim == 2:
        _learned_2d_against_phi(args, config, x, y, en, pool, test, sizes, t0)
        return
    us = _learned_1d_rounds(args, config, x, y, en, pool, test, sizes)  # 2. CV and umbrella sampling along it
    if args.save_samples:
        us.save(args.save_samples)
    dec, g = decorrelate(us)
    res = mbar_analysis(dec)
    t_cv = time.time() - t0
    _report_1d_against_phi(args, us, res, g, t_cv, test, sizes)  # 3. the reference along phi, and the comparison


def _parser() -> argparse.ArgumentParser:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--hot-K",
        type=float,
        default=600.0,
        help="also train the CV on MD at this temperature from each basin (labels by the sign of phi); 0 for none",
    )
    parser.add_argument("--ref-frames", type=int, default=None, help="frames per reference window (0.2 ps apart)")
    parser.add_argument("--window-frames", type=int, default=None, help="frames per CV window (0.2 ps apart)")
    parser.add_argument("--reference-only", action="store_true", help="only the umbrella sampling along phi")
    parser.add_argument(
        "--reference-kT",
        type=float,
        nargs=2,
        metavar=("DF", "ERR"),
        default=None,
        help="compare with this converged reference (from a --reference-only run) instead of "
        "running the reference again",
    )
    parser.add_argument(
        "--cv-rounds",
        type=int,
        default=0,
        help="retrain the CV on the umbrella frames (labelled by the basin rule) and resample, N times",
    )
    parser.add_argument(
        "--refine-rounds",
        type=int,
        default=1,
        help="adaptive window refinement rounds (models.free_energy.estimators.refine_windows)",
    )
    parser.add_argument("--windows", type=int, default=None, help="CV windows (default 40; 16 with --quick)")
    parser.add_argument(
        "--exchange",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="replica exchange between neighbouring CV windows every --exchange-every steps (REUS)",
    )
    parser.add_argument(
        "--pilot-frames",
        type=int,
        default=None,
        help="with --exchange: a pilot ladder of this many frames per window finds the holes, stiffer windows fill "
        "them, and one production ladder runs all windows together (0: refine after production, apart from the "
        "ladder; default a quarter of --window-frames)",
    )
    parser.add_argument(
        "--exchange-every",
        type=int,
        default=20,
        help="MD steps (2 fs) between replica exchange attempts; must divide the 100 steps per frame",
    )
    parser.add_argument(
        "--ref-exchange",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="replica exchange between neighbouring reference windows along phi every --exchange-every steps",
    )
    parser.add_argument(
        "--w-smooth",
        type=float,
        default=0.1,
        help="CV smoothness weight (models.sampling.cv.chord_roughness: keeps the CV from being a step between "
        "the basins); 0 for none",
    )
    parser.add_argument(
        "--reference-grid",
        type=int,
        default=0,
        help="only the reference by 2D umbrella sampling in (phi, psi) on an N x N periodic grid (e.g. 24)",
    )
    parser.add_argument(
        "--latent-dim",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: a 2D CV (multitask plus the reconstruction head) and umbrella windows on a 2D grid (alanine_2d.py)",
    )
    parser.add_argument(
        "--grid-spacing", type=float, default=0.1, help="2D window spacing in latent units (latent std 1)"
    )
    parser.add_argument(
        "--data-runs",
        type=int,
        default=None,
        help="split each basin's CV data into this many short runs, each from its own start (C7ax: its own pull); "
        "default 5 with --latent-dim 2 (one run can leave C7ax early and the CV then folds the torus), "
        "else 1",
    )
    parser.add_argument(
        "--w-recon", type=float, default=None, help="reconstruction weight (default 1 for --latent-dim 2, else 0)"
    )
    parser.add_argument(
        "--save-samples",
        type=Path,
        default=None,
        help="write the CV umbrella samples (s, window, basin; x = phi, psi) to this .npz",
    )
    parser.add_argument(
        "--cv-seeds",
        type=int,
        nargs="+",
        default=None,
        help="with --latent-dim 2: run once per seed (own data, CV and windows) and report the mean dF with the "
        "standard error of the seeds' spread (one CV's error is ~0.5 kT, more than its MBAR error bar)",
    )
    parser.add_argument(
        "--grid-reference-kT",
        type=float,
        nargs=2,
        metavar=("DF", "ERR"),
        default=None,
        help="with --cv-seeds: also compare with this torsion-grid reference (a --reference-grid run)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="seeds of --cv-seeds run at a time (one process each)")
    parser.add_argument("--log-dir", type=Path, default=None, help="per-seed logs of --cv-seeds (default: a temp dir)")
    parser.add_argument("--result-json", type=Path, default=None, help="write the 2D CV run's numbers here")
    return parser


def _check_seed_ensemble(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--cv-seeds runs the 2D CV once per seed, `jobs` at a time: refuse other settings."""
    if args.latent_dim != 2:
        parser.error("--cv-seeds needs --latent-dim 2")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")


def _sizes(args: argparse.Namespace) -> dict:
    """Frames, windows and exchange settings of the run, from the flags (--quick for a short run)."""
    q = args.quick
    sizes = {
        "data_frames": 300 if q else 1000,
        "every": 100,
        "windows": args.windows or (16 if q else 40),
        "window_frames": args.window_frames or (150 if q else 900),
        "equil_steps": 2500,
        "ref_windows": 24 if q else 36,
        "ref_frames": args.ref_frames or (150 if q else 1000),
        "refine_rounds": args.refine_rounds,
        "exchange": args.exchange,
        "ref_exchange": args.ref_exchange,
        "exchange_every": args.exchange_every,
    }
    sizes["pilot_frames"] = sizes["window_frames"] // 4 if args.pilot_frames is None else args.pilot_frames
    return sizes


def _grid_reference_only(test, sizes: dict, seed: int, args: argparse.Namespace) -> None:  # noqa: ANN001
    """--reference-grid: the 2D umbrella reference in (phi, psi) alone, and its line."""
    r = reference_torsion_grid(test, sizes, seed, args.reference_grid, args.save_samples)
    print(
        f"reference 2D umbrella in (phi, psi) + MBAR: {summary_line(r)} "
        f"({r['windows']} windows x {sizes['window_frames'] * sizes['every'] * 0.002:.0f} ps"
        f"{', replica exchange' if sizes['exchange'] else ''}, kappa {r['kappa']:.1f} kT/rad^2, "
        f"{r['seconds']:.0f} s; max statistical inefficiency {r['g'].max():.1f}; "
        f"{r['clusters']} connected window cluster(s))"
    )


def _phi_reference_only(test, sizes: dict, seed: int) -> None:  # noqa: ANN001
    """--reference-only: the umbrella reference along phi alone, and its line."""
    ref, ref_err, t_ref = reference_along_phi(test, sizes, seed)
    print(
        f"reference umbrella along phi + MBAR: {ref:.3f} +- {ref_err:.3f} kT ({sizes['ref_windows']} windows x "
        f"{sizes['ref_frames'] * sizes['every'] * 0.002:.0f} ps, {t_ref:.0f} s)"
    )


def _cv_config(args: argparse.Namespace, x: np.ndarray) -> CVConfig:
    """The multitask CV on the phi and psi torsions (a 2D CV adds the reconstruction head by default)."""
    return CVConfig.preset(
        "multitask",
        n_inputs=x.shape[1],
        n_classes=2,
        features="torsions",
        feature_atoms=[list(PHI), list(PSI)],
        hidden=[32, 32],
        w_smooth=args.w_smooth,
        latent_dim=args.latent_dim,
        w_recon=(1.0 if args.latent_dim == 2 else 0.0) if args.w_recon is None else args.w_recon,
    )


def _learned_2d_against_phi(args: argparse.Namespace, config: CVConfig, x: np.ndarray, y: np.ndarray,
                            en: np.ndarray, pool: dict, test, sizes: dict, t0: float) -> None:  # noqa: ANN001
    """--latent-dim 2: the 2D CV's grid umbrella + MBAR against the reference along phi (and --result-json)."""
    seed = args.seed
    res2 = learned_2d(model_config=config, x=x, y=y, en=en, pool=pool, test=test, sizes=sizes, seed=seed,
                      spacing=args.grid_spacing, save=args.save_samples)
    ref, ref_err = args.reference_kT or reference_along_phi(test, sizes, seed)[:2]
    print("\n=== alanine dipeptide, vacuum, 300 K: F(C7ax: phi > 0) - F(C7eq: phi < 0) ===")
    print(f"learned 2D multitask CV, 2D umbrella + MBAR: {summary_line(res2)} ({res2['about']}, "
          f"{time.time() - t0:.0f} s incl. data and training)")
    print(f"reference umbrella along phi + MBAR:  {ref:.3f} +- {ref_err:.3f} kT")
    print(f"difference: {res2['df'] - ref:.3f} kT")
    if args.result_json:
        record = {k: res2[k] for k in RESULT_KEYS} | {"seed": seed, "argv": sys.argv[1:]}
        args.result_json.write_text(json.dumps(record))


def _learned_1d_rounds(args: argparse.Namespace, config: CVConfig, x: np.ndarray, y: np.ndarray, en: np.ndarray,
                       pool: dict, test, sizes: dict) -> UmbrellaSamples:  # noqa: ANN001
    """Train the 1D CV and sample along it; --cv-rounds times more, retrained on the last round's window frames."""
    seed = args.seed
    for cv_round in range(args.cv_rounds + 1):
        if cv_round:  # the last round's window frames, labelled by the basin rule, teach the CV the transition
            x = pool["pos"].reshape(len(pool["pos"]), -1)
            y = basin_of(pool["pos"])
            en = pool["e"]
        model, metrics = train_cv(config, x, y, en, epochs=80, seed=args.seed)
        print(
            f"CV round {cv_round}: {len(x)} frames, classifier accuracy {metrics['classifier_accuracy']}, "
            f"separation {metrics['separation']}",
            flush=True,
        )
        us, pool = umbrella_along_cv(model, test, pool, x, y, sizes, seed + 1000 * cv_round)
        if cv_round < args.cv_rounds:  # each round's own estimate, so a retrained CV can be compared with its parent
            early = mbar_analysis(decorrelate(us)[0])
            print(
                f"CV round {cv_round} estimate: {early.basin_df[1]:.3f} +- {early.basin_df_err[1]:.3f} kT; "
                f"{len(early.warnings)} warning(s)",
                flush=True,
            )
    return us


def _report_1d_against_phi(args: argparse.Namespace, us: UmbrellaSamples, res, g: np.ndarray, t_cv: float,  # noqa: ANN001
                           test, sizes: dict) -> None:  # noqa: ANN001
    """The reference along phi (run, or given with --reference-kT) and the 1D CV's result beside it."""
    if args.reference_kT:
        (ref, ref_err), t_ref = args.reference_kT, 0.0
    else:
        ref, ref_err, t_ref = reference_along_phi(test, sizes, args.seed)
    print("\n=== alanine dipeptide, vacuum, 300 K: F(C7ax: phi > 0) - F(C7eq: phi < 0) ===")
    print(
        f"learned multitask CV umbrella + MBAR: {res.basin_df[1]:.3f} +- {res.basin_df_err[1]:.3f} kT "
        f"({us.n_windows} windows x {sizes['window_frames'] * sizes['every'] * 0.002:.0f} ps, {t_cv:.0f} s incl. "
        f"data and training; max statistical inefficiency {g.max():.1f})"
    )
    if args.reference_kT:
        print(f"reference umbrella along phi + MBAR:  {ref:.3f} +- {ref_err:.3f} kT (given with --reference-kT)")
    else:
        print(
            f"reference umbrella along phi + MBAR:  {ref:.3f} +- {ref_err:.3f} kT "
            f"({sizes['ref_windows']} windows x {sizes['ref_frames'] * sizes['every'] * 0.002:.0f} ps, {t_ref:.0f} s)"
        )
    print(f"difference: {res.basin_df[1] - ref:.3f} kT; CV warnings: {res.warnings}")


def ensemble_main(args: argparse.Namespace) -> None:
    """--cv-seeds: the 2D CV run once per seed, then the mean and its spread against the reference."""
    import tempfile

    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="alanine_cv_seeds_"))
    t0 = time.time()
    results = seed_ensemble(sys.argv[1:], args.cv_seeds, args.jobs, log_dir, args.save_samples)
    for r in results:
        if "failed" in r:
            print(f"seed {r['seed']} failed ({r['failed']}): left out of the mean")
    results = [r for r in results if "failed" not in r]
    if len(results) < 2:
        raise SystemExit("fewer than two seeds finished: no spread to report")
    ens = ensemble_summary(results)
    print("\n=== alanine dipeptide, vacuum, 300 K: F(C7ax: phi > 0) - F(C7eq: phi < 0), one 2D CV per seed ===")
    for r in results:
        print(f"seed {r['seed']}: {summary_line(r)}; fold {100 * r['fold']:.2f} %; {r['about']}")
    print(
        f"mean of {len(results)} CVs: {ens['mean']:.3f} +- {ens['sem']:.3f} kT (standard error of the seeds' spread; "
        f"their standard deviation {ens['sd']:.2f} against a mean MBAR error of {ens['mbar_err']:.2f}); "
        f"{regions_text(ens['regions'])}; {time.time() - t0:.0f} s"
    )
    for given, kind in ((args.reference_kT, "umbrella along phi"), (args.grid_reference_kT, "torsion grid")):
        if given:
            ref, ref_err = given
            gap = ens["mean"] - ref
            print(f"reference ({kind}, MBAR): {ref:.3f} +- {ref_err:.3f} kT; difference {gap:.3f} +- "
                  f"{np.hypot(ens['sem'], ref_err):.3f} kT ({abs(gap) / np.hypot(ens['sem'], ref_err):.1f} sigma)")


def reference_along_phi(test, sizes: dict, seed: int) -> tuple[float, float, float]:  # noqa: ANN001
    """Umbrella sampling along phi itself (periodic harmonic windows swept from C7eq around the circle; with
    sizes["ref_exchange"] the swept configurations start replica exchange windows) and MBAR with periodic
    distances: the basin dF in kT, its error and the seconds it took."""
    import openmm as mm

    t1 = time.time()
    ref_centers = np.linspace(-np.pi, np.pi, sizes["ref_windows"], endpoint=False)
    spacing = ref_centers[1] - ref_centers[0]
    k_phi = 1.0 / spacing**2  # kT / rad^2
    restraint = mm.CustomTorsionForce("0.5*kp*min(d, 6.283185307-d)^2; d=abs(theta-p0)")
    restraint.addGlobalParameter("kp", k_phi * KT_KJ)
    restraint.addGlobalParameter("p0", 0.0)
    restraint.addTorsion(*PHI, [])
    restraint.setForceGroup(3)
    context, integrator = make_context(test, [restraint], seed + 11)
    exchange = sizes.get("ref_exchange", False)
    pos_w: list[np.ndarray] = [np.empty(0)] * len(ref_centers)
    order = np.roll(np.arange(len(ref_centers)), -int(np.argmin(np.abs(ref_centers + 1.4))))  # sweep from C7eq
    for k in order:
        context.setParameter("p0", float(ref_centers[k]))
        integrator.step(sizes["equil_steps"])
        if exchange:  # the sweep only places the replicas
            pos_w[k] = context.getState(getPositions=True).getPositions(asNumpy=True)._value
        else:
            pos_w[k] = run_frames(context, integrator, sizes["ref_frames"], sizes["every"])[0]
    if exchange:

        def place(ctx, k: int) -> None:  # noqa: ANN001
            ctx.setParameter("p0", float(ref_centers[k]))

        def unwrapped_phi(pos: np.ndarray, k: np.ndarray) -> np.ndarray:  # phi as window k sees it: within pi of it
            d = torsion(pos, PHI) - ref_centers[k]
            return ref_centers[k] + (d + np.pi) % (2 * np.pi) - np.pi

        pos_w, _ = reus_lockstep(
            test,
            restraint,
            place,
            unwrapped_phi,
            pos_w,
            ref_centers,
            np.full(len(ref_centers), k_phi),
            seed + 13,
            sizes,
            sizes["ref_frames"],
        )
    phi_all = np.concatenate([torsion(p, PHI) for p in pos_w])
    psi_all = np.concatenate([torsion(p, PSI) for p in pos_w])
    win_all = np.concatenate([np.full(len(p), k) for k, p in enumerate(pos_w)])
    fr_all = np.concatenate([np.arange(len(p)) for p in pos_w])
    df, err, by_region = _periodic_mbar(phi_all, psi_all, win_all, fr_all, ref_centers, k_phi)
    print(f"reference along phi {regions_text(by_region)}", flush=True)
    return df, err, time.time() - t1


def _periodic_mbar(
    phi: np.ndarray, psi: np.ndarray, window: np.ndarray, frame: np.ndarray, centers: np.ndarray, k_phi: float
) -> tuple[float, float, list[float]]:
    """MBAR basin dF (phi > 0 vs phi < 0) and its error, and each region's F against C7eq/beta (region_of), of windows
    restrained along phi with periodic harmonic biases. Each window is thinned by the larger statistical inefficiency
    of cos(phi - center) and of cos(psi) (psi is the slow one)."""
    from models.free_energy.estimators import OUT_OF_BASIN, import_pymbar

    pymbar = import_pymbar()
    keep = np.zeros(len(phi), bool)
    for k in range(len(centers)):  # decorrelate each window by its statistical inefficiency
        idx = np.flatnonzero(window == k)
        gk = (
            max(
                pymbar.timeseries.statistical_inefficiency(np.cos(phi[idx] - centers[k])),
                pymbar.timeseries.statistical_inefficiency(np.cos(psi[idx])),
            )
            if len(idx) > 3
            else 1.0
        )
        keep[idx[:: max(1, int(np.ceil(gk)))]] = True
    phi, psi, window = phi[keep], psi[keep], window[keep]
    order = np.argsort(window, kind="stable")
    phi, psi, window = phi[order], psi[order], window[order]
    d = np.abs(phi[None, :] - centers[:, None])
    d = np.minimum(d, 2 * np.pi - d)
    u_kn = 0.5 * k_phi * d**2
    mbar = pymbar.MBAR(u_kn, np.bincount(window, minlength=len(centers)), solver_protocol="robust")
    states = np.array([np.where(phi < 0, 0.0, OUT_OF_BASIN), np.where(phi > 0, 0.0, OUT_OF_BASIN)])
    out = mbar.compute_perturbed_free_energies(states)
    region = region_of(np.stack([phi, psi], -1))
    by_region = mbar.compute_perturbed_free_energies(np.array([np.where(region == r, 0.0, OUT_OF_BASIN)
                                                               for r in range(len(REGIONS) + 1)]))
    return float(out["Delta_f"][0, 1]), float(out["dDelta_f"][0, 1]), [float(v) for v in by_region["Delta_f"][0, 1:]]


if __name__ == "__main__":
    main()
