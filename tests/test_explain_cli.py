"""`python -m hematovision explain` on the tiny model, and the mapping of maps back onto the image's own pixels."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from hematovision.cli.main import main
from hematovision.core.framing import frame_single_cell_with_window
from hematovision.core.imaging import to_model_input
from hematovision.explain.export import peak, to_image_coordinates, unique_stem
from hematovision.explain.saliency import DEFAULT_METHOD
from tests.conftest import encode, synthetic_cell, write_class_folders


def off_centre_cell(height: int = 300, width: int = 400, centre=(140, 170), radius: int = 20) -> np.ndarray:
    """A small purple cell on a pink field, off the image's centre (the framing re-cuts around it)."""
    rng = np.random.default_rng(1)
    image = np.empty((height, width, 3), np.float64)
    image[:] = (236, 200, 205)
    yy, xx = np.mgrid[:height, :width]
    image[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2] = (90, 40, 140)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def darkness_map(model_input: np.ndarray) -> np.ndarray:
    """A stand-in heatmap computed on the model input: where it is dark (the cell)."""
    dark = 255.0 - model_input.mean(axis=-1)
    return (dark - dark.min()) / (dark.max() - dark.min())


@pytest.mark.parametrize("centre", [(140, 170), (150, 230)])
def test_map_on_the_framed_input_peaks_on_the_cell_in_the_image(centre):
    rgb = off_centre_cell(centre=centre)
    framed, note, window = frame_single_cell_with_window(rgb)
    assert note is not None  # the small cell was re-cut: the framed square is not the image's centre square
    heat = darkness_map(to_model_input(framed, 96))
    mapped = to_image_coordinates(heat, window, rgb.shape)
    assert mapped.shape == rgb.shape[:2] and mapped.dtype == np.float32
    assert mapped.min() >= 0.0 and mapped.max() <= 1.0
    x, y = peak(mapped)
    assert (y - centre[0]) ** 2 + (x - centre[1]) ** 2 < 20**2


def test_unframed_image_maps_onto_its_centre_square():
    heat = np.zeros((8, 8), np.float32)
    heat[0, 0] = 1.0
    mapped = to_image_coordinates(heat, (50, 0, 100), (100, 200, 3))  # a 100x200 image's centre square
    assert mapped.shape == (100, 200)
    assert mapped[:, :50].max() == 0 and mapped[:, 150:].max() == 0
    assert peak(mapped) == (50, 0)


def test_window_beyond_the_image_drops_the_mirrored_part():
    heat = np.ones((10, 10), np.float32)
    mapped = to_image_coordinates(heat, (-20, -20, 60), (40, 40, 3))
    assert mapped.shape == (40, 40) and mapped.min() == 1.0


def test_unique_stems():
    taken: set[str] = set()
    assert [unique_stem(n, taken) for n in ["a/x.png", "b/x.jpg", "z.zip/in/x.png", "y"]] == ["x", "x_2", "x_3", "y"]


