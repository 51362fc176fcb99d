"""Chat on the web page (/web/chat): one turn at a time per thread, run in a background thread of the server by the
LLM agent when one is configured, the offline planner otherwise. Every turn's events (the message, tool calls as
they start, live progress, streamed text, the answer, errors) go into the thread's transcript, kept as JSON under
the workspace, so a reload (or a server restart) reopens the conversation. The page follows a running turn through
/web/api/chat/{thread}/events (server-sent events, agent/web_events.py) and polls the transcript only without them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.web_events import event_stream
from tools.core.settings import Settings

THREAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_MESSAGE_CHARS = 4000
MAX_RESULT_CHARS = 600  # of a tool's output shown in the transcript (the tool's artifacts hold the rest)
PROGRESS_WRITE_S = 1.0  # progress updates reach the file at most this often (the page reads memory)


def backend_name(settings: Settings) -> str:
    if settings.llm_base_url:
        return f"LLM agent ({settings.llm_model or 'default model'} at {settings.llm_base_url})"
    return "offline planner (no LLM is configured, so messages map to tools directly)"


class ChatThreads:
    """Transcripts of web chat threads, and the turn running in each (at most one per thread)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folder = settings.resolved_workspace() / "agent" / "web_threads"
        self._lock = threading.Lock()
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._written: dict[str, float] = {}

    def _path(self, thread: str) -> Path:
        return self.folder / f"{thread}.json"

    def events(self, thread: str) -> list[dict[str, Any]]:
        with self._lock:
            if thread not in self._events:
                path = self._path(thread)
                try:
                    self._events[thread] = json.loads(path.read_text())["events"] if path.is_file() else []
                except (OSError, ValueError, KeyError):
                    self._events[thread] = []
            return [dict(e) for e in self._events[thread]]

    def running(self, thread: str) -> bool:
        with self._lock:
            return thread in self._cancel

    def list(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
            try:
                events = json.loads(path.read_text())["events"]
            except (OSError, ValueError, KeyError):
                continue
            first = next((e["text"] for e in events if e.get("kind") == "user"), "")
            out.append({"thread": path.stem, "first_message": first[:120], "updated": path.stat().st_mtime})
        return out

    def _save(self, thread: str, force: bool = True) -> None:
        now = time.time()
        if not force and now - self._written.get(thread, 0.0) < PROGRESS_WRITE_S:
            return
        self._written[thread] = now
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._path(thread).with_suffix(".tmp")
        tmp.write_text(json.dumps({"thread": thread, "events": self._events[thread]}, default=str))
        tmp.replace(self._path(thread))

    def _add(self, thread: str, event: dict[str, Any]) -> None:
        with self._lock:
            self._events[thread].append({"time": time.time(), **event})
            self._save(thread)

    def _progress(self, thread: str, done: float, total: float | None, message: str | None) -> None:
        """Update the progress of the tool call that is running (the last tool_call event)."""
        with self._lock:
            calls = [e for e in self._events[thread] if e["kind"] == "tool_call"]
            if calls:
                calls[-1].update(progress=done, total=total, message=message)
            self._save(thread, force=False)

    def _append_text(self, thread: str, text: str) -> None:
        with self._lock:
            events = self._events[thread]
            if events and events[-1]["kind"] == "text":
                events[-1]["text"] += text
            else:
                events.append({"time": time.time(), "kind": "text", "text": text})
            self._save(thread, force=False)

    def start(self, thread: str, message: str) -> bool:
        """Start a turn in the background; False when one is already running in this thread."""
        self.events(thread)  # load the transcript
        with self._lock:
            if thread in self._cancel:
                return False
            self._cancel[thread] = threading.Event()
            self._events[thread].append({"time": time.time(), "kind": "user", "text": message,
                                         "backend": backend_name(self.settings)})
            self._save(thread)
        threading.Thread(target=self._run, args=(thread, message), daemon=True, name=f"web-chat-{thread}").start()
        return True

    def cancel(self, thread: str) -> bool:
        with self._lock:
            event = self._cancel.get(thread)
        if event is None:
            return False
        event.set()
        return True

    def _run(self, thread: str, message: str) -> None:
        from tools.core.registry import Cancelled

        cancel = self._cancel[thread]

        def progress(done: float, total: float | None = None, note: str | None = None) -> None:
            if cancel.is_set():
                raise Cancelled("cancelled from the page")
            self._progress(thread, done, total, note)

        last: dict[str, Any] | None = None
        try:
            if self.settings.llm_base_url:
                self._run_llm(thread, message, progress, cancel)
            else:
                last = self._run_offline(thread, message, progress)
            if cancel.is_set():
                last = {"kind": "cancelled", "text": "stopped: cancelled from the page"}
        except Exception as exc:  # noqa: BLE001 - any failure is told in the transcript; the server stays up
            last = {"kind": "cancelled" if cancel.is_set() else "error", "text": f"{type(exc).__name__}: {exc}"}
        finally:
            # The last event and the end of the turn land together, so no poll sees an answer while still running.
            with self._lock:
                events = self._events[thread]
                if last is not None:
                    events.append({"time": time.time(), **last})
                elif events and events[-1]["kind"] == "text":  # the LLM's last streamed text is its answer
                    events[-1]["kind"] = "answer"
                self._cancel.pop(thread, None)
                self._save(thread)

    def _run_offline(self, thread: str, message: str, progress: Any) -> dict[str, Any]:
        from agent.offline_planner import OfflinePlanner

        def on_tool(name: str, args: dict[str, Any]) -> None:
            self._add(thread, {"kind": "tool_call", "name": name, "args": args})

        planner = OfflinePlanner(progress=progress, on_tool=on_tool, thread=f"web-{thread}")
        reply = planner.reply(message)
        for (name, _args), output in zip(reply.tool_calls, reply.outputs, strict=False):
            self._add(thread, {"kind": "tool_result", "name": name, "text": output[:MAX_RESULT_CHARS]})
        return {"kind": "answer", "text": reply.text}

    def _run_llm(self, thread: str, message: str, progress: Any, cancel: threading.Event) -> None:
        from agent.llm_agent import MatsearchAgent

        agent = MatsearchAgent(self.settings, progress=progress)
        try:
            for event in agent.stream(message, thread_id=f"web-{thread}"):
                if cancel.is_set():
                    break
                if event.kind == "text":
                    self._append_text(thread, event.text)
                elif event.kind == "tool_call":
                    self._add(thread, {"kind": "tool_call", "name": event.name, "args": event.args})
                else:
                    self._add(thread, {"kind": "tool_result", "name": event.name,
                                       "text": event.text[:MAX_RESULT_CHARS]})
        finally:
            agent.close()


def _threads(request: Request) -> ChatThreads:
    app = request.app
    if not hasattr(app.state, "chat"):
        app.state.chat = ChatThreads(app.state.settings)
    return app.state.chat


def _bad_thread(thread: str) -> JSONResponse | None:
    if THREAD_ID.match(thread):
        return None
    return JSONResponse({"error": "a thread id is 1-64 letters, digits, '-' or '_'"}, status_code=400)


async def api_threads(request: Request) -> Response:
    chat = _threads(request)
    return JSONResponse({"backend": backend_name(chat.settings), "threads": await run_in_threadpool(chat.list)})


def thread_state(chat: ChatThreads, thread: str) -> dict[str, Any]:
    """A thread's transcript and whether a turn runs; `running` is read first, so a finished turn's last event is
    always in `events` (it lands in the same locked step that ends the turn)."""
    running = chat.running(thread)
    return {"thread": thread, "backend": backend_name(chat.settings), "running": running,
            "events": chat.events(thread)}


async def api_thread(request: Request) -> Response:
    thread = request.path_params["thread"]
    if (bad := _bad_thread(thread)) is not None:
        return bad
    return JSONResponse(await run_in_threadpool(thread_state, _threads(request), thread))


async def api_thread_events(request: Request) -> Response:
    """The thread's transcript as server-sent events (`transcript`) while a turn runs, ending with `done`."""
    thread = request.path_params["thread"]
    if (bad := _bad_thread(thread)) is not None:
        return bad
    chat = _threads(request)

    async def read() -> tuple[dict[str, Any], bool]:
        state = await run_in_threadpool(thread_state, chat, thread)
        return state, not state["running"]

    return event_stream(read, "transcript")


async def api_send(request: Request) -> Response:
    thread = request.path_params["thread"]
    if (bad := _bad_thread(thread)) is not None:
        return bad
    try:
        data = await request.json()
        message = str(data["message"]).strip()
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": 'send JSON {"message": "..."}'}, status_code=400)
    if not message:
        return JSONResponse({"error": "the message is empty"}, status_code=400)
    if len(message) > MAX_MESSAGE_CHARS:
        return JSONResponse({"error": f"the message is longer than {MAX_MESSAGE_CHARS} characters"}, status_code=400)
    chat = _threads(request)
    if not await run_in_threadpool(chat.start, thread, message):
        return JSONResponse({"error": "this thread is still answering; wait or cancel it"}, status_code=409)
    return JSONResponse({"thread": thread, "running": True}, status_code=202)


async def api_cancel(request: Request) -> Response:
    thread = request.path_params["thread"]
    if (bad := _bad_thread(thread)) is not None:
        return bad
    if not _threads(request).cancel(thread):
        return JSONResponse({"error": "nothing is running in this thread"}, status_code=409)
    return JSONResponse({"thread": thread, "cancelling": True})


def chat_routes(prefix: str) -> list[Route]:
    return [
        Route(prefix + "/api/chat", api_threads),
        Route(prefix + "/api/chat/{thread}", api_thread),
        Route(prefix + "/api/chat/{thread}", api_send, methods=["POST"]),
        Route(prefix + "/api/chat/{thread}/events", api_thread_events),
        Route(prefix + "/api/chat/{thread}/cancel", api_cancel, methods=["POST"]),
    ]
