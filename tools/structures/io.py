"""Structures at the boundary: a small `StructureRef` (memory id or inline text) and the one place that converts
CIF / POSCAR / extxyz text to pymatgen `Structure` and ASE `Atoms`, rejecting bad input with a clear message."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from ase import Atoms
from pydantic import Field, model_validator
from pymatgen.core import Element, Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from tools.core.errors import ToolInputError
from tools.core.registry import ToolInput

if TYPE_CHECKING:
    from memory.store import StructureStore

StructureFormat = Literal["auto", "cif", "poscar", "extxyz"]
MIN_DISTANCE_A = 0.5
MAX_TEXT_CHARS = 5_000_000
_SUFFIX_FORMATS: dict[str, StructureFormat] = {
    ".cif": "cif",
    ".vasp": "poscar",
    ".poscar": "poscar",
    ".xyz": "extxyz",
    ".extxyz": "extxyz",
}


class StructureRef(ToolInput):
    """A structure given either by its memory id or inline as CIF, POSCAR or extxyz text."""

    id: str | None = Field(default=None, description="Id of a structure in matsearch memory, e.g. 's-1a2b3c4d5e6f'.")
    text: str | None = Field(
        default=None, description="Inline structure text (CIF, POSCAR or extended XYZ).", max_length=MAX_TEXT_CHARS
    )
    format: StructureFormat = Field(default="auto", description="Format of `text`; 'auto' detects it.")

    @model_validator(mode="after")
    def _one_source(self) -> StructureRef:
        if (self.id is None) == (self.text is None):
            raise ValueError("give exactly one of 'id' (a memory id) or 'text' (CIF, POSCAR or extxyz)")
        return self

    @classmethod
    def from_path_or_id(cls, value: str) -> StructureRef:
        """CLI convenience: an existing file path becomes inline text (format from its suffix), anything else an id."""
        path = Path(value)
        if path.is_file():
            fmt = _SUFFIX_FORMATS.get(path.suffix.lower(), "auto")
            if path.name.upper().startswith(("POSCAR", "CONTCAR")):
                fmt = "poscar"
            return cls(text=path.read_text(), format=fmt)
        return cls(id=value)


def detect_format(text: str) -> StructureFormat:
    """Guess the format of structure text from its first lines."""
    head = text.lstrip()[:4000]
    if re.search(r"^\s*data_", head, re.MULTILINE) or "_cell_length_a" in head:
        return "cif"
    lines = head.splitlines()
    if len(lines) >= 2 and lines[0].strip().isdigit() and ("Lattice=" in lines[1] or "Properties=" in lines[1]):
        return "extxyz"
    if len(lines) >= 2 and lines[0].strip().isdigit():
        return "extxyz"
    return "poscar"


def _parse(text: str, fmt: StructureFormat) -> Structure:
    """Parse structure text in a known format; raise ToolInputError with the parser's reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "cif":
                from pymatgen.io.cif import CifParser

                structures = CifParser(io.StringIO(text)).parse_structures(primitive=False, on_error="raise")
                if not structures:
                    raise ValueError("no structure block found")
                return structures[0]
            if fmt == "poscar":
                from pymatgen.io.vasp import Poscar

                return Poscar.from_str(text).structure
            from ase.io import read

            atoms = read(io.StringIO(text), format="extxyz", index=0)
            return atoms_to_structure(atoms)
    except ToolInputError:
        raise
    except KeyError as exc:  # ase's symbol table lookup: the key is the unknown symbol
        raise ToolInputError(f"unknown element in {fmt.upper()} text: {exc.args[0]!s}") from exc
    except Exception as exc:  # the parsers raise many kinds; all mean the same thing to the caller
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ToolInputError(
            f"could not parse the structure as {fmt.upper()} (give CIF, POSCAR or extxyz text): {reason[:300]}"
        ) from exc


def check_elements(structure: Structure) -> None:
    """Reject dummy or unknown species (a CIF can carry labels pymatgen turns into DummySpecies)."""
    bad = sorted(
        {getattr(sp, "symbol", str(sp)) for sp in structure.composition if not isinstance(_element_of(sp), Element)}
    )
    if bad:
        raise ToolInputError(f"unknown element(s) in structure: {', '.join(bad)}")


def _element_of(species: object) -> object:
    """The Element behind a Species/Element, or None for DummySpecies."""
    if isinstance(species, Element):
        return species
    return getattr(species, "element", None)


