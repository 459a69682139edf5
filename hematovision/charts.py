"""Plotly figures and pandas tables for the pages: pure functions of plain data, testable without Streamlit."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hematovision.core.predict import ImageResult, Prediction
from hematovision.core.results_schema import ON_SCREEN, csv_columns, csv_row
from hematovision.heads.lab_profile import LabProfile
from hematovision.heads.metrics import wilson_interval
from hematovision.heads.morphology import ATTRIBUTES
from hematovision.workflows.differential import NRBC_CLASS, PLATELET_CLASS, Differential, interval_text
from hematovision.workflows.review import FLAG_UNCERTAIN, NOT_BLOOD, UNREADABLE, Review

HIGHLIGHT = "#c2185b"  # the predicted class: a strong magenta that reads on a projector
MUTED = "#90a4ae"
UNCERTAIN = "#f9a825"
FONT = {"size": 16}
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


def probability_chart(prediction: Prediction, threshold: float) -> go.Figure:
    """Horizontal bars of every class's calibrated probability, highest on top."""
    ranked = sorted(prediction.probabilities.items(), key=lambda item: item[1])
    labels = [label for label, _ in ranked]
    values = [100 * p for _, p in ranked]
    top_colour = UNCERTAIN if prediction.uncertain else HIGHLIGHT
    colours = [top_colour if label == prediction.label else MUTED for label in labels]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=colours,
            text=[f"{v:.1f}%" for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.2f}%<extra></extra>",
        )
    )
    figure.add_vline(
        x=100 * threshold,
        line_dash="dot",
        line_color="#455a64",
        annotation_text=f"uncertain below {100 * threshold:.0f}%",
        annotation_position="bottom right",
    )
    figure.update_layout(
        xaxis={"title": "calibrated confidence (%)", "range": [0, 115]},
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        height=60 + 32 * len(labels),
        font=FONT,
        showlegend=False,
    )
    return figure


#: What the on-screen table says where a column has no value (never a raw None or nan).
NO_CLASS_UNREADABLE = "none: could not be read"
NO_CLASS_NOT_BLOOD = "none: not a blood-cell image"
NOT_JUDGED = "not judged"


def results_table(results: Sequence[ImageResult]) -> pd.DataFrame:
    """One row per image or cell, every value in words or figures: a file without a class says why."""
    rows = []
    for result in results:
        prediction = result.prediction
        trusted = prediction is not None and not prediction.not_blood_cell
        problem = result.error or ("does not look like a blood-cell image" if prediction and not trusted else "")
        no_class = NO_CLASS_UNREADABLE if prediction is None else NO_CLASS_NOT_BLOOD
        rows.append(
            {
                "file": result.name,
                "class": prediction.label if trusted else no_class,
                "confidence (%)": f"{100 * prediction.confidence:.1f}" if trusted else NOT_JUDGED,
                "uncertain": _yes_no(prediction.uncertain) if trusted else NOT_JUDGED,
                "unfamiliar set-up": _yes_no(prediction.unfamiliar) if trusted else NOT_JUDGED,
                "lab profile": prediction.lab_profile if prediction else "",
                "notes": "; ".join(filter(None, [problem, *result.notes])),
            }
        )
    table = pd.DataFrame(rows, columns=list(ON_SCREEN))  # the headers, and what each shows: results_schema
    # A column that says nothing on every row is left off the screen; the CSV keeps every column.
    return table if table["lab profile"].any() else table.drop(columns="lab profile")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


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


def results_csv(
    results: Sequence[ImageResult], classes: Sequence[str], reviewed: Mapping[str, list] | None = None
) -> str:
    """The command line's table (hematovision.core.results_schema: every class probability, the morphology, the
    cell's box), then the reviewer's columns where the batch was reviewed."""
    table = pd.DataFrame([csv_row(result) for result in results], columns=csv_columns(classes))
    for column, values in (reviewed or {}).items():
        table[column] = values
    return table.to_csv(index=False)


