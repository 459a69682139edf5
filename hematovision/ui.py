"""Streamlit glue: the cached loaders and the session state the pages share.

The only library module that imports Streamlit. Heavy objects are built once per process
(``st.cache_resource``) and never mutated; pages call these functions and render.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from hematovision import charts
from hematovision.core import paths
from hematovision.core.artifacts import (
    ArtifactError,
    ModelCard,
    load_card,
    load_evaluation,
    load_history,
    load_test_predictions,
)
from hematovision.core.credits import DATASET_CREDIT, DISCLAIMER
from hematovision.core.datasets import examples_per_class, smear_example
from hematovision.core.imaging import centre_square, to_model_input
from hematovision.core.inputs import ArchiveError, class_folder_examples
from hematovision.core.predict import Classifier, ImageResult
from hematovision.core.smear import beyond_photo
from hematovision.explain.faithfulness import RemovalCheck, removal_check
from hematovision.explain.gradcam import AttributeCam
from hematovision.explain.overlay import draw_cell_boxes, fade_beyond_photo, overlay
from hematovision.explain.saliency import FAST_METHOD, AttributionMethods
from hematovision.heads.lab_profile import LabProfile, ProfileError
from hematovision.heads.morphology import ANNOTATED_CLASSES, NOT_ANNOTATED_REASON, describe
from hematovision.workflows.differential import Differential, count_warning, differential_count
from hematovision.workflows.report import ModelSummary, cell_pictures, field_pictures, pdf_report
from hematovision.workflows.review import (
    NOT_BLOOD,
    UNREADABLE,
    CellReview,
    Review,
    ReviewError,
    cell_key,
    file_digest,
    reviewed_columns,
)
from hematovision.workflows.teaching import (
    AttributeCounts,
    DeckCell,
    DeckError,
    attribute_counts,
    combine_decks,
    deck_digest,
    deck_from_zip,
    load_attribute_counts,
    load_deck,
    matrix_cell,
)

RESULTS_KEY = "classified_images"
#: The batch last classified on any page, which the Review page reviews: (batch key, file digests by name).
CURRENT_BATCH_KEY = "current_batch"
REVIEWS_KEY = "reviews"
#: Reviews a session keeps, one per batch: a reviewer's work is small and worth more than the images.
KEPT_REVIEWS = 20
REPORT_KEY = "review_report"
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
    """Load and warm the shared classifier outside any page run (hematovision.cli.serve, at server start).

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


def classify(
    sources: list[tuple[str, bytes]], threshold: float, mode: str, on_progress=None, to_review: bool = True
) -> list[ImageResult]:
    """Classify uploads once per (model, files, mode) in a session: widgets rerun the page, and a batch takes seconds.

    Kept in the session, not in ``st.cache_data``: that cache replays the progress bar's updates on a hit,
    and the bar, made by the page outside the cached function, no longer exists then, so moving any
    widget after an upload crashed the page. Only the uncertain flag depends on the threshold, so it is
    set here on every run. ``to_review``: this batch becomes the one the Review page reviews (an image
    uploaded on Explain to be explained does not).
    """
    _, profile = chosen_profile()
    digests = {name: file_digest(data) for name, data in sources}
    key = (str(paths.model_dir()), tuple(digests.items()), mode, profile.digest() if profile else "")
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
    if to_review:
        st.session_state[CURRENT_BATCH_KEY] = key, digests
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


@st.cache_resource(show_spinner=False)
def _load_attribute_cam(model_dir: str) -> AttributeCam:
    classifier = _load_classifier(model_dir)
    return AttributeCam(classifier.model, classifier.attributes, classifier.card.gradcam_layer)


def attribute_heatmap(image: StoredImage, attribute: str, value_index: int) -> tuple[np.ndarray, str]:
    """A [0, 1] map of the evidence for one attribute value and the layer it is taken on (the folder must
    have attribute heads)."""
    classifier_or_stop()
    model_dir = str(paths.model_dir())
    heat = _cached_attribute_heatmap(model_dir, image.digest, attribute, value_index, image.model_input)
    return heat, _load_attribute_cam(model_dir).layer


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_attribute_heatmap(
    model_dir: str, digest: str, attribute: str, value_index: int, _image: np.ndarray
) -> np.ndarray:
    return _load_attribute_cam(model_dir)(_image, attribute, value_index)


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
    return (evaluation_or_none() or {}).get("saliency")


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


