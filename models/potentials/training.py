"""Training loop for equivariant potentials: energy/force/stress loss, EMA, LR schedule, early stopping, resume."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms

from models.potentials.equivariant import (
    _DTYPES,
    EquivariantPotential,
    PotentialConfig,
    compute_energy_forces_stress,
    save_checkpoint,
)
from models.potentials.labels import ENERGY, FORCES, STRESS
from models.potentials.neighbors import Graph, atoms_to_graph, collate_graphs
from models.progress import ProgressFn

NO_VALIDATION = "none (training error shown)"  # the 'validation' label of a run without held-out structures


def validation_label(n_val: int) -> str:
    """What a run's val_* metrics measure: held-out structures, or (none held out) the training set."""
    return f"held-out ({n_val} structures)" if n_val else NO_VALIDATION


@dataclass
class TrainConfig:
    """Optimisation settings (loss weights, optimiser, schedule, EMA, early stopping)."""

    epochs: int = 100
    batch_size: int = 4
    lr: float = 5e-3
    weight_decay: float = 0.0
    w_energy: float = 1.0  # weight of MSE of energy per atom (eV/atom)^2
    w_forces: float = 1.0  # weight of MSE of force components (eV/A)^2
    w_stress: float = 10.0  # weight of MSE of stress components (eV/A^3)^2; 0 disables stress
    ema_decay: float = 0.99
    scheduler: str = "plateau"  # "plateau" (reduce on plateau of val loss) or "cosine"
    lr_factor: float = 0.5
    lr_patience: int = 5
    min_lr: float = 1e-5
    early_stopping_patience: int = 20
    grad_clip: float = 10.0
    seed: int = 0
    device: str = "cpu"
    fit_statistics: bool = True  # fit reference energies, force scale and avg_num_neighbors from the training set
    init_from: str | None = None  # fine-tune: start from this checkpoint's architecture and weights, fresh optimiser

    def __post_init__(self) -> None:
        """Reject settings that would silently do nothing useful."""
        if self.scheduler not in ("plateau", "cosine"):
            raise ValueError("scheduler must be 'plateau' or 'cosine'")
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("epochs >= 0 and batch_size >= 1 are required")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested, but torch sees no CUDA device here")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def read_dataset(path: str | Path, index: str = ":") -> list[Atoms]:
    """Read labelled structures (extxyz or any ase format); labels are taken from atoms.calc or info/arrays."""
    from ase.io import read

    data = read(str(path), index=index)
    return list(data) if isinstance(data, list) else [data]


