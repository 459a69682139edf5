"""The faithfulness CLI on the tiny model: what it records, and that it keeps the rest of evaluation.json."""

import json

import pytest

from hematovision.core import paths
from hematovision.explain.faithfulness import BASELINES
from hematovision.explain.saliency import DEFAULT_METHOD
from tests.conftest import write_subtype_manifest
from training.saliency_eval import main, meets_targets, sample_test_split


def test_records_every_method_both_baselines_and_the_sample(tiny_saliency_model_dir, tiny_model_dir):
    evaluation = json.loads((tiny_saliency_model_dir / paths.EVALUATION_FILE).read_text())
    before = json.loads((tiny_model_dir / paths.EVALUATION_FILE).read_text())
    assert {key: evaluation[key] for key in before} == before  # everything else kept
    record = evaluation["saliency"]
    assert record["complete"] is True and record["n"] == record["n_requested"] == 3
    assert len(record["images"]) == 3 and all(name.endswith(".png") for name in record["images"])
    assert list(record["methods"]) == ["Grad-CAM", "LayerCAM", "random map", "centred blob"]
    for name in ("Grad-CAM", "LayerCAM"):
        figures = record["methods"][name]
        assert 0.0 <= figures["deletion_auc"] <= 1.0 and 0.0 <= figures["insertion_auc"] <= 1.0
        assert figures["seconds_per_image"] > 0 and figures["timed_images"] == 2
        assert set(figures["beats"]) == {"random map", "centred blob"}
        sanity = record["sanity"]["methods"][name]
        assert sanity["rule_layer"] == "block_16_expand" and "logits" in sanity["mean_abs_spearman"]
    assert record["methods"]["random map"]["baseline"] is True
    # The verdict on the default method, recomputed from the figures recorded beside it.
    fast = record["methods"]["Grad-CAM"]
    for baseline in BASELINES:
        other = record["methods"][baseline]
        assert fast["beats"][baseline] == {
            "deletion": fast["deletion_auc"] < other["deletion_auc"],
            "insertion": fast["insertion_auc"] > other["insertion_auc"],
            "road": fast["road_gap"] > other["road_gap"],
        }
    expected = all(all(fast["beats"][name].values()) for name in BASELINES)
    assert meets_targets(record, "Grad-CAM") is (expected and record["sanity"]["methods"]["Grad-CAM"]["passes"])
    assert record["default_method"] == DEFAULT_METHOD
    assert record["default_meets_targets"] == meets_targets(record, DEFAULT_METHOD)  # None where not measured


def test_the_default_meets_its_targets_only_beating_both_baselines_on_every_figure_and_passing_sanity():
    won = {"deletion": True, "insertion": True, "road": True}
    record = {
        "methods": {"Grad-CAM": {"beats": {"random map": dict(won), "centred blob": dict(won)}}},
        "sanity": {"methods": {"Grad-CAM": {"passes": True}}},
    }
    assert meets_targets(record, "Grad-CAM") is True
    record["methods"]["Grad-CAM"]["beats"]["centred blob"]["road"] = False
    assert meets_targets(record, "Grad-CAM") is False
    record["methods"]["Grad-CAM"]["beats"]["centred blob"]["road"] = True
    record["sanity"]["methods"]["Grad-CAM"]["passes"] = False
    assert meets_targets(record, "Grad-CAM") is False
    assert meets_targets(record, "LayerCAM") is None  # not measured: no verdict


def test_the_sample_is_fixed_by_its_seed(tmp_path):
    data = write_subtype_manifest(tmp_path)
    first = sample_test_split(data, 4, seed=1)
    assert first == sample_test_split(data, 4, seed=1) and first != sample_test_split(data, 4, seed=2)
    assert len(set(first)) == 4 and first != sorted(first, key=str)  # drawn order: a partial run covers every class


