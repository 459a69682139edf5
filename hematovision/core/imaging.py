"""Decoding and resizing images: the one path shared by training, evaluation and serving.

Every image the model ever sees goes through :func:`decode_image` then :func:`to_model_input`,
so a prediction in the dashboard is made on exactly the pixels the evaluation measured.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Larger images are refused before decoding: a 50-megapixel "photo" of one cell is either a
#: mistake or a decompression bomb, and decoding it would take gigabytes.
MAX_PIXELS = 50_000_000
#: Below this a cell has too few pixels for the network to see any morphology.
MIN_SIDE = 32

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")


class ImageLoadError(ValueError):
    """An input that cannot be used as an image, with a message fit to show a user."""


@dataclass
class DecodedImage:
    """An image as 8-bit RGB, upright, plus what was done to get it there."""

    rgb: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.rgb.shape[:2]
        return width, height


def decode_image(source: bytes | str | Path) -> DecodedImage:
    """Decode bytes or a file into upright 8-bit RGB, or raise :class:`ImageLoadError`."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(f"no such file: {path}")
        data = path.read_bytes()
    else:
        data = source
    if not data:
        raise ImageLoadError("the file is empty (0 bytes)")

    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageLoadError("not a recognised image format (JPEG, PNG, BMP, TIFF, GIF, WebP)") from None
    except Image.DecompressionBombError:
        raise ImageLoadError(f"image is too large to decode safely (over {MAX_PIXELS:,} pixels)") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot read the image: {exc}") from None

    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageLoadError(
            f"image is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageLoadError(f"image is only {width}x{height} pixels; at least {MIN_SIDE} px a side is needed")

    notes: list[str] = []
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        image.seek(0)
        notes.append(f"multi-frame file: the first of {frames} frames was used")
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image, notes)
    except (OSError, SyntaxError, ValueError) as exc:
        # Truncated or corrupt pixel data only shows up when the pixels are decoded.
        raise ImageLoadError(f"the image data is damaged or incomplete ({exc})") from None
    return DecodedImage(rgb=rgb, notes=notes)


def _to_rgb(image: Image.Image, notes: list[str]) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Pillow's own convert("RGB") clips high-bit-depth values at 255 and turns most of the
        # image white; rescale by the bit depth instead.
        values = np.asarray(image, dtype=np.float64)
        full_scale = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values / full_scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append("16-bit greyscale image: rescaled to 8 bits; stain colour is missing")
        return np.stack([gray] * 3, axis=-1)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Transparent pixels become white, like an empty slide, not black.
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
        notes.append("transparency was flattened onto white")
    elif mode in ("L", "1"):
        notes.append("greyscale image: the model was trained on colour stains, so expect lower accuracy")
    elif mode == "CMYK":
        notes.append("CMYK image: converted to RGB")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def centre_square(rgb: np.ndarray) -> np.ndarray:
    """The largest centred square: cells are centred, and squashing would distort their shape."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return rgb[top : top + side, left : left + side]


def to_model_input(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size`` x ``size`` uint8 RGB (the model's input)."""
    square = Image.fromarray(centre_square(rgb))
    if square.size != (size, size):
        square = square.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(square, dtype=np.uint8)


def load_model_input(source: bytes | str | Path, size: int) -> np.ndarray:
    """Decode and resize in one step (what training and evaluation use for each file)."""
    return to_model_input(decode_image(source).rgb, size)
