"""The uncertainty guard of predict_crystallization's melt-quench MD: per stage, for a student with a fitted
uncertainty; a note for a potential without one. Every size is passed explicitly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.core.registry import ToolContext, get_tool
from tools.core.settings import get_settings

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL_CU = {"composition": "Cu", "n_atoms": 32, "n_replicas": 1, "T_high": 1800, "melt_steps": 100,
            "quench_steps": 150, "hold_steps": 50, "budget": 1, "n_min": 2, "n_max": 8, "d_frac": 0.25,
            "max_reference_relaxations": 0, "max_relax_steps": 30, "store": False, "seed": 1}


def test_the_guard_reports_the_share_of_frames_outside_per_stage_for_a_student(workspace: Path) -> None:
    from tests.test_distill import TINY

    get_tool("distill_potential").run({**TINY, "name": "cu-guarded", "rounds": 1, "temperatures_K": [300, 1500]})
    out = get_tool("predict_crystallization").run({**SMALL_CU, "potential": "cu-guarded"}, ToolContext())
    assert out.md_guard is not None and list(out.md_guard) == ["melt", "quench", "hold"]
    for stage in out.md_guard.values():
        assert stage.frames > 0 and 0.0 <= stage.fraction_outside <= 1.0 and stage.max_uncertainty_eV_A > 0
    assert out.replicas[0].frames_outside_domain == out.md_guard  # one replica: its counts are the totals
    assert out.md_frames_outside_domain_fraction is not None
    flagged = [name for name, stage in out.md_guard.items() if stage.fraction_outside > 0]
    assert len(out.warnings) == len(flagged)  # run_md's threshold: any frame outside
    assert all("calibrated domain" in w and f"the {name} frames" in w for w, name in zip(out.warnings, flagged,
                                                                                          strict=True))
    assert not any("uncertainty_guard ignored" in n for n in out.notes)
    report = (get_settings().resolved_workspace() / out.report_uri.removeprefix("artifact://")).read_text()
    assert "Uncertainty guard of the melt-quench" in report
    assert set(out.stage_wall_s) >= {"candidates", "melt_quench", "motifs"}

    off = get_tool("predict_crystallization").run({**SMALL_CU, "potential": "cu-guarded", "melt_steps": 20,
                                                   "quench_steps": 20, "hold_steps": 10, "uncertainty_guard": False},
                                                  ToolContext())
    assert off.md_guard is None and off.md_frames_outside_domain_fraction is None and not off.warnings


def test_a_potential_without_uncertainty_runs_unguarded_with_a_note(workspace: Path) -> None:
    out = get_tool("predict_crystallization").run({**SMALL_CU, "potential": "emt"}, ToolContext())
    assert out.md_guard is None and out.replicas[0].frames_outside_domain is None and not out.warnings
    assert any("uncertainty_guard ignored" in n and "universal or classical" in n for n in out.notes), out.notes
