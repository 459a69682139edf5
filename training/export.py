"""Export an artifact folder's Keras model for LiteRT, and check the export against it on real images.

    python -m training.export --model models [--data ../shared/data]

Writes ``model.tflite`` beside ``model.keras``: the same network with two outputs, the pooled
activations of the card's features layer and the logits, so that classification and the domain
checks need no TensorFlow at serving time. Then both run on the same images (PBC test images when
``--data`` holds the manifest, else generated cells) and the largest difference in calibrated
probability is written into the card (``inference.litert``) with the command and the image count.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hematovision.core import paths
from hematovision.core.artifacts import ArtifactError, write_json
from hematovision.core.datasets import find_manifest, read_manifest
from hematovision.core.predict import Classifier
from hematovision.core.runtime import LITERT_FILE, OUTPUTS, LiteRTForward, keras_forward, network_outputs_model
from hematovision.heads.metrics import softmax
from training.data import load_split

#: Largest calibrated-probability difference accepted between the export and the Keras model.
TOLERANCE = 1e-3
CHECK_IMAGES = 256


def export_litert(model, features_layer: str, logits_layer: str) -> bytes:
    """The network as a LiteRT flatbuffer whose one signature returns output_0, output_1, output_2 (OUTPUTS).

    ``from_keras_model`` embeds the weights; a concrete function of the Keras 3 model converted on its own
    left them out (a 0.4 MB file that gave NaN), which the comparison below would catch.
    """
    import tensorflow as tf

    outputs = network_outputs_model(model, features_layer, logits_layer)
    return tf.lite.TFLiteConverter.from_keras_model(outputs).convert()


def check_images(data: Path | None, classes: list[str], size: int) -> tuple[np.ndarray, str]:
    """Real test images where the manifest is at hand, else generated cells (still a real comparison)."""
    manifest = find_manifest(data) if data and data.is_dir() else None
    if manifest is not None:
        items = [item for item in read_manifest(manifest) if item.split == "test"]
        count = min(len(items), CHECK_IMAGES)
        chosen = [items[i] for i in np.random.default_rng(0).choice(len(items), count, replace=False)]
        return load_split(chosen, classes, size).images, f"{count} test images of {manifest.name}"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (32, size, size, 3), dtype=np.uint8), "32 random-noise images (no data folder)"


def export_and_check(model_dir: Path, data: Path | None, command: str) -> dict:
    """Write model_dir/model.tflite from its Keras model, compare the two, record the comparison in the card."""
    keras_classifier = Classifier.load(model_dir, runtime="keras")
    card = keras_classifier.card
    started = time.perf_counter()
    flatbuffer = export_litert(keras_classifier.model, card.features_layer, card.logits_layer)
    (model_dir / LITERT_FILE).write_bytes(flatbuffer)
    seconds = time.perf_counter() - started

    images, described = check_images(data, card.classes, card.input_size)
    exported = LiteRTForward(model_dir / LITERT_FILE)
    reference = keras_forward(keras_classifier.model, card.features_layer, card.logits_layer, card.input_size)
    (lite_features, lite_logits, lite_centre), (keras_features, keras_logits, keras_centre) = (
        exported(images),
        reference(images),
    )
    probability_difference = float(
        np.abs(softmax(lite_logits, card.temperature) - softmax(keras_logits, card.temperature)).max()
    )
    feature_difference = max(
        float(np.abs(lite - keras).max() / (np.abs(keras).max() + 1e-12))
        for lite, keras in ((lite_features, keras_features), (lite_centre, keras_centre))
    )
    record = {
        "file": LITERT_FILE,
        "features_layer": card.features_layer,
        "outputs": list(OUTPUTS),
        "checked_on": described,
        "max_probability_difference": probability_difference,
        "max_relative_feature_difference": feature_difference,
        "class_flips": int((lite_logits.argmax(1) != keras_logits.argmax(1)).sum()),
        "megabytes": round(len(flatbuffer) / 1e6, 2),
        "export_seconds": round(seconds, 1),
        "command": command,
    }
    card.inference["litert"] = record
    write_json(model_dir / paths.CARD_FILE, card.to_dict())
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR, help="artifact folder")
    parser.add_argument("--data", type=Path, default=paths.SHARED_DATA_DIR, help="folder with pbc_manifest.csv")
    args = parser.parse_args(argv)
    command = "python -m training.export " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        record = export_and_check(args.model, args.data, command)
    except ArtifactError as exc:
        print(f"error: the model cannot be loaded: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.model / LITERT_FILE} ({record['megabytes']} MB) in {record['export_seconds']} s; on "
        f"{record['checked_on']}: largest probability difference {record['max_probability_difference']:.2e}, "
        f"{record['class_flips']} class flips"
    )
    if record["max_probability_difference"] > TOLERANCE or record["class_flips"]:
        print(f"error: the export differs from the Keras model by more than {TOLERANCE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