def test_unknown_method_or_missing_data_is_refused(tmp_path, capsys):
    assert main(["--data", str(tmp_path), "--methods", "Magic"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["--data", str(tmp_path)]) == 2
    assert "no pbc_manifest.csv" in capsys.readouterr().err


def test_saliency_is_scored_on_the_networks_own_probabilities(tiny_classifier):
    import numpy as np

    from hematovision.heads.metrics import softmax
    from tests.conftest import TINY_SIZE, synthetic_cell

    batch = np.stack([synthetic_cell(i, 70 + i, TINY_SIZE) for i in range(3)])
    own = tiny_classifier.network_probabilities(batch)
    np.testing.assert_allclose(own, softmax(tiny_classifier.logits(batch), tiny_classifier.card.temperature))
    # The distance-grown temperature changes how sure, never which class.
    np.testing.assert_array_equal(own.argmax(axis=1), tiny_classifier.probabilities(batch).argmax(axis=1))


def test_add_scores_new_methods_on_the_recorded_sample_and_keeps_the_rest(tmp_path, tiny_saliency_model_dir):
    import shutil

    from hematovision.explain.saliency import FINE_METHOD

    model = tmp_path / "model"
    shutil.copytree(tiny_saliency_model_dir, model)
    before = json.loads((model / paths.EVALUATION_FILE).read_text())["saliency"]
    data = write_subtype_manifest(tmp_path / "data")
    arguments = ["--model", str(model), "--data", str(data), "--n", "3", "--sanity-n", "2", "--methods", FINE_METHOD]
    assert main([*arguments, "--seed", "1", "--add"]) == 2  # another sample: refused, nothing written
    assert json.loads((model / paths.EVALUATION_FILE).read_text())["saliency"] == before
    assert main([*arguments, "--add"]) == 0
    after = json.loads((model / paths.EVALUATION_FILE).read_text())["saliency"]
    assert list(after["methods"]) == ["Grad-CAM", "LayerCAM", FINE_METHOD, "random map", "centred blob"]
    for name in ("Grad-CAM", "LayerCAM", "random map", "centred blob"):
        assert after["methods"][name] == before["methods"][name]
    assert after["images"] == before["images"] and after["n"] == before["n"]
    added = after["methods"][FINE_METHOD]
    assert added["n"] == 3 and set(added["beats"]) == set(BASELINES)
    assert added["beats"]["centred blob"]["deletion"] == (
        added["deletion_auc"] < before["methods"]["centred blob"]["deletion_auc"]
    )
    assert set(after["sanity"]["methods"]) == {"Grad-CAM", "LayerCAM", FINE_METHOD}
    assert after["sanity"]["methods"]["Grad-CAM"] == before["sanity"]["methods"]["Grad-CAM"]
    assert after["default_method"] == DEFAULT_METHOD
    assert after["default_meets_targets"] == meets_targets(after, DEFAULT_METHOD)


def test_a_stopped_run_continues_from_its_checkpoint_to_the_same_record(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    import training.saliency_eval as cli
    from hematovision.explain import faithfulness

    data = write_subtype_manifest(tmp_path / "data")
    arguments = ["--data", str(data), "--n", "4", "--sanity-n", "2", "--save-every", "2", "--methods", "Grad-CAM"]
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    for folder in (whole, stopped):
        shutil.copytree(tiny_model_dir, folder)
    assert main(["--model", str(whole), *arguments]) == 0

    scored = []
    real_score_map = faithfulness.score_map

    def score_map_then_stop(*args, **kwargs):
        if len(scored) == 6:  # 2 images x (1 method + 2 baselines): the checkpoint holds them, then the run dies
            raise KeyboardInterrupt
        scored.append(1)
        return real_score_map(*args, **kwargs)

    checkpoint = tmp_path / "scores.pickle"
    monkeypatch.setattr(cli.fm, "score_map", score_map_then_stop)
    with pytest.raises(KeyboardInterrupt):
        main(["--model", str(stopped), *arguments, "--checkpoint", str(checkpoint)])
    assert checkpoint.is_file()
    scored.clear()

    def counted_score_map(*args, **kwargs):
        scored.append(1)
        return real_score_map(*args, **kwargs)

    monkeypatch.setattr(cli.fm, "score_map", counted_score_map)
    assert main(["--model", str(stopped), *arguments, "--checkpoint", str(checkpoint)]) == 0
    assert len(scored) == 6  # only the last 2 images were scored again

    def figures(folder):
        record = json.loads((folder / paths.EVALUATION_FILE).read_text())["saliency"]
        for method in record["methods"].values():
            method.pop("seconds_per_image", None)
        return record

    assert figures(stopped) == figures(whole)
    other = [*arguments[:-1], "Grad-CAM,LayerCAM"]  # another run's options: its checkpoint is refused
    assert main(["--model", str(stopped), *other, "--checkpoint", str(checkpoint)]) == 2
