"""Shared fixtures: a fresh workspace per test, helpers to start the real MCP server as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from tools.core.settings import get_settings
from tools.structures.io import structure_to_cif

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh workspace directory that the settings point at."""
    ws = tmp_path / "workspace"
    monkeypatch.setenv("MATSEARCH_WORKSPACE", str(ws))
    monkeypatch.delenv("MATSEARCH_CHROMA_URL", raising=False)
    get_settings.cache_clear()
    yield ws
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One torch thread for a module of tiny-model tests (threads only add overhead on 2 shared cores)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def rocksalt(a: float = 4.21, cation: str = "Mg", anion: str = "O") -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def perovskite(a: float = 3.905, a_site: str = "Sr", b_site: str = "Ti") -> Structure:
    return Structure.from_spacegroup(
        "Pm-3m", Lattice.cubic(a), [a_site, b_site, "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]]
    )


def cif_of(structure: Structure) -> str:
    return structure_to_cif(structure)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(workspace: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MATSEARCH_WORKSPACE"] = str(workspace)
    env.pop("MATSEARCH_CHROMA_URL", None)
    return env


def start_http_server(workspace: Path, port: int) -> subprocess.Popen[bytes]:
    """Start `server.py --http` and wait until it accepts connections."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py"), "--http", "--port", str(port)],
        cwd=ROOT,
        env=server_env(workspace),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start listening within 120 s")
