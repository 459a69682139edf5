"""Train the classifier and write a complete artifact folder.

    python -m training.train --data ../shared/data --out models \
        --weights ../shared/weights/mobilenet_v2_1.0_224_no_top_imagenet_approx.h5

With an EfficientNet-Lite backbone (converted once by training.convert_backbone; `--weights imagenet` reads the
converted file), at its native size, and the Chula lab's train sequences mixed in beside the BCCD crops:

    python -m training.train --data ../shared/data --out /tmp/run --backbone efficientnet_lite0 --weights imagenet \
        --extra-data /tmp/bccd_crops --chula ../shared/data/chula

Phase 1 fits a linear head on frozen, cached backbone features; phase 2 fine-tunes the upper
backbone blocks with augmentation. Then the softmax temperature and the "uncertain" threshold are
chosen on the validation split, and the test split is scored once.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from hematovision.core import paths
from hematovision.core.artifacts import WHITE_CELL_CLASSES, ModelCard, load_card, write_json
from hematovision.core.datasets import (
    CREDIT_FILE,
    LabelledImage,
    class_counts_by_split,
    crops_info,
    dataset_credit,
    find_manifest,
    read_attribute_rows,
)
from hematovision.core.predict import Classifier
from hematovision.heads.metrics import choose_confidence_threshold, fit_temperature, softmax
from hematovision.heads.morphology import ATTRIBUTES
from training.backbones import VARIANTS, variant_of
from training.checkpoint import (
    CHECKPOINT_FILE,
    Checkpoint,
    RunState,
    SaveEachEpoch,
    config_differences,
    load_checkpoint,
    restore_optimizer,
    save_checkpoint,
    skip_epochs,
)
from training.config import TrainConfig
from training.data import (
    AttributeTargets,
    AuxiliaryTargets,
    SubtypeTargets,
    class_weights,
    concatenate,
    find_images,
    load_split,
    load_split_folders,
    load_splits,
    training_dataset,
)
from training.export import export_and_check
from training.model import (
    ATTRIBUTE_OUTPUT,
    BACKBONES,
    FEATURES_LAYER,
    LOGITS_LAYER,
    SUBTYPE_OUTPUT,
    backbone_weights,
    build_model,
    grouped_cross_entropy,
    set_trainable,
    with_auxiliary_heads,
)
from training.red_cells import red_cell_views
from training.scoring import LabelledBatch, evaluate_arrays, metrics_summary

OPTION_HELP = {
    "backbone": "the ImageNet-pretrained network under the head (EfficientNet-Lite: convert it first with "
    "python -m training.convert_backbone)",
    "alpha": "MobileNetV2 width multiplier (1.0 or 0.35)",
    "weights": "backbone weights: 'imagenet' (MobileNetV2: Keras downloads them; EfficientNet-Lite: the converted "
    "file in the backbone cache), a local no-top .h5 (.weights.h5) file, or 'none' (random)",
    "image_size": "input side in pixels (images are centre-cropped square and resized); default: the backbone's "
    "native size (224 MobileNetV2 and Lite0, 240 Lite1, 260 Lite2)",
    "batch_size": "images per training step",
    "seed": "random seed for the split (folder datasets), shuffling and augmentation",
    "head_epochs": "phase 1 epochs: linear head on frozen backbone features",
    "head_learning_rate": "phase 1 Adam learning rate",
    "fine_tune_from": "phase 2 unfreezes the backbone from this layer upward; default: the backbone's own "
    "(block_9_expand for MobileNetV2, block4b_expand_conv for EfficientNet-Lite)",
    "fine_tune_epochs": "phase 2 epochs (0 skips fine-tuning)",
    "fine_tune_learning_rate": "phase 2 peak learning rate (cosine decay to 0)",
    "weight_decay": "phase 2 AdamW weight decay",
    "final_learning_rate_fraction": "phase 2 learning rate at the end, as a fraction of the peak",
    "average_last_epochs": "phase 2 keeps the average of the weights after each of its last N epochs (1 = last)",
    "dropout": "dropout before the classifier",
    "label_smoothing": "phase 2 label smoothing (0 = hard one-hot targets)",
    "class_weight_power": "class weights = balanced weight ** power (0 = none, 1 = fully balanced)",
    "subtype_loss_weight": "phase 2 weight of an auxiliary loss on the manifest's subtypes, from a training-only "
    "second head (0 = off)",
    "attribute_loss_weight": "phase 2 weight of an auxiliary loss on the manifest's WBCAtt attributes, from a "
    "training-only head on the features the attribute heads read (0 = off)",
    "zoom": "augmentation: largest zoom-in fraction",
    "zoom_out": "augmentation: largest zoom-out fraction; half the views zoom out (0 = none)",
    "shift": "augmentation: largest shift, as a fraction of the side",
    "brightness": "augmentation: largest brightness change (0-1 scale)",
    "contrast": "augmentation: largest contrast change (fraction)",
    "saturation": "augmentation: largest saturation change (fraction)",
    "hue": "augmentation: largest hue shift (fraction of the colour wheel)",
    "blur": "augmentation: largest Gaussian blur sigma in pixels (0 = none)",
    "stain": "augmentation: stain jitter, largest change of each stain's optical density (fraction; 0 = none)",
    "degrade": "augmentation: share of views shrunk, JPEG-compressed and enlarged back (0 = none)",
    "degrade_scale": "augmentation: smallest side a degraded view is shrunk to (fraction)",
    "other_lab": "augmentation: share of views recoloured as another lab's smear (fainter or stronger dyes, "
    "dimmer and tinted light; 0 = none)",
    "other_lab_dye": "augmentation: smallest factor on each stain's optical density in a recoloured view",
    "other_lab_light": "augmentation: largest neutral optical density added to a recoloured view (dimmer light)",
    "other_lab_tint": "augmentation: largest per-channel optical density shift of a recoloured view",
    "grey": "augmentation: share of views shown in grey (luminance in all three channels); 0 = off",
    "density_target": "inside the model: each image's stain density (99th percentile of its optical density, "
    "summed over channels, against its own glass) set to this (0 = off)",
    "extra_data": "optional folder of another lab's images as train/ val/ test/ class folders: train is mixed in, "
    "val joins calibration, val and test are scored",
    "extra_repeat": "times each extra train image is repeated per epoch",
    "chula": "optional folder of the Chula lab's crops (manifest.csv with a sequence and a split column): its "
    "train sequences are mixed in, its test sequences scored as chula_test",
    "chula_repeat": "times each Chula train crop is repeated per epoch",
    "red_cells": "PBC train images to show again with their cell removed, trained towards no class in fine-tuning "
    "(0: none)",
    "red_cell_weight": "loss weight of each red-cell-only image",
    "init_from": "an earlier run's artifact folder to start from (same classes and backbone): phase 1 is skipped and "
    "phase 2 continues its fine-tuning",
    "threshold_target_accuracy": "validation accuracy the 'uncertain' threshold must secure above it",
}


#: What the card says about where the backbone's starting weights came from, per --weights value.
WEIGHTS_ORIGINS = {
    "imagenet": "ImageNet-pretrained, no top, downloaded by Keras",
    "none": "random initialisation (no pretraining)",
    "file": "ImageNet-pretrained, no top, from a local file (see ../shared/README.md)",
}


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, TrainConfig]:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Transfer-learn an ImageNet backbone (MobileNetV2 or EfficientNet-Lite) on labelled blood-cell "
        "images and write the artifact folder (model.keras, model_card.json, evaluation.json, history.csv).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=paths.SHARED_DATA_DIR,
        help="a folder holding pbc_manifest.csv (its split is used), or any class-per-folder tree",
    )
    parser.add_argument("--out", type=Path, default=paths.SHIPPED_MODEL_DIR, help="artifact folder to write")
    parser.add_argument(
        "--resume",
        action="store_true",
        help=f"continue a stopped run from its last finished epoch ({CHECKPOINT_FILE} in --out, written after "
        "phase 1 and after every fine-tuning epoch); the options must be the same as the stopped run's",
    )
    parser.add_argument(
        "--distribute",
        action="store_true",
        help="train on every local GPU at once (tf.distribute.MirroredStrategy: one model copy per device, "
        "each batch split between them, gradients summed); the batch size stays the global one",
    )
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=0,
        help="split the CPU into this many logical devices, so that --distribute can be tried without GPUs",
    )
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        value = getattr(defaults, field.name)
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=type(value),
            # None: the backbone's own, set below.
            default=None if field.name in PER_BACKBONE else value,
            choices=sorted(BACKBONES) if field.name == "backbone" else None,
            help=OPTION_HELP[field.name],
        )
    args = parser.parse_args(argv)
    backbone = BACKBONES[args.backbone]
    args.image_size = args.image_size or backbone.input_size
    args.fine_tune_from = args.fine_tune_from or backbone.fine_tune_from
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    return args, config


#: Options whose default depends on --backbone (BACKBONES): MobileNetV2's are TrainConfig's own.
PER_BACKBONE = ("image_size", "fine_tune_from")


class EpochLog(keras.callbacks.Callback):
    """Collects one history row per epoch, with its wall time and learning rate.

    With ``total_epochs`` it also prints how long the phase has left at the pace so far: 2-core machines
    differ several-fold (run 10's epochs took 86-147 s on one; run 22's first, at 320 px, 934 s on another),
    and a run that will not fit is better stopped after its first epoch than after its last.
    """

    def __init__(self, phase: str, rows: list[dict], total_epochs: int | None = None) -> None:
        super().__init__()
        self.phase, self.rows, self.total_epochs = phase, rows, total_epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        learning_rate = self.model.optimizer.learning_rate
        self.rows.append(
            {
                "phase": self.phase,
                "epoch": epoch + 1,
                **{key: round(float(value), 5) for key, value in single_output_names(logs or {}).items()},
                "learning_rate": float(keras.ops.convert_to_numpy(learning_rate)),
                "seconds": round(time.perf_counter() - self.started, 1),
            }
        )
        if self.total_epochs:
            phase_seconds = [row["seconds"] for row in self.rows if row["phase"] == self.phase]
            print(f"{self.phase}: {time_left(phase_seconds, self.total_epochs)}", flush=True)


def time_left(epoch_seconds: list[float], total_epochs: int) -> str:
    """'epoch 3/14, about 17 min left' from the mean epoch so far; after the last, the phase's time."""
    done = len(epoch_seconds)
    if done >= total_epochs:
        return f"epoch {done}/{total_epochs}, the phase took {sum(epoch_seconds) / 60:.0f} min"
    return f"epoch {done}/{total_epochs}, about {(total_epochs - done) * sum(epoch_seconds) / done / 60:.0f} min left"


