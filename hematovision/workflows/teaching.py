"""The teaching deck and what the atlas, the quiz and the lecture mode compute from it.

The deck is a small set of labelled cells shipped in ``hematovision/deck/`` (resized PBC test-split
cells, chosen by :func:`select_deck`, credited in its CREDITS.md), so that teaching works on a fresh clone.
An educator may bring their own as a ZIP of class folders. Nothing here imports Streamlit or runs the
network: the pages pass in the model's answers.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hematovision.core.imaging import ImageLoadError, decode_image
from hematovision.core.inputs import ArchiveError, class_folder_examples
from hematovision.heads.metrics import confusion_matrix
from hematovision.heads.morphology import ATTRIBUTES, describe

DECK_FILE = "deck.csv"
CELLS_FOLDER = "cells"
CREDITS_FILE = "CREDITS.md"
#: The attribute values of the PBC train split's white cells, per class: what the atlas describes classes by.
ATTRIBUTE_COUNTS_FILE = "attribute_counts.csv"
DECK_COLUMNS = ("file", "label", "subtype", "hard_case", *ATTRIBUTES, "source")
#: The deck's selection rule (training.deck): cells per class in hash order, plus the hardest ones.
PER_CLASS = 12
HARD_PER_CLASS = 3
DIFFICULTIES = {"random": "random cells", "hardest": "the cells the model finds hardest"}
#: The manifest's subtype codes in words.
SUBTYPE_NAMES = {
    "BA": "basophil",
    "EO": "eosinophil",
    "ERB": "erythroblast",
    "MY": "myelocyte",
    "MMY": "metamyelocyte",
    "PMY": "promyelocyte",
    "IG": "immature granulocyte (stage not given)",
    "LY": "lymphocyte",
    "MO": "monocyte",
    "SNE": "segmented neutrophil",
    "BNE": "band neutrophil",
    "NEUTROPHIL": "neutrophil (segmented or band not given)",
    "PLATELET": "platelet",
}


NO_EXPERT_ATTRIBUTES = (
    "No expert attributes for this cell: the WBCAtt annotations cover basophils, eosinophils, lymphocytes, "
    "monocytes and neutrophils only."
)


class DeckError(ValueError):
    """A deck that cannot be used at all, with a message fit to show a user."""


@dataclass
class DeckCell:
    """One labelled cell of a deck: its image bytes, expert label and, where the deck has them, its
    subtype and WBCAtt attributes; ``hard_case``: picked because the model hesitated on it."""

    name: str  # unique within its deck
    label: str
    data: bytes
    subtype: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    hard_case: bool = False
    source: str = ""

    @property
    def description(self) -> str:
        """The expert attributes in a pathologist's words; empty where the cell has none."""
        return describe(self.attributes)

    @property
    def subtype_name(self) -> str:
        return SUBTYPE_NAMES.get(self.subtype, self.subtype)

    @property
    def subtype_code(self) -> str:
        """The manifest's short subtype code, or "not given" where the dataset names only the class."""
        return "not given" if self.subtype.lower() == self.label.lower() == "neutrophil" else self.subtype

    @property
    def full_label(self) -> str:
        """The label with its subtype where that says more, e.g. "neutrophil (band neutrophil)"."""
        subtype = self.subtype_name
        return f"{self.label} ({subtype})" if subtype and subtype != self.label else self.label


