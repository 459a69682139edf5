"""The BCCD smear photos: their annotations, a photo-level split, white-cell crops and detection scores.

    python -m training.bccd --data ../shared/data [--seed 0] [--pbc-sample 200] [--json FILE]
        [--export-crops DIR [--margin M] [--train-margins M ...]] [--export-photos DIR]

Prints how well :func:`hematovision.core.smear.find_white_cells` finds the white cells of each split,
how many labelled single-cell crops each split yields for testing the PBC-trained classifier, and
how often :func:`hematovision.core.smear.is_whole_field` tells BCCD fields from PBC single-cell images.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from hematovision.core import paths
from hematovision.core.artifacts import load_evaluation, write_json
from hematovision.core.datasets import BCCD_SPLIT_SEED, CREDIT_FILE, CROPS_INFO_FILE, SPLITS, labelled_bccd_photos
from hematovision.core.smear import CROP_MARGIN, CellBox, crop_cell, find_white_cells, is_whole_field

#: The photo-level labels that name one white-cell type, lowercased to the PBC class names.
WHITE_CELL_LABELS = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
MATCH_IOU = 0.5
BCCD_CREDIT = "BCCD Dataset (github.com/Shenggan/BCCD_Dataset), MIT license"


@dataclass(frozen=True)
class SmearPhoto:
    name: str  # file stem, e.g. "BloodImage_00000"
    image_path: Path
    labels: tuple[str, ...]  # lowercased white-cell types from labels.csv, one per cell, may repeat
    split: str  # "train", "val" or "test"
    #: Annotated WBC boxes, or None where the photo has no annotation file or its file lists no WBC:
    #: every BCCD photo shows a white cell, so no WBC object means "not annotated", not "none there".
    wbc_boxes: tuple[CellBox, ...] | None


@dataclass(frozen=True)
class LabelledCrop:
    photo: str
    split: str
    label: str
    box: CellBox
    box_source: str  # "annotation" (a VOC WBC box) or "detector" (find_white_cells, where none is annotated)
    rgb: np.ndarray


def parse_voc_boxes(xml_path: Path, name: str = "WBC") -> list[CellBox]:
    """Boxes of one object class; VOC corners are inclusive and 1-based, a CellBox's right/bottom exclusive."""
    boxes = []
    for item in ET.parse(xml_path).getroot().iter("object"):
        corners = item.find("bndbox")
        if (item.findtext("name") or "").strip().upper() != name.upper() or corners is None:
            continue
        corners_text = [corners.findtext(key) for key in ("xmin", "ymin", "xmax", "ymax")]
        if None in corners_text:
            continue
        left, top, right, bottom = (round(float(text)) for text in corners_text)
        # Boxes that touch the frame are sometimes written with a 0 corner; clamping keeps them.
        boxes.append(CellBox(max(left - 1, 0), max(top - 1, 0), right, bottom))
    return boxes


def read_photos(bccd_dir: Path, seed: int = BCCD_SPLIT_SEED) -> list[SmearPhoto]:
    """Every photo under ``bccd_dir/JPEGImages`` with its labels, split and annotated WBC boxes."""
    photos = []
    for path, labels, split in labelled_bccd_photos(bccd_dir, seed):
        xml_path = bccd_dir / "Annotations" / f"{path.stem}.xml"
        boxes = tuple(parse_voc_boxes(xml_path)) if xml_path.is_file() else ()
        photos.append(SmearPhoto(path.stem, path, labels, split, boxes or None))
    return photos


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def labelled_crops(photos: Iterable[SmearPhoto], margin: float = CROP_MARGIN) -> list[LabelledCrop]:
    """One crop for each photo that shows exactly one white cell, of exactly one known type.

    The cell's box is the annotated one. Where a photo has no annotated WBC it is the detector's,
    and only when the detector finds exactly one cell, so the label cannot go to the wrong cell.
    """
    crops = []
    for photo in photos:
        if len(photo.labels) != 1 or photo.labels[0] not in WHITE_CELL_LABELS:
            continue
        rgb = load_rgb(photo.image_path)
        if photo.wbc_boxes is not None:
            boxes, source = list(photo.wbc_boxes), "annotation"
        else:
            boxes, source = find_white_cells(rgb), "detector"
        if len(boxes) == 1:
            crop = crop_cell(rgb, boxes[0], margin)
            crops.append(LabelledCrop(photo.name, photo.split, photo.labels[0], boxes[0], source, crop))
    return crops


