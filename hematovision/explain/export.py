"""Heatmaps in the image's own coordinates, for the ``explain`` command (and wherever a map is laid on an upload).

The network sees a square of the image: the centre square, or, where :mod:`hematovision.core.framing` re-cuts a
single-cell image around its cell, a square around that cell that may reach beyond the photo (mirrored
there). A map computed on that square is mapped back here: each of the image's pixels takes the map's value
at its place in the square (bilinear); pixels the square leaves out get 0, and the mirrored parts of the
square, which are not in the image, are dropped.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

#: The columns of ``explain.csv``: one row per image explained.
CSV_COLUMNS = ["file", "predicted", "confidence", "target", "method", "peak_x", "peak_y", "map"]


def to_image_coordinates(heat: np.ndarray, window: tuple[int, int, int], shape: tuple[int, ...]) -> np.ndarray:
    """The (n x n) map of the square ``window`` = (left, top, side) laid on an image of ``shape``: float32,
    the image's height x width, values in [0, 1] where ``heat``'s are."""
    left, top, side = window
    height, width = shape[:2]
    scale = heat.shape[0] / side
    # Pixel centres of the image in the map's pixel coordinates (centre-aligned, as a bilinear resize).
    rows = (np.arange(height) + 0.5 - top) * scale - 0.5
    columns = (np.arange(width) + 0.5 - left) * scale - 0.5
    grid_rows, grid_columns = np.meshgrid(rows, columns, indexing="ij")
    mapped = map_coordinates(heat.astype(np.float32), [grid_rows, grid_columns], order=1, mode="nearest")
    ys, xs = np.arange(height), np.arange(width)
    inside = ((ys >= top) & (ys < top + side))[:, None] & ((xs >= left) & (xs < left + side))[None, :]
    return np.clip(np.where(inside, mapped, 0.0), 0.0, 1.0).astype(np.float32)


def peak(heat: np.ndarray) -> tuple[int, int]:
    """The (x, y) pixel of the map's maximum (the first, in reading order, where several tie)."""
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return int(x), int(y)


def unique_stem(name: str, taken: set[str]) -> str:
    """A file stem for ``name`` (a path, or ``archive.zip/inner/path.png``) not in ``taken``, which it joins:
    two images of one name in different folders get ``stem``, ``stem_2``..."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = base.rsplit(".", 1)[0] if "." in base else base
    base = base or "image"
    stem, number = base, 1
    while stem.lower() in taken:
        number += 1
        stem = f"{base}_{number}"
    taken.add(stem.lower())
    return stem
