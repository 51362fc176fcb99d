"""Regenerate docs/web.png, the README's screenshot of the web page (`matsearch web`).

Stores a few real structures (rock-salt MgO, perovskite SrTiO3, rutile TiO2) into a temporary workspace through the
store_structure tool, starts `python server.py --web` on a free port against that workspace, lists memory on the
start page, opens SrTiO3 in the WEAS 3D viewer in headless Chromium (Debian's `chromium`, driven by Playwright) and
saves a 1280x800 PNG. Everything is local: the viewer's JavaScript is served from the installed weas-widget package.

    .venv/bin/python docs/make_screenshot.py [--out docs/web.png]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 800
MAX_BYTES = 300 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def store_examples(workspace: Path) -> dict[str, str]:
    """Store the example structures into `workspace` through the real store_structure tool; formula -> id."""
    os.environ["MATSEARCH_WORKSPACE"] = str(workspace)
    os.environ.pop("MATSEARCH_CHROMA_URL", None)
    sys.path.insert(0, str(ROOT))
    from pymatgen.core import Lattice, Structure

    from tools.core.registry import ToolContext, get_tool, load_tools
    from tools.core.settings import get_settings
    from tools.structures.io import structure_to_cif

    get_settings.cache_clear()
    load_tools()
    tool, ctx = get_tool("store_structure"), ToolContext(settings=get_settings())

    def store(structure: Structure, description: str, **extra: object) -> str:
        out = tool.run({"structure": {"text": structure_to_cif(structure)}, "description": description, **extra}, ctx)
        return out.id  # type: ignore[attr-defined]

    mgo = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    srtio3 = Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.905), ["Sr", "Ti", "O"],
                                       [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]])
    rutile = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"],
                                       [[0, 0, 0], [0.3053, 0.3053, 0]])
    ids = {"MgO": store(mgo, "magnesium oxide, rock salt")}
    ids["TiO2"] = store(rutile, "titanium dioxide, rutile oxide")
    ids["SrTiO3"] = store(srtio3, "strontium titanate, cubic perovskite oxide")
    get_settings.cache_clear()
    return ids


def optimise(path: Path) -> None:
    """Shrink the PNG with Pillow when it is installed: lossless first, a 256-colour palette if still too big."""
    try:
        from PIL import Image
    except ImportError:
        return
    image = Image.open(path).convert("RGB")
    best = path.read_bytes()
    for candidate in (image, image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)):
        buffer = io.BytesIO()
        candidate.save(buffer, format="PNG", optimize=True)
        if len(buffer.getvalue()) < len(best):
            best = buffer.getvalue()
        if len(best) <= MAX_BYTES:
            break
    path.write_bytes(best)


def shoot(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("Debian's chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="matsearch-shot-") as tmp:
        workspace = Path(tmp) / "workspace"
        ids = store_examples(workspace)
        port = free_port()
        env = dict(os.environ, MATSEARCH_WORKSPACE=str(workspace))
        proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--web", "--port", str(port)], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            print(proc.stdout.readline().strip())  # printed before uvicorn listens
            base = f"http://127.0.0.1:{port}/web"
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=[
                    "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
                page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                deadline = time.time() + 60
                while True:  # the server may still be starting
                    try:
                        page.goto(f"{base}?q=oxide")
                        break
                    except Exception:
                        if time.time() > deadline:
                            raise
                        time.sleep(0.5)
                # memory: the stored structures, found by text
                page.locator(f"#search-results a[href='/web/structure/{ids['SrTiO3']}']").wait_for(timeout=60_000)
                page.click(f"#search-results a[href='/web/structure/{ids['SrTiO3']}']")
                page.wait_for_url(f"**/web/structure/{ids['SrTiO3']}")
                page.wait_for_function("window.matsearchViewerReady === true", timeout=60_000)
                page.locator(".viewer canvas").first.wait_for(state="visible", timeout=30_000)
                box = page.locator(".viewer canvas").first.bounding_box()
                assert box is not None
                x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                page.mouse.move(x, y)  # turn the cell a little so it reads as 3D
                page.mouse.down()
                page.mouse.move(x + 22, y + 14, steps=10)
                page.mouse.up()
                page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] - 5)
                page.wait_for_timeout(2000)
                if errors:
                    sys.exit(f"page errors: {errors}")
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    optimise(out)
    print(f"{out}: {out.stat().st_size / 1024:.0f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "web.png")
    shoot(parser.parse_args().out)


if __name__ == "__main__":
    main()
