"""Shared machinery of fastgrad's benchmark suite.

Two ways to run it:

* **smoke** (the default, part of ``python -m pytest``; pyproject sets
  ``--benchmark-disable``): every benchmark runs once on the ``small`` variant
  of its case and asserts that the contenders agree, so the suite never rots;
* **full**: ``FASTGRAD_BENCH_FULL=1 python -m pytest bench --benchmark-enable
  --benchmark-json=bench.json`` runs the reference sizes (S, M, L, ...) with
  repeated rounds; ``scripts/bench_report.py`` turns the JSON into
  ``docs/benchmarks.md`` and ``docs/throughput.png``.

Every timed contender records in ``benchmark.extra_info``: the case, its
number of parameters, the contender's name and kind (``full``,
``extrapolated`` from a timed subset of components, ``sampled`` or
``directional``: the last two do not check every component), the seconds for a
whole check, components per second and the speed-up over the naive course loop
measured in the same run (session fixture ``naive_baseline``).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from benchkit import FULL, NaiveBaseline, measure_naive, python_loop, spread_indices

# --------------------------------------------------------------------------- #
# Session-wide data and baselines (shared by every benchmark of one run)
# --------------------------------------------------------------------------- #

_problems: dict[str, object] = {}


@pytest.fixture(scope="session")
def problem_of():
    """``problem_of(case)``: the case's problem, built once per session."""

    def get(case):
        if case.name not in _problems:
            _problems[case.name] = case.problem()
        return _problems[case.name]

    return get


_baselines: dict[str, NaiveBaseline] = {}


@pytest.fixture(scope="session")
def naive_baseline(problem_of):
    """``naive_baseline(case)``: the course loop's cost per component, measured once per session."""

    def get(case) -> NaiveBaseline:
        if case.name not in _baselines:
            _baselines[case.name] = measure_naive(case, problem_of(case), repeats=3 if FULL else 1)
        return _baselines[case.name]

    return get


_python_baselines: dict[str, tuple[float, np.ndarray, np.ndarray]] = {}


@pytest.fixture(scope="session")
def python_baseline(problem_of):
    """``python_baseline(case)``: (seconds per component, indices, approx) of a plain Python loop."""

    def get(case):
        if case.name not in _python_baselines:
            problem = problem_of(case)
            idx = spread_indices(problem.theta.size, case.naive_components)
            python_loop(problem.cost, problem.theta, problem.args, idx[:2])  # compile outside the timing
            times = []
            for _ in range(3 if FULL else 1):
                started = time.perf_counter()
                approx = python_loop(problem.cost, problem.theta, problem.args, idx)
                times.append(time.perf_counter() - started)
            _python_baselines[case.name] = (float(np.median(times)) / idx.size, idx, approx)
        return _python_baselines[case.name]

    return get


@pytest.fixture(scope="session")
def numpy_matmul_gflops():
    """``numpy_matmul_gflops()``: numpy's float64 matrix-multiply rate now (GFLOP/s).

    Measured at each call, so a row compares with the rate under the same load.
    """
    n = 1024 if FULL else 256
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))

    def measure() -> float:
        a @ b
        times = []
        for _ in range(5):
            started = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - started)
        return 2.0 * n**3 / float(np.median(times)) / 1e9

    return measure


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record the machine and libraries beside the timings (read by scripts/bench_report.py)."""
    from benchkit import machine_description

    machine_info["fastgrad"] = machine_description()
