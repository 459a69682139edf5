"""`python -m hematovision.serve` loads the model into the pages' own cache before anyone asks."""

from hematovision import paths


def test_preload_fills_the_cache_the_pages_read(monkeypatch, tiny_model_dir):
    from hematovision import serve, ui

    monkeypatch.setenv(paths.MODEL_DIR_ENV, str(tiny_model_dir))
    ui._load_classifier.clear()
    serve.preload()

    def no_second_load(*args, **kwargs):
        raise AssertionError("the page loaded the model again")

    monkeypatch.setattr(ui.Classifier, "load", no_second_load)
    assert ui.classifier_or_stop().card.classes  # served from what preload put in the cache


def test_preload_of_a_broken_folder_leaves_the_message_to_the_page(monkeypatch, tmp_path):
    from hematovision import serve, ui

    monkeypatch.setenv(paths.MODEL_DIR_ENV, str(tmp_path))
    ui._load_classifier.clear()
    serve.preload()  # no model there: nothing raised here, the page says so when opened
