"""Scale-out: the same seeded search, and the same crystallization motif relaxations, through a Dask LocalCluster
(2 worker processes) and in-process give the same result."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from tools.core.registry import ToolContext, get_tool
from tools.core.settings import get_settings
from tools.structures.io import atoms_to_structure, structure_to_cif

pytestmark = pytest.mark.slow  # a Dask LocalCluster and real CHGNet search

# two tiny melt-quench replicas (8 Si atoms, 90 MD steps each), one motif relaxation, no reference relaxations
MELT = {"composition": "Si", "potential": "chgnet", "seed": 5, "n_atoms": 8, "n_replicas": 2, "melt_steps": 30,
        "quench_steps": 40, "hold_steps": 20, "density_g_cm3": 2.3, "budget": 1, "d_frac": 0.5, "n_min": 1,
        "n_max": 8, "max_reference_relaxations": 0, "fmax": 0.2, "max_relax_steps": 10, "store": False}


def test_search_on_dask_matches_in_process(workspace, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    args = {"request": "a spinel with Mg and Al", "budget": 2, "n_formulas": 1, "seed": 7, "use_llm": False}
    local = get_tool("hierarchical_search").run(args, ToolContext())
    crystal_args = _diamond_precursor_args()
    local_crystal = get_tool("predict_crystallization").run(crystal_args, ToolContext())
    local_melt = get_tool("predict_crystallization").run(MELT, ToolContext())

    monkeypatch.setenv("MATSEARCH_WORKSPACE", str(tmp_path / "dask-workspace"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        monkeypatch.setenv("MATSEARCH_DASK_ADDRESS", cluster.scheduler_address)
        get_settings.cache_clear()
        remote = get_tool("hierarchical_search").run(args, ToolContext())
        remote_crystal = get_tool("predict_crystallization").run(crystal_args, ToolContext())
        remote_melt = get_tool("predict_crystallization").run(MELT, ToolContext())
    get_settings.cache_clear()
    assert remote.evaluations == local.evaluations == 2
    # Same ranking in physical terms. Ids are hashes of the relaxed CIF, whose last digits can differ with the
    # worker's thread count (floating-point summation order), so they are not compared.
    def key(result):
        return [(c.formula, c.generator, c.spacegroup, round(c.e_above_hull_eV, 3)) for c in result.ranked]

    assert key(remote) == key(local)

    # crystallization: reference and motif relaxations ran on the workers, with the same physics
    assert remote_crystal.n_relaxed == local_crystal.n_relaxed == 2
    assert remote_crystal.predicted_first_polymorph == local_crystal.predicted_first_polymorph
    assert remote_crystal.predicted_first_polymorph.startswith("diamond")
    assert remote_crystal.ground_state_energy_per_atom_eV == pytest.approx(
        local_crystal.ground_state_energy_per_atom_eV, abs=1e-3)
    # melt-quench replicas ran on the two workers at once: same seeds, same quenched cells
    assert len(remote_melt.replicas) == len(local_melt.replicas) == 2
    for here, there in zip(local_melt.replicas, remote_melt.replicas, strict=True):
        assert there.n_atoms == here.n_atoms == 8 and there.seed == here.seed
        assert there.final_epot_per_atom_eV == pytest.approx(here.final_epot_per_atom_eV, abs=5e-3)


def _diamond_precursor_args() -> dict:
    """A rattled 64-atom diamond precursor whose 8-atom motifs relax back to diamond (no melt-quench MD)."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.translate(np.diag(atoms.cell) / 16)
    atoms.wrap()
    atoms.rattle(0.08, seed=2)
    return {"composition": "Si", "potential": "chgnet", "budget": 2, "d_frac": 0.5, "n_min": 8, "n_max": 8,
            "precursor": {"text": structure_to_cif(atoms_to_structure(atoms))}, "max_reference_relaxations": 1,
            "fmax": 0.1, "max_relax_steps": 60, "store": False}
