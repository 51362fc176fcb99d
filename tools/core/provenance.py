"""The provenance every memory record a tool stores carries: which tool made it, with which parameters, from which
parent records, and when (UTC), under the provenance keys memory/keys.py names. memory/store.py reads the tool,
parent ids and time back."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from memory.keys import PARAMETERS_KEY, PARENT_IDS_KEY, TIME_KEY, TOOL_KEY


def utc_now() -> str:
    """The current UTC time in ISO 8601 to the second, e.g. 2025-01-31T12:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def provenance(tool: str, parameters: Mapping[str, Any], parent_ids: Iterable[str | None] = ()) -> dict[str, Any]:
    """The provenance dict for ctx.store.add: the tool's name, its parameters, the ids of the records it came from
    (None, for a structure given inline, left out) and the time of storing."""
    parents = [p for p in parent_ids if p is not None]
    return {TOOL_KEY: tool, PARAMETERS_KEY: dict(parameters), PARENT_IDS_KEY: parents, TIME_KEY: utc_now()}
