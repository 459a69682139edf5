"""The differential count as a haematology lab reports it: one rule for Classify, Review, the CLIs and the PDF.

- Each white-cell type as a count and a percentage of the white cells counted, with its exact 95% binomial
  interval (Clopper-Pearson, the interval Rümke's table and CLSI H20 tabulate): how far the true share may lie
  from the one counted, given how few cells were counted.
- Nucleated red cells (erythroblasts, NRBC) are not white cells: they are reported per 100 white cells.
- Platelets are counted apart: those classified, plus, in fields of view, those the cell finder found
  (:func:`hematovision.core.smear.find_platelets`, never classified one by one), given per field.
- Uncertain cells, unreadable files, images that are not blood cells and (where the protocol leaves them out)
  cells cut by the photo's edge are counted apart, never in the percentages.
- Below :data:`MIN_WHITE_CELLS` white cells (ICSH and CLSI H20 count 100 to 200) :func:`count_warning` says
  plainly that the percentages are not a differential yet.

A cell enters as a :class:`Call` (what it was called, and the flags that decide where it is counted), so the
network's calls on Classify and the reviewer's on Review are counted by the same function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from scipy.special import betaincinv

from hematovision.core.predict import ImageResult

#: Fewer white cells than this, and the percentages are not a differential yet (ICSH; CLSI H20 counts 100-200).
MIN_WHITE_CELLS = 100
#: The model's class for nucleated red cells (NRBC), reported per 100 white cells.
NRBC_CLASS = "erythroblast"
PLATELET_CLASS = "platelet"
CONFIDENCE = 0.95


def clopper_pearson(count: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact (Clopper-Pearson) binomial interval for ``count`` of ``total``, as shares (0 to 1).

    The interval of Rümke's table (CLSI H20): for 10 cells of 100, 4.9% to 17.6%. (0, 1) for no cells at all.
    """
    if not 0 <= count <= total:
        raise ValueError(f"expected 0 <= count <= total, got {count} of {total}")
    if total == 0:
        return 0.0, 1.0
    tail = (1 - confidence) / 2
    low = 0.0 if count == 0 else float(betaincinv(count, total - count + 1, tail))
    high = 1.0 if count == total else float(betaincinv(count + 1, total - count, 1 - tail))
    return low, high


@dataclass(frozen=True)
class Call:
    """One image or cell as the count sees it. ``label`` is its class (None where there is none to give)."""

    label: str | None
    unreadable: bool = False
    not_blood_cell: bool = False
    uncertain: bool = False
    cut_by_frame: bool = False
    #: The field of view the cell was found in (its file), or "" for an image classified as one cell.
    field: str = ""


@dataclass
class Differential:
    """Counts over confidently classified white cells, with everything else kept apart.

    ``white_cells`` holds every white-cell class (zero counts included) so rows line up between
    batches; ``percent`` is over their total. Uncertain cells are not in the percentages, because
    a differential is only as good as its least certain cell; they are listed apart for review.
    Cells cut by a photo's edge are counted unless the caller leaves them out, as some counting
    protocols do; left out, they are listed apart by the class they were given.
    """

    white_cells: dict[str, int]
    percent: dict[str, float]
    other_cells: dict[str, int]
    uncertain: dict[str, int]
    unreadable: int
    not_blood_cells: int = 0
    cut_by_frame: dict[str, int] = field(default_factory=dict)
    #: Fields of view the cells came from (0 where every image was one cell).
    fields: int = 0
    #: Platelets the cell finder found in those fields (never classified, so in no other count).
    platelets_found: int = 0
    #: Cells of those fields confidently called platelets (also in ``other_cells``).
    platelet_calls_in_fields: int = 0

    @property
    def total_white(self) -> int:
        return sum(self.white_cells.values())

    def interval(self, label: str) -> tuple[float, float] | None:
        """The 95% interval of a white-cell type's percentage (None with no white cell counted)."""
        if not self.total_white:
            return None
        low, high = clopper_pearson(self.white_cells[label], self.total_white)
        return 100 * low, 100 * high

    @property
    def nrbc(self) -> int:
        return self.other_cells.get(NRBC_CLASS, 0)

    @property
    def nrbc_per_100_white(self) -> float | None:
        """Nucleated red cells per 100 white cells, as labs report them (None with no white cell counted)."""
        return 100 * self.nrbc / self.total_white if self.total_white else None

    @property
    def platelets_classified(self) -> int:
        return self.other_cells.get(PLATELET_CLASS, 0)

    @property
    def platelets(self) -> int:
        """Every platelet: classified, or found in a field."""
        return self.platelets_classified + self.platelets_found

    @property
    def platelets_per_field(self) -> float | None:
        return (self.platelets_found + self.platelet_calls_in_fields) / self.fields if self.fields else None

    @property
    def enough(self) -> bool:
        return self.total_white >= MIN_WHITE_CELLS

    @property
    def accounted_for(self) -> int:
        """Every image or cell the count was given, wherever it went."""
        return (
            self.total_white
            + sum(self.other_cells.values())
            + sum(self.uncertain.values())
            + sum(self.cut_by_frame.values())
            + self.unreadable
            + self.not_blood_cells
        )


