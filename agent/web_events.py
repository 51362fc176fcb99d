"""Server-sent events for the web page: a job's progress (/web/api/jobs/{id}/events) and a chat turn's transcript
(/web/api/chat/{thread}/events) stream as they change, so the page need not poll.

A stream reads the state in-process every SAMPLE_S, sends an event only when it changed (so a tool reporting
progress thousands of times a second reaches the browser at most 1/SAMPLE_S times a second), a comment line after
HEARTBEAT_S of quiet so proxies keep the connection open, and ends with a `done` event carrying the final state.
A client that goes away cancels the generator: Starlette's StreamingResponse listens for the disconnect.
The routes sit under /web, so the Host, Origin and token checks of agent/web.py's gate apply to them unchanged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.responses import StreamingResponse

SAMPLE_S = 0.1
HEARTBEAT_S = 15.0
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}  # no proxy buffering (nginx)
LIVE: set[int] = set()  # ids of the streams being served; a disconnect removes its stream

# Reads the state once: (the event's data, whether the state is final).
Reader = Callable[[], Awaitable[tuple[dict[str, Any], bool]]]


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event: its name and its data as one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


async def changes(read: Reader, event: str) -> AsyncIterator[str]:
    """`read`'s data as `event` events whenever it changes, heartbeat comments while quiet, then one `done` event."""
    me = object()
    LIVE.add(id(me))
    try:
        last: dict[str, Any] | None = None
        quiet = 0.0
        while True:
            data, final = await read()
            if final:
                yield sse("done", data)
                return
            if data != last:
                yield sse(event, data)
                last, quiet = data, 0.0
            elif quiet >= HEARTBEAT_S:
                yield ": heartbeat\n\n"
                quiet = 0.0
            await asyncio.sleep(SAMPLE_S)
            quiet += SAMPLE_S
    finally:
        LIVE.discard(id(me))


def event_stream(read: Reader, event: str) -> StreamingResponse:
    """The text/event-stream response of `changes(read, event)`."""
    return StreamingResponse(changes(read, event), media_type="text/event-stream", headers=HEADERS)
