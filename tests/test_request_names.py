"""The reader on names a chemist types instead of formulas: AFLOW structure types by mineral, Strukturbericht code
or '<formula>-type', compounds named in words ('vanadium pentoxide') or by acronym, and the small words around them
that are not elements (units, site letters, oxidation-state labels, acronyms after a symbol). Wordings are our own,
one per failure class seen on blind request sets."""

from __future__ import annotations

import pytest
from pymatgen.core import Composition

from models.crystals.prototypes import decorate, generic_roles, structure_types
from tools.discovery.nomenclature import named_compounds
from tools.discovery.proposer import propose_formulas_offline
from tools.discovery.request import family_of_formula, read_request


def _reduced(formula: str) -> str:
    return Composition(formula).reduced_formula


def _top(text: str, n: int = 3) -> list[str]:
    return [_reduced(p.formula) for p in propose_formulas_offline(read_request(text), n)]


def test_every_aflow_structure_type_has_roles_and_rebuilds_its_prototype() -> None:
    """Each named structure type decorated with its own elements is its AFLOW prototype again (same composition and
    site count), so the role bookkeeping (anion X, cations by electronegativity) is consistent for all of them."""
    types = structure_types()
    assert len(types) > 150
    for name, (_, proto) in types.items():
        roles = generic_roles(name)
        assert roles is not None, name
        _, _, own = roles
        rebuilt = decorate(name, own, volume_per_atom=proto.volume / len(proto))
        assert rebuilt.composition.reduced_formula == proto.composition.reduced_formula, name
        assert len(rebuilt) == len(proto), name


@pytest.mark.parametrize(
    ("text", "family", "formula"),
    [
        ("an A15 superconductor of niobium and tin", "cr3si-type", "Nb3Sn"),
        ("L1_2 ordered Ni and Al for superalloys", "cu3au-type", "Ni3Al"),
        ("the C14 laves phase of Mg + Zn", "hexagonal laves", "MgZn2"),
        ("a B20 silicide of manganese", "fesi-type", "MnSi"),
    ],
)
def test_strukturbericht_codes_name_their_type(text: str, family: str, formula: str) -> None:
    req = read_request(text)
    assert req.family == family
    assert _reduced(formula) in _top(text)


def test_lowercase_type_names_and_formula_types() -> None:
    assert read_request("a nias-type manganese antimonide").family == "nias-type"
    assert family_of_formula("Cu3Au") == "cu3au-type"
    assert family_of_formula("FeS2") == "pyrite"  # the curated name before marcasite


def test_two_letter_code_needs_structure_context() -> None:
    assert read_request("a B2 phase of iron and aluminium").family == "cscl"
    assert read_request("vitamin B2 free oxide of zinc").family is None


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("chromium trioxide", "CrO3"),
        ("phosphorus pentoxide", "P2O5"),
        ("molybdenum diselenide", "MoSe2"),
        ("titanium diboride", "TiB2"),
        ("aluminium sesquioxide", "Al2O3"),
        ("gallium arsenide", "GaAs"),
        ("lead selenide", "PbSe"),
        ("lanthanum oxysulfide", "La2O2S"),
        ("lanthanum oxychloride", "LaOCl"),
        ("strontium sulfate", "SrSO4"),
        ("sodium cobalt phosphate", "NaCoPO4"),
        ("potassium vanadyl phosphate", "KVOPO4"),
    ],
)
def test_compound_names_give_formulas(name: str, formula: str) -> None:
    found = named_compounds(f"I need {name} for a study")
    assert found and _reduced(found[0].formulas[0]) == _reduced(formula)


def test_acronyms_name_compounds_and_lead_the_proposals() -> None:
    assert _top("YIG films for magnonics")[0] == _reduced("Y3Fe5O12")
    assert _top("LBO, not BBO, for frequency tripling")[0] == _reduced("LiB3O5")


def test_a_named_compound_before_type_is_a_structure_not_the_answer() -> None:
    req = read_request("sodium chloride type sulfide of calcium")
    assert req.family == "rock salt"
    assert _reduced("NaCl") not in [_reduced(f) for f in req.named_compounds]


def test_a_named_guess_that_the_family_rules_out_is_dropped() -> None:
    assert _top("a manganese silicate with the olivine structure")[0] == _reduced("Mn2SiO4")


