"""Potential access for tools: one cached ASE calculator per potential, a lock per calculator (ASE calculators
keep state, and jobs run in threads), relaxation, and formation energies against elemental references that are
computed with the same potential and cached in the workspace."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, reference_states
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE
from pymatgen.core import Element, Structure

from tools.core.errors import ToolInputError, ToolRuntimeError
from tools.core.paths import SHIPPED_CHECKPOINTS, checkpoint_file
from tools.core.settings import Settings
from tools.structures.io import atoms_to_structure, structure_to_atoms

_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


def potential_lock(name: str) -> threading.RLock:
    """The lock that serialises use of one potential's calculator across threads."""
    with _locks_guard:
        return _locks.setdefault(name, threading.RLock())


def potential_names(workspace: Path) -> list[str]:
    """Every potential a tool accepts by name: the universal and classical ones, the shipped checkpoints, and the
    checkpoints trained in this workspace (workspace/potentials/<name>.pt)."""
    from models.potentials.universal import CLASSICAL_NAMES, UNIVERSAL_NAMES

    trained = sorted(p.stem for p in (workspace / "potentials").glob("*.pt"))
    shipped = sorted(p.stem for p in SHIPPED_CHECKPOINTS.glob("*.pt") if p.stem != "diffusion")
    return [*UNIVERSAL_NAMES, *CLASSICAL_NAMES, *shipped, *trained]


def resolve_potential(name: str, workspace: Path) -> str:
    """The one resolver of potential names for every tool: a universal or classical name (canonical spelling), or
    the path of a checkpoint that is shipped or inside the workspace. ToolInputError listing the valid names
    otherwise; a path outside the workspace is never opened."""
    from models.potentials.universal import CLASSICAL_NAMES, canonical_name

    text = str(name).strip()
    if text.lower() in CLASSICAL_NAMES:
        return text.lower()
    with contextlib.suppress(ValueError):
        return canonical_name(text)
    try:
        return str(checkpoint_file(text, workspace, "potential"))
    except ToolInputError as exc:
        raise ToolInputError(
            f"{exc}. A potential is one of {', '.join(potential_names(workspace))}, or a .pt checkpoint inside the "
            "workspace") from None


def get_potential(name: str, settings: Settings) -> Calculator:
    """The ASE calculator for a potential name or checkpoint (see resolve_potential)."""
    from models.potentials.universal import get_calculator

    resolved = resolve_potential(name, settings.resolved_workspace())
    if not Path(resolved).is_file():
        return get_calculator(resolved, device=settings.device)
    try:
        return get_calculator(resolved, device=settings.device)
    except Exception as exc:  # noqa: BLE001 - a file that is not a matsearch checkpoint is the caller's input
        raise ToolInputError(f"potential {name!r} is not a readable matsearch checkpoint ({exc})") from exc


def check_supported(calc: Calculator, atoms: Atoms, name: str) -> None:
    """Unsupported elements for our own models -> ToolInputError naming element and model."""
    checker = getattr(calc, "check_species", None)
    if checker is not None:
        try:
            checker(atoms)
        except ValueError as exc:
            raise ToolInputError(str(exc)) from exc


# Seconds spent relaxing hull references (elements here, compounds in tools/potentials/hull.py) in this process: a
# search
# reports its share, since references are computed once per chemical system and cached.
REFERENCE_CLOCK = {"seconds": 0.0}


@dataclass
class Relaxed:
    """The outcome of one relaxation."""

    structure: Structure
    energy: float
    initial_energy: float
    steps: int
    converged: bool
    max_force: float


def relax(
    structure: Structure,
    calc: Calculator,
    name: str,
    fmax: float = 0.05,
    max_steps: int = 300,
    relax_cell: bool = True,
    optimizer: str = "FIRE",
    on_step: Callable[[int], None] | None = None,
) -> Relaxed:
    """Relax positions (and the cell via FrechetCellFilter) with FIRE or BFGS; energies in eV."""
    atoms = structure_to_atoms(structure)
    check_supported(calc, atoms, name)
    with potential_lock(name):
        atoms.calc = calc
        try:
            initial = float(atoms.get_potential_energy())
            target = FrechetCellFilter(atoms) if relax_cell else atoms
            opt = (FIRE if optimizer.upper() == "FIRE" else BFGS)(target, logfile=None)
            if on_step is not None:
                opt.attach(lambda: on_step(opt.nsteps), interval=10)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                converged = bool(opt.run(fmax=fmax, steps=max_steps))
            energy = float(atoms.get_potential_energy())
            max_force = float(np.abs(atoms.get_forces()).max()) if len(atoms) else 0.0
        finally:
            atoms.calc = None
    if not np.isfinite(energy):
        raise ToolRuntimeError(f"{name} gave a non-finite energy during relaxation")
    return Relaxed(atoms_to_structure(atoms), energy, initial, int(opt.nsteps), converged, max_force)