def test_explain_writes_maps_overlays_and_a_row_per_good_image(tiny_model_dir, tmp_path, capsys):
    folder = write_class_folders(tmp_path / "cells", per_class=1)
    wide = tmp_path / "cells" / "wide.png"
    Image.fromarray(np.pad(synthetic_cell(0, 5), ((10, 10), (40, 30), (0, 0)), mode="edge")).save(wide)
    (folder / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    assert main(["explain", str(folder), "--out", str(out), "--model", str(tiny_model_dir)]) == 0
    captured = capsys.readouterr()
    assert "broken.png" in captured.err
    with (out / "explain.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and not any("broken" in row["file"] for row in rows)
    for row in rows:
        image = np.asarray(Image.open(row["file"]))
        heat = np.load(out / row["map"])
        assert heat.dtype == np.float32 and heat.shape == image.shape[:2]
        assert heat.min() >= 0.0 and heat.max() <= 1.0
        assert np.asarray(Image.open(out / row["map"].replace(".npy", ".png"))).shape[:2] == image.shape[:2]
        assert row["target"] == row["predicted"] and row["method"] == DEFAULT_METHOD
        assert 0 <= int(row["peak_x"]) < image.shape[1] and 0 <= int(row["peak_y"]) < image.shape[0]


def test_explain_unknown_target_lists_the_classes(tiny_model_dir, tmp_path, capsys):
    folder = write_class_folders(tmp_path / "cells", per_class=1)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "explain",
                str(folder),
                "--out",
                str(tmp_path / "out"),
                "--target",
                "dragon",
                "--model",
                str(tiny_model_dir),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "dragon" in err and "lymphocyte" in err and "neutrophil" in err


def test_a_re_cut_cell_keeps_its_upload_and_the_explain_overlay_lies_on_it(tiny_model_dir):
    """Issue 38, item 3: where the app re-cuts a cell before the network reads it, the Explain page lays the map
    back onto the uploaded image; an image read as it is keeps its overlay on what the network saw."""
    from hematovision.app.explain_view import overlay_on_upload
    from hematovision.app.stored_image import explainable
    from hematovision.core.predict import Classifier
    from hematovision.core.smear import window_beyond_photo

    classifier = Classifier.load(tiny_model_dir)
    rgb = off_centre_cell()
    sources = [("moved.png", encode(rgb)), ("centred.png", encode(synthetic_cell(0, 30)))]
    moved, centred = classifier.classify(sources, keep_images=True)
    _, _, window = frame_single_cell_with_window(rgb)
    assert moved.window == window and np.array_equal(moved.upload.rgb, rgb)
    assert moved.image.rgb.shape[:2] == (window[2], window[2])  # the network's square, not the upload
    assert moved.beyond_photo() == window_beyond_photo(rgb.shape, window)
    assert centred.window is None and centred.upload is None
    unkept = classifier.classify(sources[:1])[0]
    assert unkept.window == window and unkept.upload is None  # the upload is kept only with the images

    stored_moved, stored_centred = explainable([moved, centred], classifier.card.input_size)
    heat = darkness_map(stored_moved.model_input)
    shown, laid = overlay_on_upload(stored_moved, heat, "inferno", 1.0)
    assert np.array_equal(shown, rgb) and laid.shape == rgb.shape  # a small upload is shown as it is
    cell_rows, cell_cols = np.nonzero(laid.astype(int).sum(axis=-1) == laid.astype(int).sum(axis=-1).max())
    assert abs(cell_rows.mean() - 140) < 20 and abs(cell_cols.mean() - 170) < 20  # brightest where the cell is
    assert overlay_on_upload(stored_centred, darkness_map(stored_centred.model_input), "inferno", 1.0) is None


def test_a_large_upload_is_shrunk_under_its_overlay_and_the_map_stays_on_the_cell():
    from hematovision.app.explain_view import UPLOAD_SHOWN_PIXELS, overlay_on_upload
    from hematovision.app.stored_image import StoredImage
    from hematovision.core.imaging import DecodedImage
    from hematovision.core.predict import ImageResult

    rgb = off_centre_cell(height=1200, width=1600, centre=(560, 680), radius=80)
    framed, _, window = frame_single_cell_with_window(rgb)
    result = ImageResult("big.png", image=DecodedImage(framed), upload=DecodedImage(rgb), window=window)
    model_input = to_model_input(framed, 96)
    stored = StoredImage("big.png", "d", model_input, framed, result)
    shown, laid = overlay_on_upload(stored, darkness_map(model_input), "inferno", 1.0)
    scale = UPLOAD_SHOWN_PIXELS / 1600
    assert shown.shape == laid.shape == (round(1200 * scale), UPLOAD_SHOWN_PIXELS, 3)
    brightness = laid.astype(int).sum(axis=-1)
    rows, cols = np.nonzero(brightness == brightness.max())
    assert abs(rows.mean() - 560 * scale) < 80 * scale and abs(cols.mean() - 680 * scale) < 80 * scale