def ece_noise_caption(report: dict) -> str:
    """How much calibration error this many images show by chance alone (empty for older evaluations)."""
    spread = report.get("ece_if_calibrated")
    if not spread:
        return ""
    return (
        f" On {report['n']:,} images a perfectly calibrated model would still show about "
        f"{100 * spread['median']:.1f}% by chance (95% of the time below {100 * spread['p95']:.1f}%)."
    )


def differential_table(differential: Differential) -> pd.DataFrame:
    """Each white-cell type: its count, its % of the white cells and that share's exact 95% interval; the total."""
    rows = [
        {
            "cell type": label,
            "count": count,
            "% of white cells": round(differential.percent[label], 1),
            "95% interval (%)": interval_text(differential.interval(label)),
        }
        for label, count in differential.white_cells.items()
    ]
    total = differential.total_white
    rows.append(
        {
            "cell type": "total white cells",
            "count": total,
            "% of white cells": 100.0 if total else 0.0,
            "95% interval (%)": "the whole count" if total else "no white cells counted",
        }
    )
    return pd.DataFrame(rows)


def set_apart_table(differential: Differential) -> pd.DataFrame:
    """What the percentages leave out: NRBC (per 100 white cells), platelets (per field), other classes,
    uncertain cells, cells cut by the edge where left out, images that are not blood cells, unreadable files.

    The counts are of the images and cells given, so the differential's total plus this table's counts is the
    batch; platelets the cell finder found in fields (never classified) are in the platelets' note.
    """
    rows = [
        {"group": "nucleated red cells (NRBC)", "class": NRBC_CLASS, "count": differential.nrbc,
         "note": nrbc_note(differential)},
        {"group": "platelets", "class": PLATELET_CLASS, "count": differential.platelets_classified,
         "note": platelet_note(differential)},
    ]  # fmt: skip
    rows += [
        {"group": "not a white cell", "class": label, "count": n, "note": ""}
        for label, n in differential.other_cells.items()
        if label not in (NRBC_CLASS, PLATELET_CLASS)
    ]
    rows += [
        {"group": "uncertain (check by eye)", "class": label, "count": n, "note": "not in the percentages"}
        for label, n in differential.uncertain.items()
    ]
    rows += [
        {"group": "cut by the photo's edge (left out)", "class": label, "count": n, "note": "not in the percentages"}
        for label, n in differential.cut_by_frame.items()
    ]
    if differential.not_blood_cells:
        rows.append({"group": "not a blood-cell image", "class": "no class given",
                     "count": differential.not_blood_cells, "note": ""})  # fmt: skip
    if differential.unreadable:
        rows.append({"group": "could not be read", "class": "no class given", "count": differential.unreadable,
                     "note": ""})  # fmt: skip
    return pd.DataFrame(rows, columns=["group", "class", "count", "note"])


def nrbc_note(differential: Differential) -> str:
    per_100 = differential.nrbc_per_100_white
    return "per 100 white cells: none counted" if per_100 is None else f"{per_100:.1f} per 100 white cells"


def platelet_note(differential: Differential) -> str:
    if not differential.fields:
        return "single-cell images: no count per field"
    found = differential.platelets_found
    found = f"plus {found} found in the fields, not classified; " if found else ""
    fields = differential.fields
    return f"{found}{differential.platelets_per_field:.1f} per field ({fields} field{'s' if fields != 1 else ''})"


def review_differential_table(network: Differential, reviewed: Differential) -> pd.DataFrame:
    """The white-cell differential by the network beside the one after review, each by the one rule."""
    table = pd.DataFrame(
        {
            "cell type": [*network.white_cells, "total white cells"],
            "network count": [*network.white_cells.values(), network.total_white],
            "network %": [*(round(v, 1) for v in network.percent.values()), 100.0 if network.total_white else 0.0],
            "reviewed count": [*reviewed.white_cells.values(), reviewed.total_white],
            "reviewed %": [*(round(v, 1) for v in reviewed.percent.values()), 100.0 if reviewed.total_white else 0.0],
        }
    )
    table["reviewed 95% interval (%)"] = differential_table(reviewed)["95% interval (%)"]
    return table


