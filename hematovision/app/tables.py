"""The Model performance page's tables, built from the model folder's records (missing figures as a dash)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hematovision.app.captions import ATTRIBUTE_ANCHORS, DATASET_NAMES, OTHER_LAB_SETS, percent_with_se, sanity_of
from hematovision.heads.lab_profile import LabProfile
from hematovision.heads.metrics import wilson_interval
from hematovision.heads.morphology import ATTRIBUTES


def recall_interval(correct: int, support: int) -> str:
    """The Wilson interval of a recall as "0.926–0.971"; "—" where the dataset holds none of the class."""
    return "{:.3f}–{:.3f}".format(*wilson_interval(correct, support)) if support else "—"


def per_class_table(report: dict[str, Any]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, leaving out classes a dataset neither has nor got
    (another lab's crops hold four or five of the eight types; a class predicted there stays listed)."""
    matrix = np.asarray(report["confusion_matrix"])
    predicted = dict(zip(report["labels"], matrix.sum(axis=0), strict=True))
    correct = dict(zip(report["labels"], np.diag(matrix), strict=True))
    return pd.DataFrame(
        [
            {
                "class": name,
                "precision": round(scores["precision"], 4),
                "recall": round(scores["recall"], 4),
                "recall, 95% interval": recall_interval(int(correct[name]), scores["support"]),
                "F1": round(scores["f1"], 4),
                "support": scores["support"],
                "predicted": int(predicted[name]),
            }
            for name, scores in report["per_class"].items()
            if scores["support"] or predicted[name]
        ]
    )


def top_confusions(report: dict[str, Any], limit: int = 5) -> pd.DataFrame:
    """The most frequent (true class, predicted class) mistakes, largest first: where teaching starts."""
    matrix = np.asarray(report["confusion_matrix"])
    labels = report["labels"]
    mistakes = [
        (int(matrix[t, p]), labels[t], labels[p], matrix[t, p] / matrix[t].sum())
        for t in range(len(labels))
        for p in range(len(labels))
        if t != p and matrix[t, p]
    ]
    mistakes.sort(key=lambda row: (-row[0], row[1], row[2]))
    return pd.DataFrame(
        [
            {"true class": true, "called": called, "images": n, "% of the true class": round(100 * share, 1)}
            for n, true, called, share in mistakes[:limit]
        ],
        columns=["true class", "called", "images", "% of the true class"],
    )


def class_counts_table(counts_by_split: dict[str, dict[str, int]]) -> pd.DataFrame:
    table = pd.DataFrame(counts_by_split).fillna(0).astype(int)
    table["total"] = table.sum(axis=1)
    table.index.name = "class"
    return table.reset_index()


def novelty_table(novelty: dict[str, Any]) -> pd.DataFrame:
    """How often each kind of image is called "not a blood-cell image" or "unfamiliar set-up", and for the
    labelled blood cells how right and how calibrated the app's confidence is, beside the figures of the checks
    this fit replaced (where the report keeps them, under "before").

    From the evaluation JSON's "novelty" section, written by ``python -m training.novelty``: every row is
    data that took no part in fitting the checks or choosing their thresholds.
    """
    before = novelty.get("before", {})
    calibration = novelty.get("calibration", {})

    def lookup(report: dict, path: tuple[str, ...]) -> dict | None:
        for key in path:
            report = report.get(key) if isinstance(report, dict) else None
        return report

    def row(name: str, path: tuple[str, ...]) -> dict[str, Any]:
        rates, earlier = lookup(novelty, path), lookup(before, path)
        scored = lookup(calibration, path) or {}
        return {
            "images": name,
            "not a blood cell (%)": percent_or_none(rates["not_blood"]),
            "before (%)": percent_or_none(earlier["not_blood"]) if earlier else None,
            "unfamiliar set-up (%)": percent_or_none(rates.get("unfamiliar")),
            "accuracy (%)": percent_or_none(scored.get("accuracy")),
            "ECE (%)": percent_or_none(scored.get("ece")),
            "n": rates["n"],
        }

    labs = (
        ("pbc_test", "PBC test split (blood cells, training lab)"),
        ("bccd_crops_test", "BCCD crops, held-out photos (blood cells, another lab)"),
        ("chula_test", "Chula test sequences (blood cells, a third lab never trained on)"),
    )
    rows = [row(title, (key,)) for key, title in labs if key in novelty]
    rows += [
        row(f"PBC test, {name} (simulated lab change)", ("pbc_test_conditions", name))
        for name in novelty.get("pbc_test_conditions", {})
        if name != "as recorded"
    ]
    for key, title in (
        ("non_blood_generated", "generated non-blood images"),
        ("non_blood_photos", "photographs and micrographs never used in fitting"),
    ):
        rows.append(row(f"{title} (all)", (key,)))
        rows += [
            row(f"  … {name.replace('_', ' ')}", (key, "by_category", name))
            for name in novelty[key].get("by_category", {})
        ]
    return pd.DataFrame(rows)


