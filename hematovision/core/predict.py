"""Loading the shipped model once and classifying images with it.

Confidences shown to users are the logits divided by the calibration temperature in the model card,
grown with the input's distance from the training images (hematovision.heads.novelty), so they are
calibrated; a lab profile may then correct them for the user's lab (hematovision.heads.lab_profile).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hematovision.core import paths
from hematovision.core.artifacts import ArtifactError, ModelCard, load_card
from hematovision.core.framing import framed_model_input
from hematovision.core.imaging import DecodedImage, ImageLoadError, decode_image
from hematovision.core.reading import (
    CLASSIFY_MODES,
    CUT_BY_FRAME_NOTE,
    DECODE_WORKERS,
    NO_CELL_FOUND_NOTE,
    Inspection,
    inspect_image,
)
from hematovision.core.runtime import LITERT_FILE, OUTPUTS, Forward, LiteRTForward, keras_forward
from hematovision.core.smear import CellBox, beyond_photo, crop_cell, cut_by_frame, window_beyond_photo
from hematovision.heads.lab_profile import LabProfile, ProfileError, build_profile, model_identity
from hematovision.heads.metrics import softmax
from hematovision.heads.morphology import ANNOTATED_CLASSES, ATTRIBUTES_FILE, AttributeHeads, AttributeHeadsError
from hematovision.heads.novelty import NOVELTY_FILE, DomainCheck

#: "auto": LiteRT where the folder has an export for this card (else Keras); "litert": LiteRT or an error; "keras".
RUNTIMES = ("auto", "litert", "keras")
#: classify_stream: inputs taken from the stream and not yet given back (a bound on memory whatever the stream's
#: length: a few MB of decoded images and model inputs), and cells per network call (LiteRTForward's batch).
STREAM_IN_FLIGHT = 64
STREAM_BATCH = 16

logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]
    uncertain: bool
    #: Not a stained blood-cell image at all (a photo, text, a blank slide): the class above is meaningless.
    not_blood_cell: bool = False
    #: A blood cell, but far from the training images (another lab's stain, camera or magnification):
    #: classified, with confidence lowered for the distance, and read with less certainty.
    unfamiliar: bool = False
    #: WBCAtt attribute -> (predicted value, calibrated confidence); empty unless the class is one the
    #: dataset annotates (hematovision.heads.morphology.ANNOTATED_CLASSES) and the folder has attribute heads.
    attributes: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: Predicted attribute values that (almost) never occur with the predicted class: review the cell.
    contradictions: list[str] = field(default_factory=list)
    #: The lab profile that read this cell (its name), or "" for the model alone (no profile, or one not applied).
    lab_profile: str = ""


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
    #: Platelets found in the field of view (hematovision.core.smear.find_platelets), on every result of a field;
    #: None for an image classified as one cell.
    field_platelets: int | None = None
    #: A single cell re-cut around itself before the network read it: that square (left, top, side) in the
    #: uploaded image's pixels, and the uploaded image itself where images are kept (maps are laid back onto it).
    window: tuple[int, int, int] | None = None
    upload: DecodedImage | None = None

    def beyond_photo(self) -> tuple[int, int, int, int]:
        """Rows above and below, columns before and after the photo in ``image`` (mirrored there): all 0 for an
        image read as it is."""
        if self.box is not None and self.field_image is not None:
            return beyond_photo(self.field_image.rgb.shape, self.box)
        if self.window is not None and self.upload is not None:
            return window_beyond_photo(self.upload.rgb.shape, self.window)
        return (0, 0, 0, 0)


@dataclass
class Judgement:
    probabilities: np.ndarray  # (N, classes), calibrated
    not_blood: np.ndarray  # (N,) bool: not a blood-cell image
    unfamiliar: np.ndarray  # (N,) bool: a blood cell far from the training images
    #: (N,) how much the card's temperature grew with the distance from the training images (1: not at all).
    temperature_growth: np.ndarray


class Classifier:
    """A loaded model plus its card. Never mutated after construction, so one can serve every page.

    Classification runs through ``forward`` (LiteRT on the exported file where there is one, see
    :mod:`hematovision.core.runtime`); the Keras model, needed only for explanations, is then loaded on first
    use of :attr:`model`.
    """

    def __init__(
        self,
        model,
        card: ModelCard,
        novelty: DomainCheck | None = None,
        forward: Forward | None = None,
        model_path: Path | None = None,
        attributes: AttributeHeads | None = None,
    ) -> None:
        self.card = card
        self.novelty = novelty
        self.attributes = attributes
        self._model = model
        self._model_path = model_path
        self._model_lock = threading.Lock()
        self.runtime = "litert" if forward is not None else "keras"
        self._forward = forward or keras_forward(model, card.features_layer, card.logits_layer, card.input_size)

    @property
    def model(self):
        """The Keras model (for explanations), loaded on first use where classification does not need it."""
        with self._model_lock:
            if self._model is None:
                self._model = load_keras_model(self._model_path, self.card)
        return self._model

    @classmethod
    def load(cls, model_dir: Path | None = None, runtime: str = "auto", batch: int = 1) -> Classifier:
        """Load model and card from an artifact folder, checking that they agree.

        ``runtime`` "auto" classifies with LiteRT where the folder holds an export made for this card's
        features layer, else with Keras (with a logged warning where the export is there but LiteRT is not
        installed); "litert" raises ArtifactError rather than fall back; "keras" always uses Keras.
        ``batch``: images per LiteRT call (:class:`hematovision.core.runtime.LiteRTForward`).
        """
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        folder = model_dir or paths.model_dir()
        card = load_card(folder)
        model_path = folder / paths.MODEL_FILE
        if not model_path.is_file():
            raise ArtifactError(f"{paths.MODEL_FILE} is missing from {folder}")
        novelty_path = folder / NOVELTY_FILE
        try:
            novelty = DomainCheck.load(novelty_path) if novelty_path.is_file() else None
        except (OSError, KeyError, ValueError) as exc:
            raise ArtifactError(f"{novelty_path} could not be read: {exc}") from None
        attributes = load_attribute_heads(folder, card)
        forward = litert_forward(folder, card, batch, required=runtime == "litert") if runtime != "keras" else None
        if forward is not None:
            return cls(None, card, novelty, forward, model_path, attributes)
        return cls(load_keras_model(model_path, card), card, novelty, model_path=model_path, attributes=attributes)

    @property
    def classes(self) -> list[str]:
        return self.card.classes

    def warm_up(self) -> None:
        """The first call traces the graph (seconds); do it at load, not on a user's first click."""
        self.logits(np.zeros((1, self.card.input_size, self.card.input_size, 3), np.uint8))

    def model_input(self, source: bytes | str | Path) -> np.ndarray:
        """Decode one image, frame it as one cell and resize it to this model's input (raises ImageLoadError)."""
        return framed_model_input(decode_image(source).rgb, self.card.input_size)

    def features_and_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled features of the card's features layer and raw logits for a uint8 batch (N, size, size, 3)."""
        features, logits, _ = self.network_outputs(batch)
        return features, logits

    def network_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features, logits and centre features (hematovision.core.runtime.OUTPUTS) for a uint8 batch."""
        if len(batch) == 0:
            empty = self._forward(np.zeros((1, self.card.input_size, self.card.input_size, 3), np.uint8))
            features, logits, centre = (np.zeros((0, output.shape[-1]), np.float32) for output in empty)
            return features, logits, centre
        return self._forward(batch)

    def attribute_features(self, features: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """The pooling the attribute heads were fitted on: the middle of the map, or all of it (older heads)."""
        return centre if self.attributes is not None and self.attributes.pooling == "centre" else features

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.features_and_logits(batch)[1]

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (temperature from the card, grown with the distance from training)."""
        return self.judge(*self.features_and_logits(batch)).probabilities

    def network_probabilities(self, batch: np.ndarray) -> np.ndarray:
        """The network's own probabilities at the card's temperature, without the distance-grown temperature.

        What saliency is scored against: an image with pixels removed lies far from training, and the grown
        temperature would flatten it towards uniform whichever pixels went, hiding what the network used.
        """
        return softmax(self.logits(batch), self.card.temperature)

    @functools.cached_property
    def model_id(self) -> str:
        """What lab profiles are bound to: a hash of this folder's model.keras."""
        if self._model_path is None:
            raise ArtifactError("this classifier was not loaded from an artifact folder, so it has no identity")
        return model_identity(self._model_path)

    def judge(self, features: np.ndarray, logits: np.ndarray, profile: LabProfile | None = None) -> Judgement:
        """Calibrated probabilities and the two domain flags; a lab profile, if given and applied, takes over.

        A profile that is not applied (``profile.decision``: its leave-one-out did not beat the model's own answers
        on its examples) changes nothing: the model's own answers, refusals and flags stand.
        With an applied profile, every cell is read through the profile's correction at the profile's own temperature,
        and a cell among its examples (``profile.covers``) is the lab's own: never unfamiliar, its temperature not
        grown with the distance from the training labs, and never refused where it is about as blood-like as the
        profile's examples (``profile.blood_floor``).
        """
        judged = self._judge(features, logits)
        if profile is not None and profile.applied:
            own = profile.covers(features)
            growth = np.where(own, 1.0, judged.temperature_growth)
            judged.probabilities = profile.adjust(features, softmax(logits, self.card.temperature), growth)
            blood_probabilities = self.blood_probabilities(features)
            blood_like = (
                np.ones(len(own), bool) if blood_probabilities is None else blood_probabilities >= profile.blood_floor
            )
            judged.not_blood = judged.not_blood & ~(own & blood_like)
            judged.unfamiliar = judged.unfamiliar & ~own
        return judged

    def blood_probabilities(self, features: np.ndarray) -> np.ndarray | None:
        """The blood-cell check's probabilities, or None where the folder has no such check."""
        if self.novelty is None or self.novelty.blood is None:
            return None
        return self.novelty.blood.probabilities(features)

    def lab_profile_from_examples(
        self, examples: Sequence[tuple[str, str, bytes | Path]], name: str = ""
    ) -> tuple[LabProfile, list[str]]:
        """A lab profile named ``name`` from (class, file name, image) examples, each read as the app reads one
        cell; returns it and a note for each unreadable image. Raises ProfileError (too few examples, ...)."""
        images, labels, notes = [], [], []
        index = {label: i for i, label in enumerate(self.classes)}
        for label, file_name, source in examples:
            try:
                images.append(self.model_input(source))
            except ImageLoadError as exc:
                notes.append(f"skipped {file_name}: {exc}")
                continue
            labels.append(index[label])
        if not images:
            raise ProfileError("no readable image among the examples")
        features, logits = self.features_and_logits(np.stack(images))
        profile = build_profile(
            features,
            softmax(logits, self.card.temperature),
            np.asarray(labels),
            self.classes,
            self.model_id,
            self.blood_probabilities(features),
        )
        profile.name = name
        return profile, notes

    def _judge(self, features: np.ndarray, logits: np.ndarray) -> Judgement:
        if self.novelty is None:
            nothing = np.zeros(len(logits), bool)
            return Judgement(softmax(logits, self.card.temperature), nothing, nothing, np.ones(len(logits)))
        distances = self.novelty.distance.distances(features)
        far = distances > self.novelty.distance.threshold
        growth = self.novelty.temperature_factor(distances)
        probabilities = softmax(logits / (self.card.temperature * growth)[:, None], 1.0)
        if self.novelty.blood is None:
            # A check fitted before the two outcomes were split: far meant "not a blood cell".
            return Judgement(probabilities, far, np.zeros_like(far), growth)
        not_blood = self.novelty.blood.flags(features)
        return Judgement(probabilities, not_blood, far & ~not_blood, growth)

    def predictions(
        self, batch: np.ndarray, threshold: float | None = None, profile: LabProfile | None = None
    ) -> list[Prediction]:
        cut = self.card.low_confidence_threshold if threshold is None else threshold
        features, logits, centre = self.network_outputs(batch)
        judged = self.judge(features, logits, profile=profile)
        applied = profile is not None and profile.applied
        out = []
        for row, not_blood, unfamiliar in zip(judged.probabilities, judged.not_blood, judged.unfamiliar, strict=True):
            best = int(row.argmax())
            out.append(
                Prediction(
                    label=self.classes[best],
                    confidence=float(row[best]),
                    probabilities={name: float(p) for name, p in zip(self.classes, row, strict=True)},
                    uncertain=bool(row[best] < cut),
                    not_blood_cell=bool(not_blood),
                    unfamiliar=bool(unfamiliar),
                    lab_profile=(profile.name or "unnamed lab profile") if applied else "",
                )
            )
        self._describe(self.attribute_features(features, centre), out)
        return out

    def _describe(self, features: np.ndarray, predictions: list[Prediction]) -> None:
        """Attributes (and their contradictions) for the cells called an annotated class, and no others."""
        if self.attributes is None:
            return
        rows = [i for i, p in enumerate(predictions) if p.label in ANNOTATED_CLASSES and not p.not_blood_cell]
        if not rows:
            return
        for row, attributes in zip(rows, self.attributes.predict(features[rows]), strict=True):
            predictions[row].attributes = attributes
            predictions[row].contradictions = self.attributes.contradictions(predictions[row].label, attributes)

    def classify(
        self,
        sources: Sequence[tuple[str, bytes | str | Path]],
        threshold: float | None = None,
        keep_images: bool = False,
        on_progress=None,
        mode: str = "auto",
        profile: LabProfile | None = None,
    ) -> list[ImageResult]:
        """Classify named inputs; a bad input gets its error and the rest are still classified.

        ``mode``: "single" treats every image as one centred cell; "field" finds the white cells in
        each image and classifies each (one result per cell, with its box); "auto" decides per image
        (:func:`hematovision.core.smear.is_whole_field`). ``on_progress(done, total)`` follows decoding.
        """
        by_source = self.classify_by_source(sources, threshold, keep_images, on_progress, mode, profile)
        return [result for results in by_source for result in results]

    def classify_by_source(
        self,
        sources: Sequence[tuple[str, bytes | str | Path]],
        threshold: float | None = None,
        keep_images: bool = False,
        on_progress=None,
        mode: str = "auto",
        profile: LabProfile | None = None,
    ) -> list[list[ImageResult]]:
        """:meth:`classify`, its results kept apart per input (a field of view gives several, a single cell or an
        unreadable file one), in the inputs' order."""
        if mode not in CLASSIFY_MODES:
            raise ValueError(f"mode must be one of {', '.join(CLASSIFY_MODES)}")
        results: list[list[ImageResult]] = []
        inputs: list[np.ndarray] = []
        classified: list[ImageResult] = []
        inspect = functools.partial(inspect_image, mode=mode, input_size=self.card.input_size, keep_images=keep_images)
        # Decoding, finding cells and framing run in the worker threads (Pillow releases the GIL while decoding).
        with ThreadPoolExecutor(DECODE_WORKERS) as pool:
            inspected = pool.map(inspect, (source for _, source in sources))
            for done, ((name, _), inspection) in enumerate(zip(sources, inspected, strict=True), 1):
                these, those = self._results(name, inspection, keep_images)
                results.append(these)
                classified.extend(those)
                inputs.extend(inspection.inputs)
                if on_progress:
                    on_progress(done, len(sources))
        if inputs:
            predictions = self.predictions(np.stack(inputs), threshold, profile)
            for result, prediction in zip(classified, predictions, strict=True):
                result.prediction = prediction
        return results

    def classify_stream(
        self,
        sources: Iterable[tuple[str, bytes | str | Path]],
        threshold: float | None = None,
        mode: str = "auto",
        profile: LabProfile | None = None,
        pool: Executor | None = None,
        in_flight: int = STREAM_IN_FLIGHT,
        batch: int = STREAM_BATCH,
    ) -> Iterator[ImageResult]:
        """:meth:`classify` for a stream of any length (a folder of 100,000 images), results given back in input
        order as they are ready, without their images.

        Decoding, finding cells and framing run in ``pool`` (threads by default; a process pool spreads the
        cell finder, which holds the GIL, over the cores) while the network classifies the images before them,
        ``batch`` cells or more per call. At most ``in_flight`` inputs are taken from ``sources`` and not yet
        given back, so memory stays bounded however long the stream.
        """
        if mode not in CLASSIFY_MODES:
            raise ValueError(f"mode must be one of {', '.join(CLASSIFY_MODES)}")
        if in_flight < 1 or batch < 1:
            raise ValueError("in_flight and batch must be at least 1")
        inspect = functools.partial(inspect_image, mode=mode, input_size=self.card.input_size)
        with contextlib.ExitStack() as stack:
            if pool is None:
                pool = stack.enter_context(ThreadPoolExecutor(DECODE_WORKERS))
            remaining = iter(sources)
            pending: deque[tuple[str, Future]] = deque()
            group: list[ImageResult] = []  # inspected, waiting for the network, in input order
            classified: list[ImageResult] = []
            inputs: list[np.ndarray] = []
            files = 0  # inputs taken into ``group``
            exhausted = False
            while True:
                while not exhausted and len(pending) + files < in_flight:
                    taken = next(remaining, None)
                    if taken is None:
                        exhausted = True
                    else:
                        pending.append((taken[0], pool.submit(inspect, taken[1])))
                if pending:
                    name, future = pending.popleft()
                    inspection = future.result()
                    these, those = self._results(name, inspection, keep_images=False)
                    group += these
                    classified += those
                    inputs += inspection.inputs
                    files += 1
                if len(inputs) >= batch or not pending or 2 * files >= in_flight:
                    if inputs:
                        predictions = self.predictions(np.stack(inputs), threshold, profile)
                        for result, prediction in zip(classified, predictions, strict=True):
                            result.prediction = prediction
                    yield from group
                    group, classified, inputs, files = [], [], [], 0
                if exhausted and not pending:
                    return

    def _results(
        self, name: str, inspection: Inspection, keep_images: bool
    ) -> tuple[list[ImageResult], list[ImageResult]]:
        """The results for one inspected input, and those of them that ``inspection.inputs`` classify, in order."""
        if inspection.error is not None:
            return [ImageResult(name=name, source=name, error=inspection.error)], []
        if not inspection.single:
            cells = self._field_cells(name, inspection, keep_images)
            for cell in cells:
                cell.field_platelets = inspection.platelets
            return cells, [cell for cell in cells if cell.error is None]
        # Automatic mode finding no white cell in a wide frame falls back to one cell:
        # a wide crop of a single cell, or of a platelet, is still worth a class.
        notes = inspection.notes if inspection.boxes is None else [*inspection.notes, NO_CELL_FOUND_NOTE]
        if inspection.framing_note:
            notes = [*notes, inspection.framing_note]
        result = ImageResult(name=name, source=name, notes=notes, window=inspection.window)
        # The framed view, so that what is shown and explained is what the network saw.
        result.image = inspection.image if keep_images else None
        result.upload = inspection.upload if keep_images else None
        return [result], [result]

    @staticmethod
    def _field_cells(name: str, inspection: Inspection, keep_images: bool) -> list[ImageResult]:
        """One result per white cell found in a field of view (a result with an error if none)."""
        notes = [*inspection.notes, "whole field of view: white cells found and classified one by one"]
        decoded = inspection.image
        if not inspection.boxes:
            message = "whole field of view, but no white cell was found in it (choose single-cell mode to classify it)"
            return [ImageResult(name=name, source=name, error=message, field_image=decoded if keep_images else None)]
        cells = []
        for number, box in enumerate(inspection.boxes, start=1):
            cut = cut_by_frame(box, inspection.shape)
            cell = ImageResult(
                name=f"{name} · cell {number}",
                source=name,
                notes=[CUT_BY_FRAME_NOTE, *notes] if cut else notes,
                box=box,
                cut_by_frame=cut,
            )
            if keep_images and decoded is not None:
                cell.image = DecodedImage(crop_cell(decoded.rgb, box))
                cell.field_image = decoded
            cells.append(cell)
        return cells


