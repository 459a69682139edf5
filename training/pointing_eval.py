"""Does each Explain method point at the cell when the cell is not at the centre? (issue 38, item 2)

    python -m training.pointing_eval --model models --data ../shared/data --split test --n 40 --seed 0 \\
        [--methods Grad-CAM,...] [--record]

``n`` cells drawn with ``seed`` from a PBC split, framed and resized as the app does
(``Classifier.model_input``). Each is re-cropped four ways with its centre at 30% or 70% of each side
(hematovision.explain.pointing.off_centre), and paired with the next drawn cell of another class into a
two-cell composite explained for each cell's class in turn. The class explained is always the cell's expert
label. Per method, and for the centred blob (the baseline that "look at the middle" would score): the pointing
hit rate (the map's peak within 0.2 x side of the cell's centre) and the share of the map's mass inside the cell's
mask, each a mean with its standard error over cells (off-centre: the four re-crops of a cell averaged first, as
they are not independent) or over composites (its two maps averaged first); off-centre pointing also per class
(``by_class``). The untouched cells are scored the same way, for reference. Then the cell-removed check
(hematovision.explain.pointing.remove_cell), per class: how often the network still calls a cell's class with the
cell itself replaced by red cells from its own image, and its probability before and after (``cell_removed``).
With ``--record`` the figures go into the artifact folder's evaluation.json under
"pointing" (self-describing: split, seed, n, settings, per method mean and SE); other keys are kept.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hematovision.core import paths
from hematovision.core.artifacts import load_evaluation, write_json
from hematovision.core.imaging import ImageLoadError
from hematovision.explain import faithfulness as fm
from hematovision.explain import pointing as pt
from hematovision.explain.saliency import DEFAULT_METHOD, FAST_METHOD, FINE_METHOD, AttributionMethods
from training.saliency_eval import methods_from_option, sample_split

RECORD_KEY = "pointing"
BASELINE = fm.CENTRE_MAP
#: Issue 38's targets: off-centre pointing, and composites whose map for class X peaks on the X cell.
TARGETS = {"off_centre_pointing": 0.95, "composite_pointing": 0.90}


def pair_cells(labels: list[str]) -> list[tuple[int, int]]:
    """Composites: each cell, in the order drawn, with the next unpaired cell of another class."""
    used: set[int] = set()
    pairs = []
    for first in range(len(labels)):
        if first in used:
            continue
        for second in range(first + 1, len(labels)):
            if second not in used and labels[second] != labels[first]:
                pairs.append((first, second))
                used.update((first, second))
                break
    return pairs


def mean_and_error(values) -> dict:
    array = np.asarray(values, dtype=np.float64)
    error = float(array.std(ddof=1) / np.sqrt(len(array))) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "se": error, "n": len(array)}


def score(maps: np.ndarray, masks: list[np.ndarray]) -> tuple[list[bool], list[float]]:
    hits = [pt.pointing_hit(heatmap, pt.mask_centre(mask)) for heatmap, mask in zip(maps, masks, strict=True)]
    inside = [pt.mass_inside(heatmap, mask) for heatmap, mask in zip(maps, masks, strict=True)]
    return hits, inside


def grouped(values: list, size: int) -> list[float]:
    """Means of consecutive groups of ``size`` (the re-crops of one cell, the maps of one composite)."""
    return [float(np.mean(values[i : i + size])) for i in range(0, len(values), size)]


def by_class(values: list[float], labels: list[str]) -> dict[str, dict]:
    """Mean per class (one value per cell), in the order the classes first appear."""
    return {
        label: mean_and_error([value for value, other in zip(values, labels, strict=True) if other == label])
        for label in dict.fromkeys(labels)
    }


def cell_removed(classifier, cells: list[dict]) -> dict:
    """Per class: how often the network still calls each cell's class with the cell removed, and its probability
    of the class before and after (the network's own, without the lowering for unfamiliar images)."""
    before = classifier.network_probabilities(np.stack([cell["image"] for cell in cells]))
    after = classifier.network_probabilities(np.stack([pt.remove_cell(cell["image"], cell["mask"]) for cell in cells]))
    rows = np.arange(len(cells))
    classes = np.array([cell["class"] for cell in cells])
    labels = [cell["label"] for cell in cells]
    still_called = (after.argmax(axis=1) == classes).astype(float)
    return {
        label: {
            "n": len(members),
            "still_called": float(still_called[members].mean()),
            "probability_before": float(before[rows, classes][members].mean()),
            "probability_after": float(after[rows, classes][members].mean()),
        }
        for label in dict.fromkeys(labels)
        for members in [np.flatnonzero(np.array(labels) == label)]
    }


def evaluate(attribution: AttributionMethods, methods: list[str], cells: list[dict], pairs: list[tuple[int, int]]):
    size = cells[0]["image"].shape[0]
    centred_images = np.stack([cell["image"] for cell in cells])
    centred_masks = [cell["mask"] for cell in cells]
    centred_classes = [cell["class"] for cell in cells]
    moved = [crop for cell in cells for crop in pt.off_centre(cell["image"], cell["mask"])]
    moved_images = np.stack([image for image, _ in moved])
    moved_masks = [mask for _, mask in moved]
    moved_classes = [cell["class"] for cell in cells for _ in pt.OFF_CENTRE_POSITIONS]
    positions = len(pt.OFF_CENTRE_POSITIONS)
    composite_images, composite_masks, composite_classes = [], [], []
    for first, second in pairs:
        image, left, right = pt.composite(
            (cells[first]["image"], cells[first]["mask"]), (cells[second]["image"], cells[second]["mask"])
        )
        for mask, cell in ((left, cells[first]), (right, cells[second])):
            composite_images.append(image)
            composite_masks.append(mask)
            composite_classes.append(cell["class"])
    composite_images = np.stack(composite_images)

    blob = fm.centre_map((size, size))
    results = {}
    for name in [*methods, BASELINE]:
        started = time.perf_counter()

        def maps(images, classes, name=name):
            if name == BASELINE:
                return np.broadcast_to(blob, (len(images), size, size))
            return np.concatenate(
                [attribution.heatmaps(name, images[i : i + 16], classes[i : i + 16]) for i in range(0, len(images), 16)]
            )

        figures = {}
        for part, images, masks, classes, group in (
            ("centred", centred_images, centred_masks, centred_classes, 1),
            ("off_centre", moved_images, moved_masks, moved_classes, positions),
            ("composite", composite_images, composite_masks, composite_classes, 2),
        ):
            hits, inside = score(maps(images, classes), masks)
            figures[part] = {
                "pointing": mean_and_error(grouped(hits, group)),
                "mass_inside": mean_and_error(grouped(inside, group)),
                "maps": len(hits),
            }
            if part == "off_centre":
                figures[part]["by_class"] = by_class(grouped(hits, group), [cell["label"] for cell in cells])
        count = len(centred_images) + len(moved_images) + len(composite_images)
        if name == BASELINE:
            figures["baseline"] = True
        else:
            figures["seconds_per_map"] = (time.perf_counter() - started) / count
        results[name] = figures
        print(
            f"{name:<32} off-centre {figures['off_centre']['pointing']['mean']:.3f} "
            f"± {figures['off_centre']['pointing']['se']:.3f}, composite "
            f"{figures['composite']['pointing']['mean']:.3f} ± {figures['composite']['pointing']['se']:.3f}, "
            f"mass inside (off-centre) {figures['off_centre']['mass_inside']['mean']:.3f}",
            flush=True,
        )
        print(
            "    off-centre by class: "
            + ", ".join(f"{label} {figure['mean']:.2f}" for label, figure in figures["off_centre"]["by_class"].items()),
            flush=True,
        )
    return results


def read_with_mask(name: str, read: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray] | str:
    """The image ``read()`` gives and its cell's mask, or why the image cannot be used (named by ``name``)."""
    try:
        image = read()
    except ImageLoadError as exc:
        return f"{name}: {exc}"
    mask = pt.cell_mask(image)
    if not mask.any() or mask.mean() > pt.MAX_MASK_SHARE:
        return f"{name}: no single-cell mask (share {mask.mean():.2f})"
    return image, mask


def load_cells(classifier, data: Path, drawn: list[tuple[Path, str]]) -> tuple[list[dict], list[str]]:
    cells, skipped = [], []
    for path, label in drawn:
        name = path.relative_to(data).as_posix()
        read = read_with_mask(name, lambda path=path: classifier.model_input(path))
        if isinstance(read, str):
            skipped.append(read)
            continue
        image, mask = read
        cells.append(
            {"name": name, "label": label, "class": classifier.classes.index(label), "image": image, "mask": mask}
        )
    return cells, skipped


def meets_targets(figures: dict) -> bool:
    return (
        figures["off_centre"]["pointing"]["mean"] >= TARGETS["off_centre_pointing"]
        and figures["composite"]["pointing"]["mean"] >= TARGETS["composite_pointing"]
    )


def add_draw_arguments(parser: argparse.ArgumentParser, split: str, n: int) -> None:
    """The model and the cells drawn: the options this CLI shares with ``training.pointing_cli``."""
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR, help="artifact folder")
    parser.add_argument("--data", type=Path, default=paths.SHARED_DATA_DIR, help="folder with pbc_manifest.csv")
    parser.add_argument("--split", default=split, choices=("train", "val", "test"), help="PBC split to draw from")
    parser.add_argument("--n", type=int, default=n, help="cells to draw")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw")