def split_dataset(atoms: Sequence[Atoms], val_fraction: float = 0.1, seed: int = 0) -> tuple[list[Atoms], list[Atoms]]:
    """Random train/validation split (at least one validation structure when possible)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(atoms))
    n_val = max(1, int(round(val_fraction * len(atoms)))) if len(atoms) > 1 else 0
    return [atoms[k] for k in order[n_val:]], [atoms[k] for k in order[:n_val]]


def fit_reference_energies(graphs: Sequence[Graph], num_species: int) -> np.ndarray:
    """Per-species reference energies by least squares of total energy on composition counts."""
    counts = np.stack([np.bincount(g.species, minlength=num_species) for g in graphs]).astype(np.float64)
    energies = np.array([g.energy for g in graphs], dtype=np.float64)
    ref, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return ref


def _dataset_statistics(graphs: Sequence[Graph], num_species: int) -> dict[str, Any]:
    """Reference energies, per-atom energy scale (force RMS, else residual std) and mean neighbour count."""
    ref = fit_reference_energies(graphs, num_species)
    forces = [g.forces for g in graphs if g.forces is not None]
    if forces:
        scale = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
    else:
        resid = [(g.energy - ref[g.species].sum()) / len(g.species) for g in graphs]
        scale = float(np.std(resid))
    n_edges = sum(g.edge_index.shape[1] for g in graphs)
    n_atoms = sum(len(g.species) for g in graphs)
    return {
        "reference_energies": ref,
        "scale": scale if scale > 1e-6 else 1.0,
        "avg_num_neighbors": max(float(n_edges) / max(n_atoms, 1), 1.0),
    }


def _pretrained(path: str, train: Sequence[Atoms], device: torch.device) -> dict[str, Any]:
    """A checkpoint to fine-tune from; ValueError when it is not one or lacks an element of the training data."""
    payload = torch.load(Path(path), map_location=device, weights_only=True)
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise ValueError(f"{path} is not a matsearch potential checkpoint (init_from)")
    species = set(payload["config"].get("species", []))
    missing = sorted({s for a in train for s in a.get_chemical_symbols()} - species)
    if missing:
        raise ValueError(
            f"init_from {path} does not support element(s) {', '.join(missing)} (supports: {' '.join(sorted(species))})"
        )
    return payload


def _graphs(atoms: Sequence[Atoms], config: PotentialConfig) -> list[Graph]:
    """Neighbour lists and labels of every structure, computed once; every structure needs an energy label."""
    graphs = [atoms_to_graph(a, config.species, config.cutoff, config.name) for a in atoms]
    missing = [k for k, g in enumerate(graphs) if g.energy is None]
    if missing:
        raise ValueError(f"{len(missing)} structure(s) have no energy label (first index {missing[0]})")
    return graphs


def _losses(out: dict[str, torch.Tensor], batch: Any, cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted loss and its parts; force/stress terms only where labels exist."""
    n = batch.num_atoms.to(out[ENERGY].dtype)
    parts: dict[str, torch.Tensor] = {ENERGY: torch.mean(((out[ENERGY] - batch.energy) / n) ** 2)}
    loss = cfg.w_energy * parts[ENERGY]
    if batch.forces is not None and cfg.w_forces > 0:
        parts[FORCES] = torch.mean((out[FORCES] - batch.forces) ** 2)
        loss = loss + cfg.w_forces * parts[FORCES]
    if batch.stress is not None and cfg.w_stress > 0 and bool(batch.stress_mask.any()):
        mask = batch.stress_mask
        parts[STRESS] = torch.mean((out[STRESS][mask] - batch.stress[mask]) ** 2)
        loss = loss + cfg.w_stress * parts[STRESS]
    return loss, parts


def evaluate(
    model: EquivariantPotential, graphs: Sequence[Graph], cfg: TrainConfig, batch_size: int | None = None
) -> dict[str, float]:
    """Validation loss and MAEs: energy meV/atom, forces meV/A, stress meV/A^3 (where labelled)."""
    model.eval()
    bs = batch_size or cfg.batch_size
    dtype, device = model.dtype, torch.device(cfg.device)
    sums = {"loss": 0.0, "e": 0.0, "f": 0.0, "s": 0.0}
    counts = {"loss": 0, "e": 0, "f": 0, "s": 0}
    for start in range(0, len(graphs), bs):
        batch = collate_graphs(graphs[start : start + bs], dtype).to(device)
        want_stress = batch.stress is not None
        out = compute_energy_forces_stress(model, batch, compute_stress=want_stress)
        loss, _ = _losses(out, batch, cfg)
        nb = batch.num_graphs
        sums["loss"] += float(loss) * nb
        counts["loss"] += nb
        sums["e"] += float(((out[ENERGY] - batch.energy).abs() / batch.num_atoms).sum())
        counts["e"] += nb
        if batch.forces is not None:
            sums["f"] += float((out[FORCES] - batch.forces).abs().sum())
            counts["f"] += batch.forces.numel()
        if want_stress:
            mask = batch.stress_mask
            sums["s"] += float((out[STRESS][mask] - batch.stress[mask]).abs().sum())
            counts["s"] += int(mask.sum()) * 9
    metrics = {
        "loss": sums["loss"] / max(counts["loss"], 1),
        "energy_mae_meV_per_atom": 1000.0 * sums["e"] / max(counts["e"], 1),
    }
    if counts["f"]:
        metrics["forces_mae_meV_per_A"] = 1000.0 * sums["f"] / counts["f"]
    if counts["s"]:
        metrics["stress_mae_meV_per_A3"] = 1000.0 * sums["s"] / counts["s"]
    return metrics