def single_output_names(logs: dict) -> dict:
    """Epoch figures under one naming whether or not training-only heads train alongside.

    With several outputs Keras names the class head's figures ``probabilities_*`` and its ``loss`` is the
    weighted sum of every head's; the history keeps the class head's own loss as ``loss``, so runs with and
    without the extra heads compare directly, and theirs as ``subtype_loss`` and ``attribute_loss``.
    """
    two_heads = "probabilities_loss" in logs
    renamed = {}
    for key, value in logs.items():
        prefix = "val_" if key.startswith("val_") else ""
        stem = key.removeprefix(prefix)
        if key == "learning_rate" or (two_heads and stem == "loss"):
            continue
        for output, short in ((SUBTYPE_OUTPUT, "subtype"), (ATTRIBUTE_OUTPUT, "attribute")):
            stem = stem.replace(f"{output}_", f"{short}_")
        renamed[prefix + stem.removeprefix("probabilities_")] = value
    return renamed


def train_head(model: keras.Model, splits, weights: np.ndarray, config: TrainConfig, history: list[dict]) -> None:
    """Phase 1: cache backbone features once, then fit the head on them (seconds per epoch)."""
    set_trainable(model, None)
    extractor = keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output)
    n_images = sum(len(splits[name].labels) for name in ("train", "val"))
    print(f"phase 1: caching backbone features of {n_images} images (one forward pass each)", flush=True)
    started = time.perf_counter()
    features = {name: extractor.predict(splits[name].images, batch_size=64, verbose=0) for name in ("train", "val")}
    print(f"phase 1: backbone features cached in {time.perf_counter() - started:.0f} s", flush=True)
    feature_input = keras.Input(features["train"].shape[1:])
    head_output = model.get_layer("probabilities")(
        model.get_layer(LOGITS_LAYER)(model.get_layer("dropout")(feature_input))
    )
    head = keras.Model(feature_input, head_output)
    head.compile(
        optimizer=keras.optimizers.Adam(config.head_learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    n_classes = model.outputs[0].shape[-1]
    head.fit(
        features["train"],
        keras.utils.to_categorical(splits["train"].labels, n_classes),
        sample_weight=weights[splits["train"].labels],
        validation_data=(features["val"], keras.utils.to_categorical(splits["val"].labels, n_classes)),
        epochs=config.head_epochs,
        batch_size=64,
        verbose=0,
        callbacks=[EpochLog("head", history)],
    )
    last = history[-1]
    print(f"phase 1: {config.head_epochs} epochs, val accuracy {last['val_accuracy']:.4f}", flush=True)


def fine_tune(
    model: keras.Model,
    splits,
    weights: np.ndarray,
    config: TrainConfig,
    history: list[dict],
    auxiliary: Auxiliary | None = None,
    saver: Callable[[WeightAverage], keras.callbacks.Callback] | None = None,
    resumed: Checkpoint | None = None,
    red_cells: np.ndarray | None = None,
) -> None:
    """Phase 2: unfreeze the upper backbone and train end to end on augmented images.

    With ``auxiliary`` targets (subtypes, attributes) training-only heads learn alongside the class head.
    ``saver`` makes the callback that checkpoints each epoch; ``resumed`` continues a stopped run's phase.
    ``red_cells``: red-cell-only images, trained towards no class (training.red_cells).
    """
    n_trainable = set_trainable(model, config.fine_tune_from)
    n_images = len(splits["train"].labels) + (len(red_cells) if red_cells is not None else 0)
    steps = -(-n_images // config.batch_size) * config.fine_tune_epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        config.fine_tune_learning_rate, decay_steps=steps, alpha=config.final_learning_rate_fraction
    )
    n_classes = model.outputs[0].shape[-1]
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    val_targets = keras.utils.to_categorical(splits["val"].labels, n_classes)
    validation_data = (splits["val"].images, val_targets)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    trained = model
    if auxiliary and auxiliary.heads():
        trained = with_auxiliary_heads(
            model,
            auxiliary.n_subtypes(),
            auxiliary.attribute_widths(),
            BACKBONES[config.backbone].attribute_features_layer,
        )
        losses, loss_weights = [loss], [1.0]
        if auxiliary.subtypes:
            losses.append(loss)
            loss_weights.append(config.subtype_loss_weight)
        if auxiliary.attributes:
            losses.append(grouped_cross_entropy(auxiliary.attribute_widths()))
            loss_weights.append(config.attribute_loss_weight)
        trained.compile(
            optimizer=optimizer,
            loss=losses,
            loss_weights=loss_weights,
            metrics=[["accuracy"]] + [[]] * (len(losses) - 1),
        )
        val = auxiliary.heads("val")
        validation_data = (
            splits["val"].images,
            (val_targets, *(targets.one_hot() for targets in val)),
            (np.ones(len(val_targets), np.float32), *(targets.known() for targets in val)),
        )
    else:
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    print(f"phase 2: fine-tuning {n_trainable} layers from {config.fine_tune_from}", flush=True)
    averager = WeightAverage(config.fine_tune_epochs, config.average_last_epochs)
    sample_weights = weights[splits["train"].labels].astype(np.float32)
    dataset = training_dataset(
        splits["train"], n_classes, config, sample_weights, auxiliary.heads("train") if auxiliary else (), red_cells
    )
    first_epoch = 0
    if resumed is not None and resumed.state.fine_tune_epochs_done > 0:
        resumed.restore("model/", trained.variables)
        restore_optimizer(optimizer, trained, resumed)
        averager.sums, averager.count = resumed.arrays_under("average/"), resumed.state.averaged_epochs
        first_epoch = resumed.state.fine_tune_epochs_done
        skip_epochs(dataset, first_epoch)
        print(f"phase 2: resuming after epoch {first_epoch}/{config.fine_tune_epochs}", flush=True)
    callbacks = [EpochLog("fine_tune", history, config.fine_tune_epochs), averager]
    trained.fit(
        dataset,
        validation_data=validation_data,
        validation_batch_size=64,
        initial_epoch=first_epoch,
        epochs=config.fine_tune_epochs,
        verbose=2,
        callbacks=callbacks + ([saver(averager)] if saver else []),
    )
    if averager.count:
        trained.set_weights(averager.average())
        print(f"phase 2: kept the average of the weights after the last {averager.count} epochs", flush=True)


@dataclasses.dataclass
class Auxiliary:
    """Targets of the training-only heads, train and val each: subtypes and attributes, either may be absent."""

    subtypes: dict[str, SubtypeTargets] | None = None
    attributes: dict[str, AttributeTargets] | None = None

    def heads(self, split: str = "train") -> list[AuxiliaryTargets]:
        """The split's targets in the order of :func:`with_auxiliary_heads`' outputs."""
        return [targets[split] for targets in (self.subtypes, self.attributes) if targets]

    def n_subtypes(self) -> int | None:
        return len(self.subtypes["train"].names) if self.subtypes else None

    def attribute_widths(self) -> list[int] | None:
        return [len(values) for values in ATTRIBUTES.values()] if self.attributes else None


class WeightAverage(keras.callbacks.Callback):
    """Running mean of the model's weights after each of the last ``last_epochs`` epochs."""

    def __init__(self, total_epochs: int, last_epochs: int) -> None:
        super().__init__()
        self.first = total_epochs - max(1, last_epochs)
        self.count = 0
        self.sums: list[np.ndarray] = []

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.first:
            return
        weights = self.model.get_weights()
        self.sums = [a + b for a, b in zip(self.sums, weights, strict=True)] if self.sums else weights
        self.count += 1

    def average(self) -> list[np.ndarray]:
        return [total / self.count for total in self.sums]


def backbone_card(config: TrainConfig) -> dict:
    """The card's account of the backbone: which network, its width, and where its starting weights came from."""
    if config.backbone == "mobilenet_v2":
        return {
            "architecture": "MobileNetV2",
            "alpha": config.alpha,
            "weights": Path(config.weights).name,
            "weights_origin": WEIGHTS_ORIGINS.get(config.weights, WEIGHTS_ORIGINS["file"]),
            "preprocessing_layer": "preprocess",
            "name": config.backbone,
        }
    variant = VARIANTS[variant_of(config.backbone)]
    origin = (
        WEIGHTS_ORIGINS["none"]
        if config.weights == "none"
        else f"ImageNet-pretrained (float), no top, converted by training.convert_backbone from the PyTorch state "
        f"dict in {variant.package} 0.1.0 (Apache-2.0; sha256 {variant.sha256})"
    )
    return {
        "architecture": BACKBONES[config.backbone].architecture,
        "alpha": variant.width,  # EfficientNet's width coefficient
        "weights": Path(config.weights).name if config.weights not in ("imagenet", "none") else config.weights,
        "weights_origin": origin,
        "native_input_size": variant.input_size,
        "preprocessing_layer": "preprocess",
        "preprocessing": "x / 255, minus ImageNet's mean (0.485, 0.456, 0.406), over its std (0.229, 0.224, 0.225)",
        "name": config.backbone,
    }


CHULA_MANIFEST = "manifest.csv"
CHULA_CREDIT = "WBC_Dataset (singgihbekti, Chulalongkorn University Faculty of Medicine), MIT license"


@dataclasses.dataclass(frozen=True)
class ChulaImage(LabelledImage):
    sequence: str = ""


def read_chula(folder: Path, classes: list[str]) -> list[ChulaImage]:
    """The Chula crops listed in ``folder``'s manifest (crop, class, sequence, split), in the model's classes.

    Consecutive video frames show the same cell, so the split must keep each sequence whole: a manifest where
    one sequence falls in two splits is refused (ValueError), as is one without train crops.
    """
    with (folder / CHULA_MANIFEST).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"crop", "class", "sequence", "split"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{CHULA_MANIFEST} lacks the columns {', '.join(sorted(missing))}")
    splits_of: dict[str, set[str]] = {}
    for row in rows:
        splits_of.setdefault(row["sequence"], set()).add(row["split"])
    mixed = sorted(sequence for sequence, splits in splits_of.items() if len(splits) > 1)
    if mixed:
        raise ValueError(f"sequences in more than one split (split by sequence, never by frame): {', '.join(mixed)}")
    unknown = sorted({row["class"] for row in rows} - set(classes))
    if unknown:
        print(f"note: --chula classes the model does not have, left out: {', '.join(unknown)}", flush=True)
    items = [
        ChulaImage(folder / row["crop"], row["class"], row["split"], sequence=row["sequence"])
        for row in rows
        if row["class"] in classes
    ]
    if not any(item.split == "train" for item in items):
        raise ValueError(f"{CHULA_MANIFEST} lists no train crops of the model's classes")
    return items


def copy_without_optimizer(model: keras.Model, config: TrainConfig, n_classes: int) -> keras.Model:
    clean = build_model(dataclasses.replace(config, weights="none"), n_classes)
    clean.set_weights(model.get_weights())
    set_trainable(clean, None)
    return clean


def calibrate_and_evaluate(
    classifier: Classifier,
    splits: dict[str, LabelledBatch],
    extra: dict[str, LabelledBatch] | None,
    extra_dir: Path | None,
    threshold_target_accuracy: float,
) -> tuple[dict, float]:
    """Set the card's temperature and uncertain threshold from validation images, then score every
    held-out split. Returns the evaluation and the share of validation images flagged uncertain."""
    card = classifier.card
    calibration = splits["val"] if extra is None else concatenate(splits["val"], extra["val"])
    # Calibrated on every validation image, the extra lab's included: the app serves both kinds.
    val_logits = classifier.logits(calibration.images)
    card.temperature = round(fit_temperature(val_logits, calibration.labels), 4)
    val_probabilities = softmax(val_logits, card.temperature)
    card.low_confidence_threshold = choose_confidence_threshold(
        val_probabilities, calibration.labels, threshold_target_accuracy
    )

    evaluation = {"datasets": {"pbc_val": evaluate_arrays(classifier, splits["val"].images, splits["val"].labels)}}
    if len(splits["test"].labels):
        evaluation["datasets"]["pbc_test"] = evaluate_arrays(classifier, splits["test"].images, splits["test"].labels)
    for name, split in (extra or {}).items():
        if name != "train" and len(split.labels):
            evaluation["datasets"][f"{extra_dir.name}_{name}"] = evaluate_arrays(classifier, split.images, split.labels)
    share_uncertain = float((val_probabilities.max(axis=1) < card.low_confidence_threshold).mean())
    return evaluation, round(share_uncertain, 4)


def write_card_and_evaluation(
    out: Path, card: ModelCard, classifier: Classifier, evaluation: dict, val_images: np.ndarray
) -> None:
    """Complete the card (metrics summary, measured throughput, date), then write it and the evaluation."""
    card.metrics = metrics_summary(evaluation)
    card.inference = {
        "batch_images_per_second": measure_throughput(classifier, val_images),
        "measured_on": machine_description(),
    }
    card.created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_json(out / paths.CARD_FILE, card.to_dict())
    write_json(out / paths.EVALUATION_FILE, evaluation)


def library_versions() -> dict[str, str]:
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()}


def measure_throughput(classifier: Classifier, images: np.ndarray, repeats: int = 3) -> float:
    """Images per second for batched classification, best of a few runs after a warm-up."""
    batch = images[:256]
    classifier.logits(batch[:64])
    best = min(_timed(lambda: classifier.logits(batch)) for _ in range(repeats))
    return round(len(batch) / best, 1)


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), no GPU used" if not tf.config.list_physical_devices("GPU") else cpu


