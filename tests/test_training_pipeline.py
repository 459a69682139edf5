"""End to end without ../shared: train a tiny model on generated images, then use every CLI on it."""

import csv
import json
import re

import numpy as np
import pytest

from hematovision.core import paths
from hematovision.core.artifacts import load_card, load_evaluation, load_history, write_json
from hematovision.core.datasets import (
    CREDIT_FILE,
    MANIFEST_NAME,
    PBC_CREDIT,
    dataset_credit,
    examples_per_class,
    read_manifest,
    scan_class_folders,
    stratified_split,
)
from hematovision.core.smear import CellBox
from hematovision.heads.metrics import softmax
from tests.conftest import (
    TINY_CLASSES,
    TINY_SIZE,
    encode,
    synthetic_cell,
    tiny_training_args,
    write_class_folders,
    write_subtype_manifest,
)


def test_artifact_folder_is_complete(tiny_model_dir, tiny_other_lab):
    for name in (paths.MODEL_FILE, paths.CARD_FILE, paths.EVALUATION_FILE, paths.HISTORY_FILE):
        assert (tiny_model_dir / name).is_file(), name
    card = load_card(tiny_model_dir)
    assert card.classes == sorted(TINY_CLASSES)
    assert card.input_size == TINY_SIZE
    assert card.white_cell_classes == ["lymphocyte", "neutrophil"]
    assert 0.05 <= card.temperature <= 20
    assert "split" in card.data and card.training["wall_time_minutes"] >= 0
    assert card.inference["batch_images_per_second"] > 0
    evaluation = load_evaluation(tiny_model_dir)
    assert {"pbc_val", "pbc_test"} <= set(evaluation["datasets"])
    # The other lab's images were mixed in, and its held-out splits scored on their own.
    assert card.data["extra"]["counts"] == {"train": 6, "val": 6, "test": 6}
    # Credit comes from each dataset's own CREDIT.txt; the generated main set has none to give.
    assert card.data["extra"]["credit"] == "Tiny Other Lab, generated images, CC0"
    assert card.data["credit"] == ""
    assert ("random" in card.backbone["weights_origin"]) == (card.backbone["weights"] == "none")
    assert evaluation["datasets"][f"{tiny_other_lab.name}_test"]["n"] == 6
    assert f"{tiny_other_lab.name}_val_accuracy" in card.metrics
    history = load_history(tiny_model_dir)
    assert [row["phase"] for row in history].count("fine_tune") == 1


def test_same_seed_same_split(tiny_dataset):
    images = scan_class_folders(tiny_dataset).images
    first = stratified_split(images, seed=3)
    assert first == stratified_split(images, seed=3)
    assert first != stratified_split(images, seed=4)
    per_class = [item.split for item in first if item.label == "platelet"]
    assert per_class.count("val") == round(24 * 0.10) and per_class.count("test") == round(24 * 0.15)


def test_dataset_credit_prefers_the_folders_own_file(tmp_path):
    assert dataset_credit(tmp_path) == ""
    (tmp_path / MANIFEST_NAME).write_text("path,label,split\n")
    assert dataset_credit(tmp_path) == PBC_CREDIT
    (tmp_path / CREDIT_FILE).write_text("  Some Lab,\n CC BY 4.0 \n")
    assert dataset_credit(tmp_path) == "Some Lab, CC BY 4.0"


def test_examples_are_the_first_test_image_of_each_known_class(tmp_path):
    assert examples_per_class(tmp_path, list(TINY_CLASSES)) == []  # no manifest, no examples
    data = write_subtype_manifest(tmp_path / "data")
    test_split = [item for item in read_manifest(data / MANIFEST_NAME) if item.split == "test"]
    chosen = examples_per_class(data, ["platelet", "lymphocyte", "eosinophil"])
    assert [item.label for item in chosen] == ["platelet", "lymphocyte"]  # the caller's order; unknown ones left out
    for item in chosen:
        assert item.path.name == min(other.path.name for other in test_split if other.label == item.label)
    chosen[0].path.unlink()  # a file listed but missing is passed over, not shown broken
    assert examples_per_class(data, ["platelet"])[0].path != chosen[0].path


def test_model_is_flat_and_takes_raw_pixels(tiny_classifier):
    model = tiny_classifier.model
    names = {layer.name for layer in model.layers}
    # The backbone's layers sit in the model itself, not inside a nested sub-model.
    assert tiny_classifier.card.gradcam_layer in names and "Conv1" in names
    assert not any(hasattr(layer, "layers") for layer in model.layers)
    assert model.get_layer("preprocess") is not None


