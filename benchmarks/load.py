"""A lecture hall at once: `make load` prints how the app holds up under 20 simultaneous sessions.

Starts the app as `make run` does, then drives N headless Chromium pages (one browser, one context per
session, so each is its own Streamlit session). Each opens the Classify page; once every page shows its
uploader, all upload 5 different images at the same moment and wait for all 5 results, then each opens
Explain for one of them. Prints, for one session alone and for N together: errors, sessions that got all
their results, median and 95th percentile of upload -> results, the server's largest resident memory
(sampled every 0.2 s), and the CPU time the server used against all the CPU time the machine spent from
the uploads on. The browsers share this machine's cores with the server, so the slowdown is an upper
bound on the server's own; the CPU split says how much of it is whose.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.speed import children, rss_gb, sample_images
from tests.browser import CHROMIUM_ARGS, chromium_path, running_app

#: One probability chart per classified image: alerts are no count of results, since a cell can add warnings
#: (unfamiliar set-up, morphology that contradicts its class) beside its verdict.
RESULT = "[data-testid=stPlotlyChart]"


async def opened(browser, port: int, timeout_ms: int):
    """A new session on Classify, once its page has run and shows the uploader; or the error on the way."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(f"http://127.0.0.1:{port}/Classify", timeout=timeout_ms)
        await page.locator("input[type=file]").first.wait_for(state="attached", timeout=timeout_ms)
        return context, page, None
    except Exception as exc:  # every failure is counted and named, none stops the other sessions
        return context, page, f"{type(exc).__name__}: {exc}"[:200]


async def one_session(context, page, error: str | None, files: list[Path], timeout_ms: int) -> dict:
    outcome = {"error": error, "seconds": None, "results": 0, "explain": False}
    if error:
        await context.close()
        return outcome
    try:
        started = time.perf_counter()
        await page.locator("input[type=file]").first.set_input_files([str(f) for f in files], timeout=timeout_ms)
        results = page.locator(RESULT)
        deadline = time.perf_counter() + timeout_ms / 1000
        while await results.count() < len(files):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{await results.count()} of {len(files)} results")
            await asyncio.sleep(0.1)
        outcome["seconds"] = time.perf_counter() - started
        outcome["results"] = await results.count()
        # The sidebar link keeps the session (and its results); a new URL would start a fresh session.
        await page.get_by_role("link", name="Explain").click(timeout=timeout_ms)
        await page.locator("[data-testid=stDownloadButton]").first.wait_for(timeout=timeout_ms)
        exceptions = page.locator("[data-testid=stException]")
        outcome["explain"] = not await exceptions.count()
        if not outcome["explain"]:
            outcome["error"] = "Explain: " + (await exceptions.first.inner_text())[:300]
    except Exception as exc:  # every failure is counted and named, none stops the other sessions
        outcome["error"] = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        await context.close()
    return outcome


async def sessions(port: int, files: list[list[Path]], timeout_ms: int, on_all_open) -> list[dict]:
    """Every session opens its page first; then all upload at the same moment (``on_all_open`` marks it)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            pages = await asyncio.gather(*(opened(browser, port, timeout_ms) for _ in files))
            on_all_open()
            return await asyncio.gather(
                *(one_session(*page, group, timeout_ms) for page, group in zip(pages, files, strict=True))
            )
        finally:
            await browser.close()


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def machine_busy_seconds() -> float:
    """CPU time every core spent on anything but idling, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICKS  # less idle and iowait


def summary(label: str, outcomes: list[dict], peak_gb: float, cpu: tuple[float, float]) -> None:
    times = sorted(o["seconds"] for o in outcomes if o["seconds"] is not None)
    complete = sum(o["results"] == 5 and o["explain"] for o in outcomes)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))] if times else float("nan")
    print(
        f"{label}: {len(outcomes)} sessions, {sum(o['error'] is not None for o in outcomes)} errors, "
        f"{complete} got all 5 results and Explain; upload -> results median "
        f"{statistics.median(times) if times else float('nan'):.1f} s, p95 {p95:.1f} s; "
        f"server memory peak {peak_gb:.2f} GB; server CPU {cpu[0]:.1f} s of the {cpu[1]:.1f} s the machine "
        f"spent ({100 * cpu[0] / cpu[1]:.0f}%)"
    )
    for outcome in outcomes:
        if outcome["error"]:
            print(f"  error: {outcome['error']}")


def measured(
    port: int, process, files: list[list[Path]], timeout_ms: int
) -> tuple[list[dict], float, tuple[float, float]]:
    """The sessions' outcomes, the server's memory peak, and (server CPU s, machine CPU s) meanwhile."""
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            pids = [process.pid, *children(process.pid)]
            peak[0] = max(peak[0], sum(rss_gb(pid) for pid in pids if Path(f"/proc/{pid}").exists()))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    server = [process.pid, *children(process.pid)]
    before = {}

    def all_open() -> None:
        before.update(server=cpu_seconds(server), machine=machine_busy_seconds())

    sampler.start()
    try:
        outcomes = asyncio.run(sessions(port, files, timeout_ms, all_open))
    finally:
        stop.set()
        sampler.join()
    cpu = cpu_seconds(server) - before["server"], machine_busy_seconds() - before["machine"]
    return outcomes, peak[0], cpu


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a session may wait")
    args = parser.parse_args()
    if chromium_path() is None:
        raise SystemExit("needs Chromium (apt-get install chromium)")
    images = sample_images(5 * args.sessions)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for name, data in images:
            path = Path(folder) / name
            path.write_bytes(data)
            paths.append(path)
        groups = [paths[5 * i : 5 * i + 5] for i in range(args.sessions)]
        with running_app(["make", "--no-print-directory", "run"]) as (port, process, _):
            time.sleep(5)  # the preload thread warms the model
            alone, alone_peak, alone_cpu = measured(port, process, groups[:1], int(args.timeout * 1000))
            summary("one session alone", alone, alone_peak, alone_cpu)
            together, peak, cpu = measured(port, process, groups, int(args.timeout * 1000))
            summary(f"{args.sessions} sessions at once", together, peak, cpu)
    alone_time = alone[0]["seconds"]
    times = sorted(o["seconds"] for o in together if o["seconds"] is not None)
    if alone_time and times:
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"p95 under load / one session alone: {p95 / alone_time:.1f}x (target <= 8x)")


if __name__ == "__main__":
    main()
