"""What every session shares, built once per server process: the classifier, the explainers, the
model folder's records. Never mutated after it is built; a model that cannot load stops the page with its
reason (nothing is invented)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import numpy as np
import streamlit as st

from hematovision.app.stored_image import StoredImage
from hematovision.core import paths
from hematovision.core.artifacts import (
    ArtifactError,
    ModelCard,
    folder_fingerprint,
    load_card,
    load_evaluation,
    load_history,
    load_test_predictions,
)
from hematovision.core.datasets import examples_per_class, smear_example
from hematovision.core.predict import Classifier, ImageResult
from hematovision.core.runtime import LITERT_FILE
from hematovision.explain.faithfulness import RemovalCheck, removal_check
from hematovision.explain.gradcam import AttributeCam
from hematovision.explain.litert_gradcam import LiteRTAttributeCam, LiteRTGradCam, NotACamHead
from hematovision.explain.saliency import DEFAULT_METHOD, FAST_METHOD, AttributionMethods


def model_key() -> tuple[str, str]:
    """The artifact folder in use and its fingerprint: every cache below is keyed on both, so a model retrained
    into the same folder is loaded afresh rather than served from the cache."""
    folder = paths.model_dir()
    return str(folder), folder_fingerprint(folder)


@st.cache_resource(show_spinner="Loading the model (first time only)…")
def load_classifier(model_dir: str, fingerprint: str) -> Classifier:
    classifier = Classifier.load(Path(model_dir))
    classifier.warm_up()
    return classifier


def preload_classifier() -> None:
    """Load and warm the shared classifier outside any page run (hematovision.cli.serve, at server start).

    A model that cannot load is left for the first page to report, with its message.
    """
    with contextlib.suppress(ArtifactError):
        load_classifier(*model_key())


def classifier_or_stop() -> Classifier:
    """The shared classifier; if it cannot load, say so plainly and stop the page (nothing is invented)."""
    folder = paths.model_dir()
    try:
        return load_classifier(str(folder), folder_fingerprint(folder))
    except ArtifactError as exc:
        st.error(
            f"**The model cannot be loaded**, so nothing can be classified.\n\n{exc}\n\n"
            f"To fix it: restore the shipped artifacts (`git checkout -- models/`), retrain with "
            f"`python -m training.train` (see models/README.md), or point `{paths.MODEL_DIR_ENV}` at a "
            "complete artifact folder."
        )
        st.stop()


#: The images the shared results may hold, in bytes: a lecture's handout or the example images, uploaded by a whole
#: hall, are read once, but a few large fields of view must not fill the server's memory.
SHARED_BYTES = 512 * 2**20


def image_bytes(results: list[ImageResult]) -> int:
    """The bytes of the images an input's results hold (a field's photo counted once, whatever its cells)."""
    images = (image for result in results for image in (result.image, result.field_image, result.upload) if image)
    arrays = {id(image.rgb): image.rgb for image in images}
    return sum(array.nbytes for array in arrays.values())


class SharedResults:
    """Each input's results, by a key that says everything they depend on, for every session; the least recently
    used dropped first once their images pass ``capacity_bytes``.

    Sessions read the results, never change them (state.classify copies what a session may change)."""

    def __init__(self, capacity_bytes: int = SHARED_BYTES) -> None:
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[Hashable, tuple[list[ImageResult], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> list[ImageResult] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, results: list[ImageResult]) -> None:
        size = image_bytes(results)
        with self._lock:
            if key in self._entries:
                self._bytes -= self._entries.pop(key)[1]
            self._entries[key] = results, size
            self._bytes += size
            while self._bytes > self.capacity_bytes and len(self._entries) > 1:
                self._bytes -= self._entries.popitem(last=False)[1][1]

    def __len__(self) -> int:
        return len(self._entries)


@st.cache_resource(show_spinner=False)
def shared_results() -> SharedResults:
    """The server's one :class:`SharedResults`."""
    return SharedResults()


@st.cache_resource(show_spinner=False)
def _load_attribution(model_dir: str, fingerprint: str) -> AttributionMethods:
    classifier = load_classifier(model_dir, fingerprint)
    return AttributionMethods(classifier.model, classifier.card.gradcam_layer, classifier.card.logits_layer)


