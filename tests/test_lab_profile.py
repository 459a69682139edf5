"""Lab profiles: a few labelled cells of a lab correct the model for it, measured by leave-one-out."""

from __future__ import annotations

import re

import numpy as np
import pytest

from hematovision.heads.lab_profile import LabProfile, ProfileError, build_profile
from hematovision.heads.metrics import softmax
from tests.conftest import TINY_CLASSES, write_class_folders

CLASSES = ["a", "b", "c", "d"]


def lab_examples(seed: int, per_class: int = 6):
    """Features that separate classes a-c, and a model that confuses a with b in this lab."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], per_class)
    features = rng.normal(0, 1, (len(labels), 12))
    features[np.arange(len(labels)), labels] += 4.0
    logits = np.zeros((len(labels), 4))
    logits[:, 1] = 3.0  # the model calls everything b
    logits[labels == 2, 2] = 6.0
    return features, softmax(logits), labels


def test_a_profile_corrects_what_the_lab_shows_and_reports_leave_one_out():
    features, probabilities, labels = lab_examples(0)
    profile = build_profile(features, probabilities, labels, CLASSES, "model-1")
    assert profile.leave_one_out["without_profile"] == pytest.approx(2 / 3)
    assert profile.leave_one_out["accuracy"] > 0.9
    held_features, held_probabilities, held_labels = lab_examples(1)
    assert (profile.adjust(held_features, held_probabilities).argmax(1) == held_labels).mean() > 0.9
    assert profile.untouched_classes() == ["d"]
    assert np.all(profile.weights[:, 3] == 0) and profile.bias[3] == 0


def test_round_trip_size_and_refusals(tmp_path):
    features, probabilities, labels = lab_examples(0)
    profile = build_profile(features, probabilities, labels, CLASSES, "model-1")
    path = tmp_path / "lab.npz"
    profile.save(path)
    assert path.stat().st_size < 1_000_000
    loaded = LabProfile.load(path)
    np.testing.assert_allclose(
        loaded.adjust(features, probabilities), profile.adjust(features, probabilities), atol=1e-5
    )
    assert loaded.counts == {"a": 6, "b": 6, "c": 6} and loaded.leave_one_out == profile.leave_one_out
    loaded.check_model("model-1", CLASSES)
    with pytest.raises(ProfileError, match="made for another model"):
        loaded.check_model("model-2", CLASSES)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ProfileError, match="not a readable lab profile"):
        LabProfile.load(damaged)
    with pytest.raises(ProfileError, match="cannot read"):
        LabProfile.load(tmp_path / "missing.npz")


def test_too_few_examples_or_one_class_are_refused():
    features, probabilities, labels = lab_examples(0, per_class=2)
    with pytest.raises(ProfileError, match=r"too few: a \(2\), b \(2\), c \(2\)"):
        build_profile(features, probabilities, labels, CLASSES, "m")
    features, probabilities, labels = lab_examples(0)
    only_a = labels == 0
    with pytest.raises(ProfileError, match="at least two classes"):
        build_profile(features[only_a], probabilities[only_a], labels[only_a], CLASSES, "m")


def test_adapt_classify_and_evaluate_with_a_profile(tiny_model_dir, tmp_path, capsys):
    from hematovision.cli.main import main
    from training.evaluate import main as evaluate

    examples = write_class_folders(tmp_path / "examples", per_class=4, classes=[c.upper() for c in TINY_CLASSES])
    (examples / "LYMPHOCYTE" / "broken.png").write_bytes(b"not an image")
    profile = tmp_path / "lab.npz"
    assert main(["adapt", str(examples), "--out", str(profile), "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr()
    assert "leave-one-out" in out.out and "broken.png" in out.err and profile.is_file()
    decision = LabProfile.load(profile).decision
    assert f"lab profile {decision.reason}" in out.out and re.match(r"(not )?used: ", decision.reason)
    assert main(["classify", str(examples / "LYMPHOCYTE"), "--model", str(tiny_model_dir), "--lab", str(profile)]) == 0
    assert f"lab profile {decision.reason}" in capsys.readouterr().err
    assert evaluate(["--model", str(tiny_model_dir), "--data", str(examples), "--lab", str(profile)]) == 0

    (examples / "monocytes").mkdir()
    (examples / "monocytes" / "m.png").write_bytes((examples / "LYMPHOCYTE" / "LYMPHOCYTE_0.png").read_bytes())
    other = tmp_path / "other.npz"
    assert main(["adapt", str(examples), "--out", str(other), "--model", str(tiny_model_dir)]) == 2
    assert "no class 'monocytes'" in capsys.readouterr().err and not other.exists()
    profile.write_bytes(b"junk")
    assert main(["classify", str(examples / "LYMPHOCYTE"), "--model", str(tiny_model_dir), "--lab", str(profile)]) == 2
    assert "not a readable lab profile" in capsys.readouterr().err


def test_leave_one_out_started_from_the_full_fit_finds_the_same_answers():
    from hematovision.heads.lab_profile import fit_correction

    features, probabilities, labels = lab_examples(2, per_class=8)
    profile = build_profile(features, probabilities, labels, CLASSES, "model-1")
    cold = []
    for i in range(len(labels)):
        rest = np.arange(len(labels)) != i
        fold = LabProfile(
            "", CLASSES, profile.counts, *fit_correction(features[rest], probabilities[rest], labels[rest], 4)
        )
        cold.append(fold.adjust(features[i : i + 1], probabilities[i : i + 1])[0])
    confusion = np.zeros((4, 4), np.int64)
    np.add.at(confusion, (labels, np.argmax(cold, axis=1)), 1)
    assert profile.leave_one_out["confusion_matrix"] == confusion.tolist()


def test_lab_profiles_cli_draws_examples_or_takes_them_all(tiny_model_dir, tmp_path, capsys):
    import shutil

    from hematovision.core.artifacts import load_evaluation
    from training.lab_profiles import main

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")  # --record writes into the folder
    examples = write_class_folders(tmp_path / "examples", per_class=4, classes=TINY_CLASSES[:2])
    held_out = write_class_folders(tmp_path / "held_out", per_class=3, classes=TINY_CLASSES[:2], seed=5)
    common = ["--model", str(model), "--examples", str(examples), "--held-out", str(held_out)]
    assert main([*common, "--per-class", "3", "--draws", "2", "--suggest", "1"]) == 0
    out = capsys.readouterr().out
    assert "6 cells of 2 classes, over 2 draws" in out and "profile gated" in out and "suggested" in out
    assert main([*common, "--per-class", "0", "--record", "everything"]) == 0
    assert "8 cells of 2 classes, over 1 draws" in capsys.readouterr().out
    summary = load_evaluation(model)["lab_profiles"]["everything"]
    assert summary["per_class"] == "all" and summary["examples"] == 8 and summary["held_out_n"] == 6


def test_a_profile_covers_its_labs_cells_and_not_others():
    features, probabilities, labels = lab_examples(0)
    profile = build_profile(features, probabilities, labels, CLASSES, "model-1")
    held_features, _, _ = lab_examples(1)
    assert profile.covers(held_features).mean() >= 0.9
    elsewhere = np.random.default_rng(3).normal(0, 1, held_features.shape) * 6 + 10
    assert not profile.covers(elsewhere).any()
    assert 0.05 < profile.temperature < 20


def test_the_profile_temperature_calibrates_its_leave_one_out_answers():
    """An overconfident lab (the model says b at 99.9% for a-cells) gets a temperature that is not 1."""
    features, probabilities, labels = lab_examples(4, per_class=10)
    profile = build_profile(features, probabilities, labels, CLASSES, "model-1")
    at_one = LabProfile("", CLASSES, profile.counts, profile.mean, profile.scale, profile.weights, profile.bias)
    held_features, held_probabilities, held_labels = lab_examples(5, per_class=40)

    def nll(p):
        return -np.log(p[np.arange(len(held_labels)), held_labels]).mean()

    assert profile.temperature != pytest.approx(1.0, abs=0.05)
    assert nll(profile.adjust(held_features, held_probabilities)) < nll(
        at_one.adjust(held_features, held_probabilities)
    )


def test_with_a_profile_its_labs_cells_are_never_refused_nor_unfamiliar():
    from hematovision.core.artifacts import ModelCard
    from hematovision.core.predict import Classifier
    from hematovision.heads.novelty import BloodCheck, DomainCheck, fit_novelty

    features, probabilities, labels = lab_examples(0)
    held_features, held_probabilities, _ = lab_examples(1)
    dims = features.shape[1]
    # A check that refuses and flags everything: only the profile can lift it.
    refuse_all = BloodCheck(np.zeros(dims), np.ones(dims), np.zeros(dims), -10.0, 0.5)
    profile = build_profile(features, probabilities, labels, CLASSES, "model-1", refuse_all.probabilities(features))
    far = fit_novelty({"training": np.random.default_rng(0).normal(0, 1, (50, dims)) + 30}).with_threshold(1.0)
    card = ModelCard(classes=CLASSES, input_size=8, gradcam_layer="conv")
    classifier = Classifier(None, card, DomainCheck(far, refuse_all, 1.0, 2.0), forward=lambda batch: None)
    logits = np.log(held_probabilities)
    alone = classifier.judge(held_features, logits)
    assert alone.not_blood.all() and alone.temperature_growth.min() > 1
    profiled = classifier.judge(held_features, logits, profile)
    covered = profile.covers(held_features)
    assert covered.mean() >= 0.9
    assert not profiled.not_blood[covered].any() and not profiled.unfamiliar[covered].any()
    np.testing.assert_allclose(
        profiled.probabilities[covered], profile.adjust(held_features, held_probabilities)[covered]
    )
    elsewhere = held_features * 6 + 10
    assert classifier.judge(elsewhere, logits, profile).not_blood.all()
    # Examples the check found far more blood-like than these cells: near them is not enough to lift a refusal.
    wary = build_profile(features, probabilities, labels, CLASSES, "model-1", np.full(len(labels), 0.9))
    assert wary.blood_floor == pytest.approx(0.45)
    judged = classifier.judge(held_features, logits, wary)
    assert judged.not_blood.all() and not judged.unfamiliar[wary.covers(held_features)].any()
    # Without the check's probabilities a profile lifts no refusal.
    assert classifier.judge(
        held_features, logits, build_profile(features, probabilities, labels, CLASSES, "m")
    ).not_blood.all()


def test_drawn_examples_are_different_cells_before_a_cell_gives_a_second_frame():
    from training.lab_profiles import draw_examples

    # Class 0: three video sequences of 10, 1 and 1 frames; class 1: one sequence of 6 frames.
    labels = np.array([0] * 12 + [1] * 6)
    groups = ["s1"] * 10 + ["s2", "s3"] + ["s4"] * 6
    for seed in range(5):
        chosen = draw_examples(np.random.default_rng(seed), labels, groups, per_class=4)
        first_class = [groups[i] for i in chosen if labels[i] == 0]
        assert len(first_class) == 4 and {"s2", "s3"} <= set(first_class)
        assert sum(labels[chosen] == 1) == 4 and len(set(chosen)) == 8


def model_already_right(seed: int, per_class: int = 6):
    """A lab the model reads right (a clear margin for the true class) whose features say nothing about the class:
    a profile fitted to a few such cells can only learn noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], per_class)
    features = rng.normal(0, 1, (len(labels), 12))
    logits = rng.normal(0, 0.1, (len(labels), 4))
    logits[np.arange(len(labels)), labels] += 1.0
    return features, softmax(logits), labels


