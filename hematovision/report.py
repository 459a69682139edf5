"""The review report as a PDF: who reviewed what with which model, the two differentials, every cell.

Written with fpdf2: it lays out real text (searchable, copyable, read by screen readers and ``pdftotext``),
tables that break across pages and repeat their header, and embedded JPEG thumbnails, in a small pure-Python
package. matplotlib's PDF backend draws figures, not flowing documents, and ReportLab does the same job with a
much larger API. The font is the DejaVu Sans that matplotlib ships, so every name and symbol prints.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from fpdf import FPDF
from fpdf.fonts import FontFace
from PIL import Image

from hematovision.artifacts import ModelCard
from hematovision.charts import review_apart_table, review_differential_table
from hematovision.credits import DATASET_CREDIT, DISCLAIMER, plain
from hematovision.differential import count_warning
from hematovision.imaging import centre_square, to_model_input
from hematovision.overlay import overlay
from hematovision.predict import ImageResult
from hematovision.review import Review, cell_key, differentials

THUMBNAIL_PIXELS = 160
FONT = "DejaVu"
_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@dataclass
class ModelSummary:
    """What the report says about the model: its identity and the figures it was tested to."""

    model_id: str
    description: str
    figures: list[str]

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
        return cls(model_id, description, figures)


@dataclass
class CellPictures:
    thumbnail: np.ndarray
    heatmap: np.ndarray | None = None


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
        square = centre_square(result.image.rgb)
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
    title: str = "HematoVision review report",
) -> bytes:
    """The whole report as PDF bytes."""
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
    pdf.set_font(FONT, size=9)
    looked_at, total = review.progress()
    corrected = sum(cell.corrected for cell in review.cells.values())
    _lines(
        pdf,
        [
            f"Report made {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; review started "
            f"{review.created[:16].replace('T', ' ')}, last changed {review.updated[:16].replace('T', ' ')}.",
            f"Reviewer: {review.reviewer or 'not given'}.",
            f"Cells: {total}; looked at by the reviewer: {looked_at}; corrected: {corrected}.",
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

    _heading(pdf, "Every cell")
    with_heatmaps = any(picture.heatmap is not None for picture in pictures.values())
    headings = ["#", "cell", *(["heatmap"] if with_heatmaps else []), "file", "network", "reviewed", "flags, comment"]
    widths = [6, 20, *([20] if with_heatmaps else []), 32, 42, 26, 36]
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
            line.cell(cell.name)
            line.cell(f"{cell.network_class}{confidence}" + (f"\n{cell.morphology}" if cell.morphology else ""))
            line.cell(cell.final_class + (" (corrected)" if cell.corrected else "") + ("" if cell.reviewed else " *"))
            line.cell("; ".join([*cell.flags, *([cell.comment] if cell.comment else [])]))
    _lines(pdf, ["* not yet looked at by the reviewer"], size=7)

    _heading(pdf, "About this report")
    _lines(pdf, [plain(DISCLAIMER), plain(DATASET_CREDIT)], size=8)
    return bytes(pdf.output())


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
