"""Read a plain-language materials request into constraints, offline and deterministically: elements to include or
exclude (symbols with context rules, names, groups such as "rare earths"), negation in its common forms ("lead-free",
"without Co", "no nickel", "free of toxic Cd", "avoid Pb"), compound classes ("halide", "phosphate", "titanate",
"thiospinel", "oxynitride"), the structure family (names, synonyms, mineral names, Strukturbericht designations,
"MgAl2O4-type"), formulas named in the request, element counts, the goal and the application. Requests that
chemistry rules out get a `decline` reason instead of a search."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pymatgen.core import Composition, Element

from tools.core.errors import ToolInputError
from tools.discovery.lexicon import (
    AMBIGUOUS_SYMBOLS,
    ANION_CLASS,
    APPLICATIONS,
    ATE_PREFIX,
    ATE_WORDS,
    CLASS_WORDS,
    COMPOUND_CLASSES,
    COUNT_PREFIX,
    COUNT_WORDS,
    ELEMENT_GROUPS,
    ELEMENT_NAME_SYMBOLS,
    FAMILY_ANIONS,
    FAMILY_MIN_ELEMENTS,
    FAMILY_WORDS,
    FORMULA_FAMILIES,
    GOAL_WORDS,
    GROUP_WORDS,
    IDE_WORDS,
    INTERMETALLIC_FAMILIES,
    LIST_FILLERS,
    MINERAL_FAMILIES,
    MOLECULAR_ANIONS,
    NOBLE_GASES,
    PREFIX_CLASSES,
    ROMAN_NUMERALS,
    SIMPLE_ANIONS,
    aflow_family_names,
    aflow_type_of_formula,
    strukturbericht_families,
)
from tools.discovery.nomenclature import ACRONYM_COMPOUNDS, minerals_in, named_compounds
from tools.discovery.request_syntax import filled_templates, plain_request, ratio_formulas

MAX_REQUEST_CHARS = 2000
MAX_LOWERCASE_FORMULA = 24  # characters of a lower-case formula worth splitting into symbols ('ca3al2si3o12' is 12)
MAX_FORMULA_ATOMS = 64  # atoms per formula unit of a named formula: the generators build cells up to this size


@dataclass
class MaterialsRequest:
    """What a request asks for, as constraints the proposer and the search act on."""

    text: str
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    include_any: list[list[str]] = field(default_factory=list)  # at least one element of each group
    only: list[str] | None = None  # "only X and Y": the closed set of elements allowed
    family: str | None = None
    exclude_families: list[str] = field(default_factory=list)
    compound_class: str | None = None
    anion: str | None = None  # the anion when the class fixes one (oxide -> O)
    anions: list[str] = field(default_factory=list)  # anions the class allows (halide -> F, Cl, Br, I)
    polyanion: str | None = None  # centre of the oxo-anion (phosphate -> P)
    molecular_anion: str | None = None  # a named molecular anion ("borohydride" -> BH4)
    formulas: list[str] = field(default_factory=list)
    reference_formulas: list[str] = field(default_factory=list)  # "MgAl2O4-type": a structure, not an answer
    optional: list[str] = field(default_factory=list)  # dopants and elements "welcome but not required"
    derived_formulas: list[str] = field(default_factory=list)  # "like SrTiO3 with Ba for Sr" -> BaTiO3
    named_compounds: list[str] = field(default_factory=list)  # "vanadium pentoxide" -> V2O5, "BGO" -> Bi4Ge3O12
    exact_compounds: list[str] = field(default_factory=list)  # of those, the ones a name fixes (acronyms, NMC codes)
    n_elements: int | None = None
    goal: str = "stable"  # stable | metastable | novel
    application: str | None = None
    preferred_families: list[str] = field(default_factory=list)  # from the application, when no family is named
    decline: str | None = None
    reader: str = "offline"
    notes: list[str] = field(default_factory=list)

    def asked_anions(self) -> set[str]:
        """The anions the request allows or implies: its class's anions, the fixed anion, the polyanion centre."""
        return {*self.anions, *([self.anion] if self.anion else []), *([self.polyanion] if self.polyanion else [])}

    def class_elements(self) -> list[str]:
        """Elements the compound class itself requires: its one anion (a sulfide needs S), both anions of a mixed
        class (oxynitride), the oxygen and centre of an oxo-anion class (a phosphate needs P and O)."""
        if self.compound_class is None or self.compound_class not in COMPOUND_CLASSES:
            return []
        cls = COMPOUND_CLASSES[self.compound_class]
        if cls.mixed:
            return list(cls.anions)
        out = [self.anion] if self.anion and len(self.anions) <= 1 else []
        if cls.polyanion and self.polyanion:
            out = [*cls.anions, self.polyanion]
        return out

    def required(self) -> list[str]:
        """Every element the request requires: those named and those its compound class needs."""
        return list(dict.fromkeys([*self.include, *self.class_elements()]))

    def constraints(self) -> dict[str, object]:
        """The reading as a plain dict (what tools report and the LLM prompt shows); `include` lists every required
        element, the class's anion among them."""
        return {
            "include": self.required(),
            "exclude": self.exclude,
            "include_any": self.include_any,
            "only": self.only,
            "family": self.family,
            "compound_class": self.compound_class,
            "anion": self.anion,
            "molecular_anion": self.molecular_anion,
            "formulas": self.formulas,  # every formula named; of those, the structures referred to, not asked for:
            "reference_formulas": self.reference_formulas,  # "NiAs-type", "like SrTiO3 but"
            "derived_formulas": self.derived_formulas,  # spelled out, not typed: 'Sm-Co 1:5', 'LiMPO4 with M = Mn'
            "n_elements": self.n_elements,
            "goal": self.goal,
            "application": self.application,
            "decline": self.decline,
            "reader": self.reader,
        }


@dataclass
class Mention:
    """A stretch of the request that names something: an element, a group, a class, a family or a formula."""

    start: int
    end: int
    kind: str  # element | group | class | family | formula
    value: str
    negated: bool = False
    implied: tuple[str, ...] = ()  # elements a class word brings ("titanate" -> Ti)


_TOKEN = re.compile(r"[A-Za-z0-9()'’]+(?:\.\d+[A-Za-z0-9()]*)*(?:-[A-Za-z0-9()'’]+)*|-{2,}|[—–,;.:/&+!?]")
_QUALIFIER = re.compile(r"[- ](?:ordered|ordering|derived|related|like ordering|superstructure)")
_ROMAN = re.compile(r"(?:I{1,3}|IV|VI{0,3})(?:-(?:I{1,3}|IV|VI{0,3})\d?)+")  # III-V, II-VI, I-III-VI2
_FORMULA = re.compile(r"(?:[A-Z][a-z]?(?:\d+(?:\.\d+)?)?|\((?:[A-Z][a-z]?\d*)+\)\d*)+")
_SYMBOL = re.compile(r"(?<![A-Za-z0-9])([A-Z][a-z]?)(?:(?=\d?\+)|(?![a-z0-9]))")  # Fe, Fe3+
_NAMES = {**ELEMENT_NAME_SYMBOLS, "ferrous": "Fe", "ferric": "Fe", "cupric": "Cu", "cuprous": "Cu", "stannous": "Sn",
          "stannic": "Sn", "plumbous": "Pb", "lithium-ion": "Li", "sodium-ion": "Na"}
_ACRONYMS = {"PV", "NMC", "NCA", "SOFC", "CNT", "MOF", "COF", "OER", "HER", "ORR", "LED", "TCO", "DFT", "MD",
             "CIF", "NMR", "XRD", "SEM", "TEM", "UV", "IR", "CV", "AI", "ML", "OK", "US", "UK", "EU", "CO", "NO",
             "PS", "PC", "SI", "IC", "IV", "VI", "II", "III", "VII", "VIII", "IX", "XI"}
_NEG_ONE = {"without", "w/o", "no", "not", "excluding", "exclude", "excludes", "except", "avoid", "avoids",
            "avoiding", "lacking", "minus", "never", "none", "non", "don't", "doesn't", "shouldn't", "mustn't",
            "cannot", "can't", "won't", "nor", "sans", "ban", "banned", "forbid", "forbidden", "prohibit", "zero",
            "omit", "omitting", "skip", "skipping", "nix", "ditch", "ditching", "eliminate", "eliminating"}
_NEG_TWO = {("free", "of"), ("free", "from"), ("devoid", "of"), ("other", "than"), ("but", "not"), ("none", "of"),
            ("rather", "than"), ("instead", "of"), ("apart", "from"), ("anything", "but"), ("everything", "but"),
            ("away", "from"), ("clear", "of"), ("leave", "out"), ("leaving", "out"), ("no", "more")}
_VERB_AFTER_NEGATION = {"contain", "containing", "contains", "include", "including", "includes", "use", "using",
                        "have", "having", "with", "need", "needing", "want"}
_INCLUDE_CUES = {"with", "containing", "contain", "contains", "including", "include", "includes", "of", "plus",
                 "using", "has", "having", "and", "from", "incorporating", "featuring", "based"}
_CONNECTORS = {",", "and", "or", "/", "&", "+", "nor"}
_SITE_WORDS = re.compile(r"^(?:(?:-|\s)?(?:site|sites|sublattice|cation|anion)\b|\s*[=:]\s*[A-Z]|')", re.IGNORECASE)
_FREE_AFTER = re.compile(r"^(?:-|\s)?(?:free|less)\b(?!\s+(?:of|from)\b)", re.IGNORECASE)
_BANNED_AFTER = re.compile(r"^\s+(?:is\s+|are\s+|being\s+)?(?:excluded|banned|forbidden|prohibited|disallowed|"
                           r"not allowed|not wanted|unwanted|not permitted)\b|"  # 'Ga must not be present'
                           r"^\s+(?:must|should|shall|can|may|is|are)(?:\s+not|n't)\s+(?:be\s+)?(?:present|used|"
                           r"included|contained|allowed|permitted|appear|there|in it|in there|inside|part of it)\b",
                           re.IGNORECASE)
