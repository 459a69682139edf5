"""Finer class maps (28 x 28 before upsampling) from earlier blocks, in one compiled GradientTape pass.

The card's Grad-CAM reads ``out_relu``, a 7 x 7 grid: at 224 px each cell of it is 32 px, about the size of
a nucleus's lobe, and its bilinear upsampling smears every map into a blob. Earlier blocks of MobileNetV2 see
the image at 28 x 28 (``block_6_expand_relu``) and 14 x 14 (``block_10_expand_relu``,
``block_13_expand_relu``). Each method here is one small function of those activations ``A`` and of the class
score's gradients ``G`` with respect to them (scores on the logits, as the fast Grad-CAM):

- **LayerCAM** (Jiang et al., 2021) at one layer: ``ReLU(sum_c ReLU(G_c) * A_c)``: each position weighted by
  its own positive gradient, so the map keeps the layer's resolution.
- **Fused LayerCAM**: LayerCAM at block 6 (28 x 28), block 10 and block 13 (14 x 14), each normalised to
  [0, 1] and bilinearly resized to 28 x 28, combined by their geometric mean (a place must be marked at every
  depth; the shallow layer alone marks edges and granules of any cell).
- **HiResCAM** (Draelos & Carin, 2020) at block 6: ``ReLU(sum_c G_c * A_c)``: the element-wise product that,
  for a head on pooled features, is exactly what the score sums.
- **Grad-CAM** (Selvaraju et al., 2017) at block 6: channel weights = the gradients' spatial mean.
- **Gated fused LayerCAM**: the fused map times the card's 7 x 7 Grad-CAM (``out_relu``) resized to 28 x 28:
  the last block says where the class is, the earlier ones sharpen it. The 28 x 28 grid is kept.

Every map is then upsampled to the input size with the same bilinear zoom as the fast Grad-CAM
(:func:`hematovision.explain.gradcam.upsample`) and min-max normalised.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import zoom

from hematovision.explain.gradcam import normalise, upsample

FINE_LAYER = "block_6_expand_relu"
FUSED_LAYERS = ("block_6_expand_relu", "block_10_expand_relu", "block_13_expand_relu")
TOP_LAYER = "out_relu"
#: Added to each normalised map before the geometric mean, so one flat layer does not zero the fusion.
FUSION_FLOOR = 0.01

LAYERCAM_FUSED = "LayerCAM fused (blocks 6-13)"
HIRESCAM_FINE = "HiResCAM (block 6)"
GRADCAM_FINE = "Grad-CAM (block 6)"
LAYERCAM_GATED = "LayerCAM fused x Grad-CAM"
METHODS = {
    LAYERCAM_FUSED: "LayerCAM at blocks 6, 10 and 13 (28x28 and 14x14), fused by their geometric mean: 28x28",
    HIRESCAM_FINE: "HiResCAM (gradient times activation, position by position) at block 6: 28x28",
    GRADCAM_FINE: "Grad-CAM at block 6 (28x28) instead of the last block (7x7)",
    LAYERCAM_GATED: "the fused LayerCAM map gated by the last block's Grad-CAM: 28x28",
}


class FineCams:
    """The maps of :data:`METHODS` for one model (a flat MobileNetV2 graph with the layers named above)."""

    def __init__(self, model, logits_layer: str) -> None:
        import keras
        import tensorflow as tf

        self.layers = tuple(dict.fromkeys((*FUSED_LAYERS, FINE_LAYER, TOP_LAYER)))
        outputs = [model.get_layer(name).output for name in self.layers]
        grad_model = keras.Model(model.inputs, [*outputs, model.get_layer(logits_layer).output])
        size = int(model.inputs[0].shape[1])
        self.input_size = size
        self.grid = int(model.get_layer(FINE_LAYER).output.shape[1])

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8), tf.TensorSpec([None], tf.int32)])
        def activations_and_gradients(images, class_indices):
            with tf.GradientTape() as tape:
                *activations, logits = grad_model(tf.cast(images, tf.float32), training=False)
                scores = tf.gather(logits, class_indices, batch_dims=1)
            return activations, tape.gradient(scores, activations)

        self._pass = activations_and_gradients

    def __call__(self, method: str, images: np.ndarray, class_indices) -> np.ndarray:
        """[0, 1] maps (N, input_size, input_size) by ``method`` for uint8 images (N, size, size, 3)."""
        return np.stack(
            [normalise(upsample(cam, self.input_size)) for cam in self.coarse(method, images, class_indices)]
        )

    def coarse(self, method: str, images: np.ndarray, class_indices) -> np.ndarray:
        """The maps at their own grid (N, 28, 28 at 224 px), before upsampling."""
        import tensorflow as tf

        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        activations, gradients = self._pass(
            tf.constant(images, tf.uint8), tf.constant(np.asarray(class_indices), tf.int32)
        )
        by_layer = {
            name: (a.numpy(), g.numpy()) for name, a, g in zip(self.layers, activations, gradients, strict=True)
        }
        if method == HIRESCAM_FINE:
            return hirescam(*by_layer[FINE_LAYER])
        if method == GRADCAM_FINE:
            return gradcam(*by_layer[FINE_LAYER])
        fused = fuse([layercam(*by_layer[name]) for name in FUSED_LAYERS], self.grid)
        if method == LAYERCAM_FUSED:
            return fused
        top = resize_maps(gradcam(*by_layer[TOP_LAYER]), self.grid)
        return fused * np.stack([normalise(np.clip(cam, 0, None)) for cam in top])


def layercam(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """(N, h, w) LayerCAM maps from (N, h, w, C) activations and gradients."""
    return np.maximum((np.maximum(gradients, 0) * activations).sum(axis=-1), 0)


def hirescam(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    return np.maximum((gradients * activations).sum(axis=-1), 0)


def gradcam(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    weights = gradients.mean(axis=(1, 2), keepdims=True)
    return np.maximum((weights * activations).sum(axis=-1), 0)


def resize_maps(maps: np.ndarray, grid: int) -> np.ndarray:
    """Bilinear zoom of (N, h, w) maps to (N, grid, grid)."""
    return np.stack([zoom(cam, (grid / cam.shape[0], grid / cam.shape[1]), order=1) for cam in maps])


def fuse(per_layer: list[np.ndarray], grid: int) -> np.ndarray:
    """Geometric mean of the layers' maps, each normalised to [0, 1] and resized to ``grid``."""
    resized = [resize_maps(np.stack([normalise(cam) for cam in maps]), grid) for maps in per_layer]
    logs = np.mean([np.log(np.clip(maps, 0, None) + FUSION_FLOOR) for maps in resized], axis=0)
    return np.exp(logs) - FUSION_FLOOR
