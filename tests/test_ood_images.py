"""The out-of-distribution (not a blood cell) image set: reproducible, big enough, well-formed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from training.ood_images import CATEGORY_SIZES, OodImage, category_counts, non_blood_images


@pytest.fixture(scope="module")
def images() -> list[OodImage]:
    return non_blood_images(seed=0)


def _fingerprint(images: list[OodImage]) -> list[tuple[str, tuple[int, ...], int]]:
    return [(image.name, image.rgb.shape, int(image.rgb.sum(dtype=np.int64))) for image in images]


def test_same_seed_gives_the_same_images(images: list[OodImage]) -> None:
    assert _fingerprint(non_blood_images(seed=0)) == _fingerprint(images)


def test_another_seed_gives_other_pixels(images: list[OodImage]) -> None:
    other = non_blood_images(seed=1)
    assert [image.category for image in other] == [image.category for image in images]
    assert (
        sum(a.rgb.shape == b.rgb.shape and np.array_equal(a.rgb, b.rgb) for a, b in zip(images, other, strict=True))
        == 0
    )


def test_size_and_categories(images: list[OodImage]) -> None:
    counts = category_counts(images)
    assert len(images) >= 320
    assert set(counts) == set(CATEGORY_SIZES)
    assert min(counts.values()) >= 25, counts
    assert len({image.name for image in images}) == len(images)


def test_every_image_is_uint8_rgb_of_at_least_64_px(images: list[OodImage]) -> None:
    for image in images:
        assert image.rgb.dtype == np.uint8, image.name
        assert image.rgb.ndim == 3 and image.rgb.shape[2] == 3, image.name
        assert min(image.rgb.shape[:2]) >= 64, (image.name, image.rgb.shape)
        assert max(image.rgb.shape[:2]) <= 700, (image.name, image.rgb.shape)


def test_sizes_vary_and_are_not_all_square(images: list[OodImage]) -> None:
    shapes = {image.rgb.shape[:2] for image in images}
    assert len(shapes) > 100
    assert sum(h != w for h, w in shapes) > len(shapes) / 2


def test_no_near_duplicates_within_a_category(images: list[OodImage]) -> None:
    """The set must be varied: no two images of a category look alike at 16x16 (RMS over 2 grey levels)."""
    by_category: dict[str, list[np.ndarray]] = {}
    for image in images:
        small = np.asarray(Image.fromarray(image.rgb).resize((16, 16), Image.Resampling.BOX), dtype=np.float32)
        by_category.setdefault(image.category, []).append(small.ravel())
    for category, vectors in by_category.items():
        stack = np.stack(vectors)
        distances = np.sqrt(((stack[:, None] - stack[None]) ** 2).mean(axis=2))
        np.fill_diagonal(distances, np.inf)
        assert distances.min() > 2.0, (category, float(distances.min()))