_STATE_LABEL = re.compile(r"[A-Z][a-z]?\((?:I{1,3}|IV|VI{0,3}|V)\)")
_UNIT_BEFORE = re.compile(r"(?:\d(?:\.\d+)?\s*|°\s*)$")  # '92 K', '3.7 V', '67 °C': a unit, not an element
_COLOUR_AFTER = re.compile(r"[- ]?(?:colou?red|colou?r|tinted|toned|hued)\b")  # 'gold-coloured': no gold in it
_UNITS = {"K", "V", "W", "C", "S", "F", "H", "T", "A", "Pa", "Hz"}
_SITE_BEFORE = re.compile(r"\b(?:on|at|onto|occupying|into)\s+(?:the\s+)?$", re.IGNORECASE)
_CODE_CONTEXT = re.compile(r"[- ]?(?:type|phases?|structures?|ordered|ordering|order|alloys?|intermetallics?|"
                           r"compounds?|lattice|prototype|superlattice)\b", re.IGNORECASE)
_PROCESS_AFTER = re.compile(r"[- ](?:evolution|reduction|storage|production|generation|fixation|capture|"
                            r"separation|sensing|sensors?|uptake|permeation|sorption|absorption|adsorption)\b")
_TYPE_AFTER = re.compile(r"^-?(?:type|like|structured|structure|prototype)\b|^\s+(?:type|structure)\b", re.I)


def _uncapitalised(text: str) -> str:
    """A request typed in capitals ('PEROVSKITE OXIDE WITH LANTHANUM AND NICKEL') read in lower case, with one- and
    two-letter words as element symbols ('LA' -> 'La'); lower-case formulas ('lifepo4') written as formulas."""
    letters = [ch for ch in text if ch.isalpha()]
    if letters and sum(ch.isupper() for ch in letters) / len(letters) > 0.8 and len(letters) > 12:
        text = re.sub(r"[A-Za-z]+", lambda m: m.group(0).capitalize() if len(m.group(0)) <= 2
                      else m.group(0).lower(), text)
    text = re.sub(r"\b[a-z][a-z0-9()]*\d[a-z0-9()]*\b", lambda m: _formula_case(m.group(0)) or m.group(0), text)
    text = re.sub(r"(?<=[A-Za-z])[‐‑–—](?=[A-Za-z])", "-", text)  # 'Ruddlesden–Popper': one hyphen
    text = re.sub(r"\b[a-z][a-z0-9]{1,11}(?=-type\b)", lambda m: _formula_case(m.group(0)) or m.group(0), text)
    text = re.sub(r"\b([a-z]{1,2})(\s*\+\s*)([a-z]{1,2})\b", _symbols_joined, text)  # 'mg + zn'
    text = re.sub(r"\b[wW]/[oO]\b", "without", text)  # chat shorthand
    text = re.sub(r"\b[wW]/(?=\s)", "with", text)
    # 'pb-free', 'co-free': a lower-case symbol before '-free' is the element
    return re.sub(r"\b([a-z]{1,2})(?=-free\b)",
                  lambda m: m.group(1).capitalize() if Element.is_valid_symbol(m.group(1).capitalize())
                  else m.group(1), text)


def _symbols_joined(m: re.Match) -> str:
    """'mg + zn' -> 'Mg + Zn' when both are element symbols and one has two letters (not 'a + b')."""
    left, right = m.group(1).capitalize(), m.group(3).capitalize()
    if Element.is_valid_symbol(left) and Element.is_valid_symbol(right) and max(len(left), len(right)) == 2:
        return f"{left}{m.group(2)}{right}"
    return m.group(0)


def _formula_case(token: str) -> str | None:
    """'lifepo4' -> 'LiFePO4': the token split into element symbols, when it reads as a formula of two or more
    elements; of several readings the one without radioactive elements (LiFePO4, not LiFePo4), then with the most
    two-letter symbols (CoSb3, not COSB3), then a charge-balanced one wins."""

    def splits(rest: str) -> list[list[str]]:
        if not rest:
            return [[]]
        if rest[0].isdigit() or rest[0] in "()":
            return [[rest[0], *tail] for tail in splits(rest[1:])]
        out = []
        for size in (1, 2):
            head = rest[:size].capitalize()
            if len(rest) >= size and head.isalpha() and Element.is_valid_symbol(head) and head not in ("D", "T"):
                out += [[head, *tail] for tail in splits(rest[size:])]
        return out

    if len(token) > MAX_LOWERCASE_FORMULA:
        return None  # the readings multiply with the length: a long lower-case run is not a typed formula
    readings = []
    for parts in splits(token):
        formula = "".join(parts)
        if not _is_formula(formula) or len(re.findall(r"[A-Z]", formula)) < 2:
            continue
        elements = [Element(e) for e in re.findall(r"[A-Z][a-z]?", formula)]
        try:
            balanced = bool(Composition(formula).oxi_state_guesses(max_sites=-20))
        except Exception:  # noqa: BLE001 - pymatgen gives up: count as unbalanced
            balanced = False
        rare = sum(el.is_radioactive or el.Z > 83 for el in elements)
        two_letter = sum(len(el.symbol) == 2 for el in elements)  # 'cosb3' is CoSb3, not COSB3
        readings.append((rare, -two_letter, not balanced, formula))
    return min(readings)[3] if readings else None


MAX_LOWERCASE_ELEMENTS = 3  # elements in a lower-case formula typed without digits ('snte', 'zrnisn')
NOT_FORMULAS = {"cos", "ceo", "nos", "pcs", "sci", "bsc", "phd", "cfo", "cto", "hpc", "kpi", "nps", "pcb"}


ENGLISH_SUFFIXES = ("s", "es", "er", "ers", "ed", "ing", "ly", "est")


def _english(word: str, words: frozenset[str]) -> bool:
    """A word of the embedder's vocabulary, or one with an English ending on such a word of four or more letters
    ('binder' from 'bind', 'bases' from 'base'; not 'gaas' from 'gaa')."""
    if word in words:
        return True
    for suffix in ENGLISH_SUFFIXES:
        stem = word.removesuffix(suffix)
        if stem != word and len(stem) >= 4 and (stem in words or stem + "e" in words):
            return True
    return False


def _lowercase_formula(word: str) -> str | None:
    """A lower-case word with no digits that is no English word but a compound's formula ('snte' -> SnTe, 'gaas',
    'zrnisn'): the split into symbols must be charge balanced or all metals, without noble gases."""
    from memory.embedding import vocabulary

    if word in NOT_FORMULAS or _english(word, vocabulary()):
        return None
    formula = _formula_case(word)
    if formula is None:
        return None
    elements = [Element(e) for e in Composition(formula).get_el_amt_dict()]
    if len(elements) > MAX_LOWERCASE_ELEMENTS or any(el.is_noble_gas or el.is_radioactive for el in elements):
        return None  # 'cations' is no Ca-Ti-O-N-S: typed formulas without digits are binaries and ternaries
    if all(el.is_metal for el in elements):
        return formula
    try:
        return formula if Composition(formula).oxi_state_guesses(max_sites=-20) else None
    except Exception:  # noqa: BLE001 - pymatgen gives up: not a formula we can trust
        return None


def _tokens(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0)) for m in _TOKEN.finditer(text)]


def _is_formula(token: str) -> bool:
    """A chemical formula token (LiFePO4, CsCl, Ca3Al2(SiO4)3): parses, holds >= 2 element symbols or a digit."""
    if not _FORMULA.fullmatch(token) or token in _ACRONYMS or _STATE_LABEL.fullmatch(token):
        return False  # 'Cu(I)', 'Fe(III)': an element in an oxidation state, not copper iodide
    parts = re.findall(r"[A-Z][a-z]?", token)
    if len(parts) < 2:
        return False  # 'O3 layered', 'B2', 'Mn4+': a label or a charge, not a compound
    if token.isupper() and not re.search(r"\d", token) and token not in {"BN", "BP", "CS", "SiC"}:
        return False  # PV, SOFC, CNO: acronyms, not formulas
    if not all(Element.is_valid_symbol(p) and p not in ("D", "T") for p in parts):
        return False
    try:
        Composition(token)
    except Exception:  # noqa: BLE001 - pymatgen rejects it: not a formula
        return False
    return True


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(a < span[1] and span[0] < b for a, b in taken)


@dataclass
class _Found:
    """The mentions found so far and the spans taken (by them, or by words that are no mention: 'PV', 'III-V')."""

    mentions: list[Mention] = field(default_factory=list)
    taken: list[tuple[int, int]] = field(default_factory=list)

    def add(self, start: int, end: int, kind: str, value: str, implied: tuple[str, ...] = ()) -> None:
        """A mention, kept unless its span overlaps one already taken."""
        if not _overlaps((start, end), self.taken):
            self.mentions.append(Mention(start, end, kind, value, implied=implied))
            self.taken.append((start, end))


def _find_mentions(text: str) -> list[Mention]:
    """Families, classes, groups, formulas, then element symbols and names not inside any of those."""
    lowered = text.lower()
    found = _Found()
    _family_word_mentions(text, lowered, found)
    _family_code_mentions(text, found)
    _class_mentions(lowered, found)
    _group_mentions(text, lowered, found)
    _formula_mentions(text, found)
    _symbol_mentions(text, found)
    _name_mentions(text, lowered, found)
    return _kept_mentions(text, lowered, found.mentions)


