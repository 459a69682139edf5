"""`python -m hematovision.cli.serve` loads the model into the pages' own cache before anyone asks."""

import shutil

from hematovision.core import paths


def test_preload_fills_the_cache_the_pages_read(monkeypatch, tiny_model_dir):
    from hematovision.app import cache
    from hematovision.cli import serve

    monkeypatch.setenv(paths.MODEL_DIR_ENV, str(tiny_model_dir))
    cache.load_classifier.clear()
    serve.preload()

    def no_second_load(*args, **kwargs):
        raise AssertionError("the page loaded the model again")

    monkeypatch.setattr(cache.Classifier, "load", no_second_load)
    assert cache.classifier_or_stop().card.classes  # served from what preload put in the cache


def test_preload_of_a_broken_folder_leaves_the_message_to_the_page(monkeypatch, tmp_path, tiny_model_dir):
    from hematovision.app import cache
    from hematovision.cli import serve

    monkeypatch.setenv(paths.MODEL_DIR_ENV, str(tmp_path))
    cache.load_classifier.clear()
    serve.preload()  # no model there: nothing raised here, the page says so when opened
    shown = []
    monkeypatch.setattr(cache.st, "error", shown.append)
    assert cache.classifier_or_stop() is None  # outside a page run st.stop() returns
    assert len(shown) == 1 and "The model cannot be loaded" in shown[0] and str(tmp_path) in shown[0]
    # The failure was not cached: once the folder holds a model, the page loads it.
    shutil.copytree(tiny_model_dir, tmp_path, dirs_exist_ok=True)
    assert cache.classifier_or_stop().card.classes
    assert len(shown) == 1


def test_a_model_rewritten_in_place_is_loaded_afresh(monkeypatch, tmp_path, tiny_model_dir):
    """The app's caches are keyed on the folder's fingerprint, not only its path."""
    import os

    from hematovision.app import cache
    from hematovision.core.artifacts import folder_fingerprint

    assert folder_fingerprint(tmp_path / "absent") == ""
    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    monkeypatch.setenv(paths.MODEL_DIR_ENV, str(folder))
    first = cache.classifier_or_stop()
    assert cache.classifier_or_stop() is first
    before = folder_fingerprint(folder)
    card = folder / paths.CARD_FILE
    stat = card.stat()
    os.utime(card, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # retrained: the card rewritten
    assert folder_fingerprint(folder) != before
    assert cache.classifier_or_stop() is not first
