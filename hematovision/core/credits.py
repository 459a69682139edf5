"""What every screen and report that shows results or dataset images must say (markdown)."""

DISCLAIMER = (
    "HematoVision is a teaching and review aid, **not a diagnostic device**. "
    "Every result needs checking by a qualified person."
)
DATASET_CREDIT = (
    "Training images: Acevedo A., Merino A., Alférez S., Molina Á., Boldú L., Rodellar J. "
    "*A dataset of microscopic peripheral blood cell images for development of automatic recognition "
    "systems.* Data in Brief 30 (2020) 105474, CC BY 4.0. Morphological attributes: Tsutsui S., Pang W., "
    "Wen B. *WBCAtt*, NeurIPS 2023 Datasets and Benchmarks, MIT. Other-lab cells and smear photos: "
    "the BCCD Dataset (github.com/Shenggan/BCCD_Dataset), MIT."
)


def plain(markdown: str) -> str:
    """The text without its emphasis marks, for places that do not render markdown (PDF, terminal)."""
    return markdown.replace("**", "").replace("*", "")
