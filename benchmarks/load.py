"""A lecture hall at once: `make load` prints the server's own CPU time per student session and the p95 latency.

Starts the app as `make run` does, then drives N headless Chromium pages (one browser, one context per
session, so each is its own Streamlit session), in three phases with a barrier between them:

1. **open**: every session opens the Classify page and waits for its uploader;
2. **classify**: all upload 5 images at the same moment, each session its own (``--handout``: the same 5 for
   all, a lecture's handout, which the server reads once), and wait for all 5 results (one probability chart
   per image);
3. **explain**: all open Explain for their first image (skip with ``--no-explain``).

For each phase it reads the server process's own CPU time (user + system, from ``/proc/<pid>/stat`` of the
server and its descendants: the browsers are not counted) before and after, so the figure per session is
the server's cost alone, whatever the browsers on the same cores spent. Prints, for one session alone and
for N together: errors, sessions that got all their results, median and 95th percentile of upload ->
results, **server CPU seconds per session** (open + classify: a student's 5 cells on screen; Explain
apart), the server's share of all CPU time the machine spent, and the server's resident memory (peak,
sampled every 0.2 s, and after the wave).

``--hall`` runs 100 sessions. ``--configs`` compares server settings in paired runs, alternating, each on
a fresh server, e.g. the shipped config against the two defaults it changes::

    python -m benchmarks.load --sessions 10 --rounds 2 \\
        --configs "server.fileWatcherType=auto runner.postScriptGC=true" ""

(an empty string is ``.streamlit/config.toml`` as it is). ``--waves K`` runs the N sessions K times on
the same server and prints its memory after each wave: what a long lecture does to memory.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.speed import rss_gb, sample_images
from tests.browser import CHROMIUM_ARGS, chromium_path, running_app

#: One probability chart per classified image: alerts are no count of results, since a cell can add warnings
#: (unfamiliar set-up, morphology that contradicts its class) beside its verdict.
RESULT = "[data-testid=stPlotlyChart]"
#: The app element's mark once a page's script run has finished.
FINISHED = "[data-test-script-state=notRunning]"
IMAGES_PER_SESSION = 5
TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (the server runs under `make`)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().split(") ")[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (exited ones count no more)."""
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


def wait_until_idle(pids: list[int], timeout: float = 180.0) -> float:
    """Wait until these processes spend under 2% of a core for 2 s (the model preloaded); seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pids)
        time.sleep(2)
        if cpu_seconds(pids) - before < 0.04:
            break
    return time.monotonic() - started


def resident_gb(pids: list[int]) -> float:
    return sum(rss_gb(pid) for pid in pids if Path(f"/proc/{pid}").exists())


@dataclass
class Phases:
    """Server and machine CPU seconds at each phase boundary, in order."""

    server: list[float] = field(default_factory=list)
    machine: list[float] = field(default_factory=list)

    def mark(self, server_pids: list[int]) -> None:
        self.server.append(cpu_seconds(server_pids))
        self.machine.append(machine_busy_seconds())

    def server_spent(self, phase: int) -> float:
        return self.server[phase + 1] - self.server[phase]

    def machine_spent(self, phase: int) -> float:
        return self.machine[phase + 1] - self.machine[phase]


async def opened(browser, port: int, timeout_ms: int):
    """A new session on Classify, once its page has run and shows the uploader; or the error on the way."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(f"http://127.0.0.1:{port}/Classify", timeout=timeout_ms)
        await page.locator("input[type=file]").first.wait_for(state="attached", timeout=timeout_ms)
        await page.locator(FINISHED).wait_for(timeout=timeout_ms)
        return {"context": context, "page": page, "error": None}
    except Exception as exc:  # every failure is counted and named, none stops the other sessions
        return {"context": context, "page": page, "error": f"open: {type(exc).__name__}: {exc}"[:200]}


async def classified(session: dict, files: list[Path], timeout_ms: int) -> None:
    """Upload ``files`` and wait for one result per file; the time taken goes in ``session["seconds"]``."""
    session.update(seconds=None, results=0, explain=False)
    if session["error"]:
        return
    page = session["page"]
    try:
        started = time.perf_counter()
        await page.locator("input[type=file]").first.set_input_files([str(f) for f in files], timeout=timeout_ms)
        results = page.locator(RESULT)
        deadline = time.perf_counter() + timeout_ms / 1000
        while await results.count() < len(files):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{await results.count()} of {len(files)} results")
            await asyncio.sleep(0.1)
        session["seconds"] = time.perf_counter() - started
        session["results"] = await results.count()
        await page.locator(FINISHED).wait_for(timeout=timeout_ms)  # the rest of the page, in this phase
    except Exception as exc:  # every failure is counted and named, none stops the other sessions
        session["error"] = f"classify: {type(exc).__name__}: {exc}"[:200]


