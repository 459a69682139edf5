"""The WBCAtt attribute heads: the pipeline CLI on a tiny model, the prediction path, the CSV, the shipped heads."""

import csv

import numpy as np
import pytest

from hematovision.core import paths
from hematovision.core.artifacts import load_card, load_evaluation
from hematovision.core.datasets import read_attribute_rows
from hematovision.core.predict import Classifier
from hematovision.heads.morphology import ANNOTATED_CLASSES, ATTRIBUTES, ATTRIBUTES_FILE, AttributeHeads
from tests.conftest import TINY_ATTRIBUTES, encode, shared_data_or_skip, synthetic_cell


@pytest.fixture(scope="module")
def tiny_with_attributes(tiny_attribute_model_dir):
    return Classifier.load(tiny_attribute_model_dir)


def test_pipeline_records_heads_card_and_test_scores(tiny_attribute_model_dir):
    card, evaluation = load_card(tiny_attribute_model_dir), load_evaluation(tiny_attribute_model_dir)
    recorded = card.attributes
    # The card lists every attribute with its values and the temperature fitted on val.
    assert recorded["values"] == {name: list(values) for name, values in ATTRIBUTES.items()}
    assert all(recorded["heads"][name]["temperature"] > 0 for name in ATTRIBUTES)
    scores = evaluation["attributes"]
    assert set(ATTRIBUTES) <= set(scores) and scores["split"] == "test"
    # Each tiny class has its own attribute set and the classes are easy: the test cells are called right.
    assert scores["mean_accuracy"] > 0.9 and scores["mean_macro_f1"] > 0.9
    assert sum(map(sum, scores["cell_size"]["confusion_matrix"])) == scores["cell_size"]["n"] == 8
    assert set(scores["consistency_check"]) == {"val", "test"}


def test_attributes_ride_only_on_annotated_classes(tiny_with_attributes):
    batch = np.stack([tiny_with_attributes.model_input(encode(synthetic_cell(i, 40 + i))) for i in range(3)])
    predictions = tiny_with_attributes.predictions(batch)
    for prediction in predictions:
        if prediction.label in ANNOTATED_CLASSES and not prediction.not_blood_cell:
            assert {name: value for name, (value, _) in prediction.attributes.items()} == TINY_ATTRIBUTES[
                prediction.label
            ]
            assert all(0 < confidence <= 1 for _, confidence in prediction.attributes.values())
        else:
            assert prediction.attributes == {} and prediction.contradictions == []
    assert any(p.attributes for p in predictions) and any(not p.attributes for p in predictions)


def test_a_folder_whose_heads_do_not_fit_its_features_is_refused(tiny_attribute_model_dir, tmp_path):
    import shutil

    from hematovision.core.artifacts import ArtifactError

    folder = tmp_path / "model"
    shutil.copytree(tiny_attribute_model_dir, folder)
    heads = AttributeHeads.load(folder / ATTRIBUTES_FILE)
    AttributeHeads("another_layer", heads.mean, heads.scale, heads.heads).save(folder / ATTRIBUTES_FILE)
    with pytest.raises(ArtifactError, match="another_layer"):
        Classifier.load(folder)


def test_heads_saved_before_the_centre_features_keep_reading_the_whole_map(tiny_attribute_model_dir, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_attribute_model_dir, folder)
    with np.load(folder / ATTRIBUTES_FILE) as stored:
        older = {key: stored[key] for key in stored.files if key != "pooling"}
    np.savez_compressed(folder / ATTRIBUTES_FILE, **older)
    whole_map, centre = np.zeros((1, 3)), np.ones((1, 3))
    assert Classifier.load(folder).attributes.pooling == "mean"
    assert Classifier.load(folder).attribute_features(whole_map, centre) is whole_map
    assert Classifier.load(tiny_attribute_model_dir).attribute_features(whole_map, centre) is centre


def test_csv_has_a_column_per_attribute(tiny_attribute_model_dir, tmp_path):
    from hematovision.cli.main import main

    folder = tmp_path / "cells"
    folder.mkdir()
    for index in range(3):
        (folder / f"cell_{index}.png").write_bytes(encode(synthetic_cell(index, 50 + index)))
    table = tmp_path / "out.csv"
    assert main(["classify", str(folder), "--model", str(tiny_attribute_model_dir), "--csv", str(table)]) == 0
    with table.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    for name in ATTRIBUTES:
        assert name in reader.fieldnames and f"{name}_confidence" in reader.fieldnames
    for row in rows:
        if row["predicted_class"] in ANNOTATED_CLASSES:
            assert all(row[name] in values for name, values in ATTRIBUTES.items())
            assert all(0 < float(row[f"{name}_confidence"]) <= 1 for name in ATTRIBUTES)
        else:
            assert all(row[name] == "" and row[f"{name}_confidence"] == "" for name in ATTRIBUTES)
    assert {row["predicted_class"] in ANNOTATED_CLASSES for row in rows} == {True, False}


