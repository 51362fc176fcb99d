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
