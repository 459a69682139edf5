"""How the classifier holds up when PBC images are changed the way another lab's images differ.

    python -m training.robustness --model models --data ../shared/data [--split test] [--record] [--json FILE]

Each condition changes every image of one PBC split (at the model's input size) in one way a different
stain, camera, focus or magnification would: a hue tint, paler or stronger stain, lighter or darker
exposure, blur, lower resolution, or the cell shown smaller (a wider field of view). It prints accuracy
and the lowest class recall per condition. Use `--split val` to compare candidate models (the choice
must not see test images); `--record` adds the test-split figures to the artifact folder's
evaluation.json, where the Model performance page shows them. Real other-lab images remain the
real test (the BCCD crops); these conditions only show which changes the model is sensitive to.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hematovision.core import paths
from hematovision.core.artifacts import load_evaluation, write_json
from hematovision.core.datasets import LabelledImage, find_manifest, read_manifest
from hematovision.core.predict import Classifier
from hematovision.heads.metrics import confusion_matrix, per_class_scores
from training.data import load_split
from training.ood_images import jpeg_round_trip

Transform = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Condition:
    name: str
    description: str
    transform: Transform


def per_image(change: Callable[[Image.Image], Image.Image]) -> Transform:
    def apply(batch: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(change(Image.fromarray(image)).convert("RGB")) for image in batch])

    return apply


def hue_shift(turn: float) -> Transform:
    """Rotate every pixel's hue by `turn` of the colour wheel (stain batch, camera white balance)."""

    def change(image: Image.Image) -> Image.Image:
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(turn * 256)) % 256
        return Image.fromarray(hsv, "HSV")

    return per_image(change)


def saturation(factor: float) -> Transform:
    """Scale colour saturation: a paler or stronger stain."""

    def apply(batch: np.ndarray) -> np.ndarray:
        x = batch.astype(np.float32)
        grey = x.mean(axis=-1, keepdims=True)
        return np.clip(grey + factor * (x - grey), 0, 255).astype(np.uint8)

    return apply


def gamma(power: float) -> Transform:
    """Exposure: above 1 darkens the mid-tones, below 1 lightens them."""
    return lambda batch: np.clip(255.0 * (batch / 255.0) ** power, 0, 255).astype(np.uint8)


def blur(sigma: float) -> Transform:
    """Out of focus, sigma in pixels at the model's input size."""
    return per_image(lambda image: image.filter(ImageFilter.GaussianBlur(sigma)))


def lower_resolution(scale: float, quality: int = 85) -> Transform:
    """A camera with fewer pixels per cell: shrink, save as JPEG, and let the model's resize enlarge it."""

    def change(image: Image.Image) -> Image.Image:
        small = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
        return jpeg_round_trip(small, quality).resize(image.size, Image.Resampling.BILINEAR)

    return per_image(change)


def smaller_cell(scale: float) -> Transform:
    """A wider field of view: the whole image shrunk to `scale`, the smear mirrored outward to fill the frame."""

    def change(image: Image.Image) -> Image.Image:
        side = round(image.width * scale)
        small = np.asarray(image.resize((side, side), Image.Resampling.BILINEAR))
        before = (image.width - side) // 2
        after = image.width - side - before
        return Image.fromarray(np.pad(small, ((before, after), (before, after), (0, 0)), mode="reflect"))

    return per_image(change)


CONDITIONS = (
    Condition("as recorded", "the images unchanged", lambda batch: batch),
    Condition("hue -0.1", "stain tint: hue turned back a tenth of the colour wheel", hue_shift(-0.1)),
    Condition("hue +0.1", "stain tint: hue turned on a tenth of the colour wheel", hue_shift(0.1)),
    Condition("saturation x0.5", "paler stain", saturation(0.5)),
    Condition("saturation x1.5", "stronger stain", saturation(1.5)),
    Condition("gamma 0.7", "lighter exposure", gamma(0.7)),
    Condition("gamma 1.4", "darker exposure", gamma(1.4)),
    Condition("blur 2 px", "out of focus (Gaussian sigma 2 px at input size)", blur(2.0)),
    Condition("half resolution", "half the pixels per cell, saved as JPEG (quality 85)", lower_resolution(0.5)),
    Condition("cell at 0.8 size", "wider field of view: the cell at 0.8 of its size", smaller_cell(0.8)),
    Condition("cell at 0.7 size", "wider field of view: the cell at 0.7 of its size", smaller_cell(0.7)),
    Condition("cell at 0.6 size", "wider field of view: the cell at 0.6 of its size", smaller_cell(0.6)),
)


