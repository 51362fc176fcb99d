"""`matsearch chat`: a REPL over the LLM agent (streamed text, tool calls shown as they happen, progress bars) or
the offline planner when no LLM is configured."""

from __future__ import annotations

from rich.console import Console
from rich.markdown import Markdown

from tools.core.settings import get_settings


def repl(console: Console, thread: str = "default") -> None:
    """Read messages until EOF or 'exit'; answer each with the agent or the planner."""
    settings = get_settings()
    progress = lambda done, total, message: console.log(f"  {message or ''} {done}/{total or '?'}")  # noqa: E731
    if settings.llm_base_url:
        from agent.llm_agent import MatsearchAgent

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
            progress=progress, on_tool=lambda name, args: console.print(f"[cyan]→ {name}[/cyan] {args}")
        )
        console.print("[bold]matsearch chat[/bold] (offline planner: no LLM configured); 'exit' to leave")
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
            console.print(Markdown(planner.reply(message).text))
            continue

        def show(event: object) -> None:
            if event.kind == "tool_call":
                console.print(f"\n[cyan]→ {event.name}[/cyan] {event.args}")
            elif event.kind == "tool_result":
                console.print(f"[dim]← {event.name}: {event.text[:200]}[/dim]")
            else:
                console.print(event.text, end="")

        result = agent.ask(message, thread_id=thread, on_event=show)
        console.print()
        if result.unsupported_numbers:
            console.print(
                f"[yellow]warning: numbers not found in any tool result: {result.unsupported_numbers}[/yellow]"
            )
    if agent is not None:
        agent.close()
