"""Speed and memory of the shipped model on this machine: `make bench` prints each figure.

Classification is timed through each runtime (LiteRT on the exported file, the app's default, and
Keras), each in a fresh process so that one's memory does not count against the other. Targets
(issue 25, on the slow 2-core machine): one image <= 25 ms median; 100 images <= 1.5 s; fast Grad-CAM
<= 40 ms median; `make run` to the first class on screen <= 8 s; app memory <= 1.2 GB. A typical smear
photo, every white cell found and classified, <= 1 s. The batch command line's marginal time per image <= half
the Keras model's batched time per image, measured in the same run (issue 41; printed first).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hematovision.core import paths
from hematovision.core.predict import Classifier
from hematovision.explain.gradcam import GradCam
from tests.browser import chromium_path, classify_in_browser, running_app
from tests.conftest import encode, synthetic_cell


def sample_images(n: int) -> list[tuple[str, bytes]]:
    """Real test-split JPEGs when ../shared is here (their decode cost is the real one), else generated."""
    manifest = paths.SHARED_DATA_DIR / "pbc_manifest.csv"
    if manifest.is_file():
        from hematovision.core.datasets import read_manifest

        items = [item for item in read_manifest(manifest) if item.split == "test"][:n]
        return [(item.path.name, item.path.read_bytes()) for item in items]
    return [(f"cell_{i}.jpg", encode(synthetic_cell(i, i, size=360), "JPEG", quality=92)) for i in range(n)]


def smear_photos(n: int) -> list[tuple[str, bytes]]:
    """BCCD smear photos (640x480, 1-2 white cells each) when ../shared is here, else synthetic smears."""
    photos = sorted((paths.SHARED_DATA_DIR / "bccd" / "JPEGImages").glob("*.jpg"))[:n]
    if photos:
        return [(photo.name, photo.read_bytes()) for photo in photos]
    from tests.test_smear import synthetic_smear

    return [(f"smear_{i}.png", encode(synthetic_smear(i)[0])) for i in range(n)]


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def rss_gb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def classification(runtime: str) -> None:
    """The classification figures through one runtime (run in its own process)."""
    started = time.perf_counter()
    classifier = Classifier.load(runtime=runtime)
    classifier.warm_up()
    print(f"[{classifier.runtime}] model loaded and warmed in {time.perf_counter() - started:.1f} s")
    images = sample_images(100)
    one = images[:1]
    classifier.classify(one)
    print(f"[{classifier.runtime}] one image classified (decode + framing + resize + predict), median of 50: "
          f"{median_ms(lambda: classifier.classify(one), 50):.1f} ms")  # fmt: skip
    classifier.classify(images)
    batch_seconds = median_ms(lambda: classifier.classify(images), 5) / 1000
    rate = len(images) / batch_seconds
    print(f"[{classifier.runtime}] batch of {len(images)} images, median of 5: {batch_seconds:.2f} s "
          f"({rate:.0f} images/s)")  # fmt: skip

    photos = smear_photos(20)
    classifier.classify(photos[:1], mode="field")
    per_photo = [median_ms(lambda photo=photo: classifier.classify([photo], mode="field"), 3) for photo in photos]
    cells = sum(result.prediction is not None for result in classifier.classify(photos, mode="field"))
    print(f"[{classifier.runtime}] smear photo, white cells found and each classified, median over "
          f"{len(photos)} photos ({cells} cells): {statistics.median(per_photo):.1f} ms "
          f"(slowest {max(per_photo):.1f} ms)")  # fmt: skip

    print(f"[{classifier.runtime}] resident memory of this process after classifying: {rss_gb():.2f} GB")


#: The command line's marginal time per image: `classify` of CLI_LARGE files minus CLI_SMALL files, over the
#: difference, so that start-up (model, worker processes) cancels out. Both above the process-pool threshold.
CLI_SMALL, CLI_LARGE = 100, 400


def cli_seconds(folder: Path, project: Path = paths.PROJECT_ROOT) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the command and its children) of `python -m hematovision classify
    FOLDER` run from ``project`` (its own code), output discarded. CPU time is what other jobs on a shared
    machine do not stretch."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "hematovision", "classify", str(folder)],
        cwd=project, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cli_marginal_ms(
    repeats: int = 3, project: Path = paths.PROJECT_ROOT, cpu: list[float] | None = None
) -> list[float]:
    """The batch command line's marginal ms per image on PBC test JPEGs, one figure per repeat (wall time; the
    marginal CPU ms per image are appended to ``cpu`` where given)."""
    images = sample_images(CLI_LARGE)
    figures = []
    with tempfile.TemporaryDirectory() as root:
        folders = {}
        for count in (CLI_SMALL, CLI_LARGE):
            folders[count] = Path(root) / str(count)
            folders[count].mkdir()
            for name, data in images[:count]:
                (folders[count] / name).write_bytes(data)
        for _ in range(repeats):
            small, large = (cli_seconds(folders[count], project) for count in (CLI_SMALL, CLI_LARGE))
            figures.append(1000 * (large[0] - small[0]) / (CLI_LARGE - CLI_SMALL))
            if cpu is not None:
                cpu.append(1000 * (large[1] - small[1]) / (CLI_LARGE - CLI_SMALL))
    return figures


def network_batched_ms(repeats: int = 3) -> dict[str, list[float]]:
    """The network alone on 64 framed PBC test inputs, ms per image per repeat: Keras batched, LiteRT in batches of
    16 (the command line's) and one at a time (the app's)."""
    from hematovision.core.predict import STREAM_BATCH
    from hematovision.core.runtime import LITERT_FILE, LiteRTForward

    keras = Classifier.load(runtime="keras")
    batch = np.stack([keras.model_input(data) for _, data in sample_images(64)])
    folder = paths.model_dir()
    forwards = {
        "Keras, batched": keras.network_outputs,
        f"LiteRT, batches of {STREAM_BATCH}": LiteRTForward(folder / LITERT_FILE, batch=STREAM_BATCH),
        "LiteRT, one at a time": LiteRTForward(folder / LITERT_FILE),
    }
    figures: dict[str, list[float]] = {name: [] for name in forwards}
    for forward in forwards.values():
        forward(batch)  # warm: traced, tensors allocated
    for _ in range(repeats):
        for name, forward in forwards.items():
            started = time.perf_counter()
            forward(batch)
            figures[name].append(1000 * (time.perf_counter() - started) / len(batch))
    return figures


def command_line_against_network(repeats: int = 3) -> None:
    """The batch CLI's marginal ms per image beside the network's own, in the same run (issue 41: CLI <= half of
    Keras batched)."""

    def shown(values: list[float]) -> str:
        return f"{', '.join(f'{value:.1f}' for value in values)} (median {statistics.median(values):.1f})"

    cpu: list[float] = []
    cli = cli_marginal_ms(repeats, cpu=cpu)
    print(f"[cli] `python -m hematovision classify`, marginal ms per image ({CLI_LARGE} minus {CLI_SMALL} PBC "
          f"test images), {repeats} repeats: {shown(cli)}; CPU ms per image: {shown(cpu)}")  # fmt: skip
    for name, values in network_batched_ms(repeats).items():
        print(f"[network] {name}, ms per image (64 framed inputs), {repeats} repeats: {shown(values)}")


def main() -> None:
    command_line_against_network()
    for runtime in ("auto", "keras"):
        subprocess.run([sys.executable, "-m", "benchmarks.speed", "--runtime", runtime], check=True)
    classifier = Classifier.load(runtime="keras")
    images = sample_images(1)
    card = classifier.card
    gradcam = GradCam(classifier.model, card.gradcam_layer, card.logits_layer)
    model_input = np.stack([classifier.model_input(images[0][1])])
    gradcam(model_input, [0])
    print(f"fast Grad-CAM for one image, median of 30: {median_ms(lambda: gradcam(model_input, [0]), 30):.1f} ms")

    make = ["make", "--no-print-directory", "run"]
    with running_app(make) as (_, _, seconds):
        print(f"`make run` (environment installed) to health endpoint: {seconds:.1f} s")
    if chromium_path() is None:
        print("first prediction rendered: not measured (no Chromium; apt-get install chromium)")
        return
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / images[0][0]
        image.write_bytes(images[0][1])
        started = time.perf_counter()
        with running_app(make) as (port, process, _):
            classify_in_browser(port, image)
            first = time.perf_counter() - started
            server_rss = max(rss_gb(child) for child in [process.pid, *children(process.pid)])
    print(f"`make run` to the first prediction rendered in a browser: {first:.1f} s")
    print(f"resident memory of the app server after that prediction: {server_rss:.2f} GB")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split(") ")[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", choices=("auto", "keras"), help="only the classification figures, one runtime")
    parser.add_argument("--cli", action="store_true", help="only the command line's ms per image beside the network's")
    arguments = parser.parse_args()
    if arguments.cli:
        command_line_against_network()
    elif arguments.runtime:
        classification(arguments.runtime)
    else:
        main()
