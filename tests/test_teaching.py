"""The teaching deck, its selection rule, the quiz's scoring, and the Atlas, Quiz, Lecture and matrix drill-down
pages through AppTest on the tiny model, with ../shared absent unless a test says otherwise."""

import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hematovision.app import teaching_view
from hematovision.core import paths
from hematovision.heads.morphology import ANNOTATED_CLASSES, ATTRIBUTES
from hematovision.workflows.teaching import (
    DeckCell,
    DeckError,
    LectureState,
    QuizAnswer,
    annotated_cells,
    attribute_counts,
    confused_pairs,
    deck_from_zip,
    distinguishing_features,
    draw_quiz,
    lecture_order,
    load_attribute_counts,
    load_deck,
    matrix_cell,
    pair_comparison,
    quiz_summary,
    select_deck,
    stable_rank,
)
from tests.conftest import app_on, encode, new_session, shared_data_or_skip, synthetic_cell, write_subtype_manifest


def manifest_rows(per_subtype: dict[str, int], label: str = "ig") -> list[dict[str, str]]:
    return [
        {"path": f"pbc/{label}/{subtype}_{i}.jpg", "label": label, "subtype": subtype}
        for subtype, count in per_subtype.items()
        for i in range(count)
    ]


def test_selection_takes_every_subtype_in_hash_order_plus_the_smallest_margins():
    rows = manifest_rows({"MY": 30, "MMY": 30, "PMY": 2, "IG": 1}) + manifest_rows({"LY": 40}, "lymphocyte")
    margins = {row["path"]: 0.5 + 0.001 * i for i, row in enumerate(rows)}
    # The hardest ig cells, by margin, are two MMY cells and one MY cell; whether the model was right plays no part.
    hardest = ["pbc/ig/MMY_7.jpg", "pbc/ig/MY_29.jpg", "pbc/ig/MMY_3.jpg"]
    for rank, path in enumerate(hardest):
        margins[path] = 0.01 * rank
    chosen = select_deck(rows, margins, per_class=8, hard_per_class=3)
    ig = [(row["path"], hard) for row, hard in chosen if row["label"] == "ig"]
    regular = [path for path, _ in ig[:8]]
    assert {Path(path).name.split("_")[0] for path in regular} == {"MY", "MMY", "PMY", "IG"}
    assert sorted(path for path, hard in ig if hard) == sorted(hardest)
    assert [path for path, _ in ig[8:]] == [path for path in hardest if path not in regular]
    lymphocytes = [(row["path"], hard) for row, hard in chosen if row["label"] == "lymphocyte"]
    assert sorted(path for path, hard in lymphocytes if hard) == [f"pbc/lymphocyte/LY_{i}.jpg" for i in range(3)]
    assert 8 <= len(lymphocytes) <= 11
    # Within a subtype, the order is the hash of the file name, not the numbering.
    my_picked = [path for path in regular if "/MY_" in path]
    assert len(my_picked) == 2 and my_picked == sorted(my_picked, key=lambda path: stable_rank(Path(path).name))
    assert my_picked != [f"pbc/ig/MY_{i}.jpg" for i in range(2)]
    # The same deck whatever order the manifest lists its rows in.
    reversed_rows = select_deck(rows[::-1], margins, 8, 3)
    assert sorted((row["path"], hard) for row, hard in reversed_rows) == sorted((row["path"], h) for row, h in chosen)


def test_the_deck_cli_builds_a_deck_the_loader_reads(tiny_model_dir, tmp_path, capsys):
    from training.deck import main

    data = write_subtype_manifest(tmp_path / "data")
    out = tmp_path / "deck"
    assert main(["--data", str(data), "--model", str(tiny_model_dir), "--out", str(out), "--per-class", "3",
                 "--hard-per-class", "2", "--size", "64"]) == 0  # fmt: skip
    deck = load_deck(out)
    assert {cell.label for cell in deck} == {"lymphocyte", "neutrophil", "platelet"}
    for label in ("lymphocyte", "neutrophil", "platelet"):
        cells = [cell for cell in deck if cell.label == label]
        assert 3 <= len(cells) <= 5 and sum(cell.hard_case for cell in cells) == 2
    assert {cell.subtype for cell in deck if cell.label == "neutrophil"} == {"BNE", "SNE"}
    assert all(max(Image.open(io.BytesIO(cell.data)).size) == 64 for cell in deck)
    with (data / "pbc_manifest.csv").open() as handle:
        test_paths = {row["path"] for row in csv.DictReader(handle) if row["split"] == "test"}
    assert {cell.source for cell in deck} <= test_paths
    credits = (out / "CREDITS.md").read_text()
    assert "CC BY 4.0" in credits and "Acevedo" in credits and "WBCAtt" in credits and "resized" in credits
    assert f"{len(deck)} cells" in capsys.readouterr().out
    assert load_attribute_counts(out) == {}  # the generated manifest carries no attributes


