"""Classification metrics and temperature calibration, in plain NumPy so they can be checked by hand."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

ECE_BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class; 0 where a ratio has no denominator."""
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def macro_f1(matrix: np.ndarray) -> float:
    """Mean F1 over the classes that occur in the data (a class with no support is left out)."""
    scores = per_class_scores(matrix)
    present = scores["support"] > 0
    return float(scores["f1"][present].mean()) if present.any() else 0.0


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% with z = 1.96).

    Unlike the normal approximation it stays inside [0, 1] and holds up for small sets and for
    proportions near 1, which is where this project's numbers live (57 other-lab crops, 98% accuracy).
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def reliability_bins(probabilities: np.ndarray, y_true: np.ndarray, n_bins: int = ECE_BINS) -> dict[str, list]:
    """Confidence vs accuracy in equal-width bins of top-class confidence."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins, so a confidence of exactly 1.0 falls in the last bin.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    confidence_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(index, weights=correct.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.where(counts > 0, confidence_sum / counts, np.nan)
        accuracy = np.where(counts > 0, correct_sum / counts, np.nan)
    return {
        "edges": edges.tolist(),
        "count": counts.tolist(),
        "confidence": [None if np.isnan(v) else float(v) for v in mean_confidence],
        "accuracy": [None if np.isnan(v) else float(v) for v in accuracy],
    }


def expected_calibration_error(probabilities: np.ndarray, y_true: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: the bin-size-weighted mean gap between confidence and accuracy."""
    bins = reliability_bins(probabilities, y_true, n_bins)
    total = sum(bins["count"])
    gap = sum(
        count * abs(conf - acc)
        for count, conf, acc in zip(bins["count"], bins["confidence"], bins["accuracy"], strict=True)
        if count
    )
    return float(gap / total) if total else 0.0


def ece_if_calibrated(
    probabilities: np.ndarray, n_bins: int = ECE_BINS, draws: int = 1000, seed: int = 0
) -> dict[str, float]:
    """The ECE a perfectly calibrated model with these confidences would show on this many images.

    Each draw makes every answer right with probability equal to its confidence. On a few dozen images the
    median is several points above zero, so a measured ECE is only evidence of miscalibration beyond the
    95th percentile of this spread.
    """
    confidence = probabilities.max(axis=1)
    if not len(confidence):
        return {"median": 0.0, "p95": 0.0}
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    confidence_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    correct = np.random.default_rng(seed).random((draws, len(confidence))) < confidence
    correct_sums = np.stack([np.bincount(index, weights=row, minlength=n_bins) for row in correct])
    eces = np.abs(confidence_sum - correct_sums).sum(axis=1) / len(confidence)
    return {"median": float(np.median(eces)), "p95": float(np.quantile(eces, 0.95))}


def negative_log_likelihood(logits: np.ndarray, y_true: np.ndarray, temperature: float = 1.0) -> float:
    probabilities = softmax(logits, temperature)
    picked = probabilities[np.arange(len(y_true)), np.asarray(y_true)]
    return float(-np.log(np.clip(picked, 1e-300, None)).mean())


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The softmax temperature that minimises NLL on held-out data (Guo et al., 2017).

    Searched on log T so that over- and under-confidence are treated alike.
    """
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, y_true, float(np.exp(log_t))),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(result.x))


def choose_confidence_threshold(
    probabilities: np.ndarray, y_true: np.ndarray, target_accuracy: float = 0.995, floor: float = 0.5
) -> float:
    """The lowest confidence above which predictions reach ``target_accuracy`` (never below ``floor``).

    Chosen on validation data: images under it are flagged "uncertain" for a human to check.
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(y_true)
    order = np.argsort(-confidence)
    running_accuracy = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    meets = np.nonzero(running_accuracy >= target_accuracy)[0]
    if len(meets) == 0:
        return 1.0
    # The deepest cut down the confidence ranking that still keeps the target accuracy.
    threshold = float(confidence[order][meets[-1]])
    # Rounded down, so that the cut-off image itself stays on the confident side.
    return max(floor, math.floor(threshold * 1e4) / 1e4)


def classification_report(
    y_true: np.ndarray, probabilities: np.ndarray, classes: list[str], uncalibrated: np.ndarray | None = None
) -> dict[str, Any]:
    """Everything the evaluation JSON holds for one dataset."""
    y_true = np.asarray(y_true)
    y_pred = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    scores = per_class_scores(matrix)
    report: dict[str, Any] = {
        "n": len(y_true),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "accuracy_ci95": list(wilson_interval(int((y_pred == y_true).sum()), len(y_true))),
        "macro_f1": macro_f1(matrix),
        "ece": expected_calibration_error(probabilities, y_true),
        "ece_if_calibrated": ece_if_calibrated(probabilities),
        "labels": list(classes),
        "confusion_matrix": matrix.tolist(),
        "per_class": {
            name: {
                "precision": float(scores["precision"][i]),
                "recall": float(scores["recall"][i]),
                "f1": float(scores["f1"][i]),
                "support": int(scores["support"][i]),
            }
            for i, name in enumerate(classes)
        },
        "reliability": reliability_bins(probabilities, y_true),
    }
    if uncalibrated is not None:
        report["ece_uncalibrated"] = expected_calibration_error(uncalibrated, y_true)
        report["reliability_uncalibrated"] = reliability_bins(uncalibrated, y_true)
    return report
