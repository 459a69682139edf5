"""The Explain page's maps: the image, its heatmap and the overlay side by side."""

from __future__ import annotations

import numpy as np
from PIL import Image

from hematovision.app.stored_image import StoredImage
from hematovision.explain.export import to_image_coordinates
from hematovision.explain.overlay import colourise, overlay

#: The upload under the overlay is shrunk to this longest side: laying a map on a 12-megapixel photo at full size
#: took 12 s on every rerun of the page (2 cores), and the column shows a few hundred pixels.
UPLOAD_SHOWN_PIXELS = 1024


def upload_as_shown(image: StoredImage) -> tuple[np.ndarray, tuple[int, int, int]] | None:
    """The uploaded image as the overlay shows it (at most :data:`UPLOAD_SHOWN_PIXELS` a side) and the network's
    square in its pixels, where the network read a square re-cut around the cell; None where it read the image as
    shown."""
    result = image.result
    if result.window is None or result.upload is None:
        return None
    upload = result.upload.rgb
    scale = min(1.0, UPLOAD_SHOWN_PIXELS / max(upload.shape[:2]))
    if scale == 1.0:
        return upload, result.window
    size = (max(1, round(upload.shape[1] * scale)), max(1, round(upload.shape[0] * scale)))
    shown = np.asarray(Image.fromarray(upload).resize(size, Image.Resampling.BILINEAR))
    left, top, side = result.window
    return shown, (round(left * scale), round(top * scale), max(1, round(side * scale)))


def overlay_on_upload(
    image: StoredImage, heat: np.ndarray, colour_map: str, opacity: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """(the upload as shown, the map laid back onto it) where the network read a square re-cut around the cell
    (issue 38: the overlay lies on the cell the user sees); None where the network read the image as shown."""
    shown = upload_as_shown(image)
    if shown is None:
        return None
    upload, window = shown
    return upload, overlay(upload, to_image_coordinates(heat, window, upload.shape), colour_map, opacity)


def show_maps(container, image: StoredImage, heat: np.ndarray, method: str, colour_map: str, opacity: float,
              note: str = "") -> np.ndarray:  # fmt: skip
    """Draw the image as the network saw it, the heatmap and the overlay in ``container``; returns what the
    download offers: the image under the overlay and the overlay, side by side."""
    original_column, heatmap_column, overlay_column = container.columns(3)
    original_column.image(image.display, caption=f"as the network sees it ({image.seen_as})", width="stretch")
    heatmap_column.image(colourise(heat, colour_map), caption=f"{method} heatmap{note}", width="stretch")
    laid_back = overlay_on_upload(image, heat, colour_map, opacity)
    if laid_back is not None:
        overlay_column.image(laid_back[1], caption="overlay on your image", width="stretch")
        return np.hstack(laid_back)
    blended = overlay(image.display, heat, colour_map, opacity)
    overlay_column.image(blended, caption="overlay", width="stretch")
    return np.hstack([image.display, blended])
