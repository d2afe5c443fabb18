"""Gradient checks on a Dask cluster: :class:`DaskEngine`.

``client=`` on :func:`fastgrad.gradcheck`, :func:`fastgrad.numerical_gradient`,
:func:`fastgrad.estimate_gradient` and :meth:`fastgrad.DenseNet.gradcheck`
wraps the check's local engine in a :class:`DaskEngine`. The driver
(``fastgrad._driver.run_check``) is unchanged: it asks the engine to evaluate
rows (a component with the points it takes), and the engine

* ships an :class:`EngineRecipe` (a picklable factory and its data: the cost,
  theta, args, or the network's data) to every worker once, as one scattered
  blob of bytes;
* splits each ``evaluate`` call into shards sized by time (about
  ``shard_seconds`` of work each, from the measured cost of a row), submits
  one task per shard, and writes each shard's rows into place as tasks
  complete;
* on each worker, builds the same local engine from the recipe once per check
  (cached per worker, keyed by a token) and calls its ``evaluate`` on the
  shard's rows.

A row's values do not depend on the rows evaluated with it (every engine's
contract), so the report is bit-identical to the in-process check whatever the
shard size, the number of workers or the order in which tasks complete.
``costs`` and ``example_terms`` (a few whole evaluations: noise, kinks,
directions) run on the client with the local engine.

Faults: a worker that dies mid-check has its tasks rerun elsewhere by the
scheduler; a task that raises is retried ``retries`` times, then the user's
exception is raised on the client (with fastgrad's note naming the component).
Ctrl-C: the driver stops between ``evaluate`` calls (each aims at
``CALL_SECONDS``) and raises ``CheckInterrupted`` with a partial report; a
``KeyboardInterrupt`` inside ``evaluate`` (a second Ctrl-C) cancels the
outstanding tasks and is re-raised.

Dask is imported only when a client is given; without it, ``client=`` fails
with one line naming the ``fastgrad[distributed]`` extra.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fastgrad.engines import Cost, Engine, EngineTraits, GenericEngine

__all__ = [
    "DaskEngine",
    "EngineRecipe",
    "ClusterError",
    "require_distributed",
    "check_client",
    "generic_recipe",
    "dense_recipe",
    "on_cluster",
]

#: What to install when Dask's distributed scheduler is missing.
EXTRA = "pip install 'fastgrad[distributed]'"
#: Seconds to wait for a cluster's first worker before giving up.
WORKER_TIMEOUT = 30.0
#: Seconds of work aimed at per shard (one task): long against the scheduler's
#: overhead of a few milliseconds per task, short for load balance.
SHARD_SECONDS = 2.0
#: Seconds of cluster work the driver aims at per ``evaluate`` call: the driver
#: stops between calls on Ctrl-C, and every call waits for its slowest shard.
CALL_SECONDS = 10.0
#: The most a call grows over the previous one (in-process engines: 4).
CALL_GROWTH = 100.0

#: Times one check scatters its cost again after a dead worker took the only
#: copy with it (its tasks then come back cancelled), before giving up.
MAX_RESCUES = 3
#: Engines kept per worker process (older checks' engines are dropped).
_WORKER_CACHE_SIZE = 4


class ClusterError(RuntimeError):
    """The cluster cannot run the check (no workers, or the workers cannot load the cost)."""


def require_distributed():
    """Import ``distributed``, or raise one line naming the extra to install.

    Returns
    -------
    module
        The ``distributed`` package.

    Raises
    ------
    ImportError
        If Dask's distributed scheduler is not installed.
    """
    try:
        import distributed
    except ImportError:
        raise ImportError(
            f"client= (and the CLI's --workers/--scheduler) needs Dask's distributed scheduler: {EXTRA}"
        ) from None
    return distributed


def check_client(client: object) -> None:
    """Validate ``client=`` in Python, before anything is evaluated.

    Raises
    ------
    ImportError
        If ``distributed`` is not installed.
    TypeError
        If ``client`` is not a ``distributed.Client``.
    ClusterError
        If the client is closed.
    """
    distributed = require_distributed()
    if not isinstance(client, distributed.Client):
        raise TypeError(
            f"client must be a distributed.Client (client = distributed.Client(address)), got {type(client).__name__}."
        )
    if client.status not in ("running", "connecting", "newly-created"):
        raise ClusterError(f"The Dask client is {client.status}: pass a running distributed.Client.")


# --------------------------------------------------------------------------- #
# Recipes: how a worker builds the local engine
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class EngineRecipe:
    """A picklable factory and the data it needs: ``factory(**data)`` is the local engine.

    ``factory`` must be importable on the workers (a module-level function of
    fastgrad); ``data`` is pickled with cloudpickle, so costs defined in
    ``__main__`` or as lambdas travel by value.
    """

    factory: Callable[..., Engine]
    data: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Engine:
        return self.factory(**self.data)


@dataclass(frozen=True)
class _ImportedFunction:
    """A compiled cost sent by name: the worker imports the same dispatcher.

    Numba pickles a dispatcher by value (its Python source, rebuilt as a new
    dispatcher), and the rebuilt one compiles afresh on every worker, whatever
    ``cache=True`` says; imported by name, it loads from the worker's cache.
    """

    module: str
    qualname: str

    def resolve(self) -> Callable:
        import importlib

        target: Any = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            target = getattr(target, part)
        return target


def _by_name(function: Callable) -> Callable | _ImportedFunction:
    """``function`` itself, or its name when it is a compiled function importable from a module."""
    module = getattr(function, "__module__", None)
    qualname = getattr(getattr(function, "py_func", None), "__qualname__", None)
    if not module or module == "__main__" or not qualname or "<locals>" in qualname:
        return function
    try:
        found = _ImportedFunction(module, qualname).resolve()
    except Exception:
        return function
    return _ImportedFunction(module, qualname) if found is function else function


def _build_generic(cost: Cost, theta: np.ndarray, complex_step: bool) -> Engine:
    if isinstance(cost.function, _ImportedFunction):
        cost = replace(cost, function=cost.function.resolve())
    return GenericEngine(cost, theta, complex_step=complex_step)


def generic_recipe(cost: Cost, theta: np.ndarray, complex_step: bool) -> EngineRecipe:
    """The recipe of a :class:`~fastgrad.engines.GenericEngine` (any cost ``J(theta, *args)``)."""
    if cost.compiled:
        cost = replace(cost, function=_by_name(cost.function))
    return EngineRecipe(_build_generic, {"cost": cost, "theta": theta, "complex_step": complex_step})


def _build_dense(args: tuple, theta: np.ndarray, cost_value: float, layout, forward: bool,
                 complex_step: bool, numpy: bool = False) -> Engine:
    from fastgrad.engines import DenseEngine, DenseForwardEngine, NumpyDenseEngine

    if numpy:
        return NumpyDenseEngine(args, theta, cost_value, layout)
    if forward:
        return DenseForwardEngine(args, theta, cost_value, layout, complex_step=complex_step)
    return DenseEngine(args, theta, cost_value, layout)


def dense_recipe(args: tuple, theta: np.ndarray, cost_value: float, layout, *, forward: bool,
                 complex_step: bool = False, numpy: bool = False) -> EngineRecipe:
    """The recipe of a dense network's engine (the structured kernel, a forward pass per point, or,
    for a small network, ``fastgrad._dense_numpy``: the workers then run the client's NumPy engine)."""
    return EngineRecipe(_build_dense, {"args": args, "theta": theta, "cost_value": cost_value, "layout": layout,
                                       "forward": forward, "complex_step": complex_step, "numpy": numpy})


