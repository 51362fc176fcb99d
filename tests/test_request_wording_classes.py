"""Request-reading failure classes found on a blind request set, each checked with wordings of our own (not the
blind set's): negation words, count-prefixed class words, prefixed '-ate' words, mineral names, physics
abbreviations that look like symbols, battery working ions, site swaps, charges on symbols, site-letter templates,
and the proposer's shared-site, oxo-anion, rare-earth intermetallic and class-consistent substitute proposals."""

from __future__ import annotations

import pytest
from pymatgen.core import Composition

from tools.discovery.proposer import propose_formulas_offline
from tools.discovery.request import read_request


def _top(text: str, n: int = 3) -> list[str]:
    return [_reduced(p.formula) for p in propose_formulas_offline(read_request(text), n)]


def _reduced(formula: str) -> str:
    return Composition(formula).reduced_formula


@pytest.mark.parametrize(("text", "refused", "kept"), [
    ("a ternary sulfide with copper, anything but cadmium", "Cd", "Cu"),
    ("steer clear of nickel: a layered oxide cathode", "Ni", "Li"),
    ("a garnet oxide with yttrium and zero gallium", "Ga", "Y"),
])
def test_negation_words_refuse_the_element(text: str, refused: str, kept: str) -> None:
    req = read_request(text)
    assert refused in req.exclude and refused not in req.include
    assert kept in req.include
    assert all(refused not in Composition(f) for f in _top(text))


@pytest.mark.parametrize(("text", "cls", "formula"), [
    ("a rock-salt monosulfide of calcium", "sulfide", "CaS"),
    ("a rutile difluoride of magnesium", "fluoride", "MgF2"),
    ("a sesquioxide of chromium", "oxide", "Cr2O3"),
])
def test_count_prefixed_class_words(text: str, cls: str, formula: str) -> None:
    assert read_request(text).compound_class == cls
    assert _top(text)[0] == _reduced(formula)


def test_prefixed_ate_word_requires_its_element() -> None:
    req = read_request("strontium hexaferrite for a permanent magnet")
    assert {"Sr", "Fe"} <= set(req.include) and req.compound_class == "oxide"


@pytest.mark.parametrize(("text", "family"), [
    ("a cassiterite-type oxide without tin", "rutile"),
    ("periclase-structured oxide of nickel", "rock salt"),
    ("something with the gahnite structure, but with Mg", "spinel"),
])
def test_mineral_names_name_the_family(text: str, family: str) -> None:
    assert read_request(text).family == family


def test_high_tc_is_not_technetium() -> None:
    req = read_request("a high-Tc superconductor with Y, Ba and Cu")
    assert "Tc" not in req.include and {"Y", "Ba", "Cu"} <= set(req.include)


def test_working_ion_is_required_only_where_it_sits_in_the_material() -> None:
    anode = read_request("anode for Na-ion cells made of tin and antimony")
    assert "Na" not in anode.include and {"Sn", "Sb"} <= set(anode.include)
    cathode = read_request("cathode for Li-ion cells: an iron phosphate")
    assert {"Li", "Fe"} <= set(cathode.include)
    assert _top("cathode for Li-ion cells: an iron phosphate")[0] == _reduced("LiFePO4")
    conversion = read_request("a copper fluoride conversion cathode for Li batteries")
    assert "Li" not in conversion.include
    li_s = read_request("lithium sulfide for Li-S battery cathodes, antifluorite")
    assert not li_s.decline and _top("lithium sulfide for Li-S battery cathodes, antifluorite")[0] == _reduced("Li2S")


@pytest.mark.parametrize(("text", "old", "new", "derived"), [
    ("take TiNiSn and put Zr on the Ti site", "Ti", "Zr", "ZrNiSn"),
    ("MgAl2O4 with Cr3+ replacing the aluminium", "Al", "Cr", "MgCr2O4"),
])
def test_site_and_charge_worded_swaps(text: str, old: str, new: str, derived: str) -> None:
    req = read_request(text)
    assert old in req.exclude and new in req.include and not req.decline
    assert derived in req.derived_formulas and _top(text)[0] == _reduced(derived)


def test_site_letter_templates_keep_their_real_elements() -> None:
    heusler = read_request("Co2YZ Heusler with Y = Mn and Z = Ga")
    assert {"Co", "Mn", "Ga"} <= set(heusler.include)
    olivine = read_request("an olivine LiMPO4 with M = Fe")
    assert {"Li", "Fe"} <= set(olivine.include) and olivine.compound_class == "phosphate"
    halide = read_request("a lead-free CsPbX3 analogue")
    assert "Pb" in halide.exclude and "Pb" not in halide.include and not halide.decline
    assert "Ds" not in read_request("a wurtzite nitride for blue LEDs").include  # 'LEDs' is no template


def test_spinel_site_shared_by_two_cations() -> None:
    top = _top("a spinel oxide with Li, Ni and V", 3)  # Li, Ni and V share the sites in their common states
    assert _reduced("LiNiVO4") in top and top[0] != _reduced("LiNiV4O8")  # not the A-site split that needs Ni3+ and V3+


def test_oxo_anion_salts_and_rare_earth_magnets() -> None:
    assert _top("a tungstate of strontium", 1) == [_reduced("SrWO4")]
    assert _top("an intermetallic of Nd and Co for magnets", 2) == [_reduced("NdCo5"), _reduced("Nd2Co17")]


def test_substitute_for_a_structure_reference_keeps_the_asked_class() -> None:
    for formula in _top("CsCl-type iodide without caesium"):
        elements = {el.symbol for el in Composition(formula).elements}
        assert "I" in elements and "Cl" not in elements and "Cs" not in elements


def test_every_class_with_every_kind_of_family_proposes_without_error() -> None:
    """A boride or carbide asked in an ionic family has no anion charge to balance: no proposal, never a crash
    (a KeyError reached a user through a blind request)."""
    from tools.discovery.lexicon import COMPOUND_CLASSES

    families = ("perovskite", "spinel", "rock salt", "pyrite", "garnet", "half-Heusler", "AlB2-type")
    for cls in COMPOUND_CLASSES:
        for family in families:
            req = read_request(f"a {family} {cls} with Mg and Ti")
            if not req.decline:
                propose_formulas_offline(req, 3)  # raises on a bug
