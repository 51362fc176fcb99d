"""distill_potential on a tiny system (EMT teaching copper, seconds): the held-out error falls round by round, the
potential is then usable by name with an uncertainty guard that flags a phase it never saw, and a resumed run
continues where it stopped."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from models.potentials.equivariant import EquivariantPotential, predict
from models.potentials.export import ExportedPotential, export_torchscript
from tests.conftest import cif_of
from tools.core.errors import ToolInputError
from tools.core.registry import get_tool
from tools.structures.io import atoms_to_structure

pytestmark = pytest.mark.usefixtures("single_thread")

FCC = cif_of(atoms_to_structure(bulk("Cu", "fcc", a=3.61, cubic=True)))
TINY = {"structures": [{"text": FCC}], "teacher": "emt", "temperatures_K": [300, 900], "strains": [0.0, 0.02],
        "per_round": 3, "md_steps": 60, "n_initial": 4, "n_validation": 4, "n_test_per_temperature": 4,
        "epochs_initial": 30, "epochs_finetune": 15, "size": "tiny", "cutoff_A": 4.0, "speed_atoms": 0,
        "target_force_mae_meV_A": 0.1}  # a target out of reach: every round runs


def test_held_out_error_falls_and_the_guard_flags_an_unseen_phase(workspace: Path) -> None:
    out = get_tool("distill_potential").run({**TINY, "name": "cu-emt", "rounds": 3})
    test = [r.test_force_mae_meV_A for r in out.rounds]
    assert [r.round for r in out.rounds] == [0, 1, 2, 3]
    assert test[-1] < 0.7 * test[0], test  # labelling where the student is unsure pays off on frames never seen
    assert all(b <= 1.2 * a for a, b in zip(test, test[1:], strict=False)), test
    assert out.n_labels == out.rounds[-1].n_labels == 4 + 3 * 3
    assert {e.temperature_K for e in out.test_errors} == {300.0, 900.0}
    assert [(e.seed, e.temperature_K) for e in out.phase_errors] == [("seed 1: Cu4, 11.76 A^3/atom", 300.0),
                                                                     ("seed 1: Cu4, 11.76 A^3/atom", 900.0)]
    card = (workspace / "potentials" / "cu-emt.md").read_text()
    assert "distilled from emt" in card and "| 3 | 13 |" in card and '"rounds": 3' in card
    assert "| seed 1: Cu4, 11.76 A^3/atom | 900 | 4 |" in card
    assert (workspace / "distill" / "cu-emt" / "learning_curve.png").stat().st_size > 1000

    md = {"structure": {"text": FCC}, "potential": "cu-emt", "steps": 100, "timestep_fs": 2.0, "log_every": 5,
          "uncertainty_guard": True}
    trained = get_tool("run_md").run({**md, "temperature_K": 300})  # the name resolves to the distilled checkpoint
    squeezed = cif_of(atoms_to_structure(bulk("Cu", "bcc", a=2.55, cubic=True).repeat((2, 2, 2))))
    unseen = get_tool("run_md").run({**md, "structure": {"text": squeezed}, "temperature_K": 2500})
    assert trained.frames_outside_domain_fraction is not None
    assert unseen.frames_outside_domain_fraction > max(0.5, trained.frames_outside_domain_fraction)
    assert any("calibrated domain" in w for w in unseen.warnings)
    with pytest.raises(ToolInputError, match="no fitted uncertainty|universal or classical"):
        get_tool("run_md").run({**md, "potential": "emt", "temperature_K": 300})

    # the LAMMPS/TorchScript export of the distilled student gives the Python model's numbers
    student = EquivariantPotential.load(out.checkpoint)
    export_torchscript(student, workspace / "cu-emt.ts")
    frame = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    frame.rattle(0.05, seed=3)
    ref, got = predict(student, [frame])[0], ExportedPotential(workspace / "cu-emt.ts").compute(frame)
    assert abs(got["energy"] - ref["energy"]) < 1e-5 * max(1.0, abs(ref["energy"]))
    assert np.abs(got["forces"] - ref["forces"]).max() < 1e-5 < np.abs(ref["forces"]).max()


def test_a_resumed_distillation_continues_where_it_stopped(workspace: Path) -> None:
    first = get_tool("distill_potential").run({**TINY, "name": "cu-resume", "rounds": 1})
    test_frames = (workspace / "distill" / "cu-resume" / "test.extxyz").read_bytes()
    again = get_tool("distill_potential").run({**TINY, "name": "cu-resume", "rounds": 2})
    assert [r.round for r in again.rounds] == [0, 1, 2]
    assert again.rounds[:2] == first.rounds  # the rounds already done are kept, not redone
    assert [e.seed for e in again.phase_errors] == [e.seed for e in first.phase_errors]  # read back from disk
    assert again.n_labels == first.n_labels + 3
    assert (workspace / "distill" / "cu-resume" / "test.extxyz").read_bytes() == test_frames  # same held-out set
    with pytest.raises(ToolInputError, match="exists; set resume=true"):
        get_tool("distill_potential").run({**TINY, "name": "cu-resume", "rounds": 3, "resume": False})


def test_the_time_budget_stops_a_refit_midway(workspace: Path) -> None:
    budget_min = 0.2  # 12 s; 5000 epochs of the first student alone take about 8 min (0.1 s each)
    started = time.monotonic()
    out = get_tool("distill_potential").run({**TINY, "name": "cu-budget", "rounds": 3, "max_minutes": budget_min,
                                             "epochs_initial": 5000, "epochs_finetune": 5000})
    elapsed = time.monotonic() - started
    assert "time budget" in out.stop_reason
    # the margin is the last epoch, the uncertainty fit and the evaluation after the deadline (5-10 s on a busy machine)
    assert out.minutes < budget_min + 0.4 and elapsed < 60 * budget_min + 40, (out.minutes, elapsed)
    state = json.loads((workspace / "distill" / "cu-budget" / "state.json").read_text())
    assert state["history"][0]["cut_by_budget"] and 1 <= state["history"][0]["epochs"] < 5000
    assert Path(out.checkpoint).is_file() and out.rounds[0].round == 0
