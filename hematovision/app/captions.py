"""The words under the figures: each caption read from the records it describes, never a fixed number."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hematovision.core.predict import ImageResult
from hematovision.heads.metrics import wilson_interval

DATASET_NAMES = {
    "pbc_test": "PBC test split (held out, training lab)",
    "pbc_val": "PBC validation split (used for calibration and thresholds)",
    "bccd_crops_test": "BCCD crops from held-out test photos (another lab, camera and stain)",
    "bccd_crops_val": "BCCD crops from validation photos (another lab; used for calibration)",
    "bccd_views_test": "BCCD 320x240 views of held-out test photos, turned and flipped (Automatic mode)",
    "bccd_photos_test": "BCCD whole held-out test photos at 320x240 (Automatic mode)",
    "pbc_only_on_bccd_all": "leave one lab out: a model trained on PBC alone, on every BCCD cell",
    "chula_test": "Chula test sequences (a third lab, video microscope; never trained on)",
}


OTHER_LABS_EXPECTATION = (
    "The model learned from one lab's CellaVision images (PBC) and a few white cells of a second lab (BCCD); "
    "the Chula lab's cells it never saw. On a lab it has never seen, expect it to be right far less often than on "
    "PBC's own test split: such cells are classified, marked *unfamiliar set-up*, with their confidence lowered "
    "to match. The leave-one-lab-out row is another guess for a new lab: a model trained without any BCCD image, "
    "scored on every BCCD cell. A lab profile made from a few of your own labelled cells (Lab profile page) "
    "corrects the model for your lab and says how well."
)

#: The sets from labs other than PBC's, in the order the Other labs view lists them.
OTHER_LAB_SETS = ("bccd_crops_test", "bccd_views_test", "bccd_photos_test", "chula_test", "pbc_only_on_bccd_all")

#: From this share of a batch's classified cells flagged *unfamiliar set-up*, the page says so once, at the top.
UNFAMILIAR_BATCH_SHARE = 0.5


def unfamiliar_batch_message(results: Sequence[ImageResult]) -> str | None:
    """The one message for a batch (two or more cells) mostly from a set-up unlike the training labs, or None."""
    classified = [r.prediction for r in results if r.prediction is not None and not r.prediction.not_blood_cell]
    flagged = sum(prediction.unfamiliar for prediction in classified)
    if len(classified) < 2 or flagged < UNFAMILIAR_BATCH_SHARE * len(classified):
        return None
    return (
        f"**{flagged} of {len(classified)} cells come from a set-up unlike the labs the model learned from** "
        "(another stain, camera or magnification). Each is still classified, marked *unfamiliar set-up*, with its "
        "confidence lowered to match how much less reliably such cells are read. A lab profile made from 5 "
        "labelled cells per class from your own microscope corrects the model for your lab, and its cells are "
        "then no longer flagged."
    )


def ece_noise_caption(report: dict) -> str:
    """How much calibration error this many images show by chance alone (empty for older evaluations)."""
    spread = report.get("ece_if_calibrated")
    if not spread:
        return ""
    return (
        f" On {report['n']:,} images a perfectly calibrated model would still show about "
        f"{100 * spread['median']:.1f}% by chance (95% of the time below {100 * spread['p95']:.1f}%)."
    )


def accuracy_interval_caption(report: dict[str, Any]) -> str:
    """How far the accuracy could move on another sample of the same size (Wilson interval)."""
    # From the confusion matrix, not the report's accuracy_ci95: evaluation files older than that key still work.
    matrix = np.asarray(report["confusion_matrix"])
    n = int(matrix.sum())
    low, high = wilson_interval(int(np.trace(matrix)), n)
    return (
        f"95% interval for the accuracy (Wilson): {100 * low:.1f}–{100 * high:.1f}%. "
        f"On {n:,} images one image moves the accuracy by {100 / max(n, 1):.2f} points."
    )


def training_curves_caption(training_config: dict[str, Any], class_count: int) -> str:
    """Why the loss steps up where fine-tuning starts, when it does: a reader would take it for a setback."""
    smoothing = training_config.get("label_smoothing") or 0.0
    if not smoothing:
        return "Loss and accuracy per epoch on the training and validation images."
    # Smoothed targets put 1 - s + s/K on the true class and s/K on each other one: their entropy is the lowest
    # loss a perfect model can reach.
    targets = [1 - smoothing + smoothing / class_count] + [smoothing / class_count] * (class_count - 1)
    floor = -sum(t * math.log(t) for t in targets)
    return (
        f"Loss and accuracy per epoch on the training and validation images. Fine-tuning trains on softened "
        f"targets (label smoothing {smoothing:g}), whose lowest reachable loss is {floor:.2f} for {class_count} "
        "classes instead of 0, so the loss steps up where fine-tuning starts while accuracy goes on rising."
    )


def extra_dataset_name(extra: dict[str, Any]) -> str:
    """The other lab's dataset name: its folder's, which training also uses for its metric keys."""
    return Path(extra["source"]).name


def extra_training_images(extra: dict[str, Any], kind: str = "images") -> str:
    """How many other-lab images training used: "332 images", or "332 crops of 166 white cells (2 scales each)"."""
    images = extra["counts"].get("train", 0)
    info = extra.get("crops") or {}
    cells = info.get("cells", {}).get("train")
    scales = len(info.get("train_margins", []))
    if not cells or images != cells * max(scales, 1):
        return f"{images} {kind}"
    return f"{images} crops of {cells} white cells" + (f" ({scales} scales each)" if scales > 1 else "")


def extra_data_caption(extra: dict[str, Any]) -> str:
    """One sentence on the other lab's images that training mixed in (the card's data["extra"])."""
    counts = extra["counts"]
    return (
        f"Training also used {extra_training_images(extra)} from another lab ({extra_dataset_name(extra)}, "
        f"each seen {extra.get('train_repeat', 1)}× per epoch); its {counts.get('val', 0)} validation and "
        f"{counts.get('test', 0)} test images were kept out of training."
    )


def network_note(backbone: dict[str, Any]) -> str:
    """The card's network in words: one backbone, or several trained alike whose outputs are averaged."""
    network = f"{backbone.get('architecture', '?')} (width {backbone.get('alpha', '?')})"
    members = backbone.get("members")
    if not members:
        return network
    return f"{members} × {network}, trained alike from different random seeds, their outputs averaged"


