"""Pretrained universal potentials shipped inside wheels (SevenNet-0, CHGNet) and one front for all calculators."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ase.calculators.calculator import Calculator

UNIVERSAL_NAMES = ("sevennet-0", "chgnet")
CLASSICAL_NAMES = ("emt",)  # ASE's effective-medium theory: fast, for a few fcc metals (tests, quick checks)
_ALIASES = {
    "sevennet-0": "sevennet-0",
    "sevennet0": "sevennet-0",
    "7net-0": "sevennet-0",
    "sevennet": "sevennet-0",
    "chgnet": "chgnet",
    "chgnet-0.3.0": "chgnet",
}
_CACHE: dict[str, Calculator] = {}
_LOCK = threading.Lock()


def _load_sevennet(device: str) -> Calculator:
    """SevenNet-0 (11Jul2024) from the sevenn wheel."""
    from sevenn.calculator import SevenNetCalculator

    return SevenNetCalculator("7net-0", device=device)


def _load_chgnet(device: str) -> Calculator:
    """CHGNet 0.3.0 from the chgnet wheel."""
    from chgnet.model.dynamics import CHGNetCalculator

    return CHGNetCalculator(use_device=device)


_LOADERS: dict[str, Callable[[str], Calculator]] = {"sevennet-0": _load_sevennet, "chgnet": _load_chgnet}


def canonical_name(name: str) -> str:
    """Normalise a universal-model name; ValueError listing valid names when unknown."""
    key = name.strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown universal potential {name!r}; valid names: {', '.join(UNIVERSAL_NAMES)}")
    return _ALIASES[key]


def load_universal(name: str, device: str = "cpu") -> Calculator:
    """Cached ASE calculator for a universal model; stdout is redirected to stderr while loading (MCP stdio safety)."""
    key = canonical_name(name)
    cache_key = f"{key}@{device}"
    with _LOCK:
        if cache_key not in _CACHE:
            with contextlib.redirect_stdout(sys.stderr):
                _CACHE[cache_key] = _LOADERS[key](device)
        return _CACHE[cache_key]


def emt_calculator() -> Calculator:
    """ASE's effective-medium-theory potential (Al, Cu, Ag, Au, Ni, Pd, Pt; H, C, N, O only as impurities), with a
    check_species that names elements it has no parameters for instead of failing mid-calculation."""
    from ase.calculators.emt import EMT, parameters

    class CheckedEMT(EMT):
        def check_species(self, atoms) -> None:  # noqa: ANN001
            missing = sorted(set(atoms.get_chemical_symbols()) - set(parameters))
            if missing:
                raise ValueError(
                    f"EMT has no parameters for {', '.join(missing)}; it covers {', '.join(sorted(parameters))}"
                )

    return CheckedEMT()


def get_calculator(name_or_path: str | Path, device: str = "cpu") -> Calculator:
    """An ASE calculator from a universal-model name, 'emt', or a matsearch checkpoint path."""
    path = Path(name_or_path)
    text = str(name_or_path).strip().lower()
    if text in _ALIASES:
        return load_universal(text, device=device)
    if text == "emt":
        return emt_calculator()
    if path.is_file():
        from models.potentials.calculator import PotentialCalculator

        return PotentialCalculator.from_checkpoint(path, device=device)
    raise ValueError(
        f"{name_or_path!s} is neither a universal potential ({', '.join(UNIVERSAL_NAMES)}), the classical "
        f"{', '.join(CLASSICAL_NAMES)}, nor an existing checkpoint file"
    )
