"""Metadata as plain Python data (dicts with string keys, lists, numbers, strings, booleans, None): what
torch.load(weights_only=True) reads back without unpickling arbitrary objects, and what JSON can hold."""

from __future__ import annotations

from typing import Any

import numpy as np


def plain_data(value: Any) -> Any:
    """`value` with numpy scalars turned into Python numbers, tuples into lists and dict keys into strings."""
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
