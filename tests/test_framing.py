"""Framing: every cell shown to the network at the size white cells have in the training images."""

from __future__ import annotations

import numpy as np
import pytest

from hematovision.core.framing import PBC_SPAN, SPAN_RANGE, cell_span, centred_cell, frame_single_cell
from hematovision.core.smear import CellBox, crop_cell, find_white_cells
from tests.test_smear import GLASS, RED_CELL, paint_disc, paint_white_cell, synthetic_smear


def single_cell_image(side: int, radius: int, lobes: int = 3) -> tuple[np.ndarray, CellBox]:
    image = np.empty((side, side, 3), np.uint8)
    image[:] = GLASS
    for k in range(12):  # red cells around, as in a smear
        angle = 2 * np.pi * k / 12
        paint_disc(
            image, (side / 2 + 0.42 * side * np.cos(angle), side / 2 + 0.42 * side * np.sin(angle)), side / 14, RED_CELL
        )
    box = paint_white_cell(image, (side // 2, side // 2), radius, lobes)
    return image, box


def test_field_crops_show_the_cell_at_the_training_span():
    image, _ = synthetic_smear(0)
    boxes = find_white_cells(image)
    assert len(boxes) == 3
    for box in boxes:
        crop = crop_cell(image, box)  # as a cell found in a field of view is cut out
        assert crop.shape[0] == crop.shape[1]
        assert cell_span(box, crop.shape) == pytest.approx(PBC_SPAN, abs=0.01)
        found = centred_cell(crop)  # and the detector, run on the crop, sees the cell at that span
        assert found is not None and cell_span(found, crop.shape) == pytest.approx(PBC_SPAN, abs=0.06)


def test_a_cell_inside_the_training_range_is_left_exactly_as_it_is():
    image, _ = single_cell_image(360, 80)  # spans about 0.45
    framed, note = frame_single_cell(image)
    assert note is None and framed is image


def test_a_cell_filling_its_crop_is_recut_to_the_training_span():
    image, _ = single_cell_image(120, 58)  # spans about 0.96: a tight crop from a low-resolution camera
    framed, note = frame_single_cell(image)
    assert note is not None and "larger than in the training images" in note
    box = centred_cell(framed)
    assert box is not None
    assert cell_span(box, framed.shape) == pytest.approx(PBC_SPAN, abs=0.06)


def test_a_small_cell_in_a_wide_view_is_cut_closer():
    image, _ = single_cell_image(480, 45, lobes=1)  # spans about 0.19
    framed, note = frame_single_cell(image)
    assert "smaller" in note
    assert framed.shape[0] < 240
    assert cell_span(centred_cell(framed), framed.shape) == pytest.approx(PBC_SPAN, abs=0.06)


def test_no_white_cell_or_one_off_centre_leaves_the_image_alone():
    blank = np.full((200, 200, 3), GLASS, np.uint8)
    assert frame_single_cell(blank) == (blank, None)
    image = np.full((400, 400, 3), GLASS, np.uint8)
    paint_white_cell(image, (60, 60), 40, 3)
    framed, note = frame_single_cell(image)
    assert note is None and framed is image


def test_span_range_holds_the_training_span():
    low, high = SPAN_RANGE
    assert low < PBC_SPAN < high


@pytest.fixture
def finder_calls(monkeypatch) -> list:
    """Every call of the white-cell finder, wherever classification makes it."""
    from hematovision.core import framing, predict, reading, smear

    calls = []
    real = smear.find_white_cells

    def counting(rgb):
        calls.append(rgb.shape)
        return real(rgb)

    for module in (predict, reading, framing, smear):
        if hasattr(module, "find_white_cells"):
            monkeypatch.setattr(module, "find_white_cells", counting)
    return calls


@pytest.mark.parametrize("mode", ["auto", "single", "field"])
def test_an_image_is_searched_for_white_cells_once(finder_calls, mode):
    """The reading (one cell or a field) and the framing share one search: the finder is most of an image's time."""
    from hematovision.core.reading import inspect_image
    from tests.conftest import encode

    image, _ = single_cell_image(120, 58)  # re-cut: the framing needs the central cell's box
    inspection = inspect_image(encode(image), mode, 64)
    assert inspection.error is None and len(inspection.inputs) == 1
    assert len(finder_calls) == 1


def test_classify_searches_each_image_once(finder_calls, tiny_classifier):
    from tests.conftest import encode

    sources = [(f"cell_{i}.png", encode(single_cell_image(side, 58)[0])) for i, side in enumerate((120, 360, 480))]
    results = tiny_classifier.classify(sources)
    assert all(result.prediction is not None for result in results)
    assert len(finder_calls) == len(sources)
