"""Assertions for users' own test suites.

Each helper runs a gradient check and raises :class:`AssertionError` whose
message is the full report (verdict, failing blocks, worst components), so
pytest shows what failed and where::

    from fastgrad.testing import assert_dense_gradients_correct

    def test_my_backprop():
        net = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
        params = net.init(seed=0)
        assert_dense_gradients_correct(net, params, X, Y, my_backprop(params, X, Y))

The progress bar is off by default here (test output is not a terminal
anyway); pass ``progress=True`` to see it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from fastgrad._format import render_report
from fastgrad.check import gradcheck
from fastgrad.report import Report

if TYPE_CHECKING:  # pragma: no cover
    from fastgrad.dense import DenseNet

__all__ = ["assert_gradients_correct", "assert_dense_gradients_correct"]


def _raise_unless_passed(report: Report, what: str, allow_inconclusive: bool = False) -> Report:
    if report.verdict == "fail" or (report.verdict == "inconclusive" and not allow_inconclusive):
        # A leading newline puts the report's verdict on its own line under
        # pytest's "AssertionError:" prefix.
        raise AssertionError(f"{what}:\n{render_report(report, color=False)}")
    return report


def assert_gradients_correct(
    cost: Callable,
    grad: np.ndarray | Mapping[str, np.ndarray],
    theta: np.ndarray,
    *,
    allow_inconclusive: bool = False,
    **gradcheck_kwargs: Any,
) -> Report:
    """Assert that ``grad`` is the gradient of ``cost`` at ``theta``.

    Parameters
    ----------
    cost : callable
        ``cost(theta, *args) -> float`` (Numba-compiled or plain Python).
    grad : array_like or dict
        The analytic gradient to check (a dict of blocks needs ``layout=``).
    theta : array_like
        The point, a 1-D vector (see :func:`fastgrad.pack`).
    allow_inconclusive : bool
        Accept an inconclusive verdict (fastgrad could not tell; the report says
        why) instead of raising.
    **gradcheck_kwargs
        Passed to :func:`fastgrad.gradcheck` (``eps``, ``threshold``,
        ``layout``, ``args``, ``method``, ``sample``, ``mode``, ``seed``, ...).
        ``progress`` defaults to False.

    Returns
    -------
    Report
        The passing report, for further assertions.

    Raises
    ------
    AssertionError
        If the check fails, or is inconclusive (unless ``allow_inconclusive``);
        the message is the report, naming the failing blocks and the worst
        components, or why fastgrad could not tell.
    ValueError, TypeError
        For bad input, as :func:`fastgrad.gradcheck` raises them.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgrad.testing import assert_gradients_correct
    >>> theta = np.array([1.0, -2.0])
    >>> assert_gradients_correct(lambda t: float(t @ t), 2 * theta, theta).passed
    True
    """
    gradcheck_kwargs.setdefault("progress", False)
    report = gradcheck(cost, grad, theta, **gradcheck_kwargs)
    return _raise_unless_passed(report, "the gradient does not match finite differences of the cost",
                                allow_inconclusive)


def assert_dense_gradients_correct(
    net: "DenseNet",
    params: Mapping[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    grads: Mapping[str, np.ndarray] | np.ndarray | None = None,
    *,
    allow_inconclusive: bool = False,
    **kwargs: Any,
) -> Report:
    """Assert that ``grads`` is the gradient of ``net``'s cost at ``params`` on ``(X, Y)``.

    Parameters
    ----------
    net : DenseNet
        The network whose cost is differentiated.
    params : dict
        ``W1, b1, ...``.
    X, Y : array_like
        Data in the course's layout (examples as columns).
    grads : dict, vector or None
        The gradient to check (``dW1, db1, ...`` or ``W1, b1, ...`` names, or a
        vector laid out like ``net.layout``); None checks fastgrad's own
        back-prop.
    **kwargs
        Passed to :meth:`DenseNet.gradcheck` (``eps``, ``threshold``,
        ``method``, ``sample``, ``mode``, ``seed``, ...). ``progress`` defaults
        to False.

    Returns
    -------
    Report
        The passing report.

    Raises
    ------
    AssertionError
        If the check fails; the message is the report, naming the failing
        blocks (``W2``, ``b1``, ...) and the worst components.
    """
    kwargs.setdefault("progress", False)
    report = net.gradcheck(params, X, Y, grads, **kwargs)
    return _raise_unless_passed(report, f"the gradient of {net!r} does not match finite differences of its cost",
                                allow_inconclusive)
