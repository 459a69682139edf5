"""Every term a student meets in HematoVision, in plain words: the glossary on Home and the hover help.

Pure Python (no Streamlit): the pages take a definition (:func:`define`), the help text for a block of text
(:func:`help_for`), a term spelled out (:func:`spelled_out`) or an inline hover (:func:`abbr`) from here.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """One glossary entry: ``name`` as the app writes it, ``words`` what it stands for (empty where the name
    says it all), ``definition`` in plain words, ``topic`` the glossary section, ``aliases`` other spellings."""

    name: str
    words: str
    definition: str
    topic: str
    aliases: tuple[str, ...] = ()

    @property
    def heading(self) -> str:
        return f"{self.name} ({self.words})" if self.words else self.name

    @property
    def plain(self) -> str:
        """The entry as one sentence, for a hover."""
        return f"{self.heading}: {self.definition}"


CELLS = "Cells and their codes"
MORPHOLOGY = "Looking at a cell"
MODEL = "The model and its figures"
EXPLAIN = "Explanations (heatmaps) and how they are checked"
LAYERS = "Layer names"
TOPICS = (CELLS, MORPHOLOGY, MODEL, EXPLAIN, LAYERS)

_TERMS = (
    # Cells: the eight classes, the atlas's subtypes and file-name codes.
    Term("basophil", "", "a rare white cell (under 1 in 100) packed with large dark-purple granules that often "
         "hide its nucleus.", CELLS, ("BA",)),
    Term("eosinophil", "", "a white cell with large orange-red granules and usually a two-lobed nucleus; more of "
         "them in allergy and parasite infections.", CELLS, ("EO",)),
    Term("erythroblast", "nucleated red blood cell, NRBC", "a young red cell that still has its nucleus (round, "
         "very dark) and a blue-to-pink cytoplasm without granules. Normally only in the bone marrow; in adult "
         "blood a sign of marrow stress.", CELLS, ("ERB",)),
    Term("NRBC", "nucleated red blood cell", "a red cell that still has its nucleus: the erythroblast class.",
         CELLS),
    Term("ig", "immature granulocyte", "a young neutrophil that has left the bone marrow too early: a "
         "promyelocyte, myelocyte or metamyelocyte (youngest to oldest). One class for the model; more than a "
         "few in adult blood point to infection, inflammation or a marrow disorder.", CELLS,
         ("IG", "immature granulocyte")),
    Term("promyelocyte", "PMY", "the youngest immature granulocyte in these images: a large cell, a round or "
         "oval nucleus with fine chromatin, and many coarse purple (primary) granules.", CELLS, ("PMY",)),
    Term("myelocyte", "MY", "an immature granulocyte after the promyelocyte: a round or oval nucleus, no "
         "nucleolus, and a cytoplasm turning pink with fine (secondary) granules.", CELLS, ("MY",)),
    Term("metamyelocyte", "MMY", "the oldest immature granulocyte: the nucleus is indented like a kidney bean, "
         "but not yet the long band of a band neutrophil.", CELLS, ("MMY",)),
    Term("IG (code)", "immature granulocyte, stage not given", "the atlas's code for an immature granulocyte "
         "whose stage (promyelocyte, myelocyte or metamyelocyte) the experts did not record.", CELLS),
    Term("lymphocyte", "", "a small round white cell whose round, dark nucleus fills most of it (high N:C), "
         "with a thin rim of blue cytoplasm.", CELLS, ("LY",)),
    Term("monocyte", "", "the largest white cell: a folded or kidney-shaped nucleus with loose chromatin, a "
         "grey-blue cytoplasm, sometimes with vacuoles.", CELLS, ("MO",)),
    Term("neutrophil", "", "the commonest white cell, the first to fight bacteria: a nucleus in 2 to 5 lobes "
         "(segmented) or one curved band, and fine pink-lilac granules.", CELLS, ("NEUTROPHIL",)),
    Term("band neutrophil", "BNE, band", "a young neutrophil whose nucleus is one curved band of even width, not "
         "yet pinched into lobes. Many bands (a 'left shift') suggest a bacterial infection.", CELLS,
         ("BNE", "band", "unsegmented-band")),
    Term("segmented neutrophil", "SNE", "a mature neutrophil whose nucleus is pinched into 2 to 5 lobes joined "
         "by thin strands.", CELLS, ("SNE", "segmented")),
    Term("NEUTROPHIL (code)", "segmented or band not given", "the atlas's code for a neutrophil whose stage the "
         "experts did not record.", CELLS),
    Term("platelet", "", "a small fragment of a large marrow cell, without a nucleus, that helps blood clot; a "
         "few purple dots, often in clumps.", CELLS, ("PLATELET",)),
    Term("subtype codes", "BA, EO, ERB, IG, PMY, MY, MMY, LY, MO, SNE, BNE, PLATELET", "the PBC dataset's "
         "file-name codes: basophil, eosinophil, erythroblast, immature granulocyte (stage not given), "
         "promyelocyte, myelocyte, metamyelocyte, lymphocyte, monocyte, segmented neutrophil, band neutrophil, "
         "platelet.", CELLS, ("codes",)),
    Term("white cells", "leukocytes", "the cells of the immune system: basophils, eosinophils, immature "
         "granulocytes, lymphocytes, monocytes and neutrophils. Red cells and platelets are not white cells.",
         CELLS, ("white cell", "WBC")),
    Term("differential count", "", "the share of each kind of white cell among those counted (e.g. 60% "
         "neutrophils, 30% lymphocytes), the standard way a smear is reported.", CELLS, ("differential",)),
    # Morphology: the words of the expert descriptions (WBCAtt attributes).
    Term("N:C", "nuclear-to-cytoplasmic ratio", "how much of the cell the nucleus fills. High (a big nucleus, "
         "little cytoplasm) in lymphocytes and young cells; low in mature granulocytes and monocytes.",
         MORPHOLOGY, ("N:C ratio", "nuclear_cytoplasmic_ratio")),
    Term("chromatin", "", "the stained DNA inside the nucleus: dense (dark, clumped) in mature cells, loose "
         "(fine, paler) in young cells and monocytes.", MORPHOLOGY, ("dense chromatin", "loose chromatin")),
    Term("segmented nucleus", "", "a nucleus pinched into lobes joined by thin strands: bilobed (two lobes) or "
         "multilobed (three or more).", MORPHOLOGY, ("segmented-bilobed", "segmented-multilobed")),
    Term("unsegmented nucleus", "", "a nucleus in one piece: round, indented (kidney-shaped), or band (a curved "
         "sausage of even width).", MORPHOLOGY, ("unsegmented-round", "unsegmented-indented")),
    Term("granules", "", "small stained grains in the cytoplasm; their colour tells the cell apart: pink "
         "(neutrophil), orange-red (eosinophil), dark purple (basophil, young granulocytes).", MORPHOLOGY,
         ("granule", "granularity")),
    Term("vacuole", "", "a clear, bubble-like hole in the cytoplasm; common in monocytes.", MORPHOLOGY,
         ("vacuolated", "vacuoles")),
    Term("frosted cytoplasm", "", "a cytoplasm with a fine ground-glass texture, against a clear one.",
         MORPHOLOGY, ("frosted",)),
    Term("cytoplasm", "", "the body of the cell around its nucleus.", MORPHOLOGY),
    Term("MGG", "May-Grünwald-Giemsa", "the stain of these images: nuclei purple, red cells pink, granules in "
         "their own colours.", MORPHOLOGY, ("May-Grünwald-Giemsa",)),
    Term("WBCAtt", "", "a dataset of 11 morphological attributes (cell size and shape, nucleus shape, N:C, "
         "chromatin, cytoplasm, granules) given by experts to the PBC dataset's white cells (five "
         "classes); the source of the descriptions.", MORPHOLOGY),
    # The model and its figures.
    Term("PBC", "peripheral blood cells", "the dataset the model learned from: 17,092 single-cell images from "
         "the Hospital Clinic of Barcelona, each labelled by clinical pathologists.", MODEL),
    Term("BCCD", "", "a small public set of smear photos from another lab and camera, used to check the model "
         "on images unlike its training images.", MODEL),
    Term("confidence", "calibrated", "the model's probability for its answer, corrected (calibrated) so that, "
         "among answers given with 90% confidence, about 90% are right.", MODEL, ("calibrated confidence",)),
    Term("temperature scaling", "", "the calibration used: the network's raw scores are divided by one number "
         "(the temperature) fitted on validation images, which makes confidences honest without changing "
         "any answer.", MODEL, ("temperature", "softmax temperature")),
    Term("ECE", "expected calibration error", "how far the confidences are from the real accuracy: answers are "
         "grouped by confidence and the gaps between confidence and accuracy averaged. 0% is perfectly "
         "honest.", MODEL, ("calibration error",)),
    Term("uncertain", "", "an answer whose confidence is under the threshold: shown, never hidden, and marked "
         "for a person to check.", MODEL),
    Term("unfamiliar set-up", "", "an image unlike the training lab's (another stain, camera or "
         "magnification): still classified, but with a warning and a lowered confidence.", MODEL,
         ("unfamiliar",)),
    Term("not a blood-cell image", "novelty check", "an image far from everything the model learned from gets "
         "no class at all.", MODEL, ("novelty",)),
    Term("lab profile", "", "a small correction built from a few labelled cells of your own lab that adapts "
         "the model to your stain and camera.", MODEL),
    Term("accuracy", "", "the share of images the model labels as the experts did.", MODEL),
    Term("precision", "", "of the cells the model called X, the share that really are X.", MODEL),
    Term("recall", "sensitivity", "of the cells that really are X, the share the model found.", MODEL),
    Term("macro F1", "", "the F1 score (the balance of precision and recall) averaged over the classes with "
         "equal weight, so rare classes count as much as common ones.", MODEL, ("macro-F1", "F1")),
    Term("support", "", "how many test images a class has.", MODEL),
    Term("95% interval", "confidence interval", "the range that holds the true value 95 times in 100, given how "
         "many images were tested; wide when there were few.", MODEL),
    Term("confusion matrix", "", "a table of the experts' labels (rows) against the model's answers "
         "(columns): the diagonal is right, every other square a kind of mistake.", MODEL),
    Term("leave-one-lab-out", "", "train on every lab's images but one, test on that one: how the model would "
         "do in a lab it has never seen.", MODEL),
    Term("MobileNetV2", "", "the neural network the classifier is built on: small and fast, first trained on "
         "ImageNet (everyday photos), then fine-tuned on blood cells.", MODEL, ("ImageNet",)),
    Term("fine-tuned", "", "trained further on blood-cell images, starting from a network already trained on "
         "everyday photos.", MODEL, ("fine-tuning",)),
    # Explanations.
    Term("heatmap", "saliency map", "a picture over the cell, warm where the evidence for the chosen class was "
         "strongest according to the explanation method.", EXPLAIN, ("saliency", "saliency map")),
    Term("Grad-CAM", "gradient-weighted class activation mapping", "the standard heatmap: how much each region "
         "of a late layer's output pushes the score of the chosen class up.", EXPLAIN),
    Term("Grad-CAM++", "", "a variant of Grad-CAM that weighs the positive evidence more finely; better when a "
         "class shows in several places.", EXPLAIN),
    Term("LayerCAM", "", "a variant of Grad-CAM that weighs every position separately; finer maps from earlier "
         "layers.", EXPLAIN),
    Term("Faster-ScoreCAM", "", "a heatmap built by showing the network the image masked by its strongest "
         "channels and keeping those that raise the class score.", EXPLAIN, ("ScoreCAM",)),
    Term("SmoothGrad", "", "the average of the pixel gradients over many noisy copies of the image: a sharper, "
         "pixel-level map.", EXPLAIN),
    Term("deletion", "deletion AUC", "a faithfulness test: remove the pixels the map calls most important first "
         "and watch the confidence fall; a faithful map makes it fall fast (low area under the curve).",
         EXPLAIN, ("deletion AUC",)),
    Term("insertion", "insertion AUC", "the reverse test: start from a blurred copy and put back the most "
         "important pixels first; a faithful map makes the confidence rise fast (high area under the curve).",
         EXPLAIN, ("insertion AUC",)),
    Term("AUC", "area under the curve", "one number for a whole curve: here, the average confidence over the "
         "steps of deletion or insertion.", EXPLAIN),
    Term("ROAD", "RemOve And Debias", "a fairer deletion test: removed pixels are filled in from their "
         "neighbours, so that the hole's shape does not give the answer away. The ROAD gap is the confidence "
         "with the least important pixels removed minus with the most important removed: higher is better.",
         EXPLAIN, ("ROAD gap",)),
    Term("baselines", "random map, centred blob", "two cheats every method must beat: a random map, and a blob "
         "in the middle (the cells are centred, so 'look at the middle' already works quite well).", EXPLAIN,
         ("baseline", "centred blob")),
    Term("Spearman sanity check", "|Spearman|", "does the map depend on what the network learned? The network's "
         "top layers are replaced by random weights and the maps compared with the real ones by rank "
         "correlation (|Spearman|, from 0: unrelated to 1: the same order). A low value passes: the map "
         "changed, so it depends on what the network learned; a high value fails: the map shows the image "
         "more than the network.", EXPLAIN,
         ("sanity check", "Spearman", "|Spearman|")),
    # Layer names (MobileNetV2's, as Keras names them).
    Term("layer names", "", "a network is a stack of layers, named by Keras. MobileNetV2's are grouped in "
         "numbered blocks, block_1 near the image to block_16 near the answer; inside each, 'expand' widens the "
         "channels, 'depthwise' looks at neighbouring pixels, 'project' narrows them again; '_relu' is the "
         "layer's output after its activation.", LAYERS, ("layer",)),
    Term("out_relu", "", "the last layer of the MobileNetV2 backbone (7x7 positions, 1,280 channels): where "
         "Grad-CAM reads, as the latest layer that still knows where things are in the image.", LAYERS),
    Term("Conv_1", "", "MobileNetV2's last convolution, just before out_relu.", LAYERS),
    Term("block_16_expand", "", "the widening step of MobileNetV2's last block: the sanity check randomises the "
         "network from this layer up.", LAYERS),
    Term("block_13_expand_relu", "", "a middle layer (14x14 positions) whose output the morphology attributes "
         "are read from.", LAYERS),
    Term("logits", "", "the network's raw score per class, before they are turned into probabilities.",
         LAYERS),
)  # fmt: skip

GLOSSARY: dict[str, Term] = {term.name: term for term in _TERMS}
_INDEX: dict[str, Term] = {}
for _term in _TERMS:
    for _key in (_term.name, *_term.aliases):
        _INDEX.setdefault(_key.lower(), _term)


def lookup(term: str) -> Term | None:
    """The entry for a name, a code or an alias (case does not matter); None where there is none."""
    return _INDEX.get(term.strip().lower())


def define(term: str) -> str:
    """The entry as one sentence ("ig (immature granulocyte): a young neutrophil ..."); KeyError if none."""
    entry = lookup(term)
    if entry is None:
        raise KeyError(term)
    return entry.plain


#: What the classes whose names students may not know stand for, in a few words.
_NAME_NOTES = {
    "ig": "immature granulocyte (promyelocyte, myelocyte or metamyelocyte)",
    "erythroblast": "a nucleated red blood cell (NRBC)",
}


def names_note(names: list[str]) -> str:
    """The class names that need saying in words, each defined on hover (HTML), e.g. "ig: immature
    granulocyte (promyelocyte, myelocyte or metamyelocyte)"; empty where none does."""
    notes = []
    for name in names:
        entry = lookup(name)
        if entry is not None and (entry.name in _NAME_NOTES or spelled_out(name) != name):
            notes.append(f"{abbr(name)}: {html.escape(_NAME_NOTES.get(entry.name, entry.words))}")
    return "; ".join(notes) + "." if notes else ""


