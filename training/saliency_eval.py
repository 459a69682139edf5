"""How faithful each Explain method is, against two baselines, on a fixed sample of the PBC test split.

    python -m training.saliency_eval --model models --data ../shared/data [--n 200] [--seed 0] \
        [--split test] [--methods ...] [--record-key saliency]

For every method of the Explain page (hematovision.explain.saliency.METHODS) and the two baselines (a random
coarse map, a centred blob): deletion and insertion AUC, ROAD (most- and least-relevant-first removal
with noisy linear imputation) and the time per image (hematovision.explain.faithfulness); then the sanity check
(hematovision.explain.sanity): cascading randomisation of the weights from the logits down, and the Spearman
correlation of each method's maps with the original ones. Images reach the network as in the app
(``Classifier.model_input``), the explained class is the one predicted for the untouched image, and the
probabilities are the network's own at the card's temperature (``Classifier.network_probabilities``:
without the distance-grown temperature, which flattens every perturbed image alike). The sample (seed and file
names) and the results go into the artifact folder's evaluation.json under "saliency", saved every
``--save-every`` images, so an interrupted run leaves its figures with the number of images it reached; with
``--checkpoint FILE`` each image's scores are kept there too, and the same command run again continues where it
stopped (an hour's run on 2 cores need not start over).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hematovision.core import paths
from hematovision.core.artifacts import load_evaluation, write_json
from hematovision.core.datasets import LabelledImage, find_manifest, read_manifest
from hematovision.core.imaging import ImageLoadError
from hematovision.core.predict import Classifier
from hematovision.explain import faithfulness as fm
from hematovision.explain.saliency import ALL_METHODS, DEFAULT_METHOD, METHODS, AttributionMethods
from hematovision.explain.sanity import PASS_CORRELATION, cascading_correlations, verdict

#: Cut points of the cascade on MobileNetV2, top first: the head, the last 1x1 convolution (Grad-CAM's
#: layer's source), then the last three inverted-residual stages.
CUT_LAYERS = ("logits", "Conv_1", "block_16_expand", "block_13_expand", "block_10_expand")
#: The pass rule is read here: every layer from the last convolutional block (block 16) up randomised.
RULE_LAYER = "block_16_expand"
RECORD_KEY = "saliency"


@dataclass
class Progress:
    """What a run has scored so far, per image, and what it belongs to (``key``: the network file, sample and
    methods), so that an interrupted run can continue without scoring an image twice."""

    key: dict
    sanity: dict
    scores: dict[str, list[fm.ImageScores]]
    seconds: dict[str, list[float]]

    def done(self) -> int:
        return min((len(values) for values in self.scores.values()), default=0)


def progress_key(model_dir: Path, names: list[str], methods: list[str], args: argparse.Namespace) -> dict:
    digest = hashlib.sha256((model_dir / paths.MODEL_FILE).read_bytes()).hexdigest()
    return {"model": digest, "split": args.split, "seed": args.seed, "images": names, "methods": methods,
            "sanity_n": args.sanity_n}  # fmt: skip


def load_progress(path: Path, key: dict) -> Progress | None:
    """The checkpoint's progress, None where there is none yet; ValueError where it belongs to another run."""
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        progress = pickle.load(handle)  # a file this command wrote for the same user, never a download
    if progress.key != key:
        differing = sorted(name for name in key if progress.key.get(name) != key[name])
        raise ValueError(
            f"{path} holds another run's scores (different {', '.join(differing)}); delete it to start over"
        )
    return progress


def save_progress(path: Path, progress: Progress) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        pickle.dump(progress, handle)
    os.replace(partial, path)  # a run stopped mid-write leaves the previous checkpoint whole


def sample_split(data: Path, split: str, n: int, seed: int) -> list[LabelledImage]:
    """``n`` manifest images of ``split`` drawn with ``seed`` (the same seed, the same sample), in the order drawn:
    a run stopped early has then measured a random part of the sample, not the classes that sort first."""
    manifest = find_manifest(data)
    if manifest is None:
        raise FileNotFoundError(f"no pbc_manifest.csv in {data}")
    images = sorted((image for image in read_manifest(manifest) if image.split == split), key=lambda i: str(i.path))
    if not images:
        raise FileNotFoundError(f"no {split!r} images in {manifest}")
    chosen = np.random.default_rng(seed).choice(len(images), size=min(n, len(images)), replace=False)
    return [images[i] for i in chosen]


