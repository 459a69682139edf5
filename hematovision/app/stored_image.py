"""A classified image in the form the Explain, Review and teaching pages work on (pure Python)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from hematovision.core.imaging import centre_square, to_model_input
from hematovision.core.predict import ImageResult
from hematovision.explain.overlay import MIRRORED_MARGIN_CAPTION, fade_beyond_photo


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
        return any(self.result.beyond_photo())

    @property
    def seen_as(self) -> str:
        """How the network's square was cut from what the user gave, in a few words for a caption."""
        if self.mirrored_margin:
            return MIRRORED_MARGIN_CAPTION
        if self.result.window is not None:
            return "re-cut around the cell"
        return "cut around the cell" if self.result.box is not None else "centre square"


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
                display=centre_square(fade_beyond_photo(result.image.rgb, result.beyond_photo())),
                result=result,
            )
        )
    return stored
