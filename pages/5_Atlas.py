"""Atlas: the cells of each class, what sets the class apart, and what the model mistakes it for."""

import pandas as pd
import streamlit as st

from hematovision.app import cache, navigation, teaching_view
from hematovision.heads.morphology import ANNOTATED_CLASSES
from hematovision.workflows.teaching import annotated_cells, confused_pairs, distinguishing_features, pair_comparison

GRID_COLUMNS = 8
PAIR_CELLS = 4

st.title("Atlas")
st.caption(
    "The teaching deck, class by class: held-out PBC cells with their expert labels and, for white cells, "
    "their WBCAtt morphological attributes. *Hard case*: the model hesitated most on this cell."
)
teaching_view.deck_uploader()
deck = teaching_view.teaching_deck()
if not deck:
    navigation.footer()
    st.stop()

card = cache.card_or_none()
order = card.classes if card else []
classes = sorted({cell.label for cell in deck}, key=lambda name: (order.index(name) if name in order else 99, name))
label = st.segmented_control("Class", classes, default=classes[0], key="atlas_class") or classes[0]
cells = [cell for cell in deck if cell.label == label]
subtypes = sorted({cell.subtype_name for cell in cells if cell.subtype_name})
st.header(f"{label} · {len(cells)} cells")
if len(subtypes) > 1:
    st.caption("Subtypes: " + ", ".join(subtypes))

for start in range(0, len(cells), GRID_COLUMNS):
    for column, cell in zip(st.columns(GRID_COLUMNS), cells[start : start + GRID_COLUMNS], strict=False):
        notes = [cell.subtype_code if len(subtypes) > 1 else "", "hard case" if cell.hard_case else ""]
        column.image(cell.data, caption=" · ".join(note for note in notes if note) or None, width="stretch")

st.subheader("What sets it apart")
counts, whose = teaching_view.atlas_attribute_counts(deck)
features = distinguishing_features(counts, label)
if features:
    st.caption(
        f"The most common value of each WBCAtt attribute among the {annotated_cells(counts, label):,} {whose} "
        f"cells labelled {label}, and how often the other classes' annotated cells show it: the attributes that "
        "set the class apart most come first."
    )
    st.dataframe(pd.DataFrame(features), hide_index=True)
elif label not in ANNOTATED_CLASSES:
    st.info(
        f"No attributes for {label}: the WBCAtt annotations cover basophils, eosinophils, lymphocytes, "
        "monocytes and neutrophils only."
    )
else:
    st.info(f"The deck's {label}s carry no attributes (cells uploaded by an educator have none).")

st.subheader("What the model mistakes it for")
evaluation = cache.evaluation_or_none()
report = (evaluation or {}).get("datasets", {}).get("pbc_test")
pairs = confused_pairs(report, label) if report else []
if report is None:
    st.info("No PBC test evaluation in the model folder, so the model's mistakes cannot be shown.")
elif not pairs:
    st.success(f"On the PBC test split the model neither took a {label} for another class nor another class for one.")
for true, predicted, count in pairs:
    support = report["per_class"][true]["support"]
    st.markdown(f"**{count} of the {support} {true} cells** of the PBC test split were read as **{predicted}**")
    left, right = st.columns(2)
    for column, name in ((left, true), (right, predicted)):
        column.markdown(f"*{name}*")
        # Hard cases first: the cells the model hesitates on show the mistake best.
        examples = sorted((cell for cell in deck if cell.label == name), key=lambda cell: not cell.hard_case)
        several_subtypes = len({cell.subtype for cell in examples}) > 1
        for image_column, cell in zip(column.columns(PAIR_CELLS), examples[:PAIR_CELLS], strict=False):
            image_column.image(cell.data, caption=cell.subtype_code if several_subtypes else None, width="stretch")
    comparison = pair_comparison(counts, true, predicted)
    if comparison:
        st.dataframe(pd.DataFrame(comparison), hide_index=True, height="content")
    else:
        without = [name for name in (true, predicted) if not counts.get(name)]
        st.caption(
            f"No attribute comparison: the {' and '.join(without)} cells carry no WBCAtt attributes. "
            "Compare the cells by eye; their subtypes are under each image."
        )
navigation.footer()
