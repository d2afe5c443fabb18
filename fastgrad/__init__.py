"""fastgrad: fast, trustworthy gradient checking by finite differences.

The public API lives here; compiled kernels live in private modules
(``fastgrad._generic_kernels``, ``fastgrad._dense_kernels``,
``fastgrad._dense_engine``).
"""

from fastgrad._layout import Layout, pack, unpack
from fastgrad._metrics import relative_difference

__all__ = [
    "Layout",
    "pack",
    "unpack",
    "relative_difference",
]

__version__ = "0.1.0"