def evaluation_or_none() -> dict | None:
    try:
        return _cached_evaluation(str(paths.model_dir()))
    except ArtifactError:
        return None


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


#: The reader's counting protocol for cells cut by a photo's edge, kept across pages (Classify and Review count
#: by the same choice); a widget's own state is dropped when another page is shown.
COUNT_CUT_KEY = "count_cut_cells"


def count_cut_cells_choice() -> bool:
    """The sidebar's "Count cells cut by the photo's edge", the same on every page that counts."""
    chosen = st.sidebar.checkbox(
        "Count cells cut by the photo's edge", value=st.session_state.get(COUNT_CUT_KEY, True),
        help="In a field of view, a white cell that touches the frame is partly outside the photo. Some counting "
        "protocols leave such cells out; unticked, they are listed apart instead of counted.",
    )  # fmt: skip
    st.session_state[COUNT_CUT_KEY] = chosen
    return chosen


def nothing_classified_message(results: list[ImageResult]) -> str:
    """Why a batch offers nothing to count, review or explain: none of its files gave a cell to classify."""
    files = len(group_by_source(results))
    reasons = sorted({result.error for result in results if result.error})
    return (
        f"**Nothing was classified**, so there is no differential and nothing to review: "
        f"{'the file' if files == 1 else f'none of the {files} files'} gave a cell to classify"
        + (f" ({'; '.join(reasons[:3])}{'; …' if len(reasons) > 3 else ''})." if reasons else ".")
    )


def show_differential(container, differential: Differential) -> None:
    """The differential's table, and below 100 white cells the plain warning that it is not a differential yet."""
    warning = count_warning(differential)
    if warning:
        container.warning(warning, icon=":material/functions:")
    container.dataframe(charts.differential_table(differential), hide_index=True)


def group_by_source(results: list[ImageResult]) -> list[list[ImageResult]]:
    """Results in upload order, the cells of one field of view kept together."""
    groups: dict[str, list[ImageResult]] = {}
    for result in results:
        groups.setdefault(result.source or result.name, []).append(result)
    return list(groups.values())


def show_single(result: ImageResult, threshold: float, unfamiliar_said: bool = False) -> None:
    """One image: the picture beside its verdict and the chart of every class."""
    image_column, chart_column = st.columns([1, 2])
    image_column.image(result.image.rgb, caption=result.name, width="stretch")
    show_verdict(chart_column, result, threshold, unfamiliar_said)
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


def show_unfamiliar_notice(results: list[ImageResult]) -> bool:
    """Say once, above the results, that most of the batch comes from a set-up unlike the training labs and
    what to do about it; True where it was said (each cell then carries a short flag, not the whole text)."""
    message = charts.unfamiliar_batch_message(results)
    if message is None:
        return False
    st.warning(message, icon=":material/science:")
    st.page_link(
        "pages/4_Lab_profile.py", label="Make a lab profile from 5 labelled cells per class →", icon=":material/tune:"
    )
    return True


def show_verdict(container, result: ImageResult, threshold: float, unfamiliar_said: bool = False) -> None:
    if result.prediction.not_blood_cell:
        container.error(NOT_BLOOD_MESSAGE)
        return
    verdict = f"**{result.prediction.label}** · {100 * result.prediction.confidence:.1f}% confidence"
    if result.prediction.lab_profile:
        verdict += f" · lab profile *{result.prediction.lab_profile}*"
    if result.prediction.unfamiliar and unfamiliar_said:
        verdict += " · unfamiliar set-up"
    elif result.prediction.unfamiliar:
        container.warning(UNFAMILIAR_MESSAGE)
    if result.prediction.uncertain:
        container.warning(f"Uncertain: {verdict}. Below the {100 * threshold:.0f}% threshold; check by eye.")
    else:
        container.success(verdict)
    for note in result.notes:
        container.caption(f"Note: {note}")
    show_morphology(container, result)


