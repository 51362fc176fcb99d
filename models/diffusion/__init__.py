"""Formula-conditioned crystal diffusion generator (DiffCSP-style): model, sampler and checkpoint I/O."""

from pathlib import Path

from models.diffusion.model import CrystalDiffusion, DiffusionConfig, file_sha256
from models.diffusion.postprocess import ValidityReport, ensure_valid, is_valid_sample, repair_overlaps
from models.diffusion.sampling import sample_batch, sample_structures, sample_valid_structures

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "diffusion.pt"

__all__ = [
    "DEFAULT_CHECKPOINT",
    "CrystalDiffusion",
    "DiffusionConfig",
    "ValidityReport",
    "ensure_valid",
    "file_sha256",
    "is_valid_sample",
    "repair_overlaps",
    "sample_batch",
    "sample_structures",
    "sample_valid_structures",
]
