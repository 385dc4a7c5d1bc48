"""End to end in a real headless browser: ``lcid serve``, Debian's chromium, Playwright.

Loads the page, uploads a real 4D series (Siemens AP with bval/bvec/json), waits for the
findings and the NiiVue viewer, steps through volumes and flagged places, asks a
question, then uploads a real slice (PNG) and reads the model's answer. Fails on any
request that leaves 127.0.0.1. Screenshots go to ``tests/artifacts/`` (git-ignored).

Needs ``scripts/install_browser.sh`` (chromium from apt, the ``playwright`` pip package);
skipped with the reason when either is missing. Never runs ``playwright install``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REAL_SERIES

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """``lcid serve`` on a free port, as a user would start it (or ``$LCID_E2E_URL`` if set)."""
    if os.environ.get("LCID_E2E_URL"):
        yield os.environ["LCID_E2E_URL"].rstrip("/")
        return
    port = _free_port()
    command = [sys.executable, "-c", "from lcid.cli import main; main()", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{base}/api/health", timeout=2) as response:
                if response.status == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"lcid serve did not start: {process.stdout.read() if process.stdout else ''}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no browser at {CHROMIUM}: run scripts/install_browser.sh (apt-get install chromium)")
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed: run scripts/install_browser.sh"
    )
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, server):
    """A fresh page that records every request and every console error."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.requests = []
    page.errors = []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(server + "/")
    yield page
    context.close()
    outside = [u for u in page.requests if not u.startswith((server, "blob:", "data:"))]
    assert not outside, f"the page contacted other hosts: {outside[:5]}"
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def _series_files() -> list[str]:
    image = REAL_SERIES["siemens_ap"]
    stem = str(image)[: -len(".nii.gz")]
    return [str(image), stem + ".bval", stem + ".bvec", stem + ".json"]


def test_check_a_real_series_view_it_and_ask(page) -> None:
    page.set_input_files("#files", _series_files())
    page.wait_for_selector("#chosen li:has-text('DWI_dir80_AP.json')")
    page.click("#run")
    page.wait_for_selector("#results:not([hidden]), #error:not([hidden])", timeout=240_000)
    assert page.is_hidden("#error"), page.inner_text("#error")
    lights = page.locator("#summary > li")
    assert lights.count() == 11
    assert "72 × 72 × 39 × 21" in page.inner_text("#acquisition")
    # The viewer loaded the volume and steps through diffusion volumes.
    page.wait_for_function("() => window.lcidViewerReady === true", timeout=60_000)
    page.fill("#volume", "5")
    page.dispatch_event("#volume", "input")
    assert "volume 5 of 20 (b=2500)" in page.inner_text("#volume-label")
    assert page.evaluate("() => { const nv = window.lcidViewer(); return nv.volumes[0].frame4D; }") == 5
    options = page.locator("#flagged option")
    if options.count() > 1:
        page.select_option("#flagged", index=1)
    # The report with the figures is shown and can be downloaded.
    assert page.get_attribute("#dl-report", "href").endswith("/report.html")
    assert "lcid" in page.frame_locator("#report").locator("body").inner_text(timeout=30_000).lower()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve_check.png"), full_page=True)
    # A question about the scan gets an answer.
    page.fill("#question", "Is there motion in this scan?")
    page.click("#ask")
    page.wait_for_selector("#chat li.a:not(.pending)", timeout=120_000)
    answer = page.inner_text("#chat li.a")
    page.screenshot(path=str(ARTIFACTS / "serve_check_chat.png"), full_page=True)
    assert answer.strip() and not answer.startswith("No answer"), answer


def test_ask_about_a_real_slice(page, tmp_path: Path) -> None:
    import nibabel as nib
    from PIL import Image

    volume = np.asarray(nib.load(str(REAL_SERIES["philips_elition"])).dataobj[..., 0], dtype=np.float64)
    plane = volume[:, :, volume.shape[2] // 2]
    scaled = np.clip(plane / np.percentile(plane, 99), 0, 1)
    slice_png = tmp_path / "slice.png"
    Image.fromarray(np.rot90(scaled * 255).astype(np.uint8)).save(slice_png)
    page.set_input_files("#files", str(slice_png))
    page.click("#run")
    page.wait_for_selector("#slice-result:not([hidden]), #error:not([hidden])", timeout=120_000)
    assert page.is_hidden("#error"), page.inner_text("#error")
    assert page.inner_text("#slice-answer").strip()
    assert page.locator("#slice-problems > li").count() >= 1
    page.fill("#question", "What would improve this image?")
    page.click("#ask")
    page.wait_for_selector("#chat li.a:not(.pending)", timeout=120_000)
    assert not page.inner_text("#chat li.a").startswith("No answer")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve_slice.png"), full_page=True)


def test_bad_upload_is_explained_and_page_keeps_working(page, tmp_path: Path) -> None:
    fake = tmp_path / "scan.nii.gz"
    fake.write_bytes(os.urandom(4096))
    bval, bvec = tmp_path / "scan.bval", tmp_path / "scan.bvec"
    bval.write_text("0 1000\n")
    bvec.write_text("0 1\n0 0\n0 0\n")
    page.set_input_files("#files", [str(fake), str(bval), str(bvec)])
    page.click("#run")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "NIfTI" in page.inner_text("#error")
    assert page.is_enabled("#run")