# --------------------------------------------------------------------------- #
# The worker side
# --------------------------------------------------------------------------- #

_worker_engines: OrderedDict[str, Engine] = OrderedDict()
_worker_lock = threading.Lock()


class _CompileCounter:
    """Counts Numba compilations (cache misses) while a worker builds and first runs an engine."""

    def __init__(self) -> None:
        from numba.core import event

        class Listener(event.Listener):
            def on_start(inner, ev) -> None:
                self.count += 1

            def on_end(inner, ev) -> None:
                pass

        self.count = 0
        self.listener = Listener()

    @contextmanager
    def counting(self) -> Iterator[None]:
        from numba.core import event

        with event.install_listener("numba:compile", self.listener):
            yield


def _worker_engine(token: str, payload: bytes) -> tuple[Engine, bool]:
    """This worker's engine for the check ``token`` (built from ``payload`` on first use)."""
    with _worker_lock:
        engine = _worker_engines.get(token)
        if engine is not None:
            _worker_engines.move_to_end(token)
            return engine, False
        import cloudpickle

        try:
            recipe = cloudpickle.loads(payload)
        except Exception as exc:
            raise ClusterError(
                f"A Dask worker could not load the cost ({type(exc).__name__}: {exc}): install the module that "
                "defines it on the workers (same environment as the client), or send it with "
                "client.upload_file('module.py')."
            ) from None
        engine = recipe.build()
        _worker_engines[token] = engine
        while len(_worker_engines) > _WORKER_CACHE_SIZE:
            _worker_engines.popitem(last=False)
        return engine, True


