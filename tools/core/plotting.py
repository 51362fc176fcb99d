"""The one matplotlib setup for every PNG a tool writes: figures made with matplotlib's object API (no pyplot, so
no global figure list, no display and nothing shared between the threads jobs run in; PNGs render with Agg), one
dpi, and one way to lay out and save."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110


def figure(
    nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.5, 3.5), **kwargs: Any
) -> tuple[Figure, Any]:
    """A new figure of `figsize` inches at DPI and its axes (one, or an array for a grid; kwargs as for
    Figure.subplots, e.g. sharex=True)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save(fig: Figure, path: Path, tight: bool = True) -> Path:
    """Write the figure as a PNG at `path`, laid out tightly unless `tight` is False (a colorbar shared by several
    axes places itself); returns `path`."""
    if tight:
        fig.tight_layout()
    fig.savefig(path)
    return path
