"""Driving the real app in headless Chromium: shared by the browser test and the speed benchmark."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from hematovision.core import paths

#: Without the background-networking flags Chromium keeps dialling out, which this network refuses.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("the app did not answer its health check")


@contextmanager
def running_app(command: list[str] | None = None, env: dict[str, str] | None = None):
    """Start the app on a free port; yields (port, process, seconds from start to healthy)."""
    port = free_port()
    command = command or [str(paths.PROJECT_ROOT / ".venv" / "bin" / "python"), "-m", "hematovision.cli.serve"]
    environment = {**os.environ, **(env or {}), "STREAMLIT_SERVER_PORT": str(port),
                   "STREAMLIT_SERVER_HEADLESS": "true", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=paths.PROJECT_ROOT, env=environment, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_health(port, process)
        yield port, process, time.perf_counter() - started
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def classify_in_browser(
    port: int, image: Path, screenshot: Path | None = None, timeout_ms: int = 60_000
) -> tuple[str, str]:
    """Upload ``image`` on the Classify page, opened at its own address as a first visitor would; return the
    verdict text the page shows and the sidebar's page list."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/Classify", timeout=timeout_ms)
            page.locator("input[type=file]").first.set_input_files(str(image), timeout=timeout_ms)
            verdict = page.locator(
                "[data-testid=stAlertContentSuccess], [data-testid=stAlertContentWarning], "
                "[data-testid=stAlertContentError]"
            ).first
            verdict.wait_for(timeout=timeout_ms)
            text = verdict.inner_text()
            if screenshot is not None:
                page.wait_for_timeout(1500)  # let the chart finish drawing
                page.screenshot(path=str(screenshot), full_page=True)
            return text, page.locator("[data-testid=stSidebarNav]").inner_text()
        finally:
            browser.close()


def _settle(page, timeout_ms: int) -> None:
    """Wait until the page's script has run after the last key or click."""
    page.wait_for_timeout(300)
    page.locator("[data-test-script-state=notRunning]").wait_for(timeout=timeout_ms)


def _press(page, key: str, read, timeout_ms: int) -> str:
    """Press ``key`` and return what ``read(page)`` shows once it changed (or, unchanged, after the page ran)."""
    before = read(page)
    page.keyboard.press(key)
    deadline = time.monotonic() + timeout_ms / 1000
    while read(page) == before and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    _settle(page, timeout_ms)
    return read(page)


def lecture_with_keys(port: int, width: int, height: int, screenshot: Path | None = None,
                      timeout_ms: int = 120_000) -> dict:  # fmt: skip
    """Drive the Lecture page with the keyboard alone; return what was on screen after each key.

    Keys: Space (reveal), → (next cell), ← (previous cell). Returns ``steps``: the step line after the page
    opened and after each of 3 Spaces; ``cells``: the jump list's text after →, → and ←; ``geometry``: the
    boxes (left, top, width, height) of the images, buttons and credits line at the last step of cell 1.
    """
    from playwright.sync_api import sync_playwright

    def step_line(page) -> str:
        return page.get_by_text(re.compile(r"^Step \d+ of \d+")).first.inner_text()

    def cell_line(page) -> str:
        return page.locator("[data-testid=stSelectbox] input").first.input_value()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"http://127.0.0.1:{port}/Lecture", timeout=timeout_ms)
            page.get_by_text(re.compile(r"^Step 1 of")).first.wait_for(timeout=timeout_ms)
            _settle(page, timeout_ms)
            steps = [step_line(page)]
            steps += [_press(page, "Space", step_line, timeout_ms) for _ in range(3)]
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
            geometry = page.evaluate(
                """() => {
                  const box = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; };
                  const all = s => [...document.querySelectorAll(s)].map(box).filter(b => b[2] > 0);
                  const credits = document.querySelector('.hv-credits');
                  return {images: all('[data-testid=stImage] img'), buttons: all('[data-testid=stButton] button'),
                          credits: all('.hv-credits'), line_height: parseFloat(getComputedStyle(credits).lineHeight),
                          scroll_height: document.querySelector('[data-testid=stMain]').scrollHeight};
                }"""
            )
            cells = [_press(page, key, cell_line, timeout_ms) for key in ("ArrowRight", "ArrowRight", "ArrowLeft")]
            return {"steps": steps, "cells": cells, "geometry": geometry, "step_after_move": step_line(page)}
        finally:
            browser.close()
