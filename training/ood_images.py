"""A reproducible set of images that are NOT stained blood-cell micrographs.

It measures how often the app's "this does not look like a blood-cell image" check fires on inputs
it should refuse. Everything is generated here or read from files that ship inside installed packages
(matplotlib's sample data, Streamlit's and Playwright's static graphics), so the set is the same
offline on every machine and no third-party image is copied into the repository.

``blank_slide`` and ``out_of_focus`` are the hard, close-to-domain categories: they use the stain
and background colours of real May-Grünwald-Giemsa smears but contain no resolvable cell.

Run ``python -m training.ood_images --sheet sheet.png`` to print the counts and write a contact sheet.
"""

from __future__ import annotations

import argparse
import gzip
import io
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import cbook
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LightSource, hsv_to_rgb, rgb_to_hsv
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Rng = np.random.Generator
RGB = tuple[int, int, int]

#: How many images each category contributes; the two close-to-domain categories get a few more.
CATEGORY_SIZES: dict[str, int] = {
    "face": 40,
    "landscape_or_photo": 40,
    "text": 40,
    "screenshot": 40,
    "blank_slide": 45,
    "out_of_focus": 45,
    "noise": 40,
    "pattern": 40,
}

#: The size of a PBC training image; some blank and blurred fields use it so size alone gives nothing away.
DOMAIN_SIZE = (360, 363)


# eq=False: a generated __eq__/__hash__ would compare/hash the pixel array, which numpy refuses.
@dataclass(frozen=True, eq=False)
class OodImage:
    name: str
    category: str
    rgb: np.ndarray


def non_blood_images(seed: int = 0) -> list[OodImage]:
    """Every out-of-distribution image, in a fixed order; the same pixels for the same seed."""
    images: list[OodImage] = []
    for index, (category, count) in enumerate(CATEGORY_SIZES.items()):
        # One stream per category, so resizing one category does not reshuffle the others.
        rng = np.random.default_rng([seed, index])
        make = _GENERATORS[category]
        for i in range(count):
            variant, rgb = make(rng, i)
            images.append(OodImage(f"{category}_{i:03d}_{variant}", category, rgb))
    return images


def category_counts(images: Iterable[OodImage]) -> dict[str, int]:
    return dict(Counter(image.category for image in images))


# ----------------------------------------------------------------------------- shared helpers


def _size(rng: Rng, lo: int = 96, hi: int = 640, max_aspect: float = 1.8) -> tuple[int, int]:
    """A random (width, height): long side in [lo, hi], either orientation, never below 64 px."""
    long_side = int(rng.integers(lo, hi + 1))
    short_side = max(64, round(long_side / rng.uniform(1.0, max_aspect)))
    return (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)


def _rgb(image: Image.Image) -> np.ndarray:
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _clip(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def jpeg_round_trip(image: Image.Image, quality: int) -> Image.Image:
    """Round-trip through JPEG: uploads are usually JPEGs, and their artefacts are part of the look."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _jitter(colour: Iterable[float], rng: Rng, spread: float) -> np.ndarray:
    return np.clip(np.asarray(colour, dtype=float) + rng.normal(0.0, spread, 3), 0, 255)


def _resize_long(image: Image.Image, long_side: int) -> Image.Image:
    scale = long_side / max(image.size)
    size = (max(64, round(image.width * scale)), max(64, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _smooth_noise(rng: Rng, width: int, height: int, octaves: int = 5, base: int = 3) -> np.ndarray:
    """Fractal value noise in [0, 1] (a cheap stand-in for Perlin noise): upsampled random grids."""
    total = np.zeros((height, width), dtype=np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        cells = base * 2**octave
        grid_w = max(2, round(cells * width / max(width, height)) + 1)
        grid_h = max(2, round(cells * height / max(width, height)) + 1)
        grid = Image.fromarray(rng.random((grid_h, grid_w), dtype=np.float32))
        total += amplitude * np.asarray(grid.resize((width, height), Image.Resampling.BICUBIC))
        amplitude *= 0.5
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


def _colormap(name: str, values: np.ndarray) -> np.ndarray:
    return matplotlib.colormaps[name](values, bytes=True)[..., :3]


def _unit_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates scaled to [-1, 1] along the longer side (so circles stay round)."""
    scale = max(width, height) / 2
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return (xs - width / 2) / scale, (ys - height / 2) / scale


@cache
def _font(size: int, face: str = "default") -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if face == "default":
        return ImageFont.load_default(size=size)
    # DejaVu ships with matplotlib, which gives serif and monospace text without any system font.
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{face}.ttf"
    return ImageFont.truetype(str(path), size)


def _sample_path(name: str) -> Path:
    return Path(cbook.get_sample_data(name, asfileobj=False))


@cache
def _grace_hopper() -> Image.Image:
    return Image.open(_sample_path("grace_hopper.jpg")).convert("RGB")


@cache
def _clipart() -> tuple[Image.Image, ...]:
    """Transparent graphics shipped in installed packages (empty for any package that is missing)."""
    found = [_sample_path("Minduka_Present_Blue_Pack.png"), _sample_path("logo2.png")]
    for package, pattern in (
        ("streamlit", "static/static/media/*.png"),
        ("playwright", "driver/package/lib/server/chromium/appIcon.png"),
    ):
        spec = find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            found += sorted(Path(next(iter(spec.submodule_search_locations))).glob(pattern))
    images = (Image.open(path).convert("RGBA") for path in found)
    return tuple(image for image in images if min(image.size) >= 64)


# Everyday words for generated sentences, labels and titles.
_VOCABULARY = (
    "the of and to in is for on with as by at from this that report system data value time result method "
    "sample figure table analysis process model note section page total new first each between under order "
    "project group quality meeting summary budget schedule review design customer account invoice delivery "
    "service number plan update change level market product team policy research library chapter history "
    "letter morning city river garden window travel weather station kitchen recipe minutes agenda contract"
)
_WORDS = _VOCABULARY.split()


def _sentence(rng: Rng, low: int = 5, high: int = 14) -> str:
    words = [str(w) for w in rng.choice(_WORDS, int(rng.integers(low, high + 1)))]
    return " ".join(words).capitalize() + "."


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: float) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return [*lines, line] if line else lines


