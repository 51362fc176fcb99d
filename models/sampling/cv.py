"""Multitask collective-variable network (after Sun et al., JCTC 2022): a shared MLP encoder maps input features to a
d-dimensional latent CV; a classification head (basin labels), an energy head (potential energy) and an
optional decoder (reconstruction, the autoencoder baseline) are trained together with configurable loss weights, so
"multitask", "classifier" and "autoencoder" are configurations of one model. The CV s(x) and ds/dx (autograd) drive
biased sampling."""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.plain_data import plain_data
from models.progress import ProgressFn

FEATURE_KINDS = ("identity", "distances", "torsions")
# Multitask energy weight 0.3, chosen with benchmarks/free_energy_toy.py on seeds 0-1 and checked on fresh seeds 2-3
# (full sizes, both 5D toys): mean max|dF error| 0.14 kT (worst 0.35) vs 0.41 kT (worst 1.57) at weight 1.0, where the
# energy task folds the three-well CV (two basins with equal energy land on one CV value).
PRESETS: dict[str, dict[str, float]] = {
    "multitask": {"w_class": 1.0, "w_energy": 0.3, "w_recon": 0.0},
    "classifier": {"w_class": 1.0, "w_energy": 0.0, "w_recon": 0.0},
    "autoencoder": {"w_class": 0.0, "w_energy": 0.0, "w_recon": 1.0},
}
SEPARATION_MIN_ACCURACY = 0.9
SEPARATION_MAX_OVERLAP = 0.1
# Alanine dipeptide (benchmarks/RESULTS.md, 2026-12-03): 2D CVs folding 0.21-0.34 % of close training pairs
# (poor C7ax data) sampled the basins wrong by region; those folding 0.01-0.11 % did not
TORSION_FOLD_LIMIT = 0.0015
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "silu": nn.SiLU, "softplus": nn.Softplus}


