"""Build the teaching deck shipped in hematovision/deck/ from the PBC test split.

    python -m training.deck --data ../shared/data --model models [--out hematovision/deck]

Selection rule (hematovision.workflows.teaching.select_deck), per class of the manifest's test split:
1. 12 cells taken in turn from each subtype of the class (so MY, MMY, PMY and IG all appear among the
   immature granulocytes, SNE, BNE and NEUTROPHIL among the neutrophils), each subtype's cells in the order
   of the SHA-256 of the file name, a fixed order unrelated to how the model reads them;
2. plus the 3 test cells of the class on which the shipped model's margin between its top two classes
   is smallest (read as the app reads them), whatever the model answered: the cells it hesitates on,
   not the ones it gets right or wrong. They are marked ``hard_case`` in deck.csv.
Images are resized to --size px on the longer side and saved as JPEG (--quality); deck.csv carries each
cell's label, subtype, the WBCAtt attributes (white cells only) and its path in the dataset, CREDITS.md
the licences (CC BY 4.0 for the images, MIT for the attributes), and attribute_counts.csv how many of the
train split's white cells of each class show each attribute value (what the Atlas describes classes by).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from PIL import Image

from hematovision.core import paths
from hematovision.core.artifacts import ArtifactError
from hematovision.core.datasets import LabelledImage, find_manifest
from hematovision.core.imaging import ImageLoadError, decode_image
from hematovision.core.predict import Classifier
from hematovision.heads.morphology import ATTRIBUTES
from hematovision.workflows.teaching import (
    ATTRIBUTE_COUNTS_FILE,
    CELLS_FOLDER,
    CREDITS_FILE,
    DECK_COLUMNS,
    DECK_FILE,
    HARD_PER_CLASS,
    PER_CLASS,
    attribute_counts,
    select_deck,
    write_attribute_counts,
)
from training.scoring import predictions_on_files

CREDITS = """# Teaching deck: credits and licences

The images in `cells/` are peripheral blood cells from the PBC dataset's held-out test split, **resized**
to {size} px on the longer side and re-encoded as JPEG (quality {quality}) by `python -m training.deck`:

Acevedo A., Merino A., Alférez S., Molina Á., Boldú L., Rodellar J. "A dataset of microscopic peripheral
blood cell images for development of automatic recognition systems." Data in Brief 30 (2020) 105474.
doi:10.1016/j.dib.2020.105474. Licence: CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
Changes: resized and re-compressed; a selection of {count} cells.

The morphological attributes in `deck.csv` (cell_size ... granularity, white cells only), and their
counts over the PBC train split's white cells in `attribute_counts.csv`, are from:
Tsutsui S., Pang W., Wen B. "WBCAtt: A White Blood Cell Dataset Annotated with Detailed Morphological
Attributes." NeurIPS 2023 Datasets and Benchmarks. Licence: MIT.

How the cells were chosen is written in `training/deck.py` (and models/README.md): per class, {per_class} cells
in a fixed hash order of their file names with every subtype represented, plus up to {hard} "hard cases" (the
test cells on which the model's top two classes were closest), whatever the model answered.
"""


def read_manifest_rows(data: Path) -> list[dict[str, str]]:
    manifest = find_manifest(data)
    if manifest is None:
        raise FileNotFoundError(f"no pbc_manifest.csv in {data}")
    with manifest.open(newline="") as handle:
        return list(csv.DictReader(handle))


def resized_jpeg(source: Path, target: Path, size: int, quality: int) -> None:
    image = Image.fromarray(decode_image(source).rgb)
    scale = size / max(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    image.save(target, format="JPEG", quality=quality, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.deck", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="the PBC dataset folder (with pbc_manifest.csv)")
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR, help="artifact folder (hard cases)")
    parser.add_argument("--out", type=Path, default=paths.DECK_DIR, help="deck folder (its cells are replaced)")
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--hard-per-class", type=int, default=HARD_PER_CLASS)
    parser.add_argument("--size", type=int, default=192, help="longer side of the saved images, px")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality")
    args = parser.parse_args(argv)

    try:
        manifest_rows = read_manifest_rows(args.data)
        classifier = Classifier.load(args.model)
    except (FileNotFoundError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = [row for row in manifest_rows if row["split"] == "test"]
    items = [LabelledImage(args.data / row["path"], row["label"], "test", row["subtype"]) for row in rows]
    predictions, unreadable = predictions_on_files(classifier, items, "auto", args.data)
    for item in unreadable:
        print(f"unreadable, left out: {item['file']}: {item['reason']}", file=sys.stderr)
    margins = {row["path"]: row["margin"] for row in predictions}
    readable = [row for row in rows if row["path"] in margins]
    chosen = select_deck(readable, margins, args.per_class, args.hard_per_class)

    cells = args.out / CELLS_FOLDER
    cells.mkdir(parents=True, exist_ok=True)
    for old in cells.glob("*.jpg"):
        old.unlink()
    table = []
    for row, hard in chosen:
        name = f"{row['label']}_{Path(row['path']).stem}.jpg"
        try:
            resized_jpeg(args.data / row["path"], cells / name, args.size, args.quality)
        except ImageLoadError as exc:
            print(f"unreadable, left out: {row['path']}: {exc}", file=sys.stderr)
            continue
        table.append(
            {
                "file": name,
                "label": row["label"],
                "subtype": row["subtype"],
                "hard_case": "yes" if hard else "no",
                **{attribute: row.get(attribute, "") for attribute in ATTRIBUTES},
                "source": row["path"],
            }
        )
    with (args.out / DECK_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=DECK_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    write_attribute_counts(
        args.out / ATTRIBUTE_COUNTS_FILE, attribute_counts([row for row in manifest_rows if row["split"] == "train"])
    )
    (args.out / CREDITS_FILE).write_text(
        CREDITS.format(
            size=args.size, quality=args.quality, count=len(table), per_class=args.per_class, hard=args.hard_per_class
        ),
        encoding="utf-8",
    )
    total = sum(path.stat().st_size for path in cells.glob("*.jpg"))
    for label in dict.fromkeys(entry["label"] for entry in table):
        mine = [entry for entry in table if entry["label"] == label]
        subtypes = sorted({entry["subtype"] for entry in mine})
        hard = sum(entry["hard_case"] == "yes" for entry in mine)
        print(f"{label:<13} {len(mine):>3} cells ({hard} hard cases), subtypes {', '.join(subtypes)}")
    print(f"{len(table)} cells, {total / 1e6:.2f} MB of images, written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
