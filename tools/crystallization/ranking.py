"""How the first polymorph to nucleate is ranked from relaxed motifs: by its share of the valid motifs that lie
within an energy window of the lowest one, taken per subcell size and averaged over the sizes that can hold it (a
multiple of its primitive cell). Raw counts let the smallest boxes decide: a 2-atom box can only ever hold a
2-atom primitive cell, so small polymorphs won by filling small boxes, not by forming."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tools.crystallization.motifs import Motif


def rule(window_eV: float | None) -> str:
    """The ranking rule in words, for the report."""
    where = "all valid motifs" if window_eV is None else f"the valid motifs within {window_eV:g} eV/atom of the lowest"
    return (f"share of {where}, counted per subcell size and averaged over the sizes that can hold the polymorph "
            "(multiples of its primitive cell), so the smallest boxes cannot outvote the rest")


def within_window(motifs: list[Motif], window_eV: float | None) -> list[Motif]:
    """The motifs at most window_eV per atom above the lowest one (all of them without a window)."""
    if window_eV is None or not motifs:
        return list(motifs)
    lowest = min(m.energy_per_atom for m in motifs)
    return [m for m in motifs if m.energy_per_atom <= lowest + window_eV]


@dataclass
class Share:
    """A polymorph's size-normalised share and the counts behind it."""

    label: str
    share: float
    in_window: int
    sizes: list[int] = field(default_factory=list)  # the subcell sizes averaged over


def size_normalised_shares(motifs: list[Motif], primitive_atoms: dict[str, int]) -> dict[str, Share]:
    """Per label: the mean over the subcell sizes that can hold it (n a multiple of its primitive cell) of its
    fraction of the motifs of that size. `motifs` are the labelled motifs to count (e.g. within the window)."""
    by_size: dict[int, Counter[str]] = {}
    for m in motifs:
        by_size.setdefault(m.n_atoms, Counter())[m.label or "?"] += 1
    out = {}
    for label in {m.label or "?" for m in motifs}:
        unit = max(1, primitive_atoms.get(label, 1))
        sizes = sorted(n for n in by_size if n % unit == 0)
        fractions = [by_size[n][label] / sum(by_size[n].values()) for n in sizes]
        out[label] = Share(label, sum(fractions) / len(fractions) if fractions else 0.0,
                           sum(by_size[n][label] for n in by_size), sizes)
    return out
