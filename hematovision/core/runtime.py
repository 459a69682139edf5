"""Running the network for classification: LiteRT on the exported file, or Keras as the fallback.

Both give the same three outputs for a uint8 batch (N, size, size, 3): the pooled activations of the
card's features layer (for the domain checks and lab profiles), the logits, and the same layer pooled over
the middle of its map only (for the attribute heads). LiteRT (Google's runtime for
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

#: What the export's outputs output_0, output_1 and output_2 are, recorded in the card by training.export.
OUTPUTS = ("features", "logits", "centre_features")
#: The middle of the features layer's map that the centre features average: the map minus 2/7 of its side at
#: each edge (the 6x6 middle of MobileNetV2's 14x14 block 13 at 224 px). The framing step puts the cell there;
#: averaged over the whole map, the nucleus is diluted by the smear around it. Chosen on the validation split
#: (docs/experiments.md): the attribute heads' mean accuracy 91.99% on the whole map, 93.14% on the 6x6 middle,
#: 93.07% on the 8x8 one.
CENTRE_MARGIN = 2 / 7

Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


class LiteRTForward:
    """The exported network in a LiteRT interpreter. Thread-safe: one call runs at a time.

    An interpreter holds its tensors between ``set_tensor`` and ``get_tensor``, so two Streamlit
    sessions sharing it must take turns; each call already runs on every core it is given.

    ``batch`` > 1 runs each full group of that many images in one call of a second interpreter, sized for it
    (made on first use, so a caller that never passes that many pays nothing for it); the rest go one at a time.
    The outputs are the same either way (tests/test_runtime.py); measured under load it was not faster per image
    than one at a time (docs/experiments.md, issue 41), so nothing uses it by default.
    """

    def __init__(self, path: Path, threads: int = DEFAULT_THREADS, batch: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        self._path, self._threads, self.batch = path, threads, batch
        self._interpreter_type = Interpreter
        self._lock = threading.Lock()
        self._interpreters: dict[int, tuple] = {}
        self._interpreter_for(1)

    def _interpreter_for(self, size: int) -> tuple:
        """(interpreter, input index, output indices) with its input sized for ``size`` images."""
        if size in self._interpreters:
            return self._interpreters[size]
        path = self._path
        interpreter = self._interpreter_type(model_path=str(path), num_threads=self._threads)
        signatures = interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"{path} should hold one signature, not {len(signatures)}")
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        outputs = runner.get_output_details()
        if len(outputs) != len(OUTPUTS):
            raise ValueError(f"{path} should give {', '.join(OUTPUTS)}, not {len(outputs)} outputs")
        # The export names its outputs output_0, output_1, output_2 (OUTPUTS' order). Tensors are then read
        # by index: a signature runner keeps views of the interpreter's buffers, which blocks resizing.
        output_indices = [outputs[name]["index"] for name in sorted(outputs)]
        input_index = next(iter(runner.get_input_details().values()))["index"]
        del runner
        shape = interpreter.get_input_details()[0]["shape"]
        interpreter.resize_tensor_input(input_index, [size, *shape[1:]])
        interpreter.allocate_tensors()
        self._interpreters[size] = interpreter, input_index, output_indices
        return self._interpreters[size]

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows: list[list[np.ndarray]] = [[] for _ in OUTPUTS]
        batched = len(images) - len(images) % self.batch if self.batch > 1 else 0
        with self._lock:
            groups = [images[start : start + self.batch] for start in range(0, batched, self.batch)]
            for group in [*groups, *(image[None] for image in images[batched:])]:
                interpreter, input_index, output_indices = self._interpreter_for(len(group))
                interpreter.set_tensor(input_index, group.astype(np.float32))
                interpreter.invoke()
                for collected, index in zip(rows, output_indices, strict=True):
                    collected.append(interpreter.get_tensor(index))
        features, logits, centre = (np.concatenate(collected) for collected in rows)
        return features, logits, centre


def centre_cropping(side: int) -> int:
    """Rows (and columns) cut from each edge of a map of ``side`` to leave its middle (CENTRE_MARGIN)."""
    return min(round(side * CENTRE_MARGIN), (side - 1) // 2)


def network_outputs_model(model, features_layer: str, logits_layer: str):
    """A Keras model on the same graph giving the three OUTPUTS: what both the Keras path and the LiteRT
    export (training.export) run."""
    import keras

    activations = model.get_layer(features_layer).output
    features = centre = activations
    if len(activations.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D()(activations)
        cut = centre_cropping(int(activations.shape[1]))
        middle = keras.layers.Cropping2D(((cut, cut), (cut, cut)))(activations)
        centre = keras.layers.GlobalAveragePooling2D()(middle)
    return keras.Model(model.inputs, [features, model.get_layer(logits_layer).output, centre])


def keras_forward(model, features_layer: str, logits_layer: str, size: int) -> Forward:
    """The same three outputs from the Keras model, as one compiled graph for every batch size."""
    import tensorflow as tf

    forward_model = network_outputs_model(model, features_layer, logits_layer)
    # predict() and eager calls cost 5-10x more per image than a traced function.
    compiled = tf.function(
        lambda images: forward_model(tf.cast(images, tf.float32), training=False),
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
    )
    chunk = 64

    def forward(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = [compiled(images[start : start + chunk]) for start in range(0, len(images), chunk)]
        features, logits, centre = (np.concatenate([part[k].numpy() for part in parts]) for k in range(3))
        return features, logits, centre

    return forward
