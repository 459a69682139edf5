"""A classified image in the form the Explain, Review and teaching pages work on (pure Python)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from hematovision.core.imaging import centre_square, to_model_input
from hematovision.core.predict import ImageResult
from hematovision.core.smear import beyond_photo
from hematovision.explain.overlay import fade_beyond_photo


@dataclass(frozen=True)
class StoredImage:
    """A classified image kept for the Explain page: its name, model input, upright RGB and prediction."""

    name: str
    digest: str
    model_input: np.ndarray
    display: np.ndarray
    result: ImageResult

    @property
    def mirrored_margin(self) -> bool:
        """Whether a cell's crop reaches beyond its photo's edge (that margin is faded in ``display``)."""
        return any(beyond_field(self.result))


def explainable(results: list[ImageResult], input_size: int) -> list[StoredImage]:
    """The classified results (kept with their images) in the form the Explain page works on."""
    stored = []
    for result in results:
        if result.prediction is None or result.image is None:
            continue
        model_input = to_model_input(result.image.rgb, input_size)
        stored.append(
            StoredImage(
                name=result.name,
                digest=hashlib.sha1(model_input.tobytes()).hexdigest(),
                model_input=model_input,
                display=centre_square(fade_beyond_photo(result.image.rgb, beyond_field(result))),
                result=result,
            )
        )
    return stored


def beyond_field(result: ImageResult) -> tuple[int, int, int, int]:
    """How far a cell's crop reaches beyond its field's edge (all 0 for an image classified whole)."""
    if result.box is None or result.field_image is None:
        return (0, 0, 0, 0)
    return beyond_photo(result.field_image.rgb.shape, result.box)
