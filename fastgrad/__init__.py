"""fastgrad: fast, trustworthy gradient checking by finite differences.

The public API lives here; compiled kernels live in private modules
(``fastgrad._generic_kernels``, ``fastgrad._dense_kernels``,
``fastgrad._dense_engine``).
"""

from fastgrad._layout import Layout, pack, unpack
from fastgrad._metrics import relative_difference
from fastgrad.check import gradcheck
from fastgrad.dense import DenseNet
from fastgrad.numerical import (
    CheckInterrupted,
    Estimate,
    NonFiniteCostError,
    estimate_gradient,
    merge_estimates,
    numerical_gradient,
)
from fastgrad.report import BlockResult, Component, Report, merge_reports

__all__ = [
    "Layout",
    "pack",
    "unpack",
    "relative_difference",
    "numerical_gradient",
    "estimate_gradient",
    "gradcheck",
    "DenseNet",
    "Report",
    "BlockResult",
    "Component",
    "Estimate",
    "merge_reports",
    "merge_estimates",
    "CheckInterrupted",
    "NonFiniteCostError",
]

__version__ = "0.1.0"
