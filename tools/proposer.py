"""The offline language level: turn a parsed request into ranked, charge-balanced candidate formulas.

Each family has roles (A, B, C sites and the anion X) with archetype ions. Candidates fill the roles with the
required elements plus common cations, pick oxidation states (ICSD statistics) that balance charge, pass the
family's ionic-radius rules (Goldschmidt tolerance factor for perovskites, radius ratio for pyrochlores,
site-size order elsewhere), and are ranked by ICSD substitution probability from the archetype ions."""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

from pymatgen.core import Composition, Element, Species

from tools.request import MaterialsRequest

# Cations tried for roles the request leaves open: common, non-radioactive, with ICSD oxidation-state data.
_CATIONS = (
    "Li Na K Rb Cs Mg Ca Sr Ba Sc Y La Ce Pr Nd Sm Eu Gd Dy Er Yb Lu Ti Zr Hf V Nb Ta Cr Mo W Mn Fe Co Ni Cu Zn "
    "Al Ga In Si Ge Sn Pb Bi Sb"
)
_INTERMETALLICS = "Co Fe Ni Cu Mn Ti V Cr Zr Hf Nb Sc Pd Pt Ru Rh Ir Al Ga In Si Ge Sn Sb Bi"
CATION_POOL = tuple(_CATIONS.split())
INTERMETALLIC_POOL = tuple(_INTERMETALLICS.split())
TOP_PER_ROLE = 10  # ions kept per role (by affinity) before combining roles


