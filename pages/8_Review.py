"""Review and report: correct the network's calls, keep the review, print the report."""

import streamlit as st

from hematovision.app import cache, classify_view, navigation, review_view, state
from hematovision.workflows import count_tables
from hematovision.workflows.differential import count_warning
from hematovision.workflows.review import cells_table, differentials

st.title("Review and report")
classifier = cache.classifier_or_stop()
card = classifier.card
batch = review_view.current_review()
if batch is None:
    st.info("Classify images or a field of view on the **Classify** page first: its cells are reviewed here.")
    st.page_link("pages/1_Classify.py", label="Classify →", icon=":material/biotech:")
    navigation.footer()
    st.stop()
if not any(result.prediction is not None for result in batch.results):
    st.info(
        classify_view.nothing_classified_message(batch.results) + " Classify other images on the **Classify** page."
    )
    st.page_link("pages/1_Classify.py", label="Classify →", icon=":material/biotech:")
    navigation.footer()
    st.stop()
review = batch.review
count_cut_cells = state.count_cut_cells_choice()

st.caption(
    "Change any cell's class where the network is wrong: the network's call is kept beside yours, never "
    "overwritten. Uncertain and flagged cells come first, and every cell keeps its place in the list when you "
    "correct it. *Next needing a look* opens the next flagged cell not yet looked at."
)
with st.expander("Carry on from a saved review"):
    saved = st.file_uploader("A review saved here before, with the same images classified (JSON)", type=["json"])
    if saved is not None:
        review_view.carry_on_from_file(batch, saved.getvalue())
review_view.review_details(review)
looked_at, total = review.progress()
st.progress(looked_at / total, text=f"{looked_at} of {total} cells looked at")

st.header("Differential: network and review")
network, reviewed = differentials(review, card.white_cell_classes, count_cut_cells)
warning = count_warning(reviewed)
if warning:
    st.warning(warning, icon=":material/functions:")
st.dataframe(count_tables.review_differential_table(network, reviewed), hide_index=True)
st.dataframe(count_tables.review_apart_table(network, reviewed), hide_index=True)

st.header("Cells")
options = review_view.reviewed_class_options(classifier.classes)
review_view.review_focus(batch, options)
SHOWN = {
    "first": "flagged first",
    "needing": "only those needing a look",
    "corrected": "only the corrected ones",
    "all": "all, in upload order",
}
shown = st.radio("Show", list(SHOWN), format_func=SHOWN.get, horizontal=True)
cells = review.ordered(needing_a_look_first=shown != "all")
if shown == "needing":
    cells = [cell for cell in cells if cell.needs_a_look]
elif shown == "corrected":
    cells = [cell for cell in cells if cell.corrected]
PER_PAGE = 10
pages = max(1, -(-len(cells) // PER_PAGE))
page = st.number_input(f"Page (of {pages})", 1, pages, 1) if pages > 1 else 1
for cell in cells[(page - 1) * PER_PAGE : page * PER_PAGE]:
    with st.container(border=True):
        review_view.review_cell(batch, cell, options)
if not cells:
    st.caption("No cells to show here.")

st.header("Keep and report")
with st.expander("All cells as a table"):
    st.dataframe(cells_table(review.cells.values()), hide_index=True)
keep_column, csv_column, pdf_column = st.columns(3)
keep_column.download_button(
    "Save the review (JSON)", review.to_json(), file_name="hematovision_review.json", mime="application/json",
    help="Load it here later with the same images to carry on.",
)  # fmt: skip
csv_column.download_button(
    "Results with the review (CSV)", batch.csv(classifier.classes), file_name="hematovision_reviewed.csv",
    mime="text/csv",
)  # fmt: skip
review_view.report_download(pdf_column, batch, count_cut_cells)
navigation.footer()
