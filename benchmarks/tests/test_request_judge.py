"""Fast checks of the independent request suite and its judge (benchmarks/request_judge.py)."""

from __future__ import annotations

import hashlib

import pytest
from pymatgen.core import Element

from benchmarks.request_judge import (
    CLASS_ANIONS,
    CLASSES,
    FAMILIES,
    FAMILY_SITES,
    FIELDS,
    RARE_EARTHS,
    composition_valid,
    fits_family,
    load_suite,
    score_answers,
    score_reading,
    summarise,
)


def _case(**kw) -> dict:
    base = {
        "id": "t",
        "include": [],
        "exclude": [],
        "family": None,
        "compound_class": None,
        "formulas": [],
        "n_elements": None,
        "application": None,
        "decline": False,
        "why": "",
    }
    base.update(kw)
    return base


# one right and one wrong formula per compound class
CLASS_EXAMPLES = {
    "oxide": ("SrTiO3", "SrTiO2N"),
    "fluoride": ("KMgF3", "KMgCl3"),
    "chloride": ("NaCl", "NaBr"),
    "bromide": ("CsPbBr3", "CsPbI3"),
    "iodide": ("CsPbI3", "CsPbCl3"),
    "halide": ("Cs2AgBiBr6", "Cs2O"),
    "sulfide": ("ZnS", "ZnSe"),
    "selenide": ("CdSe", "CdTe"),
    "telluride": ("PbTe", "PbS"),
    "chalcogenide": ("MoS2", "MoO3"),
    "nitride": ("GaN", "GaP"),
    "phosphide": ("InP", "InN"),
    "arsenide": ("GaAs", "GaP"),
    "pnictide": ("GaSb", "ZnO"),
    "phosphate": ("LiFePO4", "Li3P"),
    "silicate": ("Mg2SiO4", "Mg2Si"),
    "oxynitride": ("TaON", "Ta2O5"),
    "oxyfluoride": ("NbO2F", "NbO2"),
    "intermetallic": ("NiAl", "NiO"),
}


def test_every_class_has_a_rule_and_examples():
    assert set(CLASS_ANIONS) == set(CLASSES) == set(CLASS_EXAMPLES)
    assert set(FAMILY_SITES) == set(FAMILIES)


@pytest.mark.parametrize("cls", sorted(CLASS_EXAMPLES))
def test_class_rule(cls):
    good, bad = CLASS_EXAMPLES[cls]
    ok, reasons = composition_valid(good, _case(compound_class=cls))
    assert ok, reasons
    ok, reasons = composition_valid(bad, _case(compound_class=cls))
    assert not ok
    assert reasons


def test_required_and_excluded_elements():
    case = _case(include=["La", "Mn"], exclude=["Pb"], compound_class="oxide")
    assert composition_valid("LaMnO3", case)[0]
    ok, reasons = composition_valid("LaFeO3", case)
    assert not ok and any("Mn" in r for r in reasons)
    ok, reasons = composition_valid("PbLaMnO4", _case(exclude=["Pb"]))
    assert not ok and any("excluded" in r for r in reasons)
    rare_free = _case(exclude=sorted(RARE_EARTHS))
    assert not composition_valid("YAlO3", rare_free)[0]
    assert composition_valid("CaTiO3", rare_free)[0]


def test_charge_balance():
    assert composition_valid("BaTiO3", _case())[0]
    ok, reasons = composition_valid("NaF2", _case())
    assert not ok and any("charge" in r for r in reasons)
    assert not composition_valid("LiNaO3", _case(family="perovskite"))[0]
    assert not composition_valid("not a formula", _case())[0]


def test_intermetallic_exemption():
    # NiAl and Co2MnSi have no charge-balanced ionic states but are right for an intermetallic / Heusler request
    assert not composition_valid("NiAl", _case())[0]
    assert composition_valid("NiAl", _case(compound_class="intermetallic"))[0]
    assert composition_valid("Co2MnSi", _case(family="heusler"))[0]
    assert composition_valid("TiNiSn", _case(family="half-heusler"))[0]
    ok, reasons = composition_valid("Co2MnO", _case(family="heusler"))
    assert not ok and any("intermetallic" in r for r in reasons)