def _family_word_mentions(text: str, lowered: str, found: _Found) -> None:
    """Families by word: the lexicon (longest phrase first), AFLOW names, minerals, 'thiospinel' (family + class)."""
    phrases = [(p, fam) for fam, words in FAMILY_WORDS.items() for p in words]
    phrases += [(re.escape(name), fam) for name, fam in aflow_family_names().items() if len(name) > 3]
    phrases += [(rf"{re.escape(name)}(?:[- ](?:type|like|structured?))?", fam)
                for name, fam in MINERAL_FAMILIES.items()]
    for prefix, cls in PREFIX_CLASSES.items():  # thiospinel, selenospinel: family + class
        for fam, words in FAMILY_WORDS.items():
            for m in re.finditer(rf"\b{prefix}-?(?:{'|'.join(words)})\b", lowered):
                found.add(m.start(), m.end(), "family", fam)
                found.mentions.append(Mention(m.start(), m.start() + len(prefix), "class", cls))
    hits = [(m, fam) for phrase, fam in phrases for m in re.finditer(rf"(?<![\w-]){phrase}(?![\w])", lowered)]
    for m, fam in sorted(hits, key=lambda mf: (mf[0].start() - mf[0].end(), mf[0].start())):  # longest first
        qualifier = _QUALIFIER.match(lowered[m.end():])
        if qualifier:
            found.taken.append((m.start(), m.end() + qualifier.end()))  # an adjective on another family
            continue
        found.add(m.start(), m.end(), "family", fam)
        named = re.match(r"([A-Z][A-Za-z0-9()]*)[- ](?:type|like|structured?)", text[m.start():m.end()])
        if named and _is_formula(named.group(1)):  # "NaCl-type": the family, and NaCl as a reference
            found.mentions.append(Mention(m.start(), m.start() + len(named.group(1)), "reference", named.group(1)))


def _family_code_mentions(text: str, found: _Found) -> None:
    """Families by code (Strukturbericht A15, L1_2, C14, B2) and by '<formula>-type' (the formula a reference)."""
    codes = strukturbericht_families()
    for m in re.finditer(r"(?<![\w-])[A-Za-z]\d[\w]{0,3}(?![\w])", text):  # Strukturbericht: A15, L1_2, C14, B2
        code = m.group(0).lower().replace("_", "")
        if code in codes and (len(code) > 2 or _CODE_CONTEXT.match(text[m.end():])):
            found.add(m.start(), m.end(), "family", codes[code])
    for m in re.finditer(r"(?<![\w-])([A-Z][A-Za-z0-9()]*)(?=[-\s]?(?:type|like|structured?)\b)", text):
        if not _is_formula(m.group(1)) or _overlaps(m.span(), found.taken):
            continue
        suffix = _TYPE_AFTER.match(text[m.end():])
        end = m.end() + (len(suffix.group(0)) if suffix else 0)
        found.mentions.append(Mention(m.start(), m.end(), "reference", m.group(1)))
        fam = family_of_formula(m.group(1))
        if fam:
            found.add(m.start(), end, "family", fam, implied=("formula",))  # yields to a family word (read_request)
        else:
            found.taken.append((m.start(), end))


def _class_mentions(lowered: str, found: _Found) -> None:
    """Compound classes: mixed anions and prefixes first, then single words, then '-ate' and '-ide' words."""
    for prefix, cls in PREFIX_CLASSES.items():  # thiophosphate: a sulfide of the PS4 anion (P required)
        for m in re.finditer(rf"\b{prefix}-?(phosphate|silicate|germanate)s?\b", lowered):
            centre = COMPOUND_CLASSES[m.group(1)].polyanion
            found.add(m.start(), m.end(), "class", "thiophosphate" if m.group(0).startswith("thio") and centre == "P"
                      else cls, implied=(centre,) if centre else ())
    for word, cls in sorted(CLASS_WORDS.items(), key=lambda wc: -len(wc[0])):
        for m in re.finditer(rf"(?<![\w]){word}(?![\w])", lowered):
            found.add(m.start(), m.end(), "class", cls)
    families = [(x.start, x.end) for x in found.mentions if x.kind == "family"]
    for word, el in ATE_WORDS.items():
        for m in re.finditer(rf"\b{ATE_PREFIX}{word}s?\b", lowered):
            if _overlaps(m.span(), families) and not _overlaps(m.span(), [t for t in found.taken if t not in families]):
                found.mentions.append(Mention(m.start(), m.end(), "class", "oxide", implied=(el,)))  # 'hexaferrite'
            else:
                found.add(m.start(), m.end(), "class", "oxide", implied=(el,))
    for word, el in IDE_WORDS.items():  # 'nickel aluminide', 'molybdenum disilicide'
        for m in re.finditer(rf"\b{COUNT_PREFIX}{word}s?\b", lowered):
            found.add(m.start(), m.end(), "class", "intermetallic", implied=(el,))


def _group_mentions(text: str, lowered: str, found: _Found) -> None:
    """Element groups ('rare earth', 'alkali'); 'metal' and 'nonmetal' only where refused, 'toxic' not as an
    adjective on an element."""
    for word, group in GROUP_WORDS.items():
        for m in re.finditer(rf"(?<![\w]){word}(?![\w])", lowered):
            if group in REFUSAL_ONLY_GROUPS and (
                not re.search(r"\b(?:no|without|nor|free of|zero)\s+(?:any\s+)?$", lowered[:m.start()])
                or re.match(r"\s+(?:other than|except|besides|apart from|but)\b", lowered[m.end():])
            ):
                continue  # "metal oxide", "heavy-metal-free", "no metal but Zn": only "no metal" refuses the group
            if group == "toxic" and re.match(r"\s+(?:[A-Z][a-z]?\b|" + "|".join(_NAMES) + r")", text[m.end():]):
                continue  # "toxic Cd": an adjective on the element, not the group
            found.add(m.start(), m.end(), "group", group)


def _formula_mentions(text: str, found: _Found) -> None:
    """Templates ('LiMPO4'), acronyms taken as no elements (PV, YSZ, III-V), then formulas, one per hyphen part."""
    for start, _end, token in _tokens(text):
        implied = _template_elements(token)
        if implied is not None and not _overlaps((start, start + len(token)), found.taken):
            found.add(start, start + len(token), "template", token, implied=implied)
    for start, _end, token in _tokens(text):
        if _is_formula(token):
            continue  # 'Na3Zr2Si2PO12': the 'PO' inside a formula is no acronym
        for part in re.finditer(r"[A-Za-z]+", token):
            word = part.group(0).removesuffix("s")
            if (len(word) >= 2 and word.isupper() and not _is_formula(word)) or _ROMAN.fullmatch(token):
                found.taken.append((start + part.start(), start + part.end()))  # PV, UV, YSZ, III-V: not elements
    for start, _end, token in _tokens(text):
        offset = 0
        for part in token.split("-"):  # 'LiFePO4-based', and 'alpha-Al2O3', '2H-MoS2' after a polymorph prefix
            span = (start + offset, start + offset + len(part))
            inner = part[1:-1] if part.startswith("(") and part.endswith(")") else part  # "(YBa2Cu3O7)"
            if _is_formula(inner) and not _overlaps(span, found.taken):
                found.add(span[0] + (inner != part), span[1] - (inner != part), "formula", inner)
            offset += len(part) + 1


def _symbol_mentions(text: str, found: _Found) -> None:
    """Element symbols, less site letters ('B-site'), units ('92 K') and acronyms that start like one ('FeRAM')."""
    for m in _SYMBOL.finditer(text):
        sym = m.group(1)
        if not Element.is_valid_symbol(sym) or sym in ("D", "T") or _overlaps(m.span(), found.taken):
            continue
        if _SITE_WORDS.match(text[m.end():]) and len(sym) == 1:
            continue  # "B-site", "X site": a crystallographic label, not boron
        if len(sym) == 1 and _SITE_BEFORE.search(text[:m.start()]) and re.match(r"\s*(?:$|[,.;:)]|and\b)",
                                                                               text[m.end():]):
            continue  # "Gd on A and Ti on B": site letters
        if sym in _UNITS and _UNIT_BEFORE.search(text[:m.start()]):
            continue  # "the 92 K superconductor"
        if re.match(r"[A-Z]{2,}", text[m.end():]):
            continue  # "FeRAM", "NiMH": an acronym that starts like a symbol
        found.add(m.start(), m.end(), "element", sym)


def _name_mentions(text: str, lowered: str, found: _Found) -> None:
    """Element names (not a verb, process or colour), names one slip off, misspelled families, lower-case formulas."""
    found.taken.extend(span for span in minerals_in(lowered) if not _overlaps(span, found.taken))  # "fool's gold"
    for name, sym in sorted(_NAMES.items(), key=lambda ns: -len(ns[0])):
        for m in re.finditer(rf"(?<![\w]){re.escape(name)}(?![\w])", lowered):
            if name == "lead" and re.match(r"\s+(?:to|the way|us|you)\b", lowered[m.end():]):
                continue  # the verb
            if _PROCESS_AFTER.match(lowered[m.end():]):
                continue  # "oxygen evolution", "hydrogen storage": a reaction or a use, not an ingredient
            if _COLOUR_AFTER.match(lowered[m.end():]):
                continue  # "a gold-coloured coating": a colour, not an ingredient
            found.add(m.start(), m.end(), "element", sym)
    for m in re.finditer(r"[a-z]{6,}", lowered):  # 'nickle', 'titanum', 'magnesum': one slip from a name
        sym = _misspelled_element(m.group(0))
        if sym and not _overlaps(m.span(), found.taken):
            found.add(m.start(), m.end(), "element", sym)
    if not any(m.kind == "family" for m in found.mentions):
        for m in _misspelled_families(lowered, found.taken):
            found.add(m.start, m.end, "family", m.value)
    for m in re.finditer(r"(?<![\w-])[a-z]{3,8}(?![\w])", text):  # 'snte', 'half heusler zrnisn'
        formula = None if _overlaps(m.span(), found.taken) else _lowercase_formula(m.group(0))
        if formula:
            found.add(m.start(), m.end(), "formula", formula)


def _kept_mentions(text: str, lowered: str, mentions: list[Mention]) -> list[Mention]:
    """The mentions in order, less 'layered' before another family and ambiguous symbols out of chemical context."""
    mentions.sort(key=lambda mt: mt.start)
    mentions = [a for a, b in zip(mentions, [*mentions[1:], None], strict=False)  # 'layered tetradymite-type'
                if not (b and a.kind == b.kind == "family" and lowered[a.start:a.end] == "layered"
                        and b.start - a.end <= 1)]
    kept: list[Mention] = []
    for mt in mentions:  # in order, so "Be and I" can lean on an accepted "Be"
        if mt.kind != "element" or mt.value not in AMBIGUOUS_SYMBOLS or _chemical_context(text, mt, kept):
            kept.append(mt)
    return kept


