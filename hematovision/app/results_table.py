"""The results as the app shows them on screen and offers them to download (the columns: results_schema)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from hematovision.core.predict import ImageResult
from hematovision.core.results_schema import ON_SCREEN, csv_columns, csv_row

#: What the on-screen table says where a column has no value (never a raw None or nan).
NO_CLASS_UNREADABLE = "none: could not be read"


NO_CLASS_NOT_BLOOD = "none: not a blood-cell image"

NOT_JUDGED = "not judged"


def results_table(results: Sequence[ImageResult]) -> pd.DataFrame:
    """One row per image or cell, every value in words or figures: a file without a class says why."""
    rows = []
    for result in results:
        prediction = result.prediction
        trusted = prediction is not None and not prediction.not_blood_cell
        problem = result.error or ("does not look like a blood-cell image" if prediction and not trusted else "")
        no_class = NO_CLASS_UNREADABLE if prediction is None else NO_CLASS_NOT_BLOOD
        rows.append(
            {
                "file": result.name,
                "class": prediction.label if trusted else no_class,
                "confidence (%)": f"{100 * prediction.confidence:.1f}" if trusted else NOT_JUDGED,
                "uncertain": yes_no(prediction.uncertain) if trusted else NOT_JUDGED,
                "unfamiliar set-up": yes_no(prediction.unfamiliar) if trusted else NOT_JUDGED,
                "lab profile": prediction.lab_profile if prediction else "",
                "notes": "; ".join(filter(None, [problem, *result.notes])),
            }
        )
    table = pd.DataFrame(rows, columns=list(ON_SCREEN))  # the headers, and what each shows: results_schema
    # A column that says nothing on every row is left off the screen; the CSV keeps every column.
    return table if table["lab profile"].any() else table.drop(columns="lab profile")


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def results_csv(
    results: Sequence[ImageResult], classes: Sequence[str], reviewed: Mapping[str, list] | None = None
) -> str:
    """The command line's table (hematovision.core.results_schema: every class probability, the morphology, the
    cell's box), then the reviewer's columns where the batch was reviewed."""
    table = pd.DataFrame([csv_row(result) for result in results], columns=csv_columns(classes))
    for column, values in (reviewed or {}).items():
        table[column] = values
    return table.to_csv(index=False)
