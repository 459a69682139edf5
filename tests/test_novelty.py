"""The feature-space novelty check on features whose geometry is known."""

import numpy as np
import pytest

from hematovision.novelty import NoveltyModel, fit_novelty, threshold_at


def clusters(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    scales = np.linspace(0.2, 3.0, 16)  # very unequal variances, as in real features
    return {
        "a": rng.normal(0, 1, (n, 16)) * scales + 5,
        "b": rng.normal(0, 1, (n, 16)) * scales - 5,
    }


def test_distance_is_mahalanobis_to_the_nearest_centre():
    model = NoveltyModel(whitening=np.diag([1.0, 0.5]).astype(np.float32), centres=np.zeros((1, 2), np.float32),
                         threshold=1.0)  # fmt: skip
    # (3, 4) whitened is (3, 2): squared distance 13.
    np.testing.assert_allclose(model.distances(np.array([[3.0, 4.0]])), [13.0], rtol=1e-6)


def test_in_domain_passes_and_far_points_are_flagged():
    train, held_out = clusters(0), clusters(1)
    model = fit_novelty(train, shrinkage=0.01)
    model = model.with_threshold(threshold_at(model.distances(np.concatenate(list(held_out.values()))), 0.01))
    in_domain = np.concatenate(list(clusters(2).values()))
    assert model.flags(in_domain).mean() < 0.03
    # Far along a direction of small variance: near in plain distance, far in Mahalanobis distance.
    outliers = np.full((50, 16), 5.0)
    outliers[:, 0] += 3.0  # 15 standard deviations along the tightest axis
    assert model.flags(outliers).all()
    assert model.flags(np.random.default_rng(3).normal(0, 30, (50, 16))).all()


def test_round_trip(tmp_path):
    model = fit_novelty(clusters(0)).with_threshold(12.5)
    model.save(tmp_path / "n.npz")
    loaded = NoveltyModel.load(tmp_path / "n.npz")
    assert loaded.threshold == pytest.approx(12.5)
    features = np.concatenate(list(clusters(4).values()))
    np.testing.assert_allclose(loaded.distances(features), model.distances(features), rtol=1e-5)