def with_words_for_missing(table: pd.DataFrame, word: str = "—") -> pd.DataFrame:
    """The table as shown: a figure that was not measured reads as a dash, never as "None" or "nan"."""
    return table.astype(object).where(table.notna(), word)


def other_labs_table(evaluation: dict[str, Any]) -> pd.DataFrame:
    """One row per other-lab set: accuracy, calibration, flag rates and how well "uncertain" finds errors."""
    datasets = evaluation.get("datasets", {})
    rows = []
    for key in OTHER_LAB_SETS:
        report = datasets.get(key) or evaluation.get("leave_one_lab_out", {}).get(key)
        if report is None:
            continue
        uncertain = report.get("uncertain", {})
        rows.append(
            {
                "set": DATASET_NAMES.get(key, key),
                "n": report["n"],
                "accuracy (%)": round(100 * report["accuracy"], 1),
                "95% interval": "{:.1f}-{:.1f}".format(*(100 * v for v in report["accuracy_ci95"])),
                "ECE (%)": round(100 * report["ece"], 1),
                "not a blood cell (%)": percent_or_none(report.get("flagged_not_blood")),
                "unfamiliar (%)": percent_or_none(report.get("flagged_unfamiliar")),
                "errors marked uncertain (%)": percent_or_none(uncertain.get("share_of_errors")),
                "correct marked uncertain (%)": percent_or_none(uncertain.get("share_of_correct")),
            }
        )
    return pd.DataFrame(rows)