def stable_rank(name: str) -> str:
    """A fixed order that does not follow file numbering (which groups cells by acquisition)."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def select_deck(
    rows: Sequence[Mapping[str, str]],
    margins: Mapping[str, float],
    per_class: int = PER_CLASS,
    hard_per_class: int = HARD_PER_CLASS,
) -> list[tuple[Mapping[str, str], bool]]:
    """The deck's selection rule, on manifest rows (``path``, ``label``, ``subtype``) of one split.

    Per class: ``per_class`` cells taken in turn from each subtype (so every subtype is represented),
    each subtype's cells in the order of :func:`stable_rank` of the file name; then the ``hard_per_class``
    cells of the class with the smallest margin between the model's top two classes (``margins`` by path),
    whatever the model answered, added where not already picked. Returns (row, hard case) pairs, class by
    class in first-seen order. Nothing depends on whether the model was right.
    """
    by_class: dict[str, list[Mapping[str, str]]] = {}
    for row in rows:
        by_class.setdefault(row["label"], []).append(row)
    chosen: list[tuple[Mapping[str, str], bool]] = []
    for members in by_class.values():
        by_subtype: dict[str, list[Mapping[str, str]]] = {}
        for row in sorted(members, key=lambda row: stable_rank(Path(row["path"]).name)):
            by_subtype.setdefault(row.get("subtype") or "", []).append(row)
        queues = [by_subtype[name] for name in sorted(by_subtype)]
        picked: list[Mapping[str, str]] = []
        while len(picked) < min(per_class, len(members)):
            for queue in queues:
                if queue and len(picked) < per_class:
                    picked.append(queue.pop(0))
        scored = [row for row in members if row["path"] in margins]
        hardest = sorted(scored, key=lambda row: (margins[row["path"]], stable_rank(Path(row["path"]).name)))
        hard_paths = {row["path"] for row in hardest[:hard_per_class]}
        picked += [row for row in hardest[:hard_per_class] if row not in picked]
        chosen += [(row, row["path"] in hard_paths) for row in picked]
    return chosen


def load_deck(folder: Path) -> list[DeckCell]:
    """The deck in ``folder`` (deck.csv and its cells/); raises DeckError where it cannot be read."""
    table = folder / DECK_FILE
    if not table.is_file():
        raise DeckError(f"no teaching deck at {folder} ({DECK_FILE} is missing)")
    cells = []
    with table.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            image = folder / CELLS_FOLDER / row["file"]
            if not image.is_file():
                raise DeckError(f"the teaching deck lists {row['file']}, which is missing from {image.parent}")
            cells.append(
                DeckCell(
                    name=row["file"],
                    label=row["label"],
                    data=image.read_bytes(),
                    subtype=row.get("subtype") or "",
                    attributes={name: row[name] for name in ATTRIBUTES if row.get(name)},
                    hard_case=row.get("hard_case") == "yes",
                    source=row.get("source") or "",
                )
            )
    if not cells:
        raise DeckError(f"the teaching deck at {folder} holds no cells")
    return cells


def deck_from_zip(zip_bytes: bytes, classes: Sequence[str]) -> tuple[list[DeckCell], list[str]]:
    """An educator's deck from a ZIP of class folders (folder name = class, case-insensitive), and a note
    for each file left out (not an image, unreadable, ...); the rest are used. Raises DeckError for a
    damaged archive, a folder naming no class, or no usable image at all."""
    try:
        examples, notes = class_folder_examples(zip_bytes, list(classes))
    except ArchiveError as exc:
        raise DeckError(str(exc)) from None
    cells = []
    for label, member, data in examples:
        try:
            decode_image(data)
        except ImageLoadError as exc:
            notes.append(f"skipped {member}: {exc}")
            continue
        cells.append(DeckCell(name=member, label=label, data=data, source="uploaded"))
    if not cells:
        raise DeckError("no readable image in the archive")
    return cells, notes


def combine_decks(shipped: list[DeckCell], uploaded: list[DeckCell], replace: bool) -> list[DeckCell]:
    """The uploaded cells alone, or added to the shipped deck (an uploaded name wins over a shipped one)."""
    if replace:
        return list(uploaded)
    names = {cell.name for cell in uploaded}
    return [cell for cell in shipped if cell.name not in names] + list(uploaded)


def deck_digest(cells: Sequence[DeckCell]) -> str:
    """Changes whenever the deck does: what the model's answers on it are cached under."""
    digest = hashlib.sha1()
    for cell in cells:
        digest.update(cell.name.encode("utf-8") + b"\0" + hashlib.sha1(cell.data).digest())
    return digest.hexdigest()


def margin(probabilities: Mapping[str, float]) -> float:
    """The model's top probability minus its second: small where it hesitates between two classes."""
    top_two = sorted(probabilities.values())[-2:]
    return top_two[-1] - (top_two[0] if len(top_two) == 2 else 0.0)


# Atlas: what sets a class apart, in the words of its cells' attributes.


#: label -> attribute -> how many cells show each value.
AttributeCounts = dict[str, dict[str, Counter[str]]]


def attribute_counts(rows: Sequence[Mapping[str, Any]] | Sequence[DeckCell]) -> AttributeCounts:
    """How many cells of each class show each attribute value, from deck cells or manifest rows (empty values
    left out: WBCAtt annotates white cells only)."""
    counts: AttributeCounts = {}
    for row in rows:
        label, values = (row.label, row.attributes) if isinstance(row, DeckCell) else (row["label"], row)
        for attribute in ATTRIBUTES:
            if values.get(attribute):
                counts.setdefault(label, {}).setdefault(attribute, Counter())[values[attribute]] += 1
    return counts


