"""Is this a stained blood-cell image at all? A distance in the network's own feature space.

A classifier always answers with one of its classes, even for a photo of a face. The penultimate
features of a trained network cluster by class, so an input far from every cluster (Mahalanobis
distance with one shared covariance, Lee et al., NeurIPS 2018) is unlike anything it was trained on.
The distance is computed as a squared Euclidean distance after whitening, so that one matrix product
serves every class mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hematovision.heads.regression import fit_softmax_regression

NOVELTY_FILE = "novelty.npz"


@dataclass(frozen=True)
class NoveltyModel:
    whitening: np.ndarray  # (D, D): features @ whitening has identity covariance within groups
    centres: np.ndarray  # (K, D) group means, already whitened
    threshold: float  # distances above this are flagged

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest group centre, per row of ``features``."""
        whitened = np.asarray(features, np.float32) @ self.whitening
        squared = (
            (whitened**2).sum(axis=1, keepdims=True)
            - 2 * whitened @ self.centres.T
            + (self.centres**2).sum(axis=1)[None, :]
        )
        return np.maximum(squared.min(axis=1), 0.0)

    def flags(self, features: np.ndarray) -> np.ndarray:
        return self.distances(features) > self.threshold

    def with_threshold(self, threshold: float) -> NoveltyModel:
        return NoveltyModel(self.whitening, self.centres, float(threshold))

    def save(self, path: Path) -> None:
        np.savez_compressed(path, whitening=self.whitening, centres=self.centres, threshold=self.threshold)

    @classmethod
    def load(cls, path: Path) -> NoveltyModel:
        with np.load(path) as stored:
            return cls(stored["whitening"], stored["centres"], float(stored["threshold"]))


def fit_novelty(groups: dict[str, np.ndarray], shrinkage: float = 0.1) -> NoveltyModel:
    """Group means and a shared covariance from in-domain features; threshold left at infinity.

    ``shrinkage`` blends the covariance towards its mean variance: with ~1,000 dimensions and a few
    thousand images the raw estimate is near-singular, and its smallest directions would dominate.
    """
    means = np.stack([np.asarray(f, np.float64).mean(axis=0) for f in groups.values()])
    centred = np.concatenate([np.asarray(f, np.float64) - m for f, m in zip(groups.values(), means, strict=True)])
    covariance = centred.T @ centred / max(len(centred) - len(groups), 1)
    dimension = covariance.shape[0]
    covariance = (1 - shrinkage) * covariance + shrinkage * np.trace(covariance) / dimension * np.eye(dimension)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    whitening = (eigenvectors / np.sqrt(np.maximum(eigenvalues, 1e-12))).astype(np.float32)
    return NoveltyModel(whitening, (means @ whitening).astype(np.float32), float("inf"))


def threshold_at(distances: np.ndarray, flagged_share: float) -> float:
    """The distance above which ``flagged_share`` of these (in-domain, held-out) distances lie."""
    return float(np.quantile(distances, 1.0 - flagged_share))


@dataclass(frozen=True)
class BloodCheck:
    """Is this a stained blood-cell image at all? A logistic regression on standardised features.

    The distance above answers "how far from the training lab", which is large for a genuine cell from
    another lab's camera too. This answers the other question: fitted with blood cells under stain,
    camera and magnification changes (and another lab's crops) as positives, and photographs,
    micrographs of other things, text, screens, blank slides and noise as negatives.
    """

    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    weights: np.ndarray  # (D,)
    bias: float
    threshold: float  # images whose blood-cell probability is below this are "not a blood-cell image"

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        scores = ((np.asarray(features, np.float32) - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(scores, -60, 60)))

    def flags(self, features: np.ndarray) -> np.ndarray:
        return self.probabilities(features) < self.threshold


@dataclass(frozen=True)
class DomainCheck:
    """Everything the classifier says about how familiar an input is, from one layer's features.

    - ``blood``: no class at all for what is not a blood-cell image;
    - ``distance``: a blood cell farther than its threshold from the training images is *unfamiliar*
      (classified, with a warning);
    - the softmax temperature grows with that distance, ``T = T0 * (1 + slope * max(0, d / d_ref - 1))``,
      so that confidence falls where accuracy does (slope fitted on validation data).
    """

    distance: NoveltyModel
    blood: BloodCheck | None = None
    distance_reference: float = 1.0
    temperature_slope: float = 0.0

    def temperature_factor(self, distances: np.ndarray) -> np.ndarray:
        excess = np.maximum(np.asarray(distances, np.float64) / self.distance_reference - 1.0, 0.0)
        return 1.0 + self.temperature_slope * excess

    def save(self, path: Path) -> None:
        arrays = {
            "whitening": self.distance.whitening,
            "centres": self.distance.centres,
            "threshold": self.distance.threshold,
            "distance_reference": self.distance_reference,
            "temperature_slope": self.temperature_slope,
        }
        if self.blood is not None:
            arrays |= {
                "blood_mean": self.blood.mean,
                "blood_scale": self.blood.scale,
                "blood_weights": self.blood.weights,
                "blood_bias": self.blood.bias,
                "blood_threshold": self.blood.threshold,
            }
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> DomainCheck:
        with np.load(path) as stored:
            distance = NoveltyModel(stored["whitening"], stored["centres"], float(stored["threshold"]))
            blood = None
            if "blood_weights" in stored:
                blood = BloodCheck(
                    stored["blood_mean"],
                    stored["blood_scale"],
                    stored["blood_weights"],
                    float(stored["blood_bias"]),
                    float(stored["blood_threshold"]),
                )
            return cls(
                distance,
                blood,
                float(stored["distance_reference"]) if "distance_reference" in stored else 1.0,
                float(stored["temperature_slope"]) if "temperature_slope" in stored else 0.0,
            )


def fit_blood_check(positives: np.ndarray, negatives: np.ndarray, l2: float = 1.0) -> BloodCheck:
    """L2-regularised logistic regression on standardised features, the two sides weighted equally; threshold
    left at 0.5. ``l2`` is per image: the penalty is ``l2 / n`` times half the squared weights beside the
    weighted mean loss (``regression.fit_softmax_regression``'s convention, with ``l2 / n``)."""
    features = np.concatenate([positives, negatives]).astype(np.float64)
    target = np.concatenate([np.ones(len(positives), np.int64), np.zeros(len(negatives), np.int64)])
    weight = np.where(target == 1, 0.5 / len(positives), 0.5 / len(negatives))
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-6
    # Two classes, only the second with weights: softmax([0, x w + b]) is the logistic sigmoid(x w + b).
    weights, bias = fit_softmax_regression(
        (features - mean) / scale, target, 2, l2 / len(features), sample_weight=weight, columns=np.array([0, 1])
    )
    return BloodCheck(
        mean.astype(np.float32), scale.astype(np.float32), weights[:, 1].astype(np.float32), float(bias[1]), 0.5
    )


def fit_temperature_slope(
    logits: np.ndarray, labels: np.ndarray, distances: np.ndarray, base_temperature: float, reference: float
) -> float:
    """The slope (grid 0-10) whose distance-grown temperature gives these labelled logits the lowest NLL."""
    from hematovision.heads.metrics import softmax

    best, best_nll = 0.0, np.inf
    excess = np.maximum(distances / reference - 1.0, 0.0)
    for slope in np.round(np.arange(0.0, 10.0001, 0.05), 2):
        temperature = base_temperature * (1.0 + slope * excess)
        probabilities = softmax(logits / temperature[:, None], 1.0)
        nll = -np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels], 1e-12)))
        if nll < best_nll:
            best, best_nll = float(slope), nll
    return best
