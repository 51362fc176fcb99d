"""benchmarks/run_all.py knows every row of the README's Measured table, runs one cheap row into a table row, and
marks a failed run instead of quoting it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import run_all  # noqa: E402


def test_every_readme_row_has_a_run_all_row() -> None:
    names = run_all.readme_rows()
    assert len(names) >= 10, names  # the table was found and parsed
    missing = [n for n in names if n not in run_all.BY_KEY]
    assert not missing, f"README Measured rows without a run_all row: {missing}"
    for row in run_all.ROWS:
        assert (ROOT / row.script).is_file(), row.script


def test_readme_rows_parses_a_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Measured (cpu)\n\n| benchmark | result |\n|---|---|\n| `scale.py` (n) | 2x |\n"
                      "| `benchmarks/uncertainty.py` | 0.8 |\n\n## Next\n\n| `crystallization.py` | no |\n")
    assert run_all.readme_rows(readme) == ["scale", "uncertainty"]


def test_failed_run_is_marked_not_quoted(tmp_path: Path) -> None:
    row = run_all.Row("no_such_benchmark", (), (), run_all.parse_scale, 1.0, 0.1, "none")
    record = run_all.run_row(row, quick=False, work_root=tmp_path, timeout_s=60)
    assert record["status"] == "failed"
    table = run_all.markdown([record], "now")
    assert "not quoted: run failed" in table


def test_speed_parser_gives_a_ratio_from_one_run(tmp_path: Path) -> None:
    def sizes(rate64: float, rate512: float) -> dict:
        return {"sizes": {"64": {"atom_steps_per_s": rate64}, "512": {"atom_steps_per_s": rate512}}}

    (tmp_path / "potential_speed.json").write_text(json.dumps({"results": {
        "allegro_distilled": sizes(1000.0, 1700.0), "sevennet-0": sizes(100.0, 100.0), "chgnet": sizes(80, 90)}}))
    out = run_all.parse_potential_speed("", tmp_path)
    assert out.headline == pytest.approx(17.0)
    assert "17.0x SevenNet-0" in out.result and "10.0x at 64" in out.result


def test_only_one_cheap_row_writes_a_table_row(tmp_path: Path) -> None:
    """reader_quality --quick: the offline reader on 16 requests of the report split (seconds)."""
    table = tmp_path / "table.md"
    records = run_all.main(["--quick", "--only", "reader_quality", "--work", str(tmp_path / "work"),
                            "--table", str(table)])
    assert [r["row"] for r in records] == ["reader_quality"]
    assert records[0]["status"] == "quick", records[0]
    lines = [ln for ln in table.read_text().splitlines() if ln.startswith("| `benchmarks/reader_quality.py")]
    assert len(lines) == 1 and "top-1 proposal valid" in lines[0] and "not a figure to quote" in lines[0]
    text = table.read_text()
    for name in run_all.readme_rows():  # every README row is in the table, the ones not run marked as such
        assert f"| `benchmarks/{name}.py" in text, name
    assert text.count("not rerun by run_all yet") == len(run_all.ROWS) - 1


@pytest.mark.parametrize(("load", "status"), [(5.0, "loaded"), (0.2, "reproduced")])
def test_speed_row_from_a_loaded_machine_is_not_quoted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, load: float,
                                                       status: str) -> None:
    def fake_run(cmd, cwd, stdout, stderr, timeout, env):  # noqa: ANN001, ANN202, ARG001 - subprocess.run's shape
        stdout.write("in-process, 1 torch thread(s): 1.000 structures/s\n"
                     "dask x2: 1.600 structures/s = 1.60x in-process (1 thread)\n")
        return SimpleNamespace(returncode=0)

    monkeypatch.setattr(run_all.subprocess, "run", fake_run)
    monkeypatch.setattr(run_all.os, "getloadavg", lambda: (load, load, load))
    record = run_all.run_row(run_all.BY_KEY["scale"], quick=False, work_root=tmp_path, timeout_s=None)
    assert record["status"] == status, record
    assert record["headline"] == pytest.approx(1.6)
    assert ("measured on a loaded machine" in run_all.markdown([record], "now")) == (status == "loaded")
