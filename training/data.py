"""Reading the labelled images into memory and the augmented input pipeline."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from hematovision.core.datasets import LabelledImage, find_manifest, read_manifest, scan_class_folders, stratified_split
from hematovision.heads.morphology import ATTRIBUTES
from training.config import TrainConfig
from training.scoring import LabelledBatch, decode_labelled


def find_images(data_dir: Path, seed: int) -> tuple[list[LabelledImage], str]:
    """The labelled images and a description of where their split came from."""
    manifest = find_manifest(data_dir)
    if manifest is not None:
        return read_manifest(manifest), f"{manifest.name} (its train/val/test split)"
    scan = scan_class_folders(data_dir)
    for reason in scan.skipped:
        print(f"skipped {reason}", file=sys.stderr)
    if not scan.images:
        raise SystemExit(f"error: no class folders with images under {data_dir}")
    return stratified_split(scan.images, seed), f"class folders, stratified 75/10/15 split with seed {seed}"


def load_split(images: list[LabelledImage], classes: list[str], size: int) -> LabelledBatch:
    """Decode and resize every image through the serving path; unreadable files are reported and left out."""
    batch = decode_labelled(images, classes, size)
    for item in batch.unreadable:
        print(f"skipped {item['file']}: {item['reason']}", file=sys.stderr)
    return batch


def load_splits(images: list[LabelledImage], classes: list[str], size: int) -> dict[str, LabelledBatch]:
    started = time.perf_counter()
    splits = {
        name: load_split([i for i in images if i.split == name], classes, size) for name in ("train", "val", "test")
    }
    sizes = ", ".join(f"{name} {len(split.labels)}" for name, split in splits.items())
    print(f"decoded {sizes} images in {time.perf_counter() - started:.0f} s", flush=True)
    return splits


def load_split_folders(root: Path, classes: list[str], size: int) -> dict[str, LabelledBatch]:
    """A dataset laid out as ``root/{train,val,test}/<class>/``; a missing split is empty."""
    splits = {}
    for name in ("train", "val", "test"):
        folder = root / name
        scan = scan_class_folders(folder, classes) if folder.is_dir() else None
        for reason in scan.skipped if scan else []:
            print(f"skipped {name}/{reason}", file=sys.stderr)
        splits[name] = load_split(scan.images if scan else [], classes, size)
    return splits


def concatenate(first: LabelledBatch, second: LabelledBatch, repeat: int = 1) -> LabelledBatch:
    """``first`` followed by ``repeat`` copies of ``second``."""
    return LabelledBatch(
        images=np.concatenate([first.images, *[second.images] * repeat]).astype(np.uint8),
        labels=np.concatenate([first.labels, *[second.labels] * repeat]).astype(first.labels.dtype),
        paths=first.paths + second.paths * repeat,
        unreadable=first.unreadable + second.unreadable,
    )


def augment(image: tf.Tensor, seed: tf.Tensor, config: TrainConfig) -> tf.Tensor:
    """One random view of a uint8 image, returned as float 0-255 (the model's input range).

    Every draw is stateless, from ``seed`` (shape [2]): the parallel input pipeline then gives the same
    views in every run with the same config seed, which stateful random ops do not guarantee.
    """
    size = config.image_size
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, num=11))

    def uniform(index: int, low, high, dtype=tf.float32):
        return tf.random.stateless_uniform([], seeds[index], low, high, dtype=dtype)

    x = tf.image.convert_image_dtype(image, tf.float32)
    x = tf.image.stateless_random_flip_left_right(x, seeds[0])
    x = tf.image.stateless_random_flip_up_down(x, seeds[1])
    x = tf.image.rot90(x, k=uniform(2, 0, 4, tf.int32))
    # Zoom in by up to `zoom` and shift by up to `shift`, always staying inside the image: padding
    # would add black borders that real smear images never have.
    side = uniform(3, 1.0 - config.zoom, 1.0)
    if config.zoom_out > 0:
        side, x = zoom_out_view(x, side, seed, config.zoom_out)
    # A zoomed-out view shifts only as far as keeps the whole image in it.
    slack = 1.0 - side
    low, high = tf.minimum(slack, 0.0), tf.maximum(slack, 0.0)
    top = tf.clip_by_value(slack / 2 + uniform(4, -config.shift, config.shift), low, high)
    left = tf.clip_by_value(slack / 2 + uniform(5, -config.shift, config.shift), low, high)
    box = padded_box(top, left, side, image.shape[0], x.shape[0])
    x = tf.image.crop_and_resize(x[None], box, [0], [size, size])[0]
    # Stain and illumination differ between slides, stainings and cameras.
    x = tf.image.stateless_random_brightness(x, config.brightness, seeds[6])
    x = tf.image.stateless_random_contrast(x, 1.0 - config.contrast, 1.0 + config.contrast, seeds[7])
    x = tf.image.stateless_random_saturation(x, 1.0 - config.saturation, 1.0 + config.saturation, seeds[8])
    x = tf.image.stateless_random_hue(x, config.hue, seeds[9])
    if config.blur > 0:
        x = gaussian_blur(x, uniform(10, 0.0, config.blur))
    # Further draws fold in their own seeds, so configs without these options keep their old views.
    if config.stain > 0:
        x = stain_jitter(
            tf.clip_by_value(x, 0.0, 1.0), tf.random.experimental.stateless_fold_in(seed, 13), config.stain
        )
    if config.other_lab > 0:
        x = other_lab_colour(tf.clip_by_value(x, 0.0, 1.0), tf.random.experimental.stateless_fold_in(seed, 15), config)
    if config.grey > 0:
        x = grey_view(x, tf.random.experimental.stateless_fold_in(seed, 16), config.grey)
    if config.degrade > 0:
        x = degraded(tf.clip_by_value(x, 0.0, 1.0), tf.random.experimental.stateless_fold_in(seed, 14), config)
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


#: Ruifrok and Johnston's stain vectors (haematoxylin, eosin, DAB) as optical densities per RGB channel.
RGB_FROM_STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float32)
STAINS_FROM_RGB = np.linalg.inv(RGB_FROM_STAINS).astype(np.float32)


def stain_jitter(x: tf.Tensor, seed: tf.Tensor, amount: float) -> tf.Tensor:
    """Scale and shift each stain's optical density: more or less dye, as in another lab's staining."""
    scale_seed, shift_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    scale = tf.random.stateless_uniform([3], scale_seed, 1.0 - amount, 1.0 + amount)
    shift = tf.random.stateless_uniform([3], shift_seed, -amount / 4, amount / 4)
    stains = tf.tensordot(optical_density(x), STAINS_FROM_RGB, 1) * scale + shift
    return from_optical_density(tf.tensordot(stains, RGB_FROM_STAINS, 1))


def optical_density(x: tf.Tensor) -> tf.Tensor:
    """RGB in [0, 1] as light absorbed per channel (0 for white; +1 keeps black finite)."""
    return -tf.math.log((x * 255.0 + 1.0) / 256.0)


def from_optical_density(density: tf.Tensor) -> tf.Tensor:
    """The inverse of :func:`optical_density`, clipped to [0, 1]."""
    return tf.clip_by_value(tf.exp(-density) * 256.0 / 255.0 - 1.0 / 255.0, 0.0, 1.0)


def other_lab_colour(x: tf.Tensor, seed: tf.Tensor, config: TrainConfig) -> tf.Tensor:
    """With probability ``config.other_lab``: the dyes and light of another lab, in optical density space.

    Fainter dyes, a dimmer lamp and a tinted white balance all act on optical density (a dye's amount and
    the light it absorbs are proportional there), so one change of density covers them together.
    """
    coin_seed, dye_seed, light_seed, tint_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=4))
    low = np.log(config.other_lab_dye)
    dye = tf.exp(tf.random.stateless_uniform([3], dye_seed, low, -low / 2))
    light = tf.random.stateless_uniform([], light_seed, 0.0, config.other_lab_light)
    tint = tf.random.stateless_uniform([3], tint_seed, -config.other_lab_tint, config.other_lab_tint)

    def recolour() -> tf.Tensor:
        stains = tf.tensordot(optical_density(x), STAINS_FROM_RGB, 1) * dye
        return from_optical_density(tf.tensordot(stains, RGB_FROM_STAINS, 1) + light + tint)

    return tf.cond(tf.random.stateless_uniform([], coin_seed) < config.other_lab, recolour, lambda: x)


def grey_view(x: tf.Tensor, seed: tf.Tensor, share: float) -> tf.Tensor:
    """With probability ``share``: the image's luminance in all three channels."""
    coin = tf.random.stateless_uniform([], seed)
    return tf.cond(coin < share, lambda: tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x)), lambda: x)