def _forget(token: str) -> None:
    with _worker_lock:
        _worker_engines.pop(token, None)


def _evaluate_shard(token: str, payload: bytes, indices: np.ndarray, points: np.ndarray):
    """One task: ``(values, kinks, status, seconds, setup)`` for a shard's rows.

    ``setup`` is None, or ``(worker address, seconds, Numba compilations)``
    when this task built the worker's engine (and ran it first).
    """
    import numba

    from fastgrad._threads import blas_on_one_thread

    try:
        from distributed import get_worker

        worker = get_worker()
        address, threads = worker.address, max(1, int(worker.state.nthreads))
    except Exception:  # run outside a worker (tests of this function)
        address, threads = "local", 1
    counter = _CompileCounter()
    began = time.perf_counter()
    previous = numba.get_num_threads()
    # One worker thread, one core: Numba's prange threads follow the worker's share.
    numba.set_num_threads(min(previous, threads))
    try:
        with blas_on_one_thread(), counter.counting():
            engine, built = _worker_engine(token, payload)
            setup_done = time.perf_counter()
            values, kinks, status = engine.evaluate(indices, points)
    finally:
        numba.set_num_threads(previous)
    finished = time.perf_counter()
    setup = (address, finished - began, counter.count) if built else None
    # A shard that compiled says nothing about the cost of a row.
    seconds = None if counter.count else finished - setup_done
    return np.asarray(values, np.float64), np.asarray(kinks, np.uint8), np.asarray(status, np.uint8), seconds, setup


# --------------------------------------------------------------------------- #
# The client side
# --------------------------------------------------------------------------- #


