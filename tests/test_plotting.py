"""One matplotlib setup: every tool plot is a PNG at one dpi, made without pyplot's global figure list (jobs plot
from worker threads)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from tools.core.plotting import DPI, figure, save
from tools.md.analysis import plot_msd
from tools.potentials.active_learning import plot_history


def test_plots_are_pngs_of_the_figure_size_at_the_house_dpi(tmp_path: Path) -> None:
    fig, axes = figure(2, 1, figsize=(4, 3), sharex=True)
    axes[0].plot([0, 1], [1, 0])
    path = save(fig, tmp_path / "a.png")
    assert Image.open(path).size == (4 * DPI, 3 * DPI)
    history = [{"n_train": 10, "val_force_mae_meV_A": 80.0, "max_uncertainty": 0.2},
               {"n_train": 20, "val_force_mae_meV_A": 50.0, "max_uncertainty": None}]
    assert Image.open(plot_history(history, tmp_path / "h.png", "history")).format == "PNG"


def test_plotting_from_threads_leaves_no_pyplot_figures(tmp_path: Path) -> None:
    def draw(k: int) -> None:
        plot_msd(np.arange(10.0), np.arange(10.0) ** 1.1, tmp_path / f"msd{k}.png", 1e-5, f"thread {k}")

    threads = [threading.Thread(target=draw, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all((tmp_path / f"msd{k}.png").stat().st_size > 1000 for k in range(4))
    if "matplotlib.pyplot" in sys.modules:  # imported by someone else: still no figure of ours left open
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []
