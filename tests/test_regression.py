import numpy as np

from hematovision.heads.regression import fit_softmax_regression


def test_separable_classes_are_learned_and_masked_columns_stay_zero():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    features = rng.normal(0, 1, (200, 3)) + np.eye(3)[labels] * 4
    weights, bias = fit_softmax_regression(features, labels, 3, 1e-3, columns=np.array([True, True, False]))
    assert ((features @ weights + bias).argmax(axis=1) == labels).mean() > 0.98
    assert not weights[:, 2].any() and bias[2] == 0


def test_the_penalty_shrinks_the_weights():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 100)
    features = rng.normal(0, 1, (100, 4)) + labels[:, None]
    loose, _ = fit_softmax_regression(features, labels, 2, 1e-4)
    tight, _ = fit_softmax_regression(features, labels, 2, 10.0)
    assert np.abs(tight).sum() < 0.2 * np.abs(loose).sum()
