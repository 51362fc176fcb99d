"""Structure analysis: symmetry, lattice, density, coordination environments and a powder XRD pattern (PNG)."""

from __future__ import annotations

import warnings

import numpy as np
from pydantic import BaseModel, Field
from pymatgen.core import Structure

from memory.store import symmetry_of
from tools.core.plotting import figure, save
from tools.core.registry import STORE, ToolContext, ToolInput, tool
from tools.structures.io import StructureRef, resolve_structure

MAX_COORDINATION_SITES = 24


class AnalyzeStructureInput(ToolInput):
    structure: StructureRef = Field(description="The structure: {'id': memory id} or {'text': CIF/POSCAR/extxyz}.")
    xrd: bool = Field(default=True, description="Compute a Cu K-alpha powder XRD pattern and plot it.")
    coordination: bool = Field(default=True, description="Coordination of each symmetry-distinct site (CrystalNN).")


class Lattice(BaseModel):
    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    volume_A3: float


class SiteCoordination(BaseModel):
    site_index: int
    element: str
    multiplicity: int
    coordination_number: int
    neighbors: dict[str, int]
    mean_bond_length_A: float | None


class XrdPeak(BaseModel):
    two_theta_deg: float
    intensity: float
    hkl: str


class AnalyzeStructureOutput(BaseModel):
    formula: str
    reduced_formula: str
    spacegroup: str
    spacegroup_number: int
    crystal_system: str
    n_sites: int
    lattice: Lattice
    density_g_cm3: float
    volume_per_atom_A3: float
    min_distance_A: float
    coordination: list[SiteCoordination] = Field(default_factory=list)
    xrd_peaks: list[XrdPeak] = Field(default_factory=list, description="The strongest peaks, by intensity.")
    xrd_plot_uri: str | None = Field(default=None, description="artifact:// URI of the XRD pattern PNG.")


def _coordination(structure: Structure) -> list[SiteCoordination]:
    """CrystalNN coordination for each symmetry-distinct site (the first MAX_COORDINATION_SITES of them)."""
    from pymatgen.analysis.local_env import CrystalNN
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        sym = SpacegroupAnalyzer(structure, symprec=0.1).get_symmetrized_structure()
        groups = [(g[0], len(g)) for g in sym.equivalent_indices]
    except Exception:  # spglib failure: every site is its own class
        groups = [(i, 1) for i in range(len(structure))]
    cnn = CrystalNN()
    out = []
    for index, mult in groups[:MAX_COORDINATION_SITES]:
        info = cnn.get_nn_info(structure, index)
        counts: dict[str, int] = {}
        for nn in info:
            el = nn["site"].specie.symbol if hasattr(nn["site"].specie, "symbol") else str(nn["site"].specie)
            counts[el] = counts.get(el, 0) + 1
        dists = [float(np.linalg.norm(nn["site"].coords - structure[index].coords)) for nn in info]
        out.append(
            SiteCoordination(
                site_index=index,
                element=structure[index].specie.symbol,
                multiplicity=mult,
                coordination_number=len(info),
                neighbors=counts,
                mean_bond_length_A=round(float(np.mean(dists)), 4) if dists else None,
            )
        )
    return out


def _xrd(structure: Structure, ctx: ToolContext, title: str) -> tuple[list[XrdPeak], str]:
    """Cu K-alpha powder pattern: the 10 strongest peaks and a PNG artifact."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    pattern = XRDCalculator(wavelength="CuKa").get_pattern(structure, two_theta_range=(10, 90))
    order = np.argsort(pattern.y)[::-1][:10]
    peaks = [
        XrdPeak(
            two_theta_deg=round(float(pattern.x[i]), 3),
            intensity=round(float(pattern.y[i]), 2),
            hkl=",".join("(" + "".join(str(v) for v in h["hkl"]) + ")" for h in pattern.hkls[i]),
        )
        for i in sorted(order, key=lambda k: pattern.x[k])
    ]
    fig, ax = figure(figsize=(7, 3.2))
    ax.vlines(pattern.x, 0, pattern.y, color="tab:blue", lw=1.2)
    ax.set_xlabel("2θ (degrees, Cu Kα)")
    ax.set_ylabel("intensity (a.u.)")
    ax.set_title(f"Powder XRD of {title}")
    ax.set_xlim(10, 90)
    return peaks, ctx.artifact_uri(save(fig, ctx.artifact_dir() / "xrd.png"))


@tool(cost="instant", reaches=(STORE,))  # not read-only: the XRD plot is a new file in the workspace each call
def analyze_structure(inp: AnalyzeStructureInput, ctx: ToolContext) -> AnalyzeStructureOutput:
    """Analyse a crystal structure: space group and crystal system (spglib), lattice parameters, density,
    volume per atom, shortest interatomic distance, coordination of each distinct site, and the strongest
    Cu K-alpha powder XRD peaks with a PNG plot (returned as an artifact:// URI)."""
    from tools.structures.io import min_interatomic_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = resolve_structure(inp.structure, ctx.store if inp.structure.id else None, ctx.settings.max_atoms)
        symbol, number, system = symmetry_of(structure)
        lat = structure.lattice
        peaks: list[XrdPeak] = []
        plot_uri = None
        if inp.xrd:
            ctx.progress(1, 3, "XRD pattern")
            peaks, plot_uri = _xrd(structure, ctx, structure.composition.reduced_formula)
        coordination = []
        if inp.coordination:
            ctx.progress(2, 3, "coordination environments")
            coordination = _coordination(structure)
    return AnalyzeStructureOutput(
        formula=structure.composition.formula.replace(" ", ""),
        reduced_formula=structure.composition.reduced_formula,
        spacegroup=symbol,
        spacegroup_number=number,
        crystal_system=system,
        n_sites=len(structure),
        lattice=Lattice(
            a=round(lat.a, 5),
            b=round(lat.b, 5),
            c=round(lat.c, 5),
            alpha=round(lat.alpha, 4),
            beta=round(lat.beta, 4),
            gamma=round(lat.gamma, 4),
            volume_A3=round(lat.volume, 4),
        ),
        density_g_cm3=round(float(structure.density), 4),
        volume_per_atom_A3=round(structure.volume / len(structure), 4),
        min_distance_A=round(min_interatomic_distance(structure), 4),
        coordination=coordination,
        xrd_peaks=peaks,
        xrd_plot_uri=plot_uri,
    )
