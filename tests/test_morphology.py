from hematovision.morphology import ATTRIBUTES, describe


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
