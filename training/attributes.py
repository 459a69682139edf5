"""Fit the WBCAtt attribute heads on the shipped network's features and add them to an artifact folder.

    python -m training.attributes --model models --data ../shared/data [--layer LAYER] [--cache FILE]

The network is not retrained: every white cell of the manifest goes through the app's own path
(``Classifier.model_input`` then ``network_outputs``), and one softmax regression per attribute
is fitted on the card's features layer averaged over the middle of its map (the centre features the runtime
already returns, so the attributes cost the app no extra inference). On the train split only; the L2 strength and
whether values are weighed by their inverse frequency are chosen on the val split by macro-F1, and
one temperature per head is fitted on val. The test split is scored once, at the end.

``--layer out_relu`` (the pooled penultimate features, read through Keras) fits and reports on val
for comparison, and writes nothing: the app's runtime does not return that layer.

Writes ``attributes.npz``, the card's ``attributes`` entry and evaluation.json's ``attributes`` key
(test scores, and the consistency check measured on val and test).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hematovision.core import paths
from hematovision.core.artifacts import load_evaluation, read_json, write_json
from hematovision.core.datasets import AttributeRow, find_manifest, read_attribute_rows
from hematovision.core.predict import Classifier, load_for_command
from hematovision.heads.metrics import confusion_matrix, fit_temperature, macro_f1
from hematovision.heads.morphology import (
    ANNOTATED_CLASSES,
    ATTRIBUTES,
    ATTRIBUTES_FILE,
    RARE_WITH_CLASS,
    AttributeHeads,
    Head,
    consistency_report,
    fit_head,
    score_attributes,
)

#: From strong to weak: each fit starts from the previous one.
L2_GRID = (3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4)
PENULTIMATE_LAYER = "out_relu"
DEFAULT_CACHE = Path("/tmp/hematovision_attribute_features.npz")


def needed_rows(rows: list[AttributeRow]) -> list[AttributeRow]:
    """The annotated cells of every split, and every val and test cell (the consistency check is measured
    on every cell the network calls an annotated class, whatever it really is)."""
    return [row for row in rows if row.label in ANNOTATED_CLASSES or row.split in ("val", "test")]


def extract(classifier: Classifier, rows: list[AttributeRow], layer: str, cache: Path | None) -> dict[str, np.ndarray]:
    """Features for the attribute heads and the class logits of every row, through the app's input path:
    for the card's layer the runtime's centre features ("features") beside its whole-map ones ("whole_map"),
    for another layer its whole map pooled; reused from ``cache`` when made from the same model, layer and images."""
    key = hashlib.sha1(
        "\n".join([classifier.model_id, layer, "centre", *(str(row.path) for row in rows)]).encode()
    ).hexdigest()
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            if str(stored["key"]) == key:
                print(f"features from {cache}", flush=True)
                return {name: stored[name] for name in ("features", "whole_map", "logits")}
    started = time.time()
    with ThreadPoolExecutor(2) as pool:
        inputs = np.stack(list(pool.map(lambda row: classifier.model_input(row.path), rows)))
    print(f"decoded and framed {len(inputs)} images in {time.time() - started:.0f} s", flush=True)
    whole_map, logits, features = classifier.network_outputs(inputs)
    if layer != classifier.card.features_layer:
        features = whole_map = penultimate_features(classifier, inputs, layer)
    print(f"features {features.shape} in {time.time() - started:.0f} s", flush=True)
    if cache is not None:
        np.savez(cache, key=np.array(key), features=features, whole_map=whole_map, logits=logits)
    return {"features": features, "whole_map": whole_map, "logits": logits}


def penultimate_features(classifier: Classifier, inputs: np.ndarray, layer: str) -> np.ndarray:
    import keras
    import tensorflow as tf

    model = classifier.model
    pooled = keras.Model(model.inputs, keras.layers.GlobalAveragePooling2D()(model.get_layer(layer).output))
    compiled = tf.function(lambda images: pooled(tf.cast(images, tf.float32), training=False))
    return np.concatenate([compiled(inputs[i : i + 64]).numpy() for i in range(0, len(inputs), 64)])


def value_indices(rows: list[AttributeRow], name: str) -> np.ndarray:
    return np.array([ATTRIBUTES[name].index(row.attributes[name]) for row in rows])


def fit_heads(features: np.ndarray, rows: list[AttributeRow], layer: str) -> tuple[AttributeHeads, dict[str, dict]]:
    """Heads fitted on train, chosen and calibrated on val; returns them and what was chosen."""
    train = np.array([row.split == "train" and row.label in ANNOTATED_CLASSES for row in rows])
    val = np.array([row.split == "val" and row.label in ANNOTATED_CLASSES for row in rows])
    train_rows = [row for row, keep in zip(rows, train, strict=True) if keep]
    val_rows = [row for row, keep in zip(rows, val, strict=True) if keep]
    mean = features[train].mean(axis=0)
    scale = features[train].std(axis=0) + 1e-6
    x_train, x_val = (features[train] - mean) / scale, (features[val] - mean) / scale
    heads, chosen = {}, {}
    for name, values in ATTRIBUTES.items():
        y_train, y_val = value_indices(train_rows, name), value_indices(val_rows, name)
        best = None
        for balanced in (False, True):
            previous = None
            for l2 in L2_GRID:
                weights, bias = previous = fit_head(x_train, y_train, len(values), l2, balanced, previous)
                predicted = (x_val @ weights + bias).argmax(axis=1)
                f1 = macro_f1(confusion_matrix(y_val, predicted, len(values)))
                accuracy = float((predicted == y_val).mean())
                if best is None or (f1, accuracy) > (best["val_macro_f1"], best["val_accuracy"]):
                    best = {"l2": l2, "balanced": balanced, "val_macro_f1": f1, "val_accuracy": accuracy}
                    best_head = (weights, bias)
        weights, bias = best_head
        temperature = fit_temperature(x_val @ weights + bias, y_val)
        heads[name] = Head(weights, bias, temperature)
        chosen[name] = {**best, "temperature": round(temperature, 4)}
        print(
            f"{name:<27} l2 {best['l2']:<7g} balanced {best['balanced']!s:<5}  val accuracy "
            f"{best['val_accuracy']:.4f}  macro-F1 {best['val_macro_f1']:.4f}  T {temperature:.3f}",
            flush=True,
        )
    frequencies = {name: train_frequencies(train_rows, name) for name in ATTRIBUTES}
    return AttributeHeads(layer, mean, scale, heads, frequencies), chosen


def train_frequencies(train_rows: list[AttributeRow], name: str) -> np.ndarray:
    """(annotated classes, values): the share of each class's training cells with each value."""
    counts = np.zeros((len(ANNOTATED_CLASSES), len(ATTRIBUTES[name])))
    for row in train_rows:
        counts[ANNOTATED_CLASSES.index(row.label), ATTRIBUTES[name].index(row.attributes[name])] += 1
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def split_report(
    heads: AttributeHeads, features: np.ndarray, logits: np.ndarray, rows: list[AttributeRow], split: str, classes
) -> tuple[dict, dict]:
    """Attribute scores on the split's annotated cells, and the consistency check on all its cells."""
    annotated = np.array([row.split == split and row.label in ANNOTATED_CLASSES for row in rows])
    truth = {
        name: [row.attributes[name] for row, keep in zip(rows, annotated, strict=True) if keep] for name in ATTRIBUTES
    }
    scores = score_attributes(heads, features[annotated], truth)
    in_split = np.array([row.split == split for row in rows])
    labels = [classes[i] for i in logits[in_split].argmax(axis=1)]
    true_labels = [row.label for row, keep in zip(rows, in_split, strict=True) if keep]
    check = consistency_report(heads, features[in_split], labels, true_labels)
    return scores, check


