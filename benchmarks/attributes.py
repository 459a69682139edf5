"""What the attribute heads add to classification time: `python -m benchmarks.attributes` prints it.

The same loaded classifier with and without its heads (a copy with ``attributes`` set to None), timed in
alternation so that the load of a shared machine falls on both alike. Target (issue 21): at most 10% more.
"""

from __future__ import annotations

import copy
import os
import statistics
import time

from benchmarks.speed import sample_images
from hematovision.core.predict import Classifier

ROUNDS = 15


def seconds(classifier: Classifier, images) -> float:
    started = time.perf_counter()
    classifier.classify(images)
    return time.perf_counter() - started


def main() -> None:
    with_heads = Classifier.load()
    if with_heads.attributes is None:
        raise SystemExit("the model folder has no attribute heads (python -m training.attributes)")
    without_heads = copy.copy(with_heads)
    without_heads.attributes = None
    with_heads.warm_up()
    for label, images in (("one image", sample_images(1)), ("batch of 100 images", sample_images(100))):
        timings: dict[str, list[float]] = {"with": [], "without": []}
        seconds(with_heads, images)
        for _ in range(ROUNDS):
            timings["without"].append(seconds(without_heads, images))
            timings["with"].append(seconds(with_heads, images))
        before, after = (1000 * statistics.median(timings[key]) for key in ("without", "with"))
        print(
            f"[{with_heads.runtime}] {label}, median of {ROUNDS} alternated runs: {before:.1f} ms without the "
            f"attribute heads, {after:.1f} ms with them ({100 * (after / before - 1):+.1f}%)"
        )


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
