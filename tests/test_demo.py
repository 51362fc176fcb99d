"""`make demo`'s path end to end: store the embedded references, analyse SrTiO3, search three ways."""

from __future__ import annotations

import pytest
from rich.console import Console

from agent.demo import DEMO_STRUCTURES, run_demo


@pytest.mark.slow
def test_demo_finds_what_it_stored(workspace):
    out = run_demo(Console(file=open("/dev/null", "w")))  # noqa: SIM115 - closed with the process
    ids = out["ids"]
    assert len(ids) == len(DEMO_STRUCTURES) and len(set(ids.values())) == len(ids)
    analysis = out["analysis"]
    assert analysis.spacegroup == "Pm-3m" and abs(analysis.lattice.a - 3.905) < 0.01
    assert [c.coordination_number for c in analysis.coordination if c.element == "Ti"] == [6]
    assert abs(max(analysis.xrd_peaks, key=lambda p: p.intensity).two_theta_deg - 32.4) < 0.2  # SrTiO3 (110)
    assert (workspace / analysis.xrd_plot_uri.removeprefix("artifact://")).stat().st_size > 5000
    assert {h.reduced_formula for h in out["formula"]} == {"SrTiO3", "TiO2", "ZrTi(PbO3)2"}
    assert out["similar"][0].id == ids["SrTiO3"] and out["similar"][0].score > 0.99
    assert ids["SrTiO3"] in {h.id for h in out["text"]}
