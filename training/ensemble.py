"""Average models trained with the same recipe and different seeds into one artifact folder.

    python -m training.ensemble --members runs/seed1337 runs/seed2 --data ../shared/data --out models

Seed-to-seed spread is as large as any recipe change measured here (docs/experiments.md), and the validation
split cannot tell such models apart, so the shipped model averages seeds instead of picking one. The result
is still one flat Keras graph that the library loads like any other: the members' backbones side by side on
the shared input, their last activation maps concatenated into a layer named like a single model's
Grad-CAM layer, and one dense layer whose logits are exactly the mean of the members' logits. Then the
temperature and uncertain threshold are refitted on validation images and every held-out split is scored,
as `training.train` does. The not-a-blood-cell check is fitted afterwards by `training.novelty` on one
member's layer (`--layer member0_block_13_expand_relu`): it asks whether an image is a blood cell at all,
which any one member answers.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from hematovision.core import paths
from hematovision.core.artifacts import ArtifactError, ModelCard, load_card, load_history
from hematovision.core.predict import Classifier
from training.config import TrainConfig
from training.data import find_images, load_split_folders, load_splits
from training.model import FEATURES_LAYER, GRADCAM_LAYER, LOGITS_LAYER, STAIN_DENSITY_LAYER, preprocessed_input
from training.train import (
    calibrate_and_evaluate,
    library_versions,
    machine_description,
    validation_summary,
    write_card_and_evaluation,
    write_history,
)


def average_models(members: list[keras.Model], alpha: float, image_size: int) -> keras.Model:
    """One flat model whose logits are the mean of the members' logits (all MobileNetV2 of one width)."""
    targets = {member_density_target(member) for member in members}
    if len(targets) != 1:
        raise ValueError(f"the members set each image's stain density differently ({sorted(targets)})")
    image, scaled = preprocessed_input(image_size, targets.pop())
    last_maps = []
    for index, member in enumerate(members):
        backbone = keras.applications.MobileNetV2(
            input_shape=(image_size, image_size, 3), input_tensor=scaled, alpha=alpha, include_top=False, weights=None
        )
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.InputLayer) or layer.name in ("preprocess", STAIN_DENSITY_LAYER):
                continue
            layer.set_weights(member.get_layer(layer.name).get_weights())
            if layer.name == GRADCAM_LAYER:
                last_maps.append(layer.output)
            # Renamed after its weights are copied: names must be unique in one model.
            layer.name = f"member{index}_{layer.name}"
    # Named like a single model's Grad-CAM layer, so the card means the same thing. Grad-CAM on the
    # concatenation is the mean of the members' class activation maps (before the ReLU), because the
    # averaged logits weight each member's gradients by 1/N.
    joined = keras.layers.Concatenate(name=GRADCAM_LAYER)(last_maps)
    features = keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(joined)
    n_classes = members[0].get_layer(LOGITS_LAYER).units
    dense = keras.layers.Dense(n_classes, name=LOGITS_LAYER)
    logits = dense(features)
    kernels, biases = zip(*(member.get_layer(LOGITS_LAYER).get_weights() for member in members), strict=True)
    dense.set_weights([np.concatenate(kernels) / len(members), np.mean(biases, axis=0)])
    probabilities = keras.layers.Activation("softmax", name="probabilities")(logits)
    return keras.Model(image, probabilities, name=f"hematovision_mobilenetv2_{alpha:g}_x{len(members)}")


def member_density_target(member: keras.Model) -> float:
    """The stain density a member's StainDensity layer sets (``train --density-target``; 0 without one)."""
    layers = [layer for layer in member.layers if layer.name == STAIN_DENSITY_LAYER]
    return float(layers[0].target) if layers else 0.0


def member_summary(folder: Path, card: ModelCard) -> dict:
    return {
        "folder": str(folder),
        "seed": card.training.get("config", {}).get("seed"),
        "command": card.training.get("command", ""),
        "wall_time_minutes": card.training.get("wall_time_minutes"),
        "val_accuracy": card.metrics.get("val_accuracy"),
    }


