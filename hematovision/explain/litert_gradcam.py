"""Grad-CAM read from the LiteRT model, without TensorFlow: a heatmap in milliseconds, from a cold start.

Where the logits are one dense layer on the global average of the Grad-CAM layer's map (the shipped head:
pooling, dropout, dense), the gradient of class c's logit with respect to the map is, at every position, the
dense weights' column for c divided by the map's area. Grad-CAM's channel weights (those gradients averaged
over the map) are then that column over the area, and the map is ReLU(activations . w_c) / area: the class
activation map. Both are in the exported ``model.tflite``: an interpreter that keeps its intermediate tensors
reads the map the pooling averages and the dense weights, found by the graph's structure (the op that makes
the logits, the pooling op before it), not by tensor names, which the converter does not keep stable. The maps
are upsampled and normalised as :class:`hematovision.explain.gradcam.GradCam`'s, which they equal
(tests/test_gradcam.py). A model with any other head (an ensemble's averaged logits) is refused with
:class:`NotACamHead`; callers then use the TensorFlow Grad-CAM.

The morphology heads are linear on the centre average of the features layer's map, which the export pools into
its ``features`` output: the same reasoning makes their maps ReLU(map . head weights / scale) / area
(:class:`LiteRTAttributeCam`, equal to :class:`hematovision.explain.gradcam.AttributeCam`'s).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from hematovision.core.runtime import DEFAULT_THREADS, OUTPUTS
from hematovision.explain.gradcam import normalise, score_weights, upsample
from hematovision.heads.morphology import AttributeHeads


class NotACamHead(ValueError):
    """The exported network's logits are not one dense layer on a pooled map: Grad-CAM needs gradients."""


class LiteRTGradCam:
    """Grad-CAM on the map the logits' pooling reads; thread-safe (one image at a time, under a lock)."""

    def __init__(self, path: Path, threads: int = DEFAULT_THREADS) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # The default XNNPACK delegate fuses the graph into one op, hiding the tensors read here; keeping every
        # intermediate costs memory (tens of megabytes), so this interpreter is not the one that classifies.
        interpreter = Interpreter(
            model_path=str(path),
            num_threads=threads,
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
        runner = interpreter.get_signature_runner(next(iter(interpreter.get_signature_list())))
        outputs = {name: runner.get_output_details()[f"output_{i}"]["index"] for i, name in enumerate(OUTPUTS)}
        logits_index = outputs["logits"]
        del runner  # a signature runner holds views of the interpreter's buffers, which block invoke()
        producers = {output: op for op in interpreter._get_ops_details() for output in op["outputs"]}
        dense = producers.get(logits_index)
        if dense is None or dense["op_name"] != "FULLY_CONNECTED":
            raise NotACamHead(f"{path}: the logits are not made by one dense layer")
        pooling = producers.get(dense["inputs"][0])
        if pooling is None or pooling["op_name"] != "MEAN":
            raise NotACamHead(f"{path}: the dense layer does not read a global average")
        map_index, axes_index = pooling["inputs"]
        if sorted(np.ravel(interpreter.get_tensor(axes_index)).tolist()) != [1, 2]:
            raise NotACamHead(f"{path}: the pooling does not average over the map's height and width")
        self._weights = interpreter.get_tensor(dense["inputs"][1]).astype(np.float32).copy()  # (classes, channels)
        features_pooling = producers.get(outputs["features"])
        #: The features layer's map, which the morphology heads read (None where the export pools it otherwise).
        self._features_map_index = features_pooling["inputs"][0] if features_pooling["op_name"] == "MEAN" else None
        self._interpreter = interpreter
        self._input_index = interpreter.get_input_details()[0]["index"]
        self._map_index = map_index
        self.input_size = int(interpreter.get_input_details()[0]["shape"][1])
        self._lock = threading.Lock()

    def _read(self, image: np.ndarray, index: int) -> np.ndarray:
        with self._lock:
            self._interpreter.set_tensor(self._input_index, image[None].astype(np.float32))
            self._interpreter.invoke()
            return self._interpreter.get_tensor(index)[0].copy()

    def _map(self, activations: np.ndarray, channel_weights: np.ndarray) -> np.ndarray:
        height, width = activations.shape[:2]
        cam = np.maximum(activations @ channel_weights / (height * width), 0.0)
        return normalise(upsample(cam, self.input_size))

    def __call__(self, images: np.ndarray, class_indices: list[int] | np.ndarray) -> np.ndarray:
        """Heatmaps in [0, 1], shape (N, input_size, input_size), for uint8 images (N, size, size, 3)."""
        return np.stack(
            [
                self._map(self._read(image, self._map_index), self._weights[class_index])
                for image, class_index in zip(images, np.asarray(class_indices), strict=True)
            ]
        )

    def features_map(self, image: np.ndarray, channel_weights: np.ndarray) -> np.ndarray:
        """The [0, 1] map of ``channel_weights`` on the features layer's map (where the morphology heads read)."""
        return self._map(self._read(image, self._features_map_index), channel_weights)

    def attribute_cam(self, heads: AttributeHeads, features_layer: str) -> LiteRTAttributeCam:
        """The morphology heads' maps, where they read the layer this export pools into ``features``."""
        if self._features_map_index is None or heads.features_layer != features_layer:
            raise NotACamHead(f"the attribute heads read {heads.features_layer}, not this export's features map")
        return LiteRTAttributeCam(self, heads)


class LiteRTAttributeCam:
    """:class:`hematovision.explain.gradcam.AttributeCam` read from LiteRT (same call, same ``layer``)."""

    def __init__(self, cam: LiteRTGradCam, heads: AttributeHeads) -> None:
        self._cam = cam
        self.heads = heads
        self.layer = heads.features_layer

    def __call__(self, image: np.ndarray, attribute: str, value_index: int) -> np.ndarray:
        """A [0, 1] heatmap (input_size x input_size) for one uint8 image (size, size, 3)."""
        return self._cam.features_map(image, score_weights(self.heads, attribute, value_index))
