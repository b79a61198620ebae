"""End to end in a real browser: the web demo served locally, driven by Playwright + Chromium.

Uses Debian's Chromium (/usr/bin/chromium; Playwright never downloads a browser here) and a real
photo from Debian's opencv-doc; skips with the reason when either is missing. The page runs with
every request to anything other than the local server blocked, so it must work offline.

By default the checkpoint holds untrained weights (a fresh ``patn_tiny``): the test checks that
a result appears, not its quality. Environment variables:

    POSETRANSFER_TEST_CHECKPOINT=PATH   use this checkpoint instead (e.g. a trained run)
    POSETRANSFER_SCREENSHOT=1           save the page with its result to docs/app-screenshot.png
                                        (or to the path given instead of 1)
"""

from __future__ import annotations

import faulthandler
import os
import socket
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MESSI = Path("/usr/share/doc/opencv-doc/examples/data/messi5.jpg")
NOBODY = MESSI.with_name("baboon.jpg")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "app-screenshot.png"
POSE = "arms_up"
STEP_TIMEOUT_MS = 30_000  # any single browser step
HARD_LIMIT_S = 180  # the whole test: dump stacks and exit rather than hang CI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def checkpoint_for_test(data_root: Path, tmp_path: Path) -> Path:
    given = os.environ.get("POSETRANSFER_TEST_CHECKPOINT")
    if given:
        return Path(given)
    from posetransfer.checkpoint import save_checkpoint
    from posetransfer.config import load_config
    from posetransfer.models.registry import create_generator

    torch.manual_seed(0)
    run = tmp_path / "runs" / "00000-tiny"
    cfg = load_config("synthetic", tiny_overrides(data_root, run.parent))
    save_checkpoint(
        run / "checkpoints" / "step-0000000", create_generator("patn_tiny"), "patn_tiny", {}, cfg, 0
    )
    return run


def screenshot_path() -> Path | None:
    value = os.environ.get("POSETRANSFER_SCREENSHOT", "").strip()
    if not value or value.lower() in ("0", "false", "no"):
        return None
    return SCREENSHOT if value.lower() in ("1", "true", "yes") else Path(value)


@pytest.mark.slow
def test_page_generates_from_uploaded_photo_untrained_checkpoint(tiny_root, tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    if not MESSI.is_file() or not NOBODY.is_file():
        pytest.skip(f"{MESSI} or {NOBODY} missing (apt-get install opencv-doc)")
    pytest.importorskip("gradio", reason="gradio not installed ([app] extra)")
    pytest.importorskip("mediapipe", reason="mediapipe not installed ([keypoints] extra)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    from posetransfer.app import build_app, launch
    from posetransfer.keypoints.named_poses import POSE_DESCRIPTIONS
    from posetransfer.photos.transfer import PoseTransfer

    faulthandler.dump_traceback_later(HARD_LIMIT_S, exit=True)
    t0 = time.monotonic()
    pt = PoseTransfer.from_checkpoint(checkpoint_for_test(tiny_root, tmp_path))
    demo = build_app(pt)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    external: list[str] = []
    try:
        launch(demo, port=port, block=False, quiet=True)
        started = time.monotonic() - t0
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                timeout=STEP_TIMEOUT_MS,
            )
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(STEP_TIMEOUT_MS)

                def offline(route):  # only the local server is reachable
                    if route.request.url.startswith(url):
                        route.continue_()
                    else:
                        external.append(route.request.url)
                        route.abort()

                page.route("**/*", offline)
                page.goto(url, wait_until="domcontentloaded")
                page.wait_for_selector("#generate")

                # A photo with nobody in it: the page says so.
                page.locator("#source-photo input[type=file]").set_input_files(str(NOBODY))
                page.wait_for_function(
                    "() => document.querySelector('#status').innerText.includes('no person found')"
                )
                toast = page.locator("[data-testid='toast-body']", has_text="no person found")
                toast.first.wait_for()  # the gr.Warning pop-up

                # Upload the photo: its framed skeleton appears.
                page.locator("#source-photo input[type=file]").set_input_files(str(MESSI))
                page.wait_for_selector("#source-skeleton img")
                page.wait_for_function(
                    "() => document.querySelector('#status').innerText.includes('Person found')"
                )

                # Pick a named pose, move a joint by clicking on its skeleton, then generate.
                page.get_by_label(f"{POSE}: {POSE_DESCRIPTIONS[POSE]}").check()
                page.wait_for_function(
                    f"() => document.querySelector('#status').innerText.includes('{POSE}')"
                )
                skeleton = page.locator("#target-skeleton img")
                box = skeleton.bounding_box()
                # The right wrist (the default joint) to the upper left, beside the head.
                skeleton.click(position={"x": 0.15 * box["width"], "y": 0.12 * box["height"]})
                page.wait_for_function(
                    "() => document.querySelector('#status').innerText.includes('Moved')"
                )
                page.click("#generate")
                page.wait_for_function(
                    "() => document.querySelector('#status').innerText.includes('Done')"
                )
                result = page.locator("#result img")
                result.wait_for()
                assert result.get_attribute("src")
                page.wait_for_function(
                    "() => { const i = document.querySelector('#result img');"
                    " return i && i.complete && i.naturalWidth > 0; }"
                )
                size = page.evaluate(
                    "() => { const i = document.querySelector('#result img');"
                    " return [i.naturalHeight, i.naturalWidth]; }"
                )
                assert size[0] > 0 and size[0] / size[1] == pt.height / pt.width

                shot = screenshot_path()
                if shot is not None:
                    for close in page.locator("[data-testid='toast-close']").all():
                        close.click()  # the earlier warning would hide part of the page
                    page.wait_for_timeout(500)
                    shot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
    finally:
        demo.close()
        pt.close()
        faulthandler.cancel_dump_traceback_later()
    total = time.monotonic() - t0
    print(f"app started in {started:.1f} s; whole browser test {total:.1f} s")
    assert not external, f"the page tried to reach the internet: {external}"
