"""The LiteRT export: the same outputs as the Keras model, and classification without TensorFlow."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from hematovision.core.runtime import LITERT_FILE
from tests.conftest import synthetic_cell


def test_export_gives_the_keras_probabilities_and_features(exported_model_dir):
    from hematovision.core.predict import Classifier

    lite = Classifier.load(exported_model_dir)
    reference = Classifier.load(exported_model_dir, runtime="keras")
    assert lite.runtime == "litert" and reference.runtime == "keras"
    images = np.stack([synthetic_cell(i % 3, i, lite.card.input_size) for i in range(21)])  # not a multiple of 16
    np.testing.assert_allclose(lite.probabilities(images), reference.probabilities(images), atol=1e-4)
    for lite_output, keras_output in zip(lite.network_outputs(images), reference.network_outputs(images), strict=True):
        np.testing.assert_allclose(lite_output, keras_output, rtol=1e-3, atol=1e-3)
    record = lite.card.inference["litert"]
    assert record["max_probability_difference"] < 1e-3 and record["class_flips"] == 0


def test_an_export_for_another_features_layer_is_not_used(exported_model_dir, tmp_path):
    import json

    from hematovision.core.predict import Classifier

    folder = tmp_path / "model"
    shutil.copytree(exported_model_dir, folder)
    card = json.loads((folder / "model_card.json").read_text())
    card["features_layer"] = card["logits_layer"]
    (folder / "model_card.json").write_text(json.dumps(card))
    assert Classifier.load(folder).runtime == "keras"


def test_a_two_output_export_from_before_the_centre_features_is_left_to_keras(exported_model_dir, tmp_path):
    import json

    from hematovision.core.predict import Classifier

    folder = tmp_path / "model"
    shutil.copytree(exported_model_dir, folder)
    card = json.loads((folder / "model_card.json").read_text())
    del card["inference"]["litert"]["outputs"]
    (folder / "model_card.json").write_text(json.dumps(card))
    classifier = Classifier.load(folder)
    assert classifier.runtime == "keras" and len(classifier.network_outputs(np.zeros((1, 96, 96, 3), np.uint8))) == 3


def test_centre_features_average_the_middle_of_the_map():
    import keras

    from hematovision.core.runtime import centre_cropping, network_outputs_model

    assert [centre_cropping(side) for side in (14, 7, 3, 2, 1)] == [4, 2, 1, 0, 0]
    image = keras.Input((14, 14, 2))
    model = keras.Model(image, keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(image)))
    maps = np.random.default_rng(0).random((2, 14, 14, 2)).astype(np.float32)
    features, logits, centre = network_outputs_model(model, model.layers[0].name, "logits")([maps])
    np.testing.assert_allclose(features, maps.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(centre, maps[:, 4:10, 4:10].mean(axis=(1, 2)), rtol=1e-5)
    assert logits.shape == (2, 3)


def test_classifying_and_the_default_map_never_import_tensorflow(exported_model_dir):
    script = (
        "import sys, numpy as np\n"
        "from hematovision.core.predict import Classifier\n"
        "from hematovision.explain.litert_gradcam import LiteRTGradCam\n"
        f"folder = __import__('pathlib').Path({str(exported_model_dir)!r})\n"
        "c = Classifier.load(folder)\n"
        "images = np.zeros((2, c.card.input_size, c.card.input_size, 3), np.uint8)\n"
        "c.probabilities(images)\n"
        "maps = LiteRTGradCam(folder / 'model.tflite')(images, [0, 1])\n"
        "print('tensorflow' in sys.modules, c.runtime, maps.shape == (2, c.card.input_size, c.card.input_size))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "litert", "True"]
    assert (exported_model_dir / LITERT_FILE).is_file()


def test_batched_litert_calls_give_the_outputs_of_one_image_at_a_time(exported_model_dir):
    from hematovision.core.artifacts import load_card
    from hematovision.core.runtime import LiteRTForward

    size = load_card(exported_model_dir).input_size
    images = np.stack([synthetic_cell(i % 3, i, size) for i in range(11)])  # two full batches of 4, then 3 alone
    one_at_a_time = LiteRTForward(exported_model_dir / LITERT_FILE)(images)
    batched = LiteRTForward(exported_model_dir / LITERT_FILE, batch=4)
    for single, grouped in zip(one_at_a_time, batched(images), strict=True):
        np.testing.assert_array_equal(single, grouped)
    assert sorted(batched._interpreters) == [1, 4]  # one interpreter per size, not one per call
    with pytest.raises(ValueError):
        LiteRTForward(exported_model_dir / LITERT_FILE, batch=0)


def test_a_missing_litert_is_said_not_silently_replaced_by_keras(exported_model_dir, monkeypatch, caplog):
    from hematovision.core.artifacts import ArtifactError
    from hematovision.core.predict import Classifier

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # import raises ImportError, as when not installed
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with caplog.at_level("WARNING", logger="hematovision.core.predict"):
        assert Classifier.load(exported_model_dir).runtime == "keras"
    assert "LiteRT" in caplog.text and "Keras instead" in caplog.text
    with pytest.raises(ArtifactError, match="LiteRT"):
        Classifier.load(exported_model_dir, runtime="litert")


def test_litert_asked_for_without_an_export_is_an_error(exported_model_dir, tmp_path):
    from hematovision.core.artifacts import ArtifactError
    from hematovision.core.predict import Classifier

    folder = tmp_path / "model"
    shutil.copytree(exported_model_dir, folder)
    (folder / LITERT_FILE).unlink()
    assert Classifier.load(folder).runtime == "keras"  # "auto": nothing to say, there is no export to use
    with pytest.raises(ArtifactError, match=r"no model\.tflite"):
        Classifier.load(folder, runtime="litert")
    with pytest.raises(ValueError):
        Classifier.load(folder, runtime="tflite")


def test_loading_the_keras_model_leaves_the_environment_alone(tiny_model_dir, monkeypatch):
    import os

    from hematovision.core.predict import Classifier

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    Classifier.load(tiny_model_dir, runtime="keras")
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ


def test_the_command_line_quietens_tensorflow_before_importing_it():
    code = (
        "import os, runpy, sys; sys.argv = ['hematovision', '--help']\n"
        "try:\n    runpy.run_module('hematovision', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('level', os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    )
    env = {key: value for key, value in __import__("os").environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "level 2" in run.stdout
