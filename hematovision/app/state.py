"""One session's state: its classified batches, the images kept for Explain, its lab profiles and the
counting choice that follows the user from page to page."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import streamlit as st

from hematovision.app.cache import classifier_or_stop, load_classifier, model_key, shared_results
from hematovision.app.stored_image import StoredImage, explainable
from hematovision.core.inputs import ArchiveError, class_folder_examples
from hematovision.core.predict import ImageResult
from hematovision.heads.lab_profile import LabProfile, ProfileError
from hematovision.workflows.review import file_digest

RESULTS_KEY = "classified_images"
#: The last batch classified, not yet prepared for Explain: (results, input size).
PENDING_RESULTS_KEY = "classified_images_pending"


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
    source_digests = [file_digest(data) for _, data in sources]
    digests = dict(zip((name for name, _ in sources), source_digests, strict=True))
    key = (*model_key(), tuple(digests.items()), mode, profile.digest() if profile else "")
    batches: dict = st.session_state.setdefault(CLASSIFIED_BATCHES_KEY, {})
    if key not in batches:
        if len(batches) >= KEPT_BATCHES:
            del batches[next(iter(batches))]
        batches[key] = classify_shared(sources, source_digests, mode, profile, on_progress)
    results = batches[key]
    for result in results:
        if result.prediction is not None:
            result.prediction.uncertain = result.prediction.confidence < threshold
    if to_review:
        st.session_state[CURRENT_BATCH_KEY] = key, digests
    return results


def classify_shared(
    sources: list[tuple[str, bytes]], digests: list[str], mode: str, profile: LabProfile | None, on_progress
) -> list[ImageResult]:
    """The batch's results, each input read once for the whole server (SharedResults): a hall uploading the same
    handout, or trying the examples, costs one reading. Keyed by model, input name and content (``digests``, in the
    order of ``sources``), mode and lab profile; each session gets its own copies of the results and predictions,
    whose uncertain flag it sets by its threshold."""
    shared = shared_results()
    model = model_key()
    profile_digest = profile.digest() if profile else ""
    keys = [(*model, name, digest, mode, profile_digest) for (name, _), digest in zip(sources, digests, strict=True)]
    found = {index: shared.get(key) for index, key in enumerate(keys)}
    missing = [index for index, results in found.items() if results is None]
    if missing:
        read = load_classifier(*model).classify_by_source(
            [sources[index] for index in missing], keep_images=True, mode=mode, on_progress=on_progress, profile=profile
        )
        for index, results in zip(missing, read, strict=True):
            shared.put(keys[index], results)
            found[index] = results
    return [session_copy(result) for index in range(len(sources)) for result in found[index]]


def session_copy(result: ImageResult) -> ImageResult:
    """A result this session may change (its uncertain flag) without changing another session's; images shared."""
    prediction = dataclasses.replace(result.prediction) if result.prediction is not None else None
    return dataclasses.replace(result, prediction=prediction)


def store_results(results: list[ImageResult], input_size: int) -> None:
    """Keep the batch for the Explain page. Its images are prepared for the network there, when first asked for:
    most batches are never explained, and Classify reruns on every widget change."""
    st.session_state[RESULTS_KEY] = []
    st.session_state[PENDING_RESULTS_KEY] = results, input_size


def stored_images() -> list[StoredImage]:
    pending = st.session_state.pop(PENDING_RESULTS_KEY, None)
    if pending is not None:
        st.session_state[RESULTS_KEY] = explainable(*pending)
    return st.session_state.get(RESULTS_KEY, [])


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
    key = (*model_key(), name, hashlib.sha1(zip_bytes).hexdigest())
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
    key = (*model_key(), hashlib.sha1(data).hexdigest())
    read: dict = st.session_state.setdefault("read_profiles", {})
    if key not in read:
        profile = LabProfile.from_bytes(data)
        profile.check_model(classifier.model_id, classifier.classes)
        read[key] = profile
    return read[key]


def explain(items: list[StoredImage]) -> None:
    """Open the Explain page on ``items`` (the first one chosen), keeping what was classified before."""
    names = {item.name for item in items}
    st.session_state[RESULTS_KEY] = items + [item for item in stored_images() if item.name not in names]
    st.switch_page("pages/2_Explain.py")
