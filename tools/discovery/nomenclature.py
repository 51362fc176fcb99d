"""Chemical names read as formulas: 'vanadium pentoxide' -> V2O5, 'bismuth selenide' -> Bi2Se3, 'zinc silicate' ->
Zn2SiO4, 'gadolinium oxysulfide' -> Gd2O2S, 'potassium titanyl phosphate' -> KTiOPO4, and the acronyms of
well-known materials (YBCO, BGO, LLZO). Names fix the formula by IUPAC count prefixes where given, otherwise by
charge balance in the element's commonest oxidation state (ICSD occurrence), the lower state first for a p-block
cation with a soft anion (the inert-pair effect: GeTe, SnS, Sb2Se3)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import product
from math import gcd

from pymatgen.core import Composition, Element

from tools.discovery.lexicon import ELEMENT_NAME_SYMBOLS, ROMAN_NUMERALS
from tools.discovery.oxidation import COMMON_STATE_SHARE, oxidation_states, state_prior

# Simple anions by the stem of their '-ide' name: (element, charge); None: no charge balance (borides).
ANION_WORDS: dict[str, tuple[str, int | None]] = {
    "oxide": ("O", -2), "sulfide": ("S", -2), "sulphide": ("S", -2), "selenide": ("Se", -2),
    "telluride": ("Te", -2), "nitride": ("N", -3), "phosphide": ("P", -3), "arsenide": ("As", -3),
    "antimonide": ("Sb", -3), "fluoride": ("F", -1), "chloride": ("Cl", -1), "bromide": ("Br", -1),
    "iodide": ("I", -1), "hydride": ("H", -1), "carbide": ("C", None), "silicide": ("Si", None),
    "germanide": ("Ge", None), "boride": ("B", None),
}  # carbides, silicides and borides are named by count only (WC, CaC2, MoSi2 balance no charges)
# Tetrahedral and trigonal oxo-anions: name -> (centre, centre's state, oxygens).
OXO_ANIONS: dict[str, tuple[str, int, int]] = {
    "silicate": ("Si", 4, 4), "germanate": ("Ge", 4, 4), "phosphate": ("P", 5, 4), "arsenate": ("As", 5, 4),
    "vanadate": ("V", 5, 4), "sulfate": ("S", 6, 4), "sulphate": ("S", 6, 4), "selenate": ("Se", 6, 4),
    "chromate": ("Cr", 6, 4), "molybdate": ("Mo", 6, 4), "tungstate": ("W", 6, 4), "carbonate": ("C", 4, 3),
    "nitrate": ("N", 5, 3), "borate": ("B", 3, 3),
}
YL_CATIONS = {"titanyl": ("TiO", 2), "vanadyl": ("VO", 2), "zirconyl": ("ZrO", 2), "uranyl": ("UO2", 2)}
PREFIX_COUNTS = {"mono": 1, "mon": 1, "di": 2, "tri": 3, "tetra": 4, "tetr": 4, "penta": 5, "pent": 5, "hexa": 6,
                 "hex": 6, "hepta": 7, "hept": 7, "octa": 8, "oct": 8, "dodeca": 12}
PREFIX_PATTERN = "|".join(sorted(PREFIX_COUNTS, key=len, reverse=True))  # longest first: 'tetra' before 'tetr'
_ANION_LAST = frozenset({"O", "S", "Se", "Te", "N", "F", "Cl", "Br", "I", "H"})
SOFT_ANIONS = frozenset({"S", "Se", "Te", "I", "Br", "P", "As", "Sb"})

# Acronyms of well-known materials that name one compound (solid solutions such as PZT or ITO are left out).
ACRONYM_COMPOUNDS: dict[str, str] = {
    "YBCO": "YBa2Cu3O7", "BSCCO": "Bi2Sr2CaCu2O8", "BGO": "Bi4Ge3O12", "KTP": "KTiOPO4", "BBO": "BaB2O4",
    "LBO": "LiB3O5", "LSO": "Lu2SiO5", "YAG": "Y3Al5O12", "GGG": "Gd3Ga5O12", "YIG": "Y3Fe5O12",
    "LLZO": "Li7La3Zr2O12", "LFP": "LiFePO4", "LCO": "LiCoO2", "LMO": "LiMn2O4", "LTO": "Li4Ti5O12",
    "LNMO": "Li2NiMn3O8", "STO": "SrTiO3", "BTO": "BaTiO3", "BFO": "BiFeO3", "PTO": "PbTiO3",
    "LGPS": "Li10GeP2S12", "CZTS": "Cu2ZnSnS4", "CZTSe": "Cu2ZnSnSe4", "GST": "Ge2Sb2Te5", "GOS": "Gd2O2S",
    "NVP": "Na3V2(PO4)3", "NVPF": "Na3V2(PO4)2F3", "LAO": "LaAlO3", "KDP": "KH2PO4", "LNO": "LiNbO3", "LTa": "LiTaO3",
}

# Minerals by their ideal formula: the name of a mineral asks for that compound ('magnetite' Fe3O4). Names that
# are also family words (perovskite, spinel, ilmenite) count only as 'the mineral X' or when nothing else is asked.
MINERAL_FORMULAS: dict[str, str] = {
    "periclase": "MgO", "galena": "PbS", "sylvite": "KCl", "halite": "NaCl", "rock salt": "NaCl",
    "bunsenite": "NiO", "manganosite": "MnO", "wustite": "FeO", "wüstite": "FeO", "monteponite": "CdO",
    "alabandite": "MnS", "oldhamite": "CaS", "clausthalite": "PbSe", "altaite": "PbTe", "villiaumite": "NaF",
    "osbornite": "TiN", "chlorargyrite": "AgCl", "bromargyrite": "AgBr", "sphalerite": "ZnS", "stilleite": "ZnSe",
    "coloradoite": "HgTe", "metacinnabar": "HgS", "hawleyite": "CdS", "marshite": "CuI", "nantokite": "CuCl",
    "zincite": "ZnO", "greenockite": "CdS", "cadmoselite": "CdSe", "bromellite": "BeO", "iodargyrite": "AgI",
    "wurtzite": "ZnS", "fluorspar": "CaF2", "fluorite": "CaF2", "uraninite": "UO2", "thorianite": "ThO2",
    "cerianite": "CeO2", "cassiterite": "SnO2", "pyrolusite": "MnO2", "stishovite": "SiO2", "plattnerite": "PbO2",
    "sellaite": "MgF2", "argutite": "GeO2", "rutile": "TiO2", "anatase": "TiO2", "brookite": "TiO2",
    "hematite": "Fe2O3", "haematite": "Fe2O3", "eskolaite": "Cr2O3", "karelianite": "V2O3", "corundum": "Al2O3",
    "ruby": "Al2O3", "sapphire": "Al2O3", "ilmenite": "FeTiO3", "geikielite": "MgTiO3", "pyrophanite": "MnTiO3",
    "gahnite": "ZnAl2O4", "hercynite": "FeAl2O4", "galaxite": "MnAl2O4", "franklinite": "ZnFe2O4",
    "spinel": "MgAl2O4", "magnetite": "Fe3O4", "trevorite": "NiFe2O4", "magnesioferrite": "MgFe2O4",
    "ulvospinel": "Fe2TiO4", "ulvöspinel": "Fe2TiO4", "chromite": "FeCr2O4", "hausmannite": "Mn3O4",
    "perovskite": "CaTiO3", "tausonite": "SrTiO3", "macedonite": "PbTiO3", "bridgmanite": "MgSiO3",
    "neighborite": "NaMgF3", "forsterite": "Mg2SiO4", "fayalite": "Fe2SiO4", "tephroite": "Mn2SiO4",
    "monticellite": "CaMgSiO4", "triphylite": "LiFePO4", "lithiophilite": "LiMnPO4", "grossular": "Ca3Al2Si3O12",
    "pyrope": "Mg3Al2Si3O12", "almandine": "Fe3Al2Si3O12", "spessartine": "Mn3Al2Si3O12",
    "andradite": "Ca3Fe2Si3O12", "uvarovite": "Ca3Cr2Si3O12", "chalcopyrite": "CuFeS2", "roquesite": "CuInS2",
    "gallite": "CuGaS2", "eskebornite": "CuFeSe2", "zircon": "ZrSiO4", "xenotime": "YPO4", "thorite": "ThSiO4",
    "pyrite": "FeS2", "fool's gold": "FeS2", "marcasite": "FeS2", "cattierite": "CoS2", "vaesite": "NiS2",
    "hauerite": "MnS2", "laurite": "RuS2", "sperrylite": "PtAs2", "molybdenite": "MoS2", "tungstenite": "WS2",
    "cinnabar": "HgS", "cuprite": "Cu2O", "tenorite": "CuO", "baddeleyite": "ZrO2", "millerite": "NiS",
    "skutterudite": "CoAs3", "enargite": "Cu3AsS4", "cotunnite": "PbCl2", "stannite": "Cu2FeSnS4",
    "kesterite": "Cu2ZnSnS4", "scheelite": "CaWO4", "powellite": "CaMoO4", "wulfenite": "PbMoO4",
    "stolzite": "PbWO4", "wolframite": "FeWO4", "huebnerite": "MnWO4", "ferberite": "FeWO4", "cryolite": "Na3AlF6",
    "delafossite": "CuFeO2", "brownmillerite": "Ca2FeAlO5", "argyrodite": "Ag8GeS6", "calcite": "CaCO3",
    "aragonite": "CaCO3", "quartz": "SiO2", "cristobalite": "SiO2", "tridymite": "SiO2", "coesite": "SiO2",
    "cementite": "Fe3C", "khatyrkite": "CuAl2", "herzenbergite": "SnS", "teallite": "PbSnS2",
    "tetradymite": "Bi2Te2S", "tellurobismuthite": "Bi2Te3", "stibnite": "Sb2S3", "bismuthinite": "Bi2S3",
    "orpiment": "As2S3", "realgar": "AsS", "covellite": "CuS", "chalcocite": "Cu2S", "acanthite": "Ag2S",
    "argentite": "Ag2S", "nickeline": "NiAs", "niccolite": "NiAs", "troilite": "FeS", "pyrrhotite": "FeS",
    "greigite": "Fe3S4", "linnaeite": "Co3S4", "pentlandite": "Fe4Ni5S8", "bornite": "Cu5FeS4",
    "hydroxyapatite": "Ca5P3HO13", "fluorapatite": "Ca5P3FO12", "chlorapatite": "Ca5P3ClO12",
    "willemite": "Zn2SiO4", "phenakite": "Be2SiO4", "litharge": "PbO", "massicot": "PbO", "bixbyite": "Mn2O3",
    "moissanite": "SiC", "calaverite": "AuTe2", "sylvanite": "AuAgTe4", "krennerite": "AuTe2",
    "matlockite": "PbFCl", "ullmannite": "NiSbS", "cobaltite": "CoAsS", "sulvanite": "Cu3VS4",
    "barite": "BaSO4", "baryte": "BaSO4", "celestine": "SrSO4", "celestite": "SrSO4", "anhydrite": "CaSO4",
    "anglesite": "PbSO4", "magnesite": "MgCO3", "siderite": "FeCO3", "rhodochrosite": "MnCO3",
    "smithsonite": "ZnCO3", "cerussite": "PbCO3", "witherite": "BaCO3", "strontianite": "SrCO3",
    "dolomite": "CaMg(CO3)2", "magnetoplumbite": "PbFe12O19", "chrysoberyl": "BeAl2O4", "berlinite": "AlPO4",
    "monazite": "CePO4", "loparite": "NaLaTi2O6",
    "cryolithionite": "Na3Li3Al2F12", "langbeinite": "K2Mg2(SO4)3", "thenardite": "Na2SO4",
}
FAMILY_WORD_MINERALS = frozenset({"perovskite", "spinel", "ilmenite", "rutile", "anatase", "fluorite", "wurtzite",
                                  "corundum", "chalcopyrite", "zircon", "pyrite", "marcasite", "scheelite",
                                  "wolframite", "delafossite", "brownmillerite", "argyrodite", "kesterite",
                                  "stannite", "cryolite", "skutterudite", "rock salt", "halite", "sphalerite",
                                  "cinnabar", "cuprite", "quartz", "calcite", "molybdenite", "cotunnite",
                                  "enargite", "hausmannite", "baddeleyite", "tenorite", "millerite", "cementite"})
_GROUP_STATE = dict(YL_CATIONS.values())  # 'TiO' -> 2
_ELEMENT_NAMES = ELEMENT_NAME_SYMBOLS
_CATION_WORD = "|".join(sorted([*_ELEMENT_NAMES, *YL_CATIONS], key=len, reverse=True))
_ROMAN_STATE = r"\((?:i{1,3}|iv|vi{0,3}|v)\)"
_NAME = re.compile(
    rf"(?<![\w-])((?:(?:{PREFIX_PATTERN})?(?:(?:{_CATION_WORD})(?:\s?{_ROMAN_STATE})?|[a-z]{{1,2}}\s?{_ROMAN_STATE})[\s-]+)"
    rf"{{1,3}})"  # one to three cation words ('tin(ii)', 'sn(ii)')
    rf"((?:{PREFIX_PATTERN}|sesqui)?)(oxy)?-?({'|'.join([*ANION_WORDS, *OXO_ANIONS])})s?(?![\w])"
)


@dataclass(frozen=True)
class NamedCompound:
    """A compound named in words, where the request says it, and the formulas the name can mean (likeliest first)."""

    start: int
    end: int
    name: str
    formulas: tuple[str, ...]
    exact: bool = False  # an acronym or a name with count prefixes: one compound, not a guess among states


def _states(symbol: str, anion: str | None) -> list[int]:
    """The element's positive states that name it without a prefix, likeliest first."""
    states = [s for s in oxidation_states(symbol) if state_prior(symbol, s) >= COMMON_STATE_SHARE]
    states.sort(key=lambda s: -state_prior(symbol, s))
    el = Element(symbol)
    if anion in SOFT_ANIONS and el.group in (14, 15) and el.row >= 4:
        lower = el.group - 12  # the inert-pair effect: Ge2+ in GeTe, Sn2+ in SnS, Sb3+ in Sb2Se3
        states = [lower, *(s for s in states if s != lower)] if lower in oxidation_states(symbol) else states
    return states


