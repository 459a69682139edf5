"""The differential count: how many of each white-cell type, as a lab reports it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hematovision.predict import ImageResult


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

    @property
    def total_white(self) -> int:
        return sum(self.white_cells.values())


def differential_count(
    results: Sequence[ImageResult], white_cell_classes: Sequence[str], count_cut_cells: bool = True
) -> Differential:
    white = dict.fromkeys(white_cell_classes, 0)
    other: dict[str, int] = {}
    uncertain: dict[str, int] = {}
    cut: dict[str, int] = {}
    unreadable = not_blood_cells = 0
    for result in results:
        prediction = result.prediction
        if prediction is None:
            unreadable += 1
        elif prediction.not_blood_cell:
            not_blood_cells += 1
        elif result.cut_by_frame and not count_cut_cells:
            cut[prediction.label] = cut.get(prediction.label, 0) + 1
        elif prediction.uncertain:
            uncertain[prediction.label] = uncertain.get(prediction.label, 0) + 1
        elif prediction.label in white:
            white[prediction.label] += 1
        else:
            other[prediction.label] = other.get(prediction.label, 0) + 1
    total = sum(white.values())
    percent = {label: (100.0 * count / total if total else 0.0) for label, count in white.items()}
    return Differential(
        white,
        percent,
        dict(sorted(other.items())),
        dict(sorted(uncertain.items())),
        unreadable,
        not_blood_cells,
        dict(sorted(cut.items())),
    )
