"""``python -m ringback.cli``: the same as the ``ringback`` command."""

import os

from ringback.cli.main import main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
main()