def hover(term: str) -> str:
    """The entry as one sentence for a hover; empty where there is none (an educator's own class)."""
    entry = lookup(term)
    return entry.plain if entry else ""


def spelled_out(name: str) -> str:
    """An abbreviation or code with what it stands for, e.g. "immature granulocyte (ig)", "promyelocyte
    (PMY)", "expected calibration error (ECE)"; a name that says it all as it is."""
    entry = lookup(name)
    if entry is None or len(name) > 5:
        return name
    if entry.name.lower() != name.strip().lower():
        return f"{entry.name} ({name})"
    return f"{entry.words} ({name})" if entry.words else name


#: Terms found in running text: longest first, so that "band neutrophil" wins over "neutrophil"; the short
#: codes only in capitals (so that "my" or "mo" in a sentence are not read as codes).
_SEARCHED = sorted(_INDEX, key=len, reverse=True)


def terms_in(text: str) -> list[str]:
    """The glossary entries (by name) that ``text`` mentions, in order of first mention."""
    found: dict[str, int] = {}
    taken: list[tuple[int, int]] = []
    for key in _SEARCHED:
        entry = _INDEX[key]
        case_sensitive = len(key) <= 4 and key != "ig"
        pattern = re.escape(next(a for a in (entry.name, *entry.aliases) if a.lower() == key)) if case_sensitive \
            else re.escape(key)  # fmt: skip
        flags = 0 if case_sensitive else re.IGNORECASE
        for match in re.finditer(rf"(?<![\w-]){pattern}(?![\w-])", text, flags):
            span = match.span()
            if any(start < span[1] and span[0] < end for start, end in taken):
                continue
            taken.append(span)
            found[entry.name] = min(found.get(entry.name, span[0]), span[0])
    return sorted(found, key=found.get)


