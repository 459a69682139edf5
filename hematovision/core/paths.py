"""Every path the project uses, decided in one place."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Set this to point the app, the CLIs and the tests at another artifact folder.
MODEL_DIR_ENV = "HEMATOVISION_MODEL_DIR"

#: The shipped artifacts (committed).
SHIPPED_MODEL_DIR = PROJECT_ROOT / "models"

#: The teaching deck shipped with the app (resized, credited PBC test-split cells; hematovision.workflows.teaching).
DECK_DIR = PROJECT_ROOT / "hematovision" / "deck"

#: Data and ImageNet weights live beside the repository, never inside it.
SHARED_DIR = PROJECT_ROOT.parent / "shared"
SHARED_DATA_DIR = SHARED_DIR / "data"
SHARED_WEIGHTS_DIR = SHARED_DIR / "weights"
MOBILENET_V2_WEIGHTS = {
    1.0: SHARED_WEIGHTS_DIR / "mobilenet_v2_1.0_224_no_top_imagenet_approx.h5",
    0.35: SHARED_WEIGHTS_DIR / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
}

# File names inside an artifact folder (the contract: docs/artifact-contract.md).
MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"
EVALUATION_FILE = "evaluation.json"
HISTORY_FILE = "history.csv"
#: One row per PBC test-split image (python -m training.evaluate --predictions): the confusion matrix's cells.
TEST_PREDICTIONS_FILE = "test_predictions.csv"


def model_dir() -> Path:
    """The artifact folder in use: the environment override, else the shipped one."""
    override = os.environ.get(MODEL_DIR_ENV)
    return Path(override).expanduser() if override else SHIPPED_MODEL_DIR