def test_classifier_probabilities_are_calibrated_softmax(tiny_classifier):
    batch = np.stack([synthetic_cell(i % 3, 500 + i, TINY_SIZE) for i in range(5)])
    probabilities = tiny_classifier.probabilities(batch)
    assert probabilities.shape == (5, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    # The model's own softmax output, re-tempered, is what the classifier reports.
    raw = tiny_classifier.model.predict(batch.astype(np.float32), verbose=0)
    expected = softmax(np.log(raw), tiny_classifier.card.temperature)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-3, atol=1e-5)


def test_evaluate_cli_on_class_folders(tiny_model_dir, tmp_path, capsys):
    from training.evaluate import main

    data = write_class_folders(tmp_path / "eval", per_class=4, seed=7)
    (data / "NEUTROPHIL").mkdir()  # a case-variant folder name still matches
    (data / "neutrophil" / "neutrophil_0.png").rename(data / "NEUTROPHIL" / "n.png")
    (data / "monocyte").mkdir()
    (data / "monocyte" / "m.png").write_bytes(encode(synthetic_cell(0, 1)))
    (data / "lymphocyte" / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "report.json"
    assert main(["--model", str(tiny_model_dir), "--data", str(data), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 12  # 13 files in known classes, one unreadable; monocyte/ skipped
    assert {"accuracy", "macro_f1", "ece", "n", "per_class", "confusion_matrix", "labels"} <= set(report)
    assert report["unreadable"][0]["file"].endswith("broken.png")
    captured = capsys.readouterr()
    assert "monocyte" in captured.err and "no class" in captured.err
    assert "accuracy" in captured.out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "is not a folder"),
        (lambda root: (root / "empty").mkdir() or root / "empty", "no labelled images"),
    ],
)
def test_evaluate_cli_refuses_unusable_data(tiny_model_dir, tmp_path, capsys, make, message):
    from training.evaluate import main

    assert main(["--model", str(tiny_model_dir), "--data", str(make(tmp_path))]) == 2
    assert message in capsys.readouterr().err


def test_evaluate_cli_reports_a_missing_model(tmp_path, tiny_dataset, capsys):
    from training.evaluate import main

    assert main(["--model", str(tmp_path), "--data", str(tiny_dataset)]) == 2
    assert "cannot be loaded" in capsys.readouterr().err


def test_classify_cli_reports_bad_files_and_classifies_the_rest(tiny_model_dir, tmp_path, capsys):
    from hematovision.cli.main import main

    good = tmp_path / "cells"
    good.mkdir()
    for i in range(3):
        (good / f"cell_{i}.png").write_bytes(encode(synthetic_cell(i, 40 + i)))
    (good / "fake.jpg").write_bytes(b"\x00" * 100)
    (good / "zero.png").write_bytes(b"")
    table = tmp_path / "out.csv"
    code = main(["classify", str(good), str(tmp_path / "missing.png"), "--model", str(tiny_model_dir),
                 "--csv", str(table)])  # fmt: skip
    assert code == 0
    rows = table.read_text().splitlines()
    header = "file,x_min,y_min,x_max,y_max,predicted_class,confidence,uncertain,not_blood_cell,unfamiliar,error,p_lymph"
    assert rows[0].startswith(header)
    assert len(rows) == 1 + 5
    errors = capsys.readouterr().err
    assert "missing.png: no such file" in errors and "empty" in errors and "not a recognised image" in errors
    assert "classified 3 of 5 images or cells in 5 files" in errors


def test_classify_cli_fails_only_when_nothing_could_be_done(tiny_model_dir, tmp_path, capsys):
    from hematovision.cli.main import main

    (tmp_path / "empty").mkdir()
    assert main(["classify", str(tmp_path / "empty"), "--model", str(tiny_model_dir)]) == 2
    (tmp_path / "bad.png").write_bytes(b"junk")
    assert main(["classify", str(tmp_path / "bad.png"), "--model", str(tiny_model_dir)]) == 1
    assert "no image files" in capsys.readouterr().err


