"""Measure lab profiles: how much a few labelled cells of a lab lift the model on that lab's other cells.

    python -m training.lab_profiles --model M --examples DIR --held-out DIR [--per-class 5] [--draws 10]

DIR are class-per-folder trees (or a manifest dataset: ``--examples`` then takes its ``--examples-split``,
val by default, and ``--held-out`` its test split). Each draw takes ``--per-class`` random cells of every class
with enough examples (spread over a manifest's groups, such as Chula's video sequences, before a group gives a
second frame), builds a profile from them exactly as ``python -m hematovision adapt`` does, and scores the
held-out cells three ways: the model alone, the profile always applied, and the profile *gated* as it ships
(applied only where its leave-one-out beats the model on its own examples: ``LabProfile.decision``), each by
accuracy, ECE, and the shares refused as not blood and flagged unfamiliar, with how many draws applied the profile.
``--non-blood`` also reads generated non-blood images (seeds 2 and 3, which chose nothing) through each
profile: the share still refused. Prints the mean and spread over draws, and the time a profile took;
``--record NAME`` stores the summary in the model folder's evaluation.json under ``lab_profiles``; ``--json FILE``
writes it to FILE instead.
``--features-cache FILE`` keeps the decoded cells' features and logits between runs (keyed on the model and the
folders), which is most of the time on a CPU. ``--suggest M`` also measures which cells to label next: from each
draw's profile, M more cells of the rest of the pool are labelled, either those ``suggest_to_label`` picks (under
the answers the user would see) or M at random, and the profile rebuilt from all of them is scored both ways.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from hematovision.core import paths
from hematovision.core.artifacts import load_evaluation, write_json
from hematovision.core.datasets import SPLITS, find_manifest, read_manifest, scan_class_folders
from hematovision.core.predict import Classifier
from hematovision.heads.lab_profile import MIN_PER_CLASS, build_profile, suggest_to_label
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


def network_outputs(classifier: Classifier, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Features, logits and labels of the example pool (with each cell's group) and of the held-out cells, from
    ``--features-cache`` where it was written for the same model and folders."""
    key = json.dumps(
        [classifier.model_id, str(args.examples.resolve()), args.examples_split, str(args.held_out.resolve())]
    )
    cache = args.features_cache
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if str(stored["key"]) == key:
                print(f"features from {cache}", file=sys.stderr)
                return {name: stored[name] for name in stored.files if name != "key"}
    classes, size = classifier.classes, classifier.card.input_size
    pool_items = labelled(args.examples, classes, args.examples_split)
    pool = decode_labelled(pool_items, classes, size)
    group_of = {item.path: item.group or str(item.path) for item in pool_items}
    held = decode_labelled(labelled(args.held_out, classes, "test"), classes, size)
    pool_features, pool_logits = classifier.features_and_logits(pool.images)
    held_features, held_logits = classifier.features_and_logits(held.images)
    out = {
        "pool_features": pool_features,
        "pool_logits": pool_logits,
        "pool_labels": pool.labels,
        "groups": np.array([group_of[path] for path in pool.paths]),
        "held_features": held_features,
        "held_logits": held_logits,
        "held_labels": held.labels,
    }
    if cache is not None:
        np.savez(cache, key=key, **out)
    return out