def test_the_rule_needs_two_more_cells_fixed_than_broken():
    from hematovision.heads.lab_profile import MIN_NET_FIXES, decide

    assert MIN_NET_FIXES == 2
    assert decide(3, 1, 25, 20).applied and not decide(3, 2, 25, 20).applied and not decide(0, 0, 25, 20).applied
    used = decide(6, 1, 25, 20)
    assert used.reason == (
        "used: on your 25 labelled cells, each read by a profile made without it, it fixes 6 of the model's mistakes "
        "and makes 1 new one"
    )
    assert decide(2, 0, 25, 20).reason.endswith("makes no new one")
    assert (
        decide(1, 0, 25, 20).reason.startswith("not used:")
        and "at least 2 more than it breaks" in decide(1, 0, 25, 20).reason
    )
    assert decide(0, 4, 25, 25).reason.startswith("not used: the model alone already reads all 25")


def test_a_profile_that_helps_is_applied():
    features, probabilities, labels = lab_examples(0)
    profile = build_profile(features, probabilities, labels, CLASSES, "model-1")
    # The model calls the 6 a-cells b; leave-one-out fixes them and breaks at most one other.
    assert profile.leave_one_out["fixed"] == 6 and profile.leave_one_out["broken"] <= 1
    assert profile.applied and profile.decision.applied
    assert profile.decision.reason.startswith("used: on your 18 labelled cells") and "fixes 6 of" in profile.reason


