"""Energy above a local convex hull: elemental references, binary reference compounds built from prototypes and
relaxed with the same potential (cached in the workspace), and every structure memory holds for that potential.

Binary references: for a metal-anion pair, the charge-balanced compounds in their usual prototypes (rock salt,
rutile, fluorite, corundum, antifluorite); for a metal-metal pair of an anion-free system (an intermetallic such as
a Heusler), the common binary intermetallic prototypes: B2 (CsCl) and L1_0 (CuAu) at AB, L1_2 (Cu3Au) at A3B and
AB3, C15 (cubic Laves MgCu2) at A2B and AB2 -- six relaxations per pair, so a ternary costs 18 once per potential
and workspace. In a system with an anion the metal-metal binaries are not built: a charge-balanced compound lies in
the anion-rich part of composition space, where the hull facets are made of anion compounds, and the cost would
triple for nothing.

A reference compound whose relaxation does not converge in REFERENCE_STEPS stays among the hull entries: its
energy is an upper bound of its minimum's, and leaving it out would lift the hull further (E_hull reads too low
either way, less so with it). It is named in `LocalHull.unconverged` and in the hull's notes. Structures from
memory are held to a stricter rule (converged only; see tools/potentials/properties.py `memory_entries`)."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from functools import lru_cache
from pathlib import Path

from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element, Structure

from models.crystals.prototypes import aflow_library, decorate, predicted_volume
from tools.potentials.calculators import REFERENCE_CLOCK, ElementalReferences, relax, safe_name, shipped_references

log = logging.getLogger("matsearch.hull")
ANIONS = {"O": -2, "S": -2, "Se": -2, "Te": -2, "N": -3, "F": -1, "Cl": -1, "Br": -1, "I": -1}
# cation:anion ratio -> prototypes tried for a binary reference compound
BINARY_PROTOTYPES: dict[tuple[int, int], tuple[str, ...]] = {
    (1, 1): ("rock salt",),
    (1, 2): ("rutile", "fluorite"),
    (2, 3): ("corundum",),
    (2, 1): ("antifluorite",),
}
REFERENCE_STEPS = 250  # relaxation steps for a reference compound (fmax 0.05 eV/A)


# (name, AFLOW prototype label, whether the template's two species swap roles): template species are sorted
# (A first) as pymatgen's AFLOW library gives them: CuAu (L1_0), Cu3Au (L1_2), Cu4Mg2 (C15).
INTERMETALLIC_PROTOTYPES: tuple[tuple[str, str, bool], ...] = (
    ("L1_0", "AB_tP2_123_a_d", False),
    ("L1_2", "AB3_cP4_221_a_c", False),
    ("L1_2", "AB3_cP4_221_a_c", True),
    ("C15", "A2B_cF24_227_d_a", False),
    ("C15", "A2B_cF24_227_d_a", True),
)


@lru_cache(maxsize=1)
def _aflow_by_label() -> dict[str, Structure]:
    """pymatgen's AFLOW prototype structures by AFLOW label (the first entry of a label)."""
    out: dict[str, Structure] = {}
    for tags, structure in aflow_library():
        out.setdefault(tags["aflow"], structure)
    return out


def dropped_reference(dropped: list[str] | None, what: str, exc: Exception) -> None:
    """Record a reference compound that could not be built: the hull goes on without it, thinner, and says so."""
    note = f"{what} ({type(exc).__name__}: {str(exc)[:120]})"
    log.warning("hull reference dropped: %s", note)
    if dropped is not None:
        dropped.append(note)


def intermetallic_reference_structures(
    first: str, second: str, dropped: list[str] | None = None
) -> list[tuple[str, Structure]]:
    """Binary intermetallic prototypes of two metals: B2 and L1_0 at AB, L1_2 at A3B and AB3, C15 at A2B and AB2,
    volume-scaled by pymatgen's bond-length predictor (the relaxation does the rest). A prototype that cannot be
    built is left out and named in `dropped`."""
    out = []
    try:
        out.append(("B2", decorate("cscl", {"A": first, "X": second})))
    except Exception as exc:  # noqa: BLE001 - a volume predictor failure drops one candidate, not the hull
        dropped_reference(dropped, f"{first}{second}:B2", exc)
    for name, label, swap in INTERMETALLIC_PROTOTYPES:
        template = _aflow_by_label()[label].copy()
        counts = template.composition.get_el_amt_dict()
        majority, minority = sorted(counts, key=lambda el: (-counts[el], el))  # Cu of Cu3Au and Cu4Mg2
        a, b = (second, first) if swap else (first, second)
        template.replace_species({majority: a, minority: b})
        try:
            out.append((name, predicted_volume(template)))
        except Exception as exc:  # noqa: BLE001
            dropped_reference(dropped, f"{template.composition.reduced_formula}:{name}", exc)
    return out