_TEMPLATE = re.compile(r"(?:[A-Z][a-z]?['’]*\d*(?:\.\d+)?)+")
PLACEHOLDERS = {"A", "X", "Z", "M", "R", "T", "Q", "E", "G", "D", "L", "J", "Ln", "B", "Y"}


def _template_elements(token: str) -> tuple[str, ...] | None:
    """'Co2YZ', 'A2FeMoO6', 'LiMPO4', 'CsPbX3': a formula written with site letters; returns its real elements (a
    letter that is a site label elsewhere in it, B or Y, counts as a label), or None when the token is no template."""
    if token in ACRONYM_COMPOUNDS:
        return None  # 'CZTSe' is Cu2ZnSnSe4, not C and Se with sites Z and T
    if not _TEMPLATE.fullmatch(token) or token.removesuffix("s").isupper() or _is_formula(token):
        return None  # LEDs, TCOs: plural acronyms
    if not re.search(r"\d", token) and (not re.search(r"[A-Z][a-z]", token) or re.search(r"[A-Z]{3}$", token)):
        return None  # 'FeRAM', 'NiMOF': an acronym after a symbol, not a site formula
    units = re.findall(r"([A-Z][a-z]?)(['’]*)", token)
    labels = [sym for sym, prime in units if prime or not Element.is_valid_symbol(sym) or sym in ("D", "T")]
    if not labels:
        return None
    real = [sym for sym, prime in units if not prime and sym not in labels and sym not in PLACEHOLDERS]
    if any(Element(sym).Z > 94 for sym in real):
        return None  # 'Ds', 'Mt': a word, not a site formula
    return tuple(dict.fromkeys(real)) if real else None


def _template_core(token: str) -> str:
    """A template with its site letters dropped ('LiMPO4' -> 'LiPO4'), to read its class from."""
    def kept(m: re.Match[str]) -> str:
        label = m.group("sym") in PLACEHOLDERS or not Element.is_valid_symbol(m.group("sym"))
        return "" if label else m.group(0)

    return re.sub(r"(?P<sym>Ln|[A-Z])['’]*\d*(?:\.\d+)?(?![a-z])", kept, token)


def family_of_formula(formula: str) -> str | None:
    """The family a formula belongs to: a family's best-known member, or the one family whose stoichiometry
    (sorted amounts of the reduced formula) it has; None when unknown or ambiguous (ABO3: perovskite or ilmenite)."""
    from models.crystals.prototypes import RATIOS

    reduced = _reduced(formula)
    if reduced is None:
        return None
    known = {(_reduced(f) or f): fam for f, fam in FORMULA_FAMILIES.items()}
    if reduced in known:
        return known[reduced]
    aflow = aflow_type_of_formula(reduced)
    if aflow:
        return aflow
    amounts = sorted(Composition(reduced).get_el_amt_dict().values())
    fits = [fam for fam, (_, ratio) in RATIOS.items() if sorted(ratio) == amounts and "orthorhombic" not in fam]
    if len(fits) > 1:  # ABX2: layered oxide for an oxide, chalcopyrite for a chalcogenide, Heusler for no anion
        elements = set(Composition(reduced).get_el_amt_dict())
        anionic = elements & set(SIMPLE_ANIONS)
        fits = [f for f in fits if (not anionic if f in INTERMETALLIC_FAMILIES
                                    else bool(anionic & set(FAMILY_ANIONS.get(f, ("O",)))))]
    return fits[0] if len(fits) == 1 else None


_NOT_TYPOS = {"sliver", "carton", "argots", "borons", "phosphor", "phosphors"}  # words one slip from an element


def _misspelled_element(word: str) -> str | None:
    """The element whose name is one edit (insertion, deletion, substitution or swap of neighbours) from the word."""
    if word in _NAMES or word.rstrip("s") in _NAMES or word in _NOT_TYPOS:
        return None
    for name, sym in _NAMES.items():
        if len(name) >= 6 and abs(len(name) - len(word)) <= 1 and _one_edit(word, name):
            return sym
    return None


def _one_edit(a: str, b: str) -> bool:
    """Damerau distance 1 between two different words."""
    if a == b:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _misspelled_families(lowered: str, taken: list[tuple[int, int]]) -> list[Mention]:
    """Family names typed with a slip ('perovksite', 'spinnel', 'pyrochlor'): a word of 6+ letters within a
    close edit of a one-word family name (difflib ratio >= 0.85)."""
    import difflib

    names = {}
    for fam, words in FAMILY_WORDS.items():
        for w in words:
            plain = re.sub(r"\?|\(.*?\)|\[.*?\]", "", w)
            if plain.isalpha() and len(plain) >= 6:
                names[plain] = fam
    out = []
    for m in re.finditer(r"[a-z]{6,}", lowered):
        if _overlaps(m.span(), taken) or m.group(0) in names:
            continue
        close = difflib.get_close_matches(m.group(0), list(names), n=1, cutoff=0.85)
        if close and not Element.is_valid_symbol(m.group(0).capitalize()) and m.group(0) not in _NAMES:
            out.append(Mention(m.start(), m.end(), "family", names[close[0]]))
    return out


def _reduced(token: str) -> str | None:
    try:
        return Composition(token).reduced_formula
    except Exception:  # noqa: BLE001
        return None


_CLASS_AFTER = re.compile(r"\s+(?:" + "|".join(sorted({*(n for n, c in COMPOUND_CLASSES.items() if c.anions),
                                                       "sulphide"}, key=len, reverse=True)) + r")s?\b", re.IGNORECASE)


def _chemical_context(text: str, mention: Mention, mentions: list[Mention]) -> bool:
    """An ambiguous symbol (In, As, I, Be, ...) is an element when a neighbour is chemical: a list of elements
    (`mentions` holds those accepted so far), a cue such as 'with' or 'without', or a hyphenated chemical suffix
    ('In-based', 'As-free')."""
    if text[mention.start:mention.end] != mention.value:
        return True  # written as a name ("indium"): never ambiguous
    after = text[mention.end:]
    if re.match(r"-(?:based|rich|poor|doped|free|containing|substituted|site)\b|\s*\d|$", after):
        return True
    if _CLASS_AFTER.match(after):
        return True  # "Bi telluride", "In phosphide": an element named before its compound's class
    if re.match(r"\s+(?:on|at|in|onto)\s+(?:the\s+)?[A-Z]['’]*(?:[- ]?sites?\b|\s*(?:$|[,.;)]|and\b))", after):
        return True  # "Bi on the A site"
    before = text[:mention.start].rstrip()
    if re.match(r"\s+out\b", after) and re.search(r"\b(?:keep|kept|keeping|leave|leaving)$", before, re.I):
        return True  # "keep Bi out"
    prev_words = re.findall(r"[A-Za-z']+|[,/&+]", before)[-2:]
    if prev_words:
        last = prev_words[-1].lower()
        if last == "of" and len(prev_words) > 1 and prev_words[-2].lower() in ("made", "composed", "consisting",
                                                                               "compound", "compounds"):
            last = "with"
        if last in _INCLUDE_CUES - {"and", "of", "from"} or last in _NEG_ONE:
            return bool(re.match(r"\s*(?:$|[,.;:)!?]|(?:and|or|for|as|to|in|on|at|with|from|that|which|only|"
                                 r"please|instead|rather|but)\b|[A-Z])", after))
        if last in _CONNECTORS:
            return any(m.kind in ("element", "formula") and 0 <= mention.start - m.end < 12 for m in mentions)
    nxt = re.match(r"\s*(,|and|or|/)\s*([A-Z][a-z]?)\b", after)
    return bool(nxt and Element.is_valid_symbol(nxt.group(2)) and nxt.group(2) not in AMBIGUOUS_SYMBOLS)


def _negated(text: str, mention: Mention, mentions: list[Mention]) -> bool:
    """True when a negation governs the mention: a '-free' after it, or a cue before it with only list words,
    other mentions and connectors between ('without Co, Ni or Mn', 'free of toxic Cd', 'no rare earths',
    'not containing nickel'). A family is negated only by a cue right before it ('not a spinel')."""
    if mention.kind in ("element", "group", "class") and (
        _FREE_AFTER.match(text[mention.end:]) or _BANNED_AFTER.match(text[mention.end:])
    ):
        return True
    if re.search(r"\bnon-?\s*$", text[:mention.start], re.IGNORECASE):
        return True
    if re.search(r"\b(?:keep|kept|keeping|leave|leaving)\s+(?:the\s+|any\s+)?$", text[:mention.start], re.I) and \
            re.match(r"\s+out\b", text[mention.end:], re.I):
        return True  # "keep Te out of it"
    if mention.kind == "family":
        return bool(re.search(r"(?:\bnot|\bno|n't|rather than|other than|instead of|except)\s+(?:an?\s+|the\s+)?$",
                              text[:mention.start], re.IGNORECASE))
    spans = [(m.start, m.end) for m in mentions if m is not mention and m.end <= mention.start and m.kind != "family"]
    words = [(s, e, w.lower()) for s, e, w in _tokens(text[:mention.start])]
    i = len(words) - 1
    while i >= 0:
        s, e, word = words[i]
        if any(a <= s and e <= b for a, b in spans):
            i -= 1
            continue
        if i > 0 and (words[i - 1][2], word) in _NEG_TWO:
            return True
        if word in _NEG_ONE or word.endswith("n't"):
            return True
        if word in _VERB_AFTER_NEGATION:  # "not containing X", "doesn't include X", "without using X"
            return i > 0 and (words[i - 1][2] in _NEG_ONE or words[i - 1][2].endswith("n't"))
        if word in ("a", "an", "the") and i > 0 and words[i - 1][2] in (",", ";", ":"):
            return False  # ', a stannate or zinc oxide': a new noun phrase, outside the negation before the comma
        if word in LIST_FILLERS:
            i -= 1
            continue
        return False
    return False


