"""Lab profiles: a few labelled cells from the user's own microscope tune the shipped model to that lab.

A profile is a small correction of the model's calibrated log-probabilities, linear in the same
pooled backbone features the domain checks read (:mod:`hematovision.heads.novelty`):
``p_lab = softmax(log p_model + x_std @ W + b)``. With a handful of cells a new network or a new head
would overfit; a correction that starts at zero and is held near it (L2) can only move the model as far
as the lab's examples push it. On a model trained without any BCCD image, profiles from 5 BCCD training
cells per class lifted 114 held-out BCCD cells from 51.75% to 77.28% on average over 10 draws
(`python -m training.lab_profiles`, docs/experiments.md).

A profile names the model it was made for (a hash of ``model.keras``), and is refused by any other.
Its own accuracy is estimated by leave-one-out over its examples: each cell classified by a profile
fitted on all the others.

A profile can hurt (on a lab the model was trained on it has little to fix and can break what was right), so it is
applied only where its leave-one-out answers on its own examples fix at least :data:`MIN_NET_FIXES` more of the
model's mistakes than they make new ones; otherwise the model's own answers stand. :attr:`LabProfile.decision` says
which, and why, in words fit to show the user.

A profile that is applied takes over for the cells it knows. It starts from the network's own probabilities (the card's
temperature, not the temperature grown with the distance from the training labs: the user's lab is far from
them by design) and carries its own temperature, fitted on its leave-one-out answers. A cell near the
profile's examples (:meth:`LabProfile.covers`) is the lab's own kind of cell: it is never refused as "not a
blood-cell image" nor flagged *unfamiliar*. A cell far from them keeps the model's flags and the model's
distance-grown temperature on top of the profile's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hematovision.heads.metrics import fit_temperature, softmax
from hematovision.heads.regression import fit_softmax_regression

#: At least this many examples of every class a lab gives.
MIN_PER_CLASS = 3
#: How strongly the correction is held near zero. Compared on a PBC-only model's held-out BCCD cells
#: (docs/experiments.md): 0.001-1 gave 75-79% with the model's probabilities as the prior, 56-74% without
#: them, the differences within the 4-5 point spread between draws; so the figures reported for 0.1 are
#: not tuned to those cells beyond that noise.
L2 = 0.1
#: Format 2 added the profile's own temperature and the region of its examples (``covers``); format 3 the decision
#: whether to apply it. Format 2 files still load: the same rule decides from their leave-one-out figures.
PROFILE_FORMAT = 3
READABLE_FORMATS = (2, 3)
#: A profile is applied only if, on its own examples, its leave-one-out answers fix at least this many more of
#: the model's mistakes than they make new ones. One cell either way is what a single ambiguous or mislabelled
#: example does on its own among the 15-40 a lab gives; two net cells is the smallest margin one such cell cannot
#: produce (rule written before measuring: docs/experiments.md, 2026-12-06, issue 40 item 5).
MIN_NET_FIXES = 2
#: A cell is like the profile's examples when it lies no farther from the nearest class centre of its examples
#: than this many times the farthest any example lies from the centres fitted without it.
COVER_MARGIN = 1.5
MAX_PROFILE_BYTES = 1_000_000


class Decision(NamedTuple):
    """Whether a profile reads the lab's cells, and why, in words for the user."""

    applied: bool
    reason: str


def _cells(n: int) -> str:
    return f"{n} cell" if n == 1 else f"{n} cells"


def _new_ones(n: int) -> str:
    return "no new one" if n == 0 else ("1 new one" if n == 1 else f"{n} new ones")


def decide(fixed: int, broken: int, n: int, model_right: int) -> Decision:
    """The rule (:data:`MIN_NET_FIXES`) on the example cells: ``fixed`` wrong by the model and right by the
    profile's leave-one-out, ``broken`` the other way round, of ``n`` examples of which the model alone reads
    ``model_right`` right."""
    on = f"on your {n} labelled cells, each read by a profile made without it,"
    what = f"it fixes {fixed} of the model's mistakes and makes {_new_ones(broken)}"
    if fixed - broken >= MIN_NET_FIXES:
        return Decision(True, f"used: {on} {what}")
    if model_right == n:
        return Decision(
            False,
            f"not used: the model alone already reads all {n} of your labelled cells right; the profile, each cell "
            f"read by a profile made without it, would get {broken} of them wrong",
        )
    return Decision(
        False,
        f"not used: {on} {what}; it must fix at least {MIN_NET_FIXES} more than it breaks, "
        "so the model's own answers are shown",
    )


