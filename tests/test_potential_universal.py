"""Universal pretrained calculators (SevenNet-0, CHGNet): load offline, stdout stays clean, one cached instance."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from models.potentials.universal import UNIVERSAL_NAMES, canonical_name, get_calculator, load_universal


def test_unknown_name_lists_valid_names() -> None:
    """An unknown name raises ValueError that lists every valid name."""
    with pytest.raises(ValueError) as err:
        canonical_name("mace-mp-0")
    assert all(name in str(err.value) for name in UNIVERSAL_NAMES)
    assert canonical_name("7net-0") == "sevennet-0" and canonical_name(" CHGNet ") == "chgnet"


@pytest.mark.slow
@pytest.mark.parametrize("name", UNIVERSAL_NAMES)
def test_universal_loads_cached_with_clean_stdout(name: str, capfd: pytest.CaptureFixture[str]) -> None:
    """Loading prints nothing on stdout (MCP stdio safety), is cached, and gives a sane Cu energy and stress."""
    calc = load_universal(name)
    captured = capfd.readouterr()
    assert captured.out == ""
    assert get_calculator(name) is calc and load_universal(name.upper()) is calc
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    assert -5.0 < energy / len(atoms) < -3.0  # Cu cohesive-energy scale of PBE-trained models
    assert np.abs(atoms.get_forces()).max() < 1e-3  # perfect fcc: forces vanish by symmetry
    assert atoms.get_stress().shape == (6,)
    assert capfd.readouterr().out == ""
