"""Task reports contain the results (issue 26): `matsearch run <task.yaml>` writes per step what the tool found
(ids and formulas of structures, an analysis' numbers with units, an MD run's temperature, length and energy
drift, a search's ranked table with its score and hull explained) and links to every file and plot it wrote, not
only the steps' timings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from pymatgen.core import Lattice, Structure
from typer.testing import CliRunner

from agent.tasks import SCORE_EXPLANATION, canonical_formula, fmt_energy, fmt_number, summarize_output
from tests.conftest import cif_of, rocksalt

REPORTS = Path(__file__).parent / "data" / "search_reports"


def run_cli_task(tmp_path: Path, steps: list[dict]) -> tuple[str, Path, dict]:
    """Run a task file through `matsearch run`; the report's Markdown, its folder and its JSON."""
    from agent.cli import app

    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump({"title": "Report test", "steps": steps}))
    result = CliRunner().invoke(app, ["run", str(task)])
    assert result.exit_code == 0, result.output
    folder = Path(re.search(r"report: (\S+)/report\.md", result.stdout).group(1))
    return (folder / "report.md").read_text(), folder, json.loads((folder / "report.json").read_text())


def linked_files(markdown: str, folder: Path) -> list[Path]:
    """The files the report links to (relative Markdown links), resolved from the report's folder."""
    return [(folder / target).resolve() for target in re.findall(r"\]\(([^)\s]+)\)", markdown)]