async def explained(session: dict, timeout_ms: int) -> None:
    if session["error"]:
        return
    page = session["page"]
    try:
        # The sidebar link keeps the session (and its results); a new URL would start a fresh session.
        await page.get_by_role("link", name="Explain").click(timeout=timeout_ms)
        # Explain's own heatmap download (Classify has a CSV download button, which the page shows until
        # Explain replaces it), then the end of the page's run (the removal check comes after the button).
        explain_download = page.locator("[data-testid=stDownloadButton]").filter(has_text="Download overlay")
        await explain_download.first.wait_for(timeout=timeout_ms)
        await page.locator(FINISHED).wait_for(timeout=timeout_ms)
        exceptions = page.locator("[data-testid=stException]")
        session["explain"] = not await exceptions.count()
        if not session["explain"]:
            session["error"] = "explain: " + (await exceptions.first.inner_text())[:300]
    except Exception as exc:  # every failure is counted and named, none stops the other sessions
        session["error"] = f"explain: {type(exc).__name__}: {exc}"[:200]


async def wave(port: int, groups: list[list[Path]], timeout_ms: int, explain: bool, phases: Phases, pids) -> list:
    """One wave of sessions through the three phases; ``phases`` gets the CPU times at each boundary."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            phases.mark(pids)
            sessions = await asyncio.gather(*(opened(browser, port, timeout_ms) for _ in groups))
            phases.mark(pids)
            await asyncio.gather(*(classified(s, g, timeout_ms) for s, g in zip(sessions, groups, strict=True)))
            phases.mark(pids)
            if explain:
                await asyncio.gather(*(explained(session, timeout_ms) for session in sessions))
                phases.mark(pids)
            for session in sessions:
                await session["context"].close()
            return sessions
        finally:
            await browser.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


def measured(port: int, process, groups: list[list[Path]], timeout_ms: int, explain: bool) -> dict:
    """One wave: its sessions, CPU per phase and the server's memory (peak while it ran, and after)."""
    pids = descendants(process.pid)
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], resident_gb(pids))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    phases = Phases()
    try:
        sessions = asyncio.run(wave(port, groups, timeout_ms, explain, phases, pids))
    finally:
        stop.set()
        sampler.join()
    return {"sessions": sessions, "phases": phases, "peak_gb": peak[0], "after_gb": resident_gb(pids)}


def summary(label: str, run: dict, explain: bool) -> dict:
    """Print one wave's figures; return the headline ones."""
    sessions, phases = run["sessions"], run["phases"]
    n = len(sessions)
    times = [s["seconds"] for s in sessions if s["seconds"] is not None]
    # At least one chart per image: an image read as a field of view gives one per cell (BA_773081.jpg: 2).
    complete = sum(s["results"] >= IMAGES_PER_SESSION and (s["explain"] or not explain) for s in sessions)
    per_session = (phases.server_spent(0) + phases.server_spent(1)) / n
    machine = phases.machine[-1] - phases.machine[0]
    server = phases.server[-1] - phases.server[0]
    figures = {"cpu_per_session": per_session, "p95": percentile(times, 0.95), "median": percentile(times, 0.5)}
    explain_part = f", Explain {phases.server_spent(2) / n:.2f}" if explain else ""
    print(
        f"{label}: {n} sessions, {sum(s['error'] is not None for s in sessions)} errors, {complete} complete "
        f"({IMAGES_PER_SESSION} results{' and Explain' if explain else ''}); upload -> results median "
        f"{figures['median']:.1f} s, p95 {figures['p95']:.1f} s\n"
        f"  server CPU per session: {per_session:.2f} s to {IMAGES_PER_SESSION} results on screen (open "
        f"{phases.server_spent(0) / n:.2f} + classify {phases.server_spent(1) / n:.2f}){explain_part}; the "
        f"server {server:.1f} s of the {machine:.1f} s the machine spent ({100 * server / max(machine, 1e-9):.0f}%"
        f", the rest browsers and others); server memory peak {run['peak_gb']:.2f} GB, after {run['after_gb']:.2f} GB"
    )
    for session in sessions:
        if session["error"]:
            print(f"  error: {session['error']}")
    return figures


