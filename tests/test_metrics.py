"""Metric code against examples worked out by hand."""

import numpy as np
import pytest

from hematovision.heads.metrics import (
    choose_confidence_threshold,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    macro_f1,
    negative_log_likelihood,
    per_class_scores,
    softmax,
    wilson_interval,
)

# 3 classes, 8 samples. True:  0 0 0 1 1 1 2 2 ; predicted: 0 0 1 1 1 2 2 0
Y_TRUE = np.array([0, 0, 0, 1, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 1, 2, 2, 0])


def test_confusion_matrix_counts():
    expected = [[2, 1, 0], [0, 2, 1], [1, 0, 1]]
    np.testing.assert_array_equal(confusion_matrix(Y_TRUE, Y_PRED, 3), expected)


def test_per_class_precision_recall_f1():
    scores = per_class_scores(confusion_matrix(Y_TRUE, Y_PRED, 3))
    # class 0: TP 2, predicted 3, support 3 -> P 2/3, R 2/3; class 2: TP 1, predicted 2, support 2 -> 1/2, 1/2
    np.testing.assert_allclose(scores["precision"], [2 / 3, 2 / 3, 1 / 2])
    np.testing.assert_allclose(scores["recall"], [2 / 3, 2 / 3, 1 / 2])
    np.testing.assert_allclose(scores["f1"], [2 / 3, 2 / 3, 1 / 2])
    np.testing.assert_array_equal(scores["support"], [3, 3, 2])


def test_macro_f1_is_mean_over_present_classes():
    assert macro_f1(confusion_matrix(Y_TRUE, Y_PRED, 3)) == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    # A 4th class with no support and no predictions does not drag the mean down.
    assert macro_f1(confusion_matrix(Y_TRUE, Y_PRED, 4)) == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)


def test_ece_by_hand():
    # Two confident bins: confidences 0.95 (2 samples, 1 right) and 0.55 (2 samples, 2 right).
    probabilities = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    y_true = np.array([0, 1, 0, 0])
    # |0.95 - 0.5| * 2/4 + |0.55 - 1.0| * 2/4 = 0.225 + 0.225
    assert expected_calibration_error(probabilities, y_true) == pytest.approx(0.45)


def test_ece_is_zero_when_confidence_matches_accuracy():
    probabilities = np.array([[1.0, 0.0]] * 4)
    assert expected_calibration_error(probabilities, np.zeros(4, int)) == pytest.approx(0.0)


def test_temperature_scaling_lowers_nll_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    n, k = 2000, 4
    y_true = rng.integers(0, k, n)
    # Logits that point to the right class 70% of the time, scaled up to be far too sure.
    guess = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, k, n))
    logits = np.eye(k)[guess] * 12.0 + rng.normal(0, 0.5, (n, k))
    temperature = fit_temperature(logits, y_true)
    assert temperature > 2.0  # over-confident models need softening
    assert negative_log_likelihood(logits, y_true, temperature) < 0.5 * negative_log_likelihood(logits, y_true)
    before = expected_calibration_error(softmax(logits), y_true)
    after = expected_calibration_error(softmax(logits, temperature), y_true)
    assert after < before / 3


def test_threshold_keeps_target_accuracy_above_it():
    probabilities = np.array([[0.99, 0.01], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    y_true = np.array([0, 0, 0, 1, 0])  # the 0.7 one is wrong
    # Sorted by confidence, accuracy stays 1.0 down to 0.8 and drops at 0.7: the cut is 0.8.
    assert choose_confidence_threshold(probabilities, y_true, target_accuracy=1.0, floor=0.0) == 0.8
    assert choose_confidence_threshold(probabilities, y_true, target_accuracy=1.0, floor=0.85) == 0.85


def test_wilson_interval_by_hand():
    # 8 of 10: centre (0.8 + 0.192) / 1.384, half-width 1.96 * sqrt(0.016 + 0.0096) / 1.384.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    # All right still leaves room below 1; nothing measured says nothing.
    assert wilson_interval(57, 57) == pytest.approx((0.9369, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_report_has_the_contract_keys():
    probabilities = np.eye(3)[Y_PRED] * 0.8 + 0.2 / 3
    report = classification_report(Y_TRUE, probabilities, ["a", "b", "c"], uncalibrated=probabilities)
    assert {"n", "accuracy", "macro_f1", "ece", "labels", "confusion_matrix", "per_class", "ece_uncalibrated"} <= set(
        report
    )
    assert report["n"] == 8 and report["accuracy"] == pytest.approx(5 / 8)
    assert report["accuracy_ci95"] == pytest.approx(list(wilson_interval(5, 8)))
    assert report["per_class"]["c"]["support"] == 2


def test_ece_if_calibrated_shrinks_with_the_number_of_images():
    from hematovision.heads.metrics import ece_if_calibrated, expected_calibration_error

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4) * 0.3, size=2000)
    small, large = ece_if_calibrated(probabilities[:50]), ece_if_calibrated(probabilities)
    assert 0 < large["median"] < small["median"] and small["median"] <= small["p95"]
    # A model that really is calibrated lands inside the spread: labels drawn from its own probabilities.
    labels = np.array([rng.choice(4, p=row) for row in probabilities])
    assert expected_calibration_error(probabilities, labels) <= large["p95"]
