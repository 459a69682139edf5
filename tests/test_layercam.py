"""The finer maps of earlier blocks: their maths on hand-made arrays, and their grid on the tiny model."""

import numpy as np
import pytest

from hematovision.explain import layercam as lc
from hematovision.explain.gradcam import GradCam
from tests.conftest import TINY_SIZE, synthetic_cell


def test_layercam_keeps_each_position_hiresCAM_sums_signed_and_gradcam_averages():
    activations = np.zeros((1, 2, 2, 2))
    activations[0, 0, 0] = (1.0, 2.0)
    activations[0, 1, 1] = (3.0, 1.0)
    gradients = np.zeros((1, 2, 2, 2))
    gradients[0, 0, 0] = (1.0, -1.0)  # the second channel speaks against the class here
    gradients[0, 1, 1] = (0.5, 0.5)
    assert lc.layercam(activations, gradients)[0].tolist() == [[1.0, 0.0], [0.0, 2.0]]
    assert lc.hirescam(activations, gradients)[0].tolist() == [[0.0, 0.0], [0.0, 2.0]]  # 1 - 2 < 0: ReLU
    weights = gradients.mean(axis=(1, 2))[0]  # (0.375, -0.125)
    expected = np.maximum((activations[0] * weights).sum(-1), 0)
    assert np.allclose(lc.gradcam(activations, gradients)[0], expected)


def test_fusion_needs_every_layer_to_mark_a_place():
    fine = np.zeros((1, 4, 4))
    fine[0, 0, 0] = fine[0, 3, 3] = 1.0  # the shallow layer marks two places
    coarse = np.zeros((1, 2, 2))
    coarse[0, 1, 1] = 1.0  # the deep layer only one of them
    fused = lc.fuse([fine, coarse], 4)
    assert fused.shape == (1, 4, 4)
    assert fused[0, 3, 3] == pytest.approx(fused.max()) and fused[0, 0, 0] < 0.2 * fused.max()
    assert fused.min() >= 0


@pytest.fixture(scope="module")
def images():
    return np.stack([synthetic_cell(i % 3, 700 + i, TINY_SIZE) for i in range(3)])


def test_the_fine_maps_are_four_times_finer_than_gradcam(tiny_classifier, images):
    card = tiny_classifier.card
    cams = lc.FineCams(tiny_classifier.model, card.logits_layer)
    top = int(tiny_classifier.model.get_layer(card.gradcam_layer).output.shape[1])
    for method in lc.METHODS:
        coarse = cams.coarse(method, images, [0, 1, 2])
        assert coarse.shape == (3, 4 * top, 4 * top) and coarse.min() >= 0
        full = cams(method, images, [0, 1, 2])
        assert full.shape == (3, TINY_SIZE, TINY_SIZE) and full.max() <= 1.0


def test_the_numpy_gradcam_on_the_last_block_is_the_fast_one(tiny_classifier, images):
    card = tiny_classifier.card
    assert card.gradcam_layer == lc.TOP_LAYER
    cams = lc.FineCams(tiny_classifier.model, card.logits_layer)
    activations, gradients = cams._pass(images, np.array([1, 1, 1], np.int32))
    top = cams.layers.index(lc.TOP_LAYER)
    mine = lc.gradcam(activations[top].numpy(), gradients[top].numpy())
    fast = GradCam(tiny_classifier.model, card.gradcam_layer, card.logits_layer)._maps(images, np.array([1, 1, 1]))
    assert np.allclose(mine, fast.numpy(), rtol=1e-4, atol=1e-6 * float(np.abs(mine).max()))
