"""The network: an ImageNet-pretrained backbone (MobileNetV2 or EfficientNet-Lite) with a new head, one flat graph."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras

from hematovision.explain.stain_density import StainDensity
from training import backbones
from training.config import TrainConfig

GRADCAM_LAYER = "out_relu"  # MobileNetV2's last activation map (7x7 at 224 px): Grad-CAM's layer.
FEATURES_LAYER = "features"
LOGITS_LAYER = "logits"
STAIN_DENSITY_LAYER = "stain_density"
SUBTYPE_OUTPUT = "subtype_probabilities"
ATTRIBUTE_OUTPUT = "attribute_logits"
#: The layer the runtime pools for the domain checks and the attribute heads (training.attributes).
ATTRIBUTE_FEATURES_LAYER = "block_13_expand_relu"


@dataclass(frozen=True)
class Backbone:
    """What the rest of the pipeline needs to know of a backbone, by its ``--backbone`` name."""

    architecture: str  # as the model card names it
    input_size: int  # the resolution its ImageNet weights were trained at
    gradcam_layer: str  # its last activation map
    attribute_features_layer: str  # a 14x14 (at 224 px) map before the last stride-2 block
    fine_tune_from: str  # phase 2's default first unfrozen layer: the upper, low-resolution blocks


#: MobileNetV2's fine-tuning default (blocks 9-16, at 14x14 and 7x7) and EfficientNet-Lite's counterpart (block
#: 4b upward: the rest of the 80-filter stage and every later one, at 14x14 and 7x7). The shipped recipe's
#: deeper ``block_3_expand`` (from the 56-to-28 px block) is ``block3a_expand_conv`` in EfficientNet-Lite.
BACKBONES = {
    "mobilenet_v2": Backbone("MobileNetV2", 224, GRADCAM_LAYER, ATTRIBUTE_FEATURES_LAYER, "block_9_expand"),
    **{
        f"efficientnet_{name}": Backbone(
            f"EfficientNet-Lite{name[-1]}",
            variant.input_size,
            backbones.GRADCAM_LAYER,
            backbones.ATTRIBUTE_FEATURES_LAYER,
            "block4b_expand_conv",
        )
        for name, variant in backbones.VARIANTS.items()
    },
}


def build_model(config: TrainConfig, n_classes: int) -> keras.Model:
    """Raw RGB 0-255 in, softmax probabilities out.

    The backbone is built on our own input tensor (``input_tensor=``) rather than used as a nested
    layer, so its layers are reachable from the model's input: tf-keras-vis needs that for Grad-CAM.
    Preprocessing sits inside the model so no caller can get it wrong.
    """
    size = config.image_size
    image, scaled = preprocessed_input(size, config.density_target, config.backbone)
    if config.backbone == "mobilenet_v2":
        backbone = keras.applications.MobileNetV2(
            input_shape=(size, size, 3),
            input_tensor=scaled,
            alpha=config.alpha,
            include_top=False,
            weights=None if config.weights == "none" else config.weights,
        )
        name = f"hematovision_mobilenetv2_{config.alpha:g}"
    else:
        variant = backbones.variant_of(config.backbone)
        backbone = backbones.efficientnet_lite(variant, input_tensor=scaled, weights=backbone_weights(config))
        name = f"hematovision_{config.backbone}"
    features = keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(backbone.output)
    dropped = keras.layers.Dropout(config.dropout, name="dropout")(features)
    logits = keras.layers.Dense(n_classes, name=LOGITS_LAYER)(dropped)
    probabilities = keras.layers.Activation("softmax", name="probabilities")(logits)
    return keras.Model(image, probabilities, name=name)


def backbone_weights(config: TrainConfig) -> Path | None:
    """An EfficientNet-Lite's starting weights: None for "none", the converted cache file for "imagenet"
    (FileNotFoundError, naming the conversion commands, where it is missing), else the path given."""
    if config.weights == "none":
        return None
    if config.weights != "imagenet":
        return Path(config.weights)
    variant = backbones.variant_of(config.backbone)
    path = backbones.no_top_weights_path(variant)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: convert the weights once (the two commands in training/convert_backbone.py's "
            f"docstring, --variant {variant}), or set ${backbones.CACHE_ENV} to the folder holding them"
        )
    return path


def with_auxiliary_heads(
    model: keras.Model,
    n_subtypes: int | None = None,
    attribute_widths: list[int] | None = None,
    attribute_features_layer: str = ATTRIBUTE_FEATURES_LAYER,
) -> keras.Model:
    """``model`` with training-only outputs after its class probabilities, in this order: subtype probabilities
    from the same (dropped-out) pooled features, and attribute logits (the attributes' values side by side)
    from the activations of ``attribute_features_layer`` (MobileNetV2's :data:`ATTRIBUTE_FEATURES_LAYER`; the
    backbone's own in :data:`BACKBONES`) averaged over the whole map (as in run 27; the
    shipped heads now read its middle, ``hematovision.core.runtime.CENTRE_MARGIN``).

    The models share every layer, so training this one trains ``model``, which is what gets saved; the extra
    heads never reach the artifact folder.
    """
    outputs = [model.outputs[0]]
    if n_subtypes:
        subtype_logits = keras.layers.Dense(n_subtypes, name="subtype_logits")(model.get_layer("dropout").output)
        outputs.append(keras.layers.Activation("softmax", name=SUBTYPE_OUTPUT)(subtype_logits))
    if attribute_widths:
        pooled = keras.layers.GlobalAveragePooling2D(name="attribute_features")(
            model.get_layer(attribute_features_layer).output
        )
        outputs.append(keras.layers.Dense(sum(attribute_widths), name=ATTRIBUTE_OUTPUT)(pooled))
    return keras.Model(model.inputs, outputs, name=f"{model.name}_with_auxiliary_heads")


def grouped_cross_entropy(widths: list[int]):
    """Loss over logits that hold several softmax groups side by side (one per attribute): each group's
    cross-entropy against its one-hot slice of the target, averaged over the groups."""
    import tensorflow as tf

    def loss(targets, logits):
        per_group = [
            tf.nn.softmax_cross_entropy_with_logits(labels=t, logits=z)
            for t, z in zip(tf.split(targets, widths, axis=-1), tf.split(logits, widths, axis=-1), strict=True)
        ]
        return tf.add_n(per_group) / len(widths)

    return loss


def preprocessed_input(
    size: int, density_target: float = 0.0, backbone: str = "mobilenet_v2"
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The model's input (raw RGB 0-255, size x size) and the same pixels as the backbone expects them, after
    :class:`StainDensity` when ``density_target`` is set: scaled to [-1, 1] for MobileNetV2, ImageNet's mean and
    std normalisation for EfficientNet-Lite (training.backbones.preprocessing); the layer is named "preprocess"
    either way. Every model built here starts with these, so none can disagree on preprocessing."""
    image = keras.Input((size, size, 3), name="image")
    pixels = StainDensity(density_target, name=STAIN_DENSITY_LAYER)(image) if density_target > 0 else image
    if backbone != "mobilenet_v2":
        return image, backbones.preprocessing(name="preprocess")(pixels)
    return image, keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(pixels)


def set_trainable(model: keras.Model, fine_tune_from: str | None) -> int:
    """Freeze the backbone below ``fine_tune_from`` (all of it when None); return trainable layers.

    BatchNormalization stays frozen throughout: in Keras a frozen BN layer runs in inference mode,
    which keeps the pretrained statistics (and the folded BN of the approximate 1.0 weights) intact
    while small fine-tuning batches pass through.
    """
    head = {FEATURES_LAYER, "dropout", LOGITS_LAYER, "probabilities"}
    unfrozen = False
    count = 0
    for layer in model.layers:
        if fine_tune_from is not None and layer.name == fine_tune_from:
            unfrozen = True
        trainable = layer.name in head or (unfrozen and not isinstance(layer, keras.layers.BatchNormalization))
        layer.trainable = trainable
        count += int(trainable and bool(layer.weights))
    if fine_tune_from is not None and not unfrozen:
        raise ValueError(f"no layer named {fine_tune_from!r} in the backbone")
    return count
