"""LiteRT against ONNX Runtime on the shipped network: `python -m benchmarks.onnx_compare` prints both.

ONNX Runtime is not a dependency (the app keeps LiteRT, README: speed). To run this, put the converter and
the runtime in a side folder so they cannot disturb the project's pinned packages:

    .venv/bin/pip install --no-deps --target /tmp/onnx tf2onnx==1.17.0 onnx==1.23.2 onnxruntime==1.32.0
    PYTHONPATH=/tmp/onnx:. .venv/bin/python -m benchmarks.onnx_compare

The ONNX file is converted from the same ``models/model.tflite`` the app runs (tf2onnx, opset 17), so both
runtimes run the same weights; outputs are compared on real images before anything is timed.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.speed import sample_images
from hematovision.core import paths
from hematovision.core.predict import Classifier
from hematovision.core.runtime import DEFAULT_THREADS, LITERT_FILE, OUTPUTS, LiteRTForward

IMAGES = 64


def median_ms_per_image(run, images: np.ndarray, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(images)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times) / len(images)


def main() -> None:
    import onnxruntime

    model_dir = paths.model_dir()
    classifier = Classifier.load(model_dir)
    images = np.stack([classifier.model_input(data) for _, data in sample_images(IMAGES)])
    litert = LiteRTForward(model_dir / LITERT_FILE)
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = Path(folder) / "model.onnx"
        convert = [sys.executable, "-m", "tf2onnx.convert", "--tflite", str(model_dir / LITERT_FILE)]
        subprocess.run([*convert, "--output", str(onnx_path), "--opset", "17"], check=True, capture_output=True)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = DEFAULT_THREADS, 1
        session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def onnx_batches(size: int):
        def run(batch: np.ndarray) -> list:
            return [
                session.run(None, {input_name: batch[i : i + size].astype(np.float32)})
                for i in range(0, len(batch), size)
            ]

        return run

    # ONNX names its outputs its own way: each LiteRT output is matched to the closest one of its shape.
    onnx_outputs = onnx_batches(8)(images[:8])[0]
    differences = [
        min(float(np.abs(other - output).max()) for other in onnx_outputs if other.shape == output.shape)
        for output in litert(images[:8])
    ]
    print("max difference from LiteRT: " + ", ".join(f"{n} {d:.1e}" for n, d in zip(OUTPUTS, differences, strict=True)))
    litert(images[:4]), onnx_batches(1)(images[:4])  # warm both
    print(f"{DEFAULT_THREADS} threads, {IMAGES} PBC test images, median of 3, ms per image:")
    print(f"  LiteRT, one image per call: {median_ms_per_image(litert, images):.2f}")
    for size in (1, 8, 32):
        print(f"  ONNX Runtime, {size} per call: {median_ms_per_image(onnx_batches(size), images):.2f}")


if __name__ == "__main__":
    main()
