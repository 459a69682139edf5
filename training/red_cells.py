"""Red cells alone: training images with their cell taken out, for the network to learn that they hold no class.

PBC's platelet images are red cells around one small platelet, and nothing else in PBC shows red cells without a
white cell; so a network trained on PBC alone reads "no white cell here" as *platelet* (a field of red cells:
platelet at 0.99; docs/experiments.md, 2026-12-06). Each view here is a train image whose cell (the stain mask
nearest the centre, hematovision.explain.pointing.cell_mask) is filled with red cells and glass from the same image
(pointing.remove_cell), kept only where the white-cell finder then sees neither a white cell nor a platelet
(another platelet or a neighbour's nucleus left in the frame would make the view a cell after all). Fine-tuning
trains these towards the uniform distribution (training.data.training_dataset).
"""

from __future__ import annotations

import numpy as np

from hematovision.core.smear import find_platelets, find_white_cells
from hematovision.explain.pointing import MAX_MASK_SHARE, cell_mask, remove_cell


def red_cell_view(image: np.ndarray) -> np.ndarray | None:
    """``image`` with its cell removed, or None where the cell cannot be found or something cell-like remains."""
    mask = cell_mask(image)
    if not mask.any() or mask.mean() > MAX_MASK_SHARE:
        return None
    view = remove_cell(image, mask)
    if find_white_cells(view) or find_platelets(view, []):
        return None
    return view


def red_cell_views(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Up to ``count`` red-cell-only views (N, size, size, 3) uint8 of images drawn with ``seed`` without repeats."""
    order = np.random.default_rng(seed).choice(len(images), size=min(count, len(images)), replace=False)
    views = [view for view in (red_cell_view(images[index]) for index in order) if view is not None]
    return np.stack(views) if views else np.zeros((0, *images.shape[1:]), np.uint8)
