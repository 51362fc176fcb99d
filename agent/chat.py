"""`matsearch chat`: a REPL over the LLM agent (streamed text, tool calls shown as they happen, one progress bar) or
the offline planner when no LLM is configured.

What libraries print while tools run (model-loading bars, CHGNet's banner, torch and Python warnings, C-level
messages) goes to workspace/agent/chat.log, not into the conversation: the console keeps its own copy of the
terminal while file descriptors 1 and 2 point at the log."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

from tools.core.settings import get_settings


def describe_call(name: str, args: dict[str, Any]) -> str:
    """A tool call as one readable line: `run_md structure=s-… temperature_K=600` (no Python dicts)."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return ",".join(f"{k}={value(x)}" for k, x in v.items() if x is not None)
        if isinstance(v, str):
            return repr(v if len(v) <= 60 else v[:57] + "...")
        return str(v)

    return f"[cyan]→ {name}[/cyan] " + " ".join(f"{k}={value(v)}" for k, v in args.items())


class ProgressBar:
    """One rich progress bar per reply, updated in place by every progress report of the tools it runs."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: Any = None

    def __call__(self, done: float, total: float | None = None, message: str | None = None) -> None:
        if self._progress is None:
            return
        fields: dict[str, Any] = {"completed": done, "total": total if total else None}
        if message:
            fields["description"] = message[:70]
        self._progress.update(self._task, **fields)

    def start(self) -> None:
        """Show the bar (a no-op while one is showing)."""
        if self._progress is not None:
            return
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
            console=self.console, transient=True, redirect_stdout=False, redirect_stderr=False,
        )
        self._task = self._progress.add_task("working", total=None)
        self._progress.start()

    def stop(self) -> None:
        """Take the bar off the screen (it is transient: nothing stays behind)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self.start()
        try:
            yield
        finally:
            self.stop()


@contextlib.contextmanager
def library_output_to(log_path: Path, label: str = "") -> Iterator[None]:
    """Send everything written to stdout/stderr (Python and C level) to `log_path` for the duration (after a line
    with the time and `label`, so the log reads per message)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with open(log_path, "a", buffering=1) as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {label}\n")
        try:
            fds = [sys.stdout.fileno(), sys.stderr.fileno()]
        except (AttributeError, ValueError, io.UnsupportedOperation):  # no real descriptors (captured): Python level
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
            return
        saved = [os.dup(fd) for fd in fds]
        try:
            for fd in fds:
                os.dup2(log.fileno(), fd)
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in zip(fds, saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


def own_terminal(console: Console) -> None:
    """Point a console that writes to sys.stdout (or sys.stderr) at a duplicate of the terminal, so redirecting fd 1
    and 2 to a log leaves it be."""
    stream = console.file
    if stream is not sys.stdout and stream is not sys.stderr:
        return
    try:
        fd = os.dup(stream.fileno())
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return
    console.file = os.fdopen(fd, "w", buffering=1, encoding=stream.encoding or "utf-8", errors="replace")


def repl(console: Console, thread: str = "default") -> None:
    """Read messages until EOF or 'exit'; answer each with the agent or the planner."""
    settings = get_settings()
    log_path = settings.resolved_workspace() / "agent" / "chat.log"
    own_terminal(console)
    progress = ProgressBar(console)
    if settings.llm_base_url:
        from agent.llm_agent import MatsearchAgent

        with library_output_to(log_path, "starting the agent"):
            agent = MatsearchAgent(settings, progress=progress)
        console.print(
            f"[bold]matsearch chat[/bold] (model {settings.llm_model or 'default'} at {settings.llm_base_url}, "
            f"thread {thread}); 'exit' to leave"
        )
        if agent.mounts is not None:
            console.print(f"mounted MCP tools: {', '.join(t.name for t in agent.mounts.tools) or 'none'}")
        for name, why in agent.mount_errors.items():
            console.print(f"[yellow]MCP server {name!r} not mounted: {why}[/yellow]")
    else:
        from agent.offline_planner import OfflinePlanner

        agent = None
        planner = OfflinePlanner(
            progress=progress, on_tool=lambda name, args: console.print(describe_call(name, args)), thread=thread
        )
        console.print(
            f"[bold]matsearch chat[/bold] (offline planner: no LLM configured; thread {thread}); 'exit' to leave"
        )
    console.print(f"[dim]library messages go to {log_path}[/dim]")
    while True:
        try:
            message = console.input("[bold green]you>[/bold green] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if message.lower() in {"exit", "quit"}:
            break
        if not message:
            continue
        if agent is None:
            with library_output_to(log_path, f"you> {message}"), progress.running():
                text = planner.reply(message).text
            console.print(Markdown(text))
            continue

        def show(event: Any) -> None:  # the bar shows while a tool runs; streamed text prints without it
            if event.kind == "tool_call":
                console.print()
                console.print(describe_call(event.name, event.args))
                progress.start()
            elif event.kind == "tool_result":
                progress.stop()
                console.print(f"[dim]← {event.name}: {event.text[:200]}[/dim]")
            else:
                console.print(event.text, end="")

        try:
            with library_output_to(log_path, f"you> {message}"):
                result = agent.ask(message, thread_id=thread, on_event=show)
        finally:
            progress.stop()
        console.print()
        if result.unsupported_numbers:
            console.print(
                f"[yellow]warning: numbers not found in any tool result: {result.unsupported_numbers}[/yellow]"
            )
    if agent is not None:
        agent.close()