def test_scores(classifier: Classifier, manifest: Path) -> dict | None:
    """Each attribute's accuracy, macro-F1 and confusion matrix on the manifest's annotated test cells, by
    the folder's attribute heads (None where the folder has none or the manifest no attributes)."""
    if classifier.attributes is None:
        return None
    rows = [
        row
        for row in read_attribute_rows(manifest, ATTRIBUTES)
        if row.split == "test" and row.label in ANNOTATED_CLASSES and all(row.attributes.values())
    ]
    if not rows:
        return None
    extracted = extract(classifier, rows, classifier.card.features_layer, cache=None)
    features = classifier.attribute_features(extracted["whole_map"], extracted["features"])
    truth = {name: [row.attributes[name] for row in rows] for name in ATTRIBUTES}
    return score_attributes(classifier.attributes, features, truth)


def print_scores(scores: dict, title: str, matrices: bool = False) -> None:
    print(f"{title}: mean accuracy {scores['mean_accuracy']:.4f}  mean macro-F1 {scores['mean_macro_f1']:.4f}")
    for name in ATTRIBUTES:
        item = scores[name]
        print(f"  {name:<27} accuracy {item['accuracy']:.4f}  macro-F1 {item['macro_f1']:.4f}  n {item['n']}")
        if matrices:
            print("    confusion (rows true, columns predicted): " + ", ".join(item["values"]))
            for value, row in zip(item["values"], item["confusion_matrix"], strict=True):
                print(f"    {value:<22}" + "".join(f"{count:>7}" for count in row))