def main(argv: list[str] | None = None) -> int:
    args, config = parse_args(argv)
    if not args.data.is_dir():
        print(f"error: data folder {args.data} does not exist", file=sys.stderr)
        return 2
    if config.weights not in ("imagenet", "none") and not Path(config.weights).is_file():
        print(f"error: weights file {config.weights} does not exist (or pass --weights imagenet)", file=sys.stderr)
        return 2
    if config.backbone != "mobilenet_v2":
        try:
            backbone_weights(config)
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    extra_dir = Path(config.extra_data) if config.extra_data else None
    if config.red_cells > 0 and (config.subtype_loss_weight > 0 or config.attribute_loss_weight > 0):
        # Refused before any work, not when phase 2 builds its batches half an hour later.
        print("error: --red-cells takes no subtype or attribute head (their loss weights must be 0)", file=sys.stderr)
        return 2
    if extra_dir is not None and not (extra_dir / "train").is_dir():
        print(f"error: --extra-data {extra_dir} has no train/ folder of class folders", file=sys.stderr)
        return 2
    chula_dir = Path(config.chula) if config.chula else None
    if chula_dir is not None and not (chula_dir / CHULA_MANIFEST).is_file():
        print(f"error: --chula {chula_dir} has no {CHULA_MANIFEST}", file=sys.stderr)
        return 2
    init_card = None
    if config.init_from:
        try:
            init_card = load_card(Path(config.init_from))
        except (OSError, ValueError) as error:
            print(f"error: --init-from {config.init_from}: {error}", file=sys.stderr)
            return 2
        differing = init_differences(init_card, config)
        if differing:
            # Refused before any work: the weights would not fit, and set_weights would say so only after the data.
            print(f"error: --init-from {config.init_from} is another network: {'; '.join(differing)}", file=sys.stderr)
            return 2
    checkpoint_path = args.out / CHECKPOINT_FILE
    sources = {"data": str(args.data), "extra_data": config.extra_data}
    resumed = None
    if args.resume and not checkpoint_path.is_file():
        print(f"note: --resume, but {checkpoint_path} does not exist: starting from the beginning", flush=True)
    elif args.resume:
        resumed = load_checkpoint(checkpoint_path)
        differences = config_differences(resumed.state.config, config)
        if resumed.state.sources != sources:
            differences.append(f"data: {resumed.state.sources} -> {sources}")
        if differences:
            print(f"error: {checkpoint_path} is from a run with other options: " + "; ".join(differences),
                  file=sys.stderr)  # fmt: skip
            return 2
    elif checkpoint_path.is_file():
        print(f"note: {checkpoint_path} from a stopped run will be replaced (--resume continues it)", flush=True)
    started = time.perf_counter() - (resumed.state.seconds if resumed else 0.0)
    keras.utils.set_random_seed(config.seed)

    images, split_source = find_images(args.data, config.seed)
    classes = sorted({item.label for item in images})
    if init_card is not None and init_card.classes != classes:
        print(f"error: --init-from {config.init_from} has the classes {init_card.classes}, the data {classes}",
              file=sys.stderr)  # fmt: skip
        return 2
    splits = load_splits(images, classes, config.image_size)
    if len(splits["train"].labels) == 0 or len(splits["val"].labels) == 0:
        print("error: the train and val splits both need images", file=sys.stderr)
        return 2

    extra = load_split_folders(extra_dir, classes, config.image_size) if extra_dir else None
    # Training sees the extra lab's train images; Keras' per-epoch validation stays on the main val split.
    fit_splits = splits
    if extra is not None:
        print(f"extra data {extra_dir}: " + ", ".join(f"{k} {len(v.labels)}" for k, v in extra.items()), flush=True)
        fit_splits = {**splits, "train": concatenate(splits["train"], extra["train"], config.extra_repeat)}
    chula = None
    if chula_dir is not None:
        try:
            chula_items = read_chula(chula_dir, classes)
        except ValueError as error:
            print(f"error: --chula: {error}", file=sys.stderr)
            return 2
        chula = {name: load_split([i for i in chula_items if i.split == name], classes, config.image_size)
                 for name in ("train", "test")}  # fmt: skip
        print(f"chula {chula_dir}: " + ", ".join(f"{k} {len(v.labels)}" for k, v in chula.items()), flush=True)
        fit_splits = {**fit_splits, "train": concatenate(fit_splits["train"], chula["train"], config.chula_repeat)}

    auxiliary = Auxiliary(
        subtype_targets(images, fit_splits) if config.subtype_loss_weight > 0 else None,
        attribute_targets(args.data, fit_splits) if config.attribute_loss_weight > 0 else None,
    )
    red_cells = None
    if config.red_cells > 0:
        red_cells = red_cell_views(splits["train"].images, config.red_cells, config.seed)
        print(f"red cells alone: {len(red_cells)} views of {config.red_cells} PBC train images tried", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    state = resumed.state if resumed else RunState(dataclasses.asdict(config), sources)
    history = state.history
    with distribution_strategy(args.distribute, args.cpu_devices).scope():
        model = fit_model(config, classes, fit_splits, auxiliary, state, resumed, checkpoint_path, started, red_cells)
    model.save(args.out / paths.MODEL_FILE)

    card = ModelCard(
        classes=classes,
        input_size=config.image_size,
        gradcam_layer=BACKBONES[config.backbone].gradcam_layer,
        logits_layer=LOGITS_LAYER,
        white_cell_classes=[name for name in classes if name in WHITE_CELL_CLASSES],
    )
    classifier = Classifier(model, card)
    evaluation, share_uncertain = calibrate_and_evaluate(
        classifier, splits, extra, extra_dir, config.threshold_target_accuracy
    )
    if chula is not None and len(chula["test"].labels):
        evaluation["datasets"]["chula_test"] = evaluate_arrays(classifier, chula["test"].images, chula["test"].labels)
    wall = time.perf_counter() - started

    card.backbone = backbone_card(config)
    credit = dataset_credit(args.data)
    if not credit:
        print(f"note: {args.data} has no {CREDIT_FILE}, so the model card names no data credit", flush=True)
    card.data = {
        "source": str(args.data),
        "split": split_source,
        "class_counts": class_counts_by_split(images),
        "credit": credit,
    }
    if extra is not None:
        card.data["extra"] = {
            "source": str(extra_dir),
            "credit": dataset_credit(extra_dir),
            "counts": {name: len(split.labels) for name, split in extra.items()},
            "train_repeat": config.extra_repeat,
            "crops": crops_info(extra_dir),
        }
    if chula is not None:
        card.data["chula"] = {
            "source": str(chula_dir),
            "credit": CHULA_CREDIT,
            "counts": {name: len(split.labels) for name, split in chula.items()},
            "sequences": {name: len({i.sequence for i in chula_items if i.split == name}) for name in chula},
            "train_repeat": config.chula_repeat,
            "split": f"{CHULA_MANIFEST}'s split column, by whole sequences",
        }
    card.training = {
        "config": dataclasses.asdict(config),
        "command": "python -m training.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "wall_time_minutes": round(wall / 60, 1),
        "machine": machine_description(),
        "versions": library_versions(),
        "threshold_rule": f"lowest confidence above which validation accuracy >= {config.threshold_target_accuracy}",
        "validation_share_flagged_uncertain": share_uncertain,
    }
    if init_card is not None:
        card.training["init_from"] = {
            "model": config.init_from,
            "command": init_card.training.get("command", ""),
            "wall_time_minutes": init_card.training.get("wall_time_minutes"),
        }
    if auxiliary.subtypes:
        card.training["subtypes"] = auxiliary.subtypes["train"].names
    write_card_and_evaluation(args.out, card, classifier, evaluation, splits["val"].images)
    write_history(args.out / paths.HISTORY_FILE, history)
    checkpoint_path.unlink()
    litert = export_and_check(args.out, args.data, "python -m training.export (run by training.train)")
    print(f"exported for LiteRT: largest probability difference {litert['max_probability_difference']:.1e}")
    print(
        f"done in {wall / 60:.1f} min: temperature {card.temperature}, threshold {card.low_confidence_threshold}; "
        f"{validation_summary(card.metrics)}; held-out test scores in {args.out / paths.EVALUATION_FILE}"
    )
    return 0


def fit_model(
    config: TrainConfig,
    classes: list[str],
    fit_splits: dict[str, LabelledBatch],
    auxiliary: Auxiliary,
    state: RunState,
    resumed,
    checkpoint_path: Path,
    started: float,
    red_cells: np.ndarray | None = None,
) -> keras.Model:
    """Both phases (or what a resumed run has left of them); returns the model without its optimizer."""
    # With --init-from the ImageNet weights would only be overwritten.
    model = build_model(dataclasses.replace(config, weights="none") if config.init_from else config, len(classes))
    weights = class_weights(fit_splits["train"].labels, len(classes), config.class_weight_power)
    if resumed is None and config.init_from:
        start_from(model, Path(config.init_from))
        state.seconds = time.perf_counter() - started
        save_checkpoint(checkpoint_path, state, model)
    elif resumed is None:
        train_head(model, fit_splits, weights, config, state.history)
        state.seconds = time.perf_counter() - started
        save_checkpoint(checkpoint_path, state, model)
    elif resumed.state.fine_tune_epochs_done == 0:
        resumed.restore("model/", model.variables)
        print("phase 1: restored from the checkpoint", flush=True)
    if config.fine_tune_epochs > 0:

        def saver(averager: WeightAverage) -> keras.callbacks.Callback:
            return SaveEachEpoch(checkpoint_path, state, averager, lambda: time.perf_counter() - started)

        fine_tune(model, fit_splits, weights, config, state.history, auxiliary, saver, resumed, red_cells)
    # Saved from an uncompiled copy: the optimizer's moment estimates would more than double the file.
    return copy_without_optimizer(model, config, len(classes))


def init_differences(card: ModelCard, config: TrainConfig) -> list[str]:
    """How an earlier run's network differs from the one this config builds (backbone, width, input size)."""
    earlier, ours = card.backbone or {}, backbone_card(config)
    pairs = {key: (earlier.get(key), ours[key]) for key in ("architecture", "alpha")}
    pairs["input size"] = card.input_size, config.image_size
    return [f"{key} {old} here {new}" for key, (old, new) in pairs.items() if old != new]


def start_from(model: keras.Model, folder: Path) -> None:
    """Phase 1's place for --init-from: the earlier run's weights, layer by layer (ValueError if they differ)."""
    earlier = keras.models.load_model(folder / paths.MODEL_FILE, compile=False)
    model.set_weights(earlier.get_weights())
    print(f"phase 1: skipped, starting from {folder / paths.MODEL_FILE}", flush=True)


def distribution_strategy(distribute: bool, cpu_devices: int) -> tf.distribute.Strategy:
    """MirroredStrategy over the local GPUs (or logical CPUs) with --distribute, else the default (no change).

    Several machines: tf.distribute.MultiWorkerMirroredStrategy with TF_CONFIG set on each worker runs
    this same code (README.md); not tried here, where only single machines were available.
    """
    if cpu_devices > 1:
        physical = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(physical, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    if not distribute:
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [device.name for device in gpus or tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    print(f"--distribute: {strategy.num_replicas_in_sync} replicas ({', '.join(devices)})", flush=True)
    return strategy


def validation_summary(metrics: dict) -> str:
    """The validation figures only: a run is judged on these, and its test score is better read after the verdict."""
    return ", ".join(f"{key} {value}" for key, value in metrics.items() if key.endswith("val_accuracy"))


def subtype_targets(images: list[LabelledImage], splits: dict[str, LabelledBatch]) -> dict[str, SubtypeTargets] | None:
    """Train and val subtype targets from the manifest, or None (with a note) where the data names no subtypes."""
    names = sorted({image.subtype for image in images if image.subtype and image.split == "train"})
    if not names:
        print("note: the data names no subtypes, so --subtype-loss-weight has no effect", flush=True)
        return None
    subtype_by_path = {image.path: image.subtype for image in images}
    print(f"phase 2: subtype head over {len(names)} subtypes: {', '.join(names)}", flush=True)
    return {name: SubtypeTargets.of(splits[name], subtype_by_path, names) for name in ("train", "val")}


def attribute_targets(data: Path, splits: dict[str, LabelledBatch]) -> dict[str, AttributeTargets] | None:
    """Train and val attribute targets from the manifest, or None (with a note) where it holds no attributes."""
    manifest = find_manifest(data)
    rows = read_attribute_rows(manifest, ATTRIBUTES) if manifest else []
    attributes_by_path = {row.path: row.attributes for row in rows if all(row.attributes.values())}
    if not attributes_by_path:
        print("note: the data holds no WBCAtt attributes, so --attribute-loss-weight has no effect", flush=True)
        return None
    targets = {name: AttributeTargets.of(splits[name], attributes_by_path) for name in ("train", "val")}
    counts = ", ".join(f"{name} {int(t.known().sum())}" for name, t in targets.items())
    print(f"phase 2: attribute head over {len(ATTRIBUTES)} attributes ({counts} annotated cells)", flush=True)
    return targets


def write_history(path: Path, rows: list[dict]) -> None:
    columns = sorted({key for row in rows for key in row}, key=lambda k: (k not in ("phase", "epoch"), k))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    raise SystemExit(main())