class DaskEngine:
    """An engine that evaluates rows on a Dask cluster (see the module docstring).

    Parameters
    ----------
    client : distributed.Client
        The cluster to use.
    recipe : EngineRecipe
        How the workers build the local engine.
    local : Engine, optional
        The same engine built on the client (``recipe.build()`` by default):
        it gives theta, ``J(theta)``, the traits, and runs ``costs`` and
        ``example_terms``.
    shard_seconds : float
        Seconds of work aimed at per task.
    shard_size : int, optional
        Fixed rows per task (overrides ``shard_seconds``; for tests and tuning).
    retries : int
        Times Dask reruns a task that raised (a worker that dies is handled by
        the scheduler whatever this is).
    progress : bool or None
        A progress bar of the rows done across the cluster (None: on a terminal).
    worker_timeout : float, optional
        Seconds to wait for the cluster's first worker (default ``WORKER_TIMEOUT``).

    Attributes
    ----------
    setups : list of tuple
        ``(worker address, seconds, Numba compilations)`` for each worker that
        built the engine; compilations are 0 where kernels came from the cache.
    tasks : int
        Tasks submitted so far.
    """

    def __init__(
        self, client, recipe: EngineRecipe, *, local: Engine | None = None, shard_seconds: float = SHARD_SECONDS,
        shard_size: int | None = None, retries: int = 1, progress: bool | None = None,
        worker_timeout: float | None = None,
    ) -> None:
        import cloudpickle

        check_client(client)
        if shard_size is not None and (isinstance(shard_size, bool) or not isinstance(shard_size, int)
                                       or shard_size < 1):
            raise ValueError(f"shard_size must be a positive number of rows per task, got {shard_size!r}.")
        self.client = client
        self.local = recipe.build() if local is None else local
        self.theta = self.local.theta
        self.cost_value = self.local.cost_value
        self.shard_seconds = float(shard_seconds)
        self.shard_size = shard_size
        self.retries = int(retries)
        self.progress = progress if progress is not None else bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.setups: list[tuple[str, float, int]] = []
        self.tasks = 0
        self._seconds_per_row: float | None = None
        self._token = uuid.uuid4().hex
        self._calls = 0
        self._announced = False
        timeout = WORKER_TIMEOUT if worker_timeout is None else worker_timeout
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ClusterError(
                f"The Dask cluster at {client.scheduler.address} has no workers (waited {timeout:g} s): start "
                "some (dask worker ADDRESS, or LocalCluster(n_workers=...)) or pass another client."
            ) from None
        try:
            payload = cloudpickle.dumps(recipe)
        except Exception as exc:
            raise TypeError(
                f"The cost or its args cannot be sent to Dask workers ({type(exc).__name__}: {exc}): "
                "pass a function and args that can be pickled (no open files, locks or sockets)."
            ) from None
        self._payload_bytes = payload  # kept: scattered again if a dying worker loses it
        self._payload = client.scatter(payload, broadcast=True, hash=False)
        self._rescues = 0
        traits = self.local.traits
        # The first call is the probe (one row per worker); the driver then grows
        # its calls quickly (each short call costs a round trip) to about
        # CALL_SECONDS of cluster work.
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        self.traits = replace(traits, name=f"{traits.name}, on Dask", first_chunk=max(2, workers),
                              chunk_seconds=CALL_SECONDS, chunk_growth=CALL_GROWTH)

    # -- the protocol ------------------------------------------------------- #

    def costs(self, points: np.ndarray) -> np.ndarray:
        return self.local.costs(points)

    def example_terms(self, point: np.ndarray) -> np.ndarray:
        return self.local.example_terms(point)

    def evaluate(self, indices: np.ndarray, points: np.ndarray):
        """Evaluate rows on the cluster; results in row order, whatever order tasks finish in."""
        from distributed import as_completed

        n = indices.size
        values = np.empty(points.shape, dtype=np.float64)
        kinks = np.zeros(n, dtype=np.uint8)
        status = np.zeros(n, dtype=np.uint8)
        if n == 0:
            return values, kinks, status
        if n == 1:
            # One row is one task wherever it runs: the client's own engine saves
            # the round trip (the noise lines, refinement of a lone component).
            return self.local.evaluate(indices, points)
        self._calls += 1
        workers = max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))
        pending: dict[Any, tuple[int, int]] = {}
        bar = _Bar(self.progress, n, f"{workers} Dask workers")
        start = 0
        try:
            with _second_interrupt_raises():
                while self.shard_size is None and self._seconds_per_row is None and start < n:
                    # Probe: one row per worker gives the cost of a row on the cluster
                    # (again, if every probe compiled kernels on its worker).
                    stop = min(n, start + workers)
                    for row in range(start, stop):
                        pending[self._submit(indices, points, row, row + 1)] = (row, row + 1)
                    self._collect(as_completed(list(pending)), pending, values, kinks, status, bar, indices, points)
                    start = stop
                size = self._shard_rows(n - start, workers)
                futures = []
                for first in range(start, n, size):
                    last = min(n, first + size)
                    future = self._submit(indices, points, first, last)
                    pending[future] = (first, last)
                    futures.append(future)
                self._collect(as_completed(futures), pending, values, kinks, status, bar, indices, points)
        except BaseException:
            # Ctrl-C or an error: stop the rest of this call's tasks.
            if pending:
                self.client.cancel(list(pending))
            raise
        finally:
            bar.close()
        self._announce()
        return values, kinks, status

    # -- helpers ------------------------------------------------------------ #

    def _submit(self, indices, points, first: int, last: int):
        self.tasks += 1
        key = f"fastgrad-evaluate-{self._token[:12]}-{self._calls}-{first}-{self._rescues}"
        return self.client.submit(_evaluate_shard, self._token, self._payload, indices[first:last],
                                  np.ascontiguousarray(points[first:last]), key=key, retries=self.retries,
                                  pure=False)

    def _shard_rows(self, n: int, workers: int) -> int:
        """Rows per task: about ``shard_seconds`` of work, and every worker gets at least one task."""
        if self.shard_size is not None:
            return self.shard_size
        even = max(1, math.ceil(n / workers))
        per_row = self._seconds_per_row or 0.0
        by_time = int(self.shard_seconds / per_row) if per_row > 0 else even
        if by_time >= even:
            return even
        # Equal shards, a multiple of the workers in number: no worker is left
        # with a remainder shard after the others have finished.
        rounds = math.ceil(n / (workers * max(1, by_time)))
        return max(1, math.ceil(n / (workers * rounds)))

    def _collect(self, completed, pending, values, kinks, status, bar, indices, points) -> None:
        rows = 0
        seconds = 0.0
        for future in completed:
            first, last = pending[future]
            try:
                v, k, s, elapsed, setup = future.result()
            except Exception as exc:
                if _lost_with_a_worker(exc) and self._rescues < MAX_RESCUES:
                    # A worker died holding the only copy of data this task needed (the
                    # scattered cost, when the broadcast had not reached every worker):
                    # the scheduler cancels the task. Scatter again and resubmit the shard.
                    del pending[future]
                    self._rescue()
                    again = self._submit(indices, points, first, last)
                    pending[again] = (first, last)
                    completed.add(again)
                    continue
                _explain(exc, first, last)
                raise
            del pending[future]
            values[first:last], kinks[first:last], status[first:last] = v, k, s
            if elapsed is not None:
                rows += last - first
                seconds += elapsed
            if setup is not None:
                self.setups.append(setup)
            bar.update(last - first)
        if rows:
            self._seconds_per_row = seconds / rows

    def _rescue(self) -> None:
        """The cost scattered again (its first copy may be gone with a dead worker)."""
        self._rescues += 1
        self._payload = self.client.scatter(self._payload_bytes, broadcast=True, hash=False)

    def _announce(self) -> None:
        compiled = [(address, seconds) for address, seconds, count in self.setups if count]
        if compiled and not self._announced:
            self._announced = True
            shown = ", ".join(f"{address} ({seconds:.1f} s)" for address, seconds in compiled[:4])
            more = f" and {len(compiled) - 4} more" if len(compiled) > 4 else ""
            print(f"fastgrad: {len(compiled)} Dask worker(s) compiled kernels: {shown}{more} (cached on each "
                  "worker's disk for later checks, except compiled costs defined in __main__ or inside a function)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        """Release the scattered data and the workers' engines of this check."""
        try:
            self.client.cancel([self._payload])
            self.client.run(_forget, self._token)
        except Exception:  # the cluster may be gone already: nothing left to release
            pass

    def __enter__(self) -> "DaskEngine":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _lost_with_a_worker(exc: BaseException) -> bool:
    """Whether a task failed because the scheduler cancelled it (its input data lost with a worker)."""
    from concurrent.futures import CancelledError  # (distributed's FutureCancelledError is one)

    return isinstance(exc, CancelledError)


def _explain(exc: BaseException, first: int, last: int) -> None:
    """Add a note to a task's error saying which rows it had."""
    if type(exc).__name__ == "KilledWorker":
        exc.add_note(
            "fastgrad: Dask workers kept dying while evaluating this shard (the cost may crash its process: "
            "a segfault, or not enough memory on the workers)"
        )
    elif isinstance(exc, (ModuleNotFoundError, ImportError)) and "fastgrad" in str(exc):
        exc.add_note("fastgrad: install fastgrad on the Dask workers (the same version as on the client)")


class _Bar:
    """A tqdm bar of rows done across the cluster, shown for calls longer than a second."""

    def __init__(self, enabled: bool, total: int, where: str) -> None:
        self.enabled = enabled
        self.total = total
        self.where = where
        self.done = 0
        self.started = time.perf_counter()
        self.bar = None

    def update(self, step: int) -> None:
        self.done += step
        if not self.enabled:
            return
        if self.bar is None:
            if time.perf_counter() - self.started < 1.0:
                return
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, desc=f"rows on {self.where}", unit="row",
                            unit_scale=True, dynamic_ncols=True, leave=False)
        else:
            self.bar.update(step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def _second_interrupt_raises() -> Iterator[None]:
    """While a call waits on the cluster: a first Ctrl-C goes to the driver (stop after this
    call, partial report); a second one raises KeyboardInterrupt here at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous) or previous in (signal.default_int_handler,):
        yield  # no driver handler: Ctrl-C raises KeyboardInterrupt as usual
        return
    seen = []

    def handler(signum, frame):
        previous(signum, frame)
        if seen:
            raise KeyboardInterrupt
        seen.append(True)
        print("fastgrad: stopping after the tasks under way (Ctrl-C again to cancel them)", file=sys.stderr,
              flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def on_cluster(client, local: Engine, recipe: Callable[[], EngineRecipe], progress: bool | None
               ) -> Iterator[Engine]:
    """``local`` itself when ``client`` is None, else a :class:`DaskEngine` around it (closed afterwards)."""
    if client is None:
        yield local
        return
    engine = DaskEngine(client, recipe(), local=local, progress=progress)
    try:
        yield engine
    finally:
        engine.close()
