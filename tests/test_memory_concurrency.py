"""Several writers and authenticated clients on one memory: ids are the structure's content, so two processes
storing the same structures at once through one chromadb server end with one record each carrying both stores'
tags and descriptions; a chromadb server behind token auth is reached with the right token, and a wrong or
missing one is said plainly (no traceback, no 16 s of retries)."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import SecretStr
from pymatgen.io.cif import CifWriter

import memory.store as store_module
from memory.store import StoreAuthError, StructureStore, content_id, legacy_content_id
from tests.conftest import ROOT, free_port, perovskite, rocksalt
from tools.core.settings import Settings

# --- the content id, and the race a second writer can lose (one process, deterministic) ---------------------------


def test_content_id_ignores_site_order_and_periodic_images_but_not_geometry():
    s = perovskite()
    shuffled = s.get_sorted_structure(key=lambda site: -site.specie.Z)
    shuffled.translate_sites([0, 1], [1.0, -1.0, 0.0], to_unit_cell=False)
    assert str(CifWriter(s)) != str(CifWriter(shuffled))  # the old CIF-hash ids differed
    assert content_id(s) == content_id(shuffled)
    assert content_id(perovskite(3.906)) != content_id(s)  # another geometry is another record


def test_a_writer_that_loses_the_race_merges_into_the_winners_record(tmp_path, monkeypatch):
    """Store B looked before store A wrote (its lookup patched to see nothing): its insert-if-absent leaves A's
    record, and its tags, description and properties are merged in; it reports the record as already there."""
    store = StructureStore(tmp_path / "mem")
    first = store.add(rocksalt(), provenance={"tool": "a"}, tags=["from-a"], description="written by A")
    monkeypatch.setattr(store, "_stored_ids", lambda items: {})
    monkeypatch.setattr(store, "_find_equivalent", lambda *args: None)
    second = store.add(rocksalt(), provenance={"tool": "b"}, tags=["from-b"], description="written by B",
                       properties={"band_gap": 4.5})
    assert second.id == first.id and second.deduplicated and not first.deduplicated
    record = store.get(first.id)
    assert record.metadata["tags"] == "from-a,from-b" and record.properties == {"band_gap": 4.5}
    assert record.metadata["description"] == "written by A\nwritten by B" and store.count() == 1
    batch = store.add_many([{"structure": rocksalt(), "tags": ["from-c"]}, {"structure": perovskite()}])
    assert [r.deduplicated for r in batch] == [True, False] and batch[0].id == first.id
    assert store.get(first.id).metadata["tags"] == "from-a,from-b,from-c" and store.count() == 2


def test_records_stored_under_the_old_cif_hash_id_are_still_found(tmp_path, monkeypatch):
    store = StructureStore(tmp_path / "mem")
    monkeypatch.setattr(store_module, "content_id", lambda s: legacy_content_id(str(CifWriter(s))))
    old = store.add(perovskite(), provenance={"tool": "old"}, tags=["old"])
    monkeypatch.undo()
    assert old.id == legacy_content_id(str(CifWriter(perovskite()))) != content_id(perovskite())
    again = store.add(perovskite(), provenance={"tool": "new"}, energy=-40.0, tags=["new"])
    assert again.id == old.id and again.deduplicated and store.count() == 1
    assert store.get(old.id).metadata["energy"] == -40.0  # same content: the number lands on the old record


# --- a real chromadb server ---------------------------------------------------------------------------------------


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    """`chroma run` on a free port; its port once it answers."""
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(chroma).exists():
        pytest.skip("the chroma CLI is not installed")
    port = free_port()
    proc = subprocess.Popen([chroma, "run", "--path", str(tmp_path / "server-db"), "--port", str(port),
                             "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/api/v2/heartbeat")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise TimeoutError("chroma run did not answer in 60 s")
            time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


WRITER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from memory.store import StructureStore
    from tests.conftest import perovskite, rocksalt
    url, name, flag_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    structures = [rocksalt(), rocksalt(5.64, "Na", "Cl"), perovskite(), perovskite(3.99, "Ba"), rocksalt(4.8, "Ca")]
    if name == "p2":  # the same structures in another site order: another CIF, the same content
        structures = [s.get_sorted_structure(key=lambda site: site.specie.Z) for s in structures]
    store = StructureStore(url=url)
    store.search_text("warm up the embedding model", n=1)
    (flag_dir / f"ready-{name}").touch()
    while not (flag_dir / "go").exists():
        time.sleep(0.005)
    results = store.add_many([{"structure": s, "provenance": {"tool": name}, "tags": [name],
                               "description": f"stored by {name}"} for s in structures])
    print(json.dumps([[r.id, r.deduplicated] for r in results]))
""")


