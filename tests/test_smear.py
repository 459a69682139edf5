"""Finding white cells in smear photos: generated smears with known cells, plus one check on real BCCD photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from hematovision.core import paths
from hematovision.core.datasets import crops_info, parse_labels, read_manifest, smear_example, split_photos
from hematovision.core.framing import WIDE_FRAME_NOTE, frame_single_cell
from hematovision.core.reading import field_boxes
from hematovision.core.smear import (
    OUTSIDE_SPECIMEN_LEVEL,
    CellBox,
    beyond_photo,
    central_cell,
    crop_cell,
    cut_by_frame,
    fill_outside_specimen,
    find_white_cells,
    is_whole_field,
)
from hematovision.explain.overlay import fade_beyond_photo
from training.bccd import (
    SmearPhoto,
    count_matches,
    detection_scores,
    export_crops,
    export_photos,
    export_views,
    labelled_crops,
    parse_voc_boxes,
    pbc_cell_scale,
    read_photos,
)
from training.scoring import labelled_view

GLASS = (222, 220, 214)
RED_CELL = (205, 150, 150)
CYTOPLASM = (208, 186, 206)
NUCLEUS = (112, 82, 192)
PLATELET = (160, 128, 205)


def paint_disc(image: np.ndarray, centre: tuple[float, float], radius: float, colour: tuple[int, int, int]) -> None:
    yy, xx = np.ogrid[: image.shape[0], : image.shape[1]]
    image[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2] = colour


def paint_white_cell(image: np.ndarray, centre: tuple[int, int], radius: int, lobes: int) -> CellBox:
    """A pale cell with a nucleus of ``lobes`` touching-but-separate dark lobes; returns the cell's box."""
    paint_disc(image, centre, radius, CYTOPLASM)
    if lobes == 1:
        paint_disc(image, centre, radius * 0.65, NUCLEUS)
    else:
        # Lobes round the middle, neighbours 6 px apart, as in a segmented nucleus.
        lobe_radius = radius * 0.33
        ring = (2 * lobe_radius + 6) / (2 * np.sin(np.pi / lobes))
        for k in range(lobes):
            angle = 2 * np.pi * k / lobes
            lobe_centre = (centre[0] + ring * np.cos(angle), centre[1] + ring * np.sin(angle))
            paint_disc(image, lobe_centre, lobe_radius, NUCLEUS)
    x, y = centre
    return CellBox(x - radius, y - radius, x + radius + 1, y + radius + 1)