_warm_up_started: set[tuple[str, str]] = set()
_warmed_up: set[tuple[str, str]] = set()
_warm_up_lock = threading.Lock()


def warm_up_explainers(wait: bool = False) -> None:
    """Load TensorFlow's explainers and draw one default map, in the background, once per model and process
    (at server start, hematovision.cli.serve; and after an Explain page): loading them takes seconds on 2 cores,
    which the first Explain page or the first switch of method would otherwise wait for."""
    key = model_key()
    with _warm_up_lock:
        if key in _warm_up_started:
            return
        _warm_up_started.add(key)

    def warm_up() -> None:
        with contextlib.suppress(ArtifactError):
            methods = _load_attribution(*key)
            size = methods.fast.input_size
            methods.heatmap(DEFAULT_METHOD, np.zeros((size, size, 3), np.uint8), 0)  # traces the compiled pass
            _warmed_up.add(key)

    thread = threading.Thread(target=warm_up, name="warm-up-explainers", daemon=True)
    thread.start()
    if wait:
        thread.join()


def explainers_ready() -> bool:
    """Whether TensorFlow's explainers for the model in use are loaded and warm (maps in a fraction of a second)."""
    return model_key() in _warmed_up


def attribution_methods() -> AttributionMethods:
    classifier_or_stop()
    return _load_attribution(*model_key())


@st.cache_resource(show_spinner=False)
def _load_fast_gradcam(model_dir: str, fingerprint: str) -> Callable[[np.ndarray, Sequence[int]], np.ndarray]:
    """Grad-CAM (FAST_METHOD): read from the LiteRT model where its head allows, so that Review, the teaching
    pages and Explain (while TensorFlow loads) show it without TensorFlow; else TensorFlow's Grad-CAM."""
    classifier = load_classifier(model_dir, fingerprint)
    if classifier.runtime == "litert":
        with contextlib.suppress(NotACamHead):
            return LiteRTGradCam(Path(model_dir) / LITERT_FILE)
    return _load_attribution(model_dir, fingerprint).fast


def fast_gradcam() -> Callable[[np.ndarray, Sequence[int]], np.ndarray]:
    classifier_or_stop()
    return _load_fast_gradcam(*model_key())


#: Seconds each method's last computed map took in this server process, shown beside the method's name: the
#: slow methods take seconds on a small server, and the user should know before choosing one.
_method_seconds: dict[str, float] = {}
#: A map served from the cache comes back in milliseconds; only a computed one is timed.
COMPUTED_SECONDS = 0.3


def method_seconds() -> dict[str, float]:
    return dict(_method_seconds)


def heatmap(method: str, image: StoredImage, class_index: int) -> np.ndarray:
    """A [0, 1] heatmap, cached per (model, method, image, class): sliders rerun the page, and the
    slow methods take seconds (each method's last time is kept for method_seconds)."""
    started = time.perf_counter()
    fast_gradcam() if method == FAST_METHOD else attribution_methods()
    heat = _cached_heatmap(*model_key(), method, image.digest, class_index, image.model_input)
    if (seconds := time.perf_counter() - started) > COMPUTED_SECONDS:
        _method_seconds[method] = seconds
    return heat


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_heatmap(
    model_dir: str, fingerprint: str, method: str, digest: str, class_index: int, _image: np.ndarray
) -> np.ndarray:
    if method == FAST_METHOD:
        return _load_fast_gradcam(model_dir, fingerprint)(_image[None], [class_index])[0]
    return _load_attribution(model_dir, fingerprint).heatmap(method, _image, class_index)


@st.cache_resource(show_spinner=False)
def _load_attribute_cam(model_dir: str, fingerprint: str) -> AttributeCam | LiteRTAttributeCam:
    """The morphology heads' maps, read from LiteRT like the default map where the export allows."""
    classifier = load_classifier(model_dir, fingerprint)
    fast = _load_fast_gradcam(model_dir, fingerprint)
    if isinstance(fast, LiteRTGradCam):
        with contextlib.suppress(NotACamHead):
            return fast.attribute_cam(classifier.attributes, classifier.card.features_layer)
    return AttributeCam(classifier.model, classifier.attributes, classifier.card.gradcam_layer)


