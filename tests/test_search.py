"""The language level and the hierarchical search: charge-balanced proposals per family, a real search on the
demo request, determinism, memory as transposition table, and clear errors for bad requests."""

from __future__ import annotations

import pytest
from pymatgen.core import Composition

from tests.fake_openai import FakeOpenAI
from tools.core.errors import ToolInputError
from tools.core.registry import ToolContext, get_tool
from tools.discovery.language import charge_balanced
from tools.discovery.request import parse_request


@pytest.mark.parametrize(
    "request_text,elements,family",
    [
        ("a double perovskite oxide containing La and Mn", {"La", "Mn", "O"}, "double perovskite"),
        ("a stable spinel with Mg and Al", {"Mg", "Al", "O"}, "spinel"),
        ("a rock-salt oxide with Mg and Ni", {"Mg", "Ni", "O"}, "rock salt"),
        ("a Heusler compound with Co, Mn and Ga", {"Co", "Mn", "Ga"}, "heusler"),
        ("a garnet", {"O"}, "garnet"),
    ],
)
def test_offline_proposals_are_charge_balanced_family_members(workspace, request_text, elements, family):
    out = get_tool("propose_formulas").run({"request": request_text, "n": 5, "use_llm": False}, ToolContext())
    assert out.proposer == "offline" and out.proposals
    for p in out.proposals:
        comp = Composition(p.formula)
        assert elements <= {el.symbol for el in comp.elements}, p.formula
        assert p.family == family
        assert charge_balanced(comp), p.formula
    if family == "spinel":
        assert out.proposals[0].formula == "MgAl2O4"
    if family == "heusler":
        assert Composition(out.proposals[0].formula) == Composition("Co2MnGa")
    if family == "garnet":
        known = {"Ca3Al2(SiO4)3", "Y3Al5O12", "Gd3Ga5O12", "Y3Fe5O12", "Lu3Al5O12"}
        assert any(Composition(p.formula).reduced_formula in known for p in out.proposals)


@pytest.mark.parametrize(
    "bad,message",
    [
        ("", "empty"),
        ("hello there, how are you", "could not find elements"),
    ],
)
def test_unreadable_requests_get_clear_messages(bad, message):
    with pytest.raises(ToolInputError, match=message):
        parse_request(bad)


@pytest.mark.parametrize(
    "text,reason",
    [
        ("a perovskite with La but without La", "contradictory"),
        ("a ternary oxide with La, Mn, Ni and Co", "contradictory"),
    ],
)
def test_contradictory_requests_are_declined_with_the_reason(workspace, text, reason):
    assert reason in (parse_request(text).decline or "")
    out = get_tool("propose_formulas").run({"request": text, "use_llm": False}, ToolContext())
    assert out.proposals == [] and reason in (out.declined or "")


def test_budget_bounds_are_enforced(workspace):
    spec = get_tool("hierarchical_search")
    for budget in (0, 10**9):
        with pytest.raises(ToolInputError, match="budget"):
            spec.run({"request": "a spinel", "budget": budget})


def test_llm_failures_fall_back_to_offline(workspace, monkeypatch):
    with FakeOpenAI(lambda messages: {"content": "sure! here are ideas: La2MnNiO6, trust me"}) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        from tools.core.settings import get_settings

        get_settings.cache_clear()
        out = get_tool("propose_formulas").run({"request": "a spinel with Mg and Al"}, ToolContext())
        assert out.proposer == "offline" and "failed" in (out.note or "") and server.requests
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    get_settings.cache_clear()
    down = get_tool("propose_formulas").run({"request": "a spinel with Mg and Al"}, ToolContext())
    assert down.proposer == "offline" and "failed" in (down.note or "")
    get_settings.cache_clear()


def test_llm_proposals_are_validated(workspace, monkeypatch):
    reply = ('{"proposals": [{"formula": "La2MnNiO6", "family": "double perovskite", "reason": "known FM insulator"},'
             '{"formula": "La2MnXx6", "reason": "bad element"}, {"formula": "La2MnNiO12", "reason": "not balanced"},'
             '{"formula": "Sr2FeMoO6", "reason": "lacks La"}]}')
    with FakeOpenAI(lambda messages: {"content": reply}) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        from tools.core.settings import get_settings

        get_settings.cache_clear()
        out = get_tool("propose_formulas").run({"request": "a double perovskite with La and Mn"}, ToolContext())
        get_settings.cache_clear()
    assert out.proposer == "llm" and [p.formula for p in out.proposals] == ["La2MnNiO6"]


@pytest.mark.slow
def test_search_demo_request_is_real_and_deterministic(workspace, tmp_path, monkeypatch):
    from tools.core.settings import get_settings

    args = {"request": "a double perovskite oxide containing La and Mn", "budget": 1, "n_formulas": 2, "seed": 3}
    first = get_tool("hierarchical_search").run(args, ToolContext())
    assert first.evaluations == 1 and first.best is not None
    best = first.best
    assert {"La", "Mn"} <= {el.symbol for el in Composition(best.formula).elements}
    assert best.family_match and best.has_required_elements
    assert best.e_above_hull_eV is not None and -1.0 < best.e_above_hull_eV < 1.0
    record = ToolContext().store.get(best.id)
    assert record.provenance["tool"] == "hierarchical_search" and record.properties["relaxed"]
    assert record.provenance["parent_ids"], "every node keeps its parent"
    assert (workspace / first.report_uri.removeprefix("artifact://")).read_text().startswith("# matsearch")

    again = get_tool("hierarchical_search").run(args, ToolContext())  # same memory: cached nodes are reused
    assert again.reused >= 1
    assert again.best.score >= first.best.score

    monkeypatch.setenv("MATSEARCH_WORKSPACE", str(tmp_path / "fresh"))  # same seed, fresh memory: same result
    get_settings.cache_clear()
    fresh = get_tool("hierarchical_search").run(args, ToolContext())
    assert [(c.id, c.e_above_hull_eV) for c in fresh.ranked] == [(c.id, c.e_above_hull_eV) for c in first.ranked]


@pytest.mark.slow
def test_every_proposed_formula_is_looked_at_and_answered_once(workspace):
    """Unvisited formulas come first (UCT-style), so a budget >= the formula count evaluates each; the answer keeps
    the best-ranked polymorph of each formula."""
    out = get_tool("hierarchical_search").run(
        {"request": "a rock salt oxide", "budget": 3, "n_formulas": 2, "seed": 1, "use_llm": False}, ToolContext()
    )
    assert len(out.tree) == 2 and all(node.evaluations >= 1 for node in out.tree)
    formulas = [c.formula for c in out.per_formula]
    assert sorted(formulas) == sorted({c.formula for c in out.ranked}) and len(formulas) == 2
    for answer in out.per_formula:
        assert answer == min((c for c in out.ranked if c.formula == answer.formula), key=lambda c: c.rank)
