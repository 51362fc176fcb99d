"""The vocabulary of the offline request reader: element groups, compound classes (anions, polyanions, "-ate"
words, thio-/seleno-/oxy- prefixes), structure families with their synonyms, mineral names and Strukturbericht
designations (read from pymatgen's AFLOW prototype library where it has the family), application words and the
cue words of negation. Data only: tools/discovery/request.py holds the reading rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from pymatgen.core import Element

LANTHANIDES = tuple(Element.from_Z(z).symbol for z in range(57, 72))
ELEMENT_GROUPS: dict[str, tuple[str, ...]] = {
    "rare earth": (*LANTHANIDES, "Sc", "Y"),
    "lanthanide": LANTHANIDES,
    "noble metal": ("Ru", "Rh", "Pd", "Ag", "Os", "Ir", "Pt", "Au"),
    "precious metal": ("Ru", "Rh", "Pd", "Ag", "Os", "Ir", "Pt", "Au"),
    "platinum group": ("Ru", "Rh", "Pd", "Os", "Ir", "Pt"),
    "alkali": ("Li", "Na", "K", "Rb", "Cs"),
    "alkaline earth": ("Be", "Mg", "Ca", "Sr", "Ba"),
    "toxic": ("Pb", "Cd", "Hg", "As", "Tl", "Be"),
    "heavy metal": ("Pb", "Cd", "Hg", "Tl"),
    "radioactive": ("Tc", "Pm", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu"),
    "halogen": ("F", "Cl", "Br", "I"),
    "chalcogen": ("S", "Se", "Te"),
    "noble gas": ("He", "Ne", "Ar", "Kr", "Xe", "Rn"),
    "3d transition metal": ("Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu"),  # groups 3-11 (Zn is d10)
    "transition metal": ("Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Y", "Zr", "Nb", "Mo", "Ru", "Rh",
                         "Pd", "Ag", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au"),
    "metal": tuple(el.symbol for el in Element if el.Z <= 94 and el.is_metal),
    "nonmetal": tuple(el.symbol for el in Element if el.Z <= 94 and not el.is_metal),
}
for _n in range(1, 18):  # periodic-table groups by number: stable elements up to Bi; lanthanides count as La
    ELEMENT_GROUPS[f"group {_n}"] = tuple(
        el.symbol for el in Element if el.Z <= 83 and el.group == _n and el.symbol not in ("H", "Tc", "Pm")
        and not (el.is_lanthanoid and el.symbol != "La"))
# Phrases (lower case, regex-ready) that name a group; plural and hyphenated forms are added by the reader.
GROUP_WORDS: dict[str, str] = {
    **{rf"(?<!space )group[- ]?{n}(?![\d.])(?:[- ](?:transition[- ])?(?:metals?|elements?))?": f"group {n}"
       for n in range(17, 0, -1)},
    r"rare[- ]earths?(?:[- ]elements?|[- ]metals?)?": "rare earth",
    r"lanthanides?|lanthanoids?": "lanthanide",
    r"noble metals?": "noble metal",
    r"precious metals?": "precious metal",
    r"platinum[- ]group(?: metals?)?|pgms?": "platinum group",
    r"alkali(?:[- ]metals?)?": "alkali",
    r"alkaline[- ]earths?(?:[- ]metals?)?": "alkaline earth",
    r"toxic(?: elements?| metals?)?": "toxic",
    r"heavy[- ]metals?": "heavy metal",
    r"radioactive(?: elements?)?": "radioactive",
    r"halogens?": "halogen",
    r"chalcogens?": "chalcogen",
    r"noble gas(?:es)?|inert gas(?:es)?": "noble gas",
    r"(?:first[- ]row|3d)[- ]transition[- ]metals?|3d metals?": "3d transition metal",
    r"transition[- ]metals?": "transition metal",
    # only when refused ("no metal and no nonmetal"): "a metal oxide" asks for no group
    r"non-?metals?|non-?metallic elements?": "nonmetal",
    r"metals?|metallic elements?": "metal",
}

# Element names as typed (lower case) -> symbol, with the British and American spellings; the one name table.
ELEMENT_NAME_SYMBOLS: dict[str, str] = {
    **{el.long_name.lower(): el.symbol for el in Element if el.Z <= 103},
    "aluminium": "Al", "aluminum": "Al", "caesium": "Cs", "cesium": "Cs", "sulphur": "S",
}
ELEMENT_NAMES = frozenset(ELEMENT_NAME_SYMBOLS)
ROMAN_NUMERALS = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8, "IX": 9}
NOBLE_GASES = ("He", "Ne", "Ar", "Kr", "Xe", "Rn")
SIMPLE_ANIONS = ("O", "S", "Se", "Te", "N", "F", "Cl", "Br", "I")  # the anions an ionic compound is named by


@dataclass(frozen=True)
class CompoundClass:
    """A compound class: the anions it allows (any of) and, for an oxo-anion class, its polyanion centre."""

    name: str
    anions: tuple[str, ...]
    polyanion: str | None = None  # centre of a tetrahedral oxo-anion (P in PO4, Si in SiO4)
    mixed: bool = False  # every anion is required (oxynitride: O and N), not any one of them


def _classes() -> dict[str, CompoundClass]:
    single = {
        "oxide": "O", "fluoride": "F", "chloride": "Cl", "bromide": "Br", "iodide": "I", "sulfide": "S",
        "selenide": "Se", "telluride": "Te", "nitride": "N", "phosphide": "P", "arsenide": "As",
        "antimonide": "Sb", "hydride": "H", "carbide": "C", "boride": "B",
    }
    out = {name: CompoundClass(name, (anion,)) for name, anion in single.items()}
    out["halide"] = CompoundClass("halide", ("F", "Cl", "Br", "I"))
    out["chalcogenide"] = CompoundClass("chalcogenide", ("S", "Se", "Te"))
    out["pnictide"] = CompoundClass("pnictide", ("P", "As", "Sb", "N"))
    out["phosphate"] = CompoundClass("phosphate", ("O",), polyanion="P")
    out["silicate"] = CompoundClass("silicate", ("O",), polyanion="Si")
    out["germanate"] = CompoundClass("germanate", ("O",), polyanion="Ge")
    out["thiophosphate"] = CompoundClass("thiophosphate", ("S",), polyanion="P")
    out["intermetallic"] = CompoundClass("intermetallic", ())
    for other, anion in (("nitride", "N"), ("fluoride", "F"), ("chloride", "Cl"), ("sulfide", "S")):
        out[f"oxy{other}"] = CompoundClass(f"oxy{other}", ("O", anion), mixed=True)
    return out


COMPOUND_CLASSES: dict[str, CompoundClass] = _classes()
# The class an ionic compound of one simple anion belongs to (O -> oxide, Se -> selenide).
ANION_CLASS: dict[str, str] = {
    c.anions[0]: name for name, c in COMPOUND_CLASSES.items() if c.anions and c.anions[0] in SIMPLE_ANIONS
    and len(c.anions) == 1 and c.polyanion is None
}
# Word (regex, lower case) -> compound class name. Plurals are handled by the reader. A single-anion class word may
# carry a count prefix (monosulfide, difluoride, sesquioxide, triiodide, pentatelluride).
COUNT_PREFIX = r"(?:mono?|di|tri|tetra?|penta?|hexa?|hepta?|octa?|sesqui|per|sub|poly|hemi)?-?"
_SINGLE_CLASS_WORDS = {  # every class of one simple anion, by its name, plus spellings and the chalcogenides
    **{name: name for name, c in COMPOUND_CLASSES.items() if len(c.anions) == 1 and not c.polyanion and not c.mixed},
    "sulphide": "sulfide", "chalcogenide": "chalcogenide",
}
CLASS_WORDS: dict[str, str] = {
    **{rf"{COUNT_PREFIX}{word}s?": cls for word, cls in _SINGLE_CLASS_WORDS.items()},
    r"oxidic": "oxide",
    r"halides?": "halide", r"pnictides?": "pnictide",
    r"(?:ortho)?phosphates?": "phosphate", r"(?:ortho)?silicates?": "silicate", r"(?:ortho)?germanates?": "germanate",
    r"thiophosphates?|thio-phosphates?": "thiophosphate",
    r"oxynitrides?": "oxynitride", r"oxyfluorides?": "oxyfluoride", r"oxychlorides?": "oxychloride",
    r"oxysulfides?|oxysulphides?": "oxysulfide",
    r"intermetallics?|alloys?|intermetallic compounds?": "intermetallic",
}
# "-ate"/"-ite" words: an oxide holding this element (a titanate is a Ti oxide).
ATE_WORDS: dict[str, str] = {
    "ferrite": "Fe", "ferrate": "Fe", "titanate": "Ti", "niobate": "Nb", "tantalate": "Ta", "aluminate": "Al",
    "manganite": "Mn", "manganate": "Mn", "cobaltite": "Co", "cobaltate": "Co", "nickelate": "Ni",
    "zirconate": "Zr", "stannate": "Sn", "vanadate": "V", "tungstate": "W", "molybdate": "Mo", "chromite": "Cr",
    "chromate": "Cr", "cuprate": "Cu", "ruthenate": "Ru", "gallate": "Ga", "hafnate": "Hf", "plumbate": "Pb",
    "bismuthate": "Bi", "iridate": "Ir", "scandate": "Sc", "indate": "In", "antimonate": "Sb", "cerate": "Ce",
    # oxide names: ceria is CeO2, zirconia ZrO2 (an oxide holding the element)
    "ceria": "Ce", "zirconia": "Zr", "titania": "Ti", "alumina": "Al", "magnesia": "Mg", "silica": "Si",
    "yttria": "Y", "hafnia": "Hf", "thoria": "Th", "calcia": "Ca", "lithia": "Li", "chromia": "Cr",
    "vanadia": "V", "niobia": "Nb", "gallia": "Ga", "germania": "Ge", "scandia": "Sc", "gadolinia": "Gd",
    "samaria": "Sm", "lanthana": "La", "urania": "U",
}
# "-ide" words of a metal or metalloid: an intermetallic holding it (a nickel aluminide is NiAl, Ni3Al).
IDE_WORDS: dict[str, str] = {
    "aluminide": "Al", "silicide": "Si", "germanide": "Ge", "stannide": "Sn", "gallide": "Ga", "beryllide": "Be",
    "plumbide": "Pb", "bismuthide": "Bi", "indide": "In", "zincide": "Zn", "magneside": "Mg",
}
# Prefixes an "-ate"/"-ite" word may carry: hexaferrite, orthovanadate, pyrophosphate-like metatitanate.
ATE_PREFIX = r"(?:hexa|ortho|meta|pyro|di|tri|tetra|poly|per|sesqui)?-?"
# Prefixes that swap a family's anion: thiospinel, selenospinel, telluro-...
PREFIX_CLASSES = {"thio": "sulfide", "seleno": "selenide", "telluro": "telluride"}

# Structure families (the proposer's names) -> phrases (lower case regex) that name them. Longer, more specific
# families come first so "double perovskite" is read before "perovskite".
FAMILY_WORDS: dict[str, tuple[str, ...]] = {
    "double perovskite": (r"double[- ]perovskites?(?:[- ](?:type|like|structured?))?", r"elpasolites?",
                          r"ordered perovskites?", r"rock[- ]salt[- ]ordered perovskites?", r"a2bb'o6", r"a2b'b''o6",
                          r"a2bb'x6"),
    "orthorhombic perovskite": (r"orthorhombic(?:ally distorted)? perovskites?",
                                r"pnma \(orthorhombic\) perovskites?", r"\(orthorhombic\) perovskites?",
                                r"gdfeo3[- ]type", r"distorted perovskites?", r"pnma perovskites?"),
    "perovskite": (r"perovskites?", r"abo3", r"abx3", r"perovskite[- ](?:type|like|structured?)"),
    "inverse spinel": (r"inverse[- ]spinels?", r"inverted spinels?"),
    "spinel": (r"spinels?", r"ab2o4", r"ab2x4"),
    "half-heusler": (r"half[- ]heuslers?", r"semi[- ]heuslers?", r"mgagas[- ]type", r"c1_?b"),
    "heusler": (r"full[- ]heuslers?", r"heuslers?", r"l2_?1", r"d0_?3"),
    "antifluorite": (r"anti[- ]?fluorites?",),
    "fluorite": (r"fluorites?",),
    "rock salt": (r"rock[- ]?salts?", r"halite", r"nacl[- ](?:type|like|structured?)", r"b1[- ](?:type|structure)"),
    "cscl": (r"cscl[- ](?:type|like|structured?)", r"c(?:a|ae|e)sium chloride(?:[- ]type)?",
             r"b2[- ](?:type|structure|phase|ordered)"),
    "zincblende": (r"zinc[- ]?blendes?", r"sphalerite", r"b3[- ](?:type|structure)"),
    "wurtzite": (r"wurtzites?", r"b4[- ](?:type|structure)"),
    "chalcopyrite": (r"chalcopyrites?", r"cuins2[- ]type", r"cuinse2[- ]type"),
    "rutile": (r"rutiles?", r"c4[- ](?:type|structure)"),
    "corundum": (r"corundums?", r"sapphire[- ]type", r"alpha[- ]al2o3[- ]type"),
    "ilmenite": (r"ilmenites?",),
    "pyrochlore": (r"pyrochlores?", r"a2b2o7"),
    "garnet": (r"garnets?", r"yag", r"ggg", r"grossular", r"almandine", r"pyrope", r"a3b5o12", r"a3b2c3o12"),
    "olivine": (r"olivines?", r"forsterite(?:[- ]type)?", r"fayalite(?:[- ]type)?", r"triphylite(?:[- ]type)?"),
    "thcr2si2": (r"thcr2si2(?:[- ](?:type|like|structured?))?", r"bafe2as2[- ](?:type|like)", r"122[- ](?:type|phase|"
                 r"structure|family|compounds?|parent|pnictides?|arsenides?)", r"the 122s?"),
    # AFLOW structure types beyond the typed families (models.crystals.prototypes.GENERIC_FAMILIES).
    "k2nif4": (r"k2nif4[- ]type", r"ruddlesden[- ]popper(?: phases?)?", r"layered perovskites?", r"rp phases?",
               r"la2cuo4[- ]type"),
    "anatase": (r"anatases?",),
    "pyrite": (r"pyrites?", r"fes2[- ]type"),
    "marcasite": (r"marcasites?",),
    "skutterudite": (r"(?:filled )?skutterudites?", r"cosb3[- ]type", r"coas3[- ]type"),
    "cinnabar": (r"cinnabar(?:[- ]type)?",),
    "cuprite": (r"cuprite(?:[- ]type)?", r"cu2o[- ]type"),
    "baddeleyite": (r"baddeleyite(?:[- ]type)?", r"monoclinic zirconia[- ]type"),
    "cotunnite": (r"cotunnite(?:[- ]type)?", r"pbcl2[- ]type"),
    "molybdenite": (r"molybdenite(?:[- ]type)?", r"(?:2h[- ])?mos2[- ]type"),
    "tenorite": (r"tenorite(?:[- ]type)?",),
    "hausmannite": (r"hausmannite(?:[- ]type)?",),
    "stannite": (r"stannites?",),
    "enargite": (r"enargite(?:[- ]type)?",),
    "hexagonal laves": (r"hexagonal laves(?: phases?)?", r"c14 laves(?: phases?)?", r"mgzn2[- ]type"),
    "cubic laves": (r"(?:cubic )?laves(?: phases?)?", r"c15 laves(?: phases?)?", r"mgcu2[- ]type"),
    "max phase": (r"max[- ]phases?", r"mxene precursors?"),
    "tungsten carbide": (r"wc[- ]type", r"tungsten carbide[- ]type"),
    "millerite": (r"millerite(?:[- ]type)?",),
    "cementite": (r"cementite(?:[- ]type)?", r"fe3c[- ]type"),
    "zintl": (r"natl[- ]type",),  # 'Zintl phase' names a bonding class wider than the NaTl type
    "cdi2": (r"cdi2[- ]type", r"cadmium iodide[- ]type"),
    "alb2": (r"alb2[- ]type", r"mgb2[- ]type"),
    "zircon": (r"zircons?",),
    "quartz": (r"quartz(?:[- ]type)?", r"alpha[- ]quartz"),
    "cristobalite": (r"cristobalites?",),
    "layered oxide": (r"layered (?:transition[- ]metal )?oxides?", r"layered rock[- ]?salts?", r"o3[- ]type",
                      r"alpha[- ]nafeo2(?:[- ]type)?", r"licoo2[- ]type", r"layered"),
}
# Structure types beyond the typed families and the AFLOW library, by their textbook members (the first one sets the
# roles a proposer fills; mixed-anion types such as argyrodite are proposed by their members only). Keys that are
# AFLOW type names ('max phase', 'zrcusias-type') keep their prototype and gain the members.
FAMILY_MEMBERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "delafossite": ((r"delafossites?",), ("CuAlO2", "CuFeO2", "CuGaO2", "CuCrO2", "CuInO2", "CuScO2", "CuYO2",
                                           "CuLaO2", "AgNiO2", "AgCrO2", "AgFeO2", "PdCoO2", "PtCoO2", "PdCrO2")),
    "brownmillerite": ((r"brownmillerites?",), ("Ca2Fe2O5", "Sr2Fe2O5", "Ca2FeAlO5", "Sr2Co2O5", "Ba2In2O5",
                                                 "Ca2Co2O5")),
    "aurivillius": ((r"aurivillius(?: phases?)?",), ("Bi4Ti3O12", "SrBi2Ta2O9", "SrBi2Nb2O9", "Bi2WO6", "Bi2MoO6",
                                                      "Bi5FeTi3O15", "CaBi2Nb2O9", "BaBi2Nb2O9", "Bi3TiNbO9")),
    "argyrodite": ((r"argyrodites?",), ("Li6PS5Cl", "Li6PS5Br", "Li6PS5I", "Li6PSe5Cl", "Ag8GeS6", "Ag8SnS6",
                                         "Cu8GeS6")),
    "nasicon": ((r"nasicons?", r"(?:sodium|na) super[- ]?ionic conductors?"),
                ("Na3Zr2Si2PO12", "NaZr2P3O12", "LiTi2P3O12", "Na3V2P3O12", "LiGe2P3O12", "NaTi2P3O12", "Na3Fe2P3O12",
                 "LiZr2P3O12")),
    "wadsley-roth": ((r"wadsley[- ]roth(?: phases?| shear)?", r"crystallographic shear"),
                     ("TiNb2O7", "Ti2Nb10O29", "Nb12WO33", "PNb9O25", "Nb16W5O55")),
    "cryolite": ((r"cryolites?",), ("Na3AlF6", "K3AlF6", "Li3AlF6", "Na3GaF6", "Na3FeF6", "K3FeF6", "Na3ScF6")),
    "a3b2x9": ((r"a3b2x9", r"cs3bi2i9[- ](?:type|like)", r"dimer(?:ic)? perovskites?"),
               ("Cs3Bi2I9", "Cs3Sb2I9", "Rb3Sb2I9", "Cs3Bi2Br9", "Rb3Bi2I9", "K3Sb2I9", "Cs3Sb2Br9")),
    "scheelite": ((r"scheelites?",), ("CaWO4", "CaMoO4", "SrWO4", "BaWO4", "PbMoO4", "PbWO4", "BiVO4", "LiYF4")),
    "wolframite": ((r"wolframites?",), ("FeWO4", "MnWO4", "ZnWO4", "MgWO4", "CdWO4", "NiWO4")),
    "apatite": ((r"(?:hydroxy|fluor|chlor)?apatites?",), ("Ca5P3FO12", "Ca5P3ClO12", "Ca5HP3O13", "Sr5P3FO12",
                                                          "Pb5V3ClO12", "Pb5P3ClO12", "Ba5P3ClO12")),
    "chevrel": ((r"chevrel(?: phases?)?",), ("PbMo6S8", "SnMo6S8", "Cu2Mo6S8", "Mo6S8")),
    "hexaferrite": ((r"(?:m[- ]type )?hexa-?ferrites?", r"magnetoplumbite(?:[- ]type)?s?"),
                    ("BaFe12O19", "SrFe12O19", "PbFe12O19", "CaAl12O19")),
    "antiperovskite": ((r"anti-?perovskites?",), ("Li3OCl", "Li3OBr", "Na3OCl", "Na3OBr", "Ag3SI", "K3OI")),
    # AFLOW types with their best-known members (textbook order: the first ones answer a bare request)
    "alb2": ((), ("AlB2", "MgB2", "TiB2", "ZrB2", "HfB2", "VB2", "NbB2", "TaB2", "CrB2", "ScB2", "YB2")),
    "cr3si-type": ((), ("Nb3Sn", "Nb3Ge", "Nb3Al", "Nb3Ga", "V3Si", "V3Ga", "V3Ge", "Cr3Si", "Mo3Ge", "Mo3Si")),
    "skutterudite": ((), ("CoAs3", "CoSb3", "CoP3", "RhSb3", "IrSb3", "RhP3", "RhAs3", "IrAs3", "IrP3")),
    "cubic laves": ((), ("MgCu2", "ZrV2", "ZrCr2", "ZrFe2", "ZrCo2", "ZrMo2", "ZrW2", "HfV2", "HfCr2", "TiCr2",
                         "CeFe2", "GdAl2", "LaAl2", "CeAl2", "CeNi2")),
    "cacu5-type": ((), ("CaCu5", "SmCo5", "LaNi5", "YCo5", "CeCo5", "PrCo5", "LaCo5", "CeNi5")),
    "nias-type": ((), ("NiAs", "FeS", "CoS", "NiS", "CrSb", "MnTe", "MnSb", "FeSe", "CoSb", "NiSb", "FeSb",
                       "CrTe", "VS")),
    "cu3au-type": ((), ("Cu3Au", "Ni3Al", "Ni3Fe", "Ni3Mn", "Pt3Fe", "Ni3Ga", "Ni3Si", "Al3Sc", "Pt3Sn")),
    "kesterite": ((r"kesterites?",), ("Cu2ZnSnS4", "Cu2ZnSnSe4", "Cu2ZnGeS4", "Ag2ZnSnS4", "Cu2ZnGeSe4")),
    "max phase": ((), ("Ti3SiC2", "Ti2AlC", "Ti3AlC2", "Cr2AlC", "V2AlC", "Ti2SC", "Nb2AlC", "Ti2AlN", "Ti4AlN3",
                       "Zr2AlC", "Ta4AlC3")),
    "zrcusias-type": ((r"1111(?:[- ](?:type|phases?|family|compounds?|pnictides?|arsenides?|superconductors?))?",
                       r"zrcusias[- ]type", r"lafeaso[- ](?:type|like)"),
                      ("LaFeAsO", "LaFePO", "SmFeAsO", "CeFeAsO", "NdFeAsO", "LaCuSO", "LaZnAsO")),
}
for _name, (_words, _) in FAMILY_MEMBERS.items():
    if _words:
        FAMILY_WORDS[_name] = (*FAMILY_WORDS.get(_name, ()), *_words)


def known_members(family: str | None) -> tuple[str, ...]:
    """Textbook members of a family (FAMILY_MEMBERS), for proposals and for families without a prototype."""
    return FAMILY_MEMBERS.get(family, ((), ()))[1] if family else ()


# Mineral names of well-known members (textbook mineralogy) -> the family whose structure type they have: a
# request may name the family by a mineral ("galena-structured", "the gahnite structure", "a cassiterite-type").
MINERAL_FAMILIES: dict[str, str] = {
    **dict.fromkeys(("periclase", "galena", "sylvite", "bunsenite", "manganosite", "wustite", "wüstite",
                     "monteponite", "alabandite", "oldhamite", "clausthalite", "altaite", "villiaumite", "griceite",
                     "osbornite", "chlorargyrite", "bromargyrite"), "rock salt"),
    **dict.fromkeys(("stilleite", "coloradoite", "metacinnabar", "hawleyite", "marshite", "nantokite", "miersite"),
                    "zincblende"),
    **dict.fromkeys(("zincite", "greenockite", "cadmoselite", "bromellite", "iodargyrite"), "wurtzite"),
    **dict.fromkeys(("uraninite", "thorianite", "cerianite", "frankdicksonite"), "fluorite"),
    **dict.fromkeys(("cassiterite", "pyrolusite", "stishovite", "plattnerite", "sellaite", "argutite"), "rutile"),
    **dict.fromkeys(("hematite", "haematite", "eskolaite", "karelianite", "ruby", "sapphire"), "corundum"),
    **dict.fromkeys(("geikielite", "pyrophanite", "ecandrewsite"), "ilmenite"),
    **dict.fromkeys(("gahnite", "hercynite", "galaxite", "franklinite", "ringwoodite"), "spinel"),
    **dict.fromkeys(("magnetite", "trevorite", "magnesioferrite", "ulvospinel", "ulvöspinel", "cuprospinel"),
                    "inverse spinel"),
    **dict.fromkeys(("tausonite", "macedonite", "barioperovskite"), "perovskite"),
    **dict.fromkeys(("bridgmanite", "neighborite", "lakargiite"), "orthorhombic perovskite"),
    **dict.fromkeys(("tephroite", "lithiophilite", "monticellite", "liebenbergite"), "olivine"),
    **dict.fromkeys(("spessartine", "andradite", "uvarovite", "majorite"), "garnet"),
    **dict.fromkeys(("roquesite", "gallite", "eskebornite", "lenaite"), "chalcopyrite"),
    **dict.fromkeys(("xenotime", "thorite", "coffinite"), "zircon"),
    **dict.fromkeys(("cattierite", "vaesite", "hauerite", "laurite", "sperrylite"), "pyrite"),
    **dict.fromkeys(("lollingite", "löllingite"), "marcasite"),
    **dict.fromkeys(("tungstenite", "drysdallite"), "molybdenite"),
    **dict.fromkeys(("berndtite", "melonite"), "cdi2"),
    **dict.fromkeys(("tetradymite", "tellurobismuthite", "paraguanajuatite", "kawazulite"), "bi2te3-type"),
}
# Molecular anions named by a word: the unit and its charge. Their salts (NaBH4, Mg(BH4)2, LiNH2) are proposed as
# the cation in its usual state balanced by whole units.
MOLECULAR_ANIONS: dict[str, tuple[str, int]] = {
    "borohydride": ("BH4", -1), "tetrahydroborate": ("BH4", -1), "alanate": ("AlH4", -1),
    "aluminohydride": ("AlH4", -1), "tetrahydroaluminate": ("AlH4", -1), "amide": ("NH2", -1),
    "imide": ("NH", -2), "azide": ("N3", -1), "cyanide": ("CN", -1), "hydroxide": ("OH", -1),
}
# Formulas of each family's best-known member: "MgAl2O4-type" or "like NaCl" name the family.
FORMULA_FAMILIES: dict[str, str] = {
    "NaCl": "rock salt", "MgO": "rock salt", "CsCl": "cscl", "ZnS": "zincblende", "GaAs": "zincblende",
    "ZnO": "wurtzite", "CaF2": "fluorite", "Li2O": "antifluorite", "TiO2": "rutile", "Al2O3": "corundum",
    "CaTiO3": "perovskite", "SrTiO3": "perovskite", "BaTiO3": "perovskite", "GdFeO3": "orthorhombic perovskite",
    "MgAl2O4": "spinel", "Fe3O4": "inverse spinel", "NiFe2O4": "inverse spinel", "FeTiO3": "ilmenite",
    "Mg2SiO4": "olivine", "LiFePO4": "olivine", "LiCoO2": "layered oxide", "NaFeO2": "layered oxide",
    "Y3Al5O12": "garnet", "Gd3Ga5O12": "garnet", "Cu2MnAl": "heusler", "MgAgAs": "half-heusler",
    "TiNiSn": "half-heusler", "CuFeS2": "chalcopyrite", "CuInSe2": "chalcopyrite", "Sr2FeMoO6": "double perovskite",
    "Gd2Ti2O7": "pyrochlore", "La2Zr2O7": "pyrochlore", "ThCr2Si2": "thcr2si2", "BaFe2As2": "thcr2si2",
}
# The anions a family's known members have, where it is not oxygen (tells ABX2 chalcopyrite from layered oxide).
FAMILY_ANIONS: dict[str, tuple[str, ...]] = {
    "chalcopyrite": ("S", "Se", "Te"), "thcr2si2": ("As", "P", "Sb", "N"), "antifluorite": ("O", "S", "Se", "Te"),
    "zincblende": ("S", "Se", "Te", "N", "P", "As", "Sb"), "wurtzite": ("O", "S", "Se", "N"),
}
# Families that are intermetallic (no anion, charges need not balance).
INTERMETALLIC_FAMILIES = ("heusler", "half-heusler")
# Minimum number of distinct elements a family's formula holds.
FAMILY_MIN_ELEMENTS = {  # Co3O4 (Co2+ Co3+2 O4) is a spinel, Fe3Si (Fe2FeSi) a Heusler
    "double perovskite": 4, "perovskite": 3, "orthorhombic perovskite": 3, "spinel": 2, "inverse spinel": 2,
    "ilmenite": 3, "pyrochlore": 3, "garnet": 3, "olivine": 3, "layered oxide": 3, "heusler": 2, "half-heusler": 3,
    "chalcopyrite": 3, "thcr2si2": 3,
}


@dataclass(frozen=True)
class Application:
    """An application word: the families and classes it usually calls for, and the elements it implies (one of them
    is required when the request names none: a spin ice needs Dy or Ho moments)."""

    name: str
    families: tuple[str, ...]
    classes: tuple[str, ...] = ()
    implies: tuple[str, ...] = ()
    words: tuple[str, ...] = field(default_factory=tuple)


APPLICATIONS: tuple[Application, ...] = (
    Application("battery cathode", ("olivine", "layered oxide", "spinel"), ("oxide", "phosphate"), (),
                (r"cathodes?", r"positive electrodes?", r"(?:li|na)-ion (?:battery|batteries) cathodes?")),
    Application("battery anode", ("spinel", "rock salt"), ("oxide",), (), (r"anodes?", r"negative electrodes?")),
    Application("oxide-ion solid electrolyte", ("fluorite", "perovskite"), ("oxide",),
                ("Zr", "Ce", "Bi", "Ga", "Y", "Gd", "Sm"),
                (r"oxide[- ]ion conduct\w*", r"oxygen[- ]ion conduct\w*", r"o2-? (?:ion )?conduct\w*")),
    Application("solid electrolyte", ("garnet", "perovskite", "antifluorite"), ("oxide", "halide", "sulfide"), (),
                (r"solid[- ](?:state )?electrolytes?", r"(?:fast )?ion(?:ic)? conductors?", r"superionic",
                 r"electrolytes?")),
    Application("thermoelectric", ("bi2te3-type", "rock salt", "half-heusler", "skutterudite"),
                ("telluride", "selenide", "antimonide"), (),
                (r"thermoelectrics?", r"seebeck", r"waste[- ]heat")),
    Application("LED", ("wurtzite", "zincblende"), ("nitride",), (),
                (r"(?:blue |uv |white )?leds?", r"light[- ]emitting(?: diodes?)?", r"light emitters?")),
    Application("photovoltaic absorber", ("perovskite", "chalcopyrite", "zincblende"), ("halide", "selenide"), (),
                (r"(?:solar|photovoltaic|pv)(?: cell)? absorbers?", r"photovoltaics?", r"solar(?: cells?)?",
                 r"pv", r"absorbers?", r"light[- ]harvest\w*")),
    Application("transparent conductor", ("rutile", "wurtzite", "spinel"), ("oxide",), (),
                (r"transparent conduct\w*", r"tcos?")),
    Application("spin ice", ("pyrochlore",), ("oxide",), ("Dy", "Ho"), (r"spin[- ]ices?",)),
    Application("spintronics", ("heusler", "half-heusler", "spinel"), ("intermetallic", "oxide"), (),
                (r"spintronic\w*", r"half[- ]metal\w*")),
    Application("magnetoresistance", ("perovskite",), ("oxide",), (),
                (r"(?:colossal |giant )?magnetoresist\w*", r"\bcmr\b", r"\bgmr\b")),
    Application("shape memory", ("heusler", "cscl"), ("intermetallic",), (), (r"shape[- ]memory",)),
    Application("multiferroic", ("perovskite", "orthorhombic perovskite"), ("oxide",), (), (r"multiferroics?",)),
    Application("magnet", ("inverse spinel", "cacu5-type", "nias-type", "heusler", "garnet"),
                ("oxide", "intermetallic"), (),
                (r"(?:permanent )?magnets?", r"magnetic", r"ferromagnet\w*", r"ferrimagnet\w*",
                 r"magnonics?", r"magnetocaloric", r"magnetostrict\w*")),
    Application("piezoelectric", ("wurtzite", "perovskite"), ("oxide", "nitride"), (),
                (r"piezoelectric\w*", r"piezo")),
    Application("ferroelectric", ("perovskite", "ilmenite"), ("oxide",), (), (r"ferroelectric\w*",)),
    Application("dielectric", ("perovskite", "pyrochlore"), ("oxide",), (),
                (r"dielectrics?", r"capacitors?", r"microwave dielectric\w*")),
    Application("catalyst", ("perovskite", "spinel", "rock salt"), ("oxide",), (),
                (r"(?:photo|electro)?catalys[ti]s?", r"(?:photo|electro)?catalytic", r"oxygen evolution",
                 r"oers?", r"water splitting", r"hydrogen evolution")),
    Application("thermal barrier coating", ("pyrochlore", "fluorite"), ("oxide",), (),
                (r"thermal barrier(?: coatings?)?", r"tbcs?")),
    Application("scintillator", ("garnet", "perovskite"), ("oxide", "halide"), (), (r"scintillat\w*",)),
    Application("laser host", ("garnet", "corundum"), ("oxide",), (), (r"laser(?: host| gain)?s?",)),
    Application("phosphor", ("garnet", "spinel"), ("oxide",), (), (r"phosphors?", r"luminesc\w*")),
    Application("nonlinear optics", ("chalcopyrite", "perovskite"), (), (),
                (r"non-?linear optic\w*", r"nlo", r"second[- ]harmonic\w*", r"frequency conversion")),
    Application("phase-change memory", ("rock salt",), ("telluride",), (), (r"phase[- ]change(?: memory)?",)),
    Application("superconductor", ("perovskite", "cscl"), (), (), (r"superconduct\w*",)),
    Application("hydrogen storage", (), ("hydride",), (), (r"hydrogen[- ]storage", r"h2[- ]storage")),
    Application("optical window", ("fluorite", "rock salt", "zincblende"), ("fluoride", "oxide"), (),
                (r"(?:ir|infrared|optical|uv) windows?", r"window materials?")),
    Application("hard coating", ("rock salt",), ("nitride", "carbide"), (), (r"hard coatings?", r"superhard")),
    Application("fuel cell", ("perovskite", "fluorite"), ("oxide",), (), (r"fuel cells?", r"sofcs?")),
    Application("power electronics", ("wurtzite", "corundum", "zincblende"), ("oxide", "nitride"), (),
                (r"power electronic\w*", r"high[- ]power (?:devices?|transistors?)", r"wide[- ]band[- ]?gap")),
    Application("pigment", ("perovskite", "spinel", "rutile"), ("oxide", "oxynitride"), (),
                (r"pigments?", r"colou?rants?")),
    Application("metal-insulator transition", ("rutile", "perovskite", "corundum"), ("oxide",), (),
                (r"metal[- ]insulator transitions?", r"\bmit\b", r"mott (?:insulator|transition)s?")),
    Application("battery", ("olivine", "layered oxide", "spinel"), ("oxide", "phosphate"), (),
                (r"(?:li|na|k|mg|lithium|sodium)?[- ]?ion batter(?:y|ies)", r"batter(?:y|ies)")),
    Application("gas sensor", ("rutile", "wurtzite"), ("oxide",), (), (r"(?:gas )?sensors?", r"sensing")),
    Application("refractory", ("rock salt", "spinel", "corundum"), ("oxide",), (), (r"refractor(?:y|ies)",)),
    Application("topological", ("half-heusler", "zincblende"), (), (), (r"topological",)),
)

NEGATION_CUES = (
    r"without", r"w/o", r"no", r"not", r"none of", r"excluding", r"exclude", r"excludes", r"except(?: for)?",
    r"avoid(?:s|ing)?", r"free of", r"free from", r"lacking", r"devoid of", r"minus", r"never",
    r"(?:do|does|should|must)(?: not|n't)(?: \w+)?", r"other than", r"but not", r"non",
)
# Words that end a negation's scope when it reaches them.
SCOPE_BREAKERS = {"with", "containing", "contains", "including", "includes", "that", "which", "but", "using",
                  "having", "has", "based", "for", "as", "is", "are", "be", "in", "on", "from", "while", "yet"}
# Words a negation or an inclusion list may carry between its cue and its elements.
LIST_FILLERS = {"and", "or", "nor", ",", "/", "&", "any", "the", "a", "an", "either", "elements", "element",
                "metal", "metals", "toxic", "expensive", "scarce", "costly", "critical", "heavy", "also",
                "of", "plus", "+", "please", "at", "all", "even", "traces"}
# Capitalised element symbols that are usually English words; read as elements only in chemical context.
AMBIGUOUS_SYMBOLS = {"I", "In", "As", "Be", "No", "At", "He", "Am", "Es", "Os", "Pa", "Ho", "Bi", "Hf", "Mo",
                     # physics abbreviations before they are elements: high-Tc, Ac (alternating), Pm, Po, Np, Ra
                     "Tc", "Ac", "Pm", "Po", "Np", "Ra"}
GOAL_WORDS = {"metastable": "metastable", "novel": "novel", "new": "novel", "unknown": "novel",
              "undiscovered": "novel", "hypothetical": "novel", "unexplored": "novel"}
COUNT_WORDS = {
    "unary": 1, "elemental": 1, "allotrope": 1, "allotropes": 1, "pure element": 1, "binary": 2, "ternary": 3,
    "quaternary": 4, "quinary": 5, "two-element": 2, "three-element": 3, "four-element": 4, "five-element": 5,
}


_TYPED_AFLOW = {  # the AFLOW mineral tags of the typed families
    "halite, rock salt": "rock salt", "zincblende, sphalerite": "zincblende", "wurtzite": "wurtzite",
    "fluorite": "fluorite", "rutile": "rutile", "corundum": "corundum", "(cubic) perovskite": "perovskite",
    "orthorhombic perovskite": "orthorhombic perovskite", "spinel": "spinel", "ilmenite": "ilmenite",
    "heusler": "heusler", "half-heusler": "half-heusler", "chalcopyrite": "chalcopyrite",
}
_CLASS_NOT_TYPE = {"zintl"}  # 'Zintl phase' names a bonding class far wider than the NaTl type
_TYPED_CODES = {"b2": "cscl", "c1b": "half-heusler"}  # typed families built here, not taken from AFLOW


@cache
def aflow_family_names() -> dict[str, str]:
    """Mineral names from pymatgen's AFLOW library (lower case phrase -> family): the typed families' and every
    structure type of models.crystals.prototypes.structure_types ('khatyrkite', 'tetraauricupride', with a Greek
    prefix dropped as a second spelling: 'bismuth trifluoride')."""
    from models.crystals.prototypes import aflow_library, structure_types

    out: dict[str, str] = {}
    for tags, _ in aflow_library():
        family = _TYPED_AFLOW.get((tags.get("mineral") or "").lower())
        for name in (tags.get("mineral") or "").lower().split(",") if family else ():
            name = name.strip().strip("()").replace("(cubic) ", "")
            if name:
                out[name] = family
    for family in structure_types():
        if family.endswith("-type") or " " in family and family.rsplit(" ", 1)[1][:1].isalpha() and \
                family.rsplit(" ", 1)[1][1:].isdigit():
            continue  # a formula name ('cr3si-type') or a second entry of a name ('pyrite ap12')
        if set(family.replace("-", " ").split()) & ELEMENT_NAMES:
            continue  # 'calcium hexaboride', 'lead oxide': a compound's name, read as its elements instead
        if family in _CLASS_NOT_TYPE:
            continue
        out.setdefault(family, family)
        bare = re.sub(r"^(?:alpha|beta|gamma|delta|zeta|beta-prime|low|high)\s+", "", family)
        if bare != family and len(bare) > 4:
            out.setdefault(bare, family)
    return out


@cache
def strukturbericht_families() -> dict[str, str]:
    """Strukturbericht designations as typed ('a15', 'l12', 'c14', without the underscore) -> family."""
    from models.crystals.prototypes import aflow_library, structure_types, strukturbericht_code

    out = dict(_TYPED_CODES)
    for tags, _ in aflow_library():
        family, code = _TYPED_AFLOW.get((tags.get("mineral") or "").lower()), strukturbericht_code(tags)
        if family and code:
            out.setdefault(code, family)
    for family, (tags, _) in structure_types().items():
        code = strukturbericht_code(tags)
        if code:
            out.setdefault(code, family)
    return out


def aflow_type_of_formula(reduced_formula: str) -> str | None:
    """The AFLOW structure type whose prototype has this reduced formula ('NiAs' -> 'nias-type'), first entry."""
    from models.crystals.prototypes import GENERIC_FAMILIES, structure_types

    types = structure_types()
    names = [*(n for n in GENERIC_FAMILIES if n in types), *types]  # the curated names first: pyrite, not marcasite
    return next((fam for fam in names if types[fam][1].composition.reduced_formula == reduced_formula), None)