def decide_from_accuracies(leave_one_out: dict) -> Decision:
    """The same rule for a profile saved before decisions were stored: its leave-one-out and model-alone accuracies
    on the same n cells give the net (fixed minus broken) exactly, though not the two counts."""
    n = int(leave_one_out["n"])
    profile_right = round(n * float(leave_one_out["accuracy"]))
    model_right = round(n * float(leave_one_out["without_profile"]))
    net = profile_right - model_right
    on = f"on your {n} labelled cells, each read by a profile made without it,"
    if net >= MIN_NET_FIXES:
        return Decision(True, f"used: {on} it gets {_cells(net)} more right than the model alone")
    if model_right == n:
        return Decision(False, f"not used: the model alone already reads all {n} of your labelled cells right")
    if net > 0:
        gets = f"it gets {_cells(net)} more right than the model alone"
    elif net == 0:
        gets = "it gets no more right than the model alone"
    else:
        gets = f"it gets {_cells(-net)} fewer right than the model alone"
    return Decision(
        False,
        f"not used: {on} {gets}; it must get at least {MIN_NET_FIXES} more right, so the model's own answers are shown",
    )


class ProfileError(ValueError):
    """A profile or a set of examples that cannot be used, with a message fit to show a user."""


def model_identity(model_file: Path) -> str:
    """The first 16 hex digits of the SHA-256 of ``model.keras``: what a profile is bound to."""
    return hashlib.sha256(model_file.read_bytes()).hexdigest()[:16]


