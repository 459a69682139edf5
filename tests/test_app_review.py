"""The Review page through AppTest on the tiny model: correct, save, carry on, refuse what does not match."""

import json

from hematovision.app import review_view, state
from tests.conftest import encode, new_session, synthetic_cell
from tests.test_app import texts, upload

FILES = [(f"cell_{i}.png", encode(synthetic_cell(i % 3, 70 + i)), "image/png") for i in range(4)]


def reviewed_batch(at, files=FILES):
    at = upload(at.switch_page("pages/1_Classify.py").run(), files)
    assert not at.exception
    at = at.switch_page("pages/8_Review.py").run()
    assert not at.exception
    return at


def differential(at):
    frame = next(frame.value for frame in at.dataframe if "network count" in frame.value.columns)
    return {row["cell type"]: (row["network count"], row["reviewed count"]) for _, row in frame.iterrows()}


def class_boxes(at):
    return [box for box in at.selectbox if box.label == "Reviewed class"]


def test_review_page_without_a_batch_points_to_classify(app):
    at = app.switch_page("pages/8_Review.py").run()
    assert not at.exception
    assert "Classify images or a field of view" in texts(at)


def test_a_correction_changes_the_reviewed_differential_only(app):
    at = reviewed_batch(app)
    before = differential(at)
    assert all(network == reviewed for network, reviewed in before.values())
    box = next(box for box in class_boxes(at) if box.value in ("lymphocyte", "neutrophil"))
    corrected_from = box.value
    at = box.set_value("platelet").run()
    assert not at.exception
    after = differential(at)
    assert after[corrected_from] == (before[corrected_from][0], before[corrected_from][1] - 1)
    assert after["total white cells"][0] == before["total white cells"][0]
    # The correction survives a visit to another page (widgets forget; the review does not).
    at = at.switch_page("pages/3_Model_performance.py").run().switch_page("pages/8_Review.py").run()
    assert differential(at) == after and "platelet" in [box.value for box in class_boxes(at)]


def saved_review(at) -> bytes:
    (review,) = at.session_state[state.REVIEWS_KEY].values()
    return review.to_json().encode()


def test_save_and_carry_on_restores_the_review(app):
    at = reviewed_batch(app)
    at = at.text_input(key="review-reviewer").input("Dr Ada").run()
    box = class_boxes(at)[0]
    at = box.set_value("platelet" if box.value != "platelet" else "lymphocyte").run()
    corrected = differential(at)
    saved = saved_review(at)
    assert json.loads(saved)["reviewer"] == "Dr Ada"

    fresh = reviewed_batch(new_session())
    assert differential(fresh) != corrected
    fresh = upload_review(fresh, saved)
    assert not fresh.exception
    assert "matches this batch" in texts(fresh)
    assert differential(fresh) == corrected and fresh.text_input(key="review-reviewer").value == "Dr Ada"


def upload_review(at, data: bytes):
    at.file_uploader[0].set_value(("review.json", data, "application/json"))
    return at.run()


def test_a_review_of_other_images_says_what_does_not_match(app):
    at = reviewed_batch(app)
    saved = saved_review(at)
    other = reviewed_batch(
        new_session(),
        [FILES[0], ("other.png", encode(synthetic_cell(1, 999)), "image/png")],
    )
    other = upload_review(other, saved)
    assert not other.exception
    message = texts(other)
    assert "does not match this batch everywhere" in message
    assert "3 reviewed image(s) are not in this batch" in message
    assert "1 image(s) of this batch are not in the review: other.png" in message
    broken = upload_review(other, b"{not json")
    assert "cannot be used" in texts(broken)


def test_a_corrupt_review_or_one_from_another_model_is_refused_and_changes_nothing(app):
    at = reviewed_batch(app)
    box = class_boxes(at)[0]
    at = box.set_value("platelet" if box.value != "platelet" else "lymphocyte").run()
    saved = json.loads(saved_review(at))
    fresh = reviewed_batch(new_session())
    before = differential(fresh), [box.value for box in class_boxes(fresh)]
    for data, why in (
        (json.dumps(saved | {"model_id": "0123456789abcdef"}).encode(), "made with another model"),
        (json.dumps(saved | {"cells": [cell | {"reviewed": "yes"} for cell in saved["cells"]]}).encode(), "wrong type"),
        (saved_review(at)[: len(saved_review(at)) // 2], "cannot be read"),  # cut off half way
    ):
        fresh = upload_review(fresh, data)
        assert not fresh.exception
        message = next(e.value for e in fresh.error if "cannot be used" in e.value)
        assert why in message and "Nothing was changed" in message
        assert (differential(fresh), [box.value for box in class_boxes(fresh)]) == before


def listed_names(at) -> list[str]:
    return [block.value.split("**")[1] for block in at.markdown if block.value.startswith("**cell_")]


def test_a_cell_keeps_its_place_opens_large_and_the_next_is_one_click_away(app):
    at = reviewed_batch(app)
    before = listed_names(at)
    assert len(before) == len(FILES)
    opened = at.session_state[review_view.FOCUS_KEY]
    review = next(iter(at.session_state[state.REVIEWS_KEY].values()))
    assert at.subheader[0].value.startswith("Cell 1 of 4: ")  # the first cell needing a look, else the first
    assert len(at.get("image")) == len(FILES) + 2  # every thumbnail; the opened cell large, and its Grad-CAM
    # Correct the first listed cell: it is looked at now, and keeps its place in the list.
    box = class_boxes(at)[0]
    at = box.set_value("platelet" if box.value != "platelet" else "lymphocyte").run()
    assert not at.exception and listed_names(at) == before
    # The panel's own control follows the correction made in the list.
    if opened == review.ordered()[0].key:
        panel = next(b for b in at.selectbox if b.label == "Reviewed class of this cell")
        assert panel.value == review.cells[opened].final_class
    # Open another cell large from the list, then go on to the next needing a look.
    at = next(b for b in at.button if b.label == "Open large").click().run()
    assert not at.exception and at.session_state[review_view.FOCUS_KEY] != opened
    for cell in review.cells.values():
        cell.flags = ["uncertain"]  # every cell needs a look, so "next" has somewhere to go
        cell.reviewed = False
    at = at.run()
    now = at.session_state[review_view.FOCUS_KEY]
    at = at.button(key="review-next").click().run()
    assert not at.exception
    keys = [cell.key for cell in review.ordered()]
    assert at.session_state[review_view.FOCUS_KEY] == keys[(keys.index(now) + 1) % len(keys)]


def test_an_image_explained_on_explain_does_not_replace_the_batch_under_review(app):
    at = reviewed_batch(app)
    at = at.switch_page("pages/2_Explain.py").run()
    at = upload(at, ("explain_me.png", encode(synthetic_cell(2, 5)), "image/png"))
    assert not at.exception
    at = at.switch_page("pages/8_Review.py").run()
    assert len(class_boxes(at)) == len(FILES)
