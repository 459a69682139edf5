"""The LiteRT export: the same outputs as the Keras model, and classification without TensorFlow."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from hematovision.runtime import LITERT_FILE
from tests.conftest import synthetic_cell

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def exported_dir(tiny_model_dir, tmp_path_factory):
    from training.export import main

    folder = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(tiny_model_dir, folder)
    assert main(["--model", str(folder), "--data", str(folder / "no-data-here")]) == 0
    return folder


def test_export_gives_the_keras_probabilities_and_features(exported_dir):
    from hematovision.predict import Classifier

    lite = Classifier.load(exported_dir)
    reference = Classifier.load(exported_dir, runtime="keras")
    assert lite.runtime == "litert" and reference.runtime == "keras"
    images = np.stack([synthetic_cell(i % 3, i, lite.card.input_size) for i in range(21)])  # not a multiple of 16
    np.testing.assert_allclose(lite.probabilities(images), reference.probabilities(images), atol=1e-4)
    lite_features, _ = lite.features_and_logits(images)
    keras_features, _ = reference.features_and_logits(images)
    np.testing.assert_allclose(lite_features, keras_features, rtol=1e-3, atol=1e-3)
    record = lite.card.inference["litert"]
    assert record["max_probability_difference"] < 1e-3 and record["class_flips"] == 0


def test_an_export_for_another_features_layer_is_not_used(exported_dir, tmp_path):
    import json

    from hematovision.predict import Classifier

    folder = tmp_path / "model"
    shutil.copytree(exported_dir, folder)
    card = json.loads((folder / "model_card.json").read_text())
    card["features_layer"] = card["logits_layer"]
    (folder / "model_card.json").write_text(json.dumps(card))
    assert Classifier.load(folder).runtime == "keras"


def test_classifying_with_the_export_never_imports_tensorflow(exported_dir):
    script = (
        "import sys, numpy as np\n"
        "from hematovision.predict import Classifier\n"
        f"c = Classifier.load(__import__('pathlib').Path({str(exported_dir)!r}))\n"
        "c.probabilities(np.zeros((2, c.card.input_size, c.card.input_size, 3), np.uint8))\n"
        "print('tensorflow' in sys.modules, c.runtime)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "litert"]
    assert (exported_dir / LITERT_FILE).is_file()
