"""Fit and measure the "not a blood-cell image" check, and add it to an artifact folder.

    python -m training.novelty --model models --data ../shared/data

Fits class centres and a shared covariance on pooled activations of one layer for the PBC training split
(plus the BCCD training crops, so another lab's cells count as blood cells), sets the threshold on
held-out in-domain images only (PBC val, BCCD val crops), then measures how often it flags the PBC
test split, the BCCD test crops, and a set of at least 320 images that are not blood cells
(training/ood_images.py), which play no part in fitting or in choosing the threshold.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hematovision import paths
from hematovision.artifacts import load_evaluation, write_json
from hematovision.datasets import read_manifest
from hematovision.imaging import to_model_input
from hematovision.novelty import NOVELTY_FILE, fit_novelty, threshold_at
from hematovision.predict import Classifier
from training.bccd import labelled_crops, read_photos
from training.data import load_split
from training.ood_images import non_blood_images

#: A 14x14 block of the fine-tuned backbone. Measured on the model of 2026-11-24: the pooled
#: penultimate features ("features") let most blank slides, blurred fields and noise through (the
#: label-smoothed head squeezes what it does not need out of them), while this layer's activations
#: flag all 330 non-blood images at the same in-domain rates (models/README.md).
DEFAULT_LAYER = "block_13_expand_relu"
#: Held-out in-domain shares the threshold may flag: half the targets (PBC test <= 1%, BCCD <= 5%),
#: leaving room for the difference between validation and test images.
PBC_VAL_FLAGGED = 0.005
BCCD_VAL_FLAGGED = 0.025


def features(classifier: Classifier, images: np.ndarray) -> np.ndarray:
    return classifier.features_and_logits(images)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.novelty", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR, help="artifact folder to add it to")
    parser.add_argument(
        "--data", type=Path, default=paths.SHARED_DATA_DIR, help="folder with pbc_manifest.csv and bccd/"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the BCCD photo split and the non-blood image set")
    parser.add_argument(
        "--layer",
        default=DEFAULT_LAYER,
        help="layer whose activations, averaged over space, are measured (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    manifest = args.data / "pbc_manifest.csv"
    if not manifest.is_file() or not (args.data / "bccd").is_dir():
        print(f"error: {args.data} needs pbc_manifest.csv and bccd/", file=sys.stderr)
        return 2
    started = time.perf_counter()
    loaded = Classifier.load(args.model)
    card = loaded.card
    card.features_layer = args.layer
    classifier = Classifier(loaded.model, card)
    size = card.input_size

    items = read_manifest(manifest)
    pbc = {
        split: load_split([i for i in items if i.split == split], classifier.classes, size)
        for split in ("train", "val", "test")
    }
    pbc_features = {split: features(classifier, data.images) for split, data in pbc.items()}
    crops = labelled_crops(read_photos(args.data / "bccd", seed=args.seed))
    bccd_features = {
        split: features(classifier, np.stack([to_model_input(c.rgb, size) for c in crops if c.split == split]))
        for split in ("train", "val", "test")
    }
    non_blood = non_blood_images(seed=args.seed)
    non_blood_features = features(classifier, np.stack([to_model_input(image.rgb, size) for image in non_blood]))

    groups = {name: pbc_features["train"][pbc["train"].labels == i] for i, name in enumerate(classifier.classes)}
    groups["bccd_crops"] = bccd_features["train"]
    novelty = fit_novelty(groups)
    threshold = max(
        threshold_at(novelty.distances(pbc_features["val"]), PBC_VAL_FLAGGED),
        threshold_at(novelty.distances(bccd_features["val"]), BCCD_VAL_FLAGGED),
    )
    novelty = novelty.with_threshold(threshold)
    novelty.save(args.model / NOVELTY_FILE)

    flagged_by_category: dict[str, list[bool]] = defaultdict(list)
    for image, flag in zip(non_blood, novelty.flags(non_blood_features), strict=True):
        flagged_by_category[image.category].append(bool(flag))
    report = {
        "threshold": round(threshold, 3),
        "pbc_test_flagged": float(novelty.flags(pbc_features["test"]).mean()),
        "pbc_test_n": len(pbc_features["test"]),
        "bccd_crops_test_flagged": float(novelty.flags(bccd_features["test"]).mean()),
        "bccd_crops_test_n": len(bccd_features["test"]),
        "non_blood_flagged": float(novelty.flags(non_blood_features).mean()),
        "non_blood_n": len(non_blood),
        "non_blood_flagged_by_category": {
            k: round(float(np.mean(v)), 4) for k, v in sorted(flagged_by_category.items())
        },
        "non_blood_n_by_category": {k: len(v) for k, v in sorted(flagged_by_category.items())},
        "pbc_val_flagged": float(novelty.flags(pbc_features["val"]).mean()),
        "bccd_crops_val_flagged": float(novelty.flags(bccd_features["val"]).mean()),
    }
    card.novelty = {
        "file": NOVELTY_FILE,
        "method": f"squared Mahalanobis distance of the space-averaged activations of layer {args.layer} "
        "to the nearest class centre (shared covariance, shrinkage 0.1); flagged above the threshold",
        "fitted_on": "PBC train split by class, plus BCCD train-photo crops as one group",
        "threshold_rule": f"flags at most {PBC_VAL_FLAGGED:.1%} of PBC val, {BCCD_VAL_FLAGGED:.1%} of BCCD val crops",
        "threshold": report["threshold"],
        "command": "python -m training.novelty " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    write_json(args.model / paths.CARD_FILE, card.to_dict())
    evaluation = load_evaluation(args.model)
    evaluation["novelty"] = report
    write_json(args.model / paths.EVALUATION_FILE, evaluation)
    for key, value in report.items():
        print(f"{key}: {value}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
