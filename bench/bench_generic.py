"""The generic compiled engine against a plain Python loop over the same cost function.

Cases of growing size from ``fastgrad._cases.GENERIC_CASES`` (a quadratic
form, logistic regression with its data in ``args``, a tanh network written as
a compiled cost of theta). Contenders:

* ``python-loop``: the course's loop (copy theta, nudge one component, call the
  cost twice) around the *same* compiled cost, timed on a spread subset of
  components and extrapolated: the baseline of these cases;
* ``generic``: ``fastgrad.gradcheck`` on every component (one compiled
  parallel kernel, no Python per component);
* ``generic-sampled`` and ``generic-directional``: quick modes, labelled as such.

Compile times (first call, new process) are in ``bench_compile.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad
from benchkit import FULL, case_for, python_loop, record, rounds, timed

GENERIC = ["quadratic", "logistic", "mlp"]


@pytest.mark.parametrize("name", GENERIC)
def test_python_loop(benchmark, name, problem_of, python_baseline):
    case = case_for(name)
    problem = problem_of(case)
    per_component, idx, reference = python_baseline(case)
    benchmark.group = f"generic {case.name}"

    timing = timed(benchmark, lambda: python_loop(problem.cost, problem.theta, problem.args, idx), rounds(3), warmup=0)
    record(
        benchmark, case=case, contender="python-loop", kind="full" if idx.size == case.n_params else "extrapolated",
        seconds=timing.seconds, components_timed=idx.size, baseline_seconds_per_component=per_component,
        baseline_name="python-loop", baseline=True,
    )
    np.testing.assert_array_equal(timing.result, reference)  # the same compiled cost, the same numbers
    np.testing.assert_allclose(timing.result, problem.grad[idx], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", GENERIC)
def test_generic_engine(benchmark, name, problem_of, python_baseline):
    case = case_for(name)
    problem = problem_of(case)
    per_component, idx, reference = python_baseline(case)
    benchmark.group = f"generic {case.name}"

    def run():
        return fastgrad.gradcheck(
            problem.cost, problem.grad, problem.theta, args=problem.args, layout=problem.layout, progress=False,
        )

    run()  # compile (or load from the cache) outside the timing
    timing = timed(benchmark, run, rounds(3))
    report = timing.result
    record(
        benchmark, case=case, contender="generic", kind="full", seconds=timing.seconds,
        components_timed=case.n_params, baseline_seconds_per_component=per_component,
        baseline_name="python-loop",
    )
    assert report.passed, str(report)
    assert report.indices.size == case.n_params
    # Same differences as the Python loop within rounding (different steps:
    # the loop uses the course's eps = 1e-7, the engine its default step).
    noise = 256 * np.finfo(np.float64).eps * max(1.0, abs(report.cost_value)) / 1e-7
    np.testing.assert_allclose(report.approx[idx], reference, rtol=1e-5, atol=noise)
    # And the same numbers bit for bit as fastgrad's own Python path (a plain callable).
    if not FULL:
        python_report = fastgrad.gradcheck(
            lambda theta: problem.cost(theta, *problem.args), problem.grad, problem.theta,
            layout=problem.layout, progress=False,
        )
        np.testing.assert_array_equal(python_report.approx, report.approx)


@pytest.mark.parametrize("name", GENERIC)
def test_generic_sampled(benchmark, name, problem_of):
    case = case_for(name)
    problem = problem_of(case)
    benchmark.group = f"generic {case.name}"
    per_block = 50 if FULL else 3

    def run():
        return fastgrad.gradcheck(
            problem.cost, problem.grad, problem.theta, args=problem.args, layout=problem.layout,
            sample=per_block, progress=False,
        )

    run()
    timing = timed(benchmark, run, rounds(5))
    report = timing.result
    record(
        benchmark, case=case, contender=f"generic-sampled ({per_block}/block)", kind="sampled",
        seconds=timing.seconds, components_timed=report.indices.size, baseline_seconds_per_component=None,
    )
    assert report.mode == "sampled" and report.passed, str(report)


@pytest.mark.parametrize("name", GENERIC)
def test_generic_directional(benchmark, name, problem_of):
    case = case_for(name)
    problem = problem_of(case)
    benchmark.group = f"generic {case.name}"

    def run():
        return fastgrad.gradcheck(
            problem.cost, problem.grad, problem.theta, args=problem.args, layout=problem.layout,
            mode="directional", progress=False,
        )

    timing = timed(benchmark, run, rounds(5))
    report = timing.result
    record(
        benchmark, case=case, contender="generic-directional", kind="directional", seconds=timing.seconds,
        components_timed=case.n_params, baseline_seconds_per_component=None,
        directions=int(report.indices.size), passed=bool(report.passed),
    )
    assert report.mode == "directional" and report.passed, str(report)
    # A wrong gradient is caught by the same quick check.
    wrong = problem.grad.copy()
    wrong[problem.grad.size // 2] += 0.5 * np.abs(problem.grad).max() + 1.0
    caught = fastgrad.gradcheck(
        problem.cost, wrong, problem.theta, args=problem.args, layout=problem.layout, mode="directional",
        progress=False,
    )
    assert not caught.passed
