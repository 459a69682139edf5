"""The Explain page's maps: the image, its heatmap and the overlay side by side."""

from __future__ import annotations

import numpy as np

from hematovision.app.stored_image import StoredImage
from hematovision.explain.export import to_image_coordinates
from hematovision.explain.overlay import colourise, overlay


def overlay_on_upload(image: StoredImage, heat: np.ndarray, colour_map: str, opacity: float) -> np.ndarray | None:
    """The map laid back onto the uploaded image where the network read a square re-cut around the cell (issue 38:
    the overlay lies on the cell the user sees); None where the network read the image as shown."""
    result = image.result
    if result.window is None or result.upload is None:
        return None
    upload = result.upload.rgb
    return overlay(upload, to_image_coordinates(heat, result.window, upload.shape), colour_map, opacity)


def show_maps(container, image: StoredImage, heat: np.ndarray, method: str, colour_map: str, opacity: float,
              note: str = "") -> np.ndarray:  # fmt: skip
    """Draw the image as the network saw it, the heatmap and the overlay in ``container``; returns what the
    download offers: the image under the overlay and the overlay, side by side."""
    original_column, heatmap_column, overlay_column = container.columns(3)
    original_column.image(image.display, caption=f"as the network sees it ({image.seen_as})", width="stretch")
    heatmap_column.image(colourise(heat, colour_map), caption=f"{method} heatmap{note}", width="stretch")
    on_upload = overlay_on_upload(image, heat, colour_map, opacity)
    if on_upload is not None:
        overlay_column.image(on_upload, caption="overlay on your image", width="stretch")
        return np.hstack([image.result.upload.rgb, on_upload])
    blended = overlay(image.display, heat, colour_map, opacity)
    overlay_column.image(blended, caption="overlay", width="stretch")
    return np.hstack([image.display, blended])
