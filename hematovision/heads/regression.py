"""Softmax regression with an L2 penalty, fitted by L-BFGS: the small heads the project fits on the network's
features (lab profiles, morphological attributes)."""

from __future__ import annotations

import numpy as np


def fit_softmax_regression(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    l2: float,
    *,
    offset: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    columns: np.ndarray | None = None,
    start: tuple[np.ndarray, np.ndarray] | None = None,
    max_iterations: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(weights (D, K), bias (K,)) minimising the weighted mean cross-entropy of softmax(offset + x W + b)
    plus ``l2 / 2`` times the squared weights.

    ``offset``: fixed scores added before the softmax (e.g. a model's log-probabilities, so that the fit is a
    correction of them); ``sample_weight``: per-row weights (default equal); ``columns``: a (K,) mask of the
    classes that may be corrected (the others keep zero weights and bias); ``start``: (weights, bias) to start
    from, e.g. the fit at a neighbouring ``l2``.
    """
    from scipy.optimize import minimize

    x = np.asarray(features, np.float64)
    n, d = x.shape
    rows = np.arange(n)
    weight = np.full(n, 1.0 / n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    base = 0.0 if offset is None else offset
    mask = np.ones(n_classes) if columns is None else np.asarray(columns, np.float64)

    def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat[: d * n_classes].reshape(d, n_classes) * mask
        b = flat[d * n_classes :] * mask
        scores = base + x @ w + b
        scores -= scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        residual = np.exp(log_p)
        residual[rows, labels] -= 1
        residual *= weight[:, None]
        value = -(weight * log_p[rows, labels]).sum() + 0.5 * l2 * float((w**2).sum())
        grad_w = (x.T @ residual + l2 * w) * mask
        return value, np.concatenate([grad_w.ravel(), residual.sum(axis=0) * mask])

    initial = np.zeros(d * n_classes + n_classes) if start is None else np.concatenate([start[0].ravel(), start[1]])
    options = {} if max_iterations is None else {"maxiter": max_iterations}
    result = minimize(loss_and_gradient, initial, jac=True, method="L-BFGS-B", options=options)
    return result.x[: d * n_classes].reshape(d, n_classes) * mask, result.x[d * n_classes :] * mask
