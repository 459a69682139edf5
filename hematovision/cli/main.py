"""Command line: ``classify PATH... [--csv FILE] [--lab PROFILE]``, ``adapt DIR --out F`` and
``report PATH... --pdf F [--review R] [--heatmaps]`` (``python -m hematovision COMMAND``)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import time
import zlib
from pathlib import Path

from hematovision.core import paths
from hematovision.core.artifacts import ArtifactError, load_evaluation
from hematovision.core.inputs import expand_paths
from hematovision.core.reading import CLASSIFY_MODES
from hematovision.core.results_schema import csv_columns, csv_row
from hematovision.explain.saliency import DEFAULT_METHOD, METHODS
from hematovision.heads.lab_profile import MIN_PER_CLASS, LabProfile, ProfileError
from hematovision.workflows.differential import count, network_call, platelets_by_field, summary_lines


def expanded(paths_given: list[Path]) -> list:
    """The image files under the paths given, each skipped file and problem printed with its reason."""
    expansion = expand_paths(paths_given)
    for name, reason in expansion.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    for problem in expansion.problems:
        print(f"error: {problem}", file=sys.stderr)
    return expansion.sources


def classify_command(args: argparse.Namespace) -> int:
    files = expanded(args.paths)
    if not files:
        print("error: nothing to classify", file=sys.stderr)
        return 2

    from hematovision.core.predict import load_for_command

    # LiteRT one image per call: batches of 16 gave the same outputs but were not faster (docs/experiments.md).
    classifier = load_for_command(args.model)
    if classifier is None:
        return 2

    profile = lab_profile_for_command(args.lab, classifier)
    if profile is False:
        return 2
    if args.shard:
        files = [source for source in files if in_shard(source[0], *args.shard)]
    columns = csv_columns(classifier.classes)
    try:
        done = already_written(args.csv, columns) if args.resume and args.csv else set()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    todo = [source for source in files if source[0] not in done]
    if done:
        print(f"resuming: {len(files) - len(todo)} files already in {args.csv}", file=sys.stderr)
    n_ok = n_results = 0
    calls, field_platelets = [], {}  # what the differential needs, kept small: no images
    with contextlib.ExitStack() as stack:
        writer = None
        if args.csv:
            handle = stack.enter_context(args.csv.open("a" if done else "w", newline=""))
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            if not done:
                writer.writeheader()
        # A bounded stream: a few dozen images in memory at a time, rows written as they come, whatever the folder.
        # Decoding runs in threads: worker processes for the cell finder were not faster on these shared 2-core
        # machines (docs/experiments.md, issue 41), though classify_stream takes a process pool.
        results = classifier.classify_stream(todo, threshold=args.threshold, mode=args.mode, profile=profile)
        for result in results:
            report(result)
            calls.append(network_call(result))
            field_platelets |= platelets_by_field([result])
            if writer is not None:
                writer.writerow(csv_row(result))
                if n_results % STREAM_FLUSH == 0:
                    handle.flush()
            n_ok += result.prediction is not None
            n_results += 1
    print(
        f"classified {n_ok} of {n_results} images or cells in {len(todo)} files"
        + (f"; table written to {args.csv}" if args.csv else ""),
        file=sys.stderr,
    )
    if n_results:
        differential = count(calls, classifier.card.white_cell_classes, not args.leave_out_cut_cells, field_platelets)
        print("\n".join(["differential count (this run's files):", *summary_lines(differential)]), file=sys.stderr)
    return 0 if n_ok or not todo else 1


def report_command(args: argparse.Namespace) -> int:
    """Classify a folder unattended and write the review report (with a saved review's corrections, if given)."""
    from hematovision.core.predict import Classifier
    from hematovision.workflows.report import ModelSummary, cell_pictures, field_pictures, pdf_report
    from hematovision.workflows.review import Review, ReviewError, differentials, file_digest

    sources = expanded(args.paths)
    if not sources:
        print("error: nothing to report on", file=sys.stderr)
        return 2
    try:
        classifier = Classifier.load(args.model)
        saved = Review.from_json(args.review.read_bytes()) if args.review else None
    except (ArtifactError, ReviewError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    profile = lab_profile_for_command(args.lab, classifier)
    if profile is False:
        return 2
    started = time.perf_counter()
    results = classifier.classify(sources, threshold=args.threshold, keep_images=True, mode=args.mode, profile=profile)
    digests = {
        name: file_digest(source if isinstance(source, bytes) else Path(source).read_bytes())
        for name, source in sources
    }
    review = Review.from_results(results, digests, classifier.model_id)
    if saved is not None:
        try:
            problems = review.carry_on_from(saved, classifier.classes)
        except ReviewError as exc:
            print(f"error: {args.review}: this review cannot be used: {exc}", file=sys.stderr)
            return 2
        for problem in problems:
            print(f"note: {problem}", file=sys.stderr)
    if args.reviewer:
        review.reviewer = args.reviewer
    if args.sample:
        review.sample = args.sample
    heatmap_of = None
    if args.heatmaps:
        from hematovision.explain.saliency import AttributionMethods

        # The same map as `explain` and the Explain page open on (issue 38: one map everywhere).
        methods = AttributionMethods(classifier.model, classifier.card.gradcam_layer, classifier.card.logits_layer)

        def heatmap_of(image, class_index):
            return methods.heatmap(DEFAULT_METHOD, image, class_index)

    pictures = cell_pictures(results, digests, classifier.card.input_size, heatmap_of, classifier.classes)
    model = ModelSummary.from_artifacts(classifier.card, evaluation_or_empty(args.model), review.model_id, results)
    white = classifier.card.white_cell_classes
    count_cut_cells = not args.leave_out_cut_cells
    fields = field_pictures(results, digests)
    args.pdf.write_bytes(pdf_report(review, model, white, pictures, count_cut_cells, fields))
    network, reviewed = differentials(review, white, count_cut_cells)
    side = "after review" if saved is not None else "by the network"
    print("\n".join([f"differential count ({side}):", *summary_lines(reviewed if saved else network)]))
    print(
        f"report on {len(review.cells)} images or cells written to {args.pdf} in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


def explain_command(args: argparse.Namespace) -> int:
    """Each image's heatmap in its own pixels (.npy), its overlay (.png) and a row of explain.csv."""
    import numpy as np

    from hematovision.core.framing import frame_single_cell_with_window
    from hematovision.core.imaging import ImageLoadError, decode_image, to_model_input
    from hematovision.core.predict import load_for_command
    from hematovision.explain.export import CSV_COLUMNS, peak, to_image_coordinates, unique_stem
    from hematovision.explain.overlay import overlay, png_bytes
    from hematovision.explain.saliency import AttributionMethods

    classifier = load_for_command(args.model)
    if classifier is None:
        return 2
    target = None
    if args.target is not None:
        by_lower = {name.lower(): name for name in classifier.classes}
        target = by_lower.get(args.target.lower())
        if target is None:
            args.error(f"unknown --target {args.target!r}; the classes are: {', '.join(classifier.classes)}")
    files = expanded(args.paths)
    if not files:
        print("error: nothing to explain", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    card = classifier.card
    methods = AttributionMethods(classifier.model, card.gradcam_layer, card.logits_layer)
    taken: set[str] = set()
    n_ok = 0
    with (args.out / "explain.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for name, source in files:
            try:
                rgb = decode_image(source).rgb
            except ImageLoadError as exc:
                print(f"{name}\tERROR: {exc}", file=sys.stderr)
                continue
            # Read as one cell, framed as classify frames it; the map goes back onto the image's own pixels.
            framed, _, window = frame_single_cell_with_window(rgb)
            model_input = to_model_input(framed, card.input_size)
            prediction = classifier.predictions(model_input[None], args.threshold)[0]
            chosen = target or prediction.label
            heat = methods.heatmap(args.method, model_input, classifier.classes.index(chosen))
            mapped = to_image_coordinates(heat, window, rgb.shape)
            stem = unique_stem(name, taken)
            np.save(args.out / f"{stem}.npy", mapped)
            (args.out / f"{stem}.png").write_bytes(png_bytes(overlay(rgb, mapped)))
            x, y = peak(mapped)
            writer.writerow(
                {"file": name, "predicted": prediction.label, "confidence": f"{prediction.confidence:.4f}",
                 "target": chosen, "method": args.method, "peak_x": x, "peak_y": y, "map": f"{stem}.npy"}
            )  # fmt: skip
            print(f"{name}\t{prediction.label}\t{prediction.confidence:.3f}\t{chosen}\tpeak {x},{y}")
            n_ok += 1
    print(f"explained {n_ok} of {len(files)} images; maps, overlays and explain.csv in {args.out}", file=sys.stderr)
    return 0 if n_ok else 1


def lab_profile_for_command(path: Path | None, classifier) -> LabProfile | bool | None:
    """The profile at ``path`` checked against the model (None without one), or False after saying why not."""
    if path is None:
        return None
    try:
        profile = LabProfile.load(path)
        profile.check_model(classifier.model_id, classifier.classes)
    except (ProfileError, ArtifactError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return False
    profile.name = profile.name or path.stem
    print(f"lab profile {path}: {describe_profile(profile)}", file=sys.stderr)
    print(f"lab profile {decision_line(profile)}", file=sys.stderr)
    return profile


def evaluation_or_empty(model_dir: Path | None) -> dict:
    try:
        return load_evaluation(model_dir)
    except ArtifactError:
        return {}


def adapt_command(args: argparse.Namespace) -> int:
    """Build a lab profile from a class-per-folder set of the user's own cells."""
    from hematovision.core.datasets import scan_class_folders
    from hematovision.core.predict import load_for_command

    if not args.examples.is_dir():
        print(f"error: {args.examples} is not a folder of class folders", file=sys.stderr)
        return 2
    started = time.perf_counter()
    classifier = load_for_command(args.model)
    if classifier is None:
        return 2
    scan = scan_class_folders(args.examples, classifier.classes)
    unknown = [reason for reason in scan.skipped if "has no class" in reason]
    for reason in scan.skipped:
        print(f"{'error' if reason in unknown else 'skipped'}: {reason}", file=sys.stderr)
    if unknown:
        print(f"error: rename or remove those folders; the classes are: {', '.join(classifier.classes)}",
              file=sys.stderr)  # fmt: skip
        return 2
    examples = [(item.label, str(item.path), item.path) for item in scan.images]
    try:
        profile, notes = classifier.lab_profile_from_examples(examples, name=args.out.stem)
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(note, file=sys.stderr)
    profile.save(args.out)
    print(f"lab profile written to {args.out}: {describe_profile(profile)}")
    for name, recall in profile.leave_one_out["per_class"].items():
        print(f"  {name:<12} {profile.counts[name]:>3} examples, leave-one-out {100 * recall:.0f}% right")
    for name in profile.untouched_classes():
        print(f"  {name:<12} no examples: read as the model reads it without a profile")
    print(f"lab profile {decision_line(profile)}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def decision_line(profile: LabProfile) -> str:
    """Whether the profile reads the cells, and why: "used: ..." or "not used: ..."."""
    return profile.decision.reason


def describe_profile(profile: LabProfile) -> str:
    loo = profile.leave_one_out
    return (
        f"{loo['n']} examples of {len(profile.counts)} classes, leave-one-out accuracy "
        f"{100 * loo['accuracy']:.1f}% (the model alone {100 * loo['without_profile']:.1f}%)"
    )


#: Rows between flushes of the CSV table, so that an interrupted run loses little (see --resume).
STREAM_FLUSH = 64


def in_shard(name: str, index: int, count: int) -> bool:
    """Whether file ``name`` belongs to shard ``index`` of ``count`` (1-based): a stable hash of its name,
    so every worker agrees without talking to the others, whatever order it lists the folder in."""
    return zlib.crc32(name.encode("utf-8")) % count == index - 1


def already_written(table: Path, columns: list[str]) -> set[str]:
    """Files with rows in an interrupted run's CSV. The last file's rows may be incomplete (a field of view
    gives several), so they are dropped from the table and that file is classified again. A table with other
    columns (another model's classes, an older version) is refused: appended rows would not line up."""
    if not table.is_file():
        return set()
    with table.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    if fields and fields != columns:
        raise ValueError(f"{table} has other columns than this run writes; resume into it is not possible")
    if not rows:
        return set()
    last = rows[-1]["file"]
    kept = [row for row in rows if row["file"] != last]
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
    return {row["file"] for row in kept}


def report(result) -> None:
    if result.prediction and result.prediction.not_blood_cell:
        print(f"{result.name}\tNOT A BLOOD-CELL IMAGE (no class given)")
    elif result.prediction:
        flag = "  UNCERTAIN" if result.prediction.uncertain else ""
        flag += "  UNFAMILIAR SET-UP" if result.prediction.unfamiliar else ""
        notes = f"  ({'; '.join(result.notes)})" if result.notes else ""
        print(f"{result.name}\t{result.prediction.label}\t{result.prediction.confidence:.3f}{flag}{notes}")
    else:
        print(f"{result.name}\tERROR: {result.error}", file=sys.stderr)


def shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise argparse.ArgumentTypeError("expected I/N with 1 <= I <= N, e.g. 2/8")
    return int(index), int(count)


LEAVE_OUT_CUT_HELP = (
    "leave white cells cut by a photo's edge out of the differential (listed apart), as some counting protocols do"
)


def add_model_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--model", type=Path, default=None, help=f"artifact folder (default: ${paths.MODEL_DIR_ENV} or models/)"
    )


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
    classify.add_argument("--csv", type=Path, help="also write the table to this CSV file, chunk by chunk")
    classify.add_argument(
        "--resume",
        action="store_true",
        help="with --csv: skip the files an interrupted run already wrote rows for, and append",
    )
    classify.add_argument(
        "--shard",
        type=shard,
        metavar="I/N",
        help="classify only shard I of N (by a stable hash of each file's name), for N workers sharing a folder",
    )
    classify.add_argument(
        "--mode",
        choices=CLASSIFY_MODES,
        default="auto",
        help="single: each image is one centred cell; field: find and classify every white cell in each image "
        "(one row per cell, with its box as 'left top right bottom'); auto: decide per image (default)",
    )
    add_model_argument(classify)
    classify.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="flag predictions below this confidence as uncertain (default: the model card's)",
    )
    classify.add_argument("--lab", type=Path, help="a lab profile (from `adapt`) to correct the model for your lab")
    classify.add_argument("--leave-out-cut-cells", action="store_true", help=LEAVE_OUT_CUT_HELP)
    adapt = commands.add_parser(
        "adapt",
        help="build a lab profile from a few labelled cells of your own",
        description="Build a lab profile: a folder of class folders (folder name = class, case-insensitive; at "
        f"least {MIN_PER_CLASS} cells of each class you use, 5 or more recommended) tunes the model to your lab. "
        "Prints its leave-one-out accuracy per class.",
    )
    adapt.add_argument("examples", type=Path, help="folder holding one folder of images per class")
    adapt.add_argument("--out", type=Path, required=True, help="the profile file to write (.npz)")
    add_model_argument(adapt)
    report = commands.add_parser(
        "report",
        help="classify images and write a PDF review report",
        description="Classify images (or fields of view) and write a PDF report: the model, the differential by the "
        "network and after review, and every cell with its thumbnail. With --review, a review saved from the app "
        "supplies the reviewer's corrections and comments.",
    )
    report.add_argument("paths", nargs="+", type=Path, help="image files, folders and/or ZIP archives of images")
    report.add_argument("--pdf", type=Path, required=True, help="the report to write")
    report.add_argument("--review", type=Path, help="a review saved from the app's Review page (JSON)")
    report.add_argument(
        "--heatmaps", action="store_true", help=f"add each cell's heatmap for its class ({DEFAULT_METHOD})"
    )
    report.add_argument("--reviewer", help="the reviewer's name for the report (default: the review file's)")
    report.add_argument("--sample", help="the sample's identifier for the report (default: the review file's)")
    report.add_argument("--mode", choices=CLASSIFY_MODES, default="auto", help="as for classify")
    report.add_argument("--lab", type=Path, help="a lab profile (from `adapt`) to read the cells through")
    report.add_argument("--threshold", type=float, default=None, help="as for classify")
    report.add_argument("--leave-out-cut-cells", action="store_true", help=LEAVE_OUT_CUT_HELP)
    add_model_argument(report)
    explain = commands.add_parser(
        "explain",
        help="write each image's heatmap (.npy, in the image's own pixels), its overlay and explain.csv",
        description="Explain single-cell images: for each, OUT/<stem>.npy (float32, the image's height x width, "
        "0-1; re-framed cells mapped back onto the image), OUT/<stem>.png (the overlay) and a row of "
        "OUT/explain.csv (file, predicted class, confidence, target, method, the peak's x and y). Unreadable "
        "images are named with the reason and the rest explained.",
    )
    explain.add_argument("paths", nargs="+", type=Path, help="image files, folders and/or ZIP archives of images")
    explain.add_argument("--out", type=Path, required=True, help="the folder to write maps, overlays and CSV to")
    explain.add_argument("--method", choices=list(METHODS), default=DEFAULT_METHOD, help="default: %(default)s")
    explain.add_argument("--target", help="the class to explain (default: each image's predicted class)")
    explain.add_argument("--threshold", type=float, default=None, help=argparse.SUPPRESS)
    add_model_argument(explain)
    explain.set_defaults(error=explain.error)
    args = parser.parse_args(argv)
    commands_by_name = {
        "adapt": adapt_command, "classify": classify_command, "explain": explain_command, "report": report_command
    }  # fmt: skip
    return commands_by_name[args.command](args)
