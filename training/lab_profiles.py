"""Measure lab profiles: how much a few labelled cells of a lab lift the model on that lab's other cells.

    python -m training.lab_profiles --model M --examples DIR --held-out DIR [--per-class 5] [--draws 10]

DIR are class-per-folder trees (or a manifest dataset: ``--examples`` then takes its ``--examples-split``,
val by default, and ``--held-out`` its test split). Each draw takes ``--per-class`` random cells of every class
with enough examples (spread over a manifest's groups, such as Chula's video sequences, before a group gives a
second frame), builds a profile from them exactly as ``python -m hematovision adapt`` does, and scores the
held-out cells with and without it: accuracy, ECE, and the shares refused as not blood and flagged unfamiliar.
``--non-blood`` also reads generated non-blood images (seeds 2 and 3, which chose nothing) through each
profile: the share still refused. Prints the mean and spread over draws, and the time a profile took;
``--record NAME`` stores the summary in the model folder's evaluation.json under ``lab_profiles``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from hematovision.core import paths
from hematovision.core.artifacts import load_evaluation, write_json
from hematovision.core.datasets import SPLITS, find_manifest, read_manifest, scan_class_folders
from hematovision.core.predict import Classifier
from hematovision.heads.lab_profile import MIN_PER_CLASS, build_profile
from hematovision.heads.metrics import expected_calibration_error, softmax
from training.scoring import decode_labelled


def labelled(folder: Path, classes: list[str], split: str):
    manifest = find_manifest(folder)
    if manifest is not None:
        return [item for item in read_manifest(manifest) if item.split == split and item.label in classes]
    return scan_class_folders(folder, classes).images


def draw_examples(rng: np.random.Generator, labels: np.ndarray, groups: list[str], per_class: int) -> np.ndarray:
    """``per_class`` examples of each class, one per group (a physical cell) in random order before any group
    gives a second: a user labels different cells, not frames of one."""
    chosen = []
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        seen: dict[str, int] = {}
        # Sort by how many of its group came before it: first frames of every group, then second frames, ...
        order = []
        for index in members:
            order.append((seen.get(groups[index], 0), len(order), index))
            seen[groups[index]] = seen.get(groups[index], 0) + 1
        chosen += [index for _, _, index in sorted(order)[:per_class]]
    return np.array(chosen)


def scores(judged, labels: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float((judged.probabilities.argmax(1) == labels).mean()),
        "ece": expected_calibration_error(judged.probabilities, labels),
        "not_blood": float(judged.not_blood.mean()),
        "unfamiliar": float(judged.unfamiliar.mean()),
    }


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.lab_profiles", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR)
    parser.add_argument("--examples", type=Path, required=True, help="where the profile's cells are drawn from")
    parser.add_argument("--examples-split", choices=SPLITS, default="val", help="for a manifest dataset")
    parser.add_argument("--held-out", type=Path, required=True, help="the same lab's cells to score")
    parser.add_argument(
        "--per-class",
        type=int,
        default=5,
        help="cells drawn of each class; 0 takes every example of each class that has enough (one draw): "
        "what a profile can do at best with this pool",
    )
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--non-blood", action="store_true", help="also measure non-blood images through each profile")
    parser.add_argument("--record", metavar="NAME", help="store the summary in evaluation.json as lab_profiles.NAME")
    args = parser.parse_args(argv)
    classifier = Classifier.load(args.model)
    classes, size = classifier.classes, classifier.card.input_size
    pool_items = labelled(args.examples, classes, args.examples_split)
    pool = decode_labelled(pool_items, classes, size)
    group_of = {item.path: item.group or str(item.path) for item in pool_items}
    groups = [group_of[path] for path in pool.paths]
    held = decode_labelled(labelled(args.held_out, classes, "test"), classes, size)
    pool_out = classifier.features_and_logits(pool.images)
    held_features, held_logits = classifier.features_and_logits(held.images)
    pool_probabilities = softmax(pool_out[1], classifier.card.temperature)
    without = scores(classifier.judge(held_features, held_logits), held.labels)
    non_blood = None
    if args.non_blood:
        from training.novelty import MEASURE_SEEDS, model_inputs
        from training.ood_images import non_blood_images

        images = [image for seed in MEASURE_SEEDS for image in non_blood_images(seed=seed)]
        non_blood = classifier.features_and_logits(model_inputs(images, size))
    rng = np.random.default_rng(args.seed)
    usable = [k for k in np.unique(pool.labels) if (pool.labels == k).sum() >= max(args.per_class, MIN_PER_CLASS)]
    in_usable = np.isin(pool.labels, usable)
    draws = 1 if args.per_class == 0 else args.draws
    per_draw, seconds, non_blood_refused = [], [], []
    for _ in range(draws):
        if args.per_class == 0:
            chosen = np.flatnonzero(in_usable)
        else:
            candidates = np.flatnonzero(in_usable)
            picked = draw_examples(rng, pool.labels[candidates], [groups[i] for i in candidates], args.per_class)
            chosen = candidates[picked]
        started = time.perf_counter()
        profile = build_profile(
            pool_out[0][chosen],
            pool_probabilities[chosen],
            pool.labels[chosen],
            classes,
            classifier.model_id,
            classifier.blood_probabilities(pool_out[0][chosen]),
        )
        seconds.append(time.perf_counter() - started)
        per_draw.append(scores(classifier.judge(held_features, held_logits, profile), held.labels))
        if non_blood is not None:
            non_blood_refused.append(float(classifier.judge(*non_blood, profile).not_blood.mean()))
    with_profile = {name: spread([draw[name] for draw in per_draw]) for name in per_draw[0]}
    summary = {
        "examples_from": f"{args.examples} ({args.examples_split})",
        "held_out": str(args.held_out),
        "held_out_n": len(held.labels),
        "classes_with_examples": [classes[k] for k in usable],
        "per_class": args.per_class or "all",
        "examples": len(chosen),  # the same in every draw
        "draws": draws,
        "without_profile": without,
        "with_profile": with_profile,
        "accuracy_without_profile": without["accuracy"],
        "accuracy_with_profile_mean": with_profile["accuracy"]["mean"],
        "accuracy_with_profile_sd": with_profile["accuracy"]["sd"],
        "accuracy_with_profile_min": with_profile["accuracy"]["min"],
        "accuracy_with_profile_max": with_profile["accuracy"]["max"],
        "profile_seconds_median": statistics.median(seconds),
        "command": "python -m training.lab_profiles " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if non_blood_refused:
        summary["non_blood_refused_with_profile"] = spread(non_blood_refused) | {"n": len(non_blood[0])}
    print(
        f"{len(held.labels)} held-out cells: {100 * without['accuracy']:.2f}% without a profile; with a profile "
        f"of {summary['examples']} cells of {len(usable)} classes, over {draws} draws: "
        f"{100 * with_profile['accuracy']['mean']:.2f}% (sd {100 * with_profile['accuracy']['sd']:.2f}, "
        f"{100 * with_profile['accuracy']['min']:.2f}-{100 * with_profile['accuracy']['max']:.2f}); a profile took "
        f"{summary['profile_seconds_median']:.1f} s"
    )
    for name in ("ece", "not_blood", "unfamiliar"):
        print(
            f"  {name:<11} without {100 * without[name]:6.2f}%   with: mean {100 * with_profile[name]['mean']:6.2f}%, "
            f"worst draw {100 * with_profile[name]['max']:6.2f}%"
        )
    if non_blood_refused:
        print(f"  non-blood images still refused with a profile: worst draw {100 * min(non_blood_refused):.2f}%")
    if args.record:
        evaluation = load_evaluation(args.model)
        evaluation.setdefault("lab_profiles", {})[args.record] = summary
        write_json(args.model / paths.EVALUATION_FILE, evaluation)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