def export_crops(
    folder: Path,
    crops: list[LabelledCrop],
    photos: list[SmearPhoto],
    train_margins: list[float] | None = None,
    margin: float = CROP_MARGIN,
) -> int:
    """Write ``folder/<split>/<label>/<photo>.png`` class folders; returns how many crops were written.

    With ``train_margins`` each training cell is cut again around the same box once per margin, named
    ``m<percent>_<photo>.png``, while validation and test crops stay as they are: the app crops at one
    margin, and another lab's cells may come at another scale. ``margin`` is the one ``crops`` were cut
    at; it is recorded, with the cell and crop counts, in crops.json for the model card.
    """
    image_paths = {photo.name: photo.image_path for photo in photos}
    exported = []
    for crop in crops:
        if crop.split == "train" and train_margins:
            rgb = load_rgb(image_paths[crop.photo])
            exported += [
                (crop, crop_cell(rgb, crop.box, m), f"m{round(100 * m)}_{crop.photo}.png") for m in train_margins
            ]
        else:
            exported.append((crop, crop.rgb, f"{crop.photo}.png"))
    for crop, rgb, file_name in exported:
        class_folder = folder / crop.split / crop.label
        class_folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(class_folder / file_name)
    # Whoever trains on these crops gets the credit into their model card (training.train).
    (folder / CREDIT_FILE).write_text(BCCD_CREDIT + "\n", encoding="utf-8")
    write_json(
        folder / CROPS_INFO_FILE,
        {
            "cells": dict(Counter(crop.split for crop in crops)),
            "crops": dict(Counter(crop.split for crop, _, _ in exported)),
            "margin": margin,
            "train_margins": list(train_margins or [margin]),
        },
    )
    return len(exported)


def export_photos(folder: Path, photos: list[SmearPhoto], scale: float = 0.5) -> int:
    """Write ``folder/<split>/<label>/<photo>.png``: each photo that names one white cell, whole,
    resized by ``scale``. Photos naming two cells (of one type or two) are left out, as for the crops."""
    written = 0
    for photo in photos:
        if len(photo.labels) != 1:
            continue
        image = Image.open(photo.image_path).convert("RGB")
        size = (round(image.width * scale), round(image.height * scale))
        class_folder = folder / photo.split / photo.labels[0]
        class_folder.mkdir(parents=True, exist_ok=True)
        image.resize(size, Image.Resampling.BILINEAR).save(class_folder / f"{photo.name}.png")
        written += 1
    (folder / CREDIT_FILE).write_text(BCCD_CREDIT + "\n", encoding="utf-8")
    return written


