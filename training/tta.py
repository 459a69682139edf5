"""Does test-time augmentation buy accuracy, and at what cost? Measured on the validation split only.

    python -m training.tta --model models --data ../shared/data [--views 1 2 4 8]

Each view count averages the calibrated probabilities of that many dihedral turns of every image
(identity, mirror, then the 90-degree turns: a cell has no up or down) and prints PBC validation
accuracy, BCCD validation accuracy (when crops are given) and the time per image through the runtime
the app uses. The app would adopt it only where the speed targets still hold.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from hematovision.core import paths
from hematovision.core.datasets import read_manifest, scan_class_folders
from hematovision.core.predict import Classifier
from training.scoring import decode_labelled

TURNS = (
    lambda x: x,
    lambda x: x[:, :, ::-1],
    lambda x: np.rot90(x, 1, axes=(1, 2)),
    lambda x: np.rot90(x, 2, axes=(1, 2)),
    lambda x: np.rot90(x, 3, axes=(1, 2)),
    lambda x: np.rot90(x[:, :, ::-1], 1, axes=(1, 2)),
    lambda x: x[:, ::-1],
    lambda x: np.rot90(x[:, :, ::-1], 3, axes=(1, 2)),
)


def accuracy_with_views(classifier: Classifier, images: np.ndarray, labels: np.ndarray, views: int) -> float:
    probabilities = np.mean(
        [classifier.probabilities(np.ascontiguousarray(turn(images))) for turn in TURNS[:views]], axis=0
    )
    return float((probabilities.argmax(axis=1) == labels).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.tta", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=paths.SHARED_DATA_DIR)
    parser.add_argument("--bccd-val", type=Path, help="BCCD validation crops (class folders)")
    parser.add_argument("--views", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args(argv)
    classifier = Classifier.load(args.model)
    size = classifier.card.input_size
    val = decode_labelled(
        [i for i in read_manifest(args.data / "pbc_manifest.csv") if i.split == "val"], classifier.classes, size
    )
    bccd = (
        decode_labelled(scan_class_folders(args.bccd_val, classifier.classes).images, classifier.classes, size)
        if args.bccd_val
        else None
    )
    one = val.images[:1]
    for views in args.views:
        started = time.perf_counter()
        for _ in range(20):
            accuracy_with_views(classifier, one, val.labels[:1], views)
        ms = (time.perf_counter() - started) / 20 * 1000
        line = f"{views} views: PBC val {100 * accuracy_with_views(classifier, val.images, val.labels, views):.2f}%"
        if bccd is not None:
            line += f", BCCD val {100 * accuracy_with_views(classifier, bccd.images, bccd.labels, views):.2f}%"
        print(f"{line}; one image {ms:.1f} ms ({classifier.runtime})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
