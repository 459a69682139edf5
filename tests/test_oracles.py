"""The statistics the library computes itself, each checked against SciPy or scikit-learn computing the same thing.

The library keeps its own (the app must not need scikit-learn, and each is a few lines); these tests are where a
difference from the reference implementations would show.
"""

import numpy as np
import pytest
from scipy.special import softmax as scipy_softmax
from scipy.stats import binomtest, norm
from sklearn.covariance import shrunk_covariance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from hematovision.heads import metrics
from hematovision.heads.novelty import fit_blood_check, fit_novelty
from hematovision.heads.regression import fit_softmax_regression

Z_95 = norm.ppf(0.975)


@pytest.mark.parametrize(("successes", "n"), [(0, 10), (3, 10), (56, 57), (1862, 1894), (5, 5)])
def test_wilson_interval_is_scipys(successes, n):
    expected = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert metrics.wilson_interval(successes, n, z=Z_95) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_confusion_matrix_is_scikit_learns():
    rng = np.random.default_rng(1)
    truth, predicted = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    expected = sklearn_confusion_matrix(truth, predicted, labels=range(6))  # class 5 never occurs: a zero row
    assert np.array_equal(metrics.confusion_matrix(truth, predicted, 6), expected)


def test_softmax_is_scipys():
    logits = np.random.default_rng(2).normal(0, 5, (20, 8))
    assert np.allclose(metrics.softmax(logits, 0.55), scipy_softmax(logits / 0.55, axis=1))


def test_the_novelty_covariance_is_scikit_learns_shrunk_covariance():
    rng = np.random.default_rng(3)
    groups = {"a": rng.normal(0, 1, (80, 6)) * [1, 2, 3, 1, 1, 5], "b": rng.normal(2, 1, (50, 6))}
    centred = np.concatenate([g - g.mean(axis=0) for g in groups.values()])
    empirical = centred.T @ centred / (len(centred) - len(groups))  # pooled within-group, as fit_novelty
    whitening = fit_novelty(groups, shrinkage=0.1).whitening.astype(np.float64)
    # whitening W satisfies W W^T = inverse(covariance)
    assert np.allclose(whitening @ whitening.T, np.linalg.inv(shrunk_covariance(empirical, 0.1)), rtol=1e-4)


def separable_sets(seed: int, n: int = 240, d: int = 5):
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 1, (n, d))
    labels = (features @ rng.normal(0, 1, d) + rng.normal(0, 1.5, n) > 0).astype(np.int64)
    return features, labels


def test_the_not_a_blood_cell_check_is_scikit_learns_weighted_logistic_regression():
    features, labels = separable_sets(4)
    positives, negatives = features[labels == 1], features[labels == 0]
    check = fit_blood_check(positives, negatives, l2=3.0)
    both = np.concatenate([positives, negatives])
    target = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    weight = np.where(target == 1, 0.5 / len(positives), 0.5 / len(negatives))
    standardised = (both - both.mean(axis=0)) / (both.std(axis=0) + 1e-6)
    # scikit-learn minimises |w|^2 / 2 + C sum(weight * loss); ours sum(weight * loss) + (l2 / n) |w|^2 / 2.
    reference = LogisticRegression(C=len(both) / 3.0, tol=1e-10, max_iter=10_000)
    reference.fit(standardised, target, sample_weight=weight)
    assert np.allclose(check.probabilities(both), reference.predict_proba(standardised)[:, 1], atol=1e-4)


def test_softmax_regression_is_scikit_learns_multinomial_fit():
    rng = np.random.default_rng(5)
    features = rng.normal(0, 1, (300, 4))
    labels = np.argmax(features @ rng.normal(0, 1, (4, 3)) + rng.normal(0, 1, (300, 3)), axis=1)
    weights, bias = fit_softmax_regression(features, labels, 3, l2=0.05)
    # Ours: mean loss + l2 |W|^2 / 2; scikit-learn: |W|^2 / 2 + C sum(loss), so C = 1 / (l2 n).
    reference = LogisticRegression(C=1 / (0.05 * len(features)), tol=1e-10, max_iter=10_000).fit(features, labels)
    assert np.allclose(scipy_softmax(features @ weights + bias, axis=1), reference.predict_proba(features), atol=1e-4)
