"""The foundation demo: store embedded reference structures in memory, analyse one, and search three ways,
all through the same registry tools that MCP and LangChain use."""

from __future__ import annotations

import warnings
from pathlib import Path

from monty.serialization import loadfn
from pymatgen.core import Structure
from rich.console import Console
from rich.table import Table

from memory.keys import DENSITY_KEY, N_SITES_KEY, REDUCED_FORMULA_KEY, SPACEGROUP_SYMBOL_KEY
from tools.core.registry import ToolContext, get_tool
from tools.structures.io import structure_to_cif

DEMO_STRUCTURES = ["SrTiO3", "BaNiO3", "Pb2TiZrO6", "TiO2", "VO2", "SiO2", "Li2O", "CsCl", "Si", "LiFePO4"]


def embedded_structures() -> dict[str, Structure]:
    """Reference structures that the pymatgen wheel ships (no download)."""
    import pymatgen.util

    folder = Path(pymatgen.util.__file__).parent / "structures"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = {name: loadfn(folder / f"{name}.json") for name in DEMO_STRUCTURES}
    # some files hold a TransformedStructure; its final structure is the crystal
    return {name: getattr(obj, "final_structure", obj) for name, obj in loaded.items()}


def run_demo(console: Console | None = None) -> dict[str, object]:
    """Store, analyse and search; returns the numbers shown so tests can check them."""
    console = console or Console()
    ctx = ToolContext()
    console.print(f"[bold]matsearch demo[/bold] - workspace {ctx.workspace}")
    store = get_tool("store_structure")
    ids: dict[str, str] = {}
    with console.status("storing embedded reference structures (first call loads the text embedder)"):
        for name, structure in embedded_structures().items():
            out = store.run(
                {
                    "structure": {"text": structure_to_cif(structure)},
                    "description": f"reference {name} from pymatgen",
                    "tags": ["reference"],
                },
                ctx,
            )
            ids[name] = out.id
    table = Table("name", "id", "formula", "space group", "sites", "density g/cm3", title="Stored in memory")
    for name, sid in ids.items():
        rec = ctx.store.get(sid)
        m = rec.metadata
        table.add_row(name, sid, m[REDUCED_FORMULA_KEY], m[SPACEGROUP_SYMBOL_KEY], str(m[N_SITES_KEY]),
                      f"{m[DENSITY_KEY]:.3f}")
    console.print(table)

    analysis = get_tool("analyze_structure").run({"structure": {"id": ids["SrTiO3"]}}, ctx)
    console.print(
        f"SrTiO3 analysis: {analysis.spacegroup} ({analysis.crystal_system}), a = {analysis.lattice.a:.3f} A, "
        f"density {analysis.density_g_cm3:.3f} g/cm3, Ti coordination "
        f"{[c.coordination_number for c in analysis.coordination if c.element == 'Ti']}, "
        f"strongest XRD peak at 2θ = {max(analysis.xrd_peaks, key=lambda p: p.intensity).two_theta_deg:.2f}°, "
        f"plot {analysis.xrd_plot_uri}"
    )
    search = get_tool("search_structures")
    text_hits = search.run({"query": "perovskite oxide with titanium", "n": 3}, ctx).hits
    formula_hits = search.run({"elements": ["Ti", "O"], "n": 10}, ctx).hits
    similar_hits = search.run({"similar_to": {"id": ids["SrTiO3"]}, "n": 3}, ctx).hits
    for title, hits in (
        ("text: 'perovskite oxide with titanium'", text_hits),
        ("elements Ti+O", formula_hits),
        ("similar to SrTiO3", similar_hits),
    ):
        t = Table("id", "formula", "space group", "score", title=f"Search by {title}")
        for h in hits:
            t.add_row(h.id, h.reduced_formula, h.spacegroup, "" if h.score is None else f"{h.score:.3f}")
        console.print(t)
    console.print(f"memory holds {ctx.store.count()} structures at {ctx.store.location}")
    return {"ids": ids, "analysis": analysis, "text": text_hits, "formula": formula_hits, "similar": similar_hits}
