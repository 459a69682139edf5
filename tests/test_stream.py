"""The batch command line's stream: bounded in memory, in input order, the same classes as classify()."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.conftest import encode, synthetic_cell

BAD = b"this is not an image"


def cells(count: int, size: int = 96) -> list[bytes]:
    return [encode(synthetic_cell(i % 3, 500 + i, size)) for i in range(count)]


def test_the_stream_holds_at_most_its_bound_of_inputs_however_long(tiny_classifier):
    images = cells(5)
    pulled = 0

    def endless():  # a million files, listed lazily: never all in memory
        nonlocal pulled
        for i in range(1_000_000):
            pulled += 1
            yield f"f{i:07d}.png", BAD if i % 7 == 3 else images[i % len(images)]

    in_flight, seen, most = 8, 0, 0
    for result in itertools.islice(tiny_classifier.classify_stream(endless(), in_flight=in_flight, batch=3), 60):
        seen += 1  # single-cell images: one result per file
        most = max(most, pulled - seen + 1)  # taken from the stream and not yet given back, this one included
        if int(result.name[1:8]) % 7 == 3:
            assert result.prediction is None and "not a recognised image format" in result.error
        else:
            assert result.error is None and result.prediction is not None
    assert seen == 60 and most <= in_flight
    assert pulled <= 60 + in_flight


def test_the_stream_gives_what_classify_gives_in_order(tiny_classifier):
    sources = [(f"c{i}.png", data) for i, data in enumerate(cells(13))] + [("bad.png", BAD)]
    sources.insert(4, ("empty.png", b""))
    whole = tiny_classifier.classify(sources)
    streamed = list(tiny_classifier.classify_stream(sources, in_flight=5, batch=4))
    assert [r.name for r in streamed] == [r.name for r in whole]
    assert [r.error for r in streamed] == [r.error for r in whole]
    assert [r.notes for r in streamed] == [r.notes for r in whole]
    for mine, theirs in zip(streamed, whole, strict=True):
        if theirs.prediction is not None:
            assert mine.prediction.label == theirs.prediction.label
            assert mine.prediction.confidence == pytest.approx(theirs.prediction.confidence, abs=1e-5)
    assert all(r.image is None for r in streamed)  # nothing kept


def test_the_stream_refuses_a_bound_of_nothing(tiny_classifier):
    with pytest.raises(ValueError):
        list(tiny_classifier.classify_stream([], in_flight=0))
    assert list(tiny_classifier.classify_stream([])) == []


def test_the_stream_in_worker_processes_gives_what_threads_give(tiny_classifier):
    """classify_stream takes a process pool (the finder holds the GIL): the same results, bad files named."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    sources = [(f"c{i}.png", data) for i, data in enumerate(cells(7))] + [("bad.png", BAD)]
    threads = list(tiny_classifier.classify_stream(sources, in_flight=4, batch=2))
    with ProcessPoolExecutor(2, mp_context=get_context("forkserver")) as pool:
        processes = list(tiny_classifier.classify_stream(sources, in_flight=4, batch=2, pool=pool))
    assert [r.name for r in processes] == [r.name for r in threads]
    assert processes[-1].prediction is None and "not a recognised image format" in processes[-1].error
    np.testing.assert_allclose(
        [r.prediction.confidence for r in processes[:-1]], [r.prediction.confidence for r in threads[:-1]], atol=1e-6
    )
    assert [r.prediction.label for r in processes[:-1]] == [r.prediction.label for r in threads[:-1]]


def test_classify_cli_names_a_broken_file_and_classifies_the_rest(tiny_model_dir, tmp_path, capsys):
    import csv

    from hematovision.cli.main import main

    folder = tmp_path / "cells"
    folder.mkdir()
    for i, data in enumerate(cells(9)):
        (folder / f"cell_{i}.png").write_bytes(data)
    (folder / "broken.png").write_bytes(BAD)
    table = tmp_path / "out.csv"
    assert main(["classify", str(folder), "--model", str(tiny_model_dir), "--csv", str(table)]) == 0
    err = capsys.readouterr().err
    assert f"{folder / 'broken.png'}\tERROR: not a recognised image format" in err
    assert "classified 9 of 10 images or cells in 10 files" in err
    rows = list(csv.DictReader(table.open()))
    assert [row["file"] for row in rows] == sorted(str(path) for path in folder.iterdir())