def write_attribute_counts(path: Path, counts: AttributeCounts) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["label", "attribute", "value", "count"])
        for label in sorted(counts):
            for attribute in ATTRIBUTES:
                for value, count in sorted(counts[label].get(attribute, Counter()).items()):
                    writer.writerow([label, attribute, value, count])


def load_attribute_counts(folder: Path) -> AttributeCounts | None:
    """The deck folder's attribute counts (the PBC train split's, written by training.deck); None if absent."""
    path = folder / ATTRIBUTE_COUNTS_FILE
    if not path.is_file():
        return None
    counts: AttributeCounts = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            by_value = counts.setdefault(row["label"], {}).setdefault(row["attribute"], Counter())
            by_value[row["value"]] = int(row["count"])
    return counts


def annotated_cells(counts: AttributeCounts, label: str) -> int:
    """How many cells of ``label`` the counts were made from."""
    return max((sum(values.values()) for values in counts.get(label, {}).values()), default=0)


def distinguishing_features(counts: AttributeCounts, label: str, limit: int = 6) -> list[dict[str, Any]]:
    """Per attribute, the most common value among ``label``'s annotated cells and how often the other
    classes' annotated cells show it; the attributes that set the class apart most come first. Empty where
    the class has no attributes (WBCAtt covers white cells only)."""
    rows = []
    for attribute, own in counts.get(label, {}).items():
        value, count = own.most_common(1)[0]
        share = count / sum(own.values())
        others = sum((by[attribute] for name, by in counts.items() if name != label and attribute in by), Counter())
        other_share = others[value] / sum(others.values()) if others else None
        rows.append(
            (
                share - (other_share or 0.0),
                {
                    "attribute": attribute.replace("_", " "),
                    "value": value,
                    f"share of {label} (%)": round(100 * share),
                    "share of the other classes (%)": None if other_share is None else round(100 * other_share),
                },
            )
        )
    rows.sort(key=lambda pair: -pair[0])
    return [row for _, row in rows[:limit]]


def pair_comparison(counts: AttributeCounts, first: str, second: str) -> list[dict[str, Any]]:
    """For two classes, each attribute's most common value in each (with its share), differing ones first;
    empty where either class has no attributes (there is nothing to compare them on)."""
    if not (counts.get(first) and counts.get(second)):
        return []
    rows = []
    for attribute in ATTRIBUTES:
        described = []
        for label in (first, second):
            values = counts[label].get(attribute)
            value, count = values.most_common(1)[0] if values else ("", 0)
            described.append((value, f"{value} ({round(100 * count / sum(values.values()))}%)" if values else "—"))
        rows.append(
            {
                "attribute": attribute.replace("_", " "),
                first: described[0][1],
                second: described[1][1],
                "differs": described[0][0] != described[1][0],
            }
        )
    rows.sort(key=lambda row: not row["differs"])
    return rows


def confused_pairs(report: Mapping[str, Any], label: str | None = None, limit: int = 3) -> list[tuple[str, str, int]]:
    """The (true, predicted, count) mistakes of a confusion matrix, most frequent first; only those
    involving ``label`` where it is given."""
    labels = report["labels"]
    pairs = [
        (labels[i], labels[j], int(count))
        for i, row in enumerate(report["confusion_matrix"])
        for j, count in enumerate(row)
        if i != j and count and (label is None or label in (labels[i], labels[j]))
    ]
    pairs.sort(key=lambda pair: (-pair[2], pair[0], pair[1]))
    return pairs[:limit]


# Quiz


@dataclass
class QuizAnswer:
    name: str
    label: str  # the expert's
    answer: str  # the student's
    model_answer: str
    model_confidence: float

    @property
    def correct(self) -> bool:
        return self.answer == self.label


@dataclass
class QuizState:
    """A quiz in progress: the cells to ask, in order, the answers so far, and whether the feedback on the
    last answer is on screen. Kept in the session under its own key, so widgets never reset it."""

    names: list[str]
    classes: list[str]
    difficulty: str
    answers: list[QuizAnswer] = field(default_factory=list)
    showing_feedback: bool = False

    @property
    def finished(self) -> bool:
        return len(self.answers) == len(self.names) and not self.showing_feedback

    def record(self, answer: QuizAnswer) -> None:
        self.answers.append(answer)
        self.showing_feedback = True

    def next_cell(self) -> None:
        self.showing_feedback = False

    @property
    def current(self) -> str:
        """The cell being asked (or, while its feedback shows, the one just answered)."""
        return self.names[len(self.answers) - 1 if self.showing_feedback else len(self.answers)]