@dataclass
class LabProfile:
    model_id: str
    classes: list[str]  # the model's classes, in output order
    counts: dict[str, int]  # examples per class the profile saw
    mean: np.ndarray  # (D,) feature standardisation
    scale: np.ndarray  # (D,)
    weights: np.ndarray  # (D, K) correction per class; zero for classes without examples
    bias: np.ndarray  # (K,)
    leave_one_out: dict = field(default_factory=dict)
    created: str = ""
    seconds: float = 0.0
    #: Fitted on the leave-one-out answers: the profile's calibration, in place of the card's.
    temperature: float = 1.0
    #: (classes with examples, D) mean standardised features of each class's examples, and how far from the
    #: nearest of them a cell may lie and still count as one of the lab's own (mean squared difference).
    centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    radius: float = 0.0
    #: A cell among the examples is lifted out of "not a blood-cell image" only where the domain check finds it
    #: at least this blood-like: half the least blood-like example's probability. Distance alone let through
    #: photographs that lie near a video microscope's blurred cells (docs/experiments.md, 2026-12-06).
    blood_floor: float = 1.0
    #: What results name it by: the file or archive it came from, unless the user renames it.
    name: str = ""
    #: Whether the profile reads the lab's cells (:data:`MIN_NET_FIXES`), and why; a profile built by hand is.
    applied: bool = True
    reason: str = ""

    @property
    def decision(self) -> Decision:
        """(applied, reason): whether this profile or the model alone answers, in words for the user."""
        return Decision(self.applied, self.reason or ("used" if self.applied else "not used"))

    def adjust(self, features: np.ndarray, probabilities: np.ndarray, temperature_growth=1.0) -> np.ndarray:
        """The network's own probabilities, corrected for this lab at the profile's temperature (grown by
        ``temperature_growth``, one factor per row, for cells unlike the examples)."""
        z = self.log_odds(features, probabilities)
        temperature = self.temperature * np.broadcast_to(np.asarray(temperature_growth, np.float64), (len(z),))
        return softmax(z / temperature[:, None], 1.0)

    def log_odds(self, features: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        x = self.standardised(features)
        return np.log(np.maximum(probabilities, 1e-12)) + x @ self.weights + self.bias

    def standardised(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, np.float64) - self.mean) / self.scale

    def covers(self, features: np.ndarray) -> np.ndarray:
        """(N,) bool: the cell lies among the profile's examples, so it is the lab's own kind of cell."""
        if not len(self.centres):
            return np.zeros(len(features), bool)
        return nearest_centre_distance(self.standardised(features), self.centres) <= self.radius

    def digest(self) -> str:
        """Changes whenever the correction or the name does: what cached results are keyed on."""
        parts = (self.weights, self.bias, self.mean, self.centres, np.array([self.temperature, self.radius]))
        arrays = b"".join(np.ascontiguousarray(part).tobytes() for part in parts)
        return hashlib.sha1(arrays + self.name.encode() + bytes([self.applied])).hexdigest()

    def untouched_classes(self) -> list[str]:
        """Classes with no example: the model reads them as it does without a profile."""
        return [name for name in self.classes if not self.counts.get(name)]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            format=PROFILE_FORMAT,
            model_id=self.model_id,
            classes=np.array(self.classes),
            count_names=np.array(list(self.counts)),
            count_values=np.array(list(self.counts.values()), np.int64),
            mean=self.mean.astype(np.float32),
            scale=self.scale.astype(np.float32),
            weights=self.weights.astype(np.float32),
            bias=self.bias.astype(np.float32),
            leave_one_out=json.dumps(self.leave_one_out),
            created=self.created,
            seconds=self.seconds,
            temperature=self.temperature,
            centres=self.centres.astype(np.float32),
            radius=self.radius,
            blood_floor=self.blood_floor,
            name=self.name,
            applied=self.applied,
            reason=self.reason,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LabProfile:
        if len(data) > MAX_PROFILE_BYTES:
            raise ProfileError(f"a lab profile is at most {MAX_PROFILE_BYTES // 1000} kB; this file is larger")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                version = int(stored["format"])
                if version not in READABLE_FORMATS:
                    raise ProfileError(
                        "this lab profile was written by another version of HematoVision: build it again from "
                        "your examples (Lab profile page, or python -m hematovision adapt)"
                    )
                profile = cls(
                    model_id=str(stored["model_id"]),
                    classes=[str(c) for c in stored["classes"]],
                    counts={str(k): int(v) for k, v in zip(stored["count_names"], stored["count_values"], strict=True)},
                    mean=stored["mean"].astype(np.float64),
                    scale=stored["scale"].astype(np.float64),
                    weights=stored["weights"].astype(np.float64),
                    bias=stored["bias"].astype(np.float64),
                    leave_one_out=json.loads(str(stored["leave_one_out"])),
                    created=str(stored["created"]),
                    seconds=float(stored["seconds"]),
                    temperature=float(stored["temperature"]),
                    centres=stored["centres"].astype(np.float64),
                    radius=float(stored["radius"]),
                    blood_floor=float(stored["blood_floor"]),
                    name=str(stored["name"]),
                )
                if version >= 3:
                    profile.applied, profile.reason = bool(stored["applied"]), str(stored["reason"])
                else:
                    profile.applied, profile.reason = decide_from_accuracies(profile.leave_one_out)
        except ProfileError:
            raise
        except Exception as exc:  # a damaged or foreign file: zip, npz, key and value errors all mean this
            raise ProfileError(f"this is not a readable lab profile ({type(exc).__name__})") from None
        dims, k = profile.weights.shape if profile.weights.ndim == 2 else (0, 0)
        shapes_fit = (
            profile.mean.shape == (dims,)
            and profile.bias.shape == (k,)
            and (profile.centres.size == 0 or profile.centres.shape[1:] == (dims,))
        )
        if k != len(profile.classes) or not shapes_fit or not profile.temperature > 0:
            raise ProfileError("this lab profile is damaged (its arrays do not fit together)")
        return profile

    def save(self, path: Path) -> None:
        path.write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> LabProfile:
        try:
            return cls.from_bytes(Path(path).read_bytes())
        except OSError as exc:
            raise ProfileError(f"cannot read {path}: {exc.strerror or exc}") from None

    def check_model(self, model_id: str, classes: list[str]) -> None:
        if self.model_id != model_id or self.classes != list(classes):
            raise ProfileError(
                f"this lab profile was made for another model ({self.model_id}); the model in use is {model_id}. "
                "Build a new profile from your examples with this model."
            )


