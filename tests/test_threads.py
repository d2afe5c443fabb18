"""Concurrent checks from several Python threads, and BLAS thread settings (issue 11, item 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from fastgrad import _threads
from fastgrad._threads import blas_on_one_thread, parallel_region, single_threaded_blas

ROOT = Path(__file__).resolve().parents[1]


def _blas_threads() -> dict[str, int]:
    return {info["filepath"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


@pytest.fixture
def blas_at_three():
    """Every loaded BLAS set to 3 threads (restored afterwards); skips without a BLAS."""
    if not _blas_threads():
        pytest.skip("no BLAS library loaded")
    with threadpool_limits(limits=3, user_api="blas"):
        yield _blas_threads()


def test_nested_use_restores_the_callers_settings(blas_at_three):
    with blas_on_one_thread():
        assert set(_blas_threads().values()) == {1}
        with blas_on_one_thread():
            assert set(_blas_threads().values()) == {1}
        assert set(_blas_threads().values()) == {1}
    assert _blas_threads() == blas_at_three


class _GlobalBlas:
    """A stand-in for threadpoolctl's controller over one BLAS whose setting is process-wide."""

    threads = 3
    calls: list = []

    def limit(self, limits, user_api):
        outer = self

        class Limiter:
            saved = _GlobalBlas.threads

            def restore_original_limits(self):
                _GlobalBlas.calls.append(("restore", threading.get_ident()))
                _GlobalBlas.threads = self.saved

        _GlobalBlas.calls.append(("limit", threading.get_ident()))
        _GlobalBlas.threads = limits
        return Limiter()


def test_overlapping_use_from_two_threads_restores_the_callers_settings(monkeypatch):
    # Fails before the fix: each thread saved the settings it found on entry,
    # so a thread entering while another held the limit saved "1 thread" and
    # restored it last, leaving BLAS on one thread for good.
    monkeypatch.setattr(_threads, "ThreadpoolController", _GlobalBlas)
    monkeypatch.setattr(_GlobalBlas, "threads", 3)
    monkeypatch.setattr(_GlobalBlas, "calls", [])
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first():
        with blas_on_one_thread():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with blas_on_one_thread():
            second_in.set()
            first_out.wait(10)
            seen.append(_GlobalBlas.threads)  # the owner left and restored: slower, never wrong

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert seen == [3]
    assert _GlobalBlas.threads == 3
    # Each limit is restored by the thread that set it.
    owners = {}
    for action, ident in _GlobalBlas.calls:
        if action == "limit":
            assert not owners, "limited twice"
            owners[ident] = True
        else:
            assert ident in owners
            owners.clear()
    assert not owners


def test_many_threads_leave_the_callers_settings(monkeypatch):
    monkeypatch.setattr(_threads, "ThreadpoolController", _GlobalBlas)
    monkeypatch.setattr(_GlobalBlas, "threads", 5)
    monkeypatch.setattr(_GlobalBlas, "calls", [])
    start = threading.Barrier(8)

    def work(i):
        start.wait(10)
        for _ in range(50):
            with blas_on_one_thread():
                with blas_on_one_thread():
                    pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert _GlobalBlas.threads == 5
    assert _threads._blas_limiter is None


def test_single_threaded_blas_restores_after_an_exception(blas_at_three):
    @single_threaded_blas
    def fails():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fails()
    assert _blas_threads() == blas_at_three


def test_parallel_region_is_reentrant_and_exclusive():
    inside = []
    with parallel_region():
        with parallel_region():  # the same thread nests without deadlock
            pass
        other = threading.Thread(target=lambda: (parallel_region().__enter__(), inside.append(True)))
        other.daemon = True
        other.start()
        other.join(0.2)
        assert inside == []  # another thread waits while the region is held
    other.join(5)
    assert inside == [True]


CONCURRENT = textwrap.dedent(
    """
    import threading
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits
    import fastgrad
    from fastgrad._cases import quadratic_cost, quadratic_gradient

    rng = np.random.default_rng(0)
    n = 200
    A = rng.standard_normal((n, n)); A = A @ A.T
    b = rng.standard_normal(n); theta = rng.standard_normal(n)
    grad = quadratic_gradient(theta, A, b)
    reference = fastgrad.estimate_gradient(quadratic_cost, theta, args=(A, b)).approx  # loads every library
    net = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
    params = net.init(seed=0)
    X = rng.standard_normal((4, 8)); Y = (rng.random((1, 8)) > 0.5).astype(float)
    dense_reference = {e: net.gradcheck(params, X, Y, engine=e).passed for e in ("dense", "generic")}
    threadpool_limits(limits=3, user_api="blas")
    before = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    results, errors = [], []
    def work():
        try:
            for _ in range(3):
                report = fastgrad.gradcheck(quadratic_cost, grad, theta, args=(A, b))
                approx = fastgrad.estimate_gradient(quadratic_cost, theta, args=(A, b)).approx
                results.append((report.passed, np.array_equal(approx, reference)))
                for engine, passed in dense_reference.items():
                    results.append((net.gradcheck(params, X, Y, engine=engine).passed == passed, True))
        except BaseException as exc:
            errors.append(repr(exc))
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    import numba
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    print("layer", numba.threading_layer())
    print("errors", errors)
    print("all passed and identical", len(results) == 36 and all(p and same for p, same in results))
    print("blas restored", before == after, before, after)
    """
)


def test_four_threads_checking_at_once_on_the_workqueue_layer():
    # Fails before the fix: the process aborted (SIGABRT, "workqueue threading
    # layer is terminating: Concurrent access"), and BLAS was left at 1 thread.
    # Covers gradcheck of a compiled cost and DenseNet.gradcheck on both engines.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING")}
    env.update(NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p))
    result = subprocess.run([sys.executable, "-c", CONCURRENT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    out = result.stdout
    assert "layer workqueue" in out
    assert "errors []" in out, out
    assert "all passed and identical True" in out, out
    assert "blas restored True" in out, out
