"""The numbers a search delivers: a property sits only on the structure it was computed on, E_hull is read against
the final hull (intermetallic references included), the ranking requires composition and family before E_hull,
an under-spent budget says why, and every delivered CIF recomputes to its reported energy."""

from __future__ import annotations

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from memory.store import StructureStore
from tools.potentials import get_potential, relax, single_point
from tools.settings import Settings


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


def test_an_intermetallic_hull_has_the_binary_intermetallics(tmp_path):
    """An anion-free ternary gets B2/L1_0/L1_2/C15 references for each metal pair (relaxed once, then cached); a
    Ni2PtCu Heusler that reads 0.06 eV/atom below an elements-only hull reads above the hull with them."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram

    from models.prototypes import decorate
    from tools.hull import LocalHull, missing_binaries
    from tools.potentials import ElementalReferences

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

