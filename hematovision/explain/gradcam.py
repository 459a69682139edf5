"""Fast Grad-CAM: one compiled GradientTape pass (tens of ms on a CPU).

Same maths as tf-keras-vis ``Gradcam`` (Selvaraju et al., 2017): the class score's gradients,
averaged over space, weight the channels of the chosen layer's activation map; ReLU keeps what
speaks *for* the class. The map is upsampled with the same bilinear zoom and min-max normalised
the same way, so the two agree (tests/test_gradcam.py), but this one skips tf-keras-vis's
per-call model cloning and eager execution.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import zoom

from hematovision.core.runtime import centre_cropping
from hematovision.heads.morphology import AttributeHeads

#: Keeps normalisation finite on a flat map (a class with no positive evidence anywhere).
EPSILON = 1e-7


class GradCam:
    def __init__(self, model, layer_name: str, logits_layer: str) -> None:
        import keras
        import tensorflow as tf

        # Scores come from the logits, not the softmax: softmax gradients vanish for confident
        # predictions and mix in every other class.
        grad_model = keras.Model(
            model.inputs, [model.get_layer(layer_name).output, model.get_layer(logits_layer).output]
        )
        size = model.inputs[0].shape[1]
        self.input_size = int(size)

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8), tf.TensorSpec([None], tf.int32)])
        def class_activation_maps(images, class_indices):
            with tf.GradientTape() as tape:
                activations, logits = grad_model(tf.cast(images, tf.float32), training=False)
                scores = tf.gather(logits, class_indices, batch_dims=1)
            gradients = tape.gradient(scores, activations)
            channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
            return tf.nn.relu(tf.reduce_sum(activations * channel_weights, axis=-1))

        self._maps = class_activation_maps

    def __call__(self, images: np.ndarray, class_indices: list[int] | np.ndarray) -> np.ndarray:
        """Heatmaps in [0, 1], shape (N, input_size, input_size), for uint8 images (N, size, size, 3)."""
        import tensorflow as tf

        coarse = self._maps(tf.constant(images, tf.uint8), tf.constant(np.asarray(class_indices), tf.int32)).numpy()
        return np.stack([normalise(upsample(cam, self.input_size)) for cam in coarse])


def upsample(cam: np.ndarray, size: int) -> np.ndarray:
    """Bilinear zoom of a coarse map to ``size`` x ``size`` (tf-keras-vis's upsampling)."""
    return zoom(cam, (size / cam.shape[0], size / cam.shape[1]), order=1)


def normalise(cam: np.ndarray) -> np.ndarray:
    low, high = float(cam.min()), float(cam.max())
    return (cam - low) / (high - low + EPSILON)


class AttributeCam:
    """Grad-CAM of an attribute value, through its head (hematovision.heads.morphology.AttributeHeads).

    The score is the head's evidence for the value over the mean of the attribute's values, so the map shows
    what speaks *for* this value. Taken on the heads' own features layer where it is a spatial map (there,
    a head being linear on its spatial average, Grad-CAM's channel weights are the head's weights over the
    standardising scale); on ``fallback_layer`` (the card's Grad-CAM layer) where the heads sit on an
    already pooled layer. Heads on the middle of the map score only the middle, but Grad-CAM averages the
    gradients into one weight per channel, so the map still shows the same evidence at every position.
    """

    def __init__(self, model, heads: AttributeHeads, fallback_layer: str) -> None:
        import keras
        import tensorflow as tf

        features = model.get_layer(heads.features_layer).output
        spatial = len(features.shape) == 4
        self.layer = heads.features_layer if spatial else fallback_layer
        grad_model = keras.Model(model.inputs, [model.get_layer(self.layer).output, features])
        size = model.inputs[0].shape[1]
        self.input_size = int(size)
        self.heads = heads

        @tf.function(
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8), tf.TensorSpec([None], tf.float32)]
        )
        def activation_map(images, weights):
            with tf.GradientTape() as tape:
                activations, pooled = grad_model(tf.cast(images, tf.float32), training=False)
                if spatial:
                    side = int(pooled.shape[1])
                    cut = centre_cropping(side) if heads.pooling == "centre" else 0
                    pooled = tf.reduce_mean(pooled[:, cut : side - cut, cut : side - cut], axis=(1, 2))
                scores = tf.reduce_sum(pooled * weights, axis=-1)
            gradients = tape.gradient(scores, activations)
            channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
            return tf.nn.relu(tf.reduce_sum(activations * channel_weights, axis=-1))

        self._maps = activation_map

    def __call__(self, image: np.ndarray, attribute: str, value_index: int) -> np.ndarray:
        """A [0, 1] heatmap (input_size x input_size) for one uint8 image (size, size, 3)."""
        cam = self._maps(image[None], score_weights(self.heads, attribute, value_index)).numpy()[0]
        return normalise(upsample(cam, self.input_size))


def score_weights(heads: AttributeHeads, attribute: str, value_index: int) -> np.ndarray:
    """Per feature: d(score of the value over the values' mean) / d(pooled feature)."""
    weights = heads.heads[attribute].weights
    return ((weights[:, value_index] - weights.mean(axis=1)) / heads.scale).astype(np.float32)
