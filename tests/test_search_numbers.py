"""The numbers a search delivers: a property sits only on the structure it was computed on, E_hull is read against
the final hull (intermetallic references included), the ranking requires composition and family before E_hull,
an under-spent budget says why, and every delivered CIF recomputes to its reported energy."""

from __future__ import annotations

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from memory.store import StructureStore
from tools.core.settings import Settings
from tools.potentials.calculators import get_potential, relax, single_point


def test_a_property_never_lands_on_a_structure_it_was_not_computed_on(tmp_path):
    """An unrelaxed Cu cell and its relaxed copy (equivalent under the store's matcher) are two records; the energy
    sits on the relaxed one, whose CIF recomputes to it."""
    store = StructureStore(tmp_path / "mem")
    unrelaxed = Structure(Lattice.cubic(3.64), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.52]])
    proto = store.add(unrelaxed, provenance={"tool": "prototype"}, tags=["generated"])
    calc = get_potential("emt", Settings())
    result = relax(unrelaxed, calc, "emt", fmax=0.01, max_steps=200)
    assert result.converged
    strict = StructureMatcher(ltol=0.05, stol=0.1, angle_tol=2, primitive_cell=True, scale=False)
    assert strict.fit(unrelaxed, result.structure), "the relaxed copy is within the old dedup tolerance"
    relaxed = store.add(
        result.structure,
        provenance={"tool": "relax", "parent_ids": [proto.id]},
        energy=result.energy,
        properties={"relaxed": True, "energy_eV": result.energy},
        tags=["relaxed"],
    )
    assert not relaxed.deduplicated and relaxed.id != proto.id and store.count() == 2
    parent = store.get(proto.id)
    assert "energy" not in parent.metadata and parent.properties == {}
    child = store.get(relaxed.id)
    assert child.provenance["parent_ids"] == [proto.id]
    assert abs(child.structure.lattice.a - result.structure.lattice.a) < 1e-4
    assert abs(child.structure.lattice.a - unrelaxed.lattice.a) > 0.02  # the relaxed geometry, not the prototype
    recomputed = single_point(child.structure, calc, "emt") / len(child.structure)
    assert abs(recomputed - child.metadata["energy_per_atom"]) < 0.005