# Saturated, everyday colours for graphics, charts and patterns (none of them stain-like on purpose).
_PALETTE: tuple[RGB, ...] = (
    (220, 40, 40),
    (245, 140, 20),
    (245, 210, 30),
    (40, 160, 70),
    (20, 150, 150),
    (30, 90, 200),
    (20, 30, 90),
    (15, 15, 15),
    (250, 250, 250),
    (128, 128, 128),
    (120, 70, 30),
    (200, 30, 150),
    (40, 200, 230),
    (150, 220, 40),
)


def _colours(rng: Rng, count: int) -> list[RGB]:
    return [_PALETTE[i] for i in rng.choice(len(_PALETTE), count, replace=False)]


# ----------------------------------------------------------------------------- face


def _face(rng: Rng, index: int) -> tuple[str, np.ndarray]:
    """Grace Hopper's portrait (the one photo of a person in the packages), recropped and recoloured."""
    source = _grace_hopper()
    crop = ("portrait", "head_shoulders", "head", "face", "off_centre", "framed")[index % 6]
    # Face centre and size in the 512x600 source, read off the photo.
    cx, cy = 262 + rng.normal(0, 10), 235 + rng.normal(0, 10)
    if crop in ("portrait", "framed"):
        box = (rng.uniform(0, 40), rng.uniform(0, 30), 512 - rng.uniform(0, 40), 600 - rng.uniform(0, 60))
    else:
        width = {"head_shoulders": 400, "head": 270, "face": 195, "off_centre": 340}[crop] * rng.uniform(0.88, 1.1)
        height = width * rng.uniform(0.9, 1.3)
        if crop == "head_shoulders":
            cy += 60
        elif crop == "head":
            cy -= 40
        elif crop == "off_centre":
            cx += rng.choice([-1, 1]) * rng.uniform(50, 90)
        box = (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)
    left, top = max(0.0, box[0]), max(0.0, box[1])
    right, bottom = min(512.0, box[2]), min(600.0, box[3])
    if crop in ("head", "face"):
        source = source.rotate(rng.uniform(-12, 12), Image.Resampling.BICUBIC, center=(cx, cy))
    image = source.crop((round(left), round(top), round(right), round(bottom)))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    if crop == "framed":
        image = _framed(rng, image)

    # (3k + 2c) mod 10 gives every crop c a different colour treatment in each of its repeats k.
    colour = ("none", "grey", "sepia", "warm", "cool", "hue", "contrast", "dark", "posterize", "vivid")[
        (3 * (index // 6) + 2 * (index % 6)) % 10
    ]
    if colour in ("grey", "sepia"):
        grey = ImageOps.autocontrast(ImageOps.grayscale(image), cutoff=1)
        image = grey if colour == "grey" else ImageOps.colorize(grey, black=(43, 29, 14), white=(245, 230, 200))
    elif colour in ("warm", "cool"):
        gains = np.array([1.12, 1.0, 0.82]) if colour == "warm" else np.array([0.85, 0.98, 1.15])
        image = Image.fromarray(_clip(np.asarray(image, dtype=float) * gains))
    elif colour == "hue":
        hsv = rgb_to_hsv(np.asarray(image, dtype=np.float32) / 255)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(0.1, 0.9)) % 1.0
        image = Image.fromarray(_clip(hsv_to_rgb(hsv) * 255))
    elif colour == "contrast":
        image = ImageEnhance.Contrast(image).enhance(rng.uniform(1.4, 1.9))
    elif colour == "dark":
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.45, 0.7))
    elif colour == "posterize":
        image = ImageOps.posterize(image, int(rng.integers(2, 4)))
    elif colour == "vivid":
        image = ImageEnhance.Color(image).enhance(rng.uniform(1.6, 2.2))

    image = _resize_long(image, int(rng.integers(100, 641)))
    if rng.random() < 0.5:
        image = jpeg_round_trip(image, int(rng.integers(30, 90)))
    return f"{crop}_{colour}", _rgb(image)


