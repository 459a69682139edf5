"""A test the centre cannot win: does a heatmap point at the cell, wherever the cell is?

PBC cells sit at the middle of their image, so a map that always marks the middle looks right. Here the cell
is moved (off-centre re-crops) or shares the image with a cell of another class (two-cell composites), and a
map is scored by where it peaks and how much of its mass falls on the cell.

**The cell's mask, from the stain's optical density.** Each channel's light is divided by the glass colour
(the channel's 99th percentile: most of a PBC image is bright glass or pale red cells) and turned into optical
density, ``OD = -log10(I / glass)``. The *red channel's* density is the nuclear signal: the azure/methylene
blue of a May-Grünwald-Giemsa stain (nuclei, basophilic cytoplasm, basophil and ig granules) absorbs red
light, while the eosin of red cells and of pale neutrophil cytoplasm barely does. Otsu's threshold on that
density (256-bin histogram, the split that maximises the between-class variance) marks the stained pixels,
with a floor of ``MIN_NUCLEAR_DENSITY`` (red cells reach about 0.13 in PBC, nuclei 0.4: in an image whose
only azure is a small platelet, Otsu alone splits the red cells from the glass);
a closing with a disc of ``LOBE_JOIN`` of the side joins a segmented nucleus's lobes; holes are filled; the
component nearest the image centre (PBC's cells are centred) is the cell, and a rim of ``CYTOPLASM_RIM``
of the side is added for the cytoplasm the red channel misses. The mask thus covers the nucleus and a band
of cytoplasm; pale wide cytoplasm (some neutrophils, monocytes) extends past it. Its centre is the mask's
centroid.

**Off-centre re-crops.** The image (a square) is mirror-padded by its own side and re-cropped, same size,
so that the cell's centre sits at 30% or 70% of each side (four positions). The mask moves with it.

**Two-cell composites.** Two cells of different classes, each re-cropped so that its centre is at the middle,
keep their middle half-width strips, side by side: the same side as the originals, each cell at its own
scale, the centres at 25% and 75% of the width.

**The cell removed.** Does the network's call need the cell at all? The mask, widened by ``REMOVAL_MARGIN`` of
the side for the cytoplasm it leaves out, is filled with the same image shifted by half its side (both ways,
wrapping round): what lands there is the image's corners, red cells and glass of the same smear and stain, so
the hole is not a shape of its own. A class still called with its cell gone is read from the surroundings,
and no map of it can point at the cell.

**Scores.** Pointing hit: the map's peak lies within ``POINTING_TOLERANCE`` x side of the cell's centre.
Mass inside: the share of the map's (non-negative) mass inside the cell's mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: The pointing game's tolerance: the peak within this fraction of the side from the cell's centre.
POINTING_TOLERANCE = 0.2
#: Where the cell's centre is put in an off-centre re-crop, as a fraction of each side.
OFF_CENTRE_FRACTIONS = (0.3, 0.7)
OFF_CENTRE_POSITIONS = tuple((row, col) for row in OFF_CENTRE_FRACTIONS for col in OFF_CENTRE_FRACTIONS)
#: Glass colour: each channel's percentile (the brightest pixels are glass).
GLASS_PERCENTILE = 99
#: Floor of the nuclear threshold (red-channel optical density, log10).
MIN_NUCLEAR_DENSITY = 0.2
#: Closing radius that joins a nucleus's lobes, as a fraction of the side.
LOBE_JOIN = 0.02
#: Cytoplasm rim added around the nuclear signal, as a fraction of the side.
CYTOPLASM_RIM = 0.02
#: A mask over more than this share of the image is not one cell (the mask failed): such an image is left out.
MAX_MASK_SHARE = 0.5
#: How far beyond the mask a removed cell is filled, as a fraction of the side (pale cytoplasm, a rim of stain).
REMOVAL_MARGIN = 0.05


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """Per-channel optical density (H, W, 3) of a uint8 RGB image against its own glass colour."""
    light = rgb.astype(np.float32)
    glass = np.maximum(np.percentile(light.reshape(-1, 3), GLASS_PERCENTILE, axis=0), 1.0)
    return -np.log10(np.clip(light / glass, 1.0 / 255.0, 1.0))


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the histogram split that maximises the between-class variance (values above it are
    the stained class)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    mass_low = np.cumsum(counts * centres)
    mean_low = mass_low / np.maximum(weight_low, 1)
    mean_high = (mass_low[-1] - mass_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    # Every split in an empty gap between two modes is as good: take the middle of the best ones.
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float(edges[1:][best].mean())


def _disc(radius: int) -> np.ndarray:
    span = np.arange(-radius, radius + 1)
    return span[:, None] ** 2 + span[None, :] ** 2 <= radius**2


def cell_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean mask of the cell nearest the image centre (see the module's docstring)."""
    side = min(rgb.shape[:2])
    density = optical_density(rgb)
    red = density[..., 0]
    stained = red > max(otsu_threshold(red), MIN_NUCLEAR_DENSITY)
    join = max(1, round(LOBE_JOIN * side))
    padded = np.pad(stained, join)  # closing near the border without eroding from outside
    stained = ndi.binary_closing(padded, structure=_disc(join))[join:-join, join:-join]
    stained = ndi.binary_fill_holes(stained)
    labels, count = ndi.label(stained)
    if count == 0:
        return np.zeros(rgb.shape[:2], bool)
    rows, cols = np.indices(rgb.shape[:2])
    centre_row, centre_col = (rgb.shape[0] - 1) / 2, (rgb.shape[1] - 1) / 2
    distance = np.hypot(rows - centre_row, cols - centre_col)
    nearest = ndi.minimum(distance, labels, index=np.arange(1, count + 1))
    cell = labels == 1 + int(np.argmin(nearest))
    rim = max(1, round(CYTOPLASM_RIM * side))
    return ndi.binary_fill_holes(ndi.binary_dilation(cell, structure=_disc(rim)))


