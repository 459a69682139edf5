"""Held-back cells moved off-centre, explained through ``python -m hematovision explain`` (issue 38's check).

    python -m training.pointing_cli --model models --data ../shared/data --split test --n 60 --seed 0 [--record]

``training.pointing_eval`` moves cells inside the network's own 224-px input. This is the check a user can
repeat: ``n`` PBC images drawn with ``seed`` (the same draw as ``pointing_eval``), each at its full resolution,
cut to its centre square and re-cropped four ways with the cell's centre at 30% or 70% of each side
(hematovision.explain.pointing.off_centre), written as PNG files and handed to the ``explain`` command in a
subprocess. The command frames each image as ``classify`` does and maps the heatmap back onto the file's own
pixels; the check reads the peak from ``explain.csv`` and the map from its ``.npy``. A hit: the peak within
0.2 x side of the centroid of the cell's mask (the stain's optical density, as in pointing_eval). The class
explained is the command's own call (its default), so the figure is what a user gets; how often that call is the
expert label is reported beside it. The centred blob is the baseline "look at the middle" would score.
With ``--record`` the figures go into evaluation.json under "pointing_cli"; other keys are kept.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from hematovision.core import paths
from hematovision.core.artifacts import load_evaluation, write_json
from hematovision.core.imaging import centre_square, decode_image
from hematovision.explain import pointing as pt
from training.pointing_eval import add_draw_arguments, by_class, grouped, mean_and_error, read_with_mask
from training.saliency_eval import sample_split

RECORD_KEY = "pointing_cli"
TARGET = 0.90  # issue 38: held-back cells moved off-centre, checked through `hematovision explain`


def is_hit(peak_xy: tuple[float, float], centre_rc: tuple[float, float], side: int) -> bool:
    """Whether the peak (x, y) lies within the pointing tolerance x ``side`` of the cell's centre (row, col)."""
    return bool(np.hypot(peak_xy[1] - centre_rc[0], peak_xy[0] - centre_rc[1]) <= pt.POINTING_TOLERANCE * side)


def write_moved_cells(data: Path, drawn, folder: Path) -> tuple[list[dict], list[str]]:
    """The four off-centre PNGs of each readable drawn image with a single-cell mask, and what was skipped."""
    moved, skipped = [], []
    for image in drawn:
        name = image.path.relative_to(data).as_posix()
        read = read_with_mask(name, lambda path=image.path: centre_square(decode_image(path).rgb))
        if isinstance(read, str):
            skipped.append(read)
            continue
        square, mask = read
        for (crop, crop_mask), (row, col) in zip(pt.off_centre(square, mask), pt.OFF_CENTRE_POSITIONS, strict=True):
            file = folder / f"{len(moved):04d}_{image.path.stem}_r{round(100 * row)}c{round(100 * col)}.png"
            Image.fromarray(crop).save(file)
            moved.append({"file": file.name, "name": name, "label": image.label, "mask": crop_mask})
    return moved, skipped


def run_explain(model: Path, folder: Path, out: Path) -> dict[str, dict]:
    """``python -m hematovision explain`` on ``folder``; explain.csv's rows by file name."""
    command = [sys.executable, "-m", "hematovision", "explain", str(folder), "--out", str(out), "--model", str(model)]
    # From the project root, so that the command is this checkout's, whatever is installed.
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=paths.PROJECT_ROOT)
    with (out / "explain.csv").open(newline="") as handle:
        return {Path(row["file"]).name: row for row in csv.DictReader(handle)}


def score(moved: list[dict], rows: dict[str, dict], out: Path) -> dict:
    """Pointing and mass inside the cell of the command's maps and of the centred blob, per cell (its four
    re-crops averaged first, as they are not independent) and per class; and how often the call was the label."""
    hits, blob_hits, inside, agrees = [], [], [], []
    for cell in moved:
        row = rows.get(cell["file"])
        if row is None:
            raise RuntimeError(f"explain wrote no row for {cell['file']}")
        mask = cell["mask"]
        side = mask.shape[0]
        centre = pt.mask_centre(mask)
        hits.append(is_hit((float(row["peak_x"]), float(row["peak_y"])), centre, side))
        blob_hits.append(is_hit(((side - 1) / 2, (side - 1) / 2), centre, side))
        inside.append(pt.mass_inside(np.load(out / row["map"]), mask))
        agrees.append(row["target"] == cell["label"])
    positions = len(pt.OFF_CENTRE_POSITIONS)
    labels = [cell["label"] for cell in moved[::positions]]
    per_cell = grouped(hits, positions)
    return {
        "pointing": mean_and_error(per_cell),
        "by_class": by_class(per_cell, labels),
        "mass_inside": mean_and_error(grouped(inside, positions)),
        "centred_blob_pointing": mean_and_error(grouped(blob_hits, positions)),
        "called_the_label": float(np.mean(agrees)),
        "maps": len(hits),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pointing_cli", description=__doc__.split("\n\n")[0])
    add_draw_arguments(parser, split="test", n=60)
    parser.add_argument("--keep", type=Path, help="keep the moved images and the command's output here")
    parser.add_argument(
        "--record", action="store_true", help=f"write the figures into evaluation.json under '{RECORD_KEY}'"
    )
    args = parser.parse_args(argv)
    try:
        drawn = sample_split(args.data, args.split, args.n, args.seed)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep or Path(scratch)
        images, out = work / "moved", work / "explained"
        images.mkdir(parents=True, exist_ok=True)
        moved, skipped = write_moved_cells(args.data, drawn, images)
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
        if not moved:
            print("error: no usable cells", file=sys.stderr)
            return 2
        figures = score(moved, run_explain(args.model, images, out), out)
    cells = len(moved) // len(pt.OFF_CENTRE_POSITIONS)
    print(
        f"{cells} {args.split} cells, {figures['maps']} moved images through `hematovision explain`: pointing "
        f"{figures['pointing']['mean']:.3f} ± {figures['pointing']['se']:.3f} (target {TARGET}), centred blob "
        f"{figures['centred_blob_pointing']['mean']:.3f}, mass inside the cell {figures['mass_inside']['mean']:.3f}, "
        f"the call was the expert label in {figures['called_the_label']:.3f}"
    )
    print("    by class: " + ", ".join(f"{label} {f['mean']:.2f}" for label, f in figures["by_class"].items()))
    if args.record:
        evaluation = load_evaluation(args.model)
        evaluation[RECORD_KEY] = {
            "dataset": f"pbc_{args.split}",
            "split": args.split,
            "seed": args.seed,
            "n_requested": args.n,
            "n_cells": cells,
            "skipped": skipped,
            "command": "python -m training.pointing_cli " + " ".join(argv if argv is not None else sys.argv[1:]),
            "settings": {
                "images": "each file's centre square at full resolution, mirror-padded and re-cropped so the cell's "
                f"centre sits at {[list(p) for p in pt.OFF_CENTRE_POSITIONS]} of each side, saved as PNG",
                "explained": "python -m hematovision explain (default method, the command's own call as target)",
                "hit": f"explain.csv's peak within {pt.POINTING_TOLERANCE} x side of the cell mask's centroid",
            },
            "target": TARGET,
            **figures,
            "meets_target": figures["pointing"]["mean"] >= TARGET,
        }
        write_json(args.model / paths.EVALUATION_FILE, evaluation)
        print(f"recorded in {args.model / paths.EVALUATION_FILE} under '{RECORD_KEY}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
