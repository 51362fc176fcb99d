"""The one workspace-path check every tool uses: inside the workspace (relative, absolute or artifact://), existing,
of the wanted kind; links and `..` that lead out are refused; checkpoints may also be shipped ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.core.errors import ToolInputError
from tools.core.paths import SHIPPED_CHECKPOINTS, checkpoint_file, workspace_path


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "runs").mkdir(parents=True)
    (root / "runs" / "a.extxyz").write_text("1\n\nH 0 0 0\n")
    (tmp_path / "secret.txt").write_text("outside")
    return root


def test_relative_absolute_and_artifact_paths_inside_the_workspace_resolve_to_one_file(ws: Path) -> None:
    want = (ws / "runs" / "a.extxyz").resolve()
    for given in ("runs/a.extxyz", str(ws / "runs" / "a.extxyz"), "artifact://runs/a.extxyz", " runs/./a.extxyz "):
        assert workspace_path(given, ws, "data") == want
    assert workspace_path("runs", ws, "out", kind="folder") == (ws / "runs").resolve()


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("../secret.txt", "data '../secret.txt' is outside the workspace"),
        ("artifact://../secret.txt", "outside the workspace"),
        ("artifact:///etc/passwd", "outside the workspace"),
        ("/etc/passwd", "data '/etc/passwd' is outside the workspace"),
        ("runs/missing.extxyz", "data 'runs/missing.extxyz' does not exist in the workspace"),
        ("runs", "data 'runs' is a folder, not a file"),
    ],
)
def test_each_refusal_names_the_argument_and_the_problem(ws: Path, given: str, problem: str) -> None:
    with pytest.raises(ToolInputError, match=problem.replace(".", r"\.")):
        workspace_path(given, ws, "data")


def test_a_link_inside_the_workspace_that_leads_out_is_refused(ws: Path) -> None:
    (ws / "link.txt").symlink_to(ws.parent / "secret.txt")
    with pytest.raises(ToolInputError, match="outside the workspace"):
        workspace_path("link.txt", ws, "data")
    with pytest.raises(ToolInputError, match="is a file, not a folder"):
        workspace_path("runs/a.extxyz", ws, "out", kind="folder")


def test_checkpoints_are_workspace_files_names_trained_here_or_shipped_ones(ws: Path, tmp_path: Path) -> None:
    (ws / "potentials").mkdir()
    (ws / "potentials" / "mine.pt").write_bytes(b"x")
    (tmp_path / "other.pt").write_bytes(b"x")
    assert checkpoint_file("mine", ws) == (ws / "potentials" / "mine.pt").resolve()
    assert checkpoint_file("artifact://potentials/mine.pt", ws) == (ws / "potentials" / "mine.pt").resolve()
    with pytest.raises(ToolInputError, match="outside the workspace"):
        checkpoint_file(str(tmp_path / "other.pt"), ws, "potential")
    shipped = SHIPPED_CHECKPOINTS / "allegro_distilled.pt"
    if shipped.is_file():
        assert checkpoint_file("allegro_distilled", ws) == shipped.resolve()
        assert checkpoint_file(str(shipped), ws) == shipped.resolve()