def other_labs_note(metrics: dict[str, Any], extra: dict[str, Any] | None) -> str:
    """What the model card says about images from labs other than the training lab."""
    accuracy = metrics.get(f"{extra_dataset_name(extra)}_test_accuracy") if extra else None
    if accuracy is None:
        return (
            "trained on one lab's images; images from other microscopes, stains or cameras can be classified "
            "wrongly and confidently (see Model performance)."
        )
    return (
        f"trained on one lab's images plus {extra_training_images(extra, 'white-cell crops')} from a second lab "
        f"({extra_dataset_name(extra)}): {100 * accuracy:.1f}% correct on that lab's held-out crops, against "
        f"{100 * metrics.get('accuracy', 0):.2f}% on the training lab's test split. A third lab's images may fare "
        "worse: check uncertain results by eye."
    )


def robustness_caption(robustness: dict[str, Any]) -> str:
    dataset = DATASET_NAMES.get(robustness["dataset"], robustness["dataset"])
    return (
        f"Every one of the {robustness['n']:,} images of the {dataset}, changed the way another lab's stain, camera, "
        "focus or magnification might change it (`python -m training.robustness`). A large drop means such images "
        "need checking by eye. Real images from another lab are the BCCD sets in 'Evaluated on' above."
    )


def setups_caption(setups: dict[str, Any]) -> str:
    dataset = DATASET_NAMES.get(setups["dataset"], setups["dataset"])
    n = setups["setups"][0]["n"] if setups["setups"] else 0
    return (
        f"The {n:,} images of the {dataset}, saved as other analysers and cameras would save them (smaller files, "
        "tighter crops, other stains) and read back as an upload is, in Automatic mode (`python -m training.setups`). "
        "Real other labs differ in more ways than these imitations: for a new lab, expect the BCCD and "
        "leave-one-lab-out figures above."
    )


#: What the attribute scores are set beside (Tsutsui et al., WBCAtt, NeurIPS 2023): their ResNet-50 on
#: their own test split, and how often two annotators agreed on 1,000 re-annotated images.
ATTRIBUTE_ANCHORS = (
    {"model": "WBCAtt paper: ResNet-50 (its own test split)", "mean accuracy (%)": 94.09, "mean macro-F1": "0.9127"},
    {
        "model": "WBCAtt paper: two human annotators (1,000 images)",
        "mean accuracy (%)": 96.1,
        "mean macro-F1": "not reported",
    },
)


def attribute_confidence_lines(attributes: dict[str, tuple[str, float]]) -> str:
    """One Markdown line per attribute, "cell size: **big** · 97.1%" (narrow enough for a popover)."""
    return "\n".join(
        f"- {name.replace('_', ' ')}: **{value}** · {100 * confidence:.1f}%"
        for name, (value, confidence) in attributes.items()
    )


def consistency_caption(check: dict[str, Any], split: str) -> str:
    return (
        f"Consistency check on the {split} split: of the {check['cells']} cells the network calls an annotated "
        "class, it "
        f"flags {check['caught_errors']} of its {check['class_errors']} class errors and "
        f"{check['flagged_correct']} of its {check['correct']} correct calls ({check['rule']})."
    )


def morphology_note(attributes: dict[str, Any]) -> str:
    """The Home page's line on the attribute heads, from the card's ``attributes``."""
    if not attributes:
        return "this model folder has no attribute heads: classes only, no morphology description."
    val = attributes.get("val", {})
    return (
        f"the {len(attributes.get('values', {}))} WBCAtt attributes of each {', '.join(attributes['classes'])} "
        f"cell, one calibrated head each on layer `{attributes['features_layer']}` (validation mean accuracy "
        f"{100 * val.get('mean_accuracy', 0):.1f}%, macro-F1 {val.get('mean_macro_f1', 0):.3f}; test scores on "
        "Model performance)."
    )


