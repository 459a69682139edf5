"""Command line: ``python -m hematovision classify PATH... [--csv FILE]``."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from hematovision import paths
from hematovision.artifacts import ArtifactError
from hematovision.inputs import expand_paths
from hematovision.predict import CLASSIFY_MODES


def classify_command(args: argparse.Namespace) -> int:
    expansion = expand_paths(args.paths)
    for name, reason in expansion.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    for problem in expansion.problems:
        print(f"error: {problem}", file=sys.stderr)
    files = expansion.sources
    if not files:
        print("error: nothing to classify", file=sys.stderr)
        return 2

    from hematovision.predict import Classifier

    try:
        classifier = Classifier.load(args.model)
    except ArtifactError as exc:
        print(f"error: the model cannot be loaded: {exc}", file=sys.stderr)
        print(
            f"fix: point --model or ${paths.MODEL_DIR_ENV} at an artifact folder (see models/README.md)",
            file=sys.stderr,
        )
        return 2

    results = classifier.classify(files, threshold=args.threshold, mode=args.mode)
    classes = classifier.classes
    columns = ["file", "x_min", "y_min", "x_max", "y_max", "predicted_class", "confidence", "uncertain"]
    columns += ["not_blood_cell", "unfamiliar", "error"]
    # Notes last, so the columns of tables written before they were added keep their places.
    columns += [f"p_{name}" for name in classes] + ["notes"]
    rows = []
    for result in results:
        box = result.box
        row = {
            "file": result.source or result.name,
            # The cell's box in the original image's pixels (right and bottom exclusive); empty for a whole image.
            "x_min": box.left if box else "",
            "y_min": box.top if box else "",
            "x_max": box.right if box else "",
            "y_max": box.bottom if box else "",
            "error": result.error or "",
            "notes": "; ".join(result.notes),
        }
        if result.prediction:
            row.update(
                predicted_class="" if result.prediction.not_blood_cell else result.prediction.label,
                confidence=f"{result.prediction.confidence:.4f}",
                uncertain="yes" if result.prediction.uncertain else "no",
                not_blood_cell="yes" if result.prediction.not_blood_cell else "no",
                unfamiliar="yes" if result.prediction.unfamiliar else "no",
                **{f"p_{name}": f"{p:.4f}" for name, p in result.prediction.probabilities.items()},
            )
        rows.append(row)
        if result.prediction and result.prediction.not_blood_cell:
            print(f"{result.name}\tNOT A BLOOD-CELL IMAGE (no class given)")
        elif result.prediction:
            flag = "  UNCERTAIN" if result.prediction.uncertain else ""
            flag += "  UNFAMILIAR SET-UP" if result.prediction.unfamiliar else ""
            notes = f"  ({'; '.join(result.notes)})" if result.notes else ""
            print(f"{result.name}\t{result.prediction.label}\t{result.prediction.confidence:.3f}{flag}{notes}")
        else:
            print(f"{result.name}\tERROR: {result.error}", file=sys.stderr)

    if args.csv:
        with args.csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
    n_ok = sum(result.prediction is not None for result in results)
    print(
        f"classified {n_ok} of {len(results)} images or cells in {len(files)} files"
        + (f"; table written to {args.csv}" if args.csv else ""),
        file=sys.stderr,
    )
    return 0 if n_ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hematovision", description="HematoVision command-line tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    classify = commands.add_parser(
        "classify",
        help="classify image files or folders of images",
        description="Classify blood-cell images. One row per image: predicted class, calibrated confidence "
        "and every class probability; unreadable images are reported and the rest still classified.",
    )
    classify.add_argument(
        "paths", nargs="+", type=Path, help="image files, folders and/or ZIP archives of images (searched recursively)"
    )
    classify.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    classify.add_argument(
        "--mode",
        choices=CLASSIFY_MODES,
        default="auto",
        help="single: each image is one centred cell; field: find and classify every white cell in each image "
        "(one row per cell, with its box as 'left top right bottom'); auto: decide per image (default)",
    )
    classify.add_argument(
        "--model", type=Path, default=None, help=f"artifact folder (default: ${paths.MODEL_DIR_ENV} or models/)"
    )
    classify.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="flag predictions below this confidence as uncertain (default: the model card's)",
    )
    args = parser.parse_args(argv)
    return classify_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
