"""The offline language level: turn a parsed request into ranked, charge-balanced candidate formulas.

Each family has roles (A, B, C sites and the anion X) with archetype ions. Candidates fill the roles with the
required elements plus common cations, pick oxidation states (ICSD statistics) that balance charge, pass the
family's ionic-radius rules (Goldschmidt tolerance factor for perovskites, radius ratio for pyrochlores,
site-size order elsewhere), and are ranked by ICSD substitution probability from the archetype ions."""

from __future__ import annotations

import itertools
import math
import re
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache

from pymatgen.core import Composition, Element, Species

from tools.discovery.known_compounds import formation_enthalpies, is_known, known_formulas
from tools.discovery.lexicon import (
    APPLICATIONS,
    COMPOUND_CLASSES,
    ELEMENT_GROUPS,
    MOLECULAR_ANIONS,
    SIMPLE_ANIONS,
    known_members,
)
from tools.discovery.nomenclature import PREFIX_COUNTS, PREFIX_PATTERN
from tools.discovery.oxidation import ANION_CHARGE, COMMON_STATE_SHARE, charge_balanced, oxidation_states, state_prior
from tools.discovery.request import MaterialsRequest

# Cations tried for roles the request leaves open: common, non-radioactive, with ICSD oxidation-state data.
_CATIONS = (
    "Li Na K Rb Cs Mg Ca Sr Ba Sc Y La Ce Pr Nd Sm Eu Gd Dy Er Yb Lu Ti Zr Hf V Nb Ta Cr Mo W Mn Fe Co Ni Cu Zn "
    "Al Ga In Si Ge Sn Pb Bi Sb Ag"
)
_INTERMETALLICS = "Co Fe Ni Cu Mn Ti V Cr Zr Hf Nb Sc Pd Pt Ru Rh Ir Al Ga In Si Ge Sn Sb Bi"
CATION_POOL = tuple(_CATIONS.split())
# Every element an ionic role may take when a request asks for it (a group such as the rare earths, or by name).
_ALL_CATIONS = frozenset(
    el.symbol for el in Element if el.Z <= 83 and el.symbol not in ("H", "He", "Ne", "Ar", "Kr", "Xe", "Tc", "Pm")
)
INTERMETALLIC_POOL = tuple(_INTERMETALLICS.split())
TOP_PER_ROLE = 10  # ions kept per role (by affinity) before combining roles
PER_STATE = 3  # and the best ions of each oxidation state beyond those
ARCHETYPE_AFFINITY = 0.1  # an archetype ion's least affinity for its own role (self-substitution odds: 0.01-0.35)
POLYANION_STATE = {"P": 5, "Si": 4, "Ge": 4, "As": 5, "V": 5, "S": 6}  # the centre's state in its oxo-anion


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
    shared: tuple[tuple[str, str], ...] = ()  # role pairs that may hold the same element (garnet Y3Al2Al3O12)
    tetrahedral: str | None = None  # the role that can hold a polyanion centre (P in LiFePO4, Si in garnets)
    halide_archetypes: dict[str, tuple[tuple[str, int], ...]] | None = None  # when X is F, Cl, Br or I
    metallic_archetypes: dict[str, tuple[tuple[str, int], ...]] | None = None  # an intermetallic variant (B2 FeAl)
    mixed_valence: bool = False  # shared roles may hold one element in two states (Co3O4: Co2+ Co3+2)
    shared_weight: float = 1.0  # score factor for a formula that puts one element on two roles
    x_charge: int | None = None  # the X site's charge when it is not the anion's usual one (S2^2- in pyrite: -1)
    own: dict[str, str] | None = None  # an AFLOW type's own element per role (size order and extra candidates)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "perovskite",
            ("A", "B", "X"),
            (1, 1, 3),
            {"A": (("Sr", 2), ("La", 3), ("Ca", 2), ("Ba", 2)), "B": (("Ti", 4), ("Mn", 3), ("Fe", 3), ("Co", 3))},
            coordination={"A": "XII", "B": "VI"},
            halide_archetypes={"A": (("Cs", 1), ("K", 1), ("Rb", 1)), "B": (("Pb", 2), ("Sn", 2), ("Mg", 2))},
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
            halide_archetypes={  # Cs2AgBiBr6, Cs2NaInCl6: the lead-free double perovskites
                "A": (("Cs", 1), ("Rb", 1), ("K", 1)),
                "B": (("Ag", 1), ("Na", 1), ("Cu", 1)),
                "C": (("Bi", 3), ("In", 3), ("Sb", 3)),
            },
        ),
        Family(
            "spinel",
            ("A", "B", "X"),
            (1, 2, 4),
            {"A": (("Mg", 2), ("Zn", 2), ("Co", 2), ("Fe", 2), ("Li", 1)),  # LiMn2O4: Li+ on the tetrahedral site
             "B": (("Al", 3), ("Fe", 3), ("Cr", 3), ("Mn", 3), ("Mn", 4))},
            coordination={"A": "IV", "B": "VI"},
            shared=(("A", "B"),),
            mixed_valence=True,
            shared_weight=0.5,
        ),
        Family(
            "inverse spinel",
            ("A", "B", "X"),
            (1, 2, 4),
            {"A": (("Ni", 2), ("Mg", 2), ("Co", 2)), "B": (("Fe", 3), ("Ga", 3), ("In", 3))},
            coordination={"A": "VI", "B": "VI"},
            shared=(("A", "B"),),
            mixed_valence=True,
            shared_weight=0.5,
        ),
        Family(
            "rock salt",
            ("A", "X"),
            (1, 1),
            {"A": (("Mg", 2), ("Ni", 2), ("Ca", 2), ("Co", 2), ("Na", 1))},
            coordination={"A": "VI"},
        ),
        Family(
            "cscl",
            ("A", "X"),
            (1, 1),
            {"A": (("Cs", 1), ("Tl", 1))},
            default_anion="Cl",
            coordination={"A": "VIII"},
            metallic_archetypes={
                "A": (("Fe", 0), ("Ni", 0), ("Co", 0), ("Cu", 0), ("Ti", 0)),
                "X": (("Al", 0), ("Ga", 0), ("Zn", 0), ("Ti", 0), ("Si", 0)),
            },
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
            shared=(("B", "C"),),
            tetrahedral="C",
            shared_weight=3.0,
        ),
        Family(
            "olivine",
            ("A", "B", "C", "X"),
            (1, 1, 1, 4),
            {
                "A": (("Mg", 2), ("Fe", 2), ("Li", 1), ("Mn", 2)),
                "B": (("Mg", 2), ("Fe", 2), ("Mn", 2), ("Co", 2)),
                "C": (("Si", 4), ("Ge", 4), ("P", 5)),
            },
            coordination={"A": "VI", "B": "VI", "C": "IV"},
            shared=(("A", "B"),),
            tetrahedral="C",
            shared_weight=2.0,
        ),
        Family(
            "chalcopyrite",
            ("A", "B", "X"),
            (1, 1, 2),
            {"A": (("Cu", 1), ("Ag", 1)), "B": (("In", 3), ("Ga", 3), ("Fe", 3), ("Al", 3))},
            default_anion="S",
            coordination={"A": "IV", "B": "IV"},
        ),
        Family(  # the 122 pnictides: A2+ between B2X2 layers of edge-sharing tetrahedra (BaFe2As2, CaZn2As2)
            "thcr2si2",
            ("A", "B", "X"),
            (1, 2, 2),
            {"A": (("Ba", 2), ("Ca", 2), ("Sr", 2), ("Eu", 2)), "B": (("Fe", 2), ("Zn", 2), ("Mn", 2), ("Co", 2))},
            default_anion="As",
            coordination={"A": "VIII", "B": "IV"},
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
            shared=(("A", "B"),),
            shared_weight=0.3,
        ),
        Family(
            "half-heusler",
            ("A", "B", "C"),
            (1, 1, 1),
            {
                "A": (("Ti", 0), ("Zr", 0), ("Hf", 0), ("Nb", 0), ("Sc", 0)),
                "B": (("Ni", 0), ("Co", 0), ("Fe", 0)),
                "C": (("Sn", 0), ("Sb", 0), ("Ge", 0), ("Bi", 0)),
            },
            ionic=False,
        ),
    ]
}


