"""Resumable training of CrystalDiffusion on the project's offline set (prototypes + CDVAE val splits).

python -m models.diffusion.train --minutes 80 [--resume] : trains, writes the training state every few minutes and
exports the EMA weights (config + metrics) to models/checkpoints/diffusion.pt."""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.diffusion.data import collate, record_to_item
from models.diffusion.model import CrystalDiffusion, DiffusionConfig

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "models" / "checkpoints" / "diffusion.pt"
DEFAULT_STATE = ROOT / "workspace" / "diffusion_train" / "state.pt"


@dataclass
class TrainConfig:
    """Optimisation settings (stored in the checkpoint metadata)."""

    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    warmup_steps: int = 200
    seed: int = 0
    checkpoint_minutes: float = 4.0
    n_val: int = 512


def load_split_records(include_cdvae: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Training records grouped by split (train/val/test) from models/data/build_diffusion_set."""
    from models.data.build_diffusion_set import training_records

    out: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for rec in training_records(include_cdvae=include_cdvae):
        out[rec["split"]].append(rec)
    return out


@torch.no_grad()
def evaluate(
    model: CrystalDiffusion, items: list[dict[str, torch.Tensor]], batch_size: int = 128, seed: int = 1234
) -> dict[str, float]:
    """Mean denoising loss over items with a fixed generator (comparable across checkpoints)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    totals = {"loss": 0.0, "loss_lattice": 0.0, "loss_coord": 0.0}
    n = 0
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        losses = model.loss(collate(chunk), generator=gen)
        for k in totals:
            totals[k] += float(losses[k]) * len(chunk)
        n += len(chunk)
    return {k: v / max(n, 1) for k, v in totals.items()}


def train(
    minutes: float,
    out: Path = DEFAULT_OUT,
    state_path: Path = DEFAULT_STATE,
    resume: bool = False,
    model_config: DiffusionConfig | None = None,
    train_config: TrainConfig | None = None,
    max_steps: int | None = None,
    records: dict[str, list[dict[str, Any]]] | None = None,
    log: Any = sys.stderr,
) -> dict[str, Any]:
    """Train for a wall-clock budget (and/or max_steps), resuming from state_path if asked; returns final metrics."""
    tc = train_config or TrainConfig()
    records = records if records is not None else load_split_records()
    train_items = [record_to_item(r) for r in records["train"]]
    val_items = [record_to_item(r) for r in records["val"]][: tc.n_val]
    elements = sorted({s for r in records["train"] for s in r["species"]})
    state = torch.load(state_path, map_location="cpu", weights_only=False) if resume and state_path.exists() else None
    run = _Training.begin(state, model_config, tc, elements, train_items, val_items, out, state_path)
    if state is not None:
        print(f"resumed from {state_path} at step {run.step}, epoch {run.epoch}", file=log, flush=True)
    print(
        f"train {len(train_items)} / val {len(val_items)} cells, {len(elements)} elements, {run.n_params} params",
        file=log,
        flush=True,
    )
    start = time.time()
    step0 = run.step
    last_ckpt = start
    running: dict[str, float] = {}
    gen = torch.Generator().manual_seed(run.tc.seed + 7919 * (run.step + 1))
    metrics: dict[str, Any] = {}
    done = False
    while not done:
        for batch_items in run.epoch_batches():
            lr, losses = run.optimise(batch_items, gen)
            for k, v in losses.items():
                running[k] = 0.98 * running.get(k, v.item()) + 0.02 * v.item()
            if run.step % 50 == 0:
                _log_progress(run, running, lr, start, step0, log)
            now = time.time()
            out_of_time = now - start > minutes * 60 or (max_steps is not None and run.step >= max_steps)
            if now - last_ckpt > run.tc.checkpoint_minutes * 60 or out_of_time:
                metrics = run.checkpoint(running)
                last_ckpt = time.time()
                print("checkpoint " + json.dumps(metrics), file=log, flush=True)
            if out_of_time:
                done = True
                break
        else:
            run.epoch += 1
    return metrics


@dataclass
class _Training:
    """The state of one training run: configs, model, its EMA copy, optimiser and counters; what the state file
    holds, so a resumed run continues exactly where the last checkpoint left off."""

    mc: DiffusionConfig
    tc: TrainConfig
    model: CrystalDiffusion
    ema: CrystalDiffusion
    opt: torch.optim.Optimizer
    train_items: list[dict[str, torch.Tensor]]
    val_items: list[dict[str, torch.Tensor]]
    out: Path
    state_path: Path
    step: int = 0
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def begin(
        cls, state: dict[str, Any] | None, model_config: DiffusionConfig | None, tc: TrainConfig, elements: list[str],
        train_items: list[dict[str, torch.Tensor]], val_items: list[dict[str, torch.Tensor]], out: Path,
        state_path: Path,
    ) -> _Training:
        """A fresh run (seeded model on these elements) or, from a saved state, the run it holds: its configs,
        weights, optimiser and counters."""
        if state is not None:
            mc = DiffusionConfig(**state["model_config"])
            tc = TrainConfig(**state["train_config"])
        else:
            mc = model_config or DiffusionConfig()
            mc.elements = elements
        torch.manual_seed(tc.seed)
        model = CrystalDiffusion(mc)
        ema = copy.deepcopy(model)
        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        run = cls(mc, tc, model, ema, opt, train_items, val_items, out, state_path)
        if state is not None:
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["optimizer"])
            run.step, run.epoch, run.history = state["step"], state["epoch"], state["history"]
        return run

    @property
    def n_params(self) -> int:
        """Trainable parameters of the model (for the log and the checkpoint metadata)."""
        return sum(p.numel() for p in self.model.parameters())

    def epoch_batches(self) -> Iterator[list[dict[str, torch.Tensor]]]:
        """This epoch's full batches of training items, in an order seeded by the epoch (so a resumed run draws
        the same order)."""
        tc = self.tc
        perm = torch.randperm(len(self.train_items), generator=torch.Generator().manual_seed(tc.seed + self.epoch))
        perm = perm.tolist()
        for b in range(len(perm) // tc.batch_size):
            yield [self.train_items[i] for i in perm[b * tc.batch_size : (b + 1) * tc.batch_size]]

    def optimise(self, items: list[dict[str, torch.Tensor]], gen: torch.Generator) -> tuple[float, dict[str, Any]]:
        """One optimiser step on a batch (linear warm-up of the learning rate, clipped gradients) and the EMA update
        after it; the learning rate used and the losses."""
        tc, model, opt = self.tc, self.model, self.opt
        model.train()
        batch = collate(items)
        lr = tc.lr * min(1.0, (self.step + 1) / tc.warmup_steps)
        for group in opt.param_groups:
            group["lr"] = lr
        losses = model.loss(batch, generator=gen)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        self.step += 1
        decay = min(tc.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for pe, pm in zip(self.ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - decay)
        return lr, losses

    def checkpoint(self, running: dict[str, float]) -> dict[str, Any]:
        """Evaluate the EMA weights on the validation items, add the metrics to the history and save; the metrics."""
        val = evaluate(self.ema, self.val_items)
        metrics = {
            "step": self.step,
            "epoch": self.epoch,
            "train_loss_ema": running.get("loss"),
            **{f"val_{k}": v for k, v in val.items()},
        }
        self.history.append(metrics)
        self.save(metrics)
        return metrics

    def save(self, final_metrics: dict[str, Any]) -> None:
        """Write the training state (atomically, via a .tmp file) and export the EMA weights with their metadata."""
        state_path = self.state_path
        state_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "model_config": asdict(self.mc),
                "train_config": asdict(self.tc),
                "model": self.model.state_dict(),
                "ema": self.ema.state_dict(),
                "optimizer": self.opt.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "history": self.history,
            },
            state_path.with_suffix(".tmp"),
        )
        state_path.with_suffix(".tmp").replace(state_path)
        self.ema.save(
            self.out,
            metrics=final_metrics,
            metadata={
                "train_config": asdict(self.tc),
                "step": self.step,
                "epoch": self.epoch,
                "n_params": self.n_params,
                "n_train": len(self.train_items),
                "n_val": len(self.val_items),
                "history": self.history[-50:],
                "data": "models/data/diffusion_prototypes.json.gz + cdvae perov_5/carbon_24 val.csv (train split)",
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )


def _log_progress(
    run: _Training, running: dict[str, float], lr: float, start: float, step0: int, log: Any
) -> None:
    """One progress line: smoothed losses, learning rate, elapsed time and the rate of this session's steps."""
    rate = (run.step - step0) / max(time.time() - start, 1e-9)
    print(
        f"step {run.step} epoch {run.epoch} loss {running['loss']:.4f} (lattice {running['loss_lattice']:.4f}"
        f", coord {running['loss_coord']:.4f}) lr {lr:.2e} elapsed {time.time() - start:.0f}s"
        + f" {rate:.2f} steps/s",
        file=log,
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    """CLI entry: python -m models.diffusion.train --minutes 80 [--resume]."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of this run")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--resume", action="store_true", help="continue from --state if it exists")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=DiffusionConfig.hidden)
    parser.add_argument("--layers", type=int, default=DiffusionConfig.n_layers)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    metrics = train(
        args.minutes,
        out=args.out,
        state_path=args.state,
        resume=args.resume,
        model_config=DiffusionConfig(hidden=args.hidden, n_layers=args.layers),
        train_config=TrainConfig(batch_size=args.batch_size, lr=args.lr),
        max_steps=args.max_steps,
    )
    print(json.dumps(metrics), flush=True)


if __name__ == "__main__":
    main()