class _EMA:
    """Exponential moving average of parameters with warm-up (decay ramps up over the first steps)."""

    def __init__(self, model: torch.nn.Module, decay: float, updates: int = 0) -> None:
        """Start the shadow model as a copy of `model`."""
        self.model = copy.deepcopy(model)
        self.decay = decay
        self.updates = updates

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Blend current weights into the shadow weights."""
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for pe, p in zip(self.model.parameters(), model.parameters(), strict=True):
            pe.lerp_(p.detach(), 1.0 - d)
        for be, b in zip(self.model.buffers(), model.buffers(), strict=True):
            be.copy_(b)


def _make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """Reduce-on-plateau (per epoch on val loss) or cosine annealing over cfg.epochs."""
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1), eta_min=cfg.min_lr)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.min_lr
    )


@dataclass
class _Fit:
    """What a training run carries from epoch to epoch, and saves into the checkpoint so it can resume."""

    model: EquivariantPotential
    opt: torch.optim.Optimizer
    sched: Any
    ema: _EMA
    best_state: dict[str, torch.Tensor]  # EMA weights of the best validation epoch
    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: bool = False

    def summary(self, validation: str, checkpoint: Path) -> dict[str, Any]:
        """Metrics of the best epoch plus run bookkeeping."""
        best = next((h for h in self.history if h["epoch"] == self.best_epoch), {})
        return {
            **{k: v for k, v in best.items() if k.startswith("val_")},
            "best_epoch": self.best_epoch,
            "epochs_completed": len(self.history) and int(self.history[-1]["epoch"]),
            "stopped_early": self.stopped,
            "validation": validation,
            "checkpoint": str(checkpoint),
            "history": self.history,
        }


def train_potential(
    train: Sequence[Atoms],
    val: Sequence[Atoms],
    config: PotentialConfig,
    train_cfg: TrainConfig | None = None,
    checkpoint: str | Path = "potential.pt",
    resume: bool = False,
    progress: ProgressFn | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Train (or resume training of) a potential; writes `checkpoint` every epoch and returns final metrics.

    The checkpoint's weights are the EMA weights of the best validation epoch, so EquivariantPotential.load gives
    the deployable model; the file also carries the resume state (epoch, optimiser, scheduler, EMA, best metric).
    With no validation structures the val_* metrics, the best epoch, early stopping and the plateau schedule all
    use the training set; the summary's "validation" (validation_label) says which it was.
    `deadline` (a time.monotonic() value): no new epoch starts after it, though the first always runs, so a caller
    with a wall-time budget gets a checkpoint in time; the summary's "stopped_at_deadline" says when it cut training.
    """
    cfg = train_cfg or TrainConfig()
    checkpoint = Path(checkpoint)
    device = torch.device(cfg.device)
    resumed = _resumed(checkpoint, device) if resume and checkpoint.is_file() else None
    pretrained = _pretrained(cfg.init_from, train, device) if resumed is None and cfg.init_from else None
    config = _architecture(config, resumed, pretrained)
    train_graphs = _graphs(train, config)
    val_graphs = _graphs(val, config) if len(val) else train_graphs  # no held-out set: the training error stands in
    validation = validation_label(len(val))
    model, config = _new_model(config, cfg, train_graphs, device, resumed, pretrained)
    fit = _start_fit(model, cfg, resumed)
    first, cut = fit.epoch + 1, False
    for epoch in range(first, cfg.epochs + 1):
        if fit.stopped:
            break
        if deadline is not None and epoch > first and time.monotonic() >= deadline:
            cut = True
            break
        t0 = time.perf_counter()
        train_loss = _train_epoch(fit, train_graphs, cfg, epoch, device)
        val_metrics = _validate(fit, val_graphs, cfg)
        record = _record_epoch(fit, epoch, train_loss, val_metrics, time.perf_counter() - t0, cfg)
        _save(fit, checkpoint, config, cfg, validation)
        if progress is not None:
            progress(epoch, cfg.epochs, _epoch_message(epoch, cfg.epochs, record, held_out=bool(len(val))))
    return {**fit.summary(validation, checkpoint), "stopped_at_deadline": cut}


