"""Run both bug catalogues (ours and the external one in tests/external) and write docs/bug_catalogue.md.

The catalogue lives with the tests it shares its bugs and networks with
(``tests/catalogue.py``); this is its entry point from ``scripts/``, with the
same options::

    python scripts/bug_catalogue.py                      # 5 seeds per bug, 20 per correct network
    python scripts/bug_catalogue.py --bug-seeds 1 --seeds 3
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    catalogue = Path(__file__).resolve().parents[1] / "tests" / "catalogue.py"
    sys.path.insert(0, str(catalogue.parent))  # (its imports: tests/bugs.py, tests/external)
    sys.argv[0] = str(catalogue)
    runpy.run_path(str(catalogue), run_name="__main__")
