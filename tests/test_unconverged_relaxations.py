"""A relaxation that did not converge is stored as unconverged (never as relaxed), is no hull competitor, and is
never reused as a result: a later search relaxes on from where it stopped. Reference compounds that did not
converge stay on the hull as upper bounds and are named in its notes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymatgen.core import Composition, Lattice, Structure

from memory.store import StructureStore
from tools.core.registry import ToolContext, get_tool
from tools.core.settings import Settings
from tools.potentials.calculators import get_potential, relax
from tools.structures.io import structure_to_cif


def strained_cu() -> Structure:
    """fcc Cu 8 % too large with one atom off its site: far from its EMT minimum (a = 3.59 A)."""
    return Structure(Lattice.cubic(3.9), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0.03, 0.5, 0.52]])


def test_the_store_never_labels_an_unconverged_relaxation_relaxed(tmp_path: Path) -> None:
    """Whatever the caller says, a relaxation labelled converged False is stored relaxed False, tagged
    'unconverged'; a record from before the rule (relaxed True beside converged False) reads as unconverged."""
    store = StructureStore(tmp_path / "mem")
    result = relax(strained_cu(), get_potential("emt", Settings()), "emt", max_steps=1)
    assert not result.converged
    stored = store.add(result.structure, energy=result.energy, tags=["relaxed"],
                       properties={"relaxed": True, "converged": False, "energy_eV": result.energy})
    record = store.get(stored.id)
    assert record.properties["relaxed"] is False and record.properties["converged"] is False
    assert record.metadata["tags"] == "unconverged"
    from memory.store import is_converged_relaxation

    assert not is_converged_relaxation({"relaxed": True, "converged": False})
    assert is_converged_relaxation({"relaxed": True})  # older records without the label: as stored


def test_relax_structure_stores_an_unconverged_relaxation_as_unconverged_and_the_hull_leaves_it_out(
    workspace: Path,
) -> None:
    """EMT Cu relaxed for 1 step (unconverged) and for up to 300 (converged): only the converged one is relaxed in
    memory and a hull competitor; the unconverged one is named in the hull's notes and in the tool's."""
    from tools.potentials.properties import memory_entries, system_hull

    ctx = ToolContext()
    tool = get_tool("relax_structure")
    cif = structure_to_cif(strained_cu())
    short = tool.run({"structure": {"text": cif}, "potential": "emt", "max_steps": 1}, ctx)
    assert not short.converged and short.max_force_eV_A > 0.05
    assert any(n.startswith("relaxation did not converge") for n in short.notes)
    stored = ctx.store.get(short.id)
    assert stored.properties["relaxed"] is False and stored.properties["converged"] is False
    assert "relaxed" not in stored.metadata["tags"].split(",")
    full = tool.run({"structure": {"text": cif}, "potential": "emt", "max_steps": 300}, ctx)
    assert full.converged and not any(n.startswith("relaxation did not converge") for n in full.notes)
    assert ctx.store.get(full.id).properties["relaxed"] is True

    unconverged: list[str] = []
    names = [e.name for e in memory_entries(Composition("Cu"), "emt", ctx, unconverged)]
    assert full.id in names and short.id not in names and unconverged == [short.id]
    hull = system_hull(["Cu"], "emt", ctx)
    assert hull.n_memory == 1 and short.id not in [e.name for e in hull.diagram.all_entries]
    assert any("unconverged relaxation(s) in memory left out" in n and short.id in n for n in hull.notes)


def test_predict_properties_stores_an_unconverged_relaxation_as_unconverged(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """predict_properties(relax=True) with a 1-step limit: the stored record is not relaxed, the item says why."""
    import tools.potentials.properties as properties

    monkeypatch.setattr(properties, "PREDICT_STEPS", 1)
    ctx = ToolContext()
    out = get_tool("predict_properties").run(
        {"structures": [{"text": structure_to_cif(strained_cu())}], "potential": "emt", "relax": True}, ctx
    )
    item = out.items[0]
    assert item.error is None and any(n.startswith("relaxation did not converge") for n in item.notes)
    record = ctx.store.get(item.structure.id)
    assert record.properties["relaxed"] is False and record.properties["converged"] is False


def test_an_unconverged_reference_compound_stays_as_an_upper_bound_and_is_named(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Al-Ni intermetallic references relaxed for 1 step: all six stay among the hull's entries (dropping them
    would lift the hull further) and each is named in the hull's notes."""
    import tools.potentials.hull as hull_module
    from tools.potentials.properties import system_hull

    monkeypatch.setattr(hull_module, "REFERENCE_STEPS", 1)
    hull = system_hull(["Al", "Ni"], "emt", ToolContext())
    compounds = [name for name in hull.references if ":" in name]
    assert len(compounds) == 6
    kept = [n for n in hull.notes if "did not converge" in n and "kept as an upper bound" in n]
    assert sorted(n.split(" ")[2] for n in kept) == sorted(compounds)


@pytest.mark.slow
def test_a_search_relaxes_on_from_an_unconverged_stored_relaxation_instead_of_reusing_it(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ZnO search whose relaxations stop after 2 steps stores them unconverged; the same search again (full
    steps, same memory) does not reuse them as results but continues each from where it stopped, to convergence."""
    import tools.discovery.search as search

    args = {"request": "a wurtzite oxide with Zn", "budget": 2, "n_formulas": 1, "seed": 0, "use_llm": False}
    monkeypatch.setattr(search, "RELAX_STEPS", 2)
    ctx = ToolContext()
    first = get_tool("hierarchical_search").run(args, ctx)
    assert first.evaluations == 2 and not any(c.converged for c in first.ranked)
    for c in first.ranked:
        assert ctx.store.get(c.id).properties["relaxed"] is False
    assert any("unconverged relaxation(s) in memory left out of the O-Zn hull" in n for n in first.notes)
    monkeypatch.setattr(search, "RELAX_STEPS", 120)
    again = get_tool("hierarchical_search").run(args, ctx)
    assert again.reused == 0 and again.evaluations == 2
    assert all(c.converged and not c.reused for c in again.ranked)
    assert {c.parent_id for c in again.ranked} == {c.id for c in first.ranked}  # continued, not restarted
    assert all(ctx.store.get(c.id).properties["relaxed"] is True for c in again.ranked)
