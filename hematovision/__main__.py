"""``python -m hematovision COMMAND``: the command line lives in :mod:`hematovision.cli.main`."""

import sys

from hematovision.cli.main import main

sys.exit(main())
