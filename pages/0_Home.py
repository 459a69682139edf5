"""Home: what HematoVision does, the model behind it, and how to use each page."""

import html
import re

import streamlit as st

from hematovision.app import cache, captions, navigation
from hematovision.core.credits import DISCLAIMER
from hematovision.workflows import glossary

st.title("HematoVision")
st.subheader("Blood-cell images, classified and explained by a neural network")
st.info(DISCLAIMER)

INTRODUCTION = """
Upload microscope images of single blood cells (May-Grünwald-Giemsa stain, one centred cell), or photos
of a whole field of view, and HematoVision tells you which of eight cell types each cell most likely is,
how sure it is, and where in the image the network looked. An image with one white cell at its centre
is read as that cell, whatever its size; one holding more whole white cells as a field of view, in which
every white cell is found, boxed and classified (the Classify sidebar can force either reading). Every cell
is shown to the network at the size white cells have in
the training images (about two-fifths of the frame): a cell that fills far more or far less of its
image is re-cut, and the result says so. Images from a set-up unlike the training lab's are classified
with a visible *unfamiliar set-up* warning and a lowered confidence; images that are not blood cells at
all get no class.
"""
st.markdown(INTRODUCTION, help=glossary.help_for(INTRODUCTION))

#: Every page, one line each, in the sidebar's order (navigation.PAGES).
PAGE_LINES = {
    "Home": "this page: what the app does, the model behind it, and a glossary of every term",
    "Classify": "upload cells or a field of view: class, calibrated confidence, every class charted; batches "
    "add a differential count and CSV",
    "Review and report": "check the last batch cell by cell, correct and comment, and download a PDF report",
    "Explain": "heatmaps of the evidence (Grad-CAM and relatives) for any class, and how faithful each method is",
    "Model performance": "accuracy, confusion matrix, per-class figures, calibration and other labs' images",
    "Lab profile": "a few labelled cells of your own lab adapt the model to your stain and camera",
    "Atlas": "the teaching deck class by class: cells, the features that set each class apart, look-alikes",
    "Quiz": "name the cells yourself, then compare with the expert and the model",
    "Lecture": "one cell at a time on a projector, revealed step by step (keys: → ← Space)",
}
st.markdown(
    "| page | what it does |\n|---|---|\n"
    + "\n".join(f"| **{label}** | {PAGE_LINES[label]} |" for label in (entry.title for entry in navigation.PAGES))
)

with st.expander("Glossary: every term in plain words", icon=":material/dictionary:"):
    st.markdown(glossary.markdown())

card = cache.card_or_none()
if card is None:
    st.error("The model card cannot be read, so the model is unavailable. See the Classify page for how to fix it.")
else:
    st.header("The model")
    metrics = card.metrics
    columns = st.columns(4)
    columns[0].metric("test accuracy", f"{100 * metrics.get('accuracy', 0):.2f}%", help=glossary.define("accuracy"))
    columns[1].metric("macro F1", f"{metrics.get('macro_f1', 0):.3f}", help=glossary.define("macro F1"))
    columns[2].metric(
        "calibration error (ECE)",
        f"{100 * metrics.get('ece', 0):.2f}%",
        help=f"{glossary.define('ECE')} On the test split, 15 bins; "
        f"{100 * metrics.get('ece_uncalibrated', 0):.2f}% before temperature scaling.",
    )
    columns[3].metric("test images", f"{metrics.get('n', 0):,}")

    layer = f'<abbr title="{html.escape(glossary.layer(card.gradcam_layer))}">`{card.gradcam_layer}`</abbr>'
    model_notes = f"""
- **Classes** (output order): {", ".join(card.classes)}. White cells for the differential count:
  {", ".join(card.white_cell_classes)}. {glossary.names_note(card.classes)}
- **Network**: {captions.network_note(card.backbone)}; ImageNet-pretrained,
  fine-tuned on {card.input_size}×{card.input_size} px images; Grad-CAM reads layer {layer}.
- **Calibration**: confidences are divided by a softmax temperature of {card.temperature:.3f}, fitted on the
  validation images; an image under {100 * card.low_confidence_threshold:.0f}% confidence is marked *uncertain*.
- **Training data**: {card.data.get("split", "?")}; trained {card.created[:10]} in
  {card.training.get("wall_time_minutes", "?")} min on {card.training.get("machine", "?")}.
- **Not a blood-cell image?** {
        "An image far from everything the model learned from gets no class."
        if card.novelty
        else "This model folder has no novelty check: every image gets a class."
    }
- **Other labs**: {captions.other_labs_note(metrics, card.data.get("extra"))}
- **Morphology**: {captions.morphology_note(card.attributes)}
"""
    # The hover lists every term of the block (read without the inline hovers' own text).
    plain = re.sub(r"<abbr[^>]*>|</abbr>", "", model_notes)
    st.markdown(model_notes, unsafe_allow_html=True, help=glossary.help_for(plain, *card.classes))

navigation.footer()