#: The three ways a held-out cell is read, in the order they are reported.
WAYS = {"model": "the model alone", "always": "profile always", "gated": "profile gated (as shipped)"}


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
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the summary, every draw in it, here")
    parser.add_argument("--features-cache", type=Path, metavar="FILE", help="keep the cells' features here (.npz)")
    parser.add_argument(
        "--suggest", type=int, default=0, metavar="M", help="also compare M suggested cells with M random"
    )
    args = parser.parse_args(argv)
    classifier = Classifier.load(args.model)
    classes = classifier.classes
    outputs = network_outputs(classifier, args)
    pool_features, pool_labels, groups = (
        outputs["pool_features"],
        outputs["pool_labels"],
        [str(g) for g in outputs["groups"]],
    )
    held_features, held_logits, held_labels = outputs["held_features"], outputs["held_logits"], outputs["held_labels"]
    pool_probabilities = softmax(outputs["pool_logits"], classifier.card.temperature)
    without = scores(classifier.judge(held_features, held_logits), held_labels)
    non_blood = None
    if args.non_blood:
        from training.novelty import MEASURE_SEEDS, model_inputs
        from training.ood_images import non_blood_images

        images = [image for seed in MEASURE_SEEDS for image in non_blood_images(seed=seed)]
        non_blood = classifier.features_and_logits(model_inputs(images, classifier.card.input_size))
    rng = np.random.default_rng(args.seed)
    random_picks = np.random.default_rng(args.seed + 1)  # its own stream: the draws are the same with --suggest
    usable = [k for k in np.unique(pool_labels) if (pool_labels == k).sum() >= max(args.per_class, MIN_PER_CLASS)]
    in_usable = np.isin(pool_labels, usable)
    draws = 1 if args.per_class == 0 else args.draws
    per_draw: dict[str, list[dict[str, float]]] = {"always": [], "gated": []}
    more: dict[str, list[dict[str, float]]] = {}  # --suggest: "<picked>_<way>" -> per-draw scores

    def profile_of(rows: np.ndarray):
        return build_profile(
            pool_features[rows],
            pool_probabilities[rows],
            pool_labels[rows],
            classes,
            classifier.model_id,
            classifier.blood_probabilities(pool_features[rows]),
        )

    seconds, non_blood_refused, decisions = [], [], []
    for _ in range(draws):
        if args.per_class == 0:
            chosen = np.flatnonzero(in_usable)
        else:
            candidates = np.flatnonzero(in_usable)
            picked = draw_examples(rng, pool_labels[candidates], [groups[i] for i in candidates], args.per_class)
            chosen = candidates[picked]
        started = time.perf_counter()
        profile = profile_of(chosen)
        seconds.append(time.perf_counter() - started)
        decisions.append(
            {
                "applied": profile.applied,
                "fixed": profile.leave_one_out["fixed"],
                "broken": profile.leave_one_out["broken"],
            }
        )
        always = dataclasses.replace(profile, applied=True)
        per_draw["always"].append(scores(classifier.judge(held_features, held_logits, always), held_labels))
        per_draw["gated"].append(scores(classifier.judge(held_features, held_logits, profile), held_labels))
        decisions[-1]["accuracy_always"] = per_draw["always"][-1]["accuracy"]
        if non_blood is not None:
            non_blood_refused.append(float(classifier.judge(*non_blood, always).not_blood.mean()))
        if args.suggest:
            rest = np.setdiff1d(np.flatnonzero(in_usable), chosen)
            shown = classifier.judge(pool_features[rest], outputs["pool_logits"][rest], profile).probabilities
            picks = {
                "suggested": rest[suggest_to_label(shown, args.suggest)],
                "random": random_picks.choice(rest, args.suggest, replace=False),
            }
            for picked, added in picks.items():
                grown = profile_of(np.concatenate([chosen, added]))
                for way, used in (("always", dataclasses.replace(grown, applied=True)), ("gated", grown)):
                    judged = classifier.judge(held_features, held_logits, used)
                    more.setdefault(f"{picked}_{way}", []).append(scores(judged, held_labels))
                more.setdefault(f"{picked}_applied", []).append({"applied": float(grown.applied)})
    with_profile = {name: spread([draw[name] for draw in per_draw["always"]]) for name in per_draw["always"][0]}
    gated = {name: spread([draw[name] for draw in per_draw["gated"]]) for name in per_draw["gated"][0]}
    applied = sum(decision["applied"] for decision in decisions)
    summary = {
        "examples_from": f"{args.examples} ({args.examples_split})",
        "held_out": str(args.held_out),
        "held_out_n": len(held_labels),
        "classes_with_examples": [classes[k] for k in usable],
        "per_class": args.per_class or "all",
        "examples": len(chosen),  # the same in every draw
        "draws": draws,
        "without_profile": without,
        "with_profile": with_profile,  # the profile always applied
        "gated": gated,  # applied only where its leave-one-out beats the model (LabProfile.decision)
        "applied_draws": applied,
        "decisions": decisions,
        "accuracy_without_profile": without["accuracy"],
        "accuracy_with_profile_mean": with_profile["accuracy"]["mean"],
        "accuracy_with_profile_sd": with_profile["accuracy"]["sd"],
        "accuracy_with_profile_min": with_profile["accuracy"]["min"],
        "accuracy_with_profile_max": with_profile["accuracy"]["max"],
        "accuracy_gated_mean": gated["accuracy"]["mean"],
        "accuracy_gated_sd": gated["accuracy"]["sd"],
        "profile_seconds_median": statistics.median(seconds),
        "command": "python -m training.lab_profiles " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if more:
        summary["suggest"] = {"added": args.suggest} | {
            name: spread([draw["applied" if name.endswith("_applied") else "accuracy"] for draw in values])
            for name, values in more.items()
        }
    if non_blood_refused:
        summary["non_blood_refused_with_profile"] = spread(non_blood_refused) | {"n": len(non_blood[0])}
    print(
        f"{len(held_labels)} held-out cells: {100 * without['accuracy']:.2f}% without a profile; with a profile "
        f"of {summary['examples']} cells of {len(usable)} classes, over {draws} draws: "
        f"{100 * with_profile['accuracy']['mean']:.2f}% (sd {100 * with_profile['accuracy']['sd']:.2f}, "
        f"{100 * with_profile['accuracy']['min']:.2f}-{100 * with_profile['accuracy']['max']:.2f}); a profile took "
        f"{summary['profile_seconds_median']:.1f} s"
    )
    print(f"  the profile was applied in {applied} of {draws} draws (fixed - broken on its examples: "
          + ", ".join(f"{d['fixed']}-{d['broken']}" for d in decisions) + ")")  # fmt: skip
    print(f"  {'':<28} {'accuracy':>16} {'ECE':>14} {'not blood':>14} {'unfamiliar':>14}")
    table = {"model": {name: {"mean": value, "sd": 0.0} for name, value in without.items()}, "always": with_profile}
    table["gated"] = gated
    for way, label in WAYS.items():
        cells = "".join(
            f" {100 * table[way][name]['mean']:>7.2f} ± {100 * table[way][name]['sd']:<5.2f}"
            for name in ("accuracy", "ece", "not_blood", "unfamiliar")
        )
        print(f"  {label:<28}{cells}")
    for name in ("ece", "not_blood", "unfamiliar"):
        print(
            f"  {name:<11} without {100 * without[name]:6.2f}%   with: mean {100 * with_profile[name]['mean']:6.2f}%, "
            f"worst draw {100 * with_profile[name]['max']:6.2f}%"
        )
    # How the gate's margin trades off, on these same draws: exploratory only, since choosing it here would tune
    # the rule to the held-out cells.
    margins = {
        n: statistics.mean(
            d["accuracy_always"] if d["fixed"] - d["broken"] >= n else without["accuracy"] for d in decisions
        )
        for n in (-99, 0, 1, 2, 3)
    }
    summary["gated_at_margin"] = {str(n): value for n, value in margins.items()}
    print(
        "  mean accuracy were the profile applied at fixed - broken >= N (exploratory): "
        + ", ".join(f"N={'any' if n == -99 else n} {100 * value:.2f}" for n, value in margins.items())
    )
    if more:
        print(f"  {args.suggest} more cells labelled, suggested or at random (accuracy on the held-out cells):")
        for picked in ("suggested", "random"):
            figures = ", ".join(
                f"{way} {100 * summary['suggest'][f'{picked}_{way}']['mean']:.2f} ± "
                f"{100 * summary['suggest'][f'{picked}_{way}']['sd']:.2f}"
                for way in ("always", "gated")
            )
            applied_share = summary["suggest"][f"{picked}_applied"]["mean"]
            print(f"    {picked:<10} {figures}; applied in {round(applied_share * draws)} of {draws} draws")
    if non_blood_refused:
        print(f"  non-blood images still refused with a profile: worst draw {100 * min(non_blood_refused):.2f}%")
    if args.json:
        write_json(args.json, summary)
    if args.record:
        evaluation = load_evaluation(args.model)
        evaluation.setdefault("lab_profiles", {})[args.record] = summary
        write_json(args.model / paths.EVALUATION_FILE, evaluation)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
