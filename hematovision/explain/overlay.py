"""Turning a [0, 1] heatmap into colour and laying it over the image."""

from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from hematovision.core.smear import CellBox

#: Perceptually uniform maps first: equal steps in attribution look like equal steps in colour,
#: and they survive projectors and colour-vision deficiency better than jet.
COLOUR_MAPS = ("inferno", "viridis", "magma", "cividis", "turbo", "jet")


def colourise(heatmap: np.ndarray, colour_map: str = COLOUR_MAPS[0]) -> np.ndarray:
    """uint8 RGB image of a [0, 1] heatmap."""
    rgba = colormaps[colour_map](np.clip(heatmap, 0.0, 1.0))
    return (rgba[..., :3] * 255).astype(np.uint8)


def overlay(
    image: np.ndarray, heatmap: np.ndarray, colour_map: str = COLOUR_MAPS[0], opacity: float = 0.45
) -> np.ndarray:
    """Blend the coloured heatmap over a uint8 RGB image, resizing the heatmap to fit."""
    height, width = image.shape[:2]
    if heatmap.shape != (height, width):
        heatmap = np.asarray(
            Image.fromarray(heatmap.astype(np.float32), mode="F").resize((width, height), Image.Resampling.BILINEAR)
        )
    coloured = colourise(heatmap, colour_map).astype(np.float32)
    blended = (1.0 - opacity) * image.astype(np.float32) + opacity * coloured
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def draw_cell_boxes(rgb: np.ndarray, boxes: list[tuple[CellBox, str, bool]]) -> np.ndarray:
    """The field with a numbered, labelled box per cell; uncertain cells drawn in amber."""
    image = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(image)
    width = max(2, round(min(image.size) / 200))
    font = ImageFont.load_default(size=max(12, round(min(image.size) / 28)))
    for number, (box, label, uncertain) in enumerate(boxes, start=1):
        colour = (249, 168, 37) if uncertain else (194, 24, 91)
        draw.rectangle((box.left, box.top, box.right - 1, box.bottom - 1), outline=colour, width=width)
        text = f"{number} {label}" + ("?" if uncertain else "")
        left, top, right, bottom = draw.textbbox((box.left, box.top), text, font=font)
        # A box at the photo's right edge would push its label out of the picture: slide it back in.
        shift = max(0, right + 2 * width - image.width)
        left, right = left - shift, right - shift
        y = box.top - (bottom - top) - 2 * width if box.top > bottom - top + 2 * width else box.bottom
        draw.rectangle((left, y, right + 2 * width, y + bottom - top + 2 * width), fill=colour)
        draw.text((box.left - shift + width, y + width - (top - box.top)), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


#: How far the mirrored margin of a cell's crop is blended towards white on screen.
MIRRORED_MARGIN_FADE = 0.55


#: What a picture faded by :func:`fade_beyond_photo` says under it.
MIRRORED_MARGIN_CAPTION = "pale: the photo mirrored beyond its edge"


def fade_beyond_photo(crop: np.ndarray, beyond: tuple[int, int, int, int]) -> np.ndarray:
    """The crop with its mirrored margin (rows above and below, columns before and after the photo) faded.

    The network sees the mirror, since that is how it was trained, but a reader could take a mirrored
    half-cell for a second cell; faded, the margin reads as "not in the photo".
    """
    above, below, before, after = beyond
    if not any(beyond):
        return crop
    height, width = crop.shape[:2]
    outside = np.ones((height, width), bool)
    outside[above : height - below, before : width - after] = False
    faded = crop.astype(np.float32)
    faded[outside] = (1 - MIRRORED_MARGIN_FADE) * faded[outside] + MIRRORED_MARGIN_FADE * 255
    return np.clip(faded + 0.5, 0, 255).astype(np.uint8)
