"""Shared fixtures: generated cell-like images and a tiny model trained on them, built once per run."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hematovision.core import paths
from hematovision.core.datasets import CREDIT_FILE, MANIFEST_NAME, scan_class_folders, stratified_split

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Class names of the tiny model: two white-cell classes and one that a differential sets apart.
TINY_CLASSES = ("lymphocyte", "neutrophil", "platelet")
TINY_SIZE = 96
SMALL_WEIGHTS = paths.MOBILENET_V2_WEIGHTS[0.35]


def synthetic_cell(class_index: int, seed: int, size: int = 120) -> np.ndarray:
    """A pink field with a purple blob whose size and colour depend on the class."""
    rng = np.random.default_rng(seed)
    image = np.empty((size, size, 3), np.float64)
    image[:] = (236, 200, 205)
    yy, xx = np.mgrid[:size, :size]
    centre = size / 2 + rng.uniform(-6, 6, 2)
    radius = size * (0.18, 0.3, 0.08)[class_index % 3] * rng.uniform(0.9, 1.1)
    colour = ((90, 40, 140), (150, 60, 170), (120, 80, 160))[class_index % 3]
    image[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2] = colour
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(array: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write_class_folders(root: Path, per_class: int, classes=TINY_CLASSES, seed: int = 0) -> Path:
    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(synthetic_cell(index, seed * 10_000 + index * 1000 + i)).save(folder / f"{name}_{i}.png")
    return root


def write_subtype_manifest(root, seed: int = 3):
    """Tiny class folders plus a manifest whose neutrophils are two subtypes, as PBC's are (band, segmented)."""
    write_class_folders(root, per_class=24)
    images = stratified_split(scan_class_folders(root).images, seed=seed)
    with (root / MANIFEST_NAME).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "subtype", "split"])
        for i, image in enumerate(images):
            subtype = ("BNE", "SNE")[i % 2] if image.label == "neutrophil" else image.label[:2].upper()
            writer.writerow([image.path.relative_to(root).as_posix(), image.label, subtype, image.split])
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_class_folders(tmp_path_factory.mktemp("tiny_data"), per_class=24)


@pytest.fixture(scope="session")
def tiny_other_lab(tmp_path_factory) -> Path:
    """A second "lab" laid out as train/val/test class folders, as `training.bccd --export-crops` writes."""
    root = tmp_path_factory.mktemp("other_lab")
    for offset, split in enumerate(("train", "val", "test")):
        write_class_folders(root / split, per_class=3, classes=TINY_CLASSES[:2], seed=7 + offset)
    (root / CREDIT_FILE).write_text("Tiny Other Lab,\n generated images, CC0\n", encoding="utf-8")
    return root


def tiny_training_args(data: Path, other_lab: Path, out: Path) -> list[str]:
    """The training CLI's arguments for the tiny model (kept here so a test can repeat the run exactly)."""
    weights = str(SMALL_WEIGHTS) if SMALL_WEIGHTS.is_file() else "none"
    return [
        "--data", str(data), "--out", str(out), "--alpha", "0.35", "--weights", weights,
        "--image-size", str(TINY_SIZE), "--head-epochs", "5", "--fine-tune-epochs", "1",
        "--fine-tune-from", "block_15_expand", "--batch-size", "16", "--blur", "1.5",
        "--extra-data", str(other_lab), "--extra-repeat", "2",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_dataset, tiny_other_lab) -> Path:
    """A complete artifact folder from the real training CLI: small backbone, one short epoch per phase.

    Uses the ImageNet 0.35 weights from ../shared when present (trained features make Grad-CAM
    maps meaningful); otherwise random weights, which still exercise every step of the contract.
    """
    from training.train import main

    out = tmp_path_factory.mktemp("tiny_model")
    code = main(tiny_training_args(tiny_dataset, tiny_other_lab, out))
    assert code == 0
    return out


@pytest.fixture(scope="session")
def exported_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model's folder with its LiteRT export (model.tflite), as training.export writes it."""
    from training.export import main

    folder = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(tiny_model_dir, folder)
    assert main(["--model", str(folder), "--data", str(folder / "no-data-here")]) == 0
    return folder


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir):
    from hematovision.core.predict import Classifier

    return Classifier.load(tiny_model_dir)