@dataclass(frozen=True)
class Family:
    """A structure family: role ratio, archetype ions per role, and whether charges must balance."""

    name: str
    roles: tuple[str, ...]
    ratio: tuple[int, ...]
    archetypes: dict[str, tuple[tuple[str, int], ...]]
    ionic: bool = True
    default_anion: str = "O"
    coordination: dict[str, str] = field(default_factory=dict)  # Shannon coordination per role


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "perovskite",
            ("A", "B", "X"),
            (1, 1, 3),
            {"A": (("Sr", 2), ("La", 3), ("Ca", 2), ("Ba", 2)), "B": (("Ti", 4), ("Mn", 3), ("Fe", 3), ("Co", 3))},
            coordination={"A": "XII", "B": "VI"},
        ),
        Family(
            "orthorhombic perovskite",
            ("A", "B", "X"),
            (1, 1, 3),
            {"A": (("Ca", 2), ("La", 3), ("Y", 3)), "B": (("Ti", 4), ("Mn", 3), ("Fe", 3))},
            coordination={"A": "XII", "B": "VI"},
        ),
        Family(
            "double perovskite",
            ("A", "B", "C", "X"),
            (2, 1, 1, 6),
            {
                "A": (("Sr", 2), ("Ba", 2), ("La", 3), ("Ca", 2)),
                "B": (("Fe", 3), ("Mn", 3), ("Co", 3), ("Mn", 4), ("Ni", 2), ("Mg", 2)),
                "C": (("Mo", 6), ("Ni", 2), ("Co", 2), ("W", 6), ("Mn", 4), ("Ti", 4)),
            },
            coordination={"A": "XII", "B": "VI", "C": "VI"},
        ),
        Family(
            "spinel",
            ("A", "B", "X"),
            (1, 2, 4),
            {"A": (("Mg", 2), ("Zn", 2), ("Co", 2), ("Fe", 2)), "B": (("Al", 3), ("Fe", 3), ("Cr", 3), ("Mn", 3))},
            coordination={"A": "IV", "B": "VI"},
        ),
        Family(
            "inverse spinel",
            ("A", "B", "X"),
            (1, 2, 4),
            {"A": (("Ni", 2), ("Mg", 2), ("Co", 2)), "B": (("Fe", 3), ("Ga", 3), ("In", 3))},
            coordination={"A": "VI", "B": "VI"},
        ),
        Family(
            "rock salt",
            ("A", "X"),
            (1, 1),
            {"A": (("Mg", 2), ("Ni", 2), ("Ca", 2), ("Co", 2), ("Na", 1))},
            coordination={"A": "VI"},
        ),
        Family(
            "cscl", ("A", "X"), (1, 1), {"A": (("Cs", 1), ("Tl", 1))}, default_anion="Cl", coordination={"A": "VIII"}
        ),
        Family(
            "zincblende",
            ("A", "X"),
            (1, 1),
            {"A": (("Zn", 2), ("Cd", 2), ("Ga", 3))},
            default_anion="S",
            coordination={"A": "IV"},
        ),
        Family("wurtzite", ("A", "X"), (1, 1), {"A": (("Zn", 2), ("Ga", 3), ("Al", 3))}, coordination={"A": "IV"}),
        Family(
            "fluorite",
            ("A", "X"),
            (1, 2),
            {"A": (("Ce", 4), ("Zr", 4), ("Hf", 4), ("Ca", 2))},
            coordination={"A": "VIII"},
        ),
        Family("antifluorite", ("A", "X"), (2, 1), {"A": (("Li", 1), ("Na", 1), ("K", 1))}, coordination={"A": "IV"}),
        Family(
            "rutile", ("A", "X"), (1, 2), {"A": (("Ti", 4), ("Sn", 4), ("Mn", 4), ("Ru", 4))}, coordination={"A": "VI"}
        ),
        Family(
            "corundum",
            ("A", "X"),
            (2, 3),
            {"A": (("Al", 3), ("Cr", 3), ("Fe", 3), ("Ga", 3))},
            coordination={"A": "VI"},
        ),
        Family(
            "ilmenite",
            ("A", "B", "X"),
            (1, 1, 3),
            {"A": (("Fe", 2), ("Mg", 2), ("Mn", 2)), "B": (("Ti", 4),)},
            coordination={"A": "VI", "B": "VI"},
        ),
        Family(
            "pyrochlore",
            ("A", "B", "X"),
            (2, 2, 7),
            {"A": (("La", 3), ("Y", 3), ("Gd", 3), ("Nd", 3)), "B": (("Zr", 4), ("Ti", 4), ("Sn", 4), ("Hf", 4))},
            coordination={"A": "VIII", "B": "VI"},
        ),
        Family(
            "garnet",
            ("A", "B", "C", "X"),
            (3, 2, 3, 12),
            {
                "A": (("Y", 3), ("Ca", 2), ("Gd", 3), ("Lu", 3)),
                "B": (("Al", 3), ("Fe", 3), ("Ga", 3), ("Sc", 3)),
                "C": (("Al", 3), ("Si", 4), ("Ga", 3), ("Fe", 3)),
            },
            coordination={"A": "VIII", "B": "VI", "C": "IV"},
        ),
        Family(
            "olivine",
            ("A", "B", "X"),
            (2, 1, 4),
            {"A": (("Mg", 2), ("Fe", 2), ("Mn", 2)), "B": (("Si", 4), ("Ge", 4))},
            coordination={"A": "VI", "B": "IV"},
        ),
        Family(
            "layered oxide",
            ("A", "B", "X"),
            (1, 1, 2),
            {"A": (("Li", 1), ("Na", 1)), "B": (("Co", 3), ("Ni", 3), ("Fe", 3))},
            coordination={"A": "VI", "B": "VI"},
        ),
        Family(
            "heusler",
            ("A", "B", "C"),
            (2, 1, 1),
            {
                "A": (("Co", 0), ("Ni", 0), ("Cu", 0), ("Fe", 0)),
                "B": (("Mn", 0), ("Ti", 0), ("V", 0), ("Fe", 0)),
                "C": (("Al", 0), ("Ga", 0), ("Si", 0), ("Ge", 0), ("Sn", 0), ("Sb", 0)),
            },
            ionic=False,
        ),
        Family(
            "half-heusler",
            ("A", "B", "C"),
            (1, 1, 1),
            {
                "A": (("Ti", 0), ("Zr", 0), ("Hf", 0), ("Nb", 0), ("Sc", 0)),
                "B": (("Ni", 0), ("Co", 0), ("Fe", 0)),
                "C": (("Sn", 0), ("Sb", 0), ("Bi", 0), ("Ge", 0)),
            },
            ionic=False,
        ),
    ]
}
FAMILY_DEFAULT_ANION = {name: (f.default_anion if f.ionic else None) for name, f in FAMILIES.items()}
ANION_CHARGE = {"O": -2, "S": -2, "Se": -2, "Te": -2, "N": -3, "F": -1, "Cl": -1, "Br": -1, "I": -1}


@dataclass
class FormulaProposal:
    """One candidate formula with the reasoning behind it."""

    formula: str
    family: str
    sites: dict[str, str]  # role -> "La3+" etc.
    score: float
    reason: str
    descriptors: dict[str, float] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _substitution():  # noqa: ANN202 - pymatgen type
    from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionProbability

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SubstitutionProbability()


@lru_cache(maxsize=1)
def _occurrence() -> dict[tuple[str, int], float]:
    """ICSD occurrence counts of each (element, oxidation state), from pymatgen's bond-valence data."""
    from monty.serialization import loadfn
    from pymatgen.core import composition

    data = loadfn(f"{composition.MODULE_DIR}/icsd_bv.yaml")["occurrence"]
    out = {}
    for name, count in data.items():
        sp = Species.from_str(name)
        out[(sp.symbol, int(sp.oxi_state))] = float(count)
    return out


def state_prior(symbol: str, ox: int) -> float:
    """Share of an element's ICSD occurrences in this oxidation state (rare states rank low)."""
    counts = {o: c for (el, o), c in _occurrence().items() if el == symbol and o > 0}
    total = sum(counts.values())
    return counts.get(ox, 0.0) / total if total else 0.5