def test_units_site_letters_state_labels_and_acronyms_are_not_elements() -> None:
    req = read_request("a cuprate with Tc above 77 K, Hg on A and Ba on B")
    assert "K" not in req.include and "B" not in req.include
    assert set(read_request("Ag(I) + Ga oxide delafossite").include) >= {"Ag", "Ga"}
    assert "Fe" not in read_request("lead-free ferroelectric oxide of bismuth for FeRAM").include


def test_keep_out_and_refused_formula_negations() -> None:
    req = read_request("antimony telluride, keep Bi out of it")
    assert "Bi" in req.exclude and "Sb" in req.include
    req = read_request("a zirconium nitride, not ZrO2 and no oxygen")
    assert "Zr" not in req.exclude and "O" in req.exclude


def test_a_named_compound_needs_no_working_ion() -> None:
    assert "Li" not in read_request("manganese dioxide for a primary battery cathode").include


@pytest.mark.parametrize(
    ("text", "family", "formula"),
    [
        ("a delafossite of silver and chromium", "delafossite", "AgCrO2"),
        ("brownmillerite strontium cobaltite", "brownmillerite", "Sr2Co2O5"),
        ("an argyrodite electrolyte with bromine", "argyrodite", "Li6PS5Br"),
        ("wolframite-type cadmium tungstate scintillator", "wolframite", "CdWO4"),
    ],
)
def test_types_without_a_prototype_are_proposed_by_their_members(text: str, family: str, formula: str) -> None:
    req = read_request(text)
    assert req.family == family
    assert _top(text)[0] == _reduced(formula)


def test_member_families_fill_roles_from_their_first_member() -> None:
    """A delafossite named with elements no member has is still proposed, by substitution into the ABO2 roles."""
    top = _top("a delafossite with gold, no copper or silver", 5)
    assert top and all("Au" in f and "Cu" not in f and "Ag" not in f for f in top)


@pytest.mark.parametrize(
    ("text", "formula"),
    [
        ("cassiterite", "SnO2"),
        ("an almandine garnet", "Fe3Al2Si3O12"),
        ("the mineral chalcopyrite", "CuFeS2"),
        ("fool's gold for a cathode test", "FeS2"),
        ("copper(I) oxide photocathode", "Cu2O"),
        ("Pb(II) sulfide quantum dots", "PbS"),
        ("NCM622 cathode", "Li5Ni3MnCoO10"),
    ],
)
def test_minerals_states_and_cathode_codes_name_compounds(text: str, formula: str) -> None:
    assert _top(text)[0] == _reduced(formula)


def test_a_family_word_is_a_mineral_only_alone_or_as_the_mineral() -> None:
    assert _reduced("CaTiO3") not in _top("a stable perovskite oxide", 1)
    assert _top("ilmenite")[0] == _reduced("FeTiO3")


def test_misspelled_element_names_and_elements_on_sites() -> None:
    assert "Ni" in read_request("a spinel ferrite with nickle").include
    assert "Co" in read_request("cobolt-rich layered oxide").include
    assert "copper" not in read_request("a silver sulfide").include
    assert set(read_request("a perovskite, Bi on the A site and Mn on the B site").include) == {"Bi", "Mn"}


@pytest.mark.parametrize(
    ("text", "formula"),
    [
        ("a lithium scandium chloride electrolyte", "Li3ScCl6"),
        ("a sodium gallium chloride", "NaGaCl4"),
        ("a potassium iron fluoride", "K3FeF6"),
        ("a lithium lutetium fluoride laser host", "LiLuF4"),
    ],
)
def test_ternary_halides_of_an_alkali_are_halometallates(text: str, formula: str) -> None:
    assert _top(text)[0] == _reduced(formula)


@pytest.mark.parametrize(
    "text",
    [
        "a chloride with potassium in the +2 oxidation state",
        "an oxide with no element besides oxygen",
        "a nitride without any metal and without any nonmetal",
    ],
)
def test_requests_chemistry_rules_out_are_declined(text: str) -> None:
    assert read_request(text).decline


def test_metal_words_refuse_only_when_negated() -> None:
    assert not read_request("a metal oxide of cobalt").exclude
    assert read_request("a transition metal nitride").include_any
    assert "Zn" not in read_request("a heavy-metal-free sulfide of zinc").exclude
    assert not read_request("Fe3+ phosphate, a Cu(III) oxide").decline