def degraded(x: tf.Tensor, seed: tf.Tensor, config: TrainConfig) -> tf.Tensor:
    """With probability ``config.degrade``: fewer pixels per cell and JPEG artefacts, at the same size."""
    coin, scale, quality = (
        tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, index)) for index in range(3)
    )
    size = x.shape[0]

    def degrade() -> tf.Tensor:
        side = tf.cast(tf.round(size * (config.degrade_scale + scale * (1.0 - config.degrade_scale))), tf.int32)
        small = tf.image.resize(x, [side, side], antialias=True)
        compressed = tf.image.adjust_jpeg_quality(
            tf.clip_by_value(small, 0.0, 1.0), tf.cast(40 + 55 * quality, tf.int32)
        )
        return tf.image.resize(compressed, [size, size])

    return tf.cond(coin < config.degrade, degrade, lambda: x)


def zoom_out_view(
    x: tf.Tensor, zoom_in_side: tf.Tensor, seed: tf.Tensor, zoom_out: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """Half the views zoom out instead: the crop's side grows to up to 1 / (1 - zoom_out) of the image.

    Other labs photograph cells at other magnifications, so a cell may fill less of the frame than
    PBC's do. The image is mirrored outward to fill the wider view: mirrored neighbouring red cells
    look like more smear, where a flat or black border would be a cue no real image has. Returns the
    side and the mirrored image; the draws fold in their own seeds, so views with zoom_out 0 are
    unchanged.
    """
    coin, amount = (
        tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, index)) for index in (11, 12)
    )
    widest = 1.0 / (1.0 - zoom_out)
    side = tf.where(coin < 0.5, zoom_in_side, 1.0 + amount * (widest - 1.0))
    # The view may be shifted all the way to one side, so each side needs the whole extra width.
    pad = math.ceil((widest - 1.0) * x.shape[0])
    return side, tf.pad(x, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")


def padded_box(top: tf.Tensor, left: tf.Tensor, side: tf.Tensor, image_side: int, padded_side: int) -> tf.Tensor:
    """A crop box given in the original image's coordinates (0-1, may reach outside), in the padded image's."""
    corners = tf.stack([top, left, top + side, left + side])
    return (corners * (image_side / padded_side) + (padded_side - image_side) / 2 / padded_side)[None]


def gaussian_blur(image: tf.Tensor, sigma: tf.Tensor, radius: int = 4) -> tf.Tensor:
    """Separable Gaussian blur of one (H, W, 3) image; edges are reflected, not darkened by zero padding."""
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(offsets / tf.maximum(sigma, 1e-3)))
    kernel = kernel / tf.reduce_sum(kernel)
    across = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
    down = tf.reshape(across, [-1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    blurred = tf.nn.depthwise_conv2d(padded, across, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, down, [1, 1, 1, 1], "VALID")[0]


def training_dataset(
    split: LabelledBatch,
    n_classes: int,
    config: TrainConfig,
    sample_weights: np.ndarray,
    auxiliary: Sequence[AuxiliaryTargets] = (),
    red_cells: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Augmented, shuffled batches; with ``auxiliary`` targets the targets and weights are tuples, class first,
    each auxiliary head's loss weighted 0 where its image has no target. ``red_cells`` (training.red_cells) join
    with the uniform distribution as their target, each weighted ``config.red_cell_weight``."""
    images = split.images
    targets = tf.one_hot(split.labels, n_classes)
    if red_cells is not None and len(red_cells):
        if auxiliary:
            raise ValueError("red-cell-only images take no auxiliary targets: train them without auxiliary heads")
        images = np.concatenate([images, red_cells])
        targets = tf.concat([targets, tf.fill([len(red_cells), n_classes], 1.0 / n_classes)], axis=0)
        sample_weights = np.concatenate([sample_weights, np.full(len(red_cells), config.red_cell_weight)])
        sample_weights = sample_weights.astype(np.float32)
    if auxiliary:
        targets = (targets, *(extra.one_hot() for extra in auxiliary))
        sample_weights = (sample_weights, *(sample_weights * extra.known() for extra in auxiliary))
    dataset = tf.data.Dataset.from_tensor_slices((images, targets, sample_weights))
    # A seeded stream of augmentation seeds, new in each epoch and identical across runs.
    augmentation_seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).batch(2)

    def one_view(example, seed):
        image, target, weight = example
        return augment(image, seed, config), target, weight

    return (
        tf.data.Dataset.zip(
            dataset.shuffle(len(images), seed=config.seed, reshuffle_each_iteration=True), augmentation_seeds
        )
        .map(one_view, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


@dataclass
class SubtypeTargets:
    """Each image's subtype index into ``names``, -1 where it has none (its subtype loss is then weighted 0)."""

    index: np.ndarray
    names: list[str]

    @classmethod
    def of(cls, batch: LabelledBatch, subtype_by_path: dict[Path, str], names: list[str]) -> SubtypeTargets:
        position = {name: i for i, name in enumerate(names)}
        index = [position.get(subtype_by_path.get(path, ""), -1) for path in batch.paths]
        return cls(np.asarray(index, np.int64), names)

    def known(self) -> np.ndarray:
        return (self.index >= 0).astype(np.float32)

    def one_hot(self) -> np.ndarray:
        return np.eye(len(self.names), dtype=np.float32)[np.maximum(self.index, 0)] * self.known()[:, None]


@dataclass
class AttributeTargets:
    """Each image's value index per attribute (columns in ``ATTRIBUTES`` order), -1 where it has none.

    ``one_hot`` lays the attributes side by side (2 + 2 + 6 + ... columns), the layout of the training-only
    attribute head and of :func:`training.model.grouped_cross_entropy`.
    """

    index: np.ndarray

    @classmethod
    def of(cls, batch: LabelledBatch, attributes_by_path: dict[Path, dict[str, str]]) -> AttributeTargets:
        rows = []
        for path in batch.paths:
            values = attributes_by_path.get(path, {})
            rows.append([ATTRIBUTES[name].index(values[name]) if values.get(name) else -1 for name in ATTRIBUTES])
        return cls(np.asarray(rows, np.int64).reshape(len(batch.paths), len(ATTRIBUTES)))

    def known(self) -> np.ndarray:
        """1 for images with every attribute (WBCAtt annotates all or none), else 0."""
        return (self.index >= 0).all(axis=1).astype(np.float32)

    def one_hot(self) -> np.ndarray:
        blocks = [
            np.eye(len(values), dtype=np.float32)[np.maximum(self.index[:, column], 0)]
            for column, values in enumerate(ATTRIBUTES.values())
        ]
        return np.concatenate(blocks, axis=1) * self.known()[:, None]


AuxiliaryTargets = SubtypeTargets | AttributeTargets


def class_weights(labels: np.ndarray, n_classes: int, power: float) -> np.ndarray:
    """Per-class loss weights, (N / (K * n_c)) ** power, normalised to mean 1 over the samples."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    balanced = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    weights = balanced**power
    return weights / (weights[labels].mean() if len(labels) else 1.0)
