"""Score an artifact folder's model on labelled images.

    python -m training.evaluate --model models --data ../shared/data [--json FILE] [--predictions CSV]

DATA is a manifest dataset (PBC's or Chula's: its test split is scored, or ``--split``) or any class-per-folder
tree (folder names are labels, matched case-insensitively; folders of unknown labels are reported and skipped).
Images go through the dashboard's own decode -> resize -> predict path and, by default, are framed as
its Automatic mode frames them: a whole field of view is scored by its white cell nearest the centre.
Where the folder has attribute heads and the manifest the WBCAtt attributes, the report also holds, under
``attributes``, each attribute's accuracy, macro-F1 and confusion matrix on the test split's annotated white
cells (read as one centred cell, as the attribute pipeline reads them) and their means.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from hematovision.core import paths
from hematovision.core.artifacts import load_evaluation, read_json, write_json
from hematovision.core.datasets import MANIFEST_NAME, SPLITS, find_manifest, read_manifest, scan_class_folders
from hematovision.core.predict import load_for_command
from hematovision.heads.lab_profile import LabProfile, ProfileError
from training.attributes import print_scores, test_scores
from training.scoring import (
    EVALUATION_MODES,
    PREDICTION_COLUMNS,
    evaluate_files,
    metrics_summary,
    predictions_on_files,
)


def refresh_card_metrics(model_dir: Path, evaluation: dict, record: str) -> bool:
    """Re-derive the card's headline figures when ``record`` is one of them, so the card never quotes a score its own
    evaluation no longer holds (a re-recorded pbc_test once left the card behind until it was mended by hand).
    The card keeps the sets it already names; True where it changed."""
    card_path = model_dir / paths.CARD_FILE
    card = read_json(card_path)
    named = card.get("metrics") or {}
    others = [key.removesuffix("_accuracy") for key in named if key.endswith("_accuracy") and key != "val_accuracy"]
    if not named or not (record.startswith("pbc_") or record in others):
        return False
    card["metrics"] = metrics_summary(evaluation, others)
    write_json(card_path, card)
    return True


def print_report(report: dict) -> None:
    low, high = report["accuracy_ci95"]
    print(
        f"n {report['n']}  accuracy {report['accuracy']:.4f} (95% interval {low:.4f}-{high:.4f})  "
        f"macro_f1 {report['macro_f1']:.4f}  "
        f"ece {report['ece']:.4f}  (before calibration {report.get('ece_uncalibrated', float('nan')):.4f})"
    )
    framing = report.get("framing", {})
    if framing.get("field_central_cell") or framing.get("field_without_cells"):
        print(
            f"whole fields of view: {framing['field_central_cell']} scored by the white cell nearest the centre, "
            f"{framing['field_without_cells']} with no white cell found scored whole"
        )
    if "flagged_not_blood" in report:
        print(
            f"flagged 'not a blood-cell image': {100 * report['flagged_not_blood']:.2f}%  "
            f"'unfamiliar set-up': {100 * report['flagged_unfamiliar']:.2f}%"
        )
        uncertain = report["uncertain"]
        if uncertain["share_of_errors"] is not None:
            print(
                f"marked uncertain: {100 * uncertain['share_of_errors']:.1f}% of the {uncertain['errors']} errors",
                end="",
            )
        if uncertain["share_of_correct"] is not None:
            print(f", {100 * uncertain['share_of_correct']:.1f}% of the correct ones", end="")
        print()
    print(f"{'class':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for name, scores in report["per_class"].items():
        print(
            f"{name:<14}{scores['precision']:>10.4f}{scores['recall']:>10.4f}{scores['f1']:>10.4f}{scores['support']:>9}"
        )
    labels = report["labels"]
    print("confusion matrix (rows true, columns predicted):")
    print(" " * 14 + "".join(f"{name[:8]:>9}" for name in labels))
    for name, row in zip(labels, report["confusion_matrix"], strict=True):
        print(f"{name:<14}" + "".join(f"{count:>9}" for count in row))
    for item in report.get("unreadable", []):
        print(f"unreadable: {item['file']}: {item['reason']}", file=sys.stderr)


def write_predictions(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=PREDICTION_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR, help="artifact folder")
    parser.add_argument("--data", type=Path, required=True, help="manifest dataset folder or class-per-folder tree")
    parser.add_argument(
        "--mode",
        choices=EVALUATION_MODES,
        default="auto",
        help="auto: frame each image as the app's Automatic mode does (a field of view is scored by its white "
        "cell nearest the centre); single: score every image whole, as one centred cell",
    )
    parser.add_argument("--split", choices=SPLITS, default="test", help="the manifest split to score (default: test)")
    parser.add_argument("--json", type=Path, help="write the report to this JSON file")
    parser.add_argument(
        "--predictions",
        type=Path,
        help="also write one row per image to this CSV (path relative to --data, label, predicted, confidence, "
        "margin): what the Model performance page shows behind each cell of the confusion matrix",
    )
    parser.add_argument("--lab", type=Path, help="a lab profile (python -m hematovision adapt) to apply")
    parser.add_argument(
        "--record",
        metavar="NAME",
        help="also store the report in the model folder's evaluation.json as dataset NAME (shown on the "
        "Model performance page)",
    )
    parser.add_argument("--description", help="with --record: how the page names this dataset")
    args = parser.parse_args(argv)

    if not args.data.is_dir():
        print(f"error: {args.data} is not a folder", file=sys.stderr)
        return 2

    classifier = load_for_command(args.model)
    if classifier is None:
        return 2

    manifest = find_manifest(args.data)
    if manifest is not None:
        items = [item for item in read_manifest(manifest) if item.split == args.split]
        unknown = sorted({item.label for item in items} - set(classifier.classes))
        if unknown:
            print(f"skipped labels the model does not know: {', '.join(unknown)}", file=sys.stderr)
            items = [item for item in items if item.label in classifier.classes]
        source = f"{manifest} ({args.split} split)"
    else:
        scan = scan_class_folders(args.data, classifier.classes)
        for reason in scan.skipped:
            print(f"skipped {reason}", file=sys.stderr)
        items = scan.images
        source = str(args.data)
    if not items:
        print(f"error: no labelled images the model can score under {args.data}", file=sys.stderr)
        return 2

    profile = None
    if args.lab:
        try:
            profile = LabProfile.load(args.lab)
            profile.check_model(classifier.model_id, classifier.classes)
        except ProfileError as exc:
            print(f"error: {args.lab}: {exc}", file=sys.stderr)
            return 2
    report = evaluate_files(classifier, items, args.mode, profile)
    if profile is not None:
        report["lab_profile"] = {
            "file": str(args.lab),
            "counts": profile.counts,
            "leave_one_out": profile.leave_one_out,
            "applied": profile.decision.applied,
            "decision": profile.decision.reason,
        }
    if report["n"] == 0:
        print("error: none of the images could be read", file=sys.stderr)
        return 2
    report["source"] = source
    with_attributes = manifest is not None and manifest.name == MANIFEST_NAME and args.split == "test"
    attributes = test_scores(classifier, manifest) if with_attributes else None
    if attributes is not None:
        report["attributes"] = {**attributes, "source": f"{manifest} (test split, annotated white cells)"}
    print_report(report)
    if attributes is not None:
        print_scores(attributes, "morphological attributes (test split, annotated white cells)", matrices=True)
    if args.json:
        write_json(args.json, report)
        print(f"written to {args.json}")
    if args.predictions:
        rows, _ = predictions_on_files(classifier, items, args.mode, args.data, profile)
        write_predictions(args.predictions, rows)
        print(f"{len(rows)} predictions written to {args.predictions}")
    if args.record:
        evaluation = load_evaluation(args.model)
        # The attribute scores are recorded once, under "attributes", by training.attributes (with the
        # consistency check), not again inside a dataset's record.
        evaluation["datasets"][args.record] = {key: value for key, value in report.items() if key != "attributes"}
        descriptions = evaluation.setdefault("descriptions", {})
        if args.description:
            descriptions[args.record] = args.description
        elif descriptions.get(args.record) == args.record:
            del descriptions[args.record]  # a bare name says less than the page's own for known sets
        write_json(args.model / paths.EVALUATION_FILE, evaluation)
        print(f"recorded as '{args.record}' in {args.model / paths.EVALUATION_FILE}")
        if refresh_card_metrics(args.model, evaluation, args.record):
            print(f"the card's headline figures ({paths.CARD_FILE} metrics) follow the new record")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
