"""Plotly figures: class probabilities, confusion matrix, training curves, reliability, saliency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from hematovision.core.predict import Prediction

HIGHLIGHT = "#c2185b"  # the predicted class: a strong magenta that reads on a projector
MUTED = "#90a4ae"
UNCERTAIN = "#f9a825"
FONT = {"size": 16}


def probability_chart(prediction: Prediction, threshold: float) -> go.Figure:
    """Horizontal bars of every class's calibrated probability, highest on top."""
    ranked = sorted(prediction.probabilities.items(), key=lambda item: item[1])
    labels = [label for label, _ in ranked]
    values = [100 * p for _, p in ranked]
    top_colour = UNCERTAIN if prediction.uncertain else HIGHLIGHT
    colours = [top_colour if label == prediction.label else MUTED for label in labels]
    # One constructor call with the line and its label as layout items: add_vline and update_layout each
    # re-validate the whole figure, and this chart is drawn for every image of every student's batch.
    line = {"type": "line", "xref": "x", "yref": "paper", "x0": 100 * threshold, "x1": 100 * threshold, "y0": 0,
            "y1": 1, "line": {"dash": "dot", "color": "#455a64"}}  # fmt: skip
    # The line's label ends at the line: to its right it would be cut off at the default 91%.
    label = {"text": f"uncertain below {100 * threshold:.0f}%", "xref": "x", "yref": "paper", "x": 100 * threshold,
             "y": 0, "xanchor": "right", "yanchor": "bottom", "showarrow": False}  # fmt: skip
    bars = {"type": "bar", "x": values, "y": labels, "orientation": "h", "marker": {"color": colours},
            "text": [f"{v:.1f}%" for v in values], "textposition": "outside", "cliponaxis": False,
            "hovertemplate": "%{y}: %{x:.2f}%<extra></extra>"}  # fmt: skip
    layout = {"xaxis": {"title": {"text": "calibrated confidence (%)"}, "range": [0, 115]}, "shapes": [line],
              "annotations": [label], "margin": {"l": 10, "r": 10, "t": 10, "b": 10}, "height": 60 + 32 * len(labels),
              "font": FONT, "showlegend": False}  # fmt: skip
    figure = go.Figure({"data": [bars], "layout": layout})
    return figure


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
