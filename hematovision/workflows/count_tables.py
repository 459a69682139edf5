"""The differential and the review's counts as tables: the same on screen and in the PDF report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import pandas as pd

from hematovision.workflows.differential import NRBC_CLASS, PLATELET_CLASS, Differential, interval_text
from hematovision.workflows.review import FLAG_UNCERTAIN, NOT_BLOOD, UNREADABLE, Review


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
        ("other cells, not white", lambda d: counts_text(d.other_cells, (NRBC_CLASS, PLATELET_CLASS))),
        ("uncertain, not looked at (left out)", lambda d: counts_text(d.uncertain)),
        ("cut by the photo's edge (left out)", lambda d: counts_text(d.cut_by_frame)),
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


def counts_text(counts: Mapping[str, int], leave_out: Sequence[str] = ()) -> str:
    shown = {label: n for label, n in counts.items() if label not in leave_out}
    return ", ".join(f"{label} {n}" for label, n in shown.items()) or "none"
