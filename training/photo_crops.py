"""Real photographs and micrographs that are not blood smears, cut into many views.

The generated set in ``training/ood_images.py`` is varied but synthetic. These views come from the
sample images that ship inside scikit-image (photographs, astronomy, retina, tissue stained for
immunohistochemistry, a phase-contrast cell, scanned text, faces), so the set is the same offline on
every machine and no image is copied into the repository.

The sources are split in two: :data:`FIT_SOURCES` may be used to fit the not-a-blood-cell check,
:data:`HELD_OUT_SOURCES` only to measure it, so that a measured rate never comes from a photograph the
check was fitted on (a new crop of a seen photograph would be a near-duplicate).

:func:`debian_backgrounds` adds a third set, used only to place the check's threshold: the nature photographs
and abstract wallpapers of Debian's ``mate-backgrounds`` package (``apt-get install mate-backgrounds``), real
photographs harder than generated images and seen by neither the fit nor the measure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from training.ood_images import OodImage


def _load(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        image = np.asarray(getattr(data, name)())
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        return image[..., :3].astype(np.uint8)

    return load


def _halves(name: str) -> tuple[Callable[[], np.ndarray], Callable[[], np.ndarray]]:
    """The top and bottom half of one large image, as two sources that share no pixel."""
    load = _load(name)
    return (lambda: (im := load())[: im.shape[0] // 2]), (lambda: (im := load())[im.shape[0] // 2 :])


def _faces(part: slice) -> Callable[[], list[np.ndarray]]:
    def load() -> list[np.ndarray]:
        from skimage import data

        return [np.stack([np.asarray(face * 255, np.uint8)] * 3, axis=-1) for face in data.lfw_subset()[part]]

    return load


def _motorcycle() -> np.ndarray:
    from skimage import data

    return np.asarray(data.stereo_motorcycle()[0])[..., :3].astype(np.uint8)


_IHC_TOP, _IHC_BOTTOM = _halves("immunohistochemistry")

#: name -> (category, loader); a loader gives one image, or a list of small images (the faces).
FIT_SOURCES: dict[str, tuple[str, Callable]] = {
    "astronaut": ("photo", _load("astronaut")),
    "chelsea": ("photo", _load("chelsea")),
    "coffee": ("photo", _load("coffee")),
    "brick": ("texture", _load("brick")),
    "grass": ("texture", _load("grass")),
    "camera": ("photo", _load("camera")),
    "page": ("text", _load("page")),
    "ihc_top": ("tissue_micrograph", _IHC_TOP),
    "faces_a": ("face", _faces(slice(0, 50))),
}
HELD_OUT_SOURCES: dict[str, tuple[str, Callable]] = {
    "rocket": ("photo", _load("rocket")),
    "motorcycle": ("photo", _motorcycle),
    "hubble": ("astronomy", _load("hubble_deep_field")),
    "retina": ("retina", _load("retina")),
    "microaneurysms": ("retina", _load("microaneurysms")),
    "gravel": ("texture", _load("gravel")),
    "coins": ("photo", _load("coins")),
    "moon": ("photo", _load("moon")),
    "cell": ("phase_contrast_micrograph", _load("cell")),
    "text": ("text", _load("text")),
    "ihc_bottom": ("tissue_micrograph", _IHC_BOTTOM),
    "faces_b": ("face", _faces(slice(50, 100))),
}


#: Where Debian's mate-backgrounds package puts its pictures; the ``desktop`` folder (logos, stripes) is left out.
DEBIAN_BACKGROUNDS_DIR = Path("/usr/share/backgrounds/mate")
DEBIAN_BACKGROUND_CATEGORIES = {"nature": "photo", "abstract": "graphic"}
#: The same picture at other sizes (``Elephants_3840x2160.jpg``) would be a duplicate source.
_SIZED_COPY = "_"


def _load_file(path: Path) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        with Image.open(path) as image:
            image.thumbnail((1600, 1600))
            return np.asarray(image.convert("RGB"))

    return load


def debian_backgrounds(folder: Path = DEBIAN_BACKGROUNDS_DIR) -> dict[str, tuple[str, Callable]]:
    """The package's nature photographs and abstract wallpapers as sources; empty where it is not installed."""
    sources = {}
    for subfolder, category in DEBIAN_BACKGROUND_CATEGORIES.items():
        for path in sorted((folder / subfolder).glob("*")):
            if path.suffix.lower() in {".jpg", ".png"} and _SIZED_COPY not in path.stem:
                sources[path.stem] = (category, _load_file(path))
    return sources


def views(sources: dict[str, tuple[str, Callable]], per_source: int, seed: int) -> list[OodImage]:
    """``per_source`` random square-ish views of each source, at random scales, resized to 96-400 px."""
    out = []
    for index, (name, (category, load)) in enumerate(sources.items()):
        rng = np.random.default_rng([seed, index])
        loaded = load()
        pool = loaded if isinstance(loaded, list) else [loaded]
        for i in range(per_source):
            image = pool[i % len(pool)] if len(pool) > 1 else pool[0]
            height, width = image.shape[:2]
            side = int(min(height, width) * rng.uniform(0.25, 1.0)) if len(pool) == 1 else min(height, width)
            aspect = rng.uniform(1.0, 1.4)
            crop_w, crop_h = min(width, int(side * aspect)), side
            top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
            view = Image.fromarray(image[top : top + crop_h, left : left + crop_w])
            target = int(rng.uniform(96, 400))
            view = view.resize((max(32, round(target * crop_w / crop_h)), target), Image.Resampling.BILINEAR)
            out.append(OodImage(f"{name}_{i:03d}", category, np.asarray(view, np.uint8)))
    return out
