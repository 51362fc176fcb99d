"""The LLM agent: LangChain 1.x `create_agent` over ChatOpenAI (any OpenAI-compatible endpoint) with every
registry tool, the system prompt from prompts/, streaming, and persistent threads in a SQLite checkpointer."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.sqlite import SqliteSaver

from agent.honesty import unsupported_numbers
from agent.mcp_mounts import MountedServers, parse_mount_config
from prompts import load_prompt
from tools.adapters.langchain import langchain_tools
from tools.core.registry import ProgressFn
from tools.core.settings import Settings, get_settings

MAX_STEPS = 24  # graph steps per turn: a cap on tool-call loops


@dataclass
class TurnEvent:
    """One thing that happened during a turn: streamed text, a tool call, or a tool result."""

    kind: str  # "text" | "tool_call" | "tool_result"
    text: str = ""
    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class TurnResult:
    answer: str
    tool_calls: list[tuple[str, dict[str, Any]]]
    tool_outputs: list[str]
    unsupported_numbers: list[str]


class MatsearchAgent:
    """A chat agent over the registry tools with conversation threads kept on disk."""

    def __init__(self, settings: Settings | None = None, progress: ProgressFn | None = None) -> None:
        self.settings = settings or get_settings()
        if not self.settings.llm_base_url:
            raise ValueError("no LLM endpoint configured (set OPENAI_BASE_URL or MATSEARCH_LLM_BASE_URL)")
        model = ChatOpenAI(
            base_url=self.settings.llm_base_url,
            api_key=self.settings.llm_api_key or "not-needed",
            model=self.settings.llm_model or "default",
            streaming=True,
            temperature=0,
            timeout=120,
            max_retries=1,
        )
        path = self.settings.resolved_workspace() / "agent" / "threads.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        spec = self.settings.mcp_servers
        self.mounts = MountedServers(parse_mount_config(spec)) if spec else None
        self.mount_errors = dict(self.mounts.errors) if self.mounts else {}
        mounted = self.mounts.tools if self.mounts else []
        self.graph = create_agent(
            model,
            tools=[*langchain_tools(self.settings, progress), *mounted],
            system_prompt=load_prompt("agent_system"),
            checkpointer=SqliteSaver(self._db),
        )

    def stream(self, message: str, thread_id: str = "default") -> Iterator[TurnEvent]:
        """Run one user turn, yielding text chunks and tool activity as they happen."""
        config = {"configurable": {"thread_id": thread_id}, "recursion_limit": MAX_STEPS}
        for chunk, _meta in self.graph.stream({"messages": [("user", message)]}, config, stream_mode="messages"):
            if isinstance(chunk, AIMessageChunk | AIMessage):
                if chunk.content:
                    yield TurnEvent("text", text=str(chunk.content))
                for call in getattr(chunk, "tool_calls", None) or []:
                    if call.get("name"):
                        yield TurnEvent("tool_call", name=call["name"], args=call.get("args") or {})
            elif isinstance(chunk, ToolMessage):
                yield TurnEvent("tool_result", name=chunk.name or "", text=str(chunk.content))

    def ask(
        self, message: str, thread_id: str = "default", on_event: Callable[[TurnEvent], None] | None = None
    ) -> TurnResult:
        """One turn to completion: the answer, the tools called, and any number the answer states without a source."""
        texts: list[str] = []
        calls: list[tuple[str, dict[str, Any]]] = []
        outputs: list[str] = []
        for event in self.stream(message, thread_id):
            if on_event:
                on_event(event)
            if event.kind == "text":
                texts.append(event.text)
            elif event.kind == "tool_call":
                calls.append((event.name, event.args))
                texts.clear()  # text before a tool call is not the final answer
            else:
                outputs.append(event.text)
        state = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        history = [m.content for m in state.values.get("messages", []) if isinstance(m, ToolMessage)]
        answer = "".join(texts)
        return TurnResult(answer, calls, outputs, unsupported_numbers(answer, [str(h) for h in history]))

    def close(self) -> None:
        if self.mounts is not None:
            self.mounts.close()
        self._db.close()
