"""Model performance: how good the shipped model is, from the artifact folder alone."""

import streamlit as st

from hematovision.app import cache, captions, classify_view, figures, navigation, tables, teaching_view
from hematovision.workflows.teaching import confused_pairs

st.title("Model performance")
evaluation = cache.evaluation_or_stop()
datasets = evaluation["datasets"]
names = list(datasets)
default = names.index("pbc_test") if "pbc_test" in names else 0
name = st.selectbox(
    "Evaluated on",
    names,
    index=default,
    format_func=lambda key: evaluation.get("descriptions", {}).get(key) or captions.DATASET_NAMES.get(key, key),
)
report = datasets[name]

columns = st.columns(4)
columns[0].metric("accuracy", f"{100 * report['accuracy']:.2f}%")
columns[1].metric("macro F1", f"{report['macro_f1']:.4f}")
columns[2].metric("ECE after calibration", f"{100 * report['ece']:.2f}%")
columns[3].metric("images", f"{report['n']:,}")
st.caption(captions.accuracy_interval_caption(report))

st.header("Confusion matrix")
normalise = st.toggle("Show row percentages (recall per class)", value=False)
st.plotly_chart(figures.confusion_heatmap(report["confusion_matrix"], report["labels"], normalise))
mistakes = tables.top_confusions(report)
if not mistakes.empty:
    st.subheader("Most frequent mistakes")
    st.dataframe(mistakes, hide_index=True)

if name == "pbc_test":
    st.subheader("The cells behind a square of the matrix")
    labels = report["labels"]
    most_frequent = confused_pairs(report, limit=1)
    default_true, default_predicted = most_frequent[0][:2] if most_frequent else (labels[0], labels[0])
    true_column, predicted_column = st.columns(2)
    true = true_column.selectbox("True class", labels, index=labels.index(default_true))
    predicted = predicted_column.selectbox("Predicted class", labels, index=labels.index(default_predicted))
    source, total, images = teaching_view.matrix_cell_images(true, predicted)
    st.caption(
        f"{total} {true} image{'s' if total != 1 else ''} read as {predicted} in {source}; "
        f"{len(images)} shown, least confident first."
    )
    for start in range(0, len(images), 6):
        for column, (image_name, data, confidence) in zip(st.columns(6), images[start : start + 6], strict=False):
            column.image(data, caption=f"{image_name} · {100 * confidence:.1f}%", width="stretch")
            if column.button("Explain", key=f"explain-{image_name}", icon=":material/visibility:"):
                classify_view.explain_image(image_name, data)

st.header("Per-class metrics")
st.dataframe(tables.per_class_table(report), hide_index=True)

st.header("Calibration")
st.caption(
    f"Expected calibration error (15 bins): {100 * report.get('ece_uncalibrated', float('nan')):.2f}% before, "
    f"{100 * report['ece']:.2f}% after temperature scaling. Marker size grows with the images in a bin."
    + captions.ece_noise_caption(report)
)
st.plotly_chart(figures.reliability_diagram(report))

attributes = evaluation.get("attributes")
if attributes:
    st.header("Morphology: the 11 WBCAtt attributes")
    st.caption(
        "Each white cell of an annotated class (basophil, eosinophil, lymphocyte, monocyte, neutrophil) on the "
        "manifest's test split, against the annotators' values: one calibrated head per attribute on the "
        "network's own features (`python -m training.attributes`; chosen on val, the test split chose nothing)."
    )
    st.dataframe(tables.attribute_scores_table(attributes), hide_index=True, height="content")
    st.caption(
        "Beside two anchors from the WBCAtt paper (Tsutsui et al., NeurIPS 2023), measured on its own test "
        "split, which is not this one: its ResNet-50 baseline and how often two annotators agreed."
    )
    st.dataframe(tables.attribute_anchor_table(attributes), hide_index=True)
    for split, check in attributes.get("consistency_check", {}).items():
        st.caption(captions.consistency_caption(check, split))

history = cache.history()
card = cache.card_or_none()
if history:
    st.header("Training curves")
    if card:
        st.caption(captions.training_curves_caption(card.training.get("config", {}), len(card.classes)))
    loss_column, accuracy_column = st.columns(2)
    loss_column.plotly_chart(figures.training_curves(history, "loss"))
    accuracy_column.plotly_chart(figures.training_curves(history, "accuracy"))

st.header("Other labs")
st.markdown(captions.OTHER_LABS_EXPECTATION)
other_labs = tables.other_labs_table(evaluation)
if not other_labs.empty:
    st.dataframe(tables.with_words_for_missing(other_labs), hide_index=True)
    st.caption("Recall per class on each set:")
    st.dataframe(tables.with_words_for_missing(tables.other_labs_recall_table(evaluation)), hide_index=True)
if evaluation.get("detection"):
    st.subheader("Finding the white cells in a whole photo")
    st.caption("`python -m training.bccd --record models`: the cells found against the annotated BCCD boxes "
               "(IoU ≥ 0.5). The cell finder has no trained part; the test photos chose nothing.")  # fmt: skip
    st.dataframe(tables.detection_table(evaluation["detection"]), hide_index=True)

novelty = evaluation.get("novelty")
if novelty and "pbc_test" in novelty:
    st.subheader("Not a blood cell, or an unfamiliar set-up")
    st.caption("*Not a blood cell*: no class is given. *Unfamiliar set-up*: classified, with a warning and a "
               "confidence lowered for the distance. Thresholds were set on validation images; none of these "
               "images took part in fitting or choosing them (`python -m training.novelty`).")  # fmt: skip
    st.dataframe(tables.with_words_for_missing(tables.novelty_table(novelty)), hide_index=True, height="content")
    st.caption("*Before*: the check shipped until 2026-12-06. —: not measured for that set.")

robustness = evaluation.get("robustness")
if robustness:
    st.subheader("Simulated changes of lab")
    st.caption(captions.robustness_caption(robustness))
    st.dataframe(
        tables.robustness_table(robustness),
        hide_index=True,
        height="content",
        column_config={"accuracy (%)": st.column_config.ProgressColumn(format="%.2f", min_value=0, max_value=100)},
    )

setups = evaluation.get("setups")
if setups:
    st.subheader("Other cameras and stains, imitated")
    st.caption(captions.setups_caption(setups))
    st.dataframe(tables.with_words_for_missing(tables.setups_table(setups)), hide_index=True, height="content")

if card and card.data.get("class_counts"):
    st.header("Data: images per class and split")
    st.dataframe(tables.class_counts_table(card.data["class_counts"]), hide_index=True)
    if card.data.get("extra"):
        st.caption(captions.extra_data_caption(card.data["extra"]))
navigation.footer()