def check_members(cards: list[ModelCard]) -> str | None:
    """Why these members cannot be averaged, or None when they can."""
    first = cards[0]
    for card in cards[1:]:
        if card.classes != first.classes or card.input_size != first.input_size:
            return "the members differ in classes or input size"
        if card.backbone.get("alpha") != first.backbone.get("alpha") or card.backbone.get("members"):
            return "every member must be a single MobileNetV2 of the same width"
        # A class-folder dataset is split by seed: members of different splits have seen each other's
        # validation and test images, so their average could not be scored honestly.
        if card.data.get("split") != first.data.get("split"):
            return (
                f"the members were trained on different splits ({first.data.get('split')} / {card.data.get('split')})"
            )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ensemble", description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=Path, nargs="+", required=True, help="artifact folders from training.train")
    parser.add_argument("--data", type=Path, default=paths.SHARED_DATA_DIR, help="the data the members trained on")
    parser.add_argument(
        "--extra-data", type=Path, default=None, help="the members' --extra-data folder (default: the one they name)"
    )
    parser.add_argument("--out", type=Path, default=paths.SHIPPED_MODEL_DIR, help="artifact folder to write")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if len(args.members) < 2:
        print("error: --members needs at least two artifact folders", file=sys.stderr)
        return 2
    try:
        cards = [load_card(folder) for folder in args.members]
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if (problem := check_members(cards)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not args.data.is_dir():
        print(f"error: data folder {args.data} does not exist", file=sys.stderr)
        return 2
    config = TrainConfig(**cards[0].training["config"])
    extra_dir = args.extra_data or (Path(config.extra_data) if config.extra_data else None)
    if extra_dir is not None and not (extra_dir / "val").is_dir():
        print(f"error: extra data {extra_dir} has no val/ folder", file=sys.stderr)
        return 2

    members = [keras.saving.load_model(folder / paths.MODEL_FILE, compile=False) for folder in args.members]
    model = average_models(members, config.alpha, config.image_size)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / paths.MODEL_FILE)

    images, split_source = find_images(args.data, config.seed)
    splits = load_splits(images, cards[0].classes, config.image_size)
    extra = load_split_folders(extra_dir, cards[0].classes, config.image_size) if extra_dir else None
    card = ModelCard(
        classes=cards[0].classes,
        input_size=config.image_size,
        gradcam_layer=GRADCAM_LAYER,
        logits_layer=LOGITS_LAYER,
        white_cell_classes=cards[0].white_cell_classes,
    )
    classifier = Classifier(model, card)
    evaluation, share_uncertain = calibrate_and_evaluate(
        classifier, splits, extra, extra_dir, config.threshold_target_accuracy
    )
    summaries = [member_summary(folder, member) for folder, member in zip(args.members, cards, strict=True)]
    wall = time.perf_counter() - started

    card.backbone = {
        **cards[0].backbone,
        "members": len(members),
        "combination": "mean of the members' logits: one dense layer over their concatenated pooled features",
    }
    card.data = {**cards[0].data, "split": split_source}
    card.training = {
        "config": dataclasses.asdict(config),
        "members": summaries,
        "command": "python -m training.ensemble " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        # The recipe's whole cost: every member trained one after another, then this step.
        "wall_time_minutes": round(sum(s["wall_time_minutes"] or 0 for s in summaries) + wall / 60, 1),
        "ensemble_minutes": round(wall / 60, 1),
        "machine": machine_description(),
        "versions": library_versions(),
        "threshold_rule": cards[0].training.get("threshold_rule", ""),
        "validation_share_flagged_uncertain": share_uncertain,
    }
    write_card_and_evaluation(args.out, card, classifier, evaluation, splits["val"].images)
    history = [
        {**row, "epoch": int(row["epoch"]), "member": f"seed {summary['seed']}"}
        for folder, summary in zip(args.members, summaries, strict=True)
        for row in load_history(folder)
    ]
    write_history(args.out / paths.HISTORY_FILE, history)
    print(
        f"done in {wall / 60:.1f} min ({len(members)} members): temperature {card.temperature}, "
        f"threshold {card.low_confidence_threshold}; {validation_summary(card.metrics)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
