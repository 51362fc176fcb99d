"""E(3)-equivariant interatomic potentials (NequIP- and Allegro-style members of one design space) built on e3nn."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate
from torch import nn

from models.potentials.labels import ATOMIC_ENERGIES, ENERGY, FEATURES, FORCES, STRESS
from models.potentials.neighbors import AtomsBatch, collate, edge_vectors

FORMAT_NAME = "matsearch-equivariant-potential"
FORMAT_VERSION = 1
KINDS = ("nequip", "allegro")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class PotentialConfig:
    """Hyper-parameters of an equivariant potential; stored verbatim in the checkpoint."""

    kind: str = "allegro"  # "nequip" (message passing) or "allegro" (strictly local, edge-based)
    species: list[str] = field(default_factory=lambda: ["Cu"])  # chemical symbols the model supports
    cutoff: float = 5.0  # radial cutoff in Angstrom
    l_max: int = 1  # highest rotation order of spherical harmonics and hidden features
    num_layers: int = 2  # interaction layers (nequip) / tensor-product layers (allegro)
    num_features: int = 16  # channels per irrep (nequip node features / allegro tensor channels)
    num_basis: int = 8  # Bessel radial basis functions
    parity: bool = False  # True: hidden features carry both parities (O(3) full); False: only (-1)^l irreps
    radial_mlp_width: int = 32  # hidden width of radial / latent MLPs
    latent_dim: int = 32  # allegro: width of the per-edge scalar latent
    avg_num_neighbors: float = 20.0  # normalisation of neighbour sums (set from data by training)
    cutoff_p: int = 6  # exponent of the polynomial smooth cutoff envelope
    dtype: str = "float32"  # "float32" or "float64"
    name: str = ""  # display name (used in error messages); defaults to "<kind>-potential"

    def __post_init__(self) -> None:
        """Validate the knobs early so a bad config fails before a model is built."""
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not self.species:
            raise ValueError("species must list at least one chemical symbol")
        from ase.data import atomic_numbers

        bad = [s for s in self.species if s not in atomic_numbers]
        if bad:
            raise ValueError(f"unknown chemical symbol(s): {bad}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {list(_DTYPES)}")
        if self.cutoff <= 0 or self.l_max < 0 or self.num_layers < 1 or self.num_features < 1:
            raise ValueError("cutoff > 0, l_max >= 0, num_layers >= 1 and num_features >= 1 are required")
        self.species = list(self.species)
        if not self.name:
            self.name = f"{self.kind}-potential"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/torch.save friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PotentialConfig:
        """Build from a dict, ignoring unknown keys (forward compatible checkpoints)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ----------------------------------------------------------------------------------------------------------------