def test_a_profile_that_would_hurt_is_not_applied_and_the_model_answers():
    from hematovision.core.artifacts import ModelCard
    from hematovision.core.predict import Classifier

    features, probabilities, labels = model_already_right(0)
    profile = build_profile(features, probabilities, labels, CLASSES, "model-1")
    held_features, held_probabilities, held_labels = model_already_right(100, per_class=50)
    # It would hurt: the correction learnt noise, and reads the lab's other cells worse than the model.
    model_right = (held_probabilities.argmax(1) == held_labels).mean()
    assert (profile.adjust(held_features, held_probabilities).argmax(1) == held_labels).mean() < model_right - 0.2
    assert profile.leave_one_out["broken"] > profile.leave_one_out["fixed"]
    assert not profile.applied and profile.decision.reason.startswith("not used:")
    card = ModelCard(classes=CLASSES, input_size=8, gradcam_layer="conv")
    classifier = Classifier(None, card, None, forward=lambda batch: None)
    logits = np.log(held_probabilities)
    alone, profiled = classifier.judge(held_features, logits), classifier.judge(held_features, logits, profile)
    np.testing.assert_array_equal(profiled.probabilities, alone.probabilities)
    np.testing.assert_array_equal(profiled.not_blood, alone.not_blood)
    np.testing.assert_array_equal(profiled.unfamiliar, alone.unfamiliar)
    # The decision survives a save, and the user may still overrule it.
    loaded = LabProfile.from_bytes(profile.to_bytes())
    assert loaded.decision == profile.decision
    unapplied = loaded.digest()
    loaded.applied = True
    assert loaded.digest() != unapplied  # cached results are not reused across the choice
    assert not np.array_equal(classifier.judge(held_features, logits, loaded).probabilities, alone.probabilities)