def count(
    calls: Iterable[Call],
    white_cell_classes: Sequence[str],
    count_cut_cells: bool = True,
    field_platelets: Mapping[str, int] | None = None,
) -> Differential:
    """The differential of ``calls``: the one rule every page, command and report counts by.

    ``field_platelets``: the platelets the cell finder found in each field, by the fields' names in ``Call.field``.
    """
    white = dict.fromkeys(white_cell_classes, 0)
    other: dict[str, int] = {}
    uncertain: dict[str, int] = {}
    cut: dict[str, int] = {}
    unreadable = not_blood_cells = platelet_calls_in_fields = 0
    fields = set()
    for call in calls:
        if call.field:
            fields.add(call.field)
        counted = not (call.unreadable or call.not_blood_cell or call.uncertain)
        if call.field and call.label == PLATELET_CLASS and counted and (count_cut_cells or not call.cut_by_frame):
            platelet_calls_in_fields += 1
        if call.unreadable or call.label is None:
            unreadable += 1
        elif call.not_blood_cell:
            not_blood_cells += 1
        elif call.cut_by_frame and not count_cut_cells:
            cut[call.label] = cut.get(call.label, 0) + 1
        elif call.uncertain:
            uncertain[call.label] = uncertain.get(call.label, 0) + 1
        elif call.label in white:
            white[call.label] += 1
        else:
            other[call.label] = other.get(call.label, 0) + 1
    total = sum(white.values())
    percent = {label: (100.0 * n / total if total else 0.0) for label, n in white.items()}
    found = sum((field_platelets or {}).get(name, 0) for name in fields)
    return Differential(
        white,
        percent,
        dict(sorted(other.items())),
        dict(sorted(uncertain.items())),
        unreadable,
        not_blood_cells,
        dict(sorted(cut.items())),
        len(fields),
        found,
        platelet_calls_in_fields,
    )


def network_call(result: ImageResult) -> Call:
    """How the count sees one classified image or cell, as the network called it."""
    prediction = result.prediction
    in_field = result.box is not None or result.field_platelets is not None
    where = (result.source or result.name) if in_field else ""
    if prediction is None:
        return Call(None, unreadable=True, field=where)
    return Call(
        prediction.label,
        not_blood_cell=prediction.not_blood_cell,
        uncertain=prediction.uncertain,
        cut_by_frame=result.cut_by_frame,
        field=where,
    )


def differential_count(
    results: Sequence[ImageResult], white_cell_classes: Sequence[str], count_cut_cells: bool = True
) -> Differential:
    """The network's differential of a classified batch."""
    calls = [network_call(result) for result in results]
    return count(calls, white_cell_classes, count_cut_cells, platelets_by_field(results))


