"""Helpers of fastgrad's benchmark suite (imported by ``bench/conftest.py`` and the ``bench_*.py`` files).

See ``bench/conftest.py`` for how to run the suite (smoke and full).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from fastgrad._cases import get_case

#: Full-size run (reference cases, repeated rounds) when set to "1".
FULL = os.environ.get("FASTGRAD_BENCH_FULL", "") == "1"


def case_for(name: str):
    """The reference case in a full run, its small variant in a smoke run."""
    return get_case(name, small=not FULL)


def rounds(full: int) -> int:
    """Rounds of a timed benchmark: ``full`` in a full run, 1 in a smoke run."""
    return full if FULL else 1


def spread_indices(size: int, count: int) -> np.ndarray:
    """``count`` components spread evenly over theta (every layer is represented)."""
    count = min(count, size)
    return np.unique(np.linspace(0, size - 1, count).round().astype(np.int64))


def blas_limit(threads: int | None):
    """A context manager limiting BLAS threads (a no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


@dataclass
class Timing:
    """Median seconds of a benchmarked call and the value it returned."""

    seconds: float
    result: object


def timed(benchmark, function: Callable[[], object], n_rounds: int, warmup: int = 1) -> Timing:
    """Benchmark ``function`` and return its median time and its (last) result.

    With ``--benchmark-disable`` pytest-benchmark calls it once without timing;
    the call is then timed here, so a smoke run still records seconds.
    """
    own: list[float] = []

    def call():
        started = time.perf_counter()
        value = function()
        own.append(time.perf_counter() - started)
        return value

    result = benchmark.pedantic(call, rounds=n_rounds, warmup_rounds=warmup if FULL else 0, iterations=1)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None and benchmark.enabled:
        seconds = float(stats.stats.median)
    else:
        seconds = float(np.median(own))
    return Timing(seconds, result)



@dataclass
class NaiveBaseline:
    """The naive course loop on one case: seconds per component at its best BLAS setting."""

    seconds_per_component: float
    by_blas_threads: dict
    indices: np.ndarray
    approx: np.ndarray

    def seconds_for(self, components: int) -> float:
        return self.seconds_per_component * components


def measure_naive(case, problem, repeats: int) -> NaiveBaseline:
    """Time the course loop on a spread subset of components, BLAS on 1 thread and on default threads.

    Every component costs the course loop the same (copy theta, rebuild the
    dict, two full forward passes), so the time per component extrapolates
    linearly. The loop is measured with BLAS limited to 1 thread and with the
    default number of threads, and the faster is the baseline: on these small
    matrices OpenBLAS threads can cost more than they give, and the naive
    loop is credited with its best setting.
    """
    from fastgrad.naive import naive_numerical_gradient

    idx = spread_indices(problem.theta.size, case.naive_components)
    by_threads = {}
    approx = None
    for threads in (1, None):
        times = []
        with blas_limit(threads):
            for _ in range(repeats):
                started = time.perf_counter()
                approx = naive_numerical_gradient(problem.net, problem.params, problem.X, problem.Y, indices=idx)
                times.append(time.perf_counter() - started)
        by_threads["1" if threads == 1 else "default"] = float(np.median(times)) / idx.size
    return NaiveBaseline(min(by_threads.values()), by_threads, idx, approx)


def python_loop(cost, theta: np.ndarray, args: tuple, indices: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """The course's loop over components around a cost function (here compiled): the generic baseline."""
    approx = np.empty(indices.size)
    for r, i in enumerate(indices):
        thetaplus = np.copy(theta)
        thetaplus[i] = thetaplus[i] + eps
        J_plus = cost(thetaplus, *args)
        thetaminus = np.copy(theta)
        thetaminus[i] = thetaminus[i] - eps
        J_minus = cost(thetaminus, *args)
        approx[r] = (J_plus - J_minus) / (2 * eps)
    return approx


def record(
    benchmark,
    *,
    case,
    contender: str,
    kind: str,
    seconds: float,
    components_timed: int,
    baseline_seconds_per_component: float | None,
    **extra,
) -> dict:
    """Fill ``benchmark.extra_info`` with the numbers every table row needs; returns it.

    ``seconds`` is the median time of what was run, on ``components_timed``
    components. ``extrapolated`` rows scale it to the whole theta; ``full``
    rows ran the whole theta; ``sampled`` and ``directional`` rows report what
    they ran (they do not check every component).
    """
    n_params = case.n_params
    if kind == "extrapolated":
        seconds_check = seconds * n_params / components_timed
    else:
        seconds_check = seconds
    covered = n_params if kind in ("full", "extrapolated") else components_timed
    info = {
        "case": case.name,
        "n_params": n_params,
        "contender": contender,
        "kind": kind,
        "components_timed": int(components_timed),
        "seconds_timed": seconds,
        "seconds_check": seconds_check,
        "components_per_s": components_timed / seconds if seconds > 0 else float("inf"),
        "components_covered": int(covered),
        "numba_threads": numba.get_num_threads(),
        "full_run": FULL,
    }
    if baseline_seconds_per_component is not None and kind in ("full", "extrapolated"):
        naive_seconds = baseline_seconds_per_component * n_params
        info["naive_seconds_check"] = naive_seconds
        info["speedup_vs_naive"] = naive_seconds / seconds_check if seconds_check > 0 else float("inf")
    info.update(extra)
    benchmark.extra_info.update(info)
    return info


def machine_description() -> dict:
    """The machine and libraries a run measured: CPU, cores, versions, threading layer, BLAS, load."""
    import platform
    import sys

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel ran yet in this process
        layer = "not initialised"
    blas = []
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            blas.append({
                key: pool.get(key) for key in ("user_api", "internal_api", "version", "num_threads", "architecture")
            } | {"library": os.path.basename(pool.get("filepath", ""))})
    except ImportError:
        config = np.show_config(mode="dicts")
        blas.append(config.get("Build Dependencies", {}).get("blas", {}))
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    try:
        import subprocess

        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "commit": commit,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "numba": numba.__version__,
        "numpy": np.__version__,
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": layer,
        "blas": blas,
        "load_average": load,
        "full_run": FULL,
    }


def dense_engine_inputs(case, theta: np.ndarray, X: np.ndarray, Y: np.ndarray):
    """``(base, indices, points, step)`` for the compiled dense engine on every component of a case.

    ``base = fastgrad._dense_engine.prepare(...)`` (no L2, no dropout), the
    points ``theta +- step`` with ``step = 1e-5 max(1, |theta_k|)``: the engine
    alone, without the check driver around it.
    """
    from fastgrad import _dense_engine
    from fastgrad._dense_spec import ACTIVATIONS, LOSSES

    sizes = np.asarray(case.layer_sizes, dtype=np.int64)
    output = "sigmoid" if case.loss == "binary_cross_entropy" else "linear"
    codes = np.array([ACTIVATIONS[case.hidden]] * (sizes.size - 2) + [ACTIVATIONS[output]], dtype=np.int64)
    X = np.ascontiguousarray(X, dtype=np.float64)
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    base = _dense_engine.prepare(sizes, codes, LOSSES[case.loss], 0.0, theta, X, Y, np.zeros((0, X.shape[1])))
    indices = np.arange(theta.size, dtype=np.int64)
    step = 1e-5 * np.maximum(1.0, np.abs(theta))
    points = np.stack([theta + step, theta - step], axis=1)
    return base, indices, points, step
