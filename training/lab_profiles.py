"""Measure lab profiles: how much a few labelled cells of a lab lift the model on that lab's other cells.

    python -m training.lab_profiles --model M --examples DIR --held-out DIR [--per-class 5] [--draws 10]

DIR are class-per-folder trees (or a manifest dataset: ``--examples`` then takes its val split and
``--held-out`` its test split). Each draw takes ``--per-class`` random cells of every class with enough
examples, builds a profile from them exactly as ``python -m hematovision adapt`` does, and scores the
held-out cells with and without it. Prints the mean and spread over draws, and the time a profile took;
``--record NAME`` stores the summary in the model folder's evaluation.json under ``lab_profiles``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from hematovision import paths
from hematovision.artifacts import load_evaluation, write_json
from hematovision.datasets import find_manifest, read_manifest, scan_class_folders
from hematovision.evaluation import decode_labelled
from hematovision.lab_profile import MIN_PER_CLASS, build_profile
from hematovision.predict import Classifier


def labelled(folder: Path, classes: list[str], split: str):
    manifest = find_manifest(folder)
    if manifest is not None:
        return [item for item in read_manifest(manifest) if item.split == split and item.label in classes]
    return scan_class_folders(folder, classes).images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.lab_profiles", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR)
    parser.add_argument("--examples", type=Path, required=True, help="where the profile's cells are drawn from")
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
    parser.add_argument("--record", metavar="NAME", help="store the summary in evaluation.json as lab_profiles.NAME")
    args = parser.parse_args(argv)
    classifier = Classifier.load(args.model)
    classes, size = classifier.classes, classifier.card.input_size
    pool = decode_labelled(labelled(args.examples, classes, "val"), classes, size)
    held = decode_labelled(labelled(args.held_out, classes, "test"), classes, size)
    pool_out = classifier.features_and_logits(pool.images)
    held_features, held_logits = classifier.features_and_logits(held.images)
    pool_probabilities = classifier.judge(*pool_out).probabilities
    without = float((classifier.judge(held_features, held_logits).probabilities.argmax(1) == held.labels).mean())
    rng = np.random.default_rng(args.seed)
    usable = [k for k in np.unique(pool.labels) if (pool.labels == k).sum() >= max(args.per_class, MIN_PER_CLASS)]
    draws = 1 if args.per_class == 0 else args.draws
    scores, seconds = [], []
    for _ in range(draws):
        chosen = np.concatenate(
            [
                np.flatnonzero(pool.labels == k)
                if args.per_class == 0
                else rng.choice(np.flatnonzero(pool.labels == k), args.per_class, replace=False)
                for k in usable
            ]
        )
        started = time.perf_counter()
        profile = build_profile(
            pool_out[0][chosen], pool_probabilities[chosen], pool.labels[chosen], classes, classifier.model_id
        )
        seconds.append(time.perf_counter() - started)
        adjusted = classifier.judge(held_features, held_logits, profile).probabilities
        scores.append(float((adjusted.argmax(1) == held.labels).mean()))
    summary = {
        "examples_from": str(args.examples),
        "held_out": str(args.held_out),
        "held_out_n": len(held.labels),
        "classes_with_examples": [classes[k] for k in usable],
        "per_class": args.per_class or "all",
        "examples": len(chosen),  # the same in every draw
        "draws": draws,
        "accuracy_without_profile": without,
        "accuracy_with_profile_mean": statistics.mean(scores),
        "accuracy_with_profile_sd": statistics.stdev(scores) if len(scores) > 1 else 0.0,
        "accuracy_with_profile_min": min(scores),
        "accuracy_with_profile_max": max(scores),
        "profile_seconds_median": statistics.median(seconds),
        "command": "python -m training.lab_profiles " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(
        f"{len(held.labels)} held-out cells: {100 * without:.2f}% without a profile; with a profile of "
        f"{summary['examples']} cells of {len(usable)} classes, over {draws} draws: "
        f"{100 * summary['accuracy_with_profile_mean']:.2f}% (sd {100 * summary['accuracy_with_profile_sd']:.2f}, "
        f"{100 * min(scores):.2f}-{100 * max(scores):.2f}); a profile took {summary['profile_seconds_median']:.1f} s"
    )
    if args.record:
        evaluation = load_evaluation(args.model)
        evaluation.setdefault("lab_profiles", {})[args.record] = summary
        write_json(args.model / paths.EVALUATION_FILE, evaluation)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
