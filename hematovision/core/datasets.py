"""Finding labelled images: the PBC manifest, or any class-per-folder tree.

A manifest dataset carries its own train/val/test split; a folder tree gets a stratified split
made here from a seed, so the same seed always gives the same split.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hematovision.core.imaging import IMAGE_SUFFIXES

MANIFEST_NAME = "pbc_manifest.csv"
#: Chula's crops (../shared/data/chula): columns crop, frame, sequence, class, ..., split (train/test by sequence).
CHULA_MANIFEST_NAME = "manifest.csv"
CHULA_CREDIT = "Chula WBC dataset (github.com/singgihbekti/WBC_Dataset), MIT license, (c) 2022 singgihbekti"
SPLITS = ("train", "val", "test")
#: A dataset folder may say whom to credit in this file; it is copied into the model card.
CREDIT_FILE = "CREDIT.txt"
PBC_CREDIT = "Acevedo et al., Data in Brief 30 (2020) 105474, CC BY 4.0"
#: Crops cut from larger photos may say how in this file (cells per split, margins); it joins the model card.
CROPS_INFO_FILE = "crops.json"


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: str
    split: str = ""
    subtype: str = ""  # the manifest's finer cell type (e.g. BNE, SNE within neutrophil), where it has one
    #: Images of one physical cell (Chula's video sequence): scored and split together, never apart.
    group: str = ""


@dataclass
class FolderScan:
    """A class-per-folder tree: the images found, and what was skipped and why."""

    images: list[LabelledImage]
    skipped: list[str]


def find_manifest(data_dir: Path) -> Path | None:
    """The PBC manifest, or Chula's, in ``data_dir``."""
    for name in (MANIFEST_NAME, CHULA_MANIFEST_NAME):
        candidate = data_dir / name
        if candidate.is_file():
            return candidate
    return None


def dataset_credit(data_dir: Path) -> str:
    """Whom to credit for a dataset: its CREDIT.txt, else PBC for the PBC manifest, else empty."""
    credit_file = data_dir / CREDIT_FILE
    if credit_file.is_file():
        return " ".join(credit_file.read_text(encoding="utf-8").split())
    manifest = find_manifest(data_dir)
    if manifest is None:
        return ""
    return CHULA_CREDIT if manifest.name == CHULA_MANIFEST_NAME else PBC_CREDIT


def crops_info(data_dir: Path) -> dict:
    """The folder's crops.json (how its crops were cut), or {} where it has none."""
    info_file = data_dir / CROPS_INFO_FILE
    return json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}


def read_manifest(manifest: Path) -> list[LabelledImage]:
    """Rows of the manifest (PBC's or Chula's), with paths resolved against the manifest's folder."""
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "crop" in rows[0]:
        return [
            LabelledImage(manifest.parent / row["crop"], row["class"], row["split"], group=row["sequence"])
            for row in rows
        ]
    return [
        LabelledImage(manifest.parent / row["path"], row["label"], row["split"], row.get("subtype") or "")
        for row in rows
    ]


def examples_per_class(data_dir: Path, classes: list[str], split: str = "test") -> list[LabelledImage]:
    """The first image of each class in the manifest's ``split``, by file name, in ``classes`` order.

    Chosen by a fixed rule, not for being classified right, so that they show the model as it is. Empty
    where ``data_dir`` holds no manifest: the images stay outside the repository.
    """
    manifest = find_manifest(data_dir)
    if manifest is None:
        return []
    first: dict[str, LabelledImage] = {}
    for item in sorted(read_manifest(manifest), key=lambda item: item.path.name):
        if item.split == split and item.label in classes and item.label not in first and item.path.is_file():
            first[item.label] = item
    return [first[label] for label in classes if label in first]


def scan_class_folders(root: Path, known_labels: list[str] | None = None) -> FolderScan:
    """Images under ``root/<label>/``; labels match ``known_labels`` case-insensitively.

    A folder whose name is not a known label is skipped and reported, not an error: a user's
    dataset often holds classes this model was never taught.
    """
    by_lower = {label.lower(): label for label in known_labels} if known_labels else None
    images: list[LabelledImage] = []
    skipped: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if by_lower is None:
            label = folder.name.lower()
        elif folder.name.lower() in by_lower:
            label = by_lower[folder.name.lower()]
        else:
            skipped.append(f"{folder.name}/ ({len(files)} images): the model has no class '{folder.name}'")
            continue
        if not files:
            skipped.append(f"{folder.name}/: no image files")
            continue
        images.extend(LabelledImage(path, label) for path in files)
    return FolderScan(images, skipped)


