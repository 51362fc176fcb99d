"""train_potential / evaluate_potential tools, the `matsearch potential train` CLI, TorchScript export numerics
and the shipped distilled checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write
from ase.stress import voigt_6_to_full_3x3_stress

from models.potentials.equivariant import EquivariantPotential, PotentialConfig, predict
from models.potentials.export import ExportedPotential, export_torchscript
from tools.core.errors import ToolInputError
from tools.core.registry import ToolContext, get_tool

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "checkpoints" / "allegro_distilled.pt"
TINY = {"kind": "allegro", "cutoff": 4.0, "num_features": 4, "num_layers": 1, "batch_size": 4, "lr": 0.01}


def emt_frames(n: int = 24, seed: int = 0) -> list[Atoms]:
    """Rattled and strained Cu/Al cells labelled by EMT (energy, forces, stress), each its own structure_id."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        if k % 3 == 0:
            atoms.symbols[0] = "Al"
        atoms.set_cell(atoms.cell.array * (1 + rng.uniform(-0.02, 0.02)), scale_atoms=True)
        atoms.positions += rng.normal(0, 0.08, size=atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_stress()
        atoms.info["structure_id"] = f"s{k // 2}"
        frames.append(atoms)
    return frames


@pytest.fixture
def emt_data(workspace: Path) -> Path:
    """A labelled extxyz inside the workspace."""
    path = workspace / "data" / "emt.extxyz"
    path.parent.mkdir(parents=True, exist_ok=True)
    write(str(path), emt_frames(), format="extxyz")
    return path


@pytest.mark.usefixtures("single_thread")  # restored after the module, not left at 1 for every later test
def test_train_potential_tool_lowers_error_and_resumes(emt_data: Path, workspace: Path) -> None:
    spec = get_tool("train_potential")
    events: list[tuple] = []
    ctx = ToolContext(progress_fn=lambda d, t, m: events.append((d, t, m)))
    out = spec.run({"data_path": "data/emt.extxyz", "name": "emt", "epochs": 8, **TINY}, ctx)
    assert out.checkpoint_uri == "artifact://potentials/emt.pt"
    assert Path(out.checkpoint_path).is_file()
    assert out.species == ["Al", "Cu"] and out.n_train > out.n_val > 0
    first = out.history[0].val_forces_mae_meV_per_A
    assert out.val_forces_mae_meV_per_A is not None and first is not None
    assert out.val_forces_mae_meV_per_A < 0.8 * first  # training lowered the held-out force error
    assert any("epoch 8/8" in (m or "") for _, _, m in events)
    # same name without resume is refused; with resume the run continues from epoch 8
    with pytest.raises(ToolInputError, match="resume"):
        spec.run({"data_path": "data/emt.extxyz", "name": "emt", "epochs": 14, **TINY}, ToolContext())
    more = spec.run({"data_path": "data/emt.extxyz", "name": "emt", "epochs": 10, "resume": True, **TINY}, ctx)
    assert more.epochs_completed == 10 and len(more.history) == 10
    assert [h.epoch for h in more.history[:8]] == [h.epoch for h in out.history]


def test_train_potential_time_budget_stops_and_is_resumable(emt_data: Path) -> None:
    spec = get_tool("train_potential")
    out = spec.run(
        {"data_path": str(emt_data), "name": "budget", "epochs": 500, "max_minutes": 0.001, **TINY}, ToolContext()
    )
    assert out.time_limited and out.epochs_completed == 1
    again = spec.run({"data_path": str(emt_data), "name": "budget", "epochs": 2, "resume": True, **TINY}, ToolContext())
    assert again.epochs_completed == 2 and not again.time_limited


def test_train_potential_fine_tunes_the_shipped_model(emt_data: Path) -> None:
    """init_from='allegro_distilled': the shipped architecture (its 37 elements and cutoff) is fine-tuned on new
    data; a path outside the workspace is refused."""
    spec = get_tool("train_potential")
    out = spec.run({"data_path": str(emt_data), "name": "tuned", "epochs": 1, "init_from": "allegro_distilled",
                    "batch_size": 4, "lr": 1e-3}, ToolContext())
    tuned = EquivariantPotential.load(out.checkpoint_path)
    shipped = EquivariantPotential.load(SHIPPED).config
    assert tuned.config.cutoff == shipped.cutoff and tuned.config.species == shipped.species
    assert len(shipped.species) == 37 and tuned.config.num_features == shipped.num_features
    with pytest.raises(ToolInputError, match="outside the workspace"):
        spec.run({"data_path": str(emt_data), "name": "bad", "epochs": 1, "init_from": "/etc/passwd"}, ToolContext())


def test_without_held_out_structures_the_errors_are_labelled_training_errors(emt_data: Path, workspace: Path) -> None:
    """val_fraction=0, or a single structure, holds nothing out: the val_* errors are the training set's, and the
    output says so instead of passing them off as validation errors."""
    spec = get_tool("train_potential")
    held = spec.run({"data_path": str(emt_data), "name": "held", "epochs": 1, **TINY}, ToolContext())
    assert held.n_val > 0 and held.validation == f"held-out ({held.n_val} structures)"
    events: list[str] = []
    none = spec.run({"data_path": str(emt_data), "name": "none", "epochs": 1, "val_fraction": 0.0, **TINY},
                    ToolContext(progress_fn=lambda d, t, m: events.append(m or "")))
    assert none.n_val == 0 and none.validation == "none (training error shown)"
    assert none.val_forces_mae_meV_per_A is not None  # measured, on the training set
    assert any("train_E_MAE" in m for m in events) and not any("val_E_MAE" in m for m in events)
    write(str(workspace / "one.extxyz"), emt_frames(1), format="extxyz")
    single = spec.run({"data_path": "one.extxyz", "name": "single", "epochs": 1, **TINY}, ToolContext())
    assert single.n_train == 1 and single.n_val == 0 and single.validation == "none (training error shown)"


def test_training_options_the_model_refuses_are_input_errors(emt_data: Path, workspace: Path) -> None:
    """A file that is no checkpoint, a checkpoint lacking an element of the data, or a CUDA device on a machine
    without one: input errors naming the problem (not internal faults of the tool)."""
    spec = get_tool("train_potential")
    (workspace / "notes.pt").write_text("not a checkpoint")
    torch.save({"config": {"species": ["Cu"]}, "state_dict": {}}, workspace / "cu_only.pt")
    base = {"data_path": str(emt_data), "epochs": 1, **TINY}
    with pytest.raises(ToolInputError, match="notes.pt is not a matsearch potential checkpoint"):
        spec.run({**base, "name": "n1", "init_from": "notes.pt"}, ToolContext())
    with pytest.raises(ToolInputError, match="cu_only.pt does not support element.*Al"):
        spec.run({**base, "name": "n2", "init_from": "cu_only.pt"}, ToolContext())
    if not torch.cuda.is_available():
        with pytest.raises(ToolInputError, match="no CUDA device"):
            spec.run({**base, "name": "n3", "device": "cuda"}, ToolContext())


def test_paths_outside_workspace_are_rejected(emt_data: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.extxyz"
    write(str(outside), emt_frames(2), format="extxyz")
    spec = get_tool("train_potential")
    for bad in (str(outside), "../outside.extxyz"):
        with pytest.raises(ToolInputError, match="outside the workspace") as info:
            spec.run({"data_path": bad, "epochs": 1}, ToolContext())
        assert "outside.extxyz" in str(info.value)
    with pytest.raises(ToolInputError, match="outside the workspace"):
        get_tool("evaluate_potential").run({"potential": "chgnet", "data_path": str(outside)}, ToolContext())
    with pytest.raises(ToolInputError, match="exactly one"):
        spec.run({"epochs": 1}, ToolContext())


def test_evaluate_potential_vs_labels_and_vs_reference(emt_data: Path) -> None:
    out = get_tool("train_potential").run(
        {"data_path": "data/emt.extxyz", "name": "ev", "epochs": 3, **TINY}, ToolContext()
    )
    spec = get_tool("evaluate_potential")
    res = spec.run({"potential": out.checkpoint_uri, "data_path": "data/emt.extxyz"}, ToolContext())
    assert res.n_structures == 24 and res.n_atoms == 96
    for value in (res.energy_mae_meV_per_atom, res.forces_mae_meV_per_A, res.stress_mae_meV_per_A3):
        assert value is not None and np.isfinite(value) and value > 0
    # the same metric computed by hand from the model's own predictions
    model = EquivariantPotential.load(out.checkpoint_path)
    frames = emt_frames()
    pred = predict(model, frames)
    f_mae = 1000 * np.mean([np.abs(p["forces"] - a.get_forces()).mean() for p, a in zip(pred, frames, strict=True)])
    assert res.forces_mae_meV_per_A == pytest.approx(f_mae, rel=1e-3)
    # against a reference potential on inline structures: itself gives zero error, an untrained one does not
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    cu.rattle(0.05, seed=1)
    from tools.structures.io import atoms_to_structure, structure_to_cif

    refs = [{"text": structure_to_cif(atoms_to_structure(cu))}]
    ckpt = out.checkpoint_uri
    same = spec.run({"potential": ckpt, "structures": refs, "reference": ckpt}, ToolContext())
    assert same.energy_mae_meV_per_atom == pytest.approx(0.0, abs=1e-6)
    untrained = Path(out.checkpoint_path).with_name("untrained.pt")
    EquivariantPotential(PotentialConfig(kind="allegro", species=["Al", "Cu"], cutoff=4.0)).save(untrained)
    diff = spec.run({"potential": str(untrained), "structures": refs, "reference": out.checkpoint_uri}, ToolContext())
    assert diff.energy_mae_meV_per_atom > 1.0 and diff.forces_mae_meV_per_A > 0


def test_train_potential_on_memory_structures_labelled_on_the_fly(workspace: Path) -> None:
    from tools.structures.io import atoms_to_structure, structure_to_cif

    reference = workspace / "reference.pt"
    torch.manual_seed(1)
    EquivariantPotential(PotentialConfig(kind="allegro", species=["Al", "Cu"], cutoff=4.0)).save(reference)
    ids = []
    for k, symbol in enumerate(["Cu", "Al"]):
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
        atoms.symbols[k] = symbol if k else "Cu"
        atoms.symbols[3] = "Al"
        stored = get_tool("store_structure").run({"structure": {"text": structure_to_cif(atoms_to_structure(atoms))}})
        ids.append(stored.id)
    out = get_tool("train_potential").run(
        {"structure_ids": ids, "reference": str(reference), "rattle_copies": 3, "name": "mem", "epochs": 2, **TINY},
        ToolContext(),
    )
    assert out.n_train + out.n_val == 8 and out.species == ["Al", "Cu"]
    assert out.data_uri and out.data_uri.startswith("artifact://")
    data = workspace / out.data_uri.removeprefix("artifact://")
    from ase.io import read

    frames = read(str(data), index=":")
    assert len(frames) == 8 and {a.info["structure_id"] for a in frames} == set(ids)
    assert len({round(a.get_potential_energy(), 6) for a in frames}) > 2  # rattled copies have their own labels


def test_cli_potential_train(emt_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    ckpt = tmp_path / "cli.pt"
    args = ["potential", "train", str(emt_data), "--epochs", "2", "--out", str(ckpt), "--features", "4"]
    result = CliRunner().invoke(app, [*args, "--layers", "1", "--cutoff", "4.0"])
    assert result.exit_code == 0, result.output
    assert '"epochs_completed": 2' in result.output
    resumed = CliRunner().invoke(app, [*args[:4], "3", *args[5:], "--layers", "1", "--cutoff", "4.0", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert len(torch.load(ckpt, weights_only=True)["training"]["history"]) == 3
    bad = CliRunner().invoke(app, [*args, "--device", "gpu7"])
    assert bad.exit_code != 0 and "device must be" in bad.output and "Traceback" not in bad.output


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torchscript_export_matches_python_model(tmp_path: Path, dtype: str) -> None:
    torch.manual_seed(0)
    model = EquivariantPotential(PotentialConfig(kind="allegro", species=["Mg", "O", "Ti"], cutoff=4.0, dtype=dtype))
    with torch.no_grad():
        model.shift.copy_(torch.tensor([-1.5, -4.0, -6.0]))
        model.scale.fill_(0.7)
    export_torchscript(model, tmp_path / "model.ts")
    exported = ExportedPotential(tmp_path / "model.ts")
    assert exported.species == ["Mg", "O", "Ti"] and exported.cutoff == 4.0
    structures = [
        bulk("MgO", "rocksalt", a=4.2),
        bulk("MgO", "rocksalt", a=4.2, cubic=True).repeat((2, 1, 1)),
        Atoms("TiO2Mg", positions=[[0, 0, 0], [1.9, 0, 0], [0, 1.9, 0], [2, 2, 0.5]], cell=[6, 6, 6], pbc=True),
    ]
    tol = 1e-5
    for atoms in structures:
        atoms.rattle(0.05, seed=len(atoms))
        ref = predict(model, [atoms])[0]
        got = exported.compute(atoms)
        assert abs(got["energy"] - ref["energy"]) < tol * max(1.0, abs(ref["energy"]))
        assert np.abs(got["forces"] - ref["forces"]).max() < tol
        assert np.abs(voigt_6_to_full_3x3_stress(got["stress"]) - ref["stress"]).max() < tol
        assert np.abs(ref["forces"]).max() > 1e-3  # a non-trivial comparison
    with pytest.raises(ValueError, match="Zn"):
        exported.compute(bulk("Zn"))


@pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped distilled checkpoint")
def test_shipped_checkpoint_loads_predicts_and_names_unsupported_elements() -> None:
    from models.potentials.calculator import PotentialCalculator

    calc = PotentialCalculator.from_checkpoint(SHIPPED)
    species = calc.model.species
    assert {"La", "Mn", "Ni", "Co", "Ti", "Sr", "Ba", "Mg", "Al", "Fe", "Zn", "O"} <= set(species)
    assert SHIPPED.stat().st_size < 20 * 1024 * 1024
    from pymatgen.io.ase import AseAtomsAdaptor

    from models.crystals.prototypes import decorate

    atoms = AseAtomsAdaptor.get_atoms(decorate("perovskite", {"A": "Sr", "B": "Ti", "X": "O"}))
    atoms.rattle(0.05, seed=0)
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    assert np.isfinite(energy) and -12 < energy / len(atoms) < -4  # CHGNet-like scale (SrTiO3 ~ -8 eV/atom)
    assert np.all(np.isfinite(atoms.get_forces())) and np.abs(atoms.get_forces()).max() > 1e-4
    bad = Atoms("UO2", positions=[[0, 0, 0], [1.4, 1.4, 1.4], [-1.4, -1.4, 1.4]], cell=[5, 5, 5], pbc=True)
    bad.calc = calc
    with pytest.raises(ValueError, match="U") as info:
        bad.get_potential_energy()
    assert "allegro_distilled" in str(info.value)
