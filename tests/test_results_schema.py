"""One schema for results: the on-screen table, the app's CSV and the command line's CSV carry the same columns."""

from __future__ import annotations

import csv
import io

from hematovision.app import results_table
from hematovision.core.predict import ImageResult, Prediction
from hematovision.core.results_schema import LATER, ON_SCREEN, csv_columns, csv_row
from hematovision.core.smear import CellBox
from tests.conftest import encode, synthetic_cell

CLASSES = ["lymphocyte", "neutrophil"]


def prediction(label: str = "lymphocyte", **flags) -> Prediction:
    other = "neutrophil" if label == "lymphocyte" else "lymphocyte"
    probabilities = {label: 0.8125, other: 0.1875}
    return Prediction(label=label, confidence=0.8125, probabilities=probabilities, **{"uncertain": False, **flags})


def batch() -> list[ImageResult]:
    described = prediction(attributes={"cell_size": ("small", 0.9)}, contradictions=["cell_size: big"])
    return [
        ImageResult("a.png", source="a.png", prediction=described, notes=["re-cut"]),
        ImageResult(
            "field.jpg · cell 1",
            source="field.jpg",
            prediction=prediction("neutrophil", unfamiliar=True),
            box=CellBox(10, 20, 90, 100),
        ),
        ImageResult("photo.jpg", source="photo.jpg", prediction=prediction(not_blood_cell=True)),
        ImageResult("broken.png", source="broken.png", error="not an image"),
        ImageResult("b.png", source="b.png", prediction=prediction(uncertain=True)),
    ]


def cli_csv(results: list[ImageResult], classes: list[str]) -> str:
    """The table as `classify --csv` writes it (hematovision.cli.main.classify_command)."""
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=csv_columns(classes), restval="")
    writer.writeheader()
    writer.writerows(csv_row(result) for result in results)
    return handle.getvalue()


def read(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def test_the_app_writes_the_command_line_s_table():
    results = batch()
    app_columns, app_rows = read(results_table.results_csv(results, CLASSES))
    cli_columns, cli_rows = read(cli_csv(results, CLASSES))
    assert app_columns == cli_columns == csv_columns(CLASSES)
    assert app_rows == cli_rows
    assert cli_rows[1]["x_min"] == "10" and cli_rows[1]["unfamiliar"] == "yes"
    assert cli_rows[4]["uncertain"] == "yes" and cli_rows[2]["not_blood_cell"] == "yes"
    assert cli_rows[0]["cell_size"] == "small" and cli_rows[0]["morphology_review"] == "cell_size: big"
    # The reviewer's columns come after the schema's, never in place of one.
    reviewed = {"reviewed_class": ["lymphocyte"] * 5, "reviewer": ["Dr Ada"] * 5}
    columns, rows = read(results_table.results_csv(results, CLASSES, reviewed))
    assert columns == [*csv_columns(CLASSES), "reviewed_class", "reviewer"]
    assert [{key: row[key] for key in cli_columns} for row in rows] == cli_rows


def test_the_schema_keeps_the_columns_older_tables_have():
    # `classify --resume` appends to tables written before: a new column goes only at the end.
    columns = csv_columns(CLASSES, attributes=["cell_size"])
    assert columns[:11] == ["file", "x_min", "y_min", "x_max", "y_max", "predicted_class", "confidence", "uncertain",
                            "not_blood_cell", "unfamiliar", "error"]  # fmt: skip
    assert columns[11:] == ["p_lymphocyte", "p_neutrophil", "notes", "cell_size", "cell_size_confidence", *LATER]
    assert LATER[0] == "morphology_review"


def test_the_screen_shows_schema_columns_under_its_own_headers():
    results = batch()
    table = results_table.results_table(results)
    # The schema's headers in its order (a column empty on every row may be left off), and nothing else.
    assert list(table.columns) == [header for header in ON_SCREEN if header in table.columns]
    assert {"file", "class", "confidence (%)", "uncertain", "unfamiliar set-up", "notes"} <= set(table.columns)
    everything = set(csv_columns(CLASSES))
    assert all(set(shown) <= everything for shown in ON_SCREEN.values())
    _, rows = read(cli_csv(results, CLASSES))
    for (_, shown), row in zip(table.iterrows(), rows, strict=True):
        assert shown["file"].startswith(row["file"])
        refused = row["not_blood_cell"] == "yes"
        assert ("does not look like a blood-cell image" in shown["notes"]) == refused
        assert all(part in shown["notes"] for part in (row["error"], row["notes"]))
        if row["predicted_class"]:
            assert shown["class"] == row["predicted_class"]
            assert shown["confidence (%)"] == f"{100 * float(row['confidence']):.1f}"
            assert shown["uncertain"] == row["uncertain"] and shown["unfamiliar set-up"] == row["unfamiliar"]
        else:  # refused or unreadable: no class, no confidence on screen, and words that say so
            assert shown["class"].startswith("none: ")
            assert (shown[["confidence (%)", "uncertain", "unfamiliar set-up"]] == "not judged").all()


def test_the_real_command_line_and_the_app_write_the_same_file(tiny_model_dir, tiny_classifier, tmp_path):
    from hematovision.cli.main import main
    from hematovision.core.inputs import expand_paths
    from tests.test_smear import synthetic_smear

    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        (folder / f"cell{index}.png").write_bytes(encode(synthetic_cell(index, seed=900 + index)))
    (folder / "field.png").write_bytes(encode(synthetic_smear(0)[0]))
    (folder / "broken.png").write_bytes(b"not an image")
    table = tmp_path / "cli.csv"
    assert main(["classify", str(folder), "--model", str(tiny_model_dir), "--csv", str(table)]) == 0

    results = tiny_classifier.classify(expand_paths([folder]).sources)
    columns, rows = read(results_table.results_csv(results, tiny_classifier.classes))
    assert (columns, rows) == read(table.read_text())
    assert any(row["x_min"] for row in rows) and any(row["error"] for row in rows)
