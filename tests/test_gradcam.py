"""The fast Grad-CAM against tf-keras-vis, and every attribution method on a tiny trained model."""

import numpy as np
import pytest

from hematovision.core.runtime import LITERT_FILE
from hematovision.explain.gradcam import GradCam
from hematovision.explain.overlay import COLOUR_MAPS, colourise, overlay, png_bytes
from hematovision.explain.saliency import ALL_METHODS, AttributionMethods
from tests.conftest import TINY_SIZE, synthetic_cell


@pytest.fixture(scope="module")
def images():
    return np.stack([synthetic_cell(i % 3, 900 + i, TINY_SIZE) for i in range(4)])


def test_fast_gradcam_matches_tf_keras_vis(tiny_classifier, images):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    card = tiny_classifier.card
    classes = [0, 1, 2, 1]
    fast = GradCam(tiny_classifier.model, card.gradcam_layer, card.logits_layer)(images, classes)
    reference = Gradcam(tiny_classifier.model, model_modifier=ReplaceToLinear(), clone=True)(
        CategoricalScore(classes), images.astype(np.float32),
        penultimate_layer=card.gradcam_layer, seek_penultimate_conv_layer=False,
    )  # fmt: skip
    assert fast.shape == reference.shape == (4, TINY_SIZE, TINY_SIZE)
    compared = 0
    for ours, theirs in zip(fast, reference, strict=True):
        if theirs.max() - theirs.min() < 1e-6:
            assert ours.max() - ours.min() < 1e-3  # both flat: no evidence for that class anywhere
            continue
        assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] >= 0.99
        compared += 1
    assert compared >= 2, "too few non-empty maps to compare"


def test_gradcam_read_from_litert_is_tensorflows(exported_model_dir, images):
    from hematovision.core.predict import Classifier
    from hematovision.explain.litert_gradcam import LiteRTGradCam

    classifier = Classifier.load(exported_model_dir, runtime="keras")
    card = classifier.card
    classes = [0, 1, 2, 1]
    reference = GradCam(classifier.model, card.gradcam_layer, card.logits_layer)(images, classes)
    read = LiteRTGradCam(exported_model_dir / LITERT_FILE)(images, classes)
    assert read.shape == reference.shape
    np.testing.assert_allclose(read, reference, atol=1e-3)
    assert any(np.abs(reference[i] - reference[j]).max() > 0.1 for i in range(4) for j in range(i))  # not all flat


def test_a_head_that_is_not_one_dense_layer_on_a_pooled_map_is_refused(tmp_path):
    import keras
    import tensorflow as tf

    from hematovision.explain.litert_gradcam import LiteRTGradCam, NotACamHead

    image = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(image))
    hidden = keras.layers.Dense(5, activation="relu")(pooled)  # a hidden layer: no longer a class activation map
    model = keras.Model(image, [pooled, keras.layers.Dense(3)(hidden), pooled])
    path = tmp_path / LITERT_FILE
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    with pytest.raises(NotACamHead, match="dense layer does not read a global average"):
        LiteRTGradCam(path)


def test_gradcam_depends_on_the_target_class(tiny_classifier, images):
    card = tiny_classifier.card
    cam = GradCam(tiny_classifier.model, card.gradcam_layer, card.logits_layer)
    maps = cam(np.repeat(images[:1], 3, axis=0), [0, 1, 2])
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert not np.allclose(maps[0], maps[1]) or not np.allclose(maps[1], maps[2])


@pytest.mark.parametrize("method", list(ALL_METHODS))
def test_every_method_gives_a_normalised_map(tiny_classifier, images, method):
    card = tiny_classifier.card
    methods = AttributionMethods(tiny_classifier.model, card.gradcam_layer, card.logits_layer)
    heatmap = methods.heatmap(method, images[0], 1)
    assert heatmap.shape == (TINY_SIZE, TINY_SIZE)
    assert np.isfinite(heatmap).all() and heatmap.min() >= 0.0 and heatmap.max() <= 1.0 + 1e-6


def test_unknown_method_is_refused(tiny_classifier, images):
    card = tiny_classifier.card
    with pytest.raises(ValueError, match="unknown method"):
        AttributionMethods(tiny_classifier.model, card.gradcam_layer, card.logits_layer).heatmap("Magic", images[0], 0)


def test_overlay_blends_and_resizes():
    image = np.full((120, 120, 3), 100, np.uint8)
    heat = np.zeros((40, 40), np.float32)
    heat[:20] = 1.0
    for colour_map in COLOUR_MAPS:
        assert colourise(heat, colour_map).shape == (40, 40, 3)
    blended = overlay(image, heat, "inferno", opacity=0.5)
    assert blended.shape == (120, 120, 3)
    assert not np.array_equal(blended[5, 5], blended[-5, -5])  # hot top differs from cold bottom
    np.testing.assert_array_equal(overlay(image, heat, "inferno", opacity=0.0), image)
    assert png_bytes(blended).startswith(b"\x89PNG")


def test_a_label_at_the_photos_right_edge_slides_back_into_the_picture():
    from hematovision.core.smear import CellBox
    from hematovision.explain.overlay import draw_cell_boxes

    photo = np.full((480, 640, 3), 255, np.uint8)
    drawn = draw_cell_boxes(photo, [(CellBox(590, 100, 640, 160), "not a blood cell", True)])
    amber = (drawn == (249, 168, 37)).all(axis=-1)
    label_rows = amber[:100]  # the label sits above the box
    columns = np.flatnonzero(label_rows.any(axis=0))
    assert columns.max() == 639 and columns.min() < 590 - 60  # all of it inside, reaching left of the box


def test_sessions_asking_at_once_share_one_visualiser(tiny_classifier, monkeypatch):
    """The app shares one AttributionMethods between sessions: a method is built once, however many ask."""
    import threading

    card = tiny_classifier.card
    methods = AttributionMethods(tiny_classifier.model, card.gradcam_layer, card.logits_layer)
    built = []
    real_build = methods._build

    def slow_build(method):
        built.append(method)
        threading.Event().wait(0.2)  # long enough for every thread to arrive while the first builds
        return real_build(method)

    monkeypatch.setattr(methods, "_build", slow_build)
    got = []
    threads = [threading.Thread(target=lambda: got.append(methods._visualiser("Grad-CAM++"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == ["Grad-CAM++"] and len({id(visualiser) for visualiser in got}) == 1