def shared_data_or_skip() -> Path:
    if not (paths.SHARED_DATA_DIR / "pbc_manifest.csv").is_file():
        pytest.skip("needs ../shared/data (the PBC images); not present on this machine")
    return paths.SHARED_DATA_DIR


#: AppTest's limit per run: the first TensorFlow load in a process takes several seconds.
TIMEOUT = 120


def new_session():
    """Another browser session of the app, opened at Home as a browser opens it (models and caches stay as the
    process has them). The first run registers st.navigation's pages, so ``switch_page`` finds them after it."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(paths.PROJECT_ROOT / "streamlit_app.py"), default_timeout=TIMEOUT).run()


def app_on(monkeypatch, model_dir: Path):
    """The app on this artifact folder, every cache cleared, as a fresh browser session would find it."""
    import streamlit as st

    monkeypatch.setenv(paths.MODEL_DIR_ENV, str(model_dir))
    st.cache_resource.clear()
    st.cache_data.clear()
    return new_session()


@pytest.fixture
def app(monkeypatch, tiny_model_dir):
    return app_on(monkeypatch, tiny_model_dir)


#: The attributes of the tiny attribute dataset: one set per annotated class (platelets, as in WBCAtt, get none).
TINY_ATTRIBUTES = {
    "lymphocyte": {
        "cell_size": "small", "cell_shape": "round", "nucleus_shape": "unsegmented-round",
        "nuclear_cytoplasmic_ratio": "high", "chromatin_density": "densely", "cytoplasm_vacuole": "no",
        "cytoplasm_texture": "clear", "cytoplasm_colour": "blue", "granule_type": "nil", "granule_colour": "nil",
        "granularity": "no",
    },
    "neutrophil": {
        "cell_size": "big", "cell_shape": "irregular", "nucleus_shape": "segmented-multilobed",
        "nuclear_cytoplasmic_ratio": "low", "chromatin_density": "loosely", "cytoplasm_vacuole": "yes",
        "cytoplasm_texture": "frosted", "cytoplasm_colour": "light blue", "granule_type": "small",
        "granule_colour": "pink", "granularity": "yes",
    },
}  # fmt: skip


def write_attribute_manifest(root: Path) -> Path:
    """Tiny class folders and a manifest with the WBCAtt attribute columns (empty for platelets)."""
    from hematovision.heads.morphology import ATTRIBUTES

    write_class_folders(root, per_class=24, seed=5)
    images = stratified_split(scan_class_folders(root).images, seed=1)
    with (root / MANIFEST_NAME).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "subtype", "split", *ATTRIBUTES])
        for image in images:
            values = TINY_ATTRIBUTES.get(image.label, {})
            path = image.path.relative_to(root).as_posix()
            writer.writerow([path, image.label, "", image.split, *(values.get(name, "") for name in ATTRIBUTES)])
    return root


@pytest.fixture(scope="session")
def tiny_attribute_model_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model folder plus attribute heads from the real pipeline CLI (python -m training.attributes)."""
    from training.attributes import main

    root = tmp_path_factory.mktemp("tiny_attributes")
    data = write_attribute_manifest(root / "data")
    model = root / "model"
    shutil.copytree(tiny_model_dir, model)
    assert main(["--model", str(model), "--data", str(data), "--cache", str(root / "features.npz")]) == 0
    return model


@pytest.fixture(scope="session")
def tiny_saliency_model_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model's folder with faithfulness figures recorded by the real CLI (two fast methods, 3 images)."""
    from training.saliency_eval import main

    model = tmp_path_factory.mktemp("tiny_saliency") / "model"
    shutil.copytree(tiny_model_dir, model)
    data = write_subtype_manifest(tmp_path_factory.mktemp("saliency_data"))
    arguments = ["--model", str(model), "--data", str(data), "--n", "3", "--sanity-n", "2", "--save-every", "2"]
    assert main([*arguments, "--methods", "Grad-CAM,LayerCAM"]) == 0
    return model


@pytest.fixture
def manifest_dataset(tiny_dataset, tmp_path):
    """The tiny class folders with a manifest that puts every fourth image in the test split."""
    rows = []
    for label in TINY_CLASSES:
        for index, path in enumerate(sorted((tiny_dataset / label).iterdir())):
            shutil.copy(path, tmp_path / path.name)
            rows.append({"path": path.name, "label": label, "split": "test" if index % 4 == 0 else "train"})
    with (tmp_path / "pbc_manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path
