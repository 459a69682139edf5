"""Finding white blood cells in a whole blood-smear photo, classically (no network, no training).

In a Romanowsky-type stain (Giemsa, Wright, May-Grünwald) only nuclei and platelets are blue-purple:
blue clearly exceeds red there, while red cells are red-dominant and bare glass is near grey. So a
"blue minus red" map, thresholded, shows nuclei and platelets; size tells the two apart, nearby blobs
are lobes of one nucleus, and the nucleus's box, grown by the cytoplasm around it, is the white cell.

Every size below is in pixels of the working image, a copy scaled to a short side of
``WORK_SHORT_SIDE``: a smear photo's field of view is set by the objective (100x oil), not the camera,
so after this scaling a red cell is about 50 pixels across whatever the camera's resolution.
All values were chosen on the BCCD training photos (see ``training/bccd.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from PIL import Image
from scipy import ndimage as ndi


@dataclass(frozen=True)
class CellBox:
    """A box in pixel coordinates; ``right`` and ``bottom`` are exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)

    def contains(self, x: float, y: float) -> bool:
        return self.left <= x < self.right and self.top <= y < self.bottom

    def intersection(self, other: CellBox) -> int:
        """Area shared with ``other``."""
        overlap_w = min(self.right, other.right) - max(self.left, other.left)
        overlap_h = min(self.bottom, other.bottom) - max(self.top, other.top)
        return max(overlap_w, 0) * max(overlap_h, 0)

    def iou(self, other: CellBox) -> float:
        """Intersection over union; 0 for boxes that do not overlap."""
        intersection = self.intersection(other)
        return intersection / (self.area + other.area - intersection) if intersection else 0.0

    def union(self, other: CellBox) -> CellBox:
        """The smallest box holding both."""
        return CellBox(
            min(self.left, other.left),
            min(self.top, other.top),
            max(self.right, other.right),
            max(self.bottom, other.bottom),
        )


WORK_SHORT_SIDE = 240
#: Smoothed blue minus red (8-bit units) above which a pixel is nuclear stain. Nuclei measure 50-100 in
#: both BCCD and PBC photos, red cells and glass below 20; on the BCCD training photos anything from
#: 35 to 45 gives the same counts, 30 two more errors in 175 photos.
NUCLEUS_THRESHOLD = 35.0
#: Stained blobs closer than this are lobes of one nucleus (a neutrophil's lobes, an eosinophil's two).
#: Two white cells side by side have their nuclei further apart than this, cytoplasm between them.
LOBE_GAP = 16
#: A nucleus, all lobes together, covers at least this many pixels; a platelet or a clump of
#: platelets covers at most about 400 in BCCD, a small lymphocyte's nucleus 1,000 or more.
MIN_NUCLEUS_AREA = 600
#: The cytoplasm seen beyond the nucleus's box on any side: at least MIN_RIM pixels, at most
#: MAX_RIM_FRACTION of the nucleus's equivalent diameter (a rim that "runs on" has met a red cell).
MIN_RIM = 3
MAX_RIM_FRACTION = 0.5
#: Bare glass is the GLASS_PERCENTILE brightness of each GLASS_TILE square; a pixel darker than its
#: local glass by GLASS_MARGIN belongs to a cell (pale neutrophil cytoplasm is 10-30 darker).
GLASS_TILE = 20
GLASS_PERCENTILE = 90
GLASS_MARGIN = 10
#: Two cell boxes sharing this fraction of the smaller one are one cell whose nucleus came apart (an
#: eosinophil's two lobes behind its granules); neighbouring cells share at most about 0.3.
MERGE_OVERLAP = 0.4
#: Camera frames are 4:3, 3:2 or 16:9; single-cell images (CellaVision's 360x363) are square crops. No longer
#: what decides a field (:func:`is_whole_field` reads the content): a wide single-cell image is cut square
#: around its cell (hematovision.core.framing), and a wide one with no white cell is said to have none.
MAX_SINGLE_CELL_ASPECT = 1.15
#: A white cell whose centre lies this near the frame's centre (share of each side) is the cell the image shows.
CENTRE_TOLERANCE = 0.2
#: Context kept around a found cell, as a share of its box's side on each side, when it is cropped
#: for the single-cell classifier: (1 / 0.45 - 1) / 2, so that the cell spans 0.45 of its crop as
#: white cells do in the training images (hematovision.core.framing.PBC_SPAN).
CROP_MARGIN = 0.611
#: Pixels whose brightest channel stays below this, in a region touching the crop's edge, are outside
#: the specimen (an eyepiece camera's black circle, a rotated scan's corners): no stain is that dark.
OUTSIDE_SPECIMEN_LEVEL = 30


