"""The artifact folder: model card, evaluation and training history (see docs/artifact-contract.md).

Reading the card, metrics and history needs no TensorFlow, so the Model performance page and the
home page stay light; loading the Keras model itself is in :mod:`hematovision.core.predict`.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hematovision.core import paths

#: Classes that are white blood cells (leukocytes) and so enter a differential count.
#: Erythroblasts (nucleated red cells) and platelets are counted apart, as in a lab report.
WHITE_CELL_CLASSES = ("basophil", "eosinophil", "ig", "lymphocyte", "monocyte", "neutrophil")


class ArtifactError(RuntimeError):
    """An artifact folder that is missing or unusable, with a message that says how to fix it."""


@dataclass
class ModelCard:
    """What the dashboard needs to rebuild a prediction, and what a reader needs to trust it."""

    classes: list[str]
    input_size: int
    gradcam_layer: str
    logits_layer: str = "logits"
    # The layer whose activations (averaged over space) the novelty check measures.
    features_layer: str = "features"
    preprocessing: str = "inside the model: takes raw RGB 0-255 at input_size x input_size"
    temperature: float = 1.0
    low_confidence_threshold: float = 0.5
    white_cell_classes: list[str] = field(default_factory=lambda: list(WHITE_CELL_CLASSES))
    backbone: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)
    # How "not a blood-cell image" is decided (hematovision.heads.novelty); empty when the folder has no check.
    novelty: dict[str, Any] = field(default_factory=dict)
    # The WBCAtt attribute heads (attributes.npz): attributes, values, temperatures; empty when the folder has none.
    attributes: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelCard:
        known = {name for name in cls.__dataclass_fields__}
        missing = [name for name in ("classes", "input_size", "gradcam_layer") if name not in raw]
        if missing:
            raise ArtifactError(f"the model card lacks {', '.join(missing)}")
        return cls(**{key: value for key, value in raw.items() if key in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path.name} is missing from {path.parent}") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc})") from None


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n")


def folder_fingerprint(folder: Path) -> str:
    """A digest of the name, size and modification time of every file in an artifact folder ("" where there is
    none): what the app's caches are keyed on, so that artifacts rewritten in place are read again. Reading
    the files themselves (tens of megabytes) on every page run would cost more than the caches save."""
    if not folder.is_dir():
        return ""
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
    return hashlib.sha1(repr(files).encode()).hexdigest()


def load_card(model_dir: Path | None = None) -> ModelCard:
    folder = model_dir or paths.model_dir()
    return ModelCard.from_dict(read_json(folder / paths.CARD_FILE))


def load_evaluation(model_dir: Path | None = None) -> dict[str, Any]:
    folder = model_dir or paths.model_dir()
    return read_json(folder / paths.EVALUATION_FILE)


def load_history(model_dir: Path | None = None) -> list[dict[str, float | str]]:
    """Training history rows (one per epoch), numbers parsed; [] when the file is absent."""
    path = (model_dir or paths.model_dir()) / paths.HISTORY_FILE
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{key: _number_or_text(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def load_test_predictions(model_dir: Path | None = None) -> list[dict[str, Any]]:
    """The per-image PBC test predictions (path, label, predicted, confidence, margin); [] where the
    folder has none (they are written by ``python -m training.evaluate --predictions``)."""
    path = (model_dir or paths.model_dir()) / paths.TEST_PREDICTIONS_FILE
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [
            {**row, "confidence": float(row["confidence"]), "margin": float(row["margin"])}
            for row in csv.DictReader(handle)
        ]
