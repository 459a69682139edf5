"""The Ray path gives exactly the single-process CSV (needs the cluster extra: requirements-cluster.txt)."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.conftest import synthetic_cell

ray = pytest.importorskip("ray", reason="the cluster extra is not installed (pip install -r requirements-cluster.txt)")


def test_ray_local_cluster_writes_the_single_process_table(tiny_model_dir, tmp_path):
    from hematovision.cli.distributed import main as distributed
    from hematovision.cli.main import main as classify

    folder = tmp_path / "archive"
    for i in range(300):
        sub = folder / f"slide_{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(synthetic_cell(i % 3, 4000 + i, 64)).save(sub / f"cell_{i:03d}.png")
    single, clustered = tmp_path / "single.csv", tmp_path / "ray.csv"
    assert classify(["classify", str(folder), "--model", str(tiny_model_dir), "--csv", str(single)]) == 0
    assert distributed([str(folder), "--model", str(tiny_model_dir), "--csv", str(clustered), "--workers", "2"]) == 0
    assert clustered.read_text() == single.read_text()
