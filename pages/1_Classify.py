"""Classify: upload images, see each one's class, confidence and every class's probability."""

import streamlit as st

from hematovision.app import cache, classify_view, navigation, results_table, state
from hematovision.core import inputs
from hematovision.workflows import count_tables
from hematovision.workflows.differential import differential_count

st.title("Classify")
classifier = cache.classifier_or_stop()
card = classifier.card

threshold_percent = st.sidebar.slider(
    "Mark as uncertain below (% confidence)", 0, 100, round(100 * card.low_confidence_threshold),
    help="Default chosen on validation data (model card). Uncertain images are shown, never hidden.",
)  # fmt: skip
threshold = threshold_percent / 100
mode = st.sidebar.radio(
    "Image type", list(classify_view.CLASSIFY_MODES), format_func=classify_view.CLASSIFY_MODES.get,
    help="Automatic reads an image by what it shows, whatever its size: one white cell at its centre (neighbours "
    "cut by the frame aside) is one cell; anything more is a field of view, whose white cells are found and counted.",
)  # fmt: skip
count_cut_cells = state.count_cut_cells_choice()
uploads = st.file_uploader(
    "Microscope images: single blood cells, or whole fields of view",
    type=["jpg", "jpeg", "png", "bmp", "tif", "tiff", "zip"],
    accept_multiple_files=True,
    help="A cell that fills much more or much less of its image than in the training images (about two-fifths "
    "of the width) is re-cut to that size automatically, and the result says so.",
)
snapshot = st.camera_input("…or take a picture", label_visibility="collapsed") if st.toggle("Use the camera") else None
examples = cache.example_sources(card.classes)
use_examples = bool(examples) and st.toggle(
    "Try example images", help="The first image of each class in the PBC test split and the first BCCD smear photo "
    "held out from training, by file name: not picked for being classified right. Each name says the label the "
    "dataset's experts gave.",
)  # fmt: skip
expansion = inputs.expand_uploads((upload.name, upload.getvalue()) for upload in uploads or [])
for name, reason in expansion.skipped:
    st.warning(f"Skipped **{name}**: {reason}")
for problem in expansion.problems:
    st.error(problem)
sources = expansion.sources
if snapshot is not None:
    sources.append(("camera picture", snapshot.getvalue()))
if use_examples:
    sources.extend(examples)
if not sources:
    st.info("Upload one or more images (JPEG, PNG, BMP or TIFF, or a ZIP of them) to classify them"
            + (", or try the example images." if examples else "."))  # fmt: skip
    navigation.footer()
    st.stop()

progress = st.progress(0.0, text="Reading images…")
results = state.classify(
    sources, threshold, mode,
    on_progress=lambda done, total: progress.progress(done / total, text=f"Read {done} of {total} images"),
)  # fmt: skip
progress.empty()
state.store_results(results, card.input_size)
unfamiliar_said = classify_view.show_unfamiliar_notice(results)

classified = [result for result in results if result.prediction is not None]
if not classified:
    st.error(classify_view.nothing_classified_message(results))
if len(results) > 1 or results[0].box is not None:
    st.header("Batch summary")
    if classified:
        differential = differential_count(results, card.white_cell_classes, count_cut_cells)
        left, right = st.columns(2)
        left.subheader("Differential count")
        classify_view.show_differential(left, differential)
        right.subheader("Counted apart")
        right.dataframe(count_tables.set_apart_table(differential), hide_index=True)
    st.subheader("All images")
    st.dataframe(results_table.results_table(results), hide_index=True)
    st.download_button(
        "Download results (CSV)",
        results_table.results_csv(results, card.classes),
        file_name="hematovision_results.csv",
        mime="text/csv",
    )
    st.header("Each image")

for group in classify_view.group_by_source(results):
    with st.container(border=True):
        if group[0].error is not None:
            st.error(f"**{group[0].name}**: could not be classified: {group[0].error}")
        elif group[0].box is not None:
            classify_view.show_field(
                group, threshold, card.white_cell_classes, mode == "auto", count_cut_cells, unfamiliar_said
            )
        else:
            classify_view.show_single(group[0], threshold, unfamiliar_said)

if classified:  # nothing to review or explain where nothing was classified (said above)
    st.page_link("pages/8_Review.py", label="Review, correct and report these calls →", icon=":material/fact_check:")
    st.page_link("pages/2_Explain.py", label="See where the network looked →", icon=":material/visibility:")
navigation.footer()
