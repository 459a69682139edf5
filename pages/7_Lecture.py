"""Lecture: one deck cell at a time on a projector, the answer revealed step by step."""

import streamlit as st

from hematovision import ui
from hematovision.teaching import LECTURE_STEPS, LectureState, lecture_order

st.set_page_config(
    page_title="Lecture · HematoVision",
    page_icon=":material/bloodtype:",
    layout="wide",
    initial_sidebar_state="collapsed",
)
ui.navigation()
deck = lecture_order(ui.teaching_deck())
if not deck:
    st.stop()
answers = ui.deck_answers(deck)
lecture: LectureState = st.session_state.setdefault(ui.LECTURE_KEY, LectureState())
lecture.index = min(lecture.index, len(deck) - 1)


def jump() -> None:
    lecture.go_to(st.session_state["lecture_jump"], len(deck))


# The jump list follows Previous/Next: its value is set from the lecture state before it is drawn.
st.session_state["lecture_jump"] = lecture.index
back, reveal, forward, chooser = st.columns([1, 2, 1, 2], vertical_alignment="bottom")
back.button("◀ Previous", on_click=lecture.go_to, args=(lecture.index - 1, len(deck)), width="stretch")
last_step = lecture.step == len(LECTURE_STEPS) - 1
reveal.button(
    "All revealed" if last_step else f"Reveal: {LECTURE_STEPS[lecture.step + 1].lower()}",
    on_click=lecture.reveal,
    disabled=last_step,
    type="primary",
    width="stretch",
)
forward.button("Next ▶", on_click=lecture.go_to, args=(lecture.index + 1, len(deck)), width="stretch")
chooser.selectbox(
    "Jump to cell",
    range(len(deck)),
    format_func=lambda index: f"cell {index + 1} of {len(deck)}",
    key="lecture_jump",
    on_change=jump,
)

cell = deck[lecture.index]
item = answers[cell.name]
image_column, text_column, heatmap_column = st.columns(3)
image_column.image(item.display, width="stretch")
if lecture.step == 0:
    ui.big_text(text_column, LECTURE_STEPS[0], 2.6)
    text_column.markdown("#### Make your guess, then reveal the expert's label.")
if lecture.step >= 1:
    ui.big_text(text_column, cell.label, 3.0)
    if cell.subtype_name and cell.subtype_name != cell.label:
        ui.big_text(text_column, cell.subtype_name, 1.6)
    if cell.description:
        text_column.markdown(f"#### {cell.description}")
    if cell.hard_case:
        text_column.caption("A hard case: the model hesitated most between two classes on cells like this one.")
if lecture.step >= 2:
    answer, confidence = ui.model_answer(item)
    agrees = answer == cell.label
    ui.big_text(
        text_column,
        f"Model: {answer} · {100 * confidence:.1f}%",
        2.0,
        "#1b7a3a" if agrees else "#b3261e",
    )
    text_column.markdown("#### " + ("It agrees with the expert." if agrees else "It disagrees with the expert."))
if lecture.step >= 3:
    heatmap_column.image(ui.model_overlay(item), caption="Where the model looked (Grad-CAM)", width="stretch")
else:
    heatmap_column.caption(f"Step {lecture.step + 1} of {len(LECTURE_STEPS)}: " + " → ".join(LECTURE_STEPS))
ui.footer()