def test_shipped_heads_load_and_describe_white_cells_only():
    shipped = Classifier.load(paths.SHIPPED_MODEL_DIR)
    assert shipped.attributes is not None and shipped.attributes.features_layer == shipped.card.features_layer
    batch = np.stack([synthetic_cell(i, i, shipped.card.input_size) for i in range(3)])
    assert shipped.attributes.pooling == "centre"
    _, _, centre = shipped.network_outputs(batch)
    assert set(shipped.attributes.probabilities(centre)) == set(ATTRIBUTES)
    for prediction in shipped.predictions(batch):
        called = prediction.label in ANNOTATED_CLASSES and not prediction.not_blood_cell
        assert bool(prediction.attributes) == called


@pytest.mark.shared
def test_shipped_heads_read_test_cells_like_the_annotators():
    data = shared_data_or_skip()
    rows = [
        row
        for row in read_attribute_rows(data / "pbc_manifest.csv", ATTRIBUTES)
        if row.split == "test" and row.label in ANNOTATED_CLASSES
    ]
    sample = sorted(rows, key=lambda row: str(row.path))[::20]
    shipped = Classifier.load(paths.SHIPPED_MODEL_DIR)
    _, _, centre = shipped.network_outputs(np.stack([shipped.model_input(row.path) for row in sample]))
    calls = shipped.attributes.predict(centre)
    agreement = np.mean(
        [
            [call[name][0] == row.attributes[name] for name in ATTRIBUTES]
            for call, row in zip(calls, sample, strict=True)
        ]
    )
    # The recorded test mean is measured on every test cell; a fixed sample of one in twenty stays near it.
    assert agreement > load_evaluation(paths.SHIPPED_MODEL_DIR)["attributes"]["mean_accuracy"] - 0.05


def test_attribute_heatmap_of_the_shipped_heads_is_the_closed_form_cam():
    """On a spatial features layer, Grad-CAM through a linear head on its average is the head's weights
    (over the scale) applied to the map at each position: the gradient path must agree with that."""
    import keras

    from hematovision.core.runtime import LITERT_FILE
    from hematovision.explain.gradcam import AttributeCam, normalise, score_weights, upsample
    from hematovision.explain.litert_gradcam import LiteRTGradCam

    shipped = Classifier.load(paths.SHIPPED_MODEL_DIR)
    cam = AttributeCam(shipped.model, shipped.attributes, shipped.card.gradcam_layer)
    assert cam.layer == shipped.card.features_layer
    image = shipped.model_input(encode(synthetic_cell(1, 3, size=360)))
    index = ATTRIBUTES["nucleus_shape"].index("segmented-bilobed")
    heat = cam(image, "nucleus_shape", index)
    assert heat.shape == (shipped.card.input_size,) * 2 and heat.min() >= 0 and heat.max() <= 1
    activations = keras.Model(shipped.model.inputs, shipped.model.get_layer(cam.layer).output)(
        image[None].astype("float32")
    )
    closed_form = np.maximum(np.asarray(activations)[0] @ score_weights(cam.heads, "nucleus_shape", index), 0)
    np.testing.assert_allclose(heat, normalise(upsample(closed_form, shipped.card.input_size)), atol=1e-3)
    # The same map read from the LiteRT export, without TensorFlow (what the app shows).
    lite = LiteRTGradCam(paths.SHIPPED_MODEL_DIR / LITERT_FILE).attribute_cam(
        shipped.attributes, shipped.card.features_layer
    )
    assert lite.layer == cam.layer
    np.testing.assert_allclose(lite(image, "nucleus_shape", index), heat, atol=1e-3)


def test_evaluate_reports_each_attribute_on_the_test_split(tiny_attribute_model_dir, tmp_path):
    import json

    from training.evaluate import main

    data = tiny_attribute_model_dir.parent / "data"
    arguments = ["--model", str(tiny_attribute_model_dir), "--data", str(data), "--json", str(tmp_path / "r.json")]
    assert main(arguments) == 0
    report = json.loads((tmp_path / "r.json").read_text())["attributes"]
    annotated_test = [
        row
        for row in read_attribute_rows(data / "pbc_manifest.csv", ATTRIBUTES)
        if row.split == "test" and row.label in ANNOTATED_CLASSES
    ]
    for name, values in ATTRIBUTES.items():
        assert report[name]["values"] == list(values) and report[name]["n"] == len(annotated_test)
        assert 0 <= report[name]["accuracy"] <= 1 and 0 <= report[name]["macro_f1"] <= 1
        assert np.asarray(report[name]["confusion_matrix"]).shape == (len(values), len(values))
    assert report["mean_accuracy"] == pytest.approx(np.mean([report[name]["accuracy"] for name in ATTRIBUTES]))


def test_another_layer_is_only_compared_on_val(tiny_attribute_model_dir, tmp_path, capsys):
    from training.attributes import main

    heads_before = (tiny_attribute_model_dir / ATTRIBUTES_FILE).read_bytes()
    card_before = (tiny_attribute_model_dir / paths.CARD_FILE).read_text()
    data = tiny_attribute_model_dir.parent / "data"
    arguments = ["--model", str(tiny_attribute_model_dir), "--data", str(data), "--layer", "out_relu"]
    assert main([*arguments, "--cache", str(tmp_path / "features.npz")]) == 0
    assert "val (out_relu): mean accuracy" in capsys.readouterr().out
    assert (tiny_attribute_model_dir / ATTRIBUTES_FILE).read_bytes() == heads_before
    assert (tiny_attribute_model_dir / paths.CARD_FILE).read_text() == card_before