def oxidation_states(symbol: str) -> tuple[int, ...]:
    """Positive oxidation states seen in the ICSD for an element (common ones as a fallback)."""
    el = Element(symbol)
    states = tuple(s for s in (el.icsd_oxidation_states or el.common_oxidation_states) if s > 0)
    return states or tuple(s for s in el.oxidation_states if s > 0)


def _radius(symbol: str, ox: int, coordination: str | None) -> float | None:
    """Shannon radius (A) for the role's coordination, else the species' generic ionic radius."""
    species = Species(symbol, ox)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if coordination:
            for spin in ("", "High Spin", "Low Spin"):
                try:
                    return float(species.get_shannon_radius(coordination, spin=spin))
                except Exception:  # noqa: S112 - not tabulated for this coordination/spin: try the next
                    continue
        radius = species.ionic_radius
    return None if radius is None else float(radius)


def _affinity(family: Family, role: str, symbol: str, ox: int) -> float:
    """How well an ion plays a role: best ICSD conditional substitution probability from the role's archetypes."""
    if not family.ionic:
        archetypes = [a for a, _ in family.archetypes[role]]
        return 1.0 if symbol in archetypes else 0.05
    sub = _substitution()
    best = 1e-6
    for arch, arch_ox in family.archetypes[role]:
        try:
            best = max(best, float(sub.cond_prob(Species(arch, arch_ox), Species(symbol, ox))))
        except Exception:  # noqa: S112 - species outside the substitution table
            continue
    return best


def _geometry(family: Family, sites: dict[str, tuple[str, int]], anion: str | None) -> tuple[bool, dict[str, float]]:
    """Ionic-radius rules of the family; returns (passes, descriptors)."""
    if not family.ionic or anion is None:
        return True, {}
    r = {role: _radius(sym, ox, family.coordination.get(role)) for role, (sym, ox) in sites.items()}
    rx = _radius(anion, ANION_CHARGE[anion], "VI") or 1.40
    if any(v is None for v in r.values()):
        return True, {}
    name = family.name
    if "perovskite" in name:
        rb = r["B"] if name != "double perovskite" else (r["B"] + r["C"]) / 2
        t = (r["A"] + rx) / (math.sqrt(2) * (rb + rx))
        octahedral = rb / rx
        return 0.82 <= t <= 1.08 and 0.41 <= octahedral <= 0.9, {
            "tolerance_factor": round(t, 3),
            "octahedral_factor": round(octahedral, 3),
        }
    if name == "pyrochlore":
        ratio = r["A"] / r["B"]
        return 1.36 <= ratio <= 1.85, {"radius_ratio_A_B": round(ratio, 3)}
    if name in ("spinel", "inverse spinel"):
        return 0.4 <= r["A"] <= 1.0 and 0.45 <= r["B"] <= 0.85, {}
    if name == "garnet":
        return r["A"] > r["B"] >= r["C"] * 0.9, {}
    if name in ("rock salt", "cscl", "fluorite"):
        ratio = r["A"] / rx
        bounds = {"rock salt": (0.41, 0.9), "cscl": (0.7, 1.3), "fluorite": (0.6, 1.2)}[name]
        return bounds[0] <= ratio <= bounds[1], {"radius_ratio": round(ratio, 3)}
    if name in ("olivine", "ilmenite", "layered oxide"):
        return r["A"] >= r["B"] * 0.8, {}
    return True, {}


def _role_candidates(
    family: Family, role: str, pool: tuple[str, ...], required: list[str]
) -> list[tuple[str, int, float]]:
    """(element, oxidation state, affinity) choices for a role: the best TOP_PER_ROLE ions plus every required one."""
    choices = []
    for el in dict.fromkeys([*pool, *required]):
        for ox in oxidation_states(el) if family.ionic else (0,):
            prior = state_prior(el, ox) if family.ionic else 1.0
            choices.append((el, ox, _affinity(family, role, el, ox) * max(prior, 0.01) ** 0.5))
    choices.sort(key=lambda c: -c[2])
    top = choices[:TOP_PER_ROLE]
    return top + [c for c in choices[TOP_PER_ROLE:] if c[0] in required]


def _expanded(family: Family, n_required_cations: int) -> tuple[tuple[str, ...], tuple[int, ...], dict[str, str]]:
    """Roles and ratios, with the first cation role split 1:1 over two elements when more elements are required
    than the family has cation sites (e.g. (Mg,Ni)O rock salt -> MgNiO2). Returns roles, ratio, parent role map."""
    cation_roles = [r for r in family.roles if r != "X"]
    if n_required_cations <= len(cation_roles) or len(cation_roles) == 0:
        return family.roles, family.ratio, {r: r for r in family.roles}
    first = cation_roles[0]
    roles, ratio, parent = [], [], {}
    for role, count in zip(family.roles, family.ratio, strict=True):
        if role == first:
            for half in (f"{role}1", f"{role}2"):
                roles.append(half)
                ratio.append(count)
                parent[half] = role
        else:
            roles.append(role)
            ratio.append(2 * count)
            parent[role] = role
    return tuple(roles), tuple(ratio), parent