def sample_test_split(data: Path, n: int, seed: int, split: str = "test") -> list[Path]:
    """The paths of :func:`sample_split` (the test split unless told)."""
    return [image.path for image in sample_split(data, split, n, seed)]


def methods_from_option(text: str) -> list[str]:
    """The methods of a comma-separated ``--methods``; ValueError naming any that is not in ALL_METHODS."""
    methods = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in methods if name not in ALL_METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(ALL_METHODS)}")
    return methods


def load_inputs(classifier: Classifier, files: list[Path]) -> tuple[list[Path], np.ndarray, list[str]]:
    """Model inputs of the readable files; unreadable ones are named and left out."""
    kept, inputs, skipped = [], [], []
    for path in files:
        try:
            inputs.append(classifier.model_input(path))
            kept.append(path)
        except ImageLoadError as exc:
            skipped.append(f"{path.name}: {exc}")
    return kept, np.stack(inputs), skipped


def sanity_check(classifier: Classifier, methods: list[str], images: np.ndarray, classes: np.ndarray) -> dict:
    card = classifier.card
    cuts = [name for name in CUT_LAYERS if name in {layer.name for layer in classifier.model.layers}]

    def heatmaps_for(model):
        attribution = AttributionMethods(model, card.gradcam_layer, card.logits_layer)
        return {method: (lambda image, c, m=method: attribution.heatmap(m, image, c)) for method in methods}

    correlations = cascading_correlations(classifier.model, heatmaps_for, images, classes, cuts)
    rule_layer = RULE_LAYER if RULE_LAYER in cuts else cuts[-1]
    return {
        "n": len(images),
        "cut_layers": cuts,
        "rule": f"passes when the mean absolute Spearman correlation with the original maps is below "
        f"{PASS_CORRELATION} once every layer from {rule_layer} up is re-initialised",
        "methods": {method: verdict(correlations[method], rule_layer) for method in methods},
    }


def evaluate(
    classifier: Classifier,
    names: list[str],
    images: np.ndarray,
    methods: list[str],
    seed: int,
    save,
    save_every: int,
    recorded: dict | None = None,
    progress: Progress | None = None,
    keep: Callable[[dict, dict], None] | None = None,
) -> dict:
    """Score every image; with ``progress`` (a checkpoint's) only the images after those it holds, and ``keep``
    called with the scores and seconds so far at each save."""
    probability_fn = classifier.network_probabilities
    classes = probability_fn(images).argmax(axis=1)
    attribution = AttributionMethods(classifier.model, classifier.card.gradcam_layer, classifier.card.logits_layer)
    # Adding methods to a record (--add): its baselines were scored on the same images, with the same seeds.
    every = [*methods, *(() if recorded else fm.BASELINES)]
    scores: dict[str, list[fm.ImageScores]] = {name: [] for name in every}
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    done = 0
    if progress is not None:
        done = progress.done()
        scores = {name: progress.scores.get(name, [])[:done] for name in every}
        seconds = {name: progress.seconds.get(name, [])[:done] for name in methods}
        if done:
            print(f"continuing after the {done} images in the checkpoint", flush=True)
    record: dict = {}
    for number, (image, class_index) in enumerate(zip(images, classes, strict=True), start=1):
        if number <= done:
            continue
        shape = image.shape[:2]
        for name in every:
            started = time.perf_counter()
            if name in methods:
                saliency = attribution.heatmap(name, image, int(class_index))
                seconds[name].append(time.perf_counter() - started)
            else:
                saliency = fm.baseline_map(name, shape, seed + number)
            scores[name].append(fm.score_map(image, saliency, probability_fn, int(class_index), seed=seed + number))
        if number % save_every == 0 or number == len(images):
            record = summary(names[:number], scores, seconds, recorded)
            save(record, complete=number == len(images))
            if keep is not None:
                keep(scores, seconds)
            line = ", ".join(f"{n} del {r['deletion_auc']:.3f}" for n, r in record["methods"].items())
            print(f"{number}/{len(images)} images: {line}", flush=True)
    return record


