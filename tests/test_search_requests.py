"""The search answers the request that was asked: a request chemistry rules out is declined with the reason (and
nothing is relaxed), a formula the request asks for ranks first, and a family the diffusion model cannot reach
(garnet, 80-atom cell) goes through its prototype and the search says so."""

from __future__ import annotations

import pytest
from pymatgen.core import Composition

from tools.core.registry import ToolContext, get_tool


def test_a_request_chemistry_rules_out_is_declined_without_a_search(workspace):
    out = get_tool("hierarchical_search").run(
        {"request": "a stable perovskite made of xenon and krypton", "budget": 4, "use_llm": False}, ToolContext()
    )
    assert out.declined and "noble gases" in out.declined
    assert out.evaluations == 0 and out.ranked == [] and out.best is None
    report = (workspace / out.report_uri.removeprefix("artifact://")).read_text()
    assert "Declined" in report and out.declined in report


@pytest.mark.slow
def test_the_formula_a_request_asks_for_ranks_first(workspace):
    out = get_tool("hierarchical_search").run(
        {"request": "a rock salt oxide like MgO but with nickel instead of magnesium", "budget": 2, "n_formulas": 2,
         "use_llm": False, "samples_per_formula": 1, "diffusion_steps": 20},
        ToolContext(),
    )
    assert out.constraints["exclude"] == ["Mg"] and "Ni" in out.constraints["include"]
    assert out.best is not None and out.best.formula == "NiO" and out.best.named_formula
    assert all("Mg" not in Composition(c.formula) for c in out.ranked)


@pytest.mark.slow
def test_a_garnet_goes_through_its_prototype_and_the_search_says_so(workspace):
    out = get_tool("hierarchical_search").run(
        {"request": "a garnet with Y and Al", "budget": 1, "n_formulas": 1, "use_llm": False}, ToolContext()
    )
    best = out.best
    assert best is not None and Composition(best.formula).reduced_formula == "Y3Al5O12"
    assert best.generator == "prototype" and best.family_match and best.spacegroup == "Ia-3d"
    assert any("prototype only" in n and "80 atoms" in n for n in out.notes), out.notes


def test_a_polymorph_above_its_ground_state_never_outranks_a_compound_on_the_hull():
    """Wurtzite MgO (0.09 eV/atom above rock-salt MgO) must rank after wurtzite ZnO on its hull, although MgO's
    formation energy is the more negative: the stability number is E_hull above the hull, and only on the hull
    the energy below the competing phases."""
    from tools.discovery.search import stability

    mgo_wurtzite = stability(0.094, lambda: -3.01)
    zno_wurtzite = stability(0.0, lambda: -1.84)
    assert mgo_wurtzite == 0.094 and zno_wurtzite == -1.84 and zno_wurtzite < mgo_wurtzite
    assert stability(0.0, lambda: 0.2) == 0.0  # on the hull, never ranked as if above it


def test_compounds_of_only_the_named_elements_rank_before_substituted_ones():
    """'a garnet with Y and Al' is YAG: a Ga-substituted garnet that reads more stable ranks after it."""
    from tools.discovery.search import Candidate, _rank

    def candidate(formula: str, only_named: bool, stability_eV: float) -> Candidate:
        return Candidate(
            rank=0, id=f"s-{formula}", uri="", formula=formula, family="garnet", generator="prototype",
            spacegroup="Ia-3d", energy_per_atom_eV=-7.0, formation_energy_per_atom_eV=-3.0, e_above_hull_eV=0.0,
            family_match=True, has_required_elements=True, score=-stability_eV, reused=False, parent_id=None,
            decomposition_energy_eV=stability_eV, only_named_elements=only_named,
        )

    ranked = _rank([candidate("Y3Al2(GaO4)3", False, -0.2), candidate("Y3Al5O12", True, -0.1)], True)
    assert [c.formula for c in ranked] == ["Y3Al5O12", "Y3Al2(GaO4)3"]


@pytest.mark.slow
def test_elements_the_diffusion_model_lacks_get_random_symmetric_structures(workspace):
    """P is outside the diffusion model's training set: after LiZnP's prototype (an antifluorite with the A site
    shared by Li and Zn, ordered), the search samples pyxtal structures instead of stranding the budget."""
    out = get_tool("hierarchical_search").run(
        {"request": "a ternary phosphide with Li and Zn", "budget": 2, "n_formulas": 1, "use_llm": False},
        ToolContext(),
    )
    assert out.evaluations == 2 and {c.generator for c in out.ranked} == {"prototype", "pyxtal"}
    assert all(Composition(c.formula) == Composition("LiZnP") for c in out.ranked)
    assert next(c for c in out.ranked if c.generator == "prototype").family_match  # the split site still matches
    assert any("random symmetric pyxtal structures instead" in n for n in out.notes), out.notes
