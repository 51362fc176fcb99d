"""The local hull says which reference compounds it had to leave out, instead of silently reading thinner."""

from __future__ import annotations

from pathlib import Path

import pytest
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

import tools.potentials.hull as hull_module
from tools.core.registry import ToolContext, get_tool
from tools.core.settings import Settings
from tools.potentials.calculators import ElementalReferences, get_potential
from tools.potentials.hull import LocalHull
from tools.structures.io import structure_to_cif


@pytest.fixture
def failing_prototypes(monkeypatch: pytest.MonkeyPatch) -> None:
    """B2 (CsCl) and C15 (Laves) prototypes cannot be built: their volume predictor raises."""
    decorate, predicted_volume = hull_module.decorate, hull_module.predicted_volume

    def no_cscl(family: str, roles: dict[str, str]) -> object:
        if family == "cscl":
            raise ValueError("no bond lengths for this pair")
        return decorate(family, roles)

    def no_laves(structure: object) -> object:
        if len(structure) == 6:  # the C15 (Cu4Mg2) template
            raise ValueError("volume predictor failed")
        return predicted_volume(structure)

    monkeypatch.setattr(hull_module, "decorate", no_cscl)
    monkeypatch.setattr(hull_module, "predicted_volume", no_laves)


def test_reference_compounds_that_cannot_be_built_are_named(failing_prototypes: None, tmp_path: Path) -> None:
    """Three of the six Al-Ni intermetallic references fail to build: the other three are relaxed and the hull
    lists the three it left out, with the reason."""
    calc = get_potential("emt", Settings())
    hull = LocalHull(ElementalReferences("emt", calc, tmp_path), tmp_path)
    phases = hull.competing_phases(["Al", "Ni"])
    assert {"AlNi:L1_0", "Al3Ni:L1_2", "AlNi3:L1_2"} <= set(phases) and hull.relaxations == 3
    assert not any(name.endswith((":B2", ":C15")) for name in phases)
    assert len(hull.dropped) == 3
    assert hull.dropped[0] == "AlNi:B2 (ValueError: no bond lengths for this pair)"
    assert sorted(d.split(" ")[0] for d in hull.dropped[1:]) == ["Al2Ni:C15", "AlNi2:C15"]
    hull.competing_phases(["Al", "Ni"])
    assert len(hull.dropped) == 3  # said once


def test_relax_structure_reports_the_references_its_hull_left_out(failing_prototypes: None, workspace: Path) -> None:
    """relax_structure's E_hull comes with a note per reference compound the hull could not build."""
    cif = structure_to_cif(AseAtomsAdaptor.get_structure(bulk("NiAl", "cesiumchloride", a=2.88)))
    out = get_tool("relax_structure").run({"structure": {"text": cif}, "potential": "emt", "max_steps": 20,
                                           "store": False}, ToolContext())
    assert out.properties.e_above_hull_eV is not None
    assert len(out.notes) == 3 and all("could not be built and was left out" in n for n in out.notes)
    assert "hull reference AlNi:B2 (ValueError" in out.notes[0]
