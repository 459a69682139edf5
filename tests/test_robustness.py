"""The simulated other-lab conditions, on generated images and the tiny model."""

import json
import shutil

import numpy as np
import pytest

from hematovision.core.artifacts import load_evaluation
from tests.conftest import synthetic_cell
from training.robustness import (
    CONDITIONS,
    blur,
    gamma,
    hue_shift,
    lower_resolution,
    main,
    saturation,
    score_conditions,
    smaller_cell,
)


def disc_image(size: int = 96) -> np.ndarray:
    """A dark purple disc of radius size/4 on a pale pink, nowhere-black background."""
    yy, xx = np.mgrid[:size, :size]
    image = np.full((size, size, 3), (236, 200, 205), np.uint8)
    image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2] = (90, 40, 140)
    return image[None]


def dark_area(batch: np.ndarray, within: float = 0.5) -> int:
    """Dark pixels within `within` of the half-side from the centre (mirrored copies lie further out)."""
    size = batch.shape[1]
    yy, xx = np.mgrid[:size, :size]
    central = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (within * size / 2) ** 2
    return int(((batch[0].mean(axis=-1) < 150) & central).sum())


def test_every_condition_keeps_the_batch_shape_and_type():
    batch = np.concatenate([disc_image(), disc_image()])
    for condition in CONDITIONS:
        changed = condition.transform(batch)
        assert changed.shape == batch.shape and changed.dtype == np.uint8, condition.name
    assert np.array_equal(CONDITIONS[0].transform(batch), batch)


def test_smaller_cell_shrinks_the_disc_without_a_dark_border():
    image = disc_image()
    for scale in (0.8, 0.6):
        smaller = smaller_cell(scale)(image)
        assert dark_area(smaller, within=0.7) == pytest.approx(dark_area(image, within=0.7) * scale**2, rel=0.1)
        # The frame is filled with mirrored smear, never with black: nothing darker than the image had.
        assert smaller.min() >= image.min()


def test_colour_conditions_change_what_they_name():
    image = disc_image()
    grey = saturation(0.0)(image)
    assert np.ptp(grey.astype(int), axis=-1).max() <= 1
    assert np.array_equal(saturation(1.0)(image), image)
    assert gamma(1.4)(image).mean() < image.mean() < gamma(0.7)(image).mean()
    there_and_back = hue_shift(-0.1)(hue_shift(0.1)(image))
    assert np.abs(there_and_back.astype(int) - image).max() <= 6
    # Purple turned a tenth of the wheel on becomes redder (more red than blue).
    turned = hue_shift(0.1)(image)[0, 48, 48].astype(int)
    assert turned[0] > turned[2]


def test_blur_and_lower_resolution_soften_the_edge():
    image = disc_image()
    edge = image[0, 48, 20:28].astype(int)
    for transform in (blur(2.0), lower_resolution(0.25)):
        softened = transform(image)[0, 48, 20:28].astype(int)
        assert np.abs(np.diff(softened, axis=0)).max() < np.abs(np.diff(edge, axis=0)).max()


def test_score_conditions_matches_the_classifier_unchanged(tiny_classifier):
    size = tiny_classifier.card.input_size
    images = np.stack([synthetic_cell(i % 3, seed=500 + i, size=size) for i in range(12)])
    labels = np.array([i % 3 for i in range(12)])
    rows = score_conditions(tiny_classifier, images, labels, conditions=CONDITIONS[:2], batch_size=5)
    plain = tiny_classifier.probabilities(images.astype(np.float32)).argmax(axis=1)
    assert rows[0]["condition"] == "as recorded"
    assert rows[0]["accuracy"] == pytest.approx(np.mean(plain == labels))
    # The lowest recall over the classes present, recomputed from the predictions.
    recalls = {tiny_classifier.classes[c]: np.mean(plain[labels == c] == c) for c in np.unique(labels)}
    assert rows[0]["lowest_recall"] == pytest.approx(min(recalls.values()))
    assert recalls[rows[0]["lowest_recall_class"]] == pytest.approx(min(recalls.values()))


def test_cli_records_test_figures_in_the_artifact_folder(tiny_model_dir, manifest_dataset, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    out = tmp_path / "robustness.json"
    assert main(["--model", str(model), "--data", str(manifest_dataset), "--record", "--json", str(out)]) == 0
    recorded = load_evaluation(model)["robustness"]
    assert recorded == json.loads(out.read_text())
    assert recorded["n"] == 3 * 6 and len(recorded["conditions"]) == len(CONDITIONS)
    assert "cell at 0.6 size" in capsys.readouterr().out


def test_cli_refuses_to_record_validation_figures_and_missing_data(tiny_model_dir, manifest_dataset, tmp_path, capsys):
    assert main(["--model", str(tiny_model_dir), "--data", str(manifest_dataset), "--split", "val", "--record"]) == 2
    assert "test-split figures only" in capsys.readouterr().err
    assert main(["--model", str(tiny_model_dir), "--data", str(tmp_path / "nothing")]) == 2
    assert "no pbc_manifest.csv" in capsys.readouterr().err
