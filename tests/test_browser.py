"""End to end in a real browser: `streamlit run`, headless Chromium, upload, see the predicted class."""

import os
from pathlib import Path

import pytest

from hematovision import paths
from hematovision.datasets import read_manifest
from hematovision.predict import Classifier
from tests.browser import chromium_path, classify_in_browser, running_app
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
        verdict = classify_in_browser(port, image, screenshot)
    if expected.not_blood_cell:
        assert "does not look like a blood-cell image" in verdict
    else:
        assert expected.label in verdict and f"{100 * expected.confidence:.1f}%" in verdict
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