def _framed(rng: Rng, photo: Image.Image) -> Image.Image:
    """A bordered print of the photo lying tilted on a plain or textured surface: the face is small."""
    width, height = _size(rng, 240, 640, 1.5)
    surface = np.array(((150, 110, 70), (225, 225, 220), (60, 70, 90), (190, 200, 180))[int(rng.integers(0, 4))])
    texture = _smooth_noise(rng, width, height, octaves=4, base=int(rng.integers(2, 12)))
    image = Image.fromarray(_clip(surface * (0.85 + 0.3 * texture[..., None])))
    border = max(4, photo.width // 18)
    framed = ImageOps.expand(photo, border=border, fill=(245, 244, 238)).convert("RGBA")
    framed.thumbnail((int(width * rng.uniform(0.45, 0.75)), int(height * rng.uniform(0.55, 0.85))))
    framed = framed.rotate(rng.uniform(-15, 15), Image.Resampling.BICUBIC, expand=True)
    x = int(rng.integers(0, max(1, width - framed.width)))
    y = int(rng.integers(0, max(1, height - framed.height)))
    image.paste(framed, (x, y), framed)
    return image


# ----------------------------------------------------------------------------- landscape_or_photo


@cache
def _dem() -> tuple[np.ndarray, float, float]:
    """The Jacksboro fault elevation model, with its cell size converted from degrees to metres."""
    data = np.load(_sample_path("jacksboro_fault_dem.npz"))
    dy = 111_200 * float(data["dy"])
    dx = 111_200 * float(data["dx"]) * math.cos(math.radians(float(data["ymin"])))
    return data["elevation"].astype(np.float64), dx, dy


@cache
def _topobathy() -> np.ndarray:
    return np.load(_sample_path("topobathy.npz"))["topo"].astype(np.float32)


@cache
def _mri() -> np.ndarray:
    """A 256x256 sagittal MRI slice of a head: a medical image, but not a blood smear."""
    with gzip.open(_sample_path("s1045.ima.gz")) as file:
        return np.frombuffer(file.read(), ">u2").reshape(256, 256).astype(np.float32)


def _random_view(array: np.ndarray, rng: Rng, min_fraction: float) -> np.ndarray:
    """A random sub-window, quarter-turn and flip of a 2-D array."""
    height, width = array.shape[:2]
    h = int(rng.integers(int(height * min_fraction), height + 1))
    w = int(rng.integers(int(width * min_fraction), width + 1))
    top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    view = np.rot90(array[top : top + h, left : left + w], int(rng.integers(0, 4)))
    return view[:, ::-1] if rng.random() < 0.5 else view


def _upsample(array: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(array.astype(np.float32)).resize((width, height), Image.Resampling.BICUBIC))


def _fbm_1d(rng: Rng, length: int, octaves: int = 6) -> np.ndarray:
    """A 1-D fractal profile in [0, 1], for mountain ridge lines."""
    profile = np.zeros(length)
    for octave in range(octaves):
        knots = 2 + 2 ** (octave + 1)
        profile += 0.55**octave * np.interp(np.linspace(0, knots - 1, length), np.arange(knots), rng.random(knots))
    return (profile - profile.min()) / max(float(np.ptp(profile)), 1e-6)


# The real elevation model gets the most slots; "flag" is the flag behind the portrait, a photo without a face.
_LANDSCAPE_KINDS = (
    *("dem", "dem", "terrain", "painted", "topobathy", "dem", "terrain", "painted", "mri", "dem"),
    *("dem", "terrain", "painted", "topobathy", "dem", "flag", "terrain", "painted", "mri", "dem"),
)


def _landscape(rng: Rng, index: int) -> tuple[str, np.ndarray]:
    kind = _LANDSCAPE_KINDS[index % len(_LANDSCAPE_KINDS)]
    width, height = _size(rng, 128, 640, 1.7)
    light = LightSource(azdeg=rng.uniform(0, 360), altdeg=rng.uniform(25, 60))
    blend = str(rng.choice(["overlay", "soft", "hsv"]))

    if kind == "dem":
        elevation, dx, dy = _dem()
        view = _random_view(elevation, rng, 0.5)
        cmap = str(rng.choice(["terrain", "gist_earth", "copper", "YlOrBr", "Greens", "cubehelix", "gray"]))
        shaded = light.shade(
            view, cmap=matplotlib.colormaps[cmap], blend_mode=blend, vert_exag=rng.uniform(0.5, 3), dx=dx, dy=dy
        )
        image = Image.fromarray(_clip(shaded[..., :3] * 255)).resize((width, height), Image.Resampling.BICUBIC)
        return f"dem_{cmap}", _rgb(image)

    if kind in ("terrain", "topobathy"):
        if kind == "topobathy":
            # Metres below and above sea level, each scaled to half of [0, 1] so the coast sits at 0.5.
            metres = _upsample(_random_view(_topobathy(), rng, 0.6), width, height)
            depth, peak = max(-float(metres.min()), 1.0), max(float(metres.max()), 1.0)
            heights = np.where(metres < 0, metres / depth, metres / peak) * 0.5 + 0.5
            sea = 0.5
        else:
            heights = _smooth_noise(rng, width, height, octaves=6, base=2) ** rng.uniform(0.8, 1.4)
            sea = rng.uniform(0.1, 0.35)
        # Sea below `sea` takes the blue end of "terrain" (0-0.2), land the rest (0.23-1).
        colour_at = np.where(heights < sea, heights / sea * 0.2, 0.23 + (heights - sea) / (1 - sea) * 0.77)
        colours = matplotlib.colormaps["terrain"](np.clip(colour_at, 0, 1))[..., :3]
        relief = np.maximum(heights, sea) * rng.uniform(40, 120)
        shaded = light.shade_rgb(colours, relief, blend_mode=blend, fraction=rng.uniform(0.6, 1.0))
        return kind, _clip(shaded * 255)

    if kind == "painted":
        return "painted", _painted_landscape(rng, width, height)

    if kind == "mri":
        scan = _random_view(_mri(), rng, 0.7)
        scan = np.clip(scan / np.percentile(scan, 99.5), 0, 1)
        cmap = str(rng.choice(["gray", "bone"]))
        image = Image.fromarray(_colormap(cmap, scan)).resize((width, height), Image.Resampling.BICUBIC)
        return f"mri_{cmap}", _rgb(image)

    box = (int(rng.integers(0, 20)), int(rng.integers(0, 40)), int(rng.integers(110, 145)), int(rng.integers(260, 360)))
    return "flag", _rgb(_resize_long(_grace_hopper().crop(box), int(rng.integers(200, 500))))


def _painted_landscape(rng: Rng, width: int, height: int) -> np.ndarray:
    """Sky gradient, optional sun, 3-5 hazy mountain ridges and sometimes a lake."""
    skies = (((70, 130, 210), (200, 225, 245)), ((40, 40, 90), (250, 150, 80)), ((150, 160, 170), (225, 225, 225)))
    top, bottom = (np.array(c, dtype=np.float32) for c in skies[int(rng.integers(0, len(skies)))])
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    image = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()
    if rng.random() < 0.5:
        xs, ys = _unit_grid(width, height)
        sun = np.exp(-(((xs - rng.uniform(-0.6, 0.6)) ** 2 + (ys + rng.uniform(0.2, 0.5)) ** 2) / 0.01))
        image += sun[..., None] * np.array([255, 230, 170]) * 0.8
    near = np.array(((40, 80, 40), (70, 60, 40), (30, 50, 70))[int(rng.integers(0, 3))], dtype=np.float32)
    ridges = int(rng.integers(3, 6))
    rows = np.arange(height)[:, None]
    for i in range(ridges):
        depth = (i + 1) / ridges  # 0 = far, 1 = near: far ridges fade into the sky colour
        base = height * (0.35 + 0.4 * depth)
        profile = base - _fbm_1d(rng, width) * height * rng.uniform(0.1, 0.3)
        colour = near * depth + bottom * (1 - depth) * 0.9
        image[rows > profile[None, :]] = colour
    if rng.random() < 0.5:
        water = int(height * rng.uniform(0.7, 0.85))
        image[water:] = image[water - (height - water) : water][::-1] * 0.75 + np.array([10, 30, 60])
    return _clip(image)


# ----------------------------------------------------------------------------- text

# (ink, paper): office documents, dark mode, terminal, old paper, and purple-on-pink to catch a
# detector that only looks at stain-like colours.
_TEXT_SCHEMES: tuple[tuple[RGB, RGB], ...] = (
    ((0, 0, 0), (255, 255, 255)),
    ((20, 20, 20), (250, 246, 235)),
    ((25, 35, 90), (230, 238, 250)),
    ((235, 235, 235), (30, 30, 34)),
    ((60, 230, 90), (10, 12, 10)),
    ((80, 50, 20), (235, 220, 185)),
    ((90, 45, 130), (246, 220, 200)),
    ((200, 20, 20), (255, 255, 255)),
)


def _text(rng: Rng, index: int) -> tuple[str, np.ndarray]:
    layout = ("letter", "columns", "list", "code", "receipt", "sign", "scan", "form")[index % 8]
    ink, paper = _TEXT_SCHEMES[(index * 3 + index // 8) % len(_TEXT_SCHEMES)]
    if layout == "code":
        ink, paper = ((220, 220, 210), (35, 38, 45)) if index % 16 < 8 else ((30, 30, 30), (248, 248, 248))
    if layout == "receipt":
        width, height = int(rng.integers(100, 220)), int(rng.integers(300, 640))
    elif layout == "sign":
        width, height = sorted(_size(rng, 200, 640, 2.5), reverse=True)  # landscape, like a banner
    else:
        width, height = _size(rng, 160, 640, 1.5)
    image = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(9, 22))
    face = str(rng.choice(["default", "default", "DejaVuSerif", "DejaVuSans"]))
    font = _font(size, face)
    margin = max(6, width // 14)
    y = float(margin)

    def paragraph(x: float, text_width: float, font: ImageFont.ImageFont, spacing: float) -> None:
        nonlocal y
        for line in _wrap(draw, " ".join(_sentence(rng) for _ in range(int(rng.integers(2, 6)))), font, text_width):
            draw.text((x, y), line, fill=ink, font=font)
            y += spacing

    line_height = size * 1.35
    if layout in ("letter", "scan"):
        draw.text((margin, y), _sentence(rng, 2, 5).rstrip(".").title(), fill=ink, font=_font(size + 6, face))
        y += line_height * 2
        while y < height - margin:
            paragraph(margin, width - 2 * margin, font, line_height)
            y += line_height * 0.8
    elif layout == "columns":
        draw.text((margin, y), _sentence(rng, 3, 6).upper(), fill=ink, font=_font(size + 4, face))
        y += line_height * 2
        top, column = y, (width - 3 * margin) / 2
        for x in (margin, 2 * margin + column):
            y = top
            while y < height - margin:
                paragraph(x, column, font, line_height)
                y += line_height * 0.6
    elif layout == "list":
        draw.text((margin, y), _sentence(rng, 2, 4), fill=ink, font=_font(size + 4, face))
        y += line_height * 1.8
        for n in range(1, 60):
            if y >= height - margin:
                break
            bullet = f"{n}." if index % 16 < 8 else "-"
            draw.text((margin, y), f"{bullet} {_sentence(rng, 3, 7)}", fill=ink, font=font)
            y += line_height * 1.2
    elif layout == "code":
        mono = _font(size, "DejaVuSansMono")
        names = [str(w) for w in rng.choice(_WORDS, 12)]
        while y < height - margin:
            depth = int(rng.integers(0, 3))
            line = str(
                rng.choice(
                    [
                        f"def {names[0]}_{names[1]}({names[2]}, {names[3]}):",
                        f"{names[4]} = {names[5]}[{int(rng.integers(0, 99))}] + {names[6]}",
                        f"if {names[7]} > {int(rng.integers(0, 999))}:",
                        f"return {names[8]}.{names[9]}()",
                        f"# {_sentence(rng, 3, 6)}",
                        f"for {names[10]} in range({int(rng.integers(1, 50))}):",
                    ]
                )
            )
            colour = (120, 160, 120) if line.startswith("#") else ink
            draw.text((margin + depth * size * 2, y), line, fill=colour, font=mono)
            y += line_height
            names = names[1:] + names[:1]
    elif layout == "receipt":
        mono = _font(max(9, size - 4), "DejaVuSansMono")
        draw.text((margin, y), str(rng.choice(_WORDS)).upper() + " STORE", fill=ink, font=mono)
        y += line_height * 2
        while y < height - margin - 3 * line_height:
            draw.text((margin, y), str(rng.choice(_WORDS)), fill=ink, font=mono)
            price = f"{rng.uniform(0.5, 40):.2f}"
            draw.text((width - margin - draw.textlength(price, font=mono), y), price, fill=ink, font=mono)
            y += line_height
        draw.line([(margin, y), (width - margin, y)], fill=ink, width=1)
        draw.text((margin, y + line_height * 0.5), f"TOTAL {rng.uniform(20, 400):.2f}", fill=ink, font=mono)
    elif layout == "sign":
        words = " ".join(str(w) for w in rng.choice(_WORDS, int(rng.integers(1, 4)))).upper()
        # Size the lettering to fill 60-90 % of the width, as on a sign or a slide title.
        fill = width * rng.uniform(0.6, 0.9) / draw.textlength(words, font=_font(40, face))
        big = _font(int(np.clip(40 * fill, 14, height * 0.8)), face)
        box = draw.textbbox((0, 0), words, font=big)
        draw.text(((width - box[2]) / 2, (height - box[3]) / 2), words, fill=ink, font=big)
    else:  # form
        while y < height - margin - line_height:
            label = f"{_sentence(rng, 1, 3).rstrip('.')}:"
            draw.text((margin, y), label, fill=ink, font=font)
            x = margin + draw.textlength(label, font=font) + size
            draw.line([(x, y + size), (width - margin, y + size)], fill=ink, width=1)
            y += line_height * 1.8

    if layout == "scan":
        # A scanned page: slightly rotated, grey scanner bed at the edges, soft and compressed.
        image = image.rotate(rng.uniform(-4, 4), Image.Resampling.BICUBIC, expand=True, fillcolor=(90, 90, 90))
        image = image.filter(ImageFilter.GaussianBlur(0.6))
        noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (image.height, image.width, 1))
        image = jpeg_round_trip(Image.fromarray(_clip(noisy)), int(rng.integers(40, 80)))
    return f"{layout}_{face}", _rgb(image)


# ----------------------------------------------------------------------------- screenshot


def _screenshot(rng: Rng, index: int) -> tuple[str, np.ndarray]:
    if index % 20 < 11:
        return _chart(rng, index)
    return _interface(rng, index)


def _chart(rng: Rng, index: int) -> tuple[str, np.ndarray]:
    kind = ("bar", "line", "scatter", "pie", "hist", "table", "heatmap", "area", "box", "barh", "errorbar")[
        (index // 20 * 11 + index % 20) % 11
    ]
    width, height = _size(rng, 200, 640, 1.6)
    dark = rng.random() < 0.3
    background, foreground = ("#1e1e24", "#e6e6e6") if dark else ("white", "black")
    dpi = 100
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=background)
    axes = figure.add_subplot()
    axes.set_facecolor(background)
    colours = [np.array(c) / 255 for c in _colours(rng, 5)]
    labels = [str(w) for w in rng.choice(_WORDS, 5, replace=False)]
    n = int(rng.integers(5, 30))
    if kind in ("bar", "barh"):
        (axes.bar if kind == "bar" else axes.barh)(labels, rng.uniform(1, 10, 5), color=colours)
    elif kind == "line":
        for colour in colours[:3]:
            axes.plot(np.cumsum(rng.normal(0, 1, n * 4)), color=colour, linewidth=rng.uniform(1, 3))
        axes.grid(alpha=0.3)
    elif kind == "scatter":
        axes.scatter(rng.normal(0, 1, n * 5), rng.normal(0, 1, n * 5), c=rng.random(n * 5), cmap="viridis", s=12)
    elif kind == "pie":
        axes.pie(rng.uniform(1, 5, 5), labels=labels, colors=colours, textprops={"color": foreground})
    elif kind == "hist":
        axes.hist(rng.gamma(2.0, 1.0, 500), bins=int(rng.integers(8, 40)), color=colours[0], edgecolor=foreground)
    elif kind == "table":
        axes.axis("off")
        cells = [[f"{v:.1f}" for v in rng.uniform(0, 100, 4)] for _ in range(int(rng.integers(3, 9)))]
        axes.table(cellText=cells, colLabels=labels[:4], loc="center")
    elif kind == "heatmap":
        axes.imshow(rng.random((8, 12)), cmap=str(rng.choice(["viridis", "YlGnBu", "coolwarm"])))
    elif kind == "area":
        axes.stackplot(np.arange(n), rng.uniform(0, 1, (3, n)), colors=colours[:3])
    elif kind == "box":
        axes.boxplot([rng.normal(m, 1, 50) for m in rng.uniform(0, 4, 4)])
    else:
        axes.errorbar(np.arange(n), rng.normal(0, 1, n), yerr=rng.uniform(0.1, 0.5, n), fmt="o-", color=colours[0])
    axes.set_title(_sentence(rng, 2, 5).rstrip("."), color=foreground, fontsize=max(7, width // 40))
    axes.tick_params(colors=foreground, labelsize=max(6, width // 60))
    for spine in axes.spines.values():
        spine.set_color(foreground)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return f"chart_{kind}", np.array(canvas.buffer_rgba())[..., :3]


def _interface(rng: Rng, index: int) -> tuple[str, np.ndarray]:
    """An app window: title bar, sidebar menu, heading, metric cards, buttons, a text field, a progress bar."""
    mobile = index % 5 == 0
    width, height = (int(rng.integers(160, 300)), int(rng.integers(320, 640))) if mobile else _size(rng, 300, 640, 1.7)
    if height > width and not mobile:
        width, height = height, width
    dark = rng.random() < 0.4
    background, panel, ink = (
        ((32, 33, 38), (45, 47, 54), (230, 230, 230)) if dark else ((250, 250, 252), (236, 238, 242), (30, 30, 30))
    )
    accent = _colours(rng, 1)[0]
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    size = max(9, min(width, height) // 28)
    font = _font(size)
    bar = max(16, height // 14)
    draw.rectangle([0, 0, width, bar], fill=panel)
    for i, colour in enumerate(((237, 95, 87), (245, 190, 79), (98, 197, 84))):
        x = 8 + i * (bar * 0.6)
        draw.ellipse([x, bar * 0.3, x + bar * 0.4, bar * 0.7], fill=colour)
    draw.text((bar * 2.4, bar * 0.25), _sentence(rng, 2, 3).rstrip("."), fill=ink, font=font)

    left = 8
    if not mobile:
        sidebar = int(width * rng.uniform(0.18, 0.28))
        draw.rectangle([0, bar, sidebar, height], fill=panel)
        for i in range(int(rng.integers(4, 9))):
            y = bar + 12 + i * size * 2.2
            if i == 0:
                draw.rounded_rectangle([6, y - 3, sidebar - 6, y + size + 5], radius=4, fill=accent)
            draw.text((14, y), str(rng.choice(_WORDS)).title(), fill=ink, font=font)
        left = sidebar + 14
    y = bar + 12
    draw.text((left, y), _sentence(rng, 2, 4).rstrip(".").title(), fill=ink, font=_font(size + 6))
    y += size * 3
    cards = int(rng.integers(1, 4)) if mobile else int(rng.integers(2, 5))
    card_w = (width - left - 10 - (cards - 1) * 10) / cards
    for i in range(cards):
        x = left + i * (card_w + 10)
        draw.rounded_rectangle([x, y, x + card_w, y + size * 4], radius=6, fill=panel)
        draw.text((x + 8, y + 6), str(rng.choice(_WORDS)), fill=ink, font=font)
        draw.text((x + 8, y + size * 2), f"{rng.uniform(0, 999):.1f}", fill=accent, font=_font(size + 4))
    y += size * 5
    clipart = _clipart()
    if clipart and rng.random() < 0.5:
        icon = clipart[int(rng.integers(0, len(clipart)))].copy()
        icon.thumbnail((int(width * 0.3), int(height * 0.3)))
        image.paste(icon, (int(width - icon.width - 12), int(y)), icon)
    for _ in range(int(rng.integers(1, 4))):
        if y > height - size * 4:
            break
        label = str(rng.choice(_WORDS)).title()
        button_w = draw.textlength(label, font=font) + size * 2
        draw.rounded_rectangle([left, y, left + button_w, y + size * 2], radius=size // 2, fill=accent)
        draw.text((left + size, y + size * 0.45), label, fill=(255, 255, 255), font=font)
        y += size * 3
    if y < height - size * 5:
        field_right = min(width - 12, left + (width - left) * 0.7)
        draw.rectangle([left, y, field_right, y + size * 2], outline=ink, width=1)
        draw.text((left + 6, y + size * 0.45), "Search " + str(rng.choice(_WORDS)), fill=(140, 140, 140), font=font)
        y += size * 3
        draw.rectangle([left, y, field_right, y + size * 0.6], fill=panel)
        draw.rectangle([left, y, left + (field_right - left) * rng.uniform(0.1, 0.95), y + size * 0.6], fill=accent)
    return "mobile" if mobile else "window", _rgb(image)


# ----------------------------------------------------------------------------- blank_slide

# Empty-field colours: PBC's beige-pink, a pale lavender and a pale grey-green (other labs' stains),
# white, grey, a halogen-yellow and an LED-blue illuminant.
_SLIDE_TINTS: tuple[RGB, ...] = (
    (246, 218, 198),
    (250, 230, 212),
    (240, 220, 222),
    (236, 230, 240),
    (226, 232, 226),
    (250, 250, 250),
    (208, 208, 210),
    (248, 240, 212),
    (234, 240, 249),
)


def _blank_slide(rng: Rng, index: int) -> tuple[str, np.ndarray]:
    """An empty glass slide under the microscope: almost uniform, with uneven light, noise and dust."""
    width, height = DOMAIN_SIZE if index % 2 == 0 else _size(rng, 96, 640, 1.5)
    tint = _jitter(_SLIDE_TINTS[index % len(_SLIDE_TINTS)], rng, 4)
    xs, ys = _unit_grid(width, height)
    angle = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0, 0.04) * (np.cos(angle) * xs + np.sin(angle) * ys)
    cx, cy = rng.normal(0, 0.2, 2)
    light -= rng.uniform(0, 0.2) * ((xs - cx) ** 2 + (ys - cy) ** 2)  # vignetting
    light += rng.uniform(0, 0.03) * (_smooth_noise(rng, width, height, octaves=3, base=2) - 0.5)
    field = tint * light[..., None]

    # Dust and fibres: small, sparse and a little soft, darker than the glass.
    dirt = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(dirt)
    for _ in range(int(rng.integers(0, 14))):
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.6, 3.0)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(15, 90)))
    for _ in range(int(rng.integers(0, 3))):
        start = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        points = start + np.cumsum(rng.normal(0, 6, (8, 2)), axis=0)
        draw.line([tuple(p) for p in points], fill=int(rng.integers(10, 45)), width=1)
    dirt = dirt.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.5)))
    dust_colour = np.array([0.55, 0.6, 0.6]) if rng.random() < 0.5 else np.array([0.5, 0.55, 0.45])
    field -= np.asarray(dirt, dtype=np.float32)[..., None] * dust_colour

    variant = "empty"
    if index % 7 == 4:
        # Seen through the eyepiece: a bright disc (the field stop) on black.
        radius = rng.uniform(0.55, 0.8)
        disc = np.clip((radius - np.hypot(xs - cx * 0.3, ys - cy * 0.3)) * rng.uniform(12, 60), 0, 1)
        field = field * disc[..., None] + rng.uniform(3, 25) * (1 - disc[..., None])
        variant = "field_stop"
    elif index % 7 == 6:
        field = field * 0.2 + 255 * 0.8  # over-exposed: the lamp turned up with nothing on the slide
        variant = "overexposed"
    field += rng.normal(0, rng.uniform(0.5, 3.0), (height, width, 1)) + rng.normal(0, 0.8, (height, width, 3))
    image = Image.fromarray(_clip(field))
    if rng.random() < 0.5:
        image = jpeg_round_trip(image, int(rng.integers(60, 95)))
    return variant, _rgb(image)


# ----------------------------------------------------------------------------- out_of_focus

# (background, red cell, white-cell cytoplasm, nucleus) for a PBC-like, a bluish-lavender, a
# BCCD-like (greyish background, salmon cells, blue-violet nuclei) and a pinker stain.
_STAINS: tuple[tuple[RGB, RGB, RGB, RGB], ...] = (
    ((245, 218, 198), (222, 160, 160), (205, 175, 215), (85, 40, 130)),
    ((237, 230, 238), (212, 188, 216), (195, 185, 230), (80, 70, 170)),
    ((226, 230, 224), (200, 145, 140), (215, 200, 225), (100, 85, 200)),
    ((240, 222, 222), (215, 150, 170), (210, 180, 210), (110, 50, 140)),
)


def _out_of_focus(rng: Rng, index: int) -> tuple[str, np.ndarray]:
    """A smear field of red cells and sometimes a white cell, blurred until no cell can be resolved."""
    width, height = DOMAIN_SIZE if index % 3 == 0 else _size(rng, 96, 640, 1.5)
    background, red, cytoplasm, nucleus = (_jitter(c, rng, 6) for c in _STAINS[index % len(_STAINS)])
    image = Image.new("RGB", (width, height), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(0.05, 0.13) * min(width, height)
    density = rng.uniform(0.15, 0.75)
    pallor = tuple(int(c) for c in (red + background) / 2)
    for _ in range(int(density * width * height / (np.pi * radius**2))):
        x, y = rng.uniform(-radius, width + radius), rng.uniform(-radius, height + radius)
        rx, ry = radius * rng.uniform(0.85, 1.15, 2)
        draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=tuple(int(c) for c in _jitter(red, rng, 5)))
        draw.ellipse([x - rx * 0.45, y - ry * 0.45, x + rx * 0.45, y + ry * 0.45], fill=pallor)
    white_cells = int(rng.choice([0, 1, 1, 2]))
    for i in range(white_cells):
        centred = i == 0 and rng.random() < 0.7  # PBC images centre the white cell
        x = width / 2 + rng.normal(0, 10) if centred else rng.uniform(0, width)
        y = height / 2 + rng.normal(0, 10) if centred else rng.uniform(0, height)
        big = radius * rng.uniform(1.3, 1.8)
        draw.ellipse([x - big, y - big, x + big, y + big], fill=tuple(int(c) for c in cytoplasm))
        for _ in range(int(rng.integers(1, 5))):
            ox, oy = rng.normal(0, big * 0.3, 2)
            r = big * rng.uniform(0.3, 0.55)
            draw.ellipse([x + ox - r, y + oy - r, x + ox + r, y + oy + r], fill=tuple(int(c) for c in nucleus))
    for _ in range(int(rng.integers(0, 5))):
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), radius * rng.uniform(0.1, 0.2)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in nucleus))
    # A blur as wide as a red cell erases the central pallor, nuclear lobes and cell borders, and never
    # less than 5 % of the frame, so even a field of small cells becomes smudges.
    sigma = max(radius * rng.uniform(0.9, 1.4), 0.05 * min(width, height))
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(sigma)), dtype=np.float32)
    blurred = blurred + rng.normal(0, rng.uniform(0.8, 2.5), (height, width, 1))
    image = Image.fromarray(_clip(blurred))
    if rng.random() < 0.5:
        image = jpeg_round_trip(image, int(rng.integers(60, 95)))
    return f"{'with_wbc' if white_cells else 'red_cells'}", _rgb(image)


