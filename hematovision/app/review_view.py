"""The Review page's parts: the reviewed batch, each cell's controls, the opened cell, the PDF report."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import streamlit as st

from hematovision.app.cache import attribution_methods, classifier_or_stop, evaluation_or_none, heatmap
from hematovision.app.classify_view import labelled_boxes, show_morphology
from hematovision.app.results_table import results_csv
from hematovision.app.state import CLASSIFIED_BATCHES_KEY, CURRENT_BATCH_KEY, KEPT_REVIEWS, REPORT_KEY, REVIEWS_KEY
from hematovision.app.stored_image import StoredImage, explainable
from hematovision.core.imaging import centre_square
from hematovision.core.predict import ImageResult
from hematovision.explain.overlay import MIRRORED_MARGIN_CAPTION, draw_cell_boxes, overlay
from hematovision.explain.saliency import DEFAULT_METHOD, FAST_METHOD
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


@dataclass
class ReviewedBatch:
    #: The batch's key in the session (model, files, mode, profile): what the session's stores of this batch's
    #: review, loaded review files and report are keyed on. Never ``id()``, which a new object can reuse.
    key: tuple
    results: list[ImageResult]
    digests: dict[str, str]
    review: Review

    def result_of(self, cell: CellReview) -> ImageResult:
        return self._by_key[cell.key]

    @functools.cached_property
    def _by_key(self) -> dict[str, ImageResult]:
        return {cell_key(self.digests[r.source or r.name], r): r for r in self.results}

    def csv(self, classes: list[str]) -> str:
        return results_csv(self.results, classes, reviewed_columns(self.results, self.digests, self.review))


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
    return ReviewedBatch(key, results, digests, reviews[key])


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


def carry_on_from_file(batch: ReviewedBatch, data: bytes) -> None:
    """Apply a saved review once per uploaded file, and keep saying what did not match while it stays there."""
    applied: dict = st.session_state.setdefault("applied_reviews", {})
    review = batch.review
    key = (batch.key, file_digest(data))
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
            caption = MIRRORED_MARGIN_CAPTION if image.mirrored_margin else "as the network saw it"
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
    with_heatmaps = container.checkbox(
        "With heatmaps", help=f"Each cell's heatmap ({DEFAULT_METHOD}, as Explain opens on) for its network class"
    )
    if container.button("Make the PDF report"):
        with st.spinner("Writing the report…"):
            pdf = review_pdf(batch, with_heatmaps, count_cut_cells)
            st.session_state[REPORT_KEY] = (batch.key, (batch.review.updated, count_cut_cells), pdf)
    made = st.session_state.get(REPORT_KEY)
    if made is None or made[0] != batch.key:
        return
    if made[1] == (batch.review.updated, count_cut_cells):
        container.download_button("Download the report (PDF)", made[2], file_name="hematovision_report.pdf",
                                   mime="application/pdf")  # fmt: skip
    else:
        container.caption("The review has changed since the report was made: make it again.")


def review_pdf(batch: ReviewedBatch, with_heatmaps: bool, count_cut_cells: bool = True) -> bytes:
    """The report of the review as it stands (heatmaps by Explain's default map, for each cell's network class)."""
    classifier = classifier_or_stop()
    heatmap_of = None
    if with_heatmaps:
        methods = attribution_methods()

        def heatmap_of(image: np.ndarray, class_index: int) -> np.ndarray:
            return methods.heatmap(DEFAULT_METHOD, image, class_index)

    pictures = cell_pictures(batch.results, batch.digests, classifier.card.input_size, heatmap_of, classifier.classes)
    model = ModelSummary.from_artifacts(classifier.card, evaluation_or_none() or {}, classifier.model_id, batch.results)
    fields = field_pictures(batch.results, batch.digests)
    return pdf_report(batch.review, model, classifier.card.white_cell_classes, pictures, count_cut_cells, fields)
