"""The web page under /web (agent/web.py): structure view, downloads, search, jobs, and the HTTP security rules;
one browser test in headless Chromium (Debian's package, driven by Playwright) checks the 3D view draws atoms."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from starlette.testclient import TestClient

from tests.conftest import ROOT, cif_of, free_port, perovskite, rocksalt, server_env
from tools.core.registry import ToolContext, get_tool, load_tools
from tools.core.settings import get_settings

BASE = "http://127.0.0.1:8765"


def store(structure: Structure, **extra: object) -> str:
    load_tools()
    out = get_tool("store_structure").run({"structure": {"text": cif_of(structure)}, **extra},
                                          ToolContext(settings=get_settings()))
    return out.id  # type: ignore[attr-defined]


def client(token: str | None = None) -> TestClient:
    import server

    settings = get_settings()
    app = server.http_app(server.build_server(settings), "127.0.0.1", 8765, token, settings)
    return TestClient(app, base_url=BASE)  # type: ignore[arg-type]


def test_structure_page_downloads_search_and_jobs(workspace: Path) -> None:
    parent = store(rocksalt())
    sid = store(perovskite(), description="strontium titanate perovskite", parent_ids=[parent],
                properties={"e_above_hull_eV": 0.012})
    with client() as c:
        page = c.get(f"/web/structure/{sid}")
        assert page.status_code == 200
        assert "SrTiO3" in page.text and "Pm-3m" in page.text and f"/web/structure/{parent}" in page.text
        assert "0.0120 eV/atom" in page.text  # E above hull
        assert re.search(r'Provenance: <a href="/web/structure/' + parent + '">MgO</a>.*&rarr; <strong>SrTiO3',
                         page.text)
        assert 'href="/web/vendor/weas/widget.css"' in page.text
        script = re.search(r'<script type="module" src="(/web/[^"]+)"', page.text)
        assert script is not None
        module = c.get(script.group(1))
        assert module.status_code == 200 and "javascript" in module.headers["content-type"]
        assert script.group(1) == "/web/static/viewer.js" and f'data-atoms-url="/web/api/structure/{sid}"' in page.text
        viewer_src = re.search(r'import widget from "(/web/[^"]+)"', module.text)
        assert viewer_src is not None and viewer_src.group(1) == "/web/vendor/weas/widget.js"
        viewer = c.get(viewer_src.group(1))  # the viewer's bundle, served from the installed weas-widget package
        assert viewer.status_code == 200 and "javascript" in viewer.headers["content-type"]
        assert len(viewer.content) > 500_000 and b"export" in viewer.content
        assert "MIT" in c.get("/web/vendor/weas/LICENSE").text
        assert "https://" not in module.text  # nothing from a CDN

        api = c.get(f"/web/api/structure/{sid}").json()
        assert api["structure"]["reduced_formula"] == "SrTiO3"
        assert sorted(api["atoms"]["symbols"]) == ["O", "O", "O", "Sr", "Ti"] and len(api["atoms"]["cell"]) == 9

        cif = c.get(f"/web/structure/{sid}/download/cif")
        assert cif.status_code == 200 and "attachment" in cif.headers["content-disposition"]
        parsed = Structure.from_str(cif.text, fmt="cif")
        assert parsed.composition.reduced_formula == "SrTiO3" and len(parsed) == 5
        poscar = c.get(f"/web/structure/{sid}/download/poscar")
        assert Structure.from_str(poscar.text, fmt="poscar").composition.reduced_formula == "SrTiO3"
        assert "Lattice=" in c.get(f"/web/structure/{sid}/download/extxyz").text
        assert c.get(f"/web/structure/{sid}/download/pdf").status_code == 404

        missing = c.get("/web/structure/s-0000000000000000")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
        assert "no structure with id" in missing.text and "<html" in missing.text
        assert c.get("/web/api/structure/s-0000000000000000").status_code == 404
        assert c.get("/web/nothing/here").status_code == 404

        by_formula = c.get("/web/api/search", params={"q": "SrTiO3"}).json()
        assert by_formula["arguments"] == {"formula": "SrTiO3", "n": 20}
        assert [h["id"] for h in by_formula["hits"]] == [sid]
        by_text = c.get("/web/api/search", params={"q": "titanate perovskite"}).json()
        assert by_text["mode"] == "text" and by_text["hits"][0]["id"] == sid
        like = c.get("/web/api/search", params={"q": sid}).json()
        assert like["mode"] == "similarity" and like["hits"][0]["id"] == sid  # itself first, then the rock salt
        assert f'href="/web?q={sid}"' in page.text  # "Similar in memory" on the structure page
        assert c.get("/web/api/search").status_code == 400
        assert "Memory" in c.get("/web", params={"q": "SrTiO3"}).text

        assert c.get("/web/api/jobs").json() == {"jobs": []}
        load_tools()
        job = get_tool("job_start").run({"tool": "get_structure", "arguments": {"id": sid}},
                                        ToolContext(settings=get_settings()))
        deadline = time.time() + 30
        while time.time() < deadline:
            jobs = c.get("/web/api/jobs").json()["jobs"]
            if jobs and jobs[0]["state"] == "succeeded":
                break
            time.sleep(0.1)
        assert jobs[0]["job_id"] == job.job_id and jobs[0]["tool"] == "get_structure"  # type: ignore[attr-defined]
        assert jobs[0]["state"] == "succeeded"
        done = c.post(f"/web/api/jobs/{jobs[0]['job_id']}/cancel", headers={"origin": BASE})
        assert done.status_code == 200 and done.json()["state"] == "succeeded"  # a finished job stays as it was
        assert c.post("/web/api/jobs/j-nope/cancel").status_code == 404

        both = c.get("/web/compare", params={"ids": f"{parent},{sid}"})
        assert both.status_code == 200 and "SrTiO3" in both.text and "MgO" in both.text
        assert both.text.count('class="viewer"') == 2 and "/web/static/viewer.js" in both.text
        assert f"/web/compare?ids={parent},{sid}" in page.text  # the structure page offers it next to the parent
        assert c.get("/web/compare", params={"ids": sid}).status_code == 400
        assert c.get("/web/compare", params={"ids": f"{sid},s-0000000000000000"}).status_code == 404

        # /mcp is still there next to /web
        assert c.get("/mcp").status_code != 404


def wait_job(c: TestClient, job_id: str) -> dict:
    deadline = time.time() + 30
    while time.time() < deadline:
        job = c.get(f"/web/api/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_upload_artifacts_and_job_details(workspace: Path) -> None:
    with client() as c:
        good = c.post("/web/api/store?description=rock%20salt", content=cif_of(rocksalt()).encode(),
                      headers={"origin": BASE})
        assert good.status_code == 200, good.text
        sid = good.json()["id"]
        assert good.json()["url"] == f"/web/structure/{sid}" and c.get(good.json()["url"]).status_code == 200
        again = c.post("/web/api/store", content=cif_of(rocksalt()).encode())
        assert again.json() == {**good.json(), "deduplicated": True}

        broken = c.post("/web/api/store", content=b"data_x\n_cell_length_a 4\nthis is not a CIF\n")
        assert broken.status_code == 400 and broken.json()["kind"] == "input error" and broken.json()["error"]
        assert c.post("/web/api/store", content=b"   ").json()["error"] == "the file is empty"
        assert "not text" in c.post("/web/api/store", content=b"\xff\xfe\x00binary").json()["error"]
        huge = c.post("/web/api/store", content=b"x" * (5 * 1024 * 1024))
        assert huge.status_code == 413 and "larger than 4 MiB" in huge.json()["error"]
        assert c.get(f"/web/structure/{sid}").status_code == 200  # still serving after bad input

        folder = workspace / "artifacts" / "demo"
        folder.mkdir(parents=True)
        (folder / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
        (folder / "page.html").write_text("<script>alert(1)</script>")
        (folder / "report.md").write_text("# Report\n")
        report = c.get("/web/artifact/artifacts/demo/report.md")
        assert report.headers["content-type"].startswith("text/plain") and report.text == "# Report\n"
        png = c.get("/web/artifact/artifacts/demo/plot.png")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert "default-src 'none'" in png.headers["content-security-policy"]
        page = c.get("/web/artifact/artifacts/demo/page.html")  # served as a download, never run as a page
        assert page.headers["content-type"] == "application/octet-stream" and "attachment" in page.headers[
            "content-disposition"]
        (workspace.parent / "secret.txt").write_text("TOPSECRET")
        for bad in ("../secret.txt", "artifacts/../../secret.txt", "%2e%2e/secret.txt", "artifacts/none.png"):
            refused = c.get(f"/web/artifact/{bad}")
            assert refused.status_code == 404 and "TOPSECRET" not in refused.text, bad

        load_tools()
        ctx = ToolContext(settings=get_settings())
        ok = get_tool("job_start").run({"tool": "get_structure", "arguments": {"id": sid}}, ctx)
        done = wait_job(c, ok.job_id)  # type: ignore[attr-defined]
        assert done["state"] == "succeeded" and done["result"]["structure"]["id"] == sid
        bad = get_tool("job_start").run({"tool": "get_structure", "arguments": {"id": "s-0000000000000000"}}, ctx)
        failed = wait_job(c, bad.job_id)  # type: ignore[attr-defined]
        assert failed["state"] == "failed" and "no structure" in failed["error"]
        resumed = c.post(f"/web/api/jobs/{failed['job_id']}/resume", headers={"origin": BASE})
        assert resumed.status_code == 200 and resumed.json()["job_id"] != failed["job_id"]
        assert c.get("/web/api/jobs/j-nope").status_code == 404
        index = c.get("/web").text
        assert 'id="upload-form"' in index and 'id="job-detail"' in index


def write_trajectory(workspace: Path, n: int = 12) -> str:
    """An MD-like extxyz trajectory under the workspace; its artifact path."""
    from ase.build import bulk
    from ase.io import write

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        frames.append(atoms)
    folder = workspace / "artifacts" / "run_md" / "t1"
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "trajectory.extxyz", frames, format="extxyz")
    return "artifacts/run_md/t1/trajectory.extxyz"


def test_trajectory_view(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.web

    rel = write_trajectory(workspace)
    with client() as c:
        data = c.get(f"/web/api/trajectory/{rel}").json()
        assert data["n_frames"] == 12 and data["shown_every"] == 1 and len(data["atoms"]) == 12
        assert data["atoms"][0]["symbols"] == ["Cu"] * 4 and len(data["atoms"][0]["cell"]) == 9
        monkeypatch.setattr(agent.web, "MAX_FRAMES", 5)
        thinned = c.get(f"/web/api/trajectory/{rel}").json()
        assert thinned["shown_every"] == 3 and len(thinned["atoms"]) == 4
        page = c.get(f"/web/trajectory/{rel}")
        assert page.status_code == 200 and f'data-atoms-url="/web/api/trajectory/{rel}"' in page.text
        assert c.get("/web/api/trajectory/../outside.extxyz").status_code in (400, 404)
        assert c.get("/web/api/trajectory/artifacts/none.extxyz").status_code == 404
        assert c.get("/web/api/trajectory/artifacts/run_md/t1").status_code == 400


def wait_turn(c: TestClient, thread: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        data = c.get(f"/web/api/chat/{thread}").json()
        if not data["running"]:
            return data
        last_user = max(i for i, e in enumerate(data["events"]) if e["kind"] == "user")
        assert all(e["kind"] != "answer" for e in data["events"][last_user:]), "an answer while still running"
        time.sleep(0.05)
    raise AssertionError(f"chat turn in {thread} did not finish")


def test_chat_offline_planner_and_threads(workspace: Path) -> None:
    sid = store(perovskite(), description="strontium titanate perovskite")
    with client() as c:
        new = c.get("/web/chat", follow_redirects=False)
        assert new.status_code == 303 and re.fullmatch(r"/web/chat/t-[0-9a-f]{8}", new.headers["location"])
        page = c.get("/web/chat/t1")
        assert page.status_code == 200 and "offline planner" in page.text and "/web/static/chat.js" in page.text
        assert c.get("/web/static/chat.js").status_code == 200
        sent = c.post("/web/api/chat/t1", json={"message": "what do you have in memory about titanate?"})
        assert sent.status_code == 202
        with c.stream("GET", "/web/api/chat/t1/events") as r:  # the turn as server-sent events, then done
            streamed = list(read_events(r))
        assert streamed[-1][0] == "done" and streamed[-1][1]["events"][-1]["kind"] == "answer", streamed
        assert all(name == "transcript" and data["running"] for name, data in streamed[:-1])
        data = wait_turn(c, "t1")
        kinds = [e["kind"] for e in data["events"]]
        assert kinds == ["user", "tool_call", "tool_result", "answer"], kinds
        assert data["events"][1]["name"] == "search_structures" and sid in data["events"][3]["text"]
        assert "offline planner" in data["events"][0]["backend"]
        assert c.post("/web/api/chat/t1", json={"message": "  "}).status_code == 400
        assert c.post("/web/api/chat/t1", content=b"not json").status_code == 400
        assert c.post("/web/api/chat/bad%20id", json={"message": "hi"}).status_code == 400
        assert c.post("/web/api/chat/t1/cancel").status_code == 409  # nothing running
    with client() as c:  # a new app (as after a restart) reopens the thread from the workspace
        again = c.get("/web/api/chat/t1").json()
        assert [e["kind"] for e in again["events"]] == kinds and not again["running"]
        assert [t["thread"] for t in c.get("/web/api/chat").json()["threads"]] == ["t1"]


def test_chat_with_an_llm_streams_tool_calls_and_the_answer(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fake_openai import FakeOpenAI

    sid = store(perovskite())

    def policy(messages: list[dict]) -> dict:
        results = [m["content"] for m in messages if m.get("role") == "tool"]
        if not results:
            return {"tool_calls": [{"name": "search_structures", "arguments": {"formula": "SrTiO3", "n": 3}}]}
        found = json.loads(results[0])["hits"][0]["id"]
        return {"content": f"Memory holds SrTiO3 as {found}."}

    with FakeOpenAI(policy) as llm:
        monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        get_settings.cache_clear()
        with client() as c:
            assert "LLM agent" in c.get("/web/chat/l1").text
            assert c.post("/web/api/chat/l1", json={"message": "is SrTiO3 in memory?"}).status_code == 202
            data = wait_turn(c, "l1")
    get_settings.cache_clear()
    kinds = [e["kind"] for e in data["events"]]
    assert kinds == ["user", "tool_call", "tool_result", "answer"], data["events"]
    assert "LLM agent" in data["events"][0]["backend"]
    assert data["events"][1]["name"] == "search_structures" and sid in data["events"][2]["text"]
    assert data["events"][3]["text"] == f"Memory holds SrTiO3 as {sid}."
    assert all(body.get("stream") for body in llm.requests)


@pytest.mark.slow
def test_chat_turn_cancelled_mid_tool(workspace: Path) -> None:
    sid = store(rocksalt())
    with client() as c:
        c.post("/web/api/chat/md", json={"message": f"run MD on {sid} at 600 K for 2000 steps"})
        deadline = time.time() + 120
        while time.time() < deadline:
            events = c.get("/web/api/chat/md").json()["events"]
            if any(e["kind"] == "tool_call" and e.get("progress") for e in events):
                break
            time.sleep(0.2)
        call = next(e for e in events if e["kind"] == "tool_call")
        assert call["name"] == "run_md" and call["total"] == 2000 and call["progress"] > 0
        assert c.post("/web/api/chat/md/cancel").status_code == 200
        data = wait_turn(c, "md", timeout=60)
        assert "cancelled" in data["events"][-1]["text"].lower(), data["events"][-1]


def test_security_rules(workspace: Path) -> None:
    sid = store(rocksalt())
    with client(token="s3cret") as c:
        refused = c.get(f"/web/structure/{sid}")
        assert refused.status_code == 401 and "Token needed" in refused.text
        assert c.get("/web/api/jobs").status_code == 401
        assert c.get("/web/vendor/weas/widget.js").status_code == 401
        assert c.get(f"/web/structure/{sid}", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert c.get(f"/web/structure/{sid}", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/web?token=wrong").status_code == 401
        assert c.post("/mcp", json={}).status_code == 401  # the MCP endpoint keeps its own token rule
        login = c.get(f"/web/structure/{sid}?token=s3cret", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == f"/web/structure/{sid}"
        assert "httponly" in login.headers["set-cookie"].lower()
        assert "samesite=strict" in login.headers["set-cookie"].lower()
        assert c.get(f"/web/structure/{sid}").status_code == 200  # the cookie now carries the token
        assert c.get("/web/api/jobs").status_code == 200
    with client() as c:
        assert c.get("/web", headers={"host": "evil.example:8765"}).status_code == 421  # DNS rebinding
        cross = c.post("/web/api/jobs/j-x/cancel", headers={"origin": "http://evil.example"})
        assert cross.status_code == 403
        assert c.get("/web", headers={"host": "localhost:9999"}).status_code == 200


def read_events(response: Any) -> Iterator[tuple[str, Any]]:
    """(event name, data) for each server-sent event of a streaming response; ("", comment) for a comment line."""
    name, data = "", []
    for line in response.iter_lines():
        if line.startswith(":"):
            yield "", line[1:].strip()
        elif line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])
        elif not line and data:
            yield name, json.loads("\n".join(data))
            name, data = "", []


def start_copper_md(steps: int) -> str:
    """A real job: EMT molecular dynamics of fcc copper (4 atoms), reporting progress about 100 times."""
    load_tools()
    copper = cif_of(Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]]))
    job = get_tool("job_start").run({"tool": "run_md", "arguments": {
        "structure": {"text": copper}, "potential": "emt", "steps": steps, "log_every": 50}},
        ToolContext(settings=get_settings()))
    return job.job_id  # type: ignore[attr-defined]


def test_job_progress_streams_as_server_sent_events(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.web_events

    monkeypatch.setattr(agent.web_events, "HEARTBEAT_S", 0.2)
    job_id = start_copper_md(steps=300)
    with client() as c, c.stream("GET", f"/web/api/jobs/{job_id}/events", headers={"origin": BASE}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        events = list(read_events(r))
    progress = [d for name, d in events if name == "progress"]
    assert len(progress) >= 2, events
    assert all(p["job_id"] == job_id and p["state"] in ("queued", "running") for p in progress)
    fractions = [p["fraction"] for p in progress if p["fraction"] is not None]
    assert fractions == sorted(fractions) and fractions[-1] > fractions[0], progress
    assert any("step" in (p["message"] or "") for p in progress)
    name, final = events[-1]
    assert name == "done" and final["state"] == "succeeded" and final["result"]["steps"] == 300, final
    assert not agent.web_events.LIVE  # the stream's generator has ended


def test_event_streams_keep_the_security_rules_and_stop_on_disconnect(workspace: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.web_events

    monkeypatch.setattr(agent.web_events, "HEARTBEAT_S", 0.2)
    job_id = start_copper_md(steps=100_000)
    with client(token="s3cret") as c:
        for url in (f"/web/api/jobs/{job_id}/events", "/web/api/chat/t1/events"):
            refused = c.get(url)
            assert refused.status_code == 401 and "token" in refused.json()["error"], url
            assert c.get(url, headers={"authorization": "Bearer wrong"}).status_code == 401
        bearer = {"authorization": "Bearer s3cret"}
        foreign = c.get(f"/web/api/jobs/{job_id}/events", headers={**bearer, "origin": "http://evil.example"})
        assert foreign.status_code == 403
        unknown = c.get("/web/api/jobs/job-nope/events", headers=bearer)
        assert unknown.status_code == 404 and "no job with id 'job-nope'" in unknown.json()["error"]
        with c.stream("GET", f"/web/api/jobs/{job_id}/events", headers=bearer) as r:
            seen, events = [], read_events(r)
            for name, _ in events:  # progress events, and a heartbeat comment while nothing changes
                seen.append(name)
                if "" in seen and "progress" in seen:
                    break
            assert len(agent.web_events.LIVE) == 1, seen
        deadline = time.time() + 5  # leaving the stream cancels its generator
        while agent.web_events.LIVE and time.time() < deadline:
            time.sleep(0.05)
        assert not agent.web_events.LIVE
        assert c.post(f"/web/api/jobs/{job_id}/cancel", headers=bearer).status_code == 200
        idle = list(read_events(c.get("/web/api/chat/t1/events", headers=bearer)))  # no turn: at once done
        assert [name for name, _ in idle] == ["done"] and idle[0][1]["events"] == [], idle


def test_refuses_non_loopback_without_token(workspace: Path) -> None:
    import server

    with pytest.raises(SystemExit, match="needs a bearer token"):
        server.http_app(server.build_server(get_settings()), "0.0.0.0", 8765, None)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def start_md_job(port: int, cif: str) -> str:
    """Start a long EMT MD run as a job over MCP; its id."""
    from mcp import Client

    async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=60) as mcp:
        job = await mcp.call_tool("job_start", {"tool": "run_md", "arguments": {
            "structure": {"text": cif}, "potential": "emt", "steps": 100_000, "log_every": 50}})
        assert not job.is_error, job
        return job.structured_content["job_id"]


def _playwright_missing() -> str | None:
    if CHROMIUM is None:
        return "Debian's chromium is not installed (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (PyPI) is not installed"
    return None


@contextmanager
def web_browser(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[int, Any]]:
    """`python server.py --web` in a subprocess and headless Chromium (Debian's, through Playwright): (port,
    browser). Screenshots saved under tmp_path are copied to $MATSEARCH_WEB_SHOTS when set (test artifacts)."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--web", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed before uvicorn starts listening
        assert line.strip() == f"matsearch web page: http://127.0.0.1:{port}/web", line
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--use-angle=swiftshader",
                                                                        "--enable-unsafe-swiftshader"])
            yield port, browser
            browser.close()
        if os.environ.get("MATSEARCH_WEB_SHOTS"):
            out = Path(os.environ["MATSEARCH_WEB_SHOTS"])
            out.mkdir(parents=True, exist_ok=True)
            for png in tmp_path.glob("*.png"):
                shutil.copy(png, out / png.name)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def goto_when_up(page: Any, url: str) -> None:
    """Open url, retrying for a minute while the server is still starting."""
    deadline = time.time() + 60
    while True:
        try:
            page.goto(url)
            return
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def canvas_pixels(page: Any, path: Path) -> np.ndarray:
    """A screenshot of the first WEAS canvas on the page (after a frame or two), as RGB floats."""
    from PIL import Image

    page.wait_for_function("window.matsearchViewerReady === true", timeout=60_000)
    canvas = page.locator(".viewer canvas").first
    canvas.wait_for(state="visible", timeout=30_000)
    page.wait_for_timeout(1000)
    canvas.screenshot(path=str(path))
    return np.asarray(Image.open(path).convert("RGB"), dtype=float)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_browser_draws_the_structure(tmp_path: Path) -> None:
    """`python server.py --web` in a subprocess; headless Chromium opens the structure page, waits for the WEAS
    canvas, saves a screenshot and checks it shows something (pixel variance), then the search links to it."""
    reason = _playwright_missing()
    if reason:
        pytest.skip(reason)
    ws = tmp_path / "workspace"
    env = server_env(ws)
    ids = subprocess.run(
        [sys.executable, "-c", "import sys; from tests.test_web import store; from tests.conftest import perovskite;"
         "print(store(perovskite()))"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    sid = ids.stdout.strip().splitlines()[-1]
    with web_browser(tmp_path, env) as (port, browser):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        goto_when_up(page, f"http://127.0.0.1:{port}/web/structure/{sid}")
        pixels = canvas_pixels(page, tmp_path / "structure.png")
        page.screenshot(path=str(tmp_path / "structure-page.png"), full_page=True)
        assert pixels.std() > 10, f"the canvas looks blank (std {pixels.std():.1f}); page errors: {errors}"
        colours = {tuple(c) for c in (pixels[::4, ::4] // 32).reshape(-1, 3).astype(int)}
        assert len(colours) >= 4, f"too few colours on the canvas: {colours}"
        assert "SrTiO3" in page.locator("#formula").inner_text()

        # an MD trajectory plays; two structures side by side
        rel = write_trajectory(ws)
        page.goto(f"http://127.0.0.1:{port}/web/trajectory/{rel}")
        page.wait_for_function("window.matsearchViewerReady === true", timeout=60_000)
        assert "12 frames of 4 atoms" in page.inner_text(".viewer-status")
        page.screenshot(path=str(tmp_path / "trajectory.png"), full_page=True)
        page.goto(f"http://127.0.0.1:{port}/web/compare?ids={sid},{sid}")
        page.wait_for_function("window.matsearchViewerReady === true", timeout=60_000)
        assert page.locator(".viewer canvas").count() >= 2
        page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)

        page.goto(f"http://127.0.0.1:{port}/web?q=SrTiO3")
        link = page.locator(f"#search-results a[href='/web/structure/{sid}']")
        link.wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "search.png"), full_page=True)
        link.click()
        page.wait_for_url(f"**/web/structure/{sid}")

        # upload through the page: a broken file gets a clear message, a good one a link to its 3D view
        (tmp_path / "broken.cif").write_text("data_x\nthis is not a CIF\n")
        (tmp_path / "MgO.cif").write_text(cif_of(rocksalt()))
        page.goto(f"http://127.0.0.1:{port}/web")
        page.set_input_files("#upload-file", str(tmp_path / "broken.cif"))
        page.click("#upload-form button")
        page.wait_for_selector("#upload-status.error", timeout=60_000)
        assert "broken.cif" in page.inner_text("#upload-status")
        page.screenshot(path=str(tmp_path / "upload-error.png"), full_page=True)
        page.set_input_files("#upload-file", str(tmp_path / "MgO.cif"))
        page.click("#upload-form button")
        page.locator("#upload-status a").wait_for(timeout=60_000)
        assert page.locator("#upload-status a").get_attribute("href").startswith("/web/structure/s-")

        # a running job: progress in the panel, cancelled from the keyboard
        copper = cif_of(Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]]))
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
            job_id = pool.submit(asyncio.run, start_md_job(port, copper)).result()
        cancel = page.locator(f"button[aria-label='cancel job {job_id}']")
        cancel.wait_for(timeout=60_000)
        page.wait_for_timeout(2500)  # one refresh with some progress
        page.screenshot(path=str(tmp_path / "jobs-running.png"), full_page=True)
        cancel.focus()
        page.keyboard.press("Enter")
        page.locator(f"tr[data-job-id='{job_id}'] td.state-cancelled").wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "jobs-cancelled.png"), full_page=True)

        # chat from the keyboard (offline planner), then reload: the thread is still there
        page.goto(f"http://127.0.0.1:{port}/web/chat/b1")
        page.locator("#chat-message").focus()
        page.keyboard.type("what do you have in memory about titanate?")
        page.keyboard.press("Enter")
        answer = page.locator("#transcript .ev-answer")
        answer.wait_for(timeout=90_000)
        assert page.locator(f"#transcript .ev-answer a[href='/web/structure/{sid}']").count() == 1
        assert page.locator("#transcript .ev-tool_call").first.inner_text().startswith("tool search_structures")
        page.wait_for_function("document.getElementById('chat-cancel').hidden === true", timeout=30_000)
        assert page.locator("#chat-cancel").is_hidden()  # nothing to cancel once answered
        page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
        page.reload()
        page.locator("#transcript .ev-answer").wait_for(timeout=30_000)
        assert page.locator("#transcript .ev-user").first.inner_text().endswith("about titanate?")
        page.locator("#threads a[aria-current='page']").wait_for(timeout=30_000)  # the thread list loads on its own
        assert page.locator("#threads a[aria-current='page']").count() == 1

        # a finished search's ranked candidates, sortable (the job API answered by the test: a real search
        # takes minutes here)
        fake = {"job_id": "job-fake", "tool": "hierarchical_search", "state": "succeeded", "progress": 1,
                "total": 1, "message": None, "estimated_seconds": None, "elapsed_seconds": 1.0, "error": None,
                "resumed_as": None, "note": None,
                "result": {"ranked": [
                    {"rank": 1, "id": sid, "formula": "SrTiO3", "family": "perovskite", "family_match": True,
                     "spacegroup": "Pm-3m", "generator": "prototype", "e_above_hull_eV": 0.02,
                     "formation_energy_per_atom_eV": -3.1, "converged": True, "parent_id": None},
                    {"rank": 2, "id": "s-00000000000000aa", "formula": "SrTiO3", "family": "perovskite",
                     "family_match": False, "spacegroup": "P1", "generator": "diffusion",
                     "e_above_hull_eV": 0.001, "formation_energy_per_atom_eV": -3.0, "converged": False,
                     "parent_id": sid},
                    {"rank": 3, "id": "s-00000000000000bb", "formula": "SrTiO3", "family": None,
                     "family_match": False, "spacegroup": "P1", "generator": "diffusion",
                     "e_above_hull_eV": None, "formation_energy_per_atom_eV": -2.0, "converged": True,
                     "parent_id": None}]}}
        listing = {"jobs": [{**fake, "result": None}]}
        jobs_page = browser.new_page(viewport={"width": 1280, "height": 800})
        jobs_page.route("**/web/api/jobs?limit=50", lambda route: route.fulfill(json=listing))
        jobs_page.route("**/web/api/jobs/job-fake", lambda route: route.fulfill(json=fake))
        jobs_page.goto(f"http://127.0.0.1:{port}/web")
        jobs_page.click("button[aria-label='details of job job-fake']")
        first_id = "#job-detail table.ranked tbody tr:first-child td:nth-child(2)"
        jobs_page.locator(first_id).wait_for(timeout=30_000)
        assert jobs_page.inner_text(first_id) == sid
        jobs_page.click("button[aria-label='sort by E_hull (eV/atom)']")
        assert jobs_page.inner_text(first_id) == "s-00000000000000aa"
        jobs_page.click("button[aria-label='sort by E_hull (eV/atom)']")  # descending; no E_hull stays last
        ids = jobs_page.locator("#job-detail table.ranked tbody tr td:nth-child(2)").all_inner_texts()
        assert ids == [sid, "s-00000000000000aa", "s-00000000000000bb"], ids
        assert jobs_page.locator(f"#job-detail a[href='/web/compare?ids={sid},s-00000000000000aa']").count() == 1
        jobs_page.screenshot(path=str(tmp_path / "ranked.png"), full_page=True)

        # phone width: nothing wider than the screen
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(f"http://127.0.0.1:{port}/web/structure/{sid}")
        phone.wait_for_function("window.matsearchViewerReady === true", timeout=60_000)
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        phone.screenshot(path=str(tmp_path / "structure-phone.png"), full_page=True)
        for name, url in (("index", "/web"), ("chat", "/web/chat/b1")):
            phone.goto(f"http://127.0.0.1:{port}{url}")
            phone.wait_for_timeout(1500)  # the jobs table / transcript filled in
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name
            phone.screenshot(path=str(tmp_path / f"{name}-phone.png"), full_page=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_browser_search_from_the_chat(tmp_path: Path) -> None:
    """The issue's end-to-end run: a search asked in the chat (offline planner, real models), its progress bar
    moving, the top structure opened in 3D (canvas not blank) and its CIF downloaded and parsed."""
    reason = _playwright_missing()
    if reason:
        pytest.skip(reason)
    with web_browser(tmp_path, server_env(tmp_path / "workspace")) as (port, browser):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        goto_when_up(page, f"http://127.0.0.1:{port}/web/chat/search")
        page.locator("#chat-message").fill("a double perovskite oxide containing La and Mn")
        page.locator("#chat-message").press("Enter")
        bar = page.locator("#transcript .ev-tool_call progress").first
        bar.wait_for(timeout=120_000)
        values = []
        deadline = time.time() + 600
        while time.time() < deadline and page.locator("#transcript .ev-answer").count() == 0:
            value = page.evaluate("(() => { const b = document.querySelector('#transcript progress');"
                                  " return b ? b.value : null; })()")
            if value is not None and (not values or value != values[-1]):
                values.append(value)
                if len(values) == 2:
                    page.screenshot(path=str(tmp_path / "search-progress.png"), full_page=True)
            page.wait_for_timeout(500)
        answer = page.locator("#transcript .ev-answer")
        answer.wait_for(timeout=10_000)
        page.wait_for_function("document.getElementById('chat-cancel').hidden === true", timeout=30_000)
        page.screenshot(path=str(tmp_path / "search-answer.png"), full_page=True)
        assert len(values) >= 2 and values[-1] > values[0], f"the progress bar did not move: {values}"
        first = re.search(r"^1\. (s-[0-9a-f]{16}) ", answer.inner_text(), re.MULTILINE)
        assert first is not None, answer.inner_text()
        href = f"/web/structure/{first.group(1)}"
        top = answer.locator(f"a[href='{href}']").first
        top.click()
        page.wait_for_url(f"**{href}")
        pixels = canvas_pixels(page, tmp_path / "top-structure.png")
        assert pixels.std() > 10, "the top structure's canvas looks blank"
        cif = page.request.get(f"http://127.0.0.1:{port}{href}/download/cif")
        assert cif.ok
        structure = Structure.from_str(cif.text(), fmt="cif")
        assert {"La", "Mn", "O"} <= {el.symbol for el in structure.composition.elements}