def stratified_split(
    images: list[LabelledImage], seed: int, fractions: tuple[float, float, float] = (0.75, 0.10, 0.15)
) -> list[LabelledImage]:
    """Assign train/val/test per class in the given fractions, reproducibly from ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[LabelledImage] = []
    for label in sorted({image.label for image in images}):
        members = sorted((image for image in images if image.label == label), key=lambda image: str(image.path))
        order = rng.permutation(len(members))
        n_val = round(len(members) * fractions[1])
        n_test = round(len(members) * fractions[2])
        for rank, index in enumerate(order):
            split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
            out.append(LabelledImage(members[index].path, label, split))
    return out


def class_counts_by_split(images: list[LabelledImage]) -> dict[str, dict[str, int]]:
    """{split: {label: count}} for the model card and the Model performance page."""
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        tally = Counter(image.label for image in images if image.split == split)
        counts[split] = dict(sorted(tally.items()))
    return counts


# The BCCD photo split lives here because the pipeline (`training.bccd`) and the app's examples must agree
# on which photos were held out.

BCCD_FOLDER = "bccd"
BCCD_SPLIT_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
#: The split's default seed, the one the shipped model's BCCD crops were exported with.
BCCD_SPLIT_SEED = 0


def parse_labels(csv_path: Path) -> dict[str, tuple[str, ...]]:
    """{photo stem: lowercased labels}: "NEUTROPHIL, EOSINOPHIL" names two cells, a blank none."""
    labels: dict[str, tuple[str, ...]] = {}
    with csv_path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            image = (row.get("image") or "").strip()
            if image:
                parts = (part.strip().lower() for part in (row.get("category") or "").split(","))
                labels[Path(image).stem] = tuple(part for part in parts if part)
    return labels


def stratum(labels: tuple[str, ...]) -> str:
    """What a photo is stratified by: its one cell type, else "mixed" or "unlabelled"."""
    kinds = sorted(set(labels))
    return kinds[0] if len(kinds) == 1 else "mixed" if kinds else "unlabelled"


def split_photos(names: Iterable[str], seed: int, strata: Mapping[str, str] | None = None) -> dict[str, str]:
    """{name: "train" | "val" | "test"}, about 60/20/20 within each stratum, the same for the same seed.

    Whole photos are split, never cells, so that two cells of one photo (same stain, same focus) cannot
    land on both sides. The result does not depend on the order of ``names``.
    """
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        groups.setdefault(strata.get(name, "") if strata else "", []).append(name)
    splits: dict[str, str] = {}
    for key in sorted(groups):
        members = groups[key]
        n_val = round(len(members) * BCCD_SPLIT_FRACTIONS["val"])
        n_test = round(len(members) * BCCD_SPLIT_FRACTIONS["test"])
        for rank, index in enumerate(rng.permutation(len(members))):
            splits[members[index]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return splits


def labelled_bccd_photos(bccd_dir: Path, seed: int = BCCD_SPLIT_SEED) -> list[tuple[Path, tuple[str, ...], str]]:
    """(path, labels, split) of every photo under ``bccd_dir/JPEGImages``, by name, stratified by the
    white-cell type each one names; the same split for the same ``seed``."""
    labels = parse_labels(bccd_dir / "labels.csv")
    image_paths = sorted((bccd_dir / "JPEGImages").glob("*.jpg"))
    strata = {path.stem: stratum(labels.get(path.stem, ())) for path in image_paths}
    splits = split_photos(strata, seed, strata)
    return [(path, labels.get(path.stem, ()), splits[path.stem]) for path in image_paths]


def smear_example(data_dir: Path, seed: int = BCCD_SPLIT_SEED) -> tuple[Path, str] | None:
    """The first held-out (test) BCCD photo by name that names one white cell, with that cell's label.

    ``seed`` is the split's, as in ``python -m training.bccd``; None where the BCCD photos are not here.
    """
    bccd_dir = data_dir / BCCD_FOLDER
    if not (bccd_dir / "labels.csv").is_file():
        return None
    for path, labels, split in labelled_bccd_photos(bccd_dir, seed):
        if split == "test" and len(labels) == 1:
            return path, labels[0]
    return None


@dataclass(frozen=True)
class AttributeRow:
    """A manifest image with its WBCAtt attributes (name -> value; empty values for unannotated classes)."""

    path: Path
    label: str
    split: str
    attributes: dict[str, str]


def read_attribute_rows(manifest: Path, names: Iterable[str]) -> list[AttributeRow]:
    """Rows of the manifest with the attribute columns ``names``, paths resolved against its folder."""
    names = list(names)
    with manifest.open(newline="") as handle:
        return [
            AttributeRow(
                manifest.parent / row["path"],
                row["label"],
                row["split"],
                {name: (row.get(name) or "").strip() for name in names},
            )
            for row in csv.DictReader(handle)
        ]