@pytest.mark.slow
def test_an_intermetallic_hull_has_the_binary_intermetallics(tmp_path):
    """An anion-free ternary gets B2/L1_0/L1_2/C15 references for each metal pair (relaxed once, then cached); a
    Ni2PtCu Heusler that reads 0.06 eV/atom below an elements-only hull reads above the hull with them."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram

    from models.crystals.prototypes import decorate
    from tools.potentials.calculators import ElementalReferences
    from tools.potentials.hull import LocalHull, missing_binaries

    calc = get_potential("emt", Settings())
    hull = LocalHull(ElementalReferences("emt", calc, tmp_path), tmp_path)
    phases = hull.competing_phases(["Al", "Ni"])
    assert {"AlNi:B2", "AlNi:L1_0", "Al3Ni:L1_2", "AlNi3:L1_2", "Al2Ni:C15", "AlNi2:C15"} <= set(phases)
    assert hull.relaxations == 6 and (tmp_path / "compounds-emt.json").exists()
    again = LocalHull(ElementalReferences("emt", calc, tmp_path), tmp_path)
    assert again.competing_phases(["Al", "Ni"]) == phases and again.relaxations == 0  # served by the cache

    elements = ["Cu", "Ni", "Pt"]
    entries = again.reference_entries(elements)
    assert again.relaxations == 18 and missing_binaries(elements, entries) == []
    assert missing_binaries(elements, entries[:3]) == ["Cu-Ni", "Cu-Pt", "Ni-Pt"]  # elements only: a thin hull
    heusler = relax(decorate("heusler", {"A": "Ni", "B": "Pt", "C": "Cu"}), calc, "emt", max_steps=250)
    target = PDEntry(heusler.structure.composition, heusler.energy)
    thin = PhaseDiagram(entries[:3]).get_decomp_and_e_above_hull(target, allow_negative=True)[1]
    full = again.e_above_hull(heusler.structure.composition, heusler.energy)
    assert thin < -0.03 and full > 0.0


ZNO = {"request": "a wurtzite oxide with Zn", "budget": 3, "n_formulas": 1, "seed": 0, "use_llm": False}


@pytest.mark.slow
def test_search_reads_e_hull_against_the_final_hull_and_delivers_what_it_reports(workspace):
    """The first ZnO evaluated (the wurtzite prototype) reads below the rock-salt-only hull at evaluation; against
    the final hull nothing reads below 0, polymorphs read relative to the best, the stored records carry the final
    value, the ranking keeps its tiers, and every delivered CIF recomputes to its reported energy."""
    from tools.core.registry import ToolContext, get_tool
    from tools.discovery.search import verify_delivery

    ctx = ToolContext()
    out = get_tool("hierarchical_search").run(ZNO, ctx)
    assert out.evaluations == 3 and len(out.ranked) == 3
    first = next(c for c in out.ranked if c.generator == "prototype")
    assert first.e_hull_at_evaluation_eV < -0.05  # what the search used to report
    assert all(c.e_above_hull_eV >= -1e-4 for c in out.ranked) and not any(c.e_hull_suspect for c in out.ranked)
    assert min(c.e_above_hull_eV for c in out.ranked) < 1e-3  # the best ZnO is on the final hull
    for a in out.ranked:
        assert ctx.store.get(a.id).properties["e_above_hull_eV"] == pytest.approx(a.e_above_hull_eV, abs=1e-4)
        for b in out.ranked:  # same composition, same hull: E_hull differences are energy differences
            assert a.e_above_hull_eV - b.e_above_hull_eV == pytest.approx(
                a.energy_per_atom_eV - b.energy_per_atom_eV, abs=3e-4
            )
    tiers = [(not c.has_required_elements, not c.family_match, not c.converged) for c in out.ranked]
    assert tiers == sorted(tiers)
    for a, b in zip(out.ranked, out.ranked[1:], strict=False):  # within a tier the higher polymorph ranks after
        if tiers[a.rank - 1] == tiers[b.rank - 1]:
            assert a.e_above_hull_eV <= b.e_above_hull_eV
    assert out.hull_references["O-Zn"][:2] == ["O", "Zn"] and out.note == ("; ".join(out.notes) or None)
    report = (workspace / out.report_uri.removeprefix("artifact://")).read_text()
    assert "hull references considered for O-Zn" in report and "E_hull at evaluation" in report
    checks = verify_delivery(out, ctx)
    assert len(checks) == 3 and all(c.ok for c in checks), checks


def test_a_wrong_family_or_composition_never_outranks_a_match():
    from tools.discovery.search import Candidate, _rank

    def cand(cid: str, e_hull: float, family: bool, elements: bool = True, converged: bool = True) -> Candidate:
        return Candidate(rank=0, id=cid, uri="", formula="ZnO", family="wurtzite", generator="diffusion",
                         spacegroup="P1", energy_per_atom_eV=-4.0, formation_energy_per_atom_eV=-1.0,
                         e_above_hull_eV=e_hull, family_match=family, has_required_elements=elements,
                         score=-e_hull, reused=False, parent_id=None, converged=converged)

    pool = [cand("wrong-family", -0.4, False), cand("match-high", 0.2, True), cand("match-low", 0.0, True),
            cand("no-elements", -0.9, True, elements=False), cand("unconverged", -0.1, True, converged=False)]
    assert [c.id for c in _rank(pool, family_required=True)] == [
        "match-low", "match-high", "unconverged", "wrong-family", "no-elements"]
    assert [c.id for c in _rank(pool)][:2] == ["wrong-family", "match-low"]  # no family asked: E_hull decides


@pytest.mark.slow
def test_an_under_spent_budget_says_why_and_a_refusal_stops_one_formula_only(workspace, monkeypatch):
    """Diffusion refusing the first formula must not stop sampling for the others; when every formula is exhausted
    before the budget is spent, the output and the report say why."""
    import tools.discovery.search as search
    from tools.core.errors import ToolInputError
    from tools.core.registry import ToolContext, get_tool

    calls: list[str] = []

    def fake_draw(node, inp, ctx):  # noqa: ANN001, ANN202
        calls.append(node.proposal.formula)
        node.diffusion_draws += 1
        if node.order == 0:
            raise ToolInputError("too many atoms for the diffusion model")
        return []

    monkeypatch.setattr(search, "_draw_diffusion", fake_draw)
    args = {"request": "a rock salt oxide", "budget": 12, "n_formulas": 2, "seed": 1, "use_llm": False}
    out = get_tool("hierarchical_search").run(args, ToolContext())
    # The two formulas' prototypes, then the two reserve formulas' (opened when the first had nothing left).
    assert len(out.tree) == 4 and out.evaluations == 4
    assert sum(n.startswith("opened reserve formula") for n in out.notes) == 2
    refused, other = (n.formula for n in out.tree[:2])
    assert calls.count(refused) == 1 and calls.count(other) > 1  # the refusal disabled diffusion for one only
    budget = next(n for n in out.notes if n.startswith("budget under-spent"))
    assert "4 of 12 relaxations" in budget and "every formula exhausted" in budget and "diffusion refused" in budget
    assert any(n.startswith(f"diffusion refused {refused}: too many atoms") for n in out.notes)
    assert "budget under-spent" in (workspace / out.report_uri.removeprefix("artifact://")).read_text()
