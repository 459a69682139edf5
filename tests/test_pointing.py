"""The pointing game's parts on generated smears: the cell's mask, the re-crops, composites and the scores."""

import csv

import numpy as np
import pytest
from PIL import Image

from hematovision.explain import pointing as pt

GLASS = (245, 232, 222)
RED_CELL = (222, 160, 168)  # eosin-pink: absorbs green, barely red
NUCLEUS = (95, 55, 140)  # azure-purple: absorbs red


def disc(shape, centre, radius):
    rows, cols = np.indices(shape)
    return np.hypot(rows - centre[0], cols - centre[1]) <= radius


def smear(
    side=180,
    nucleus=(90, 90),
    radius=22,
    red_cells=((30, 30), (150, 40), (40, 150), (150, 150)),
    seed=0,
    red_cell=RED_CELL,
):
    """Glass, four red cells and one purple nucleus, with a little noise."""
    image = np.empty((side, side, 3), np.float32)
    image[:] = GLASS
    for centre in red_cells:
        image[disc((side, side), centre, 20)] = red_cell
    image[disc((side, side), nucleus, radius)] = NUCLEUS
    image += np.random.default_rng(seed).normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_otsu_splits_two_populations_between_them():
    values = np.concatenate([np.full(500, 0.1), np.full(300, 0.9)]) + np.random.default_rng(0).normal(0, 0.02, 800)
    assert 0.2 < pt.otsu_threshold(values) < 0.8
    assert pt.otsu_threshold(np.full(10, 3.0)) == 3.0


def test_the_mask_is_the_nucleus_and_a_rim_not_the_red_cells():
    image = smear()
    mask = pt.cell_mask(image)
    truth = disc(mask.shape, (90, 90), 22)
    assert mask[truth].mean() > 0.98  # the whole nucleus
    rim = round(pt.CYTOPLASM_RIM * 180)
    assert not mask[~disc(mask.shape, (90, 90), 22 + rim + 2)].any()  # nothing beyond nucleus + rim
    row, col = pt.mask_centre(mask)
    assert abs(row - 90) < 1.5 and abs(col - 90) < 1.5


def test_the_mask_takes_the_cell_nearest_the_centre_and_joins_its_lobes():
    image = smear(red_cells=())
    # A second, far nucleus in a corner, and two lobes 3 px apart near the centre.
    image[disc(image.shape[:2], (20, 160), 10)] = NUCLEUS
    image[disc(image.shape[:2], (90, 90), 60)] = GLASS
    image[disc(image.shape[:2], (90, 78), 10)] = NUCLEUS
    image[disc(image.shape[:2], (90, 101), 10)] = NUCLEUS
    mask = pt.cell_mask(image)
    assert mask[90, 78] and mask[90, 101] and mask[90, 90]  # the gap between the lobes is joined
    assert not mask[20, 160]


def test_off_centre_recrops_put_the_cell_centre_at_30_and_70_percent():
    image = smear()
    mask = pt.cell_mask(image)
    crops = pt.off_centre(image, mask)
    assert len(crops) == 4
    for (cropped, moved), (row_fraction, col_fraction) in zip(crops, pt.OFF_CENTRE_POSITIONS, strict=True):
        assert cropped.shape == image.shape and moved.shape == mask.shape
        row, col = pt.mask_centre(moved)
        assert abs(row - row_fraction * 180) < 1.5 and abs(col - col_fraction * 180) < 1.5
        assert moved.sum() == mask.sum()  # the whole cell moved, none cut
        # The pixels moved with the mask: the re-computed mask of the re-crop is the moved one.
        assert (pt.cell_mask(cropped) == moved).mean() > 0.99


def test_a_composite_holds_both_cells_centred_in_their_halves():
    first = smear(nucleus=(80, 100), seed=1)
    second = smear(nucleus=(95, 85), radius=15, seed=2)
    pairs = [(image, pt.cell_mask(image)) for image in (first, second)]
    image, left, right = pt.composite(*pairs)
    assert image.shape == first.shape
    assert abs(pt.mask_centre(left)[1] - 45) < 1.5 and abs(pt.mask_centre(right)[1] - 135) < 1.5
    assert abs(pt.mask_centre(left)[0] - 90) < 1.5 and abs(pt.mask_centre(right)[0] - 90) < 1.5
    assert not left[:, 90:].any() and not right[:, :90].any()
    assert left.sum() == pairs[0][1].sum() and right.sum() == pairs[1][1].sum()


