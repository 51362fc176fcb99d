"""The one progress-callback type every long-running loop takes (models and tools alike)."""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[float, float | None, str | None], None]
"""`progress(done, total, message)`: `done` of `total` units (total None when unknown), an optional note. Tools pass
their ToolContext.progress (which raises Cancelled when the caller cancelled), so a loop may stop at any call."""