def test_the_shipped_deck_is_small_credited_and_covers_every_class_and_subtype():
    deck = load_deck(paths.DECK_DIR)
    assert sum(path.stat().st_size for path in paths.DECK_DIR.rglob("*") if path.is_file()) <= 4_000_000
    labels = {cell.label for cell in deck}
    assert labels == {"basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil",
                      "platelet"}  # fmt: skip
    for label in labels:
        cells = [cell for cell in deck if cell.label == label]
        assert 12 <= len(cells) <= 15 and 1 <= sum(cell.hard_case for cell in cells) <= 3
        assert all(set(cell.attributes) == set(ATTRIBUTES) for cell in cells) == (label in ANNOTATED_CLASSES)
    assert {"MY", "MMY", "PMY"} <= {cell.subtype for cell in deck if cell.label == "ig"}
    assert {"SNE", "BNE"} <= {cell.subtype for cell in deck if cell.label == "neutrophil"}
    assert len({cell.name for cell in deck}) == len(deck)
    credits = (paths.DECK_DIR / "CREDITS.md").read_text()
    assert "CC BY 4.0" in credits and "105474" in credits and "MIT" in credits
    counts = load_attribute_counts(paths.DECK_DIR)
    assert set(counts) == set(ANNOTATED_CLASSES) and all(annotated_cells(counts, label) > 100 for label in counts)


