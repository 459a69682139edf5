"""Running the network for classification: LiteRT on the exported file, or Keras as the fallback.

Both give the same two outputs for a uint8 batch (N, size, size, 3): the pooled activations of the
card's features layer (for the domain checks) and the logits. LiteRT (Google's runtime for
TensorFlow models, package ``ai-edge-litert``) runs the exported ``model.tflite`` through XNNPACK
without importing TensorFlow at all, which is what makes a cold start and a single image fast on a
laptop CPU; explanations (Grad-CAM and relatives) still need gradients, so they keep the Keras model.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

LITERT_FILE = "model.tflite"
#: Interpreter threads, and images per interpreter call, chosen by measurement on the shipped model
#: (2-core EPYC, 64 images, median of 3): 2 threads 1.55 ms per image one at a time, 1.92 in batches of
#: 8, 2.15 in batches of 32; 1 thread 2.83-4.15 ms; 4 threads 2.32-2.69 ms (more threads than cores).
#: So one image per call, on as many threads as there are cores, up to 2.
DEFAULT_THREADS = min(2, os.cpu_count() or 1)

Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class LiteRTForward:
    """The exported network in a LiteRT interpreter. Thread-safe: one call runs at a time.

    An interpreter holds its tensors between ``set_tensor`` and ``get_tensor``, so two Streamlit
    sessions sharing it must take turns; each call already runs on every core it is given.
    """

    def __init__(self, path: Path, threads: int = DEFAULT_THREADS) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._lock = threading.Lock()
        signatures = self._interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"{path} should hold one signature, not {len(signatures)}")
        runner = self._interpreter.get_signature_runner(next(iter(signatures)))
        outputs = runner.get_output_details()
        if len(outputs) != 2:
            raise ValueError(f"{path} should give features and logits, not {len(outputs)} outputs")
        # The export names its outputs output_0 (features) and output_1 (logits). Tensors are then read
        # by index: a signature runner keeps views of the interpreter's buffers, which blocks resizing.
        self._output_indices = [outputs[name]["index"] for name in sorted(outputs)]
        self._input_index = next(iter(runner.get_input_details().values()))["index"]
        del runner
        shape = self._interpreter.get_input_details()[0]["shape"]
        self._interpreter.resize_tensor_input(self._input_index, [1, *shape[1:]])
        self._interpreter.allocate_tensors()

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features, logits = [], []
        with self._lock:
            for image in images:
                self._interpreter.set_tensor(self._input_index, image[None].astype(np.float32))
                self._interpreter.invoke()
                feature_row, logit_row = (self._interpreter.get_tensor(i) for i in self._output_indices)
                features.append(feature_row)
                logits.append(logit_row)
        return np.concatenate(features), np.concatenate(logits)


def two_output_model(model, features_layer: str, logits_layer: str):
    """A Keras model on the same graph giving (pooled features of ``features_layer``, logits): what both
    the Keras path and the LiteRT export (training.export) run."""
    import keras

    features = model.get_layer(features_layer).output
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D()(features)
    return keras.Model(model.inputs, [features, model.get_layer(logits_layer).output])


def keras_forward(model, features_layer: str, logits_layer: str, size: int) -> Forward:
    """The same two outputs from the Keras model, as one compiled graph for every batch size."""
    import tensorflow as tf

    forward_model = two_output_model(model, features_layer, logits_layer)
    # predict() and eager calls cost 5-10x more per image than a traced function.
    compiled = tf.function(
        lambda images: forward_model(tf.cast(images, tf.float32), training=False),
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
    )
    chunk = 64

    def forward(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = [compiled(images[start : start + chunk]) for start in range(0, len(images), chunk)]
        return np.concatenate([f.numpy() for f, _ in parts]), np.concatenate([lg.numpy() for _, lg in parts])

    return forward
