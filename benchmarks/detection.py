"""How long finding the white cells of one smear photo takes: `python -m benchmarks.detection` prints it.

Target (on the slow 2-core machine): median <= 0.3 s per 640x480 photo, within the 1 s budget for a whole
smear photo found and classified (benchmarks.speed). On the held-out BCCD test photos when ../shared has them
(the figure ``python -m training.bccd`` records), else on generated smears. This was an assert in
tests/test_smear.py, where a loaded machine failed it and a fast one passed it whatever the code did.
"""

from __future__ import annotations

import statistics
import time

from hematovision.core import paths
from hematovision.core.smear import find_white_cells

TARGET_SECONDS = 0.3
BCCD_DIR = paths.SHARED_DATA_DIR / "bccd"


def generated_seconds(n: int = 20) -> list[float]:
    from tests.test_smear import synthetic_smear

    seconds = []
    for seed in range(n):
        image, _ = synthetic_smear(seed)
        started = time.perf_counter()
        find_white_cells(image)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    if (BCCD_DIR / "JPEGImages").is_dir():
        from training.bccd import detection_scores, read_photos

        scores = detection_scores(read_photos(BCCD_DIR, seed=0), split="test")
        where, n, median = "held-out BCCD test photos", scores["photos"], scores["median_seconds_per_photo"]
    else:
        seconds = generated_seconds()
        where, n, median = "generated 640x480 smears (no BCCD photos here)", len(seconds), statistics.median(seconds)
    verdict = "meets" if median <= TARGET_SECONDS else "MISSES"
    print(f"white-cell detection, median over {n} {where}: {median:.3f} s per photo ({verdict} <= {TARGET_SECONDS} s)")


if __name__ == "__main__":
    main()
