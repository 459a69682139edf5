"""End to end in a real browser: `streamlit run`, headless Chromium, upload, see the predicted class."""

import os

import pytest

from hematovision.predict import Classifier
from tests.browser import chromium_path, classify_in_browser, running_app
from tests.conftest import encode, synthetic_cell

pytestmark = pytest.mark.browser


def test_upload_shows_the_predicted_class(tmp_path):
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test, but no Chromium was found (.ci/run installs it)")
        pytest.skip("no Chromium on this machine (apt-get install chromium); the browser test did not run")
    image = tmp_path / "cell.png"
    image.write_bytes(encode(synthetic_cell(0, 77, size=360)))
    expected = Classifier.load().classify([("cell.png", image)])[0].prediction

    with running_app() as (port, _, _):
        screenshot = tmp_path / "classify.png"
        verdict = classify_in_browser(port, image, screenshot)
    assert expected.label in verdict and f"{100 * expected.confidence:.1f}%" in verdict
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
