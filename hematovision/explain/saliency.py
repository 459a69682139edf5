"""The slower attribution methods, from tf-keras-vis, always on the card's Grad-CAM layer; and the finer
maps of earlier blocks (hematovision.explain.layercam, 28x28 before upsampling).

Each visualiser clones the model when built (~1 s), so an :class:`AttributionMethods` builds each
one once, on first use, and keeps it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from hematovision.explain import layercam
from hematovision.explain.gradcam import GradCam

#: The compiled Grad-CAM of the last block (7x7 before upsampling): tens of milliseconds.
FAST_METHOD = "Grad-CAM"
#: The finer map (28x28 before upsampling) chosen by issue 38's rule (docs/experiments.md, 2026-12-06).
FINE_METHOD = layercam.LAYERCAM_GATED
#: The map shown first (Explain page, ``hematovision explain``): the finer map, which by that rule is as
#: faithful as Grad-CAM, passes the sanity check and points at an off-centre cell more often.
DEFAULT_METHOD = FINE_METHOD
#: What the Explain page and the command line offer.
METHODS = {
    "Grad-CAM": "class-weighted activation map of the last convolutional block (fast)",
    "Grad-CAM++": "weights pixels by higher-order gradients; separates several instances better",
    "LayerCAM": "weights each location by its own positive gradient; finer detail",
    "Faster-ScoreCAM": "gradient-free: masks the image with activation maps and watches the score",
    "SmoothGrad": "pixel-level saliency averaged over noisy copies of the image",
    FINE_METHOD: layercam.METHODS[FINE_METHOD],
}
#: Every method :class:`AttributionMethods` computes: those offered, and the finer-map candidates measured
#: against them (training.pointing_eval, training.saliency_eval), kept by name.
ALL_METHODS = {**METHODS, **layercam.METHODS}


class AttributionMethods:
    """Heatmaps for one model by any method in :data:`ALL_METHODS`."""

    def __init__(self, model, layer_name: str, logits_layer: str) -> None:
        self.model = model
        self.layer_name = layer_name
        self.logits_layer = logits_layer
        self.fast = GradCam(model, layer_name, logits_layer)
        self._visualisers: dict[str, Callable] = {}
        self._fine: layercam.FineCams | None = None
        # One AttributionMethods serves every session of the app (st.cache_resource): two sessions asking for a
        # method not yet built would otherwise both build it (seconds, a model clone each) and race on the dict.
        self._build_lock = threading.Lock()

    def heatmaps(self, method: str, images: np.ndarray, class_indices) -> np.ndarray:
        """[0, 1] maps (N, size, size) for uint8 images (N, size, size, 3): one pass for the compiled methods."""
        if method == FAST_METHOD:
            return self.fast(images, class_indices)
        if method in layercam.METHODS:
            return self.fine(method, images, class_indices)
        return np.stack([self.heatmap(method, image, int(c)) for image, c in zip(images, class_indices, strict=True)])

    def fine(self, method: str, images: np.ndarray, class_indices) -> np.ndarray:
        with self._build_lock:
            if self._fine is None:
                self._fine = layercam.FineCams(self.model, self.logits_layer)
        return self._fine(method, images, class_indices)

    def heatmap(self, method: str, image: np.ndarray, class_index: int) -> np.ndarray:
        """A [0, 1] map (size x size) for one uint8 image (size, size, 3) and one target class."""
        if method == FAST_METHOD:
            return self.fast(image[None], [class_index])[0]
        if method in layercam.METHODS:
            return self.fine(method, image[None], [class_index])[0]
        if method not in ALL_METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(ALL_METHODS)}")
        from tf_keras_vis.utils.scores import CategoricalScore

        visualise = self._visualiser(method)
        result = visualise(CategoricalScore([class_index]), image[None].astype(np.float32))
        heatmap = np.asarray(result[0], dtype=np.float32)
        low, high = float(heatmap.min()), float(heatmap.max())
        return (heatmap - low) / (high - low + 1e-7)

    def _visualiser(self, method: str) -> Callable:
        with self._build_lock:
            if method not in self._visualisers:
                self._visualisers[method] = self._build(method)
            return self._visualisers[method]

    def _build(self, method: str) -> Callable:
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.layercam import Layercam
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.scorecam import Scorecam
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        # Scores on logits (softmax replaced by linear), as for the fast Grad-CAM.
        modifier = ReplaceToLinear()
        # seek_penultimate_conv_layer=False: otherwise tf-keras-vis walks back from the named layer
        # to the nearest Conv2D (before BatchNorm and ReLU), not the layer the card names.
        layer = {"penultimate_layer": self.layer_name, "seek_penultimate_conv_layer": False}
        if method == "Grad-CAM++":
            cam = GradcamPlusPlus(self.model, model_modifier=modifier, clone=True)
            return lambda score, x: cam(score, x, **layer)
        if method == "LayerCAM":
            cam = Layercam(self.model, model_modifier=modifier, clone=True)
            return lambda score, x: cam(score, x, **layer)
        if method == "Faster-ScoreCAM":
            cam = Scorecam(self.model, model_modifier=modifier, clone=True)
            return lambda score, x: cam(score, x, max_N=10, **layer)
        saliency = Saliency(self.model, model_modifier=modifier, clone=True)
        return lambda score, x: saliency(score, x, smooth_samples=20, smooth_noise=0.15)