def test_train_cli_refuses_missing_data(tmp_path, capsys):
    from training.train import main

    assert main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_classify_cli_field_mode_gives_a_row_per_cell(tiny_model_dir, tmp_path):
    from hematovision.cli.main import main
    from tests.test_smear import synthetic_smear

    smear, true_boxes = synthetic_smear(seed=1)
    (tmp_path / "smear.png").write_bytes(encode(smear))
    table = tmp_path / "cells.csv"
    assert main(["classify", str(tmp_path / "smear.png"), "--model", str(tiny_model_dir), "--csv", str(table)]) == 0
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == len(true_boxes)
    found = [CellBox(*(int(row[key]) for key in ("x_min", "y_min", "x_max", "y_max"))) for row in rows]
    # Each row's box, in the photo's own pixels, is one of the cells painted there.
    assert all(max(box.iou(truth) for truth in true_boxes) > 0.5 for box in found)
    assert main(["classify", str(tmp_path / "smear.png"), "--model", str(tiny_model_dir), "--mode", "single",
                 "--csv", str(table)]) == 0  # fmt: skip
    assert len(table.read_text().splitlines()) == 2


def test_a_cell_cut_by_the_frame_says_so(tiny_classifier):
    from hematovision.core.reading import CUT_BY_FRAME_NOTE
    from tests.test_smear import synthetic_smear

    smear, _ = synthetic_smear(seed=0)
    cells = tiny_classifier.classify([("cut.png", encode(smear[140:]))], mode="field")  # the top cell loses its top
    assert cells[0].box.top == 0 and cells[1].box.top > 0
    assert [CUT_BY_FRAME_NOTE in cell.notes for cell in cells] == [True, False]


def test_classify_cli_table_carries_each_cells_notes(tiny_model_dir, tmp_path):
    import csv

    from hematovision.cli.main import main
    from hematovision.core.reading import CUT_BY_FRAME_NOTE
    from tests.test_smear import synthetic_smear

    smear, _ = synthetic_smear(seed=0)
    (tmp_path / "cut.png").write_bytes(encode(smear[140:]))
    table = tmp_path / "cells.csv"
    assert main(["classify", str(tmp_path / "cut.png"), "--model", str(tiny_model_dir), "--csv", str(table)]) == 0
    rows = list(csv.DictReader(table.open()))
    assert [CUT_BY_FRAME_NOTE in row["notes"] for row in rows] == [True, False]
    assert all("whole field of view" in row["notes"] for row in rows)


def test_automatic_mode_classifies_a_wide_frame_without_white_cells_as_one_cell(tiny_classifier):
    from hematovision.core.reading import NO_CELL_FOUND_NOTE

    wide = encode(np.full((240, 320, 3), 230, np.uint8))
    [result] = tiny_classifier.classify([("wide.png", wide)], mode="auto")
    assert result.prediction is not None and result.box is None and NO_CELL_FOUND_NOTE in result.notes
    [result] = tiny_classifier.classify([("wide.png", wide)], mode="field")  # forced: says so, invents nothing
    assert result.prediction is None and "no white cell was found" in result.error


