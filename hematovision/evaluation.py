"""Scoring a classifier on labelled images, through exactly the path the dashboard uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hematovision.datasets import LabelledImage
from hematovision.imaging import ImageLoadError, to_model_input
from hematovision.metrics import classification_report, softmax
from hematovision.predict import Classifier, decode_all


def evaluate_arrays(classifier: Classifier, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Report on already-decoded model inputs (N, size, size, 3) with integer labels."""
    features, logits = classifier.features_and_logits(images)
    report = classification_report(
        labels,
        softmax(logits, classifier.card.temperature),
        classifier.classes,
        uncalibrated=softmax(logits, 1.0),
    )
    if classifier.novelty is not None:
        # Scored as classified either way; this says how many the app would have refused to name.
        report["flagged_not_blood_cell"] = float(classifier.novelty.flags(features).mean()) if len(labels) else 0.0
    return report


@dataclass
class LabelledBatch:
    """Labelled images decoded through the serving path, and the files that could not be read."""

    images: np.ndarray  # (N, size, size, 3) uint8, exactly what the served model sees
    labels: np.ndarray  # (N,) int class indices
    paths: list[Path]
    unreadable: list[dict[str, str]]


def decode_labelled(items: Sequence[LabelledImage], classes: Sequence[str], size: int) -> LabelledBatch:
    index = {name: i for i, name in enumerate(classes)}
    inputs, labels, kept, unreadable = [], [], [], []
    for item, decoded in zip(items, decode_all(item.path for item in items), strict=True):
        if isinstance(decoded, ImageLoadError):
            unreadable.append({"file": str(item.path), "reason": str(decoded)})
            continue
        inputs.append(to_model_input(decoded.rgb, size))
        labels.append(index[item.label])
        kept.append(item.path)
    batch = np.stack(inputs) if inputs else np.zeros((0, size, size, 3), np.uint8)
    return LabelledBatch(batch, np.asarray(labels, np.int64), kept, unreadable)


def evaluate_files(classifier: Classifier, items: Sequence[LabelledImage]) -> dict[str, Any]:
    """Report on image files; unreadable ones are listed under ``unreadable``, not scored."""
    decoded = decode_labelled(items, classifier.classes, classifier.card.input_size)
    report = evaluate_arrays(classifier, decoded.images, decoded.labels)
    report["unreadable"] = decoded.unreadable
    return report