def main(argv: list[str] | None = None) -> int:
    from hematovision.core.predict import Classifier

    parser = argparse.ArgumentParser(prog="python -m training.pointing_eval", description=__doc__.split("\n\n")[0])
    add_draw_arguments(parser, split="val", n=40)
    parser.add_argument(
        "--methods",
        default=",".join(dict.fromkeys([FAST_METHOD, FINE_METHOD])),
        help="comma-separated: the Explain page's, or the finer-map candidates (saliency.ALL_METHODS)",
    )
    parser.add_argument(
        "--record", action="store_true", help=f"write the figures into evaluation.json under '{RECORD_KEY}'"
    )
    args = parser.parse_args(argv)

    try:
        methods = methods_from_option(args.methods)
        drawn = [(image.path, image.label) for image in sample_split(args.data, args.split, args.n, args.seed)]
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    classifier = Classifier.load(args.model)
    cells, skipped = load_cells(classifier, args.data, drawn)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if len(cells) < 2:
        print("error: fewer than two usable cells", file=sys.stderr)
        return 2
    pairs = pair_cells([cell["label"] for cell in cells])
    card = classifier.card
    attribution = AttributionMethods(classifier.model, card.gradcam_layer, card.logits_layer)
    print(f"{len(cells)} {args.split} cells, {len(pairs)} composites", flush=True)
    results = evaluate(attribution, methods, cells, pairs)
    removed = cell_removed(classifier, cells)
    for label, figures in removed.items():
        print(
            f"cell removed, {label}: still called {label} {figures['still_called']:.2f} (n {figures['n']}), "
            f"p {figures['probability_before']:.3f} -> {figures['probability_after']:.3f}",
            flush=True,
        )
    record = {
        "dataset": f"pbc_{args.split}",
        "split": args.split,
        "seed": args.seed,
        "n_requested": args.n,
        "n_cells": len(cells),
        "n_composites": len(pairs),
        "images": [cell["name"] for cell in cells],
        "skipped": skipped,
        "composites": [[cells[a]["name"], cells[b]["name"]] for a, b in pairs],
        "target": "each cell's expert label (on a composite, each cell's label in turn)",
        "default_method": DEFAULT_METHOD,
        "fine_method": FINE_METHOD,
        "settings": {
            "tolerance": pt.POINTING_TOLERANCE,
            "pointing": f"hit: the map's peak within {pt.POINTING_TOLERANCE} x side of the cell mask's centroid",
            "mass_inside": "share of the map's mass inside the cell's mask",
            "off_centre_positions": [list(position) for position in pt.OFF_CENTRE_POSITIONS],
            "off_centre": "mirror-padded and re-cropped (same size) so the cell's centre sits at these fractions",
            "composite": "two cells of different classes, each centred in its half-width strip, side by side",
            "mask": "red-channel optical density over the glass colour, Otsu threshold (floor "
            f"{pt.MIN_NUCLEAR_DENSITY}), lobes joined, the component nearest the centre, a rim of "
            f"{pt.CYTOPLASM_RIM} of the side (hematovision.explain.pointing)",
            "cell_removed": "the cell's mask widened by "
            f"{pt.REMOVAL_MARGIN} of the side, filled with the image shifted by half its side (its corners' red "
            "cells); the network's own probabilities, without the lowering for unfamiliar images",
            "standard_error": "over cells (the four re-crops of a cell averaged first) and over composites "
            "(their two maps averaged first)",
            "baseline": f"{BASELINE}: Gaussian, sigma {fm.CENTRE_SIGMA} of the side, at the image centre",
        },
        "targets": TARGETS,
        "methods": results,
        "cell_removed": removed,
        "meets_targets": {name: meets_targets(figures) for name, figures in results.items() if name != BASELINE},
    }
    if args.record:
        evaluation = load_evaluation(args.model)
        evaluation[RECORD_KEY] = record
        write_json(args.model / paths.EVALUATION_FILE, evaluation)
        print(f"recorded in {args.model / paths.EVALUATION_FILE} under '{RECORD_KEY}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
