"""The reader and proposer on the failure classes of the blind2 set, in our own wordings: formulas with decimal
amounts or typed in lower case without digits, structure references that are not answers, exact names that a
family's site model cannot hold, single-site families whose archetype ions the pruning dropped, intermetallic site
choice, uses worded with an element name, primary-cell cathodes and molecular anions."""

from __future__ import annotations

import pytest
from pymatgen.core import Composition

from tools.discovery.proposer import propose_formulas_offline
from tools.discovery.request import read_request


def _top(text: str, n: int = 3) -> list[str]:
    return [Composition(p.formula).reduced_formula for p in propose_formulas_offline(read_request(text), n)]


def test_decimal_formula_is_read_whole_and_proposed_as_whole_formula_units() -> None:
    """'Li1.2Mn0.6Ni0.2O2' was cut at its first dot ('Li1'); it is one formula, built as whole formula units."""
    req = read_request("is Li1.2Mn0.6Ni0.2O2 stable as a layered oxide?")
    assert req.constraints()["formulas"] == ["Li1.2Mn0.6Ni0.2O2"]
    top = propose_formulas_offline(req, 3)[0].formula
    assert Composition(top) == Composition("Li6Mn3NiO10")


@pytest.mark.parametrize(
    ("text", "formula"),
    [("pbte", "PbTe"), ("znse for blue leds", "ZnSe"), ("half heusler tiaus", None), ("inas nanowires", "InAs"),
     ("a heusler like conisb", "CoNiSb")],
)
def test_lower_case_formula_without_digits(text: str, formula: str | None) -> None:
    """A lower-case word that is no English word (the embedder's vocabulary) and splits into a charge-balanced or
    all-metal formula is that formula; 'tiaus' is not balanced and holds a non-metal, so it is not."""
    got = read_request(text).constraints()["formulas"]
    assert got == ([formula] if formula else [])


@pytest.mark.parametrize("text", ["a cute perovskite oxide", "an oxide that is stable in bases", "nice spinels",
                                  "a cone-shaped perovskite crystal"])
def test_english_words_are_not_lower_case_formulas(text: str) -> None:
    assert read_request(text).constraints()["formulas"] == []


def test_structure_reference_is_not_an_asked_formula() -> None:
    """'AuCu3-type' names the structure; the answer is a compound of the asked elements (the reading lists the
    reference apart from the formulas asked for)."""
    reading = read_request("an AuCu3-type ordered alloy of nickel and aluminium").constraints()
    assert reading["reference_formulas"] == ["AuCu3"]
    top = Composition(_top("an AuCu3-type ordered alloy of nickel and aluminium", 1)[0])
    assert top in (Composition("Ni3Al"), Composition("Al3Ni"))


def test_two_metals_in_a_salt_type_family_make_an_alloy() -> None:
    """A CsCl-type 'phase' of two metals is the B2 alloy (NiTi), not a ternary sulfide of both metals."""
    assert Composition(_top("the B2 (CsCl-type) phase of nickel and titanium", 1)[0]) == Composition("NiTi")


def test_exact_code_name_outside_the_family_site_model_is_still_proposed() -> None:
    """NCA/NMC codes name one compound; the layered-oxide model has one transition-metal site, so the code's
    three-metal formula used to be dropped and Li was lost."""
    top = _top("NMC622 for a layered cathode", 1)[0]
    assert Composition(top) == Composition("Li10Ni6Mn2Co2O20").reduced_composition


def test_single_site_family_keeps_archetype_ions_the_charge_balance_needs() -> None:
    """A fluorite oxide needs a 4+ cation; the 2+ archetype (Ca) filled the pruned list, so with Zr and Ce refused
    nothing was left. Ce4+ ranks by being an archetype, not by its low self-substitution odds."""
    assert "HfO2" in _top("an oxide in the fluorite structure that avoids Zr and Ce", 4)
    assert "CeO2" in _top("fluorite-type dioxide", 4)


def test_intermetallic_type_sites_follow_pettifor_order_and_radius_ratio() -> None:
    """A15 with vanadium puts V on the chain site (V3Ga-like), not on the Si site; a Zr Laves phase puts Zr on the
    large A site (ZrCo2-like), not MgZr2."""
    for formula in _top("an A15 superconductor containing V but no Si", 3):
        assert Composition(formula)["V"] == 3, formula
    for formula in _top("a Zr-based C15 Laves phase", 3):
        assert Composition(formula)["Zr"] == 1, formula


