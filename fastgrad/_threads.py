"""Keep BLAS to one thread while fastgrad's own threads work.

Matrix products inside compiled kernels (``np.dot`` in Numba calls SciPy's
OpenBLAS) and NumPy's norms of long vectors start BLAS threads of their own,
which keep spinning for a while after each call. On a small machine they take
the cores that Numba's ``prange`` workers need: a full check of a 109,386-
parameter network ran 1.5-3x slower. Every public entry point that runs
kernels wraps its work in :func:`blas_on_one_thread`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

from threadpoolctl import threadpool_limits

__all__ = ["blas_on_one_thread", "single_threaded_blas"]

F = TypeVar("F", bound=Callable)


_depth = threading.local()


@contextmanager
def blas_on_one_thread():
    """A context manager limiting every loaded BLAS library to one thread.

    The libraries are looked up on entry (about a millisecond), so a BLAS that
    Numba loads late is limited too; nested uses cost nothing.
    """
    depth = getattr(_depth, "value", 0)
    if depth:
        _depth.value = depth + 1
        try:
            yield
        finally:
            _depth.value = depth
        return
    with threadpool_limits(limits=1, user_api="blas"):
        _depth.value = 1
        try:
            yield
        finally:
            _depth.value = 0


def single_threaded_blas(function: F) -> F:
    """Decorator: run ``function`` with BLAS on one thread (see module docstring)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with blas_on_one_thread():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# One parallel compiled region at a time: Numba's workqueue threading layer
# aborts the process when two Python threads enter parallel code at once.
_parallel_lock = threading.RLock()


@contextmanager
def parallel_region():
    """Hold the process-wide lock around a call into a parallel compiled kernel."""
    with _parallel_lock:
        yield
