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
