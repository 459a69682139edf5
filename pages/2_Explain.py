"""Explain: heatmaps of the image regions that drove a class score."""

import streamlit as st

from hematovision.app import (
    cache,
    captions,
    classify_view,
    explain_view,
    figures,
    navigation,
    state,
    stored_image,
    tables,
)
from hematovision.explain.layercam import METHODS as LAYERCAM_METHODS
from hematovision.explain.overlay import COLOUR_MAPS, overlay, png_bytes
from hematovision.explain.saliency import DEFAULT_METHOD, FAST_METHOD, METHODS
from hematovision.heads.morphology import ANNOTATED_CLASSES, ATTRIBUTES, NOT_ANNOTATED_REASON, describe

st.title("Explain")
st.caption("Where did the network look? Warm colours mark the regions that raised the chosen class's score.")
classifier = cache.classifier_or_stop()
card = classifier.card

candidates = state.stored_images()
upload = st.file_uploader("Upload an image to explain", type=["jpg", "jpeg", "png", "bmp", "tif", "tiff"])
if upload is not None:
    # A whole field of view gives one result per white cell found: each can be explained.
    results = state.classify([(upload.name, upload.getvalue())], card.low_confidence_threshold, "auto", to_review=False)
    if results[0].prediction is None:
        st.error(f"**{upload.name}** could not be used: {results[0].error}")
        st.stop()
    candidates = stored_image.explainable(results, card.input_size) + candidates
if not candidates:
    st.info("Classify some images on the **Classify** page, or upload one here.")
    navigation.footer()
    st.stop()

by_name = {item.name: item for item in candidates}
chosen = by_name[st.selectbox("Image", list(by_name))]
prediction = chosen.result.prediction
field_with_boxes = classify_view.cell_in_field(chosen, candidates)
if field_with_boxes is not None:
    st.image(field_with_boxes, caption=f"{chosen.result.source}: the cells found, numbered", width=420)

with st.sidebar:
    method = st.radio(
        "Method", list(METHODS), index=list(METHODS).index(DEFAULT_METHOD), captions=list(METHODS.values()),
        help="The default is the finer map (28x28: it points at the cell more often than Grad-CAM, as faithfully). "
        "Grad-CAM is read from the model as it classifies; the others need TensorFlow, which the server loads in its "
        "first minute, and some take seconds a map; each map is then kept.",
    )  # fmt: skip
    # Beside the choice, not in its captions: a widget whose captions change is a new widget, back at its default.
    took = {name: seconds for name, seconds in cache.method_seconds().items() if seconds >= 1}
    if took:
        st.caption("A map took, on this server: " + ", ".join(f"{name} {s:.0f} s" for name, s in took.items()))
    target = st.selectbox(
        "Explain the class",
        card.classes,
        index=card.classes.index(prediction.label),
        help="Default: the predicted class. Pick another to ask 'why not this one?'",
    )
    opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05)
    colour_map = st.selectbox(
        "Colour map", COLOUR_MAPS, help="inferno, viridis, magma and cividis are perceptually uniform"
    )

if prediction.not_blood_cell:
    st.error(classify_view.NOT_BLOOD_MESSAGE)
st.markdown(
    f"Predicted **{prediction.label}** ({100 * prediction.confidence:.1f}%). Showing evidence for "
    f"**{target}** ({100 * prediction.probabilities[target]:.1f}%) by **{method}**"
    + ("." if method in LAYERCAM_METHODS else f" on layer `{card.gradcam_layer}`.")
)
maps = st.empty()
if method != FAST_METHOD and not cache.explainers_ready():
    # TensorFlow's explainers are still loading (the server's first minute): Grad-CAM, read without them, first.
    fast_heat = cache.heatmap(FAST_METHOD, chosen, card.classes.index(target))
    note = f" · shown while {method} loads (first time only)"
    explain_view.show_maps(maps.container(), chosen, fast_heat, FAST_METHOD, colour_map, opacity, note)
    cache.warm_up_explainers()
with st.spinner(f"Computing {method}…"):
    heat = cache.heatmap(method, chosen, card.classes.index(target))
picture_and_overlay = explain_view.show_maps(maps.container(), chosen, heat, method, colour_map, opacity)
st.download_button(
    "Download overlay (PNG)",
    png_bytes(picture_and_overlay),
    file_name=f"{chosen.name.rsplit('.', 1)[0]}_{method}_{target}.png",
    mime="image/png",
)
if float(heat.max()) == 0.0:
    st.warning(f"No region raises the score for {target}: the map is empty.")