@lru_cache(maxsize=64)
@lru_cache(maxsize=256)
def family_of(name: str | None) -> Family | None:
    """A family by name: one of FAMILIES, or an AFLOW structure type (models.crystals.prototypes.GENERIC_FAMILIES) whose
    roles take the prototype's own ions as archetypes (an anatase's A role: Ti4+), so substitution likelihood from
    them ranks what else fits; carbides and intermetallics are filled without charge balance."""
    from models.crystals.prototypes import formula_roles, generic_roles

    if name is None:
        return None
    if name in FAMILIES:
        return FAMILIES[name]
    generic = generic_roles(name)
    members = known_members(name)
    if generic is None and members:  # a type without a prototype: its first textbook member sets the roles
        generic = formula_roles(Composition(members[0]).get_el_amt_dict(), one_anion=True)
    if generic is None:
        return None
    roles, ratio, own = generic
    anion = own.get("X")
    guesses: tuple = ()
    if anion in ANION_CHARGE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            guesses = tuple(
                g
                for g in Composition({own[r]: n for r, n in zip(roles, ratio, strict=True)}).oxi_state_guesses()
                if all(abs(v - round(v)) < 1e-6 for v in g.values())
            )
    tetrahedral = next((r for r in roles if own[r] in ("Si", "P", "Ge")), None)
    if guesses:
        states = guesses[0]
        archetypes = {r: ((own[r], max(1, int(round(states[own[r]])))),) for r in roles if r != "X"}
        x_charge = int(round(states[anion]))
        return Family(name, roles, ratio, archetypes, ionic=True, default_anion=anion, tetrahedral=tetrahedral,
                      x_charge=x_charge if x_charge != ANION_CHARGE[anion] else None, own=own)
    return Family(name, roles, ratio, {r: ((own[r], 0),) for r in roles}, ionic=False, own=own)


FAMILY_DEFAULT_ANION = {name: (f.default_anion if f.ionic else None) for name, f in FAMILIES.items()}


@dataclass
class FormulaProposal:
    """One candidate formula with the reasoning behind it."""

    formula: str
    family: str
    sites: dict[str, str]  # role -> "La3+" etc.
    score: float
    reason: str
    descriptors: dict[str, float] = field(default_factory=dict)
    named: bool = False  # typed in the request (or derived from a typed formula by a swap the request asks for)
    rare_states: bool = False  # balanced only with oxidation states beyond the ICSD statistics (ranked last)


@lru_cache(maxsize=1)
def _substitution():  # noqa: ANN202 - pymatgen type
    from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionProbability

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SubstitutionProbability()


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
    if not family.ionic:  # archetypes in order of how common they are in the family
        if family.own and role in family.own:  # an AFLOW type: elements near its own on Pettifor's scale fit;
            # at most 0.1 (its own element), so that such types rank beside the typed families' substitutes (0.05)
            return max(0.001, 0.1 * _pettifor_similarity(symbol, family.own[role]))
        archetypes = [a for a, _ in family.archetypes[role]]
        return 0.9 ** archetypes.index(symbol) if symbol in archetypes else 0.05
    sub = _substitution()
    # An archetype is a defining member: its own substitution odds can be low (Ce4+ trades places with many ions,
    # so P(Ce4+ -> Ce4+) is 0.01) but it plays the role at least as well as a typical ion does.
    best = ARCHETYPE_AFFINITY if (symbol, ox) in family.archetypes[role] else 1e-6
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
        bounds = {"rock salt": (0.41, 0.9), "cscl": (0.7, 1.3), "fluorite": (0.58, 1.2)}[name]
        return bounds[0] <= ratio <= bounds[1], {"radius_ratio": round(ratio, 3)}
    if name == "olivine":  # octahedral M1/M2 cations larger than the tetrahedral one
        return min(r["A"], r["B"]) >= r["C"], {}
    if name in ("ilmenite", "layered oxide"):
        return r["A"] >= r["B"] * 0.8, {}
    return True, {}


def _role_candidates(
    family: Family, role: str, pool: tuple[str, ...], required: list[str], count: int = 1, every_state: bool = False,
    keep_all: bool = False,
) -> list[tuple[str, float, float]]:
    """(element, oxidation state, affinity) choices for a role: the best TOP_PER_ROLE ions plus every required one
    (every ion with keep_all: a family with one cation role has no combinations to prune, and the charge balance
    and radius rules that follow may reject the best ones, as they reject all 2+ ions of a fluorite oxide).
    A role with two or more ions per formula may also hold an element in two adjacent states (LiMn2O4: Mn3.5+)."""
    choices: list[tuple[str, float, float]] = []
    for el in dict.fromkeys([*pool, *required]):
        states = oxidation_states(el, every_state) if family.ionic else (0,)
        for ox in states:
            prior = state_prior(el, ox) if family.ionic else 1.0
            choices.append((el, ox, _affinity(family, role, el, ox) * max(prior, 0.01) ** 0.5))
        if family.ionic and count >= 2 and count % 2 == 0:
            for low in states:
                if low + 1 in states:
                    prior = (state_prior(el, low) * state_prior(el, low + 1)) ** 0.5
                    affinity = max(_affinity(family, role, el, low), _affinity(family, role, el, low + 1))
                    choices.append((el, low + 0.5, 0.5 * affinity * max(prior, 0.01) ** 0.5))
    choices.sort(key=lambda c: -c[2])
    if keep_all:
        return choices
    top = choices[:TOP_PER_ROLE]
    # The best few of every oxidation state too, so that a charge balance the archetypes do not cover (a halide
    # perovskite needs A+ and B2+ where the oxide archetypes are A2+/A3+ and B3+/B4+) stays reachable.
    by_state: dict[int, int] = {}
    for c in choices[TOP_PER_ROLE:]:
        by_state[c[1]] = by_state.get(c[1], 0) + 1
        if c[0] in required or by_state[c[1]] <= PER_STATE:
            top.append(c)
    return top


SPLIT_WEIGHTS = {(1, 1): 1.0, (1, 3): 0.8}  # a 1:1 share of a site is the commoner order; 1:3 (LiNi0.5Mn1.5O4)
SPLIT_1_3_FAMILIES = ("spinel", "inverse spinel")  # where a 1:3 order of one site is known (P4_332 LiNi0.5Mn1.5O4)