def load_for_command(model_dir: Path | None) -> Classifier | None:
    """The classifier for a command-line tool, or None after saying on stderr why it cannot load and how to
    point the tool at a model."""
    try:
        return Classifier.load(model_dir)
    except ArtifactError as exc:
        print(f"error: the model cannot be loaded: {exc}", file=sys.stderr)
        print(
            f"fix: point --model or ${paths.MODEL_DIR_ENV} at an artifact folder (see models/README.md)",
            file=sys.stderr,
        )
        return None


def load_keras_model(model_path: Path, card: ModelCard):
    """The Keras model, checked against its card (raises ArtifactError with a message for the user).

    TensorFlow's start-up logging is the entry point's to quieten (``python -m hematovision`` and the app's
    server set TF_CPP_MIN_LOG_LEVEL before anything imports it): a loader does not change the environment."""
    import keras

    import hematovision.explain.stain_density  # noqa: F401  (registers the layer a model may hold)

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
    return model


def load_attribute_heads(folder: Path, card: ModelCard) -> AttributeHeads | None:
    """The folder's attribute heads, where it has them (raises ArtifactError for a file that does not fit)."""
    path = folder / ATTRIBUTES_FILE
    if not path.is_file():
        return None
    try:
        heads = AttributeHeads.load(path)
    except AttributeHeadsError as exc:
        raise ArtifactError(str(exc)) from None
    if heads.features_layer != card.features_layer:
        raise ArtifactError(
            f"{path} was fitted on {heads.features_layer}, but the card's features layer is {card.features_layer}"
        )
    return heads


