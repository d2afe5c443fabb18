"""Network M with smooth hidden layers (tanh, sigmoid): the dense engine against the naive loop, same run.

A change in one unit of a tanh or sigmoid layer moves every unit downstream,
so the ReLU fast path does not apply; the engine's series path serves these
networks (``docs/dense_engine.md``, section 3). Contenders per case:

* ``naive``: the course loop, timed on a spread subset and extrapolated (the
  faster of BLAS on 1 thread and on its default threads), the baseline;
* ``dense kernel``: ``fastgrad._dense_engine.cost_differences`` on every
  component at ``theta +- s`` (the engine alone, what a check's first pass costs);
* ``dense``: ``DenseNet.gradcheck(engine="dense")``, the whole check (the
  driver's analysis of the differences included).

In a smoke run the cases are the small variants (a few dozen parameters), and
both contenders' derivatives are asserted to agree with the naive loop.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from bench_dense import assert_matches_naive
from benchkit import FULL, case_for, dense_engine_inputs, measure_naive, record, rounds, timed

HIDDEN = ["tanh", "sigmoid"]

_problems: dict[str, object] = {}
_baselines: dict[str, object] = {}


def smooth_case(hidden: str):
    """Case M (or its small variant) with ``hidden`` hidden layers."""
    case = case_for("M")
    name = case.name.replace("M", f"M-{hidden}", 1)
    return replace(case, name=name, hidden=hidden, description=f"{case.description}, {hidden} hidden layers")


def smooth_problem(case):
    """net, params, X, Y, theta and the back-prop gradient (``NetworkCase.problem`` knows ReLU / tanh only)."""
    if case.name not in _problems:
        net = case.net()
        X, Y = case.data()
        params = case.params()
        grads = net.gradients(params, X, Y)
        _problems[case.name] = SimpleNamespace(
            net=net, params=params, X=X, Y=Y, theta=net.pack(params),
            grad=net.pack({name[1:]: block for name, block in grads.items()}),
        )
    return _problems[case.name]


def smooth_baseline(case):
    if case.name not in _baselines:
        _baselines[case.name] = measure_naive(case, smooth_problem(case), repeats=3 if FULL else 1)
    return _baselines[case.name]


@pytest.mark.parametrize("hidden", HIDDEN)
def test_smooth_naive(benchmark, hidden):
    case = smooth_case(hidden)
    baseline = smooth_baseline(case)
    benchmark.group = f"dense {case.name}"
    timing = timed(benchmark, lambda: baseline.approx, 1, warmup=0)  # measured once, by measure_naive
    record(
        benchmark, case=case, contender="naive", kind="extrapolated",
        seconds=baseline.seconds_per_component * baseline.indices.size, components_timed=baseline.indices.size,
        baseline_seconds_per_component=baseline.seconds_per_component, baseline=True,
        by_blas_threads=baseline.by_blas_threads,
    )
    assert timing.result is baseline.approx


@pytest.mark.parametrize("hidden", HIDDEN)
def test_smooth_dense_kernel(benchmark, hidden):
    """The engine alone: every component at theta +- s (s = 1e-5 max(1, |theta_k|))."""
    from fastgrad import _dense_engine

    case = smooth_case(hidden)
    problem = smooth_problem(case)
    baseline = smooth_baseline(case)
    benchmark.group = f"dense {case.name}"
    base, indices, points, step = dense_engine_inputs(case, problem.theta, problem.X, problem.Y)
    _dense_engine.cost_differences(base, indices[:2], points[:2])  # load the kernels outside the timing

    timing = timed(benchmark, lambda: _dense_engine.cost_differences(base, indices, points), rounds(7))
    record(
        benchmark, case=case, contender="dense kernel", kind="full", seconds=timing.seconds,
        components_timed=case.n_params, baseline_seconds_per_component=baseline.seconds_per_component,
    )
    deltas, kinks, status = timing.result
    assert not status.any() and not kinks.any()
    approx = (deltas[:, 0] - deltas[:, 1]) / (2 * step)
    scale = np.linalg.norm(problem.grad) + np.linalg.norm(approx)
    assert np.linalg.norm(approx - problem.grad) <= 1e-7 * scale
    naive = baseline.approx
    np.testing.assert_allclose(approx[baseline.indices], naive, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("hidden", HIDDEN)
def test_smooth_dense_check(benchmark, hidden):
    """The whole check through DenseNet.gradcheck (driver included)."""
    case = smooth_case(hidden)
    problem = smooth_problem(case)
    baseline = smooth_baseline(case)
    benchmark.group = f"dense {case.name}"

    def run():
        return problem.net.gradcheck(problem.params, problem.X, problem.Y, engine="dense", progress=False)

    problem.net.gradcheck(problem.params, problem.X, problem.Y, indices=[0, case.n_params - 1], engine="dense")
    timing = timed(benchmark, run, rounds(5))
    record(
        benchmark, case=case, contender="dense", kind="full", seconds=timing.seconds,
        components_timed=case.n_params, baseline_seconds_per_component=baseline.seconds_per_component,
    )
    report = timing.result
    assert report.passed, str(report)
    assert_matches_naive(report, baseline, report.cost_value)
