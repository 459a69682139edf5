"""The review report as a PDF a reviewer signs: the sample, who reviewed it with which model, the differential
by the network and after review (hematovision.workflows.differential's one rule), every class's count, a sign-off line,
each field of view with its numbered boxes, and every cell.

Written with fpdf2: it lays out real text (searchable, copyable, read by screen readers and ``pdftotext``),
tables that break across pages and repeat their header, and embedded JPEG thumbnails, in a small pure-Python
package. matplotlib's PDF backend draws figures, not flowing documents, and ReportLab does the same job with a
much larger API. The font is the DejaVu Sans that matplotlib ships, so every name and symbol prints.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from fpdf import FPDF
from fpdf.fonts import FontFace
from PIL import Image

from hematovision.core.artifacts import ModelCard
from hematovision.core.credits import DATASET_CREDIT, DISCLAIMER, plain
from hematovision.core.imaging import centre_square, to_model_input
from hematovision.core.predict import ImageResult
from hematovision.core.smear import CellBox
from hematovision.explain.overlay import draw_cell_boxes, fade_beyond_photo, overlay
from hematovision.workflows.count_tables import review_apart_table, review_class_table, review_differential_table
from hematovision.workflows.differential import count_warning, platelet_text
from hematovision.workflows.review import FLAG_UNCERTAIN, Review, cell_key, differentials

THUMBNAIL_PIXELS = 160
#: A field photo's longer side in the PDF, in pixels: its numbered boxes stay legible, the file stays small.
FIELD_PIXELS = 900
#: Where a file name may wrap in a table: after a path separator, else after these, never inside a word.
PATH_BREAKS = ("/", "\\")
WORD_BREAKS = ("_", "-", ".")
FONT = "DejaVu"
_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@dataclass
class ModelSummary:
    """What the report says about the model: its identity and the figures it was tested to."""

    model_id: str
    description: str
    figures: list[str]
    #: Every class of the model, in its order, for the report's count of each.
    classes: list[str] = field(default_factory=list)

    @classmethod
    def from_artifacts(
        cls, card: ModelCard, evaluation: Mapping, model_id: str, results: Sequence[ImageResult] = ()
    ) -> ModelSummary:
        """``results``: the cells reported on, so that the report names any lab profile that read them."""
        backbone = card.backbone.get("architecture", "CNN")
        description = f"{backbone}, {len(card.classes)} classes, trained {card.created[:10] or 'date unknown'}"
        profiles = sorted({r.prediction.lab_profile for r in results if r.prediction and r.prediction.lab_profile})
        if profiles:
            description += f"; read through lab profile {', '.join(profiles)} (the user's own lab's correction)"
        figures = []
        for key, label in (("pbc_test", "PBC test split (training lab)"), ("bccd_crops_test", "BCCD test cells")):
            report = evaluation.get("datasets", {}).get(key)
            if report:
                figures.append(
                    f"{label}: accuracy {100 * report['accuracy']:.2f}% on {report['n']:,} images, "
                    f"macro-F1 {report['macro_f1']:.3f}, calibration error {100 * report['ece']:.1f}%"
                )
        return cls(model_id, description, figures, list(card.classes))


@dataclass
class CellPictures:
    thumbnail: np.ndarray
    heatmap: np.ndarray | None = None


@dataclass
class FieldPicture:
    """A field of view and its cells' boxes (review key, box), in the field's order: "cell 1" is the first."""

    name: str
    rgb: np.ndarray
    cells: list[tuple[str, CellBox]]


def field_pictures(results: Sequence[ImageResult], digests: Mapping[str, str]) -> list[FieldPicture]:
    """Each field of view of the batch (kept with its image) and the boxes of the cells found in it."""
    fields: dict[str, FieldPicture] = {}
    for result in results:
        if result.box is None or result.field_image is None:
            continue
        name = result.source or result.name
        digest = digests[name]
        picture = fields.setdefault(digest, FieldPicture(name, result.field_image.rgb, []))
        picture.cells.append((cell_key(digest, result), result.box))
    return list(fields.values())


def numbered_field(picture: FieldPicture, review: Review) -> np.ndarray:
    """The field with each cell's box numbered as its name is ("cell 2" is box 2), labelled with its class after
    review; a cell still uncertain and not yet looked at is drawn as doubtful."""
    labelled = []
    for key, box in picture.cells:
        cell = review.cells.get(key)
        label = cell.final_class if cell else "not reviewed"
        doubtful = cell is None or (FLAG_UNCERTAIN in cell.flags and not cell.reviewed)
        labelled.append((box, label, doubtful))
    drawn = Image.fromarray(draw_cell_boxes(picture.rgb, labelled))
    drawn.thumbnail((FIELD_PIXELS, FIELD_PIXELS))
    return np.asarray(drawn)


def cell_pictures(
    results: Sequence[ImageResult],
    digests: Mapping[str, str],
    input_size: int,
    heatmap_of: Callable[[np.ndarray, int], np.ndarray] | None = None,
    classes: Sequence[str] = (),
) -> dict[str, CellPictures]:
    """A thumbnail per classified cell, by review key, and where ``heatmap_of(model_input, class_index)`` is
    given, the network's heatmap for its own class over the cell."""
    pictures = {}
    for result in results:
        if result.image is None:
            continue
        # As the app shows it: a crop's mirrored margin pale, so that it is not taken for a second cell.
        square = centre_square(fade_beyond_photo(result.image.rgb, result.beyond_photo()))
        thumbnail = np.asarray(Image.fromarray(square).resize((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS)))
        heat = None
        prediction = result.prediction
        if heatmap_of is not None and prediction is not None and not prediction.not_blood_cell:
            model_input = to_model_input(result.image.rgb, input_size)
            heat = overlay(model_input, heatmap_of(model_input, list(classes).index(prediction.label)))
            heat = np.asarray(Image.fromarray(heat).resize((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS)))
        pictures[cell_key(digests[result.source or result.name], result)] = CellPictures(thumbnail, heat)
    return pictures


