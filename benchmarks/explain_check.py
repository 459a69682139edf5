"""What the Explain page's removal check adds per image and method, on the shipped model: prints the figure.

    python -m benchmarks.explain_check [--repeats 10]

Target (issue 23): at most 1 s on the 2-core CPU. The heatmap itself is not counted (the page computes it
anyway); the check is the four imputations of the hottest 10% and 20% and of three random areas of each size,
and one batch of 9 probabilities. Real PBC test images where ../shared is here, else generated.
"""

from __future__ import annotations

import argparse
import statistics
import time

from hematovision.core import paths
from hematovision.core.predict import Classifier
from hematovision.explain.faithfulness import removal_check
from hematovision.explain.saliency import METHODS, AttributionMethods
from tests.conftest import encode, synthetic_cell

TARGET_SECONDS = 1.0


def sample_inputs(classifier: Classifier, n: int) -> list:
    manifest = paths.SHARED_DATA_DIR / "pbc_manifest.csv"
    if manifest.is_file():
        from hematovision.core.datasets import read_manifest

        items = [item for item in read_manifest(manifest) if item.split == "test"][:n]
        return [classifier.model_input(item.path) for item in items]
    return [classifier.model_input(encode(synthetic_cell(i, i, size=360))) for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.explain_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="images timed per method")
    parser.add_argument("--methods", default="Grad-CAM,SmoothGrad", help="comma-separated (map shapes differ)")
    args = parser.parse_args(argv)
    classifier = Classifier.load()
    classifier.warm_up()
    card = classifier.card
    attribution = AttributionMethods(classifier.model, card.gradcam_layer, card.logits_layer)
    images = sample_inputs(classifier, args.repeats)
    for method in [name.strip() for name in args.methods.split(",")]:
        if method not in METHODS:
            parser.error(f"unknown method {method!r}")
        seconds, cpu_seconds = [], []
        for image in images:
            class_index = int(classifier.network_probabilities(image[None])[0].argmax())
            heat = attribution.heatmap(method, image, class_index)
            started, cpu_started = time.perf_counter(), time.process_time()
            removal_check(image, heat, classifier.network_probabilities, class_index)
            seconds.append(time.perf_counter() - started)
            cpu_seconds.append(time.process_time() - cpu_started)
        median = statistics.median(seconds)
        verdict = "meets" if median <= TARGET_SECONDS else "MISSES"
        print(
            f"removal check, {method}: median {median:.3f} s, max {max(seconds):.3f} s over {len(seconds)} images "
            f"({verdict} the {TARGET_SECONDS:.0f} s target; runtime {classifier.runtime}); CPU time median "
            f"{statistics.median(cpu_seconds):.3f} s (all threads; the wall time above grows when the cores are shared)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