def environment_for(config: str) -> dict[str, str]:
    """``"server.fileWatcherType=none runner.postScriptGC=false"`` as Streamlit's environment variables
    (STREAMLIT_SERVER_FILE_WATCHER_TYPE=none ...), which take precedence over .streamlit/config.toml."""
    environment = {}
    for item in config.split():
        key, _, value = item.partition("=")
        section, _, option = key.partition(".")
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", option).upper()
        environment[f"STREAMLIT_{section.upper()}_{snake}"] = value
    return environment


def run_config(config: str, groups: list[list[Path]], args) -> list[dict]:
    """A fresh server with ``config``: one session alone, then ``args.waves`` waves of every session."""
    label = config or ".streamlit/config.toml"
    print(f"== server config: {label}", flush=True)
    explain = not args.no_explain
    timeout_ms = int(args.timeout * 1000)
    results = []
    with running_app(["make", "--no-print-directory", "run"], env=environment_for(config)) as (port, process, _):
        settled = wait_until_idle(descendants(process.pid))  # the preload thread loads and warms the model
        print(f"  server idle after {settled:.0f} s")
        print(f"  server memory before the sessions: {resident_gb(descendants(process.pid)):.2f} GB")
        if not args.no_alone:
            alone = summary("one session alone", measured(port, process, groups[:1], timeout_ms, explain), explain)
        for number in range(args.waves):
            wave_note = f", wave {number + 1} of {args.waves}" if args.waves > 1 else ""
            label = f"{len(groups)} sessions at once{wave_note}"
            wait_until_idle(descendants(process.pid))  # what the last wave left running is not this one's
            figures = summary(label, measured(port, process, groups, timeout_ms, explain), explain)
            if not args.no_alone and not math.isnan(alone["median"]):
                print(f"  p95 under load / one session alone: {figures['p95'] / alone['median']:.1f}x")
            results.append(figures)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--hall", action="store_true", help="100 sessions at once (a lecture hall)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a session may wait")
    parser.add_argument("--no-explain", action="store_true", help="stop each session at its results")
    parser.add_argument("--no-alone", action="store_true", help="skip the one-session-alone run")
    parser.add_argument("--waves", type=int, default=1, help="waves of sessions on the same server")
    parser.add_argument("--rounds", type=int, default=1, help="times each config runs, alternating")
    parser.add_argument(
        "--handout", action="store_true", help="every session uploads the same 5 images (a lecture's handout)"
    )
    parser.add_argument(
        "--configs", nargs="+", default=[""], help='server settings to compare, each "section.option=value ..."'
    )
    args = parser.parse_args()
    if chromium_path() is None:
        raise SystemExit("needs Chromium (apt-get install chromium)")
    sessions = 100 if args.hall else args.sessions
    images = sample_images(IMAGES_PER_SESSION * (1 if args.handout else sessions))
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for name, data in images:
            path = Path(folder) / name
            path.write_bytes(data)
            files.append(path)
        # Fewer images than sessions need (--handout, no ../shared, or a short test split): the sessions share them.
        groups = [
            [files[(IMAGES_PER_SESSION * i + j) % len(files)] for j in range(IMAGES_PER_SESSION)]
            for i in range(sessions)
        ]
        outcomes: dict[str, list[dict]] = {config: [] for config in args.configs}
        for _ in range(args.rounds):
            for config in args.configs:
                outcomes[config] += run_config(config, groups, args)
    if len(args.configs) > 1 or args.rounds > 1:
        print("== paired summary (server CPU s per session to results on screen; p95 upload -> results)")
        for config, runs in outcomes.items():
            cpu = ", ".join(f"{run['cpu_per_session']:.2f}" for run in runs)
            p95 = ", ".join(f"{run['p95']:.1f}" for run in runs)
            print(f"  {config or '.streamlit/config.toml'}: CPU {cpu} s; p95 {p95} s")
    else:
        last = outcomes[args.configs[0]][-1]
        print(
            f"server CPU per session: {last['cpu_per_session']:.2f} s (target <= 0.3); "
            f"p95 upload -> results: {last['p95']:.1f} s ({sessions} sessions)"
        )


if __name__ == "__main__":
    main()
