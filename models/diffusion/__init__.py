"""Formula-conditioned crystal diffusion generator (DiffCSP-style): model, sampler and checkpoint I/O."""

from pathlib import Path

from models.diffusion.model import CrystalDiffusion, DiffusionConfig, file_sha256
from models.diffusion.sampling import sample_batch, sample_structures

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "diffusion.pt"

__all__ = [
    "DEFAULT_CHECKPOINT",
    "CrystalDiffusion",
    "DiffusionConfig",
    "file_sha256",
    "sample_batch",
    "sample_structures",
]