@dataclass
class CVConfig:
    """Architecture, features and loss weights of a CV network (everything needed to rebuild it)."""

    n_inputs: int
    n_classes: int
    latent_dim: int = 1
    hidden: list[int] = field(default_factory=lambda: [32, 32])
    energy_hidden: int = 32
    activation: str = "tanh"
    w_class: float = 1.0
    w_energy: float = 1.0
    w_recon: float = 0.0
    w_smooth: float = 0.0
    features: str = "identity"
    feature_atoms: list[list[int]] = field(default_factory=list)
    class_balance: bool = True
    energy_histogram_weights: bool = True
    energy_bins: int = 20

    def __post_init__(self) -> None:
        if self.features not in FEATURE_KINDS:
            raise ValueError(f"features must be one of {FEATURE_KINDS}, got {self.features!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if self.latent_dim not in (1, 2):
            raise ValueError(f"latent_dim must be 1 or 2, got {self.latent_dim}")
        if min(self.w_class, self.w_energy, self.w_recon) < 0 or self.w_class + self.w_energy + self.w_recon <= 0:
            raise ValueError("loss weights must be non-negative and not all zero")
        if self.w_smooth < 0:
            raise ValueError(f"w_smooth must be non-negative, got {self.w_smooth}")
        if self.features != "identity" and not self.feature_atoms:
            raise ValueError(f"features={self.features!r} needs feature_atoms (pairs or quadruples of atom indices)")
        width = {"distances": 2, "torsions": 4}.get(self.features)
        if width and any(len(a) != width for a in self.feature_atoms):
            raise ValueError(f"features={self.features!r} needs atom index groups of length {width}")

    @classmethod
    def preset(cls, name: str, **kwargs: Any) -> CVConfig:
        """A config with the loss weights of a named preset (multitask, classifier, autoencoder)."""
        if name not in PRESETS:
            raise ValueError(f"unknown CV preset {name!r}; available: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **kwargs})

    @property
    def n_features(self) -> int:
        """Width of the feature vector the encoder sees."""
        if self.features == "identity":
            return self.n_inputs
        per = 1 if self.features == "distances" else 2
        return per * len(self.feature_atoms)


def dihedral(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor) -> torch.Tensor:
    """IUPAC dihedral angle (radians, in (-pi, pi]) of four points (..., 3), differentiable."""
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    n1, n2 = torch.cross(b1, b2, dim=-1), torch.cross(b2, b3, dim=-1)
    y = torch.linalg.norm(b2, dim=-1) * (b1 * n2).sum(-1)
    return torch.atan2(y, (n1 * n2).sum(-1))


def _mlp(dims: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers of the given widths with the activation between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class MultitaskCV(nn.Module):
    """Encoder -> latent CV, with classification, energy and reconstruction heads; inputs and energies normalised."""

    def __init__(self, config: CVConfig) -> None:
        super().__init__()
        self.config = config
        nf, d = config.n_features, config.latent_dim
        self.register_buffer("in_mean", torch.zeros(nf))
        self.register_buffer("in_std", torch.ones(nf))
        self.register_buffer("e_mean", torch.zeros(()))
        self.register_buffer("e_std", torch.ones(()))
        self.register_buffer("s_shift", torch.zeros(d))
        self.register_buffer("s_scale", torch.ones(d))
        self.encoder = _mlp([nf, *config.hidden, d], config.activation)
        self.classifier = _mlp([d, config.energy_hidden, config.n_classes], config.activation)
        self.energy_head = _mlp([d, config.energy_hidden, config.energy_hidden, 1], config.activation)
        self.decoder = _mlp([d, *reversed(config.hidden), nf], config.activation)
        self.metadata: dict[str, Any] = {}
        self.double()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Input features of flattened inputs x (B, n_inputs): raw, pair distances, or sin/cos of torsions."""
        cfg = self.config
        if cfg.features == "identity":
            return x
        pos = x.reshape(x.shape[0], -1, 3)
        idx = torch.as_tensor(cfg.feature_atoms, dtype=torch.long, device=x.device)
        if cfg.features == "distances":
            return torch.linalg.norm(pos[:, idx[:, 1]] - pos[:, idx[:, 0]], dim=-1)
        phi = dihedral(pos[:, idx[:, 0]], pos[:, idx[:, 1]], pos[:, idx[:, 2]], pos[:, idx[:, 3]])
        return torch.cat([torch.sin(phi), torch.cos(phi)], dim=-1)

    def normalized_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features standardised with the training-set mean and standard deviation."""
        return (self.features(x) - self.in_mean) / self.in_std

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The raw (unscaled) latent of inputs x (B, n_inputs)."""
        return self.encoder(self.normalized_features(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Latent, class logits, normalised energy prediction and reconstruction of normalised features."""
        z = self.latent(x)
        return {
            "latent": z,
            "logits": self.classifier(z),
            "energy": self.energy_head(z).squeeze(-1),
            "recon": self.decoder(z),
        }

    def cv(self, x: torch.Tensor) -> torch.Tensor:
        """The collective variable s(x) (B, d): the latent shifted and scaled (basin 0 at 0, the farthest basin at 1
        for d = 1)."""
        return (self.latent(x) - self.s_shift) / self.s_scale

    def cv_numpy(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        """s(x) for a numpy array of inputs (n, n_inputs) -> (n, d)."""
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                out.append(self.cv(torch.as_tensor(np.asarray(x[i : i + batch]), dtype=torch.float64)).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.config.latent_dim))

    def cv_and_grad(self, x: np.ndarray | torch.Tensor, component: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """One CV component s_c(x) (n,) and its gradient ds_c/dx (n, n_inputs) by autograd, for biasing."""
        with torch.enable_grad():
            xt = torch.as_tensor(np.asarray(x), dtype=torch.float64).detach().requires_grad_(True)
            s = self.cv(xt)[:, component]
            (grad,) = torch.autograd.grad(s.sum(), xt)
        return s.detach().numpy(), grad.numpy()

    def predict_class(self, x: np.ndarray) -> np.ndarray:
        """Basin predicted by the classification head."""
        with torch.no_grad():
            return self(torch.as_tensor(np.asarray(x), dtype=torch.float64))["logits"].argmax(-1).numpy()

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write one checkpoint file: config and metadata as plain JSON-able data, weights (with normalisation
        buffers) as tensors, so load() reads it with torch.load(weights_only=True). TypeError when the metadata holds
        something JSON cannot (it would not load back safely)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config, meta = plain_data(asdict(self.config)), plain_data({**self.metadata, **(metadata or {})})
        json.dumps([config, meta])  # TypeError now rather than an unloadable checkpoint later
        torch.save({"kind": "matsearch-cv", "config": config, "state_dict": self.state_dict(), "metadata": meta}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> MultitaskCV:
        """Rebuild a CV network from a checkpoint written by save(), without unpickling anything but tensors and
        plain data (torch.load(weights_only=True)); ValueError for other files."""
        try:
            blob = torch.load(Path(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ValueError(f"{path} holds objects other than tensors and plain data, so it is not loaded: "
                             f"{str(exc).splitlines()[0]}") from None
        if not isinstance(blob, dict) or blob.get("kind") != "matsearch-cv":
            raise ValueError(f"{path} is not a matsearch CV checkpoint")
        model = cls(CVConfig(**blob["config"]))
        model.load_state_dict(blob["state_dict"])
        model.metadata = dict(blob.get("metadata", {}))
        return model.eval()


def sample_weights(
    labels: np.ndarray,
    energies: np.ndarray | None,
    n_classes: int,
    class_balance: bool = True,
    energy_histogram: bool = True,
    n_bins: int = 20,
) -> np.ndarray:
    """Per-sample training weights (mean 1): inverse class frequency (each labelled basin counts equally) times
    inverse energy-histogram frequency (rare, high-energy transition configurations count as much as basin ones)."""
    w = np.ones(len(labels))
    if class_balance:
        counts = np.bincount(labels[labels >= 0], minlength=n_classes).astype(float)
        present = counts > 0
        per_class = np.where(present, counts.sum() / np.maximum(counts, 1) / max(present.sum(), 1), 0.0)
        w = np.where(labels >= 0, per_class[np.clip(labels, 0, None)], 1.0)
    if energy_histogram and energies is not None and len(energies) > 1 and np.ptp(energies) > 0:
        edges = np.quantile(energies, [0.0, 0.99])
        edges = np.linspace(edges[0], edges[1] + 1e-12, n_bins + 1)
        idx = np.clip(np.digitize(energies, edges) - 1, 0, n_bins - 1)
        counts = np.bincount(idx, minlength=n_bins).astype(float)
        inv = 1.0 / np.maximum(counts[idx], 1.0)
        inv = np.minimum(inv, 20.0 * np.median(inv))  # a few outliers must not dominate
        w = w * inv
    return w / w.mean()


def assess_separation(s: np.ndarray, labels: np.ndarray, n_classes: int, n_bins: int = 40) -> dict[str, Any]:
    """How well CV values s (n, d) separate labelled basins: nearest-centroid accuracy (standardised), the largest
    overlap coefficient between two basins' CV distributions (projected on the line joining their centroids), the
    basin centroids, and `separates` (accuracy >= 0.9 and overlap <= 0.1)."""
    s = np.asarray(s, dtype=float).reshape(len(s), -1)
    mask = labels >= 0
    s, labels = s[mask], labels[mask]
    present = [c for c in range(n_classes) if np.any(labels == c)]
    centroids = {c: s[labels == c].mean(0) for c in present}
    pooled = np.sqrt(np.mean([s[labels == c].var(0) for c in present], axis=0)) + 1e-12
    cents = np.array([centroids[c] for c in present])
    dist = (((s[:, None, :] - cents[None]) / pooled) ** 2).sum(-1)
    accuracy = float(np.mean(np.array(present)[dist.argmin(1)] == labels)) if len(s) else 0.0
    overlaps: dict[str, float] = {}
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            direction = centroids[b] - centroids[a]
            norm = float(np.linalg.norm(direction))
            pa = s[labels == a] @ direction / max(norm, 1e-12)
            pb = s[labels == b] @ direction / max(norm, 1e-12)
            lo, hi = min(pa.min(), pb.min()), max(pa.max(), pb.max())
            edges = np.linspace(lo, hi + 1e-12, n_bins + 1)
            ha = np.histogram(pa, edges)[0] / len(pa)
            hb = np.histogram(pb, edges)[0] / len(pb)
            overlaps[f"{a}-{b}"] = round(float(np.minimum(ha, hb).sum()), 4)
    max_overlap = max(overlaps.values()) if overlaps else 0.0
    return {
        "accuracy": round(accuracy, 4),
        "max_overlap": round(max_overlap, 4),
        "pair_overlaps": overlaps,
        "centroids": {int(c): [round(float(v), 4) for v in centroids[c]] for c in present},
        "separates": bool(
            len(present) >= 2 and accuracy >= SEPARATION_MIN_ACCURACY and max_overlap <= SEPARATION_MAX_OVERLAP
        ),
    }


def fold_fraction(
    s: np.ndarray,
    reference: np.ndarray,
    radius: float = 0.1,
    far: float = math.pi / 2,
    period: float | None = None,
    max_points: int = 20000,
    seed: int = 0,
) -> tuple[float, int]:
    """How much a CV folds distinct states onto one value: of the frame pairs within `radius` of each other in the CV
    s (n, d), the fraction more than `far` apart in known slow coordinates `reference` (n, m), by the largest
    component difference (wrapped with `period`, e.g. 2 pi for torsions). Umbrella windows cannot tell folded states
    apart, so their barrier goes unbiased. Returns the fraction and the number of close pairs (on up to `max_points`
    random frames)."""
    from scipy.spatial import cKDTree

    s = np.asarray(s, dtype=float).reshape(len(s), -1)
    reference = np.asarray(reference, dtype=float).reshape(len(reference), -1)
    if len(s) != len(reference):
        raise ValueError(f"s has {len(s)} frames but reference has {len(reference)}")
    if len(s) > max_points:
        pick = np.random.default_rng(seed).choice(len(s), max_points, replace=False)
        s, reference = s[pick], reference[pick]
    pairs = cKDTree(s).query_pairs(radius, output_type="ndarray")
    if not len(pairs):
        return 0.0, 0
    diff = reference[pairs[:, 0]] - reference[pairs[:, 1]]
    if period is not None:
        diff = (diff + period / 2) % period - period / 2
    return float(np.mean(np.abs(diff).max(1) > far)), len(pairs)


def torsion_fold_fraction(model: MultitaskCV, x: np.ndarray, radius: float = 0.1) -> tuple[float, int] | None:
    """fold_fraction of a CV on torsion features against those torsions (more than 90 deg apart in any of them) for
    frames x, or None for other features (their slow coordinates are not known here)."""
    if model.config.features != "torsions":
        return None
    with torch.no_grad():
        feats = model.features(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()
    n = feats.shape[1] // 2
    angles = np.arctan2(feats[:, :n], feats[:, n:])
    return fold_fraction(model.cv_numpy(x), angles, radius=radius, far=math.pi / 2, period=2 * math.pi)


def _set_cv_scale(model: MultitaskCV, x: torch.Tensor, labels: np.ndarray) -> None:
    """Fix s = (latent - shift)/scale: for d = 1 basin 0 (or the lowest label present) at 0 and the farthest basin
    centroid at 1; otherwise (or with no labels) each component standardised."""
    with torch.no_grad():
        z = model.latent(x).numpy()
    present = [c for c in np.unique(labels) if c >= 0]
    if model.config.latent_dim == 1 and len(present) >= 2:
        means = np.array([z[labels == c, 0].mean() for c in present])
        ref = means[0]
        far = means[np.argmax(np.abs(means - ref))]
        shift, scale = np.array([ref]), np.array([far - ref])
    else:
        shift, scale = z.mean(0), z.std(0) + 1e-12
    model.s_shift.copy_(torch.as_tensor(shift))
    model.s_scale.copy_(torch.as_tensor(scale))


def train_cv(
    config: CVConfig,
    x: np.ndarray,
    labels: np.ndarray,
    energies: np.ndarray | None = None,
    epochs: int = 200,
    lr: float = 3e-3,
    batch_size: int = 256,
    val_fraction: float = 0.2,
    weight_decay: float = 1e-5,
    seed: int = 0,
    callback: ProgressFn | None = None,
) -> tuple[MultitaskCV, dict[str, Any]]:
    """Train a CV network on inputs x (n, n_inputs), basin labels (n,; -1 = unlabelled) and energies (n,) with the
    config's loss weights and sample weights; returns the model and validation metrics (head accuracy, energy RMSE
    in input units, reconstruction RMSE, CV separation of the basins)."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if config.w_energy > 0 and energies is None:
        raise ValueError("the energy head needs energies (set w_energy = 0 to train without them)")
    energies = np.zeros(len(x)) if energies is None else np.asarray(energies, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != config.n_inputs or len(labels) != len(x) or len(energies) != len(x):
        raise ValueError(
            f"x must be (n, {config.n_inputs}) with n labels and n energies; got x {x.shape}, "
            f"labels {labels.shape}, energies {energies.shape}"
        )
    if labels.max(initial=-1) >= config.n_classes:
        raise ValueError(f"labels must be < n_classes = {config.n_classes}")
    if config.w_class > 0 and len(np.unique(labels[labels >= 0])) < 2:
        raise ValueError("the classification head needs samples from at least two labelled basins")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = int(round(val_fraction * len(x))) if len(x) >= 10 else 0
    val, tr = order[:n_val], order[n_val:]
    model = MultitaskCV(config)
    xt = torch.as_tensor(x)
    with torch.no_grad():
        feats = model.features(xt[tr])
        model.in_mean.copy_(feats.mean(0))
        model.in_std.copy_(feats.std(0).clamp_min(1e-8))
        model.e_mean.copy_(torch.as_tensor(energies[tr].mean()))
        model.e_std.copy_(torch.as_tensor(max(float(energies[tr].std()), 1e-8)))
    w_full = np.zeros(len(x))
    w_full[tr] = sample_weights(
        labels[tr],
        energies[tr],
        config.n_classes,
        config.class_balance,
        config.energy_histogram_weights,
        config.energy_bins,
    )
    weights = torch.as_tensor(w_full)
    lab_t = torch.as_tensor(labels)
    e_t = (torch.as_tensor(energies) - model.e_mean) / model.e_std
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1), eta_min=lr * 0.05)
    tr_t = torch.as_tensor(tr)
    history = []
    for epoch in range(epochs):
        perm = tr_t[torch.randperm(len(tr_t))]
        total, count = 0.0, 0
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            w = weights[idx]
            loss = _loss(model, xt[idx], lab_t[idx], e_t[idx], w)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        sched.step()
        history.append(total / max(count, 1))
        if callback is not None:
            callback(epoch + 1, epochs, f"loss {history[-1]:.4f}")
    model.eval()
    _set_cv_scale(model, xt[tr], labels[tr])
    eval_idx = val if n_val > 0 else tr
    metrics = evaluate_cv(model, x[eval_idx], labels[eval_idx], energies[eval_idx])
    metrics.update(
        {"final_loss": round(history[-1], 5) if history else None, "n_train": int(len(tr)), "n_val": int(n_val)}
    )
    model.metadata.update({"metrics": metrics})
    return model, metrics


def _loss(
    model: MultitaskCV, x: torch.Tensor, labels: torch.Tensor, e_norm: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """Weighted sum of cross-entropy (labelled samples), energy MSE and reconstruction MSE."""
    cfg = model.config
    out = model(x)
    loss = torch.zeros((), dtype=x.dtype)
    if cfg.w_class > 0:
        mask = labels >= 0
        if bool(mask.any()):
            ce = nn.functional.cross_entropy(out["logits"][mask], labels[mask], reduction="none")
            loss = loss + cfg.w_class * (w[mask] * ce).sum() / w[mask].sum()
    if cfg.w_energy > 0:
        loss = loss + cfg.w_energy * (w * (out["energy"] - e_norm) ** 2).sum() / w.sum()
    if cfg.w_recon > 0:
        target = model.normalized_features(x)
        loss = loss + cfg.w_recon * (w * ((out["recon"] - target) ** 2).mean(-1)).sum() / w.sum()
    if cfg.w_smooth > 0:
        loss = loss + cfg.w_smooth * chord_roughness(model, x, labels)
    return loss


def chord_roughness(model: MultitaskCV, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Dirichlet energy of the latent on straight chords between samples of different basins, relative to the
    latent's rise along them: mean |grad z(f_t)|^2 |f_b - f_a|^2 / mean |z(f_b) - z(f_a)|^2 at a random point f_t of
    each chord (normalised feature space). It is >= 1 and equals 1 when z rises linearly along every chord, so the
    penalty keeps the CV from becoming a step where no data constrain it (between basins), the shape harmonic
    umbrella windows cannot hold. Scale-free: shrinking z cannot lower it. Zero when the batch has no such pair."""
    mask = labels >= 0
    f = model.normalized_features(x[mask])
    lab = labels[mask]
    partner = torch.randperm(len(lab))
    pair = lab != lab[partner]
    if not bool(pair.any()):
        return torch.zeros((), dtype=x.dtype)
    fa, fb = f[pair], f[partner][pair]
    t = torch.rand(len(fa), 1, dtype=f.dtype)
    ft = (fa + t * (fb - fa)).detach().requires_grad_(True)
    zt = model.encoder(ft)
    grad_sq = torch.zeros(len(fa), dtype=f.dtype)
    for k in range(zt.shape[1]):
        (g,) = torch.autograd.grad(zt[:, k].sum(), ft, create_graph=True)
        grad_sq = grad_sq + (g**2).sum(-1)
    rise_sq = ((model.encoder(fb) - model.encoder(fa)) ** 2).sum(-1)
    chord_sq = ((fb - fa) ** 2).sum(-1)
    return (grad_sq * chord_sq).mean() / rise_sq.mean().clamp_min(1e-12)


def evaluate_cv(model: MultitaskCV, x: np.ndarray, labels: np.ndarray, energies: np.ndarray | None) -> dict[str, Any]:
    """Held-out metrics: classification-head accuracy (if trained), energy RMSE, reconstruction RMSE (normalised
    units, if trained), and the separation of the labelled basins along the CV."""
    cfg = model.config
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
    with torch.no_grad():
        out = model(xt)
        s = model.cv(xt).numpy()
        recon_err = float(((out["recon"] - model.normalized_features(xt)) ** 2).mean().sqrt())
    mask = labels >= 0
    metrics: dict[str, Any] = {
        "classifier_accuracy": (
            round(float((out["logits"].argmax(-1).numpy()[mask] == labels[mask]).mean()), 4)
            if cfg.w_class > 0 and mask.any()
            else None
        ),
        "energy_rmse": None,
        "reconstruction_rmse": round(recon_err, 4) if cfg.w_recon > 0 else None,
        "separation": assess_separation(s, labels, cfg.n_classes),
    }
    if cfg.w_energy > 0 and energies is not None:
        pred = out["energy"].numpy() * float(model.e_std) + float(model.e_mean)
        metrics["energy_rmse"] = round(float(np.sqrt(np.mean((pred - energies) ** 2))), 5)
    if not math.isfinite(metrics["separation"]["accuracy"]):
        metrics["separation"]["separates"] = False
    return metrics
