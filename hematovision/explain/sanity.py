"""Sanity check of saliency methods (Adebayo et al., 2018): cascading randomisation of the model's weights.

The weights are re-initialised from the top layer down to a cut point, on a copy; a method whose maps
stay the same when the network is destroyed shows the image, not what the network used. Keras is imported
inside the functions, so this module loads without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from hematovision.explain.faithfulness import rank_correlation

#: The rule: a method passes when its maps' mean absolute Spearman correlation with the original maps falls
#: below this once every layer from the last convolutional block up is randomised. Absolute, as Adebayo et al.
#: report it: an inverted map still follows the image, not the network.
PASS_CORRELATION = 0.5

#: Heatmap(image uint8 (size, size, 3), class index) -> map (size, size), for one model.
HeatmapFn = Callable[[np.ndarray, int], np.ndarray]


def randomised_from(model, layer_name: str, seed: int = 0):
    """A copy of ``model`` whose layers from ``layer_name`` to the output are re-initialised with their own
    initialisers (moving statistics of batch normalisation included); the layers below keep their weights."""
    import keras

    keras.utils.set_random_seed(seed)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    names = [layer.name for layer in copy.layers]
    if layer_name not in names:
        raise ValueError(f"the model has no layer {layer_name!r}")
    for layer in copy.layers[names.index(layer_name) :]:
        for variable in layer.weights:
            initialiser = _initialiser(layer, variable.path.rsplit("/", 1)[-1])
            variable.assign(initialiser(variable.shape, variable.dtype))
    return copy


def _initialiser(layer, weight_name: str):
    import keras

    for attribute in (f"{weight_name}_initializer", "depthwise_initializer" if weight_name == "kernel" else ""):
        initialiser = getattr(layer, attribute, None) if attribute else None
        if initialiser is not None:
            return keras.initializers.get(initialiser)
    # Weights without a named initialiser: kernels like Keras' default, anything else to zero.
    return keras.initializers.GlorotUniform() if weight_name.endswith("kernel") else keras.initializers.Zeros()


def cascading_correlations(
    model,
    heatmaps_for: Callable[[object], dict[str, HeatmapFn]],
    images: np.ndarray,
    class_indices: Sequence[int],
    cut_layers: Sequence[str],
    seed: int = 0,
) -> dict[str, dict[str, list[float]]]:
    """Per method, per cut layer (top first, each cut randomising from there up), the Spearman correlation
    of each image's map on the randomised copy with its map on the original model.

    ``heatmaps_for(model)`` gives each method's heatmap function for a model; the class explained is the
    same on both models (the original model's), as in the paper.
    """
    original = heatmaps_for(model)
    reference = {
        method: [heatmap(image, int(c)) for image, c in zip(images, class_indices, strict=True)]
        for method, heatmap in original.items()
    }
    correlations: dict[str, dict[str, list[float]]] = {method: {} for method in original}
    for cut in cut_layers:
        randomised = heatmaps_for(randomised_from(model, cut, seed))
        for method, heatmap in randomised.items():
            correlations[method][cut] = [
                rank_correlation(heatmap(image, int(c)), before)
                for image, c, before in zip(images, class_indices, reference[method], strict=True)
            ]
    return correlations


def verdict(correlations: dict[str, list[float]], rule_layer: str) -> dict:
    """Mean absolute correlation per cut layer and whether the method passes at ``rule_layer`` (PASS_CORRELATION)."""
    means = {cut: float(np.mean(np.abs(values))) for cut, values in correlations.items()}
    return {
        "mean_abs_spearman": means,
        "rule_layer": rule_layer,
        "threshold": PASS_CORRELATION,
        "passes": bool(means[rule_layer] < PASS_CORRELATION),
    }