@pytest.mark.shared
def test_the_shipped_deck_follows_its_written_rule():
    """Rebuilt from the manifest's test split and the shipped model's recorded margins, the rule gives exactly
    the shipped cells and hard cases."""
    data = shared_data_or_skip()
    with (data / "pbc_manifest.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    with (paths.SHIPPED_MODEL_DIR / paths.TEST_PREDICTIONS_FILE).open(newline="") as handle:
        margins = {row["path"]: float(row["margin"]) for row in csv.DictReader(handle)}
    expected = sorted((row["path"], hard) for row, hard in select_deck(rows, margins))
    assert sorted((cell.source, cell.hard_case) for cell in load_deck(paths.DECK_DIR)) == expected
    with (data / "pbc_manifest.csv").open(newline="") as handle:
        train = [row for row in csv.DictReader(handle) if row["split"] == "train"]
    assert load_attribute_counts(paths.DECK_DIR) == attribute_counts(train)


def class_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def educator_zip() -> bytes:
    return class_zip(
        {
            **{f"my_cells/Lymphocyte/ly_{i}.png": encode(synthetic_cell(0, 500 + i)) for i in range(3)},
            **{f"my_cells/neutrophil/ne_{i}.png": encode(synthetic_cell(1, 600 + i)) for i in range(2)},
            "my_cells/neutrophil/broken.jpg": b"not a jpeg at all",
            "my_cells/neutrophil/notes.txt": b"stain: MGG",
        }
    )


def test_an_educators_zip_gives_its_readable_cells_and_names_the_rest():
    cells, notes = deck_from_zip(educator_zip(), ["lymphocyte", "neutrophil", "platelet"])
    assert sorted(cell.label for cell in cells) == ["lymphocyte"] * 3 + ["neutrophil"] * 2
    assert any("broken.jpg" in note for note in notes) and any("notes.txt" in note for note in notes)
    assert len(notes) == 2
    with pytest.raises(DeckError, match="monocytes"):
        deck_from_zip(class_zip({"monocytes/a.png": encode(synthetic_cell(0, 1))}), ["lymphocyte"])
    with pytest.raises(DeckError, match="no readable image"):
        deck_from_zip(class_zip({"lymphocyte/a.jpg": b"broken"}), ["lymphocyte"])


def cell(name: str, label: str, **attributes: str) -> DeckCell:
    return DeckCell(name=name, label=label, data=b"", attributes=attributes)


def test_quiz_scoring_per_class_and_both_confusion_matrices():
    answers = [
        QuizAnswer("a", "neutrophil", "neutrophil", "neutrophil", 0.9),
        QuizAnswer("b", "neutrophil", "ig", "neutrophil", 0.8),
        QuizAnswer("c", "ig", "ig", "neutrophil", 0.6),
        QuizAnswer("d", "ig", "neutrophil", "ig", 0.7),
        QuizAnswer("e", "ig", "ig", "ig", 0.95),
    ]
    summary = quiz_summary(answers, ["basophil", "ig", "neutrophil"])
    assert (summary["score"], summary["model_score"], summary["n"]) == (3, 4, 5)
    assert summary["per_class"] == [
        {"class": "ig", "cells": 3, "your answers right": 2, "your accuracy (%)": 66.7, "model accuracy (%)": 66.7},
        {"class": "neutrophil", "cells": 2, "your answers right": 1, "your accuracy (%)": 50.0,
         "model accuracy (%)": 100.0},
    ]  # fmt: skip
    assert summary["labels"] == ["ig", "neutrophil"]
    assert summary["student_confusion"] == [[2, 1], [1, 1]]
    assert summary["model_confusion"] == [[2, 1], [0, 2]]
    assert [mistake.name for mistake in summary["mistakes"]] == ["b", "d"]


def test_hardest_quiz_takes_the_smallest_margins_and_random_takes_the_chosen_classes():
    deck = [cell(f"c{i}", ("ig", "neutrophil", "platelet")[i % 3]) for i in range(30)]
    margins = {f"c{i}": i / 30 for i in range(30)}
    hardest = draw_quiz(deck, ["ig", "neutrophil"], 4, "hardest", margins, seed=1)
    assert sorted(hardest, key=lambda name: int(name[1:])) == ["c0", "c1", "c3", "c4"]
    drawn = draw_quiz(deck, ["platelet"], 50, "random", margins, seed=2)
    assert sorted(drawn) == sorted(cell.name for cell in deck if cell.label == "platelet")


def test_atlas_words_and_the_models_confusions():
    deck = [
        cell("n1", "neutrophil", nucleus_shape="segmented-multilobed", granule_colour="pink"),
        cell("n2", "neutrophil", nucleus_shape="segmented-multilobed", granule_colour="pink"),
        cell("l1", "lymphocyte", nucleus_shape="unsegmented-round", granule_colour="nil"),
        cell("e1", "eosinophil", nucleus_shape="segmented-bilobed", granule_colour="pink"),
    ]
    counts = attribute_counts(deck)
    features = distinguishing_features(counts, "neutrophil")
    assert features[0]["attribute"] == "nucleus shape" and features[0]["value"] == "segmented-multilobed"
    assert (features[0]["share of neutrophil (%)"], features[0]["share of the other classes (%)"]) == (100, 0)
    assert features[1]["value"] == "pink" and features[1]["share of the other classes (%)"] == 50
    assert distinguishing_features(counts, "platelet") == [] and annotated_cells(counts, "neutrophil") == 2
    comparison = pair_comparison(counts, "neutrophil", "lymphocyte")
    assert comparison[0] == {"attribute": "nucleus shape", "neutrophil": "segmented-multilobed (100%)",
                             "lymphocyte": "unsegmented-round (100%)", "differs": True}  # fmt: skip
    assert pair_comparison(counts, "neutrophil", "ig") == []  # nothing to compare an unannotated class on
    report = {"labels": ["ig", "neutrophil", "monocyte"], "confusion_matrix": [[30, 12, 3], [3, 50, 1], [0, 0, 9]]}
    assert confused_pairs(report, limit=2) == [("ig", "neutrophil", 12), ("ig", "monocyte", 3)]
    assert confused_pairs(report, "monocyte") == [("ig", "monocyte", 3), ("neutrophil", "monocyte", 1)]
    rows = [{"label": "ig", "predicted": "neutrophil", "confidence": c, "path": str(c)} for c in (0.9, 0.5, 0.7)]
    assert [row["confidence"] for row in matrix_cell(rows, "ig", "neutrophil")] == [0.5, 0.7, 0.9]
    assert matrix_cell(rows, "neutrophil", "ig") == []


def test_lecture_steps_wrap_around_the_deck_and_the_order_mixes_classes():
    lecture = LectureState()
    for _ in range(6):
        lecture.reveal()
    assert lecture.step == 3
    lecture.go_to(-1, 10)
    assert (lecture.index, lecture.step) == (9, 0)
    deck = [cell(f"{label}_{i}", label) for label in ("ig", "neutrophil") for i in range(10)]
    first_half = {cell.label for cell in lecture_order(deck)[:10]}
    assert first_half == {"ig", "neutrophil"}


# The pages, through AppTest on the tiny model (classes lymphocyte, neutrophil, platelet).


@pytest.fixture
def app(monkeypatch, tiny_model_dir, tmp_path):
    """The app on the tiny model, with no ../shared beside it: everything here must work on a fresh clone."""
    monkeypatch.setattr(paths, "SHARED_DATA_DIR", tmp_path / "no_shared_here")
    return app_on(monkeypatch, tiny_model_dir)


TINY_DECK_LABELS = {cell.name: cell.label for cell in load_deck(paths.DECK_DIR)}


def button(at, label: str):
    return next(item for item in at.button if item.label == label)


def markdown(at) -> str:
    return "\n".join(str(item.value) for kind in ("markdown", "success", "error", "caption") for item in at.get(kind))


def test_atlas_quiz_and_lecture_work_without_shared_data(app):
    assert not paths.SHARED_DATA_DIR.exists()
    for page in ("pages/5_Atlas.py", "pages/6_Quiz.py", "pages/7_Lecture.py"):
        at = app.switch_page(page).run()
        assert not at.exception, page
        assert at.get("image") or page == "pages/6_Quiz.py"
        assert "Acevedo" in markdown(at)
    at = app.switch_page("pages/5_Atlas.py").run()
    assert at.header[0].value.startswith("lymphocyte · ")
    assert any("nucleus shape" in list(frame.value["attribute"]) for frame in at.dataframe)


def test_a_full_quiz_scores_the_answers_given(app):
    at = app.switch_page("pages/6_Quiz.py").run()
    at.multiselect[0].set_value(["lymphocyte", "neutrophil"]).run()
    at.slider[0].set_value(4).run()
    at = button(at, "Start the quiz").click().run()
    assert not at.exception
    quiz = at.session_state[teaching_view.QUIZ_KEY]
    assert len(quiz.names) == 4 and {TINY_DECK_LABELS[name] for name in quiz.names} <= {"lymphocyte", "neutrophil"}
    given = []
    for number in range(4):
        label = TINY_DECK_LABELS[quiz.names[number]]
        # Right on the first two cells, "platelet" (never right here) on the others.
        answer = label if number < 2 else "platelet"
        given.append((label, answer))
        at = button(at, answer).click().run()
        assert not at.exception
        feedback = markdown(at)
        assert ("**Right**" in feedback) == (number < 2)
        assert f"expert's label is **{label}**" in feedback or f"**Right**: {label}" in feedback
        assert "The model: **" in feedback and "Morphology" in feedback
        assert len(at.get("image")) == 2  # the cell and the model's heatmap
        if number == 1:  # a page switch mid-quiz loses nothing
            at = at.switch_page("pages/5_Atlas.py").run()
            at = at.switch_page("pages/6_Quiz.py").run()
            assert "Cell 2 of 4" in at.get("progress")[0].proto.text
        at = button(at, "See your results" if number == 3 else "Next cell").click().run()
    assert not at.exception
    assert next(metric.value for metric in at.metric) == "2 / 4"
    table = at.dataframe[0].value
    for label in {label for label, _ in given}:
        asked = [answer for true, answer in given if true == label]
        row = table[table["class"] == label].iloc[0]
        assert row["cells"] == len(asked) and row["your answers right"] == sum(a == label for a in asked)
    student = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    labels = student["y"]
    expected = np.zeros((len(labels), len(labels)), int)
    for true, answer in given:
        expected[labels.index(true), labels.index(answer)] += 1
    assert "platelet" in labels and [[int(text) for text in row] for row in student["text"]] == expected.tolist()
    assert at.get("download_button")
    at = button(at, "New quiz").click().run()
    assert teaching_view.QUIZ_KEY not in at.session_state and button(at, "Start the quiz")


def test_lecture_reveals_step_by_step_and_jumps(app):
    at = app.switch_page("pages/7_Lecture.py").run()
    assert not at.exception
    deck = lecture_order([cell for cell in load_deck(paths.DECK_DIR) if cell.label in ("lymphocyte", "neutrophil",
                                                                                           "platelet")])  # fmt: skip
    assert "What is this cell?" in markdown(at) and deck[0].label not in markdown(at)
    at = button(at, "Reveal: expert label").click().run()
    assert f">{deck[0].label}<" in markdown(at) and "Model:" not in markdown(at)
    at = button(at, "Reveal: the model's answer").click().run()
    assert "Model:" in markdown(at) and len(at.get("image")) == 1
    at = button(at, "Reveal: where the model looked").click().run()
    assert not at.exception and len(at.get("image")) == 2 and button(at, "All revealed").disabled
    at = button(at, "Next ▶").click().run()
    assert at.session_state[teaching_view.LECTURE_KEY] == LectureState(1, 0) and at.selectbox[0].value == 1
    at = button(at, "◀ Previous").click().run()
    at = button(at, "◀ Previous").click().run()
    assert at.session_state[teaching_view.LECTURE_KEY].index == len(deck) - 1
    at = at.selectbox[0].set_value(5).run()
    assert at.session_state[teaching_view.LECTURE_KEY] == LectureState(5, 0) and "What is this cell?" in markdown(at)


def test_an_uploaded_deck_with_a_bad_file_is_used_and_the_bad_file_named(app):
    at = app.switch_page("pages/5_Atlas.py").run()
    at.radio[0].set_value("used instead of it")
    at.file_uploader[0].set_value(("my_cells.zip", educator_zip(), "application/zip"))
    at = at.run()
    assert not at.exception
    warnings = " ".join(warning.value for warning in at.warning)
    assert "broken.jpg" in warnings and "notes.txt" in warnings
    assert "5 cells from **my_cells.zip** in use, instead of" in at.success[0].value
    assert at.header[0].value == "lymphocyte · 3 cells"
    at = at.switch_page("pages/7_Lecture.py").run()  # every page teaches with it
    assert not at.exception and len(at.selectbox[0].options) == 5


def test_confusion_matrix_drill_down_from_the_deck_and_from_recorded_predictions(
    app, monkeypatch, tiny_model_dir, tiny_classifier, tmp_path
):
    at = app.switch_page("pages/3_Model_performance.py").run()
    at.selectbox[1].set_value("neutrophil").run()
    at = at.selectbox[2].set_value("neutrophil").run()
    assert not at.exception
    neutrophils = [cell for cell in load_deck(paths.DECK_DIR) if cell.label == "neutrophil"]
    results = tiny_classifier.classify([(cell.name, cell.data) for cell in neutrophils], mode="single")
    expected = sorted(result.name for result in results if result.prediction.label == "neutrophil")
    caption = next(item.value for item in at.caption if "read as neutrophil" in item.value)
    assert caption.startswith(f"{len(expected)} neutrophil image") and "teaching deck" in caption
    shown = [image.proto.imgs[0].caption.split(" · ")[0] for image in at.get("image")]
    assert len(shown) == min(len(expected), teaching_view.MATRIX_CELL_IMAGES) and set(shown) <= set(expected)
    if expected:
        at = at.button[0].click().run()
        assert not at.exception and at.title[0].value == "Explain"

    # With the data beside the repository, the model folder's per-image predictions pick the images.
    data = write_subtype_manifest(tmp_path / "data")
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    images = sorted((data / "lymphocyte").glob("*.png"))[:3]
    rows = [f"{image.relative_to(data).as_posix()},lymphocyte,platelet,{0.5 + i / 10},0.1\n" for i, image in
            enumerate(images)]  # fmt: skip
    (model / paths.TEST_PREDICTIONS_FILE).write_text("path,label,predicted,confidence,margin\n" + "".join(rows))
    monkeypatch.setenv(paths.MODEL_DIR_ENV, str(model))
    monkeypatch.setattr(paths, "SHARED_DATA_DIR", data)
    at = new_session()
    at = at.switch_page("pages/3_Model_performance.py").run()
    at.selectbox[1].set_value("lymphocyte").run()
    at = at.selectbox[2].set_value("platelet").run()
    assert not at.exception
    caption = next(item.value for item in at.caption if "read as platelet" in item.value)
    assert caption.startswith("3 lymphocyte images read as platelet in the PBC test split")
    assert [image.proto.imgs[0].caption for image in at.get("image")] == [
        f"{image.name} · {50 + 10 * i:.1f}%" for i, image in enumerate(images)
    ]
    at = at.button[2].click().run()  # the most confident of the three, shown last
    assert not at.exception and at.selectbox[0].value == images[2].name
