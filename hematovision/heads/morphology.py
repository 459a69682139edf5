"""The WBCAtt morphological attributes (Tsutsui et al., NeurIPS 2023) and how to say them in words.

Names and values are spelled exactly as in ``../shared/data/pbc_manifest.csv``; the dataset annotates the
white-cell classes only (basophil, eosinophil, lymphocyte, monocyte, neutrophil).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hematovision.heads.metrics import confusion_matrix, macro_f1, softmax
from hematovision.heads.regression import fit_softmax_regression

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "cell_size": ("big", "small"),
    "cell_shape": ("round", "irregular"),
    "nucleus_shape": (
        "segmented-bilobed",
        "segmented-multilobed",
        "unsegmented-band",
        "unsegmented-indented",
        "unsegmented-round",
        "irregular",
    ),
    "nuclear_cytoplasmic_ratio": ("low", "high"),
    "chromatin_density": ("densely", "loosely"),
    "cytoplasm_vacuole": ("no", "yes"),
    "cytoplasm_texture": ("clear", "frosted"),
    "cytoplasm_colour": ("light blue", "blue", "purple blue"),
    "granule_type": ("nil", "small", "round", "coarse"),
    "granule_colour": ("nil", "pink", "red", "purple"),
    "granularity": ("no", "yes"),
}

#: Classes the dataset gives attributes for; the others (erythroblast, ig, platelet) have none to learn from.
ANNOTATED_CLASSES = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")

NOT_ANNOTATED_REASON = (
    "No morphology description: the WBCAtt annotations, which the attributes are learned from, cover "
    "basophils, eosinophils, lymphocytes, monocytes and neutrophils only."
)

_CHROMATIN_WORDS = {"densely": "dense", "loosely": "loose"}


def describe(attributes: Mapping[str, str]) -> str:
    """One line in a pathologist's words, e.g. "big, round cell; nucleus segmented-bilobed, dense chromatin,
    low N:C; light blue, clear cytoplasm; small pink granules". Missing or empty attributes are left out."""

    def value(name: str) -> str:
        return (attributes.get(name) or "").strip()

    def joined(*words: str) -> str:
        return ", ".join(word for word in words if word)

    cell = joined(value("cell_size"), value("cell_shape"))
    nucleus = joined(
        f"nucleus {value('nucleus_shape')}" if value("nucleus_shape") else "",
        f"{_CHROMATIN_WORDS.get(value('chromatin_density'), value('chromatin_density'))} chromatin"
        if value("chromatin_density")
        else "",
        f"{value('nuclear_cytoplasmic_ratio')} N:C" if value("nuclear_cytoplasmic_ratio") else "",
    )
    cytoplasm_words = joined(value("cytoplasm_colour"), value("cytoplasm_texture"))
    cytoplasm = f"{cytoplasm_words} cytoplasm" if cytoplasm_words else ""
    if value("cytoplasm_vacuole") == "yes":
        cytoplasm = joined(cytoplasm or "cytoplasm", "vacuolated")
    parts = [
        f"{cell} cell" if cell else "",
        nucleus,
        cytoplasm,
        _granules(value("granularity"), value("granule_type"), value("granule_colour")),
    ]
    return "; ".join(part for part in parts if part)


def _granules(granularity: str, kind: str, colour: str) -> str:
    if granularity == "no" or kind == "nil":
        return "no granules"
    words = " ".join(word for word in (kind, colour if colour != "nil" else "") if word)
    return f"{words} granules" if words else ""


#: The attribute heads in an artifact folder (written by ``python -m training.attributes``).
ATTRIBUTES_FILE = "attributes.npz"
#: An attribute value seen with a class in less than this share of that class's training cells contradicts it.
RARE_WITH_CLASS = 0.01


class AttributeHeadsError(ValueError):
    """An attribute-heads file that is unusable or does not fit the features it is given."""


@dataclass(frozen=True)
class Head:
    """Softmax regression on standardised pooled features: probabilities = softmax((x W + b) / temperature)."""

    weights: np.ndarray  # (features, values)
    bias: np.ndarray  # (values,)
    temperature: float = 1.0


