"""fastgrad: fast, trustworthy gradient checking by finite differences.

The public API lives here; compiled kernels live in private modules
(``fastgrad._generic_kernels``, ``fastgrad._dense_kernels``,
``fastgrad._dense_engine``).

Names are imported on first use (PEP 562 ``__getattr__``): ``import fastgrad``
loads neither Numba nor any kernel module, so a process pays only for what it
uses (``fastgrad.relative_difference`` needs NumPy alone; ``fastgrad.DenseNet``
loads Numba and the dense kernels).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs; at run time see __getattr__
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

#: Where each public name is defined.
_EXPORTS = {
    "Layout": "fastgrad._layout",
    "pack": "fastgrad._layout",
    "unpack": "fastgrad._layout",
    "relative_difference": "fastgrad._metrics",
    "numerical_gradient": "fastgrad.numerical",
    "estimate_gradient": "fastgrad.numerical",
    "gradcheck": "fastgrad.check",
    "DenseNet": "fastgrad.dense",
    "Report": "fastgrad.report",
    "BlockResult": "fastgrad.report",
    "Component": "fastgrad.report",
    "Estimate": "fastgrad.numerical",
    "merge_reports": "fastgrad.report",
    "merge_estimates": "fastgrad.numerical",
    "CheckInterrupted": "fastgrad.numerical",
    "NonFiniteCostError": "fastgrad.numerical",
}

__all__ = list(_EXPORTS)

__version__ = "0.1.0"


#: Public submodules, also loaded on first use (``fastgrad.testing``, ...).
_SUBMODULES = ("check", "numerical", "report", "dense", "testing", "engines", "distributed", "naive", "cli")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"fastgrad.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fastgrad' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
