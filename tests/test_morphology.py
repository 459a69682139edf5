import numpy as np
import pytest

from hematovision.heads.morphology import (
    ANNOTATED_CLASSES,
    ATTRIBUTES,
    ATTRIBUTES_FILE,
    AttributeHeads,
    AttributeHeadsError,
    Head,
    describe,
    fit_head,
)


def test_description_reads_like_the_issue_example():
    attributes = {
        "cell_size": "big",
        "cell_shape": "round",
        "nucleus_shape": "segmented-bilobed",
        "nuclear_cytoplasmic_ratio": "low",
        "chromatin_density": "densely",
        "cytoplasm_vacuole": "no",
        "cytoplasm_texture": "clear",
        "cytoplasm_colour": "light blue",
        "granule_type": "small",
        "granule_colour": "pink",
        "granularity": "yes",
    }
    assert describe(attributes) == (
        "big, round cell; nucleus segmented-bilobed, dense chromatin, low N:C; light blue, clear cytoplasm; "
        "small pink granules"
    )


def test_agranular_vacuolated_cell_and_missing_attributes():
    assert describe({"granularity": "no", "granule_type": "nil", "cytoplasm_vacuole": "yes"}) == (
        "cytoplasm, vacuolated; no granules"
    )
    assert describe({}) == ""


def test_every_manifest_value_is_listed_once():
    for name, values in ATTRIBUTES.items():
        assert len(set(values)) == len(values), name
    assert len(ATTRIBUTES) == 11


def synthetic_features(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features whose first column says a two-valued attribute (the rest is noise)."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2, n)
    features = rng.normal(0, 1, (n, 6))
    features[:, 0] += 3 * (2 * values - 1)
    return features, values


def heads_for(features: np.ndarray, values: np.ndarray, l2: float = 1e-3) -> AttributeHeads:
    """Heads for every attribute, each learning the same synthetic two-valued signal (values 0 and 1)."""
    mean, scale = features.mean(axis=0), features.std(axis=0)
    standard = (features - mean) / scale
    heads = {}
    for name, names in ATTRIBUTES.items():
        weights, bias = fit_head(standard, values, len(names), l2, balanced=True)
        heads[name] = Head(weights, bias, 1.0)
    return AttributeHeads("features", mean, scale, heads)


def test_a_separable_attribute_is_learned_and_held_out_rows_are_called_right():
    features, values = synthetic_features(400)
    heads = heads_for(features, values)
    held_out, truth = synthetic_features(200, seed=1)
    probabilities = heads.probabilities(held_out)
    assert ((probabilities["cell_size"].argmax(axis=1) == truth).mean()) > 0.95
    # Values never seen in training get (almost) no probability.
    assert probabilities["nucleus_shape"][:, 2:].max() < 0.05
    calls = heads.predict(held_out[:2])
    assert calls[0]["cell_size"][0] == ATTRIBUTES["cell_size"][truth[0]]
    assert 0.5 < calls[0]["cell_size"][1] <= 1.0


def test_balanced_weighting_recovers_a_rare_value():
    rng = np.random.default_rng(4)
    values = (rng.random(2000) < 0.03).astype(int)
    features = rng.normal(0, 1, (2000, 4))
    features[:, 0] += 1.2 * values
    rare_share = {}
    for balanced in (False, True):
        weights, bias = fit_head(features, values, 2, 1e-3, balanced)
        rare_share[balanced] = ((features @ weights + bias).argmax(axis=1)[values == 1] == 1).mean()
    assert rare_share[True] > 0.5 > rare_share[False]


def test_wrong_shapes_are_refused():
    features, values = synthetic_features(50)
    heads = heads_for(features, values)
    with pytest.raises(AttributeHeadsError, match="features"):
        heads.predict(np.zeros((3, 5)))
    with pytest.raises(AttributeHeadsError):
        fit_head(features, values[:-1], 2, 1e-3)
    with pytest.raises(AttributeHeadsError):
        fit_head(features, values + 5, 2, 1e-3)


def test_heads_survive_a_round_trip_and_a_damaged_file_is_refused(tmp_path):
    features, values = synthetic_features(100)
    heads = heads_for(features, values)
    heads.save(tmp_path / ATTRIBUTES_FILE)
    loaded = AttributeHeads.load(tmp_path / ATTRIBUTES_FILE)
    assert loaded.features_layer == "features"
    for name in ATTRIBUTES:
        np.testing.assert_allclose(loaded.probabilities(features)[name], heads.probabilities(features)[name], atol=1e-5)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(AttributeHeadsError):
        AttributeHeads.load(tmp_path / "broken.npz")
    stored = dict(np.load(tmp_path / ATTRIBUTES_FILE))
    stored["cell_size/values"] = np.array(["huge", "tiny"])
    np.savez(tmp_path / "renamed.npz", **stored)
    with pytest.raises(AttributeHeadsError, match="cell_size"):
        AttributeHeads.load(tmp_path / "renamed.npz")


def test_contradictions_name_values_rare_with_the_class():
    features, values = synthetic_features(100)
    frequencies = {
        name: np.full((len(ANNOTATED_CLASSES), len(names)), 1 / len(names)) for name, names in ATTRIBUTES.items()
    }
    frequencies["nucleus_shape"][ANNOTATED_CLASSES.index("neutrophil")] = [0.5, 0.45, 0.05, 0.0, 0.0, 0.0]
    heads = AttributeHeads("features", np.zeros(6), np.ones(6), heads_for(features, values).heads, frequencies)
    assert heads.contradictions("neutrophil", {"nucleus_shape": ("unsegmented-round", 0.9)}) == [
        "nucleus shape unsegmented-round: 0.0% of training neutrophils"
    ]
    assert heads.contradictions("neutrophil", {"nucleus_shape": "segmented-bilobed"}) == []
    assert heads.contradictions("platelet", {"nucleus_shape": "unsegmented-round"}) == []