def fit_correction(
    features: np.ndarray,
    probabilities: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    l2: float = L2,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardisation and the L2-held correction (weights, bias) that best explains the labels; ``start``
    is where the (convex) fit begins, which changes its time, not its answer."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-3
    present = np.zeros(n_classes, bool)
    present[np.unique(labels)] = True
    weights, bias = fit_softmax_regression(
        (features - mean) / scale,
        labels,
        n_classes,
        l2,
        offset=np.log(np.maximum(probabilities, 1e-12)),
        columns=present,
        start=start,
    )
    return mean, scale, weights, bias


def nearest_centre_distance(standardised: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Mean squared difference from each row to the nearest centre."""
    return (((standardised[:, None, :] - centres[None, :, :]) ** 2).mean(axis=2)).min(axis=1)


def class_centres(standardised: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.stack([standardised[labels == k].mean(axis=0) for k in np.unique(labels)])


def cover_radius(standardised: np.ndarray, labels: np.ndarray) -> float:
    """COVER_MARGIN times the farthest any example lies from the class centres computed without it: how far
    the lab's other cells may be expected to lie."""
    farthest = 0.0
    for i in range(len(labels)):
        rest = np.arange(len(labels)) != i
        distance = nearest_centre_distance(standardised[i : i + 1], class_centres(standardised[rest], labels[rest]))
        farthest = max(farthest, float(distance[0]))
    return COVER_MARGIN * farthest


def build_profile(
    features: np.ndarray,
    probabilities: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    model_id: str,
    blood_probabilities: np.ndarray | None = None,
) -> LabProfile:
    """A profile from examples (their features, the network's own probabilities at the card's temperature,
    integer labels, and where the model has a blood-cell check, its probabilities for them: without them the
    profile lifts no refusal)."""
    started = time.perf_counter()
    counts = {classes[k]: int((labels == k).sum()) for k in np.unique(labels)}
    too_few = {name: n for name, n in counts.items() if n < MIN_PER_CLASS}
    if too_few:
        listed = ", ".join(f"{name} ({n})" for name, n in too_few.items())
        raise ProfileError(f"at least {MIN_PER_CLASS} examples are needed of each class given; too few: {listed}")
    if len(counts) < 2:
        raise ProfileError("examples of at least two classes are needed")
    k = len(classes)
    mean, scale, weights, bias = fit_correction(features, probabilities, labels, k)
    # Each leave-one-out fit starts from the fit on every example, one example away from its own optimum:
    # with a few hundred examples that is minutes faster than starting from zero.
    held_out_log_odds = np.empty((len(labels), k))
    for i in range(len(labels)):
        rest = np.arange(len(labels)) != i
        fold = fit_correction(features[rest], probabilities[rest], labels[rest], k, start=(weights, bias))
        held_out = LabProfile("", classes, counts, *fold)
        held_out_log_odds[i] = held_out.log_odds(features[i : i + 1], probabilities[i : i + 1])[0]
    predicted = held_out_log_odds.argmax(axis=1)
    model_right = probabilities.argmax(axis=1) == labels
    profile_right = predicted == labels
    fixed, broken = int((profile_right & ~model_right).sum()), int((model_right & ~profile_right).sum())
    applied, reason = decide(fixed, broken, len(labels), int(model_right.sum()))
    standardised = (features - mean) / scale
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    leave_one_out = {
        "accuracy": float((predicted == labels).mean()),
        "without_profile": float(model_right.mean()),
        "per_class": {classes[c]: float(confusion[c, c] / confusion[c].sum()) for c in np.unique(labels)},
        "confusion_matrix": confusion.tolist(),
        "n": len(labels),
        "fixed": fixed,  # wrong by the model alone, right by leave-one-out
        "broken": broken,  # right by the model alone, wrong by leave-one-out
    }
    return LabProfile(
        model_id=model_id,
        classes=list(classes),
        counts=counts,
        mean=mean,
        scale=scale,
        weights=weights,
        bias=bias,
        leave_one_out=leave_one_out,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 2),
        temperature=fit_temperature(held_out_log_odds, labels),
        centres=class_centres(standardised, labels),
        radius=cover_radius(standardised, labels),
        blood_floor=1.0 if blood_probabilities is None else 0.5 * float(np.min(blood_probabilities)),
        applied=applied,
        reason=reason,
    )


def suggest_to_label(probabilities: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` cells of a batch worth labelling next: the least sure (smallest gap between the two most
    likely classes) under the answers the user sees (the profile's where it is applied, else the model's), spread
    over the classes they are called: the least sure cell of each called class in turn, the class whose least sure
    cell is least sure first. Not used by the app: on Chula it did worse than labelling cells at random
    (``training.lab_profiles --suggest``, docs/experiments.md, 2026-12-06)."""
    probabilities = np.asarray(probabilities, np.float64)
    count = min(int(count), len(probabilities))
    if count <= 0:
        return np.zeros(0, np.int64)
    ordered = np.sort(probabilities, axis=1)
    gap = ordered[:, -1] - ordered[:, -2] if probabilities.shape[1] > 1 else np.ones(len(probabilities))
    called = probabilities.argmax(axis=1)
    queues = [list(members[np.argsort(gap[members], kind="stable")]) for members in
              (np.flatnonzero(called == k) for k in np.unique(called))]  # fmt: skip
    queues.sort(key=lambda queue: gap[queue[0]])
    chosen: list[int] = []
    while len(chosen) < count:
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop(0)))
    return np.array(chosen, np.int64)