def test_pointing_hits_within_the_tolerance_only():
    heatmap = np.zeros((100, 100))
    heatmap[30, 30] = 1.0
    assert pt.pointing_hit(heatmap, (30, 30))
    assert pt.pointing_hit(heatmap, (30, 49))  # 19 px: within 0.2 x 100
    assert not pt.pointing_hit(heatmap, (30, 51))
    assert not pt.pointing_hit(heatmap, (50, 50))  # 28 px away: the centre does not win


def test_a_plateau_points_at_its_middle():
    heatmap = np.zeros((100, 100))
    heatmap[10:20, 60:90] = 1.0
    assert pt.peak(heatmap) == pytest.approx((14.5, 74.5))


def test_the_centred_blob_misses_every_off_centre_cell():
    from hematovision.explain.faithfulness import centre_map

    image = smear()
    blob = centre_map(image.shape[:2])
    for _, moved in pt.off_centre(image, pt.cell_mask(image)):
        assert not pt.pointing_hit(blob, pt.mask_centre(moved))


def test_mass_inside_is_the_share_of_the_map_on_the_mask():
    mask = np.zeros((10, 10), bool)
    mask[:5] = True
    assert pt.mass_inside(mask.astype(float), mask) == 1.0
    assert pt.mass_inside((~mask).astype(float), mask) == 0.0
    assert pt.mass_inside(np.ones((10, 10)), mask) == pytest.approx(0.5)
    assert pt.mass_inside(np.zeros((10, 10)), mask) == 0.0


def test_a_small_platelet_among_many_red_cells_is_the_mask_not_the_red_cells():
    red_cells = [(row, col) for row in (25, 125, 165) for col in (25, 75, 125, 165)] + [(90, 115)]  # one touching
    # Red cells as dense as PBC's darkest (red-channel density about 0.12): Otsu alone splits them from the glass.
    image = smear(nucleus=(90, 90), radius=6, red_cells=red_cells, red_cell=(186, 146, 176))
    mask = pt.cell_mask(image)
    assert mask[90, 90] and mask.sum() < np.pi * (6 + round(pt.CYTOPLASM_RIM * 180) + 2) ** 2


def test_removing_the_cell_fills_it_with_red_cells_and_glass_and_leaves_the_rest():
    image = smear()
    mask = pt.cell_mask(image)
    removed = pt.remove_cell(image, mask)
    nucleus_colour = np.array(NUCLEUS, float)
    assert np.abs(image[90, 90] - nucleus_colour).max() < 15  # the nucleus was there...
    assert np.abs(removed[80:101, 80:101].astype(float) - nucleus_colour).max(axis=-1).min() > 40  # ...and is gone
    assert not pt.cell_mask(removed)[70:111, 70:111].any()
    far = ~np.pad(np.ones((80, 80), bool), 50)  # beyond the nucleus and its removal margin
    assert np.array_equal(removed[far], image[far])


def test_off_centre_pointing_is_also_given_per_class():
    from training.pointing_eval import by_class

    figures = by_class([1.0, 0.0, 1.0, 0.5], ["a", "b", "a", "b"])
    assert list(figures) == ["a", "b"]
    assert figures["a"]["mean"] == 1.0 and figures["a"]["n"] == 2 and figures["b"]["mean"] == 0.25


def test_cells_pair_with_the_next_cell_of_another_class():
    from training.pointing_eval import pair_cells

    assert pair_cells(["a", "a", "b", "c", "b"]) == [(0, 2), (1, 3)]
    assert pair_cells(["a", "a"]) == []


