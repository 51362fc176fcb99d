"""Parse a natural-language materials request into constraints: elements to include or exclude, structure
family, anion, number of elements and the stability goal. Deterministic and offline."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pymatgen.core import Element

from tools.errors import ToolInputError

FAMILY_WORDS: dict[str, tuple[str, ...]] = {
    "double perovskite": ("double perovskite", "double-perovskite", "elpasolite"),
    "orthorhombic perovskite": ("orthorhombic perovskite",),
    "perovskite": ("perovskite",),
    "inverse spinel": ("inverse spinel",),
    "spinel": ("spinel",),
    "rock salt": ("rock salt", "rocksalt", "rock-salt", "halite"),
    "antifluorite": ("antifluorite", "anti-fluorite"),
    "fluorite": ("fluorite",),
    "pyrochlore": ("pyrochlore",),
    "garnet": ("garnet",),
    "olivine": ("olivine",),
    "half-heusler": ("half-heusler", "half heusler"),
    "heusler": ("heusler",),
    "rutile": ("rutile",),
    "wurtzite": ("wurtzite",),
    "zincblende": ("zincblende", "zinc blende", "sphalerite"),
    "corundum": ("corundum",),
    "ilmenite": ("ilmenite",),
    "layered oxide": ("layered oxide", "layered rock salt", "layered"),
    "cscl": ("cscl", "cesium chloride", "caesium chloride"),
}
ANION_WORDS = {
    "oxide": "O", "sulfide": "S", "sulphide": "S", "selenide": "Se", "telluride": "Te", "nitride": "N",
    "fluoride": "F", "chloride": "Cl", "bromide": "Br", "iodide": "I", "oxynitride": "O",
}
COUNT_WORDS = {"binary": 2, "ternary": 3, "quaternary": 4, "quinary": 5}
# Capitalised words that are also element symbols but almost always English in a request.
AMBIGUOUS_SYMBOLS = {"I", "In", "As", "Be", "No", "At", "He", "Am", "Is", "Es", "Os", "Pa"}
_NAMES = {el.long_name.lower(): el.symbol for el in Element if el.Z <= 103}
_NAMES.update({"aluminium": "Al", "aluminum": "Al", "caesium": "Cs", "sulphur": "S"})
_EXCLUDE = re.compile(
    r"\b(?:without|no|excluding|exclude|except|not containing|free of)\s+([A-Za-z ,]+?)"
    r"(?=$|[.;)]|\b(?:with|containing|including|that|which|but)\b)"
)


@dataclass
class MaterialsRequest:
    """What a request asks for, as constraints the proposer and search can act on."""

    text: str
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    family: str | None = None
    anion: str | None = None
    n_elements: int | None = None
    goal: str = "stable"  # stable | metastable | novel
    notes: list[str] = field(default_factory=list)


def _symbols_in(text: str) -> list[str]:
    """Element symbols and names mentioned, in order of appearance."""
    found: list[tuple[int, str]] = []
    for match in re.finditer(r"\b([A-Z][a-z]?)\b", text):
        sym = match.group(1)
        if Element.is_valid_symbol(sym) and sym not in AMBIGUOUS_SYMBOLS:
            found.append((match.start(), sym))
    lowered = text.lower()
    for name, sym in _NAMES.items():
        for match in re.finditer(rf"\b{name}\b", lowered):
            found.append((match.start(), sym))
    seen: list[str] = []
    for _, sym in sorted(found):
        if sym not in seen:
            seen.append(sym)
    return seen


def parse_request(text: str) -> MaterialsRequest:
    """Constraints from a request; ToolInputError for an empty or unreadable one, or contradictory constraints."""
    cleaned = " ".join(text.split())
    if not cleaned:
        raise ToolInputError("the request is empty: say what material you want, e.g. 'a stable spinel with Mg and Al'")
    lowered = cleaned.lower()
    req = MaterialsRequest(text=cleaned)
    for family, words in FAMILY_WORDS.items():
        if any(w in lowered for w in words):
            req.family = family
            break
    excluded_spans = []
    for match in re.finditer(_EXCLUDE, cleaned):
        excluded_spans.append(match.span(1))
        req.exclude.extend(_symbols_in(match.group(1)))
    for match in re.finditer(r"\b([A-Z][a-z]?)-free\b", cleaned):
        if Element.is_valid_symbol(match.group(1)):
            req.exclude.append(match.group(1))
            excluded_spans.append(match.span(1))
    kept = "".join(ch if not any(a <= i < b for a, b in excluded_spans) else " " for i, ch in enumerate(cleaned))
    req.include = _symbols_in(kept)
    for word, anion in ANION_WORDS.items():
        if re.search(rf"\b{word}s?\b", lowered):
            req.anion = anion
            break
    for word, count in COUNT_WORDS.items():
        if re.search(rf"\b{word}\b", lowered):
            req.n_elements = count
    if "metastable" in lowered:
        req.goal = "metastable"
    elif re.search(r"\b(novel|new|unknown|undiscovered)\b", lowered):
        req.goal = "novel"
    clash = sorted(set(req.include) & set(req.exclude))
    if clash:
        raise ToolInputError(f"contradictory request: {', '.join(clash)} is both required and excluded")
    if req.anion and req.anion in req.exclude:
        raise ToolInputError(f"contradictory request: an {req.anion}-based compound that excludes {req.anion}")
    if req.n_elements and len(set(req.include)) > req.n_elements:
        raise ToolInputError(
            f"contradictory request: {len(set(req.include))} required elements in a {req.n_elements}-element compound"
        )
    if not (req.family or req.include or req.anion):
        raise ToolInputError(
            "could not find elements, a structure family or a compound class in the request; try e.g. "
            "'a double perovskite oxide with La and Mn' or 'a stable spinel containing Mg'"
        )
    return req