def test_family_ratios_and_counts():
    assert fits_family("Y3Al5O12", "garnet")  # B and C sites both Al
    assert fits_family("Fe3O4", "inverse spinel")
    assert fits_family("LiFePO4", "olivine") and fits_family("Mg2SiO4", "olivine")
    assert fits_family("Fe3Si", "heusler")
    assert not fits_family("LaMnO3", "double perovskite")  # B = B' is a simple perovskite
    assert fits_family("La2NiMnO6", "double perovskite")
    assert not fits_family("Fe2O3", "perovskite")
    assert not fits_family("NaCl", "fluorite")
    assert fits_family("LiCoO2", "layered oxide") and fits_family("CuInSe2", "chalcopyrite")
    assert fits_family("NaFe0.5Mn0.5O2", "layered oxide") and fits_family("MnZnFe4O8", "spinel")  # mixed sites
    assert not fits_family("Li2MnO3", "layered oxide")
    assert not composition_valid("SrTiO3", _case(n_elements=2))[0]
    case = _case(acceptable_formulas=["LiF", "LiCl"])
    assert composition_valid("Li2Cl2", case)[0]
    assert not composition_valid("LiBr", case)[0]


def test_decline_case_takes_no_formula():
    assert not composition_valid("NaCl", _case(decline=True))[0]
    assert score_answers(None, _case(decline=True), declined=True) == {"top1": True, "top5": True}
    assert score_answers(["NaCl"], _case(decline=True)) == {"top1": False, "top5": False}
    case = _case(include=["Ga"], compound_class="nitride")
    assert score_answers(["GaP", "GaN"], case) == {"top1": False, "top5": True}
    assert score_answers(["GaN"], case, declined=True)["top1"] is False


def test_score_reading_fields():
    case = _case(
        include=["La", "Mn"],
        exclude=["Pb"],
        family="double perovskite",
        formulas=["Sr2FeMoO6"],
        n_elements=4,
        application="battery cathode",
        also_ok={"compound_class": ["oxide"]},
    )
    right = {
        "include": ["Mn", "La"],
        "exclude": ["pb"],
        "family": "Double-Perovskite",
        "compound_class": "oxide",
        "formulas": ["Sr2MoFeO6"],
        "n_elements": 4,
        "application": "cathode for Li batteries",
        "decline": None,
    }
    assert all(score_reading(right, case).values())
    wrong = {
        "include": ["La"],
        "exclude": [],
        "family": "perovskite",
        "compound_class": "fluoride",
        "formulas": [],
        "n_elements": 3,
        "application": None,
        "decline": "no such compound",
    }
    assert not any(score_reading(wrong, case).values())
    assert score_reading({}, _case())["compound_class"]  # missing key reads as null
    assert score_reading({"decline": "  "}, _case())["decline"]
    assert score_reading({"decline": "He is inert"}, _case(decline=True))["decline"]


def test_summarise():
    rows = [{"id": "a", "include": True, "family": False}, {"scores": {"include": False, "family": False}}]
    out = summarise(rows)
    assert out["n"] == 2 and out["include"] == 0.5 and out["family"] == 0.0 and out["all_fields"] == 0.0
    assert summarise([]) == {"n": 0}


# ---------------------------------------------------------------------------------------------------- the suite


@pytest.fixture(scope="module")
def suite() -> list[dict]:
    return load_suite()


def test_suite_shape(suite):
    assert len(suite) >= 130
    ids = [c["id"] for c in suite]
    assert len(ids) == len(set(ids))
    dev, heldout = load_suite("dev"), load_suite("heldout")
    assert dev and heldout and len(dev) + len(heldout) == len(suite)
    for c in suite:
        first = int(hashlib.sha256(c["id"].encode()).hexdigest()[0], 16)
        assert c["split"] == ("dev" if first % 2 == 0 else "heldout"), c["id"]
    labels = {c["family"] for c in suite if c["family"]} | {c["compound_class"] for c in suite if c["compound_class"]}
    assert len(labels) >= 25
    assert sum(c["decline"] for c in suite) >= 12
    for family in FAMILIES:
        assert sum(c["family"] == family for c in suite) >= 3, family
        assert any(c["family"] == family for c in dev) and any(c["family"] == family for c in heldout), family


