"""How much memory a check needs, how much there is, and refusing what cannot fit.

A check that cannot fit should be refused before anything is allocated, in one
line saying what it needs and what is available, not end in a NumPy
``MemoryError`` traceback halfway through. The estimates are lower bounds
(arrays fastgrad certainly allocates), so nothing that fits is refused; what
slips through still raises ``MemoryError``, which the command reports the same
way.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence

import numpy as np

__all__ = [
    "NotEnoughMemoryError",
    "available_memory",
    "dense_check_bytes",
    "format_bytes",
    "npz_declared_bytes",
    "require_memory",
]

_FLOAT = 8  # bytes of a float64


class NotEnoughMemoryError(MemoryError):
    """A check refused before it started: it needs more memory than is available."""


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now, or None when unknown.

    ``MemAvailable`` of ``/proc/meminfo`` where there is one (Linux: the number
    psutil reports too, read without importing psutil, which costs a new
    process about 30 ms), else psutil when installed, else ``os.sysconf``
    (free pages only, an underestimate).
    """
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - not installed, or no answer on this platform
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: float) -> str:
    """``1.5 GB`` style (powers of 1000, as people read memory sizes)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


def dense_check_bytes(layer_sizes: Sequence[int], batch: int, n_threads: int = 1) -> int:
    """A lower bound of the memory a gradient check of a dense network allocates.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n0, n1, ..., nL]``.
    batch : int
        Number of examples ``m``.
    n_threads : int
        Numba threads (each keeps its own copy of theta and of the activations).

    Returns
    -------
    int
        Bytes: parameters, gradients and per-component results (about ten
        vectors of ``n_params``), data ``X`` and ``Y``, and the activations of
        every layer kept for the base point and per thread.
    """
    sizes = [int(n) for n in layer_sizes]
    n_params = sum(sizes[l + 1] * (sizes[l] + 1) for l in range(len(sizes) - 1))
    units = sum(sizes)
    per_params = 10 + n_threads  # theta, params, grads, analytic, approx, steps, noise, ... + per-thread theta
    per_activation = 2 + n_threads  # Z and A of the base point, and per-thread scratch
    return _FLOAT * (per_params * n_params + (sizes[0] + sizes[-1]) * batch + per_activation * units * batch)


def npz_declared_bytes(path: str) -> list[tuple[str, tuple[int, ...], int, int]]:
    """What each array of a ``.npz`` declares, read from the headers only.

    Returns
    -------
    list of (name, shape, declared bytes, bytes stored in the file)
        ``stored`` is the member's uncompressed size: an array that declares
        more than its member holds is truncated or lying about its shape.

    Raises
    ------
    ValueError
        A member whose header cannot be read.
    """
    found = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                header = member.tell()
            count = 1
            for d in shape:
                count *= int(d)
            found.append((info.filename[:-4], tuple(shape), count * dtype.itemsize, info.file_size - header))
    return found


def require_memory(needed: int, what: str, available: int | None = None) -> None:
    """Refuse work that needs more memory than is available.

    Parameters
    ----------
    needed : int
        Bytes the work needs (at least).
    what : str
        What needs it, for the message (``"the check of 1,000,010,010 parameters"``).
    available : int, optional
        Bytes available (default: :func:`available_memory`). Unknown: nothing is refused.

    Raises
    ------
    NotEnoughMemoryError
        One line naming ``what``, the bytes needed and the bytes available.
    """
    if available is None:
        available = available_memory()
    if available is not None and needed > available:
        raise NotEnoughMemoryError(
            f"not enough memory: {what} needs at least {format_bytes(needed)}, "
            f"and {format_bytes(available)} is available"
        )