def summary(
    names: list[str],
    scores: dict[str, list[fm.ImageScores]],
    seconds: dict[str, list[float]],
    recorded: dict | None = None,
) -> dict:
    """Figures per method; with ``recorded`` (a record's methods), merged into them: its methods first, the new
    ones next, the baselines last, each new method judged against the recorded baselines."""
    methods = {name: fm.summarise(values) for name, values in scores.items()}
    if recorded:
        kept = {name: figures for name, figures in recorded.items() if name not in methods}
        methods = {
            **{name: figures for name, figures in kept.items() if name not in fm.BASELINES},
            **methods,
            **{name: kept[name] for name in fm.BASELINES},
        }
    for name, values in seconds.items():
        # The first image of each method includes building its visualiser and tracing: timed from the second.
        timed = values[1:] or values
        methods[name]["seconds_per_image"] = float(np.median(timed))
        methods[name]["timed_images"] = len(timed)
    for name in seconds:
        methods[name]["beats"] = {baseline: fm.beats(methods[name], methods[baseline]) for baseline in fm.BASELINES}
    for baseline in fm.BASELINES:
        methods[baseline]["baseline"] = True
    if recorded:
        return {"methods": methods}  # the record's sample, n and images stay as they were
    return {"n": len(names), "images": names, "methods": methods}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.saliency_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR, help="artifact folder")
    parser.add_argument("--data", type=Path, default=paths.SHARED_DATA_DIR, help="folder with pbc_manifest.csv")
    parser.add_argument("--n", type=int, default=200, help="images of the split to sample")
    parser.add_argument("--split", default="test", choices=("val", "test"), help="PBC split (val: to choose a method)")
    parser.add_argument(
        "--record-key", default=RECORD_KEY, help="key in evaluation.json (another one keeps the page's record)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and of the random baseline")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma-separated: the Explain page's, or the finer-map candidates (saliency.ALL_METHODS)",
    )
    parser.add_argument("--sanity-n", type=int, default=8, help="images (the first of the sample) for the sanity check")
    parser.add_argument(
        "--keep-sanity",
        action="store_true",
        help="reuse the recorded sanity check where it was run on the same first images (it uses only the classes)",
    )
    parser.add_argument(
        "--add",
        action="store_true",
        help="add --methods to the complete record under --record-key, on its own images (same split, seed and n): "
        "its other methods, baselines and sanity verdicts are kept",
    )
    parser.add_argument("--save-every", type=int, default=10, help="write the figures so far every this many images")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="keep each image's scores in this file (every --save-every images) and, run again with the same "
        "options on the same network, continue after them",
    )
    args = parser.parse_args(argv)
    if args.checkpoint and args.add:
        print("error: --checkpoint is for a whole record, not --add", file=sys.stderr)
        return 2

    try:
        methods = methods_from_option(args.methods)
        files = sample_test_split(args.data, args.n, args.seed, args.split)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    classifier = Classifier.load(args.model)
    files, images, skipped = load_inputs(classifier, files)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    names = [path.relative_to(args.data).as_posix() for path in files]
    record = {
        "dataset": f"pbc_{args.split}",
        "seed": args.seed,
        "n_requested": args.n,
        "target": "the class predicted for the untouched image",
        "probabilities": "the network's softmax at the card's temperature (no distance-grown temperature)",
        "default_method": DEFAULT_METHOD,
        "settings": {
            "deletion_steps": fm.DELETION_STEPS,
            "deletion_fill": "the image's mean colour",
            "insertion_start": f"Gaussian blur, sigma {fm.INSERTION_BLUR} of the image side",
            "road_percentiles": list(fm.ROAD_PERCENTILES),
            "road_imputation": f"noisy linear (8 neighbours), noise {fm.IMPUTATION_NOISE} grey levels",
            "random_map": f"uniform noise on a {fm.RANDOM_GRID}x{fm.RANDOM_GRID} grid, bilinear",
            "centred_blob": f"Gaussian, sigma {fm.CENTRE_SIGMA} of the image side",
        },
    }

    def save(part: dict, complete: bool) -> None:
        record.update(part, complete=complete)
        record["default_meets_targets"] = meets_targets(record, DEFAULT_METHOD)
        evaluation = load_evaluation(args.model)
        evaluation[args.record_key] = record
        write_json(args.model / paths.EVALUATION_FILE, evaluation)

    sample = images[: args.sanity_n]
    previous = load_evaluation(args.model).get(args.record_key, {})
    if args.add:
        return add_methods(args, classifier, previous, record, names, images, methods)
    progress = None
    if args.checkpoint:
        key = progress_key(args.model, names, methods, args)
        try:
            progress = load_progress(args.checkpoint, key)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    same_images = previous.get("images", [])[: len(sample)] == names[: len(sample)]
    if progress is not None:
        print(f"sanity check kept from {args.checkpoint}", flush=True)
        record["sanity"] = progress.sanity
    elif args.keep_sanity and same_images and previous.get("sanity", {}).get("n") == len(sample):
        print(f"sanity check kept from the record ({len(sample)} images, the same ones)", flush=True)
        record["sanity"] = previous["sanity"]
    else:
        print(f"sanity check on {len(sample)} images...", flush=True)
        classes = classifier.network_probabilities(sample).argmax(axis=1)
        record["sanity"] = sanity_check(classifier, methods, sample, classes)
    for method, result in record["sanity"]["methods"].items():
        figures = ", ".join(f"{cut} {value:.2f}" for cut, value in result["mean_abs_spearman"].items())
        print(f"  {method}: {'passes' if result['passes'] else 'FAILS'} ({figures})", flush=True)
    if args.checkpoint and progress is None:
        progress = Progress(key, record["sanity"], {}, {})
    print(f"faithfulness on {len(images)} images...", flush=True)

    def keep(scores: dict, seconds: dict) -> None:
        progress.scores, progress.seconds = scores, seconds
        save_progress(args.checkpoint, progress)

    evaluate(
        classifier, names, images, methods, args.seed, save, args.save_every,
        progress=progress, keep=keep if progress else None,
    )  # fmt: skip
    print_table(record)
    print(f"recorded in {args.model / paths.EVALUATION_FILE} under '{args.record_key}'")
    return 0