@dataclass(frozen=True)
class AttributeHeads:
    """One calibrated head per WBCAtt attribute, on the pooled activations of ``features_layer``.

    ``pooling`` says over what: "centre", the middle of the map (the runtime's centre features), or "mean",
    all of it (the runtime's features; heads saved before the centre features existed).
    ``frequencies[name]`` is (annotated classes, values): how often each value occurs with each class in the
    training split, which the consistency check reads.
    """

    features_layer: str
    mean: np.ndarray
    scale: np.ndarray
    heads: dict[str, Head]
    frequencies: dict[str, np.ndarray] = field(default_factory=dict)
    pooling: str = "centre"

    @property
    def n_features(self) -> int:
        return len(self.mean)

    def logits(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Each head's raw scores (before its temperature) for pooled features (N, n_features)."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise AttributeHeadsError(
                f"the attribute heads take (N, {self.n_features}) features of {self.features_layer}, "
                f"not {features.shape}"
            )
        standard = (features - self.mean) / self.scale
        return {name: standard @ head.weights + head.bias for name, head in self.heads.items()}

    def probabilities(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Calibrated probabilities of each attribute's values, (N, values) per attribute."""
        return {name: softmax(scores, self.heads[name].temperature) for name, scores in self.logits(features).items()}

    def predict(self, features: np.ndarray) -> list[dict[str, tuple[str, float]]]:
        """For each row, attribute name -> (most probable value, its calibrated probability)."""
        probabilities = self.probabilities(features)
        out: list[dict[str, tuple[str, float]]] = [{} for _ in range(len(features))]
        for name, rows in probabilities.items():
            best = rows.argmax(axis=1)
            for row, (index, p) in enumerate(zip(best, rows[np.arange(len(rows)), best], strict=True)):
                out[row][name] = (ATTRIBUTES[name][index], float(p))
        return out

    def contradictions(self, label: str, attributes: Mapping[str, tuple[str, float] | str]) -> list[str]:
        """Predicted values that (almost) never occur with ``label`` in the training split, in words."""
        if label not in ANNOTATED_CLASSES or not self.frequencies:
            return []
        row = ANNOTATED_CLASSES.index(label)
        found = []
        for name, call in attributes.items():
            value = call if isinstance(call, str) else call[0]
            if name not in self.frequencies or value not in ATTRIBUTES[name]:
                continue
            share = float(self.frequencies[name][row, ATTRIBUTES[name].index(value)])
            if share < RARE_WITH_CLASS:
                found.append(f"{name.replace('_', ' ')} {value}: {100 * share:.1f}% of training {label}s")
        return found

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "features_layer": np.array(self.features_layer),
            "pooling": np.array(self.pooling),
            "mean": self.mean.astype(np.float32),
            "scale": self.scale.astype(np.float32),
        }
        for name, head in self.heads.items():
            arrays[f"{name}/weights"] = head.weights.astype(np.float32)
            arrays[f"{name}/bias"] = head.bias.astype(np.float32)
            arrays[f"{name}/temperature"] = np.array(head.temperature, np.float64)
            arrays[f"{name}/values"] = np.array(ATTRIBUTES[name])
            if name in self.frequencies:
                arrays[f"{name}/frequencies"] = self.frequencies[name].astype(np.float64)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> AttributeHeads:
        """Read heads written by :meth:`save`, checking that they fit ATTRIBUTES (raises AttributeHeadsError)."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
        except (OSError, ValueError) as exc:
            raise AttributeHeadsError(f"{path} could not be read: {exc}") from None
        try:
            mean, scale = arrays["mean"].astype(np.float64), arrays["scale"].astype(np.float64)
            heads, frequencies = {}, {}
            for name, values in ATTRIBUTES.items():
                if tuple(arrays[f"{name}/values"].tolist()) != values:
                    raise AttributeHeadsError(f"{path}: the values of {name} differ from those the app knows")
                weights = arrays[f"{name}/weights"].astype(np.float64)
                if weights.shape != (len(mean), len(values)):
                    raise AttributeHeadsError(f"{path}: the {name} head has shape {weights.shape}")
                heads[name] = Head(
                    weights, arrays[f"{name}/bias"].astype(np.float64), float(arrays[f"{name}/temperature"])
                )
                if f"{name}/frequencies" in arrays:
                    frequencies[name] = arrays[f"{name}/frequencies"]
            pooling = str(arrays["pooling"]) if "pooling" in arrays else "mean"
            return cls(str(arrays["features_layer"]), mean, scale, heads, frequencies, pooling)
        except KeyError as exc:
            raise AttributeHeadsError(f"{path} lacks {exc}") from None


def fit_head(
    features: np.ndarray,
    values: np.ndarray,
    n_values: int,
    l2: float,
    balanced: bool = False,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression (weights, bias) on standardised features, by L-BFGS on the mean cross-entropy
    plus ``l2`` times the squared weights. ``balanced`` weighs each value by the inverse of its frequency,
    so that a rare value (a vacuolated cell) counts as much as a common one. ``start``: (weights, bias) to
    start from, e.g. the fit at a neighbouring ``l2`` (far fewer iterations than from zero)."""
    features = np.asarray(features, np.float64)
    values = np.asarray(values)
    if features.ndim != 2 or values.shape != (len(features),):
        raise AttributeHeadsError(f"features {features.shape} and values {values.shape} do not match")
    if len(values) == 0 or values.min() < 0 or values.max() >= n_values:
        raise AttributeHeadsError(f"values must be indices below {n_values}")
    n = len(values)
    if balanced:
        counts = np.bincount(values, minlength=n_values).astype(np.float64)
        sample_weight = np.where(counts > 0, n / (n_values * np.maximum(counts, 1)), 0.0)[values]
    else:
        sample_weight = np.ones(n)
    # The penalty here is l2 times the squared weights; the shared fit's is half its l2 times them.
    return fit_softmax_regression(
        features,
        values,
        n_values,
        2 * l2,
        sample_weight=sample_weight / sample_weight.sum(),
        start=start,
        max_iterations=500,
    )