def _elements_before_family(text: str, mention: Mention, mentions: list[Mention]) -> bool:
    """'MgAl spinel', 'LaMn perovskite': metals run together before a family word name its cations, not a
    formula (no digits, no anion)."""
    if re.search(r"\d", mention.value):
        return False
    if not all(el.is_metal for el in Composition(mention.value).elements):
        return False
    return any(x.kind == "family" and 0 <= x.start - mention.end <= 2 for x in mentions)


def _aside(text: str, mention: Mention) -> bool:
    """The mention sits in a parenthesis or a 'because' clause: an explanation, not a requirement."""
    before = text[:mention.start]
    return before.count("(") > before.count(")") or bool(
        re.search(r"\b(?:because|since|as it|as they|which would|that would)\b[^.;,]*$", before, re.IGNORECASE))


def _explains_refusal(text: str, mention: Mention, mentions: list[Mention]) -> bool:
    """An element or group, not itself refused, in an aside on a refusal of it or of a group holding it
    ('titanium-free (Ti4+ gets reduced)', 'no rare earths (Y and Sc count as rare earths)'): no requirement."""
    if mention.negated or not _aside(text, mention):
        return False
    refused = [x for x in mentions if x.negated]
    if any(x.value == mention.value for x in refused):
        return True
    return mention.kind == "element" and any(  # a refused group covers its member elements
        x.kind == "group" and mention.value in ELEMENT_GROUPS[x.value] for x in refused)


def _optional(text: str, mention: Mention) -> bool:
    """A dopant ('Ce-doped', 'Ce:YAG', 'doped with Ce', 'the cerium is only a dopant') or an element the request
    allows without requiring ('aluminium welcome but not required', 'Al optional')."""
    after, before = text[mention.end:mention.end + 60].lower(), text[max(0, mention.start - 30):mention.start].lower()
    if re.match(r"(?:[- ](?:doped?|doping|activated|catalys|cataly[sz]ed)|:\s*[A-Za-z])|"
                r"\s+(?:is\s+)?(?:only\s+)?(?:an?\s+)?(?:dopant|activator)",
                after):
        return True
    if re.search(r"(?:doped|substituted|activated) with\s+(?:\w+\s+)?$|dopants?\s+(?:like|such as)?\s*$|"
                 r"\bhosts?\s+(?:crystal\s+|lattice\s+|material\s+|matrix\s+)?(?:for|of)\s+(?:the\s+)?$", before):
        return True  # "a host for Eu3+": the activator goes in later
    return bool(re.match(r"\s*(?:is\s+|are\s+)?(?:welcome|optional|allowed|fine|ok|possible|acceptable)\b|"
                         r"[^.;]{0,30}\bnot (?:required|necessary|needed|essential)", after))


@dataclass
class _Collected:
    """What the mentions of a request contribute before the reading is settled (read_request's first stage)."""

    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    classes: list[Mention] = field(default_factory=list)
    ions: list[str] = field(default_factory=list)  # working ions: required only where the material holds the ion
    template_elements: list[str] = field(default_factory=list)  # a 'LiMPO4'-style template's: asked unless refused
    refused_formulas: list[str] = field(default_factory=list)


def read_request(text: str) -> MaterialsRequest:
    """The offline reading of a request. Raises ToolInputError only for an empty or unreadable request; a request
    that chemistry rules out comes back with `decline` set to the reason."""
    cleaned = _cleaned_request(text)
    lowered = cleaned.lower()
    req = MaterialsRequest(text=cleaned)
    mentions = _negated_mentions(cleaned)
    got = _Collected()
    for m in mentions:
        _read_mention(cleaned, m, mentions, req, got)
    req.derived_formulas.extend(f for f in ratio_formulas(cleaned) if f not in req.derived_formulas)  # 'Sm-Co 1:5'
    _read_named_compounds(cleaned, req)
    _settle_elements(req, got)
    _read_alternatives(cleaned, mentions, req)
    _read_semiconductor_groups(lowered, req, got.classes)
    _apply_substitutions(cleaned, mentions, req)
    only_elements = _read_only(lowered, mentions, req)
    _read_class(req, got.classes)
    centres = {el for m in got.classes for el in m.implied if m.value == "oxide"}  # "a titanate of a 3d metal": no Ti
    req.include_any = [[el for el in g if el not in centres] if len(set(g) - centres) > 1 else g
                       for g in req.include_any]
    _close_only(req, only_elements)
    _read_element_count(lowered, req)
    _read_goal(lowered, req)
    _read_application(lowered, req)
    _read_molecular_anion(lowered, req)
    _place_working_ions(req, got.ions)
    _require_redox_metal(req)
    _require_magnetic_ion(req)
    _settle_family(cleaned, req)
    req.decline = decline_reason(req)
    if not (req.family or req.include or req.compound_class or req.formulas or req.named_compounds or req.include_any
            or req.application or req.decline or req.n_elements):
        raise ToolInputError(
            "could not find elements, a structure family, a compound class or a formula in the request; try e.g. "
            "'a double perovskite oxide with La and Mn' or 'a lead-free halide perovskite'"
        )
    return req


def _cleaned_request(text: str) -> str:
    """The request as plain, single-spaced text; ToolInputError when it is empty or too long."""
    cleaned = _uncapitalised(" ".join(plain_request(str(text)).split()))
    if not cleaned:
        raise ToolInputError("the request is empty: say what material you want, e.g. 'a stable spinel with Mg and Al'")
    if len(cleaned) > MAX_REQUEST_CHARS:
        raise ToolInputError(f"the request is {len(cleaned)} characters; keep it under {MAX_REQUEST_CHARS}")
    return cleaned


def _negated_mentions(cleaned: str) -> list[Mention]:
    """The request's mentions, each marked negated where the request refuses it ('no Pb', 'Co- and Ni-free')."""
    mentions = _find_mentions(cleaned)
    for m in mentions:
        m.negated = _negated(cleaned, m, mentions)
    _spread_postfix_negation(cleaned, mentions)
    return mentions


def _read_mention(text: str, m: Mention, mentions: list[Mention], req: MaterialsRequest, got: _Collected) -> None:
    """What one mention asks for, by its kind, into the request or the collected lists."""
    if m.kind == "element":
        _read_element_mention(text, m, mentions, req, got)
    elif m.kind == "group":
        if _explains_refusal(text, m, mentions):
            return  # "no rare earths (Y and Sc count as rare earths)": the aside defines, it does not ask
        members = list(ELEMENT_GROUPS[m.value])
        if m.negated:
            got.exclude.extend(members)
        elif m.value not in REFUSAL_ONLY_GROUPS:  # "a metal oxide": no requirement
            req.include_any.append(members)
    elif m.kind == "template":  # 'Co2YZ with Y = Fe': the template's own elements are asked for
        if m.negated:
            return
        got.template_elements.extend(el for el in m.implied if el not in SIMPLE_ANIONS)
        req.derived_formulas.extend(f for f in filled_templates(text, m.value) if f not in req.derived_formulas)
        cls = _class_of_formula(_template_core(m.value)) if set(m.implied) & set(SIMPLE_ANIONS) else None
        if cls:
            got.classes.append(Mention(m.start, m.end, "class", cls, implied=("template",)))
    elif m.kind == "reference":
        req.formulas.append(m.value)
        req.reference_formulas.append(m.value)
    elif m.kind == "formula":
        _read_formula_mention(text, m, mentions, req, got)
    elif m.kind == "class":
        _read_class_mention(m, mentions, got)
    elif m.kind == "family":
        worded = [x for x in mentions if x.kind == "family" and not x.negated and not x.implied]
        if m.negated:
            req.exclude_families.append(m.value)
        elif m.implied and worded:
            return  # "ZnGeP2-type chalcopyrite": the family word, not the formula's stoichiometric guess
        elif req.family is None or _more_specific(m.value, req.family):
            req.family = m.value


def _read_element_mention(text: str, m: Mention, mentions: list[Mention], req: MaterialsRequest,
                          got: _Collected) -> None:
    """An element: a working ion, refused, an aside on a refusal, optional (a dopant) or required."""
    if not m.negated and _working_ion(text, m):
        got.ions.append(m.value)  # "for Li-ion cells": required only where the ion is in the material (below)
    elif m.negated:
        got.exclude.append(m.value)
    elif _explains_refusal(text, m, mentions):
        return  # "titanium-free (Ti4+ gets reduced)": the aside explains the refusal
    elif _optional(text, m):
        req.optional.append(m.value)
    else:
        got.include.append(m.value)


def _read_formula_mention(text: str, m: Mention, mentions: list[Mention], req: MaterialsRequest,
                          got: _Collected) -> None:
    """A formula: its elements ('MgAl spinel'), a formula asked for (and 'like X' its family), or one refused."""
    if not m.negated and _elements_before_family(text, m, mentions):
        got.include.extend(el.symbol for el in Composition(m.value).elements)  # 'MgAl spinel': Mg and Al
    elif not m.negated:
        req.formulas.append(m.value)
        fam = family_of_formula(m.value)
        like = re.search(r"(?:like|similar to|analog(?:ue)? of|isostructural (?:with|to))\s*$",
                         text.lower()[:m.start])
        if fam and like and not any(x.kind == "family" for x in mentions):
            req.family = fam
    else:
        got.refused_formulas.append(m.value)  # "not TaON": its elements, less those asked for (below)


def _read_class_mention(m: Mention, mentions: list[Mention], got: _Collected) -> None:
    """A compound class: asked for (with the elements its word implies), or refused."""
    if m.negated and m.implied:  # "rather than zirconia": no Zr; the oxide itself is not refused
        got.exclude.extend(m.implied)
    elif m.negated:
        cls = COMPOUND_CLASSES[m.value]
        asserted = any(x.kind == "class" and x.value == m.value and not x.negated for x in mentions)
        if not asserted:  # "an oxide that is not zinc oxide" refuses Zn, not O
            got.exclude.extend(cls.anions if len(cls.anions) == 1 else ())
    else:
        got.classes.append(m)
        got.include.extend(m.implied)