def add_methods(args, classifier, previous: dict, record: dict, names, images, methods) -> int:
    """--add: score ``methods`` on the recorded sample and merge them into the record."""
    same = (
        previous.get("complete")
        and previous.get("dataset") == record["dataset"]
        and previous.get("seed") == args.seed
        and previous.get("images") == names
        and previous.get("sanity", {}).get("n") == min(args.sanity_n, len(images))
    )
    if not same:
        print(
            f"error: --add needs a complete '{args.record_key}' record of the same split, seed, images and sanity-n",
            file=sys.stderr,
        )
        return 2
    merged = dict(previous)
    sample = images[: args.sanity_n]
    print(f"sanity check of {', '.join(methods)} on {len(sample)} images...", flush=True)
    classes = classifier.network_probabilities(sample).argmax(axis=1)
    added = sanity_check(classifier, methods, sample, classes)["methods"]
    merged["sanity"] = {**previous["sanity"], "methods": {**previous["sanity"]["methods"], **added}}
    for method, result in added.items():
        figures = ", ".join(f"{cut} {value:.2f}" for cut, value in result["mean_abs_spearman"].items())
        print(f"  {method}: {'passes' if result['passes'] else 'FAILS'} ({figures})", flush=True)

    def save(part: dict, complete: bool) -> None:
        if complete:  # a partial run leaves the record as it was
            merged.update(part)
            merged["default_method"] = DEFAULT_METHOD
            merged["default_meets_targets"] = meets_targets(merged, DEFAULT_METHOD)
            evaluation = load_evaluation(args.model)
            evaluation[args.record_key] = merged
            write_json(args.model / paths.EVALUATION_FILE, evaluation)

    print(f"faithfulness of {', '.join(methods)} on {len(images)} images...", flush=True)
    evaluate(classifier, names, images, methods, args.seed, save, args.save_every, recorded=previous["methods"])
    print_table(merged)
    print(f"added to {args.model / paths.EVALUATION_FILE} under '{args.record_key}'")
    return 0


def meets_targets(record: dict, method: str) -> bool | None:
    """Whether ``method`` beats both baselines on all three figures and passes the sanity check."""
    figures = record.get("methods", {}).get(method)
    sanity = record.get("sanity", {}).get("methods", {}).get(method)
    if figures is None or sanity is None:
        return None
    return all(all(won.values()) for won in figures["beats"].values()) and sanity["passes"]


def print_table(record: dict) -> None:
    print(f"\n{record['n']} {record['dataset']} images (seed {record['seed']}); deletion lower is better, rest higher:")
    print(f"{'method':<30}{'deletion':>10}{'insertion':>11}{'ROAD gap':>10}{'s/image':>9}  sanity")
    sanity = record.get("sanity", {}).get("methods", {})
    for name, figures in record["methods"].items():
        timing = f"{figures['seconds_per_image']:.3f}" if "seconds_per_image" in figures else "-"
        verdict_text = ("passes" if sanity[name]["passes"] else "fails") if name in sanity else "-"
        print(
            f"{name:<30}{figures['deletion_auc']:>10.3f}{figures['insertion_auc']:>11.3f}"
            f"{figures['road_gap']:>10.3f}{timing:>9}  {verdict_text}"
        )


if __name__ == "__main__":
    sys.exit(main())
