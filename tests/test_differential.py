"""The differential count and the tables built from results, on hand-made results."""

import pytest
from scipy.stats import binomtest

from hematovision.app import captions, figures, results_table, tables
from hematovision.core.predict import ImageResult, Prediction
from hematovision.workflows import count_tables
from hematovision.workflows.differential import (
    MIN_WHITE_CELLS,
    Call,
    clopper_pearson,
    count,
    count_warning,
    differential_count,
    summary_lines,
)

WHITE = ["basophil", "eosinophil", "ig", "lymphocyte", "monocyte", "neutrophil"]


def result(name, label=None, confidence=0.99, uncertain=False, not_blood_cell=False, error=None):
    prediction = None
    if label is not None:
        probabilities = {label: confidence, "platelet" if label != "platelet" else "ig": 1 - confidence}
        prediction = Prediction(label, confidence, probabilities, uncertain, not_blood_cell)
    return ImageResult(name=name, source=name, prediction=prediction, error=error)


RESULTS = [
    result("a", "neutrophil"),
    result("b", "neutrophil"),
    result("c", "lymphocyte"),
    result("d", "monocyte", 0.55, uncertain=True),
    result("e", "platelet"),
    result("f", "erythroblast"),
    result("g", "eosinophil", not_blood_cell=True),
    result("h", error="the file is empty (0 bytes)"),
]


def test_only_confident_white_cells_are_in_the_percentages():
    differential = differential_count(RESULTS, WHITE)
    assert differential.white_cells == {"basophil": 0, "eosinophil": 0, "ig": 0, "lymphocyte": 1, "monocyte": 0,
                                        "neutrophil": 2}  # fmt: skip
    assert differential.total_white == 3
    assert round(differential.percent["neutrophil"], 2) == 66.67
    assert differential.other_cells == {"erythroblast": 1, "platelet": 1}
    assert differential.uncertain == {"monocyte": 1}
    assert differential.not_blood_cells == 1 and differential.unreadable == 1


def test_tables_account_for_every_input():
    differential = differential_count(RESULTS, WHITE)
    main = count_tables.differential_table(differential)
    apart = count_tables.set_apart_table(differential)
    assert main["count"].iloc[-1] + apart["count"].sum() == len(RESULTS) == differential.accounted_for
    assert set(apart["group"]) == {"nucleated red cells (NRBC)", "platelets", "uncertain (check by eye)",
                                   "not a blood-cell image", "could not be read"}  # fmt: skip
    nrbc = apart.set_index("group").loc["nucleated red cells (NRBC)"]
    assert nrbc["count"] == 1 and nrbc["note"] == "33.3 per 100 white cells"  # 1 erythroblast, 3 white cells
    assert main.set_index("cell type").loc["neutrophil", "95% interval (%)"] == "9.4–99.2"  # 2 of 3, exact
    for table in (main, apart):  # words, never a raw None or nan, wherever a value is missing
        assert not table.isna().any().any() and "None" not in table.to_string() and "nan" not in table.to_string()
    table = results_table.results_table(RESULTS)
    row = table.set_index("file").loc["g"]
    assert row["class"] == "none: not a blood-cell image" and "does not look like a blood-cell image" in row["notes"]
    assert table.set_index("file").loc["h", "class"] == "none: could not be read"
    assert (table.set_index("file").loc[["g", "h"], ["confidence (%)", "uncertain"]] == "not judged").all().all()
    assert not table.isna().any().any() and "None" not in table.to_string()
    assert table.set_index("file").loc["h", "notes"] == "the file is empty (0 bytes)"


def test_cells_cut_by_the_frame_are_counted_or_listed_apart_as_asked():
    cut = result("cut", "lymphocyte")
    cut.cut_by_frame = True
    batch = [*RESULTS, cut]
    counted = differential_count(batch, WHITE)
    assert counted.white_cells["lymphocyte"] == 2 and counted.cut_by_frame == {}
    left_out = differential_count(batch, WHITE, count_cut_cells=False)
    assert left_out.white_cells["lymphocyte"] == 1 and left_out.cut_by_frame == {"lymphocyte": 1}
    apart = count_tables.set_apart_table(left_out)
    assert count_tables.differential_table(left_out)["count"].iloc[-1] + apart["count"].sum() == len(batch)
    assert "cut by the photo's edge (left out)" in set(apart["group"])


def test_empty_batch_has_no_percentages():
    differential = differential_count([], WHITE)
    assert differential.total_white == 0 and set(differential.percent.values()) == {0.0}
    assert differential.nrbc_per_100_white is None and differential.interval("ig") is None
    assert "there is no differential" in count_warning(differential)
    assert set(count_tables.differential_table(differential)["95% interval (%)"]) == {"no white cells counted"}


