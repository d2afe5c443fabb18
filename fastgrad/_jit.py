"""``njit`` with an on-disk cache that survives damage, for every fastgrad kernel.

Numba's own cache (``numba.core.caching.FunctionCache``) trusts its files: an
index (``.nbi``) or data file (``.nbc``) that was overwritten, emptied,
truncated or swapped for another signature's makes every later run fail
(``EOFError``, ``UnpicklingError``, an LLVM "Never resolved value", a
``UnicodeDecodeError``) until someone deletes it; and with no writable cache
location at all, ``njit(cache=True)`` raises at import.

:func:`njit` is a drop-in for ``numba.njit``. With ``cache=True`` it installs
:class:`RobustCache` on the dispatcher, which

- writes each data file with a checksum and a digest of the overload it holds
  (signature, target, bytecode, and the source of the whole fastgrad package,
  so that a kernel whose inlined helpers or constants changed in another module
  is not served stale);
- treats any failure to read, verify or rebuild an entry as a cache miss,
  removes the function's index and data files, and lets Numba compile again
  (``fastgrad.dense`` prints its "compiling kernels for ..." notice then);
- treats a failure to write as "no cache" for that function;

and, when Numba finds no cache location, compiles in memory after one warning.

This relies on two private details of Numba (the dispatcher's ``_cache``
attribute and the ``IndexDataCacheFile`` methods), checked with Numba 0.68.1;
``tests/test_jit_cache.py`` fails if they change.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
from numba import prange
from numba.core import caching, registry, sigutils, typeinfer

from fastgrad._threads import parallel_region

# prange is re-exported so that a kernel module imports both from here in one line.
__all__ = ["njit", "prange", "specialise", "RobustCache", "CacheFallbackWarning"]

#: First bytes of every data file fastgrad writes; a file without them is dropped.
_MAGIC = b"fastgrad-numba-cache-1\n"

_PACKAGE_DIR = Path(__file__).resolve().parent
_package_digest: str | None = None
_digest_lock = threading.Lock()
_warned = False
_warn_lock = threading.Lock()
_set_up_lock = threading.RLock()


class CacheFallbackWarning(UserWarning):
    """fastgrad's kernels are compiled in memory: there is no usable on-disk cache."""


class _DamagedEntry(Exception):
    """A cache file that is not what fastgrad wrote for this overload."""


#: Modules whose source is part of every cache key besides those that compile
#: kernels (found by their import of this module): constants read by kernels.
_KERNEL_CONSTANTS = ("_dense_spec.py",)