def test_evaluate_cli_scores_a_field_by_its_central_cell(tiny_model_dir, tmp_path, capsys):
    from tests.test_smear import synthetic_smear
    from training.evaluate import main

    (tmp_path / "photos" / "neutrophil").mkdir(parents=True)
    (tmp_path / "photos" / "neutrophil" / "field.png").write_bytes(encode(synthetic_smear(1)[0]))
    out = tmp_path / "report.json"
    assert main(["--model", str(tiny_model_dir), "--data", str(tmp_path / "photos"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "auto" and report["framing"]["field_central_cell"] == 1
    assert "1 scored by the white cell nearest the centre" in capsys.readouterr().out
    assert main(["--model", str(tiny_model_dir), "--data", str(tmp_path / "photos"), "--json", str(out),
                 "--mode", "single"]) == 0  # fmt: skip
    assert json.loads(out.read_text())["framing"]["single_cell"] == 1


def test_gaussian_blur_keeps_mean_and_softens_edges():
    from training.data import gaussian_blur

    image = np.zeros((32, 32, 3), np.float32)
    image[:, 16:] = 1.0
    sharp = gaussian_blur(image, sigma=np.float32(0.0)).numpy()
    np.testing.assert_allclose(sharp, image, atol=1e-6)
    soft = gaussian_blur(image, sigma=np.float32(2.0)).numpy()
    assert abs(soft.mean() - image.mean()) < 1e-3
    assert 0.2 < soft[10, 15, 0] < 0.5 and 0.5 < soft[10, 16, 0] < 0.8


def test_other_lab_colour_fades_dyes_and_dims_the_light():
    import dataclasses

    import tensorflow as tf

    from training.config import TrainConfig
    from training.data import other_lab_colour

    # A purple nucleus on warm PBC-like glass.
    image = np.empty((16, 16, 3), np.float32)
    image[:] = np.array([255, 228, 203]) / 255
    image[4:12, 4:12] = np.array([80, 40, 140]) / 255
    every_view = TrainConfig(other_lab=1.0)

    def views(config):
        return np.array(
            [other_lab_colour(tf.constant(image), tf.constant([i, 3], tf.int64), config) for i in range(30)]
        )

    # With the dyes and the tint held, the light only dims, equally in optical density: nothing brightens.
    dimmed = views(dataclasses.replace(every_view, other_lab_dye=1.0, other_lab_tint=0.0))
    assert (dimmed <= image + 1e-6).all() and (dimmed[:, 0, 0] < image[0, 0] - 0.02).any()
    # The dyes alone: fainter than PBC's in some views, stronger in others.
    nucleus = views(dataclasses.replace(every_view, other_lab_light=0.0, other_lab_tint=0.0))[:, 8, 8].mean(1)
    assert (nucleus > image[8, 8].mean() + 0.05).any() and (nucleus < image[8, 8].mean() - 0.02).any()
    seed = tf.constant([5, 3], tf.int64)
    np.testing.assert_array_equal(other_lab_colour(image, seed, every_view), other_lab_colour(image, seed, every_view))
    never = dataclasses.replace(every_view, other_lab=0.0)
    np.testing.assert_array_equal(other_lab_colour(tf.constant(image), seed, never), image)


def test_zoom_out_shows_the_cell_smaller_on_mirrored_smear():
    import dataclasses

    import tensorflow as tf

    from training.config import TrainConfig
    from training.data import augment

    # A dark disc of radius 20 on a pale, nowhere-black background; colour jitter all but off, to measure sizes.
    yy, xx = np.mgrid[:64, :64]
    image = np.full((64, 64, 3), 220, np.uint8)
    image[(yy - 32) ** 2 + (xx - 32) ** 2 < 20**2] = 60
    jitter_off = dict(zoom=0.0, shift=0.0, brightness=0.0, contrast=1e-3, saturation=1e-3, hue=0.0, blur=0.0)
    still = dataclasses.replace(TrainConfig(image_size=64), **jitter_off)
    disc_area = (image[..., 0] < 140).sum()

    def areas(config):
        views = [augment(tf.constant(image), tf.constant([i, 1], tf.int64), config).numpy() for i in range(40)]
        assert min(view.min() for view in views) > 40, "no black border may appear"
        return np.array([(view[..., 0] < 140).sum() for view in views])

    np.testing.assert_allclose(areas(still), disc_area, rtol=0.02)
    zoomed_out = areas(dataclasses.replace(still, zoom_out=0.4))
    # Half the views keep the disc's size; the others shrink it, to as little as 0.6 x 0.6 of its area.
    assert 10 <= (zoomed_out < 0.95 * disc_area).sum() <= 30
    assert zoomed_out.min() >= 0.6**2 * disc_area * 0.9 and zoomed_out.max() <= disc_area * 1.02


def test_same_seed_same_metrics(tiny_model_dir, tiny_dataset, tiny_other_lab, tmp_path, capsys):
    """Issue 2's reproducibility promise, checked on the tiny recipe: a second run with the same seed."""
    from tests.conftest import tiny_training_args
    from training.train import main

    assert main(tiny_training_args(tiny_dataset, tiny_other_lab, tmp_path)) == 0
    progress = capsys.readouterr().out
    assert "phase 1: caching backbone features of" in progress
    assert "fine_tune: epoch 1/1, the phase took" in progress
    first, second = load_evaluation(tiny_model_dir)["datasets"], load_evaluation(tmp_path)["datasets"]
    for name in first:
        for metric in ("accuracy", "macro_f1"):
            assert abs(first[name][metric] - second[name][metric]) <= 0.005, (name, metric)
    # Seeded, stateless augmentation: the runs saw the same views, so they trained alike.
    first_loss = [row["loss"] for row in load_history(tiny_model_dir)]
    assert [row["loss"] for row in load_history(tmp_path)] == pytest.approx(first_loss, rel=1e-3)


class Stopped(Exception):
    """Stands for a session limit or a reboot ending a training run."""


def test_a_stopped_run_resumes_to_the_same_model(tiny_dataset, tiny_other_lab, tmp_path, monkeypatch, capsys):
    """Stopped after its first of two fine-tuning epochs and resumed, a run ends with the model, history
    and scores of a run never stopped: the optimizer, the dropout seed, the weight average and the input
    pipeline's random streams all carry over."""
    import keras

    from tests.conftest import tiny_training_args
    from training import checkpoint
    from training.train import main

    def args(out):
        return [*tiny_training_args(tiny_dataset, tiny_other_lab, out), "--fine-tune-epochs", "2",
                "--average-last-epochs", "2"]  # fmt: skip

    assert main(args(tmp_path / "whole")) == 0

    save_then_stop = checkpoint.SaveEachEpoch.on_epoch_end

    def stop_after_saving(self, epoch, logs=None):
        save_then_stop(self, epoch, logs)
        raise Stopped

    monkeypatch.setattr(checkpoint.SaveEachEpoch, "on_epoch_end", stop_after_saving)
    with pytest.raises(Stopped):
        main(args(tmp_path / "stopped"))
    monkeypatch.undo()
    saved = tmp_path / "stopped" / checkpoint.CHECKPOINT_FILE
    assert saved.is_file() and not (tmp_path / "stopped" / paths.MODEL_FILE).exists()
    capsys.readouterr()

    assert main([*args(tmp_path / "stopped"), "--resume", "--seed", "5"]) == 2
    assert "seed: 1337 -> 5" in capsys.readouterr().err

    assert main([*args(tmp_path / "stopped"), "--resume"]) == 0
    assert "phase 2: resuming after epoch 1/2" in capsys.readouterr().out
    assert not saved.exists()
    whole, resumed = (keras.models.load_model(tmp_path / name / paths.MODEL_FILE) for name in ("whole", "stopped"))
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for key in ("loss", "val_loss", "val_accuracy"):
        assert [row[key] for row in load_history(tmp_path / "stopped")] == [
            row[key] for row in load_history(tmp_path / "whole")
        ], key
    assert load_evaluation(tmp_path / "stopped")["datasets"] == load_evaluation(tmp_path / "whole")["datasets"]


def test_ensemble_is_one_flat_model_averaging_its_members(tiny_model_dir, tiny_dataset, tiny_other_lab, tmp_path):
    """training.ensemble: a second tiny model (same split, another learning rate), averaged with the first."""
    from hematovision.core.predict import Classifier
    from hematovision.explain.gradcam import GradCam
    from tests.conftest import tiny_training_args
    from training.ensemble import main as ensemble_main
    from training.train import main as train_main

    # Not another seed: on class folders the seed also draws the split, and members must share one.
    second = tmp_path / "second"
    second_args = [*tiny_training_args(tiny_dataset, tiny_other_lab, second), "--fine-tune-learning-rate", "1e-3"]
    assert train_main(second_args) == 0
    out = tmp_path / "ensemble"
    args = ["--members", str(tiny_model_dir), str(second), "--data", str(tiny_dataset), "--out", str(out)]
    assert ensemble_main([*args, "--extra-data", str(tiny_other_lab)]) == 0

    members = [Classifier.load(tiny_model_dir), Classifier.load(second)]
    averaged = Classifier.load(out)
    batch = np.stack([members[0].model_input(path) for path in sorted(tiny_dataset.rglob("*.png"))[:6]])
    expected = np.mean([member.logits(batch) for member in members], axis=0)
    np.testing.assert_allclose(averaged.logits(batch), expected, atol=1e-4)
    assert averaged.model.get_layer("preprocess") is not None
    assert (
        averaged.model.get_layer(averaged.card.gradcam_layer).output.shape[-1]
        == 2 * (members[0].model.get_layer(members[0].card.gradcam_layer).output.shape[-1])
    )
    heat = GradCam(averaged.model, averaged.card.gradcam_layer, averaged.card.logits_layer)(batch[:2], [0, 1])
    assert heat.shape == (2, *batch.shape[1:3]) and heat.min() >= 0.0 and heat.max() <= 1.0

    card = averaged.card
    assert card.backbone["members"] == 2
    assert [member["folder"] for member in card.training["members"]] == [str(tiny_model_dir), str(second)]
    assert card.temperature > 0 and {"pbc_val", "pbc_test"} <= set(load_evaluation(out)["datasets"])
    history = load_history(out)
    assert {row["member"] for row in history} == {"seed 1337"}
    assert len(history) == len(load_history(tiny_model_dir)) + len(load_history(second))


def test_ensemble_cli_refuses_what_it_cannot_average(tiny_model_dir, tiny_dataset, tmp_path, capsys):
    from training.ensemble import main

    assert main(["--members", str(tiny_model_dir), "--data", str(tiny_dataset), "--out", str(tmp_path)]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["--members", str(tiny_model_dir), str(tmp_path / "absent"), "--out", str(tmp_path)]) == 2
    assert "model_card.json is missing" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    card = load_card(tiny_model_dir)
    card.classes = list(reversed(card.classes))
    write_json(other / "model_card.json", card.to_dict())
    assert main(["--members", str(tiny_model_dir), str(other), "--out", str(tmp_path)]) == 2
    assert "differ in classes" in capsys.readouterr().err
    card.classes.reverse()
    card.data["split"] = "class folders, stratified 75/10/15 split with seed 2"
    write_json(other / "model_card.json", card.to_dict())
    assert main(["--members", str(tiny_model_dir), str(other), "--out", str(tmp_path)]) == 2
    assert "different splits" in capsys.readouterr().err
    args = ["--members", str(tiny_model_dir), str(tiny_model_dir), "--data", str(tmp_path / "absent")]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_subtype_head_trains_alongside_and_is_not_saved(tmp_path, tiny_other_lab):
    from hematovision.core.predict import Classifier
    from tests.conftest import tiny_training_args
    from training.train import main

    data = write_subtype_manifest(tmp_path / "data")
    out = tmp_path / "model"
    assert main([*tiny_training_args(data, tiny_other_lab, out), "--subtype-loss-weight", "0.5"]) == 0

    assert load_card(out).training["subtypes"] == ["BNE", "LY", "PL", "SNE"]
    classifier = Classifier.load(out)
    assert classifier.model.output_shape == (None, len(TINY_CLASSES))
    assert not [layer.name for layer in classifier.model.layers if layer.name.startswith("subtype")]
    fine_tune_row = next(row for row in load_history(out) if row["phase"] == "fine_tune")
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "subtype_loss", "val_subtype_loss"} <= set(fine_tune_row)
    assert not [key for key in fine_tune_row if "probabilities" in key]


def test_attribute_head_trains_alongside_and_is_not_saved(tmp_path, tiny_other_lab):
    from hematovision.core.predict import Classifier
    from tests.conftest import tiny_training_args, write_attribute_manifest
    from training.train import main

    data = write_attribute_manifest(tmp_path / "data")
    out = tmp_path / "model"
    assert main([*tiny_training_args(data, tiny_other_lab, out), "--attribute-loss-weight", "0.5"]) == 0

    classifier = Classifier.load(out)
    assert classifier.model.output_shape == (None, len(TINY_CLASSES))
    assert not [layer.name for layer in classifier.model.layers if layer.name.startswith("attribute")]
    fine_tune_row = next(row for row in load_history(out) if row["phase"] == "fine_tune")
    assert {"loss", "val_accuracy", "attribute_loss", "val_attribute_loss"} <= set(fine_tune_row)
    # Mean cross-entropy over the attributes; uniform logits would give the mean log of their value counts.
    assert 0 < float(fine_tune_row["val_attribute_loss"]) < 3.0


def test_attribute_targets_lay_the_attributes_side_by_side(tmp_path):
    from hematovision.heads.morphology import ATTRIBUTES
    from tests.conftest import TINY_ATTRIBUTES
    from training.data import AttributeTargets
    from training.scoring import LabelledBatch

    paths_ = [tmp_path / name for name in ("neutrophil.png", "platelet.png")]
    batch = LabelledBatch(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]), paths_, [])
    neutrophil = TINY_ATTRIBUTES["neutrophil"]
    targets = AttributeTargets.of(batch, {paths_[0]: neutrophil})
    assert targets.known().tolist() == [1.0, 0.0]
    one_hot = targets.one_hot()
    assert one_hot.shape == (2, sum(len(values) for values in ATTRIBUTES.values()))
    assert one_hot[1].sum() == 0 and one_hot[0].sum() == len(ATTRIBUTES)
    start = 0
    for name, values in ATTRIBUTES.items():
        assert one_hot[0, start + values.index(neutrophil[name])] == 1
        start += len(values)