def _resumed(checkpoint: Path, device: torch.device) -> dict[str, Any]:
    """The payload of a checkpoint to resume from; ValueError when it holds no training state."""
    payload = torch.load(checkpoint, map_location=device, weights_only=True)
    if payload.get("training") is None:
        raise ValueError(f"{checkpoint} holds no training state to resume from")
    return payload


def _architecture(
    config: PotentialConfig, resumed: dict[str, Any] | None, pretrained: dict[str, Any] | None
) -> PotentialConfig:
    """The architecture to train: the resumed or the pretrained checkpoint's, else the given one."""
    source = resumed if resumed is not None else pretrained
    return config if source is None else PotentialConfig.from_dict(source["config"])


def _new_model(
    config: PotentialConfig, cfg: TrainConfig, train_graphs: Sequence[Graph], device: torch.device,
    resumed: dict[str, Any] | None, pretrained: dict[str, Any] | None,
) -> tuple[EquivariantPotential, PotentialConfig]:
    """The seeded model, with dataset statistics fitted (fresh runs) or pretrained weights loaded; and its config."""
    fresh = resumed is None and pretrained is None and cfg.fit_statistics  # a fine-tune keeps pretrained statistics
    if fresh:
        stats = _dataset_statistics(train_graphs, len(config.species))
        config = copy.deepcopy(config)
        config.avg_num_neighbors = stats["avg_num_neighbors"]
    torch.manual_seed(cfg.seed)  # before the model is built: the same seed gives the same initial weights
    model = EquivariantPotential(config).to(device)
    if fresh:
        with torch.no_grad():
            model.shift.copy_(torch.as_tensor(stats["reference_energies"], dtype=_DTYPES[config.dtype]))
            model.scale.fill_(stats["scale"])
    if pretrained is not None:
        model.load_state_dict(pretrained["state_dict"])
    return model, config


