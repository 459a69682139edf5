"""The Atlas, Quiz and Lecture pages' parts: the deck, the model's answers on it, type for a projector."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
import streamlit as st

from hematovision.app.cache import (
    card_or_none,
    classifier_or_stop,
    heatmap,
    load_classifier,
    model_key,
    shared_image,
    test_predictions,
)
from hematovision.app.classify_view import cell_name
from hematovision.app.stored_image import StoredImage, explainable
from hematovision.core import paths
from hematovision.core.credits import DATASET_CREDIT, DISCLAIMER
from hematovision.explain.overlay import overlay
from hematovision.explain.saliency import FAST_METHOD
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

DECK_UPLOAD_KEY = "teaching_deck_upload"


QUIZ_KEY = "teaching_quiz"

LECTURE_KEY = "teaching_lecture"


@st.cache_resource(show_spinner=False)
def _shipped_deck(folder: str) -> tuple[DeckCell, ...]:
    # Shared by every session: a tuple, so no page can change it for the others.
    return tuple(load_deck(Path(folder)))


def teaching_deck() -> list[DeckCell]:
    """The session's deck: the shipped one, replaced or extended by an educator's upload, limited to the
    classes the model knows (its answers are shown beside the expert's). Stops the page if it is empty."""
    try:
        cells = list(_shipped_deck(str(paths.DECK_DIR)))
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


def deck_answers(cells: list[DeckCell]) -> Mapping[str, StoredImage]:
    """The shared classifier's answer on every deck cell, by cell name (read once per deck and model)."""
    classifier_or_stop()
    return _cached_deck_answers(*model_key(), deck_digest(cells), cells)


@st.cache_resource(show_spinner="The model is reading the deck (first time only)…", max_entries=8)
def _cached_deck_answers(
    model_dir: str, fingerprint: str, digest: str, _cells: list[DeckCell]
) -> Mapping[str, StoredImage]:
    classifier = load_classifier(model_dir, fingerprint)
    results = classifier.classify([(cell.name, cell.data) for cell in _cells], keep_images=True, mode="single")
    # Shared by every session: a read-only view of frozen items.
    return MappingProxyType({item.name: item for item in explainable(results, classifier.card.input_size)})


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