def test_grouped_cross_entropy_is_each_groups_softmax_loss_averaged():
    import tensorflow as tf

    from training.model import grouped_cross_entropy

    loss = grouped_cross_entropy([2, 3])
    uniform = loss(tf.constant([[1.0, 0, 0, 1, 0]]), tf.zeros((1, 5))).numpy()
    np.testing.assert_allclose(uniform, [(np.log(2) + np.log(3)) / 2], rtol=1e-6)
    sure_and_right = loss(tf.constant([[1.0, 0, 0, 1, 0]]), tf.constant([[20.0, 0, 0, 20, 0]])).numpy()
    assert sure_and_right[0] < 1e-6


def test_subtype_targets_weigh_images_without_a_subtype_zero(tmp_path):
    from training.data import SubtypeTargets
    from training.scoring import LabelledBatch

    paths_ = [tmp_path / name for name in ("a.png", "b.png", "crop.png")]
    batch = LabelledBatch(np.zeros((3, 4, 4, 3), np.uint8), np.array([0, 0, 1]), paths_, [])
    targets = SubtypeTargets.of(batch, {paths_[0]: "SNE", paths_[1]: "BNE"}, ["BNE", "SNE"])
    assert targets.index.tolist() == [1, 0, -1]
    assert targets.known().tolist() == [1.0, 1.0, 0.0]
    assert targets.one_hot().tolist() == [[0, 1], [1, 0], [0, 0]]