def score_attributes(heads: AttributeHeads, features: np.ndarray, truth: Mapping[str, Sequence[str]]) -> dict:
    """Accuracy, macro-F1 and confusion matrix (rows true, columns predicted) of each attribute against
    ``truth`` (name -> the true value of each row), with their means over the attributes."""
    probabilities = heads.probabilities(features)
    report: dict = {}
    for name, values in ATTRIBUTES.items():
        true = np.array([values.index(value) for value in truth[name]], np.int64)
        predicted = probabilities[name].argmax(axis=1)
        matrix = confusion_matrix(true, predicted, len(values))
        report[name] = {
            "accuracy": float((predicted == true).mean()) if len(true) else 0.0,
            "macro_f1": macro_f1(matrix),
            "n": len(true),
            "values": list(values),
            "confusion_matrix": matrix.tolist(),
        }
    report["mean_accuracy"] = float(np.mean([report[name]["accuracy"] for name in ATTRIBUTES]))
    report["mean_macro_f1"] = float(np.mean([report[name]["macro_f1"] for name in ATTRIBUTES]))
    return report


def consistency_report(
    heads: AttributeHeads, features: np.ndarray, predicted_labels: Sequence[str], true_labels: Sequence[str]
) -> dict:
    """How the consistency check does on labelled cells: of those the network calls an annotated class,
    how many class errors it flags (caught) and how many correct cells it flags (bothered)."""
    called = np.array([label in ANNOTATED_CLASSES for label in predicted_labels])
    calls = heads.predict(np.asarray(features)[called]) if called.any() else []
    labels = [label for label, keep in zip(predicted_labels, called, strict=True) if keep]
    truths = [label for label, keep in zip(true_labels, called, strict=True) if keep]
    flagged = np.array([bool(heads.contradictions(label, call)) for label, call in zip(labels, calls, strict=True)])
    wrong = np.array([label != truth for label, truth in zip(labels, truths, strict=True)], bool)
    return {
        "cells": len(labels),
        "class_errors": int(wrong.sum()),
        "caught_errors": int((flagged & wrong).sum()),
        "correct": int((~wrong).sum()),
        "flagged_correct": int((flagged & ~wrong).sum()),
        "rule": f"a value seen with the called class in under {100 * RARE_WITH_CLASS:g}% of its training cells",
    }