@pytest.mark.slow
def test_two_processes_storing_the_same_structures_end_with_one_record_each(chroma_server, tmp_path):
    url = f"http://127.0.0.1:{chroma_server}"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("p1", "p2")]
    deadline = time.time() + 180
    while not all((tmp_path / f"ready-{n}").exists() for n in ("p1", "p2")):
        assert time.time() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    (tmp_path / "go").touch()  # both store at once
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert [r[0] for r in outputs[0]] == [r[0] for r in outputs[1]]  # the same ids in both processes
    created = [not a[1] for a in outputs[0]], [not b[1] for b in outputs[1]]
    assert [a + b for a, b in zip(*created, strict=True)] == [1] * 5  # exactly one process created each record
    store = StructureStore(url=url)
    assert store.count() == 5
    for record_id, _ in outputs[0]:
        meta = store.get(record_id).metadata
        assert set(meta["tags"].split(",")) == {"p1", "p2"}, meta["tags"]
        assert set(meta["description"].split("\n")) == {"stored by p1", "stored by p2"}


class _TokenGate(BaseHTTPRequestHandler):
    """A reverse proxy in front of `chroma run` that lets through only requests carrying the token (as a gateway
    in front of a chromadb server, or chromadb's own token auth, would): 401 otherwise."""

    protocol_version = "HTTP/1.1"
    upstream: int = 0
    header, expected = "Authorization", ""

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get(self.header) != self.expected:
            reply = b'{"error":"Unauthorized","message":"missing or wrong token"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "content-length")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
@pytest.mark.parametrize("header", ["Authorization", "X-Chroma-Token"])
def test_a_token_gated_chroma_server_takes_the_token_from_settings(chroma_server, header, monkeypatch):
    gate = type("Gate", (_TokenGate,), {"upstream": chroma_server, "header": header,
                                        "expected": "Bearer s3cret" if header == "Authorization" else "s3cret"})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), gate)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    try:
        monkeypatch.setenv("MATSEARCH_CHROMA_TOKEN", "s3cret")
        monkeypatch.setenv("MATSEARCH_CHROMA_AUTH_HEADER", header)
        settings = Settings(chroma_url=url)
        assert isinstance(settings.chroma_token, SecretStr) and "s3cret" not in repr(settings)
        from tools.core.registry import open_store

        store = open_store(settings)  # the way every tool opens it: the token travels from the settings
        sid = store.add(rocksalt(), provenance={"tool": "auth-test"}).id
        assert store.get(sid).metadata["reduced_formula"] == "MgO"
        assert [r["id"] for r in store.list_page()[0]] == [sid]

        started = time.time()
        for token, said in (("wrong", f"refused the token sent in {header} with HTTP 401"),
                            (None, "refused no token (none is configured) with HTTP 401")):
            with pytest.raises(StoreAuthError) as info:
                StructureStore(url=url, auth_token=token, auth_header=header)
            assert said in str(info.value) and "MATSEARCH_CHROMA_TOKEN" in str(info.value)
            assert "s3cret" not in str(info.value) and "'wrong'" not in str(info.value)  # no token is echoed
        assert time.time() - started < 10  # said at once, not after the reconnect retries
    finally:
        proxy.shutdown()
        proxy.server_close()


@pytest.mark.slow
def test_refused_credentials_reach_a_tool_caller_as_a_runtime_error(chroma_server, workspace, monkeypatch):
    """Through the registry's store opening (as every tool does): a runtime error naming the cause, no trace."""
    from tools.core.errors import ToolRuntimeError
    from tools.core.registry import open_store

    gate = type("Gate", (_TokenGate,), {"upstream": chroma_server, "expected": "Bearer s3cret"})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), gate)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        settings = Settings(chroma_url=f"http://127.0.0.1:{proxy.server_address[1]}", chroma_token="wrong")
        with pytest.raises(ToolRuntimeError) as info:
            open_store(settings)
        assert "refused" in str(info.value) and "HTTP 401" in str(info.value)
        assert "Traceback" not in str(info.value)
    finally:
        proxy.shutdown()
        proxy.server_close()
