"""Request syntax that is not prose: structured requests (a JSON or Python dict, `key=value` pairs), element ratios
('Sm-Co 1:5') and site templates with their values ('Li2MSiO4 with M = Fe', 'Co2MnZ, Z from group 14'). Structured
parts are rewritten into the words the reader understands; ratios and filled templates become formulas."""

from __future__ import annotations

import ast
import itertools
import json
import re

from pymatgen.core import Element

from tools.discovery.known_compounds import is_known
from tools.discovery.lexicon import ELEMENT_NAME_SYMBOLS

_EXCLUDE_KEY = r"(?:excluded?|excludes|excluding|exclusions?|without|avoid|forbidden|forbid|banned|ban|not|no|" \
               r"free[_ -]of|must[_ -]not[_ -](?:have|contain|include))"
_INCLUDE_KEY = r"(?:includes?|included|including|must[_ -](?:have|contain|include)|required?|requires|with|" \
               r"contains?|containing|elements?)"
_ONLY_KEY = r"(?:only|allowed|allowed[_ -]elements|only[_ -]elements)"
_PLAIN_KEY = r"(?:family|type|structure|structure[_ -]type|class|compound[_ -]class|use|application|app|property|" \
             r"properties|goal|query|note|notes|request|target|material|kind|want)"
SITE_LETTERS = {"A", "X", "Z", "M", "R", "T", "Q", "E", "G", "D", "L", "J", "Ln", "B", "Y"}  # as in templates
MAX_TEMPLATE_FORMULAS = 12  # filled templates kept per request ('Z from group 14' fills five)


def _words(value: object) -> str:
    """A dict value as words: lists joined with 'and', quotes and brackets dropped."""
    if isinstance(value, (list, tuple, set)):
        return " and ".join(_words(v) for v in value)
    return str(value).strip().strip("'\"")


def _from_mapping(mapping: dict) -> str:
    """{'type': 'olivine phosphate cathode', 'must_have': 'Li', 'exclude': ['Co', 'Fe']} as a sentence."""
    parts = []
    for key, value in mapping.items():
        key = str(key).strip().lower()
        words = _words(value)
        if not words:
            continue
        if re.fullmatch(_EXCLUDE_KEY, key):
            parts.append(f"without {words.replace(' and ', ', ')}")
        elif re.fullmatch(_ONLY_KEY, key):
            parts.append(f"made of only {words}")
        elif re.fullmatch(_INCLUDE_KEY, key):
            parts.append(f"with {words}")
        else:
            parts.append(words)
    return ", ".join(parts)


