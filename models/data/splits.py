"""The train/val/test split every generator training record takes: a hash of its key, so a composition never lands
in two splits, whichever builder made the record."""

from __future__ import annotations

import hashlib


def split_of(key: str) -> str:
    """Deterministic 90/5/5 train/val/test split from a hash of the key (a reduced formula or an id)."""
    bucket = int(hashlib.md5(key.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 90 else ("val" if bucket < 95 else "test")
