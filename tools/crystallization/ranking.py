"""How the first polymorph to nucleate is ranked from relaxed motifs: by its share of the valid motifs that lie
within an energy window of the lowest one, over the subcell sizes that can hold it (a multiple of its primitive cell),
with each size's say set by how many such motifs it holds and capped.

Raw counts let the smallest boxes decide: a 2-atom box can only ever hold a 2-atom primitive cell, so small
polymorphs won by filling small boxes, not by forming. A plain mean of per-size fractions fixed that but let sizes
with almost no support decide instead: in large boxes (subcells up to 48 atoms) a size often holds one or two
low-energy motifs, each such size scores a fraction of 1.0 for whatever it holds, and a 20-atom polymorph seen twice
at one size outranked fcc with 184 of 400 motifs (EMT Cu). The rule here:

    share(P) = sum_n v_n * c_Pn / N_n  /  (SUPPORT + sum_n v_n),   v_n = min(N_n, SUPPORT),

over the sizes n that can hold P, with c_Pn P's low-energy motifs of size n and N_n all low-energy motifs of size n.
A size gives one vote per motif up to SUPPORT, so a well-sampled size has the same say however many motifs it holds
(the small boxes still cannot outvote the rest), and a size with one motif has a fifth of that say (it cannot decide
the average). The SUPPORT extra votes in the denominator count for no polymorph: a share must be earned against one
well-sampled size's worth of evidence, so a polymorph seen once, alone at its only size, scores 1/(1 + SUPPORT),
not 1.0. A polymorph that can occupy k well-sampled sizes scores at most k / (k + 1): large primitive cells, which
fit few sizes below n_max, are held to the evidence those few sizes can give."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tools.crystallization.motifs import Motif

SUPPORT = 5  # low-energy motifs at which a subcell size has its full say; also the votes against every polymorph


def rule(window_eV: float | None, support: int = SUPPORT) -> str:
    """The ranking rule in words, for the report."""
    where = "all valid motifs" if window_eV is None else f"the valid motifs within {window_eV:g} eV/atom of the lowest"
    return (f"share of {where} over the subcell sizes that can hold the polymorph (multiples of its primitive cell), "
            f"each size weighted by its number of such motifs capped at {support}, so the smallest boxes cannot "
            f"outvote the rest and a size with one or two motifs cannot decide the average; {support} more votes "
            f"count for no polymorph, so a polymorph seen once alone in its only size scores 1/{support + 1}, not 1")


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
    sizes: list[int] = field(default_factory=list)  # the subcell sizes that can hold it (and hold a motif)
    votes: float = 0.0  # sum over those sizes of min(N_n, support): the evidence the share rests on


def size_normalised_shares(motifs: list[Motif], primitive_atoms: dict[str, int],
                           support: int = SUPPORT) -> dict[str, Share]:
    """Per label: sum_n v_n * c_n / N_n / (support + sum_n v_n) over the subcell sizes n that can hold it (n a
    multiple of its primitive cell), v_n = min(N_n, support); see the module docstring. `motifs` are the labelled
    motifs to count (e.g. within the window)."""
    if support < 1:
        raise ValueError(f"support must be at least 1 motif, got {support}")
    by_size: dict[int, Counter[str]] = {}
    for m in motifs:
        by_size.setdefault(m.n_atoms, Counter())[m.label or "?"] += 1
    out = {}
    for label in {m.label or "?" for m in motifs}:
        unit = max(1, primitive_atoms.get(label, 1))
        sizes = sorted(n for n in by_size if n % unit == 0)
        totals = {n: sum(by_size[n].values()) for n in sizes}
        votes = {n: min(totals[n], support) for n in sizes}
        score = sum(votes[n] * by_size[n][label] / totals[n] for n in sizes)
        out[label] = Share(label, score / (support + sum(votes.values())),
                           sum(by_size[n][label] for n in by_size), sizes, float(sum(votes.values())))
    return out