def single_point(structure: Structure, calc: Calculator, name: str) -> float:
    """Total energy (eV) of a structure as given."""
    atoms = structure_to_atoms(structure)
    check_supported(calc, atoms, name)
    with potential_lock(name):
        atoms.calc = calc
        try:
            return float(atoms.get_potential_energy())
        finally:
            atoms.calc = None


def _elemental_candidates(symbol: str) -> list[Atoms]:
    """Candidate elemental ground states: ASE's reference state when it builds, plus fcc/bcc/hcp; dimers for gases."""
    state = reference_states[atomic_numbers[symbol]] or {}
    if state.get("symmetry") == "diatom":
        dimer = Atoms(f"{symbol}2", positions=[[0, 0, 0], [0, 0, state["d"]]], cell=[10, 10.5, 11], pbc=True)
        return [dimer]
    out = []
    with contextlib.suppress(Exception):  # ASE has no buildable reference state for some (alpha-Mn, Cl)
        out.append(bulk(symbol))
    radius = float(Element(symbol).atomic_radius or 1.5)
    kinds = {"fcc": 2 * np.sqrt(2) * radius, "bcc": 4 * radius / np.sqrt(3)}
    if not out:  # no tabulated ground state: also try hcp
        kinds["hcp"] = 2 * radius
    for kind, a in kinds.items():
        if state.get("symmetry") == kind:
            continue  # already built as the reference state
        out.append(bulk(symbol, kind, a=a) if kind != "hcp" else bulk(symbol, "hcp", a=a, c=1.633 * a))
    return out


SHIPPED_REFERENCES = Path(__file__).parent / "data"


def safe_name(potential: str) -> str:
    """A file-name-safe form of a potential name or checkpoint path."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(potential).name)


def shipped_references(potential: str) -> dict[str, dict]:
    """References the project ships for a universal potential (tools/potentials/data/references-<name>.json), else
    empty."""
    path = SHIPPED_REFERENCES / f"references-{safe_name(potential)}.json"
    return json.loads(path.read_text()) if path.exists() else {"elements": {}, "compounds": {}}


class ElementalReferences:
    """Per-element reference energies (eV/atom) for one potential: shipped ones first, the rest computed once
    and cached in the workspace."""

    def __init__(self, potential: str, calc: Calculator, cache_dir: Path) -> None:
        self.potential, self.calc = potential, calc
        self.path = cache_dir / f"elements-{safe_name(potential)}.json"
        cached = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.energies: dict[str, float] = {**shipped_references(potential)["elements"], **cached}
        self._lock = threading.Lock()

    def energy(self, symbol: str) -> float:
        """Lowest relaxed energy per atom over the element's candidate structures (molecule for gases)."""
        with self._lock:
            if symbol not in self.energies:
                best = np.inf
                for atoms in _elemental_candidates(symbol):
                    structure = atoms_to_structure(atoms)
                    gas = len(atoms) == 2 and atoms.cell[0, 0] >= 10
                    started = time.perf_counter()
                    result = relax(structure, self.calc, self.potential, fmax=0.05, max_steps=150, relax_cell=not gas)
                    REFERENCE_CLOCK["seconds"] += time.perf_counter() - started
                    best = min(best, result.energy / len(structure))
                self.energies[symbol] = float(best)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(json.dumps(self.energies, indent=1, sort_keys=True))
            return self.energies[symbol]

    def formation_energy_per_atom(self, structure: Structure, energy: float) -> float:
        """(E - sum_i n_i mu_i) / N with mu_i the elemental references."""
        comp = structure.composition.element_composition
        ref = sum(amount * self.energy(el.symbol) for el, amount in comp.items())
        return (energy - ref) / comp.num_atoms


_references: dict[str, ElementalReferences] = {}


def elemental_references(potential: str, settings: Settings) -> ElementalReferences:
    """The process-wide reference cache for a potential in this workspace."""
    key = f"{settings.resolved_workspace()}::{potential}"
    if key not in _references:
        calc = get_potential(potential, settings)
        _references[key] = ElementalReferences(potential, calc, settings.resolved_workspace() / "references")
    return _references[key]