def score_conditions(
    classifier: Classifier,
    images: np.ndarray,
    labels: np.ndarray,
    conditions: Sequence[Condition] = CONDITIONS,
    batch_size: int = 256,
) -> list[dict]:
    """Accuracy and lowest class recall of the model on each changed copy of the images."""
    rows = []
    for condition in conditions:
        predicted = np.concatenate(
            [
                classifier.probabilities(condition.transform(images[start : start + batch_size]).astype(np.float32))
                for start in range(0, len(images), batch_size)
            ]
        ).argmax(axis=1)
        scores = per_class_scores(confusion_matrix(labels, predicted, len(classifier.classes)))
        recalls = {
            name: float(recall)
            for name, recall, support in zip(classifier.classes, scores["recall"], scores["support"], strict=True)
            if support
        }
        weakest = min(recalls, key=recalls.get)
        rows.append(
            {
                "condition": condition.name,
                "description": condition.description,
                "accuracy": float(np.mean(predicted == labels)),
                "lowest_recall_class": weakest,
                "lowest_recall": recalls[weakest],
            }
        )
    return rows


@dataclass(frozen=True)
class SplitRequest:
    """What a PBC-split measuring CLI was asked for, checked, with the classifier loaded."""

    args: argparse.Namespace
    manifest: Path
    classifier: Classifier
    images: list[LabelledImage]


def parse_split_request(prog: str, description: str, argv: list[str] | None) -> SplitRequest | int:
    """The options shared by this CLI and `training.setups`; an exit code when they cannot be honoured."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR, help="artifact folder")
    parser.add_argument("--data", type=Path, default=paths.SHARED_DATA_DIR, help="folder with pbc_manifest.csv")
    parser.add_argument("--split", choices=("val", "test"), default="test", help="manifest split to change and score")
    parser.add_argument("--record", action="store_true", help="add the results to the model's evaluation.json")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    manifest = find_manifest(args.data)
    if manifest is None:
        print(f"error: no pbc_manifest.csv in {args.data}", file=sys.stderr)
        return 2
    if args.record and args.split != "test":
        print("error: --record keeps test-split figures only; validation figures are for choosing", file=sys.stderr)
        return 2
    chosen = [image for image in read_manifest(manifest) if image.split == args.split]
    return SplitRequest(args, manifest, Classifier.load(args.model), chosen)


def keep_result(args: argparse.Namespace, key: str, result: dict) -> None:
    """--json writes the result to a file; --record adds it to the model's evaluation.json under ``key``."""
    if args.json:
        write_json(args.json, result)
    if args.record:
        evaluation = load_evaluation(args.model)
        evaluation[key] = result
        write_json(args.model / paths.EVALUATION_FILE, evaluation)
        print(f"recorded in {args.model / paths.EVALUATION_FILE}")


def main(argv: list[str] | None = None) -> int:
    request = parse_split_request("python -m training.robustness", __doc__.split("\n\n")[0], argv)
    if isinstance(request, int):
        return request
    classifier, split = request.classifier, request.args.split
    batch = load_split(request.images, classifier.classes, classifier.card.input_size)
    if not len(batch.labels):
        print(f"error: no readable {split} images in {request.manifest}", file=sys.stderr)
        return 1
    rows = score_conditions(classifier, batch.images, batch.labels)
    result = {"dataset": f"pbc_{split}", "n": len(batch.labels), "conditions": rows}

    print(f"PBC {split} split, {result['n']} images, each condition applied to every image:")
    print(f"{'condition':<20}{'accuracy':>10}   lowest recall")
    for row in rows:
        print(
            f"{row['condition']:<20}{100 * row['accuracy']:>9.2f}%   "
            f"{row['lowest_recall_class']} {100 * row['lowest_recall']:.2f}%"
        )
    keep_result(request.args, "robustness", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
