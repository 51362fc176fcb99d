"""matsearch MCP server: every registry tool, structure:// and artifact:// resources, and prompts, over stdio
(default) or streamable HTTP (`--http`, bound to 127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument
from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, ListResourcesResult, PaginatedRequestParams, Resource

from memory.keys import (
    ENERGY_PER_ATOM_KEY,
    FORMULA_KEY,
    N_SITES_KEY,
    REDUCED_FORMULA_KEY,
    SPACEGROUP_NUMBER_KEY,
    SPACEGROUP_SYMBOL_KEY,
    TAGS_KEY,
)
from prompts import mcp_prompts, render_prompt
from tools.adapters.mcp import ARTIFACT_MIME, is_text_mime, register_all
from tools.core.errors import ToolError, ToolInputError
from tools.core.paths import ARTIFACT_SCHEME, workspace_path
from tools.core.registry import load_tools, open_store
from tools.core.settings import Settings, get_settings

INSTRUCTIONS = (
    "matsearch: materials discovery tools. Structures are passed as {'id': memory id} or {'text': CIF/POSCAR/extxyz}. "
    "Long tools (cost 'minutes' or 'long') should be started with job_start and polled with job_wait. "
    "Read structure://{id} for a stored CIF and artifact://{path} for files tools wrote."
)


def artifact_file(settings: Settings, relative: str) -> Path:
    """The workspace file behind artifact://{relative}; ResourceError when it escapes the workspace or is absent."""
    try:
        return workspace_path(ARTIFACT_SCHEME + relative, settings.resolved_workspace(), "artifact")
    except ToolInputError as exc:
        raise ResourceError(str(exc)) from exc


RESOURCE_PAGE_SIZE = 100  # stored structures per resources/list page
CIF_MIME = "chemical/x-cif"


def build_server(settings: Settings | None = None, resource_page_size: int = RESOURCE_PAGE_SIZE) -> MCPServer:
    """The MCPServer with every tool, resource template and prompt registered; resources/list lists the stored
    structures, `resource_page_size` per page."""
    settings = settings or get_settings()
    server = MCPServer("matsearch", instructions=INSTRUCTIONS, version="0.1.0", log_level="WARNING")
    register_all(server, load_tools(), lambda: settings)

    @server.resource("structure://{id}", name="structure", mime_type=CIF_MIME, description="A stored CIF")
    def structure_resource(id: str) -> str:  # noqa: A002 - the URI variable is called id
        record = open_store(settings).get(id)
        if record is None:
            raise ResourceError(f"no structure with id {id!r} in memory")
        return record.cif

    for suffix, mime in ARTIFACT_MIME.items():  # one template per file type, so each is read with its MIME type
        server.resource(f"artifact://{{+path}}{suffix}", name=f"artifact{suffix}", mime_type=mime,
                        description=f"A {suffix[1:]} file a tool wrote in the workspace")(
            _artifact_reader(settings, suffix, is_text_mime(mime)))

    @server.resource("artifact://{+path}", name="artifact", mime_type="application/octet-stream",
                     description="Any other file a tool wrote in the workspace")
    def artifact_resource(path: str) -> bytes:
        return artifact_file(settings, path).read_bytes()

    for name, (description, args, template) in mcp_prompts().items():
        server.add_prompt(_prompt(name, description, args, template))
    _list_stored_structures(server, settings, resource_page_size)
    return server


def structure_listing(row: dict[str, object]) -> Resource:
    """A stored structure (a `StructureStore.list_page` row) as a listed resource: structure://{id}, named by its
    formula and space group, described with its size and energy when known."""
    name = f"{row.get(REDUCED_FORMULA_KEY, '?')} {row.get(SPACEGROUP_SYMBOL_KEY, '')}".strip()
    parts = [f"{row.get(FORMULA_KEY, name)}, space group {row.get(SPACEGROUP_SYMBOL_KEY, '?')}"
             + (f" (No. {row[SPACEGROUP_NUMBER_KEY]})" if SPACEGROUP_NUMBER_KEY in row else "")]
    if N_SITES_KEY in row:
        parts.append(f"{row[N_SITES_KEY]} atoms per cell")
    energy = row.get(ENERGY_PER_ATOM_KEY)
    if isinstance(energy, int | float):
        parts.append(f"energy {float(energy):.4f} eV/atom")
    if row.get(TAGS_KEY):
        parts.append(f"tags {row[TAGS_KEY]}")
    return Resource(uri=f"structure://{row['id']}", name=name, mime_type=CIF_MIME,
                    description="Stored structure: " + "; ".join(parts))


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str) -> int:
    """The offset an opaque cursor from `_cursor` carries; INVALID_PARAMS for anything else (the spec's answer)."""
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "offset" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise MCPError(code=INVALID_PARAMS, message=f"invalid resources/list cursor {cursor[:40]!r}: list from the start")