# Radial embedding
# ----------------------------------------------------------------------------------------------------------------
class BesselBasis(nn.Module):
    """sqrt(2/rc) sin(n pi r / rc) / r with trainable frequencies (NequIP radial basis)."""

    def __init__(self, cutoff: float, num_basis: int) -> None:
        """Frequencies start at n pi / rc, n = 1..num_basis."""
        super().__init__()
        self.cutoff = float(cutoff)
        self.prefactor = math.sqrt(2.0 / self.cutoff)
        self.freqs = nn.Parameter(torch.arange(1, num_basis + 1, dtype=torch.get_default_dtype()) * math.pi / cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """(E,) distances -> (E, num_basis) basis values."""
        return self.prefactor * torch.sin(self.freqs * r[:, None]) / r[:, None]


class PolynomialCutoff(nn.Module):
    """Smooth envelope 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2), zero beyond the cutoff."""

    def __init__(self, cutoff: float, p: int = 6) -> None:
        """Store cutoff radius and polynomial order p (p-1 continuous derivatives at rc)."""
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = float(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """(E,) distances -> (E,) envelope in [0, 1]."""
        p, x = self.p, r / self.cutoff
        out = (
            1.0
            - (p + 1.0) * (p + 2.0) / 2.0 * x**p
            + p * (p + 2.0) * x ** (p + 1.0)
            - p * (p + 1.0) / 2.0 * x ** (p + 2.0)
        )
        return out * (x < 1.0)


def _mlp(dims: Sequence[int]) -> nn.Sequential:
    """Plain SiLU MLP (no activation after the last layer)."""
    layers: list[nn.Module] = []
    for k in range(len(dims) - 1):
        layers.append(nn.Linear(dims[k], dims[k + 1]))
        if k < len(dims) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def _hidden_irreps(l_max: int, parity: bool) -> list[o3.Irrep]:
    """Irreps carried by hidden features: (-1)^l parities, or both parities when `parity`."""
    out = []
    for ell in range(l_max + 1):
        natural = (-1) ** ell
        out.append(o3.Irrep(ell, natural))
        if parity:
            out.append(o3.Irrep(ell, -natural))
    return out


def _scalar_slice(irreps: o3.Irreps) -> slice:
    """Slice of the (first) 0e block of an irreps layout: the rotation- and reflection-invariant channels."""
    for (_, ir), sl in zip(irreps, irreps.slices(), strict=True):
        if ir == o3.Irrep("0e"):
            return sl
    raise ValueError(f"no 0e channels in {irreps}")


def _scatter_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Sum rows of `src` into `size` bins given by `index` (differentiable)."""
    out = torch.zeros((size,) + src.shape[1:], dtype=src.dtype, device=src.device)
    return out.index_add_(0, index, src)


def _tp_instructions(
    irreps_in1: o3.Irreps, irreps_in2: o3.Irreps, targets: Sequence[o3.Irrep], mode: str
) -> tuple[o3.Irreps, list[tuple]]:
    """Paths ir1 x ir2 -> ir3 for every allowed ir3 in `targets`; output irreps sorted (same layout as simplified)."""
    mid, instructions = [], []
    for i, (mul, ir1) in enumerate(irreps_in1):
        for j, (_, ir2) in enumerate(irreps_in2):
            for ir3 in ir1 * ir2:
                if ir3 in targets:
                    instructions.append((i, j, len(mid), mode, True))
                    mid.append((mul, ir3))
    irreps_mid = o3.Irreps(mid)
    irreps_sorted, perm, _ = irreps_mid.sort()
    instructions = [(i, j, perm[k], m, t) for i, j, k, m, t in instructions]
    return irreps_sorted, instructions


# ----------------------------------------------------------------------------------------------------------------
# NequIP member: message passing over atoms
# ----------------------------------------------------------------------------------------------------------------
class NequIPInteraction(nn.Module):
    """Convolution x_j (x) Y(r_ij) with radial-MLP weights, summed over neighbours; self-interaction, gate, residual."""

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_sh: o3.Irreps,
        hidden: Sequence[o3.Irrep],
        num_features: int,
        num_species: int,
        num_basis: int,
        radial_width: int,
        avg_num_neighbors: float,
    ) -> None:
        """Keep only hidden irreps reachable from irreps_in x irreps_sh (first layer starts from scalars)."""
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        irreps_mid, instructions = _tp_instructions(self.irreps_in, irreps_sh, hidden, "uvu")
        reachable = {ir for _, ir in irreps_mid}
        scalars = o3.Irreps([(num_features, ir) for ir in hidden if ir.l == 0 and ir in reachable])
        gated = o3.Irreps([(num_features, ir) for ir in hidden if ir.l > 0 and ir in reachable])
        gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
        acts = {1: torch.nn.functional.silu, -1: torch.tanh}
        self.gate = Gate(scalars, [acts[ir.p] for _, ir in scalars], gates, [torch.sigmoid] * len(gates), gated)
        self.linear_up = o3.Linear(self.irreps_in, self.irreps_in)
        self.tp = o3.TensorProduct(
            self.irreps_in, irreps_sh, irreps_mid, instructions, shared_weights=False, internal_weights=False
        )
        self.radial = FullyConnectedNet(
            [num_basis, radial_width, radial_width, self.tp.weight_numel], torch.nn.functional.silu
        )
        self.linear_down = o3.Linear(irreps_mid.simplify(), self.gate.irreps_in)
        self.self_connection = o3.FullyConnectedTensorProduct(
            self.irreps_in, o3.Irreps(f"{num_species}x0e"), self.gate.irreps_in
        )
        self.irreps_out = self.gate.irreps_out
        self.residual = self.irreps_out == self.irreps_in
        self.norm = 1.0 / math.sqrt(avg_num_neighbors)

    def forward(
        self,
        x: torch.Tensor,
        onehot: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_basis: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> torch.Tensor:
        """One interaction: messages from neighbours j are aggregated on centre i = edge_index[0]."""
        i, j = edge_index[0], edge_index[1]
        h = self.linear_up(x)
        msg = self.tp(h[j], edge_sh, self.radial(edge_basis))
        agg = _scatter_sum(msg, i, x.shape[0]) * self.norm
        out = self.gate(self.linear_down(agg) + self.self_connection(x, onehot))
        return x + out if self.residual else out


class NequIPNet(nn.Module):
    """Species embedding -> interaction layers -> invariant readout to atomic energies."""

    def __init__(self, cfg: PotentialConfig) -> None:
        """Build layers; hidden irreps num_features x (l = 0..l_max, parities per cfg.parity)."""
        super().__init__()
        num_species, feat = len(cfg.species), cfg.num_features
        self.num_species = num_species
        self.irreps_sh = o3.Irreps.spherical_harmonics(cfg.l_max)
        self.sh = o3.SphericalHarmonics(self.irreps_sh, normalize=True, normalization="component")
        self.basis = BesselBasis(cfg.cutoff, cfg.num_basis)
        self.envelope = PolynomialCutoff(cfg.cutoff, cfg.cutoff_p)
        self.embed = nn.Linear(num_species, feat, bias=False)
        hidden = _hidden_irreps(cfg.l_max, cfg.parity)
        irreps = o3.Irreps(f"{feat}x0e")
        layers = []
        for _ in range(cfg.num_layers):
            layer = NequIPInteraction(
                irreps,
                self.irreps_sh,
                hidden,
                feat,
                num_species,
                cfg.num_basis,
                cfg.radial_mlp_width,
                cfg.avg_num_neighbors,
            )
            layers.append(layer)
            irreps = layer.irreps_out
        self.layers = nn.ModuleList(layers)
        # Invariant latent = the 0e block of the last layer.
        self.latent_slice = _scalar_slice(irreps)
        self.latent_dim = self.latent_slice.stop - self.latent_slice.start
        self.readout = _mlp([self.latent_dim, max(self.latent_dim // 2, 1), 1])

    def forward(
        self, species: torch.Tensor, vec: torch.Tensor, edge_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return raw atomic energies (N,) and invariant per-atom latents (N, latent_dim)."""
        r = vec.norm(dim=-1)
        edge_sh = self.sh(vec)
        edge_basis = self.basis(r) * self.envelope(r)[:, None]
        onehot = torch.nn.functional.one_hot(species, self.num_species).to(vec.dtype)
        x = self.embed(onehot)
        for layer in self.layers:
            x = layer(x, onehot, edge_sh, edge_basis, edge_index)
        latent = x[:, self.latent_slice]
        return self.readout(latent).squeeze(-1), latent


# ----------------------------------------------------------------------------------------------------------------
# Allegro member: strictly local edge model
# ----------------------------------------------------------------------------------------------------------------
class AllegroNet(nn.Module):
    """Per-edge scalar latents and equivariant features refined with the centre atom's environment; no messages."""

    def __init__(self, cfg: PotentialConfig) -> None:
        """Build two-body embedding, per-layer env embeddings, channel-wise tensor products and latent MLPs."""
        super().__init__()
        num_species, chan, lat, width = len(cfg.species), cfg.num_features, cfg.latent_dim, cfg.radial_mlp_width
        self.num_species, self.channels, self.latent_dim = num_species, chan, lat
        self.l_max = cfg.l_max
        self.irreps_sh = o3.Irreps.spherical_harmonics(cfg.l_max)
        self.sh = o3.SphericalHarmonics(self.irreps_sh, normalize=True, normalization="component")
        self.basis = BesselBasis(cfg.cutoff, cfg.num_basis)
        self.envelope = PolynomialCutoff(cfg.cutoff, cfg.cutoff_p)
        self.norm = 1.0 / math.sqrt(cfg.avg_num_neighbors)
        self.two_body = _mlp([2 * num_species + cfg.num_basis, width, lat])
        nl = cfg.l_max + 1
        # no bias: x vanishes smoothly at the cutoff, so must the env weights (else energy jumps when edges appear)
        self.env_embed = nn.ModuleList([nn.Linear(lat, chan * nl, bias=False) for _ in range(cfg.num_layers + 1)])
        irreps_env = o3.Irreps([(chan, (ell, (-1) ** ell)) for ell in range(nl)])
        hidden = _hidden_irreps(cfg.l_max, cfg.parity)
        irreps_t = irreps_env
        tps, linears, latent_mlps = [], [], []
        self.scalar_slices: list[tuple[int, int]] = []
        for k in range(cfg.num_layers):
            last = k == cfg.num_layers - 1
            targets = [o3.Irrep("0e")] if last else hidden
            irreps_out, instructions = _tp_instructions(irreps_t, irreps_env, targets, "uuu")
            tp = o3.TensorProduct(
                irreps_t, irreps_env, irreps_out, instructions, shared_weights=True, internal_weights=True
            )
            simple = irreps_out.simplify()
            sl = _scalar_slice(simple)
            self.scalar_slices.append((sl.start, sl.stop))
            tps.append(tp)
            latent_mlps.append(_mlp([lat + sl.stop - sl.start, width, lat]))
            if last:
                linears.append(nn.Identity())
            else:
                nxt = o3.Irreps([(chan, ir) for mul, ir in simple])
                linears.append(o3.Linear(simple, nxt))
                irreps_t = nxt
        self.tps, self.linears = nn.ModuleList(tps), nn.ModuleList(linears)
        self.latent_mlps = nn.ModuleList(latent_mlps)
        self.edge_energy = _mlp([lat, width, 1])

    def _embed(self, weights: torch.Tensor, edge_sh: torch.Tensor) -> torch.Tensor:
        """Channel-weighted spherical harmonics: (E, C*(l_max+1)) weights x Y -> irreps C x (0e + 1o + ...)."""
        w = weights.view(-1, self.channels, self.l_max + 1)
        parts = []
        for ell in range(self.l_max + 1):
            y = edge_sh[:, ell * ell : (ell + 1) * (ell + 1)]
            parts.append((w[:, :, ell, None] * y[:, None, :]).reshape(y.shape[0], self.channels * (2 * ell + 1)))
        return torch.cat(parts, dim=-1)

    def forward(
        self, species: torch.Tensor, vec: torch.Tensor, edge_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return raw atomic energies (N,) as sums of edge energies and per-atom latents (N, latent_dim)."""
        i, j = edge_index[0], edge_index[1]
        n = species.shape[0]
        r = vec.norm(dim=-1)
        u = self.envelope(r)[:, None]
        edge_sh = self.sh(vec)
        onehot = torch.nn.functional.one_hot(species, self.num_species).to(vec.dtype)
        x = self.two_body(torch.cat([onehot[i], onehot[j], self.basis(r)], dim=-1)) * u
        t = self._embed(self.env_embed[0](x), edge_sh)
        for k, (tp, lin, mlp) in enumerate(zip(self.tps, self.linears, self.latent_mlps, strict=True)):
            env_edge = self._embed(self.env_embed[k + 1](x), edge_sh)
            env = _scatter_sum(env_edge, i, n) * self.norm  # environment of centre i only
            out = tp(t, env[i])
            a, b = self.scalar_slices[k]
            x = (x + u * mlp(torch.cat([x, out[:, a:b]], dim=-1))) * (1.0 / math.sqrt(2.0))
            if not isinstance(lin, nn.Identity):
                t = lin(out)
        e_edge = self.edge_energy(x).squeeze(-1) * u.squeeze(-1)
        atomic = _scatter_sum(e_edge, i, n) * self.norm
        latent = _scatter_sum(x, i, n) * (self.norm * self.norm)
        return atomic, latent


# ----------------------------------------------------------------------------------------------------------------
# Public model
# ----------------------------------------------------------------------------------------------------------------
class EquivariantPotential(nn.Module):
    """Total energy = sum of per-species scaled and shifted atomic energies of a NequIP or Allegro network."""

    def __init__(self, config: PotentialConfig) -> None:
        """Build the member named by config.kind in config.dtype."""
        super().__init__()
        self.config = config
        self.net = NequIPNet(config) if config.kind == "nequip" else AllegroNet(config)
        num_species = len(config.species)
        self.scale = nn.Parameter(torch.ones(num_species))
        self.shift = nn.Parameter(torch.zeros(num_species))
        self.metrics: dict[str, Any] = {}
        self.to(_DTYPES[config.dtype])

    @property
    def species(self) -> list[str]:
        """Chemical symbols in species-index order."""
        return list(self.config.species)

    @property
    def cutoff(self) -> float:
        """Radial cutoff in Angstrom."""
        return float(self.config.cutoff)

    @property
    def name(self) -> str:
        """Display name used in messages."""
        return self.config.name

    @property
    def dtype(self) -> torch.dtype:
        """Float dtype of the parameters."""
        return self.shift.dtype

    @property
    def latent_dim(self) -> int:
        """Width of the per-atom invariant features returned as 'features'."""
        return int(self.net.latent_dim)

    def forward(self, batch: AtomsBatch) -> dict[str, torch.Tensor]:
        """Energies of a batch: {'energy' (B,), 'atomic_energies' (N,), 'features' (N, latent_dim)}."""
        vec = edge_vectors(batch.positions, batch.cell, batch.batch, batch.edge_index, batch.shifts)
        raw, latent = self.net(batch.species, vec, batch.edge_index)
        atomic = raw * self.scale[batch.species] + self.shift[batch.species]
        energy = _scatter_sum(atomic, batch.batch, batch.num_graphs)
        return {ENERGY: energy, ATOMIC_ENERGIES: atomic, FEATURES: latent}

    def collate(self, atoms_list: Sequence[Atoms], labels: bool = False) -> AtomsBatch:
        """Batch ase.Atoms for this model (its species, cutoff and dtype)."""
        return collate(atoms_list, self.species, self.cutoff, self.dtype, self.name, labels=labels)

    def save(
        self, path: str | Path, metrics: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
    ) -> Path:
        """Write one checkpoint file: config, weights, species, cutoff, metrics, format version."""
        return save_checkpoint(path, self.config, self.state_dict(), metrics, extra)

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], map_location: str | torch.device = "cpu") -> EquivariantPotential:
        """Rebuild a model from a loaded checkpoint dict."""
        if payload.get("format") != FORMAT_NAME:
            raise ValueError(f"not a {FORMAT_NAME} checkpoint")
        if int(payload.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"checkpoint format {payload['format_version']} is newer than supported {FORMAT_VERSION}")
        model = cls(PotentialConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
        model.metrics = dict(payload.get("metrics", {}))
        return model.to(map_location).eval()

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> EquivariantPotential:
        """Load a checkpoint written by save() (or by training, which adds resume state) onto a device (the weights
        are read on the host and the model moved once)."""
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        return cls.from_checkpoint(payload, map_location)


def save_checkpoint(
    path: str | Path,
    config: PotentialConfig,
    state_dict: dict[str, torch.Tensor],
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically write the single-file checkpoint format read by EquivariantPotential.load."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "species": list(config.species),
        "cutoff": float(config.cutoff),
        "metrics": dict(metrics or {}),
    }
    if extra:
        payload.update(extra)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def build_potential(config: PotentialConfig) -> EquivariantPotential:
    """Construct an untrained potential from a config."""
    return EquivariantPotential(config)


def compute_energy_forces_stress(
    model: Callable[[AtomsBatch], dict[str, torch.Tensor]],
    batch: AtomsBatch,
    compute_stress: bool = True,
    training: bool = False,
) -> dict[str, torch.Tensor]:
    """Energy, forces = -dE/dr and stress = (1/V) dE/d(strain) (ASE sign, eV/A^3) by autograd.

    A symmetric strain displacement is applied to positions and cells; `training=True` keeps the graph for
    force/stress losses. Structures with zero cell volume get zero stress.
    """
    with torch.enable_grad():
        positions = batch.positions.detach().requires_grad_(True)
        cell = batch.cell.detach()
        inputs = [positions]
        if compute_stress:
            strain = torch.zeros_like(cell, requires_grad=True)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            pos_in = positions + torch.einsum("ni,nij->nj", positions, sym[batch.batch])
            cell_in = cell + torch.bmm(cell, sym)
            inputs.append(strain)
        else:
            pos_in, cell_in = positions, cell
        out = model(replace(batch, positions=pos_in, cell=cell_in))
        grads = torch.autograd.grad(out[ENERGY].sum(), inputs, create_graph=training, allow_unused=True)
    result = dict(out)
    result[FORCES] = -grads[0] if grads[0] is not None else torch.zeros_like(positions)
    if compute_stress:
        dedstrain = grads[1] if grads[1] is not None else torch.zeros_like(cell)
        volume = torch.linalg.det(cell).abs()
        safe = torch.where(volume > 1e-8, volume, torch.ones_like(volume))
        result[STRESS] = dedstrain / safe[:, None, None] * (volume > 1e-8)[:, None, None]
    if not training:
        result = {k: v.detach() for k, v in result.items()}
    return result


def predict(
    model: EquivariantPotential, atoms_list: Sequence[Atoms], batch_size: int = 16, compute_stress: bool = True
) -> list[dict[str, np.ndarray | float]]:
    """Batched inference over many structures on the model's device; one dict per structure (energy, forces,
    stress, features...) as float64 numpy arrays on the host."""
    results: list[dict[str, np.ndarray | float]] = []
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(atoms_list), batch_size):
        chunk = list(atoms_list[start : start + batch_size])
        batch = model.collate(chunk)
        out = compute_energy_forces_stress(model, batch.to(device), compute_stress=compute_stress)
        host = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in out.items()}
        bounds = np.concatenate([[0], np.cumsum(batch.num_atoms.numpy())])
        for k in range(len(chunk)):
            a, b = int(bounds[k]), int(bounds[k + 1])
            item: dict[str, np.ndarray | float] = {
                ENERGY: float(host[ENERGY][k]),
                FORCES: host[FORCES][a:b],
                ATOMIC_ENERGIES: host[ATOMIC_ENERGIES][a:b],
                FEATURES: host[FEATURES][a:b],
            }
            if compute_stress:
                item[STRESS] = host[STRESS][k]
            results.append(item)
    return results
