"""Single-model uncertainty for matsearch potentials: a Gaussian mixture on per-atom invariant latent features.

The potential already computes an invariant latent vector per atom on every force call. A Gaussian mixture fitted
to those vectors over the training set tells how familiar a new atomic environment is: its negative log-likelihood
(NLL) is the raw uncertainty, and a monotone (isotonic) map fitted on a validation set turns it into an expected
per-atom force error in eV/A. Evaluating it costs one small matrix product per atom, a tiny fraction of the force
call. A deep ensemble (N members trained from different seeds, force standard deviation) is the comparison
baseline, at N times the cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms

from models.plain_data import plain_data
from models.potentials.calculator import PotentialCalculator
from models.potentials.equivariant import EquivariantPotential, PotentialConfig, predict
from models.potentials.labels import ENERGY, FEATURES, FORCES, forces_label
from models.progress import ProgressFn

UNCERTAINTY_FORMAT = "matsearch-gmm-uncertainty"
UNCERTAINTY_VERSION = 1
CHECKPOINT_KEY = "uncertainty"


def latent_features(model: EquivariantPotential, atoms_list: Sequence[Atoms], batch_size: int = 16) -> list[np.ndarray]:
    """Per-atom invariant latent features (N_i, D) of each structure, from one batched model pass."""
    return [np.asarray(r[FEATURES]) for r in predict(model, atoms_list, batch_size=batch_size, compute_stress=False)]


def reference_forces(atoms: Atoms) -> np.ndarray:
    """Reference force labels of a structure (models.potentials.labels); ValueError when it has none."""
    forces = forces_label(atoms)
    if forces is None:
        raise ValueError("structure has no reference forces to compare against")
    return forces


def per_atom_force_errors(
    model: EquivariantPotential, atoms_list: Sequence[Atoms], batch_size: int = 16
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each labelled structure: per-atom |F_model - F_ref| (eV/A) and the per-atom latent features."""
    out = predict(model, atoms_list, batch_size=batch_size, compute_stress=False)
    errors = [
        np.linalg.norm(np.asarray(r[FORCES]) - reference_forces(a), axis=1)
        for r, a in zip(out, atoms_list, strict=True)
    ]
    return errors, [np.asarray(r[FEATURES]) for r in out]


