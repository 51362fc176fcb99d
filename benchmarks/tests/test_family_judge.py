"""The benchmark's reference-cell family judge (benchmarks/family_judge.py) on known members and on wrong site
orderings that an anonymous structure match cannot see."""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

from benchmarks.family_judge import judge_family
from models.crystals.prototypes import decorate
from models.crystals.reference_cells import reference_cell


def test_judge_accepts_known_members_and_catches_wrong_site_ordering():
    for name, family in [("TiNiSn", "half-heusler"), ("LiFePO4", "olivine"), ("NiFe2O4", "inverse spinel")]:
        verdict = judge_family(reference_cell(name), family)
        assert verdict["match"] and verdict["match_strict"] and verdict["ordering_ok"] is True, verdict
    wrong = [
        ("half-heusler", {"A": "Ni", "B": "Ti", "C": "Sn"}, True),  # Ti on 4c: the anonymous fit cannot see it
        ("perovskite", {"A": "Ti", "B": "Sr", "X": "O"}, True),
        ("olivine", {"A": "Li", "B": "P", "C": "Fe", "X": "O"}, True),  # P octahedral, Fe tetrahedral
        ("inverse spinel", {"A": "Mg", "B": "Al", "X": "O"}, False),  # judged as a normal spinel
    ]
    for family, roles, anonymous in wrong:
        judged = "spinel" if family == "inverse spinel" else family
        verdict = judge_family(decorate(family, roles), judged)
        assert verdict["match"] is anonymous and verdict["frame_match"], verdict
        assert verdict["ordering_ok"] is False, verdict
    verdict = judge_family(reference_cell("NaCl"), "perovskite")
    assert not verdict["match"] and verdict["ordering_ok"] is None and "frame" in verdict["reason"]
    assert judge_family(reference_cell("CaF2"), "fluorite")["ordering_ok"] is None
    # inverse Heusler Mn2CoGa (Hg2CuTi type): Mn on 4a and 4c, not on 8c; the bcc frame is the Heusler's
    inverse = Structure.from_spacegroup(
        "F-43m", Lattice.cubic(5.8), ["Mn", "Mn", "Co", "Ga"], [[0, 0, 0], [0.25] * 3, [0.5] * 3, [0.75] * 3]
    )
    verdict = judge_family(inverse, "heusler")
    assert not verdict["match"] and verdict["ordering_ok"] is False, verdict
