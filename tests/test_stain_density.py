"""The stain-density layer: a faint lab's smear and a strong one reach the backbone alike."""

from __future__ import annotations

import keras  # a pinned dependency: a broken install fails here rather than skipping these tests
import numpy as np
import pytest

from hematovision.explain.stain_density import StainDensity
from tests.test_framing import single_cell_image


def optical_density(image: np.ndarray, glass: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(image.astype(np.float64) / glass, 1e-3, 1.0))


def fainter(image: np.ndarray, factor: float, glass: tuple[int, int, int]) -> np.ndarray:
    """The same smear with every dye at ``factor`` of its density, seen through grey glass."""
    density = optical_density(image, np.maximum(np.percentile(image.reshape(-1, 3), 95, axis=0), 1))
    return np.clip(np.exp(-density * factor) * np.array(glass), 0, 255).astype(np.uint8)


def core_density(image: np.ndarray) -> float:
    glass = np.percentile(image.reshape(-1, 3), 95, axis=0) / 255.0
    return float(np.percentile(optical_density(image / 255.0, glass).sum(axis=-1), 99))


def test_a_faint_smear_on_grey_glass_comes_out_as_the_strong_one():
    strong, _ = single_cell_image(96, 20)
    faint = fainter(strong, 0.5, (205, 205, 205))
    layer = StainDensity(4.0)
    out_strong, out_faint = layer(np.stack([strong, faint]).astype(np.float32)).numpy()
    assert core_density(out_strong) == pytest.approx(4.0, rel=0.05)
    assert core_density(out_faint) == pytest.approx(4.0, rel=0.05)
    # Before: half the density and grey glass; after, the two agree to a few grey levels.
    assert np.abs(strong.astype(float) - faint).mean() > 10
    assert np.abs(out_strong - out_faint).mean() < 3


def test_a_blank_slide_is_not_amplified_into_noise():
    rng = np.random.default_rng(0)
    blank = np.clip(230 + rng.normal(0, 2, (1, 64, 64, 3)), 0, 255).astype(np.float32)
    out = StainDensity(4.0)(blank).numpy()
    assert out.min() > 200  # a gain of at most 5 keeps pale noise pale


def test_a_model_holding_the_layer_saves_and_loads(tmp_path):
    image = keras.Input((32, 32, 3))
    model = keras.Model(image, StainDensity(4.0, name="stain_density")(image))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert loaded.get_layer("stain_density").target == 4.0
    x = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-4)


def test_an_ensemble_keeps_its_members_stain_density_and_refuses_a_mix():
    from training.config import TrainConfig
    from training.ensemble import average_models
    from training.model import STAIN_DENSITY_LAYER, build_model

    def member(target: float) -> keras.Model:
        return build_model(TrainConfig(image_size=32, alpha=0.35, weights="none", density_target=target), 3)

    averaged = average_models([member(4.0), member(4.0)], alpha=0.35, image_size=32)
    assert averaged.get_layer(STAIN_DENSITY_LAYER).target == 4.0
    with pytest.raises(ValueError, match="stain density"):
        average_models([member(4.0), member(0.0)], alpha=0.35, image_size=32)