def propose_for_family(req: MaterialsRequest, family_name: str, n: int) -> list[FormulaProposal]:
    """Ranked proposals within one family honouring the request's required and excluded elements."""
    family = FAMILIES[family_name]
    anion = (req.anion or family.default_anion) if family.ionic else None
    required = [e for e in dict.fromkeys(req.include) if e != anion]
    roles, ratio, parent = _expanded(family, len(required))
    cation_roles = [r for r in roles if r != "X"]
    if len(required) > len(cation_roles):
        return []
    pool = tuple(
        e for e in (CATION_POOL if family.ionic else INTERMETALLIC_POOL) if e not in req.exclude and e != anion
    )
    per_role = [_role_candidates(family, parent[r], pool, required) for r in cation_roles]
    need = -ratio[roles.index("X")] * ANION_CHARGE[anion] if anion else 0
    candidates: dict[str, FormulaProposal] = {}
    for combo in itertools.product(*per_role):
        elements = [c[0] for c in combo]
        if len(set(elements)) < len(elements) or not set(required) <= set(elements):
            continue
        if req.n_elements and len(set(elements)) + (1 if anion else 0) != req.n_elements:
            continue
        if family.ionic and sum(ratio[roles.index(r)] * c[1] for r, c in zip(cation_roles, combo, strict=True)) != need:
            continue
        sites = {r: (c[0], c[1]) for r, c in zip(cation_roles, combo, strict=True)}
        geometry_sites = _merged_sites(sites, parent)
        ok, descriptors = _geometry(family, geometry_sites, anion)
        if not ok:
            continue
        score = math.exp(sum(math.log(c[2]) for c in combo) / len(combo))
        amounts: dict[str, float] = {}
        for role, count in zip(roles, ratio, strict=True):
            el = anion if role == "X" else sites[role][0]
            amounts[el] = amounts.get(el, 0) + count
        formula = "".join(f"{el}{'' if n == 1 else int(n)}" for el, n in amounts.items())
        key = Composition(formula).reduced_formula
        if key in candidates and candidates[key].score >= score:
            continue
        charges = {r: (f"{s}{ox}+" if family.ionic else s) for r, (s, ox) in sites.items()}
        if anion:
            charges["X"] = f"{anion}{-ANION_CHARGE[anion]}-"
        reason = f"{family.name} with " + ", ".join(f"{r}={c}" for r, c in charges.items())
        if len(roles) != len(family.roles):
            reason += f"; {parent[cation_roles[0]]} site shared 1:1 (ordered)"
        if family.ionic:
            reason += "; charge balanced"
        if descriptors:
            reason += "; " + ", ".join(f"{k} {v}" for k, v in descriptors.items())
        reason += f"; substitution likelihood {score:.3g}"
        candidates[key] = FormulaProposal(formula, family.name, charges, round(score, 6), reason, descriptors)
    return sorted(candidates.values(), key=lambda p: (-p.score, p.formula))[:n]


def _merged_sites(sites: dict[str, tuple[str, int]], parent: dict[str, str]) -> dict[str, tuple[str, int]]:
    """For geometry rules, a split role is represented by its first element (radii of a 1:1 site are averaged
    poorly by one ion, but both halves passed the same per-role affinity ranking)."""
    merged: dict[str, tuple[str, int]] = {}
    for role, site in sites.items():
        merged.setdefault(parent[role], site)
    return merged


def families_for(req: MaterialsRequest) -> list[str]:
    """The family asked for, or every family compatible with the requested anion and element count."""
    if req.family:
        return [req.family]
    out = []
    for name, fam in FAMILIES.items():
        if req.anion and not fam.ionic:
            continue
        if req.n_elements and len(fam.roles) != req.n_elements:
            continue
        if not fam.ionic and len(req.include) == 0:
            continue
        out.append(name)
    return out


def propose_formulas_offline(req: MaterialsRequest, n: int = 8) -> list[FormulaProposal]:
    """Top-n proposals over the families the request allows, ranked by substitution likelihood."""
    proposals: list[FormulaProposal] = []
    for name in families_for(req):
        proposals.extend(propose_for_family(req, name, n))
    best: dict[str, FormulaProposal] = {}
    for p in sorted(proposals, key=lambda p: -p.score):
        best.setdefault(Composition(p.formula).reduced_formula, p)
    return sorted(best.values(), key=lambda p: (-p.score, p.formula))[:n]