def export_views(
    folder: Path, crops: list[LabelledCrop], photos: list[SmearPhoto], per_cell: int = 2, seed: int = 0
) -> int:
    """Write ``folder/<split>/<label>/<photo>_v<k>.png``: 320x240 views centred on each labelled cell.

    Like the widely used 4-class "Blood Cell Images" set made from these photos: the photo (mirrored
    at its edges) turned about the cell by a random angle and flipped at random, the 640x480 window
    around the cell kept and halved to 320x240. Whoever evaluates them gets the field path: the app
    finds the cells in the view and names the one nearest the centre.
    """
    rng = np.random.default_rng(seed)
    image_paths = {photo.name: photo.image_path for photo in photos}
    written = 0
    for crop in crops:
        rgb = load_rgb(image_paths[crop.photo])
        height, width = rgb.shape[:2]
        pad = max(height, width)
        padded = Image.fromarray(np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric"))
        centre = (pad + (crop.box.left + crop.box.right) / 2, pad + (crop.box.top + crop.box.bottom) / 2)
        class_folder = folder / crop.split / crop.label
        class_folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_cell):
            turned = padded.rotate(float(rng.uniform(0, 360)), resample=Image.Resampling.BILINEAR, center=centre)
            left, top = round(centre[0] - width / 2), round(centre[1] - height / 2)
            view = turned.crop((left, top, left + width, top + height)).resize((width // 2, height // 2))
            if rng.random() < 0.5:
                view = ImageOps.mirror(view)
            view.save(class_folder / f"{crop.photo}_v{k}.png")
            written += 1
    (folder / CREDIT_FILE).write_text(BCCD_CREDIT + "\n", encoding="utf-8")
    return written


def count_matches(found: list[CellBox], truth: list[CellBox], min_iou: float = MATCH_IOU) -> int:
    """Pairs made by greedy one-to-one matching, highest IoU first, each pair at ``min_iou`` or more."""
    pairs = sorted(
        ((box.iou(other), i, j) for i, box in enumerate(found) for j, other in enumerate(truth)), reverse=True
    )
    used_found: set[int] = set()
    used_truth: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < min_iou:
            break
        if i not in used_found and j not in used_truth:
            used_found.add(i)
            used_truth.add(j)
    return len(used_found)


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def detection_scores(photos: Iterable[SmearPhoto], split: str | None = None) -> dict:
    """How well :func:`find_white_cells` does on the photos of ``split`` (all photos for None).

    ``recall`` and ``precision`` are against the annotated WBC boxes at IoU >= 0.5, over the photos that
    have any (None where none has). The count check needs no boxes: on each labelled photo, the number
    of cells found is compared with the number labels.csv names, which bounds both errors from below.
    """
    chosen = [photo for photo in photos if split is None or photo.split == split]
    seconds: list[float] = []
    matched = found_on_annotated = boxes = 0
    labelled = labelled_cells = found_on_labelled = agreeing = missed = extra = 0
    for photo in chosen:
        rgb = load_rgb(photo.image_path)
        start = time.perf_counter()
        found = find_white_cells(rgb)
        seconds.append(time.perf_counter() - start)
        if photo.wbc_boxes is not None:
            boxes += len(photo.wbc_boxes)
            found_on_annotated += len(found)
            matched += count_matches(found, list(photo.wbc_boxes))
        if photo.labels:
            labelled += 1
            labelled_cells += len(photo.labels)
            found_on_labelled += len(found)
            agreeing += len(found) == len(photo.labels)
            missed += max(len(photo.labels) - len(found), 0)
            extra += max(len(found) - len(photo.labels), 0)
    return {
        "split": split or "all",
        "photos": len(chosen),
        "photos_with_wbc_boxes": sum(photo.wbc_boxes is not None for photo in chosen),
        "wbc_boxes": boxes,
        "detections_on_annotated_photos": found_on_annotated,
        "matched": matched,
        "recall": ratio(matched, boxes),
        "precision": ratio(matched, found_on_annotated),
        "labelled_photos": labelled,
        "labelled_cells": labelled_cells,
        "detections_on_labelled_photos": found_on_labelled,
        "count_agreement": ratio(agreeing, labelled),
        "cells_missed_at_least": missed,
        "extra_detections_at_least": extra,
        "median_seconds_per_photo": statistics.median(seconds) if seconds else None,
    }


def pbc_sample_paths(pbc_dir: Path, pbc_sample: int, seed: int) -> list[Path]:
    pbc_paths = sorted(pbc_dir.glob("*/*.jpg"))
    chosen = np.random.default_rng(seed).choice(len(pbc_paths), min(pbc_sample, len(pbc_paths)), replace=False)
    return [pbc_paths[index] for index in sorted(chosen)]


def whole_field_rates(photos: Iterable[SmearPhoto], pbc_paths: list[Path]) -> dict:
    """How often :func:`is_whole_field` calls BCCD photos fields and PBC single-cell images not."""
    bccd_calls = [is_whole_field(load_rgb(photo.image_path)) for photo in photos]
    pbc_calls = [is_whole_field(load_rgb(path)) for path in pbc_paths]
    return {
        "bccd_photos": len(bccd_calls),
        "bccd_called_field": ratio(sum(bccd_calls), len(bccd_calls)),
        "pbc_images": len(pbc_calls),
        "pbc_called_single_cell": ratio(len(pbc_calls) - sum(pbc_calls), len(pbc_calls)),
    }


def pbc_cell_scale(pbc_paths: list[Path]) -> dict:
    """How large a cell is in a PBC image: the found box's longer side over the image's longer side.

    The classifier learned cells at this scale, so a cell cropped from another lab's photo should be
    shown at it too: the crop margin that does so is ``(1 / fraction - 1) / 2``.
    """
    fractions = []
    for path in pbc_paths:
        rgb = load_rgb(path)
        boxes = find_white_cells(rgb)
        if len(boxes) == 1:
            fractions.append(max(boxes[0].width, boxes[0].height) / max(rgb.shape[:2]))
    median = statistics.median(fractions) if fractions else None
    return {
        "images": len(pbc_paths),
        "one_cell_found": len(fractions),
        "median_cell_fraction": median,
        "margin_for_pbc_scale": (1 / median - 1) / 2 if median else None,
    }


def crop_counts(crops: list[LabelledCrop]) -> dict[str, dict[str, int]]:
    """{split: {label: count}} with every known label present."""
    tally = Counter((crop.split, crop.label) for crop in crops)
    return {split: {label: tally[split, label] for label in WHITE_CELL_LABELS} for split in SPLITS}


def percent(value: float | None) -> str:
    return "   n/a" if value is None else f"{100 * value:5.1f}%"


def print_report(report: dict) -> None:
    print(f"BCCD white-cell detection (IoU >= {MATCH_IOU}), photo split seed {report['seed']}")
    header = f"{'split':<6}{'photos':>7}{'WBC boxes':>10}{'recall':>8}{'precision':>10}"
    print(header + f"{'cells named':>12}{'found':>7}{'count agrees':>13}{'ms/photo':>9}")
    for scores in report["detection"].values():
        print(
            f"{scores['split']:<6}{scores['photos']:>7}{scores['wbc_boxes']:>10}{percent(scores['recall']):>8}"
            f"{percent(scores['precision']):>10}{scores['labelled_cells']:>12}"
            f"{scores['detections_on_labelled_photos']:>7}{percent(scores['count_agreement']):>13}"
            f"{1000 * (scores['median_seconds_per_photo'] or 0):>9.1f}"
        )
    if not any(scores["wbc_boxes"] for scores in report["detection"].values()):
        print("no annotation lists a WBC box: recall/precision cannot be scored; the count columns compare")
        print("the cells found with the number of white cells labels.csv names per photo")
    print("labelled single-cell crops (photos with one white cell of one type):")
    print(f"{'split':<6}" + "".join(f"{label:>12}" for label in WHITE_CELL_LABELS))
    for split, counts in report["crops"].items():
        print(f"{split:<6}" + "".join(f"{counts[label]:>12}" for label in WHITE_CELL_LABELS))
    print("crop boxes from: " + ", ".join(f"{source} {n}" for source, n in report["crop_box_sources"].items()))
    if "whole_field" in report:
        rates = report["whole_field"]
        print(
            f"is_whole_field: {percent(rates['bccd_called_field'])} of {rates['bccd_photos']} BCCD photos read as "
            "fields (the rest show one white cell at the centre, so are one cell),"
            f" {percent(rates['pbc_called_single_cell'])} of {rates['pbc_images']} PBC images single cells"
        )
    scale = report.get("pbc_cell_scale", {})
    if scale.get("median_cell_fraction"):
        print(
            f"PBC cell scale: the cell spans {scale['median_cell_fraction']:.3f} of the image (median of"
            f" {scale['one_cell_found']} of {scale['images']} with one cell found); crop margin"
            f" {scale['margin_for_pbc_scale']:.2f} shows other labs' cells at that scale (now {CROP_MARGIN})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.bccd", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=paths.SHARED_DATA_DIR, help="folder holding bccd/")
    parser.add_argument("--seed", type=int, default=BCCD_SPLIT_SEED, help="seed of the photo split")
    parser.add_argument("--pbc-sample", type=int, default=200, help="PBC images to check is_whole_field on (0: none)")
    parser.add_argument("--json", type=Path, help="write the report to this JSON file")
    parser.add_argument(
        "--margin", type=float, default=CROP_MARGIN, help="context kept around each cell box, as a share of its side"
    )
    parser.add_argument(
        "--train-margins",
        type=float,
        nargs="+",
        metavar="MARGIN",
        help="write each training crop once per margin, as m<percent>_<photo>.png, so a model trained on them "
        "sees cells at several scales (val and test crops keep --margin, the app's)",
    )
    parser.add_argument(
        "--export-crops",
        type=Path,
        metavar="DIR",
        help="also write the labelled crops as DIR/<split>/<label>/<photo>.png, class folders that "
        "python -m training.evaluate can score (keep DIR outside the repository: they are dataset images)",
    )
    parser.add_argument(
        "--export-photos",
        type=Path,
        metavar="DIR",
        help="also write every photo naming one white-cell type, whole and at half size (320x240, like the widely "
        "used 4-class 'Blood Cell Images' set made from these photos), as DIR/<split>/<label>/<photo>.png: "
        "what python -m training.evaluate scores through the app's Automatic mode",
    )
    parser.add_argument(
        "--export-views",
        type=Path,
        metavar="DIR",
        help="also write two 320x240 views centred on each labelled white cell, turned and flipped at random as "
        "the 'Blood Cell Images' set is, as DIR/<split>/<label>/<photo>_v<k>.png",
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="MODEL_DIR",
        help="store the detection scores in MODEL_DIR/evaluation.json (shown on the Model performance page)",
    )
    args = parser.parse_args(argv)
    if args.train_margins and not args.export_crops:
        parser.error("--train-margins only applies with --export-crops")

    bccd_dir = args.data / "bccd" if (args.data / "bccd").is_dir() else args.data
    if not (bccd_dir / "JPEGImages").is_dir():
        print(f"error: no BCCD photos under {bccd_dir} (expected JPEGImages/)", file=sys.stderr)
        return 2
    photos = read_photos(bccd_dir, args.seed)
    crops = labelled_crops(photos, args.margin)
    report = {
        "data": str(bccd_dir),
        "seed": args.seed,
        "detection": {split: detection_scores(photos, split) for split in SPLITS} | {"all": detection_scores(photos)},
        "crops": crop_counts(crops),
        "crop_box_sources": dict(Counter(crop.box_source for crop in crops)),
    }
    pbc_dir = args.data / "pbc"
    if args.pbc_sample > 0 and pbc_dir.is_dir():
        pbc_paths = pbc_sample_paths(pbc_dir, args.pbc_sample, args.seed)
        report["whole_field"] = whole_field_rates(photos, pbc_paths)
        report["pbc_cell_scale"] = pbc_cell_scale(pbc_paths)
    print_report(report)
    if args.export_crops:
        written = export_crops(args.export_crops, crops, photos, args.train_margins, args.margin)
        print(f"{written} crops written under {args.export_crops}")
    if args.export_photos:
        written = export_photos(args.export_photos, photos)
        print(f"{written} whole photos written under {args.export_photos}")
    if args.export_views:
        written = export_views(args.export_views, crops, photos, seed=args.seed)
        print(f"{written} views written under {args.export_views}")
    if args.json:
        write_json(args.json, report)
        print(f"written to {args.json}")
    if args.record:
        evaluation = load_evaluation(args.record)
        evaluation["detection"] = report["detection"]
        write_json(args.record / paths.EVALUATION_FILE, evaluation)
        print(f"detection scores recorded in {args.record / paths.EVALUATION_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
