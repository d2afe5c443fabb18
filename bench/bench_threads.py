"""Thread scaling: the same check on 1 and on 2 Numba threads.

The dense engine on M and the generic engine on the ``mlp`` case. BLAS is
limited to one thread in both runs (threadpoolctl), so only Numba's thread
count changes. Thread settings are restored in ``finally``. The results must be the
same bit for bit whatever the thread count: asserted here in every run.

On a shared machine the two tests see different background load; the second
one therefore also alternates 1-thread and 2-thread runs and records the
median and the fastest time of each (``interleaved_*`` in ``extra_info``).
"""

from __future__ import annotations

import time

import numba
import numpy as np
import pytest

import fastgrad
from benchkit import blas_limit, case_for, dense_engine_inputs, record, rounds, timed

_results: dict[tuple[str, int], tuple[float, np.ndarray]] = {}

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads")


def _has_dense_engine() -> bool:
    try:
        from fastgrad import _dense_engine
    except ImportError:
        return False
    return hasattr(_dense_engine, "perturbed_cost_differences")


def _run_with_threads(benchmark, threads: int, function, n_rounds: int):
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(threads)
        with blas_limit(1):
            function()  # warm up on this thread count
            return timed(benchmark, function, n_rounds)
    finally:
        numba.set_num_threads(saved)


def interleaved_speedup(function, n_rounds: int) -> dict:
    """Alternate 1-thread and 2-thread runs, so both see the same background load.

    Returns the median and the fastest time of each, and the two speed-ups.
    """
    saved = numba.get_num_threads()
    times: dict[int, list[float]] = {1: [], 2: []}
    try:
        with blas_limit(1):
            for _ in range(n_rounds):
                for threads in (1, 2):
                    numba.set_num_threads(threads)
                    started = time.perf_counter()
                    function()
                    times[threads].append(time.perf_counter() - started)
    finally:
        numba.set_num_threads(saved)
    one, two = np.asarray(times[1]), np.asarray(times[2])
    return {
        "interleaved_median_1_thread": float(np.median(one)), "interleaved_median_2_threads": float(np.median(two)),
        "interleaved_min_1_thread": float(one.min()), "interleaved_min_2_threads": float(two.min()),
        "interleaved_speedup_median": float(np.median(one) / np.median(two)),
        "interleaved_speedup_min": float(one.min() / two.min()),
    }


def _scaling(benchmark, key: str, case, contender: str, threads: int, timing, function) -> None:
    approx = np.asarray(timing.result.approx)
    _results[(key, threads)] = (timing.seconds, approx)
    extra = {"threads": threads}
    other = _results.get((key, 3 - threads))
    if other is not None:
        one = timing.seconds if threads == 1 else other[0]
        two = timing.seconds if threads == 2 else other[0]
        extra["speedup_1_to_2_threads"] = one / two
        # Bit-for-bit the same numbers whatever the thread count.
        np.testing.assert_array_equal(approx, other[1])
        extra.update(interleaved_speedup(function, rounds(9)))
    record(
        benchmark, case=case, contender=f"{contender} ({threads} thread{'s' if threads > 1 else ''})",
        kind="full", seconds=timing.seconds, components_timed=case.n_params,
        baseline_seconds_per_component=None, **extra,
    )


@pytest.mark.skipif(not _has_dense_engine(), reason="fastgrad._dense_engine is not available yet")
@pytest.mark.parametrize("threads", [1, 2])
def test_dense_engine_threads(benchmark, threads, problem_of):
    case = case_for("M")
    problem = problem_of(case)
    benchmark.group = "threads"

    def run():
        return problem.net.gradcheck(problem.params, problem.X, problem.Y, engine="dense", progress=False)

    timing = _run_with_threads(benchmark, threads, run, rounds(9))
    assert timing.result.passed, str(timing.result)
    _scaling(benchmark, "dense", case, "dense", threads, timing, run)


@pytest.mark.parametrize("threads", [1, 2])
def test_generic_engine_threads(benchmark, threads, problem_of):
    case = case_for("mlp")
    problem = problem_of(case)
    benchmark.group = "threads"

    def run():
        return fastgrad.gradcheck(
            problem.cost, problem.grad, problem.theta, args=problem.args, layout=problem.layout, progress=False,
        )

    timing = _run_with_threads(benchmark, threads, run, rounds(5))
    assert timing.result.passed, str(timing.result)
    _scaling(benchmark, "generic", case, "generic", threads, timing, run)


@pytest.mark.skipif(not _has_dense_engine(), reason="fastgrad._dense_engine is not available yet")
@pytest.mark.parametrize("threads", [1, 2])
def test_dense_kernel_threads(benchmark, threads, problem_of):
    """The compiled dense engine alone: every component of M in one call, no Python around it.

    ``DenseNet.gradcheck`` adds back-prop, step choice and the report, which run
    in one thread; this row shows how the parallel part itself scales.
    """
    from types import SimpleNamespace

    from fastgrad import _dense_engine

    case = case_for("M")
    problem = problem_of(case)
    benchmark.group = "threads"
    base, indices, points, _ = dense_engine_inputs(case, problem.net.pack(problem.params), problem.X, problem.Y)

    def evaluate(indices, points):
        return _dense_engine.cost_differences(base, indices, points)

    def run():
        deltas, kinks, status = evaluate(indices, points)
        return SimpleNamespace(approx=deltas.ravel(), passed=not status.any())

    timing = _run_with_threads(benchmark, threads, run, rounds(9))
    assert timing.result.passed
    _scaling(benchmark, "dense-kernel", case, "dense kernel", threads, timing, run)
