"""Every family's prototype against the typed cell of a known member (models/data/reference_cells.json, written from
published crystallography independently of the templates), site ordering (half-Heusler), shared roles (garnet B=C,
olivine A=B), role recovery."""

from __future__ import annotations

import warnings

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition

from models.crystals.prototypes import FAMILIES, RATIOS, decorate, template
from models.crystals.reference_cells import KNOWN_MEMBERS, reference_cell, reference_entry
from tools.discovery.family_match import family_roles, matches_family, matches_family_ordered

STRICT = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5, scale=True)
MEMBERS = [(family, name, roles) for family, members in KNOWN_MEMBERS.items() for name, roles in members]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.slow
def test_every_family_has_a_typed_known_member():
    assert set(KNOWN_MEMBERS) == set(FAMILIES)
    for name in ("TiNiSn", "ZrNiSn", "MgAl2O4", "NiFe2O4", "Y3Al5O12", "Ca3Al2Si3O12", "Mg2SiO4", "LiFePO4"):
        entry = reference_entry(name)
        assert entry["source"] and entry["spacegroup"]
    for family, name, roles in MEMBERS:
        assert set(roles) == set(RATIOS[family][0]), name
        assert reference_cell(name).composition.reduced_formula == Composition(name).reduced_formula


@pytest.mark.parametrize(("family", "name", "roles"), MEMBERS, ids=[f"{f}-{n}" for f, n, _ in MEMBERS])
def test_decorated_template_matches_the_typed_known_member(family, name, roles):
    decorated = decorate(family, roles)
    assert STRICT.fit(decorated, reference_cell(name)), f"{family} template decorated as {name}"


def test_half_heusler_site_ordering():
    tinisn = reference_cell("TiNiSn")
    assert matches_family_ordered(tinisn, "half-heusler", {"A": "Ti", "B": "Ni", "C": "Sn"})
    swapped = {"A": "Ni", "B": "Ti", "C": "Sn"}  # Ni on the rock-salt site, Ti on the tetrahedral 4c site
    assert not matches_family_ordered(tinisn, "half-heusler", swapped)
    assert matches_family(tinisn, "half-heusler")  # the anonymous fit cannot see the ordering
    wrong = decorate("half-heusler", swapped)
    assert not STRICT.fit(wrong, tinisn) and STRICT.fit_anonymous(wrong, tinisn)


def test_shared_roles_decorate_and_match():
    yag = decorate("garnet", {"A": "Y", "B": "Al", "C": "Al", "X": "O"})
    assert yag.composition.reduced_formula == "Y3Al5O12" and len(yag) == 80
    forsterite = decorate("olivine", {"A": "Mg", "B": "Mg", "C": "Si", "X": "O"})
    assert forsterite.composition.reduced_formula == "Mg2SiO4" and len(forsterite) == 28
    lfp = decorate("olivine", {"A": "Li", "B": "Fe", "C": "P", "X": "O"})
    assert lfp.composition.reduced_formula == "LiFePO4"
    cuinse2 = decorate("chalcopyrite", {"A": "Cu", "B": "In", "X": "Se"})
    assert cuinse2.composition.reduced_composition == Composition("CuInSe2")
    for structure, family in [(yag, "garnet"), (forsterite, "olivine"), (lfp, "olivine"), (cuinse2, "chalcopyrite")]:
        assert matches_family(structure, family)
    assert not matches_family(reference_cell("LiFePO4"), "spinel")
    assert not matches_family(reference_cell("Mg2SiO4"), "garnet")


def test_template_stand_ins_are_one_per_role():
    standin = {"A": "Li", "B": "Be", "C": "B", "X": "O"}
    for family in FAMILIES:
        roles, ratio = RATIOS[family]
        elements = {site.specie.symbol for site in template(family)}
        assert elements == {standin[r] for r in roles}, family
        formula = Composition({standin[r]: n for r, n in zip(roles, ratio, strict=True)})
        assert template(family).composition.reduced_composition == formula.reduced_composition, family


@pytest.mark.parametrize("name", ["TiNiSn", "Mg2SiO4", "Y3Al5O12", "CuInSe2", "NiFe2O4"])
def test_family_roles_recovers_the_known_roles(name):
    family = reference_entry(name)["family"]
    expected = dict(next(roles for n, roles in KNOWN_MEMBERS[family] if n == name))
    assert family_roles(reference_cell(name), family) == expected
    assert family_roles(reference_cell("NaCl"), "half-heusler") is None
