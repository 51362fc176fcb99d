"""Oxidation-state statistics shared by the proposer and the compound-name reader: how often the ICSD sees each
element in each state (pymatgen's bond-valence data), and the states an element can take."""

from __future__ import annotations

from functools import lru_cache

from pymatgen.core import Composition, Element, Species

COMMON_STATE_SHARE = 0.2  # a state seen in at least this share of an element's ICSD compounds counts as a usual one
ANION_CHARGE = {"O": -2, "S": -2, "Se": -2, "Te": -2, "N": -3, "P": -3, "As": -3, "Sb": -3, "F": -1, "Cl": -1,
                "Br": -1, "I": -1, "H": -1, "C": -4, "Si": -4, "Ge": -4}  # Mg2Si, Mg2Ge: antifluorite silicides


@lru_cache(maxsize=1)
def _occurrence() -> dict[tuple[str, int], float]:
    """ICSD occurrence counts of each (element, oxidation state), from pymatgen's bond-valence data."""
    from monty.serialization import loadfn
    from pymatgen.core import composition

    data = loadfn(f"{composition.MODULE_DIR}/icsd_bv.yaml")["occurrence"]
    out = {}
    for name, count in data.items():
        sp = Species.from_str(name)
        out[(sp.symbol, int(sp.oxi_state))] = float(count)
    return out


@lru_cache(maxsize=4096)
def state_prior(symbol: str, ox: int) -> float:
    """Share of an element's ICSD occurrences in this oxidation state (rare states rank low)."""
    counts = {o: c for (el, o), c in _occurrence().items() if el == symbol and o > 0}
    total = sum(counts.values())
    return counts.get(ox, 0.0) / total if total else 0.5


def oxidation_states(symbol: str, every_known: bool = False) -> tuple[int, ...]:
    """Positive oxidation states seen in the ICSD for an element (common ones as a fallback); with every_known,
    every state pymatgen knows (up to +8)."""
    el = Element(symbol)
    if every_known:
        return tuple(s for s in el.oxidation_states if 0 < s <= 8)
    states = tuple(s for s in (el.icsd_oxidation_states or el.common_oxidation_states) if s > 0)
    return states or tuple(s for s in el.oxidation_states if s > 0)


def charge_balanced(comp: Composition) -> bool:
    """True when pymatgen finds an oxidation-state assignment summing to zero (intermetallics pass trivially)."""
    if not any(el.symbol in ANION_CHARGE for el in comp.elements):
        return True
    try:
        return bool(comp.oxi_state_guesses(max_sites=-50))
    except Exception:  # noqa: BLE001 - pymatgen gives up on some large compositions
        return False
