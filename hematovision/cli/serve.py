"""Start the dashboard with the model loaded before the first visitor: ``python -m hematovision.cli.serve``.

``streamlit run`` executes a page only when someone opens it, so the first visitor would wait for the
model to load and warm up. Here a thread loads it into the same process-wide cache the pages use
(``st.cache_resource`` in :mod:`hematovision.app.cache`) while the server starts. Extra arguments go to
``streamlit run`` (for instance ``--server.port 8502``).
"""

from __future__ import annotations

import gc
import os
import sys
import threading

from hematovision.core import paths


def preload() -> None:
    from hematovision.app import cache

    cache.preload_classifier()
    # Then TensorFlow's explainers, for the Explain page's finer default map (issue 38: the first Explain page in
    # under 3 s); classification never waits for them. This costs the server TensorFlow's memory from the start.
    cache.warm_up_explainers(wait=True)
    # Streamlit collects garbage after every script run, and each collection walks every object the model
    # and its libraries hold, which never die: frozen, they are skipped. `make load` (20 sessions) measured
    # 1.12 s of server CPU per session before and 1.05 s after, with TensorFlow not yet loaded.
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> None:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    # streamlit_app.py lays the pages out with st.navigation, but Streamlit treats an app with a pages/ folder as
    # an old-style multipage app until the first run calls st.navigation: a first visitor arriving at a page's
    # own address (/Classify) would get that page alone, without the entry point's layout and sidebar, and so
    # would every visitor after them. The project never uses the old style, so it is off from the start.
    PagesManager.uses_pages_directory = False
    # Before anything imports TensorFlow (the first Explain does): its C++ start-up chatter is noise in a server log.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    threading.Thread(target=preload, name="preload-model", daemon=True).start()
    sys.argv = [
        "streamlit",
        "run",
        str(paths.PROJECT_ROOT / "streamlit_app.py"),
        *(argv if argv is not None else sys.argv[1:]),
    ]
    cli.main()


if __name__ == "__main__":
    main()
