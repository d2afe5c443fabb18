"""Input checks shared by every public function.

Every check runs in Python before any compiled code, raises an error that says
what was wrong and what to do, and returns a fresh float64 C-contiguous copy so
that nothing fastgrad does can touch the caller's arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "as_float_array",
    "as_float_vector",
    "as_indices",
    "check_args",
    "check_compiled_args",
    "check_eps",
    "check_seed",
    "check_threshold",
    "first_nonfinite",
]


def _check_dtype(array: np.ndarray, name: str) -> None:
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(
            f"{name} has complex dtype {array.dtype}: fastgrad checks real gradients; pass the real part "
            "(complex numbers are only used internally by method='complex')."
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"{name} has dtype {array.dtype}, but a floating-point array is needed: "
            "convert it with .astype(np.float64)."
        )


def first_nonfinite(array: np.ndarray) -> int | None:
    """Flat index of the first NaN or infinity in ``array``, or None."""
    bad = np.flatnonzero(~np.isfinite(array))
    return int(bad[0]) if bad.size else None


def _read_array(value: object, name: str) -> np.ndarray:
    """``np.asarray(value)``, or a TypeError naming ``name`` for ragged lists and the like."""
    try:
        return np.asarray(value)
    except Exception as exc:
        raise TypeError(f"{name} could not be read as a NumPy array: {exc}") from None


def as_float_array(value: object, name: str, *, allow_nonfinite: bool = False) -> np.ndarray:
    """A float64 C-contiguous copy of ``value`` of any shape.

    Raises
    ------
    TypeError
        For complex, integer, boolean or object data.
    ValueError
        For NaN or infinity (naming the first bad position), unless allowed.
    """
    array = _read_array(value, name)
    _check_dtype(array, name)
    result = np.array(array, dtype=np.float64, order="C", copy=True)
    if not allow_nonfinite:
        bad = first_nonfinite(result)
        if bad is not None:
            position = tuple(int(i) for i in np.unravel_index(bad, result.shape)) if result.ndim > 1 else bad
            raise ValueError(
                f"{name} contains {result.flat[bad]} at index {position}: "
                "fastgrad needs finite values; fix the NaN or infinity at its source."
            )
    return result


def as_float_vector(value: object, name: str, *, allow_nonfinite: bool = False) -> np.ndarray:
    """A non-empty 1-D float64 C-contiguous copy of ``value`` (float32 is promoted).

    Raises what :func:`as_float_array` raises, and a ValueError if ``value`` is
    not 1-D or is empty.
    """
    array = _read_array(value, name)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D vector, got shape {array.shape}: pack named arrays with "
            "fastgrad.pack(params), or flatten with .ravel()."
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty: there is nothing to check.")
    return as_float_array(array, name, allow_nonfinite=allow_nonfinite)


def as_indices(indices: object, size: int) -> np.ndarray:
    """Validated int64 component indices (negative ones count from the end).

    Duplicates are kept out: each component is checked once, in the order given.
    """
    if isinstance(indices, range):
        array = np.arange(indices.start, indices.stop, indices.step, dtype=np.int64)
    elif isinstance(indices, slice):
        array = np.arange(size, dtype=np.int64)[indices]
    else:
        array = np.asarray(indices)
        if array.dtype == bool:
            if array.shape != (size,):
                raise ValueError(
                    f"A boolean indices mask must have one entry per component ({size}), got shape {array.shape}."
                )
            array = np.flatnonzero(array)
        elif not np.issubdtype(array.dtype, np.integer):
            raise TypeError(
                f"indices must be integers (component numbers of theta), got dtype {array.dtype}."
            )
        array = np.atleast_1d(array).astype(np.int64).ravel()
    if array.size == 0:
        raise ValueError("indices is empty: give at least one component to check, or indices=None for all.")
    out_of_range = (array < -size) | (array >= size)
    if out_of_range.any():
        bad = int(array[np.flatnonzero(out_of_range)[0]])
        raise IndexError(f"Component index {bad} is outside theta, which has {size} components (0..{size - 1}).")
    array = np.where(array < 0, array + size, array)
    _, first = np.unique(array, return_index=True)
    if first.size != array.size:
        array = array[np.sort(first)]
    return np.ascontiguousarray(array, dtype=np.int64)


def check_eps(eps: object) -> float:
    """A positive, finite step size as a Python float."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"eps must be a real number (a step such as 1e-7), got {type(eps).__name__}.")
    value = float(eps)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"eps must be positive and finite, got {value}: use a small step such as 1e-6.")
    return value


def check_threshold(threshold: object) -> float:
    """A non-negative, finite pass threshold as a Python float."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise TypeError(f"threshold must be a real number such as 1e-7, got {type(threshold).__name__}.")
    value = float(threshold)
    if math.isnan(value) or value < 0.0 or math.isinf(value):
        raise ValueError(f"threshold must be a non-negative finite number, got {value}.")
    return value


def check_seed(seed: object, name: str = "seed") -> int:
    """A seed for ``numpy.random.default_rng``: a whole number >= 0, as a Python int.

    Raises
    ------
    TypeError
        For anything but an integer (bool, float and str included).
    ValueError
        For a negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be a whole number such as 0 or 42, got {type(seed).__name__} {seed!r}.")
    value = int(seed)
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}: seeds of NumPy's generators are non-negative.")
    return value


def check_compiled_args(args: tuple) -> tuple:
    """Check that every extra argument can be passed to a Numba-compiled cost.

    Numba passes arrays, numbers, booleans, strings and tuples of them; a
    dict, list, set or arbitrary object would meet a Numba ``TypingError``
    deep inside compilation. Call after :func:`check_args`, before typing the cost.

    Returns
    -------
    tuple
        ``args`` unchanged.

    Raises
    ------
    TypeError
        Naming the position and type of the first argument Numba cannot take,
        and what to pass instead.
    """
    for position, value in enumerate(args):
        problem = _uncompilable(value)
        if problem is not None:
            raise TypeError(
                f"args[{position}] is {problem}, which a Numba-compiled cost cannot take: {_instead(value)}"
            )
    return args


def _uncompilable(value: object) -> str | None:
    if isinstance(value, (bool, int, float, complex, str, np.number, np.bool_)):
        return None
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype}" if value.dtype.kind in "OUSV" else None
    if isinstance(value, tuple):
        for item in value:
            inner = _uncompilable(item)
            if inner is not None:
                return f"a tuple holding {inner}"
        return None
    return f"a {type(value).__name__}"


def _instead(value: object) -> str:
    if isinstance(value, dict):
        return "pass the arrays themselves, e.g. args=(params['X'], params['Y']), or use fastgrad.pack for parameters."
    if isinstance(value, (list, set)):
        return "pass a NumPy array (np.asarray(...)) or a tuple of numbers."
    if isinstance(value, np.ndarray):
        return "pass numeric arrays (convert with .astype(np.float64))."
    return "pass arrays, numbers or tuples of them (or use a plain Python cost)."


def check_args(args: object) -> tuple:
    """Extra cost arguments as a tuple (a lone array is not silently iterated)."""
    if isinstance(args, np.ndarray) or not isinstance(args, Sequence) or isinstance(args, str):
        raise TypeError(
            "args must be a tuple of extra arguments passed to the cost after theta, "
            "for example args=(X, Y); for one array write args=(X,)."
        )
    return tuple(args)
