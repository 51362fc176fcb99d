"""The one check for every path a tool is given. A workspace path is relative to the workspace, absolute inside it,
or an artifact:// URI; a checkpoint may also be one shipped in models/checkpoints. Paths are resolved (symlinks
followed) before the check, so no tool reads or writes outside the workspace through `..` or a link."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tools.core.errors import ToolInputError

ARTIFACT_SCHEME = "artifact://"
SHIPPED_CHECKPOINTS = Path(__file__).resolve().parents[2] / "models" / "checkpoints"

# The one rule for names a tool turns into a file or folder (checkpoint names, run names): no separators, no '..',
# so a name stays one entry inside its folder of the workspace.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
# What each pattern a tool input uses means, for error messages a user can act on.
PATTERN_MEANINGS = {NAME_PATTERN: NAME_RULE}


def workspace_path(
    path_or_uri: str, workspace: Path, what: str = "path", kind: Literal["file", "folder"] = "file"
) -> Path:
    """The resolved path of an existing file (or folder) inside the workspace; ToolInputError naming `what` when it
    lies outside the workspace, does not exist, or is a folder where a file is wanted (or the other way round)."""
    text = str(path_or_uri).strip()
    ws = workspace.resolve()
    raw = Path(text.removeprefix(ARTIFACT_SCHEME)).expanduser()
    path = (raw if raw.is_absolute() and not text.startswith(ARTIFACT_SCHEME) else ws / raw).resolve()
    if not path.is_relative_to(ws):
        raise ToolInputError(f"{what} {text!r} is outside the workspace {ws}; copy the file into it first")
    if not path.exists():
        raise ToolInputError(f"{what} {text!r} does not exist in the workspace {ws}")
    if kind == "file" and not path.is_file():
        raise ToolInputError(f"{what} {text!r} is a folder, not a file")
    if kind == "folder" and not path.is_dir():
        raise ToolInputError(f"{what} {text!r} is a file, not a folder")
    return path


def checkpoint_file(spec: str, workspace: Path, what: str = "checkpoint") -> Path:
    """A potential checkpoint: a shipped one by name ('allegro_distilled') or absolute path, one trained here by
    name (workspace/potentials/<name>.pt), or a file inside the workspace (ToolInputError otherwise)."""
    name = spec.strip()
    if "/" not in name:
        for folder in (SHIPPED_CHECKPOINTS, workspace / "potentials"):
            if (folder / f"{name}.pt").is_file():
                return (folder / f"{name}.pt").resolve()
    shipped = Path(name).resolve()
    if Path(name).is_absolute() and shipped.is_relative_to(SHIPPED_CHECKPOINTS) and shipped.is_file():
        return shipped
    return workspace_path(name, workspace, what)