def mask_centre(mask: np.ndarray) -> tuple[float, float]:
    """The mask's centroid (row, column)."""
    if not mask.any():
        raise ValueError("empty mask: no cell found")
    rows, cols = np.nonzero(mask)
    return float(rows.mean()), float(cols.mean())


def recrop(
    image: np.ndarray, mask: np.ndarray, centre: tuple[float, float], target: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The square ``image`` mirror-padded by its side and re-cropped (same size) so that ``centre`` (row, col)
    lands at ``target`` (fractions of each side); the mask moves with it (zeros beyond the original)."""
    side = image.shape[0]
    if image.shape[1] != side:
        raise ValueError("recrop takes a square image")
    top = round(centre[0] - target[0] * side) + side
    left = round(centre[1] - target[1] * side) + side
    pad = ((side, side), (side, side))
    big_image = np.pad(image, (*pad, (0, 0)), mode="symmetric")
    big_mask = np.pad(mask, pad)
    return big_image[top : top + side, left : left + side], big_mask[top : top + side, left : left + side]


def off_centre(image: np.ndarray, mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The four off-centre re-crops (cell centre at 30% or 70% of each side), with their masks."""
    centre = mask_centre(mask)
    return [recrop(image, mask, centre, position) for position in OFF_CENTRE_POSITIONS]


def composite(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two (square image, mask) pairs of the same side, side by side: each cell centred in its half.

    Returns the composite and the two masks (first cell left, second right)."""
    side = first[0].shape[0]
    if second[0].shape[0] != side:
        raise ValueError("both cells need the same side")
    quarter, half = side // 4, side // 2
    images, masks = [], []
    for index, (image, mask) in enumerate((first, second)):
        centred_image, centred_mask = recrop(image, mask, mask_centre(mask), (0.5, 0.5))
        width = half if index == 0 else side - half
        strip = slice(quarter, quarter + width)
        images.append(centred_image[:, strip])
        masks.append(centred_mask[:, strip])
    image = np.concatenate(images, axis=1)
    left = np.concatenate([masks[0], np.zeros_like(masks[1])], axis=1)
    right = np.concatenate([np.zeros_like(masks[0]), masks[1]], axis=1)
    return image, left, right


def remove_cell(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with the cell under ``mask`` (widened by :data:`REMOVAL_MARGIN`) replaced by the same image shifted
    by half its side: the red cells and glass of its corners (see the module's docstring)."""
    side = min(image.shape[:2])
    widened = ndi.binary_dilation(mask, structure=_disc(max(1, round(REMOVAL_MARGIN * side))))
    shifted = np.roll(image, (image.shape[0] // 2, image.shape[1] // 2), axis=(0, 1))
    removed = image.copy()
    removed[widened] = shifted[widened]
    return removed


def peak(heatmap: np.ndarray) -> tuple[float, float]:
    """The map's peak (row, col): the centroid of its maximal pixels, so a plateau counts at its middle."""
    rows, cols = np.nonzero(heatmap >= heatmap.max())
    return float(rows.mean()), float(cols.mean())


def pointing_hit(heatmap: np.ndarray, centre: tuple[float, float], tolerance: float = POINTING_TOLERANCE) -> bool:
    """Whether the map's peak lies within ``tolerance`` x side of ``centre`` (row, col)."""
    row, col = peak(heatmap)
    return bool(np.hypot(row - centre[0], col - centre[1]) <= tolerance * min(heatmap.shape))


def mass_inside(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """The share of the map's non-negative mass that lies inside ``mask``."""
    weights = np.clip(heatmap.astype(np.float64), 0, None)
    total = weights.sum()
    return float(weights[mask].sum() / total) if total > 0 else 0.0