def _formula(amounts: dict[str, float]) -> str:
    """A reduced formula in electronegativity order without unit counts: Bi4Ge3O12, Gd2SO2, PbTe."""
    comp = Composition(amounts).reduced_composition
    order = sorted(comp.get_el_amt_dict(), key=lambda el: (el in _ANION_LAST, Element(el).X))
    text = "".join(f"{el}{comp[el]:g}" for el in order)
    return re.sub(r"(?<=[A-Za-z])1(?![\d.])", "", text)


def _binary(cation: str, m: int | None, anion: str, charge: int | None, n: int | None) -> list[str]:
    """'divanadium pentoxide', 'vanadium pentoxide', 'bismuth selenide': the formulas of a one-cation name."""
    if m and n:
        return [_formula({cation: m, anion: n})]
    if charge is None:  # borides: no charge to balance, so only the prefixes say the formula
        return [_formula({cation: m or 1, anion: n})] if n else []
    if n:  # 'disulfide': one cation per n anions; 'pentoxide', 'boron trioxide': two when one cannot balance an odd n
        total = -charge * n
        every = Element(cation).oxidation_states
        if total not in every and n % 2 and total % 2 == 0 and total // 2 in every:
            return [_formula({cation: 2, anion: n})]
        return [_formula({cation: 1, anion: n})]  # CoSb3, NiAs2: the anions bond to each other; the name rules
    out = []
    for state in _states(cation, anion):
        g = gcd(state, -charge)
        out.append(_formula({cation: -charge // g, anion: state // g}))
    return out


def _oxysalt_cations(cations: list[str], anion_charge: int) -> dict[str, int] | None:
    """Counts of one or two cations (symbols or -yl groups) per ortho-anion: the likeliest states that balance one
    anion per formula unit (Li+ Fe2+ in LiFePO4, Li2+ Mn2+ in Li2MnSiO4); None when none does."""
    options = [[_GROUP_STATE[c]] if c in _GROUP_STATE else _states(c, "O")[:3] for c in cations]
    if not all(options):
        return None
    if len(cations) == 1:  # 'zinc silicate': any number of anions, the likeliest state
        return {cations[0]: options[0][0]}
    best: tuple[float, dict[str, int]] | None = None
    for states in product(*options):
        for counts in ((1, 1), (2, 1), (1, 2)):
            if sum(n * st for n, st in zip(counts, states, strict=True)) != anion_charge:
                continue
            weight = 1.0 if counts == (1, 1) else 0.9
            for c, st in zip(cations, states, strict=True):
                weight *= 1.0 if c in _GROUP_STATE else state_prior(c, st)
            if best is None or weight > best[0]:
                best = (weight, dict(zip(cations, counts, strict=True)))
    return best[1] if best else None


def _oxysalt(cations: list[str], centre: str, centre_state: int, oxygens: int, state: int | None = None) -> str | None:
    """'zinc silicate' Zn2SiO4, 'lithium iron phosphate' LiFePO4, 'potassium titanyl phosphate' KTiOPO4; `state`
    sets a lone cation's state."""
    anion_charge = 2 * oxygens - centre_state
    plan = {cations[0]: state} if state else _oxysalt_cations(cations, anion_charge)
    if plan is None:
        return None
    if len(cations) == 1:
        state = plan[cations[0]]
        g = gcd(state, anion_charge)
        counts, units = {cations[0]: anion_charge // g}, state // g
    else:
        counts, units = plan, 1
    amounts: dict[str, float] = {}
    for group, n in counts.items():
        for el, amt in Composition(group).get_el_amt_dict().items():
            amounts[el] = amounts.get(el, 0) + amt * n
    amounts[centre] = amounts.get(centre, 0) + units
    amounts["O"] = amounts.get("O", 0) + units * oxygens
    return _formula(amounts)


def _mixed_oxy(cation: str, anion: str, charge: int) -> str | None:
    """'gadolinium oxysulfide' Gd2O2S, 'bismuth oxychloride' BiOCl: the smallest balanced M_m O_a X_b with a, b >= 1,
    oxygen the larger share on a tie."""
    for state in _states(cation, anion)[:1]:
        best = None
        for m in (1, 2, 3, 4):
            for a in range(1, 8):
                rest = state * m - 2 * a
                if rest > 0 and rest % -charge == 0:
                    b = rest // -charge
                    key = (m + a + b, b > a)
                    if best is None or key < best[0]:
                        best = (key, {cation: m, "O": a, anion: b})
        if best:
            return _formula(best[1])
    return None


def _stated(words: str) -> tuple[str, int | None]:
    """'tin(ii) ' -> ('tin ', 2); 'sn(ii)' -> ('tin', 2): the words without an oxidation-state label, and the state."""
    m = re.search(_ROMAN_STATE, words)
    if not m:
        return words, None
    state = ROMAN_NUMERALS[m.group(0).strip("()").upper()]
    words = words[:m.start()] + words[m.end():]
    symbols = {sym.lower(): name for name, sym in _ELEMENT_NAMES.items()}
    words = re.sub(r"\b([a-z]{1,2})\s*$", lambda w: symbols.get(w.group(1), w.group(1)), words.strip())
    return words, state


def _cation_words(words: str) -> list[tuple[str, int | None]]:
    """'di vanadium' -> [('V', 2)], 'potassium titanyl' -> [('K', None), ('TiO', None)]."""
    out = []
    for word in re.findall(rf"(?:{PREFIX_PATTERN})?(?:{_CATION_WORD})", words):
        prefix = next((p for p in sorted(PREFIX_COUNTS, key=len, reverse=True)
                       if word.startswith(p) and word[len(p):] in {**_ELEMENT_NAMES, **YL_CATIONS}), None)
        stem = word[len(prefix):] if prefix else word
        symbol = YL_CATIONS[stem][0] if stem in YL_CATIONS else _ELEMENT_NAMES.get(stem)
        if symbol is None:
            return []
        out.append((symbol, PREFIX_COUNTS[prefix] if prefix else None))
    return out


def named_compounds(text: str) -> list[NamedCompound]:
    """Every compound named in words or by a known acronym in the request, with its formulas."""
    lowered = text.lower()
    out = []
    for m in _NAME.finditer(lowered):
        words, state = _stated(m.group(1))
        cations = _cation_words(words)
        if not cations or any(c in ("O", "N", "F", "Cl", "Br", "I", "H") for c, _ in cations):
            continue  # 'oxygen nitride', 'hydrogen chloride': not a salt of a named cation
        prefix, oxy, word = m.group(2), m.group(3), m.group(4)
        formulas: list[str] = []
        if word in ANION_WORDS and len(cations) == 1:
            anion, charge = ANION_WORDS[word]
            cation, count = cations[0]
            if cation in _GROUP_STATE:
                continue
            if oxy and charge is not None and not prefix:
                formulas = [f for f in [_mixed_oxy(cation, anion, charge)] if f]
            elif prefix == "sesqui":
                formulas = [_formula({cation: 2, anion: 3})]
            elif not oxy and state and charge is not None:  # 'tin(II) sulfide' SnS, 'iron(III) oxide' Fe2O3
                g = gcd(state, -charge)
                formulas = [_formula({cation: -charge // g, anion: state // g})]
            elif not oxy:
                formulas = _binary(cation, count, anion, charge, PREFIX_COUNTS.get(prefix))
        elif word in OXO_ANIONS and len(cations) <= 2 and not oxy and not prefix:
            centre, centre_state, oxygens = OXO_ANIONS[word]
            symbols = [c for c, _ in cations]
            lone = _states(symbols[0], "O")[:2] if len(symbols) == 1 and symbols[0] not in _GROUP_STATE else [None]
            if centre not in symbols:  # 'iron silicate': Fe3+ and Fe2+ (fayalite) in turn
                formulas = [f for st in lone if (f := _oxysalt(symbols, centre, centre_state, oxygens, st))]
        if formulas:
            exact = bool(prefix) or bool(state)  # 'vanadium pentoxide', 'vanadium(V) oxide': one compound
            out.append(NamedCompound(m.start(), m.end(), m.group(0).strip(), tuple(dict.fromkeys(formulas)), exact))
    out.sort(key=lambda c: not c.exact)  # 'barium borate (BBO)': the acronym's compound before the guess
    out += _minerals(lowered)
    for m in re.finditer(r"(?<![\w-])N(MC|CM)[- ]?(\d)(\d)(\d)(?![\w])", text):  # NMC111, NCM811
        ni, second, third = (int(d) for d in m.groups()[1:])
        mn, co = (second, third) if m.group(1) == "MC" else (third, second)
        total = ni + mn + co
        amounts = {"Li": total, "Ni": ni, "Mn": mn, "Co": co, "O": 2 * total}
        formula = _formula({el: n for el, n in amounts.items() if n})
        out.append(NamedCompound(m.start(), m.end(), m.group(0), (formula,), exact=True))
    for m in re.finditer(r"(?<![\w-])([A-Z][A-Za-z]{1,5})(?![\w])(?!-[A-Za-z])", text):  # 'YBCO-123' too
        formula = ACRONYM_COMPOUNDS.get(m.group(1))
        if formula:
            formulas = (_formula(Composition(formula).get_el_amt_dict()),)
            out.append(NamedCompound(m.start(), m.end(), m.group(1), formulas, exact=True))
    return out


_MINERAL = re.compile(r"(?<![\w-])(" + "|".join(sorted(map(re.escape, MINERAL_FORMULAS), key=len, reverse=True)) +
                      r")s?(?![\w-])(?![- ](?:type|like|structured?|structure|prototype|group|family|phase))")
_ARTICLES = re.compile(r"^(?:the|a|an|some|mineral|please|crystal)\s+|\s+(?:please|crystal)$")


def _bare(lowered: str) -> str:
    """The request without articles, 'mineral', 'please' and punctuation: 'the mineral ilmenite.' -> 'ilmenite'."""
    text = re.sub(r"[^\w' ]+", " ", lowered).strip()
    previous = None
    while previous != text:
        previous, text = text, _ARTICLES.sub("", text).strip()
    return text


def minerals_in(lowered: str) -> list[tuple[int, int]]:
    """Spans of mineral names, so the reader does not take 'gold' in "fool's gold" for the element."""
    return [m.span(1) for m in _MINERAL.finditer(lowered)]


def _minerals(lowered: str) -> list[NamedCompound]:
    """'magnetite', 'grossular garnet', 'fool's gold': a mineral names its compound. A name that is also a family
    word ('ilmenite') names the compound only as 'the mineral ilmenite', 'ilmenite itself', 'ilmenite, the titanium
    ore' or as the whole request ('ilmenite')."""
    out = []
    for m in _MINERAL.finditer(lowered):
        name = m.group(1)
        if name in FAMILY_WORD_MINERALS and not (
            re.search(r"\b(?:mineral|natural|naturally occurring)\s+$", lowered[:m.start()]) or _bare(lowered) == name
            or re.match(r"\s+itself\b|,?\s+(?:the|a|an)\s+(?:[\w-]+\s+){0,2}(?:ore|mineral|gemstone|gem)\b",
                        lowered[m.end():])
        ):
            continue
        formula = _formula(Composition(MINERAL_FORMULAS[name]).get_el_amt_dict())
        out.append(NamedCompound(m.start(), m.end(), name, (formula,), exact=True))
    return out