def channel_max(image: np.ndarray) -> np.ndarray:
    """``image.max(axis=-1)``, exactly, but element-wise over the channel planes: NumPy reduces a 3-long last axis
    pixel by pixel, 15x slower (the finder's largest cost on a PBC image, docs/experiments.md, issue 41)."""
    return functools.reduce(np.maximum, (image[..., k] for k in range(1, image.shape[-1])), image[..., 0])


def channel_mean(work: np.ndarray) -> np.ndarray:
    """``work.mean(axis=2)`` for a float32 RGB image, the same sums in the same order, over the planes (as fast)."""
    return (work[..., 0] + work[..., 1] + work[..., 2]) / np.float32(3)


def within_radius(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within Euclidean distance ``radius`` of a True pixel of ``mask``: exactly
    ``ndi.distance_transform_edt(~mask) <= radius`` (where ``mask`` has a True pixel), as the mask dilated by a disk,
    one horizontal maximum per row of the disk: a third of the transform's time."""
    flat = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    height = mask.shape[0]
    out = np.zeros(mask.shape, bool)
    runs: dict[int, np.ndarray] = {}
    for dy in range(-radius, radius + 1):
        half = int(np.sqrt(radius * radius - dy * dy))
        while (half + 1) ** 2 + dy * dy <= radius * radius:  # exact in integers, whatever sqrt rounded to
            half += 1
        while half * half + dy * dy > radius * radius:
            half -= 1
        if half not in runs:
            runs[half] = ndi.maximum_filter1d(flat, 2 * half + 1, axis=1, mode="constant", cval=0).view(bool)
        run = runs[half]
        if dy >= 0:
            out[dy:] |= run[: height - dy]
        else:
            out[:dy] |= run[-dy:]
    return out


def reduce_to_work_scale(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The 8-bit RGB photo as floats with a short side of WORK_SHORT_SIDE, and the factor back to photo pixels."""
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an RGB image of shape (height, width, 3), got {rgb.shape}")
    height, width = rgb.shape[:2]
    scale = min(height, width) / WORK_SHORT_SIDE
    size = (max(1, round(width / scale)), max(1, round(height / scale)))
    # Box filtering averages each output pixel's footprint, so JPEG noise is smoothed, not aliased.
    work = Image.fromarray(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)).resize(size, Image.Resampling.BOX)
    return np.asarray(work, dtype=np.float32), scale


def nucleus_mask(work: np.ndarray) -> np.ndarray:
    stain = ndi.gaussian_filter(work[..., 2] - work[..., 0], 1.0)
    return stain > NUCLEUS_THRESHOLD


def stained_mask(work: np.ndarray) -> np.ndarray:
    """Pixels clearly darker than the bare glass around them: cells, including pale cytoplasm.

    The glass level is local (per tile, interpolated) because the illumination of most photos falls
    off towards the corners by more than pale cytoplasm differs from glass.
    """
    lightness = ndi.gaussian_filter(channel_mean(work), 1.5)
    height, width = lightness.shape
    tile_rows, tile_cols = max(1, height // GLASS_TILE), max(1, width // GLASS_TILE)
    tiles = lightness[: tile_rows * GLASS_TILE, : tile_cols * GLASS_TILE].reshape(tile_rows, -1, tile_cols, GLASS_TILE)
    glass_tiles = np.percentile(tiles, GLASS_PERCENTILE, axis=(1, 3)).astype(np.float32)
    # A tile packed with cells has no glass of its own: it borrows its brightest neighbour's.
    glass_tiles = ndi.maximum_filter(glass_tiles, size=3)
    glass = np.asarray(Image.fromarray(glass_tiles).resize((width, height), Image.Resampling.BILINEAR))
    # Closing bridges the gaps between an eosinophil's separate granules and pale specks in cytoplasm.
    return close_twice(lightness < glass - GLASS_MARGIN)


def close_twice(mask: np.ndarray) -> np.ndarray:
    """Exactly ``ndi.binary_closing(mask, iterations=2)`` (3x3 cross, nothing beyond the edge), by shifted slices:
    a fifteenth of its time, which was a sixth of the finder's (issue 41)."""
    closed = np.asarray(mask, dtype=bool)
    for grow in (True, True, False, False):
        step = closed.copy()
        for target, source in (
            (step[1:], closed[:-1]),
            (step[:-1], closed[1:]),
            (step[:, 1:], closed[:, :-1]),
            (step[:, :-1], closed[:, 1:]),
        ):
            if grow:
                target |= source
            else:
                target &= source
        if not grow:
            # Erosion treats beyond the edge as unstained, as scipy's border_value=0 does.
            step[0] = step[-1] = False
            step[:, 0] = step[:, -1] = False
        closed = step
    return closed


def leading_run(rays: np.ndarray) -> np.ndarray:
    """Length of the unbroken run of True at the start of each row."""
    return np.where(rays.all(axis=1), rays.shape[1], np.argmin(rays, axis=1))


def middle_half(span: slice) -> np.ndarray:
    """Indices of the middle half of ``span``, at least one: where rays leave a roundish nucleus squarely."""
    quarter = (span.stop - span.start) // 4
    return np.arange(span.start + quarter, max(span.stop - quarter, span.start + quarter + 1))


def cytoplasm_rims(stained: np.ndarray, rows: slice, cols: slice, cap: int) -> tuple[int, ...]:
    """How far stained pixels reach beyond the nucleus box on each side: (left, top, right, bottom).

    Straight rays leave the box from the middle half of each side; their median ignores the minority
    that run into a touching red cell, and ``cap`` bounds the rest. Outside the photo counts as stained,
    so a cell cut by the frame keeps a full rim (the box is clipped to the frame afterwards).
    """
    padded = np.pad(stained, cap, constant_values=True)
    mid_rows, mid_cols = middle_half(rows) + cap, middle_half(cols) + cap
    left = padded[mid_rows, cols.start : cols.start + cap][:, ::-1]
    right = padded[mid_rows, cols.stop + cap : cols.stop + 2 * cap]
    top = padded[rows.start : rows.start + cap, mid_cols][::-1].T
    bottom = padded[rows.stop + cap : rows.stop + 2 * cap, mid_cols].T
    return tuple(int(np.median(leading_run(rays))) for rays in (left, top, right, bottom))


def find_white_cells(rgb: np.ndarray) -> list[CellBox]:
    """Boxes around each white cell (nucleus and cytoplasm) in an RGB smear photo, top to bottom.

    Platelets, red cells and specks are left out. A white cell cut by the frame is found when enough
    of its nucleus is inside; its box is clipped to the frame. Black beyond the specimen (an eyepiece
    camera's circle) is first painted glass-coloured, or it would read as one huge stained cell.
    """
    work, scale = reduce_to_work_scale(fill_outside_specimen(rgb))
    nuclei = nucleus_mask(work)
    stained = stained_mask(work) | nuclei
    # Label blobs by what is within half a LOBE_GAP of them, so lobes that close are one nucleus.
    groups, _ = ndi.label(within_radius(nuclei, LOBE_GAP // 2))
    groups[~nuclei] = 0
    boxes = []
    for index, (rows, cols) in enumerate(ndi.find_objects(groups), start=1):
        area = int(np.count_nonzero(groups[rows, cols] == index))
        if area < MIN_NUCLEUS_AREA:
            continue
        cap = max(MIN_RIM, round(MAX_RIM_FRACTION * 2 * np.sqrt(area / np.pi)))
        left, top, right, bottom = (max(MIN_RIM, rim) for rim in cytoplasm_rims(stained, rows, cols, cap))
        boxes.append(
            CellBox(
                left=max(0, round((cols.start - left) * scale)),
                top=max(0, round((rows.start - top) * scale)),
                right=min(rgb.shape[1], round((cols.stop + right) * scale)),
                bottom=min(rgb.shape[0], round((rows.stop + bottom) * scale)),
            )
        )
    return sorted(merge_overlapping(boxes), key=lambda box: (box.top, box.left))


#: A stained blob smaller than a nucleus (MIN_NUCLEUS_AREA) but at least this many working pixels, outside every
#: white cell, is a platelet (or a clump). On the 294 annotated BCCD photos this count is the annotated one in
#: 190 and within one of it in 267; 309 found against 282 annotated.
MIN_PLATELET_AREA = 15


def find_platelets(rgb: np.ndarray, white_cells: list[CellBox]) -> list[CellBox]:
    """Boxes around the platelets in a smear photo: the small stained blobs outside the white cells found.

    A count for a lab's platelet estimate per field, not a classification: a clump counts once.
    """
    work, scale = reduce_to_work_scale(fill_outside_specimen(rgb))
    nuclei = nucleus_mask(work)
    labels, _ = ndi.label(nuclei)
    boxes = []
    for index, (rows, cols) in enumerate(ndi.find_objects(labels), start=1):
        area = int(np.count_nonzero(labels[rows, cols] == index))
        if not MIN_PLATELET_AREA <= area < MIN_NUCLEUS_AREA:
            continue
        box = CellBox(round(cols.start * scale), round(rows.start * scale),
                      round(cols.stop * scale), round(rows.stop * scale))  # fmt: skip
        centre = ((box.left + box.right) / 2, (box.top + box.bottom) / 2)
        if not any(cell.contains(*centre) for cell in white_cells):
            boxes.append(box)
    return boxes


def merge_overlapping(boxes: list[CellBox]) -> list[CellBox]:
    """The boxes, with each pair that shares MERGE_OVERLAP of the smaller one replaced by their union."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        for i, j in combinations(range(len(merged)), 2):
            if merged[i].intersection(merged[j]) >= MERGE_OVERLAP * min(merged[i].area, merged[j].area):
                merged[i] = merged[i].union(merged.pop(j))
                changed = True
                break
    return merged


def cut_by_frame(box: CellBox, shape: tuple[int, ...]) -> bool:
    """Whether a found cell touches the photo's border, so part of it may lie outside the photo."""
    height, width = shape[:2]
    return box.left <= 0 or box.top <= 0 or box.right >= width or box.bottom >= height


def centre_offset(box: CellBox, shape: tuple[int, ...]) -> float:
    """How far the box's centre lies from the frame's, as the larger share of the width or the height."""
    height, width = shape[:2]
    return max(abs((box.left + box.right) / 2 / width - 0.5), abs((box.top + box.bottom) / 2 / height - 0.5))


def is_whole_field(rgb: np.ndarray, white_cells: list[CellBox] | None = None) -> bool:
    """True for a field of view (cells to be found and counted one by one), False for an image of one cell.

    Decided by what the image shows, whatever its size or shape: an image of one cell has that cell at its
    centre, and any other white cell in it is a neighbour cut by the frame. So it is one cell where

    - a white cell lies at the centre (:data:`CENTRE_TOLERANCE`; two boxes there are one cell whose nucleus
      came apart, as an eosinophil's lobes may) and every white cell away from the centre is cut by the frame;
    - no white cell is found at all (a platelet, an erythroblast, or nothing the finder knows);
    - no white cell lies at the centre, those found are all cut by the frame, and a platelet (or another small
      stained cell) is at the centre: a platelet image with a neighbour at its edge.

    Anything else is a field: a whole white cell away from the centre. On the 558 BCCD 320x240 views (each
    centred on a labelled white cell) this reads 481 as one cell and 77 as fields (each with a second whole
    white cell); on the 1,894 PBC test images, 1,879 as one cell and 15 as fields (two whole cells in the
    frame; scored by the cell nearest the centre, 13 of the 15 are named right, against 14 read whole); of the
    296 whole BCCD photos, 120 as one cell. The rule it replaces read every image that was not square as a
    field, so a 320x240 view of one cell had its neighbours boxed and counted. (A rule that called square frames
    with white cells but none at the centre fields was tried before and dropped: it named a platelet image's
    neighbour; here a platelet at the centre keeps such an image one cell.) Checked in tests/test_smear.py.
    ``white_cells``: the cells :func:`find_white_cells` found, where the caller has them.
    """
    boxes = find_white_cells(rgb) if white_cells is None else white_cells
    centred = [box for box in boxes if centre_offset(box, rgb.shape) <= CENTRE_TOLERANCE]
    whole_others = [box for box in boxes if box not in centred and not cut_by_frame(box, rgb.shape)]
    if whole_others:
        return True
    if centred or not boxes:
        return False
    platelets = find_platelets(rgb, boxes)
    return not any(centre_offset(box, rgb.shape) <= CENTRE_TOLERANCE for box in platelets)


def central_cell(boxes: list[CellBox], width: int, height: int) -> CellBox | None:
    """The box whose centre lies nearest the frame's centre: the cell a one-label photo is about,
    since whoever took it centred the cell they meant (None when there are no boxes)."""

    def distance(box: CellBox) -> float:
        return ((box.left + box.right - width) / 2) ** 2 + ((box.top + box.bottom - height) / 2) ** 2

    return min(boxes, key=distance, default=None)


def crop_cell(rgb: np.ndarray, box: CellBox, margin: float = CROP_MARGIN) -> np.ndarray:
    """A square crop centred on ``box``, of side ``max(width, height) * (1 + 2 * margin)``.

    Parts beyond the photo are filled by mirroring it at its edge: a black border would be something
    the single-cell classifier never saw in training, where cells sit in a full field of smear. Filling
    them with the glass colour instead was measured and is worse, although a mirrored cell near the edge
    can look doubled: a model trained on PBC alone read 42.8% of 222 BCCD train and validation crops
    right with glass fill against 49.5% mirrored (docs/experiments.md).
    """
    left, top, side = crop_window(rgb.shape, box, margin)
    height, width = rgb.shape[:2]
    inside = rgb[max(top, 0) : min(top + side, height), max(left, 0) : min(left + side, width)]
    above, below, before, after = beyond_photo(rgb.shape, box, margin)
    padding = [(above, below), (before, after)] + [(0, 0)] * (rgb.ndim - 2)
    return fill_outside_specimen(np.pad(inside, padding, mode="symmetric"))


def crop_window(shape: tuple[int, ...], box: CellBox, margin: float = CROP_MARGIN) -> tuple[int, int, int]:
    """Left, top and side in the photo's pixels of :func:`crop_cell`'s square; it may reach beyond the photo."""
    height, width = shape[:2]
    side = max(1, round(max(box.width, box.height) * (1 + 2 * margin)))
    # Clamping the centre into the photo keeps at least one real pixel in the crop to mirror from.
    centre_x = min(max((box.left + box.right) / 2, 0.5), width - 0.5)
    centre_y = min(max((box.top + box.bottom) / 2, 0.5), height - 0.5)
    return round(centre_x - side / 2), round(centre_y - side / 2), side


def beyond_photo(shape: tuple[int, ...], box: CellBox, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """Rows above and below, columns before and after the photo in :func:`crop_cell`'s crop (mirrored there)."""
    return window_beyond_photo(shape, crop_window(shape, box, margin))


def window_beyond_photo(shape: tuple[int, ...], window: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """Rows above and below, columns before and after a photo of ``shape`` in the square ``window`` (left, top,
    side, in the photo's pixels)."""
    height, width = shape[:2]
    left, top, side = window
    return max(-top, 0), max(top + side - height, 0), max(-left, 0), max(left + side - width, 0)


def fill_outside_specimen(rgb: np.ndarray) -> np.ndarray:
    """Paint black regions that touch the edge (no specimen there) with the image's glass colour.

    Left black, the cell finder reads them as stained cytoplasm, and the classifier, which never saw
    such regions in training, as "not a blood cell". Returns the input itself when there is nothing to
    fill. Only found cells get this: an image classified whole as one cell is shown to the model as is.
    """
    if rgb.ndim != 3:  # not RGB: left for the caller's own check to refuse
        return rgb
    dark = channel_max(rgb) < OUTSIDE_SPECIMEN_LEVEL
    if not dark.any():
        return rgb
    regions, _ = ndi.label(dark)
    edge_labels = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    outside = np.isin(regions, edge_labels[edge_labels > 0])
    if not outside.any() or outside.all():
        return rgb
    specimen = rgb[~outside].astype(np.float32)
    brightness = specimen.sum(axis=1)
    glass = np.median(specimen[brightness >= np.percentile(brightness, GLASS_PERCENTILE)], axis=0)
    filled = rgb.copy()
    filled[outside] = np.round(glass).astype(rgb.dtype)
    return filled
