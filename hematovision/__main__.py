"""``python -m hematovision COMMAND``: the command line lives in :mod:`hematovision.cli.main`."""

import os
import sys

# TensorFlow (loaded only where the Keras model is needed) logs its C++ start-up chatter unless told not to; set
# once, here at the entry, before anything imports it, and only where the user has not chosen a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hematovision.cli.main import main

# Guarded: the classify command's worker processes import this module again, as __mp_main__.
if __name__ == "__main__":
    sys.exit(main())
