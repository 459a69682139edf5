"""Imitated camera set-ups, read end to end, on generated images and the tiny model."""

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from hematovision.core.artifacts import load_evaluation
from hematovision.core.datasets import LabelledImage
from tests.conftest import TINY_CLASSES, encode, synthetic_cell
from training.scoring import evaluate_files
from training.setups import SETUPS, Setup, imitate, main, restain, score_setups


def test_restain_changes_only_what_it_names():
    cell = synthetic_cell(1, seed=3)
    assert np.abs(restain(cell, Setup("same", "")).astype(int) - cell).max() <= 1
    redder = restain(cell, Setup("redder", "", eosin=1.6)).astype(int)
    bluer = restain(cell, Setup("bluer", "", haematoxylin=1.4, eosin=0.6)).astype(int)
    # Eosin absorbs green: more of it leaves the image less green, less of it more green.
    assert redder[..., 1].mean() < cell[..., 1].mean() < bluer[..., 1].mean()
    # Darker where there was dye, but white glass stays white.
    white = np.full((4, 4, 3), 255, np.uint8)
    assert restain(white, Setup("redder", "", eosin=1.6)).min() >= 254


def test_imitate_saves_the_set_up_s_file():
    field = np.zeros((90, 120, 3), np.uint8)
    field[30:60, 45:75] = 200  # a bright square in the middle third of the height
    for setup in SETUPS:
        saved = Image.open(io.BytesIO(imitate(field, setup)))
        assert saved.format == "JPEG" and saved.size == (setup.side, setup.side), setup.name
    # A tighter crop shows the same square larger in the frame.
    whole, tight = (
        np.asarray(Image.open(io.BytesIO(imitate(field, Setup("crop", "", crop=crop, side=90, quality=95)))))
        for crop in (1.0, 0.5)
    )
    assert (tight.mean(axis=-1) > 100).mean() == pytest.approx(4 * (whole.mean(axis=-1) > 100).mean(), rel=0.15)


def test_score_setups_reads_the_files_as_evaluate_does(tiny_classifier, tmp_path, monkeypatch):
    items = []
    for index in range(6):
        path = tmp_path / f"cell{index}.png"
        path.write_bytes(encode(synthetic_cell(index % 3, seed=700 + index)))
        items.append(LabelledImage(path, TINY_CLASSES[index % 3], "test"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    unchanged = Setup("unchanged", "", side=120, quality=100)
    reports = []

    def evaluated(*args, **kwargs):
        reports.append(evaluate_files(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr("training.setups.evaluate_files", evaluated)
    rows = score_setups(tiny_classifier, [*items, LabelledImage(broken, TINY_CLASSES[0], "test")], (unchanged,))
    assert len(rows) == 1 and rows[0]["n"] == 6  # the unreadable file is reported and left out
    # At the images' own size and top JPEG quality the set-up reads them as evaluate reads the originals.
    direct = evaluate_files(tiny_classifier, items, mode="auto")
    assert rows[0]["accuracy"] == pytest.approx(direct["accuracy"], abs=1 / 6 + 1e-9)
    # The lowest recall, recomputed from the confusion matrix of the imitated files over the classes present.
    matrix = np.asarray(reports[0]["confusion_matrix"])
    support = matrix.sum(axis=1)
    recalls = {name: matrix[i, i] / support[i] for i, name in enumerate(tiny_classifier.classes) if support[i]}
    assert rows[0]["lowest_recall"] == pytest.approx(min(recalls.values()))
    assert recalls[rows[0]["lowest_recall_class"]] == pytest.approx(min(recalls.values()))
    # The tiny model has no domain checks: the flag rates are unmeasured, not zero.
    assert tiny_classifier.novelty is None
    assert rows[0]["flagged_not_blood"] is None and rows[0]["flagged_unfamiliar"] is None
    assert score_setups(tiny_classifier, [LabelledImage(broken, TINY_CLASSES[0], "test")]) == []


def test_cli_records_test_figures_and_refuses_validation(tiny_model_dir, manifest_dataset, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    out = tmp_path / "setups.json"
    assert main(["--model", str(model), "--data", str(manifest_dataset), "--record", "--json", str(out)]) == 0
    recorded = load_evaluation(model)["setups"]
    assert recorded == json.loads(out.read_text())
    assert [row["setup"] for row in recorded["setups"]] == [setup.name for setup in SETUPS]
    assert all(row["n"] == 3 * 6 for row in recorded["setups"])
    assert "120 px camera" in capsys.readouterr().out
    assert main(["--model", str(model), "--data", str(manifest_dataset), "--split", "val", "--record"]) == 2
    assert "test-split figures only" in capsys.readouterr().err
    assert main(["--model", str(model), "--data", str(tmp_path / "nothing")]) == 2
