"""Lecture: one deck cell at a time on a projector, the answer revealed step by step.

Made for 1280x720 with the sidebar folded: the cell fills the left half (about 570 px square), the controls,
the step and the answer the right half, the credits one line below. Keys: → next cell, ← previous cell,
Space reveals the next step (Streamlit's own button shortcuts, so they work wherever the page has focus
and not while typing in the jump list).
"""

import streamlit as st

from hematovision.app import teaching_view
from hematovision.workflows import glossary
from hematovision.workflows.teaching import LECTURE_STEPS, LectureState, lecture_order

# The projector wants the whole width: the sidebar starts folded on this page.
st.set_page_config(initial_sidebar_state="collapsed")
st.set_page_config(initial_sidebar_state="collapsed")
teaching_view.lecture_style()
deck = lecture_order(teaching_view.teaching_deck())
if not deck:
    st.stop()
answers = teaching_view.deck_answers(deck)
lecture: LectureState = st.session_state.setdefault(teaching_view.LECTURE_KEY, LectureState())
lecture.index = min(lecture.index, len(deck) - 1)


def jump() -> None:
    lecture.go_to(st.session_state["lecture_jump"], len(deck))


cell = deck[lecture.index]
item = answers[cell.name]
image_column, right = st.columns([0.47, 0.53], gap="small")
# At the last step the large picture becomes the heatmap (readable from the back of the room) and the cell
# alone moves to the small place beside the answer.
big, small = (teaching_view.model_overlay(item), item.display) if lecture.step >= 3 else (item.display, None)
image_column.image(big, width="stretch")

# The jump list follows Previous/Next: its value is set from the lecture state before it is drawn.
st.session_state["lecture_jump"] = lecture.index
back, reveal, forward = right.columns([1, 2.1, 1], vertical_alignment="center")
back.button(
    "◀ Previous",
    on_click=lecture.go_to,
    args=(lecture.index - 1, len(deck)),
    width="stretch",
    shortcut="Left",
    help="Previous cell (← key)",
)
last_step = lecture.step == len(LECTURE_STEPS) - 1
reveal.button(
    "All revealed" if last_step else f"Reveal: {LECTURE_STEPS[lecture.step + 1].lower()}",
    on_click=lecture.reveal,
    disabled=last_step,
    type="primary",
    width="stretch",
    shortcut="Space",
    help="Reveal the next step (Space)",
    wrap=True,
)
forward.button(
    "Next ▶",
    on_click=lecture.go_to,
    args=(lecture.index + 1, len(deck)),
    width="stretch",
    shortcut="Right",
    help="Next cell (→ key)",
)
step_column, chooser = right.columns([2.6, 1], vertical_alignment="center")
teaching_view.big_text(
    step_column,
    f"Step {lecture.step + 1} of {len(LECTURE_STEPS)} · {LECTURE_STEPS[lecture.step]}",
    1.5,
    "#c2185b",
)
chooser.selectbox(
    "Jump to cell",
    range(len(deck)),
    format_func=lambda index: f"cell {index + 1} of {len(deck)}",
    key="lecture_jump",
    on_change=jump,
    label_visibility="collapsed",
)

text_column, heatmap_column = right.columns([0.56, 0.44], gap="small")
if lecture.step == 0:
    teaching_view.big_text(text_column, LECTURE_STEPS[0], 2.6)
    text_column.markdown("#### Make your guess, then press Space to reveal the expert's label.")
if lecture.step >= 1:
    # "ig" and the like spelled out, each with its definition on hover.
    teaching_view.big_text(text_column, glossary.spelled_out(cell.label), 3.0, title=glossary.hover(cell.label))
    if cell.subtype_name and cell.subtype_name != cell.label:
        teaching_view.big_text(text_column, cell.subtype_name, 1.6, title=glossary.hover(cell.subtype))
    if glossary.spelled_out(cell.label) != cell.label:  # an abbreviation: what it is, in one line
        first_sentence = glossary.lookup(cell.label).definition.split(". ")[0].rstrip(".")
        text_column.markdown(f"{first_sentence[0].upper()}{first_sentence[1:]}.")
    if cell.description:
        text_column.markdown(f"##### {cell.description}", help=glossary.help_for(cell.description))
    if cell.hard_case:
        text_column.markdown("A hard case: the model hesitated most between two classes on cells like this one.")
if lecture.step >= 2:
    answer, confidence = teaching_view.model_answer(item)
    agrees = answer == cell.label
    teaching_view.big_text(
        text_column,
        f"Model: {answer if agrees else glossary.spelled_out(answer)} · {100 * confidence:.1f}%",
        2.0,
        "#1b7a3a" if agrees else "#b3261e",
        title=f"The model's calibrated confidence: {glossary.define('confidence')}",
    )
    text_column.markdown("#### " + ("It agrees with the expert." if agrees else "It disagrees with the expert."))
if small is not None:
    heatmap_column.markdown(
        "#### ◀ Grad-CAM: the warmer, the more it counted",
        help=glossary.help_for("Grad-CAM heatmap"),
    )
    heatmap_column.image(small, caption="The cell alone", width="stretch")
else:
    heatmap_column.markdown(
        "Keys: **→** next cell · **←** previous · **Space** reveals the next step: " + " → ".join(LECTURE_STEPS)
    )
teaching_view.lecture_footer()