def review_apart_table(network: Differential, reviewed: Differential) -> pd.DataFrame:
    """NRBC, platelets and what is left out of the percentages, by the network and after review (as text)."""
    rows = []
    for name, value in (
        ("nucleated red cells (NRBC)", lambda d: f"{d.nrbc} ({nrbc_note(d)})"),
        ("platelets", lambda d: f"{d.platelets_classified} ({platelet_note(d)})"),
        ("other cells, not white", lambda d: _counts(d.other_cells, (NRBC_CLASS, PLATELET_CLASS))),
        ("uncertain, not looked at (left out)", lambda d: _counts(d.uncertain)),
        ("cut by the photo's edge (left out)", lambda d: _counts(d.cut_by_frame)),
        ("not a blood-cell image", lambda d: str(d.not_blood_cells)),
        ("could not be read", lambda d: str(d.unreadable)),
    ):
        rows.append({"counted apart": name, "network": value(network), "reviewed": value(reviewed)})
    return pd.DataFrame(rows)


def review_class_table(review: Review, classes: Sequence[str] = ()) -> pd.DataFrame:
    """Every class's count (erythroblasts and platelets among them), by the network and after review, with the
    images that got no class; ``classes`` in the model's order (else those the review holds)."""
    called = Counter(cell.network_class for cell in review.cells.values())
    uncertain = Counter(cell.network_class for cell in review.cells.values() if FLAG_UNCERTAIN in cell.flags)
    final = Counter(cell.final_class for cell in review.cells.values())
    names = list(classes) or sorted((set(called) | set(final)) - {NOT_BLOOD, UNREADABLE})
    names += [name for name in (NOT_BLOOD, UNREADABLE) if called[name] or final[name]]
    return pd.DataFrame(
        {
            "class": names,
            "called by the network": [called[name] for name in names],
            "of them uncertain": [uncertain[name] for name in names],
            "after review": [final[name] if name != UNREADABLE else called[name] for name in names],
        }
    )


def _counts(counts: Mapping[str, int], leave_out: Sequence[str] = ()) -> str:
    shown = {label: n for label, n in counts.items() if label not in leave_out}
    return ", ".join(f"{label} {n}" for label, n in shown.items()) or "none"


def confusion_heatmap(matrix: Sequence[Sequence[int]], labels: Sequence[str], normalise: bool) -> go.Figure:
    counts = np.asarray(matrix, dtype=np.float64)
    if normalise:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0) * 100
        text = [[f"{v:.1f}%" for v in row] for row in values]
    else:
        values = counts
        text = [[f"{int(v)}" for v in row] for row in values]
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=list(labels),
            y=list(labels),
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
            colorbar={"title": "% of row" if normalise else "images"},
        )
    )
    figure.update_layout(
        xaxis={"title": "predicted class", "side": "bottom"},
        yaxis={"title": "true class", "autorange": "reversed"},
        height=560,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        font=FONT,
    )
    return figure


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


#: How the training history's phase names read on a chart.
PHASE_NAMES = {"head": "head training", "fine_tune": "fine-tuning"}


