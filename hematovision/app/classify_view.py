"""How a classified image or field of view is shown: verdict, chart, morphology, differential."""

from __future__ import annotations

import numpy as np
import streamlit as st

from hematovision.app.cache import classifier_or_stop
from hematovision.app.captions import attribute_confidence_lines, unfamiliar_batch_message
from hematovision.app.figures import probability_chart
from hematovision.app.state import classify, explain
from hematovision.app.stored_image import StoredImage, explainable
from hematovision.core.predict import ImageResult
from hematovision.core.reading import CLASSIFY_MODES
from hematovision.explain.overlay import MIRRORED_MARGIN_CAPTION, draw_cell_boxes, fade_beyond_photo
from hematovision.heads.morphology import ANNOTATED_CLASSES, NOT_ANNOTATED_REASON, describe
from hematovision.workflows.count_tables import differential_table
from hematovision.workflows.differential import Differential, count_warning, differential_count

#: The sidebar's words for each of the classifier's modes (hematovision.core.predict.CLASSIFY_MODES, in its order).
CLASSIFY_MODES = dict(
    zip(CLASSIFY_MODES, ("Automatic", "Single centred cell", "Whole field of view (find the white cells)"), strict=True)
)


def nothing_classified_message(results: list[ImageResult]) -> str:
    """Why a batch offers nothing to count, review or explain: none of its files gave a cell to classify."""
    files = len(group_by_source(results))
    reasons = sorted({result.error for result in results if result.error})
    return (
        f"**Nothing was classified**, so there is no differential and nothing to review: "
        f"{'the file' if files == 1 else f'none of the {files} files'} gave a cell to classify"
        + (f" ({'; '.join(reasons[:3])}{'; …' if len(reasons) > 3 else ''})." if reasons else ".")
    )


def show_differential(container, differential: Differential) -> None:
    """The differential's table, and below 100 white cells the plain warning that it is not a differential yet."""
    warning = count_warning(differential)
    if warning:
        container.warning(warning, icon=":material/functions:")
    container.dataframe(differential_table(differential), hide_index=True)


def group_by_source(results: list[ImageResult]) -> list[list[ImageResult]]:
    """Results in upload order, the cells of one field of view kept together."""
    groups: dict[str, list[ImageResult]] = {}
    for result in results:
        groups.setdefault(result.source or result.name, []).append(result)
    return list(groups.values())


def show_single(result: ImageResult, threshold: float, unfamiliar_said: bool = False) -> None:
    """One image: the picture beside its verdict and the chart of every class."""
    image_column, chart_column = st.columns([1, 2])
    beyond = result.beyond_photo()
    caption = f"{result.name} ({MIRRORED_MARGIN_CAPTION})" if any(beyond) else result.name
    image_column.image(fade_beyond_photo(result.image.rgb, beyond), caption=caption, width="stretch")
    show_verdict(chart_column, result, threshold, unfamiliar_said)
    show_chart(chart_column, result, threshold)


def show_chart(container, result: ImageResult, threshold: float) -> None:
    figure = probability_chart(result.prediction, threshold)
    if result.prediction.not_blood_cell:
        # Kept for the curious, folded away: these numbers describe an image the model cannot judge.
        container = container.expander("What the classifier would have said (not to be trusted)")
    container.plotly_chart(figure, key=f"chart-{result.name}")


NOT_BLOOD_MESSAGE = (
    "**This does not look like a blood-cell image.** It is far from every image the model learned from, "
    "so no class is given. HematoVision expects a stained blood smear: one centred cell or a field of view."
)

UNFAMILIAR_MESSAGE = (
    "**A blood cell from an unfamiliar set-up.** Its stain, camera or magnification differs from every "
    "image the model learned from, so it is read with less certainty (the confidence below is already "
    "lowered for that). Check it by eye."
)


def show_unfamiliar_notice(results: list[ImageResult]) -> bool:
    """Say once, above the results, that most of the batch comes from a set-up unlike the training labs and
    what to do about it; True where it was said (each cell then carries a short flag, not the whole text)."""
    message = unfamiliar_batch_message(results)
    if message is None:
        return False
    st.warning(message, icon=":material/science:")
    st.page_link(
        "pages/4_Lab_profile.py", label="Make a lab profile from 5 labelled cells per class →", icon=":material/tune:"
    )
    return True


def show_verdict(container, result: ImageResult, threshold: float, unfamiliar_said: bool = False) -> None:
    if result.prediction.not_blood_cell:
        container.error(NOT_BLOOD_MESSAGE)
        return
    verdict = f"**{result.prediction.label}** · {100 * result.prediction.confidence:.1f}% confidence"
    if result.prediction.lab_profile:
        verdict += f" · lab profile *{result.prediction.lab_profile}*"
    if result.prediction.unfamiliar and unfamiliar_said:
        verdict += " · unfamiliar set-up"
    elif result.prediction.unfamiliar:
        container.warning(UNFAMILIAR_MESSAGE)
    if result.prediction.uncertain:
        container.warning(f"Uncertain: {verdict}. Below the {100 * threshold:.0f}% threshold; check by eye.")
    else:
        container.success(verdict)
    for note in result.notes:
        container.caption(f"Note: {note}")
    show_morphology(container, result)


