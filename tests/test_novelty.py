"""The feature-space novelty check on features whose geometry is known."""

import dataclasses

import numpy as np
import pytest

from hematovision.heads.novelty import NoveltyModel, fit_novelty, threshold_at


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


def test_blood_check_separates_the_two_sides_and_keeps_its_threshold(tmp_path):
    from hematovision.heads.novelty import BloodCheck, DomainCheck, fit_blood_check

    rng = np.random.default_rng(5)
    blood = rng.normal(0, 1, (300, 8)) + 2.0
    other = rng.normal(0, 1, (300, 8)) - 2.0
    check = fit_blood_check(blood, other)
    assert check.flags(rng.normal(0, 1, (200, 8)) + 2.0).mean() < 0.05
    assert check.flags(rng.normal(0, 1, (200, 8)) - 2.0).mean() > 0.95
    strict = BloodCheck(check.mean, check.scale, check.weights, check.bias, 0.999999)
    domain = DomainCheck(fit_novelty(clusters(0)).with_threshold(9.0), strict, 4.0, 1.5)
    domain.save(tmp_path / "d.npz")
    loaded = DomainCheck.load(tmp_path / "d.npz")
    assert loaded.blood.threshold == pytest.approx(0.999999)
    assert (loaded.temperature_slope, loaded.distance_reference) == (1.5, 4.0)
    np.testing.assert_allclose(loaded.blood.probabilities(blood[:20]), strict.probabilities(blood[:20]), rtol=1e-5)


def test_temperature_grows_only_beyond_the_reference_distance():
    from hematovision.heads.novelty import DomainCheck

    domain = DomainCheck(fit_novelty(clusters(0)), None, distance_reference=10.0, temperature_slope=2.0)
    np.testing.assert_allclose(domain.temperature_factor(np.array([0.0, 10.0, 20.0, 30.0])), [1.0, 1.0, 3.0, 5.0])


def test_fitted_slope_softens_overconfident_far_predictions_and_not_near_ones():
    from hematovision.heads.novelty import fit_temperature_slope

    rng = np.random.default_rng(7)
    n = 2000
    labels = rng.integers(0, 4, n)
    distances = np.where(np.arange(n) < n // 2, rng.uniform(0, 10, n), rng.uniform(20, 40, n))
    logits = np.zeros((n, 4))
    far = distances > 10
    # Near: right and confident. Far: just as confident, but right only half the time.
    predicted = np.where(far & (rng.random(n) < 0.5), (labels + 1) % 4, labels)
    logits[np.arange(n), predicted] = 8.0
    assert fit_temperature_slope(logits, labels, distances, 1.0, reference=10.0) > 0.5
    near = ~far
    assert fit_temperature_slope(logits[near], labels[near], distances[near], 1.0, reference=10.0) == 0.0


def test_lab_change_widens_to_the_networks_own_training_views_and_never_narrows():
    from training.config import TrainConfig
    from training.novelty import LAB_CHANGE, WIDER_WHEN_LARGER, WIDER_WHEN_SMALLER, lab_change_for

    assert set(WIDER_WHEN_LARGER + WIDER_WHEN_SMALLER) <= set(dataclasses.asdict(TrainConfig()))
    assert lab_change_for({}) == LAB_CHANGE
    # A network trained on softer, recoloured views and a smaller camera scale than LAB_CHANGE imitates.
    trained = dataclasses.asdict(TrainConfig(blur=3.0, other_lab=0.5, other_lab_dye=0.2, degrade_scale=0.2))
    change = lab_change_for(trained)
    assert (change.blur, change.other_lab, change.other_lab_dye, change.degrade_scale) == (3.0, 0.5, 0.2, 0.2)
    # Where LAB_CHANGE was already wider than training (zoom, stain, hue), it stays as it was.
    assert (change.zoom, change.stain, change.hue) == (LAB_CHANGE.zoom, LAB_CHANGE.stain, LAB_CHANGE.hue)
    # The default recipe trains inside LAB_CHANGE, so a network trained with it changes nothing.
    assert lab_change_for(dataclasses.asdict(TrainConfig())) == LAB_CHANGE


def test_the_refusal_threshold_sits_midway_in_the_gap_or_on_the_blood_side():
    from training.novelty import gap_threshold

    blood = [np.full(100, 0.99), np.linspace(0.9, 1.0, 100)]
    non_blood = [np.full(100, 0.01)]
    threshold, blood_side, non_blood_side = gap_threshold(blood, non_blood)
    assert blood_side == pytest.approx(np.quantile(blood[1], 0.02)) and non_blood_side == pytest.approx(0.01)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert logit(threshold) == pytest.approx((logit(blood_side) + logit(non_blood_side)) / 2)
    # Overlapping sides: refusing a real cell is the worse mistake, so the blood side stays.
    threshold, blood_side, _ = gap_threshold([np.full(50, 0.3)], [np.full(50, 0.6)])
    assert threshold == blood_side == pytest.approx(0.3)
