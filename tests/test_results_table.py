"""The unfamiliar flag and the lab profile in the results table and the app's CSV; the batch's one message."""

from __future__ import annotations

import io

import pandas as pd

from hematovision.app import captions, results_table
from hematovision.core.predict import ImageResult, Prediction

CLASSES = ["lymphocyte", "neutrophil"]


def cell(name: str, unfamiliar: bool, not_blood: bool = False, profile: str = "") -> ImageResult:
    prediction = Prediction(
        label="lymphocyte",
        confidence=0.7,
        probabilities={"lymphocyte": 0.7, "neutrophil": 0.3},
        uncertain=False,
        not_blood_cell=not_blood,
        unfamiliar=unfamiliar,
        lab_profile=profile,
    )
    return ImageResult(name=name, source=name, prediction=prediction)


def test_the_unfamiliar_flag_and_the_profile_reach_the_table_and_the_csv():
    results = [cell("a.png", True, profile="my_lab"), cell("b.png", False), ImageResult("c.png", error="broken")]
    table = results_table.results_table(results)
    assert table["unfamiliar set-up"].tolist() == ["yes", "no", "not judged"]
    assert table["lab profile"].tolist() == ["my_lab", "", ""]
    written = pd.read_csv(io.StringIO(results_table.results_csv(results, CLASSES)), keep_default_na=False)
    assert written["unfamiliar"].tolist() == ["yes", "no", ""]
    assert written["lab_profile"].tolist() == ["my_lab", "", ""]
    assert "lab profile" not in results_table.results_table([cell("b.png", False)]).columns
    assert "lab_profile" in pd.read_csv(io.StringIO(results_table.results_csv([cell("b.png", False)], CLASSES))).columns


def test_the_batch_message_comes_from_half_the_classified_cells_unfamiliar():
    assert captions.unfamiliar_batch_message([cell("a", True)]) is None  # one cell says it itself
    assert captions.unfamiliar_batch_message([cell("a", True), cell("b", False), cell("c", False)]) is None
    message = captions.unfamiliar_batch_message([cell("a", True), cell("b", False)])
    assert message is not None and "1 of 2 cells" in message and "5" in message
    # Refused images and errors are not cells the model read.
    batch = [cell("a", True), cell("b", False, not_blood=True), cell("c", False, not_blood=True)]
    assert "1 of 1" not in (captions.unfamiliar_batch_message(batch) or "")
    assert captions.unfamiliar_batch_message([*batch, ImageResult("d", error="x")]) is None
