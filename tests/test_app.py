"""Every page through Streamlit's AppTest, uploading real image bytes, on the tiny model."""

import json
import shutil

import numpy as np
import pytest
import streamlit as st

from hematovision.core import paths
from hematovision.explain.saliency import DEFAULT_METHOD
from hematovision.workflows.differential import count_warning, differential_count
from tests.conftest import app_on, encode, new_session, synthetic_cell, write_subtype_manifest


def chart_specs(at) -> list[dict]:
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def texts(at) -> str:
    parts = [e.value for kind in ("markdown", "success", "warning", "error", "info", "caption") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def test_home_shows_the_card_and_credits(app):
    at = app.run()
    assert not at.exception
    assert at.title[0].value == "HematoVision"
    assert "not a diagnostic device" in texts(at)
    assert "Acevedo" in texts(at)
    assert "lymphocyte, neutrophil, platelet" in texts(at)


def upload(at, files):
    at.file_uploader[0].set_value(files)
    return at.run()


def test_classify_one_image(app):
    at = app.switch_page("pages/1_Classify.py").run()
    assert not at.exception
    at = upload(at, ("cell.png", encode(synthetic_cell(0, 11)), "image/png"))
    assert not at.exception
    verdicts = [e.value for e in (*at.success, *at.warning)]
    assert len(verdicts) == 1 and any(name in verdicts[0] for name in ("lymphocyte", "neutrophil", "platelet"))
    (spec,) = chart_specs(at)
    bars = spec["data"][0]
    assert sorted(bars["y"]) == ["lymphocyte", "neutrophil", "platelet"]
    assert bars["x"] == sorted(bars["x"])  # sorted, highest on top
    assert len(set(bars["marker"]["color"])) == 2  # one highlighted bar


def test_a_hall_uploading_the_same_image_reads_it_once_and_each_session_keeps_its_own_threshold(app, monkeypatch):
    from hematovision.app import state
    from hematovision.core.predict import Classifier

    read = []
    classify_by_source = Classifier.classify_by_source

    def counting(self, sources, *args, **kwargs):
        read.extend(name for name, _ in sources)
        return classify_by_source(self, sources, *args, **kwargs)

    monkeypatch.setattr(Classifier, "classify_by_source", counting)
    handout = ("handout.png", encode(synthetic_cell(2, 13)), "image/png")
    lenient = app.switch_page("pages/1_Classify.py").run()
    lenient.sidebar.slider[0].set_value(0).run()
    lenient = upload(lenient, handout)
    strict = new_session().switch_page("pages/1_Classify.py").run()
    strict.sidebar.slider[0].set_value(100).run()
    strict = upload(strict, handout)
    other = upload(new_session().switch_page("pages/1_Classify.py").run(), ("other.png", handout[1], "image/png"))
    assert not (lenient.exception or strict.exception or other.exception)
    assert read == ["handout.png", "other.png"]  # the second session's handout was not read again
    assert chart_specs(strict)[0]["data"][0]["x"] == chart_specs(lenient)[0]["data"][0]["x"]
    assert len(strict.warning) == 1 and "Uncertain" in strict.warning[0].value  # below its 100% threshold...
    (lenient_results,) = lenient.session_state[state.CLASSIFIED_BATCHES_KEY].values()
    assert lenient_results[0].prediction.uncertain is False  # ...while the first session's copy is not


def test_shared_results_keep_the_most_recently_used_within_their_bytes():
    from hematovision.app.cache import SharedResults, image_bytes
    from hematovision.core.imaging import DecodedImage
    from hematovision.core.predict import ImageResult

    def results(name):
        image = DecodedImage(np.zeros((10, 10, 3), np.uint8))  # 300 bytes
        return [ImageResult(name=name, image=image, field_image=image), ImageResult(name=name, field_image=image)]

    assert image_bytes(results("x")) == 300  # one photo, however many results show it
    shared = SharedResults(capacity_bytes=600)
    for name in ("a", "b"):
        shared.put(name, results(name))
    assert shared.get("a")[0].name == "a"  # "a" is now the most recent...
    shared.put("c", results("c"))
    assert shared.get("b") is None and shared.get("a") is not None and len(shared) == 2  # ...so "b" went


def test_classify_offers_held_out_examples_only_where_the_data_is(app, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "SHARED_DATA_DIR", tmp_path / "absent")
    at = app.switch_page("pages/1_Classify.py").run()
    assert not at.exception and [toggle.label for toggle in at.toggle] == ["Use the camera"]

    from tests.test_smear import synthetic_smear

    data = write_subtype_manifest(tmp_path / "data")
    (data / "bccd" / "JPEGImages").mkdir(parents=True)
    (data / "bccd" / "labels.csv").write_text("image,category\n" + "".join(f"S{i}.jpg,NEUTROPHIL\n" for i in range(5)))
    for i in range(5):
        (data / "bccd" / "JPEGImages" / f"S{i}.jpg").write_bytes(encode(synthetic_smear(i)[0], "JPEG"))
    monkeypatch.setattr(paths, "SHARED_DATA_DIR", data)
    at = app.switch_page("pages/1_Classify.py").run()
    examples = next(toggle for toggle in at.toggle if toggle.label == "Try example images")
    at = examples.set_value(True).run()
    assert not at.exception
    names = list(next(frame.value for frame in at.dataframe if "file" in frame.value.columns)["file"])
    single_cells = [name for name in names if "smear photo" not in name]
    assert [name.split("(labelled ")[1] for name in single_cells] == ["lymphocyte)", "neutrophil)", "platelet)"]
    # One held-out smear photo (one of the five is the test split's), read as a field: its cells listed one by one.
    smear_rows = [name for name in names if "(smear photo, its white cell labelled neutrophil) · cell" in name]
    assert smear_rows and len({name.split(" ")[0] for name in smear_rows}) == 1


def test_uncertain_images_are_marked_not_hidden(monkeypatch, tiny_model_dir, tmp_path):
    # The same model with a very high temperature: every confidence is near 1/3, under the threshold.
    shutil.copytree(tiny_model_dir, tmp_path, dirs_exist_ok=True)
    card = json.loads((tmp_path / paths.CARD_FILE).read_text())
    card.update(temperature=1000.0, low_confidence_threshold=0.5)
    (tmp_path / paths.CARD_FILE).write_text(json.dumps(card))
    monkeypatch.setenv(paths.MODEL_DIR_ENV, str(tmp_path))
    st.cache_resource.clear()
    at = new_session()
    at = at.switch_page("pages/1_Classify.py").run()
    assert at.sidebar.slider[0].value == 50
    at = upload(at, ("cell.png", encode(synthetic_cell(1, 12)), "image/png"))
    assert not at.exception
    assert len(at.warning) == 1 and "Uncertain" in at.warning[0].value
    assert len(chart_specs(at)) == 1


def test_batch_with_a_bad_file_shows_table_differential_and_error(app):
    at = app.switch_page("pages/1_Classify.py").run()
    files = [(f"cell_{i}.png", encode(synthetic_cell(i % 3, 20 + i)), "image/png") for i in range(5)]
    files.append(("broken.jpg", b"definitely not a jpeg", "image/jpeg"))
    at = upload(at, files)
    assert not at.exception
    assert any("broken.jpg" in e.value and "not a recognised image" in e.value for e in at.error)
    assert len(chart_specs(at)) == 5
    frames = [frame.value for frame in at.dataframe]
    differential, set_apart, table = frames[0], frames[1], frames[2]
    assert list(differential["cell type"]) == ["lymphocyte", "neutrophil", "total white cells"]
    counted = int(differential["count"].iloc[-1]) + int(set_apart["count"].sum())
    assert counted == 6  # every file accounted for: white, set apart, uncertain or unreadable
    assert len(table) == 6 and table["notes"].str.contains("not a recognised").sum() == 1
    assert at.get("download_button")


def test_a_batch_with_nothing_classified_offers_nothing_to_review_and_says_why(app):
    files = [("broken.jpg", b"definitely not a jpeg", "image/jpeg"), ("empty.png", b"", "image/png")]
    at = upload(app.switch_page("pages/1_Classify.py").run(), files)
    assert not at.exception
    assert any("Nothing was classified" in e.value and "none of the 2 files" in e.value for e in at.error)
    frames = [frame.value for frame in at.dataframe]
    assert [list(frame.columns)[:2] for frame in frames] == [["file", "class"]]  # no all-zero differential
    table = frames[0]
    assert set(table["class"]) == {"none: could not be read"} and "None" not in table.to_string()
    links = [link.proto.label for link in at.get("page_link")]
    assert not any("Review" in label for label in links if "→" in label)
    at = at.switch_page("pages/8_Review.py").run()
    assert not at.exception and "Nothing was classified" in at.info[0].value
    assert not [box for box in at.selectbox if box.label == "Reviewed class"]


def test_moving_a_widget_after_an_upload_keeps_the_results(app):
    """Every widget reruns the page; the batch is not classified again, and nothing it drew is replayed."""
    files = [(f"cell_{i}.png", encode(synthetic_cell(i, 40 + i)), "image/png") for i in range(2)]
    at = upload(app.switch_page("pages/1_Classify.py").run(), files)
    assert not at.exception
    at.sidebar.slider[0].set_value(0).run()  # nothing is uncertain below 0% confidence
    assert not at.exception
    table = next(frame.value for frame in at.dataframe if "uncertain" in frame.value.columns)
    assert list(table["file"]) == ["cell_0.png", "cell_1.png"] and (table["uncertain"] == "no").all()


def test_explain_uses_classified_images(app):
    at = app.switch_page("pages/1_Classify.py").run()
    at = upload(at, [(f"cell_{i}.png", encode(synthetic_cell(i, 30 + i)), "image/png") for i in range(2)])
    at = at.switch_page("pages/2_Explain.py").run()
    assert not at.exception
    assert at.selectbox[0].options == ["cell_0.png", "cell_1.png"]
    assert len(at.get("image")) == 3 + 4  # original, heatmap, overlay; the removal check's four pictures
    assert at.get("download_button")
    assert "Grad-CAM" in texts(at)
    at.sidebar.selectbox[0].set_value("platelet").run()  # "why not platelet?"
    assert not at.exception
    assert "evidence for **platelet**" in texts(at)
    at.sidebar.radio[0].set_value("Grad-CAM++").run()
    assert not at.exception


def test_explain_offers_every_cell_of_an_uploaded_field(app):
    from tests.test_smear import synthetic_smear

    smear, true_boxes = synthetic_smear(seed=0)
    at = upload(app.switch_page("pages/2_Explain.py").run(), ("smear.png", encode(smear), "image/png"))
    assert not at.exception
    assert at.selectbox[0].options == [f"smear.png · cell {n}" for n in range(1, len(true_boxes) + 1)]
    assert len(at.get("image")) == 4 + 4  # the field with its cells numbered, original, heatmap, overlay; the check


def test_explain_without_images_says_what_to_do(app):
    at = app.switch_page("pages/2_Explain.py").run()
    assert not at.exception
    assert "Classify" in at.info[0].value


def test_model_performance_page(app):
    at = app.switch_page("pages/3_Model_performance.py").run()
    assert not at.exception
    specs = chart_specs(at)
    assert specs[0]["data"][0]["type"] == "heatmap"
    assert any(trace.get("name") == "after (temperature)" for spec in specs for trace in spec["data"])
    at.toggle[0].set_value(True).run()
    assert "%" in chart_specs(at)[0]["data"][0]["text"][0][0]
    tables = [frame.value for frame in at.dataframe]
    per_class = next(table for table in tables if "precision" in table.columns)
    assert list(per_class.columns) == [
        "class", "precision", "recall", "recall, 95% interval", "F1", "support", "predicted",
    ]  # fmt: skip
    assert any("95% interval for the accuracy" in caption.value for caption in at.caption)
    datasets = json.loads((paths.model_dir() / paths.EVALUATION_FILE).read_text())["datasets"]
    shown = np.asarray(datasets.get("pbc_test", next(iter(datasets.values())))["confusion_matrix"])
    assert any("called" in table.columns for table in tables) == (shown.sum() > np.trace(shown))


def test_model_performance_shows_simulated_and_imitated_lab_changes(monkeypatch, tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    evaluation = json.loads((model / paths.EVALUATION_FILE).read_text())
    evaluation["robustness"] = {"dataset": "pbc_test", "n": 1894, "conditions": [
        {"condition": "as recorded", "description": "the images unchanged", "accuracy": 0.98,
         "lowest_recall_class": "ig", "lowest_recall": 0.95},
        {"condition": "cell at 0.6 size", "description": "wider field of view", "accuracy": 0.6,
         "lowest_recall_class": "lymphocyte", "lowest_recall": 0.01},
    ]}  # fmt: skip
    evaluation["setups"] = {"dataset": "pbc_test", "setups": [
        {"setup": "120 px camera", "description": "low-resolution camera", "n": 1894, "accuracy": 0.9612,
         "ece": 0.021, "flagged_not_blood": 0.004, "flagged_unfamiliar": 0.063, "lowest_recall_class": "ig",
         "lowest_recall": 0.88},
    ]}  # fmt: skip
    (model / paths.EVALUATION_FILE).write_text(json.dumps(evaluation))
    monkeypatch.setenv(paths.MODEL_DIR_ENV, str(model))
    st.cache_data.clear()
    at = new_session()
    at = at.switch_page("pages/3_Model_performance.py").run()
    assert not at.exception
    imitated = next(frame.value for frame in at.dataframe if "what it imitates" in frame.value.columns)
    assert imitated.iloc[0][["accuracy (%)", "not a blood cell (%)", "unfamiliar (%)"]].tolist() == [96.12, 0.4, 6.3]
    assert any("training.setups" in caption.value for caption in at.caption)
    table = next(frame.value for frame in at.dataframe if "what it simulates" in frame.value.columns)
    assert table["accuracy (%)"].tolist() == [98.0, 60.0]
    assert table["change (points)"].tolist() == [0.0, -38.0]
    assert table["lowest class recall"].tolist() == ["ig 95.0%", "lymphocyte 1.0%"]
    assert any("1,894 images of the PBC test split" in caption.value for caption in at.caption)


def test_missing_model_is_said_plainly(monkeypatch, tmp_path):
    (tmp_path / paths.CARD_FILE).write_text(json.dumps({"classes": ["a"], "input_size": 96, "gradcam_layer": "x"}))
    (tmp_path / paths.MODEL_FILE).write_bytes(b"corrupt")
    monkeypatch.setenv(paths.MODEL_DIR_ENV, str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = new_session().switch_page("pages/1_Classify.py").run()
    assert not at.exception
    assert "model cannot be loaded" in at.error[0].value and "To fix it" in at.error[0].value
    assert not at.success and not at.get("plotly_chart")


def test_whole_field_shows_boxes_and_a_differential(app):
    from tests.test_smear import synthetic_smear

    smear, true_boxes = synthetic_smear(seed=0)
    at = app.switch_page("pages/1_Classify.py").run()
    at = upload(at, ("smear.png", encode(smear), "image/png"))
    assert not at.exception
    assert f"**{len(true_boxes)} white cells found** in this field" in texts(at)
    assert len(at.expander) == len(true_boxes)
    table = at.dataframe[2].value  # differential, set apart, all images, then the field's own differential
    assert list(table["file"]) == [f"smear.png · cell {n}" for n in range(1, len(true_boxes) + 1)]
    assert any("If it shows one cell" in caption.value for caption in at.caption)
    at.sidebar.radio[0].set_value("single").run()  # forcing single-cell mode: one verdict, no boxes
    assert not at.exception and len(at.expander) == 0 and len(chart_specs(at)) == 1
    at.sidebar.radio[0].set_value("field").run()  # chosen by the user: no hint on how to undo it
    assert len(at.expander) == len(true_boxes)
    assert not any("If it shows one cell" in caption.value for caption in at.caption)


def test_cells_cut_by_the_photos_edge_can_be_left_out_of_the_differential(app):
    from tests.test_smear import synthetic_smear

    def table_with(at, column):
        return next(frame.value for frame in at.dataframe if column in frame.value.columns)

    smear, _ = synthetic_smear(seed=0)
    at = upload(app.switch_page("pages/1_Classify.py").run(), ("cut.png", encode(smear[140:]), "image/png"))
    assert not at.exception
    assert "cut by the photo's edge" in table_with(at, "notes")["notes"].iloc[0]
    at.sidebar.checkbox[0].uncheck().run()  # a counting protocol that leaves edge cells out
    assert not at.exception
    apart = table_with(at, "group")
    assert apart.loc[apart["group"] == "cut by the photo's edge (left out)", "count"].sum() == 1
    assert int(table_with(at, "cell type")["count"].iloc[-1]) + int(apart["count"].sum()) == 2  # both cells


def test_image_that_is_not_a_blood_cell_gets_no_class(monkeypatch, tiny_model_dir, tmp_path):
    from hematovision.heads.novelty import NOVELTY_FILE, NoveltyModel

    # A novelty check whose threshold every image exceeds: the page must refuse to name a class.
    shutil.copytree(tiny_model_dir, tmp_path, dirs_exist_ok=True)
    from hematovision.core.predict import Classifier

    width = Classifier.load(tiny_model_dir).features_and_logits(np.zeros((1, 96, 96, 3), np.uint8))[0].shape[1]
    NoveltyModel(np.eye(width, dtype=np.float32), np.zeros((1, width), np.float32), -1.0).save(tmp_path / NOVELTY_FILE)
    monkeypatch.setenv(paths.MODEL_DIR_ENV, str(tmp_path))
    st.cache_resource.clear()
    at = new_session()
    at = at.switch_page("pages/1_Classify.py").run()
    at = upload(at, [(f"thing_{i}.png", encode(synthetic_cell(i, 60 + i)), "image/png") for i in range(2)])
    assert not at.exception
    assert sum("does not look like a blood-cell image" in e.value for e in at.error) == 2
    assert not at.success
    # The one warning: nothing was counted, so there is no differential (no class was given to either image).
    assert [w.value for w in at.warning] == [count_warning(differential_count([], ["lymphocyte", "neutrophil"]))]
    set_apart = at.dataframe[1].value
    assert set_apart.set_index("group").loc["not a blood-cell image", "count"] == 2
    assert int(at.dataframe[0].value["count"].iloc[-1]) == 0  # nothing in the differential


def class_folder_zip(per_class: int, folders=("lymphocyte", "Neutrophil", "PLATELET")) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, folder in enumerate(folders):
            for i in range(per_class):
                archive.writestr(f"my_lab/{folder}/cell_{i}.png", encode(synthetic_cell(index, 900 + 10 * index + i)))
        archive.writestr("my_lab/notes.txt", "stained on Tuesday")
    return buffer.getvalue()


def test_lab_profile_is_built_chosen_shown_on_results_and_restored(app, tmp_path):
    at = app.switch_page("pages/4_Lab_profile.py").run()
    assert not at.exception and "No lab profile in use" in texts(at)
    at.file_uploader[0].set_value(("my_lab.zip", class_folder_zip(4), "application/zip"))
    at = at.run()
    assert not at.exception
    # The tiny model reads these cells right already: the page says the profile is kept but not used, and why.
    assert at.header[0].value == "Profile chosen, not used: my_lab"
    assert at.info[0].value.startswith("**Not used**: the model alone already reads all 12")
    assert "leave-one-out" in at.metric[0].label and at.metric[2].value == "12"
    assert "notes.txt" in texts(at)  # the skipped member is named
    # Chosen for every page. (The sidebar's choice is drawn by streamlit_app.py before the page, and AppTest keeps
    # only the page's elements after the first run, so the widget itself is checked in the browser.)
    assert at.session_state["lab_profile_choice"] == "my_lab"
    assert len(at.get("download_button")) == 1
    saved = at.session_state["lab_profiles"]["my_lab"].to_bytes()  # what the download button serves

    profile = at.session_state["lab_profiles"]["my_lab"]
    # The tiny model already reads these synthetic cells right, so the profile's leave-one-out cannot beat it:
    # the profile is not used, and results are the model's own, naming no profile.
    assert not profile.applied and profile.decision.reason.startswith("not used: the model alone already reads all")
    at.switch_page("pages/1_Classify.py").run()
    at = upload(at, ("cell.png", encode(synthetic_cell(0, 11)), "image/png"))
    assert not at.exception
    assert "lab profile" not in next(e.value for e in (*at.success, *at.warning))
    profile.applied = True  # a profile that is used names itself on every result
    at = upload(at, ("cell2.png", encode(synthetic_cell(0, 12)), "image/png"))
    assert not at.exception
    assert "lab profile *my_lab*" in next(e.value for e in (*at.success, *at.warning))

    # A new session: re-uploading the saved file restores the profile.
    fresh = new_session()
    fresh = fresh.switch_page("pages/4_Lab_profile.py").run()
    fresh.file_uploader[1].set_value(("my_lab.npz", saved, "application/octet-stream"))
    fresh = fresh.run()
    assert not fresh.exception and fresh.header[0].value == "Profile chosen, not used: my_lab"


def test_lab_profile_refuses_unknown_folders_and_profiles_of_another_model(app):
    at = app.switch_page("pages/4_Lab_profile.py").run()
    at.file_uploader[0].set_value(("bad.zip", class_folder_zip(4, ("lymphocyte", "monocytes")), "application/zip"))
    at = at.run()
    assert not at.exception
    assert any("monocytes" in e.value and "name no class" in e.value for e in at.error)
    from hematovision.heads.lab_profile import LabProfile

    foreign = LabProfile("another-model", ["lymphocyte", "neutrophil", "platelet"], {"lymphocyte": 3},
                         np.zeros(4), np.ones(4), np.zeros((4, 3)), np.zeros(3))  # fmt: skip
    at.file_uploader[1].set_value(("foreign.npz", foreign.to_bytes(), "application/octet-stream"))
    at = at.run()
    assert any("made for another model" in e.value for e in at.error)
    assert "No lab profile in use" in texts(at)


@pytest.fixture
def app_with_attributes(monkeypatch, tiny_attribute_model_dir):
    return app_on(monkeypatch, tiny_attribute_model_dir)


def test_classify_describes_white_cells_and_says_why_not_others(app_with_attributes):
    from hematovision.heads.morphology import NOT_ANNOTATED_REASON, describe
    from tests.conftest import TINY_ATTRIBUTES

    at = app_with_attributes.switch_page("pages/1_Classify.py").run()
    # Seeds and sizes the tiny model calls lymphocyte and platelet (tests/test_attributes.py checks the calls).
    files = [("lymphocyte.png", encode(synthetic_cell(0, 40)), "image/png"),
             ("platelet.png", encode(synthetic_cell(2, 42)), "image/png")]  # fmt: skip
    at = upload(at, files)
    assert not at.exception
    table = next(frame.value for frame in at.dataframe if "file" in frame.value.columns)
    assert list(table["class"]) == ["lymphocyte", "platelet"]
    markdown = "\n".join(e.value for e in at.markdown)
    assert f"**Morphology:** {describe(TINY_ATTRIBUTES['lymphocyte'])}" in markdown
    assert describe(TINY_ATTRIBUTES["neutrophil"]) not in markdown
    assert [c.value for c in at.caption].count(NOT_ANNOTATED_REASON) == 1
    confidences = next(e.value for e in at.markdown if e.value.startswith("- cell size: **"))
    assert len(confidences.splitlines()) == 11 and all(line.endswith("%") for line in confidences.splitlines())

    at = at.switch_page("pages/2_Explain.py").run()
    assert not at.exception
    assert at.selectbox[0].value == "lymphocyte.png"
    attribute, value = at.selectbox[1], at.selectbox[2]
    assert attribute.value == "cell_size" and value.value == TINY_ATTRIBUTES["lymphocyte"]["cell_size"]
    # original, heatmap, overlay; hottest and random 10% and 20% removed; the cell, class and attribute evidence
    assert len(at.get("image")) == 3 + 4 + 3
    assert any("Grad-CAM through the cell size head" in str(image.proto) for image in at.get("image"))


def test_model_performance_shows_attribute_scores_beside_the_anchors(app_with_attributes):
    at = app_with_attributes.switch_page("pages/3_Model_performance.py").run()
    assert not at.exception
    tables = [frame.value for frame in at.dataframe]
    scores = next(table for table in tables if "attribute" in table.columns)
    assert len(scores) == 12 and scores["attribute"].iloc[-1] == "mean"
    anchors = next(table for table in tables if "model" in table.columns)
    assert list(anchors["mean accuracy (%)"])[1:] == [94.09, 96.1]
    assert any("Consistency check" in caption.value for caption in at.caption)


def test_cells_of_a_field_get_their_morphology_inside_their_expanders(app_with_attributes):
    from tests.test_smear import synthetic_smear

    smear, true_boxes = synthetic_smear(seed=0)
    at = upload(app_with_attributes.switch_page("pages/1_Classify.py").run(), ("smear.png", encode(smear), "image/png"))
    assert not at.exception
    assert len(at.expander) == len(true_boxes)
    described = [
        cell for cell in at.expander if any(e.value.startswith("**Morphology:**") for e in cell.get("markdown"))
    ]
    said_why_not = [cell for cell in at.expander if any("No morphology description" in e.value for e in cell.caption)]
    assert len(described) + len(said_why_not) == len(true_boxes) and described


def test_home_says_the_model_describes_morphology(app_with_attributes):
    at = app_with_attributes.run()
    assert not at.exception and "the 11 WBCAtt attributes of each basophil" in texts(at)


def test_home_says_a_model_without_heads_gives_classes_only(app):
    assert "no attribute heads" in texts(app.run())


def test_explain_shows_faithfulness_and_the_removal_check(monkeypatch, tiny_saliency_model_dir):
    at = app_on(monkeypatch, tiny_saliency_model_dir)
    at = upload(at.switch_page("pages/2_Explain.py").run(), ("cell.png", encode(synthetic_cell(0, 31)), "image/png"))
    assert not at.exception
    # The finer map first (this tiny model's record has no figures for it, and the page says so) ...
    assert f"by **{DEFAULT_METHOD}**." in texts(at)
    assert f"No faithfulness figures recorded for {DEFAULT_METHOD}" in texts(at)
    at.sidebar.radio[0].set_value("Grad-CAM").run()  # ... then Grad-CAM, whose figures the record holds
    shown = texts(at)
    assert "**Grad-CAM, measured on 3 PBC test images:**" in shown and "sanity check" in shown
    captions = [image.caption for element in at.get("image") for image in element.proto.imgs]
    assert any(caption.startswith("hottest 10% removed: ") for caption in captions)
    assert any(caption.startswith("random 20% removed: ") for caption in captions)
    assert len(at.get("image")) == 3 + 4  # original, heatmap, overlay; hottest and random, 10% and 20%
    table = next(frame.value for frame in at.dataframe if "ROAD gap ↑" in frame.value.columns)
    assert list(table["method"]) == ["Grad-CAM", "LayerCAM", "random map (baseline)", "centred blob (baseline)"]
    assert len(chart_specs(at)[0]["data"]) == 3
    at.sidebar.radio[0].set_value("SmoothGrad").run()  # not in the record: said so, the check still runs
    assert not at.exception
    assert "No faithfulness figures recorded for SmoothGrad" in texts(at)


def test_explain_lays_the_map_on_the_uploaded_image_where_the_cell_was_re_cut(app):
    from tests.test_explain_cli import off_centre_cell

    at = upload(app.switch_page("pages/2_Explain.py").run(), ("moved.png", encode(off_centre_cell()), "image/png"))
    assert not at.exception
    captions = [picture.caption for element in at.get("image") for picture in element.proto.imgs]
    assert "as the network sees it (re-cut around the cell)" in captions and "overlay on your image" in captions


def test_classify_shows_the_mirrored_margin_of_a_re_cut_cell_pale(app):
    from tests.test_explain_cli import off_centre_cell

    big_cell = off_centre_cell(height=240, width=320, centre=(120, 160), radius=60)  # re-cut past the top and bottom
    at = upload(app.switch_page("pages/1_Classify.py").run(), ("big.png", encode(big_cell), "image/png"))
    assert not at.exception
    captions = [picture.caption for element in at.get("image") for picture in element.proto.imgs]
    assert "big.png (pale: the photo mirrored beyond its edge)" in captions