def platelets_by_field(results: Iterable[ImageResult]) -> dict[str, int]:
    """The platelets found in each field of view of a batch, by the field's file name."""
    return {r.source or r.name: r.field_platelets for r in results if r.field_platelets is not None}


def percent_text(value: float) -> str:
    return f"{value:.1f}"


def interval_text(interval: tuple[float, float] | None) -> str:
    """The interval as "4.9–17.6" (percent), or words where there is none."""
    return "no white cells counted" if interval is None else f"{interval[0]:.1f}–{interval[1]:.1f}"


def count_warning(differential: Differential) -> str | None:
    """The plain warning for a count below :data:`MIN_WHITE_CELLS` white cells, with an interval that shows why."""
    total = differential.total_white
    if total >= MIN_WHITE_CELLS:
        return None
    if total == 0:
        return (
            "No white cell was counted with confidence, so there is no differential. A differential counts "
            f"{MIN_WHITE_CELLS} to 200 white cells (ICSH; CLSI H20)."
        )
    label = max(differential.white_cells, key=differential.white_cells.get)
    low, high = differential.interval(label)
    return (
        f"Only {total} white cell{'s' if total != 1 else ''} counted: these percentages are not a differential "
        f"yet. A differential counts {MIN_WHITE_CELLS} to 200 white cells (ICSH; CLSI H20). With {total}, "
        f"{label} at {differential.percent[label]:.0f}% could truly be anywhere from {low:.0f}% to {high:.0f}% "
        "(95% interval)."
    )


def summary_lines(differential: Differential) -> list[str]:
    """The differential as plain lines of text, for the command line (every class, NRBC, platelets, the rest)."""
    total = differential.total_white
    lines = [f"{'cell type':<22}{'count':>6}{'% of WBC':>10}  95% interval"]
    for label, n in differential.white_cells.items():
        shown = percent_text(differential.percent[label]) if total else "-"
        lines.append(f"{label:<22}{n:>6}{shown:>10}  {interval_text(differential.interval(label))}")
    lines.append(f"{'total white cells':<22}{total:>6}")
    lines += [f"  {line}" for line in apart_lines(differential)]
    warning = count_warning(differential)
    if warning:
        lines.append(f"warning: {warning}")
    return lines


def nrbc_text(differential: Differential) -> str:
    per_100 = differential.nrbc_per_100_white
    figure = "not given: no white cell counted" if per_100 is None else f"{per_100:.1f} per 100 white cells"
    return f"{differential.nrbc} ({figure})"


def platelet_text(differential: Differential) -> str:
    """Every platelet, and per field: "7 (5 found in fields, not classified; 2.3 per field, 3 fields)"."""
    parts = []
    if differential.platelets_found:
        parts.append(f"{differential.platelets_found} found in fields, not classified")
    per_field, fields = differential.platelets_per_field, differential.fields
    if per_field is not None:
        parts.append(f"{per_field:.1f} per field, {fields} field{'s' if fields != 1 else ''}")
    return f"{differential.platelets}" + (f" ({'; '.join(parts)})" if parts else "")


def apart_lines(differential: Differential) -> list[str]:
    """NRBC, platelets and everything left out of the percentages, each with its count."""
    lines = [f"nucleated red cells (erythroblasts): {nrbc_text(differential)}",
             f"platelets: {platelet_text(differential)}"]  # fmt: skip
    others = {k: v for k, v in differential.other_cells.items() if k not in (NRBC_CLASS, PLATELET_CLASS)}
    lines += [f"{label} (not a white cell): {n}" for label, n in others.items()]
    lines += [f"uncertain, left out (check by eye): {label} {n}" for label, n in differential.uncertain.items()]
    lines += [f"cut by the photo's edge, left out: {label} {n}" for label, n in differential.cut_by_frame.items()]
    if differential.not_blood_cells:
        lines.append(f"not a blood-cell image: {differential.not_blood_cells}")
    if differential.unreadable:
        lines.append(f"could not be read: {differential.unreadable}")
    return lines