def binary_reference_structures(
    metal: str, anion: str, dropped: list[str] | None = None
) -> list[tuple[str, Structure]]:
    """Charge-balanced binary compounds of a metal and an anion in their usual prototypes (one that cannot be built
    is left out and named in `dropped`)."""
    out = []
    charge = -ANIONS[anion]
    for ox in sorted(set(Element(metal).common_oxidation_states)):
        if ox <= 0:
            continue
        comp = Composition({metal: charge, anion: ox}).reduced_composition
        key = (int(comp[metal]), int(comp[anion]))
        for family in BINARY_PROTOTYPES.get(key, ()):
            try:
                out.append((family, decorate(family, {"A": metal, "X": anion})))
            except Exception as exc:  # noqa: BLE001 - a volume predictor failure drops one candidate, not the hull
                dropped_reference(dropped, f"{comp.reduced_formula}:{family}", exc)
    return out


class LocalHull:
    """Reference entries for a chemical system with one potential, and energy above hull for new entries."""

    def __init__(self, refs: ElementalReferences, cache_dir: Path) -> None:
        self.refs = refs
        self.path = cache_dir / f"compounds-{safe_name(refs.potential)}.json"
        cached = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.compounds: dict[str, dict] = {**shipped_references(refs.potential)["compounds"], **cached}
        self._lock = threading.Lock()
        self.relaxations = 0  # reference compounds relaxed by this object (the cost not served by the cache)
        self.dropped: list[str] = []  # reference compounds that could not be built ('AlNi:B2 (why)')
        self.unconverged: list[str] = []  # reference compounds kept although unconverged ('AlNi:B2')

    def reference_entries(self, elements: list[str]) -> list[PDEntry]:
        """Elemental and binary reference entries for the chemical system (computed once, then cached): metal-anion
        compounds, and for an anion-free system the binary intermetallic prototypes of every metal pair. Those
        that cannot be built are left out and listed in self.dropped; those whose relaxation did not converge are
        kept (an upper bound) and listed in self.unconverged."""
        entries = [PDEntry(Composition(el), self.refs.energy(el), name=el) for el in elements]
        anions = [el for el in elements if el in ANIONS]
        metals = [el for el in elements if el not in ANIONS]
        builds: list[tuple[str, Structure]] = []
        dropped: list[str] = []
        for metal, anion in itertools.product(metals, anions):
            builds += binary_reference_structures(metal, anion, dropped)
        if not anions:
            for first, second in itertools.combinations(sorted(metals), 2):
                builds += intermetallic_reference_structures(first, second, dropped)
        self.dropped += [note for note in dropped if note not in self.dropped]
        for family, structure in builds:
            key = f"{structure.composition.reduced_formula}:{family}"
            with self._lock:
                if key not in self.compounds:
                    started = time.perf_counter()
                    result = relax(structure, self.refs.calc, self.refs.potential, max_steps=REFERENCE_STEPS)
                    REFERENCE_CLOCK["seconds"] += time.perf_counter() - started
                    self.relaxations += 1
                    self.compounds[key] = {
                        "formula": structure.composition.formula,
                        "energy": result.energy,
                        "converged": result.converged,
                        "cif": str(result.structure.to(fmt="cif")),
                    }
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self.path.write_text(json.dumps(self.compounds))
            data = self.compounds[key]
            if data.get("converged") is False and key not in self.unconverged:
                self.unconverged.append(key)
            entries.append(PDEntry(Composition(data["formula"]), data["energy"], name=key))
        return entries

    def competing_phases(self, elements: list[str]) -> list[str]:
        """Names of the reference phases of the system's hull: elements and binary compounds ('NiAl:B2')."""
        return [str(entry.name) for entry in self.reference_entries(elements)]

    def e_above_hull(self, composition: Composition, energy: float, extra: list[PDEntry] | None = None) -> float:
        """Energy above the hull (eV/atom) of (composition, total energy); negative when it lies below it."""
        elements = sorted(el.symbol for el in composition.elements)
        entries = self.reference_entries(elements) + list(extra or [])
        target = PDEntry(composition, energy, name="candidate")
        diagram = PhaseDiagram(entries)  # without the candidate, so a new ground state reads negative
        _, e_hull = diagram.get_decomp_and_e_above_hull(target, allow_negative=True)
        return float(e_hull)


def missing_binaries(elements: list[str], entries: list[PDEntry]) -> list[str]:
    """The binary subsystems a hull of this system should have a compound in but has none (a thin hull): every
    metal-anion pair, and every pair of an anion-free system; only for systems of three or more elements."""
    if len(elements) < 3:
        return []
    anions = [el for el in elements if el in ANIONS]
    if anions:
        pairs = [(m, a) for m in elements if m not in ANIONS for a in anions]
    else:
        pairs = list(itertools.combinations(sorted(elements), 2))
    present = {
        frozenset(el.symbol for el in entry.composition.elements)
        for entry in entries
        if len(entry.composition.elements) == 2
    }
    return [f"{a}-{b}" for a, b in pairs if frozenset((a, b)) not in present]
