"""The WBCAtt morphological attributes (Tsutsui et al., NeurIPS 2023) and how to say them in words.

Names and values are spelled exactly as in ``../shared/data/pbc_manifest.csv``; the dataset annotates the
white-cell classes only (basophil, eosinophil, lymphocyte, monocyte, neutrophil).
"""

from __future__ import annotations

from collections.abc import Mapping

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "cell_size": ("big", "small"),
    "cell_shape": ("round", "irregular"),
    "nucleus_shape": (
        "segmented-bilobed",
        "segmented-multilobed",
        "unsegmented-band",
        "unsegmented-indented",
        "unsegmented-round",
        "irregular",
    ),
    "nuclear_cytoplasmic_ratio": ("low", "high"),
    "chromatin_density": ("densely", "loosely"),
    "cytoplasm_vacuole": ("no", "yes"),
    "cytoplasm_texture": ("clear", "frosted"),
    "cytoplasm_colour": ("light blue", "blue", "purple blue"),
    "granule_type": ("nil", "small", "round", "coarse"),
    "granule_colour": ("nil", "pink", "red", "purple"),
    "granularity": ("no", "yes"),
}

#: Classes the dataset gives attributes for; the others (erythroblast, ig, platelet) have none to learn from.
ANNOTATED_CLASSES = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")

NOT_ANNOTATED_REASON = (
    "No morphology description: the WBCAtt annotations, which the attributes are learned from, cover "
    "basophils, eosinophils, lymphocytes, monocytes and neutrophils only."
)

_CHROMATIN_WORDS = {"densely": "dense", "loosely": "loose"}


def describe(attributes: Mapping[str, str]) -> str:
    """One line in a pathologist's words, e.g. "big, round cell; nucleus segmented-bilobed, dense chromatin,
    low N:C; light blue, clear cytoplasm; small pink granules". Missing or empty attributes are left out."""

    def value(name: str) -> str:
        return (attributes.get(name) or "").strip()

    def joined(*words: str) -> str:
        return ", ".join(word for word in words if word)

    cell = joined(value("cell_size"), value("cell_shape"))
    nucleus = joined(
        f"nucleus {value('nucleus_shape')}" if value("nucleus_shape") else "",
        f"{_CHROMATIN_WORDS.get(value('chromatin_density'), value('chromatin_density'))} chromatin"
        if value("chromatin_density")
        else "",
        f"{value('nuclear_cytoplasmic_ratio')} N:C" if value("nuclear_cytoplasmic_ratio") else "",
    )
    cytoplasm_words = joined(value("cytoplasm_colour"), value("cytoplasm_texture"))
    cytoplasm = f"{cytoplasm_words} cytoplasm" if cytoplasm_words else ""
    if value("cytoplasm_vacuole") == "yes":
        cytoplasm = joined(cytoplasm or "cytoplasm", "vacuolated")
    parts = [
        f"{cell} cell" if cell else "",
        nucleus,
        cytoplasm,
        _granules(value("granularity"), value("granule_type"), value("granule_colour")),
    ]
    return "; ".join(part for part in parts if part)


def _granules(granularity: str, kind: str, colour: str) -> str:
    if granularity == "no" or kind == "nil":
        return "no granules"
    words = " ".join(word for word in (kind, colour if colour != "nil" else "") if word)
    return f"{words} granules" if words else ""