def litert_forward(folder: Path, card: ModelCard, batch: int = 1, required: bool = False) -> LiteRTForward | None:
    """The exported network, where the folder has one made for this card and LiteRT is installed, else None.

    A folder with a usable export but no LiteRT installed is a set-up fault worth knowing (Keras is slower to
    start and per image): logged as a warning. ``required`` (LiteRT asked for by name) makes either absence an
    ArtifactError instead of a fall-back to Keras.
    """
    path = folder / LITERT_FILE
    export = card.inference.get("litert", {})
    # An export from before the centre features (two outputs) is left to Keras, which gives all three.
    if not path.is_file():
        missing = f"{folder} has no {LITERT_FILE}"
    elif export.get("features_layer") != card.features_layer or export.get("outputs") != list(OUTPUTS):
        missing = f"{path} was not exported for this model card's outputs ({', '.join(OUTPUTS)})"
    else:
        missing = None
    if missing is not None:
        if required:
            raise ArtifactError(f"LiteRT was asked for, but {missing} (make one with python -m training.export)")
        return None
    try:
        return LiteRTForward(path, batch=batch)
    except ImportError as exc:
        message = f"LiteRT (package ai-edge-litert) cannot be imported ({exc})"
        if required:
            raise ArtifactError(f"{message}: install it (requirements.txt) or ask for the Keras runtime") from None
        logger.warning("%s: classifying with Keras instead, slower to start and per image", message)
        return None
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path} could not be loaded: {exc}") from None