def test_suite_fields_valid(suite):
    for c in suite:
        for field in FIELDS:
            assert field in c, (c["id"], field)
        assert c["family"] is None or c["family"] in FAMILIES, c["id"]
        assert c["compound_class"] is None or c["compound_class"] in CLASSES, c["id"]
        for sym in c["include"] + c["exclude"]:
            assert Element.is_valid_symbol(sym), (c["id"], sym)
        assert c["include"] == sorted(c["include"]) and c["exclude"] == sorted(c["exclude"]), c["id"]
        assert not set(c["include"]) & set(c["exclude"]), c["id"]
        assert set(c.get("also_ok", {})) <= set(FIELDS), c["id"]
        for value in c.get("also_ok", {}).get("family", []):
            assert value is None or value in FAMILIES, c["id"]
        for value in c.get("also_ok", {}).get("compound_class", []):
            assert value is None or value in CLASSES, c["id"]
        # the case's own reading scores full marks
        assert all(score_reading(c, c).values()), c["id"]


def test_suite_acceptable_formulas_are_valid(suite):
    for c in suite:
        if c["decline"]:
            assert not c.get("acceptable_formulas"), c["id"]
            continue
        for formula in c.get("acceptable_formulas") or []:
            ok, reasons = composition_valid(formula, c)
            assert ok, (c["id"], formula, reasons)


# a textbook right answer for each non-declined case without acceptable_formulas: the judge must not make any
# case unanswerable
WITNESSES = {
    "q003": "BaTiO3", "q004": "SrFeO3", "q005": "CsSnI3", "q007": "LaCoO3", "q011": "GdFeO3", "q016": "La2NiMnO6",
    "q017": "Sr2CrMoO6", "q018": "Cs2AgBiBr6", "q021": "Cs2NaInCl6", "q022": "Sr2FeMoO6", "q023": "ZnAl2O4",
    "q029": "NiAl2O4", "q033": "CoFe2O4", "q036": "KCl", "q038": "TiN", "q040": "SnSe", "q044": "CsBr",
    "q048": "ZnSe", "q050": "InAs", "q052": "ZnO", "q057": "CeO2", "q058": "Na2O", "q064": "ZnF2", "q065": "IrO2",
    "q076": "Cd2Nb2O7", "q077": "Y2Ir2O7", "q078": "Bi2Ru2O7", "q080": "Li7La3Zr2O12", "q084": "LiMnPO4",
    "q085": "LiMnPO4", "q089": "LiFePO4", "q090": "LiNiO2", "q093": "LiCoO2", "q096": "Fe2VAl", "q098": "Fe3Si",
    "q102": "HfNiSn", "q107": "CuInTe2", "q108": "GaN", "q111": "TaON", "q112": "NbO2F", "q114": "NaFePO4",
    "q115": "BaFe2As2", "q116": "Bi2Se3", "q117": "Sb2Te3", "q118": "CsI", "q121": "MnAl", "q123": "CaZn2Sb2",
    "q124": "CaAl2O4", "q125": "LaSrMn2O6", "q126": "SrCoO3", "q127": "La2Zr2O7", "q128": "BaSnO3", "q129": "NiO",
    "q130": "LiFePO4", "q131": "Cu2ZnSnS4", "q132": "BaBiO3", "q133": "InAs", "q135": "SnO2", "q136": "NiTiO3",
    "q138": "ZnSb", "q139": "SrAl2O4", "q140": "Cs2AgBiCl6", "q141": "Co2TiSn", "q142": "Na2FeMnO4",
    "q143": "LiTi2O4", "q144": "ZnO", "q145": "Li7La3Zr2O12", "q146": "Na3V2(PO4)3", "q148": "Gd3Al2Ga3O12",
    "q150": "MnZnFe4O8", "q152": "LiMnPO4", "q153": "GaN", "q154": "SnTe", "q178": "MoS2", "q180": "Yb14MnSb11",
    "q181": "VO2F", "q182": "BiSbTe3",
}  # fmt: skip


def test_suite_cases_are_answerable(suite):
    by_id = {c["id"]: c for c in suite}
    need = {c["id"] for c in suite if not c["decline"] and not c.get("acceptable_formulas")}
    assert need <= set(WITNESSES)
    for case_id, formula in WITNESSES.items():
        ok, reasons = composition_valid(formula, by_id[case_id])
        assert ok, (case_id, formula, reasons)
