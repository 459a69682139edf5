"""How one image is read before the network sees it: decoded, read as one cell or a field of view by the mode,
its white cells found once, each cell framed and resized. Picklable results, so a worker process may do it."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hematovision.core.framing import frame_single_cell_with_window
from hematovision.core.imaging import DecodedImage, ImageLoadError, decode_image, to_model_input
from hematovision.core.smear import (
    MAX_SINGLE_CELL_ASPECT,
    CellBox,
    crop_cell,
    find_platelets,
    find_white_cells,
    is_whole_field,
)

CLASSIFY_MODES = ("auto", "single", "field")


NO_CELL_FOUND_NOTE = "wide frame, but no white cell found in it: classified as one centred cell"


#: Cells cut by the frame are read less reliably (in BCCD photos 5 of 73 such cells are flagged as not blood
#: cells, against 6 of 235 inner ones), and many counting protocols leave them out: the reader decides.
CUT_BY_FRAME_NOTE = "cut by the photo's edge: part of the cell is outside the photo"


DECODE_WORKERS = 4


@dataclass
class Inspection:
    """What the decoding workers make of one input: small, and picklable, so that it may come from another process.

    ``single``: read as one cell (``inputs`` holds its framed view); else a field of view (``boxes`` the white cells
    found, ``inputs`` one crop per box). ``image``: kept only where asked (the framed view of one cell, or the
    whole field); ``shape``: the decoded image's. A single cell re-cut around itself has its square as ``window``
    (left, top, side in the decoded image's pixels) and, where images are kept, the decoded image as ``upload``.
    """

    error: str | None = None
    notes: list[str] = field(default_factory=list)
    shape: tuple[int, ...] = ()
    single: bool = True
    boxes: list[CellBox] | None = None
    framing_note: str | None = None
    platelets: int | None = None
    inputs: list[np.ndarray] = field(default_factory=list)
    image: DecodedImage | None = None
    window: tuple[int, int, int] | None = None
    upload: DecodedImage | None = None


def inspect_image(source: bytes | str | Path, mode: str, input_size: int, keep_images: bool = False) -> Inspection:
    """Decode one input, decide how ``mode`` reads it, frame it and resize each cell to the network's input.

    The white-cell finder, most of the time this takes, runs once: its boxes decide the reading and frame a
    single cell.
    """
    try:
        decoded = decode_image(source)
    except ImageLoadError as exc:
        return Inspection(error=str(exc))
    rgb = decoded.rgb
    found = None if mode == "single" else find_white_cells(rgb)
    boxes = field_boxes(rgb, mode, found)
    if boxes is None or (not boxes and mode != "field"):
        framed, framing_note, window = frame_single_cell_with_window(rgb, found)
        recut = framed is not rgb
        return Inspection(
            notes=decoded.notes,
            shape=rgb.shape,
            boxes=boxes,
            framing_note=framing_note,
            inputs=[to_model_input(framed, input_size)],
            image=DecodedImage(framed, decoded.notes) if keep_images else None,
            window=window if recut else None,
            upload=decoded if keep_images and recut else None,
        )
    return Inspection(
        notes=decoded.notes,
        shape=rgb.shape,
        single=False,
        boxes=boxes,
        platelets=len(find_platelets(rgb, boxes)),
        inputs=[to_model_input(crop_cell(rgb, box), input_size) for box in boxes],
        image=decoded if keep_images else None,
    )


def field_boxes(rgb: np.ndarray, mode: str, white_cells: list[CellBox] | None = None) -> list[CellBox] | None:
    """How a mode reads an image: None for one centred cell, else the white cells found in the field.

    "single" and "field" force a reading; "auto" decides by what the image shows (one white cell at its centre
    is one cell, whatever the image's size: :func:`hematovision.core.smear.is_whole_field`). One definition for the
    app, the CLI and the evaluation, so all three frame images alike. ``white_cells``: what
    :func:`hematovision.core.smear.find_white_cells` found in ``rgb``, where the caller has it (else it runs here).
    """
    if mode == "single":
        return None
    boxes = find_white_cells(rgb) if white_cells is None else white_cells
    if mode == "field" or is_whole_field(rgb, boxes):
        return boxes
    # One cell. A wide frame with no white cell at all gets [] so that the reader is told none was found.
    height, width = rgb.shape[:2]
    return [] if not boxes and max(height, width) > MAX_SINGLE_CELL_ASPECT * min(height, width) else None


def decode_all(
    sources: Iterable[bytes | str | Path], workers: int = DECODE_WORKERS
) -> Iterable[DecodedImage | ImageLoadError]:
    """Decode in threads (Pillow releases the GIL while decoding), in input order."""

    def attempt(source):
        try:
            return decode_image(source)
        except ImageLoadError as exc:
            return exc

    with ThreadPoolExecutor(workers) as pool:
        yield from pool.map(attempt, sources)