def _read_named_compounds(text: str, req: MaterialsRequest) -> None:
    """Compounds named in words or acronyms: asked for unless refused; one before 'type' names a family instead."""
    for compound in named_compounds(text):
        if _TYPE_AFTER.match(text[compound.end:]):  # "cesium chloride type bromide": a structure, not an answer
            fam = family_of_formula(compound.formulas[0]) if len(compound.formulas) == 1 else None
            if fam and req.family is None:
                req.family = fam
            continue
        if not re.search(r"(?:\bnot|\bno|\bwithout|\bthan|instead of|n't)\s+(?:an?\s+|the\s+|any\s+)?$",
                         text[:compound.start], re.IGNORECASE):
            req.named_compounds.extend(f for f in compound.formulas if f not in req.named_compounds)
            if compound.exact:
                req.exact_compounds.extend(compound.formulas)


def _settle_elements(req: MaterialsRequest, got: _Collected) -> None:
    """The required and excluded elements from the collected mentions: a refused formula refuses its elements less
    those asked for, and a template's elements are asked unless refused."""
    asked = {*got.include, *(el for m in got.classes for el in COMPOUND_CLASSES[m.value].anions[:1])}
    for formula in got.refused_formulas:  # "a nitride of Ta, oxygen-free, so not TaON": O is refused, not Ta and N
        got.exclude.extend(el.symbol for el in Composition(formula).elements if el.symbol not in asked)
    req.include = list(dict.fromkeys([*got.include, *(el for el in got.template_elements if el not in got.exclude)]))
    req.exclude = sorted(set(got.exclude))


_ONLY = re.compile(r"\b(?:only|solely|exclusively|purely|nothing but|just|made of|composed of|consisting of|"
                   r"made up of|consists of|no (?:other )?elements? (?:besides|other than|apart from|except|but))\b")


def _read_only(lowered: str, mentions: list[Mention], req: MaterialsRequest) -> bool:
    """'only X and Y', 'made of X and a rare earth': the closed set of elements allowed; True when it lists
    elements alone (no group), so their count is the element count."""
    only_span = _ONLY.search(lowered)
    if not only_span:
        return False
    after = [m for m in mentions if m.start > only_span.start() and not m.negated]
    allowed = [m.value for m in after if m.kind == "element"]
    allowed += [el for m in after if m.kind == "group" for el in ELEMENT_GROUPS[m.value]]
    if not allowed:
        return False
    req.only = sorted(set(allowed) | set(req.include))
    req.include_any = [g for g in req.include_any if not set(g) <= set(req.only)]
    return not any(m.kind == "group" for m in after)


def _close_only(req: MaterialsRequest, only_elements: bool) -> None:
    """The class's anions join the allowed set ('a nitride of only lithium'); a list of elements alone fixes the
    element count ('a III-V made of In and Sb': two)."""
    named_only = set(req.only or ())
    if req.only is not None and req.anions:
        req.only = sorted(set(req.only) | set(req.anions))
    if req.only is not None and only_elements and req.n_elements is None:
        req.n_elements = len(named_only | ({req.anion} if req.anion else set()))


def _read_element_count(lowered: str, req: MaterialsRequest) -> None:
    """'a ternary', 'three-element': the number of elements."""
    for word, count in COUNT_WORDS.items():
        if re.search(rf"\b{word}\b", lowered):
            req.n_elements = count
    count = re.search(r"\b(two|three|four|five|2|3|4|5)[- ]elements?\b", lowered)
    if count:
        req.n_elements = {"two": 2, "three": 3, "four": 4, "five": 5}.get(count.group(1)) or int(count.group(1))


def _read_goal(lowered: str, req: MaterialsRequest) -> None:
    """Stable, metastable or novel, from the goal words (a metastable one settles it)."""
    for word, goal in GOAL_WORDS.items():
        if re.search(rf"\b{word}\b", lowered) and not re.search(rf"\b(?:not|no)\s+{word}\b", lowered):
            req.goal = goal
            if goal == "metastable":
                break


def _read_application(lowered: str, req: MaterialsRequest) -> None:
    """The first application named: its usual families, and one of the ions it implies (a spin ice: Dy or Ho)."""
    for app in APPLICATIONS:
        if any(re.search(rf"(?<![\w]){w}(?![\w])", lowered) for w in app.words):
            req.application = app.name
            req.preferred_families = [f for f in app.families if f not in req.exclude_families]
            _require_one_of(req, app.implies, f"a {app.name} needs", asked_only=True)  # a spin ice: Dy or Ho
            break


def _settle_family(cleaned: str, req: MaterialsRequest) -> None:
    """A family read by meaning when none is named, and what a family implies for the class (an intermetallic
    type; the layered oxides)."""
    lowered = cleaned.lower()
    if req.family is None and not req.formulas:
        from tools.discovery.family_semantics import semantic_family

        guess = semantic_family(cleaned)
        if guess:
            req.family = guess[0]
            req.notes.append(f"family read as {guess[0]!r} by meaning ({guess[1]:.2f} similarity to its description)")
    if req.family in INTERMETALLIC_FAMILIES and req.compound_class is None and not req.anions:
        req.compound_class = "intermetallic"
    elif req.family == "layered oxide" and req.compound_class is None:
        set_compound_class(req, "oxide")
    elif req.family == "layered oxide" and req.compound_class != "oxide" and \
            re.search(r"\blayered\b(?![- ](?:transition[- ]metal )?oxide)", lowered):
        req.family = None  # 'a layered telluride': layers, not the alpha-NaFeO2 oxides


REFUSAL_ONLY_GROUPS = ("metal", "nonmetal")  # groups read only when refused
_LIST_GAP = re.compile(r"\s*,?\s*(?:and|or|/|&|nor)\s*", re.IGNORECASE)  # not a bare comma: "with Mg, Fe excluded"


def _spread_postfix_negation(text: str, mentions: list[Mention]) -> None:
    """'cobalt and nickel free', 'Co- and Ni-free', 'Fe or Mn excluded': a '-free' or 'excluded' after a list
    joined by and / or negates the whole list. A hyphen binds '-free' to its own word ('lithium and cobalt-free' keeps
    lithium) unless
    the earlier word has a dangling hyphen ('Co- and Ni-free')."""
    for i, m in enumerate(mentions):
        after = text[m.end:]
        if m.kind not in ("element", "group") or not (_FREE_AFTER.match(after) or _BANNED_AFTER.match(after)):
            continue
        hyphen_bound = after.startswith("-")
        j = i - 1
        while j >= 0:
            prev, nxt = mentions[j], mentions[j + 1]
            gap = text[prev.end:nxt.start]
            if prev.kind != m.kind or not _LIST_GAP.fullmatch(gap.lstrip("-")):
                break  # "a 3d transition metal, Ni excluded": the group is asked for, Ni refused
            if hyphen_bound and not gap.startswith("-"):
                break
            prev.negated = True
            j -= 1


_ION_AFTER = re.compile(r"(?:-|\s)?(?:ions?\b|(?:S|air|O2|metal|sulfur|sulphur)[- ]batter|batter|cells?\b|"
                        r"chemistry\b|storage\b)", re.IGNORECASE)
_CONVERSION = re.compile(r"\bconversion\b|\b(?:li|na|k|mg|lithium|sodium)[- ](?:s|sulfur|sulphur|o2|air|oxygen)\b",
                         re.IGNORECASE)  # conversion electrodes and Li-S / Li-air cells: no intercalation host
_ION_HOSTS = ("battery cathode", "solid electrolyte", "battery")  # the working ion sits in these materials


def _read_molecular_anion(lowered: str, req: MaterialsRequest) -> None:
    """'a borohydride', 'sodium amide': the molecular anion, whose elements the compound must hold."""
    for word, (unit, _charge) in MOLECULAR_ANIONS.items():
        m = re.search(rf"\b{word}s?\b", lowered)
        unit_elements = list(Composition(unit).get_el_amt_dict())
        if m and not re.search(r"\b(?:no|not|without|non)[- ](?:an?\s+|the\s+|any\s+)?$", lowered[:m.start()]) \
                and not set(unit_elements) & set(req.exclude):  # 'no boron, so not the borohydride'
            req.molecular_anion = unit
            req.include.extend(el for el in unit_elements if el not in req.include)
            return


def _working_ion(text: str, mention: Mention) -> bool:
    """'Li-ion cells', 'for Li batteries', 'Na ion storage': the element named as a battery's working ion."""
    return mention.value in WORKING_IONS and bool(_ION_AFTER.match(text[mention.end:]))


def _place_working_ions(req: MaterialsRequest, ions: list[str]) -> None:
    """A working ion is part of an intercalation cathode or a solid electrolyte (LiCoO2, Li3YCl6) but not of an anode
    or a conversion electrode (Cu6Sn5, FeOF): required only in the first case, noted otherwise."""
    if not ions:
        return
    holds = [f for f in req.exact_compounds if set(ions) & {el.symbol for el in Composition(f).elements}]
    if req.exact_compounds and not holds:  # 'vanadium(V) oxide as a cathode for Zn-ion cells': V2O5 is the host
        req.notes.append(", ".join(dict.fromkeys(ions)) + " read as the working ion the named compound hosts")
    elif req.application in _ION_HOSTS and not re.search(r"\bconversion\b", req.text, re.IGNORECASE):
        req.include.extend(el for el in dict.fromkeys(ions) if el not in req.include)
    else:
        named = ", ".join(dict.fromkeys(ions))
        req.notes.append(f"{named} read as the battery's working ion, not as an element the material must hold")


_PRIMARY_CELL = re.compile(r"\b(?:thermal|primary|non-?rechargeable)\s+(?:batter|cell)", re.IGNORECASE)
REDOX_METALS = ("Fe", "Mn", "Co", "Ni", "V", "Cr", "Ti", "Cu", "Mo", "Nb")
WORKING_IONS = ("Li", "Na", "K", "Mg", "Ca", "Zn", "Al")


