"""Output a chemist can read (issue 26): the CLI tables fit an 80-column terminal without squeezing a column below
its header, formulas are spelled one way and numbers rounded, the search table says how its score is made and what
each E_hull was computed against; `matsearch call ... --help` shows every option's real type."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from agent.tasks import SCORE_EXPLANATION, canonical_formula, canonical_formulas_in, fmt_energy, fmt_number
from tools.core.registry import load_tools
from tools.discovery.search import SearchOutput

REPORTS = Path(__file__).parent / "data" / "search_reports"
WIDTH = 80


def stored_search(name: str) -> SearchOutput:
    """A real hierarchical_search output, as its report.json stored it (chgnet runs of two requests)."""
    data = json.loads((REPORTS / f"{name}.json").read_text())
    return SearchOutput.model_validate({k: v for k, v in data.items() if k in SearchOutput.model_fields})


def render(fn, *args) -> str:
    con = Console(width=WIDTH, record=True, file=io.StringIO(), color_system=None)
    fn(*args, con)
    return con.export_text()


def flat(text: str) -> str:
    return " ".join(text.split())


def column_text(lines: list[str], header: int, word: str, last: int) -> str:
    """The text of the last column, headed `word` in lines[header], in the rows below the header rule to `last`."""
    start = lines[header].index(word)
    return flat(" ".join(line[start:] for line in lines[header + 2 : last]))


@pytest.mark.parametrize("name", ["olivine_cobalt", "garnet_magnesium"])
def test_search_tables_fit_80_columns_and_keep_formulas_and_numbers_whole(name):
    from agent.cli import show_search

    out = stored_search(name)
    text = render(show_search, out)
    lines = text.splitlines()
    # Nothing but the file paths (kept whole to be copied) runs past 80 columns.
    assert all(len(line) <= WIDTH for line in lines if not line.startswith(("report:", "plot:"))), text

    # Ranked table: one row per candidate on one line, with the short id, the formula in its one spelling and the
    # numbers rounded for display (E_hull and E_form to 3 decimals in eV/atom, the score to 3).
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["#", "id", "formula"])
    assert set(lines[header].split()) >= {"#", "id", "formula", "group", "eV/at", "score", "match"}
    assert set(lines[header - 1].split()) >= {"space", "E_hull", "E_form", "family"}  # header words whole
    for c in out.ranked:
        row = next(line for line in lines if c.id[:10] in line.split())
        cells = row.split()
        assert c.id not in row  # the id is shortened in the table ...
        assert canonical_formula(c.formula) in cells and c.spacegroup in cells
        assert fmt_energy(c.e_above_hull_eV) in cells and fmt_energy(c.formation_energy_per_atom_eV) in cells
        assert fmt_number(c.score, 3) in cells and cells[0] == str(c.rank)
        for raw in (c.energy_per_atom_eV, c.formation_energy_per_atom_eV, c.score):
            if len(str(raw).split(".")[-1]) == 4:  # the stored 4-decimal value is not printed
                assert str(raw) not in cells
    assert out.best.id in text  # ... and the best one's whole id is printed once, to be used

    # Formula table: every reason whole (wrapped on words in its column), formulas in one spelling, no column
    # narrower than its header word.
    tree_header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["formula", "family"])
    assert lines[tree_header].split() == ["formula", "family", "evals", "score", "why"]
    assert lines[tree_header - 1].split() == ["best"]
    why = column_text(lines, tree_header, "why", header - 2)
    for node in out.tree:
        assert flat(canonical_formulas_in(node.reason)) in why
        assert any(line.split()[:1] == [canonical_formula(node.formula)] for line in lines[tree_header:header])
    formulas = [n.formula for n in out.tree] + [c.formula for c in out.ranked]
    for raw in {f for f in formulas if f != canonical_formula(f)}:
        assert raw not in text, f"{raw} printed instead of {canonical_formula(raw)}"

    # The score explained in one sentence, and E_hull said against which phases it was computed.
    body = flat(text)
    assert flat(SCORE_EXPLANATION) in body and "score = -stability" in body
    assert f"computed with {out.potential}" in body and "every relaxed structure of that system in memory" in body
    systems = {"-".join(sorted(re.findall(r"[A-Z][a-z]?", canonical_formula(c.formula)))) for c in out.ranked}
    for system in systems:
        refs = [n for n in out.hull_references[system] if ":" in n]
        assert f"{system}:" in body
        for ref in refs:
            formula, prototype = ref.split(":", 1)
            assert f"{canonical_formula(formula)} ({prototype})" in body


def test_tool_listing_fits_80_columns(monkeypatch):
    import agent.cli as cli
    from tools.adapters.cli import first_sentence

    con = Console(width=WIDTH, record=True, file=io.StringIO(), color_system=None)
    monkeypatch.setattr(cli, "console", con)
    cli.list_tools(as_json=False)
    text = con.export_text()
    lines = text.splitlines()
    assert all(len(line) <= WIDTH for line in lines)
    assert lines[0].split() == ["tool", "cost", "what", "it", "does"]
    start = lines[0].index("what")
    described = flat(" ".join(line[start:] for line in lines[2:]))
    for name, spec in load_tools().items():
        assert any(line.split()[:2] == [name, spec.cost] for line in lines), name  # names whole, on one line
        assert flat(first_sentence(spec.description)) in described, name
