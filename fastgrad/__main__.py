"""``python -m fastgrad``: the ``fastgrad`` command (see :mod:`fastgrad.cli`)."""

import sys

from fastgrad.cli import main

if __name__ == "__main__":
    sys.exit(main())
