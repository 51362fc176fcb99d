"""A local OpenAI-compatible chat-completions server for tests: real HTTP, the real wire format (tool_calls,
server-sent-event streaming), answers chosen by a scripted policy that reads the conversation so far."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

Policy = Callable[[list[dict[str, Any]]], dict[str, Any]]  # messages -> {"content": str} or {"tool_calls": [...]}


def _completion(reply: dict[str, Any], model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
    finish = "stop"
    if reply.get("tool_calls"):
        message["tool_calls"] = [
            {"id": f"call_{uuid.uuid4().hex[:8]}", "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
            for c in reply["tool_calls"]
        ]
        finish = "tool_calls"
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:10]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


def _chunks(reply: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """The same reply as streamed deltas: role, content in pieces or tool calls (name, then arguments in pieces)."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:10]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}
    out = [base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    if reply.get("tool_calls"):
        for i, call in enumerate(reply["tool_calls"]):
            args = json.dumps(call["arguments"])
            out.append(base | {"choices": [{"index": 0, "delta": {"tool_calls": [{
                "index": i, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "function",
                "function": {"name": call["name"], "arguments": ""}}]}, "finish_reason": None}]})
            for start in range(0, len(args), 16):
                out.append(base | {"choices": [{"index": 0, "delta": {"tool_calls": [{
                    "index": i, "function": {"arguments": args[start:start + 16]}}]}, "finish_reason": None}]})
        out.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    else:
        text = reply.get("content") or ""
        for start in range(0, len(text), 12):
            out.append(base | {"choices": [{"index": 0, "delta": {"content": text[start:start + 12]},
                                            "finish_reason": None}]})
        out.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return out


class FakeOpenAI:
    """Run the server on a free localhost port in a thread; `requests` records every request body."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.requests: list[dict[str, Any]] = []
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _chat(self, request: Request) -> Any:
        body = await request.json()
        self.requests.append(body)
        for message in body["messages"]:
            if message.get("role") == "assistant" and message.get("content") is None and not message.get("tool_calls"):
                return JSONResponse({"error": {"message": "assistant content must not be null"}}, status_code=400)
        reply = self.policy(body["messages"])
        model = body.get("model", "fake")
        if body.get("stream"):
            def events() -> Any:
                for chunk in _chunks(reply, model):
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield "data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse(_completion(reply, model))

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
