"""The matsearch web page (issue 29, first slice), served under /web by the process that serves MCP over HTTP.

Pages: /web (memory search, structure upload, jobs panel), /web/structure/{id} (3D view, summary, provenance,
downloads), /web/compare?ids=a,b (side by side), /web/trajectory/{path} (an MD trajectory played) and
/web/artifact/{path} (files tools wrote, confined to the workspace).
JSON: /web/api/structure/{id}, /web/api/trajectory/{path}, /web/api/search, POST /web/api/store, /web/api/jobs,
/web/api/jobs/{id}, POST /web/api/jobs/{id}/cancel and /resume; /web/api/jobs/{id}/events streams a job's
progress as server-sent events (agent/web_events.py).
Every read and action goes through the registry tools (get_structure, search_structures, store_structure, job_list,
job_status, job_result, job_cancel, job_resume), so the page shows what an MCP client would get.
The 3D viewer is WEAS (weas-widget on PyPI, MIT): its bundled widget.js (WEAS + three.js) is served from the
installed package; nothing is fetched from a CDN.

Security, as for /mcp: Host must name the bound address (DNS-rebinding), a request whose Origin is another site is
refused, and with a token every request needs it: `Authorization: Bearer <token>`, or once `?token=<token>` in the
URL (the page then keeps it in an HttpOnly, SameSite=Strict cookie scoped to /web).
"""

from __future__ import annotations

import hmac
import html
import importlib.resources
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from agent.web_events import event_stream
from memory.keys import REDUCED_FORMULA_KEY
from tools.core.errors import ToolError, ToolInputError
from tools.core.settings import Settings

PREFIX = "/web"
STATIC_DIR = Path(__file__).with_name("web_static")
TOKEN_COOKIE = "matsearch_web_token"
FORMATS = {"cif": ("chemical/x-cif", "cif"), "poscar": ("text/plain", "vasp"), "extxyz": ("text/plain", "extxyz")}
VIEWER_PACKAGE = "weas_widget"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "[::1]", "::1"}
STRUCTURE_ID = re.compile(r"^s-[0-9a-f]{16}$")


def viewer_asset(name: str) -> Path:
    """A file of the installed weas-widget package: static/widget.js, static/widget.css, or its LICENSE."""
    if name == "LICENSE":
        from importlib.metadata import distribution

        dist = distribution("weas-widget")
        for f in dist.files or []:
            if f.name == "LICENSE":
                return Path(str(dist.locate_file(f)))
        raise FileNotFoundError("weas-widget LICENSE")
    return Path(str(importlib.resources.files(VIEWER_PACKAGE) / "static" / name))


def viewer_version() -> str:
    from importlib.metadata import version

    return version("weas-widget")


# ---------------------------------------------------------------------------------------------------------- tools


