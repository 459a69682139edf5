"""Other microscopes and cameras, imitated: PBC images re-cut, resized, restained and saved as JPEG files,
then classified end to end as the app's Automatic mode reads an upload.

    python -m training.setups --model models --data ../shared/data [--split test] [--record] [--json FILE]

`training.robustness` changes the model's 224x224 input; this changes the file a user would upload (a
120x120 crop from a low-resolution camera, a 300x300 crop from another analyser, a tighter crop, another
stain), so decoding, finding and framing the cell and both domain checks take part too. Each set-up is
scored like `training.evaluate`: accuracy, calibration, and the share of images the app would refuse (not
a blood-cell image) or warn about (unfamiliar set-up). The set-ups copy the kinds of difference reported
for other labs' images; they are not fitted to any lab, and real other-lab images remain the real test.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hematovision.core.datasets import LabelledImage
from hematovision.core.imaging import ImageLoadError, decode_image
from hematovision.core.predict import Classifier
from training.data import RGB_FROM_STAINS, STAINS_FROM_RGB
from training.robustness import keep_result, parse_split_request
from training.scoring import evaluate_files


@dataclass(frozen=True)
class Setup:
    name: str
    description: str
    #: Side of the centred square kept, as a share of the image's shorter side (below 1: the cell looks bigger).
    crop: float = 1.0
    #: Side of the saved file in pixels, and its JPEG quality.
    side: int = 300
    quality: int = 90
    #: Haematoxylin and eosin optical density (Ruifrok-Johnston), scaled.
    haematoxylin: float = 1.0
    eosin: float = 1.0
    #: Optical density added per RGB channel: a tinted lamp or glass.
    tint: tuple[float, float, float] = (0.0, 0.0, 0.0)


SETUPS = (
    Setup("300 px", "another analyser: 300x300 crops, JPEG quality 90"),
    Setup("300 px, redder stain", "300x300 crops, eosin 1.6x as dense", eosin=1.6),
    Setup("300 px, cell larger", "300x300 crops of the middle 0.8 of the image: the cell looks bigger", crop=0.8),
    Setup(
        "120 px camera",
        "low-resolution camera: 120x120 crops of the middle 0.75, JPEG quality 75",
        crop=0.75,
        side=120,
        quality=75,
    ),
    Setup(
        "120 px, bluer stain",
        "120x120 crops of the middle 0.75, haematoxylin 1.4x and eosin 0.6x as dense",
        crop=0.75,
        side=120,
        quality=75,
        haematoxylin=1.4,
        eosin=0.6,
    ),
    Setup(
        "120 px, faint stain",
        "120x120 crops of the middle 0.75, both dyes half as dense, on grey-tinted glass",
        crop=0.75,
        side=120,
        quality=75,
        haematoxylin=0.5,
        eosin=0.5,
        tint=(0.05, 0.0, -0.05),
    ),
    Setup("120 px whole", "the whole image at 120x120, JPEG quality 75", side=120, quality=75),
    Setup("90 px whole", "the whole image at 90x90, JPEG quality 70", side=90, quality=70),
)


def restain(rgb: np.ndarray, setup: Setup) -> np.ndarray:
    """Scale each dye's optical density and tint the light, as another lab's stain and lamp would."""
    density = -np.log((rgb.astype(np.float32) + 1.0) / 256.0)
    stains = density @ STAINS_FROM_RGB
    stains[..., 0] *= setup.haematoxylin
    stains[..., 1] *= setup.eosin
    density = stains @ RGB_FROM_STAINS + np.asarray(setup.tint, np.float32)
    return np.clip(np.exp(-density) * 256.0 - 1.0, 0, 255).round().astype(np.uint8)


def imitate(rgb: np.ndarray, setup: Setup) -> bytes:
    """The JPEG file this set-up would have saved of the same field."""
    height, width = rgb.shape[:2]
    side = setup.crop * min(height, width)
    box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    image = Image.fromarray(rgb).crop(box).resize((setup.side, setup.side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    Image.fromarray(restain(np.asarray(image), setup)).save(buffer, "JPEG", quality=setup.quality)
    return buffer.getvalue()


def score_setups(
    classifier: Classifier, items: list[LabelledImage], setups: tuple[Setup, ...] = SETUPS
) -> list[dict[str, Any]]:
    """One row per set-up: every readable image imitated, saved and read back through Automatic mode."""
    originals = []
    for item in items:
        try:
            originals.append((item, decode_image(item.path).rgb))
        except ImageLoadError as exc:
            print(f"skipped {item.path}: {exc}", file=sys.stderr)
    if not originals:
        return []
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for setup in setups:
            imitated = []
            for index, (item, rgb) in enumerate(originals):
                path = Path(folder) / f"{index}.jpg"
                path.write_bytes(imitate(rgb, setup))
                imitated.append(LabelledImage(path, item.label, item.split))
            report = evaluate_files(classifier, imitated, mode="auto")
            recalls = {name: s["recall"] for name, s in report["per_class"].items() if s["support"]}
            weakest = min(recalls, key=recalls.get)
            rows.append(
                {
                    "setup": setup.name,
                    "description": setup.description,
                    "n": report["n"],
                    "accuracy": report["accuracy"],
                    "ece": report["ece"],
                    "flagged_not_blood": report.get("flagged_not_blood"),
                    "flagged_unfamiliar": report.get("flagged_unfamiliar"),
                    "lowest_recall_class": weakest,
                    "lowest_recall": recalls[weakest],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    request = parse_split_request("python -m training.setups", __doc__.split("\n\n")[0], argv)
    if isinstance(request, int):
        return request
    split = request.args.split
    rows = score_setups(request.classifier, request.images)
    if not rows:
        print(f"error: no readable {split} images in {request.manifest}", file=sys.stderr)
        return 1
    result = {"dataset": f"pbc_{split}", "setups": rows}

    print(f"PBC {split} split as other set-ups would save it, read in Automatic mode:")
    print(f"{'set-up':<24}{'n':>6}{'accuracy':>10}{'ECE':>8}{'not blood':>11}{'unfamiliar':>12}   lowest recall")
    for row in rows:
        flags = [row[key] for key in ("flagged_not_blood", "flagged_unfamiliar")]
        not_blood, unfamiliar = ("-" if value is None else f"{100 * value:.1f}%" for value in flags)
        print(
            f"{row['setup']:<24}{row['n']:>6}{100 * row['accuracy']:>9.2f}%{100 * row['ece']:>7.1f}%"
            f"{not_blood:>11}{unfamiliar:>12}   {row['lowest_recall_class']} {100 * row['lowest_recall']:.1f}%"
        )
    keep_result(request.args, "setups", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
