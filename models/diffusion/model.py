"""CrystalDiffusion: a DiffCSP-style joint diffusion over the lattice (DDPM) and fractional coordinates (wrapped-normal
score matching on the torus), with atom types fixed by the formula and a CSPNet-style periodic denoiser."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from pymatgen.core import Element
from torch import Tensor, nn

N_IMAGES = 3  # periodic images summed in the wrapped normal (sigma <= 0.5 needs only a few)


@dataclass
class DiffusionConfig:
    """Architecture and noise-schedule settings; stored inside every checkpoint."""

    hidden: int = 128
    n_layers: int = 4
    n_freqs: int = 16
    time_dim: int = 64
    timesteps: int = 1000
    cosine_s: float = 0.008
    sigma_begin: float = 0.005
    sigma_end: float = 0.5
    max_z: int = 100
    elements: list[str] = field(default_factory=list)  # elements seen in training; others are rejected


def cosine_alpha_bars(timesteps: int, s: float) -> Tensor:
    """Cumulative alpha_bar[0..T] of the cosine schedule (alpha_bar[0] = 1), betas clipped to 0.999."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64)
    f = torch.cos((steps / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    ab = f / f[0]
    betas = (1 - ab[1:] / ab[:-1]).clamp(max=0.999)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


def wrapped_normal_score(x: Tensor, sigma: Tensor) -> Tensor:
    """d/dx log of the wrapped normal density on the unit torus at displacement x (periodic in x)."""
    x = torch.remainder(x + 0.5, 1.0) - 0.5
    k = torch.arange(-N_IMAGES, N_IMAGES + 1, dtype=x.dtype, device=x.device)
    shifted = x.unsqueeze(-1) + k  # (..., 2N+1)
    sig = sigma.unsqueeze(-1)
    weights = torch.softmax(-(shifted**2) / (2 * sig**2), dim=-1)
    return -(weights * shifted).sum(-1) / sigma**2


def wrapped_normal_score_norm(sigmas: Tensor, n_grid: int = 4001) -> Tensor:
    """E[score^2] under the wrapped normal for each sigma (quadrature), used to normalise the coordinate target."""
    out = torch.empty_like(sigmas)
    x = torch.linspace(-0.5, 0.5, n_grid, dtype=torch.float64)[:-1]
    k = torch.arange(-N_IMAGES, N_IMAGES + 1, dtype=torch.float64)
    for i, sigma in enumerate(sigmas.tolist()):
        if sigma < 0.05:  # images contribute < 1e-40: the plain Gaussian value
            out[i] = 1.0 / sigma**2
            continue
        shifted = x.unsqueeze(-1) + k
        p = torch.exp(-(shifted**2) / (2 * sigma**2)).sum(-1)
        score = wrapped_normal_score(x, torch.tensor(sigma, dtype=torch.float64))
        out[i] = (p * score**2).sum() / p.sum()
    return out


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of the integer diffusion step."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
        args = t.float().unsqueeze(-1) * freqs
        return torch.cat([args.sin(), args.cos()], dim=-1)


class CSPLayer(nn.Module):
    """One periodic message-passing layer over the fully connected graph of each cell (pre-norm residual).

    The first edge linear map acts on [h_i, h_j, edge_attr]; it is split into per-node maps applied before the
    gather (identical maths, far fewer FLOPs on the O(n^2) edge set)."""

    def __init__(self, hidden: int, edge_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.src_lin = nn.Linear(hidden, hidden)
        self.dst_lin = nn.Linear(hidden, hidden, bias=False)
        self.edge_lin = nn.Linear(edge_dim, hidden, bias=False)
        self.edge_mlp = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.node_mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, h: Tensor, edge_attr: Tensor, src: Tensor, dst: Tensor, inv_deg: Tensor) -> Tensor:
        hn = self.norm(h)
        msg = self.edge_mlp(self.src_lin(hn)[src] + self.dst_lin(hn)[dst] + self.edge_lin(edge_attr))
        agg = torch.zeros_like(h).index_add_(0, src, msg) * inv_deg.unsqueeze(-1)
        return h + self.node_mlp(torch.cat([hn, agg], dim=-1))


def full_graph(n_atoms: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Edges i->j (self loops included) between all atoms of the same cell, and each node's cell index."""
    counts = n_atoms.tolist()
    offsets = torch.cumsum(torch.tensor([0] + counts[:-1]), 0).tolist()
    src_list, dst_list = [], []
    for n, off in zip(counts, offsets, strict=True):
        idx = torch.arange(n) + off
        src_list.append(idx.repeat_interleave(n))
        dst_list.append(idx.repeat(n))
    batch = torch.repeat_interleave(torch.arange(len(counts)), n_atoms.cpu())
    return torch.cat(src_list), torch.cat(dst_list), batch


class CrystalDiffusion(nn.Module):
    """Denoiser + noise schedules: predicts the lattice noise (O(3)-equivariant) and the torus score of the fractional
    coordinates (permutation-equivariant, invariant to a common periodic translation and to rotations)."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.species_embedding = nn.Embedding(config.max_z + 1, h)
        self.time_embedding = SinusoidalEmbedding(config.time_dim)
        self.node_in = nn.Linear(h + config.time_dim, h)
        edge_dim = 9 + 6 * config.n_freqs
        self.layers = nn.ModuleList([CSPLayer(h, edge_dim) for _ in range(config.n_layers)])
        self.out_norm = nn.LayerNorm(h)
        self.coord_out = nn.Linear(h, 3, bias=False)
        self.lattice_out = nn.Sequential(nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 9, bias=False))
        self.register_buffer("freqs", 2 * math.pi * torch.arange(1, config.n_freqs + 1, dtype=torch.float32))
        ab = cosine_alpha_bars(config.timesteps, config.cosine_s)
        self.register_buffer("alpha_bars", ab.float())
        sig = torch.exp(torch.linspace(math.log(config.sigma_begin), math.log(config.sigma_end), config.timesteps))
        sig = torch.cat([torch.zeros(1), sig]).double()
        norm = torch.cat([torch.ones(1, dtype=torch.float64), wrapped_normal_score_norm(sig[1:])])
        self.register_buffer("sigmas", sig.float())
        self.register_buffer("sigma_norms", norm.float())
        self._z_of = {el: Element(el).Z for el in config.elements}
        self.metadata: dict[str, Any] = {}
        self.checkpoint_sha256: str | None = None

    # ---- species -------------------------------------------------------------------------------------------------
    def atomic_numbers(self, species: list[str]) -> Tensor:
        """Atomic numbers of element symbols; ValueError naming any element the model was not trained on."""
        out = []
        for sym in species:
            if sym not in self._z_of:
                raise ValueError(f"element {sym!r} is not supported by this diffusion model (not in its training set)")
            out.append(self._z_of[sym])
        return torch.tensor(out, dtype=torch.long)

    # ---- denoiser ------------------------------------------------------------------------------------------------
    def forward(
        self,
        z: Tensor,
        frac: Tensor,
        lattice: Tensor,
        t: Tensor,
        n_atoms: Tensor,
        graph: tuple[Tensor, Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(lattice noise (B,3,3), normalised coordinate score (N,3)) for normalised lattices (rows = vectors)."""
        src, dst, batch = graph if graph is not None else full_graph(n_atoms)
        gram = (lattice @ lattice.transpose(1, 2)).reshape(-1, 9)
        diff = (frac[dst] - frac[src]).unsqueeze(-1) * self.freqs  # (E, 3, F)
        fourier = torch.cat([diff.sin(), diff.cos()], dim=-1).reshape(diff.shape[0], -1)
        edge_attr = torch.cat([gram[batch[src]], fourier], dim=-1)
        inv_deg = 1.0 / n_atoms.to(frac.dtype)[batch]
        h = self.node_in(torch.cat([self.species_embedding(z), self.time_embedding(t)[batch]], dim=-1))
        for layer in self.layers:
            h = layer(h, edge_attr, src, dst, inv_deg)
        h = self.out_norm(h)
        coord = self.coord_out(h)
        pooled = torch.zeros(lattice.shape[0], h.shape[1], dtype=h.dtype).index_add_(0, batch, h)
        pooled = pooled / n_atoms.to(h.dtype).unsqueeze(-1)
        lattice_eps = self.lattice_out(pooled).reshape(-1, 3, 3) @ lattice
        return lattice_eps, coord

    # ---- training objective --------------------------------------------------------------------------------------
    @staticmethod
    def normalise_lattice(lattice: Tensor, n_atoms: Tensor) -> Tensor:
        """Lattice in units of (volume-per-atom)^(1/3)-like length: divide by n_atoms^(1/3)."""
        return lattice / n_atoms.to(lattice.dtype).pow(1.0 / 3.0).view(-1, 1, 1)

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Denoising loss on a collated batch: MSE of lattice noise + MSE of the normalised torus score."""
        n_atoms, node_batch = batch["n_atoms"], batch["batch"]
        n_graphs = n_atoms.shape[0]
        t = torch.randint(1, self.config.timesteps + 1, (n_graphs,), generator=generator)
        l0 = self.normalise_lattice(batch["lattice"], n_atoms)
        eps_l = torch.randn(l0.shape, generator=generator)
        ab = self.alpha_bars[t].view(-1, 1, 1)
        lt = ab.sqrt() * l0 + (1 - ab).sqrt() * eps_l
        sigma = self.sigmas[t][node_batch].unsqueeze(-1)
        disp = sigma * torch.randn(batch["frac"].shape, generator=generator)
        ft = torch.remainder(batch["frac"] + disp, 1.0)
        target = wrapped_normal_score(disp, sigma) / self.sigma_norms[t][node_batch].sqrt().unsqueeze(-1)
        pred_l, pred_f = self(batch["z"], ft, lt, t, n_atoms, (batch["src"], batch["dst"], node_batch))
        loss_l = ((pred_l - eps_l) ** 2).mean()
        loss_f = ((pred_f - target) ** 2).mean()
        return {"loss": loss_l + loss_f, "loss_lattice": loss_l, "loss_coord": loss_f}

    # ---- persistence ---------------------------------------------------------------------------------------------
    def save(
        self, path: str | Path, metrics: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        """One checkpoint file: config + weights + metadata (metrics, training info)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "kind": "matsearch.CrystalDiffusion",
            "config": asdict(self.config),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            "metadata": {**(metadata or {}), "metrics": metrics or {}},
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> CrystalDiffusion:
        """A model from a checkpoint written by `save` (eval mode; metadata on `.metadata`)."""
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        if payload.get("kind") != "matsearch.CrystalDiffusion":
            raise ValueError(f"{path} is not a CrystalDiffusion checkpoint")
        model = cls(DiffusionConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
        model.metadata = payload.get("metadata", {})
        model.checkpoint_sha256 = file_sha256(path)
        return model.eval()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (recorded in provenance of generated structures)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
