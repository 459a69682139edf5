"""Quiz: name the deck's cells, with the expert's label and the model's answer as feedback."""

import secrets

import pandas as pd
import streamlit as st

from hematovision.app import cache, figures, navigation, teaching_view
from hematovision.workflows.teaching import (
    DIFFICULTIES,
    NO_EXPERT_ATTRIBUTES,
    QuizState,
    draw_quiz,
    margin,
    quiz_answer,
    quiz_csv,
    quiz_summary,
)

ANSWER_COLUMNS = 2

st.title("Quiz")
quiz: QuizState | None = st.session_state.get(teaching_view.QUIZ_KEY)
if quiz is None:
    st.markdown(
        "Name each cell; after every answer you see the expert's label, the model's answer and where it "
        "looked. At the end: your score beside the model's on the same cells."
    )
    teaching_view.deck_uploader()
deck = teaching_view.teaching_deck()
if not deck:
    navigation.footer()
    st.stop()
answers = teaching_view.deck_answers(deck)
card = cache.card_or_none()
by_name = {cell.name: cell for cell in deck}
classes = [name for name in card.classes if any(cell.label == name for cell in deck)]

if quiz is not None and any(name not in by_name for name in quiz.names):
    st.warning("The deck changed since this quiz started, so it was ended. Start a new one.")
    del st.session_state[teaching_view.QUIZ_KEY]
    quiz = None

if quiz is None:
    chosen = st.multiselect("Classes", classes, default=classes)
    pool = [cell for cell in deck if cell.label in chosen]
    count = st.slider("Number of cells", 1, max(len(pool), 1), min(10, max(len(pool), 1)), disabled=not pool)
    difficulty = st.radio("Difficulty", list(DIFFICULTIES), format_func=DIFFICULTIES.get, horizontal=True)
    if st.button("Start the quiz", type="primary", disabled=not pool):
        margins = {name: margin(item.result.prediction.probabilities) for name, item in answers.items()}
        names = draw_quiz(deck, chosen, count, difficulty, margins, seed=secrets.randbits(32))
        st.session_state[teaching_view.QUIZ_KEY] = QuizState(names, chosen, difficulty)
        st.rerun()
    navigation.footer()
    st.stop()

if not quiz.finished:
    cell = by_name[quiz.current]
    item = answers[cell.name]
    number = len(quiz.answers) + (0 if quiz.showing_feedback else 1)
    st.progress(number / len(quiz.names), text=f"Cell {number} of {len(quiz.names)}")
    image_column, heatmap_column, answer_column = st.columns([1, 1, 2])
    image_column.image(item.display, caption="the cell", width="stretch")
    if not quiz.showing_feedback:
        answer_column.markdown("### What is this cell?")
        model_label, model_confidence = teaching_view.model_answer(item)
        buttons = answer_column.columns(ANSWER_COLUMNS)
        for index, name in enumerate(classes):
            buttons[index % ANSWER_COLUMNS].button(
                name,
                key=f"quiz-answer-{name}",
                on_click=quiz.record,
                args=(quiz_answer(cell, name, model_label, model_confidence),),
                width="stretch",
            )
    else:
        given = quiz.answers[-1]
        subtype = f" ({cell.subtype_name})" if cell.subtype_name and cell.subtype_name != cell.label else ""
        if given.correct:
            answer_column.success(f"**Right**: {cell.label}{subtype}.")
        else:
            answer_column.error(
                f"**Not quite**: you said {given.answer}; the expert's label is **{cell.label}**{subtype}."
            )
        verdict = "agrees with the expert" if given.model_answer == cell.label else "disagrees with the expert"
        answer_column.markdown(
            f"The model: **{given.model_answer}**, {100 * given.model_confidence:.1f}% confident ({verdict})."
        )
        answer_column.markdown(f"**Morphology** (expert attributes): {cell.description or NO_EXPERT_ATTRIBUTES}")
        heatmap_column.image(
            teaching_view.model_overlay(item), caption="where the model looked (Grad-CAM)", width="stretch"
        )
        last = len(quiz.answers) == len(quiz.names)
        answer_column.button("See your results" if last else "Next cell", on_click=quiz.next_cell, type="primary")
    navigation.footer()
    st.stop()

summary = quiz_summary(quiz.answers, classes)
st.header("Your results")
score_column, model_column, _ = st.columns(3)
score_column.metric("your score", f"{summary['score']} / {summary['n']}")
model_column.metric("the model on the same cells", f"{summary['model_score']} / {summary['n']}")
st.dataframe(pd.DataFrame(summary["per_class"]), hide_index=True)
yours, model = st.columns(2)
yours.markdown("**Your answers** (rows: expert label)")
yours.plotly_chart(figures.confusion_heatmap(summary["student_confusion"], summary["labels"], False), key="student")
model.markdown("**The model's answers** on the same cells")
model.plotly_chart(figures.confusion_heatmap(summary["model_confusion"], summary["labels"], False), key="model")
if summary["mistakes"]:
    st.subheader("Your mistakes")
    for mistake in summary["mistakes"]:
        cell = by_name[mistake.name]
        picture, words = st.columns([1, 5])
        picture.image(cell.data, width="stretch")
        words.markdown(
            f"You said **{mistake.answer}**; the expert's label is **{cell.full_label}**; "
            f"the model said **{mistake.model_answer}** "
            f"({100 * mistake.model_confidence:.1f}%)."
        )
        words.caption(cell.description or NO_EXPERT_ATTRIBUTES)
download, again = st.columns(2)
download.download_button("Download your answers (CSV)", quiz_csv(quiz.answers), file_name="quiz.csv", mime="text/csv")
if again.button("New quiz", type="primary"):
    del st.session_state[teaching_view.QUIZ_KEY]
    st.rerun()
navigation.footer()
