"""Framing: show the network every white cell at the size, in its frame, that it learned cells at.

Labs photograph cells at other magnifications and crop them differently: a 120x120 crop from a
low-resolution camera is filled by its cell, a BCCD smear photo shows a white cell as a small part of
the view. The network learned from PBC images, where a white cell's box spans 0.24-0.77 of the frame
(1st to 95th percentile of 960 training images, 0.91 at the 99th; erythroblasts and lymphocytes
smallest, monocytes and immature granulocytes largest). So every path (app, CLIs, evaluation,
training) frames a cell the same way:

- a cell found in a field of view is cropped so that it spans :data:`PBC_SPAN` of its crop;
- a single-cell image whose central white cell spans less or more than PBC's range is re-cut around
  that cell so that it spans :data:`PBC_SPAN`; inside the range it is left exactly as it is, so PBC's
  own images (and the size differences between classes within one lab) are untouched;
- a single-cell image that is not square (a 320x240 view centred on its cell) is cut to a square around its
  central white cell, as a cell found in a field is, rather than to its centre square.

Both are :func:`hematovision.core.smear.crop_cell` with its margin: where the new frame reaches beyond the
image, the image is mirrored at its edge, as for a cell at the edge of a field of view.
"""

from __future__ import annotations

import numpy as np

from hematovision.core.imaging import to_model_input
from hematovision.core.smear import (
    CENTRE_TOLERANCE,
    MAX_SINGLE_CELL_ASPECT,
    CellBox,
    central_cell,
    centre_offset,
    crop_cell,
    crop_window,
    find_white_cells,
)

#: Median span of a white cell's box over the shorter side of a PBC training image, pooled over the
#: white-cell classes (per class 0.31 erythroblast to 0.55 monocyte).
PBC_SPAN = 0.45
#: Spans outside this range are not PBC's: the cell is re-cut to PBC_SPAN.
SPAN_RANGE = (0.22, 0.8)
#: Said where a wide image of one cell is cut square around it (the network sees the cell, not the centre square).
WIDE_FRAME_NOTE = "one white cell at the centre of a wide frame: cut square around it"


def cell_span(box: CellBox, shape: tuple[int, ...]) -> float:
    """The box's longer side over the image's shorter side."""
    return max(box.width, box.height) / min(shape[:2])


def centred_cell(rgb: np.ndarray, white_cells: list[CellBox] | None = None) -> CellBox | None:
    """The white cell a single-cell image is about: the one found nearest its centre, if near enough.

    ``white_cells``: what :func:`hematovision.core.smear.find_white_cells` found in ``rgb``, where the caller
    has it already (the finder is most of the time a batch takes); else it is run here.
    """
    height, width = rgb.shape[:2]
    boxes = find_white_cells(rgb) if white_cells is None else white_cells
    box = central_cell(boxes, width, height)
    return box if box is not None and centre_offset(box, rgb.shape) <= CENTRE_TOLERANCE else None


def frame_single_cell(rgb: np.ndarray, white_cells: list[CellBox] | None = None) -> tuple[np.ndarray, str | None]:
    """The image as the network should see it, and a note for the user where it was re-cut (``white_cells``:
    as for :func:`centred_cell`)."""
    framed, note, _ = frame_single_cell_with_window(rgb, white_cells)
    return framed, note


def frame_single_cell_with_window(
    rgb: np.ndarray, white_cells: list[CellBox] | None = None
) -> tuple[np.ndarray, str | None, tuple[int, int, int]]:
    """:func:`frame_single_cell`, plus the square the network sees as (left, top, side) in the image's own
    pixels (it may reach beyond the image, where the image is mirrored): how to map a heatmap back onto it."""
    height, width = rgb.shape[:2]
    side = min(height, width)  # unframed: imaging.to_model_input's centre square
    unframed = (width - side) // 2, (height - side) // 2, side
    box = centred_cell(rgb, white_cells)
    if box is None:
        return rgb, None, unframed
    span = cell_span(box, rgb.shape)
    low, high = SPAN_RANGE
    wide = max(height, width) > MAX_SINGLE_CELL_ASPECT * min(height, width)
    if low <= span <= high and wide:
        return crop_cell(rgb, box), WIDE_FRAME_NOTE, crop_window(rgb.shape, box)
    if low <= span <= high:
        return rgb, None, unframed
    how = "larger" if span > high else "smaller"
    note = (
        f"the cell spans {span:.2f} of the frame, {how} than in the training images ({low}-{high}): "
        f"re-cut so that it spans {PBC_SPAN}"
    )
    return crop_cell(rgb, box), note, crop_window(rgb.shape, box)


def framed_model_input(rgb: np.ndarray, size: int) -> np.ndarray:
    """A single-cell image as the network takes it, whichever path it came by: framed, then resized."""
    return to_model_input(frame_single_cell(rgb)[0], size)