class _Document(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=7)
        self.set_text_color(110)
        self.cell(0, 5, f"{plain(DISCLAIMER)}  ·  page {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0)


def pdf_report(
    review: Review,
    model: ModelSummary,
    white_cell_classes: Sequence[str],
    pictures: Mapping[str, CellPictures],
    count_cut_cells: bool = True,
    fields: Sequence[FieldPicture] = (),
    title: str = "HematoVision review report",
) -> bytes:
    """The whole report as PDF bytes. The sample identifier and the reviewer's name are the review's own, and
    optional: a report without them says "not given" and leaves a line to write them on."""
    pdf = _Document(format="A4")
    pdf.set_margins(14, 14, 14)
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_font(FONT, "", _FONT_DIR / "DejaVuSans.ttf")
    pdf.add_font(FONT, "B", _FONT_DIR / "DejaVuSans-Bold.ttf")
    pdf.set_title(title)
    pdf.set_creator("HematoVision")
    pdf.add_page()

    pdf.set_font(FONT, "B", 16)
    pdf.cell(0, 9, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "B", 11)
    pdf.cell(0, 6, f"Sample: {review.sample or 'not given'}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=9)
    looked_at, total = review.progress()
    corrected = sum(cell.corrected for cell in review.cells.values())
    _lines(
        pdf,
        [
            f"Report made {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; review started "
            f"{review.created[:16].replace('T', ' ')}, last changed {review.updated[:16].replace('T', ' ')}.",
            f"Reviewer: {review.reviewer or 'not given'}.",
            f"Cells: {total}"
            + (f", in {len(fields)} field{'s' if len(fields) != 1 else ''} of view" if fields else "")
            + f"; looked at by the reviewer: {looked_at}; corrected: {corrected}.",
            f"Model: {model.description}; identity {model.model_id[:16]}.",
            *(f"Tested: {figure}." for figure in model.figures),
        ],
    )
    if review.comment:
        _lines(pdf, [f"Comment: {review.comment}"])

    _heading(pdf, "Differential count (white cells)")
    network, reviewed = differentials(review, white_cell_classes, count_cut_cells)
    _lines(
        pdf,
        [
            "Network: its confident calls only. Reviewed: each cell by the reviewer's class where it was "
            "corrected; uncertain cells count once looked at. 95% interval: exact binomial (Clopper-Pearson, as "
            "Rümke's table). Cells cut by the photo's edge are "
            + ("counted." if count_cut_cells else "left out (listed apart).")
        ],
        size=8,
    )
    warning = count_warning(reviewed)
    if warning:
        pdf.set_text_color(160, 60, 0)
        _lines(pdf, [f"Warning: {warning}"], size=8.5)
        pdf.set_text_color(0)
    table = review_differential_table(network, reviewed)
    _table(pdf, [list(table.columns)] + [[_text(v) for v in row] for row in table.itertuples(False)])
    pdf.ln(2)
    apart = review_apart_table(network, reviewed)
    _table(pdf, [list(apart.columns)] + [list(row) for row in apart.itertuples(False)], align=("LEFT",) * 3)

    _heading(pdf, "Every class")
    classes = review_class_table(review, model.classes)
    _table(pdf, [list(classes.columns)] + [[str(v) for v in row] for row in classes.itertuples(False)])
    if reviewed.fields:
        _lines(pdf, [f"Platelets in all, with those the cell finder found in the fields of view: "
                     f"{platelet_text(reviewed)}."], size=8)  # fmt: skip
    _sign_off(pdf, review)

    for number, picture in enumerate(fields, start=1):
        _field(pdf, picture, numbered_field(picture, review), number, len(fields))

    _heading(pdf, "Every cell")
    with_heatmaps = any(picture.heatmap is not None for picture in pictures.values())
    headings = ["#", "cell", *(["heatmap"] if with_heatmaps else []), "file", "network", "reviewed", "flags, comment"]
    widths = [6, 20, *([20] if with_heatmaps else []), 38, 38, 26, 34]
    pdf.set_font(FONT, size=7.5)
    with pdf.table(
        col_widths=widths,
        width=min(sum(widths), pdf.epw),
        line_height=3.6,
        headings_style=FontFace(emphasis="BOLD", fill_color=(230, 230, 230)),
        text_align="LEFT",
        repeat_headings=1,
    ) as table:
        table.row(headings)
        for number, cell in enumerate(review.cells.values(), start=1):
            picture = pictures.get(cell.key)
            line = table.row()
            line.cell(str(number))
            _picture_cell(line, picture.thumbnail if picture else None, "no image")
            if with_heatmaps:
                _picture_cell(line, picture.heatmap if picture else None, "")
            confidence = "" if cell.confidence is None else f" ({100 * cell.confidence:.1f}%)"
            line.cell(wrap_name(pdf, cell.name, widths[len(widths) - 4] - 2))
            line.cell(f"{cell.network_class}{confidence}" + (f"\n{cell.morphology}" if cell.morphology else ""))
            line.cell(cell.final_class + (" (corrected)" if cell.corrected else "") + ("" if cell.reviewed else " *"))
            line.cell("; ".join([*cell.flags, *([cell.comment] if cell.comment else [])]))
    _lines(pdf, ["* not yet looked at by the reviewer"], size=7)

    _heading(pdf, "About this report")
    _lines(pdf, [plain(DISCLAIMER), plain(DATASET_CREDIT)], size=8)
    return bytes(pdf.output())


def _sign_off(pdf: FPDF, review: Review) -> None:
    """The lines the reviewer signs and dates (the name printed where the review gives one)."""
    pdf.ln(6)
    pdf.set_font(FONT, size=9.5)
    name = review.reviewer or ""
    column = pdf.epw / 3
    y = pdf.get_y() + 8
    for index, (label, filled) in enumerate((("Reviewed by", name), ("Signature", ""), ("Date", ""))):
        x = pdf.l_margin + index * column
        if filled:
            pdf.set_xy(x, y - 5)
            pdf.cell(column - 6, 5, filled)
        pdf.line(x, y, x + column - 6, y)
        pdf.set_xy(x, y + 0.5)
        pdf.set_font(FONT, size=7.5)
        pdf.cell(column - 6, 4, label)
        pdf.set_font(FONT, size=9.5)
    pdf.set_xy(pdf.l_margin, y + 6)


def _field(pdf: FPDF, picture: FieldPicture, drawn: np.ndarray, number: int, count: int) -> None:
    """One field photo, as wide as the page allows without taking more than half of one, with its caption."""
    height, width = drawn.shape[:2]
    shown_width = min(pdf.epw, 100 * width / height)
    shown_height = shown_width * height / width
    if pdf.get_y() + shown_height + 16 > pdf.page_break_trigger:
        pdf.add_page()
    _heading(pdf, f"Field of view {number} of {count}")
    _lines(pdf, [wrap_name(pdf, picture.name, pdf.epw)], size=8)
    pdf.image(_jpeg(drawn), w=shown_width, h=shown_height)
    caption = (
        'Boxes numbered as the cells are named in the table of every cell (box 2 is its "cell 2"), each with '
        'its class after review; amber with "?": uncertain and not yet looked at.'
    )
    _lines(pdf, [caption], size=7.5)


def wrap_name(pdf: FPDF, name: str, width: float) -> str:
    """``name`` with line breaks where it must wrap to fit ``width`` (mm) in the current font: after a path
    separator or a space where it can; a part still too wide after an underscore, hyphen or dot; inside a
    word only where one is wider than the whole column."""
    lines = [""]

    def place(text: str, levels: tuple[tuple[str, ...], ...]) -> None:
        for piece in _split(text, levels[0]) if levels else list(text):
            if lines[-1] and pdf.get_string_width((lines[-1] + piece).rstrip()) > width:
                lines[-1] = lines[-1].rstrip()
                lines.append("")
            if levels and pdf.get_string_width(piece.rstrip()) > width:
                place(piece, levels[1:])
            else:
                lines[-1] += piece

    place(name, ((*PATH_BREAKS, " "), WORD_BREAKS))
    return "\n".join(lines)


def _split(text: str, breaks: tuple[str, ...]) -> list[str]:
    """``text`` cut after each of ``breaks``, every character kept."""
    pieces, piece = [], ""
    for char in text:
        piece += char
        if char in breaks:
            pieces.append(piece)
            piece = ""
    return [*pieces, piece] if piece else pieces


def _heading(pdf: FPDF, text: str) -> None:
    pdf.ln(3)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=9)


def _lines(pdf: FPDF, lines: Sequence[str], size: float = 9) -> None:
    pdf.set_font(FONT, size=size)
    for line in lines:
        pdf.multi_cell(0, size * 0.5, line, new_x="LMARGIN", new_y="NEXT")


def _table(pdf: FPDF, rows: Sequence[Sequence[str]], align: Sequence[str] | None = None) -> None:
    pdf.set_font(FONT, size=8.5)
    align = align or ("LEFT", *("RIGHT",) * (len(rows[0]) - 1))
    with pdf.table(width=pdf.epw, align="LEFT", line_height=4.6, text_align=tuple(align)) as table:
        for row in rows:
            table.row([str(value) for value in row])


def _picture_cell(line, picture: np.ndarray | None, otherwise: str) -> None:
    if picture is None:
        line.cell(otherwise)
    else:
        line.cell(img=_jpeg(picture), img_fill_width=True)


def _text(value) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _jpeg(rgb: np.ndarray) -> Image.Image:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=85)
    return Image.open(buffer)