def finish(image: np.ndarray, seed: int) -> np.ndarray:
    """Camera blur and sensor noise, so that no rule can rely on perfectly flat colours."""
    blurred = ndi.gaussian_filter(image, sigma=(1.5, 1.5, 0))
    noisy = blurred + np.random.default_rng(seed).normal(0, 4, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def scatter_red_cells(image, keep_clear: list[tuple[int, int, int]], radius: int, count: int, seed: int) -> None:
    """Red cells at random places that do not touch the given (x, y, radius) discs."""
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    placed = 0
    while placed < count:
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if all(np.hypot(x - cx, y - cy) > r + radius + 12 for cx, cy, r in keep_clear):
            paint_disc(image, (x, y), radius, RED_CELL)
            paint_disc(image, (x, y), radius * 0.4, (215, 175, 172))  # the paler centre of a biconcave disc
            placed += 1


PLATELETS = [(60, 420), (330, 60), (600, 250), (250, 300), (90, 40)]


def synthetic_smear(seed: int = 0) -> tuple[np.ndarray, list[CellBox]]:
    """A BCCD-like 640x480 field: red cells, three white cells (3-lobed, 2-lobed, round nucleus), five platelets."""
    image = np.empty((480, 640, 3), np.float64)
    image[:] = GLASS
    cells = [((150, 140), 70, 3), ((470, 340), 70, 2), ((480, 110), 50, 1)]
    keep_clear = [(x, y, r) for (x, y), r, _ in cells] + [(x, y, 8) for x, y in PLATELETS]
    scatter_red_cells(image, keep_clear, radius=46, count=25, seed=seed)
    truth = [paint_white_cell(image, centre, radius, lobes) for centre, radius, lobes in cells]
    for centre in PLATELETS:
        paint_disc(image, centre, 7, PLATELET)
    return finish(image, seed), truth


def synthetic_single_cell(seed: int = 0) -> np.ndarray:
    """A PBC-like image: one white cell in the middle of a 360x363 frame, red cells around it."""
    image = np.empty((363, 360, 3), np.float64)
    image[:] = GLASS
    scatter_red_cells(image, [(180, 181, 62)], radius=32, count=14, seed=seed)
    paint_white_cell(image, (180, 181), 62, 2)
    return finish(image, seed)


# --- CellBox -------------------------------------------------------------------------------------


def test_iou_by_hand():
    box = CellBox(0, 0, 10, 10)
    assert box.width == 10 and box.height == 10 and box.area == 100
    assert box.iou(box) == 1.0
    assert box.iou(CellBox(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box.iou(CellBox(2, 2, 7, 7)) == pytest.approx(25 / 100)
    assert box.iou(CellBox(10, 0, 20, 10)) == 0.0  # touching edges share no pixel (right is exclusive)
    assert box.iou(CellBox(30, 30, 40, 40)) == 0.0


def test_greedy_matching_is_one_to_one():
    truth = [CellBox(0, 0, 100, 100), CellBox(200, 0, 300, 100)]
    found = [CellBox(0, 0, 100, 100), CellBox(5, 5, 100, 100), CellBox(400, 0, 500, 100)]
    assert count_matches(found, truth) == 1  # two boxes on one cell count once; the far box matches nothing
    assert count_matches([CellBox(0, 0, 100, 100)], [CellBox(60, 0, 160, 100)]) == 0  # IoU 0.25 is no match


# --- find_white_cells ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_exactly_the_white_cells_of_a_synthetic_smear(seed):
    image, truth = synthetic_smear(seed)
    found = find_white_cells(image)
    assert len(found) == len(truth), found
    assert count_matches(found, truth) == len(truth), (found, truth)
    for x, y in PLATELETS:
        assert not any(box.contains(x, y) for box in found), f"a box holds the platelet at {(x, y)}"


def test_finds_nothing_without_white_cells():
    image = np.empty((480, 640, 3), np.float64)
    image[:] = GLASS
    scatter_red_cells(image, [(x, y, 8) for x, y in PLATELETS], radius=46, count=30, seed=3)
    for centre in PLATELETS:
        paint_disc(image, centre, 7, PLATELET)
    assert find_white_cells(finish(image, 3)) == []


def test_boxes_scale_with_the_photo():
    image, truth = synthetic_smear(0)
    doubled = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    truth_doubled = [CellBox(2 * b.left, 2 * b.top, 2 * b.right, 2 * b.bottom) for b in truth]
    assert count_matches(find_white_cells(doubled), truth_doubled) == len(truth)


def test_cells_cut_by_the_frame_are_found_and_clipped():
    image, truth = synthetic_smear(0)
    cropped = image[40:, 90:]  # the 3-lobed cell (centre 150, 140) now lies across the left edge
    height, width = cropped.shape[:2]
    expected = [
        CellBox(max(b.left - 90, 0), max(b.top - 40, 0), min(b.right - 90, width), b.bottom - 40) for b in truth
    ]
    found = find_white_cells(cropped)
    assert count_matches(found, expected) == len(found) == 3
    assert all(0 <= b.left < b.right <= width and 0 <= b.top < b.bottom <= height for b in found)


def test_rejects_images_that_are_not_rgb():
    with pytest.raises(ValueError, match="RGB"):
        find_white_cells(np.zeros((100, 100), np.uint8))


def test_pbc_cell_scale_measures_the_cell_against_the_frame(tmp_path):
    images = []
    for seed in range(3):
        images.append(tmp_path / f"cell{seed}.png")
        Image.fromarray(synthetic_single_cell(seed)).save(images[-1])
    scale = pbc_cell_scale(images)
    assert scale["images"] == scale["one_cell_found"] == 3
    assert scale["median_cell_fraction"] == pytest.approx(125 / 363, rel=0.1)  # the painted cell is 125 px wide
    fraction = scale["median_cell_fraction"]
    assert scale["margin_for_pbc_scale"] == pytest.approx((1 / fraction - 1) / 2)


# --- is_whole_field ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_single_centred_cell_is_not_a_field(seed):
    image = synthetic_single_cell(seed)
    assert not is_whole_field(image)
    [cell] = find_white_cells(image)  # the detector still finds the one cell at this (PBC) scale
    assert cell.contains(180, 181)


def test_smear_photo_is_a_field():
    image, _ = synthetic_smear(0)
    assert is_whole_field(image)


def test_black_outside_the_specimen_is_painted_with_glass_but_dark_stain_is_kept():
    image = np.full((100, 100, 3), 220, np.uint8)
    image[:, :20] = 0  # an eyepiece camera's black edge
    image[45:55, 45:55] = (10, 0, 25)  # a very dark nucleus, away from the edge
    filled = fill_outside_specimen(image)
    assert (filled[:, :20] == 220).all() and (filled[45:55, 45:55] == image[45:55, 45:55]).all()
    assert fill_outside_specimen(filled) is filled  # nothing left to fill: the same array back
    crop = crop_cell(image, CellBox(40, 40, 60, 60), margin=1.5)  # 80 px wide: takes in the black edge
    assert (crop.max(axis=-1) < OUTSIDE_SPECIMEN_LEVEL).sum() == 10 * 10  # only the nucleus stays dark


def test_a_cell_beside_black_outside_the_specimen_keeps_its_own_box():
    smear, true_boxes = synthetic_smear(0)
    cell = true_boxes[0]
    cut = smear.copy()
    cut[:, cell.right + 4 :] = 0  # the frame goes black just right of the cell, as at an eyepiece's edge
    [found] = find_white_cells(cut)
    assert found.iou(cell) > 0.8 and found.right <= cell.right + 4  # black is not read as cytoplasm


def test_central_cell_is_the_box_nearest_the_frame_centre():
    boxes = [CellBox(0, 0, 100, 100), CellBox(300, 200, 380, 280), CellBox(500, 400, 640, 480)]
    assert central_cell(boxes, 640, 480) == boxes[1]
    assert central_cell([], 640, 480) is None


def test_labelled_view_frames_a_field_by_its_central_white_cell():
    smear, _ = synthetic_smear(0)
    centre = central_cell(find_white_cells(smear), 640, 480)
    view, framing = labelled_view(smear, "auto")
    assert framing == "field_central_cell" and np.array_equal(view, crop_cell(smear, centre))
    assert labelled_view(smear, "single")[1] == "single_cell"
    blank_wide = np.full((240, 320, 3), 230, np.uint8)  # no white cell to find: scored whole
    view, framing = labelled_view(blank_wide, "auto")
    assert framing == "field_without_cells" and view is blank_wide
    square_cell = synthetic_single_cell(0)
    assert labelled_view(square_cell, "auto") == (square_cell, "single_cell")


def wide_single_cell(seed: int = 0, scale: int = 1) -> np.ndarray:
    """One white cell at the centre of a 4:3 frame, red cells around it, some cut by the frame's edges."""
    image = np.empty((240, 320, 3), np.float64)
    image[:] = GLASS
    scatter_red_cells(image, [(160, 120, 46)], radius=22, count=12, seed=seed)
    paint_white_cell(image, (160, 120), 46, 3)
    image = finish(image, seed)
    return np.asarray(Image.fromarray(image).resize((320 * scale, 240 * scale))) if scale > 1 else image


@pytest.mark.parametrize("scale", [1, 3])
def test_one_centred_white_cell_in_a_wide_frame_of_any_size_is_one_cell(scale):
    image = wide_single_cell(seed=scale, scale=scale)
    assert not is_whole_field(image)
    framed, note = frame_single_cell(image)
    assert framed.shape[0] == framed.shape[1] and note == WIDE_FRAME_NOTE  # cut square around its cell


def test_a_square_frame_is_read_by_what_it_shows():
    smear, _ = synthetic_smear(0)
    # Whole white cells away from the centre: a field, whatever the frame's shape.
    assert is_whole_field(smear[:, :480])
    # A platelet at the centre, the only white cell cut by the frame: a platelet image with a neighbour.
    around_platelet = smear[150:450, 100:400]  # platelet (250, 300) at the centre; cell (150, 140) cut at a corner
    cells = find_white_cells(around_platelet)
    assert cells and all(cut_by_frame(cell, around_platelet.shape) for cell in cells)
    assert not is_whole_field(around_platelet)
    # The same without the platelet: nothing at the centre, a white cell at the edge, so a field.
    cleared = around_platelet.copy()
    cleared[140:160, 140:160] = np.median(around_platelet[:20, 200:], axis=(0, 1))
    assert is_whole_field(cleared)
    # No white cell found at all: one cell (a platelet, an erythroblast), as before.
    assert not is_whole_field(np.full((240, 320, 3), GLASS, np.uint8))


@pytest.mark.shared
def test_automatic_mode_reads_bccd_views_as_one_cell_and_pbc_cells_too(tmp_path):
    """The 320x240 BCCD views of held-out photos, each centred on its labelled white cell, and PBC's single-cell
    images: read as one cell unless a second whole white cell is in the frame."""
    bccd, manifest = paths.SHARED_DATA_DIR / "bccd", paths.SHARED_DATA_DIR / "pbc_manifest.csv"
    if not (bccd / "JPEGImages").is_dir() or not manifest.is_file():
        pytest.skip(f"needs the BCCD photos and the PBC manifest under {paths.SHARED_DATA_DIR}; not present here")
    photos = read_photos(bccd, seed=0)
    crops = [crop for crop in labelled_crops(photos) if crop.split == "test"]
    export_views(tmp_path, crops, photos)
    views = sorted(tmp_path.glob("test/*/*.png"))
    read = {view: field_boxes(np.asarray(Image.open(view).convert("RGB")), "auto") for view in views}
    fields = [view for view, boxes in read.items() if boxes is not None]
    assert len(views) == 2 * len(crops) and len(fields) <= 0.25 * len(views)  # 21 of 114 when written
    for view in fields:  # each read as a field holds a second whole white cell beside the one at its centre
        rgb = np.asarray(Image.open(view).convert("RGB"))
        assert sum(not cut_by_frame(box, rgb.shape) for box in read[view]) >= 2
    test_split = [item.path for item in read_manifest(manifest) if item.split == "test"]
    sample = [test_split[i] for i in np.random.default_rng(0).choice(len(test_split), 300, replace=False)]
    as_fields = sum(is_whole_field(np.asarray(Image.open(path).convert("RGB"))) for path in sample)
    assert as_fields <= 0.02 * len(sample)  # 15 of all 1,894 test images (two whole white cells in the frame)


# --- crop_cell -----------------------------------------------------------------------------------


def gradient_image(height: int = 200, width: int = 300) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    # 40-239: no pixel is black, or dark enough to be taken for outside the specimen.
    return (np.stack([xx % 200, yy % 200, (xx + yy) % 200], axis=-1) + 40).astype(np.uint8)


def test_crop_is_square_and_centred():
    image = gradient_image()
    box = CellBox(100, 50, 160, 90)  # 60 x 40, centre (130, 70)
    crop = crop_cell(image, box, margin=0.25)
    side = round(60 * 1.5)
    assert crop.shape == (side, side, 3)
    top, left = 70 - side // 2, 130 - side // 2
    np.testing.assert_array_equal(crop, image[top : top + side, left : left + side])


def test_crop_at_an_edge_mirrors_the_photo_instead_of_padding_black():
    image = gradient_image()
    box = CellBox(0, 0, 40, 40)  # centre (20, 20); a 52-px crop reaches 6 px beyond the top and left
    crop = crop_cell(image, box, margin=0.15)
    assert crop.shape == (52, 52, 3)
    assert crop.min() > 0
    np.testing.assert_array_equal(crop[6:, 6:], image[:46, :46])
    np.testing.assert_array_equal(crop[6:, :6], image[:46, :6][:, ::-1])  # the left strip mirrors the first columns
    np.testing.assert_array_equal(crop[:6, 6:], image[:6, :46][::-1])
    assert beyond_photo(image.shape, box, margin=0.15) == (6, 0, 6, 0)  # the mirrored rows above, columns before
    assert beyond_photo(image.shape, CellBox(100, 50, 160, 90), margin=0.25) == (0, 0, 0, 0)


def test_the_mirrored_margin_of_a_crop_is_faded_on_screen_and_the_rest_kept():
    image = gradient_image()
    box = CellBox(0, 0, 40, 40)
    crop = crop_cell(image, box, margin=0.15)
    shown = fade_beyond_photo(crop, beyond_photo(image.shape, box, margin=0.15))
    np.testing.assert_array_equal(shown[6:, 6:], crop[6:, 6:])
    assert (shown[:6].astype(int) > crop[:6]).all() and (shown[:, :6].astype(int) > crop[:, :6]).all()
    assert fade_beyond_photo(crop, (0, 0, 0, 0)) is crop


def test_crop_larger_than_the_photo_keeps_its_size():
    image = gradient_image(50, 60)
    crop = crop_cell(image, CellBox(10, 10, 50, 40), margin=0.5)
    assert crop.shape == (80, 80, 3)
    assert crop.min() > 0


# --- BCCD reading and splitting ------------------------------------------------------------------


def test_split_is_deterministic_stratified_and_whole_photo():
    names = [f"photo_{i:03d}" for i in range(100)]
    strata = {name: "neutrophil" if i < 70 else "eosinophil" if i < 95 else "basophil" for i, name in enumerate(names)}
    first = split_photos(names, seed=7, strata=strata)
    assert first == split_photos(list(reversed(names)), seed=7, strata=strata)  # order does not matter
    assert first != split_photos(names, seed=8, strata=strata)
    assert set(first) == set(names)  # every photo in exactly one split
    assert set(first.values()) == {"train", "val", "test"}
    for stratum, size in (("neutrophil", 70), ("eosinophil", 25), ("basophil", 5)):
        members = [first[name] for name in names if strata[name] == stratum]
        assert members.count("val") == round(0.2 * size)
        assert members.count("test") == round(0.2 * size)


def test_exported_training_crops_come_at_every_margin_and_the_others_at_one(tmp_path):
    box = CellBox(150, 120, 210, 180)  # 60 px wide
    photos = []
    for name, split in [("a", "train"), ("b", "val"), ("c", "test")]:
        path = tmp_path / f"{name}.png"
        Image.fromarray(synthetic_smear()[0]).save(path)
        photos.append(SmearPhoto(name, path, ("lymphocyte",), split, (box,)))
    crops = labelled_crops(photos, margin=0.15)

    written = export_crops(tmp_path / "crops", crops, photos, train_margins=[0.15, 0.7], margin=0.15)

    assert written == 4
    files = sorted(str(path.relative_to(tmp_path / "crops")) for path in (tmp_path / "crops").rglob("*.png"))
    assert files == [
        "test/lymphocyte/c.png", "train/lymphocyte/m15_a.png", "train/lymphocyte/m70_a.png", "val/lymphocyte/b.png",
    ]  # fmt: skip
    sides = {name: Image.open(tmp_path / "crops" / name).size[0] for name in files}
    assert sides["val/lymphocyte/b.png"] == sides["train/lymphocyte/m15_a.png"] == round(60 * 1.3)
    assert sides["train/lymphocyte/m70_a.png"] == round(60 * 2.4)
    assert (tmp_path / "crops" / "CREDIT.txt").is_file()
    assert crops_info(tmp_path / "crops") == {
        "cells": {"train": 1, "val": 1, "test": 1}, "crops": {"train": 2, "val": 1, "test": 1},
        "margin": 0.15, "train_margins": [0.15, 0.7],
    }  # fmt: skip


def test_exported_photos_are_whole_half_size_and_only_those_with_one_label(tmp_path):
    photos = []
    for name, split, labels in [("a", "train", ("neutrophil",)), ("b", "test", ("eosinophil",)),
                                ("c", "test", ("neutrophil", "eosinophil"))]:  # fmt: skip
        path = tmp_path / f"{name}.jpg"
        Image.fromarray(synthetic_smear()[0]).save(path)
        photos.append(SmearPhoto(name, path, labels, split, None))

    assert export_photos(tmp_path / "photos", photos) == 2
    files = sorted(str(path.relative_to(tmp_path / "photos")) for path in (tmp_path / "photos").rglob("*.png"))
    assert files == ["test/eosinophil/b.png", "train/neutrophil/a.png"]
    assert Image.open(tmp_path / "photos" / files[0]).size == (320, 240)


def test_parse_voc_boxes_tolerates_whitespace_and_edge_boxes(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text(
        "<annotation><object><name> WBC\n</name><bndbox><xmin>0</xmin><ymin>12</ymin><xmax>640</xmax>"
        "<ymax>101.0</ymax></bndbox></object><object><name>RBC</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
        "<xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>"
    )
    assert parse_voc_boxes(xml) == [CellBox(0, 11, 640, 101)]


def test_parse_labels_splits_multiple_cells(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text('image,category\nA.jpg,NEUTROPHIL\nB.jpg,"NEUTROPHIL, EOSINOPHIL"\nC.jpg,\n')
    assert parse_labels(csv_path) == {"A": ("neutrophil",), "B": ("neutrophil", "eosinophil"), "C": ()}


def test_smear_example_is_the_first_held_out_photo_naming_one_cell(tmp_path):
    assert smear_example(tmp_path) is None  # no BCCD photos here
    bccd = tmp_path / "bccd"
    (bccd / "JPEGImages").mkdir(parents=True)
    names = [f"BloodImage_{i:05d}" for i in range(40)]
    rows = ['image,category'] + [f'{name}.jpg,"{"NEUTROPHIL, EOSINOPHIL" if i % 3 == 0 else "LYMPHOCYTE"}"'
                                 for i, name in enumerate(names)]  # fmt: skip
    (bccd / "labels.csv").write_text("\n".join(rows) + "\n")
    for name in names:
        (bccd / "JPEGImages" / f"{name}.jpg").write_bytes(b"")
    strata = {name: "mixed" if i % 3 == 0 else "lymphocyte" for i, name in enumerate(names)}
    splits = split_photos(names, seed=0, strata=strata)
    expected = min(name for name in names if splits[name] == "test" and strata[name] == "lymphocyte")
    assert smear_example(tmp_path) == (bccd / "JPEGImages" / f"{expected}.jpg", "lymphocyte")


# --- on the real BCCD photos ---------------------------------------------------------------------

BCCD_DIR = paths.SHARED_DATA_DIR / "bccd"


@pytest.fixture(scope="module")
def bccd_test_scores() -> dict:
    if not (BCCD_DIR / "JPEGImages").is_dir():
        pytest.skip(f"needs the BCCD photos under {BCCD_DIR}; not present on this machine")
    return detection_scores(read_photos(BCCD_DIR, seed=0), split="test")


@pytest.mark.shared
def test_detection_recall_and_precision_on_held_out_bccd_photos(bccd_test_scores):
    if not bccd_test_scores["wbc_boxes"]:
        pytest.skip("the BCCD annotations here list no WBC box, so IoU-matched scores cannot be computed")
    assert bccd_test_scores["recall"] >= 0.95
    assert bccd_test_scores["precision"] >= 0.90


@pytest.mark.shared
def test_detection_counts_on_held_out_bccd_photos(bccd_test_scores):
    """Against the number of white cells labels.csv names per photo: a bound on both errors that needs no boxes."""
    missed = bccd_test_scores["cells_missed_at_least"] / bccd_test_scores["labelled_cells"]
    extra = bccd_test_scores["extra_detections_at_least"] / bccd_test_scores["detections_on_labelled_photos"]
    assert missed <= 0.05
    assert extra <= 0.10  # the time per photo is a benchmark's figure: python -m benchmarks.detection


def test_the_channel_reductions_equal_numpys_exactly():
    """The finder's fast per-plane max and mean give NumPy's reductions bit for bit (the boxes must not move)."""
    from hematovision.core.smear import channel_max, channel_mean

    rng = np.random.default_rng(0)
    for channels in (3, 4):
        image = rng.integers(0, 256, (37, 53, channels), dtype=np.uint8)
        np.testing.assert_array_equal(channel_max(image), image.max(axis=-1))
    work = (rng.random((41, 29, 3)) * 255).astype(np.float32)
    mean = channel_mean(work)
    assert mean.dtype == np.float32
    np.testing.assert_array_equal(mean, work.mean(axis=2))


def test_within_radius_is_the_distance_transforms_answer():
    from hematovision.core.smear import within_radius

    rng = np.random.default_rng(1)
    for _ in range(60):
        mask = rng.random(tuple(rng.integers(5, 120, 2))) < rng.choice([0.002, 0.02, 0.1])
        mask[rng.integers(mask.shape[0]), rng.integers(mask.shape[1])] = True
        for radius in (1, 3, 8):
            np.testing.assert_array_equal(within_radius(mask, radius), ndi.distance_transform_edt(~mask) <= radius)


def test_close_twice_is_scipys_binary_closing():
    from hematovision.core.smear import close_twice

    rng = np.random.default_rng(3)
    for density in (0.05, 0.4, 0.9, 1.0):
        for shape in ((242, 240), (17, 5), (1, 9), (2, 2)):
            mask = rng.random(shape) < density
            np.testing.assert_array_equal(close_twice(mask), ndi.binary_closing(mask, iterations=2))
