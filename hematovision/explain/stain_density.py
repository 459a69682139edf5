"""A layer that sets each image's stain density, inside the model (``train --density-target``).

Another lab's smear can carry far fainter or stronger dyes than the training lab's: BCCD's nuclei have a third
of the optical density of PBC's. Inside the model, the correction reaches every path that runs it (training,
the app, the CLIs, the LiteRT export) without any of them having to remember it. Importing this module
registers the layer, so Keras can load a model file that holds it.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="hematovision")
class StainDensity(keras.layers.Layer):
    """Each image recoloured as if stained to a fixed density: pixels divided by the image's glass colour
    (each channel's 95th percentile), turned into optical density, scaled so that the 99th percentile of
    the density summed over channels (a nucleus's core) equals ``target``, and turned back into light on
    white glass. The gain is held to [0.5, 5] so that a blank or overexposed image is not amplified into
    noise. 0-255 in, 0-255 out."""

    def __init__(self, target: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.target = target

    def call(self, images):
        import tensorflow as tf

        light = tf.clip_by_value(tf.cast(images, tf.float32) / 255.0, 1.0 / 255.0, 1.0)
        shape = tf.shape(light)
        pixels = shape[1] * shape[2]
        per_channel = tf.transpose(tf.reshape(light, [shape[0], pixels, 3]), [0, 2, 1])
        glass = tf.math.top_k(per_channel, k=pixels // 20).values[:, :, -1]
        density = -tf.math.log(tf.clip_by_value(light / glass[:, None, None, :], 1e-3, 1.0))
        summed = tf.reshape(tf.reduce_sum(density, axis=-1), [shape[0], pixels])
        core = tf.math.top_k(summed, k=pixels // 100).values[:, -1]
        gain = tf.clip_by_value(self.target / tf.maximum(core, 1e-3), 0.5, 5.0)
        return tf.exp(-density * gain[:, None, None, None]) * 255.0

    def get_config(self) -> dict:
        return {**super().get_config(), "target": self.target}