def test_history_names_do_not_depend_on_the_subtype_head():
    from training.train import single_output_names

    one_head = {"loss": 0.5, "accuracy": 0.9, "val_loss": 0.6, "val_accuracy": 0.8, "learning_rate": 1e-4}
    assert single_output_names(one_head) == {"loss": 0.5, "accuracy": 0.9, "val_loss": 0.6, "val_accuracy": 0.8}
    two_heads = {
        "loss": 0.9,  # class head + 0.5 x subtype head: not the class head's loss
        "probabilities_loss": 0.5,
        "probabilities_accuracy": 0.9,
        "subtype_probabilities_loss": 0.8,
        "val_loss": 1.0,
        "val_probabilities_loss": 0.6,
        "val_probabilities_accuracy": 0.8,
        "val_subtype_probabilities_loss": 0.8,
    }
    assert single_output_names(two_heads) == {
        "loss": 0.5,
        "accuracy": 0.9,
        "subtype_loss": 0.8,
        "val_loss": 0.6,
        "val_accuracy": 0.8,
        "val_subtype_loss": 0.8,
    }


def test_time_left_extrapolates_the_mean_epoch():
    from training.train import time_left

    assert time_left([60.0, 120.0], 14) == "epoch 2/14, about 18 min left"
    assert time_left([934.0], 14) == "epoch 1/14, about 202 min left"
    assert time_left([60.0] * 14, 14) == "epoch 14/14, the phase took 14 min"


