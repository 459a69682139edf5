"""Loading the shipped model once and classifying images with it.

The Keras model outputs softmax probabilities; confidences shown to users come from the logits
layer divided by the calibration temperature in the model card, so they are calibrated.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hematovision import paths
from hematovision.artifacts import ArtifactError, ModelCard, load_card
from hematovision.imaging import DecodedImage, ImageLoadError, decode_image, load_model_input, to_model_input
from hematovision.metrics import softmax
from hematovision.novelty import NOVELTY_FILE, NoveltyModel
from hematovision.smear import CellBox, crop_cell, cut_by_frame, find_white_cells, is_whole_field

#: Images per forward pass: large enough to amortise per-call overhead, small enough that a
#: folder of thousands never holds more than one chunk of tensors at a time.
CHUNK = 64
CLASSIFY_MODES = ("auto", "single", "field")
NO_CELL_FOUND_NOTE = "wide frame, but no white cell found in it: classified as one centred cell"
#: Cells cut by the frame are read less reliably (in BCCD photos 5 of 73 such cells are flagged as not blood
#: cells, against 6 of 235 inner ones), and many counting protocols leave them out: the reader decides.
CUT_BY_FRAME_NOTE = "cut by the photo's edge: part of the cell is outside the photo"
DECODE_WORKERS = 4


@dataclass
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]
    uncertain: bool
    #: Far from everything the model was trained on: the class above should not be trusted at all.
    out_of_domain: bool = False


@dataclass
class ImageResult:
    """One classified image or cell: a prediction, or the reason there is none.

    A single-cell image gives one result; a whole field of view gives one per white cell found in
    it, each with its ``box`` in the field, the field's file as ``source`` and the field itself.
    """

    name: str
    source: str = ""
    prediction: Prediction | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    image: DecodedImage | None = None
    box: CellBox | None = None
    field_image: DecodedImage | None = None
    cut_by_frame: bool = False  # a cell found touching its photo's edge: part of it is outside the photo


class Classifier:
    """A loaded model plus its card. Never mutated after construction, so one can serve every page."""

    def __init__(self, model, card: ModelCard, novelty: NoveltyModel | None = None) -> None:
        import keras
        import tensorflow as tf

        self.model = model
        self.card = card
        self.novelty = novelty
        features = model.get_layer(card.features_layer).output
        if len(features.shape) == 4:
            features = keras.layers.GlobalAveragePooling2D(name="novelty_pool")(features)
        forward_model = keras.Model(model.inputs, [features, model.get_layer(card.logits_layer).output])
        size = card.input_size
        # One compiled graph for every batch size: predict() and eager calls cost 5-10x more per image.
        self._forward = tf.function(
            lambda images: forward_model(tf.cast(images, tf.float32), training=False),
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
        )

    @classmethod
    def load(cls, model_dir: Path | None = None) -> Classifier:
        """Load model and card from an artifact folder, checking that they agree."""
        folder = model_dir or paths.model_dir()
        card = load_card(folder)
        model_path = folder / paths.MODEL_FILE
        if not model_path.is_file():
            raise ArtifactError(f"{paths.MODEL_FILE} is missing from {folder}")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        try:
            model = keras.saving.load_model(model_path, compile=False)
        except Exception as exc:  # Keras raises many types for a damaged file; all mean the same to a user.
            raise ArtifactError(f"{model_path} could not be loaded: {type(exc).__name__}: {exc}") from None
        outputs = model.outputs[0].shape[-1]
        if outputs != len(card.classes):
            raise ArtifactError(f"the model has {outputs} outputs but its card lists {len(card.classes)} classes")
        if tuple(model.inputs[0].shape[1:]) != (card.input_size, card.input_size, 3):
            raise ArtifactError(
                f"the model takes {tuple(model.inputs[0].shape[1:])} but its card says {card.input_size} px RGB"
            )
        for layer in (card.logits_layer, card.gradcam_layer, card.features_layer):
            try:
                model.get_layer(layer)
            except ValueError:
                raise ArtifactError(f"the card names layer '{layer}', which the model does not have") from None
        novelty_path = folder / NOVELTY_FILE
        try:
            novelty = NoveltyModel.load(novelty_path) if novelty_path.is_file() else None
        except (OSError, KeyError, ValueError) as exc:
            raise ArtifactError(f"{novelty_path} could not be read: {exc}") from None
        return cls(model, card, novelty)

    @property
    def classes(self) -> list[str]:
        return self.card.classes

    def warm_up(self) -> None:
        """The first call traces the graph (seconds); do it at load, not on a user's first click."""
        self.logits(np.zeros((1, self.card.input_size, self.card.input_size, 3), np.uint8))

    def model_input(self, source: bytes | str | Path) -> np.ndarray:
        """Decode one image and resize it to this model's input (raises ImageLoadError)."""
        return load_model_input(source, self.card.input_size)

    def features_and_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate features and raw logits for a uint8 batch (N, size, size, 3)."""
        if len(batch) == 0:
            width = self._forward.get_concrete_function().structured_outputs[0].shape[-1]
            return np.zeros((0, width), np.float32), np.zeros((0, len(self.classes)), np.float32)
        parts = [self._forward(batch[start : start + CHUNK]) for start in range(0, len(batch), CHUNK)]
        return np.concatenate([f.numpy() for f, _ in parts]), np.concatenate([lg.numpy() for _, lg in parts])

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.features_and_logits(batch)[1]

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (temperature from the card)."""
        return softmax(self.logits(batch), self.card.temperature)

    def predictions(self, batch: np.ndarray, threshold: float | None = None) -> list[Prediction]:
        cut = self.card.low_confidence_threshold if threshold is None else threshold
        features, logits = self.features_and_logits(batch)
        novel = self.novelty.flags(features) if self.novelty else np.zeros(len(batch), bool)
        out = []
        for row, is_novel in zip(softmax(logits, self.card.temperature), novel, strict=True):
            best = int(row.argmax())
            out.append(
                Prediction(
                    label=self.classes[best],
                    confidence=float(row[best]),
                    probabilities={name: float(p) for name, p in zip(self.classes, row, strict=True)},
                    uncertain=bool(row[best] < cut),
                    out_of_domain=bool(is_novel),
                )
            )
        return out

    def classify(
        self,
        sources: Sequence[tuple[str, bytes | str | Path]],
        threshold: float | None = None,
        keep_images: bool = False,
        on_progress=None,
        mode: str = "auto",
    ) -> list[ImageResult]:
        """Classify named inputs; a bad input gets its error and the rest are still classified.

        ``mode``: "single" treats every image as one centred cell; "field" finds the white cells in
        each image and classifies each (one result per cell, with its box); "auto" decides per image
        (:func:`hematovision.smear.is_whole_field`). ``on_progress(done, total)`` follows decoding.
        """
        if mode not in CLASSIFY_MODES:
            raise ValueError(f"mode must be one of {', '.join(CLASSIFY_MODES)}")
        results: list[ImageResult] = []
        inputs: list[np.ndarray] = []
        classified: list[ImageResult] = []

        def inspect(source) -> tuple[DecodedImage | ImageLoadError, list[CellBox] | None]:
            """The decoded image and, for a field of view, the white cells in it (None for one cell)."""
            # Decoding and finding cells both run in the worker threads: Pillow and SciPy release the GIL.
            try:
                decoded = decode_image(source)
            except ImageLoadError as exc:
                return exc, None
            return decoded, field_boxes(decoded.rgb, mode)

        with ThreadPoolExecutor(DECODE_WORKERS) as pool:
            inspected = pool.map(inspect, (source for _, source in sources))
            for done, ((name, _), (decoded, boxes)) in enumerate(zip(sources, inspected, strict=True), start=1):
                if isinstance(decoded, ImageLoadError):
                    results.append(ImageResult(name=name, source=name, error=str(decoded)))
                elif boxes is not None and (boxes or mode == "field"):
                    cells = self._field_cells(name, decoded, boxes, keep_images)
                    results.extend(cells)
                    for cell in cells:
                        if cell.error is None:
                            inputs.append(to_model_input(crop_cell(decoded.rgb, cell.box), self.card.input_size))
                            classified.append(cell)
                else:
                    # Automatic mode finding no white cell in a wide frame falls back to one cell:
                    # a wide crop of a single cell, or of a platelet, is still worth a class.
                    notes = decoded.notes if boxes is None else [*decoded.notes, NO_CELL_FOUND_NOTE]
                    result = ImageResult(name=name, source=name, notes=notes)
                    result.image = decoded if keep_images else None
                    results.append(result)
                    inputs.append(to_model_input(decoded.rgb, self.card.input_size))
                    classified.append(result)
                if on_progress:
                    on_progress(done, len(sources))
        if inputs:
            for result, prediction in zip(classified, self.predictions(np.stack(inputs), threshold), strict=True):
                result.prediction = prediction
        return results

    @staticmethod
    def _field_cells(name: str, decoded: DecodedImage, boxes: list[CellBox], keep_images: bool) -> list[ImageResult]:
        """One result per white cell found in a field of view (a result with an error if none)."""
        notes = [*decoded.notes, "whole field of view: white cells found and classified one by one"]
        if not boxes:
            message = "whole field of view, but no white cell was found in it (choose single-cell mode to classify it)"
            return [ImageResult(name=name, source=name, error=message, field_image=decoded if keep_images else None)]
        cells = []
        for number, box in enumerate(boxes, start=1):
            cut = cut_by_frame(box, decoded.rgb.shape)
            cell = ImageResult(
                name=f"{name} · cell {number}",
                source=name,
                notes=[CUT_BY_FRAME_NOTE, *notes] if cut else notes,
                box=box,
                cut_by_frame=cut,
            )
            if keep_images:
                cell.image = DecodedImage(crop_cell(decoded.rgb, box))
                cell.field_image = decoded
            cells.append(cell)
        return cells


def field_boxes(rgb: np.ndarray, mode: str) -> list[CellBox] | None:
    """How a mode reads an image: None for one centred cell, else the white cells found in the field.

    "single" and "field" force a reading; "auto" reads any image that is not square as a field.
    One definition for the app, the CLI and the evaluation, so all three frame images alike.
    """
    if mode == "single" or (mode == "auto" and not is_whole_field(rgb)):
        return None
    return find_white_cells(rgb)


def decode_all(
    sources: Iterable[bytes | str | Path], workers: int = DECODE_WORKERS
) -> Iterable[DecodedImage | ImageLoadError]:
    """Decode in threads (Pillow releases the GIL while decoding), in input order."""

    def attempt(source):
        try:
            return decode_image(source)
        except ImageLoadError as exc:
            return exc

    with ThreadPoolExecutor(workers) as pool:
        yield from pool.map(attempt, sources)