@dataclass
class GMMUncertainty:
    """Gaussian mixture over standardised latent features + isotonic calibration of NLL to force error (eV/A)."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D) in standardised feature space
    precisions_cholesky: np.ndarray  # (K, D, D) as in sklearn (full covariance)
    feature_mean: np.ndarray  # (D,)
    feature_scale: np.ndarray  # (D,)
    calib_x: np.ndarray = field(default_factory=lambda: np.zeros(0))  # isotonic thresholds (NLL)
    calib_y: np.ndarray = field(default_factory=lambda: np.zeros(0))  # matching force errors (eV/A)
    tail_exponent: float = 0.5  # growth beyond the calibrated range: y_max * ((1 + x - x0) / (1 + x_max - x0))^p
    train_nll_quantiles: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        """Number of mixture components."""
        return int(self.weights.shape[0])

    @property
    def calibrated(self) -> bool:
        """True once a validation set mapped NLL to force error."""
        return self.calib_x.size > 0

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        n_components: int | Sequence[int] = (1, 2, 4, 8),
        seed: int = 0,
        reg_covar: float = 1e-3,
        max_samples: int = 20_000,
    ) -> GMMUncertainty:
        """Fit on training-set features (M, D); a list of component counts is searched by BIC."""
        from sklearn.mixture import GaussianMixture

        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError("need a (M >= 2, D) array of training features")
        rng = np.random.default_rng(seed)
        if len(x) > max_samples:
            x = x[rng.choice(len(x), max_samples, replace=False)]
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale = np.where(scale > 1e-8 * max(float(scale.max()), 1e-12), scale, 1.0)
        z = (x - mean) / scale
        choices = [n_components] if isinstance(n_components, int) else list(n_components)
        choices = sorted({max(1, min(k, len(z) // 4 or 1)) for k in choices})
        best, best_bic = None, math.inf
        for k in choices:
            gmm = GaussianMixture(
                k, covariance_type="full", reg_covar=reg_covar, random_state=seed, n_init=1, max_iter=200
            ).fit(z)
            bic = gmm.bic(z)
            if bic < best_bic:
                best, best_bic = gmm, bic
        assert best is not None
        out = cls(
            weights=best.weights_.copy(),
            means=best.means_.copy(),
            precisions_cholesky=best.precisions_cholesky_.copy(),
            feature_mean=mean,
            feature_scale=scale,
            metadata={"n_train_atoms": int(len(x)), "bic": float(best_bic), "reg_covar": reg_covar},
        )
        nll = out.nll(x)
        out.train_nll_quantiles = {f"q{q}": float(np.quantile(nll, q / 100)) for q in (50, 90, 99)}
        return out

    def nll(self, features: np.ndarray) -> np.ndarray:
        """Negative log-likelihood of each row of `features` (N, D) under the mixture (higher = less familiar)."""
        z = (np.asarray(features, dtype=np.float64) - self.feature_mean) / self.feature_scale
        d = z.shape[1]
        # y_k = (z - mu_k) @ L_k with L_k the Cholesky factor of the precision: log N = -0.5|y|^2 + log det L - ...
        y = (
            np.einsum("nd,kde->nke", z, self.precisions_cholesky)
            - np.einsum("kd,kde->ke", self.means, self.precisions_cholesky)[None]
        )
        log_det = np.log(np.diagonal(self.precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)
        log_prob = -0.5 * (y**2).sum(axis=2) + log_det[None] - 0.5 * d * math.log(2 * math.pi)
        log_prob += np.log(self.weights)[None]
        top = log_prob.max(axis=1, keepdims=True)
        return -(top[:, 0] + np.log(np.exp(log_prob - top).sum(axis=1)))

    def calibrate(self, nll: np.ndarray, errors: np.ndarray) -> dict[str, float]:
        """Fit the increasing isotonic map NLL -> per-atom force error (eV/A) on validation atoms; returns its fit."""
        from scipy.stats import spearmanr
        from sklearn.isotonic import IsotonicRegression

        nll, errors = np.asarray(nll, dtype=np.float64), np.asarray(errors, dtype=np.float64)
        iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(nll, errors)
        self.calib_x = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.calib_y = np.asarray(iso.y_thresholds_, dtype=np.float64)
        self.tail_exponent = _tail_exponent(nll, errors)
        pred = self.to_force_error(nll)
        rho = float(spearmanr(nll, errors).statistic) if len(nll) > 2 else float("nan")
        stats = {
            "n_val_atoms": int(len(nll)),
            "spearman": rho,
            "mae_eV_A": float(np.mean(np.abs(pred - errors))),
            "mean_error_eV_A": float(errors.mean()),
        }
        self.metadata["calibration"] = stats
        return stats

    def to_force_error(self, nll: np.ndarray) -> np.ndarray:
        """Calibrated expected per-atom force error (eV/A); the raw NLL when not calibrated."""
        nll = np.asarray(nll, dtype=np.float64)
        if not self.calibrated:
            return nll
        inside = np.interp(nll, self.calib_x, self.calib_y)
        x0, x1, y1 = self.calib_x[0], self.calib_x[-1], self.calib_y[-1]
        tail = y1 * ((1.0 + np.maximum(nll, x1) - x0) / (1.0 + x1 - x0)) ** self.tail_exponent
        return np.where(nll > x1, tail, inside)

    def extrapolating(self, nll: np.ndarray) -> np.ndarray:
        """True where an NLL lies beyond the calibrated range (the force-error estimate is then a power-law tail)."""
        return np.asarray(nll) > (self.calib_x[-1] if self.calibrated else np.inf)

    def per_atom(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated force-error estimate in eV/A, raw NLL) per atom."""
        nll = self.nll(features)
        return self.to_force_error(nll), nll

    # ---------------------------------------------------------------------------------------------------------
    # persistence: a plain dict of tensors/lists, inside the potential checkpoint or in its own file
    # ---------------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Serialisable payload (torch.load(weights_only=True) safe)."""
        return {
            "format": UNCERTAINTY_FORMAT,
            "format_version": UNCERTAINTY_VERSION,
            "weights": torch.as_tensor(self.weights),
            "means": torch.as_tensor(self.means),
            "precisions_cholesky": torch.as_tensor(self.precisions_cholesky),
            "feature_mean": torch.as_tensor(self.feature_mean),
            "feature_scale": torch.as_tensor(self.feature_scale),
            "calib_x": torch.as_tensor(self.calib_x),
            "calib_y": torch.as_tensor(self.calib_y),
            "tail_exponent": float(self.tail_exponent),
            "train_nll_quantiles": dict(self.train_nll_quantiles),
            "metadata": plain_data(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GMMUncertainty:
        """Inverse of to_dict."""
        if data.get("format") != UNCERTAINTY_FORMAT:
            raise ValueError(f"not a {UNCERTAINTY_FORMAT} payload")

        def arr(key: str) -> np.ndarray:
            return np.asarray(torch.as_tensor(data[key]).numpy(), dtype=np.float64)

        return cls(
            weights=arr("weights"),
            means=arr("means"),
            precisions_cholesky=arr("precisions_cholesky"),
            feature_mean=arr("feature_mean"),
            feature_scale=arr("feature_scale"),
            calib_x=arr("calib_x"),
            calib_y=arr("calib_y"),
            tail_exponent=float(data.get("tail_exponent", 0.5)),
            train_nll_quantiles=dict(data.get("train_nll_quantiles", {})),
            metadata=dict(data.get("metadata", {})),
        )

    def save(self, path: str | Path) -> Path:
        """Write a stand-alone uncertainty file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.to_dict(), path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> GMMUncertainty:
        """Read a stand-alone file or the uncertainty stored inside a potential checkpoint."""
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        if payload.get("format") == UNCERTAINTY_FORMAT:
            return cls.from_dict(payload)
        if CHECKPOINT_KEY not in payload:
            raise ValueError(f"{path} holds no GMM uncertainty (fit one with fit_gmm_uncertainty)")
        return cls.from_dict(payload[CHECKPOINT_KEY])

    def attach_to_checkpoint(self, checkpoint: str | Path) -> Path:
        """Store this uncertainty inside a potential checkpoint (atomic rewrite), so it travels with the model."""
        checkpoint = Path(checkpoint)
        payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
        payload[CHECKPOINT_KEY] = self.to_dict()
        tmp = checkpoint.with_name(checkpoint.name + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(checkpoint)
        return checkpoint


def _tail_exponent(nll: np.ndarray, errors: np.ndarray) -> float:
    """Power of the error growth with NLL, from a log-log fit on validation atoms (clipped to [0.25, 1])."""
    shifted = np.log1p(nll - nll.min())
    good = errors > 0
    if good.sum() < 3 or np.ptp(shifted[good]) < 1e-9:
        return 0.5
    slope = np.polyfit(shifted[good], np.log(errors[good]), 1)[0]
    return float(np.clip(slope, 0.25, 1.0))


def has_uncertainty(checkpoint: str | Path) -> bool:
    """True when a potential checkpoint carries a fitted GMM uncertainty."""
    try:
        payload = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
    except Exception:  # unreadable files simply have none
        return False
    return isinstance(payload, dict) and CHECKPOINT_KEY in payload


def fit_gmm_uncertainty(
    model: EquivariantPotential,
    train: Sequence[Atoms],
    val: Sequence[Atoms] | None = None,
    n_components: int | Sequence[int] = (1, 2, 4, 8),
    seed: int = 0,
) -> GMMUncertainty:
    """Fit the mixture on the training set's latent features and (when `val` has force labels) calibrate it."""
    feats = latent_features(model, train)
    unc = GMMUncertainty.fit(np.concatenate(feats), n_components=n_components, seed=seed)
    unc.metadata.update({"model": model.name, "species": list(model.species), "n_train_structures": len(train)})
    if val:
        errors, vfeats = per_atom_force_errors(model, val)
        unc.calibrate(unc.nll(np.concatenate(vfeats)), np.concatenate(errors))
    return unc


@dataclass
class StructureUncertainty:
    """Uncertainty of one structure: per-atom values and their max / mean (eV/A when calibrated)."""

    per_atom: np.ndarray
    nll: np.ndarray
    max: float
    mean: float
    energy: float | None = None
    forces: np.ndarray | None = None


def _summarise(
    values: np.ndarray, nll: np.ndarray, energy: float | None = None, forces: np.ndarray | None = None
) -> StructureUncertainty:
    """Per-structure summary from per-atom values."""
    return StructureUncertainty(
        per_atom=values, nll=nll, max=float(values.max()), mean=float(values.mean()), energy=energy, forces=forces
    )


def estimate_gmm(
    model: EquivariantPotential, unc: GMMUncertainty, atoms_list: Sequence[Atoms], batch_size: int = 16
) -> list[StructureUncertainty]:
    """Energy, forces and GMM uncertainty of many structures from one batched force pass."""
    out = []
    for r in predict(model, atoms_list, batch_size=batch_size, compute_stress=False):
        values, nll = unc.per_atom(np.asarray(r[FEATURES]))
        out.append(_summarise(values, nll, float(r[ENERGY]), np.asarray(r[FORCES])))
    return out


class UncertainPotentialCalculator(PotentialCalculator):
    """PotentialCalculator that also returns per-atom GMM uncertainty ('uncertainty', eV/A) and 'uncertainty_nll'
    from the latent features its force call already computed."""

    implemented_properties = [*PotentialCalculator.implemented_properties, "uncertainty", "uncertainty_nll"]

    def __init__(
        self, model: EquivariantPotential | str | Path, uncertainty: GMMUncertainty | None = None, **kwargs: Any
    ) -> None:
        """Wrap a model (or checkpoint path); the uncertainty defaults to the one stored in the checkpoint."""
        if uncertainty is None:
            if isinstance(model, EquivariantPotential):
                raise ValueError("give the GMMUncertainty of an in-memory model explicitly")
            uncertainty = GMMUncertainty.load(model)
        super().__init__(model, **kwargs)
        self.uncertainty = uncertainty

    def calculate(
        self, atoms: Atoms | None = None, properties: list[str] | None = None, system_changes: list[str] | None = None
    ) -> None:
        """Forces etc. from the model, then per-atom uncertainty from its features."""
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, system_changes if system_changes is not None else all_changes)
        values, nll = self.uncertainty.per_atom(self.results[FEATURES])
        self.results["uncertainty"] = values
        self.results["uncertainty_nll"] = nll


# ------------------------------------------------------------------------------------------------------------------
# Deep-ensemble baseline
# ------------------------------------------------------------------------------------------------------------------
class EnsembleUncertainty:
    """N independently trained members; uncertainty = per-atom norm of the force standard deviation (eV/A)."""

    def __init__(self, members: Sequence[EquivariantPotential]) -> None:
        """Members must share species (they are evaluated on the same structures)."""
        if len(members) < 2:
            raise ValueError("an ensemble needs at least 2 members")
        self.members = list(members)

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> EnsembleUncertainty:
        """Load member checkpoints."""
        return cls([EquivariantPotential.load(p) for p in paths])

    def estimate(self, atoms_list: Sequence[Atoms], batch_size: int = 16) -> list[StructureUncertainty]:
        """Mean energy/forces over members and the per-atom force spread."""
        runs = [predict(m, atoms_list, batch_size=batch_size, compute_stress=False) for m in self.members]
        out = []
        for k in range(len(atoms_list)):
            forces = np.stack([np.asarray(run[k][FORCES]) for run in runs])  # (M, N, 3)
            spread = np.sqrt(forces.var(axis=0).sum(axis=1))
            energy = float(np.mean([run[k][ENERGY] for run in runs]))
            out.append(_summarise(spread, spread, energy, forces.mean(axis=0)))
        return out


def train_ensemble(
    train: Sequence[Atoms],
    val: Sequence[Atoms],
    config: PotentialConfig,
    train_cfg: Any,
    out_dir: str | Path,
    n_members: int = 4,
    progress: ProgressFn | None = None,
) -> list[Path]:
    """Train `n_members` copies of one architecture from different seeds (the deep-ensemble baseline)."""
    from dataclasses import replace

    from models.potentials.training import train_potential

    out_dir = Path(out_dir)
    paths = []
    for k in range(n_members):
        path = out_dir / f"member{k}.pt"
        torch.manual_seed(1000 + k)
        train_potential(train, val, config, replace(train_cfg, seed=train_cfg.seed + 17 * (k + 1)), path)
        paths.append(path)
        if progress is not None:
            progress(k + 1, n_members, f"ensemble member {k + 1}/{n_members} trained")
    return paths