def training_curves(history: Sequence[dict[str, Any]], metric: str) -> go.Figure:
    """``metric`` ('loss' or 'accuracy') for train and validation, epochs numbered across both phases.

    An averaged model's history names each row's ``member``: each member gets its own pair of lines.
    """
    figure = go.Figure()
    members = list(dict.fromkeys(row.get("member") for row in history))
    for member in members:
        rows = [row for row in history if row.get("member") == member]
        steps = list(range(1, len(rows) + 1))
        for key, name, dash in ((metric, "train", "solid"), (f"val_{metric}", "validation", "dash")):
            figure.add_trace(
                go.Scatter(
                    x=steps,
                    y=[row.get(key) for row in rows],
                    name=name if member is None else f"{name}, {member}",
                    mode="lines+markers",
                    line={"dash": dash},
                )
            )
    # Members train alike, so the first one's phase boundaries mark every member's.
    phases = [row.get("phase") for row in history if row.get("member") == members[0]] if history else []
    for i in range(1, len(phases)):
        if phases[i] != phases[i - 1]:
            # Labelled on the left of the line: plotly widens an autoranged axis to fit a label, and one on the
            # right of the last phase's start pushed the axis to 70 epochs for 44 in a half-width column.
            figure.add_vline(
                x=i + 0.5,
                line_dash="dot",
                annotation_text=f"{PHASE_NAMES.get(phases[i], phases[i])} starts",
                annotation_position="top left",
            )
    figure.update_layout(
        xaxis={"title": "epoch", "range": [0, len(phases) + 1]},
        yaxis_title=metric,
        height=400,
        font=FONT,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        # Below the plot, so that a half-width column keeps its width for the curves.
        legend={"orientation": "h", "yanchor": "top", "y": -0.25},
    )
    return figure


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


def reliability_diagram(report: dict[str, Any]) -> go.Figure:
    """Accuracy against confidence per bin, before and after temperature scaling."""
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], name="perfect calibration", mode="lines", line={"dash": "dot", "color": "#607d8b"}
        )
    )
    for key, name, colour in (
        ("reliability_uncalibrated", "before", MUTED),
        ("reliability", "after (temperature)", HIGHLIGHT),
    ):
        bins = report.get(key)
        if not bins:
            continue
        points = [(c, a, n) for c, a, n in zip(bins["confidence"], bins["accuracy"], bins["count"], strict=True) if n]
        figure.add_trace(
            go.Scatter(
                x=[c for c, _, _ in points],
                y=[a for _, a, _ in points],
                name=name,
                mode="lines+markers",
                marker={"size": [6 + 4 * np.log10(n) for _, _, n in points], "color": colour},
                line={"color": colour},
                customdata=[n for _, _, n in points],
                hovertemplate="confidence %{x:.3f}, accuracy %{y:.3f}, %{customdata} images<extra></extra>",
            )
        )
    figure.update_layout(
        xaxis={"title": "mean confidence in bin", "range": [0, 1.02]},
        yaxis={"title": "accuracy in bin", "range": [0, 1.02]},
        height=420,
        font=FONT,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
    )
    return figure


def class_counts_table(counts_by_split: dict[str, dict[str, int]]) -> pd.DataFrame:
    table = pd.DataFrame(counts_by_split).fillna(0).astype(int)
    table["total"] = table.sum(axis=1)
    table.index.name = "class"
    return table.reset_index()


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
            "not a blood cell (%)": _percent(rates["not_blood"]),
            "before (%)": _percent(earlier["not_blood"]) if earlier else None,
            "unfamiliar set-up (%)": _percent(rates.get("unfamiliar")),
            "accuracy (%)": _percent(scored.get("accuracy")),
            "ECE (%)": _percent(scored.get("ece")),
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
                "not a blood cell (%)": _percent(report.get("flagged_not_blood")),
                "unfamiliar (%)": _percent(report.get("flagged_unfamiliar")),
                "errors marked uncertain (%)": _percent(uncertain.get("share_of_errors")),
                "correct marked uncertain (%)": _percent(uncertain.get("share_of_correct")),
            }
        )
    return pd.DataFrame(rows)


def _percent(value: float | None) -> float | None:
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
                "recall (%)": _percent(scores["recall"]),
                "precision (%)": _percent(scores["precision"]),
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


def robustness_caption(robustness: dict[str, Any]) -> str:
    dataset = DATASET_NAMES.get(robustness["dataset"], robustness["dataset"])
    return (
        f"Every one of the {robustness['n']:,} images of the {dataset}, changed the way another lab's stain, camera, "
        "focus or magnification might change it (`python -m training.robustness`). A large drop means such images "
        "need checking by eye. Real images from another lab are the BCCD sets in 'Evaluated on' above."
    )


