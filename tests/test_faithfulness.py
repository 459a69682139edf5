"""Faithfulness metrics on hand-made images and a hand-made "network", and the sanity check on a tiny Keras model."""

import numpy as np
import pytest

from hematovision.explain import faithfulness as fm
from hematovision.explain.sanity import PASS_CORRELATION, cascading_correlations, randomised_from, verdict

SIZE = 32
RED = np.array([255, 0, 0], np.float64)
# The only informative pixels: a red square away from the centre (so that the centred blob cannot find it).
PATCH = (slice(3, 11), slice(20, 28))


def patch_image() -> np.ndarray:
    rng = np.random.default_rng(1)
    image = rng.normal(150, 10, (SIZE, SIZE, 3)).clip(0, 255).astype(np.uint8)
    image[PATCH] = RED
    return image


def patch_probabilities(batch: np.ndarray) -> np.ndarray:
    """Class 0's probability is how red the patch still is; nothing else in the image counts."""
    patch = batch[:, PATCH[0], PATCH[1]].astype(np.float64)
    redness = np.clip(1.0 - np.abs(patch - RED).mean(axis=-1) / 80.0, 0.0, 1.0).mean(axis=(1, 2))
    return np.stack([redness, 1.0 - redness], axis=1)


def patch_map() -> np.ndarray:
    saliency = np.zeros((SIZE, SIZE))
    saliency[PATCH] = 1.0
    return saliency


def scores(saliency, seed=0):
    return fm.score_map(patch_image(), saliency, patch_probabilities, 0, steps=16, seed=seed)


def test_the_map_of_the_only_informative_pixels_scores_best():
    best = scores(patch_map())
    others = [scores(fm.random_map((SIZE, SIZE), seed)) for seed in range(3)]
    others += [scores(fm.centre_map((SIZE, SIZE))), scores(1.0 - patch_map())]
    for other in others:
        assert best.deletion_auc < other.deletion_auc
        assert best.insertion_auc > other.insertion_auc
        assert best.road.gap > other.road.gap
    # Removing the patch first kills the class at once; ROAD's imputation cannot bring the red back.
    assert best.deletion_auc < 0.1 and best.road.most_relevant_first.max() < 0.6
    assert best.road.least_relevant_first.min() > 0.9


def test_a_random_map_scores_near_chance():
    # Removing pixels in an order that knows nothing of the patch: on average the curve falls linearly
    # (one coarse random map varies a lot, so the mean is over many seeds).
    image = patch_image()
    maps = [fm.random_map((SIZE, SIZE), seed) for seed in range(60)]
    deletion = [fm.deletion_curve(image, m, patch_probabilities, 0, 16, seed) for seed, m in enumerate(maps)]
    assert np.mean([fm.area_under_curve(curve) for curve in deletion]) == pytest.approx(0.5, abs=0.06)
    gaps = [fm.road_curves(image, m, patch_probabilities, 0, seed=seed).gap for seed, m in enumerate(maps[:40])]
    assert np.mean(gaps) == pytest.approx(0.0, abs=0.15)


def test_deletion_curve_ends_on_the_mean_colour_and_insertion_on_the_image():
    image = patch_image()
    deletion = fm.deletion_curve(image, patch_map(), patch_probabilities, 0, steps=4)
    insertion = fm.insertion_curve(image, patch_map(), patch_probabilities, 0, steps=4)
    assert deletion.shape == insertion.shape == (5,)
    assert deletion[0] == pytest.approx(1.0) and insertion[-1] == pytest.approx(1.0)
    assert deletion[-1] == pytest.approx(patch_probabilities(fm.mean_colour(image)[None])[0, 0])


def test_imputation_fills_masked_pixels_from_their_neighbours():
    # A linear ramp is its own neighbours' weighted mean, so noiseless imputation restores it.
    ramp = np.broadcast_to((np.arange(SIZE)[:, None] * 3 + np.arange(SIZE)[None, :] * 2)[..., None], (SIZE, SIZE, 3))
    image = ramp.astype(np.uint8)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[8:20, 5:25] = True
    holed = image.copy()
    holed[mask] = 0  # what was there must not matter
    filled = fm.impute(holed, mask, noise=0.0)
    assert np.abs(filled.astype(int) - image.astype(int)).max() <= 1
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    noisy = fm.impute(holed, mask, seed=3)
    assert 0 < np.abs(noisy.astype(int) - image.astype(int))[mask].mean() < 5
    with pytest.raises(ValueError, match="whole image"):
        fm.impute(image, np.ones((SIZE, SIZE), bool))