def old_format(profile: LabProfile) -> bytes:
    """The profile as format 2 wrote it: no decision."""
    import io

    with np.load(io.BytesIO(profile.to_bytes()), allow_pickle=False) as stored:
        fields = {name: stored[name] for name in stored.files if name not in ("applied", "reason")}
    fields["format"] = np.array(2)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **fields)
    return buffer.getvalue()


def test_a_profile_saved_before_decisions_loads_and_is_decided_by_the_same_rule(tmp_path):
    helps = build_profile(*lab_examples(0), CLASSES, "model-1")
    hurts = build_profile(*model_already_right(0), CLASSES, "model-1")
    (tmp_path / "helps.npz").write_bytes(old_format(helps))
    (tmp_path / "hurts.npz").write_bytes(old_format(hurts))
    old_helps, old_hurts = LabProfile.load(tmp_path / "helps.npz"), LabProfile.load(tmp_path / "hurts.npz")
    net = helps.leave_one_out["fixed"] - helps.leave_one_out["broken"]
    assert old_helps.applied and old_helps.decision.reason == (
        f"used: on your 18 labelled cells, each read by a profile made without it, it gets {net} cells more right "
        "than the model alone"
    )
    assert not old_hurts.applied and old_hurts.decision.reason.startswith("not used: the model alone already reads")
    np.testing.assert_allclose(old_helps.weights, helps.weights, atol=1e-5)
    import io

    # A later format is refused, not misread.
    with np.load(io.BytesIO(helps.to_bytes()), allow_pickle=False) as stored:
        fields = {name: stored[name] for name in stored.files} | {"format": np.array(99)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **fields)
    with pytest.raises(ProfileError, match="another version"):
        LabProfile.from_bytes(buffer.getvalue())


def test_cells_to_label_next_are_the_least_sure_spread_over_the_classes_called():
    from hematovision.heads.lab_profile import suggest_to_label

    probabilities = np.array(
        [
            [0.50, 0.45, 0.05],  # 0: called a, very unsure
            [0.55, 0.40, 0.05],  # 1: called a, unsure
            [0.90, 0.05, 0.05],  # 2: called a, sure
            [0.10, 0.80, 0.10],  # 3: called b, fairly sure
            [0.05, 0.05, 0.90],  # 4: called c, sure
            [0.30, 0.35, 0.35],  # 5: called b (first of a tie), the least sure of all
        ]
    )
    # One of each called class first, least sure class first (b: gap 0; a: 0.05; c: 0.85), then the next of each.
    assert suggest_to_label(probabilities, 3).tolist() == [5, 0, 4]
    assert suggest_to_label(probabilities, 5).tolist() == [5, 0, 4, 3, 1]
    assert sorted(suggest_to_label(probabilities, 99).tolist()) == list(range(6))
    assert suggest_to_label(probabilities, 0).tolist() == []