def validate_structure(structure: Structure, max_atoms: int = 2000, allow_large: bool | None = None) -> Structure:
    """Reject empty, huge, degenerate or overlapping cells with a message that names the problem. `allow_large` is
    the caller's own argument when the tool has one (then the message offers it) and None when it has not."""
    n = len(structure)
    if n == 0:
        raise ToolInputError("the structure has no atoms")
    if n > max_atoms and not allow_large:
        remedy = ("pass allow_large=true to accept it" if allow_large is not None else
                  "this tool takes no larger cells; the server's limit is the max_atoms setting (MATSEARCH_MAX_ATOMS)")
        raise ToolInputError(f"the structure has {n} atoms, more than the limit of {max_atoms}; {remedy}")
    check_elements(structure)
    matrix = structure.lattice.matrix
    if not np.all(np.isfinite(matrix)) or not np.all(np.isfinite(structure.frac_coords)):
        raise ToolInputError("the structure has non-finite lattice vectors or coordinates")
    volume = abs(float(np.linalg.det(matrix)))
    if volume < 1e-3 * n:
        raise ToolInputError(f"the cell is degenerate (volume {volume:.3g} A^3 for {n} atoms)")
    dmin = min_interatomic_distance(structure)
    if dmin < MIN_DISTANCE_A:
        raise ToolInputError(f"atoms overlap: the closest pair is {dmin:.3f} A apart (minimum {MIN_DISTANCE_A} A)")
    return structure


def min_interatomic_distance(structure: Structure, cutoff: float = 3.0) -> float:
    """Shortest periodic interatomic distance (library neighbour list; returns `cutoff` when none is closer)."""
    from vesin import NeighborList

    if len(structure) < 2 and min(structure.lattice.abc) >= cutoff:
        return cutoff
    points = np.ascontiguousarray(structure.cart_coords, dtype=np.float64)
    box = np.ascontiguousarray(structure.lattice.matrix, dtype=np.float64)
    (dist,) = NeighborList(cutoff=cutoff, full_list=False).compute(points, box, periodic=True, quantities="d")
    return float(dist.min()) if len(dist) else cutoff


def parse_structure(
    text: str, fmt: StructureFormat = "auto", max_atoms: int = 2000, allow_large: bool | None = None
) -> Structure:
    """Text (CIF, POSCAR, extxyz) to a validated pymatgen Structure."""
    if not text or not text.strip():
        raise ToolInputError("the structure text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ToolInputError(f"the structure text is {len(text)} characters, more than {MAX_TEXT_CHARS}")
    chosen = detect_format(text) if fmt == "auto" else fmt
    return validate_structure(_parse(text, chosen), max_atoms=max_atoms, allow_large=allow_large)


def resolve_structure(
    ref: StructureRef, store: StructureStore | None = None, max_atoms: int = 2000, allow_large: bool | None = None
) -> Structure:
    """A StructureRef to a validated Structure, looking ids up in memory."""
    if ref.text is not None:
        return parse_structure(ref.text, ref.format, max_atoms=max_atoms, allow_large=allow_large)
    if store is None:
        raise ToolInputError("a memory id was given but no memory store is available")
    record = store.get(ref.id or "")
    if record is None:
        raise ToolInputError(f"no structure with id {ref.id!r} in memory")
    return record.structure


def atoms_to_structure(atoms: Atoms) -> Structure:
    """ASE Atoms to pymatgen Structure (periodic cell required)."""
    if not atoms.pbc.any() or atoms.cell.rank < 3:
        raise ToolInputError("the structure needs a 3D periodic cell (Lattice= in extxyz)")
    unknown = sorted({s for s in atoms.get_chemical_symbols() if s == "X"})
    if unknown:
        raise ToolInputError("unknown element(s) in structure: X")
    return Structure(
        Lattice(np.array(atoms.cell)), atoms.get_chemical_symbols(), atoms.get_positions(), coords_are_cartesian=True
    )


def structure_to_atoms(structure: Structure) -> Atoms:
    """pymatgen Structure to ASE Atoms (plain species, no properties carried)."""
    return AseAtomsAdaptor.get_atoms(structure.remove_oxidation_states() if _has_oxidation(structure) else structure)


def _has_oxidation(structure: Structure) -> bool:
    return any(getattr(sp, "oxi_state", None) not in (None, 0) for sp in structure.composition)


def structure_to_cif(structure: Structure) -> str:
    """CIF text for a structure (P1 cell as given, so nothing is symmetrised away)."""
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(structure))