def _list_stored_structures(server: MCPServer, settings: Settings, page_size: int) -> None:
    """resources/list answers the server's fixed resources, then every stored structure (structure://{id}), paged
    with an opaque cursor. MCPServer lists only resources registered on it, unpaged (its handler ignores the
    cursor), so the low-level server's handler for the method is replaced through `add_request_handler`, the SDK's
    way to serve a method with its own pagination."""

    async def list_resources(ctx: object, params: PaginatedRequestParams) -> ListResourcesResult:
        offset = _offset(params.cursor) if params.cursor else 0
        fixed = await server.list_resources() if offset == 0 else []
        try:
            rows, next_offset = await anyio.to_thread.run_sync(
                lambda: open_store(settings).list_page(offset, page_size))
        except (ToolError, OSError) as exc:  # store unavailable, credentials refused
            raise MCPError(code=INTERNAL_ERROR, message=f"stored structures cannot be listed: {exc}") from exc
        return ListResourcesResult(resources=[*fixed, *map(structure_listing, rows)],
                                   next_cursor=None if next_offset is None else _cursor(next_offset))

    server._lowlevel_server.add_request_handler(  # noqa: SLF001 - the SDK exposes no other hook for this method
        "resources/list", PaginatedRequestParams, list_resources)


def _artifact_reader(settings: Settings, suffix: str, text: bool) -> Callable[[str], str | bytes]:
    """Reads artifact://{path}{suffix}: text files as text, others (PNG) as bytes."""

    def read(path: str) -> str | bytes:
        file = artifact_file(settings, path + suffix)
        return file.read_text(encoding="utf-8", errors="replace") if text else file.read_bytes()

    read.__name__ = f"artifact_{suffix[1:]}"
    return read


def _prompt(name: str, description: str, args: dict[str, str], template: str) -> Prompt:
    """An MCP prompt that fills its file's {placeholders} with the client's arguments."""

    def render(**kwargs: str) -> str:
        return render_prompt(f"mcp/{name}", **kwargs).partition("\n\n")[2].strip() or template

    return Prompt(
        name=name,
        description=description,
        arguments=[PromptArgument(name=a, description=text, required=True) for a, text in args.items()],
        fn=render,
        context_kwarg=None,
    )


MAX_REQUEST_BYTES = 16 * 1024 * 1024  # 16 MiB: room for large CIFs, refuses abuse
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class BearerAuth:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>` (constant-time compare)."""

    def __init__(self, app: object, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        import hmac

        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, b"Bearer " + self.token):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": b"missing or wrong bearer token"})
                return
        await self.app(scope, receive, send)  # type: ignore[operator]


def http_app(server: MCPServer, host: str, port: int, token: str | None, settings: Settings | None = None) -> object:
    """The streamable-HTTP ASGI app: DNS-rebinding protection (Host and Origin checked against the bound
    address), a request size limit, and bearer-token auth when a token is set (required off loopback).
    The web page (agent/web.py) is served under /web by the same app, behind the same Host, Origin and token rules."""
    from mcp.server.transport_security import TransportSecuritySettings

    if host not in LOOPBACK and not token:
        raise SystemExit(
            f"refusing to serve on {host}: binding beyond loopback needs a bearer token "
            "(--token or MATSEARCH_HTTP_TOKEN)"
        )
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", f"{host}:{port}"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", f"http://{host}:{port}"]
    security = TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                         allowed_origins=origins)
    app = server.streamable_http_app(streamable_http_path="/mcp", transport_security=security,
                                     max_request_body_size=MAX_REQUEST_BYTES, host=host)
    from agent.web import with_web

    return with_web(BearerAuth(app, token) if token else app, settings or get_settings(), host, port, token)


def main(argv: list[str] | None = None) -> None:
    """Command line: `python server.py [--http | --web] [--host H] [--port P] [--token T] [--workspace D]
    [--dask A]`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--web", action="store_true",
                        help="serve streamable HTTP and print the address of the web page (/web)")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    parser.add_argument("--token", default=os.environ.get("MATSEARCH_HTTP_TOKEN"),
                        help="bearer token clients must send (required when --host is not loopback)")
    parser.add_argument("--workspace", type=Path, default=None, help="workspace directory (MATSEARCH_WORKSPACE)")
    parser.add_argument("--dask", default=None, metavar="ADDRESS",
                        help="Dask scheduler for batch relaxations, e.g. tcp://10.0.0.5:8786 (MATSEARCH_DASK_ADDRESS)")
    args = parser.parse_args(argv)
    if args.workspace is not None:
        os.environ["MATSEARCH_WORKSPACE"] = str(args.workspace)
    if args.dask is not None:
        os.environ["MATSEARCH_DASK_ADDRESS"] = args.dask
    get_settings.cache_clear()
    server = build_server(get_settings())
    if args.http or args.web:
        import uvicorn

        app = http_app(server, args.host, args.port, args.token, get_settings())
        print(f"matsearch MCP server on http://{args.host}:{args.port}/mcp", file=sys.stderr, flush=True)
        if args.web:
            from agent.web import web_url

            print(f"matsearch web page: {web_url(args.host, args.port, args.token)}", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")  # type: ignore[arg-type]
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