def show_morphology(container, result: ImageResult) -> None:
    """The cell's predicted morphology in one line, each attribute's confidence on demand, and a call for
    review where the morphology contradicts the class; for a class the dataset does not annotate, why not."""
    prediction = result.prediction
    if prediction.not_blood_cell or classifier_or_stop().attributes is None:
        return
    if prediction.label not in ANNOTATED_CLASSES:
        container.caption(NOT_ANNOTATED_REASON)
        return
    values = {name: value for name, (value, _) in prediction.attributes.items()}
    container.markdown(f"**Morphology:** {describe(values)}")
    with container.popover("Confidence of each attribute", icon=":material/checklist:"):
        st.markdown(attribute_confidence_lines(prediction.attributes))
    if prediction.contradictions:
        container.warning(
            f"**Review this cell:** its morphology does not fit a {prediction.label} "
            f"({'; '.join(prediction.contradictions)}). Check the class and the morphology by eye."
        )


def show_field(
    cells: list[ImageResult],
    threshold: float,
    white_cell_classes: list[str],
    automatic: bool = False,
    count_cut_cells: bool = True,
    unfamiliar_said: bool = False,
) -> None:
    """A field of view: the photo with a labelled box per white cell, its own differential, each cell.

    ``automatic``: the Automatic mode chose to read the image as a field, so say how to undo that.
    """
    field = cells[0].field_image
    found = [cell for cell in cells if cell.prediction is not None]
    names = [cell_name(cell) for cell in found]
    photo_column, table_column = st.columns([3, 2])
    photo_column.image(draw_cell_boxes(field.rgb, labelled_boxes(found)), caption=cells[0].source, width="stretch")
    differential = differential_count(found, white_cell_classes, count_cut_cells)
    counted = differential.total_white
    left_out = len(found) - counted
    table_column.markdown(
        f"**{len(found)} white cell{'s' if len(found) != 1 else ''} found** in this field"
        + (f"; {counted} counted, {left_out} counted apart (see *Counted apart*)" if left_out else "")
    )
    table_column.dataframe(differential_table(differential), hide_index=True)
    if automatic:
        table_column.caption(
            "Read as a field of view: it holds a second whole white cell, or none at its centre. If it shows "
            "one cell, choose *Single centred cell* in the sidebar."
        )
    for number, (cell, name) in enumerate(zip(found, names, strict=True), start=1):
        confidence = "" if cell.prediction.not_blood_cell else f" ({100 * cell.prediction.confidence:.1f}%)"
        with st.expander(f"cell {number}: {name}{confidence}"):
            crop_column, chart_column = st.columns([1, 2])
            beyond = cell.beyond_photo()
            crop_column.image(
                fade_beyond_photo(cell.image.rgb, beyond),
                caption=MIRRORED_MARGIN_CAPTION if any(beyond) else None,
                width="stretch",
            )
            show_verdict(chart_column, cell, threshold, unfamiliar_said)
            show_chart(chart_column, cell, threshold)


def cell_name(cell: ImageResult) -> str:
    # A cell the novelty check rejects is named as such everywhere, never by the class it would have got.
    return "not a blood cell" if cell.prediction.not_blood_cell else cell.prediction.label


def labelled_boxes(cells: list[ImageResult]) -> list[tuple]:
    """Box, name and whether to draw it as doubtful, for each classified cell of one field."""
    return [(cell.box, cell_name(cell), cell.prediction.uncertain or cell.prediction.not_blood_cell) for cell in cells]


def cell_in_field(chosen: StoredImage, candidates: list[StoredImage]) -> np.ndarray | None:
    """For a cell found in a field of view, the photo with its cells boxed and numbered as on Classify, so
    "cell 2" can be found; None for an image classified as one cell."""
    if chosen.result.field_image is None or chosen.result.box is None:
        return None
    same_field = {
        item.name: item.result
        for item in candidates
        if item.result.source == chosen.result.source and item.result.box is not None
    }
    return draw_cell_boxes(chosen.result.field_image.rgb, labelled_boxes(list(same_field.values())))


def explain_image(name: str, data: bytes) -> None:
    """Classify one image as Classify does and open it on the Explain page."""
    classifier = classifier_or_stop()
    results = classify([(name, data)], classifier.card.low_confidence_threshold, "auto", to_review=False)
    explain(explainable(results, classifier.card.input_size))
