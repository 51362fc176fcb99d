"""Compute the reference energies the project ships for a universal potential: elemental ground states and binary
reference compounds, relaxed with that potential, written to tools/potentials/data/references-<potential>.json.

Run: python -m tools.potentials.build_references --potential chgnet --elements La Mn O ...
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tools.core.settings import Settings
from tools.potentials.calculators import SHIPPED_REFERENCES, ElementalReferences, get_potential, safe_name
from tools.potentials.hull import ANIONS, LocalHull

_SYMBOLS = (
    "H Li Be B C N O F Na Mg Al Si P S Cl K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Rb Sr Y Zr Nb Mo Ru Rh "
    "Pd Ag Cd In Sn Sb Te I Cs Ba La Ce Pr Nd Sm Eu Gd Tb Dy Ho Er Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi"
)
DEFAULT_ELEMENTS = tuple(_SYMBOLS.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--potential", default="chgnet")
    parser.add_argument("--elements", nargs="*", default=list(DEFAULT_ELEMENTS))
    parser.add_argument("--anions", nargs="*", default=["O"], help="anions whose binaries with each element to add")
    args = parser.parse_args()
    out = SHIPPED_REFERENCES / f"references-{safe_name(args.potential)}.json"
    data = json.loads(out.read_text()) if out.exists() else {"elements": {}, "compounds": {}}
    settings = Settings(workspace=Path(tempfile.mkdtemp()))
    calc = get_potential(args.potential, settings)
    refs = ElementalReferences(args.potential, calc, settings.resolved_workspace())
    refs.energies.update(data["elements"])
    hull = LocalHull(refs, settings.resolved_workspace())
    hull.compounds.update(data["compounds"])
    for el in args.elements:
        start = time.time()
        for anion in ([a for a in args.anions if a != el and el not in ANIONS] or [None]):
            hull.reference_entries([el] if anion is None else [el, anion])
        data = {"potential": args.potential, "elements": refs.energies, "compounds": hull.compounds}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=0, sort_keys=True))
        print(f"{el}: {refs.energies.get(el, float('nan')):.4f} eV/atom ({time.time() - start:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