def attribute_heatmap(image: StoredImage, attribute: str, value_index: int) -> tuple[np.ndarray, str]:
    """A [0, 1] map of the evidence for one attribute value and the layer it is taken on (the folder must
    have attribute heads)."""
    classifier_or_stop()
    key = model_key()
    heat = _cached_attribute_heatmap(*key, image.digest, attribute, value_index, image.model_input)
    return heat, _load_attribute_cam(*key).layer


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_attribute_heatmap(
    model_dir: str, fingerprint: str, digest: str, attribute: str, value_index: int, _image: np.ndarray
) -> np.ndarray:
    return _load_attribute_cam(model_dir, fingerprint)(_image, attribute, value_index)


def heatmap_check(method: str, image: StoredImage, class_index: int) -> RemovalCheck:
    """The network's confidence after removing the map's hottest 10% and 20% against the same area at random,
    cached like the heatmap it tests (the network's own probabilities, as in ``training.saliency_eval``)."""
    heat = heatmap(method, image, class_index)
    return _cached_check(*model_key(), method, image.digest, class_index, image.model_input, heat)


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_check(
    model_dir: str, fingerprint: str, method: str, digest: str, class_index: int, _image: np.ndarray, _heat: np.ndarray
) -> RemovalCheck:
    return removal_check(_image, _heat, load_classifier(model_dir, fingerprint).network_probabilities, class_index)


def pointing_record() -> dict | None:
    """The offline pointing test (`python -m training.pointing_eval`), or None where none was recorded."""
    return (evaluation_or_none() or {}).get("pointing")


def saliency_record() -> dict | None:
    """The offline faithfulness figures (`python -m training.saliency_eval`), or None where none were recorded."""
    return (evaluation_or_none() or {}).get("saliency")


def example_sources(classes: list[str]) -> tuple[tuple[str, bytes], ...]:
    """Held-out examples from ``../shared/data``, each named with its label: one image per class and one
    whole smear photo (a field of view) where those datasets are there; none where they are absent."""
    return _cached_examples(str(paths.SHARED_DATA_DIR), tuple(classes))


#: A resource, not data: the tuple of names and bytes is immutable, so every session can share it, where
#: st.cache_data would unpickle a copy of a megabyte of images on every run of the Classify page.
@st.cache_resource(show_spinner=False)
def _cached_examples(data_dir: str, classes: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    examples = [
        (f"{item.path.name} (labelled {item.label})", item.path.read_bytes())
        for item in examples_per_class(Path(data_dir), list(classes))
    ]
    smear = smear_example(Path(data_dir))
    if smear is not None:
        path, label = smear
        examples.append((f"{path.name} (smear photo, its white cell labelled {label})", path.read_bytes()))
    return tuple(examples)


def card_or_none() -> ModelCard | None:
    try:
        return _cached_card(*model_key())
    except ArtifactError:
        return None


@st.cache_data(show_spinner=False)
def _cached_card(model_dir: str, fingerprint: str) -> ModelCard:
    return load_card(Path(model_dir))


def evaluation_or_stop() -> dict:
    try:
        return _cached_evaluation(*model_key())
    except ArtifactError as exc:
        st.error(f"**No evaluation to show.** {exc}\n\nRun `python -m training.evaluate` to write one.")
        st.stop()


def evaluation_or_none() -> dict | None:
    try:
        return _cached_evaluation(*model_key())
    except ArtifactError:
        return None


@st.cache_data(show_spinner=False)
def _cached_evaluation(model_dir: str, fingerprint: str) -> dict:
    return load_evaluation(Path(model_dir))


def history() -> list[dict]:
    return _cached_history(*model_key())


@st.cache_data(show_spinner=False)
def _cached_history(model_dir: str, fingerprint: str) -> list[dict]:
    return load_history(Path(model_dir))


def test_predictions() -> list[dict]:
    """The shipped model's per-image PBC test predictions ([] where the artifact folder has none)."""
    return _cached_test_predictions(*model_key())


@st.cache_data(show_spinner=False)
def _cached_test_predictions(model_dir: str, fingerprint: str) -> list[dict]:
    return load_test_predictions(Path(model_dir))


def shared_image(relative_path: str) -> bytes | None:
    """An image of ``../shared/data`` by its path in the manifest; None where the data is not here."""
    path = paths.SHARED_DATA_DIR / relative_path
    return path.read_bytes() if path.is_file() else None
