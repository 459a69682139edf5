"""Classify: upload images, see each one's class, confidence and every class's probability."""

import streamlit as st

from hematovision import charts, ui
from hematovision.differential import differential_count

st.set_page_config(page_title="Classify · HematoVision", page_icon=":material/bloodtype:", layout="wide")
ui.navigation()
st.title("Classify")
classifier = ui.classifier_or_stop()
card = classifier.card

threshold = (
    st.sidebar.slider(
        "Mark as uncertain below (% confidence)",
        0,
        100,
        round(100 * card.low_confidence_threshold),
        help="Default chosen on validation data (model card). Uncertain images are shown, never hidden.",
    )
    / 100
)
uploads = st.file_uploader(
    "Microscope images of single blood cells",
    type=["jpg", "jpeg", "png", "bmp", "tif", "tiff"],
    accept_multiple_files=True,
)
snapshot = st.camera_input("…or take a picture", label_visibility="collapsed") if st.toggle("Use the camera") else None
sources = [(upload.name, upload.getvalue()) for upload in uploads or []]
if snapshot is not None:
    sources.append(("camera picture", snapshot.getvalue()))
if not sources:
    st.info("Upload one or more images (JPEG, PNG, BMP or TIFF) to classify them.")
    ui.footer()
    st.stop()

progress = st.progress(0.0, text="Reading images…")
results = classifier.classify(
    sources,
    threshold=threshold,
    keep_images=True,
    on_progress=lambda done, total: progress.progress(done / total, text=f"Read {done} of {total} images"),
)
progress.empty()
ui.store_results(results, card.input_size)

if len(results) > 1:
    st.header("Batch summary")
    differential = differential_count(results, card.white_cell_classes)
    left, right = st.columns(2)
    left.subheader("Differential count")
    left.dataframe(charts.differential_table(differential), hide_index=True)
    right.subheader("Counted apart")
    right.dataframe(charts.set_apart_table(differential), hide_index=True)
    st.subheader("All images")
    st.dataframe(charts.results_table(results), hide_index=True)
    st.download_button(
        "Download results (CSV)",
        charts.results_csv(results, card.classes),
        file_name="hematovision_results.csv",
        mime="text/csv",
    )
    st.header("Each image")

for result in results:
    with st.container(border=True):
        if result.prediction is None:
            st.error(f"**{result.name}**: could not be classified: {result.error}")
            continue
        image_column, chart_column = st.columns([1, 2])
        image_column.image(result.image.rgb, caption=result.name, width="stretch")
        verdict = f"**{result.prediction.label}** · {100 * result.prediction.confidence:.1f}% confidence"
        if result.prediction.uncertain:
            chart_column.warning(f"Uncertain: {verdict}. Below the {100 * threshold:.0f}% threshold; check by eye.")
        else:
            chart_column.success(verdict)
        for note in result.notes:
            chart_column.caption(f"Note: {note}")
        chart_column.plotly_chart(charts.probability_chart(result.prediction, threshold), key=f"chart-{result.name}")

st.page_link("pages/2_Explain.py", label="See where the network looked →", icon=":material/visibility:")
ui.footer()
