"""Streamlit glue: the cached loaders and the session state the pages share.

The only library module that imports Streamlit. Heavy objects are built once per process
(``st.cache_resource``) and never mutated; pages call these functions and render.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from hematovision import charts, paths
from hematovision.artifacts import ArtifactError, ModelCard, load_card, load_evaluation, load_history
from hematovision.datasets import examples_per_class, smear_example
from hematovision.differential import differential_count
from hematovision.faithfulness import RemovalCheck, removal_check
from hematovision.imaging import centre_square, to_model_input
from hematovision.lab_profile import LabProfile, examples_from_zip, profile_from_examples
from hematovision.overlay import draw_cell_boxes, fade_beyond_photo
from hematovision.predict import Classifier, ImageResult
from hematovision.saliency import AttributionMethods
from hematovision.smear import beyond_photo

DISCLAIMER = (
    "HematoVision is a teaching and review aid, **not a diagnostic device**. "
    "Every result needs checking by a qualified person."
)
DATASET_CREDIT = (
    "Training images: Acevedo A., Merino A., Alférez S., Molina Á., Boldú L., Rodellar J. "
    "*A dataset of microscopic peripheral blood cell images for development of automatic recognition "
    "systems.* Data in Brief 30 (2020) 105474, CC BY 4.0. Morphological attributes: Tsutsui S., Pang W., "
    "Wen B. *WBCAtt*, NeurIPS 2023 Datasets and Benchmarks, MIT. Other-lab cells and smear photos: "
    "the BCCD Dataset (github.com/Shenggan/BCCD_Dataset), MIT."
)
RESULTS_KEY = "classified_images"
CLASSIFIED_BATCHES_KEY = "classified_batches"
#: Batches a session keeps classified, images included: two lets the image type be switched back and forth
#: for free, while a lecture hall of sessions does not hold many copies of every upload.
KEPT_BATCHES = 2


@st.cache_resource(show_spinner="Loading the model (first time only)…")
def _load_classifier(model_dir: str) -> Classifier:
    classifier = Classifier.load(Path(model_dir))
    classifier.warm_up()
    return classifier


def preload_classifier() -> None:
    """Load and warm the shared classifier outside any page run (hematovision.serve, at server start).

    A model that cannot load is left for the first page to report, with its message.
    """
    with contextlib.suppress(ArtifactError):
        _load_classifier(str(paths.model_dir()))


def classifier_or_stop() -> Classifier:
    """The shared classifier; if it cannot load, say so plainly and stop the page (nothing is invented)."""
    folder = paths.model_dir()
    try:
        return _load_classifier(str(folder))
    except ArtifactError as exc:
        st.error(
            f"**The model cannot be loaded**, so nothing can be classified.\n\n{exc}\n\n"
            f"To fix it: restore the shipped artifacts (`git checkout -- models/`), retrain with "
            f"`python -m training.train` (see models/README.md), or point `{paths.MODEL_DIR_ENV}` at a "
            "complete artifact folder."
        )
        st.stop()


def classify(sources: list[tuple[str, bytes]], threshold: float, mode: str, on_progress=None) -> list[ImageResult]:
    """Classify uploads once per (model, files, mode) in a session: widgets rerun the page, and a batch takes seconds.

    Kept in the session, not in ``st.cache_data``: that cache replays the progress bar's updates on a hit,
    and the bar, made by the page outside the cached function, no longer exists then, so moving any
    widget after an upload crashed the page. Only the uncertain flag depends on the threshold, so it is
    set here on every run.
    """
    _, profile = chosen_profile()
    key = (
        str(paths.model_dir()),
        tuple((name, hashlib.sha1(data).hexdigest()) for name, data in sources),
        mode,
        profile.digest() if profile else "",
    )
    batches: dict = st.session_state.setdefault(CLASSIFIED_BATCHES_KEY, {})
    if key not in batches:
        if len(batches) >= KEPT_BATCHES:
            del batches[next(iter(batches))]
        batches[key] = _load_classifier(key[0]).classify(
            sources, keep_images=True, mode=mode, on_progress=on_progress, profile=profile
        )
    results = batches[key]
    for result in results:
        if result.prediction is not None:
            result.prediction.uncertain = result.prediction.confidence < threshold
    return results


@st.cache_resource(show_spinner=False)
def _load_attribution(model_dir: str) -> AttributionMethods:
    classifier = _load_classifier(model_dir)
    return AttributionMethods(classifier.model, classifier.card.gradcam_layer, classifier.card.logits_layer)


def attribution_methods() -> AttributionMethods:
    classifier_or_stop()
    return _load_attribution(str(paths.model_dir()))


def heatmap(method: str, image: StoredImage, class_index: int) -> np.ndarray:
    """A [0, 1] heatmap, cached per (model, method, image, class): sliders rerun the page, and the
    slow methods take seconds."""
    attribution_methods()
    return _cached_heatmap(str(paths.model_dir()), method, image.digest, class_index, image.model_input)


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_heatmap(model_dir: str, method: str, digest: str, class_index: int, _image: np.ndarray) -> np.ndarray:
    return _load_attribution(model_dir).heatmap(method, _image, class_index)


def heatmap_check(method: str, image: StoredImage, class_index: int) -> RemovalCheck:
    """The network's confidence after removing the map's hottest 10% and 20% against the same area at random,
    cached like the heatmap it tests (the network's own probabilities, as in ``training.saliency_eval``)."""
    heat = heatmap(method, image, class_index)
    return _cached_check(str(paths.model_dir()), method, image.digest, class_index, image.model_input, heat)


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_check(
    model_dir: str, method: str, digest: str, class_index: int, _image: np.ndarray, _heat: np.ndarray
) -> RemovalCheck:
    return removal_check(_image, _heat, _load_classifier(model_dir).network_probabilities, class_index)


def saliency_record() -> dict | None:
    """The offline faithfulness figures (`python -m training.saliency_eval`), or None where none were recorded."""
    try:
        return _cached_evaluation(str(paths.model_dir())).get("saliency")
    except ArtifactError:
        return None


def example_sources(classes: list[str]) -> list[tuple[str, bytes]]:
    """Held-out examples from ``../shared/data``, each named with its label: one image per class and one
    whole smear photo (a field of view) where those datasets are there; none where they are absent."""
    return _cached_examples(str(paths.SHARED_DATA_DIR), tuple(classes))


@st.cache_data(show_spinner=False)
def _cached_examples(data_dir: str, classes: tuple[str, ...]) -> list[tuple[str, bytes]]:
    examples = [
        (f"{item.path.name} (labelled {item.label})", item.path.read_bytes())
        for item in examples_per_class(Path(data_dir), list(classes))
    ]
    smear = smear_example(Path(data_dir))
    if smear is not None:
        path, label = smear
        examples.append((f"{path.name} (smear photo, its white cell labelled {label})", path.read_bytes()))
    return examples


def card_or_none() -> ModelCard | None:
    try:
        return _cached_card(str(paths.model_dir()))
    except ArtifactError:
        return None


@st.cache_data(show_spinner=False)
def _cached_card(model_dir: str) -> ModelCard:
    return load_card(Path(model_dir))


def evaluation_or_stop() -> dict:
    try:
        return _cached_evaluation(str(paths.model_dir()))
    except ArtifactError as exc:
        st.error(f"**No evaluation to show.** {exc}\n\nRun `python -m training.evaluate` to write one.")
        st.stop()


@st.cache_data(show_spinner=False)
def _cached_evaluation(model_dir: str) -> dict:
    return load_evaluation(Path(model_dir))


def history() -> list[dict]:
    return _cached_history(str(paths.model_dir()))


@st.cache_data(show_spinner=False)
def _cached_history(model_dir: str) -> list[dict]:
    return load_history(Path(model_dir))


@dataclass
class StoredImage:
    """A classified image kept for the Explain page: its name, model input, upright RGB and prediction."""

    name: str
    digest: str
    model_input: np.ndarray
    display: np.ndarray
    result: ImageResult

    @property
    def mirrored_margin(self) -> bool:
        """Whether a cell's crop reaches beyond its photo's edge (that margin is faded in ``display``)."""
        return any(beyond_field(self.result))


def explainable(results: list[ImageResult], input_size: int) -> list[StoredImage]:
    """The classified results (kept with their images) in the form the Explain page works on."""
    stored = []
    for result in results:
        if result.prediction is None or result.image is None:
            continue
        model_input = to_model_input(result.image.rgb, input_size)
        stored.append(
            StoredImage(
                name=result.name,
                digest=hashlib.sha1(model_input.tobytes()).hexdigest(),
                model_input=model_input,
                display=centre_square(fade_beyond_photo(result.image.rgb, beyond_field(result))),
                result=result,
            )
        )
    return stored


def beyond_field(result: ImageResult) -> tuple[int, int, int, int]:
    """How far a cell's crop reaches beyond its field's edge (all 0 for an image classified whole)."""
    if result.box is None or result.field_image is None:
        return (0, 0, 0, 0)
    return beyond_photo(result.field_image.rgb.shape, result.box)


def store_results(results: list[ImageResult], input_size: int) -> None:
    st.session_state[RESULTS_KEY] = explainable(results, input_size)


def stored_images() -> list[StoredImage]:
    return st.session_state.get(RESULTS_KEY, [])


CLASSIFY_MODES = {
    "auto": "Automatic",
    "single": "Single centred cell",
    "field": "Whole field of view (find the white cells)",
}


def group_by_source(results: list[ImageResult]) -> list[list[ImageResult]]:
    """Results in upload order, the cells of one field of view kept together."""
    groups: dict[str, list[ImageResult]] = {}
    for result in results:
        groups.setdefault(result.source or result.name, []).append(result)
    return list(groups.values())


def show_single(result: ImageResult, threshold: float) -> None:
    """One image: the picture beside its verdict and the chart of every class."""
    image_column, chart_column = st.columns([1, 2])
    image_column.image(result.image.rgb, caption=result.name, width="stretch")
    show_verdict(chart_column, result, threshold)
    show_chart(chart_column, result, threshold)


def show_chart(container, result: ImageResult, threshold: float) -> None:
    figure = charts.probability_chart(result.prediction, threshold)
    if result.prediction.not_blood_cell:
        # Kept for the curious, folded away: these numbers describe an image the model cannot judge.
        container = container.expander("What the classifier would have said (not to be trusted)")
    container.plotly_chart(figure, key=f"chart-{result.name}")


NOT_BLOOD_MESSAGE = (
    "**This does not look like a blood-cell image.** It is far from every image the model learned from, "
    "so no class is given. HematoVision expects a stained blood smear: one centred cell or a field of view."
)


UNFAMILIAR_MESSAGE = (
    "**A blood cell from an unfamiliar set-up.** Its stain, camera or magnification differs from every "
    "image the model learned from, so it is read with less certainty (the confidence below is already "
    "lowered for that). Check it by eye."
)


def show_verdict(container, result: ImageResult, threshold: float) -> None:
    if result.prediction.not_blood_cell:
        container.error(NOT_BLOOD_MESSAGE)
        return
    verdict = f"**{result.prediction.label}** · {100 * result.prediction.confidence:.1f}% confidence"
    profile_name, _ = chosen_profile()
    if profile_name:
        verdict += f" · lab profile *{profile_name}*"
    if result.prediction.unfamiliar:
        container.warning(UNFAMILIAR_MESSAGE)
    if result.prediction.uncertain:
        container.warning(f"Uncertain: {verdict}. Below the {100 * threshold:.0f}% threshold; check by eye.")
    else:
        container.success(verdict)
    for note in result.notes:
        container.caption(f"Note: {note}")


def show_field(
    cells: list[ImageResult],
    threshold: float,
    white_cell_classes: list[str],
    automatic: bool = False,
    count_cut_cells: bool = True,
) -> None:
    """A field of view: the photo with a labelled box per white cell, its own differential, each cell.

    ``automatic``: the Automatic mode chose to read the image as a field, so say how to undo that.
    """
    field = cells[0].field_image
    found = [cell for cell in cells if cell.prediction is not None]
    names = [cell_name(cell) for cell in found]
    photo_column, table_column = st.columns([3, 2])
    photo_column.image(draw_cell_boxes(field.rgb, labelled_boxes(found)), caption=cells[0].source, width="stretch")
    table_column.markdown(f"**{len(found)} white cell{'s' if len(found) != 1 else ''} found** in this field")
    differential = differential_count(found, white_cell_classes, count_cut_cells)
    table_column.dataframe(charts.differential_table(differential), hide_index=True)
    if automatic:
        # A sharp single cell in a wide frame is misread this way (README, limitations).
        table_column.caption(
            "Read as a field of view because the image is not square. If it shows one centred "
            "cell, choose *Single centred cell* in the sidebar."
        )
    for number, (cell, name) in enumerate(zip(found, names, strict=True), start=1):
        confidence = "" if cell.prediction.not_blood_cell else f" ({100 * cell.prediction.confidence:.1f}%)"
        with st.expander(f"cell {number}: {name}{confidence}"):
            crop_column, chart_column = st.columns([1, 2])
            beyond = beyond_field(cell)
            crop_column.image(
                fade_beyond_photo(cell.image.rgb, beyond),
                caption="pale: the photo mirrored beyond its edge" if any(beyond) else None,
                width="stretch",
            )
            show_verdict(chart_column, cell, threshold)
            show_chart(chart_column, cell, threshold)


def cell_name(cell: ImageResult) -> str:
    # A cell the novelty check rejects is named as such everywhere, never by the class it would have got.
    return "not a blood cell" if cell.prediction.not_blood_cell else cell.prediction.label


def labelled_boxes(cells: list[ImageResult]) -> list[tuple]:
    """Box, name and whether to draw it as doubtful, for each classified cell of one field."""
    return [(cell.box, cell_name(cell), cell.prediction.uncertain or cell.prediction.not_blood_cell) for cell in cells]


def cell_in_field(chosen: StoredImage, candidates: list[StoredImage]) -> np.ndarray | None:
    """For a cell found in a field of view, the photo with its cells boxed and numbered as on Classify, so
    "cell 2" can be found; None for an image classified as one cell."""
    if chosen.result.field_image is None or chosen.result.box is None:
        return None
    same_field = {
        item.name: item.result
        for item in candidates
        if item.result.source == chosen.result.source and item.result.box is not None
    }
    return draw_cell_boxes(chosen.result.field_image.rgb, labelled_boxes(list(same_field.values())))


PAGES = (
    ("streamlit_app.py", "Home", ":material/home:"),
    ("pages/1_Classify.py", "Classify", ":material/biotech:"),
    ("pages/2_Explain.py", "Explain", ":material/visibility:"),
    ("pages/3_Model_performance.py", "Model performance", ":material/monitoring:"),
    ("pages/4_Lab_profile.py", "Lab profile", ":material/tune:"),
)


def navigation() -> None:
    with st.sidebar:
        for script, label, icon in PAGES:
            st.page_link(script, label=label, icon=icon)
        st.divider()
        names = ["none (the shipped model)", *st.session_state.get(PROFILES_KEY, {})]
        if len(names) > 1:
            # The choice lives under its own key, not the widget's: Streamlit drops a widget's state when
            # another page is shown, and the profile must follow the user from page to page.
            chosen = st.session_state.get(PROFILE_CHOICE_KEY, names[0])
            index = names.index(chosen) if chosen in names else 0
            st.session_state[PROFILE_CHOICE_KEY] = st.selectbox(
                "Lab profile", names, index=index, help="Made on the Lab profile page"
            )
            st.divider()


PROFILES_KEY = "lab_profiles"
PROFILE_CHOICE_KEY = "lab_profile_choice"


def chosen_profile() -> tuple[str, LabProfile | None]:
    """The session's chosen lab profile (name, profile), or ("", None) for the shipped model alone."""
    profiles: dict = st.session_state.get(PROFILES_KEY, {})
    name = st.session_state.get(PROFILE_CHOICE_KEY, "")
    return (name, profiles[name]) if name in profiles else ("", None)


def keep_profile(name: str, profile: LabProfile) -> None:
    """Add a new profile to the session and choose it for every page (a profile already kept is left alone,
    so that the user's later choice in the sidebar stands while the upload stays on the page)."""
    profiles = st.session_state.setdefault(PROFILES_KEY, {})
    if profiles.get(name) is profile:
        return
    profiles[name] = profile
    st.session_state[PROFILE_CHOICE_KEY] = name
    st.rerun()  # so that the sidebar, drawn before this, shows the new choice


def cached_profile(name: str, zip_bytes: bytes) -> tuple[LabProfile, list[str]]:
    """A profile from a ZIP of class folders, with notes for the user; built once per uploaded archive in a
    session (every widget reruns the page). Raises ProfileError with a message fit for the user."""
    key = (str(paths.model_dir()), name, hashlib.sha1(zip_bytes).hexdigest())
    built: dict = st.session_state.setdefault("built_profiles", {})
    if key not in built:
        classifier = classifier_or_stop()
        examples, notes = examples_from_zip(zip_bytes, classifier.classes)
        profile, unreadable = profile_from_examples(classifier, examples)
        built[key] = profile, notes + unreadable
    return built[key]


def profile_from_file(data: bytes) -> LabProfile:
    """A saved profile, checked against the shared classifier (raises ProfileError); read once per session."""
    classifier = classifier_or_stop()
    key = (str(paths.model_dir()), hashlib.sha1(data).hexdigest())
    read: dict = st.session_state.setdefault("read_profiles", {})
    if key not in read:
        profile = LabProfile.from_bytes(data)
        profile.check_model(classifier.model_id, classifier.classes)
        read[key] = profile
    return read[key]


def footer() -> None:
    st.divider()
    st.caption(DISCLAIMER)
    st.caption(DATASET_CREDIT)
