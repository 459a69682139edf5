"""Scoring a classifier on labelled images, through exactly the path the dashboard uses."""

from __future__ import annotations

from collections.abc import Sequence
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


def evaluate_files(classifier: Classifier, items: Sequence[LabelledImage]) -> dict[str, Any]:
    """Report on image files; unreadable ones are listed under ``unreadable``, not scored."""
    index = {name: i for i, name in enumerate(classifier.classes)}
    size = classifier.card.input_size
    inputs, labels, unreadable = [], [], []
    for item, decoded in zip(items, decode_all(item.path for item in items), strict=True):
        if isinstance(decoded, ImageLoadError):
            unreadable.append({"file": str(item.path), "reason": str(decoded)})
            continue
        inputs.append(to_model_input(decoded.rgb, size))
        labels.append(index[item.label])
    batch = np.stack(inputs) if inputs else np.zeros((0, size, size, 3), np.uint8)
    report = evaluate_arrays(classifier, batch, np.asarray(labels, np.int64))
    report["unreadable"] = unreadable
    return report