def test_distributed_training_on_two_logical_cpus(tiny_dataset, tiny_other_lab, tmp_path):
    """--distribute runs MirroredStrategy; two logical CPU devices stand in for two GPUs."""
    import subprocess
    import sys

    out = tmp_path / "distributed"
    args = [*tiny_training_args(tiny_dataset, tiny_other_lab, out), "--distribute", "--cpu-devices", "2"]
    run = subprocess.run([sys.executable, "-m", "training.train", *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--distribute: 2 replicas" in run.stdout
    assert load_card(out).metrics["val_accuracy"] > 0.5


def test_evaluate_records_the_validation_split_under_the_pages_own_name(tiny_model_dir, tmp_path):
    import shutil

    from training.evaluate import main

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    data = write_subtype_manifest(tmp_path / "data")
    assert main(["--model", str(model), "--data", str(data), "--split", "val", "--record", "pbc_val"]) == 0
    evaluation = json.loads((model / paths.EVALUATION_FILE).read_text())
    manifest = (data / "pbc_manifest.csv").read_text().splitlines()[1:]
    assert evaluation["datasets"]["pbc_val"]["n"] == sum(row.endswith(",val") for row in manifest)
    assert "pbc_val" not in evaluation.get("descriptions", {})
    spread = evaluation["datasets"]["pbc_val"]["ece_if_calibrated"]
    assert 0 < spread["median"] <= spread["p95"]


def test_grey_views_keep_luminance_and_only_the_asked_share_lose_colour():
    import tensorflow as tf

    from training.data import grey_view

    image = tf.constant(np.random.default_rng(0).uniform(0, 1, (16, 16, 3)), tf.float32)
    views = np.stack([grey_view(image, tf.constant([i, 7], tf.int64), 0.3).numpy() for i in range(200)])
    grey = np.ptp(views, axis=-1).max(axis=(1, 2)) < 1e-6
    assert 0.2 < grey.mean() < 0.4
    np.testing.assert_allclose(views[grey][0, ..., 0], tf.image.rgb_to_grayscale(image).numpy()[..., 0], atol=1e-6)
    np.testing.assert_array_equal(views[~grey][0], image.numpy())
    assert not any(
        np.ptp(grey_view(image, tf.constant([i, 7], tf.int64), 0.0).numpy(), axis=-1).max() < 1e-6 for i in range(20)
    )


def test_red_cells_alone_train_towards_no_class_and_are_recorded(tmp_path, tiny_dataset, tiny_other_lab, capsys):
    from tests.conftest import tiny_training_args
    from training.train import main

    out = tmp_path / "model"
    assert main([*tiny_training_args(tiny_dataset, tiny_other_lab, out), "--red-cells", "12"]) == 0
    made = int(re.search(r"red cells alone: (\d+) views of 12", capsys.readouterr().out).group(1))
    assert 0 < made <= 12  # generated cells on plain glass: most lose their nucleus and nothing else is left
    assert load_card(out).training["config"]["red_cells"] == 12
    with_heads = [*tiny_training_args(tiny_dataset, tiny_other_lab, tmp_path / "other"), "--red-cells", "12"]
    assert main([*with_heads, "--subtype-loss-weight", "0.5"]) == 2
    assert "--red-cells takes no subtype or attribute head" in capsys.readouterr().err


def test_red_cell_views_join_the_batches_with_the_uniform_target_and_their_weight():
    from training.config import TrainConfig
    from training.data import training_dataset
    from training.scoring import LabelledBatch

    config = TrainConfig(batch_size=64, red_cell_weight=0.25, image_size=32)
    split = LabelledBatch(np.zeros((3, 32, 32, 3), np.uint8), np.array([0, 1, 2]), [], [])
    red_cells = np.full((2, 32, 32, 3), 200, np.uint8)
    _, targets, weights = next(iter(training_dataset(split, 4, config, np.ones(3, np.float32), red_cells=red_cells)))
    rows = list(zip(targets.numpy().tolist(), weights.numpy().tolist(), strict=True))
    assert [row for row in rows if max(row[0]) < 1] == [([0.25] * 4, 0.25)] * 2  # no class, their own weight
    labelled = [row for row in rows if max(row[0]) == 1]
    assert sorted(target.index(1.0) for target, _ in labelled) == [0, 1, 2] and {w for _, w in labelled} == {1.0}


def test_init_from_continues_an_earlier_run_without_phase_1(tmp_path, tiny_model_dir, tiny_dataset, tiny_other_lab):
    from tests.conftest import tiny_training_args
    from training.train import main

    out = tmp_path / "continued"
    args = [*tiny_training_args(tiny_dataset, tiny_other_lab, out), "--init-from", str(tiny_model_dir)]
    assert main([*args, "--fine-tune-learning-rate", "0"]) == 0
    assert {row["phase"] for row in load_history(out)} == {"fine_tune"}
    card = load_card(out)
    assert card.training["init_from"]["command"] == load_card(tiny_model_dir).training["command"]
    # At a learning rate of 0 the continued model is the earlier one, so its scores are the earlier run's.
    before, after = (load_evaluation(d)["datasets"]["pbc_val"]["accuracy"] for d in (tiny_model_dir, out))
    assert after == before


def test_init_from_refuses_a_model_of_other_classes_or_shape(
    tmp_path, tiny_model_dir, tiny_dataset, tiny_other_lab, capsys
):
    from tests.conftest import tiny_training_args
    from training.train import main

    data = write_class_folders(tmp_path / "data", 6, classes=TINY_CLASSES[:2])
    args = [*tiny_training_args(data, tiny_other_lab, tmp_path / "out"), "--init-from", str(tiny_model_dir)]
    assert main(args) == 2
    assert "has the classes" in capsys.readouterr().err
    wider = [*tiny_training_args(tiny_dataset, tiny_other_lab, tmp_path / "out"), "--init-from", str(tiny_model_dir)]
    assert main([*wider, "--alpha", "1.0"]) == 2
    assert "is another network: alpha 0.35 here 1.0" in capsys.readouterr().err


def test_recording_a_headline_set_keeps_the_cards_figures_in_step(tiny_model_dir, tmp_path):
    import shutil

    from training.evaluate import main

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    before = load_card(model).metrics
    data = write_subtype_manifest(tmp_path / "data")
    assert main(["--model", str(model), "--data", str(data), "--record", "lab_b"]) == 0
    assert load_card(model).metrics == before  # a set the card does not name leaves it alone
    stale = json.loads((model / paths.CARD_FILE).read_text())
    stale["metrics"].update(accuracy=0.0, n=0)  # as a card left behind by an earlier record would read
    write_json(model / paths.CARD_FILE, stale)
    assert main(["--model", str(model), "--data", str(data), "--record", "pbc_test"]) == 0
    card, test = load_card(model).metrics, load_evaluation(model)["datasets"]["pbc_test"]
    assert card["accuracy"] == round(test["accuracy"], 4) > 0 and card["n"] == test["n"] > 0
    assert {key for key in card if key.endswith("_accuracy")} == {key for key in before if key.endswith("_accuracy")}
