"""The difference metric of gradient checking."""

from __future__ import annotations

import numpy as np

from fastgrad._validation import as_float_vector

__all__ = ["relative_difference"]


def _relative_difference(grad: np.ndarray, approx: np.ndarray) -> float:
    """Unchecked :func:`relative_difference` for validated float64 vectors."""
    numerator = float(np.linalg.norm(grad - approx))
    denominator = float(np.linalg.norm(grad)) + float(np.linalg.norm(approx))
    if denominator == 0.0:
        return 0.0
    return numerator / denominator


def relative_difference(grad: np.ndarray, approx: np.ndarray) -> float:
    """``||grad - approx||_2 / (||grad||_2 + ||approx||_2)``.

    The course's measure: about 1e-7 or less means back-prop is right, much
    larger means a bug. It is 0.0 when both vectors are zero.

    Parameters
    ----------
    grad, approx : array_like
        1-D vectors of the same size (float32 is promoted to float64).

    Returns
    -------
    float
        A number in ``[0, 1]``.

    Examples
    --------
    >>> import fastgrad
    >>> fastgrad.relative_difference([3.0, 4.0], [3.0, 4.0])
    0.0
    >>> fastgrad.relative_difference([1.0, 0.0], [-1.0, 0.0])
    1.0
    """
    grad = as_float_vector(grad, "grad")
    approx = as_float_vector(approx, "approx")
    if grad.shape != approx.shape:
        raise ValueError(
            f"grad has {grad.size} components but approx has {approx.size}: compare vectors of the same size."
        )
    return _relative_difference(grad, approx)