def _require_redox_metal(req: MaterialsRequest) -> None:
    """A battery cathode holds a working ion (Li unless another is named: "a phosphate cathode" is a Li-ion one) and
    stores charge on a transition metal that changes oxidation state: when the request names none ("a Co- and
    Ni-free phosphate cathode for Na-ion"), one of the redox-active metals is required. Not for SOFC cathodes."""
    if req.application != "battery cathode" or re.search(r"\bsofc|fuel[- ]cell", req.text, re.IGNORECASE):
        return
    if _CONVERSION.search(req.text):  # FeOF, Li2S: the anion or a conversion reaction carries the charge
        return
    named = {*req.include, *(el for group in req.include_any for el in group)}
    # "a phosphate cathode": Li-ion unless told otherwise (or a compound is named)
    primary = req.n_elements == 2 or _PRIMARY_CELL.search(req.text)  # FeS2, CoS2, MnO2: no working ion to host
    if not named & set(WORKING_IONS) and not req.formulas and not req.named_compounds and not primary:
        ion = next((el for el in WORKING_IONS if el not in req.exclude and (req.only is None or el in req.only)), None)
        if ion:
            req.include.append(ion)
            req.notes.append(f"no working ion named: a {ion}-ion cathode assumed")
    _require_one_of(req, REDOX_METALS, "a cathode needs a redox-active transition metal:")


def _require_one_of(req: MaterialsRequest, elements: tuple[str, ...], why: str, asked_only: bool = False) -> None:
    """Unless the request already names one of them, one of the given elements it allows becomes required, with a
    note '<why> one of ...'. By default an element of an either-or group counts as named and `only` narrows the
    choice; with asked_only (an application's own ions: a spin ice needs Dy or Ho) only elements asked outright and
    not refused count, and every element not refused stays in the choice."""
    if asked_only:
        named = set(req.include) - set(req.exclude)
    else:
        named = {*req.include, *(el for group in req.include_any for el in group)}
    if named & set(elements):
        return
    allowed = [el for el in elements if el not in req.exclude and (asked_only or req.only is None or el in req.only)]
    if allowed:
        req.include_any.append(allowed)
        req.notes.append(f"{why} one of " + ", ".join(allowed))


MAGNETIC_IONS = ("Fe", "Co", "Mn", "Ni", "Cr", "Nd", "Sm", "Gd", "Dy", "Tb")  # open d or f shells that order
MOMENT_IONS = (*MAGNETIC_IONS, "Eu", "Ho", "Er", "Tm", "Pr", "Ce", "Yb", "V", "Cu", "Ru", "Ir", "Os", "Mo")  # any


def _require_magnetic_ion(req: MaterialsRequest) -> None:
    """A magnet needs atoms with moments that order (Fe, Co, Mn, Ni, Cr or a magnetic rare earth): when the request
    names none, one of those it allows is required (a gallium garnet is no magnet; yttrium iron garnet is). A named
    ion with a moment of its own (Eu2+ in EuO) is enough."""
    if req.application == "magnet" and not set(req.include) & set(MOMENT_IONS):
        _require_one_of(req, MAGNETIC_IONS, "a magnet needs ordered moments:")


_OR_GAP = re.compile(r"\s*,?\s*or\s+(?:else\s+)?", re.IGNORECASE)


def _read_alternatives(text: str, mentions: list[Mention], req: MaterialsRequest) -> None:
    """'Sr or Ba', 'a stannate or zinc oxide': elements joined by 'or' are alternatives (one of them required),
    not all required."""
    chains: list[list[str]] = []
    for a, b in zip(mentions, mentions[1:], strict=False):
        if a.negated or b.negated or not _OR_GAP.fullmatch(text[a.end:b.start]):
            continue
        left = [a.value] if a.kind == "element" else list(a.implied)
        right = [b.value] if b.kind == "element" else list(b.implied)
        if len(left) != 1 or len(right) != 1:
            continue
        if chains and chains[-1][-1] == left[0]:
            chains[-1].append(right[0])
        else:
            chains.append([left[0], right[0]])
    for chain in chains:
        members = list(dict.fromkeys(chain))
        if len(members) < 2:
            continue
        req.include = [el for el in req.include if el not in members]
        req.include_any.append(members)


_SEMICONDUCTOR_GROUPS = {  # "a III-V semiconductor": a group-13 cation with a pnictide
    "iii-v": ("pnictide", ("B", "Al", "Ga", "In")),
    "ii-vi": ("chalcogenide", ("Zn", "Cd", "Mg", "Be", "Hg")),
    "iv-vi": ("chalcogenide", ("Ge", "Sn", "Pb")),  # PbTe, SnTe, GeTe
    "v-vi": ("chalcogenide", ("Sb", "Bi")),  # Bi2Te3, Sb2Se3
    "iii-vi": ("chalcogenide", ("Ga", "In")),  # GaSe, InSe
}


def _read_semiconductor_groups(lowered: str, req: MaterialsRequest, classes: list[Mention]) -> None:
    """III-V, II-VI, IV-VI, ...: the cation's group and the anion class the label means."""
    for label, (cls, cations) in _SEMICONDUCTOR_GROUPS.items():
        if re.search(rf"(?<![\w-]){label}(?![\w-])", lowered):
            allowed = [el for el in cations if el not in req.exclude]
            if allowed and not set(allowed) & set(req.include):
                req.include_any.append(allowed)
            if not classes:
                classes.append(Mention(0, 0, "class", cls))


_NEW_FOR_OLD = re.compile(  # "Ba instead of Sr", "In in place of Bi", "Ca replacing Mg"
    r"\s+(?:instead of|in place of|in lieu of|rather than|substitut\w* for|replacing|that replaces|swapped in for)\s+"
    r"(?:the\s+)?", re.I)
_OLD_BY_NEW = re.compile(  # "Fe replaced by Mn", "gallium swapped for indium", "Sn exchanged with Ge"
    r"\s+(?:replaced|swapped|switched|exchanged|traded|substituted)(?: out)? (?:with|by|for)\s+|\s*(?:->|→)\s*", re.I)
_REPLACE_OLD = re.compile(r"\b(?:replac|swap|switch|exchang|trad)\w*\s+(?:the\s+|all\s+(?:the\s+)?)?$", re.I)
_CHARGE = re.compile(r"^(?:\d?[+-]|\((?:I{1,3}|IV|VI{0,3}|\d?[+-])\))")  # "Fe3+ replacing", "Fe(III) for"
_ON_SITE = re.compile(r"\s+(?:on|at|onto|into|in|occupying|sitting on)\s+(?:the\s+|its\s+)?", re.I)
_SITE_AFTER = re.compile(r"[- ]?(?:sites?|positions?|sublattice)\b", re.I)
_SITE_BY = re.compile(r"[- ]?(?:sites?|positions?|sublattice)\s+(?:taken|occupied|filled|replaced|substituted)\s+"
                      r"(?:by|with)\s+", re.I)
_NEW_CUE = re.compile(r"(?:\bbut(?: with)?|\buse|\busing|\bput|\bwith|,)\s+$", re.I)  # "but Si for Ge"


def _swaps(text: str, elements: list[Mention]) -> list[tuple[str, str]]:
    """(old, new) pairs the request asks for, in its many wordings: 'X instead of Y', 'Y replaced by X', 'replace Y
    with X', 'swap the Y for X', 'but X for Y'."""
    swaps: list[tuple[str, str]] = []
    for a, b in zip(elements, elements[1:], strict=False):
        between, before, after = _CHARGE.sub("", text[a.end:b.start]), text[:a.start], text[b.end:]
        if _ON_SITE.fullmatch(between) and _SITE_AFTER.match(after):  # "put V on the Nb site"
            swaps.append((b.value, a.value))
        elif _SITE_BY.fullmatch(between):  # "the Nb site taken by V"
            swaps.append((a.value, b.value))
        elif _NEW_FOR_OLD.fullmatch(between):
            swaps.append((b.value, a.value))
        elif _OLD_BY_NEW.fullmatch(between) or (
            re.fullmatch(r"\s+(?:with|by|for|to)\s+", between) and _REPLACE_OLD.search(before)
        ):
            swaps.append((a.value, b.value))
        elif re.fullmatch(r"\s+for\s+", between) and _NEW_CUE.search(before):
            swaps.append((b.value, a.value))
    return swaps


def _implied_swaps(req: MaterialsRequest) -> list[tuple[str, str]]:
    """A swap the request implies without naming both sides: 'like Cu2ZnSnS4 but tin-free, put germanium in',
    'Li3YCl6 but no rare earths; use indium' (one excluded element of the formula, one new required element), or
    'the Li2S antifluorite but with selenium' (a new element of the same group as one of the formula's)."""
    if len(req.formulas) != 1:
        return []
    elements = {el.symbol for el in Composition(req.formulas[0]).elements}
    new = [el for el in req.include if el not in elements]
    out_ = [el for el in elements if el in req.exclude]
    if len(new) == 1 and len(out_) == 1:
        return [(out_[0], new[0])]
    if len(new) == 1 and not out_:
        group = Element(new[0]).group
        same = [el for el in elements if Element(el).group == group]
        if len(same) == 1:
            return [(same[0], new[0])]
    return []


def _apply_substitutions(text: str, mentions: list[Mention], req: MaterialsRequest) -> None:
    """'like SrTiO3 but with Ba instead of Sr', 'LiFePO4 with Fe replaced by Mn': the named formula with the swap
    applied becomes the formula asked for (proposed first); the named one stays as a reference."""
    swaps = _swaps(text, [m for m in mentions if m.kind == "element"])
    for old, new in swaps:  # the element swapped out is excluded, the one swapped in required
        req.include = [el for el in req.include if el != old] + ([new] if new not in req.include else [])
        req.exclude = sorted(set(req.exclude) | {old})
    if not req.formulas:
        return
    if not swaps:
        swaps = _implied_swaps(req)
        for old, _new in swaps:
            req.exclude = sorted(set(req.exclude) | {old})
    for formula in list(req.formulas):
        amounts = Composition(formula).get_el_amt_dict()
        changed = dict(amounts)
        for old, new in swaps:
            if old in changed and new not in changed:
                changed[new] = changed.pop(old)
        if changed != amounts:
            swapped = Composition(changed).reduced_formula
            if formula not in req.reference_formulas:
                req.reference_formulas.append(formula)
            if swapped not in req.derived_formulas:
                req.derived_formulas.append(swapped)
            req.notes.append(f"{formula} with {', '.join(f'{n} for {o}' for o, n in swaps)} is {swapped}")