def test_a_use_worded_with_an_element_name_does_not_require_it() -> None:
    """'hydrogen storage', 'oxygen evolution', 'nitrogen fixation': a use, not an ingredient."""
    reading = read_request("a Laves-phase alloy with Ti for hydrogen storage").constraints()
    assert "H" not in reading["include"] and reading["decline"] is None
    assert "N" not in read_request("a perovskite catalyst for nitrogen fixation").constraints()["include"]


def test_binary_or_primary_cell_cathode_needs_no_working_ion() -> None:
    """A binary (conversion) cathode such as CoS2 or a primary-cell cathode holds no Li."""
    assert "Li" not in read_request("a binary sulfide cathode for primary batteries").include
    assert "Li" not in read_request("a two-element fluoride cathode").include
    assert "Li" in read_request("an olivine cathode").include


def test_molecular_anion_salts_are_proposed() -> None:
    """'borohydride', 'amide': whole molecular units balance the cation (KBH4, Ca(BH4)2, LiNH2)."""
    assert _top("potassium borohydride", 1) == ["KBH4"]
    assert _top("a borohydride of an alkaline-earth metal", 2)[0] in ("Mg(BH4)2", "Ca(BH4)2")
    assert Composition(_top("lithium amide", 1)[0]) == Composition("LiNH2")


def test_acronym_is_not_a_site_template() -> None:
    """'CZTS' and 'CZTSe' are compounds, not C and S with sites Z and T."""
    reading = read_request("a kesterite like CZTSe but with Ge").constraints()
    assert "C" not in reading["include"]


def test_mineral_structure_type_and_its_nearest_anion() -> None:
    """'tetradymite-type' is the Bi2Te3 (C33) type; without Te the same group's Se comes before S and O."""
    assert _top("a tetradymite-type compound, tellurium-free", 1) == ["Bi2Se3"]


@pytest.mark.parametrize("text", ["a nitride of element 140", "some unbiquadium fluoride, please"])
def test_element_beyond_the_periodic_table_is_declined(text: str) -> None:
    assert "no known element" in (read_request(text).decline or "")


def test_chemistry_words_are_not_lower_case_formulas() -> None:
    """'cations' splits into Ca-Ti-O-N-S; a typed formula without digits has at most three elements."""
    assert read_request("a spinel whose only cations are Mg and Al").constraints()["formulas"] == []


@pytest.mark.parametrize(("name", "formula"), [("cobalt triantimonide", "CoSb3"), ("nickel diarsenide", "NiAs2"),
                                               ("boron trioxide", "B2O3"), ("niobium pentoxide", "Nb2O5")])
def test_count_prefix_names_keep_their_ratio(name: str, formula: str) -> None:
    """'tri-' means three anions per cation: CoSb3 (Sb-Sb bonded rings), not Co3Sb3 reduced to CoSb; only an odd
    count that no single cation state balances takes two cations (B2O3, Nb2O5)."""
    assert Composition(_top(name, 1)[0]) == Composition(formula)


def test_english_word_with_an_ending_is_not_a_formula() -> None:
    """'binder' reads Bi-Nd-Er; it is 'bind' with an English ending."""
    assert read_request("a carbide tool material, binder-free").constraints()["formulas"] == []


def test_use_steers_family_and_anion_when_nothing_else_is_named() -> None:
    """With no element, class or family named, the use decides: a thermoelectric is a telluride of its usual
    families, a ferroelectric a perovskite, a magnet holds ordered moments (no gallium garnet)."""
    top = _top("a good thermoelectric", 3)
    assert all("Te" in Composition(f) or "Se" in Composition(f) or "Sb" in Composition(f) for f in top), top
    assert _top("a lead-free ferroelectric", 1)[0].endswith("O3")
    magnetic = {"Fe", "Co", "Mn", "Ni", "Cr", "Nd", "Sm", "Gd", "Dy", "Tb"}
    for formula in _top("a ferrimagnet for microwave devices", 3):
        assert {el.symbol for el in Composition(formula)} & magnetic, formula


def test_nasicon_named_by_its_long_name() -> None:
    assert read_request("a sodium super ionic conductor framework").family == "nasicon"


@pytest.mark.parametrize("text", ["an aluminium garnet; yttrium must not be present", "a garnet, Y shouldn't be used",
                                  "a garnet with Al where Y is not included"])
def test_modal_refusal_after_the_element(text: str) -> None:
    """'X must not be present', 'X shouldn't be used': a refusal, not a requirement (a Ga garnet came out of
    'gallium must not be present')."""
    req = read_request(text)
    assert "Y" in req.exclude and "Y" not in req.include
    assert all("Y" not in Composition(f) for f in _top(text, 3))


def test_modal_requirement_stays_a_requirement() -> None:
    assert "Fe" in read_request("Fe must be present in the spinel").include