def _kernel_sources() -> list[Path]:
    """The package's modules that define compiled code, or constants compiled into it."""
    found = []
    for path in sorted(_PACKAGE_DIR.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if path.name in _KERNEL_CONSTANTS or path.name == "_jit.py" or "_jit import" in text or "import _jit" in text:
            found.append(path)
    return found


def package_digest() -> str:
    """SHA-256 of the source of the package's kernel modules (computed once per process).

    Part of every cache key: Numba's own key covers a function's bytecode and
    its file's timestamp, not the helpers it inlined or the constants it read
    from other modules. Modules without compiled code (the CLI, the report)
    are left out, so that editing them does not recompile the kernels.
    """
    global _package_digest
    with _digest_lock:
        if _package_digest is None:
            hasher = hashlib.sha256(numba.__version__.encode())
            for path in _kernel_sources():
                hasher.update(path.name.encode())
                try:
                    hasher.update(path.read_bytes())
                except OSError:  # unreadable source: the name alone still keys it
                    pass
            _package_digest = hasher.hexdigest()
        return _package_digest


def _warn_once(message: str) -> None:
    global _warned
    with _warn_lock:
        if _warned:
            return
        _warned = True
    warnings.warn(message, CacheFallbackWarning, stacklevel=3)


class _CheckedCacheFile(caching.IndexDataCacheFile):
    """Numba's index and data files, with each data file checksummed and bound to its key."""

    def save(self, key: Any, data: Any) -> None:
        super().save(key, (_key_digest(key), data))

    def load(self, key: Any) -> Any:
        stored = super().load(key)
        if stored is None:
            return None
        if not (isinstance(stored, tuple) and len(stored) == 2 and stored[0] == _key_digest(key)):
            raise _DamagedEntry("the data file holds another overload")
        return stored[1]

    def _save_data(self, name: str, data: Any) -> None:
        payload = self._dump(data)
        with self._open_for_write(self._data_path(name)) as handle:
            handle.write(_MAGIC + hashlib.sha256(payload).digest() + payload)

    def _load_data(self, name: str) -> Any:
        with open(self._data_path(name), "rb") as handle:
            raw = handle.read()
        head = len(_MAGIC) + 32
        if len(raw) < head or not raw.startswith(_MAGIC):
            raise _DamagedEntry("not a fastgrad cache file (or truncated)")
        payload = raw[head:]
        if hashlib.sha256(payload).digest() != raw[len(_MAGIC) : head]:
            raise _DamagedEntry("checksum mismatch")
        return pickle.loads(payload)

    def remove_all(self) -> None:
        """Delete the index and every data file of this function (missing ones are fine)."""
        pattern = self._data_name_pattern.replace("{number:d}", "*")
        paths = [Path(self._index_path), *Path(self._cache_path).glob(pattern)]
        for path in paths:
            try:
                path.unlink()
            except OSError:  # already gone, or a read-only cache: the miss still stands
                pass


def _key_digest(key: Any) -> str:
    return hashlib.sha256(repr(key).encode()).hexdigest()


def _source_status(function: Callable) -> tuple[float, int] | None:
    """``(mtime, size)`` of the file holding the function's source (None if it has none)."""
    path = sys.executable if getattr(sys, "frozen", False) else function.__code__.co_filename
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime, status.st_size


class RobustCache(caching.FunctionCache):
    """A Numba function cache whose load never fails: a bad entry is a miss, and is removed.

    Numba's set-up of a function cache (finding a writable directory: a
    ``mkdir`` and a test file for every function) waits for the first look-up,
    so importing a kernel module costs one ``stat`` per kernel and a check
    sets up only the kernels it loads. The source file's time and size are
    still read at import: if the file changed before the set-up, the code in
    memory is no longer what the file holds, and the kernel is compiled in
    memory instead. With no usable cache location the first look-up warns
    once (:class:`CacheFallbackWarning`) and the kernel is compiled in memory.

    Parameters
    ----------
    py_func : callable
        The Python function of the dispatcher.
    """

    def __init__(self, py_func: Callable) -> None:  # noqa: D107 - Numba's own set-up waits for _set_up
        self._py_func = py_func
        self._name = repr(py_func)
        self._import_status = _source_status(py_func)
        self._ready: bool | None = None  # None: not set up yet; False: compiled in memory

    def _set_up(self) -> bool:
        """Numba's set-up, once; False when there is no usable cache location."""
        with _set_up_lock:
            if self._ready is None:
                try:
                    super().__init__(self._py_func)
                except RuntimeError as exc:  # Numba: "cannot cache function ...: no locator available"
                    self._ready = False
                    _warn_once(
                        f"fastgrad: no writable cache directory for compiled kernels ({exc}); compiling them "
                        "in memory, once per process (set NUMBA_CACHE_DIR to a writable directory to keep them)."
                    )
                else:
                    self._cache_file = _CheckedCacheFile(
                        cache_path=self._cache_path,
                        filename_base=self._impl.filename_base,
                        source_stamp=self._impl.locator.get_source_stamp(),
                    )
                    # Edited since the import: the stamp describes a source this process does not run.
                    self._ready = _source_status(self._py_func) == self._import_status
            return self._ready

    def __getattr__(self, name: str) -> Any:
        # Numba's attributes (_impl, _cache_path, _cache_file, _enabled) exist once set up.
        if name.startswith("__") or self.__dict__.get("_ready", False) is not None or not self._set_up():
            raise AttributeError(name)
        return object.__getattribute__(self, name)

    @property
    def cache_path(self) -> str | None:
        return self._cache_path if self._set_up() else None

    def flush(self) -> None:
        if self._set_up():
            super().flush()

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        if not self._set_up():
            return None
        try:
            return super().load_overload(sig, target_context)
        except Exception:
            # Whatever is wrong (garbage, empty, truncated, another overload's
            # data, an object file LLVM rejects), recompiling gives a correct
            # kernel; removing the files stops every later run paying for it.
            self._cache_file.remove_all()
            return None

    def save_overload(self, sig: Any, data: Any) -> None:
        if not self._set_up():
            return
        try:
            super().save_overload(sig, data)
        except Exception as exc:
            self.disable()
            _warn_once(
                f"fastgrad: cannot write compiled kernels to {self._cache_path} ({exc}); "
                "they stay in memory and are compiled again in the next process "
                "(set NUMBA_CACHE_DIR to a writable directory to keep them)."
            )

    def _index_key(self, sig: Any, codegen: Any) -> Any:
        # A variant (see specialise) shares its function's bytecode and cache
        # index with the others: its constants tell it apart.
        variant = getattr(self._py_func, "_fastgrad_variant", "")
        return (*super()._index_key(sig, codegen), package_digest(), variant)


def _install_cache(dispatcher: Any) -> None:
    dispatcher._cache = RobustCache(dispatcher.py_func)


class _ParallelDispatcher(registry.CPUDispatcher):
    """A dispatcher of a parallel kernel whose calls from Python hold :func:`parallel_region`.

    Calls from other compiled functions are linked directly and do not come
    through ``__call__``: the lock is taken once, by the outermost Python call.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with parallel_region():
            return super().__call__(*args, **kwargs)

    @property
    def without_lock(self) -> Callable:
        """The plain compiled call, for callers that already hold :func:`parallel_region`."""
        return registry.CPUDispatcher.__call__.__get__(self)


def _dispatcher(function: Callable, options: dict) -> Any:
    calls_parallel = options.pop("calls_parallel", False)
    if not (options.get("parallel") or calls_parallel) or numba.config.DISABLE_JIT:
        return numba.njit(**options)(function)
    # What numba.njit does, with the locking class (numba.core.decorators._jit).
    options = dict(options)
    local_types = dict(options.pop("locals", {}))
    options["nopython"] = True
    options.setdefault("boundscheck", None)
    return _ParallelDispatcher(py_func=function, locals=local_types, targetoptions=options)


def njit(signature_or_function: Any = None, *, cache: bool = False, **options: Any) -> Any:
    """``numba.njit``, where ``cache=True`` means fastgrad's damage-proof cache.

    Parameters
    ----------
    signature_or_function : callable, signature or list of signatures, optional
        As for ``numba.njit``: the function itself (bare ``@njit``), or
        signatures to compile eagerly.
    cache : bool
        Keep compiled code on disk in a :class:`RobustCache`. With no usable
        cache location the kernels are compiled in memory after one
        :class:`CacheFallbackWarning`.
    **options
        Passed to ``numba.njit`` (``parallel``, ``inline``, ...; never
        ``fastmath`` in fastgrad). With ``parallel=True``, calls from Python
        hold :func:`fastgrad._threads.parallel_region`; ``calls_parallel=True``
        does the same for a function that is not parallel itself but calls
        parallel kernels (the lock must be taken by the outermost Python call).

    Returns
    -------
    numba.core.dispatcher.Dispatcher or a decorator making one
    """
    if signature_or_function is None:
        signatures: list = []
    elif isinstance(signature_or_function, list):
        signatures = list(signature_or_function)
    elif sigutils.is_signature(signature_or_function):
        signatures = [signature_or_function]
    else:
        return njit(cache=cache, **options)(signature_or_function)

    def decorate(function: Callable) -> Any:
        # Created without signatures, so that the cache is in place before the
        # eager compiles below look it up.
        dispatcher = _dispatcher(function, dict(options))
        if not isinstance(dispatcher, numba.core.dispatcher.Dispatcher):  # NUMBA_DISABLE_JIT=1
            return dispatcher
        if cache:
            _install_cache(dispatcher)
        dispatcher._fastgrad_njit = (dict(options), cache, signatures)
        if signatures:
            with typeinfer.register_dispatcher(dispatcher):
                for signature in signatures:
                    dispatcher.compile(signature)
            dispatcher.disable_compile()
        return dispatcher

    return decorate


def specialise(namespace: dict, names: Any, constants: dict) -> dict:
    """Copies of a module's compiled functions whose globals hold other values of some constants.

    Numba reads a global as a compile-time constant and removes, before it
    types or inlines anything, the branches of an ``if`` on constants (a
    comparison of two of them, or one alone). A kernel written as ``if LOSS ==
    MSE: ...`` with ``LOSS`` a module global is compiled, in a copy made here
    with ``LOSS`` set to one loss, without the other losses' code: each check
    compiles (and loads from the cache) only what its network needs.

    Parameters
    ----------
    namespace : dict
        The module's globals.
    names : iterable of str
        Its compiled functions (made with :func:`njit`) to copy; each copy
        calls the copies of the others, and the module's own version of every
        other function.
    constants : dict
        Names and values of the constants in the copies' globals (ints, bools,
        strings: they also tell the copies apart in the on-disk cache).

    Returns
    -------
    dict
        The copies' globals: the copies by name, beside the module's other names.
    """
    variant = ",".join(f"{key}={value!r}" for key, value in sorted(constants.items()))
    copies = dict(namespace)
    copies.update(constants)
    for name in names:
        dispatcher = namespace[name]
        if not hasattr(dispatcher, "_fastgrad_njit"):  # NUMBA_DISABLE_JIT=1: plain Python functions
            function = dispatcher
            options, cache, signatures = {}, False, []
        else:
            function = dispatcher.py_func
            options, cache, signatures = dispatcher._fastgrad_njit
        clone = type(function)(function.__code__, copies, function.__name__, function.__defaults__,
                               function.__closure__)
        clone.__qualname__ = function.__qualname__
        clone.__doc__ = function.__doc__
        clone.__kwdefaults__ = function.__kwdefaults__
        clone._fastgrad_variant = variant
        if not hasattr(dispatcher, "_fastgrad_njit"):
            copies[name] = clone
        else:
            copies[name] = njit(signatures or None, cache=cache, **options)(clone)
    return copies
