"""End to end in a real browser: `streamlit run`, headless Chromium, upload, see the predicted class."""

import os
from pathlib import Path

import pytest

from hematovision.core import paths
from hematovision.core.datasets import read_manifest
from hematovision.core.predict import Classifier
from tests.browser import chromium_path, classify_in_browser, lecture_with_keys, running_app
from tests.conftest import encode, synthetic_cell

pytestmark = pytest.mark.browser


def sample_cell_image(folder: Path) -> Path:
    """A real test-split cell when ../shared is here (used in place, never copied), else a generated one."""
    manifest = paths.SHARED_DATA_DIR / "pbc_manifest.csv"
    if manifest.is_file():
        return next(item.path for item in read_manifest(manifest) if item.split == "test")
    image = folder / "cell.png"
    image.write_bytes(encode(synthetic_cell(0, 77, size=360)))
    return image


def test_upload_shows_the_predicted_class(tmp_path):
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test, but no Chromium was found (.ci/run installs it)")
        pytest.skip("no Chromium on this machine (apt-get install chromium); the browser test did not run")
    image = sample_cell_image(tmp_path)
    expected = Classifier.load().classify([(image.name, image)])[0].prediction

    with running_app() as (port, _, _):
        screenshot = tmp_path / "classify.png"
        verdict, pages = classify_in_browser(port, image, screenshot)
    # The app's own navigation (streamlit_app.py), not the page alone as an old-style multipage app would show it.
    assert "Review and report" in pages and "streamlit app" not in pages
    if expected.not_blood_cell:
        assert "does not look like a blood-cell image" in verdict
    else:
        assert expected.label in verdict and f"{100 * expected.confidence:.1f}%" in verdict
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


def overlaps(a: list[float], b: list[float]) -> bool:
    """Whether two boxes (left, top, width, height) share any area."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("width, height", [(1280, 720), (1024, 768)])
def test_lecture_mode_works_with_the_keyboard_on_a_projector(tmp_path, width, height):
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test, but no Chromium was found (.ci/run installs it)")
        pytest.skip("no Chromium on this machine (apt-get install chromium); the browser test did not run")
    with running_app() as (port, _, _):
        screenshot = tmp_path / f"lecture_{width}x{height}.png"
        seen = lecture_with_keys(port, width, height, screenshot)
    # Space reveals the next step; → and ← move between cells and start each cell from its first step.
    assert [line.split(" · ")[0] for line in seen["steps"]] == [f"Step {n} of 4" for n in (1, 2, 3, 4)]
    assert [line.split(" of ")[0] for line in seen["cells"]] == ["cell 2", "cell 3", "cell 2"]
    assert seen["step_after_move"].startswith("Step 1 of 4")
    geometry = seen["geometry"]
    heatmap, cell_beside = geometry["images"]  # at the last step the large picture is the heatmap
    assert cell_beside[3] > 150
    if (width, height) == (1280, 720):
        assert heatmap[3] >= 560
    # Everything on one screen, nothing on top of anything else, the credits in one line.
    assert geometry["scroll_height"] <= height
    boxes = [*geometry["images"], *geometry["buttons"], *geometry["credits"]]
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if overlaps(a, b)]
    assert len(geometry["credits"]) == 1 and geometry["credits"][0][3] < 2 * geometry["line_height"]
    print(f"screenshot: {screenshot}")