def setups_table(setups: dict[str, Any]) -> pd.DataFrame:
    """Accuracy and flag rates of each imitated set-up, from the evaluation JSON's "setups" section."""
    return pd.DataFrame(
        [
            {
                "set-up": row["setup"],
                "accuracy (%)": round(100 * row["accuracy"], 2),
                "ECE (%)": round(100 * row["ece"], 1),
                "not a blood cell (%)": _percent(row["flagged_not_blood"]),
                "unfamiliar (%)": _percent(row["flagged_unfamiliar"]),
                "lowest class recall": f"{row['lowest_recall_class']} {100 * row['lowest_recall']:.1f}%",
                "what it imitates": row["description"],
            }
            for row in setups["setups"]
        ]
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


def _sanity_of(record: dict[str, Any], method: str) -> dict[str, Any] | None:
    return record.get("sanity", {}).get("methods", {}).get(method)


def saliency_sample_note(record: dict[str, Any]) -> str:
    """How many images the figures rest on, saying so where the run has not measured its whole sample."""
    note = f"{record['n']} PBC test images (seed {record['seed']})"
    requested = record.get("n_requested", record["n"])
    if not record.get("complete", False) or record["n"] < requested:
        note += f", of {requested} sampled: the rest were not measured"
    return note


def _figure(value: float) -> str:
    return f"{round(value, 2) + 0.0:.2f}"  # + 0.0: no "-0.00"


def saliency_line(record: dict[str, Any], method: str) -> str | None:
    """One line for the Explain page: a method's faithfulness against both baselines and its sanity verdict."""
    figures = record.get("methods", {}).get(method)
    if figures is None:
        return None
    random, centre = (record["methods"][name] for name in ("random map", "centred blob"))

    def versus(key: str) -> str:
        return f"{_figure(figures[key])} (random {_figure(random[key])}, centre {_figure(centre[key])})"

    beaten = figures["beats"].values()
    won = sum(all(baseline[key] for baseline in beaten) for key in ("deletion", "insertion", "road"))
    line = (
        f"**{method}, measured on {record['n']} PBC test images:** deletion AUC ↓ {versus('deletion_auc')} · "
        f"insertion AUC ↑ {versus('insertion_auc')} · ROAD gap ↑ {versus('road_gap')} · beats both baselines on "
        f"{won} of 3"
    )
    sanity = _sanity_of(record, method)
    if sanity is not None:
        correlation = sanity["mean_abs_spearman"][sanity["rule_layer"]]
        outcome = "passes" if sanity["passes"] else "**fails**"
        line += (
            f" · sanity check {outcome} (|Spearman| {correlation:.2f} with the maps of a network randomised from "
            f"`{sanity['rule_layer']}` up; passes below {sanity['threshold']})"
        )
    return line + "."


def saliency_table(record: dict[str, Any]) -> pd.DataFrame:
    """Every method and both baselines: the three faithfulness figures, time per image and the sanity verdict."""
    rows = []
    for name, figures in record.get("methods", {}).items():
        sanity = _sanity_of(record, name)
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


def saliency_chart(record: dict[str, Any]) -> go.Figure:
    """Grouped bars of the three figures per method, baselines included, with standard errors."""
    names = list(record.get("methods", {}))
    figure = go.Figure()
    for key, label, colour in (
        ("deletion_auc", "deletion AUC (lower is better)", MUTED),
        ("insertion_auc", "insertion AUC (higher is better)", HIGHLIGHT),
        ("road_gap", "ROAD gap (higher is better)", "#5e35b1"),
    ):
        figures = [record["methods"][name] for name in names]
        figure.add_bar(
            name=label,
            x=names,
            y=[f[key] for f in figures],
            error_y={"type": "data", "array": [f.get(f"{key}_se") or 0.0 for f in figures]},
            marker_color=colour,
            hovertemplate="%{x}: %{y:.3f}<extra>" + label + "</extra>",
        )
    figure.update_layout(
        barmode="group",
        font=FONT,
        height=420,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": -0.12},
        yaxis_title="class probability (area or gap)",
    )
    return figure
