"""Compiled kernels that evaluate a user's Numba cost at perturbed points.

The hot loop of the generic engine: ``prange`` over chunks of components, each
chunk with its own copy of theta (allocated before the loop), setting one
component to each of its perturbed values, calling the cost, and restoring the
component exactly. Every value depends only on its own component, so the
result is the same bit for bit whatever the number of threads.

The user's cost reaches the kernel as a first-class function with an explicit
signature. Passed as a plain dispatcher, Numba would specialise (and fail to
cache) the kernel for every cost function; typed as
``FunctionType(float64(float64[::1], *arg_types))`` one compiled kernel, cached on
disk, serves every cost with the same argument types.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange, types
from numba.extending import overload

from fastgrad import _jit

__all__ = ["kernel_for"]


def _derivative_part(value):
    """The part of a cost value the driver needs (see the overload below)."""
    return value


@overload(_derivative_part)
def _derivative_part_overload(value):
    # Complex step: only Im J(theta + i h e_k) is needed; nothing is subtracted.
    if isinstance(value, types.Complex):
        return lambda value: value.imag
    return lambda value: value


def _evaluate_points(cost, theta, indices, points, args, n_chunks, out):
    n_components = indices.shape[0]
    n_points = points.shape[1]
    scratch = np.empty((n_chunks, theta.shape[0]), dtype=theta.dtype)
    for chunk in prange(n_chunks):
        local = scratch[chunk]
        local[:] = theta
        start = chunk * n_components // n_chunks
        stop = (chunk + 1) * n_components // n_chunks
        for r in range(start, stop):
            k = indices[r]
            for j in range(n_points):
                local[k] = points[r, j]
                out[r, j] = _derivative_part(cost(local, *args))
            # Restore exactly: the next component must see theta unchanged.
            local[k] = theta[k]


_KERNELS: dict[tuple, numba.core.dispatcher.Dispatcher] = {}


def kernel_for(arg_types: tuple, complex_step: bool) -> numba.core.dispatcher.Dispatcher:
    """The compiled kernel for costs taking ``(theta, *arg_types)``.

    Compiled (or loaded from the on-disk cache) once per argument-type
    signature and process, then reused.
    """
    key = (arg_types, complex_step)
    kernel = _KERNELS.get(key)
    if kernel is None:
        scalar = types.complex128 if complex_step else types.float64
        vector = types.Array(scalar, 1, "C")
        cost_type = types.FunctionType(scalar(vector, *arg_types))
        signature = types.void(
            cost_type,
            vector,
            types.Array(types.int64, 1, "C"),
            types.Array(scalar, 2, "C"),
            types.Tuple(arg_types),
            types.intp,
            types.Array(types.float64, 2, "C"),
        )
        kernel = _jit.njit(signature, parallel=True, cache=True)(_evaluate_points)
        _KERNELS[key] = kernel
    return kernel
