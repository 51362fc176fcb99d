"""predict_crystallization at the paper's scale: the uncertainty guard of its melt-quench MD (per stage, for a
student with a fitted uncertainty; a note for a potential without one), and subcells of 24 atoms cut from a
100-atom cell that keep the bulk's stoichiometry. Every size is passed explicitly: the defaults are an hour's run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Composition, Structure

from tools.core.registry import ToolContext, get_tool
from tools.core.settings import get_settings
from tools.crystallization.amorphous import formula_units, random_packed_cell
from tools.crystallization.predict import CrystallizationInput
from tools.crystallization.subcells import enumerate_subcells

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


def test_defaults_are_the_papers_scale_and_large_subcells_are_accepted() -> None:
    defaults = CrystallizationInput(composition="TiO2")
    assert defaults.n_atoms >= 100 and defaults.n_max >= 24
    assert CrystallizationInput(composition="TiO2", n_min=24, n_max=48).n_max == 48
    unit = Composition("TiO2")
    assert formula_units(unit, 100) * unit.num_atoms >= 100  # at least n_atoms, in whole formula units


def test_24_atom_subcells_of_a_100_atom_cell_keep_the_stoichiometry() -> None:
    unit = Composition("TiO2")
    cell = random_packed_cell(unit, formula_units(unit, 100), volume_per_atom=10.5, seed=4)
    grid = enumerate_subcells(cell, d_frac=0.1, n_min=24, n_max=24, cubic_only=True, target=unit)
    assert len(grid) > 0 and set(grid.n_atoms.tolist()) == {24}
    for index in range(min(len(grid), 20)):
        sub = grid.structure(index)
        assert len(sub) == 24 and sub.composition.reduced_formula == "TiO2"
        assert sub.composition["Ti"] == 8 and sub.composition["O"] == 16


def test_the_tool_relaxes_24_atom_stoichiometric_motifs_of_a_100_atom_cell(workspace: Path) -> None:
    """EMT CuAu: a 100-atom cell quenched briefly, cut on the 0.1 grid into 24-atom boxes (12 Cu + 12 Au)."""
    out = get_tool("predict_crystallization").run({
        "composition": "CuAu", "potential": "emt", "n_atoms": 100, "n_replicas": 1, "T_high": 2000,
        "melt_steps": 60, "quench_steps": 60, "hold_steps": 20, "budget": 3, "n_min": 24, "n_max": 24,
        "d_frac": 0.1, "cubic_only": False, "max_reference_relaxations": 0, "max_relax_steps": 20,
        "store": False, "seed": 2}, ToolContext())
    assert out.replicas[0].n_atoms == 100 and out.n_subcells_total > 0 and out.n_relaxed == 3
    motifs = json.loads((get_settings().resolved_workspace() / out.json_uri.removeprefix("artifact://")).read_text())["motifs"]
    assert [m["n_atoms"] for m in motifs] == [24, 24, 24]
    for m in motifs:
        composition = Structure.from_str(m["cif"], fmt="cif").composition
        assert composition["Cu"] == 12 and composition["Au"] == 12
    assert np.isfinite([m["energy_eV"] for m in motifs]).all()