def _more_specific(new: str, old: str) -> bool:
    """'double perovskite' refines 'perovskite'; otherwise the first family named wins."""
    return old in new and new != old


def _read_class(req: MaterialsRequest, classes: list[Mention]) -> None:
    """The compound class: named, or implied by an anion among the required elements; sets anion(s)."""
    names = [m.value for m in classes]
    mixed = [n for n in names if COMPOUND_CLASSES[n].mixed]
    chosen = None
    if mixed:
        chosen = mixed[0]
    elif names:
        explicit = [m.value for m in classes if not m.implied]  # "a titanate halide": the anion word wins
        chosen = (explicit or names)[0]
        for name in explicit:  # "a halide perovskite, iodide only": the narrower class
            narrower, wider = set(COMPOUND_CLASSES[name].anions), set(COMPOUND_CLASSES[chosen].anions)
            if narrower and narrower < wider:
                chosen = name
        either = list(dict.fromkeys(n for n in explicit if len(COMPOUND_CLASSES[n].anions) == 1))
        if len(either) > 1 and re.search(r"\bor\b", req.text[classes[0].start:classes[-1].end]):
            # "oxide, sulfide or selenide all fine": any of these anions, no one class
            req.anions = [COMPOUND_CLASSES[n].anions[0] for n in either
                          if COMPOUND_CLASSES[n].anions[0] not in req.exclude]
            return
    asked = req.derived_formulas or [f for f in req.formulas if f not in req.reference_formulas]
    if chosen is None and asked:  # the formula asked for (the swapped one), not a "CsCl-type" reference
        chosen = _class_of_formula(asked[0])
    if chosen is None:
        anions_named = [el for el in req.include if el in ANION_CLASS]
        if len(anions_named) == 1:
            chosen = ANION_CLASS[anions_named[0]]
    if chosen is not None:
        set_compound_class(req, chosen)


def set_compound_class(req: MaterialsRequest, name: str) -> None:
    """Set the compound class and what follows from it: the anions it allows (minus excluded ones; a mixed class
    needs all of its anions), the anion when one is fixed or named, the polyanion centre. Used by the offline reader
    and for an LLM's reading alike."""
    cls = COMPOUND_CLASSES[name]
    req.compound_class = name
    req.anions = [a for a in cls.anions if a not in req.exclude] if not cls.mixed else list(cls.anions)
    if len(cls.anions) == 1 or cls.mixed:
        req.anion = cls.anions[0] if cls.anions else None
    elif len(req.anions) == 1:
        req.anion = req.anions[0]
    named = [a for a in req.anions if a in req.include]
    if named and not cls.mixed:
        req.anion = named[0]
    req.polyanion = cls.polyanion  # the proposer puts P on the tetrahedral site; "include" keeps what was named


def _class_of_formula(formula: str) -> str | None:
    """The compound class of a named formula: phosphate / silicate for PO4 / SiO4 units, else its one anion."""
    amounts = Composition(formula).get_el_amt_dict()
    if "O" in amounts:
        for centre, cls in (("P", "phosphate"), ("Si", "silicate")):
            if centre in amounts and amounts["O"] >= 4 * amounts[centre] - 1e-6:
                return cls
    anions = [el for el in SIMPLE_ANIONS if el in amounts]
    return ANION_CLASS[anions[0]] if len(anions) == 1 and len(amounts) > 1 else None


_STATE_AFTER = (r"\s*(?:\(\s*([IVX]{1,4})\s*\)|(\d)\+|\s+in\s+(?:the|a|an|its)\s+\+(\d)\s+"
                r"(?:oxidation\s+|valence\s+)?states?)")
_STATED = (  # an element name (any case) or symbol with a state after it
    re.compile(rf"\b({'|'.join(sorted(map(re.escape, _NAMES), key=len, reverse=True))}){_STATE_AFTER}", re.IGNORECASE),
    re.compile(rf"\b([A-Z][a-z]?){_STATE_AFTER}"),
)


def _stated_elements(text: str) -> list[tuple[str, int]]:
    """Elements given a positive oxidation state in the request: 'sodium in the +3 oxidation state', 'Na(III)',
    'Fe3+', 'Cu in its +4 state'."""
    out = []
    for pattern in _STATED:
        for m in pattern.finditer(text):
            word = m.group(1)
            symbol = _NAMES.get(word.lower()) or (word if Element.is_valid_symbol(word) else None)
            roman, plus, stated = m.group(2), m.group(3), m.group(4)
            value = ROMAN_NUMERALS.get((roman or "").upper()) or int(plus or stated or 0)
            if symbol and value:
                out.append((symbol, value))
    return out


LAST_KNOWN_Z = 118
# 'element 126', 'unbihexium': beyond the known table (systematic names un-/bi-... are used only past Z = 118)
_UNKNOWN_ELEMENT = re.compile(r"\belement(?:\s+(?:number|no\.?|z\s*=?))?\s+(\d{3})\b|"
                              r"\b(?:un|bi|tri)(?:nil|un|bi|tri|quad|pent|hex|sept|oct|enn){2}ium\b", re.IGNORECASE)


def decline_reason(req: MaterialsRequest) -> str | None:
    """Why chemistry rules the request out, or None: contradictions, noble gases, impossible element counts,
    anion classes without a cation, intermetallic families asked as ionic compounds."""
    clash = sorted(set(req.include) & set(req.exclude))
    if clash:
        return f"contradictory request: {', '.join(clash)} is both required and excluded"
    unknown = _UNKNOWN_ELEMENT.search(req.text)
    if unknown and (not unknown.group(1) or int(unknown.group(1)) > LAST_KNOWN_Z):
        return (f"'{unknown.group(0)}' is no known element (the periodic table ends at Z = {LAST_KNOWN_Z}, "
                "oganesson); nothing can be built with it")
    cls = COMPOUND_CLASSES.get(req.compound_class or "")
    if cls and cls.anions and not req.anions:
        return f"contradictory request: {_article(cls.name)} needs {'/'.join(cls.anions)}, which it excludes"
    if cls and cls.mixed and set(cls.anions) & set(req.exclude):
        return f"contradictory request: {_article(cls.name)} needs {' and '.join(cls.anions)}, which it excludes"
    if req.family and req.family in req.exclude_families:
        return f"contradictory request: asks for a {req.family} and excludes it"
    inert = [el for el in req.include if el in ("He", "Ne", "Ar")]
    if inert:
        return (f"{', '.join(inert)} form no stable solid compounds (closed-shell noble gases); no crystal of this "
                "kind can be proposed")
    heavy_inert = [el for el in req.include if el in NOBLE_GASES]
    anion_given = req.compound_class in ("fluoride", "oxide", "oxyfluoride") or bool(
        set(req.include) & {"F", "O"})
    if heavy_inert and not anion_given and (
        set(req.include) <= set(NOBLE_GASES) or (req.only and set(req.only) <= set(NOBLE_GASES))
    ):
        return f"compounds of noble gases alone ({', '.join(heavy_inert)}) do not exist as stable solids"
    if heavy_inert and (req.family or (req.compound_class not in (None, "fluoride", "oxide"))):
        return (f"{', '.join(heavy_inert)} form only a few molecular fluorides and oxides, no "
                f"{req.family or req.compound_class}")
    for formula in [f for f in req.formulas if f not in req.reference_formulas]:
        comp = Composition(formula)
        if comp.num_atoms > MAX_FORMULA_ATOMS:
            return (f"the formula {formula} has {comp.num_atoms:.0f} atoms per formula unit; matsearch builds cells of "
                    f"at most {MAX_FORMULA_ATOMS} atoms")
        ionic = req.compound_class not in (None, "intermetallic") or req.family not in (None, *INTERMETALLIC_FAMILIES)
        if ionic and {el.symbol for el in comp.elements} & set(SIMPLE_ANIONS):
            try:
                balanced = bool(comp.oxi_state_guesses(max_sites=-20))
            except Exception:  # noqa: BLE001 - pymatgen gives up on some compositions
                balanced = True
            if not balanced:
                return f"{formula} cannot balance charge with any common oxidation states of its elements"
    for el, state in _stated_elements(req.text):
        if state not in Element(el).oxidation_states:
            return (f"{Element(el).long_name.lower()} has no known +{state} oxidation state (known: "
                    f"{', '.join(f'{s:+d}' for s in Element(el).oxidation_states)}); no compound can hold it")
    nonmetals = [el for el in req.include if el in (*SIMPLE_ANIONS, "H")]
    if req.compound_class == "intermetallic" and nonmetals:
        return (f"an intermetallic is a compound of metals; {', '.join(nonmetals)} would make it a salt "
                f"({ANION_CLASS.get(nonmetals[0], 'an ionic compound')}), not an intermetallic")
    if req.family in INTERMETALLIC_FAMILIES and req.compound_class not in (None, "intermetallic"):
        return f"a {req.family} compound is an intermetallic: it is not a {req.compound_class}"
    needed = FAMILY_MIN_ELEMENTS.get(req.family or "", 2 if req.family or req.compound_class else 1)
    if req.n_elements is not None:
        if req.n_elements < needed:
            kind = _article(req.family or req.compound_class)
            return f"{kind} holds at least {needed} elements, not {req.n_elements}"
        required = set(req.include) | ({req.anion} if req.anion else set())
        if len(required) > req.n_elements:
            return (f"contradictory request: {len(required)} required elements ({', '.join(sorted(required))}) in "
                    f"a {req.n_elements}-element compound")
    if req.only is not None:
        ionic = req.compound_class not in (None, "intermetallic") or (
            req.family is not None and req.family not in INTERMETALLIC_FAMILIES)
        cations = [el for el in req.only if el not in (*SIMPLE_ANIONS, "H", *NOBLE_GASES)]
        if ionic and not cations:
            return f"an ionic compound needs a cation, but the request allows only {', '.join(req.only)}"
    return None


def _article(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def parse_request(text: str) -> MaterialsRequest:
    """The offline reading (see read_request); kept as the name the rest of the code uses."""
    return read_request(text)
