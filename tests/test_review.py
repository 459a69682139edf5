"""Review (corrections kept beside the network's calls), its JSON, the PDF report and the report CLI."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from hematovision.cli.main import main
from hematovision.core.predict import ImageResult, Prediction
from hematovision.core.smear import CellBox
from hematovision.workflows.report import CellPictures, ModelSummary, pdf_report
from hematovision.workflows.review import (
    FLAG_UNCERTAIN,
    NOT_BLOOD,
    UNREADABLE,
    Review,
    ReviewError,
    differentials,
    file_digest,
    reviewed_columns,
)
from tests.conftest import encode, synthetic_cell

WHITE = ["lymphocyte", "neutrophil"]


def result(name: str, label: str | None, confidence: float = 0.99, uncertain: bool = False, **extra) -> ImageResult:
    if label is None:
        return ImageResult(name, error="not a recognised image")
    probabilities = {"lymphocyte": 0.0, "neutrophil": 0.0, "platelet": 0.0, label: confidence}
    return ImageResult(name, prediction=Prediction(label, confidence, probabilities, uncertain), **extra)


@pytest.fixture
def batch():
    """Four files: two confident neutrophils, an uncertain lymphocyte, an unreadable file; plus a field with a
    cell found in it (same file digest, told apart by the box)."""
    results = [
        result("a.png", "neutrophil"),
        result("b.png", "neutrophil"),
        result("c.png", "lymphocyte", 0.55, uncertain=True),
        result("broken.jpg", None),
        result("field.jpg · cell 1", "lymphocyte", source="field.jpg", box=CellBox(10, 20, 110, 120)),
    ]
    digests = {name: file_digest(name.encode()) for name in ("a.png", "b.png", "c.png", "broken.jpg", "field.jpg")}
    return results, digests


def counts(review: Review, side: str, count_cut_cells: bool = True) -> dict[str, int]:
    differential = differentials(review, WHITE, count_cut_cells)[side == "reviewed"]
    return {**differential.white_cells, "total white cells": differential.total_white}


def test_a_correction_changes_the_reviewed_differential_not_the_networks(batch):
    review = Review.from_results(*batch, model_id="m1")
    key_b = next(key for key, cell in review.cells.items() if cell.name == "b.png")
    assert (
        counts(review, "network")
        == counts(review, "reviewed")
        == {
            "lymphocyte": 1,
            "neutrophil": 2,
            "total white cells": 3,
        }
    )
    review.correct(key_b, "lymphocyte")
    assert counts(review, "network") == {"lymphocyte": 1, "neutrophil": 2, "total white cells": 3}
    assert counts(review, "reviewed") == {"lymphocyte": 2, "neutrophil": 1, "total white cells": 3}
    cell = review.cells[key_b]
    assert cell.network_class == "neutrophil" and cell.final_class == "lymphocyte" and cell.corrected and cell.reviewed
    review.correct(key_b, "neutrophil")  # back to the network's own call: no correction left
    assert not review.cells[key_b].corrected and review.cells[key_b].reviewed_class is None


def test_uncertain_cells_count_once_looked_at_and_come_first(batch):
    review = Review.from_results(*batch, model_id="m1")
    uncertain = next(cell for cell in review.cells.values() if FLAG_UNCERTAIN in cell.flags)
    assert [cell.name for cell in review.ordered()][:2] == ["c.png", "broken.jpg"]
    assert counts(review, "reviewed")["lymphocyte"] == 1
    uncertain.reviewed = True
    assert counts(review, "reviewed")["lymphocyte"] == 2 and counts(review, "network")["lymphocyte"] == 1
    assert uncertain not in [cell for cell in review.ordered() if cell.needs_a_look]
    # Looked at, corrected or not, a cell keeps its place: the order follows the network's flags only.
    before = [cell.name for cell in review.ordered()]
    review.correct(uncertain.key, "neutrophil")
    review.correct(next(iter(review.cells)), "lymphocyte")
    assert [cell.name for cell in review.ordered()] == before


def test_the_review_counts_by_the_one_rule_cut_cells_included(batch):
    results, digests = batch
    cut = result("field.jpg · cell 2", "neutrophil", source="field.jpg", box=CellBox(0, 0, 50, 60), cut_by_frame=True)
    for cell in (results[-1], cut):
        cell.field_platelets = 3
    review = Review.from_results([*results, cut], digests, model_id="m1")
    assert counts(review, "network")["neutrophil"] == counts(review, "reviewed")["neutrophil"] == 3
    # Leaving cells cut by the edge out applies to the review as to Classify (it was ignored here before).
    assert counts(review, "network", False)["neutrophil"] == counts(review, "reviewed", False)["neutrophil"] == 2
    network, reviewed = differentials(review, WHITE, count_cut_cells=False)
    assert reviewed.cut_by_frame == {"neutrophil": 1} and reviewed.fields == 1 and reviewed.platelets_found == 3
    from hematovision.workflows.differential import differential_count

    assert network == differential_count([*results, cut], WHITE, count_cut_cells=False)
    saved = Review.from_json(review.to_json())
    assert saved.field_platelets == review.field_platelets and differentials(saved, WHITE)[1].platelets == 3


def test_json_round_trip_and_carrying_on(batch):
    review = Review.from_results(*batch, model_id="m1")
    review.reviewer, review.comment = "Dr Ada", "slide 4"
    key = next(iter(review.cells))
    review.correct(key, NOT_BLOOD)
    review.cells[key].comment = "stain debris"
    fresh = Review.from_results(*batch, model_id="m1")
    assert fresh.carry_on_from(Review.from_json(review.to_json())) == []
    assert fresh.cells[key].final_class == NOT_BLOOD and fresh.cells[key].comment == "stain debris"
    assert (fresh.reviewer, fresh.comment) == ("Dr Ada", "slide 4")
    assert json.loads(review.to_json())["cells"][0]["network_class"] == "neutrophil"


def test_a_review_of_partly_other_images_is_applied_where_it_matches_and_says_what_does_not(batch):
    results, digests = batch
    saved = Review.from_results(results[:3], digests, model_id="m1")
    saved.correct(next(iter(saved.cells)), "lymphocyte")  # a.png, whose file is replaced below
    saved.correct(list(saved.cells)[1], "lymphocyte")  # b.png, still in the batch
    other = dict(digests, **{"a.png": file_digest(b"another image under the same name")})
    fresh = Review.from_results(results, other, model_id="m1")
    text = " ".join(fresh.carry_on_from(saved, ["lymphocyte", "neutrophil"]))
    assert "1 reviewed image(s) are not in this batch: a.png" in text
    assert "3 image(s) of this batch are not in the review" in text
    assert [cell.final_class for cell in fresh.cells.values()][:2] == ["neutrophil", "lymphocyte"]


def untouched(review: Review) -> str:
    return json.dumps({key: (cell.reviewed_class, cell.reviewed, cell.comment) for key, cell in review.cells.items()}
                      | {"who": (review.reviewer, review.comment, review.sample)})  # fmt: skip


def test_a_review_from_another_model_or_of_other_images_is_refused_and_changes_nothing(batch):
    results, digests = batch
    saved = Review.from_results(results, digests, model_id="model-one")
    saved.reviewer, saved.sample = "Dr Ada", "S-1"
    saved.correct(next(iter(saved.cells)), "lymphocyte")
    fresh = Review.from_results(results, digests, model_id="model-two")
    before = untouched(fresh)
    with pytest.raises(ReviewError, match=r"made with another model .*Nothing was changed"):
        fresh.carry_on_from(saved)
    assert untouched(fresh) == before

    others = {name: file_digest(b"other " + name.encode()) for name in digests}
    elsewhere = Review.from_results(results, others, model_id="model-one")
    before = untouched(elsewhere)
    with pytest.raises(ReviewError, match=r"review of other images: none of its 5 cell.* Nothing was changed"):
        elsewhere.carry_on_from(saved)
    assert untouched(elsewhere) == before

    same = Review.from_results(results, digests, model_id="model-one")
    with pytest.raises(ReviewError, match=r"class\(es\) this model does not have \(lymphocyte\)"):
        same.carry_on_from(saved, classes=["neutrophil", "platelet"])
    assert untouched(same) == untouched(Review.from_results(results, digests, model_id="model-one"))


def damaged(cell_changes: dict, **document) -> bytes:
    cell = {"key": "k", "name": "a.png", "network_class": "neutrophil", "confidence": 0.9, "flags": []}
    return json.dumps({"format": "hematovision-review/1", "model_id": "m1", "cells": [cell | cell_changes],
                       **document}).encode()  # fmt: skip


@pytest.mark.parametrize(
    "text, why",
    [
        (b"{}", "not a HematoVision review file"),
        (b"not json", "cannot be read"),
        (b"\xff\xfe\x00garbage", "cannot be read"),
        (b"[1, 2]", "cannot be read"),
        (json.dumps({"format": "hematovision-review/1"}).encode(), "cannot be read"),
        (damaged({"reviewed_class": 7}), "wrong type of reviewed_class"),
        (damaged({"reviewed": "yes"}), "wrong type of reviewed"),
        (damaged({"flags": [1]}), "wrong type of flags"),
        (damaged({"surprise": 1}), "unknown surprise"),
        (damaged({}, model_id=None), "cannot be read"),
        (json.dumps({"format": "hematovision-review/1", "model_id": "m1", "cells": ["x"]}).encode(), "not a record"),
    ],
)
def test_unusable_review_files_get_a_clear_error(text, why):
    with pytest.raises(ReviewError, match=why):
        Review.from_json(text)
    assert Review.from_json(damaged({"reviewed_class": "lymphocyte", "reviewed": True})).cells["k"].reviewed


def test_csv_columns_follow_the_results(batch):
    results, digests = batch
    review = Review.from_results(results, digests, model_id="m1")
    review.reviewer = "Dr Ada"
    review.correct(next(iter(review.cells)), "lymphocyte")
    columns = reviewed_columns(results, digests, review)
    assert columns["reviewed_class"] == ["lymphocyte", "neutrophil", "lymphocyte", "", "lymphocyte"]
    assert columns["corrected"] == [True, False, False, False, False]
    assert columns["reviewer"] == ["Dr Ada"] * 5
    assert review.cells[next(k for k in review.cells if k.startswith(digests["broken.jpg"]))].network_class == (
        UNREADABLE
    )


def pdf_text(pdf: bytes, tmp_path, layout: bool = True) -> str:
    if shutil.which("pdftotext") is None:
        why = "pdftotext (Debian poppler-utils, installed by .ci/run) is needed to read the PDF back"
        if os.environ.get("CI"):  # set by .ci/run and CI services: a check that did not run is a failure there
            pytest.fail(f"{why}; CI is set, so this fails rather than skips")
        pytest.skip(why)
    (tmp_path / "report.pdf").write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", *(["-layout"] if layout else []), str(tmp_path / "report.pdf"), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_the_pdf_holds_the_counts_the_cells_and_the_disclaimer(batch, tmp_path):
    review = Review.from_results(*batch, model_id="abcdef0123456789")
    review.reviewer = "Dr Ada Lovelace"
    review.correct(next(iter(review.cells)), "lymphocyte")
    thumbnail = synthetic_cell(0, 1, size=64)
    pictures = {key: CellPictures(thumbnail, thumbnail) for key in list(review.cells)[:2]}
    model = ModelSummary("abcdef0123456789", "tiny test model", ["test split: accuracy 99.00%"])
    pdf = pdf_report(review, model, WHITE, pictures)
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf, tmp_path)
    assert "Dr Ada Lovelace" in text and "abcdef0123456789" in text and "accuracy 99.00%" in text
    assert "not a diagnostic device" in text and "CC BY 4.0" in text
    differential = next(line.split() for line in text.splitlines() if line.startswith("lymphocyte"))
    # 1 of 3 white cells by the network, 2 of 3 reviewed, with the exact interval of 2 in 3
    assert differential[1:] == ["1", "33.3", "2", "66.7", "9.4–99.2"]
    assert "Warning: Only 3 white cells counted: these percentages are not a differential yet" in " ".join(text.split())
    flowing = " ".join(pdf_text(pdf, tmp_path, layout=False).split())  # table cells wrap in narrow columns
    assert "lymphocyte (corrected)" in flowing and "could not be read" in flowing


def test_the_pdf_is_ready_to_sign_with_the_sample_every_class_and_the_field(batch, tmp_path):
    from hematovision.core.imaging import DecodedImage
    from hematovision.workflows.report import field_pictures

    results, digests = batch
    results[-1].field_image = DecodedImage(synthetic_cell(1, 5, size=200))
    review = Review.from_results(results, digests, model_id="m1")
    model = ModelSummary("m1", "tiny", [], classes=["erythroblast", "lymphocyte", "neutrophil", "platelet"])
    unsigned = " ".join(pdf_text(pdf_report(review, model, WHITE, {}), tmp_path, layout=False).split())
    assert "Sample: not given" in unsigned and "Reviewer: not given" in unsigned  # optional, never required
    assert "Reviewed by Signature Date" in unsigned and "Field of view" not in unsigned

    review.sample, review.reviewer = "S-0412 ward 3", "Dr Ada"
    fields = field_pictures(results, digests)
    assert [(field.name, len(field.cells)) for field in fields] == [("field.jpg", 1)]
    text = pdf_text(pdf_report(review, model, WHITE, {}, fields=fields), tmp_path)
    assert "Sample: S-0412 ward 3" in text and "Field of view 1 of 1" in text
    every_class = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.split()[:1] in (
        ["erythroblast"], ["platelet"], ["unreadable"])}  # fmt: skip
    assert every_class == {"erythroblast": ["0", "0", "0"], "platelet": ["0", "0", "0"], "unreadable": ["1", "0", "1"]}
    assert Review.from_json(review.to_json()).sample == "S-0412 ward 3"


def test_file_names_wrap_at_path_separators_not_mid_word():
    from fpdf import FPDF

    from hematovision.workflows.report import _FONT_DIR, FONT, wrap_name

    pdf = FPDF()
    pdf.add_font(FONT, "", _FONT_DIR / "DejaVuSans.ttf")
    pdf.set_font(FONT, size=7.5)
    name = "/data/Ward_3_haematology/slide-2026-0412/BloodImage_00001.jpg · cell 2"
    width = pdf.get_string_width("BloodImage_00001.jpg") + 2  # the file's own name fits, its path does not
    lines = wrap_name(pdf, name, width).split("\n")
    assert "".join(lines).replace(" ", "") == name.replace(" ", "")  # nothing lost
    assert all(pdf.get_string_width(line) <= width for line in lines)
    assert lines == ["/data/", "Ward_3_haematology/", "slide-2026-0412/", "BloodImage_00001.jpg ·", "cell 2"]
    # A single word wider than the column breaks after an underscore first, mid-word only as a last resort.
    assert wrap_name(pdf, "BloodImage_00001_with_a_very_long_suffix.jpg", 20).split("\n")[0].endswith("_")


def test_report_cli_applies_a_saved_review(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "cells"
    folder.mkdir()
    for i in range(3):
        (folder / f"cell_{i}.png").write_bytes(encode(synthetic_cell(i, 40 + i)))
    (folder / "broken.png").write_bytes(b"not an image")
    first = tmp_path / "first.pdf"
    assert main(["report", str(folder), "--pdf", str(first), "--model", str(tiny_model_dir)]) == 0
    assert first.read_bytes().startswith(b"%PDF")

    # A review made elsewhere (as the app saves it) for the same files, one cell corrected.
    from hematovision.core.predict import Classifier

    classifier = Classifier.load(tiny_model_dir)
    sources = [(str(path), path.read_bytes()) for path in sorted(folder.iterdir())]
    results = classifier.classify(sources)
    review = Review.from_results(results, {name: file_digest(data) for name, data in sources}, classifier.model_id)
    key = next(key for key, cell in review.cells.items() if cell.name.endswith("cell_0.png"))
    review.correct(key, "platelet")
    review.cells[key].comment = "a giant platelet"
    saved = tmp_path / "review.json"
    saved.write_text(review.to_json())

    report = tmp_path / "reviewed.pdf"
    arguments = ["report", str(folder), "--pdf", str(report), "--review", str(saved), "--reviewer", "Dr Bo",
                 "--sample", "S-17"]  # fmt: skip
    assert main([*arguments, "--heatmaps", "--model", str(tiny_model_dir)]) == 0
    printed = capsys.readouterr()
    assert "note:" not in printed.err  # the same files: everything matched
    assert "differential count (after review):" in printed.out and "lymphocyte" in printed.out
    assert "nucleated red cells (erythroblasts): 0 (" in printed.out and "platelets: " in printed.out
    assert "warning: " in printed.out and "not a differential yet" in printed.out  # 4 files, far from 100 cells
    text = " ".join(pdf_text(report.read_bytes(), tmp_path, layout=False).split())
    assert "Dr Bo" in text and "platelet (corrected)" in text and "a giant platelet" in text and "Sample: S-17" in text
    assert "heatmap" in text


def test_report_cli_refuses_an_unusable_review(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "cell.png").write_bytes(encode(synthetic_cell(0, 3)))
    (tmp_path / "review.json").write_text("{}")
    arguments = ["report", str(tmp_path / "cell.png"), "--pdf", str(tmp_path / "r.pdf")]
    assert main([*arguments, "--review", str(tmp_path / "review.json"), "--model", str(tiny_model_dir)]) == 2
    assert "not a HematoVision review file" in capsys.readouterr().err
    assert not (tmp_path / "r.pdf").exists()
    # A review made with another model is refused too, with the reason, and no report is written.
    (tmp_path / "review.json").write_text(Review("another-model", {}).to_json())
    assert main([*arguments, "--review", str(tmp_path / "review.json"), "--model", str(tiny_model_dir)]) == 2
    assert "made with another model" in capsys.readouterr().err and not (tmp_path / "r.pdf").exists()


def test_thumbnails_are_square_and_small():
    from hematovision.core.imaging import DecodedImage
    from hematovision.workflows.report import THUMBNAIL_PIXELS, cell_pictures

    pictures = cell_pictures(
        [ImageResult("x.png", image=DecodedImage(np.zeros((90, 150, 3), np.uint8)))], {"x.png": "d"}, 96
    )
    assert pictures["d"].thumbnail.shape == (THUMBNAIL_PIXELS, THUMBNAIL_PIXELS, 3)


def test_morphology_rides_along_and_a_contradiction_asks_for_a_look(tmp_path):
    from hematovision.workflows.review import FLAG_MORPHOLOGY

    cell = result("odd.png", "neutrophil")
    cell.prediction.attributes = {"nucleus_shape": ("unsegmented-round", 0.8), "granularity": ("no", 0.9)}
    cell.prediction.contradictions = ["nucleus unsegmented-round"]
    review = Review.from_results([cell, result("plain.png", "lymphocyte")], {"odd.png": "1", "plain.png": "2"}, "m")
    odd, plain = review.cells["1"], review.cells["2"]
    assert odd.flags == [FLAG_MORPHOLOGY] and odd.needs_a_look and "nucleus unsegmented-round" in odd.morphology
    assert plain.morphology == "" and not plain.flags
    assert Review.from_json(review.to_json()).cells["1"].morphology == odd.morphology
    text = pdf_text(pdf_report(review, ModelSummary("m", "tiny", []), WHITE, {}), tmp_path, layout=False)
    assert "no granules" in " ".join(text.split())


def test_a_thumbnail_shows_the_mirrored_margin_of_a_re_cut_cell_pale():
    from hematovision.core.imaging import DecodedImage
    from hematovision.workflows.report import cell_pictures

    upload = DecodedImage(np.zeros((100, 140, 3), np.uint8))  # black photo; the re-cut square reaches 20 px above
    square = DecodedImage(np.zeros((120, 120, 3), np.uint8))
    cell = ImageResult("x.png", image=square, upload=upload, window=(10, -20, 120))
    thumbnail = cell_pictures([cell], {"x.png": "d"}, 96)["d"].thumbnail
    assert thumbnail[0].min() > 100 and thumbnail[-1].max() == 0  # the rows above the photo pale, the photo as it is
