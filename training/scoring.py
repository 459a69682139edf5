"""Scoring a classifier on labelled images, through exactly the path the dashboard uses."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hematovision.core.datasets import LabelledImage
from hematovision.core.framing import frame_single_cell
from hematovision.core.imaging import ImageLoadError, to_model_input
from hematovision.core.predict import Classifier
from hematovision.core.reading import decode_all, field_boxes
from hematovision.core.smear import central_cell, crop_cell, find_white_cells
from hematovision.heads.lab_profile import LabProfile
from hematovision.heads.metrics import classification_report, softmax

EVALUATION_MODES = ("auto", "single")


def evaluate_arrays(
    classifier: Classifier, images: np.ndarray, labels: np.ndarray, profile: LabProfile | None = None
) -> dict[str, Any]:
    """Report on already-decoded model inputs (N, size, size, 3) with integer labels.

    Probabilities are the served ones (temperature grown with the distance from training); every image
    is scored, and the flag rates say how many the app would have refused to name (not a blood-cell
    image) or named with a warning (unfamiliar set-up).
    """
    features, logits = classifier.features_and_logits(images)
    judged = classifier.judge(features, logits, profile)
    report = classification_report(labels, judged.probabilities, classifier.classes, uncalibrated=softmax(logits, 1.0))
    if classifier.novelty is not None:
        report["flagged_not_blood"] = float(judged.not_blood.mean()) if len(labels) else 0.0
        report["flagged_unfamiliar"] = float(judged.unfamiliar.mean()) if len(labels) else 0.0
        predicted = judged.probabilities.argmax(axis=1)
        uncertain = judged.probabilities.max(axis=1) < classifier.card.low_confidence_threshold
        wrong = predicted != labels
        report["uncertain"] = {
            "share_of_errors": float(uncertain[wrong].mean()) if wrong.any() else None,
            "share_of_correct": float(uncertain[~wrong].mean()) if (~wrong).any() else None,
            "errors": int(wrong.sum()),
        }
    return report


#: How an image was framed for the model: as one centred cell, as the white cell nearest the centre
#: of a field of view, or whole because no white cell was found in its wide frame.
FRAMINGS = ("single_cell", "field_central_cell", "field_without_cells")


@dataclass
class LabelledBatch:
    """Labelled images decoded through the serving path, and the files that could not be read."""

    images: np.ndarray  # (N, size, size, 3) uint8, exactly what the served model sees
    labels: np.ndarray  # (N,) int class indices
    paths: list[Path]
    unreadable: list[dict[str, str]]
    framing: Counter[str] = field(default_factory=Counter)


def labelled_view(rgb: np.ndarray, mode: str) -> tuple[np.ndarray, str]:
    """The part of a one-label image that its label names, framed as the app's Automatic mode frames it.

    ``mode`` "single" always takes the whole image, framed as one cell (:func:`frame_single_cell`).
    In "auto" a field of view is cut down to its white cell nearest the centre, cropped as the app
    crops each cell; an image with no white cell found is one cell, taken whole, as the app classifies it.
    """
    found = None if mode == "single" else find_white_cells(rgb)  # once: it decides the reading and frames the cell
    boxes = field_boxes(rgb, mode, found)
    if boxes is None:
        return frame_single_cell(rgb, found)[0], "single_cell"
    box = central_cell(boxes, rgb.shape[1], rgb.shape[0])
    return (rgb, "field_without_cells") if box is None else (crop_cell(rgb, box), "field_central_cell")


def decode_labelled(
    items: Sequence[LabelledImage], classes: Sequence[str], size: int, mode: str = "single"
) -> LabelledBatch:
    if mode not in EVALUATION_MODES:
        raise ValueError(f"mode must be one of {', '.join(EVALUATION_MODES)}")
    index = {name: i for i, name in enumerate(classes)}
    inputs, labels, kept, unreadable, framing = [], [], [], [], Counter()
    for item, decoded in zip(items, decode_all(item.path for item in items), strict=True):
        if isinstance(decoded, ImageLoadError):
            unreadable.append({"file": str(item.path), "reason": str(decoded)})
            continue
        view, how = labelled_view(decoded.rgb, mode)
        framing[how] += 1
        inputs.append(to_model_input(view, size))
        labels.append(index[item.label])
        kept.append(item.path)
    batch = np.stack(inputs) if inputs else np.zeros((0, size, size, 3), np.uint8)
    return LabelledBatch(batch, np.asarray(labels, np.int64), kept, unreadable, framing)


def evaluate_files(
    classifier: Classifier, items: Sequence[LabelledImage], mode: str = "auto", profile: LabProfile | None = None
) -> dict[str, Any]:
    """Report on image files; unreadable ones are listed under ``unreadable``, not scored.

    ``mode`` "auto" frames each image as the app's default Automatic mode does (see
    :func:`labelled_view`); "single" scores every image whole, as one centred cell.
    """
    decoded = decode_labelled(items, classifier.classes, classifier.card.input_size, mode)
    report = evaluate_arrays(classifier, decoded.images, decoded.labels, profile)
    report["mode"] = mode
    report["framing"] = {how: decoded.framing[how] for how in FRAMINGS}
    report["unreadable"] = decoded.unreadable
    return report


PREDICTION_COLUMNS = ("path", "label", "predicted", "confidence", "margin")


def predictions_on_files(
    classifier: Classifier,
    items: Sequence[LabelledImage],
    mode: str = "auto",
    relative_to: Path | None = None,
    profile: LabProfile | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """One row per readable image, read as :func:`evaluate_files` reads it: its path (relative to
    ``relative_to`` where given), expert label, the model's class, calibrated confidence and margin (top
    probability minus the second: small where the model hesitates between two classes); and the unreadable
    files. Rows are in the order of ``items``."""
    decoded = decode_labelled(items, classifier.classes, classifier.card.input_size, mode)
    probabilities = classifier.judge(*classifier.features_and_logits(decoded.images), profile).probabilities
    rows = []
    for path, label, row in zip(decoded.paths, decoded.labels, probabilities, strict=True):
        top_two = np.sort(row)[-2:]
        rows.append(
            {
                "path": path.relative_to(relative_to).as_posix() if relative_to else str(path),
                "label": classifier.classes[int(label)],
                "predicted": classifier.classes[int(row.argmax())],
                "confidence": round(float(top_two[-1]), 6),
                "margin": round(float(top_two[-1] - top_two[0]), 6),
            }
        )
    return rows, decoded.unreadable


def metrics_summary(evaluation: dict, other_sets: Sequence[str] | None = None) -> dict:
    """The card's headline figures: the PBC test split's (validation's where there is no test split), and each other
    recorded set's accuracy (only ``other_sets``' where given: the sets a card already names)."""
    summary_source = evaluation["datasets"].get("pbc_test", evaluation["datasets"]["pbc_val"])
    return {
        "evaluated_on": "pbc_test" if "pbc_test" in evaluation["datasets"] else "pbc_val",
        **{key: round(summary_source[key], 4) for key in ("accuracy", "macro_f1", "ece", "ece_uncalibrated")},
        "n": summary_source["n"],
        "min_class_recall": round(min(c["recall"] for c in summary_source["per_class"].values()), 4),
        "val_accuracy": round(evaluation["datasets"]["pbc_val"]["accuracy"], 4),
        **{
            f"{name}_accuracy": round(report["accuracy"], 4)
            for name, report in evaluation["datasets"].items()
            if not name.startswith("pbc_") and (other_sets is None or name in other_sets)
        },
    }