def test_the_cli_records_a_self_describing_pointing_record_and_keeps_the_rest(tmp_path, tiny_model_dir):
    import json
    import shutil

    from hematovision.core import paths
    from hematovision.explain.saliency import FAST_METHOD, FINE_METHOD
    from tests.conftest import write_subtype_manifest
    from training.pointing_eval import main

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    before = json.loads((model / paths.EVALUATION_FILE).read_text())
    data = write_subtype_manifest(tmp_path / "data")
    arguments = ["--model", str(model), "--data", str(data), "--split", "test", "--n", "8", "--seed", "2"]
    assert main([*arguments, "--methods", f"{FAST_METHOD},{FINE_METHOD}", "--record"]) == 0
    evaluation = json.loads((model / paths.EVALUATION_FILE).read_text())
    assert {key: evaluation[key] for key in before} == before  # everything else kept
    record = evaluation["pointing"]
    assert record["split"] == "test" and record["seed"] == 2 and record["n_requested"] == 8
    assert record["n_cells"] == len(record["images"]) >= 2 and record["n_cells"] + len(record["skipped"]) == 8
    assert record["n_composites"] == len(record["composites"]) >= 1
    assert list(record["methods"]) == [FAST_METHOD, FINE_METHOD, "centred blob"]
    for figures in record["methods"].values():
        for part, maps in (("off_centre", 4 * record["n_cells"]), ("composite", 2 * record["n_composites"])):
            assert figures[part]["maps"] == maps
            for measure in ("pointing", "mass_inside"):
                assert set(figures[part][measure]) == {"mean", "se", "n"}
                assert 0.0 <= figures[part][measure]["mean"] <= 1.0
    blob = record["methods"]["centred blob"]
    assert blob["baseline"] is True and blob["off_centre"]["pointing"]["mean"] == 0.0  # the centre cannot win
    assert blob["centred"]["pointing"]["mean"] == 1.0  # ...where the cell is at the centre, it does
    assert set(record["meets_targets"]) == {FAST_METHOD, FINE_METHOD}
    labels = {name.split("/")[-2] for name in record["images"]}
    for figures in record["methods"].values():
        per_class = figures["off_centre"]["by_class"]
        assert set(per_class) == labels and sum(figure["n"] for figure in per_class.values()) == record["n_cells"]
    removed = record["cell_removed"]
    assert set(removed) == labels and sum(figures["n"] for figures in removed.values()) == record["n_cells"]
    for figures in removed.values():
        assert 0.0 <= figures["still_called"] <= 1.0 and 0.0 <= figures["probability_after"] <= 1.0


def test_a_red_cell_view_has_no_cell_left_and_none_is_made_without_a_cell():
    from hematovision.core.smear import find_white_cells
    from training.red_cells import red_cell_view, red_cell_views

    image = smear(side=240, nucleus=(120, 120), radius=30, red_cells=((40, 40), (200, 50), (50, 200), (200, 200)))
    assert find_white_cells(image)  # the finder sees the generated white cell...
    view = red_cell_view(image)
    assert view is not None and not find_white_cells(view)  # ...and, once removed, nothing
    blank = np.full((240, 240, 3), 240, np.uint8)
    assert red_cell_view(blank) is None
    assert len(red_cell_views(np.stack([image, blank, image]), 3, seed=0)) == 2


def test_a_peak_on_the_moved_cell_hits_and_the_image_centre_misses():
    from training.pointing_cli import is_hit

    side = 100
    cell = (30.0, 70.0)  # row, col: moved to 30% down and 70% across
    assert is_hit((70.0, 30.0), cell, side)  # the peak is given as (x, y)
    assert not is_hit((30.0, 70.0), cell, side)  # the same numbers read the other way round are far off
    assert not is_hit(((side - 1) / 2, (side - 1) / 2), cell, side)  # the centre is 0.28 x side away


def test_moved_cells_go_through_the_explain_command_and_are_recorded(tmp_path, tiny_model_dir):
    import json
    import shutil

    from hematovision.core import paths
    from tests.conftest import write_subtype_manifest
    from training.pointing_cli import main

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    before = json.loads((model / paths.EVALUATION_FILE).read_text())
    data = write_subtype_manifest(tmp_path / "data")
    keep = tmp_path / "kept"
    arguments = ["--model", str(model), "--data", str(data), "--split", "test", "--n", "4", "--seed", "1"]
    assert main([*arguments, "--keep", str(keep), "--record"]) == 0
    evaluation = json.loads((model / paths.EVALUATION_FILE).read_text())
    assert {key: evaluation[key] for key in before} == before
    record = evaluation["pointing_cli"]
    assert record["n_cells"] + len(record["skipped"]) == 4 and record["maps"] == 4 * record["n_cells"] >= 4
    with (keep / "explained" / "explain.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == record["maps"] == len(list((keep / "moved").glob("*.png")))
    for row in rows:  # each map is in the moved image's own pixels
        side = Image.open(keep / "moved" / row["file"].rsplit("/", 1)[-1]).size[0]
        assert np.load(keep / "explained" / row["map"]).shape == (side, side)
    assert record["centred_blob_pointing"]["mean"] == 0.0  # the centre cannot win
    assert 0.0 <= record["pointing"]["mean"] <= 1.0 and record["meets_target"] == (record["pointing"]["mean"] >= 0.9)