def test_top_mask_takes_exactly_the_fraction_and_breaks_ties_at_random():
    flat = np.zeros((SIZE, SIZE))
    mask = fm.top_mask(flat, 0.25)
    assert mask.sum() == round(0.25 * SIZE * SIZE)
    assert 0.1 < mask[: SIZE // 2].mean() / 0.25 / 2 < 0.9  # spread over the image, not the top rows first


def test_removal_check_against_random_areas():
    check = fm.removal_check(patch_image(), patch_map(), patch_probabilities, 0, fractions=(0.1, 0.2), draws=4)
    assert check.original == pytest.approx(1.0)
    assert all(hot < random for hot, random in zip(check.hottest, check.random_mean, strict=True))
    assert len(check.hottest_images) == len(check.random_images) == 2
    assert check.hottest_images[0].shape == (SIZE, SIZE, 3) and check.hottest_images[0].dtype == np.uint8


def test_baselines_and_rank_correlation():
    centre = fm.centre_map((SIZE, SIZE))
    assert np.unravel_index(centre.argmax(), centre.shape) in {(15, 15), (15, 16), (16, 15), (16, 16)}
    random = fm.random_map((SIZE, SIZE), 0)
    assert random.min() == 0.0 and random.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(random, fm.random_map((SIZE, SIZE), 0))
    assert fm.rank_correlation(centre, centre) == pytest.approx(1.0)
    assert fm.rank_correlation(centre, np.zeros_like(centre)) == 0.0
    with pytest.raises(ValueError, match="unknown baseline"):
        fm.baseline_map("none", (SIZE, SIZE), 0)


def test_summary_and_beats():
    summary = fm.summarise([scores(patch_map()), scores(patch_map(), seed=1)])
    baseline = fm.summarise([scores(fm.centre_map((SIZE, SIZE)))])
    assert summary["n"] == 2 and len(summary["road_morf"]) == len(fm.ROAD_PERCENTILES)
    assert fm.beats(summary, baseline) == {"deletion": True, "insertion": True, "road": True}
    assert not any(fm.beats(baseline, summary).values())


@pytest.fixture(scope="module")
def tiny_keras_model():
    """Two convolutions and a dense head, trained for a few steps to tell a blob's colour (red or blue)."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(image)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(2, name="logits")(x)
    model = keras.Model(image, keras.layers.Activation("softmax")(logits))
    images, labels = blob_images(64, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(images.astype(np.float32), labels, epochs=15, batch_size=16, verbose=0)
    return model


def blob_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = np.full((count, SIZE, SIZE, 3), 200, np.uint8)
    labels = np.arange(count) % 2
    for image, label in zip(images, labels, strict=True):
        y, x = rng.integers(6, SIZE - 6, 2)
        image[y - 4 : y + 4, x - 4 : x + 4] = (220, 30, 30) if label == 0 else (30, 30, 220)
    return images, labels


def test_randomisation_resets_the_layers_above_the_cut_only(tiny_keras_model):
    copy = randomised_from(tiny_keras_model, "conv_b", seed=1)
    for name in ("conv_a",):
        for before, after in zip(tiny_keras_model.get_layer(name).weights, copy.get_layer(name).weights, strict=True):
            np.testing.assert_array_equal(before.numpy(), after.numpy())
    for name in ("conv_b", "logits"):
        kernel_before = tiny_keras_model.get_layer(name).weights[0].numpy()
        assert not np.allclose(kernel_before, copy.get_layer(name).weights[0].numpy())
    np.testing.assert_array_equal(copy.get_layer("logits").weights[1].numpy(), 0.0)  # biases start at zero
    with pytest.raises(ValueError, match="no layer"):
        randomised_from(tiny_keras_model, "nonexistent")


def test_gradcam_passes_the_sanity_check_and_an_edge_map_fails(tiny_keras_model):
    from scipy.ndimage import sobel

    from hematovision.explain.gradcam import GradCam

    def edges(image, _class_index):
        # Depends on the image alone: the kind of map the check exists to catch.
        grey = image.astype(np.float64).mean(axis=-1)
        return np.hypot(sobel(grey, 0), sobel(grey, 1))

    def heatmaps_for(model):
        cam = GradCam(model, "conv_b", "logits")
        return {"Grad-CAM": lambda image, c: cam(image[None], [c])[0], "edges": edges}

    images, labels = blob_images(6, seed=5)
    cuts = ["logits", "conv_b", "conv_a"]
    correlations = cascading_correlations(tiny_keras_model, heatmaps_for, images, labels, cuts)
    assert list(correlations["Grad-CAM"]) == cuts and all(len(v) == 6 for v in correlations["Grad-CAM"].values())
    assert verdict(correlations["edges"], "conv_a")["passes"] is False
    assert np.mean(correlations["edges"]["conv_a"]) == pytest.approx(1.0)
    gradcam = verdict(correlations["Grad-CAM"], "conv_a")
    assert gradcam["passes"] is True and gradcam["mean_abs_spearman"]["conv_a"] < PASS_CORRELATION
    assert gradcam["mean_abs_spearman"]["conv_a"] < gradcam["mean_abs_spearman"]["logits"]