def test_task_report_gives_each_steps_results_with_units_and_links(workspace, tmp_path):
    cu = Structure(Lattice.cubic(3.61), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    steps = [
        {"name": "store", "tool": "store_structure", "arguments": {"structure": {"text": cif_of(rocksalt())}}},
        {"name": "analysis", "tool": "analyze_structure", "arguments": {"structure": {"id": "${store.id}"}}},
        {"name": "neighbours", "tool": "search_structures",
         "arguments": {"similar_to": {"id": "${store.id}"}, "n": 3}},
        {"name": "md", "tool": "run_md", "arguments": {"structure": {"text": cif_of(cu)}, "potential": "emt",
                                                         "temperature_K": 300, "steps": 20, "log_every": 2}},
    ]
    report, folder, data = run_cli_task(tmp_path, steps)
    outputs = {entry["step"]: entry["output"] for entry in data["steps"]}

    # The overview keeps the steps and their timings ...
    for entry in data["steps"]:
        assert f"- **{entry['step']}** `{entry['tool']}` ok ({entry['seconds']} s)" in report
    # ... and each step's section says what it found. Stored structure: its id and formula.
    sid = outputs["store"]["id"]
    assert f"Stored as {sid} (new record)." in report and f"| {sid} | MgO | Fm-3m | 8 |" in report
    # Analysis: the numbers with their units, the coordination, the XRD peaks, the plot.
    analysis = outputs["analysis"]
    for line in ("- formula: MgO", "- spacegroup: Fm-3m", "- crystal system: cubic",
                 f"- density: {fmt_number(analysis['density_g_cm3'])} g/cm³",
                 f"- volume per atom: {fmt_number(analysis['volume_per_atom_A3'])} Å³",
                 f"- min distance: {fmt_number(analysis['min_distance_A'])} Å",
                 "- coordination: Mg (x4): CN 6 [O6]"):
        assert line in report, line
    assert "strongest XRD peaks (Cu Kα" in report and "42.9" in report  # MgO (200)
    # Similarity search: the hits' ids, formulas and similarity.
    assert f"| {sid} | MgO | Fm-3m | 8 | 1.000 |" in report
    # MD: temperature (target and measured, K), length, energy drift (meV/atom/ps), warnings.
    md = outputs["md"]
    assert "nvt_langevin with emt: 4 atoms, 20 steps (0.02 ps) at a target of 300 K" in report
    assert (f"mean temperature {fmt_number(md['mean_temperature_K'], 1)} ± "
            f"{fmt_number(md['std_temperature_K'], 1)} K") in report
    assert f"energy drift {fmt_number(md['energy_drift_meV_per_atom_per_ps'], 3)} meV/atom/ps" in report
    assert all(f"- {w}" in report for w in md["warnings"])
    # Every file a step wrote is linked (relative to the report, so it opens from there); plots are embedded.
    uris = [v for out in outputs.values() for k, v in out.items() if isinstance(v, str) and v.startswith("artifact://")]
    assert len(uris) >= 7
    for uri in uris:
        assert f"(`{uri}`)" in report
    files = linked_files(report, folder)
    assert len(files) >= len(uris) and all(f.is_file() for f in files)
    for plot in ("xrd plot", "thermo plot", "rdf plot", "msd plot"):
        assert f"![{plot}](" in report
    # No raw dict dumps or unrounded numbers.
    assert "{'" not in report and str(md["mean_temperature_K"]) not in report


def test_search_step_summary_is_the_ranked_table_with_score_and_hull_explained(tmp_path):
    """A real stored search output (chgnet, olivine request) summarised as a task step."""
    output = json.loads((REPORTS / "olivine_cobalt.json").read_text())
    workspace = tmp_path / "workspace"
    folder = workspace / "tasks" / "olivine-1"
    text = "\n".join(summarize_output("hierarchical_search", output, {}, folder, workspace))
    assert "| rank | id | formula | space group | E_hull (eV/atom) | E_form (eV/atom) | score |" in text
    for c in output["ranked"]:
        row = (f"| {c['rank']} | {c['id']} | {canonical_formula(c['formula'])} | {c['spacegroup']} | "
               f"{fmt_energy(c['e_above_hull_eV'])} | {fmt_energy(c['formation_energy_per_atom_eV'])} | "
               f"{fmt_number(c['score'], 3)} |")
        assert row in text, row
    assert SCORE_EXPLANATION in text and "computed with chgnet" in text
    assert "- Co-Li-O-P: CoO (rock salt), Co2O3 (corundum), Li2O (antifluorite), P2O3 (corundum)" in text
    assert f"Best: {output['best']['id']} (NaCoPO4, Pnma), E_hull 0.000 eV/atom." in text
    assert "3 relaxation(s) did not converge" in text  # the search's notes
    report_link = "../../artifacts/hierarchical_search/20261207-013739-681467/report.md"
    assert f"[report]({report_link})" in text and "![plot](../../artifacts/hierarchical_search/" in text


@pytest.mark.slow
def test_task_report_of_a_real_search(workspace, tmp_path):
    """A one-relaxation search as a task step: the report holds its ranked table, score and hull explained."""
    steps = [{"name": "search", "tool": "hierarchical_search",
              "arguments": {"request": "a rock salt oxide with Mg", "budget": 1, "n_formulas": 1, "seed": 0,
                            "use_llm": False}}]
    report, folder, data = run_cli_task(tmp_path, steps)
    out = data["steps"][0]["output"]
    assert out["ranked"] and SCORE_EXPLANATION in report and "E_hull (eV/atom) is measured against" in report
    for c in out["ranked"]:
        assert f"| {c['rank']} | {c['id']} | {canonical_formula(c['formula'])} | {c['spacegroup']} | " in report
    assert all(f.is_file() for f in linked_files(report, folder))


@pytest.mark.slow
def test_library_banners_stay_out_of_the_terminal(workspace, tmp_path):
    """`matsearch run` in a real process: CHGNet's load banner and warnings go to workspace/agent/run.log; the
    terminal shows the steps, the result lines and where the report and the log are."""
    import subprocess
    import sys

    from tests.conftest import ROOT, server_env

    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump({"title": "Banner test", "steps": [
        {"name": "score", "tool": "predict_properties",
         "arguments": {"structures": [{"text": cif_of(rocksalt())}], "relax": False, "potential": "chgnet"}}]}))
    done = subprocess.run([sys.executable, "-m", "agent.cli", "run", str(task)], cwd=ROOT, env=server_env(workspace),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    seen = done.stdout + done.stderr
    assert "step score: predict_properties" in seen and "report: " in seen
    for banner in ("CHGNet v", "CHGNet will run on", "Warning", "Traceback"):
        assert banner not in seen, banner
    assert "CHGNet" in (workspace / "agent" / "run.log").read_text()