def sanity_of(record: dict[str, Any], method: str) -> dict[str, Any] | None:
    return record.get("sanity", {}).get("methods", {}).get(method)


def saliency_sample_note(record: dict[str, Any]) -> str:
    """How many images the figures rest on, saying so where the run has not measured its whole sample."""
    note = f"{record['n']} PBC test images (seed {record['seed']})"
    requested = record.get("n_requested", record["n"])
    if not record.get("complete", False) or record["n"] < requested:
        note += f", of {requested} sampled: the rest were not measured"
    return note


def figure_text(value: float) -> str:
    return f"{round(value, 2) + 0.0:.2f}"  # + 0.0: no "-0.00"


def saliency_line(record: dict[str, Any], method: str) -> str | None:
    """One line for the Explain page: a method's faithfulness against both baselines and its sanity verdict."""
    figures = record.get("methods", {}).get(method)
    if figures is None:
        return None
    random, centre = (record["methods"][name] for name in ("random map", "centred blob"))

    def versus(key: str) -> str:
        return f"{figure_text(figures[key])} (random {figure_text(random[key])}, centre {figure_text(centre[key])})"

    beaten = figures["beats"].values()
    won = sum(all(baseline[key] for baseline in beaten) for key in ("deletion", "insertion", "road"))
    line = (
        f"**{method}, measured on {record['n']} PBC test images:** deletion AUC ↓ {versus('deletion_auc')} · "
        f"insertion AUC ↑ {versus('insertion_auc')} · ROAD gap ↑ {versus('road_gap')} · beats both baselines on "
        f"{won} of 3"
    )
    sanity = sanity_of(record, method)
    if sanity is not None:
        correlation = sanity["mean_abs_spearman"][sanity["rule_layer"]]
        outcome = "passes" if sanity["passes"] else "**fails**"
        line += (
            f" · sanity check {outcome} (|Spearman| {correlation:.2f} with the maps of a network randomised from "
            f"`{sanity['rule_layer']}` up; passes below {sanity['threshold']})"
        )
    return line + "."


def percent_with_se(figure: dict[str, float]) -> str:
    return f"{100 * figure['mean']:.0f}% ± {100 * figure['se']:.0f}"


#: A class still called this often with its cell removed, at this mean probability, is read from the surroundings
#: (pointing_eval's check). The probability counts too: a network that answers nearly uniformly once the cell is
#: gone may keep the class on top without reading it anywhere (run 42's platelets: still on top, p 0.16).
READ_FROM_SURROUNDINGS = 0.5


def class_pointing_line(record: dict[str, Any], method: str, label: str) -> str | None:
    """For the class explained: how often the method's map points at off-centre cells of that class, and, where the
    network still calls the class with the cell removed, that no map of it can point at the cell; None where the
    record has neither for this class."""
    per_class = record.get("methods", {}).get(method, {}).get("off_centre", {}).get("by_class", {}).get(label)
    removed = record.get("cell_removed", {}).get(label)
    parts = []
    if per_class:
        share = 100 * per_class["mean"]
        parts.append(f"For **{label}** cells moved off-centre the peak is on the cell {share:.0f}% of the time "
                     f"({per_class['n']} cells).")  # fmt: skip
    if (
        removed
        and removed["still_called"] >= READ_FROM_SURROUNDINGS
        and removed["probability_after"] >= READ_FROM_SURROUNDINGS
    ):
        parts.append(
            f"With the cell itself removed (filled with red cells from the same image) the network still calls "
            f"{100 * removed['still_called']:.0f}% of these {label} images {label} (probability "
            f"{100 * removed['probability_before']:.1f}% → {100 * removed['probability_after']:.1f}%): it reads "
            f"{label} from the cells around it, so its map need not lie on the {label}."
        )
    return " ".join(parts) or None


def pointing_line(record: dict[str, Any], method: str) -> str | None:
    """One line for the Explain page: how often a method's map points at the cell when the cell is not in the
    middle, and at the right cell of two, against the centred blob (``training.pointing_eval``); None where the
    record does not hold the method."""
    figures = record.get("methods", {}).get(method)
    if figures is None:
        return None
    blob = record["methods"].get("centred blob", {})

    def versus(key: str) -> str:
        baseline = blob.get(key, {}).get("pointing")
        return percent_with_se(figures[key]["pointing"]) + (
            f" (centred blob {percent_with_se(baseline)})" if baseline else ""
        )

    targets = record.get("targets", {})
    return (
        f"**Does it point at the cell? {record['n_cells']} PBC {record['split']} cells moved off-centre:** the map's "
        f"peak on the cell {versus('off_centre')} (target {100 * targets.get('off_centre_pointing', 0.95):.0f}%) · "
        f"**{record['n_composites']} pairs of cells side by side:** on the cell of the class asked for "
        f"{versus('composite')} (target {100 * targets.get('composite_pointing', 0.9):.0f}%)."
    )