def _mapping(text: str) -> dict | None:
    """The dict a request is written as (JSON or a Python literal), or None."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def _pair_value(m: re.Match[str]) -> str:
    return re.sub(r"[\[\]'\"]", "", m.group("value")).strip()


def plain_request(text: str) -> str:
    """The request with its structured syntax in words: a dict becomes a sentence; 'exclude=Hf' becomes 'without
    Hf', 'must_have: Li' 'with Li', 'family=Laves' 'Laves'; 'half_heusler' becomes 'half-heusler'. Site
    assignments ('A=Zr') are left for the template reader."""
    mapping = _mapping(text)
    if mapping is not None:
        text = _from_mapping(mapping)
    value = r"(?P<value>\[[^\]]*\]|[^,;]+)"
    text = re.sub(rf"(?<![\w-]){_EXCLUDE_KEY}\s*[=:]\s*{value}", lambda m: f"without {_pair_value(m)}", text,
                  flags=re.IGNORECASE)
    text = re.sub(rf"(?<![\w-]){_INCLUDE_KEY}\s*[=:]\s*{value}", lambda m: f"with {_pair_value(m)}", text,
                  flags=re.IGNORECASE)
    text = re.sub(rf"(?<![\w-]){_PLAIN_KEY}\s*[=:]\s*", "", text, flags=re.IGNORECASE)
    return re.sub(r"(?<=[a-z])_(?=[a-z])", "-", text)


_NAME = "|".join(sorted(map(re.escape, ELEMENT_NAME_SYMBOLS), key=len, reverse=True))
_ELEMENT = rf"(?:[A-Z][a-z]?|(?i:{_NAME}))"
_RATIO = re.compile(rf"(?<![\w])(?P<a>{_ELEMENT})\s*[-:/–]\s*(?P<b>{_ELEMENT})(?![\w])\s*[,(]?\s*(?:in\s+(?:a\s+)?)?"
                    r"(?P<x>\d{1,2})\s*:\s*(?P<y>\d{1,2})(?!\s*:)(?!\d)")


def _symbol(word: str) -> str | None:
    sym = ELEMENT_NAME_SYMBOLS.get(word.lower(), word)
    return sym if Element.is_valid_symbol(sym) else None


_EQUIATOMIC = re.compile(rf"(?<![\w])equi-?(?:atomic|molar)\s+(?P<a>{_ELEMENT})\s*[-/–]\s*(?P<b>{_ELEMENT})(?![\w])")


def ratio_formulas(text: str) -> list[str]:
    """'Sm-Co 1:5', 'samarium-cobalt (1:5)', 'Fe:Pt 1:1', 'equiatomic iron-cobalt' -> SmCo5, SmCo5, FePt, FeCo: two
    elements and their ratio."""
    out = []
    for m in _EQUIATOMIC.finditer(text):
        a, b = _symbol(m.group("a")), _symbol(m.group("b"))
        if a and b and a != b:
            out.append(f"{a}{b}")
    for m in _RATIO.finditer(text):
        a, b = _symbol(m.group("a")), _symbol(m.group("b"))
        x, y = int(m.group("x")), int(m.group("y"))
        if not a or not b or a == b or not x or not y:
            continue
        out.append(f"{a}{x if x > 1 else ''}{b}{y if y > 1 else ''}")
    return list(dict.fromkeys(out))


_VALUES = rf"{_ELEMENT}(?:\s*(?:,|/|\bor\b|\band\b|\|)\s*{_ELEMENT})*"
_GROUP_NUMBER = r"(?:from\s+|in\s+|of\s+|=\s*|is\s+|:\s*)(?:an?\s+|the\s+)?(?:group|column)[- ]?(?P<group>\d{1,2})"


def _common(symbol: str) -> bool:
    el = Element(symbol)
    return el.Z <= 83 and el.symbol not in ("Tc", "Pm") and el.row >= 2


def _placeholder_values(text: str, label: str) -> list[str]:
    """The elements a site letter is given: 'M = Fe', 'M = Y or In', '(M: Ti, Zr)', 'Z from group 14'."""
    values: list[str] = []
    prime = "" if label[-1:] in ("'", "’") else r"(?!['’])"  # 'B = Fe' is not "B' = Mo"
    for m in re.finditer(rf"(?<![\w]){re.escape(label)}{prime}\s*(?:=|:|is|being)\s*(?P<values>{_VALUES})", text):
        for word in re.split(r"\s*(?:,|/|\bor\b|\band\b|\|)\s*", m.group("values")):
            sym = _symbol(word)
            if sym:
                values.append(sym)
    for m in re.finditer(rf"(?<![\w]){re.escape(label)}\s+{_GROUP_NUMBER}", text, re.IGNORECASE):
        group = int(m.group("group"))
        values.extend(el.symbol for el in Element if 1 <= group <= 18 and el.Z <= 83 and el.group == group
                      and _common(el.symbol) and not el.is_noble_gas)
    return list(dict.fromkeys(values))


def filled_templates(text: str, token: str) -> list[str]:
    """A site template with the values the request gives its letters: 'Li2MSiO4' with 'M = Fe' -> Li2FeSiO4;
    'Co2MnZ' with 'Z from group 14' -> Co2MnC ... Co2MnPb. Empty unless every letter has values."""
    units = re.findall(r"(Ln|[A-Z][a-z]?)(['’]*)(\d*(?:\.\d+)?)", token)
    labels: list[str] = []  # site letters with their primes: B and B' are two sites
    for sym, prime, _count in units:
        label = sym + prime
        if label in labels:
            continue
        if prime or not Element.is_valid_symbol(sym) or sym in ("D", "T"):
            labels.append(label)  # a letter that is no element: it must be given values
        elif sym in SITE_LETTERS and _placeholder_values(text, sym):
            labels.append(label)  # 'B = Ti': a letter that is also an element, given values
    if not labels:
        return []
    choices = {label: _placeholder_values(text, label) for label in labels}
    if not all(choices.values()):
        return []
    out = []
    for combo in itertools.product(*(choices[label] for label in labels)):
        given = dict(zip(labels, combo, strict=True))
        formula = "".join(f"{given.get(sym + prime, sym)}{count}" for sym, prime, count in units)
        out.append(formula)
        if len(out) >= MAX_TEMPLATE_FORMULAS:
            break
    return sorted(out, key=lambda f: not is_known(f))  # the measured compounds first: Co2MnSi before Co2MnC