def _call(settings: Settings, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run a registry tool as an HTTP client's call would, returning its output as JSON-ready data."""
    from tools.core.registry import ToolContext, get_tool, load_tools

    load_tools()
    out = get_tool(tool).run(arguments, ToolContext(settings=settings, transport="http"))
    return out.model_dump(mode="json")


async def call_tool(settings: Settings, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return await run_in_threadpool(_call, settings, tool, arguments)


def weas_frame(symbols: list[str], positions: list[list[float]], cell: list[float]) -> dict[str, Any]:
    """One structure in the atoms shape WEAS draws (as weas_widget.utils.PymatgenAdapter.to_weas makes it)."""
    return {"species": {sym: sym for sym in symbols}, "cell": cell, "positions": positions, "symbols": symbols,
            "attributes": {"atom": {}, "species": {}}, "pbc": [True, True, True]}


def weas_atoms(cif: str) -> dict[str, Any]:
    """A stored CIF as a WEAS frame (a disordered site is drawn as its majority species)."""
    from pymatgen.core import Structure

    s = Structure.from_str(cif, fmt="cif")
    symbols = [site.specie.symbol if site.is_ordered else max(site.species.items(), key=lambda kv: kv[1])[0].symbol
               for site in s]
    return weas_frame(symbols, [site.coords.tolist() for site in s], s.lattice.matrix.flatten().tolist())


def lattice_of(cif: str) -> dict[str, float]:
    from pymatgen.core import Structure

    lat = Structure.from_str(cif, fmt="cif").lattice
    return {k: round(float(v), 4) for k, v in zip(("a", "b", "c", "alpha", "beta", "gamma", "volume"),
                                                 (*lat.abc, *lat.angles, lat.volume), strict=True)}


# --------------------------------------------------------------------------------------------------------- pages


def _page(title: str, body: str, status: int = 200, scripts: str = "") -> HTMLResponse:
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - matsearch</title>
<link rel="stylesheet" href="{PREFIX}/static/web.css"></head>
<body><header><a href="{PREFIX}" class="brand">matsearch</a>
<nav><a href="{PREFIX}">Memory &amp; jobs</a> <a href="{PREFIX}/chat">Chat</a></nav>
<form action="{PREFIX}" method="get" role="search"><input name="q" placeholder="search memory: text or formula"
 aria-label="search memory"><button>Search</button></form></header>
<main>{body}</main>{scripts}</body></html>"""
    return HTMLResponse(doc, status_code=status)


def _error_page(status: int, title: str, message: str) -> HTMLResponse:
    body = f'<h1>{html.escape(title)}</h1><p class="error" role="alert">{html.escape(message)}</p>' \
           f'<p><a href="{PREFIX}">Back to the start page</a></p>'
    return _page(title, body, status)


def _fmt(x: float | None, unit: str = "", digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}{unit}"


def viewer_box(atoms_url: str, label: str = "3D structure viewer", trajectory: bool = False) -> str:
    """A WEAS viewer (drawn by web_static/viewer.js) of the atoms JSON at `atoms_url`, with its controls."""
    e = html.escape
    hint = ("Frames play in a loop; the viewer's controls pause and step them." if trajectory else
            "Drag to rotate, scroll to zoom. Atoms coloured by element (Jmol colours); the box is the unit cell.")
    return f"""<section class="viewer-box" aria-label="{e(label)}">
  <div class="viewer" data-atoms-url="{e(atoms_url)}"></div>
  <p class="hint">{hint}
  <label>Repeat <select class="repeat"><option value="1">1x1x1</option><option value="2">2x2x2</option>
  <option value="3">3x3x3</option></select></label>
  <label>Style <select class="style"><option value="1">ball and stick</option><option value="0">spheres</option>
  <option value="2">polyhedra</option><option value="3">sticks</option></select></label></p>
  <p class="viewer-status" role="status"></p>
 </section>"""


VIEWER_SCRIPTS = (f'<link rel="stylesheet" href="{PREFIX}/vendor/weas/widget.css">'
                  f'<script type="module" src="{PREFIX}/static/viewer.js"></script>')


def _facts_table(summary: dict[str, Any], lattice: dict[str, float]) -> str:
    """Formula, space group, lattice, sites, density, energy, E_hull, origin and parents of a stored structure."""
    sid = summary["id"]
    e = html.escape
    prov = summary.get("provenance") or {}
    parents = prov.get("parent_ids") or []
    parent_links = ", ".join(
        f'<a href="{PREFIX}/structure/{e(p)}">{e(p)}</a> (<a href="{PREFIX}/compare?ids={e(p)},{e(sid)}">compare</a>)'
        for p in parents) or "none"
    e_hull = (summary.get("properties") or {}).get("e_above_hull_eV")  # per atom, against its system's hull
    lat = lattice
    return f"""<table>
   <tr><th>Formula</th><td>{e(summary['reduced_formula'])} (cell {e(summary['formula'])})</td></tr>
   <tr><th>Space group</th><td class="spacegroup">{e(summary['spacegroup'])} ({summary['spacegroup_number']})</td></tr>
   <tr><th>Lattice</th><td>a={lat['a']} b={lat['b']} c={lat['c']} &#8491;;
    &alpha;={lat['alpha']} &beta;={lat['beta']} &gamma;={lat['gamma']}&deg;; V={lat['volume']} &#8491;&sup3;</td></tr>
   <tr><th>Sites</th><td>{summary['n_sites']}</td></tr>
   <tr><th>Density</th><td>{summary['density_g_cm3']} g/cm&sup3;</td></tr>
   <tr><th>Energy</th><td>{_fmt(summary.get('energy_per_atom_eV'), ' eV/atom')}</td></tr>
   <tr><th>E above hull</th><td>{_fmt(e_hull, ' eV/atom') if isinstance(e_hull, (int, float)) else '-'}</td></tr>
   <tr><th>Made by</th><td>{e(str(prov.get('tool', '-')))} at {e(str(prov.get('time', '-')))}</td></tr>
   <tr><th>Parents</th><td class="parents">{parent_links}</td></tr>
  </table>"""


def _structure_body(summary: dict[str, Any], lattice: dict[str, float],
                    chain: list[tuple[str, str, str]] | None = None) -> str:
    sid = summary["id"]
    e = html.escape
    steps = [f'<a href="{PREFIX}/structure/{e(i)}">{e(f)}</a> <small>{e(i)}, {e(t or "?")}</small>' if i != sid
             else f"<strong>{e(f)}</strong> <small>this, {e(t or '?')}</small>" for i, f, t in chain or []]
    chain_html = ('<p class="chain">Provenance: ' + " &rarr; ".join(steps) + "</p>") if len(steps) > 1 else ""
    props = summary.get("properties") or {}
    prop_rows = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in sorted(props.items()))
    downloads = " ".join(
        f'<a class="button" href="{PREFIX}/structure/{e(sid)}/download/{fmt}" download>{fmt.upper()}</a>'
        for fmt in FORMATS)
    return f"""
<h1><span id="formula">{e(summary['reduced_formula'])}</span> <small>{e(sid)}</small></h1>
<div class="structure">
 {viewer_box(f"{PREFIX}/api/structure/{sid}")}
 <section class="facts">
  {_facts_table(summary, lattice)}
  {chain_html}
  <p>Download: {downloads}
   <a class="button" href="{PREFIX}?q={e(sid)}">Similar in memory</a></p>
  {'<h2>Properties</h2><table>' + prop_rows + '</table>' if prop_rows else ''}
 </section>
</div>"""


MAX_COMPARE = 4


async def compare_page(request: Request) -> Response:
    """Structures side by side (e.g. a sample and its relaxed result): /web/compare?ids=a,b."""
    settings: Settings = request.app.state.settings
    ids = [i.strip() for i in request.query_params.get("ids", "").split(",") if i.strip()]
    if not 2 <= len(ids) <= MAX_COMPARE:
        return _error_page(400, "Compare what?", f"give 2 to {MAX_COMPARE} structure ids: /web/compare?ids=a,b")
    columns = []
    for sid in ids:
        out = await _structure_or_page(settings, sid, "cif")
        if isinstance(out, Response):
            return out
        lattice = await run_in_threadpool(lattice_of, out["text"])
        summary, e = out["structure"], html.escape
        columns.append(f"""<div class="column"><h2><a href="{PREFIX}/structure/{e(sid)}">{e(summary['reduced_formula'])}
 <small>{e(sid)}</small></a></h2>{viewer_box(f"{PREFIX}/api/structure/{sid}", f"3D view of {sid}")}
 {_facts_table(summary, lattice)}</div>""")
    body = f'<h1>Side by side</h1><div class="compare">{"".join(columns)}</div>'
    return _page("Compare", body, scripts=VIEWER_SCRIPTS)


MAX_FRAMES = 300  # frames sent to the browser (evenly spaced over the trajectory)
MAX_FRAME_ATOMS = 300_000  # frames x atoms


def trajectory_frames(path: Path) -> dict[str, Any]:
    """An extxyz trajectory as WEAS atoms frames, thinned to at most MAX_FRAMES and MAX_FRAME_ATOMS."""
    from ase.io import read

    frames = read(str(path), index=":", format="extxyz")
    if not isinstance(frames, list) or not frames:
        raise ToolInputError(f"{path.name} holds no frames")
    n_total = len(frames)
    keep = max(1, min(MAX_FRAMES, MAX_FRAME_ATOMS // max(1, len(frames[0]))))
    step = max(1, -(-n_total // keep))
    chosen = frames[::step]
    atoms = [weas_frame(a.get_chemical_symbols(), a.positions.tolist(), a.cell.array.flatten().tolist())
             for a in chosen]
    return {"frames": atoms, "n_frames": n_total, "shown_every": step}


async def trajectory_page(request: Request) -> Response:
    rel = request.path_params["path"]
    e = html.escape
    body = f"""<h1>Trajectory <small>{e(rel)}</small></h1>
<div class="structure">{viewer_box(f"{PREFIX}/api/trajectory/{rel}", "trajectory viewer", trajectory=True)}
<section class="facts"><p><a class="button" href="{PREFIX}/artifact/{e(rel)}" download>Download extxyz</a></p>
</section></div>"""
    return _page("Trajectory", body, scripts=VIEWER_SCRIPTS)


async def api_trajectory(request: Request) -> Response:
    from tools.core.paths import ARTIFACT_SCHEME, workspace_path

    settings: Settings = request.app.state.settings
    rel = request.path_params["path"]
    if not rel.endswith((".extxyz", ".xyz")):
        return JSONResponse({"error": "a trajectory is an .extxyz or .xyz file"}, status_code=400)
    try:
        path = workspace_path(ARTIFACT_SCHEME + rel, settings.resolved_workspace(), "trajectory")
        data = await run_in_threadpool(trajectory_frames, path)
    except ToolInputError as exc:
        return _json_error(exc, 404)
    except Exception as exc:  # noqa: BLE001 - a file ASE cannot read: say so
        return JSONResponse({"error": f"could not read {rel} as a trajectory: {exc}"}, status_code=400)
    return JSONResponse({"atoms": data["frames"], "n_frames": data["n_frames"], "shown_every": data["shown_every"]})


async def _structure_or_page(settings: Settings, sid: str, fmt: str) -> dict[str, Any] | Response:
    """get_structure's output, or the error page saying why not (404 for an unknown id)."""
    try:
        return await call_tool(settings, "get_structure", {"id": sid, "format": fmt})
    except ToolInputError as exc:
        return _error_page(404 if "no structure" in str(exc) else 400, "Structure not found", str(exc))
    except ToolError as exc:
        return _error_page(500, "Could not read the structure", str(exc))


async def structure_page(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    sid = request.path_params["sid"]
    out = await _structure_or_page(settings, sid, "cif")
    if isinstance(out, Response):
        return out
    lattice = await run_in_threadpool(lattice_of, out["text"])
    chain = await run_in_threadpool(provenance_chain, settings, out["structure"])
    return _page(out["structure"]["reduced_formula"], _structure_body(out["structure"], lattice, chain),
                 scripts=VIEWER_SCRIPTS)


MAX_CHAIN = 12


def provenance_chain(settings: Settings, summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(id, formula, tool that made it) from the oldest ancestor to this structure, following each first parent
    (at most MAX_CHAIN steps; an ancestor no longer in memory ends the chain)."""
    from tools.core.registry import ToolContext

    store = ToolContext(settings=settings).store
    chain = [(summary["id"], summary["reduced_formula"], str((summary.get("provenance") or {}).get("tool", "")))]
    parents = (summary.get("provenance") or {}).get("parent_ids") or []
    seen = {summary["id"]}
    while parents and len(chain) < MAX_CHAIN and parents[0] not in seen:
        record = store.get(parents[0])
        if record is None:
            break
        seen.add(record.id)
        chain.append((record.id, record.metadata[REDUCED_FORMULA_KEY], str(record.provenance.get("tool", ""))))
        parents = record.provenance.get("parent_ids") or []
    return chain[::-1]


async def index_page(request: Request) -> Response:
    q = html.escape(request.query_params.get("q", ""))
    body = f"""
<section aria-labelledby="search-h"><h1 id="search-h">Memory</h1>
<form id="search-form" role="search"><input id="search-q" name="q" value="{q}"
 placeholder="text (perovskite oxide), a formula (LaMnO3) or an id (structures like it)"
 aria-label="text, formula or structure id">
<button>Search</button></form>
<p id="search-status" role="status"></p>
<table id="search-results" hidden><thead><tr><th>id</th><th>formula</th><th>space group</th><th>sites</th>
<th>eV/atom</th><th>score</th></tr></thead><tbody></tbody></table></section>
<section aria-labelledby="upload-h"><h2 id="upload-h">Add a structure</h2>
<form id="upload-form"><input type="file" id="upload-file" aria-label="CIF, POSCAR or extxyz file"
 accept=".cif,.vasp,.poscar,.xyz,.extxyz,POSCAR,CONTCAR,text/plain">
<input id="upload-description" placeholder="description (optional)" aria-label="description">
<button>Store</button></form>
<p id="upload-status" role="status"></p></section>
<section aria-labelledby="jobs-h"><h1 id="jobs-h">Jobs</h1>
<p id="jobs-status" role="status"></p>
<table id="jobs"><thead><tr><th>job</th><th>tool</th><th>state</th><th>progress</th><th>elapsed / estimate</th>
<th></th></tr></thead><tbody></tbody></table>
<div id="job-detail" hidden></div></section>
<p class="small">3D viewer: <a href="{PREFIX}/vendor/weas/LICENSE">WEAS {html.escape(viewer_version())}</a>
(weas-widget, MIT), served from the installed package.</p>"""
    return _page("matsearch", body, scripts=f'<script type="module" src="{PREFIX}/static/index.js"></script>')


async def download(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    sid, fmt = request.path_params["sid"], request.path_params["fmt"]
    if fmt not in FORMATS:
        return _error_page(404, "Unknown format", f"no download format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = await _structure_or_page(settings, sid, fmt)
    if isinstance(out, Response):
        return out
    mime, ext = FORMATS[fmt]
    name = f"{out['structure']['reduced_formula']}_{sid}.{ext}"
    return Response(out["text"], media_type=mime, headers={"content-disposition": f'attachment; filename="{name}"'})


async def chat_page(request: Request) -> Response:
    """The chat: threads on the side, the open thread's transcript, a message box. /web/chat starts a new thread."""
    from agent.web_chat import THREAD_ID, backend_name

    thread = request.path_params.get("thread")
    if thread is None:
        import secrets

        return RedirectResponse(f"{PREFIX}/chat/t-{secrets.token_hex(4)}", status_code=303)
    if not THREAD_ID.match(thread):
        return _error_page(400, "Bad thread id", "a thread id is 1-64 letters, digits, '-' or '_'")
    e = html.escape
    body = f"""<div class="chat" data-thread="{e(thread)}">
<aside aria-labelledby="threads-h"><h2 id="threads-h">Threads</h2><p><a class="button" href="{PREFIX}/chat">New
 thread</a></p><ul id="threads"></ul></aside>
<section aria-labelledby="chat-h"><h1 id="chat-h">Chat <small>{e(thread)}</small></h1>
<p class="small" id="backend">Answered by the {e(backend_name(request.app.state.settings))}.</p>
<ol id="transcript" aria-live="polite"></ol>
<form id="chat-form"><textarea id="chat-message" rows="2" aria-label="message to the agent"
 placeholder="e.g. a stable spinel with Mg and Al; then: show the best one"></textarea>
<button id="chat-send">Send</button> <button type="button" id="chat-cancel" hidden>Cancel</button></form>
<p id="chat-status" role="status"></p></section></div>"""
    return _page("Chat", body, scripts=f'<script type="module" src="{PREFIX}/static/chat.js"></script>')


# ---------------------------------------------------------------------------------------------------------- JSON


def _json_error(exc: ToolError, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": str(exc), "kind": exc.kind}, status_code=status)


async def api_structure(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    try:
        out = await call_tool(settings, "get_structure", {"id": request.path_params["sid"], "format": "cif"})
    except ToolInputError as exc:
        return _json_error(exc, 404 if "no structure" in str(exc) else 400)
    except ToolError as exc:
        return _json_error(exc, 500)
    atoms = await run_in_threadpool(weas_atoms, out["text"])
    return JSONResponse({"structure": out["structure"], "atoms": atoms})


def search_arguments(text: str, n: int) -> dict[str, Any]:
    """A search box's text as search_structures arguments: similarity to a structure when it is a stored id, a
    formula when it reads as one (one word starting with an element symbol, e.g. LaMnO3), otherwise by meaning."""
    from pymatgen.core import Composition

    text = text.strip()
    if STRUCTURE_ID.match(text):  # a stored structure's id: the structures most like it
        return {"similar_to": {"id": text}, "n": n}
    if text and not any(c.isspace() for c in text) and text[0].isupper():
        try:
            comp = Composition(text)
        except Exception:  # noqa: BLE001 - pymatgen raises several kinds for a non-formula: search by meaning
            comp = None
        if comp is not None and comp.num_atoms > 0:
            return {"formula": comp.reduced_formula, "n": n}
    return {"query": text, "n": n}


async def api_search(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    q = request.query_params.get("q", "").strip()
    formula = request.query_params.get("formula", "").strip()
    try:
        n = max(1, min(100, int(request.query_params.get("n", "20"))))
    except ValueError:
        return JSONResponse({"error": "n must be a whole number"}, status_code=400)
    if not q and not formula:
        return JSONResponse({"error": "type some text or a formula to search for"}, status_code=400)
    args = {"formula": formula, "n": n} if formula else await run_in_threadpool(search_arguments, q, n)
    try:
        out = await call_tool(settings, "search_structures", args)
    except ToolError as exc:
        return _json_error(exc)
    return JSONResponse({"arguments": args, **out})


async def api_jobs(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    try:
        limit = max(1, min(500, int(request.query_params.get("limit", "50"))))
    except ValueError:
        return JSONResponse({"error": "limit must be a whole number"}, status_code=400)
    try:
        return JSONResponse(await call_tool(settings, "job_list", {"limit": limit}))
    except ToolError as exc:
        return _json_error(exc, 500)


async def _job_action(request: Request, tool: str) -> Response:
    """job_cancel or job_resume on the job in the path; 404 for an unknown job."""
    settings: Settings = request.app.state.settings
    try:
        return JSONResponse(await call_tool(settings, tool, {"job_id": request.path_params["job_id"]}))
    except ToolInputError as exc:
        return _json_error(exc, 404 if "no job" in str(exc) else 400)
    except ToolError as exc:
        return _json_error(exc, 500)


async def api_job_cancel(request: Request) -> Response:
    return await _job_action(request, "job_cancel")


async def api_job_resume(request: Request) -> Response:
    return await _job_action(request, "job_resume")


async def api_job(request: Request) -> Response:
    """A job's state, with its result (structure ids, artifact:// URIs, numbers) once it has finished."""
    settings: Settings = request.app.state.settings
    job_id = request.path_params["job_id"]
    try:
        status = await call_tool(settings, "job_status", {"job_id": job_id})
        if status["state"] in ("succeeded", "failed", "cancelled", "interrupted"):
            status = await call_tool(settings, "job_result", {"job_id": job_id})
    except ToolInputError as exc:
        return _json_error(exc, 404 if "no job" in str(exc) else 400)
    except ToolError as exc:
        return _json_error(exc, 500)
    return JSONResponse(status)


JOB_EVENT_KEYS = ("job_id", "tool", "state", "progress", "total", "message", "estimated_seconds")


async def api_job_events(request: Request) -> Response:
    """A job's progress as server-sent events (`progress`: state, fraction, message), ending with `done` and its
    result; 404 (JSON) for an unknown job."""
    from tools.core.jobs import FINISHED

    settings: Settings = request.app.state.settings
    job_id = request.path_params["job_id"]

    async def read() -> tuple[dict[str, Any], bool]:
        status = await call_tool(settings, "job_status", {"job_id": job_id})
        if status["state"] in FINISHED:
            return await call_tool(settings, "job_result", {"job_id": job_id}), True
        total = status["total"]
        fraction = min(1.0, status["progress"] / total) if total else None
        return {**{k: status[k] for k in JOB_EVENT_KEYS}, "fraction": fraction}, False

    try:
        await call_tool(settings, "job_status", {"job_id": job_id})
    except ToolInputError as exc:
        return _json_error(exc, 404 if "no job" in str(exc) else 400)
    return event_stream(read, "progress")


MAX_UPLOAD_BYTES = 4 * 1024 * 1024  # a pasted or uploaded structure file; the atom limit applies after parsing


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is longer than `limit` bytes (without reading the rest)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def api_store(request: Request) -> Response:
    """Store a structure given as CIF, POSCAR or extxyz text (the page's upload box) through store_structure."""
    settings: Settings = request.app.state.settings
    body = await read_capped(request, MAX_UPLOAD_BYTES)
    if body is None:
        return JSONResponse({"error": f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB; "
                                      "store big cells with the CLI or an MCP client (allow_large)"}, status_code=413)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return JSONResponse({"error": "the file is not text (CIF, POSCAR or extxyz are plain text)"}, status_code=400)
    if not text.strip():
        return JSONResponse({"error": "the file is empty"}, status_code=400)
    description = request.query_params.get("description") or None
    args: dict[str, Any] = {"structure": {"text": text}, "description": description}
    try:
        out = await call_tool(settings, "store_structure", args)
    except ToolInputError as exc:
        return _json_error(exc)
    except ToolError as exc:
        return _json_error(exc, 500)
    sid = out["id"]
    return JSONResponse({"id": sid, "deduplicated": out["deduplicated"], "url": f"{PREFIX}/structure/{sid}"})


# Text types as text/plain so the browser shows them (a report.md, a CIF) instead of downloading them.
_TEXT = "text/plain; charset=utf-8"
ARTIFACT_TYPES = {".png": "image/png", ".json": "application/json", ".csv": _TEXT, ".md": _TEXT, ".cif": _TEXT,
                  ".txt": _TEXT, ".log": _TEXT, ".xyz": _TEXT, ".extxyz": _TEXT}


async def artifact(request: Request) -> Response:
    """A file a tool wrote under the workspace (artifact://<path>); anything outside it is refused. Types that a
    browser would run (HTML, SVG) are sent as downloads, and nothing from this route may run scripts."""
    from tools.core.paths import ARTIFACT_SCHEME, workspace_path

    settings: Settings = request.app.state.settings
    rel = request.path_params["path"]
    try:
        path = workspace_path(ARTIFACT_SCHEME + rel, settings.resolved_workspace(), "artifact")
    except ToolInputError as exc:
        return _error_page(404, "No such file", str(exc))
    mime = ARTIFACT_TYPES.get(path.suffix.lower())
    headers = {"content-security-policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
               "x-content-type-options": "nosniff"}
    if mime is None:
        headers["content-disposition"] = f'attachment; filename="{path.name}"'
    return FileResponse(path, media_type=mime or "application/octet-stream", headers=headers)


# --------------------------------------------------------------------------------------------------------- files


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR.resolve()) or not path.is_file():
        return _error_page(404, "Not found", f"no file {name!r}")
    return FileResponse(path, media_type=_media_type(path))


async def vendor_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ("widget.js", "widget.css", "LICENSE"):
        return _error_page(404, "Not found", f"no viewer file {name!r}")
    path = viewer_asset(name)
    return FileResponse(path, media_type=_media_type(path), headers={"cache-control": "max-age=86400"})


def _media_type(path: Path) -> str:
    return {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}.get(path.suffix, "text/plain")


async def not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith(PREFIX + "/api/"):
        return JSONResponse({"error": f"no such endpoint {request.url.path}"}, status_code=404)
    return _error_page(404, "Not found", f"nothing at {request.url.path}")


def web_routes() -> list[Route]:
    from agent.web_chat import chat_routes

    return [
        *chat_routes(PREFIX),
        Route(PREFIX, index_page),
        Route(PREFIX + "/", index_page),
        Route(PREFIX + "/structure/{sid}", structure_page),
        Route(PREFIX + "/structure/{sid}/download/{fmt}", download),
        Route(PREFIX + "/compare", compare_page),
        Route(PREFIX + "/chat", chat_page),
        Route(PREFIX + "/chat/{thread}", chat_page),
        Route(PREFIX + "/trajectory/{path:path}", trajectory_page),
        Route(PREFIX + "/api/trajectory/{path:path}", api_trajectory),
        Route(PREFIX + "/api/structure/{sid}", api_structure),
        Route(PREFIX + "/api/search", api_search),
        Route(PREFIX + "/api/jobs", api_jobs),
        Route(PREFIX + "/api/jobs/{job_id}", api_job),
        Route(PREFIX + "/api/jobs/{job_id}/events", api_job_events),
        Route(PREFIX + "/api/jobs/{job_id}/cancel", api_job_cancel, methods=["POST"]),
        Route(PREFIX + "/api/jobs/{job_id}/resume", api_job_resume, methods=["POST"]),
        Route(PREFIX + "/api/store", api_store, methods=["POST"]),
        Route(PREFIX + "/artifact/{path:path}", artifact),
        Route(PREFIX + "/static/{name:path}", static_file),
        Route(PREFIX + "/vendor/weas/{name}", vendor_file),
    ]


# ------------------------------------------------------------------------------------------------------ security


def _header(scope: dict, name: bytes) -> str | None:
    for k, v in scope.get("headers") or []:
        if k.lower() == name:
            return v.decode("latin-1")
    return None


def host_allowed(host_header: str | None, host: str, port: int) -> bool:
    """The Host header names loopback (any port) or the bound address and port, as the /mcp check allows."""
    if not host_header:
        return False
    if host_header == f"{host}:{port}":
        return True
    name = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    return name in LOOPBACK_NAMES


def origin_allowed(origin: str | None, host: str, port: int) -> bool:
    """No Origin (not a browser, or a same-origin GET) or an http origin the Host check would allow."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme == "http" and host_allowed(parts.netloc, host, port)


async def _respond(scope: dict, receive: Any, send: Any, response: Response) -> None:
    await response(scope, receive, send)


class WebGate:
    """ASGI wrapper: /web requests go to the page app after the Host, Origin and token checks; anything else
    (the /mcp endpoint, lifespan) goes to `inner` unchanged."""

    def __init__(self, inner: Any, web: Any, host: str, port: int, token: str | None) -> None:
        self.inner, self.web, self.host, self.port = inner, web, host, port
        self.token = token.encode() if token else None

    def _token_ok(self, scope: dict) -> bool:
        if self.token is None:
            return True
        auth = (_header(scope, b"authorization") or "").encode()
        if hmac.compare_digest(auth, b"Bearer " + self.token):
            return True
        cookies = _header(scope, b"cookie") or ""
        for part in cookies.split(";"):
            k, _, v = part.strip().partition("=")
            if k == TOKEN_COOKIE and hmac.compare_digest(v.encode(), self.token):
                return True
        return False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.inner(scope, receive, send)
            return
        if not host_allowed(_header(scope, b"host"), self.host, self.port):
            return await _respond(scope, receive, send, _error_page(
                421, "Wrong host", "this page answers only to the address the server was started on"))
        if not origin_allowed(_header(scope, b"origin"), self.host, self.port):
            return await _respond(scope, receive, send, _error_page(
                403, "Refused", "a request from another site's page was refused"))
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = (query.get("token") or [None])[0]
        if self.token is not None and given is not None and scope.get("method") == "GET":
            if not hmac.compare_digest(given.encode(), self.token):
                return await _respond(scope, receive, send, _error_page(
                    401, "Wrong token", "the token in the address is not this server's token"))
            rest = "&".join(f"{k}={v}" for k, vs in query.items() if k != "token" for v in vs)
            response = RedirectResponse(path + ("?" + rest if rest else ""), status_code=303)
            response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict", path=PREFIX)
            return await _respond(scope, receive, send, response)
        if not self._token_ok(scope):
            message = ("this server needs its token: open the address `matsearch web` printed (it ends in "
                       "?token=...), or send Authorization: Bearer <token>")
            if path.startswith(PREFIX + "/api/"):
                response: Response = JSONResponse({"error": message}, status_code=401)
            else:
                response = _error_page(401, "Token needed", message)
            response.headers["www-authenticate"] = "Bearer"
            return await _respond(scope, receive, send, response)
        await self.web(scope, receive, send)


def web_app(settings: Settings) -> Starlette:
    app = Starlette(routes=web_routes(), exception_handlers={404: not_found})
    app.state.settings = settings
    return app


def with_web(inner: Any, settings: Settings, host: str, port: int, token: str | None) -> WebGate:
    """`inner` (the MCP app) plus the web page under /web, behind the Host/Origin/token checks."""
    return WebGate(inner, web_app(settings), host, port, token)


def web_url(host: str, port: int, token: str | None = None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}{PREFIX}" + (f"?token={token}" if token else "")