def percent_or_none(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def other_labs_recall_table(evaluation: dict[str, Any]) -> pd.DataFrame:
    """Recall per class (with its count) on each other-lab set, classes as rows."""
    datasets = evaluation.get("datasets", {})
    columns = {}
    for key in OTHER_LAB_SETS:
        report = datasets.get(key) or evaluation.get("leave_one_lab_out", {}).get(key)
        if report is None:
            continue
        columns[DATASET_NAMES.get(key, key)] = {
            name: f"{100 * scores['recall']:.0f}% of {scores['support']}"
            for name, scores in report["per_class"].items()
            if scores["support"]
        }
    return pd.DataFrame(columns).rename_axis("class").reset_index()


def detection_table(detection: dict[str, Any]) -> pd.DataFrame:
    """White-cell detection against the annotated BCCD boxes, per photo split."""
    return pd.DataFrame(
        [
            {
                "photos": f"{split} ({scores['photos']})",
                "annotated white cells": scores["wbc_boxes"],
                "found": scores["detections_on_annotated_photos"],
                "recall (%)": percent_or_none(scores["recall"]),
                "precision (%)": percent_or_none(scores["precision"]),
            }
            for split, scores in detection.items()
        ]
    )


def robustness_table(robustness: dict[str, Any]) -> pd.DataFrame:
    """Accuracy under each simulated other-lab condition, from the evaluation JSON's "robustness" section.

    The change is counted from the first condition, the images as recorded.
    """
    unchanged = robustness["conditions"][0]["accuracy"]
    return pd.DataFrame(
        [
            {
                "condition": row["condition"],
                "what it simulates": row["description"],
                "accuracy (%)": round(100 * row["accuracy"], 2),
                "change (points)": round(100 * (row["accuracy"] - unchanged), 2),
                "lowest class recall": f"{row['lowest_recall_class']} {100 * row['lowest_recall']:.1f}%",
            }
            for row in robustness["conditions"]
        ]
    )


def setups_table(setups: dict[str, Any]) -> pd.DataFrame:
    """Accuracy and flag rates of each imitated set-up, from the evaluation JSON's "setups" section."""
    return pd.DataFrame(
        [
            {
                "set-up": row["setup"],
                "accuracy (%)": round(100 * row["accuracy"], 2),
                "ECE (%)": round(100 * row["ece"], 1),
                "not a blood cell (%)": percent_or_none(row["flagged_not_blood"]),
                "unfamiliar (%)": percent_or_none(row["flagged_unfamiliar"]),
                "lowest class recall": f"{row['lowest_recall_class']} {100 * row['lowest_recall']:.1f}%",
                "what it imitates": row["description"],
            }
            for row in setups["setups"]
        ]
    )


def profile_table(profile: LabProfile) -> pd.DataFrame:
    """Examples and leave-one-out recall per class of a lab profile."""
    per_class = profile.leave_one_out["per_class"]
    return pd.DataFrame(
        [
            {
                "class": name,
                "examples": profile.counts[name],
                "leave-one-out recall (%)": round(100 * per_class[name], 1),
            }
            for name in profile.counts
        ]
    )


def attribute_scores_table(report: dict[str, Any]) -> pd.DataFrame:
    """Per-attribute accuracy and macro-F1 (evaluation.json's ``attributes``), their means last."""
    rows = [
        {
            "attribute": name.replace("_", " "),
            "values": ", ".join(report[name]["values"]),
            "accuracy (%)": round(100 * report[name]["accuracy"], 2),
            "macro-F1": round(report[name]["macro_f1"], 4),
        }
        for name in ATTRIBUTES
        if name in report
    ]
    mean = {"accuracy (%)": round(100 * report["mean_accuracy"], 2), "macro-F1": round(report["mean_macro_f1"], 4)}
    return pd.DataFrame([*rows, {"attribute": "mean", "values": "", **mean}])


def attribute_anchor_table(report: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "model": "HematoVision (this model, the manifest's test split)",
            "mean accuracy (%)": round(100 * report["mean_accuracy"], 2),
            "mean macro-F1": f"{report['mean_macro_f1']:.4f}",
        },
        *ATTRIBUTE_ANCHORS,
    ]
    return pd.DataFrame(rows)


def saliency_table(record: dict[str, Any]) -> pd.DataFrame:
    """Every method and both baselines: the three faithfulness figures, time per image and the sanity verdict."""
    rows = []
    for name, figures in record.get("methods", {}).items():
        sanity = sanity_of(record, name)
        beats = figures.get("beats")
        rows.append(
            {
                "method": f"{name} (baseline)" if figures.get("baseline") else name,
                "deletion AUC ↓": round(figures["deletion_auc"], 3),
                "insertion AUC ↑": round(figures["insertion_auc"], 3),
                "ROAD gap ↑": round(figures["road_gap"], 3),
                "beats both baselines on": (
                    ", ".join(key for key in ("deletion", "insertion", "road") if all(b[key] for b in beats.values()))
                    or "none"
                )
                if beats
                else "",
                "sanity": ("passes" if sanity["passes"] else "fails") if sanity else "",
                "sanity |Spearman|": round(sanity["mean_abs_spearman"][sanity["rule_layer"]], 2) if sanity else None,
                "s / image": round(figures["seconds_per_image"], 3) if "seconds_per_image" in figures else None,
            }
        )
    return pd.DataFrame(rows)


def pointing_table(record: dict[str, Any]) -> pd.DataFrame:
    """Every method of the pointing record: where its map peaks and how much of it lies on the cell, for cells in
    the middle, moved off-centre and in pairs (percent, ± standard error over cells)."""
    rows = []
    for method, figures in record.get("methods", {}).items():
        row = {"method": method + (" (baseline)" if figures.get("baseline") else "")}
        for key, words in (("centred", "centred"), ("off_centre", "off-centre"), ("composite", "pairs")):
            for measure, label in (("pointing", "peak on the cell"), ("mass_inside", "map on the cell")):
                figure = figures.get(key, {}).get(measure)
                row[f"{words}: {label}"] = percent_with_se(figure) if figure else "—"
        rows.append(row)
    return pd.DataFrame(rows)
