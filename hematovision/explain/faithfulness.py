"""How faithful a saliency map is to the network: does removing what it marks change the answer?

Pure NumPy/SciPy; the network enters only as ``probability_fn(batch) -> (N, classes)`` on uint8 images,
so the same code scores any method on any model (and hand-made arrays in the tests).

- **Deletion / insertion** (Petsiuk et al., 2018, RISE): the most salient pixels first, in equal steps,
  are replaced by the image's mean colour (deletion) or revealed on a blurred copy (insertion); the area
  under the class probability curve is low for deletion and high for insertion when the map is faithful.
- **ROAD** (Rong et al., 2022): the most relevant (MoRF) or least relevant (LeRF) pixels are removed at
  several percentiles and filled by noisy linear imputation, each from its neighbours, so that the shape of
  the hole does not give the class away. A faithful map makes MoRF fall fast and LeRF stay high.
- **Baselines** every method must beat: a random map as coarse as Grad-CAM's grid (a random map at pixel
  level is filled back almost perfectly by imputation and would flatter every method), and a centred blob
  (the cells are centred, so "look at the middle" is a strong cheat).
- **Removal check** for one image (the Explain page): the confidence after removing the hottest 10% and 20%
  against after removing the same area where a random map is hottest.

Quantus (0.6) implements most of these, but its TensorFlow extra pins Keras 2, TensorFlow < 2.16 and
NumPy < 2, and this project runs Keras 3 on TensorFlow 2.21 and NumPy 2; tf-keras-vis has no metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
from scipy.ndimage import gaussian_filter, zoom
from scipy.sparse.linalg import splu
from scipy.stats import spearmanr

ProbabilityFn = Callable[[np.ndarray], np.ndarray]

DELETION_STEPS = 20
ROAD_PERCENTILES = (10, 30, 50, 70, 90)
#: Blur of the insertion start, as a fraction of the image side: the cell's outline and colour survive,
#: its nucleus and granules do not.
INSERTION_BLUR = 0.05
#: Imputation noise in grey levels: ROAD adds a little so that filled regions are not perfectly smooth.
IMPUTATION_NOISE = 2.5
#: Grid of the random baseline map, as coarse as Grad-CAM's on MobileNetV2 at 224 px (7 x 7).
RANDOM_GRID = 7
#: Spread of the centred blob baseline, as a fraction of the image side.
CENTRE_SIGMA = 0.2
RANDOM_MAP = "random map"
CENTRE_MAP = "centred blob"
BASELINES = (RANDOM_MAP, CENTRE_MAP)

# Neighbour weights of ROAD's linear imputation: each missing pixel is the weighted mean of its 8 neighbours.
_NEIGHBOURS = (
    (-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
    (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12),
)  # fmt: skip


def salience_order(saliency: np.ndarray, seed: int = 0) -> np.ndarray:
    """Flat pixel indices, most salient first; ties (a map's flat zero region) broken at random, not row by row."""
    tiebreak = np.random.default_rng(seed).random(saliency.size)
    return np.lexsort((tiebreak, -saliency.ravel()))


def top_mask(saliency: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of exactly ``fraction`` of the pixels, the most salient ones (ties broken at random).

    A partial sort, not :func:`salience_order`: the Explain page's check needs only the top, and fast.
    """
    count = round(fraction * saliency.size)
    mask = np.zeros(saliency.size, bool)
    if count > 0:
        # Jitter far below any difference a map's float32 values can hold: it only orders exact ties.
        jitter = 1e-12 * np.random.default_rng(seed).random(saliency.size)
        key = saliency.ravel().astype(np.float64) + jitter
        mask[np.argpartition(-key, count - 1)[:count]] = True
    return mask.reshape(saliency.shape)


def blurred(image: np.ndarray, fraction: float = INSERTION_BLUR) -> np.ndarray:
    sigma = fraction * max(image.shape[:2])
    return np.stack([gaussian_filter(image[..., c].astype(np.float32), sigma) for c in range(3)], -1).astype(np.uint8)


def mean_colour(image: np.ndarray) -> np.ndarray:
    return np.broadcast_to(image.reshape(-1, 3).mean(axis=0).round().astype(np.uint8), image.shape)


def area_under_curve(curve: np.ndarray) -> float:
    """Trapezoid area of a curve sampled at equal steps from 0 to 1 of the pixels."""
    curve = np.asarray(curve, np.float64)
    return float(((curve[1:] + curve[:-1]) / 2).mean())


def _blend_curve(
    start: np.ndarray, end: np.ndarray, order: np.ndarray, probability_fn: ProbabilityFn, class_index: int, steps: int
) -> np.ndarray:
    """Class probability as pixels switch from ``start`` to ``end`` in ``order``, ``steps`` equal steps."""
    pixels = order.size
    flat_start, flat_end = start.reshape(pixels, 3), end.reshape(pixels, 3)
    batch = np.empty((steps + 1, *start.shape), np.uint8)
    for step in range(steps + 1):
        switched = np.zeros(pixels, bool)
        switched[order[: round(step * pixels / steps)]] = True
        batch[step] = np.where(switched[:, None], flat_end, flat_start).reshape(start.shape)
    return probability_fn(batch)[:, class_index]


def deletion_curve(
    image: np.ndarray,
    saliency: np.ndarray,
    probability_fn: ProbabilityFn,
    class_index: int,
    steps: int = DELETION_STEPS,
    seed: int = 0,
) -> np.ndarray:
    """Class probability as the most salient pixels are replaced by the image's mean colour (steps + 1 points)."""
    order = salience_order(saliency, seed)
    return _blend_curve(image, mean_colour(image), order, probability_fn, class_index, steps)


def insertion_curve(
    image: np.ndarray,
    saliency: np.ndarray,
    probability_fn: ProbabilityFn,
    class_index: int,
    steps: int = DELETION_STEPS,
    seed: int = 0,
) -> np.ndarray:
    """Class probability as the most salient pixels are revealed on a blurred copy (steps + 1 points)."""
    order = salience_order(saliency, seed)
    return _blend_curve(blurred(image), image, order, probability_fn, class_index, steps)


def impute(image: np.ndarray, mask: np.ndarray, noise: float = IMPUTATION_NOISE, seed: int = 0) -> np.ndarray:
    """ROAD's noisy linear imputation: every masked pixel becomes the weighted mean of its 8 neighbours
    (a sparse linear system over all masked pixels at once), plus a little Gaussian noise."""
    height, width = mask.shape
    missing = int(mask.sum())
    if missing == 0:
        return image.copy()
    if missing == mask.size:
        raise ValueError("nothing left to impute from: the whole image is masked")
    number = -np.ones(mask.shape, np.int64)
    number[mask] = np.arange(missing)
    ys, xs = np.nonzero(mask)
    known = image.astype(np.float64)
    diagonal = np.zeros(missing)
    right_side = np.zeros((missing, image.shape[2]))
    rows, columns, values = [np.arange(missing)], [np.arange(missing)], []
    for dy, dx, weight in _NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = np.flatnonzero((ny >= 0) & (ny < height) & (nx >= 0) & (nx < width))
        ny, nx = ny[inside], nx[inside]
        diagonal[inside] += weight
        unknown = mask[ny, nx]
        rows.append(inside[unknown])
        columns.append(number[ny[unknown], nx[unknown]])
        values.append(np.full(int(unknown.sum()), -weight))
        # Each masked pixel appears once per offset, so a plain indexed sum is safe (and faster than np.add.at).
        right_side[inside[~unknown]] += weight * known[ny[~unknown], nx[~unknown]]
    matrix = sparse.csc_matrix(
        (np.concatenate([diagonal, *values]), (np.concatenate(rows), np.concatenate(columns))), shape=(missing, missing)
    )
    filled = splu(matrix).solve(right_side)
    filled += np.random.default_rng(seed).normal(0.0, noise, filled.shape)
    out = image.copy()
    out[mask] = np.clip(np.rint(filled), 0, 255).astype(np.uint8)
    return out


@dataclass
class RoadCurves:
    percentiles: tuple[int, ...]
    most_relevant_first: np.ndarray  # class probability after removing the top p% (MoRF): low is faithful
    least_relevant_first: np.ndarray  # ... after removing the bottom p% (LeRF): high is faithful

    @property
    def gap(self) -> float:
        """Mean LeRF minus MoRF probability: ROAD's one-number summary, higher is better."""
        return float(np.mean(self.least_relevant_first - self.most_relevant_first))


def road_curves(
    image: np.ndarray,
    saliency: np.ndarray,
    probability_fn: ProbabilityFn,
    class_index: int,
    percentiles: Sequence[int] = ROAD_PERCENTILES,
    seed: int = 0,
) -> RoadCurves:
    order = salience_order(saliency, seed)
    pixels = order.size
    batch = []
    for reverse in (False, True):
        ranked = order[::-1] if reverse else order
        for percentile in percentiles:
            mask = np.zeros(pixels, bool)
            mask[ranked[: round(percentile * pixels / 100)]] = True
            batch.append(impute(image, mask.reshape(saliency.shape), seed=seed + percentile))
    probabilities = probability_fn(np.stack(batch))[:, class_index]
    count = len(percentiles)
    return RoadCurves(tuple(percentiles), probabilities[:count], probabilities[count:])


def random_map(shape: tuple[int, int], seed: int, grid: int = RANDOM_GRID) -> np.ndarray:
    """A [0, 1] map of uniform noise on a coarse grid, zoomed bilinearly to ``shape``."""
    coarse = np.random.default_rng(seed).random((grid, grid))
    fine = zoom(coarse, (shape[0] / grid, shape[1] / grid), order=1)
    return (fine - fine.min()) / (fine.max() - fine.min() + 1e-12)


def centre_map(shape: tuple[int, int], sigma: float = CENTRE_SIGMA) -> np.ndarray:
    """A Gaussian blob at the image centre, 1 in the middle."""
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    dy = (ys - (shape[0] - 1) / 2) / (sigma * shape[0])
    dx = (xs - (shape[1] - 1) / 2) / (sigma * shape[1])
    return np.exp(-(dy**2 + dx**2) / 2)


def baseline_map(name: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    if name == RANDOM_MAP:
        return random_map(shape, seed)
    if name == CENTRE_MAP:
        return centre_map(shape)
    raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")


@dataclass
class ImageScores:
    deletion_auc: float
    insertion_auc: float
    road: RoadCurves


def score_map(
    image: np.ndarray,
    saliency: np.ndarray,
    probability_fn: ProbabilityFn,
    class_index: int,
    steps: int = DELETION_STEPS,
    percentiles: Sequence[int] = ROAD_PERCENTILES,
    seed: int = 0,
) -> ImageScores:
    """Deletion and insertion AUC and ROAD curves of one map on one image, for one class."""
    return ImageScores(
        deletion_auc=area_under_curve(deletion_curve(image, saliency, probability_fn, class_index, steps, seed)),
        insertion_auc=area_under_curve(insertion_curve(image, saliency, probability_fn, class_index, steps, seed)),
        road=road_curves(image, saliency, probability_fn, class_index, percentiles, seed),
    )


def summarise(scores: Sequence[ImageScores]) -> dict:
    """Means over images (with standard errors for the three headline figures), ready for JSON."""

    def mean_and_error(values: list[float]) -> tuple[float, float]:
        array = np.asarray(values, np.float64)
        error = float(array.std(ddof=1) / np.sqrt(len(array))) if len(array) > 1 else float("nan")
        return float(array.mean()), error

    deletion, deletion_error = mean_and_error([s.deletion_auc for s in scores])
    insertion, insertion_error = mean_and_error([s.insertion_auc for s in scores])
    road, road_error = mean_and_error([s.road.gap for s in scores])
    return {
        "n": len(scores),
        "deletion_auc": deletion,
        "deletion_auc_se": deletion_error,
        "insertion_auc": insertion,
        "insertion_auc_se": insertion_error,
        "road_gap": road,
        "road_gap_se": road_error,
        "road_percentiles": list(scores[0].road.percentiles),
        "road_morf": np.mean([s.road.most_relevant_first for s in scores], axis=0).tolist(),
        "road_lerf": np.mean([s.road.least_relevant_first for s in scores], axis=0).tolist(),
    }


def beats(method: dict, baseline: dict) -> dict[str, bool]:
    """Which of the three figures a method's summary beats a baseline's on (deletion: lower is better)."""
    return {
        "deletion": method["deletion_auc"] < baseline["deletion_auc"],
        "insertion": method["insertion_auc"] > baseline["insertion_auc"],
        "road": method["road_gap"] > baseline["road_gap"],
    }


@dataclass
class RemovalCheck:
    """Confidence after removing a map's hottest pixels against removing the same area at random."""

    fractions: tuple[float, ...]
    original: float  # the class probability on the untouched image
    hottest: list[float]  # per fraction
    random_mean: list[float]  # per fraction, mean over the random draws
    hottest_images: list[np.ndarray]
    random_images: list[np.ndarray]  # the first draw, per fraction


def removal_check(
    image: np.ndarray,
    saliency: np.ndarray,
    probability_fn: ProbabilityFn,
    class_index: int,
    fractions: Sequence[float] = (0.1, 0.2),
    draws: int = 3,
    seed: int = 0,
) -> RemovalCheck:
    """Remove (impute, as ROAD does) the hottest ``fractions`` of the image, and the same areas where
    ``draws`` random coarse maps are hottest; one batch of probabilities for all of them."""
    shape = saliency.shape
    hottest = [impute(image, top_mask(saliency, fraction, seed), seed=seed) for fraction in fractions]
    random_images = [
        impute(image, top_mask(random_map(shape, seed + draw), fraction, seed), seed=seed + draw)
        for fraction in fractions
        for draw in range(draws)
    ]
    probabilities = probability_fn(np.stack([image, *hottest, *random_images]))[:, class_index]
    count = len(fractions)
    random_probabilities = probabilities[1 + count :].reshape(count, draws)
    return RemovalCheck(
        fractions=tuple(fractions),
        original=float(probabilities[0]),
        hottest=[float(p) for p in probabilities[1 : 1 + count]],
        random_mean=[float(p) for p in random_probabilities.mean(axis=1)],
        hottest_images=hottest,
        random_images=[random_images[i * draws] for i in range(count)],
    )


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman rank correlation of two maps; 0 where either is flat (a flat map keeps no ranking to share)."""
    if np.ptp(first) == 0 or np.ptp(second) == 0:
        return 0.0
    return float(spearmanr(first.ravel(), second.ravel()).statistic)