def quiz_answer(cell: DeckCell, answer: str, model_answer: str, model_confidence: float) -> QuizAnswer:
    return QuizAnswer(cell.name, cell.label, answer, model_answer, model_confidence)


def draw_quiz(
    cells: Sequence[DeckCell],
    classes: Sequence[str],
    count: int,
    difficulty: str,
    margins: Mapping[str, float],
    seed: int,
) -> list[str]:
    """Names of ``count`` cells of the chosen classes: at random, or the ``count`` with the smallest model
    margin (the ones it finds hardest), asked in random order either way."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}")
    rng = np.random.default_rng(seed)
    pool = sorted((cell.name for cell in cells if cell.label in classes), key=stable_rank)
    if difficulty == "hardest":
        pool = sorted(pool, key=lambda name: margins[name])[:count]
    else:
        pool = [pool[i] for i in rng.permutation(len(pool))[:count]]
    return [pool[i] for i in rng.permutation(len(pool))]


def confusion(pairs: Sequence[tuple[str, str]], classes: Sequence[str]) -> list[list[int]]:
    """Counts of (true, given) pairs over ``classes`` (rows true, columns given)."""
    index = {name: i for i, name in enumerate(classes)}
    known = np.array([(index[t], index[g]) for t, g in pairs if t in index and g in index], np.int64).reshape(-1, 2)
    return confusion_matrix(known[:, 0], known[:, 1], len(classes)).tolist()


def quiz_summary(answers: Sequence[QuizAnswer], classes: Sequence[str]) -> dict[str, Any]:
    """Score, per-class accuracy of the student and the model on the same cells, both confusion matrices
    (over every class either gave or was asked) and the mistakes."""
    per_class = []
    for label in classes:
        asked = [answer for answer in answers if answer.label == label]
        if asked:
            right = sum(answer.correct for answer in asked)
            model_right = sum(answer.model_answer == label for answer in asked)
            per_class.append(
                {
                    "class": label,
                    "cells": len(asked),
                    "your answers right": right,
                    "your accuracy (%)": round(100 * right / len(asked), 1),
                    "model accuracy (%)": round(100 * model_right / len(asked), 1),
                }
            )
    shown = [
        name
        for name in dict.fromkeys([*classes, *(a.answer for a in answers), *(a.model_answer for a in answers)])
        if any(name in (a.label, a.answer, a.model_answer) for a in answers)
    ]
    return {
        "score": sum(answer.correct for answer in answers),
        "model_score": sum(answer.model_answer == answer.label for answer in answers),
        "n": len(answers),
        "per_class": per_class,
        "labels": shown,
        "student_confusion": confusion([(a.label, a.answer) for a in answers], shown),
        "model_confusion": confusion([(a.label, a.model_answer) for a in answers], shown),
        "mistakes": [answer for answer in answers if not answer.correct],
    }


def quiz_csv(answers: Sequence[QuizAnswer]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["cell", "expert label", "your answer", "correct", "model answer", "model confidence"])
    for answer in answers:
        writer.writerow(
            [
                answer.name,
                answer.label,
                answer.answer,
                "yes" if answer.correct else "no",
                answer.model_answer,
                f"{answer.model_confidence:.4f}",
            ]
        )
    return buffer.getvalue()


# Lecture


def lecture_order(cells: Sequence[DeckCell]) -> list[DeckCell]:
    """The deck in a fixed mixed order, so that the audience cannot guess a class from its neighbours."""
    return sorted(cells, key=lambda cell: stable_rank(cell.name))


LECTURE_STEPS = ("What is this cell?", "Expert label", "The model's answer", "Where the model looked")


@dataclass
class LectureState:
    """Which deck cell is on the projector and how much of the answer is revealed (0: the image alone)."""

    index: int = 0
    step: int = 0

    def reveal(self) -> None:
        self.step = min(self.step + 1, len(LECTURE_STEPS) - 1)

    def go_to(self, index: int, size: int) -> None:
        self.index = index % size
        self.step = 0


# Model performance: the images behind one cell of the confusion matrix.


def matrix_cell(rows: Sequence[Mapping[str, Any]], true: str, predicted: str) -> list[Mapping[str, Any]]:
    """The rows (label, predicted, confidence, ...) of one cell of a confusion matrix, least confident first."""
    chosen = [row for row in rows if row["label"] == true and row["predicted"] == predicted]
    return sorted(chosen, key=lambda row: (row["confidence"], str(row.get("path", ""))))
