"""MODEL_CARD.md: short, its figures those of models/evaluation.json, its references present."""

from __future__ import annotations

import json
import re

import pytest

from hematovision.core import paths

ROOT = paths.PROJECT_ROOT
CARD = ROOT / "MODEL_CARD.md"
ROWS = {
    "pbc_test": "PBC test split (held out)",
    "pbc_val": "PBC validation split",
    "bccd_crops_test": "BCCD crops, held-out test photos",
    "bccd_crops_val": "BCCD crops, validation photos",
    "bccd_views_test": "BCCD 320x240 views of the test photos",
    "bccd_photos_test": "BCCD whole test photos at 320x240",
    "chula_test": "Chula test sequences",
    "pbc_only_on_bccd_all": "Leave one lab out",
}


def evaluation() -> dict:
    return json.loads((paths.SHIPPED_MODEL_DIR / paths.EVALUATION_FILE).read_text())


def test_the_card_is_short_and_has_every_section():
    text = CARD.read_text()
    assert len(text.splitlines()) <= 300
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == ["The model", "Intended use", "Data", "Metrics (`models/evaluation.json`)", "Other labs",
                        "Limitations", "How to reproduce"]  # fmt: skip


@pytest.mark.parametrize("key", list(ROWS))
def test_each_metrics_row_is_the_evaluation_s(key):
    report = evaluation()
    report = report["leave_one_lab_out"][key] if key == "pbc_only_on_bccd_all" else report["datasets"][key]
    [row] = [line for line in CARD.read_text().splitlines() if line.startswith(f"| {ROWS[key]}")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    low, high = report["accuracy_ci95"]
    assert cells[1] == f"{report['n']:,}"
    assert cells[2] == f"{100 * report['accuracy']:.2f}% ({100 * low:.1f}-{100 * high:.1f})"
    assert cells[3] == f"{report['macro_f1']:.4f}"
    assert cells[4].endswith(f"{100 * report['ece']:.2f}%")


def test_the_documents_it_points_to_exist():
    text = CARD.read_text()
    for path in ("models/README.md", "docs/experiments.md", "docs/artifact-contract.md", "docs/other-labs.md"):
        assert f"`{path}`" in text and (ROOT / path).is_file(), path
