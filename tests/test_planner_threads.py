"""The notebook API and scripted tasks keep the offline planner's turns under a thread, as the chat does, so a
follow-up ('what did you find last time?') is answered from that thread's state, not from a blank planner."""

from __future__ import annotations

from pathlib import Path

from agent import api
from agent.offline_planner import PlannerState, thread_state_path
from agent.tasks import run_task


def test_notebook_chat_answers_within_its_thread(workspace: Path) -> None:
    PlannerState(last_ranked=[{"id": "s-0123456789abcdef", "formula": "MgAl2O4", "rank": 1, "spacegroup": "Fd-3m"}],
                 request="a spinel with Mg and Al", potential="chgnet", evaluations=3,
                 report_uri="report://x").save(thread_state_path("nb1"))
    recalled = api.chat("what did you find last time?", thread_id="nb1")
    assert "a spinel with Mg and Al" in recalled and "MgAl2O4" in recalled
    fresh = api.chat("what did you find last time?", thread_id="nb2")
    assert "thread 'nb2'" in fresh and "MgAl2O4" not in fresh


def test_task_goal_runs_under_its_own_thread(workspace: Path, tmp_path: Path) -> None:
    task = tmp_path / "recall.yaml"
    task.write_text("title: recall\ngoal: what did you find last time?\n")
    out = run_task(task)
    assert out["thread"].startswith("task-recall-")
    assert f"thread '{out['thread']}'" in out["answer"]  # the planner knew its thread
    assert (Path(out["report_dir"]) / "report.json").read_text().count(out["thread"]) >= 1
