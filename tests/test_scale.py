"""Scale-out: the same seeded search through a Dask LocalCluster (2 worker processes) and in-process gives the
same ranked result."""

from __future__ import annotations

import pytest

from tools.registry import ToolContext, get_tool
from tools.settings import get_settings


def test_search_on_dask_matches_in_process(workspace, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    args = {"request": "a spinel with Mg and Al", "budget": 2, "n_formulas": 1, "seed": 7, "use_llm": False}
    local = get_tool("hierarchical_search").run(args, ToolContext())

    monkeypatch.setenv("MATSEARCH_WORKSPACE", str(tmp_path / "dask-workspace"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        monkeypatch.setenv("MATSEARCH_DASK_ADDRESS", cluster.scheduler_address)
        get_settings.cache_clear()
        remote = get_tool("hierarchical_search").run(args, ToolContext())
    get_settings.cache_clear()
    assert remote.evaluations == local.evaluations == 2
    # Same ranking in physical terms. Ids are hashes of the relaxed CIF, whose last digits can differ with the
    # worker's thread count (floating-point summation order), so they are not compared.
    def key(result):
        return [(c.formula, c.generator, c.spacegroup, round(c.e_above_hull_eV, 3)) for c in result.ranked]

    assert key(remote) == key(local)
