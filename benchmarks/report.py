"""How long the unattended report takes: `python -m benchmarks.report` prints the figure.

Target (issue 24, the 2-core CPU): a report on 100 cells with heatmaps in <= 30 s, timed as a user would
meet it, from the command's start (Python, TensorFlow and the model loading included) to the PDF on disk.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.speed import sample_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--no-heatmaps", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name, data in sample_images(args.cells):
            (Path(folder) / name).write_bytes(data)
        pdf = Path(folder) / "report.pdf"
        command = [sys.executable, "-m", "hematovision", "report", folder, "--pdf", str(pdf), "--mode", "single"]
        started = time.perf_counter()
        subprocess.run(command + ([] if args.no_heatmaps else ["--heatmaps"]), check=True, capture_output=True)
        seconds = time.perf_counter() - started
        heatmaps = "without" if args.no_heatmaps else "with"
        print(f"report on {args.cells} cells {heatmaps} heatmaps: {seconds:.1f} s, {pdf.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
