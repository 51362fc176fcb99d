"""Structure text at the boundary: every format parses, and every kind of bad input is named clearly."""

from __future__ import annotations

import io

import pytest
from ase.io import write

from tests.conftest import cif_of, perovskite, rocksalt
from tools.core.errors import ToolInputError
from tools.structures.io import (
    StructureRef,
    detect_format,
    parse_structure,
    structure_to_atoms,
    validate_structure,
)


def _poscar(structure) -> str:
    from pymatgen.io.vasp import Poscar

    return Poscar(structure).get_str()


def _extxyz(structure) -> str:
    buf = io.StringIO()
    write(buf, structure_to_atoms(structure), format="extxyz")
    return buf.getvalue()


@pytest.mark.parametrize("writer,fmt", [(cif_of, "cif"), (_poscar, "poscar"), (_extxyz, "extxyz")])
def test_formats_round_trip(writer, fmt):
    original = perovskite()
    text = writer(original)
    assert detect_format(text) == fmt
    parsed = parse_structure(text)
    assert parsed.composition.reduced_formula == "SrTiO3"
    assert parsed.lattice.a == pytest.approx(3.905, abs=1e-4)
    assert parsed.matches(original)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", "empty"),
        ("this is not a crystal\nat all", "could not parse"),
        (cif_of(rocksalt()).replace("Mg", "Xx"), "unknown element"),
        (_extxyz(rocksalt()).replace("Mg", "Qq"), "unknown element"),
        (cif_of(rocksalt(a=0.4)), "overlap"),
    ],
)
def test_bad_text_is_named(text, expected):
    with pytest.raises(ToolInputError, match=expected):
        parse_structure(text)


def test_huge_cells_need_permission():
    big = rocksalt() * (8, 8, 8)  # 4,096 atoms
    with pytest.raises(ToolInputError, match="more than the limit of 2000"):
        validate_structure(big)
    assert len(validate_structure(big, allow_large=True)) == 4096


def test_structure_ref_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one"):
        StructureRef()
    with pytest.raises(ValueError, match="exactly one"):
        StructureRef(id="s-1", text="data_x")
    assert StructureRef(id="s-1").id == "s-1"


def test_structure_ref_from_path(tmp_path):
    path = tmp_path / "mgo.cif"
    path.write_text(cif_of(rocksalt()))
    ref = StructureRef.from_path_or_id(str(path))
    assert ref.format == "cif" and "data_" in (ref.text or "")
    assert StructureRef.from_path_or_id("s-abc").id == "s-abc"