# ----------------------------------------------------------------------------- noise


def _noise(rng: Rng, index: int) -> tuple[str, np.ndarray]:
    kind = (
        "uniform_rgb",
        "uniform_grey",
        "gaussian_rgb",
        "gaussian_grey",
        "salt_pepper",
        "smooth_colour",
        "smooth_cmap",
        "pink_1f",
        "blocky",
        "jpeg_blocks",
    )[index % 10]
    width, height = _size(rng)
    shape = (height, width, 3)
    if kind == "uniform_rgb":
        pixels = rng.integers(0, 256, shape)
    elif kind == "uniform_grey":
        pixels = np.repeat(rng.integers(0, 256, (height, width, 1)), 3, axis=2)
    elif kind == "gaussian_rgb":
        pixels = rng.uniform(60, 200, 3) + rng.normal(0, rng.uniform(15, 70), shape)
    elif kind == "gaussian_grey":
        pixels = np.repeat(rng.uniform(60, 200) + rng.normal(0, rng.uniform(15, 70), (height, width, 1)), 3, axis=2)
    elif kind == "salt_pepper":
        pixels = np.broadcast_to(np.array(_colours(rng, 1)[0], dtype=float), shape).copy()
        hits = rng.random((height, width))
        fraction = rng.uniform(0.05, 0.4)
        pixels[hits < fraction / 2] = 0
        pixels[hits > 1 - fraction / 2] = 255
    elif kind == "smooth_colour":
        channels = [_smooth_noise(rng, width, height, int(rng.integers(3, 7)), int(rng.integers(2, 6))) for _ in "rgb"]
        pixels = np.stack(channels, axis=2) * 255
    elif kind == "smooth_cmap":
        cmap = str(rng.choice(["viridis", "magma", "twilight", "hsv", "coolwarm", "cividis", "Spectral", "ocean"]))
        pixels = _colormap(cmap, _smooth_noise(rng, width, height, int(rng.integers(3, 7)), int(rng.integers(2, 6))))
        kind = f"smooth_{cmap}"
    elif kind == "pink_1f":
        pixels = np.stack([_power_law_noise(rng, width, height, rng.uniform(1.0, 2.2)) for _ in "rgb"], axis=2) * 255
    elif kind == "blocky":
        block = int(rng.integers(4, 33))
        small = Image.fromarray(rng.integers(0, 256, (max(1, height // block), max(1, width // block), 3), np.uint8))
        pixels = np.asarray(small.resize((width, height), Image.Resampling.NEAREST))
    else:
        # Coloured blotches plus grain, crushed by a very low JPEG quality into 8x8 blocks and ringing.
        blotches = np.stack([_smooth_noise(rng, width, height, 3, int(rng.integers(2, 8))) for _ in "rgb"], axis=2)
        noisy = Image.fromarray(_clip(blotches * 200 + rng.uniform(0, 55, shape)))
        pixels = np.asarray(jpeg_round_trip(noisy, int(rng.integers(2, 12))))
    return kind, _clip(np.asarray(pixels, dtype=np.float64))


def _power_law_noise(rng: Rng, width: int, height: int, beta: float) -> np.ndarray:
    """Noise with power spectrum 1/f^beta (pink at 1, brown at 2), scaled to [0, 1]."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    frequency = np.hypot(fx, fy)
    frequency[0, 0] = 1.0
    spectrum = (rng.normal(size=frequency.shape) + 1j * rng.normal(size=frequency.shape)) / frequency ** (beta / 2)
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=(height, width))
    low, high = np.percentile(field, [1, 99])
    return np.clip((field - low) / (high - low), 0, 1)


# ----------------------------------------------------------------------------- pattern


def _pattern(rng: Rng, index: int) -> tuple[str, np.ndarray]:
    kind = ("checker", "stripes", "linear", "radial", "conic", "rings", "grid", "dots", "shapes", "clipart")[index % 10]
    if kind == "clipart" and not _clipart():
        kind = "shapes"
    width, height = _size(rng)
    xs, ys = _unit_grid(width, height)
    first, second, third = (np.array(c, dtype=np.float32) for c in _colours(rng, 3))
    angle = rng.uniform(0, np.pi)
    along = np.cos(angle) * xs + np.sin(angle) * ys
    across = -np.sin(angle) * xs + np.cos(angle) * ys
    pixel = 2 / max(width, height)  # one pixel in unit-grid coordinates

    def two_tone(mask: np.ndarray) -> np.ndarray:
        return np.where(mask[..., None], first, second)

    if kind == "checker":
        cell = rng.uniform(4, 64) * pixel
        tilt = rng.random() < 0.5
        u, v = (along, across) if tilt else (xs, ys)
        pixels = two_tone((np.floor(u / cell) + np.floor(v / cell)) % 2 == 0)
    elif kind == "stripes":
        period = rng.uniform(4, 60) * pixel
        wave = np.sin(2 * np.pi * along / period)
        pixels = two_tone(wave > 0) if rng.random() < 0.6 else first + (second - first) * ((wave + 1) / 2)[..., None]
    elif kind == "linear":
        t = ((along - along.min()) / np.ptp(along))[..., None]
        pixels = np.where(t < 0.5, first + (second - first) * t * 2, second + (third - second) * (t - 0.5) * 2)
    elif kind == "radial":
        r = np.hypot(xs - rng.uniform(-0.5, 0.5), ys - rng.uniform(-0.5, 0.5))
        pixels = first + (second - first) * (r / r.max())[..., None]
    elif kind == "conic":
        hue = (np.arctan2(ys, xs) / (2 * np.pi) + 0.5 + rng.uniform(0, 1)) % 1.0
        pixels = hsv_to_rgb(np.stack([hue, np.full_like(hue, 0.85), np.full_like(hue, 0.92)], axis=2)) * 255
    elif kind == "rings":
        r = np.hypot(xs - rng.uniform(-0.3, 0.3), ys - rng.uniform(-0.3, 0.3))
        pixels = two_tone(np.sin(2 * np.pi * r / (rng.uniform(6, 40) * pixel)) > 0)
    elif kind == "grid":
        paper = np.array([250, 250, 245], dtype=np.float32)
        step = int(rng.integers(8, 30))
        cols, rows = np.arange(width), np.arange(height)[:, None]
        minor = (cols % step == 0) | (rows % step == 0)
        major = (cols % (step * 5) < 2) | (rows % (step * 5) < 2)
        line = np.array(((120, 170, 220), (120, 190, 140), (230, 140, 120))[index % 3], dtype=np.float32)
        pixels = np.where(major[..., None], line * 0.7, np.where(minor[..., None], line, paper))
    elif kind == "dots":
        spacing = rng.uniform(12, 60) * pixel
        u, v = (along % spacing) - spacing / 2, (across % spacing) - spacing / 2
        pixels = two_tone(np.hypot(u, v) < spacing * rng.uniform(0.15, 0.4))
    elif kind == "shapes":
        return kind, _shapes(rng, width, height, second)
    else:
        return kind, _clipart_scene(rng, width, height, second)
    return kind, _clip(np.asarray(pixels, dtype=np.float32))


def _shapes(rng: Rng, width: int, height: int, background: np.ndarray) -> np.ndarray:
    """Random filled rectangles, triangles, polygons and thick lines on a plain background."""
    image = Image.new("RGB", (width, height), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 12))):
        colour = _colours(rng, 1)[0]
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        s = rng.uniform(0.08, 0.35) * min(width, height)
        shape = int(rng.integers(0, 4))
        if shape == 0:
            draw.rectangle([x - s, y - s * rng.uniform(0.3, 1), x + s, y + s * rng.uniform(0.3, 1)], fill=colour)
        elif shape == 1:
            draw.regular_polygon((x, y, s), int(rng.integers(3, 9)), rotation=rng.uniform(0, 360), fill=colour)
        elif shape == 2:
            points = [(x + dx, y + dy) for dx, dy in rng.uniform(-s, s, (int(rng.integers(3, 7)), 2))]
            draw.polygon(points, fill=colour)
        else:
            end = (x + rng.uniform(-3, 3) * s, y + rng.uniform(-3, 3) * s)
            draw.line([(x, y), end], fill=colour, width=int(rng.integers(2, 12)))
    return _rgb(image)


def _clipart_scene(rng: Rng, width: int, height: int, background: np.ndarray) -> np.ndarray:
    """One to three package graphics (gift box, balloons, snowflakes, masks, logo) on a plain background."""
    image = Image.new("RGB", (width, height), tuple(int(c) for c in background))
    clipart = _clipart()
    for _ in range(int(rng.integers(1, 4))):
        icon = clipart[int(rng.integers(0, len(clipart)))].rotate(rng.uniform(-30, 30), expand=True)
        icon.thumbnail((int(width * rng.uniform(0.3, 0.8)), int(height * rng.uniform(0.3, 0.8))))
        x = int(rng.integers(0, max(1, width - icon.width)))
        y = int(rng.integers(0, max(1, height - icon.height)))
        image.paste(icon, (x, y), icon)
    return _rgb(image)


_GENERATORS: dict[str, Callable[[Rng, int], tuple[str, np.ndarray]]] = {
    "face": _face,
    "landscape_or_photo": _landscape,
    "text": _text,
    "screenshot": _screenshot,
    "blank_slide": _blank_slide,
    "out_of_focus": _out_of_focus,
    "noise": _noise,
    "pattern": _pattern,
}


# ----------------------------------------------------------------------------- contact sheet


def contact_sheet(images: list[OodImage], path: Path, thumb: int = 110, columns: int = 15) -> None:
    """Thumbnails grouped by category, each under a header line, for a person to look through."""
    by_category: dict[str, list[OodImage]] = {}
    for image in images:
        by_category.setdefault(image.category, []).append(image)
    cell, header = thumb + 6, 22
    rows = sum(math.ceil(len(group) / columns) for group in by_category.values())
    sheet = Image.new("RGB", (columns * cell, rows * cell + header * len(by_category)), (60, 60, 60))
    draw = ImageDraw.Draw(sheet)
    y = 0
    for category, group in by_category.items():
        draw.text((4, y + 3), f"{category} ({len(group)})", fill=(255, 255, 255), font=_font(15))
        y += header
        for i, item in enumerate(group):
            tile = Image.fromarray(item.rgb)
            tile.thumbnail((thumb, thumb))
            x0 = (i % columns) * cell + (cell - tile.width) // 2
            y0 = y + (i // columns) * cell + (cell - tile.height) // 2
            sheet.paste(tile, (x0, y0))
        y += math.ceil(len(group) / columns) * cell
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet", type=Path, help="write a contact sheet of thumbnails to this PNG")
    args = parser.parse_args()
    start = time.perf_counter()
    images = non_blood_images(args.seed)
    elapsed = time.perf_counter() - start
    for category, count in category_counts(images).items():
        print(f"{category:20s} {count:4d}")
    print(f"{'total':20s} {len(images):4d}  (generated in {elapsed:.1f} s)")
    if args.sheet:
        contact_sheet(images, args.sheet)
        print(f"contact sheet: {args.sheet}")


if __name__ == "__main__":
    main()