def show_morphology(container, result: ImageResult) -> None:
    """The cell's predicted morphology in one line, each attribute's confidence on demand, and a call for
    review where the morphology contradicts the class; for a class the dataset does not annotate, why not."""
    prediction = result.prediction
    if prediction.not_blood_cell or classifier_or_stop().attributes is None:
        return
    if prediction.label not in ANNOTATED_CLASSES:
        container.caption(NOT_ANNOTATED_REASON)
        return
    values = {name: value for name, (value, _) in prediction.attributes.items()}
    container.markdown(f"**Morphology:** {describe(values)}")
    with container.popover("Confidence of each attribute", icon=":material/checklist:"):
        st.markdown(charts.attribute_confidence_lines(prediction.attributes))
    if prediction.contradictions:
        container.warning(
            f"**Review this cell:** its morphology does not fit a {prediction.label} "
            f"({'; '.join(prediction.contradictions)}). Check the class and the morphology by eye."
        )


def show_field(
    cells: list[ImageResult],
    threshold: float,
    white_cell_classes: list[str],
    automatic: bool = False,
    count_cut_cells: bool = True,
    unfamiliar_said: bool = False,
) -> None:
    """A field of view: the photo with a labelled box per white cell, its own differential, each cell.

    ``automatic``: the Automatic mode chose to read the image as a field, so say how to undo that.
    """
    field = cells[0].field_image
    found = [cell for cell in cells if cell.prediction is not None]
    names = [cell_name(cell) for cell in found]
    photo_column, table_column = st.columns([3, 2])
    photo_column.image(draw_cell_boxes(field.rgb, labelled_boxes(found)), caption=cells[0].source, width="stretch")
    differential = differential_count(found, white_cell_classes, count_cut_cells)
    counted = differential.total_white
    left_out = len(found) - counted
    table_column.markdown(
        f"**{len(found)} white cell{'s' if len(found) != 1 else ''} found** in this field"
        + (f"; {counted} counted, {left_out} counted apart (see *Counted apart*)" if left_out else "")
    )
    table_column.dataframe(charts.differential_table(differential), hide_index=True)
    if automatic:
        table_column.caption(
            "Read as a field of view: it holds a second whole white cell, or none at its centre. If it shows "
            "one cell, choose *Single centred cell* in the sidebar."
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
            show_verdict(chart_column, cell, threshold, unfamiliar_said)
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
    ("pages/8_Review.py", "Review and report", ":material/fact_check:"),
    ("pages/2_Explain.py", "Explain", ":material/visibility:"),
    ("pages/3_Model_performance.py", "Model performance", ":material/monitoring:"),
    ("pages/4_Lab_profile.py", "Lab profile", ":material/tune:"),
    ("pages/5_Atlas.py", "Atlas", ":material/menu_book:"),
    ("pages/6_Quiz.py", "Quiz", ":material/quiz:"),
    ("pages/7_Lecture.py", "Lecture", ":material/co_present:"),
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
    # Results name the profile as the sidebar does. The profile object lives in this session's state only.
    profile.name = name
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
        try:
            examples, notes = class_folder_examples(zip_bytes, classifier.classes)
        except ArchiveError as exc:
            raise ProfileError(str(exc)) from None
        profile, unreadable = classifier.lab_profile_from_examples(examples, name=Path(name).stem)
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


@dataclass
class ReviewedBatch:
    results: list[ImageResult]
    digests: dict[str, str]
    review: Review

    def result_of(self, cell: CellReview) -> ImageResult:
        return self._by_key[cell.key]

    @functools.cached_property
    def _by_key(self) -> dict[str, ImageResult]:
        return {cell_key(self.digests[r.source or r.name], r): r for r in self.results}

    def csv(self, classes: list[str]) -> str:
        return charts.results_csv(self.results, classes, reviewed_columns(self.results, self.digests, self.review))


def current_review() -> ReviewedBatch | None:
    """The review of the batch last classified in this session (started on first use), or None."""
    current = st.session_state.get(CURRENT_BATCH_KEY)
    results = st.session_state.get(CLASSIFIED_BATCHES_KEY, {}).get(current[0]) if current else None
    if results is None:
        return None
    key, digests = current
    reviews: dict = st.session_state.setdefault(REVIEWS_KEY, {})
    if key not in reviews:
        if len(reviews) >= KEPT_REVIEWS:
            del reviews[next(iter(reviews))]
        reviews[key] = Review.from_results(results, digests, classifier_or_stop().model_id)
    return ReviewedBatch(results, digests, reviews[key])


def review_details(review: Review) -> None:
    """The sample identifier, the reviewer's name (both optional) and the batch comment, kept in the review
    (widgets forget on a page switch)."""

    def keep(attribute: str, widget_key: str) -> None:
        setattr(review, attribute, st.session_state[widget_key])
        review.touch()

    sample, left, right = st.columns([1, 1, 2])
    sample.text_input("Sample identifier", value=review.sample, key="review-sample", on_change=keep,
                      args=("sample", "review-sample"), placeholder="optional")  # fmt: skip
    left.text_input("Reviewer", value=review.reviewer, key="review-reviewer", on_change=keep,
                    args=("reviewer", "review-reviewer"), placeholder="optional")  # fmt: skip
    right.text_input("Comment on the whole batch", value=review.comment, key="review-comment", on_change=keep,
                     args=("comment", "review-comment"))  # fmt: skip


def carry_on_from_file(review: Review, data: bytes) -> None:
    """Apply a saved review once per uploaded file, and keep saying what did not match while it stays there."""
    applied: dict = st.session_state.setdefault("applied_reviews", {})
    key = (id(review), file_digest(data))
    if key not in applied:
        try:
            applied[key] = review.carry_on_from(Review.from_json(data), classifier_or_stop().classes), None
        except ReviewError as exc:
            applied[key] = [], str(exc)
        # The review widgets keep what they showed before; drop them so they show the loaded review.
        for widget_key in [name for name in st.session_state if str(name).startswith("review-")]:
            del st.session_state[widget_key]
    problems, error = applied[key]
    if error:
        st.error(f"**This review file cannot be used:** {error}" + ("" if "Nothing was changed" in error else
                 " Nothing was changed."))  # fmt: skip
    elif problems:
        st.warning("**The saved review does not match this batch everywhere.** Applied where it matches.\n\n- "
                   + "\n- ".join(problems))  # fmt: skip
    else:
        st.success("The saved review matches this batch: carry on where it was left.")


#: The cell opened large on the Review page (its review key), kept across reruns and page switches.
FOCUS_KEY = "review_focus"
#: Widget-key prefixes of a cell's controls: in the list, and in the panel where it is opened large. A change in
#: one drops the other's widget state, so both show the review as it now stands.
CONTROL_PREFIXES = ("review-", "review-focus-")


def _cell_controls(batch: ReviewedBatch, cell: CellReview, options: list[str], containers, prefix: str,
                   class_label: str = "Reviewed class") -> None:  # fmt: skip
    """The reviewer's class, "looked at" tick and comment for one cell, in (choice, note) containers."""
    review = batch.review
    key = f"{prefix}{cell.key}"

    def forget_elsewhere() -> None:
        for other in CONTROL_PREFIXES:
            if other != prefix:
                for suffix in ("class", "seen", "comment"):
                    st.session_state.pop(f"{other}{cell.key}-{suffix}", None)

    def keep_class(widget_key: str) -> None:
        review.correct(cell.key, st.session_state[widget_key])
        st.session_state[f"{key}-seen"] = cell.reviewed  # a correction ticks "looked at"; show it
        forget_elsewhere()

    def keep(attribute: str, widget_key: str) -> None:
        setattr(cell, attribute, st.session_state[widget_key])
        review.touch()
        forget_elsewhere()

    choice, note = containers
    if cell.network_class == UNREADABLE:
        choice.caption(batch.result_of(cell).error or "could not be read")
    else:
        choice.selectbox(class_label, options, index=options.index(cell.final_class), key=f"{key}-class",
                         on_change=keep_class, args=(f"{key}-class",))  # fmt: skip
        choice.checkbox("Looked at", value=cell.reviewed, key=f"{key}-seen", on_change=keep,
                        args=("reviewed", f"{key}-seen"))  # fmt: skip
    note.text_input("Comment", value=cell.comment, key=f"{key}-comment", on_change=keep,
                    args=("comment", f"{key}-comment"), placeholder="optional")  # fmt: skip


def open_cell(key: str) -> None:
    st.session_state[FOCUS_KEY] = key


def review_cell(batch: ReviewedBatch, cell: CellReview, options: list[str]) -> None:
    """One cell's row: picture (and a button to open it large), the network's call, and the reviewer's class,
    tick and comment."""
    result = batch.result_of(cell)
    picture, call, choice, note = st.columns([1, 2, 2, 3], vertical_alignment="center")
    if result.image is not None:
        picture.image(centre_square(result.image.rgb), width=96)
    confidence = "" if cell.confidence is None else f" · {100 * cell.confidence:.1f}%"
    call.markdown(f"**{cell.name}**  \nnetwork: **{cell.network_class}**{confidence}")
    if cell.morphology:
        call.caption(cell.morphology)
    if cell.flags:
        call.caption("⚑ " + "; ".join(cell.flags))
    opened = st.session_state.get(FOCUS_KEY) == cell.key
    call.button("Opened above" if opened else "Open large", key=f"review-open-{cell.key}", on_click=open_cell,
                args=(cell.key,), disabled=opened, icon=":material/zoom_in:")  # fmt: skip
    _cell_controls(batch, cell, options, (choice, note), CONTROL_PREFIXES[0])


def focused_cell(review: Review) -> CellReview | None:
    """The cell opened large: the one the reviewer opened, else the first needing a look, else the first."""
    key = st.session_state.get(FOCUS_KEY)
    if key in review.cells:
        return review.cells[key]
    ordered = review.ordered()
    return next((cell for cell in ordered if cell.needs_a_look), ordered[0] if ordered else None)


def next_needing_a_look(review: Review, after: str) -> CellReview | None:
    """The next cell still needing a look after the one with key ``after``, in the list's order, wrapping round."""
    ordered = review.ordered()
    index = [cell.key for cell in ordered].index(after)
    return next((cell for cell in ordered[index + 1 :] + ordered[:index] if cell.needs_a_look), None)


def review_focus(batch: ReviewedBatch, options: list[str]) -> None:
    """The opened cell, large: its picture, the network's heatmap for its class (the fast Grad-CAM), its
    morphology, where it lies in its field, the reviewer's controls, and the next cell needing a look one
    click away."""
    review = batch.review
    cell = focused_cell(review)
    if cell is None:
        return
    st.session_state[FOCUS_KEY] = cell.key
    ordered = [item.key for item in review.ordered()]
    following = next_needing_a_look(review, cell.key)
    with st.container(border=True):
        title, move = st.columns([3, 1], vertical_alignment="center")
        title.subheader(f"Cell {ordered.index(cell.key) + 1} of {len(ordered)}: {cell.name}")
        move.button("Next needing a look", icon=":material/arrow_forward:", key="review-next", type="primary",
                    disabled=following is None, on_click=open_cell, args=(following.key if following else "",),
                    help="The next flagged cell not yet looked at, in the list's order")  # fmt: skip
        if following is None:
            move.caption("Every flagged cell has been looked at.")
        result = batch.result_of(cell)
        picture, heat, details = st.columns([1, 1, 1])
        stored = explainable([result], classifier_or_stop().card.input_size)
        if not stored:
            picture.info(f"No picture: {result.error or 'the image could not be read'}.")
        else:
            image = stored[0]
            caption = "pale: the photo mirrored beyond its edge" if image.mirrored_margin else "as the network saw it"
            picture.image(image.display, caption=caption, width="stretch")
            _focus_heatmap(heat, image, cell)
            if result.field_image is not None and result.box is not None:
                same_field = [r for r in batch.results if r.source == result.source and r.prediction is not None]
                field = draw_cell_boxes(result.field_image.rgb, labelled_boxes(same_field))
                details.image(field, caption=f"its field, boxes numbered as the cells ({cell.name})", width="stretch")
        confidence = "" if cell.confidence is None else f" · {100 * cell.confidence:.1f}%"
        details.markdown(f"network: **{cell.network_class}**{confidence}")
        if cell.flags:
            details.caption("⚑ " + "; ".join(cell.flags))
        if result.prediction is not None:
            show_morphology(details, result)
        choice, note = st.columns([1, 2])
        _cell_controls(batch, cell, options, (choice, note), CONTROL_PREFIXES[1], "Reviewed class of this cell")


def _focus_heatmap(container, image: StoredImage, cell: CellReview) -> None:
    """Where the network looked for its class, and, for a corrected cell, for the reviewer's class."""
    prediction = image.result.prediction
    if prediction is None or prediction.not_blood_cell:
        container.caption("No heatmap: no class was given to this image.")
        return
    classes = classifier_or_stop().classes
    shown = [prediction.label] + ([cell.final_class] if cell.corrected and cell.final_class in classes else [])
    for label in shown:
        heat = heatmap(FAST_METHOD, image, classes.index(label))
        container.image(overlay(image.model_input, heat), caption=f"Grad-CAM: where it looked for {label}",
                        width="stretch")  # fmt: skip


def reviewed_class_options(classes: list[str]) -> list[str]:
    return [*classes, NOT_BLOOD]


def report_download(container, batch: ReviewedBatch, count_cut_cells: bool = True) -> None:
    """Make the PDF on request (seconds, with heatmaps) and offer it while it still matches the review."""
    with_heatmaps = container.checkbox("With heatmaps", help="Each cell's Grad-CAM heatmap for its network class")
    if container.button("Make the PDF report"):
        with st.spinner("Writing the report…"):
            pdf = review_pdf(batch, with_heatmaps, count_cut_cells)
            st.session_state[REPORT_KEY] = (id(batch.review), (batch.review.updated, count_cut_cells), pdf)
    made = st.session_state.get(REPORT_KEY)
    if made is None or made[0] != id(batch.review):
        return
    if made[1] == (batch.review.updated, count_cut_cells):
        container.download_button("Download the report (PDF)", made[2], file_name="hematovision_report.pdf",
                                   mime="application/pdf")  # fmt: skip
    else:
        container.caption("The review has changed since the report was made: make it again.")


def review_pdf(batch: ReviewedBatch, with_heatmaps: bool, count_cut_cells: bool = True) -> bytes:
    """The report of the review as it stands (heatmaps by the fast Grad-CAM, for each cell's network class)."""
    classifier = classifier_or_stop()
    heatmap_of = None
    if with_heatmaps:
        gradcam = attribution_methods().fast

        def heatmap_of(image: np.ndarray, class_index: int) -> np.ndarray:
            return gradcam(image[None], [class_index])[0]

    pictures = cell_pictures(batch.results, batch.digests, classifier.card.input_size, heatmap_of, classifier.classes)
    model = ModelSummary.from_artifacts(
        classifier.card, evaluation_or_none() or {}, classifier.model_id, batch.results
    )
    fields = field_pictures(batch.results, batch.digests)
    return pdf_report(batch.review, model, classifier.card.white_cell_classes, pictures, count_cut_cells, fields)


def test_predictions() -> list[dict]:
    """The shipped model's per-image PBC test predictions ([] where the artifact folder has none)."""
    return _cached_test_predictions(str(paths.model_dir()))


@st.cache_data(show_spinner=False)
def _cached_test_predictions(model_dir: str) -> list[dict]:
    return load_test_predictions(Path(model_dir))


def shared_image(relative_path: str) -> bytes | None:
    """An image of ``../shared/data`` by its path in the manifest; None where the data is not here."""
    path = paths.SHARED_DATA_DIR / relative_path
    return path.read_bytes() if path.is_file() else None


def explain(items: list[StoredImage]) -> None:
    """Open the Explain page on ``items`` (the first one chosen), keeping what was classified before."""
    names = {item.name for item in items}
    st.session_state[RESULTS_KEY] = items + [item for item in stored_images() if item.name not in names]
    st.switch_page("pages/2_Explain.py")


# Teaching: the deck, the model's answers on it, and the quiz and lecture state.

DECK_UPLOAD_KEY = "teaching_deck_upload"
QUIZ_KEY = "teaching_quiz"
LECTURE_KEY = "teaching_lecture"


@st.cache_resource(show_spinner=False)
def _shipped_deck(folder: str) -> list[DeckCell]:
    return load_deck(Path(folder))


def teaching_deck() -> list[DeckCell]:
    """The session's deck: the shipped one, replaced or extended by an educator's upload, limited to the
    classes the model knows (its answers are shown beside the expert's). Stops the page if it is empty."""
    try:
        cells = _shipped_deck(str(paths.DECK_DIR))
    except DeckError as exc:
        st.warning(f"The shipped teaching deck cannot be read: {exc}")
        cells = []
    upload = st.session_state.get(DECK_UPLOAD_KEY)
    if upload:
        cells = combine_decks(cells, upload["cells"], upload["replace"])
    card = card_or_none()
    if card is not None:
        cells = [cell for cell in cells if cell.label in card.classes]
    if not cells:
        st.error("**No cells to teach with.** Upload a ZIP of class folders below, or restore `hematovision/deck/`.")
    return cells


def deck_uploader() -> None:
    """An educator's own cells (ZIP of class folders) instead of or beside the shipped deck, kept for the session."""
    kept = st.session_state.get(DECK_UPLOAD_KEY)
    with st.expander("Use your own cells", expanded=False):
        st.caption(
            "A ZIP with one folder per class, named as the model's classes are (case does not matter). Files "
            "that cannot be read are named and left out; the rest are used for this session, on every page."
        )
        upload = st.file_uploader("Your cells (ZIP of class folders)", type=["zip"], key="deck_zip")
        replace = st.radio("Your cells are", ["added to the shipped deck", "used instead of it"], horizontal=True)
        if upload is not None:
            data = upload.getvalue()
            digest = hashlib.sha1(data).hexdigest()
            if kept is None or kept["digest"] != digest:
                card = card_or_none()
                try:
                    cells, notes = deck_from_zip(data, card.classes if card else [])
                except DeckError as exc:
                    st.error(f"**{upload.name}** cannot be used: {exc}")
                    return
                kept = {"name": upload.name, "digest": digest, "cells": cells, "notes": notes}
            kept["replace"] = replace == "used instead of it"
            st.session_state[DECK_UPLOAD_KEY] = kept
        if kept:
            for note in kept["notes"]:
                st.warning(note)
            how = "instead of" if kept["replace"] else "added to"
            st.success(f"{len(kept['cells'])} cells from **{kept['name']}** in use, {how} the shipped deck.")
            if st.button("Back to the shipped deck"):
                del st.session_state[DECK_UPLOAD_KEY]
                st.rerun()


def atlas_attribute_counts(cells: list[DeckCell]) -> tuple[AttributeCounts, str]:
    """What the atlas describes classes by, and whose cells those are: the PBC train split's white cells
    (shipped with the deck), unless an educator's cells replaced the deck; then their own cells'."""
    upload = st.session_state.get(DECK_UPLOAD_KEY)
    shipped = None if upload and upload["replace"] else _shipped_attribute_counts(str(paths.DECK_DIR))
    return (shipped, "PBC train-split") if shipped else (attribute_counts(cells), "deck")


@st.cache_data(show_spinner=False)
def _shipped_attribute_counts(folder: str) -> AttributeCounts | None:
    return load_attribute_counts(Path(folder))


def deck_answers(cells: list[DeckCell]) -> dict[str, StoredImage]:
    """The shared classifier's answer on every deck cell, by cell name (read once per deck and model)."""
    classifier_or_stop()
    return _cached_deck_answers(str(paths.model_dir()), deck_digest(cells), cells)


@st.cache_resource(show_spinner="The model is reading the deck (first time only)…", max_entries=8)
def _cached_deck_answers(model_dir: str, digest: str, _cells: list[DeckCell]) -> dict[str, StoredImage]:
    classifier = _load_classifier(model_dir)
    results = classifier.classify([(cell.name, cell.data) for cell in _cells], keep_images=True, mode="single")
    return {item.name: item for item in explainable(results, classifier.card.input_size)}


def model_overlay(item: StoredImage) -> np.ndarray:
    """The fast Grad-CAM of the model's own answer, over the image as the network saw it."""
    class_index = classifier_or_stop().classes.index(item.result.prediction.label)
    return overlay(item.display, heatmap(FAST_METHOD, item, class_index))


#: Images shown for one square of the confusion matrix.
MATRIX_CELL_IMAGES = 12


def matrix_cell_images(true: str, predicted: str) -> tuple[str, int, list[tuple[str, bytes, float]]]:
    """The images the model gave ``predicted`` whose expert label is ``true``: where they come from, how many
    there are, and up to MATRIX_CELL_IMAGES of them (name, bytes, confidence), least confident first.

    From the PBC test split where ``../shared`` holds it (with the model folder's per-image predictions),
    else from the teaching deck, read by the shared classifier.
    """
    rows = test_predictions()
    if rows and (paths.SHARED_DATA_DIR / rows[0]["path"]).is_file():
        chosen = matrix_cell(rows, true, predicted)
        # Only the images shown are read: a square on the diagonal holds hundreds.
        shown = [
            (Path(row["path"]).name, shared_image(row["path"]), row["confidence"])
            for row in chosen[:MATRIX_CELL_IMAGES]
        ]
        return "the PBC test split", len(chosen), [image for image in shown if image[1] is not None]
    deck = teaching_deck()
    answers = deck_answers(deck)
    rows = [
        {"path": cell.name, "label": cell.label, "predicted": cell_name(answers[cell.name].result),
         "confidence": answers[cell.name].result.prediction.confidence}
        for cell in deck
    ]  # fmt: skip
    data = {cell.name: cell.data for cell in deck}
    chosen = matrix_cell(rows, true, predicted)
    return (
        "the teaching deck (the PBC test images or the model's predictions on them are not here)",
        len(chosen),
        [(row["path"], data[row["path"]], row["confidence"]) for row in chosen[:MATRIX_CELL_IMAGES]],
    )


def explain_image(name: str, data: bytes) -> None:
    """Classify one image as Classify does and open it on the Explain page."""
    classifier = classifier_or_stop()
    results = classify([(name, data)], classifier.card.low_confidence_threshold, "auto", to_review=False)
    explain(explainable(results, classifier.card.input_size))


def big_text(container, text: str, size: float = 2.2, colour: str = "", title: str = "") -> None:
    """Type readable from the back of a lecture hall: ``size`` rem, less on a screen narrower than 1280 px
    (so that a long class name never runs into the next column); ``text`` is escaped, ``title`` is shown on
    hover."""
    style = (
        f"font-size:min({size}rem,{1.25 * size:.2f}vw);line-height:1.15;margin:0 0 0.35rem 0;font-weight:600;"
        "overflow-wrap:anywhere" + (f";color:{colour}" if colour else "")
    )
    hover = f' title="{html.escape(title)}"' if title else ""
    container.markdown(f'<p style="{style}"{hover}>{html.escape(text)}</p>', unsafe_allow_html=True)


#: The lecture page on a projector: little padding, no fullscreen icon on the (already large) cell, and
#: the credits held to one line.
LECTURE_STYLE = """<style>
[data-testid="stMainBlockContainer"] { padding: 3.6rem 1.25rem 0.5rem 1.25rem; max-width: none; }
[data-testid="stMainBlockContainer"] [data-testid="stElementToolbar"] { display: none; }
.hv-credits { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-size: 0.8rem;
  color: rgba(23, 32, 42, 0.6); margin: 0; }
</style>"""


def lecture_style() -> None:
    st.html(LECTURE_STYLE)


def lecture_footer() -> None:
    """The disclaimer and the dataset credits in one line (the full credit on hover)."""
    line = (
        "Not a diagnostic device · Cells: PBC dataset, Acevedo et al. 2020, CC BY 4.0 · "
        "Attributes: WBCAtt, Tsutsui et al. 2023, MIT"
    )
    full = f"{DISCLAIMER} {DATASET_CREDIT}".replace("**", "").replace("*", "")
    st.markdown(f'<p class="hv-credits" title="{html.escape(full)}">{html.escape(line)}</p>', unsafe_allow_html=True)


def model_answer(item: StoredImage) -> tuple[str, float]:
    """The model's answer on a deck cell as a student should read it, and its calibrated confidence."""
    return cell_name(item.result), item.result.prediction.confidence


def footer() -> None:
    st.divider()
    st.caption(DISCLAIMER)
    st.caption(DATASET_CREDIT)
