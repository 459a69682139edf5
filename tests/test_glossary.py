"""Words for every term: the glossary covers the deck, the descriptions and the figures the pages show."""

import pytest

from hematovision.app.navigation import PAGES
from hematovision.core import paths
from hematovision.core.artifacts import load_card
from hematovision.heads.morphology import ATTRIBUTES
from hematovision.workflows import glossary
from hematovision.workflows.teaching import SUBTYPE_NAMES, load_deck


@pytest.fixture(scope="module")
def deck():
    return load_deck(paths.DECK_DIR)


def test_every_class_and_subtype_of_the_teaching_deck_has_an_entry(deck):
    used = {cell.label for cell in deck} | {cell.subtype for cell in deck} | {cell.subtype_name for cell in deck}
    used |= set(SUBTYPE_NAMES) | set(SUBTYPE_NAMES.values())
    # "... (stage not given)" names a code's meaning, not a term of its own.
    missing = sorted(term for term in used if glossary.lookup(term.split(" (")[0]) is None)
    assert not missing


def test_every_word_of_the_expert_descriptions_is_explained(deck):
    jargon = {"N:C", "chromatin", "frosted", "vacuolated", "granules"} | {
        value for value in ATTRIBUTES["nucleus_shape"] if "-" in value
    }
    described = " ".join(cell.description for cell in deck)
    for word in jargon:
        assert glossary.lookup(word), word
    found = set(glossary.terms_in(described))
    assert {"N:C", "chromatin", "segmented nucleus", "unsegmented nucleus", "granules"} <= found


@pytest.mark.parametrize(
    "term",
    ["ig", "NRBC", "N:C", "ECE", "ROAD", "deletion", "insertion", "Spearman sanity check", "|Spearman|", "band",
     "segmented", "MMY", "IG", "PMY", "MY", "SNE", "BNE", "Grad-CAM", "layer names", "macro F1", "temperature"],
)  # fmt: skip
def test_the_terms_the_pages_use_are_defined(term):
    assert len(glossary.define(term)) > 40


def test_the_shipped_model_s_layers_and_classes_are_defined():
    card = load_card(paths.model_dir())
    for name in card.classes:
        assert glossary.lookup(name), name
    assert "last layer" in glossary.layer(card.gradcam_layer)
    assert "layer of the network" in glossary.layer("block_5_project")


def test_abbreviations_are_spelled_out_and_plain_names_left_alone():
    assert glossary.spelled_out("ig") == "immature granulocyte (ig)"
    assert glossary.spelled_out("PMY") == "promyelocyte (PMY)"
    assert glossary.spelled_out("neutrophil") == "neutrophil"
    assert glossary.spelled_out("my own class") == "my own class"
    assert "promyelocyte, myelocyte or metamyelocyte" in glossary.names_note(["basophil", "ig"])
    assert glossary.names_note(["lymphocyte", "platelet"]) == ""


def test_terms_are_found_in_running_text_longest_first_and_codes_only_in_capitals():
    text = "A band neutrophil, my ROAD gap and |Spearman| on layer `out_relu`; big cells; MY and ig."
    assert glossary.terms_in(text) == ["band neutrophil", "ROAD", "Spearman sanity check", "layer names", "out_relu",
                                       "myelocyte", "ig"]  # fmt: skip
    assert glossary.help_for("nothing to explain here") is None
    assert glossary.help_for("the ECE").startswith("**ECE (expected calibration error)**")


def test_hover_html_is_escaped():
    assert glossary.abbr("N:C").startswith('<abbr title="N:C (nuclear-to-cytoplasmic ratio): how much')
    assert glossary.abbr("<b>", "<b>") == "&lt;b&gt;"


def test_home_lists_every_page_and_has_the_glossary(app):
    at = app.run()
    assert not at.exception
    table = next(element.value for element in at.markdown if element.value.startswith("| page |"))
    assert [row.split("**")[1] for row in table.splitlines()[2:]] == [entry.title for entry in PAGES]
    (expander,) = [element for element in at.expander if element.label.startswith("Glossary")]
    assert "immature granulocyte" in expander.markdown[0].value and "ROAD" in expander.markdown[0].value