def _start_fit(model: EquivariantPotential, cfg: TrainConfig, resumed: dict[str, Any] | None) -> _Fit:
    """Optimiser, LR schedule and EMA for the model; restored, with the history, from a resumed checkpoint."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = _make_scheduler(opt, cfg)
    ema = _EMA(model, cfg.ema_decay)
    fit = _Fit(model, opt, sched, ema, best_state=copy.deepcopy(ema.model.state_dict()))
    if resumed is None:
        return fit
    state = resumed["training"]
    model.load_state_dict(state["model_state"])
    ema.model.load_state_dict(state["ema_state"])
    ema.updates = int(state["ema_updates"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    if cfg.scheduler == "cosine":  # a resumed run may ask for more (or fewer) epochs: the horizon follows
        sched.T_max = max(cfg.epochs, 1)
    fit.epoch, fit.best_loss = int(state["epoch"]), float(state["best_val_loss"])
    fit.best_epoch, fit.bad_epochs = int(state["best_epoch"]), int(state["bad_epochs"])
    fit.history = list(state["history"])
    fit.best_state = resumed["state_dict"]
    fit.stopped = bool(state.get("stopped_early", False))
    return fit


def _train_epoch(fit: _Fit, graphs: Sequence[Graph], cfg: TrainConfig, epoch: int, device: torch.device) -> float:
    """One pass over the training graphs in an order seeded by the epoch; returns the mean batch loss."""
    model, dtype = fit.model, fit.model.dtype
    model.train()
    gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
    order = torch.randperm(len(graphs), generator=gen).tolist()
    total, nb = 0.0, 0
    for start in range(0, len(graphs), cfg.batch_size):
        batch = collate_graphs([graphs[k] for k in order[start : start + cfg.batch_size]], dtype).to(device)
        want_stress = batch.stress is not None and cfg.w_stress > 0
        out = compute_energy_forces_stress(model, batch, compute_stress=want_stress, training=True)
        loss, _ = _losses(out, batch, cfg)
        fit.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        fit.opt.step()
        fit.ema.update(model)
        total += float(loss.detach())
        nb += 1
    return total / max(nb, 1)


def _validate(fit: _Fit, graphs: Sequence[Graph], cfg: TrainConfig) -> dict[str, float]:
    """Evaluate the EMA model on the validation graphs and step the LR schedule on its loss."""
    metrics = evaluate(fit.ema.model, graphs, cfg)
    if cfg.scheduler == "cosine":
        fit.sched.step()
    else:
        fit.sched.step(metrics["loss"])
    return metrics


def _record_epoch(
    fit: _Fit, epoch: int, train_loss: float, val_metrics: dict[str, float], seconds: float, cfg: TrainConfig
) -> dict[str, float]:
    """Append the epoch to the history; keep the best EMA weights and count epochs without improvement."""
    record = {
        "epoch": epoch,
        "train_loss": train_loss,
        "lr": fit.opt.param_groups[0]["lr"],
        "seconds": seconds,
        **{f"val_{k}": v for k, v in val_metrics.items()},
    }
    fit.history.append(record)
    fit.epoch = epoch
    if val_metrics["loss"] < fit.best_loss:
        fit.best_loss, fit.best_epoch, fit.bad_epochs = val_metrics["loss"], epoch, 0
        fit.best_state = copy.deepcopy(fit.ema.model.state_dict())
    else:
        fit.bad_epochs += 1
    fit.stopped = fit.bad_epochs >= cfg.early_stopping_patience
    return record


def _save(fit: _Fit, checkpoint: Path, config: PotentialConfig, cfg: TrainConfig, validation: str) -> None:
    """Write the best EMA weights, the summary metrics and the state to resume from into the checkpoint."""
    training_state = {
        "epoch": fit.epoch,
        "model_state": fit.model.state_dict(),
        "ema_state": fit.ema.model.state_dict(),
        "ema_updates": fit.ema.updates,
        "optimizer": fit.opt.state_dict(),
        "scheduler": fit.sched.state_dict(),
        "best_val_loss": fit.best_loss,
        "best_epoch": fit.best_epoch,
        "bad_epochs": fit.bad_epochs,
        "history": fit.history,
        "stopped_early": fit.stopped,
        "train_config": asdict(cfg),
    }
    summary = summary_metrics(fit.summary(validation, checkpoint))
    save_checkpoint(checkpoint, config, fit.best_state, summary, {"training": training_state})


def _epoch_message(epoch: int, epochs: int, record: dict[str, float], held_out: bool) -> str:
    """The progress line of an epoch: train loss and energy/force errors, tagged val or train (none held out)."""
    tag = "val" if held_out else "train"
    msg = (
        f"epoch {epoch}/{epochs} train_loss={record['train_loss']:.4g} "
        f"{tag}_E_MAE={record['val_energy_mae_meV_per_atom']:.3g} meV/atom"
    )
    if "val_forces_mae_meV_per_A" in record:
        msg += f" {tag}_F_MAE={record['val_forces_mae_meV_per_A']:.3g} meV/A"
    return msg


def summary_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint metrics: the summary without the per-epoch history (kept in the training state)."""
    return {k: v for k, v in summary.items() if k != "history"}