record = cache.saliency_record()
line = captions.saliency_line(record, method) if record else None
st.markdown(line or f"No faithfulness figures recorded for {method} (`python -m training.saliency_eval`).")
pointing = cache.pointing_record()
pointing_line = captions.pointing_line(pointing, method) if pointing else None
if pointing_line:
    st.markdown(pointing_line)
class_line = captions.class_pointing_line(pointing, method, target) if pointing else None
if class_line:
    st.caption(class_line)

st.subheader("Does removing the hot region change the answer?")
check = cache.heatmap_check(method, chosen, card.classes.index(target))
st.caption(
    f"The network's own confidence in **{target}** (without the lowering for unfamiliar images): "
    f"{100 * check.original:.1f}% on the image as it is. Removed pixels are filled "
    "from their neighbours (ROAD's imputation), so the hole's shape does not give the answer away; random areas "
    "are where a random map as coarse as Grad-CAM's is hottest (mean of 3 draws, the first shown)."
)
check_columns = st.columns(2 * len(check.fractions))
for i, fraction in enumerate(check.fractions):
    share = f"{100 * fraction:.0f}%"
    check_columns[2 * i].image(
        check.hottest_images[i], caption=f"hottest {share} removed: {100 * check.hottest[i]:.1f}%", width="stretch"
    )
    check_columns[2 * i + 1].image(
        check.random_images[i], caption=f"random {share} removed: {100 * check.random_mean[i]:.1f}%", width="stretch"
    )

if record:
    with st.expander("Compare the methods, with the two baselines every method must beat"):
        st.caption(
            f"{captions.saliency_sample_note(record)}. Deletion: the most salient pixels first replaced by the "
            "image's mean colour; insertion: revealed on a blurred copy; ROAD gap: confidence with the least "
            "relevant pixels removed minus with the most relevant removed. A map no better than the centred blob "
            "shows where cells usually are, not what this network used."
        )
        st.dataframe(tables.saliency_table(record), hide_index=True)
        st.plotly_chart(figures.saliency_chart(record))
if pointing:
    with st.expander("Does each map point at the cell? Cells moved off-centre and pairs of cells"):
        st.caption(
            f"{pointing['n_cells']} PBC {pointing['split']} cells (seed {pointing['seed']}), each re-cut with its "
            "centre at 30% or 70% of each side (the photo mirrored beyond its edge), and "
            f"{pointing['n_composites']} pairs of cells of two classes side by side, each map asked for one class. "
            "Peak on the cell: the map's hottest point within 0.2 of the side from the cell's centre. Map on the "
            "cell: the share of the map inside the cell's outline (from the stain's density). A centred blob "
            "scores well when every cell is in the middle, and not at all here."
        )
        st.dataframe(tables.pointing_table(pointing), hide_index=True)

if classifier.attributes is not None and not prediction.not_blood_cell:
    st.header("Morphology: where is the evidence for an attribute?")
    if prediction.label not in ANNOTATED_CLASSES:
        st.caption(NOT_ANNOTATED_REASON)
    else:
        st.markdown(f"**Morphology:** {describe({name: value for name, (value, _) in prediction.attributes.items()})}")
        attribute_column, value_column = st.columns(2)
        attribute = attribute_column.selectbox("Attribute", list(ATTRIBUTES), format_func=lambda n: n.replace("_", " "))
        values = ATTRIBUTES[attribute]
        predicted, confidence = prediction.attributes[attribute]
        value = value_column.selectbox(
            "Value", values, index=values.index(predicted), help=f"Default: the predicted value ({predicted}, "
            f"{100 * confidence:.1f}%). Pick another to ask 'why not this one?'",
        )  # fmt: skip
        attribute_heat, attribute_layer = cache.attribute_heatmap(chosen, attribute, values.index(value))
        cell_column, class_column, attribute_heat_column = st.columns(3)
        cell_column.image(chosen.display, caption="the cell", width="stretch")
        class_column.image(
            overlay(chosen.display, heat, colour_map, opacity),
            caption=f"{method}: evidence for the class {target}",
            width="stretch",
        )
        attribute_heat_column.image(
            overlay(chosen.display, attribute_heat, colour_map, opacity),
            caption=f"Grad-CAM through the {attribute.replace('_', ' ')} head: evidence for {value} over the other "
            f"values (layer `{attribute_layer}`)",
            width="stretch",
        )
        if float(attribute_heat.max()) == 0.0:
            st.warning(f"No region raises the score for {attribute.replace('_', ' ')} {value}: the map is empty.")
navigation.footer()
