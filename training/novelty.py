"""Fit and measure how the model judges its inputs, and add it to an artifact folder.

    python -m training.novelty --model models --data ../shared/data

Three things, all from the pooled activations of one layer (hematovision.heads.novelty.DomainCheck):

- *not a blood-cell image*: a logistic regression, fitted with PBC training cells, the same cells
  changed the way other labs' images differ (stain, camera, magnification: the training augmentation,
  turned up, and never narrower than the network's own training views), the BCCD training crops and Chula's
  train sequences as blood cells (each framed as the app frames it), and generated non-blood images (seed 0)
  plus views of scikit-image's sample photographs and micrographs (``training.photo_crops.FIT_SOURCES``) as
  the rest. Its threshold lies midway (in log-odds) between the highest that flags at most 2% of each held-out
  blood set (PBC val, BCCD val crops, changed PBC val, and PBC val under each simulated lab change of
  ``training.robustness``) and the lowest that flags 99% of generated non-blood images of seed 1 and of views
  of Debian's ``mate-backgrounds`` photographs: "not a blood-cell image" is kept for what is not one.
- *unfamiliar set-up*: squared Mahalanobis distance to the nearest class centre (PBC train by class,
  BCCD train crops as one group), flagged above a threshold set on PBC val and BCCD val crops.
- a softmax temperature that grows with that distance, its slope fitted on the same validation sets and
  Chula's train sequences.

Then it measures all of it on data that chose nothing: the PBC test split, the BCCD test crops, Chula's
test sequences (flag rates, and accuracy and ECE as the app would show them), every
simulated lab change of ``training.robustness`` applied to the PBC test split, generated non-blood
images of two other seeds, and views of photographs the check never saw
(``training.photo_crops.HELD_OUT_SOURCES``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from hematovision.core import paths
from hematovision.core.artifacts import load_evaluation, write_json
from hematovision.core.datasets import CHULA_MANIFEST_NAME, read_manifest
from hematovision.core.framing import framed_model_input
from hematovision.core.imaging import ImageLoadError, decode_image, to_model_input
from hematovision.core.predict import Classifier
from hematovision.heads.metrics import expected_calibration_error
from hematovision.heads.novelty import (
    NOVELTY_FILE,
    DomainCheck,
    fit_blood_check,
    fit_novelty,
    fit_temperature_slope,
    threshold_at,
)
from training.bccd import labelled_crops, read_photos
from training.config import TrainConfig
from training.data import augment, load_split
from training.export import export_and_check
from training.ood_images import OodImage, non_blood_images
from training.photo_crops import DEBIAN_BACKGROUNDS_DIR, FIT_SOURCES, HELD_OUT_SOURCES, debian_backgrounds, views
from training.robustness import CONDITIONS

#: A 14x14 block of the fine-tuned backbone: its pooled activations separate non-blood images from
#: blood cells far better than the pooled penultimate features, which the label-smoothed head squeezes
#: down to what tells the classes apart (docs/experiments.md).
DEFAULT_LAYER = "block_13_expand_relu"
#: Held-out in-domain shares the unfamiliar threshold may flag.
PBC_VAL_UNFAMILIAR = 0.005
BCCD_VAL_UNFAMILIAR = 0.025
#: Largest share of any held-out blood set that the not-a-blood-cell threshold may flag (half the 5% target).
BLOOD_VAL_FLAGGED = 0.02
#: Smallest share of each non-blood set that places the threshold's non-blood side.
NON_BLOOD_FLAGGED = 0.99
#: The temperature starts to grow at this quantile of PBC validation distances.
REFERENCE_QUANTILE = 0.99
#: Other labs, imitated: the training augmentation with every lab-dependent range turned up.
LAB_CHANGE = TrainConfig(
    zoom=0.25, zoom_out=0.45, brightness=0.15, contrast=0.3, saturation=0.4, hue=0.1, blur=2.5, stain=0.3,
    degrade=0.7, degrade_scale=0.3,
)  # fmt: skip
#: Ranges that widen as they grow, and those that widen as they shrink (the smallest camera scale, the
#: faintest other-lab dye).
WIDER_WHEN_LARGER = (
    "zoom", "zoom_out", "shift", "brightness", "contrast", "saturation", "hue", "blur", "stain", "degrade",
    "other_lab", "other_lab_light", "other_lab_tint",
)  # fmt: skip
WIDER_WHEN_SMALLER = ("degrade_scale", "other_lab_dye")
PHOTO_VIEWS_PER_SOURCE = 40
MEASURE_SEEDS = (2, 3)


def lab_change_for(trained: dict) -> TrainConfig:
    """LAB_CHANGE, widened to cover the views the network itself trained on (its card's training config).

    The blood side of the not-a-blood-cell check must hold every cell the network learnt to read: a network
    trained with blur up to 3.0 and other labs' colours on half its views (run 35 in docs/experiments.md) puts
    such cells where a fixed, narrower LAB_CHANGE has no positives, and the check then refused 5.7% of BCCD's
    cells as not blood (4.3% once widened)."""
    widened = {name: max(getattr(LAB_CHANGE, name), trained.get(name, 0.0)) for name in WIDER_WHEN_LARGER}
    for name in WIDER_WHEN_SMALLER:
        narrowest = getattr(LAB_CHANGE, name)
        widened[name] = min(narrowest, trained.get(name, narrowest))
    return dataclasses.replace(LAB_CHANGE, **widened)


def lab_changed(images: np.ndarray, seed: int, change: TrainConfig) -> np.ndarray:
    """One view of each image through ``change`` (seeded, so the same views every run)."""
    view = tf.function(lambda image, key: augment(image, key, change))
    return np.stack(
        [
            view(tf.constant(image), tf.constant([seed, i], tf.int64)).numpy().astype(np.uint8)
            for i, image in enumerate(images)
        ]
    )


class FeatureCache:
    """Features and logits by name, computed once and, with a path, kept on disk between runs."""

    def __init__(self, path: Path | None, network) -> None:
        self.path = path
        self.network = network
        self.stored: dict[str, np.ndarray] = {}
        if path is not None and path.is_file():
            with np.load(path) as stored:
                self.stored = dict(stored)

    def __call__(self, name: str, images) -> tuple[np.ndarray, np.ndarray]:
        if f"{name}/features" not in self.stored:
            features, logits = self.network(images())
            self.stored |= {f"{name}/features": features, f"{name}/logits": logits}
            if self.path is not None:
                np.savez(self.path, **self.stored)
        return self.stored[f"{name}/features"], self.stored[f"{name}/logits"]


def model_inputs(images: list[OodImage], size: int) -> np.ndarray:
    return np.stack([to_model_input(image.rgb, size) for image in images])


def flag_rates(check: DomainCheck, features: np.ndarray) -> dict[str, float]:
    not_blood = check.blood.flags(features)
    unfamiliar = ~not_blood & check.distance.flags(features)
    return {"not_blood": float(not_blood.mean()), "unfamiliar": float(unfamiliar.mean()), "n": len(features)}


def by_category(check: DomainCheck, images: list[OodImage], features: np.ndarray) -> dict[str, dict]:
    flagged: dict[str, list[bool]] = defaultdict(list)
    for image, flag in zip(images, check.blood.flags(features), strict=True):
        flagged[image.category].append(bool(flag))
    return {name: {"not_blood": round(float(np.mean(v)), 4), "n": len(v)} for name, v in sorted(flagged.items())}


def chula_inputs(data: Path, size: int, classes: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Chula's crops by split, framed as the app frames an upload, with their labels (unreadable crops left out)."""
    manifest = data / "chula" / CHULA_MANIFEST_NAME
    index = {name: i for i, name in enumerate(classes)}
    by_split: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for item in read_manifest(manifest):
        try:
            rgb = decode_image(item.path).rgb
        except ImageLoadError:
            continue
        images, labels = by_split[item.split]
        images.append(framed_model_input(rgb, size))
        labels.append(index[item.label])
    return {split: (np.stack(images), np.array(labels)) for split, (images, labels) in by_split.items()}


def gap_threshold(blood: list[np.ndarray], non_blood: list[np.ndarray]) -> tuple[float, float, float]:
    """The not-a-blood-cell threshold midway (in log-odds) between the blood side and the non-blood side.

    The blood side is the highest threshold that flags at most BLOOD_VAL_FLAGGED of every held-out blood set;
    the non-blood side the lowest that still flags NON_BLOOD_FLAGGED of every non-blood set. Midway, a cell
    from a lab unlike every set here has the most room before it is refused. Where the two sides overlap the
    blood side stays: refusing a real cell is the worse mistake. Returns (threshold, blood side, non-blood side).
    """
    blood_side = min(float(np.quantile(p, BLOOD_VAL_FLAGGED)) for p in blood)
    non_blood_side = max(float(np.quantile(p, NON_BLOOD_FLAGGED)) for p in non_blood)
    if non_blood_side >= blood_side:
        return blood_side, blood_side, non_blood_side

    def logit(p: float) -> float:
        p = min(max(p, 1e-12), 1 - 1e-12)
        return float(np.log(p / (1 - p)))

    midway = (logit(blood_side) + logit(non_blood_side)) / 2
    return float(1 / (1 + np.exp(-midway))), blood_side, non_blood_side


def calibration_report(
    judge: Classifier, features: np.ndarray, logits: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """Accuracy, ECE and the flag rates of labelled blood cells, as the app would judge them."""
    judged = judge.judge(features, logits)
    predicted = judged.probabilities.argmax(axis=1)
    return {
        "accuracy": round(float((predicted == labels).mean()), 4),
        "ece": round(expected_calibration_error(judged.probabilities, labels), 4),
        "not_blood": round(float(judged.not_blood.mean()), 4),
        "unfamiliar": round(float(judged.unfamiliar.mean()), 4),
        "n": len(labels),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.novelty", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR, help="artifact folder to add it to")
    parser.add_argument(
        "--data", type=Path, default=paths.SHARED_DATA_DIR, help="folder with pbc_manifest.csv, bccd/ and chula/"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the BCCD photo split")
    parser.add_argument(
        "--layer",
        default=DEFAULT_LAYER,
        help="layer whose activations, averaged over space, are measured (default: %(default)s)",
    )
    parser.add_argument(
        "--features-cache",
        type=Path,
        help="keep every image's features and logits in this .npz and read them back on the next run (the "
        "network's pass over ~20,000 images is most of the time); delete it when the model changes",
    )
    args = parser.parse_args(argv)
    manifest = args.data / "pbc_manifest.csv"
    if not manifest.is_file() or not (args.data / "bccd").is_dir() or not (args.data / "chula").is_dir():
        print(f"error: {args.data} needs pbc_manifest.csv, bccd/ and chula/", file=sys.stderr)
        return 2
    backgrounds = debian_backgrounds()
    if not backgrounds:
        print(
            f"error: no pictures under {DEBIAN_BACKGROUNDS_DIR}: apt-get install mate-backgrounds (they place "
            "the not-a-blood-cell threshold's non-blood side)",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    # Keras, not the export: the export carries the features layer the checks used before.
    loaded = Classifier.load(args.model, runtime="keras")
    card = loaded.card
    card.features_layer = args.layer
    classifier = Classifier(loaded.model, card)
    size = card.input_size
    cache = FeatureCache(args.features_cache, classifier.features_and_logits)

    items = read_manifest(manifest)
    index = {name: i for i, name in enumerate(classifier.classes)}
    pbc_items = {split: [i for i in items if i.split == split] for split in ("train", "val", "test")}
    pbc_labels = {split: np.array([index[i.label] for i in rows]) for split, rows in pbc_items.items()}

    @functools.cache
    def pbc_images(split: str) -> np.ndarray:
        """Decoded only where the cache lacks a set's features: most of a cached run's time otherwise."""
        batch = load_split(pbc_items[split], classifier.classes, size)
        if len(batch.labels) != len(pbc_labels[split]):
            raise SystemExit(f"error: unreadable PBC {split} images (listed above): the labels no longer line up")
        return batch.images

    pbc_out = {split: cache(f"pbc_{split}", lambda split=split: pbc_images(split)) for split in pbc_items}
    crops = labelled_crops(read_photos(args.data / "bccd", seed=args.seed))
    # Framed as the app frames an uploaded crop: the check must judge the cells the app will show it.
    bccd_out = {
        split: cache(
            f"bccd_{split}",
            lambda split=split: np.stack([framed_model_input(c.rgb, size) for c in crops if c.split == split]),
        )
        for split in ("train", "val", "test")
    }
    bccd_labels = {split: np.array([index[c.label] for c in crops if c.split == split]) for split in bccd_out}
    chula = chula_inputs(args.data, size, classifier.classes)
    chula_out = {split: cache(f"chula_{split}", lambda images=images: images) for split, (images, _) in chula.items()}
    rng = np.random.default_rng(args.seed)
    changed_train_pick = rng.choice(len(pbc_labels["train"]), 3000, replace=False)
    lab_change = lab_change_for(card.training.get("config", {}))
    changed_train = cache(
        "pbc_train_lab_changed",
        lambda: lab_changed(pbc_images("train")[changed_train_pick], seed=1, change=lab_change),
    )[0]
    changed_val = cache("pbc_val_lab_changed", lambda: lab_changed(pbc_images("val"), seed=2, change=lab_change))
    print(f"blood-cell features ready in {time.perf_counter() - started:.0f} s", flush=True)

    fit_negatives = non_blood_images(seed=0) + views(FIT_SOURCES, PHOTO_VIEWS_PER_SOURCE, seed=0)
    threshold_negatives = {
        "generated_seed_1": non_blood_images(seed=1),
        "debian_backgrounds": views(backgrounds, PHOTO_VIEWS_PER_SOURCE, seed=1),
    }
    measure_generated = [image for seed in MEASURE_SEEDS for image in non_blood_images(seed=seed)]
    measure_photos = views(HELD_OUT_SOURCES, PHOTO_VIEWS_PER_SOURCE, seed=MEASURE_SEEDS[0])
    negative_features = {
        name: cache(f"non_blood_{name}", lambda images=images: model_inputs(images, size))[0]
        for name, images in (
            ("fit", fit_negatives),
            *threshold_negatives.items(),
            ("generated", measure_generated),
            ("photos", measure_photos),
        )
    }

    groups = {name: pbc_out["train"][0][pbc_labels["train"] == i] for i, name in enumerate(classifier.classes)}
    groups["bccd_crops"] = bccd_out["train"][0]
    distance = fit_novelty(groups)
    unfamiliar_threshold = max(
        threshold_at(distance.distances(pbc_out["val"][0]), PBC_VAL_UNFAMILIAR),
        threshold_at(distance.distances(bccd_out["val"][0]), BCCD_VAL_UNFAMILIAR),
    )
    distance = distance.with_threshold(unfamiliar_threshold)

    # Chula's train sequences teach the check what a low-magnification video cell looks like; with them only on
    # the threshold's side, views of everyday photographs passed as blood (docs/experiments.md, 2026-12-06).
    positives = np.concatenate([pbc_out["train"][0], changed_train, bccd_out["train"][0], chula_out["train"][0]])
    blood = fit_blood_check(positives, negative_features["fit"])
    # Each simulated lab change on PBC val is a held-out blood set of its own: the target holds for every
    # change, and one change (a cell at 0.6 of its size) is refused far more often than the mixed views above.
    val_conditions = {
        condition.name: cache(
            f"pbc_val_{condition.name}", lambda condition=condition: condition.transform(pbc_images("val"))
        )[0]
        for condition in CONDITIONS
    }
    held_out_blood = {
        "pbc_val": pbc_out["val"][0],
        "bccd_crops_val": bccd_out["val"][0],
        "pbc_val_lab_changed": changed_val[0],
        **{f"pbc_val {name}": f for name, f in val_conditions.items()},
    }
    blood_threshold, blood_side, non_blood_side = gap_threshold(
        [blood.probabilities(f) for f in held_out_blood.values()],
        [blood.probabilities(negative_features[name]) for name in threshold_negatives],
    )
    blood = type(blood)(blood.mean, blood.scale, blood.weights, blood.bias, blood_threshold)

    # The temperature is fitted on labelled cells the scores below never see: PBC val, BCCD val crops, PBC val
    # under lab changes and Chula's train sequences (the only lab read far from training among them).
    reference = float(np.quantile(distance.distances(pbc_out["val"][0]), REFERENCE_QUANTILE))
    calibration_sets = [
        (pbc_out["val"], pbc_labels["val"]),
        (bccd_out["val"], bccd_labels["val"]),
        (changed_val, pbc_labels["val"]),
        (chula_out["train"], chula["train"][1]),
    ]
    val_features = np.concatenate([out[0] for out, _ in calibration_sets])
    val_logits = np.concatenate([out[1] for out, _ in calibration_sets])
    val_labels = np.concatenate([labels for _, labels in calibration_sets])
    slope = fit_temperature_slope(val_logits, val_labels, distance.distances(val_features), card.temperature, reference)
    check = DomainCheck(distance, blood, reference, slope)
    check.save(args.model / NOVELTY_FILE)
    judge = Classifier(loaded.model, card, novelty=check)

    conditions, condition_calibration = {}, {}
    for condition in CONDITIONS:
        changed = cache(
            f"pbc_test_{condition.name}", lambda condition=condition: condition.transform(pbc_images("test"))
        )
        conditions[condition.name] = flag_rates(check, changed[0])
        condition_calibration[condition.name] = calibration_report(judge, *changed, pbc_labels["test"])
    report = {
        "layer": args.layer,
        "lab_change": {name: getattr(lab_change, name) for name in WIDER_WHEN_LARGER + WIDER_WHEN_SMALLER},
        "unfamiliar_threshold": round(unfamiliar_threshold, 3),
        "not_blood_threshold": round(blood_threshold, 5),
        "not_blood_blood_side": round(blood_side, 5),
        "not_blood_non_blood_side": round(non_blood_side, 5),
        "distance_reference": round(reference, 3),
        "temperature_slope": slope,
        "validation": {
            **{name: flag_rates(check, f) for name, f in held_out_blood.items()},
            **{name: flag_rates(check, negative_features[name]) for name in threshold_negatives},
        },
        "pbc_test": flag_rates(check, pbc_out["test"][0]),
        "bccd_crops_test": flag_rates(check, bccd_out["test"][0]),
        "bccd_crops_all": flag_rates(check, np.concatenate([bccd_out[s][0] for s in ("train", "val", "test")])),
        "chula_test": flag_rates(check, chula_out["test"][0]),
        "pbc_test_conditions": conditions,
        "calibration": {
            "pbc_test": calibration_report(judge, *pbc_out["test"], pbc_labels["test"]),
            "bccd_crops_test": calibration_report(judge, *bccd_out["test"], bccd_labels["test"]),
            "chula_test": calibration_report(judge, *chula_out["test"], chula["test"][1]),
            "pbc_test_conditions": condition_calibration,
        },
        "non_blood_generated": flag_rates(check, negative_features["generated"])
        | {
            "seeds": list(MEASURE_SEEDS),
            "by_category": by_category(check, measure_generated, negative_features["generated"]),
        },
        "non_blood_photos": flag_rates(check, negative_features["photos"])
        | {
            "sources": sorted(HELD_OUT_SOURCES),
            "by_category": by_category(check, measure_photos, negative_features["photos"]),
        },
    }
    all_non_blood = np.concatenate([negative_features["generated"], negative_features["photos"]])
    report["non_blood_all"] = flag_rates(check, all_non_blood)
    held_out_names = ", ".join(held_out_blood)
    card.novelty = {
        "file": NOVELTY_FILE,
        "layer": args.layer,
        "not_blood": "logistic regression on the layer's space-averaged activations: PBC train cells, the same "
        "cells under simulated lab changes, BCCD train crops and Chula's train sequences against generated "
        "non-blood images (seed 0) and "
        "views of scikit-image's sample photographs and micrographs; flagged below the threshold",
        "not_blood_threshold_rule": "midway in log-odds between the highest threshold that flags at most "
        f"{BLOOD_VAL_FLAGGED:.0%} of each held-out blood set ({held_out_names}) and the lowest that flags "
        f"{NON_BLOOD_FLAGGED:.0%} of generated non-blood images (seed 1) and of views of Debian's "
        "mate-backgrounds photographs; the blood side where the two overlap",
        "unfamiliar": "squared Mahalanobis distance to the nearest class centre (PBC train by class, BCCD train "
        "crops as one group; shared covariance, shrinkage 0.1); flagged above the threshold",
        "unfamiliar_threshold_rule": f"flags at most {PBC_VAL_UNFAMILIAR:.1%} of PBC val, "
        f"{BCCD_VAL_UNFAMILIAR:.1%} of BCCD val crops",
        "temperature": "T = card temperature x (1 + slope x max(0, distance / reference - 1)); slope fitted for "
        "the lowest NLL on PBC val, BCCD val crops, lab-changed PBC val and Chula's train sequences",
        "temperature_slope": slope,
        "distance_reference": report["distance_reference"],
        "threshold": report["unfamiliar_threshold"],
        "command": "python -m training.novelty " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    write_json(args.model / paths.CARD_FILE, card.to_dict())
    evaluation = load_evaluation(args.model)
    # The figures this run replaces stay beside the new ones (Model performance shows both).
    if "novelty" in evaluation:
        report["before"] = {key: value for key, value in evaluation["novelty"].items() if key != "before"}
    evaluation["novelty"] = report
    write_json(args.model / paths.EVALUATION_FILE, evaluation)
    # The export carries the features layer, which may have just changed: export again.
    litert = export_and_check(args.model, args.data, "python -m training.export (run by training.novelty)")
    print(json.dumps(report, indent=1))
    print(f"exported for LiteRT: largest probability difference {litert['max_probability_difference']:.1e}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
