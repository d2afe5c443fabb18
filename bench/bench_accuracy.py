"""Accuracy of each difference method on a smooth network, against the exact gradient.

The ``smooth`` case of the registry (a tanh network with softmax
cross-entropy) is differentiable everywhere, so the back-prop gradient is
exact up to rounding and every method's error can be measured:
``||approx - exact|| / ||exact||`` over all components, and the largest
component error. Each method runs through ``DenseNet.gradcheck`` (the dense
engine for real steps, the compiled full forward pass for the complex step)
and, for the real methods, through the generic engine on the same network
written as a compiled cost function; ``central, eps=1e-7`` is the course's
formula for comparison.

Every run asserts the documented accuracy (with a margin) and that the
report's own noise estimate bounds the actual error of every component.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad
from benchkit import case_for, record, rounds, timed

#: Relative error each method must reach on the smooth network (documented
#: orders: eps_mach^(2/3) central, eps_mach^(1/2) forward, about eps_mach^(4/5)
#: Richardson, eps_mach for the complex step; with a margin).
BOUNDS = {"central": 1e-8, "forward": 1e-5, "richardson": 1e-10, "complex": 1e-13, "central, eps=1e-7": 1e-7}

RUNS = [
    ("dense", "central"), ("dense", "forward"), ("dense", "richardson"), ("dense", "complex"),
    ("dense", "central, eps=1e-7"),
    ("generic", "central"), ("generic", "forward"), ("generic", "richardson"),
]


@pytest.mark.parametrize(("engine", "method"), RUNS, ids=[f"{e}-{m.replace(', ', '-')}" for e, m in RUNS])
def test_accuracy(benchmark, engine, method, problem_of):
    case = case_for("smooth")
    problem = problem_of(case)
    benchmark.group = "accuracy"
    options = {"eps": 1e-7, "method": "central"} if method == "central, eps=1e-7" else {"method": method}

    if engine == "dense":

        def run():
            return problem.net.gradcheck(problem.params, problem.X, problem.Y, progress=False, **options)

    else:

        def run():
            return fastgrad.gradcheck(
                problem.cost, problem.grad, problem.theta, args=problem.args, layout=problem.layout,
                progress=False, **options,
            )

    run()
    timing = timed(benchmark, run, rounds(5))
    report = timing.result
    exact = problem.grad
    error = np.abs(report.approx - exact)
    relative = float(np.linalg.norm(report.approx - exact) / np.linalg.norm(exact))
    record(
        benchmark, case=case, contender=f"{engine}, {method}", kind="accuracy", seconds=timing.seconds,
        components_timed=case.n_params, baseline_seconds_per_component=None,
        engine=engine, method=method, relative_error=relative, max_abs_error=float(error.max()),
        max_abs_gradient=float(np.abs(exact).max()), max_noise_estimate=float(np.max(report.noise)),
        difference=float(report.difference), passed=bool(report.passed),
    )
    assert report.passed, str(report)
    assert report.indices.size == case.n_params and not report.kinks.any()
    assert relative <= BOUNDS[method], f"{method}: relative error {relative:.3g} above {BOUNDS[method]:.0e}"
    if method != "complex":
        # The report's per-component noise estimate is an honest bound of the error.
        assert np.all(error <= report.noise), f"error above the noise estimate at {np.argmax(error - report.noise)}"
