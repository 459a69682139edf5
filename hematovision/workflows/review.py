"""A reviewer's corrections to a classified batch, kept beside the network's calls and never over them.

A :class:`Review` holds one :class:`CellReview` per classified image or cell, keyed by the SHA-256 of the
image file's bytes (plus the cell's box for a cell found in a field of view), so that a review saved as JSON
can be loaded again with the same images, whatever their names, and anything that does not match is named.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

from hematovision.core.predict import ImageResult
from hematovision.heads.morphology import describe
from hematovision.workflows.differential import Call, Differential, count

REVIEW_FORMAT = "hematovision-review/1"
NOT_BLOOD = "not a blood cell"
UNREADABLE = "unreadable"

FLAG_UNCERTAIN = "uncertain"
FLAG_UNFAMILIAR = "unfamiliar set-up"
FLAG_NOT_BLOOD = "not a blood-cell image"
FLAG_CUT = "cut by the photo's edge"
FLAG_UNREADABLE = "could not be read"
FLAG_MORPHOLOGY = "morphology does not fit the class"


class ReviewError(ValueError):
    """A review file that cannot be used, with a message fit for the user."""


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cell_key(digest: str, result: ImageResult) -> str:
    """The file's hash, plus the cell's box where the cell was found in a field of view."""
    box = result.box
    return digest if box is None else f"{digest}@{box.left},{box.top},{box.right},{box.bottom}"


@dataclass
class CellReview:
    key: str
    name: str
    #: The network's call: a class, NOT_BLOOD or UNREADABLE. Never changed by the review.
    network_class: str
    confidence: float | None
    flags: list[str]
    #: The reviewer's class where they corrected the network; None where they have not.
    reviewed_class: str | None = None
    #: Ticked by the reviewer once they have looked at the cell (a correction counts as looked at).
    reviewed: bool = False
    comment: str = ""
    #: The predicted morphology in words, where the model predicts it for the network's class.
    morphology: str = ""

    @property
    def final_class(self) -> str:
        return self.reviewed_class or self.network_class

    @property
    def corrected(self) -> bool:
        return self.reviewed_class is not None and self.reviewed_class != self.network_class

    @property
    def needs_a_look(self) -> bool:
        """Uncertain or flagged, and not yet looked at: what a reviewer should see first."""
        return bool(self.flags) and not self.reviewed


@dataclass
class Review:
    model_id: str
    cells: dict[str, CellReview]
    reviewer: str = ""
    comment: str = ""
    #: The sample's identifier (free text, optional): what the report is of.
    sample: str = ""
    created: str = field(default_factory=lambda: _now())
    updated: str = field(default_factory=lambda: _now())
    #: Platelets the cell finder found in each field of view, by the field file's digest (not reviewed cell by
    #: cell: the platelet estimate per field).
    field_platelets: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_results(cls, results: Sequence[ImageResult], digests: Mapping[str, str], model_id: str) -> Review:
        """A fresh review of a classified batch; ``digests`` maps each source file's name to its file_digest."""
        cells, platelets = {}, {}
        for result in results:
            digest = digests[result.source or result.name]
            key = cell_key(digest, result)
            cells[key] = CellReview(key, result.name, *network_call(result), morphology=morphology_of(result))
            if result.field_platelets is not None:
                platelets[digest] = result.field_platelets
        return cls(model_id, cells, field_platelets=platelets)

    def correct(self, key: str, reviewed_class: str | None) -> None:
        """Set the reviewer's class (None, or the network's own class, takes the correction back)."""
        cell = self.cells[key]
        cell.reviewed_class = None if reviewed_class in (None, cell.network_class) else reviewed_class
        if cell.reviewed_class is not None:
            cell.reviewed = True
        self.touch()

    def touch(self) -> None:
        self.updated = _now()

    def ordered(self, needing_a_look_first: bool = True) -> list[CellReview]:
        """The cells, flagged ones first (in upload order within each group). The order follows the network's
        flags only, never the review, so a cell keeps its place when it is corrected or ticked."""
        cells = list(self.cells.values())
        return sorted(cells, key=lambda cell: not cell.flags) if needing_a_look_first else cells

    def progress(self) -> tuple[int, int]:
        """(cells looked at, cells) for the reviewer's progress bar."""
        return sum(cell.reviewed for cell in self.cells.values()), len(self.cells)

    def to_json(self) -> str:
        document = {
            "format": REVIEW_FORMAT,
            "model_id": self.model_id,
            "sample": self.sample,
            "reviewer": self.reviewer,
            "comment": self.comment,
            "created": self.created,
            "updated": self.updated,
            "cells": [asdict(cell) for cell in self.cells.values()],
            "field_platelets": self.field_platelets,
        }
        return json.dumps(document, indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Review:
        try:
            document = json.loads(text)
            if document.get("format") != REVIEW_FORMAT:
                raise ReviewError(f"not a HematoVision review file (expected format {REVIEW_FORMAT!r})")
            cells = {cell.key: cell for cell in map(_checked_cell, document["cells"])}
            for name in ("model_id", "reviewer", "comment", "sample"):
                if not isinstance(document.get(name, ""), str):
                    raise ReviewError(f"the review file cannot be read ({name} is not text)")
            return cls(
                document["model_id"],
                cells,
                document.get("reviewer", ""),
                document.get("comment", ""),
                document.get("sample", ""),
                document.get("created", ""),
                document.get("updated", ""),
                {str(key): int(n) for key, n in document.get("field_platelets", {}).items()},
            )
        except ReviewError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReviewError(f"the review file cannot be read ({exc.__class__.__name__}: {exc})") from exc

    def carry_on_from(self, saved: Review, classes: Sequence[str] = ()) -> list[str]:
        """Take the reviewer's work from a saved review of the same images; return what does not match.

        Only the reviewer's classes, ticks and comments are taken, for the images found in both (matched by
        their content, whatever their names); the network's calls stay this batch's own. Raises ReviewError,
        changing nothing, for a review made with another model (its corrections answered other calls), one
        that holds none of this batch's images, or one naming a class that ``classes`` (the model's) lacks.
        """
        if saved.model_id != self.model_id:
            raise ReviewError(
                f"it was made with another model ({saved.model_id[:12]}; this one is {self.model_id[:12]}), so "
                "its corrections answer calls this model did not make. Nothing was changed: classify the images "
                "with the model the review was made with, or review them afresh."
            )
        if not set(saved.cells) & set(self.cells):
            raise ReviewError(
                f"it is a review of other images: none of its {len(saved.cells)} cell(s) is among this batch's "
                f"{len(self.cells)} (images are matched by their content, not their names). Nothing was changed."
            )
        known = {*classes, NOT_BLOOD}
        foreign = sorted({c.reviewed_class for c in saved.cells.values() if c.reviewed_class and c.reviewed_class
                          not in known}) if classes else []  # fmt: skip
        if foreign:
            raise ReviewError(
                f"it names class(es) this model does not have ({', '.join(foreign)}). Nothing was changed."
            )
        problems = []
        missing = [cell.name for key, cell in saved.cells.items() if key not in self.cells]
        if missing:
            problems.append(f"{len(missing)} reviewed image(s) are not in this batch: {_names(missing)}.")
        unreviewed = [cell.name for key, cell in self.cells.items() if key not in saved.cells]
        if unreviewed:
            problems.append(f"{len(unreviewed)} image(s) of this batch are not in the review: {_names(unreviewed)}.")
        for key, saved_cell in saved.cells.items():
            if key in self.cells:
                cell = self.cells[key]
                cell.reviewed_class, cell.reviewed, cell.comment = (
                    saved_cell.reviewed_class,
                    saved_cell.reviewed,
                    saved_cell.comment,
                )
                if cell.reviewed_class == cell.network_class:
                    cell.reviewed_class = None
        self.reviewer, self.comment, self.created = saved.reviewer, saved.comment, saved.created
        self.sample = saved.sample or self.sample
        self.touch()
        return problems


#: Each field of a saved cell and the types it may hold.
_CELL_TYPES = {
    "key": (str,),
    "name": (str,),
    "network_class": (str,),
    "confidence": (float, int, type(None)),
    "flags": (list,),
    "reviewed_class": (str, type(None)),
    "reviewed": (bool,),
    "comment": (str,),
    "morphology": (str,),
}


def _checked_cell(item: dict) -> CellReview:
    """A saved cell, refused (ReviewError) where a field is missing, unknown or of the wrong type: a hand-edited or
    damaged file must not put a number where a class goes."""
    if not isinstance(item, dict):
        raise ReviewError("the review file cannot be read (a cell is not a record)")
    unknown = set(item) - set(_CELL_TYPES)
    missing = {"key", "name", "network_class", "confidence", "flags"} - set(item)
    wrong = [name for name, value in item.items() if name in _CELL_TYPES and not isinstance(value, _CELL_TYPES[name])]
    if isinstance(item.get("flags"), list) and not all(isinstance(flag, str) for flag in item["flags"]):
        wrong.append("flags")
    if unknown or missing or wrong:
        what = (
            [f"unknown {', '.join(sorted(unknown))}"] * bool(unknown)
            + [f"missing {', '.join(sorted(missing))}"] * bool(missing)
            + [f"wrong type of {', '.join(sorted(set(wrong)))}"] * bool(wrong)
        )
        raise ReviewError(f"the review file cannot be read (a cell has {'; '.join(what)})")
    return CellReview(**item)


def network_call(result: ImageResult) -> tuple[str, float | None, list[str]]:
    """(class, confidence, flags) as the network gave them."""
    prediction = result.prediction
    if prediction is None:
        return UNREADABLE, None, [FLAG_UNREADABLE]
    flags = []
    if prediction.not_blood_cell:
        flags.append(FLAG_NOT_BLOOD)
    if prediction.uncertain:
        flags.append(FLAG_UNCERTAIN)
    if prediction.unfamiliar:
        flags.append(FLAG_UNFAMILIAR)
    if result.cut_by_frame:
        flags.append(FLAG_CUT)
    if prediction.contradictions and not prediction.not_blood_cell:
        flags.append(FLAG_MORPHOLOGY)
    label = NOT_BLOOD if prediction.not_blood_cell else prediction.label
    return label, float(prediction.confidence), flags


def morphology_of(result: ImageResult) -> str:
    prediction = result.prediction
    if prediction is None or prediction.not_blood_cell or not prediction.attributes:
        return ""
    return describe({name: value for name, (value, _) in prediction.attributes.items()})


def review_calls(review: Review, reviewed: bool) -> list[Call]:
    """Each cell as the differential counts it: as the network called it, or (``reviewed``) after review.

    After review a cell counts by its final class once the reviewer has looked at it, or where the network was
    confident; an uncertain cell nobody has looked at stays out of both sides, as does an unreadable file.
    """
    calls = []
    for cell in review.cells.values():
        label = cell.final_class if reviewed else cell.network_class
        field = cell.key.partition("@")[0] if "@" in cell.key or cell.key in review.field_platelets else ""
        calls.append(
            Call(
                label,
                unreadable=cell.network_class == UNREADABLE,
                not_blood_cell=label == NOT_BLOOD,
                uncertain=FLAG_UNCERTAIN in cell.flags and not (reviewed and cell.reviewed),
                cut_by_frame=FLAG_CUT in cell.flags,
                field=field,
            )
        )
    return calls


def differentials(
    review: Review, white_cell_classes: Sequence[str], count_cut_cells: bool = True
) -> tuple[Differential, Differential]:
    """The differential by the network and after review, by the one rule (hematovision.workflows.differential.count)."""
    return tuple(
        count(review_calls(review, reviewed), white_cell_classes, count_cut_cells, review.field_platelets)
        for reviewed in (False, True)
    )


def cells_table(cells: Iterable[CellReview]) -> pd.DataFrame:
    """Every cell's network call beside its review, for the screen and the CSV."""
    return pd.DataFrame(
        [
            {
                "file": cell.name,
                "network class": cell.network_class,
                "confidence (%)": "not judged" if cell.confidence is None else f"{100 * cell.confidence:.1f}",
                "flags": "; ".join(cell.flags) or "none",
                "reviewed class": cell.final_class,
                "corrected": cell.corrected,
                "reviewed": cell.reviewed,
                "comment": cell.comment,
            }
            for cell in cells
        ]
    )


def reviewed_columns(results: Sequence[ImageResult], digests: Mapping[str, str], review: Review) -> dict[str, list]:
    """The review's columns for a results table, row by row in the results' order (for the CSV)."""
    cells = [review.cells[cell_key(digests[result.source or result.name], result)] for result in results]
    return {
        "reviewed_class": [cell.final_class if cell.network_class != UNREADABLE else "" for cell in cells],
        "corrected": [cell.corrected for cell in cells],
        "reviewed": [cell.reviewed for cell in cells],
        "review_comment": [cell.comment for cell in cells],
        "reviewer": [review.reviewer] * len(cells),
    }


def _names(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