def print_check(check: dict, split: str) -> None:
    print(
        f"consistency check on {split}: flags {check['caught_errors']} of {check['class_errors']} class errors "
        f"and {check['flagged_correct']} of {check['correct']} correct cells "
        f"(cells called {', '.join(ANNOTATED_CLASSES)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.attributes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=paths.SHIPPED_MODEL_DIR, help="artifact folder")
    parser.add_argument("--data", type=Path, default=paths.SHARED_DATA_DIR, help="folder of pbc_manifest.csv")
    parser.add_argument("--layer", help="features layer (default: the card's); another one is only compared on val")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where to keep the computed features")
    args = parser.parse_args(argv)

    manifest = find_manifest(args.data)
    if manifest is None:
        print(f"error: no manifest in {args.data}", file=sys.stderr)
        return 2
    classifier = load_for_command(args.model)
    if classifier is None:
        return 2
    layer = args.layer or classifier.card.features_layer
    rows = needed_rows(read_attribute_rows(manifest, ATTRIBUTES))
    cache = args.cache.with_suffix(f".{layer}.npz") if args.cache else None
    extracted = extract(classifier, rows, layer, cache)
    heads, chosen = fit_heads(extracted["features"], rows, layer)
    val_scores, val_check = split_report(
        heads, extracted["features"], extracted["logits"], rows, "val", classifier.classes
    )
    print_scores(val_scores, f"val ({layer})")
    if layer != classifier.card.features_layer:
        print(f"{layer} compared only: nothing written (the runtime returns {classifier.card.features_layer})")
        return 0
    print_check(val_check, "val")

    # The test split, once: it chose nothing above.
    test_scores, test_check = split_report(
        heads, extracted["features"], extracted["logits"], rows, "test", classifier.classes
    )
    print_scores(test_scores, "test", matrices=True)
    print_check(test_check, "test")

    heads.save(args.model / ATTRIBUTES_FILE)
    card_path = args.model / paths.CARD_FILE
    card = read_json(card_path)
    card["attributes"] = {
        "file": ATTRIBUTES_FILE,
        "features_layer": layer,
        "pooling": heads.pooling,
        "classes": list(ANNOTATED_CLASSES),
        "values": {name: list(values) for name, values in ATTRIBUTES.items()},
        "heads": chosen,
        "method": "softmax regression per attribute on standardised features (the layer averaged over the middle "
        "of its map), fitted on the manifest's "
        "train split; L2 and value weighting chosen on val by macro-F1; temperature fitted on val",
        "consistency_rule": f"a predicted value seen with the predicted class in under {100 * RARE_WITH_CLASS:g}% "
        "of that class's training cells",
        "val": {"mean_accuracy": val_scores["mean_accuracy"], "mean_macro_f1": val_scores["mean_macro_f1"]},
    }
    write_json(card_path, card)
    evaluation = load_evaluation(args.model)
    evaluation["attributes"] = {
        **test_scores,
        "split": "test",
        "source": f"{manifest} (test split, annotated white cells)",
        "consistency_check": {"val": val_check, "test": test_check},
    }
    write_json(args.model / paths.EVALUATION_FILE, evaluation)
    print(f"written {args.model / ATTRIBUTES_FILE}, the card's 'attributes' and evaluation.json's 'attributes'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
