"""Judge for the independent request suite (benchmarks/data/search_requests.json).

Written without reference to the code under test (nothing here imports tools/). Two questions per case:

* was the request read right?  ``score_reading(parsed, case)`` compares a reader's plain-dict reading (include,
  exclude, family, compound_class, formulas, n_elements, application, decline) with the case, field by field;
* is an answer right?  ``composition_valid(formula, case)`` checks a proposed formula against the case's chemistry:
  required / excluded elements, charge balance, the compound class, the element count, the family's site ratios
  (unless the case sets ``family_ratio_check: false``) and, when the case pins it down, the list of acceptable
  reduced formulas. ``score_answers`` applies it to a
  ranked list (top-1 / top-k), and counts a declined request as right only when the case says decline.

``summarise(rows)`` turns per-case field scores into per-field accuracy.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from pymatgen.core import Composition

SUITE_PATH = Path(__file__).resolve().parent / "data" / "search_requests.json"
# a third split, written later and blind to the code under test: read only when asked for by name
FRESH_PATH = SUITE_PATH.with_name("search_requests_fresh.json")
# a fourth split, written blind for reporting only: read only when asked for by name
REPORT_PATH = SUITE_PATH.with_name("search_requests_report.json")
# a fifth split, written blind to the code under test and kept unscored until the end: read only when asked for by name
BLIND_PATH = SUITE_PATH.with_name("search_requests_blind.json")
# a sixth split, written later and likewise blind and kept unscored until the end: read only when asked for by name
BLIND2_PATH = SUITE_PATH.with_name("search_requests_blind2.json")
# a seventh split, written later still, likewise blind and kept unscored until the end: read only when asked for by name
BLIND3_PATH = SUITE_PATH.with_name("search_requests_blind3.json")
# an eighth split, written by a session that read no product code, for the report after blind3 was developed on
BLIND4_PATH = SUITE_PATH.with_name("search_requests_blind4.json")

FIELDS = ("include", "exclude", "family", "compound_class", "formulas", "n_elements", "application", "decline")

FAMILIES = (
    "perovskite", "orthorhombic perovskite", "double perovskite", "spinel", "inverse spinel", "rock salt", "cscl",
    "zincblende", "wurtzite", "fluorite", "antifluorite", "rutile", "corundum", "ilmenite", "pyrochlore", "garnet",
    "olivine", "layered oxide", "heusler", "half-heusler", "chalcopyrite",
)  # fmt: skip
CLASSES = (
    "oxide", "fluoride", "chloride", "bromide", "iodide", "halide", "sulfide", "selenide", "telluride",
    "chalcogenide", "nitride", "phosphide", "arsenide", "pnictide", "phosphate", "silicate", "oxynitride",
    "oxyfluoride", "intermetallic",
)  # fmt: skip

# "excluding rare earths": the lanthanides La..Lu plus Sc and Y
RARE_EARTHS = frozenset(
    {"Sc", "Y", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu"}
)
# elements an intermetallic (and a Heusler / half-Heusler) must not contain
INTERMETALLIC_FORBIDDEN = frozenset({"O", "N", "F", "Cl", "Br", "I", "S", "Se", "Te"})
# families whose members are intermetallic: no charge-balance check
CHARGE_EXEMPT_FAMILIES = frozenset({"heusler", "half-heusler"})
# when no charge-balanced oxidation states exist, these are taken as the anions (reasons only; the formula fails)
FALLBACK_ANIONS = frozenset({"H", "C", "N", "P", "As", "Sb", "O", "S", "Se", "Te", "F", "Cl", "Br", "I"})


# ---------------------------------------------------------------------------------------------------- suite


def load_suite(split: str | None = None) -> list[dict]:
    """The suite's cases, in id order; only the given split ("dev" / "heldout") when one is named. "fresh" reads
    the separate third suite (FRESH_PATH), "report" the separate fourth (REPORT_PATH), "blind" the separate fifth
    (BLIND_PATH), "blind2" the sixth (BLIND2_PATH), "blind3" the seventh (BLIND3_PATH), "blind4" the eighth
    (BLIND4_PATH); None is dev and heldout together, never the separate suites."""
    separate = {
        "fresh": FRESH_PATH,
        "report": REPORT_PATH,
        "blind": BLIND_PATH,
        "blind2": BLIND2_PATH,
        "blind3": BLIND3_PATH,
        "blind4": BLIND4_PATH,
    }
    if split in separate:
        cases = json.loads(separate[split].read_text())
        return sorted((c for c in cases if c["split"] == split), key=lambda c: c["id"])
    cases = json.loads(SUITE_PATH.read_text())
    if split is not None:
        if split not in ("dev", "heldout"):
            raise ValueError(
                f"split must be 'dev', 'heldout', 'fresh', 'report' or 'blind' .. 'blind4', or None, not {split!r}"
            )
        cases = [c for c in cases if c["split"] == split]
    return sorted(cases, key=lambda c: c["id"])


# ---------------------------------------------------------------------------------------------------- chemistry


@lru_cache(maxsize=4096)
def _composition(formula: str) -> Composition | None:
    try:
        comp = Composition(formula)
    except Exception:  # pymatgen raises several types for bad formulas
        return None
    if not comp.elements or comp.num_atoms <= 0:
        return None
    return comp


def reduced_formula(formula: str) -> str | None:
    """pymatgen's reduced formula of the smallest whole-number multiple (NaFe0.5Mn0.5O2 -> Na2MnFeO4), or None when
    the text is not a formula."""
    comp = _composition(formula.strip())
    if comp is None:
        return None
    for multiple in range(1, 25):
        amounts = [multiple * v for v in comp.get_el_amt_dict().values()]
        if all(abs(a - round(a)) < 1e-3 for a in amounts):
            return (comp * multiple).reduced_formula
    return comp.reduced_formula


# oxidation states pymatgen's ICSD-based defaults lack but textbook compounds need (Fe4+ in SrFeO3, CaFeO3)
EXTRA_OXIDATION_STATES: dict[str, tuple[int, ...]] = {"Fe": (2, 3, 4)}
# mixed valence needs two or three atoms of the element (BaBiO3 = Ba2Bi(III)Bi(V)O6): multiples of the reduced
# formula are tried up to this many atoms
_MAX_ATOMS_FOR_MULTIPLES = 40


@lru_cache(maxsize=4096)
def _oxidation_guesses(formula: str) -> tuple[dict[str, float], ...]:
    comp = _composition(formula)
    if comp is None:
        return ()
    comp = comp.reduced_composition
    present = {el.symbol for el in comp.elements}
    override = {el: list(states) for el, states in EXTRA_OXIDATION_STATES.items() if el in present}
    for factor in (1, 2, 3):
        if factor > 1 and comp.num_atoms * factor > _MAX_ATOMS_FOR_MULTIPLES:
            break
        try:
            guesses = (comp * factor).oxi_state_guesses(oxi_states_override=override or None)
        except Exception:  # exotic elements without oxidation-state data
            guesses = []
        if guesses:
            return tuple(guesses)
    return ()


def charge_balanced(formula: str) -> bool:
    """True when pymatgen finds a charge-balanced set of oxidation states (ICSD-common states, plus
    EXTRA_OXIDATION_STATES), for the reduced formula or a small multiple of it (mixed valence)."""
    return bool(_oxidation_guesses(formula))


def anion_sets(formula: str) -> list[frozenset[str]]:
    """The anions (negative oxidation state) of each charge-balanced guess; the fallback set when there is none."""
    guesses = _oxidation_guesses(formula)
    sets = []
    for guess in guesses:
        anions = frozenset(el for el, ox in guess.items() if ox < 0)
        if anions not in sets:
            sets.append(anions)
    if not sets:
        comp = _composition(formula)
        present = {el.symbol for el in comp.elements} if comp is not None else set()
        sets.append(frozenset(present & FALLBACK_ANIONS))
    return sets


@dataclass(frozen=True)
class AnionRule:
    """What a compound class asks of the anions (for one set of oxidation states).

    only: the anions are a non-empty subset of these; any: at least one of these is an anion; all: every one of these
    is an anion; cation_with_o: (element, minimum O per element): the element is present, not an anion, and O is
    an anion with at least that many O per element; none_present: none of these elements is present at all (used for
    intermetallics, where oxidation states mean nothing).
    """

    description: str
    only: frozenset[str] = frozenset()
    any: frozenset[str] = frozenset()
    all: frozenset[str] = frozenset()
    cation_with_o: tuple[str, int] | None = None
    none_present: frozenset[str] = frozenset()

    def satisfied(self, formula: str) -> bool:
        comp = _composition(formula)
        if comp is None:
            return False
        present = {el.symbol for el in comp.elements}
        if self.none_present:
            return not (present & self.none_present)
        return any(self._satisfied_by(anions, comp) for anions in anion_sets(formula))

    def _satisfied_by(self, anions: frozenset[str], comp: Composition) -> bool:
        if self.only and not (anions and anions <= self.only):
            return False
        if self.any and not (anions & self.any):
            return False
        if self.all and not (self.all <= anions):
            return False
        if self.cation_with_o is not None:
            element, per = self.cation_with_o
            if comp[element] <= 0 or element in anions or "O" not in anions:
                return False
            if comp["O"] < per * comp[element] - 1e-9:
                return False
        return True


def _rule(description: str, **kw: Iterable[str] | tuple[str, int]) -> AnionRule:
    sets = {k: frozenset(v) for k, v in kw.items() if k != "cation_with_o"}
    return AnionRule(description, cation_with_o=kw.get("cation_with_o"), **sets)  # type: ignore[arg-type]


CLASS_ANIONS: dict[str, AnionRule] = {
    "oxide": _rule("O is the only anion", only={"O"}),
    "fluoride": _rule("F is the only anion", only={"F"}),
    "chloride": _rule("Cl is the only anion", only={"Cl"}),
    "bromide": _rule("Br is the only anion", only={"Br"}),
    "iodide": _rule("I is the only anion", only={"I"}),
    "halide": _rule("at least one of F, Cl, Br, I is an anion", any={"F", "Cl", "Br", "I"}),
    "sulfide": _rule("S is the only anion", only={"S"}),
    "selenide": _rule("Se is the only anion", only={"Se"}),
    "telluride": _rule("Te is the only anion", only={"Te"}),
    "chalcogenide": _rule("at least one of S, Se, Te is an anion", any={"S", "Se", "Te"}),
    "nitride": _rule("N is the only anion", only={"N"}),
    "phosphide": _rule("P is the only anion", only={"P"}),
    "arsenide": _rule("As is the only anion", only={"As"}),
    "pnictide": _rule("at least one of N, P, As, Sb is an anion", any={"N", "P", "As", "Sb"}),
    "phosphate": _rule("P is a cation and O an anion with O >= 4 P", cation_with_o=("P", 4)),
    "silicate": _rule("Si is a cation and O an anion with O >= 2 Si", cation_with_o=("Si", 2)),
    "oxynitride": _rule("both O and N are anions", all={"O", "N"}),
    "oxyfluoride": _rule("both O and F are anions", all={"O", "F"}),
    "intermetallic": _rule("no O, N, F, Cl, Br, I, S, Se, Te", none_present=INTERMETALLIC_FORBIDDEN),
}


# family -> (site multiplicities, pairs of sites that must hold different elements); the last site of every family
# but the Heuslers is the anion site and must differ from all the others (so one element can share cation sites,
# as in Fe3O4, Y3Al5O12, Fe2SiO4 or Fe3Si, but never an anion site)
FAMILY_SITES: dict[str, tuple[tuple[int, ...], tuple[tuple[int, int], ...]]] = {
    "rock salt": ((1, 1), ()),
    "cscl": ((1, 1), ()),
    "zincblende": ((1, 1), ()),
    "wurtzite": ((1, 1), ()),
    "fluorite": ((1, 2), ()),
    "antifluorite": ((2, 1), ()),
    "rutile": ((1, 2), ()),
    "corundum": ((2, 3), ()),
    "perovskite": ((1, 1, 3), ((0, 1),)),
    "orthorhombic perovskite": ((1, 1, 3), ((0, 1),)),
    "double perovskite": ((2, 1, 1, 6), ((1, 2),)),
    "spinel": ((1, 2, 4), ()),
    "inverse spinel": ((1, 2, 4), ()),
    "ilmenite": ((1, 1, 3), ((0, 1),)),
    "pyrochlore": ((2, 2, 7), ()),
    "garnet": ((3, 2, 3, 12), ()),
    "olivine": ((1, 1, 1, 4), ()),  # M1, M2, T, O: LiFePO4 and Mg2SiO4 alike
    "layered oxide": ((1, 1, 2), ((0, 1),)),
    "chalcopyrite": ((1, 1, 2), ((0, 1),)),
    "heusler": ((2, 1, 1), ((1, 2),)),  # X2YZ; X = Y allowed (Fe3Si)
    "half-heusler": ((1, 1, 1), ((0, 1), (0, 2), (1, 2))),
}
_NO_ANION_SITE = frozenset({"heusler", "half-heusler"})


def fits_family(formula: str, family: str) -> bool:
    """Whether the formula's element ratios fill the family's sites.

    Two ways, either is enough: one element per site with sites free to share an element (Fe3O4, Y3Al5O12, Fe3Si),
    or each element on one site with sites free to hold several elements (an ordered or mixed site, as in
    NaFe0.5Mn0.5O2 or (Mn,Zn)Fe2O4). Every site is occupied; the anion site (the last, except in the Heuslers) holds
    no element of another site; sites named in the family's distinct pairs hold different elements.
    """
    comp = _composition(formula)
    key = next((k for k in FAMILY_SITES if _label(k) == _label(family)), None)
    if comp is None or key is None:
        return False
    mults, distinct = FAMILY_SITES[key]
    n = len(mults)
    if key not in _NO_ANION_SITE:
        distinct = distinct + tuple((i, n - 1) for i in range(n - 1))
    elements = [el.symbol for el in comp.elements]
    amounts = {el: Fraction(comp[el]).limit_denominator(1000) for el in elements}

    # one element per site
    if len(elements) <= n:
        for assignment in itertools.product(elements, repeat=n):
            if set(assignment) != set(elements) or any(assignment[i] == assignment[j] for i, j in distinct):
                continue
            totals = dict.fromkeys(elements, 0)
            for el, m in zip(assignment, mults, strict=True):
                totals[el] += m
            if len({amounts[el] / totals[el] for el in elements}) == 1:
                return True
    # one site per element (several elements may share a site)
    if len(elements) >= n:
        for sites in itertools.product(range(n), repeat=len(elements)):
            if set(sites) != set(range(n)):
                continue
            totals = [Fraction(0)] * n
            for el, site in zip(elements, sites, strict=True):
                totals[site] += amounts[el]
            if len({totals[i] / mults[i] for i in range(n)}) == 1:
                return True
    return False


def composition_valid(formula: str, case: dict) -> tuple[bool, list[str]]:
    """Whether ``formula`` is a right answer to ``case`` on composition alone; the reasons when it is not."""
    if case.get("decline"):
        return False, [f"the request should be declined: {case.get('why', '')}".strip()]
    comp = _composition(formula.strip()) if isinstance(formula, str) else None
    if comp is None:
        return False, [f"not a formula: {formula!r}"]
    reduced = comp.reduced_formula
    present = {el.symbol for el in comp.elements}
    reasons: list[str] = []

    missing = sorted(set(case.get("include") or []) - present)
    if missing:
        reasons.append(f"missing required element(s) {', '.join(missing)}")
    banned = sorted(set(case.get("exclude") or []) & present)
    if banned:
        reasons.append(f"contains excluded element(s) {', '.join(banned)}")

    family = case.get("family")
    cls = case.get("compound_class")
    intermetallic = cls == "intermetallic" or (family is not None and _label(family) in _EXEMPT_LABELS)
    if intermetallic:
        anions = sorted(present & INTERMETALLIC_FORBIDDEN)
        if anions:
            reasons.append(f"intermetallic must not contain {', '.join(anions)}")
    elif not charge_balanced(reduced):
        reasons.append("no charge-balanced oxidation states")

    if cls is not None and cls != "intermetallic":
        rule = CLASS_ANIONS.get(cls)
        if rule is None:
            reasons.append(f"unknown compound class {cls!r}")
        elif not rule.satisfied(reduced):
            reasons.append(f"not a {cls}: needs {rule.description}")

    if family is not None and case.get("family_ratio_check", True) and not fits_family(reduced, family):
        reasons.append(f"{reduced} does not fit the {family} site ratios")

    n = case.get("n_elements")
    if n is not None and len(present) != n:
        reasons.append(f"has {len(present)} elements, asked for {n}")

    acceptable = case.get("acceptable_formulas")
    if acceptable:
        allowed = {reduced_formula(f) for f in acceptable}
        if reduced not in allowed:
            reasons.append(f"{reduced} is not one of {', '.join(sorted(a for a in allowed if a))}")
    return not reasons, reasons


_EXEMPT_LABELS = frozenset(re.sub(r"[^a-z0-9]", "", f) for f in CHARGE_EXEMPT_FAMILIES)


def score_answers(formulas: list[str] | None, case: dict, declined: bool = False, k: int = 5) -> dict[str, bool]:
    """Top-1 and top-k rightness of a ranked answer list; a decline is right only for a decline case."""
    key_k = f"top{k}"
    if case.get("decline"):
        return {"top1": bool(declined), key_k: bool(declined)}
    if declined or not formulas:
        return {"top1": False, key_k: False}
    ok = [composition_valid(f, case)[0] for f in formulas[:k]]
    return {"top1": ok[0], key_k: any(ok)}


# ---------------------------------------------------------------------------------------------------- readings


def _label(value: object) -> str | None:
    """Family / class labels compared without case, spaces, hyphens or underscores ("rock-salt" == "rock salt")."""
    if value is None:
        return None
    text = re.sub(r"[^a-z0-9]", "", str(value).lower())
    return text or None


def _symbols(values: object) -> frozenset[str]:
    if values is None:
        return frozenset()
    if isinstance(values, str):
        values = [values]
    out = set()
    for v in values:
        text = str(v).strip()
        out.add(text[:1].upper() + text[1:].lower())
    return frozenset(out)


def _formula_set(values: object) -> frozenset[str]:
    if values is None:
        return frozenset()
    if isinstance(values, str):
        values = [values]
    return frozenset(reduced_formula(str(v)) or str(v).strip() for v in values)


_APP_STOP = frozenset(
    {"a", "an", "the", "for", "of", "in", "and", "or", "to", "as", "use", "used", "using", "application",
     "applications", "material", "materials", "device", "devices", "based", "type", "like", "high", "low"}
)  # fmt: skip
_APP_SYNONYMS = {
    "solar": "photovoltaic", "pv": "photovoltaic", "absorber": "photovoltaic", "photovoltaics": "photovoltaic",
    "cell": "photovoltaic",
    "magnetic": "magnet", "magnets": "magnet", "magnetism": "magnet", "ferromagnet": "magnet",
    "catalysis": "catalyst", "catalytic": "catalyst", "photocatalyst": "catalyst", "photocatalysis": "catalyst",
    "electrocatalyst": "catalyst", "catalysts": "catalyst",
    "thermoelectrics": "thermoelectric", "cathodes": "cathode", "anodes": "anode", "batteries": "battery",
    "electrolytes": "electrolyte", "conductors": "conductor", "conducting": "conductor", "conductive": "conductor",
    "scintillators": "scintillator", "scintillation": "scintillator",
    "phosphors": "phosphor", "luminescence": "phosphor", "luminescent": "phosphor",
    "ferroelectrics": "ferroelectric", "ferroelectricity": "ferroelectric",
    "tbc": "barrier", "coatings": "coating", "leds": "led",
}  # fmt: skip


def _app_keywords(value: object) -> frozenset[str]:
    words = re.findall(r"[a-z0-9]+", str(value).lower())
    return frozenset(_APP_SYNONYMS.get(w, w) for w in words if w not in _APP_STOP)


def _app_match(got: object, want: object) -> bool:
    if got is None or (isinstance(got, str) and not got.strip()):
        return want is None
    if want is None:
        return False
    return bool(_app_keywords(got) & _app_keywords(want))


def _declined(value: object) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return bool(value)


def _n(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


_COMPARE: dict[str, Callable[[object, object], bool]] = {
    "include": lambda got, want: _symbols(got) == _symbols(want),
    "exclude": lambda got, want: _symbols(got) == _symbols(want),
    "family": lambda got, want: _label(_judged_family(got)) == _label(want),
    "compound_class": lambda got, want: _label(got) == _label(want),
    "formulas": lambda got, want: _formula_set(got) == _formula_set(want),
    "n_elements": lambda got, want: _n(got) == _n(want),
    "application": _app_match,
    "decline": lambda got, want: _declined(got) == bool(want),
}


_FAMILY_LABELS = frozenset(_label(f) for f in FAMILIES)


def _judged_family(value: object) -> object:
    """A family outside FAMILIES reads as null: the suites label only these families and leave the rest (NASICON,
    skutterudite, A15) null, so a reader that names such a type is not wrong for naming it."""
    return value if _label(value) in _FAMILY_LABELS else None


def score_reading(parsed: dict, case: dict) -> dict[str, bool]:
    """Per field, whether the reader's ``parsed`` dict matches the case (or one of its ``also_ok`` readings).

    Lists are compared as sets (formulas by pymatgen reduced formula; include without the elements the reading's or
    the case's compound class requires by itself), family and class labels without case or
    punctuation, application loosely (both null, or both given and sharing a keyword); a reader's ``decline`` is a
    non-empty reason string (or True) to decline, null otherwise. A missing key reads as null.
    """
    also_ok = case.get("also_ok") or {}
    implied = _class_elements(parsed.get("compound_class")) | _class_elements(case.get("compound_class"))
    scores = {}
    for field in FIELDS:
        got = parsed.get(field)
        compare = _COMPARE[field]
        wants = [case.get(field)] + list(also_ok.get(field, []))
        if field == "include":  # whether "sulfide" puts S in include is a convention: compare without the class's
            got = sorted(_symbols(got) - implied)
            wants = [sorted(_symbols(w) - implied) for w in wants]
        scores[field] = any(compare(got, want) for want in wants)
    return scores


def _class_elements(cls: object) -> set[str]:
    """Elements a compound class requires by itself (sulfide: S; phosphate: P and O; oxynitride: O and N)."""
    simple = {"carbide": "C", "boride": "B", "hydride": "H", "antimonide": "Sb", "silicide": "Si"}
    if cls and str(cls).lower() in simple:
        return {simple[str(cls).lower()]}
    rule = CLASS_ANIONS.get(str(cls).lower()) if cls else None
    if rule is None:
        return set()
    out = set(rule.all or ()) | (set(rule.only) if rule.only and len(rule.only) == 1 else set())
    if rule.cation_with_o is not None:
        out |= {rule.cation_with_o[0], "O"}
    return out


def summarise(rows: Iterable[dict]) -> dict:
    """Per-field accuracy over rows of ``score_reading`` output (a row may also carry its scores under "scores").

    Returns {"n": rows, "<field>": accuracy for each field seen, "all_fields": share of rows with every field right};
    a row's non-boolean entries (id, split, ...) are ignored.
    """
    rows = [r.get("scores", r) for r in rows]
    out: dict[str, float | int] = {"n": len(rows)}
    if not rows:
        return out
    fields = [f for f in FIELDS if any(f in r for r in rows)]
    fields += sorted({k for r in rows for k, v in r.items() if isinstance(v, bool)} - set(fields))
    for field in fields:
        values = [bool(r[field]) for r in rows if isinstance(r.get(field), bool)]
        out[field] = sum(values) / len(values) if values else float("nan")
    out["all_fields"] = sum(all(v for v in r.values() if isinstance(v, bool)) for r in rows) / len(rows)
    return out