def _expansions(
    family: Family, n_required_cations: int, metallic: bool = False
) -> list[tuple[tuple[str, ...], tuple[int, ...], dict[str, str], float, str]]:
    """The frames a formula with more required elements than cation sites can take: one cation role shared by two
    elements, 1:1 ((Mg,Ni)O rock salt -> MgNiO2; Li,Ni on the spinel B site -> LiNiVO4) or, on a spinel site with
    two or more atoms per formula unit, 1:3 (LiNi0.5Mn1.5O4 -> Li2NiMn3O8). Returns (roles, ratio, parent role map,
    weight, note) per frame; the family's own frame alone when it has room."""
    cation_roles = [r for r in family.roles if r != "X" or metallic]
    if n_required_cations <= len(cation_roles) or len(cation_roles) == 0:
        return [(family.roles, family.ratio, {r: r for r in family.roles}, 1.0, "")]
    out = []
    for index, split in enumerate(cation_roles):
        count = family.ratio[family.roles.index(split)]
        for (k1, k2), weight in SPLIT_WEIGHTS.items():
            if k1 != k2 and (count < 2 or family.name not in SPLIT_1_3_FAMILIES):
                continue
            roles, ratio, parent = [], [], {}
            for role, n in zip(family.roles, family.ratio, strict=True):
                if role == split:
                    for half, k in ((f"{role}1", k1), (f"{role}2", k2)):
                        roles.append(half)
                        ratio.append(n * k)
                        parent[half] = role
                else:
                    roles.append(role)
                    ratio.append(n * (k1 + k2))
                    parent[role] = role
            g = math.gcd(*ratio)
            ratio = [r // g for r in ratio]
            note = f"{split} site shared {k1}:{k2} (ordered)"
            out.append((tuple(roles), tuple(ratio), parent, weight * (1.0 if index == 0 else 0.95), note))
    return out


def anion_options(req: MaterialsRequest, family: Family) -> list[dict[str, int]]:
    """The anion content of the family's X sites: one anion (oxide), each allowed anion of a class (halide ->
    F, Cl, Br, I), or a mixed set (oxynitride ABO2N: all X sites oxygen but one nitrogen)."""
    if not family.ionic:
        return [{}]
    x_count = family.ratio[family.roles.index("X")]
    cls = COMPOUND_CLASSES.get(req.compound_class or "")
    if cls is not None and cls.mixed:
        first, second = cls.anions
        return [{first: x_count - 1, second: 1}] if x_count > 1 else []
    if req.anion:
        anions = [req.anion]
    elif req.anions:
        anions = list(req.anions)
    else:  # no class named: the family's usual anion, or a named element that can be the anion (AlAs, ZnSe)
        anions = [family.default_anion] + [el for el in req.include if el in ANION_CHARGE and el != "H"]
    return [{a: x_count} for a in anions if a not in req.exclude and (req.only is None or a in req.only)
            and a in ANION_CHARGE]  # a boride's B has no anion charge to balance


def propose_for_family(req: MaterialsRequest, family_name: str, n: int) -> list[FormulaProposal]:
    """Ranked proposals within one family honouring the request's required, excluded and allowed elements."""
    family = family_of(family_name)
    if family is None:
        return []
    if family.metallic_archetypes and (req.compound_class == "intermetallic"
                                       or (req.family == family.name and _metals_only(req))):
        family = replace(family, ionic=False, archetypes=family.metallic_archetypes)
    out: list[FormulaProposal] = []
    for anions in anion_options(req, family):
        out.extend(_propose_with_anions(req, family, anions, n))
    if not out and family.ionic and req.compound_class is None and req.anion is None:
        # No class named and the usual anion cannot work ('a halite-type compound with K'): the other anions.
        x_count = family.ratio[family.roles.index("X")]
        usual = Element(family.default_anion)
        common = ("F", "Cl", "Br", "I", "S", "Se", "Te", "N", "O")
        # the usual anion's own group first, nearest row first (Bi2Te3-type without Te: Se, then S, then O)
        others = sorted(common, key=lambda a: (Element(a).group != usual.group, abs(Element(a).row - usual.row),
                                               common.index(a)))
        for rank, anion in enumerate(others):
            if anion not in req.exclude and anion != family.default_anion:
                for p in _propose_with_anions(req, family, {anion: x_count}, n):
                    p.score = round(p.score * 0.9**rank, 6)  # the commoner anions of such compounds first
                    out.append(p)
    if not out and family.ionic and req.include:
        for anions in anion_options(req, family):  # states beyond the ICSD statistics (SrFeO3 needs Fe4+)
            for p in _propose_with_anions(req, family, anions, n, every_state=True):
                p.rare_states = True
                out.append(p)
    best: dict[str, FormulaProposal] = {}
    for p in sorted(out, key=lambda p: -p.score):
        best.setdefault(Composition(p.formula).reduced_formula, p)
    return sorted(best.values(), key=lambda p: (-p.score, p.formula))[:n]


def _metals_only(req: MaterialsRequest) -> bool:
    """Two or more metals asked for and no anion or class ('the CsCl-type Cu-Zn phase'): an alloy, not a salt."""
    if req.compound_class or req.asked_anions():
        return False
    metals = [el for el in req.include if Element(el).is_metal]
    return len(metals) >= 2 and len(metals) == len(req.include)


def _propose_with_anions(
    req: MaterialsRequest, family: Family, anions: dict[str, int], n: int, every_state: bool = False
) -> list[FormulaProposal]:
    """Proposals of one family with a fixed anion content (scaled to the formula's X count); every_state lets the
    cations take every oxidation state pymatgen knows, not only the ICSD ones."""
    required = [e for e in dict.fromkeys(req.include) if e not in anions]
    best: dict[str, FormulaProposal] = {}
    for roles, ratio, parent, weight, note in _expansions(family, len(required), metallic=not anions):
        for p in _propose_in_frame(req, family, anions, n, every_state, required, (roles, ratio, parent, note)):
            p.score = round(p.score * weight, 6)
            if p.formula not in best or best[p.formula].score < p.score:
                best[p.formula] = p
    return sorted(best.values(), key=lambda p: (-p.score, p.formula))[:n]


_Frame = tuple[tuple[str, ...], tuple[int, ...], dict[str, str], str]  # roles, ratio, parent roles, shared-site note
_Combo = tuple[tuple[str, int, float], ...]  # per cation role: (element, oxidation state, affinity)


def _propose_in_frame(
    req: MaterialsRequest, family: Family, anions: dict[str, int], n: int, every_state: bool, required: list[str],
    frame: _Frame,
) -> list[FormulaProposal]:
    """Proposals of one family in one frame (roles, ratio, parent roles, the note on a shared site)."""
    roles, ratio, parent, note = frame
    cation_roles = [r for r in roles if r != "X" or not anions]
    if len(required) > len(cation_roles) + sum(1 for a, b in family.shared if a in roles and b in roles):
        return []
    if req.polyanion and (family.tetrahedral is None or family.tetrahedral not in roles):
        return []
    pool, extras = _frame_pool(req, family, anions, required)
    if family.halide_archetypes and anions and set(anions) <= {"F", "Cl", "Br", "I"}:
        family = replace(family, archetypes=family.halide_archetypes)
    per_role = [
        _role_candidates(family, parent[r], pool, extras, ratio[roles.index(r)], every_state,
                         keep_all=len(cation_roles) == 1)
        for r in cation_roles
    ]
    # Each formula unit scales the anion content with the expanded ratio (split roles double everything).
    scale = ratio[roles.index("X")] // sum(anions.values()) if anions else 1
    need = -sum(count * scale * (family.x_charge or ANION_CHARGE[a]) for a, count in anions.items())
    candidates: dict[str, FormulaProposal] = {}
    for combo in itertools.product(*per_role):
        if not _combo_allowed(req, family, frame, cation_roles, combo, required, anions, need):
            continue
        sites = {r: (c[0], c[1]) for r, c in zip(cation_roles, combo, strict=True)}
        scored = _combo_score(family, parent, sites, combo, required, anions)
        if scored is None:
            continue
        score, descriptors = scored
        formula = _frame_formula(roles, ratio, cation_roles, sites, anions, scale)
        key = Composition(formula).reduced_formula
        charges = {r: (f"{s}{ox:g}+" if family.ionic else s) for r, (s, ox) in sites.items()}
        if key in candidates and (_uncommon_count(candidates[key].sites), -candidates[key].score) <= (
                _uncommon_count(charges), -score):
            continue  # one formula, several state assignments: the commonest states (V5+ Ni2+), then the likeliest
        candidates[key] = _frame_proposal(family, formula, charges, anions, note, score, descriptors)
    return sorted(candidates.values(), key=lambda p: (-p.score, p.formula))[:n]


def _frame_pool(
    req: MaterialsRequest, family: Family, anions: dict[str, int], required: list[str]
) -> tuple[tuple[str, ...], list[str]]:
    """The cations a frame's open roles may take (the family's usual pool, less refused and disallowed ones) and
    the extras every role considers: required elements, either-or members, the polyanion centre, a type's own."""
    base_pool = CATION_POOL if family.ionic else INTERMETALLIC_POOL
    any_members = [el for group in req.include_any for el in group]
    pool = tuple(
        e
        for e in dict.fromkeys([*base_pool, *[m for m in any_members if m in _ALL_CATIONS]])
        if e not in req.exclude and e not in anions and (req.only is None or e in req.only)
    )
    extras = [*required, *[m for m in any_members if m in pool]]
    if req.polyanion:  # the oxo-anion centre (P of PO4) is a candidate for the tetrahedral role
        pool, extras = (*pool, req.polyanion), [*extras, req.polyanion]
    if family.own:  # an AFLOW type's own elements (N of a MAX phase) are candidates too
        own = [el for el in family.own.values() if el not in req.exclude and el not in anions]
        own = [el for el in own if req.only is None or el in req.only]
        pool, extras = (*pool, *own), [*extras, *own]
    return pool, extras


def _combo_allowed(
    req: MaterialsRequest, family: Family, frame: _Frame, cation_roles: list[str], combo: _Combo,
    required: list[str], anions: dict[str, int], need: float,
) -> bool:
    """One filling of the cation roles keeps the request and the family's rules: an element on two roles only where
    they share a site, the required and either-or elements present, the polyanion centre in its state on the
    tetrahedral role, the element count, and (ionic) the charge balanced."""
    roles, ratio = frame[0], frame[1]
    elements = [c[0] for c in combo]
    if len(set(elements)) < len(elements):
        dup_roles = [
            frozenset((r1, r2))
            for (r1, c1), (r2, c2) in itertools.combinations(zip(cation_roles, combo, strict=True), 2)
            if c1[0] == c2[0]
        ]
        shared = {frozenset(pair) for pair in family.shared}
        if not all(
            pair in shared and (family.mixed_valence or _same_state(combo, cation_roles, pair))
            for pair in dup_roles
        ):
            return False
    present = set(elements)
    if not set(required) <= present or any(not present & set(g) for g in req.include_any):
        return False
    if req.polyanion:
        centre = dict(zip(cation_roles, combo, strict=True)).get(family.tetrahedral)
        if centre is None or centre[0] != req.polyanion or centre[1] != POLYANION_STATE.get(req.polyanion):
            return False
    if req.n_elements and len(present) + len(anions) != req.n_elements:
        return False
    charge = sum(ratio[roles.index(r)] * c[1] for r, c in zip(cation_roles, combo, strict=True))
    return not (family.ionic and abs(charge - need) > 1e-9)  # the cations balance the anions' charge


def _combo_score(
    family: Family, parent: dict[str, str], sites: dict[str, tuple[str, int]], combo: _Combo, required: list[str],
    anions: dict[str, int],
) -> tuple[float, dict[str, float]] | None:
    """The substitution likelihood of one filling and its geometry descriptors, or None when the radius rules
    screen it out (elements the user fixed are kept, with the descriptors shown)."""
    elements = [c[0] for c in combo]
    main_anion = max(anions, key=anions.get) if anions else None
    ok, descriptors = _geometry(family, _merged_sites(sites, parent), main_anion)
    if not ok and not set(elements) <= set(required):
        return None
    score = math.exp(sum(math.log(c[2]) for c in combo) / len(combo))
    if len(set(elements)) < len(elements):
        score *= family.shared_weight
    if family.own and family.ionic and anions:  # an AFLOW type of the same anion (molybdenite for WS2) fits
        score *= 3.0 if family.default_anion in anions else 0.5  # better than an oxide type (quartz) does
    if family.own and not family.ionic:
        score *= 2.0 * _size_match(family, sites)  # an intermetallic type keeps its radius ratios (Laves A/B)
    if family.name == "half-heusler" and valence_electrons(elements) in (8, 18):
        score *= 3.0  # the 8- and 18-electron half-Heuslers are the closed-shell (semiconducting) ones
        descriptors = {**descriptors, "valence_electrons": valence_electrons(elements)}
    return score, descriptors


def _frame_formula(
    roles: tuple[str, ...], ratio: tuple[int, ...], cation_roles: list[str], sites: dict[str, tuple[str, int]],
    anions: dict[str, int], scale: int,
) -> str:
    """The formula of one filling: each role's element times its count, then the anions scaled to the unit."""
    amounts: dict[str, float] = {}
    for role, count in zip(roles, ratio, strict=True):
        if role in cation_roles:
            amounts[sites[role][0]] = amounts.get(sites[role][0], 0) + count
    for anion, count in anions.items():
        amounts[anion] = amounts.get(anion, 0) + count * scale
    return "".join(f"{el}{'' if k == 1 else int(k)}" for el, k in amounts.items())


def _frame_proposal(
    family: Family, formula: str, charges: dict[str, str], anions: dict[str, int], note: str, score: float,
    descriptors: dict[str, float],
) -> FormulaProposal:
    """The proposal of one filling, with the sites, the shared-site note, the descriptors and the score in words."""
    if anions:
        charges["X"] = "".join(f"{a}{-(family.x_charge or ANION_CHARGE[a])}-" for a in anions)
    reason = f"{family.name} with " + ", ".join(f"{r}={c}" for r, c in charges.items())
    if note:
        reason += f"; {note}"
    if family.ionic:
        reason += "; charge balanced"
    if descriptors:
        reason += "; " + ", ".join(f"{k} {v}" for k, v in descriptors.items())
    reason += f"; substitution likelihood {score:.3g}"
    return FormulaProposal(formula, family.name, charges, round(score, 6), reason, descriptors)


PETTIFOR_SCALE = 8.0  # Mendeleev-number distance at which an element's fit to a prototype site falls by e
SIZE_RATIO_WIDTH = 0.1  # width (in ln of the radius ratio) of an intermetallic type's tolerance to other sizes


def _pettifor_similarity(symbol: str, own: str) -> float:
    """How alike two elements are for a site of an intermetallic type: Pettifor's Mendeleev numbers order the
    elements so that neighbours form the same structures (V3Ga and Nb3Sn beside Cr3Si)."""
    a, b = Element(symbol).mendeleev_no, Element(own).mendeleev_no
    return math.exp(-abs(a - b) / PETTIFOR_SCALE) if a and b else 0.01


def _size_match(family: Family, sites: dict[str, tuple[str, float]]) -> float:
    """1 when the roles' atomic radii keep the ratios of the AFLOW prototype's own elements, falling as a Gaussian
    in ln(ratio) (Laves phases need A about 1.1-1.3 times B: ZrV2 fits, MgZr2 does not)."""
    roles = [r for r in sites if r in (family.own or {})]

    def radius(symbol: str) -> float:
        return float(Element(symbol).atomic_radius or 1.5)

    misfit = 0.0
    for r1, r2 in itertools.combinations(roles, 2):
        own = math.log(radius(family.own[r1]) / radius(family.own[r2]))
        new = math.log(radius(sites[r1][0]) / radius(sites[r2][0]))
        misfit += (new - own) ** 2
    return math.exp(-misfit / (2 * SIZE_RATIO_WIDTH**2))

def valence_electrons(elements: list[str]) -> int:
    """Valence electron count of a formula unit: s+d electrons of transition metals (their group), s+p of
    main-group elements (group - 10), 3 for the lanthanides."""
    total = 0
    for symbol in elements:
        el = Element(symbol)
        if el.is_lanthanoid:
            total += 3
        elif el.group <= 12:
            total += el.group
        else:
            total += el.group - 10
    return total


def _same_state(combo: tuple, roles: list[str], pair: frozenset[str]) -> bool:
    """Two roles holding one element must hold it in one oxidation state (Y3Al2Al3O12: Al3+ on both)."""
    states = {c[1] for r, c in zip(roles, combo, strict=True) if r in pair}
    return len(states) == 1


def _merged_sites(sites: dict[str, tuple[str, int]], parent: dict[str, str]) -> dict[str, tuple[str, int]]:
    """For geometry rules, a split role is represented by its first element (radii of a 1:1 site are averaged
    poorly by one ion, but both halves passed the same per-role affinity ranking)."""
    merged: dict[str, tuple[str, int]] = {}
    for role, site in sites.items():
        merged.setdefault(parent[role], site)
    return merged


def families_for(req: MaterialsRequest) -> list[str]:
    """The family asked for, or every family compatible with the request's class, elements and count; the
    application's usual families first."""
    from models.crystals.prototypes import GENERIC_FAMILIES

    if req.family:
        return [req.family] if family_of(req.family) is not None else []
    out = []
    for name in dict.fromkeys([*FAMILIES, *GENERIC_FAMILIES, *req.preferred_families]):
        fam = family_of(name)
        if fam is None or name in req.exclude_families:
            continue
        if req.compound_class not in (None, "intermetallic") and not fam.ionic:
            continue
        if not fam.ionic and req.compound_class != "intermetallic" and name not in req.preferred_families:
            continue  # Heuslers when asked for an intermetallic, by name or by use, not for "anything with Ba, Bi"
        if req.compound_class == "intermetallic" and fam.ionic and not fam.metallic_archetypes:
            continue
        if req.polyanion and fam.tetrahedral is None:
            continue
        out.append(name)
    preferred = [f for f in req.preferred_families if f in out]
    return preferred + [f for f in out if f not in preferred]


def named_formula_proposals(req: MaterialsRequest) -> list[FormulaProposal]:
    """Formulas typed in the request, first, when they honour its constraints (a formula that breaks them is a
    reference the user compares with, not an answer)."""
    from tools.discovery.request import family_of_formula

    out = []
    derived = set(req.derived_formulas)
    compounds = set(req.named_compounds)
    typed = [f for f in req.formulas if f not in req.reference_formulas]
    worded = sorted((f for f in req.named_compounds if f not in typed),  # BBO's BaB2O4 first, then EuS before Eu2S3
                    key=lambda f: (f not in req.exact_compounds, not is_known(f)))
    for text in [*req.derived_formulas, *typed, *worded]:
        try:
            comp = whole_formula_units(Composition(text))
        except Exception:  # noqa: BLE001, S112 - the reader only keeps parsable formulas
            continue
        if comp is None:
            continue  # 'LiNi0.333...O2' with no small whole multiple: not a cell the generators can build
        symbols = {el.symbol for el in comp.elements}
        if not set(req.include) <= symbols or symbols & set(req.exclude):
            continue
        if req.only is not None and not symbols <= set(req.only) | set(req.anions):
            continue
        if text in compounds and text not in typed and req.n_elements and len(symbols) != req.n_elements:
            continue  # 'any ternary barium oxide': not BaO
        if text in compounds and text not in typed and text not in req.exact_compounds and (
            any(not set(group) & symbols for group in req.include_any)
            or req.family and family_of(req.family) is not None and not sites_for(text, req.family)
        ):
            continue  # a name read as a formula ('iron silicate') that the asked family or alternatives rule out
        family = req.family or family_of_formula(text)
        out.append(
            FormulaProposal(
                comp.reduced_formula,
                family or "",
                sites_for(comp.reduced_formula, family) if family else {},
                1.0,
                f"spelled out by the request ({text}: a swap, an element ratio or a filled site template)"
                if text in derived
                else f"the compound the request names in words or by acronym ({text})" if text in compounds
                else f"named in the request ({text})",
                {},
                named=True,
            )
        )
    if not out and not req.derived_formulas:
        out = _nearest_allowed(req)
    return out


MAX_FORMULA_MULTIPLE = 12  # 'LiNi0.5Mn1.5O4' -> Li2NiMn3O8; a fraction needing more formula units is no cell


def whole_formula_units(comp: Composition) -> Composition | None:
    """A composition with fractional amounts as its smallest whole multiple (LiNi0.5Mn1.5O4 -> Li2NiMn3O8), or
    None when no multiple up to MAX_FORMULA_MULTIPLE makes every amount whole (within 0.01)."""
    for k in range(1, MAX_FORMULA_MULTIPLE + 1):
        amounts = {el: n * k for el, n in comp.get_el_amt_dict().items()}
        if all(abs(n - round(n)) < 0.01 * k for n in amounts.values()):
            return Composition({el: round(n) for el, n in amounts.items()})
    return None


def _nearest_allowed(req: MaterialsRequest, per_formula: int = 3) -> list[FormulaProposal]:
    """'the closest perovskite to CsPbBr3 without lead': each excluded element of a named formula replaced by the
    ions that most often take its place in known crystals (ICSD substitution statistics times how common the
    ion's state is, elements of the same group first: Pb2+ -> Sn2+ before Eu2+); the formula stays the reference."""
    from pymatgen.core import Species

    from tools.discovery.request import family_of_formula

    out: list[FormulaProposal] = []
    for text in req.formulas:
        comp = Composition(text)
        symbols = {el.symbol for el in comp.elements}
        banned = sorted(symbols & set(req.exclude))
        if len(banned) != 1 or not set(req.include) <= symbols | set(req.exclude):
            continue
        own_anions = symbols & set(ANION_CHARGE)
        if req.anions and own_anions and not own_anions <= set(req.asked_anions()):
            continue  # "a CsCl-type bromide without Cs": CsCl names the structure; its chloride is no answer
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            guesses = comp.oxi_state_guesses()
        ox = guesses[0].get(banned[0]) if guesses else None
        if ox is None or abs(ox - round(ox)) > 1e-6 or round(ox) <= 0:
            continue
        old = Species(banned[0], int(round(ox)))
        table = _substitution()
        ranked = []
        for sp in table.species:
            el = sp.symbol
            if sp.oxi_state != old.oxi_state or el in symbols or el in req.exclude or el not in _ALL_CATIONS:
                continue
            if req.only is not None and el not in req.only:
                continue
            same_group = 3.0 if Element(el).group == Element(banned[0]).group else 1.0  # Pb -> Sn, Ge first
            ranked.append((table.pair_corr(sp, old) * state_prior(el, int(sp.oxi_state)) * same_group, el))
        family = req.family or family_of_formula(text)
        kept = 0
        for score, el in sorted(ranked, reverse=True):
            amounts = comp.get_el_amt_dict()
            amounts[el] = amounts.pop(banned[0])
            formula = Composition(amounts).reduced_formula
            if kept == per_formula or not honours(req, formula):
                continue
            kept += 1
            out.append(FormulaProposal(
                formula, family or "", sites_for(formula, family) if family else {}, round(score, 6),
                f"{text} without {banned[0]}: {el}{old.oxi_state:+g} takes the place of {old} (ICSD substitution "
                f"statistics)", {}, named=True,
            ))
    return out


ORTHO_CENTRES = {"P": 5, "As": 5, "Si": 4, "Ge": 4, "Sn": 4}  # centres of tetrahedral MX4 anions (PS4 3-, GeS4 4-)
OXO_CENTRES = {"V": 5, "Cr": 6, "Mo": 6, "W": 6}  # tetrahedral oxo-anions only: VO4 3- (BiVO4), WO4 2- (CaWO4)
ORTHO_HOSTS = ("Li", "Na", "K", "Mg", "Ca")  # cations of the usual ortho-salts when none is named


MOLECULAR_SALT_HOSTS = ("Li", "Na", "K", "Mg", "Ca", "Sr", "Ba", "Al", "Zn")  # cations when none is named


def molecular_salt_proposals(req: MaterialsRequest) -> list[FormulaProposal]:
    """Salts of a named molecular anion (a borohydride: NaBH4, Mg(BH4)2): each named cation, or each usual host,
    in its commonest state, balanced by whole anion units. Scored by how common that state is."""
    if req.molecular_anion is None or req.family is not None:
        return []
    unit = req.molecular_anion
    charge = next(q for u, q in MOLECULAR_ANIONS.values() if u == unit)
    unit_elements = set(Composition(unit).get_el_amt_dict())
    named = [el for el in req.include if el not in unit_elements]
    if len(named) > 1:
        return []
    hosts = named or [el for el in MOLECULAR_SALT_HOSTS if el not in req.exclude
                      and (req.only is None or el in req.only)]
    out = []
    for rank, el in enumerate(hosts):  # the usual hosts in order: NaBH4 and KBH4 before Ba(BH4)2
        state = max(oxidation_states(el) or (0,), key=lambda o, el=el: state_prior(el, o))
        if state <= 0 or state % -charge:
            continue
        k = state // -charge
        formula = f"{el}{unit}" if k == 1 else f"{el}({unit}){k}"
        if not honours(req, formula) or (req.n_elements and len(unit_elements) + 1 != req.n_elements):
            continue
        out.append(FormulaProposal(
            formula, "", {"A": f"{el}{state}+", "X": f"{unit}{-charge if -charge > 1 else ''}-"},
            round(0.5 * state_prior(el, state) * (1.0 if named else 0.5) * 0.95**rank, 6),
            f"{formula}: {el}{state}+ balanced by {k} {unit} unit{'s' if k > 1 else ''}"))
    return out


def orthosalt_proposals(req: MaterialsRequest) -> list[FormulaProposal]:
    """Salts of one isolated tetrahedral anion, A_k(MX4) (Li3PO4, Li3PS4, Na4SnS4): proposed when no family is
    asked and the request names the centre with an oxide, sulfide or selenide class (the commonest ternaries of
    such a centre; a sulfide "with Li and P" is a thiophosphate, not a P cation in a perovskite)."""
    if req.family is not None:
        return []
    asked = req.anions or ([req.anion] if req.anion else [])
    cls = COMPOUND_CLASSES.get(req.compound_class or "")
    if cls is not None and cls.mixed:
        return []  # an oxyfluoride is no salt of one oxo-anion
    anions = [a for a in asked if a in ("O", "S", "Se")]
    centres = [e for e in dict.fromkeys([*([req.polyanion] if req.polyanion else []), *req.include])
               if e in ORTHO_CENTRES or (e in OXO_CENTRES and asked == ["O"])]
    if not anions or not centres:
        return []
    out = []
    for centre in centres[:1]:
        named = [e for e in req.include if e != centre and e not in anions]
        if len(named) > 2:
            continue
        hosts = [tuple(named)] if named else [
            (e,) for e in ORTHO_HOSTS if e not in req.exclude and (req.only is None or e in req.only)]
        state = ORTHO_CENTRES.get(centre) or OXO_CENTRES[centre]
        charge = 2 * 4 - state
        for anion in anions:
            if anion in req.exclude or (req.n_elements and req.n_elements != 2 + len(hosts[0] if hosts else ())):
                continue
            for host in hosts:
                states = [max(oxidation_states(el) or (0,), key=lambda o, el=el: state_prior(el, o)) for el in host]
                counts = _balancing_counts(states, charge)
                if counts is None:
                    continue
                parts = "".join(f"{el}{k if k > 1 else ''}" for el, k in zip(host, counts, strict=True))
                formula = f"{parts}{centre}{anion}4"
                prior = math.prod(state_prior(el, o) for el, o in zip(host, states, strict=True))
                score = 0.5 * prior ** (1 / len(host)) * (1.0 if named else 0.5)
                sites = {f"A{i + 1}" if len(host) > 1 else "A": f"{el}{o}+"
                         for i, (el, o) in enumerate(zip(host, states, strict=True))}
                out.append(FormulaProposal(
                    formula, "", {**sites, "T": f"{centre}{state}+", "X": f"{anion}2-"},
                    round(score, 6),
                    f"ortho-salt {formula}: isolated {centre}{anion}4 tetrahedra ({centre}{state}+) "
                    f"balanced by {', '.join(sites.values())}; charge balanced",
                ))
    return out


def _balancing_counts(states: list[int], charge: int) -> tuple[int, ...] | None:
    """The fewest cations (one of each at least) of these states whose charges sum to `charge`, or None."""
    if not states or min(states) <= 0:
        return None
    best = None
    for counts in itertools.product(range(1, charge + 1), repeat=len(states)):
        if sum(k * o for k, o in zip(counts, states, strict=True)) == charge and (
                best is None or sum(counts) < sum(best)):
            best = counts
    return best


def binary_proposals(req: MaterialsRequest) -> list[FormulaProposal]:
    """The simple binaries of one named element (Li3N for "a nitride of only lithium", XeF2, CeO2, WS2) and, for an
    intermetallic of two named metals, their AB, AB2, A2B, AB3 and A3B compounds (MnBi): proposed when no family is
    asked; the diffusion model samples their structures."""
    if req.family is not None or req.n_elements not in (None, 2):
        return []
    cations = [el for el in req.include if el not in (*ANION_CHARGE, "H", *req.asked_anions())]
    out: list[FormulaProposal] = []
    if req.compound_class == "intermetallic" and len(cations) == 2:
        a, b = cations
        ratios = [((1, 1), 0.3), ((1, 2), 0.2), ((2, 1), 0.2), ((1, 3), 0.15), ((3, 1), 0.15)]
        rare_earth = [el for el in (a, b) if Element(el).is_rare_earth or el in ("Y", "Sc", "Th")]
        late_3d = [el for el in (a, b) if el in ("Fe", "Co", "Ni", "Cu")]
        if len(rare_earth) == 1 and len(late_3d) == 1:  # RT5 (CaCu5: SmCo5) and R2T17 (Th2Zn17: Sm2Co17)
            weight = 0.4 if req.application == "magnet" else 0.12  # the permanent-magnet phases
            first = a == rare_earth[0]
            ratios = [((1, 5) if first else (5, 1), weight), ((2, 17) if first else (17, 2), 0.75 * weight), *ratios]
        for (m, k), weight in ratios:
            formula = f"{a}{m if m > 1 else ''}{b}{k if k > 1 else ''}"
            out.append(FormulaProposal(formula, "", {"A": a, "B": b}, weight,
                                       f"binary intermetallic {a}{m}{b}{k} of the two named metals"))
        return out
    anions = [a for a in (req.anions or ([req.anion] if req.anion else []))
              if a in ANION_CHARGE or req.compound_class in COVALENT_CLASSES]
    cls = COMPOUND_CLASSES.get(req.compound_class or "")
    if len(cations) != 1 or not anions or cls is None or cls.mixed or req.compound_class == "intermetallic":
        return []
    el = cations[0]
    count = re.search(rf"\b({PREFIX_PATTERN})-?(?:boride|carbide)", req.text.lower())
    if req.compound_class in COVALENT_CLASSES and count:  # 'a hexaboride of lanthanum': LaB6, whatever the charges
        k = PREFIX_COUNTS[count.group(1)]
        anion = anions[0]
        formula = f"{el}{anion}{k if k > 1 else ''}"
        return [FormulaProposal(formula, "", {"A": el, "X": anion}, 0.3, f"{formula}: the {count.group(0)} asked for "
                                f"(borides and carbides need not balance charge)", named=True)]
    states = sorted(oxidation_states(el), key=lambda o: -state_prior(el, o))[:2]
    if re.search(r"\bdi(?:chalcogenide|sulfide|selenide|telluride|oxide|fluoride|chloride|bromide|iodide|halide)",
                 req.text.lower()):  # "a dichalcogenide": AX2, whatever state that takes
        states = [-2 * ANION_CHARGE[a] for a in anions if -2 * ANION_CHARGE[a] in oxidation_states(el)][:1] or states
    for anion in anions:
        if anion in req.exclude or anion not in ANION_CHARGE:  # a boride without a count: its known compounds
            continue
        x = -ANION_CHARGE[anion]
        for ox in states:
            g = math.gcd(ox, x)
            m, k = x // g, ox // g
            formula = f"{el}{m if m > 1 else ''}{anion}{k if k > 1 else ''}"
            out.append(FormulaProposal(formula, "", {"A": f"{el}{ox}+", "X": f"{anion}{x}-"},
                                       round(0.3 * state_prior(el, ox), 6),
                                       f"binary {formula}: {el}{ox}+ with {anion}{x}-; charge balanced"))
    return out


KNOWN_MIN_SHARE = 0.25  # a known compound leads only with at least this share of its family's best score
MAX_KNOWN_ATOMS = 30  # atoms per formula unit: the set also holds alloy compositions such as Sm11Co89
MAX_KNOWN_CANDIDATES = 80  # known compounds checked against a family's sites per request (each check ~10 ms)


def known_proposals(req: MaterialsRequest, families: list[str]) -> list[FormulaProposal]:
    """Measured compounds (known_compounds) that honour the request: in each family asked or allowed, those whose
    elements the family's sites hold (checked by the family itself, with its charge and radius rules); with no family
    asked, those with at most one element the request did not name. None for an unconstrained request (nothing to
    pick by) or one that asks for novelty."""
    if req.goal != "stable" or req.molecular_anion:  # 'a borohydride': its salts, not the boranes
        return []
    if not (req.required() or req.include_any or req.anions or req.polyanion or req.family):
        if req.n_elements is None:
            return []
        # 'any stable ternary': the measured compounds of that many elements, most exothermic first
        enthalpy = formation_enthalpies()
        fitting = [f for f in enthalpy if len(Composition(f).elements) == req.n_elements and honours(req, f)
                   and Composition(f).num_atoms <= MAX_KNOWN_ATOMS]
        return [FormulaProposal(f, "", {}, round(-enthalpy[f] / 10, 6), f"a known compound with {req.n_elements} "
                                f"elements; measured formation enthalpy {enthalpy[f]:.2f} eV/atom")
                for f in sorted(fitting, key=lambda f: enthalpy[f])[:20]]
    candidates = [f for f in sorted(known_formulas()) if Composition(f).num_atoms <= MAX_KNOWN_ATOMS
                  and honours(req, f) and (req.n_elements is None or len(Composition(f).elements) == req.n_elements)]
    out: list[FormulaProposal] = []
    if req.family is None:
        for formula in candidates:
            if _unasked_elements(req, formula) <= 1 and _right_kind(req, formula):
                out.append(FormulaProposal(formula, "", {}, 0.01, f"a known compound ({formula}, its formation "
                                           "enthalpy is measured) with the elements asked for"))
    for name in families[:4]:
        fam = family_of(name)
        if fam is None:
            continue
        fitting = [f for f in candidates if _fits_ratio(Composition(f), fam)]
        for formula in fitting[:MAX_KNOWN_CANDIDATES]:
            fit = family_fit(formula, name, strict=True)
            if fit and _sensible_sites(fam, fit.sites, req.anions or [fam.default_anion]):
                why = f"a known compound ({formula}, its formation enthalpy is measured) that fits the {name} sites"
                out.append(FormulaProposal(formula, name, dict(fit.sites), fit.score, why, dict(fit.descriptors),
                                           rare_states=fit.rare_states))
    return out


SIMPLE_ANION_SET = frozenset(SIMPLE_ANIONS)
COVALENT_CLASSES = ("boride", "carbide")  # their compounds need not balance charge (LaB6, MgB2, Cr3C2)


def _right_kind(req: MaterialsRequest, formula: str) -> bool:
    """A known compound of the kind asked: charge balanced unless an intermetallic is asked (CaMg2 is no salt of Mg2+
    and Ca2+), and for a class of one anion no other simple anion (WOF4 is no oxide)."""
    comp = Composition(formula)
    symbols = {el.symbol for el in comp.elements}
    if req.compound_class == "intermetallic" or req.compound_class in COVALENT_CLASSES:  # LaB6, MgB2: not salts
        return not symbols & SIMPLE_ANION_SET
    cls = COMPOUND_CLASSES.get(req.compound_class or "")
    if cls is not None and not cls.mixed and not cls.polyanion and symbols & SIMPLE_ANION_SET - set(req.anions):
        return False
    return bool(symbols & set(ANION_CHARGE)) and charge_balanced(comp)  # no anion: no salt


MOLECULAR_CENTRES = ("H", "C", "N", "O", "F", "Cl", "Br", "I", "S", "Se")  # cations only inside molecular anions


def _fits_ratio(comp: Composition, fam: Family) -> bool:
    """A formula whose size and element count a family's formula unit can hold (a cheap test before its own)."""
    reduced = comp.reduced_composition
    atoms, unit = int(round(reduced.num_atoms)), sum(fam.ratio)
    return len(reduced.elements) <= len(fam.roles) and atoms % unit == 0  # no split sites: CaWO4 is no fluorite


def _sensible_sites(fam: Family, sites: dict[str, str], anions: list[str]) -> bool:
    """The anion on the family's anion site (B on AlB2's B site, not Pt) and no molecular-anion centre (Br5+, C4+)
    on a cation site: a known compound that fits the ratio only upside down is not a member."""
    symbol = {role: re.match(r"[A-Z][a-z]?", str(value)).group(0) for role, value in sites.items()}
    if "X" in symbol:
        anion_role = "X"
    elif fam.own:
        anion_role = max(fam.own, key=lambda r: Element(fam.own[r]).X)
    else:
        return True
    if anions and symbol.get(anion_role) not in anions:
        return False
    return not any(sym in MOLECULAR_CENTRES for role, sym in symbol.items() if role != anion_role)


def _unasked_elements(req: MaterialsRequest, formula: str) -> int:
    """How many elements of a formula the request did not name (neither required, nor an allowed anion, nor a
    member of an either-or group): the parsimony key when no family is asked."""
    named = {*req.include, *req.asked_anions()}
    elements = {el.symbol for el in Composition(formula).elements}
    extra = elements - named
    for group in req.include_any:  # "Sr or Ba", "a transition metal": one member is asked for, not several
        members = extra & set(group)
        if members and not (elements - extra) & set(group):
            extra -= {sorted(members)[0]}
    return len(extra)


def propose_formulas_offline(req: MaterialsRequest, n: int = 8) -> list[FormulaProposal]:
    """Top-n proposals: formulas named in the request first, then the families the request allows, ranked by
    substitution likelihood (an application's usual families count double). With no family asked, fewer unasked
    elements rank first (AgBr for "a bromide with silver", not Cs2AgBiBr6; an application's usual family may add
    one); formulas balanced only by rare oxidation states rank last. Proposals that break the request are dropped."""
    if req.n_elements == 1 and len(req.include) == 1 and req.family is None:
        # "an allotrope of carbon": the element itself; the diffusion model samples its structures.
        el = req.include[0]
        return [FormulaProposal(el, "", {}, 1.0, f"a crystal of the element {el} (one element asked for)", {})]
    salts = molecular_salt_proposals(req)  # 'a borohydride': its salts, not B and H spread over the families
    proposals: list[FormulaProposal] = [*salts, *orthosalt_proposals(req), *binary_proposals(req)]
    asked = named_formula_proposals(req)
    textbook = member_proposals(req) if req.goal != "novel" else []  # not the textbook members when asked for new
    members = [] if any(p.named for p in asked) else [*textbook, *halometallate_proposals(req)]
    families = [] if salts else families_for(req)
    for name in families:
        weight = 2.0 if name in req.preferred_families and not req.family else 1.0
        for p in propose_for_family(req, name, max(n, 12)):  # the final ranking may reorder them
            p.score = round(p.score * weight, 6)
            proposals.append(p)
    if not any(p.named for p in asked):
        proposals.extend(known_proposals(req, families))
    best: dict[str, FormulaProposal] = {}
    for p in [*asked, *members, *sorted(proposals, key=lambda p: -p.score)]:
        key_ = Composition(p.formula).reduced_formula
        kept = best.setdefault(key_, p)
        if kept is not p and not kept.named and not kept.family and p.family in FAMILIES:
            p.score = max(p.score, kept.score)  # a family's prototype builds it better than sampling: keep that
            best[key_] = p
    prefer_known = req.goal == "stable"  # a novel or metastable find is not asked to have been made before
    named = [p for p in best.values() if p.named]

    # 'a lead-free ferroelectric': no element asked, so fewer elements mean nothing; the use's families lead
    # ('an alkali iodide scintillator' names its chemistry: the alkali iodides, not iodide garnets, lead)
    use_first = bool(req.preferred_families) and not (req.include or req.family or req.include_any and req.anions)

    usual_anions = _application_anions(req)

    candidates = [p for p in best.values() if p not in named and honours(req, p.formula)]
    # with a family and elements asked, those adding the fewest unasked elements lead, and a known compound only
    # among them ('an Fe-Co B2 alloy': FeCo before the known Heusler AlFe2Co)
    fewest = min((_unasked_elements(req, p.formula) for p in candidates), default=0)
    best_in_family: dict[str, float] = {}
    for p in candidates:
        best_in_family[p.family] = max(best_in_family.get(p.family, 0.0), p.score)

    def promoted(p: FormulaProposal) -> bool:
        """Known, and (in a family) not far below the family's best fit: the measured set is incomplete (no
        ZnAl2O4), so it breaks near-ties but does not overrule the site model (Co2MnGa before the known Mn2CoGa)."""
        return is_known(p.formula) and (not p.family or p.score >= KNOWN_MIN_SHARE * best_in_family[p.family])

    def key(p: FormulaProposal) -> tuple:
        preferred = p.family in req.preferred_families
        unasked = _unasked_elements(req, p.formula) if req.family is None and req.n_elements is None else 0
        extra = req.family is not None and bool(req.include) and _unasked_elements(req, p.formula) > fewest
        off_class = bool(usual_anions) and not usual_anions & {el.symbol for el in Composition(p.formula).elements}
        use_rank = req.preferred_families.index(p.family) if preferred else len(req.preferred_families)
        unknown = prefer_known and not promoted(p)
        return (p.rare_states, use_rank if use_first else 0, off_class, max(unasked - preferred, 0), extra, unknown,
                unasked, _uncommon_states(p), -p.score, p.formula)

    rest = sorted(candidates, key=key)
    return (named + rest)[:n]


def _application_anions(req: MaterialsRequest) -> set[str]:
    """The anions of the classes a use usually calls for (a thermoelectric: Te, Se, Sb), when the request names no
    class, anion or formula of its own; empty otherwise."""
    if not req.application or req.compound_class or req.asked_anions() or req.formulas or req.named_compounds:
        return set()
    if set(req.include) & set(ANION_CHARGE):
        return set()
    app = next((a for a in APPLICATIONS if a.name == req.application), None)
    classes = [COMPOUND_CLASSES[c] for c in (app.classes if app else ()) if c in COMPOUND_CLASSES]
    return {a for cls in classes for a in cls.anions}


def member_proposals(req: MaterialsRequest) -> list[FormulaProposal]:
    """Textbook members of the family asked for (FAMILY_MEMBERS) that honour the request. They lead the proposals
    (named=True): a known compound of the asked kind is the likeliest answer. (Without a family they are not
    offered: 'lanthanum copper oxide' means La2CuO4 more often than the delafossite LaCuO2.)"""
    if set(req.formulas) - set(req.reference_formulas) or not req.family:  # 'AlB2-type' is no formula asked
        return []
    family = req.family
    has_roles = family_of(family) is not None
    out = []
    for formula in known_members(family):
        if not honours(req, formula):
            continue
        if req.n_elements is not None and len(Composition(formula).elements) != req.n_elements:
            continue
        out.append(FormulaProposal(
            Composition(formula).reduced_formula, family, sites_for(formula, family) if has_roles else {}, 1.0,
            f"a known {family} ({formula}) with the elements asked for", {}, named=True))
    return out


LARGE_FLUORIDE_RADIUS = 0.85  # Å (VI): Y3+ (0.90) and the late rare earths form AMF4 fluorides, not A3MF6
OCTAHEDRAL_MIN_RADIUS = 0.65  # Å (Shannon, VI): smaller M3+ (Al, Ga, Fe) make tetrahedral MCl4- with heavy halides


def halometallate_proposals(req: MaterialsRequest) -> list[FormulaProposal]:
    """A ternary halide of one alkali metal and one metal M with no family named: the isolated MX6 octahedra of the
    hexahalometallates first (Li3InCl6, Li2ZrCl6, Na3AlF6, Cs2SnI6), or MX4 tetrahedra for a small M with a heavy
    halide (NaAlCl4); one formula per state of M in the commonest-first order."""
    halogen = req.anion if req.anion in ("F", "Cl", "Br", "I") else None
    if req.family or req.formulas or halogen is None or req.n_elements not in (None, 3):
        return []
    alkali = [el for el in req.include if el in ELEMENT_GROUPS["alkali"]]
    others = [el for el in req.include if el not in ELEMENT_GROUPS["alkali"] and el != halogen]
    if len(alkali) != 1 or len(others) != 1:
        return []
    a, m = alkali[0], others[0]
    out = []
    for state in sorted(oxidation_states(m), key=lambda st: -state_prior(m, st)):
        if state not in (2, 3, 4) or state_prior(m, state) < COMMON_STATE_SHARE:
            continue
        radius = _radius(m, state, "VI")
        if halogen == "F":  # AlF6 3- and ZrF6 2- octahedra; large Y3+ and rare earths make LiYF4 / NaYF4
            n_x = 4 if (radius or 1.0) >= LARGE_FLUORIDE_RADIUS and state == 3 else 6
        else:
            n_x = 6 if (radius or 1.0) >= OCTAHEDRAL_MIN_RADIUS else 4
        n_a = n_x - state
        if n_a < 1:
            continue
        formula = Composition({a: n_a, m: 1, halogen: n_x}).reduced_formula
        if honours(req, formula):
            shape = "octahedra" if n_x == 6 else "tetrahedra"
            out.append(FormulaProposal(formula, "", {}, 1.0, f"a halometallate: isolated {m}{halogen}{n_x} {shape} "
                                       f"({m}{state}+) balanced by {a}+", {}, named=True))
    return out


def _uncommon_states(p: FormulaProposal) -> int:
    """How many of a proposal's cations sit in a state seen less than a quarter as often as the element's commonest
    one (Ti3+ in ZnTi2O4 where TiZn2O4 has Ti4+); a tie-break among equally parsimonious proposals."""
    return _uncommon_count(p.sites)


def _uncommon_count(sites: dict[str, str]) -> int:
    """The count behind _uncommon_states, on a role -> 'Fe3+' label map."""
    count = 0
    for label in sites.values():
        m = re.fullmatch(r"([A-Z][a-z]?)(\d+(?:\.\d+)?)\+", label)
        if not m:
            continue
        el, ox = m.group(1), float(m.group(2))
        best = max((state_prior(el, o) for o in oxidation_states(el)), default=0.0)
        prior = min(state_prior(el, math.floor(ox)), state_prior(el, math.ceil(ox)))
        count += best > 0 and prior < 0.25 * best
    return count


def unmet_constraint(req: MaterialsRequest, formula: str) -> str | None:
    """The first of the request's element constraints a formula breaks, in words, or None when it honours them all:
    the elements required (its class's anions among them), the excluded ones, one of the class's anions ('a
    halide'), one of each either-or group, and the closed set of elements allowed."""
    symbols = {el.symbol for el in Composition(formula).elements}
    missing = [el for el in req.required() if el not in symbols]
    if missing:
        return "lacks " + ", ".join(missing) + ", which the request requires"
    refused = sorted(symbols & set(req.exclude))
    if refused:
        return "holds " + ", ".join(refused) + ", which the request excludes"
    if req.anions and req.compound_class != "intermetallic" and not symbols & set(req.anions):
        return f"holds none of the {req.compound_class or 'asked'} anions ({', '.join(req.anions)})"
    for group in req.include_any:
        if not symbols & set(group):
            return "holds none of " + ", ".join(group) + " (one of them is required)"
    beyond = sorted(symbols - set(req.only) - set(req.anions)) if req.only is not None else []
    if beyond:
        return "holds " + ", ".join(beyond) + ", beyond the elements the request allows"
    return None


def honours(req: MaterialsRequest, formula: str) -> bool:
    """The request's element constraints on a proposed formula: required, excluded, either-or and allowed (the test
    the offline proposals and an LLM's alike must pass; see unmet_constraint)."""
    return unmet_constraint(req, formula) is None


def sites_for(formula: str, family: str) -> dict[str, str]:
    """The role assignment of a given formula in a family (for a formula typed by the user or proposed by an LLM),
    found by asking the family for formulas of exactly these elements; {} when the family cannot hold it."""
    fit = family_fit(formula, family)
    return dict(fit.sites) if fit else {}


@lru_cache(maxsize=4096)
def family_fit(formula: str, family: str, strict: bool = False) -> FormulaProposal | None:
    """The family's own proposal of exactly this formula (its sites and substitution score), or None when the family
    cannot hold it. A formula the user typed is held even where the family's radius rules object; with strict=True
    (a candidate nobody asked for) those rules hold. Cached: callers copy what they change."""
    fam = family_of(family)
    if fam is None:
        return None
    try:
        comp = Composition(formula)
    except Exception:  # noqa: BLE001 - not a formula: no sites
        return None
    elements = [el.symbol for el in comp.elements]
    req = MaterialsRequest(text=formula, include=[] if strict else elements, only=elements,
                           n_elements=len(elements) if strict else None)
    if not fam.ionic or (fam.metallic_archetypes and not set(elements) & set(ANION_CHARGE)):
        req.compound_class = "intermetallic"
    for p in propose_for_family(req, family, 200):
        if Composition(p.formula).reduced_formula == comp.reduced_formula:
            return p
    return None
