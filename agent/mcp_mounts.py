"""Other MCP servers mounted into the agent: each server named in the config is connected once (stdio subprocess or
streamable HTTP) with the `mcp` client, and each of its tools becomes a LangChain tool named `{server}__{tool}`.

Config (MATSEARCH_MCP_SERVERS: a JSON file path or inline JSON), the shape IDE assistants use:
    {"mcpServers": {"name": {"command": "python", "args": ["server.py"], "env": {...}, "cwd": "..."},
                    "other": {"url": "http://127.0.0.1:8765/mcp", "headers": {"Authorization": "Bearer ..."}}}}
We speak MCP with the `mcp` 2.x client ourselves: langchain-mcp-adapters 0.3.2 pins mcp < 2, which the server needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.tools import StructuredTool, ToolException

NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-style tool names allow
CONNECT_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 600.0


def parse_mount_config(spec: str) -> dict[str, dict[str, Any]]:
    """The servers named in a JSON file path or inline JSON; ValueError naming what is wrong."""
    text = spec.strip()
    if not text.startswith("{"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError(f"MCP mount config {text!r} is neither inline JSON nor an existing file")
        text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"MCP mount config is not valid JSON: {exc}") from exc
    servers = data.get("mcpServers", data) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ValueError('MCP mount config must be {"mcpServers": {name: {...}}}')
    for name, cfg in servers.items():
        if not NAME_OK.match(name) or "__" in name:
            raise ValueError(f"MCP server name {name!r}: use letters, digits, '-' or single '_' (<= 64 chars)")
        if not isinstance(cfg, dict) or ("command" in cfg) == ("url" in cfg):
            raise ValueError(f"MCP server {name!r} needs exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
    return servers


def _target(cfg: dict[str, Any]) -> tuple[Any, Any]:
    """What mcp.Client connects to, plus an HTTP client to close afterwards (or None)."""
    if "command" in cfg:
        from mcp import StdioServerParameters

        params = StdioServerParameters(
            command=str(cfg["command"]), args=[str(a) for a in cfg.get("args", [])], env=cfg.get("env"),
            cwd=cfg.get("cwd"),
        )
        return params, None
    url = str(cfg["url"])
    headers = cfg.get("headers")
    if not headers:
        return url, None
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

    http = create_mcp_http_client(headers={str(k): str(v) for k, v in headers.items()})
    return streamable_http_client(url, http_client=http), http


def _result_text(result: Any) -> str:
    """A CallToolResult as the text a model reads: structured content as JSON, else the text blocks."""
    if getattr(result, "structured_content", None) is not None:
        return json.dumps(result.structured_content)
    parts = [getattr(c, "text", None) or getattr(c, "uri", None) or "" for c in result.content]
    return "\n".join(p for p in parts if p)


@dataclass
class MountedServers:
    """Live connections to the configured MCP servers, served from one background event loop."""

    servers: dict[str, dict[str, Any]]
    errors: dict[str, str] = field(default_factory=dict)
    tools: list[StructuredTool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-mounts", daemon=True)
        self._thread.start()
        self._stop = asyncio.Event()
        self._done: list[Future] = []
        self._clients: dict[str, Any] = {}
        for name, cfg in self.servers.items():
            ready: Future = Future()
            self._done.append(asyncio.run_coroutine_threadsafe(self._serve(name, cfg, ready), self._loop))
            try:
                listed = ready.result(timeout=CONNECT_TIMEOUT_S)
            except Exception as exc:  # a server that is down must not stop the agent: report it, go on
                self.errors[name] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            self.tools += [self._wrap(name, t) for t in listed]

    async def _serve(self, name: str, cfg: dict[str, Any], ready: Future) -> None:
        """Hold one server's session open (enter and exit in this task, as anyio requires) until close()."""
        from mcp import Client

        target, http = _target(cfg)
        try:
            async with Client(target, read_timeout_seconds=CALL_TIMEOUT_S) as client:
                listed = (await client.list_tools()).tools
                self._clients[name] = client
                ready.set_result(listed)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
        finally:
            self._clients.pop(name, None)
            if http is not None:
                await http.aclose()

    def _wrap(self, server: str, spec: Any) -> StructuredTool:
        """One remote tool as a LangChain tool; remote errors come back to the model as observations."""

        def call(**kwargs: Any) -> str:
            client = self._clients.get(server)
            if client is None:
                raise ToolException(f"MCP server {server!r} is not connected")
            future = asyncio.run_coroutine_threadsafe(client.call_tool(spec.name, kwargs), self._loop)
            try:
                result = future.result(timeout=CALL_TIMEOUT_S)
            except Exception as exc:
                raise ToolException(f"{server}__{spec.name} failed: {exc}") from exc
            text = _result_text(result)
            if result.is_error:
                raise ToolException(text or f"{server}__{spec.name} returned an error")
            return text

        schema = dict(spec.input_schema or {"type": "object", "properties": {}})
        return StructuredTool.from_function(
            func=call,
            name=f"{server}__{spec.name}"[:64],
            description=f"[MCP server {server}] {spec.description or spec.name}",
            args_schema=schema,
            handle_tool_error=True,
        )

    def close(self) -> None:
        """Close every session (and stdio subprocess), then stop the loop."""
        if not self._loop.is_running():
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        for done in self._done:
            with contextlib.suppress(Exception):  # a server that already died has nothing left to close
                done.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
