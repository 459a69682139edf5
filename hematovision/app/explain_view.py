"""The Explain page's maps: the image, its heatmap and the overlay side by side."""

from __future__ import annotations

import numpy as np

from hematovision.app.stored_image import StoredImage
from hematovision.explain.overlay import colourise, overlay


def show_maps(container, image: StoredImage, heat: np.ndarray, method: str, colour_map: str, opacity: float,
              note: str = "") -> np.ndarray:  # fmt: skip
    """Draw the image as the network saw it, the heatmap and the overlay in ``container``; returns the overlay."""
    blended = overlay(image.display, heat, colour_map, opacity)
    original_column, heatmap_column, overlay_column = container.columns(3)
    seen_note = "pale: the photo mirrored beyond its edge" if image.mirrored_margin else "centre square"
    original_column.image(image.display, caption=f"as the network sees it ({seen_note})", width="stretch")
    heatmap_column.image(colourise(heat, colour_map), caption=f"{method} heatmap{note}", width="stretch")
    overlay_column.image(blended, caption="overlay", width="stretch")
    return blended