def help_for(text: str, *extra: str) -> str | None:
    """Markdown for a ``help=`` hover: the definition of every term ``text`` mentions (and of ``extra``);
    None where there is none."""
    names = dict.fromkeys([*(lookup(term).name for term in extra if lookup(term)), *terms_in(text)])
    if not names:
        return None
    return "\n\n".join(f"**{GLOSSARY[name].heading}**: {GLOSSARY[name].definition}" for name in names)


def layer(name: str) -> str:
    """What a layer name means: its own entry where it has one, else how layers are named."""
    entry = lookup(name) if lookup(name) and lookup(name).topic == LAYERS else GLOSSARY["layer names"]
    if entry.name == name:
        return f"`{name}`: {entry.definition}"
    return f"`{name}`: a layer of the network. {entry.definition[0].upper()}{entry.definition[1:]}"


def abbr(term: str, shown: str | None = None) -> str:
    """HTML for a term with its definition on hover (the browser's dotted underline marks it)."""
    entry = lookup(term)
    text = html.escape(shown if shown is not None else term)
    if entry is None:
        return text
    return f'<abbr title="{html.escape(entry.plain, quote=True)}">{text}</abbr>'


def markdown() -> str:
    """The whole glossary, topic by topic, as markdown for the Home page."""
    parts = []
    for topic in TOPICS:
        parts.append(f"**{topic}**\n")
        parts += [f"- **{term.heading}**: {term.definition}" for term in _TERMS if term.topic == topic]
        parts.append("")
    return "\n".join(parts)
