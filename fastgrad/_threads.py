"""Threads: one parallel kernel at a time, and BLAS to one thread while kernels run.

Parallel regions
    Numba's ``workqueue`` threading layer (the one Numba falls back to when TBB
    and OpenMP are missing) aborts the whole process ("Concurrent access has
    been detected") when two Python threads launch parallel kernels at once.
    Every call from Python into a parallel compiled kernel holds the
    process-wide lock of :func:`parallel_region` (``fastgrad._jit.njit(parallel=True)``
    dispatchers take it by themselves). A kernel already uses every core, so
    serialising them costs nothing; the result never depends on it.

BLAS
    Matrix products inside compiled kernels (``np.dot`` in Numba calls SciPy's
    OpenBLAS) and NumPy's norms of long vectors start BLAS threads of their own,
    which keep spinning for a while after each call. On a small machine they
    take the cores that Numba's ``prange`` workers need: a full check of a
    109,386-parameter network ran 1.5-3x slower. Every public entry point that
    runs kernels wraps its work in :func:`blas_on_one_thread`. The limit is
    process-wide: the thread that sets it saves the caller's settings and
    restores them exactly when it leaves, whatever other threads do meanwhile.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["blas_on_one_thread", "parallel_region", "single_threaded_blas", "threads_for"]

#: Work (roughly, floating-point operations) below which a kernel call runs on
#: one thread: a parallel region costs tens of microseconds, and far more when
#: another process has descheduled one of its threads (a busy machine, pytest -n).
SMALL_WORK = 2_000_000

F = TypeVar("F", bound=Callable)

# Re-entrant: a kernel call inside another's region (same thread) must not deadlock.
_parallel_lock = threading.RLock()


@contextmanager
def parallel_region() -> Iterator[None]:
    """Hold the process-wide lock around a call into a parallel compiled kernel.

    Re-entrant within a thread; other threads wait. Needed on Numba's
    ``workqueue`` layer, harmless on TBB and OpenMP.

    Examples
    --------
    >>> from fastgrad._threads import parallel_region
    >>> with parallel_region():
    ...     pass  # kernel(...)
    """
    with _parallel_lock:
        yield


@contextmanager
def threads_for(work: float) -> Iterator[None]:
    """Numba threads for a call of about ``work`` operations: one when too small to share.

    Results do not depend on the thread count (every kernel is bit-identical
    with any number), so this changes speed only. ``numba.set_num_threads`` is
    per calling thread; the previous count is restored.
    """
    import numba

    if work >= SMALL_WORK or numba.get_num_threads() == 1:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


# BLAS limit state, shared by all threads and guarded by _blas_lock. The
# thread that sets the limit (the owner) is the one that restores it: some
# BLAS builds ignore, or keep per thread, a setting made from another thread.
_blas_lock = threading.Lock()
_blas_depth = threading.local()
_blas_owner: int | None = None
_blas_limiter: Any = None
# threadpoolctl's view of the loaded libraries, and the state it was taken in.
_blas_controller: Any = None
_blas_controller_key: tuple = ()


def _controller() -> Any:
    """threadpoolctl's controller of the loaded libraries; the caller holds ``_blas_lock``.

    A scan lists every shared library of the process (about 10 ms once NumPy,
    SciPy and Numba are loaded), and a check entered the limit twice: the scan
    is kept and made again only when a module was imported since, because a
    new BLAS comes with an extension module (NumPy's, SciPy's, which Numba
    imports at its first compiled call), so one that Numba loaded since the
    last call is still limited. Setting and restoring the limit on a kept
    controller costs tens of microseconds.
    """
    global _blas_controller, _blas_controller_key
    controller = globals().get("ThreadpoolController") or __getattr__("ThreadpoolController")
    key = (controller, len(sys.modules))
    if _blas_controller is None or key != _blas_controller_key:
        _blas_controller, _blas_controller_key = controller(), key
    return _blas_controller


def __getattr__(name: str) -> Any:
    # threadpoolctl is imported at the first limit, not with this module (start-up, issue 13).
    if name == "ThreadpoolController":
        from threadpoolctl import ThreadpoolController

        globals()[name] = ThreadpoolController
        return ThreadpoolController
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _enter_blas() -> None:
    global _blas_owner, _blas_limiter
    with _blas_lock:
        depth = getattr(_blas_depth, "value", 0)
        if depth == 0 and _blas_limiter is None:
            _blas_limiter = _controller().limit(limits=1, user_api="blas")
            _blas_owner = threading.get_ident()
        _blas_depth.value = depth + 1


def _exit_blas() -> None:
    global _blas_owner, _blas_limiter
    with _blas_lock:
        _blas_depth.value -= 1
        if _blas_depth.value == 0 and _blas_owner == threading.get_ident():
            # Threads still inside run on with the caller's settings until one
            # of them (or a newcomer) enters afresh: slower at worst, never wrong.
            limiter, _blas_limiter, _blas_owner = _blas_limiter, None, None
            limiter.restore_original_limits()


@contextmanager
def blas_on_one_thread() -> Iterator[None]:
    """Limit every loaded BLAS library to one thread while the block runs.

    Safe to nest and to use from several threads at once: the caller's thread
    settings are saved by the thread that sets the limit and restored exactly
    by it when it leaves.
    """
    _enter_blas()
    try:
        yield
    finally:
        _exit_blas()


def single_threaded_blas(function: F) -> F:
    """Decorator: run ``function`` with BLAS on one thread (see module docstring)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with blas_on_one_thread():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

