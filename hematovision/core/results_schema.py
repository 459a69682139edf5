"""The columns of a table of results, defined once for every table that shows them.

- The CLI's CSV (``python -m hematovision classify --csv``, and the Ray path in :mod:`hematovision.cli.distributed`)
  and the app's CSV download (:func:`hematovision.app.results_table.results_csv`, which adds the reviewer's columns
  after these) both write :func:`csv_columns`, one :func:`csv_row` per image or cell: a table from the app and one
  from the command line read the same.
- The on-screen results table (:func:`hematovision.app.results_table.results_table`) shows :data:`ON_SCREEN`: a few of
  those columns under friendlier headers.

The CSV's names and their order are fixed: ``classify --resume`` appends to tables written by earlier
versions, so a new column goes at the end. Plain Python over the result objects (no pandas, no Streamlit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hematovision.heads.morphology import ATTRIBUTES

#: Where the row's cell is: its file, and its box in that file's pixels (right and bottom exclusive; empty for
#: a whole image).
LOCATION = ("file", "x_min", "y_min", "x_max", "y_max")
#: What the network and the domain checks said, then why there is no answer (unreadable files).
VERDICT = ("predicted_class", "confidence", "uncertain", "not_blood_cell", "unfamiliar", "error")
#: After the morphology, in the order they were added.
LATER = ("morphology_review", "lab_profile")

#: The on-screen table: each header in its order, and the CSV columns whose information it shows (the file
#: with the cell's number in a field of view rather than its box; the error and the not-a-blood-cell verdict
#: among the notes). The CSV holds every one of them, and the class probabilities and morphology besides.
ON_SCREEN: dict[str, tuple[str, ...]] = {
    "file": LOCATION,
    "class": ("predicted_class",),
    "confidence (%)": ("confidence",),
    "uncertain": ("uncertain",),
    "unfamiliar set-up": ("unfamiliar",),
    "lab profile": ("lab_profile",),
    "notes": ("notes", "error", "not_blood_cell"),
}


def probability_column(name: str) -> str:
    return f"p_{name}"


def csv_columns(classes: Sequence[str], attributes: Iterable[str] = ATTRIBUTES) -> list[str]:
    columns = [*LOCATION, *VERDICT, *(probability_column(name) for name in classes), "notes"]
    # The morphology after the notes, so the columns of tables written before it was added keep their places.
    for name in attributes:
        columns += [name, f"{name}_confidence"]
    return [*columns, *LATER]


def csv_row(result) -> dict:
    """One :class:`~hematovision.core.predict.ImageResult` as a row of :func:`csv_columns` (columns left out: empty)."""
    box = result.box
    row = {
        "file": result.source or result.name,
        "x_min": box.left if box else "",
        "y_min": box.top if box else "",
        "x_max": box.right if box else "",
        "y_max": box.bottom if box else "",
        "error": result.error or "",
        "notes": "; ".join(result.notes),
    }
    if result.prediction:
        row.update(
            predicted_class="" if result.prediction.not_blood_cell else result.prediction.label,
            confidence=f"{result.prediction.confidence:.4f}",
            uncertain="yes" if result.prediction.uncertain else "no",
            not_blood_cell="yes" if result.prediction.not_blood_cell else "no",
            unfamiliar="yes" if result.prediction.unfamiliar else "no",
            **{probability_column(name): f"{p:.4f}" for name, p in result.prediction.probabilities.items()},
            morphology_review="; ".join(result.prediction.contradictions),
            lab_profile=result.prediction.lab_profile,
        )
        for name, (value, confidence) in result.prediction.attributes.items():
            row[name], row[f"{name}_confidence"] = value, f"{confidence:.4f}"
    return row