@pytest.mark.parametrize("total", [1, 3, 20, 100, 200, 1000])
def test_the_interval_is_the_exact_binomial_one(total):
    for k in sorted({0, 1, total // 3, total // 2, total - 1, total}):
        expected = binomtest(k, total).proportion_ci(confidence_level=0.95, method="exact")
        assert clopper_pearson(k, total) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_the_interval_agrees_with_ruemkes_table():
    # Rümke's table for 100 cells counted (the table CLSI H20 prints), to the whole percent: observed % -> 95% limits.
    table = {0: (0, 4), 1: (0, 5), 2: (0, 7), 5: (2, 11), 10: (5, 18), 20: (13, 29), 50: (40, 60)}
    for observed, limits in table.items():
        low, high = clopper_pearson(observed, 100)
        assert (round(100 * low), round(100 * high)) == limits
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


def test_fewer_than_100_white_cells_are_not_a_differential_yet():
    def counted(n):
        return count([Call("neutrophil")] * (n // 2) + [Call("lymphocyte")] * (n - n // 2), WHITE)

    three = count_warning(counted(3))
    assert three.startswith("Only 3 white cells counted: these percentages are not a differential yet")
    assert "lymphocyte at 67% could truly be anywhere from 9% to 99%" in three
    assert "100 to 200 white cells (ICSH; CLSI H20)" in three
    assert count_warning(counted(MIN_WHITE_CELLS - 1)) is not None
    assert count_warning(counted(MIN_WHITE_CELLS)) is None and count_warning(counted(200)) is None
    assert any(line.startswith("warning: Only 3 white cells") for line in summary_lines(counted(3)))
    assert not any(line.startswith("warning") for line in summary_lines(counted(100)))


def test_nrbc_per_100_white_cells_and_platelets_per_field():
    calls = [Call("neutrophil", field="f1")] * 30 + [Call("lymphocyte", field="f2")] * 20
    calls += [Call("erythroblast", field="f1")] * 2 + [Call("platelet", field="f2")]
    calls += [Call("platelet", uncertain=True, field="f2")]  # uncertain: counted apart, never as a platelet
    differential = count(calls, WHITE, field_platelets={"f1": 4, "f2": 5, "elsewhere": 99})
    assert differential.nrbc_per_100_white == pytest.approx(4.0)
    assert differential.fields == 2 and differential.platelets_found == 9 and differential.platelets == 10
    assert differential.platelets_per_field == pytest.approx(5.0)
    lines = summary_lines(differential)
    assert "  nucleated red cells (erythroblasts): 2 (4.0 per 100 white cells)" in lines
    assert "  platelets: 10 (9 found in fields, not classified; 5.0 per field, 2 fields)" in lines
    apart = count_tables.set_apart_table(differential).set_index("group")
    assert apart.loc["platelets", "count"] == 1  # the classified one: every count is of the cells given
    assert apart.loc["platelets", "note"] == "plus 9 found in the fields, not classified; 5.0 per field (2 fields)"
    assert count_tables.set_apart_table(count([Call("neutrophil")], WHITE)).set_index("group").loc[
        "platelets", "note"] == "single-cell images: no count per field"  # fmt: skip


def test_probability_chart_highlights_the_prediction():
    figure = figures.probability_chart(RESULTS[0].prediction, threshold=0.8)
    bars = figure.data[0]
    assert list(bars.y)[-1] == "neutrophil"  # highest last, so drawn on top
    assert bars.marker.color[-1] == figures.HIGHLIGHT and bars.marker.color[0] == figures.MUTED


def test_novelty_table_lists_each_set_condition_and_category():
    def rates(not_blood, unfamiliar, n):
        return {"not_blood": not_blood, "unfamiliar": unfamiliar, "n": n}

    novelty = {
        "pbc_test": rates(0.002, 0.01, 1894),
        "bccd_crops_test": rates(0.0, 0.2, 61),
        "pbc_test_conditions": {"as recorded": rates(0.002, 0.01, 1894), "blur 2 px": rates(0.03, 0.5, 1894)},
        "non_blood_generated": rates(0.99, 0.0, 660) | {"by_category": {"face": {"not_blood": 1.0, "n": 80}}},
        "non_blood_photos": rates(0.97, 0.01, 480) | {"by_category": {"retina": {"not_blood": 0.9, "n": 80}}},
    }
    table = tables.novelty_table(novelty)
    assert table["images"].tolist()[2] == "PBC test, blur 2 px (simulated lab change)"
    assert table["not a blood cell (%)"].tolist() == [0.2, 0.0, 3.0, 99.0, 100.0, 97.0, 90.0]
    assert table["n"].tolist()[-1] == 80
    assert table["before (%)"].isna().all() and table["ECE (%)"].isna().all()

    refitted = novelty | {
        "chula_test": rates(0.01, 0.9, 209),
        "calibration": {"chula_test": {"accuracy": 0.5, "ece": 0.08}},
        "before": {"chula_test": rates(0.75, 0.24, 209), "pbc_test": rates(0.001, 0.01, 1894)},
    }
    table = tables.novelty_table(refitted).set_index("images")
    chula = table.loc["Chula test sequences (blood cells, a third lab never trained on)"]
    assert chula[["not a blood cell (%)", "before (%)", "accuracy (%)", "ECE (%)"]].tolist() == [1.0, 75.0, 50.0, 8.0]
    assert table["before (%)"].notna().sum() == 2


def test_other_labs_tables_read_every_recorded_set():
    report = {"n": 61, "accuracy": 0.9, "accuracy_ci95": [0.8, 0.95], "ece": 0.04, "flagged_not_blood": 0.0,
              "flagged_unfamiliar": 0.3, "uncertain": {"share_of_errors": 0.66, "share_of_correct": 0.1},
              "per_class": {"lymphocyte": {"recall": 0.8, "support": 5},
                            "platelet": {"recall": 0.0, "support": 0}}}  # fmt: skip
    evaluation = {"datasets": {"bccd_crops_test": report}, "leave_one_lab_out": {"pbc_only_on_bccd_all": report}}
    table = tables.other_labs_table(evaluation)
    assert len(table) == 2 and table["errors marked uncertain (%)"].tolist() == [66.0, 66.0]
    recall = tables.other_labs_recall_table(evaluation)
    assert recall["class"].tolist() == ["lymphocyte"] and recall.iloc[0, 1] == "80% of 5"


def test_extra_data_caption_states_what_was_mixed_in():
    caption = captions.extra_data_caption(
        {"source": "/tmp/bccd_crops", "counts": {"train": 166, "val": 57, "test": 57}, "train_repeat": 8}
    )
    assert "166 images from another lab (bccd_crops" in caption and "8×" in caption and "57 test" in caption
    # Crops that say how they were cut (training.bccd's crops.json) are described as cells and scales.
    cut = {"cells": {"train": 166, "val": 57}, "train_margins": [0.15, 0.7], "margin": 0.15}
    caption = captions.extra_data_caption(
        {"source": "/tmp/bccd_crops", "counts": {"train": 332, "val": 57, "test": 57}, "train_repeat": 4, "crops": cut}
    )
    assert "332 crops of 166 white cells (2 scales each) from another lab" in caption


def test_other_labs_note_reports_the_other_lab_only_when_measured():
    extra = {"source": "/tmp/bccd_crops", "counts": {"train": 166}, "train_repeat": 8}
    note = captions.other_labs_note({"accuracy": 0.98, "bccd_crops_test_accuracy": 0.807}, extra)
    assert "166 white-cell crops" in note and "80.7%" in note and "98.00%" in note
    assert "wrongly and confidently" in captions.other_labs_note({"accuracy": 0.98}, None)
    # Training names the other lab's metrics after its folder, whatever that folder is called.
    extra = {"source": "/data/lab_b", "counts": {"train": 40}, "train_repeat": 2}
    assert "72.5%" in captions.other_labs_note({"accuracy": 0.98, "lab_b_test_accuracy": 0.725}, extra)


def test_top_confusions_lists_mistakes_largest_first_with_their_share_of_the_true_class():
    report = {"labels": ["ig", "lymphocyte", "neutrophil"], "confusion_matrix": [[80, 2, 18], [0, 50, 0], [9, 0, 41]]}
    table = tables.top_confusions(report, limit=2)
    assert table.to_dict("records") == [
        {"true class": "ig", "called": "neutrophil", "images": 18, "% of the true class": 18.0},
        {"true class": "neutrophil", "called": "ig", "images": 9, "% of the true class": 18.0},
    ]
    assert tables.top_confusions({"labels": ["a", "b"], "confusion_matrix": [[3, 0], [0, 4]]}).empty


def test_per_class_table_leaves_out_classes_neither_present_nor_predicted():
    scores = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    report = {
        "labels": ["eosinophil", "ig", "platelet"],
        "confusion_matrix": [[3, 0, 1], [0, 0, 0], [0, 0, 0]],
        "per_class": {
            "eosinophil": {"precision": 1.0, "recall": 0.75, "f1": 0.857, "support": 4},
            "ig": scores,
            "platelet": scores,
        },
    }
    table = tables.per_class_table(report)
    assert table["class"].tolist() == ["eosinophil", "platelet"]
    assert table["predicted"].tolist() == [3, 1]
    assert table["recall, 95% interval"].tolist() == ["0.301–0.954", "—"]  # Wilson, 3 of 4; none held
    caption = captions.accuracy_interval_caption(report)
    assert "30.1–95.4%" in caption and "one image moves the accuracy by 25.00 points" in caption


def test_network_note_names_an_averaged_model_as_such():
    single = {"architecture": "MobileNetV2", "alpha": 1.0}
    assert captions.network_note(single) == "MobileNetV2 (width 1.0)"
    assert captions.network_note({**single, "members": 2}).startswith("2 × MobileNetV2 (width 1.0), trained alike")


def test_training_curves_draw_each_member_of_an_averaged_model():
    def rows(member):
        return [
            {"phase": phase, "epoch": epoch, "loss": 1.0 / epoch, "val_loss": 1.2 / epoch, **member}
            for phase, epoch in (("head", 1), ("head", 2), ("fine_tune", 1))
        ]

    single = figures.training_curves(rows({}), "loss")
    assert [trace.name for trace in single.data] == ["train", "validation"]
    assert list(single.data[0].x) == [1, 2, 3] and len(single.layout.shapes) == 1
    assert [note.text for note in single.layout.annotations] == ["fine-tuning starts"]
    assert tuple(single.layout.xaxis.range) == (0, 4)
    averaged = figures.training_curves(rows({"member": "seed 1"}) + rows({"member": "seed 2"}), "loss")
    assert [trace.name for trace in averaged.data] == [
        "train, seed 1", "validation, seed 1", "train, seed 2", "validation, seed 2"
    ]  # fmt: skip
    assert list(averaged.data[2].x) == [1, 2, 3] and len(averaged.layout.shapes) == 1


def test_training_curves_caption_explains_the_loss_floor_of_label_smoothing():
    # Targets 0.9 and 0.1: entropy -(0.9 ln 0.9 + 0.1 ln 0.1) = 0.325.
    assert "lowest reachable loss is 0.33 for 2 classes" in captions.training_curves_caption(
        {"label_smoothing": 0.2}, 2
    )
    assert "0.47 for 8 classes" in captions.training_curves_caption({"label_smoothing": 0.1}, 8)
    assert "steps up" not in captions.training_curves_caption({"label_smoothing": 0.0}, 8)
    assert "steps up" not in captions.training_curves_caption({}, 8)


def test_missing_figures_read_as_a_dash():
    import numpy as np
    import pandas as pd

    table = tables.with_words_for_missing(pd.DataFrame({"a": [1.5, None], "b": [np.nan, 2.0]}))
    assert table.to_dict("list") == {"a": [1.5, "—"], "b": ["—", 2.0]}


def test_the_pointing_line_and_table_read_the_record_they_describe():
    def figure(mean, se, n=4):
        return {"mean": mean, "se": se, "n": n}

    def method(off, pairs, baseline=False):
        entry = {key: {"pointing": figure(value, 0.05), "mass_inside": figure(0.4, 0.02)}
                 for key, value in (("centred", 1.0), ("off_centre", off), ("composite", pairs))}  # fmt: skip
        return {**entry, "baseline": True} if baseline else entry

    record = {"split": "test", "seed": 3, "n_cells": 4, "n_composites": 2,
              "targets": {"off_centre_pointing": 0.95, "composite_pointing": 0.9},
              "methods": {"Map A": method(0.75, 1.0), "centred blob": method(0.0, 0.0, baseline=True)}}  # fmt: skip
    line = captions.pointing_line(record, "Map A")
    assert "4 PBC test cells moved off-centre" in line and "75% ± 5 (centred blob 0% ± 5) (target 95%)" in line
    assert "2 pairs of cells" in line and "100% ± 5" in line
    assert captions.pointing_line(record, "Map B") is None
    table = tables.pointing_table(record)
    assert list(table["method"]) == ["Map A", "centred blob (baseline)"]
    assert table.loc[0, "off-centre: peak on the cell"] == "75% ± 5"
    assert captions.class_pointing_line(record, "Map A", "neutrophil") is None  # a record without per-class figures
    record["methods"]["Map A"]["off_centre"]["by_class"] = {
        "neutrophil": figure(1.0, 0.0, 3),
        "platelet": figure(0.25, 0.1),
    }
    record["cell_removed"] = {
        "neutrophil": {"n": 3, "still_called": 0.0, "probability_before": 0.99, "probability_after": 0.01},
        "platelet": {"n": 4, "still_called": 1.0, "probability_before": 0.99, "probability_after": 0.98},
    }
    neutrophil = captions.class_pointing_line(record, "Map A", "neutrophil")
    assert "neutrophil** cells moved off-centre the peak is on the cell 100% of the time (3 cells)" in neutrophil
    assert "removed" not in neutrophil  # its call needs the cell
    platelet = captions.class_pointing_line(record, "Map A", "platelet")
    assert "25% of the time (4 cells)" in platelet and "still calls 100% of these platelet images platelet" in platelet
    assert "99.0% → 98.0%" in platelet
    record["cell_removed"]["platelet"]["probability_after"] = 0.16  # on top, but no longer read from anywhere
    assert "removed" not in captions.class_pointing_line(record, "Map A", "platelet")
