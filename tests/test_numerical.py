"""The generic engine: compiled parallel loop vs a plain NumPy reference loop."""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import fastgrad
from fastgrad import _differences
from fastgrad.numerical import CheckInterrupted, NonFiniteCostError, estimate_gradient

import reference
from generic_costs import cases, complex_safe_smooth, complex_safe_smooth_gradient, quadratic_cost


def reference_default_steps(cost, theta, noise):
    """The default rule, written plainly: one step from the measured relative noise, representable, true denominators."""
    rho = min(max(noise / abs(cost(theta)), np.finfo(float).eps), 1e-2)
    approx = np.empty(theta.size)
    for i in range(theta.size):
        h = rho ** (1 / 3)
        h = (theta[i] + h) - theta[i]
        plus = theta.copy()
        plus[i] = theta[i] + h
        minus = theta.copy()
        minus[i] = theta[i] - h
        approx[i] = (cost(plus) - cost(minus)) / (plus[i] - minus[i])
    return approx


@pytest.mark.parametrize("name, cost, args, theta, exact", cases(), ids=[c[0] for c in cases()])
def test_compiled_loop_matches_reference_loop_exactly(name, cost, args, theta, exact):
    approx = fastgrad.numerical_gradient(cost, theta, args=args, eps=1e-6)
    expected = reference.central_differences(lambda t: cost(t, *args), theta, 1e-6)
    np.testing.assert_array_equal(approx, expected)


@pytest.mark.parametrize("name, cost, args, theta, exact", cases(), ids=[c[0] for c in cases()])
def test_default_steps_match_reference_and_exact_gradient(name, cost, args, theta, exact):
    estimate = estimate_gradient(cost, theta, args=args)
    expected = reference_default_steps(lambda t: cost(t, *args), theta, estimate.noise_level)
    np.testing.assert_array_equal(estimate.approx, expected)
    assert fastgrad.relative_difference(exact, estimate.approx) < 1e-8


@pytest.mark.parametrize("name, cost, args, theta, exact", cases(), ids=[c[0] for c in cases()])
def test_python_callable_gives_the_same_results(name, cost, args, theta, exact):
    compiled = estimate_gradient(cost, theta, args=args)
    plain = estimate_gradient(cost.py_func, theta, args=args)
    # Same arithmetic up to the last bits of each cost evaluation.
    np.testing.assert_allclose(plain.approx, compiled.approx, rtol=0, atol=4 * compiled.noise.max())
    report_compiled = fastgrad.gradcheck(cost, exact, theta, args=args)
    report_plain = fastgrad.gradcheck(cost.py_func, exact, theta, args=args)
    assert report_compiled.passed and report_plain.passed


def test_indices_subset_matches_full():
    name, cost, args, theta, exact = cases()[2]
    full = fastgrad.numerical_gradient(cost, theta, args=args)
    some = fastgrad.numerical_gradient(cost, theta, args=args, indices=[20, 3, 7])
    np.testing.assert_array_equal(some, full[[20, 3, 7]])  # in the order given


def test_results_do_not_depend_on_thread_count():
    name, cost, args, theta, exact = cases(1)[2]
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = estimate_gradient(cost, theta, args=args, method="richardson")
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = estimate_gradient(cost, theta, args=args, method="richardson")
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(one.approx, two.approx)
    np.testing.assert_array_equal(one.noise, two.noise)


def test_course_one_dimensional_example():
    # J(theta) = theta * x at x = 2, theta = 4: the textbook difference.
    report = fastgrad.gradcheck(
        lambda t, x: float(t[0] * x), np.array([2.0]), np.array([4.0]), args=(2.0,), eps=1e-7, threshold=1e-7
    )
    assert report.difference == 2.919335883291695e-10
    assert report.passed


def test_one_wrong_component_fails_and_is_named():
    params = {"W1": np.linspace(-1, 1, 6).reshape(2, 3), "b1": np.array([[0.5], [-0.25]])}
    theta, layout = fastgrad.pack(params)
    A = np.diag(np.arange(1.0, 9.0))
    b = np.ones(8)
    grad = A @ theta + b
    grad[4] += 1e-3  # W1[1, 1]
    report = fastgrad.gradcheck(quadratic_cost, grad, theta, args=(A, b), layout=layout)
    assert not report.passed
    worst = report.worst(1)[0]
    assert (worst.index, worst.block, worst.position) == (4, "W1", (1, 1))
    assert report.failing_blocks == ("W1",)
    assert report.block("b1").passed


@pytest.mark.parametrize("method, tolerance", [("central", 1e-9), ("forward", 1e-6), ("richardson", 1e-11), ("complex", 1e-14)])
def test_methods_reach_their_accuracy(method, tolerance):
    rng = np.random.default_rng(5)
    theta = rng.normal(size=9)
    c = rng.normal(size=9)
    exact = complex_safe_smooth_gradient(theta, c)
    approx = fastgrad.numerical_gradient(complex_safe_smooth, theta, args=(c,), method=method)
    assert fastgrad.relative_difference(exact, approx) < tolerance
    plain = fastgrad.numerical_gradient(complex_safe_smooth.py_func, theta, args=(c,), method=method)
    assert fastgrad.relative_difference(exact, plain) < tolerance


def test_richardson_reports_an_error_estimate_that_bounds_the_error():
    theta = np.linspace(-1, 1, 7)
    c = np.ones(7)
    estimate = estimate_gradient(complex_safe_smooth, theta, args=(c,), method="richardson")
    exact = complex_safe_smooth_gradient(theta, c)
    assert np.all(estimate.error > 0)
    assert np.all(np.abs(estimate.approx - exact) <= estimate.error)


def test_complex_step_needs_a_complex_safe_cost():
    with pytest.raises(TypeError, match="complex"):
        fastgrad.numerical_gradient(lambda t: float(np.abs(t).sum()), np.ones(3), method="complex")


def test_kinks_are_flagged_for_generic_costs():
    theta = np.array([0.0, 1.0, -2.0, 1e-7, 3.0])
    grad = np.sign(theta)
    grad[0] = 1.0  # |t|'(0) = 1 is a valid subgradient, though not the central difference 0
    report = fastgrad.gradcheck(lambda t: float(np.abs(t).sum()), grad, theta)
    assert report.passed, report
    # The kink at 0 is judged against its range [-1, 1]; the one at 1e-7 lies within the
    # first step but not at theta: smaller steps resolve it as smooth.
    np.testing.assert_array_equal(report.kinks, [True, False, False, False, False])
    assert report.low[0] == pytest.approx(-1.0) and report.high[0] == pytest.approx(1.0)
    grad[0] = 1.5
    assert fastgrad.gradcheck(lambda t: float(np.abs(t).sum()), grad, theta).verdict == "fail"


def test_smooth_cost_with_strong_curvature_is_not_a_kink():
    theta = np.array([0.0, 1e-3, 2.0])  # a minimum at 0: one-sided slopes disagree, but smoothly
    report = fastgrad.gradcheck(lambda t: float(np.sum(1e3 * t**2)), 2e3 * theta, theta)
    assert report.passed and report.n_kinks == 0


def test_nonfinite_cost_at_perturbed_point_is_reported_after_the_loop():
    @numba.njit
    def log_cost(theta):
        return np.log(theta[0]) + np.log(theta[1]) + theta[2]

    theta = np.array([1.0, 1e-9, 2.0])
    with pytest.raises(NonFiniteCostError, match=r"1 component\(s\): 1\b"):
        fastgrad.numerical_gradient(log_cost, theta, eps=1e-6)
    with pytest.raises(NonFiniteCostError, match=r"component\(s\): 1\b"):
        fastgrad.numerical_gradient(log_cost.py_func, theta, eps=1e-6)


def test_ctrl_c_gives_partial_report_and_leaves_arrays_alone():
    calls = {"n": 0}

    def slow_cost(theta):
        calls["n"] += 1
        if calls["n"] > 60:
            raise KeyboardInterrupt
        return float(theta @ theta)

    theta = np.linspace(0.5, 2.0, 200)
    grad = 2 * theta
    theta_before, grad_before = theta.copy(), grad.copy()
    with pytest.raises(CheckInterrupted) as caught:
        fastgrad.gradcheck(slow_cost, grad, theta)
    partial = caught.value.partial
    assert isinstance(partial, fastgrad.Report)
    # Never "pass" with components unchecked: inconclusive, and says why.
    assert 0 < partial.checked < theta.size and partial.verdict == "inconclusive" and partial.interrupted
    assert any("interrupted" in reason for reason in partial.reasons)
    assert "interrupted" in partial.notes[0]
    np.testing.assert_array_equal(theta, theta_before)
    np.testing.assert_array_equal(grad, grad_before)


def test_kernel_is_cached_for_a_new_cost_in_a_new_process(tmp_path):
    script = textwrap.dedent(
        """
        import numba, numpy as np, fastgrad
        from fastgrad._generic_kernels import kernel_for

        @numba.njit
        def cost_{n}(theta, X):
            return np.sum(theta * theta) * X[0]

        fastgrad.numerical_gradient(cost_{n}, np.ones(4), args=(np.ones(2),))
        kernel = kernel_for((numba.typeof(np.ones(2)),), False)
        print(sum(kernel.stats.cache_hits.values()), sum(kernel.stats.cache_misses.values()))
        """
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    outputs = []
    for n in (1, 2):  # two different cost functions, one per process
        run = subprocess.run(
            [sys.executable, "-c", script.format(n=n)], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(run.stdout.split())
    assert outputs[0] == ["0", "1"]  # first process compiles
    assert outputs[1] == ["1", "0"]  # second loads from the cache, new cost notwithstanding


def test_caller_arrays_unchanged():
    name, cost, args, theta, exact = cases(3)[1]
    theta_before, exact_before = theta.copy(), exact.copy()
    args_before = [np.copy(a) for a in args]
    for method in ("central", "forward", "richardson"):
        fastgrad.gradcheck(cost, exact, theta, args=args, method=method)
    fastgrad.gradcheck(cost, exact, theta, args=args, sample=2)
    fastgrad.gradcheck(cost, exact, theta, args=args, mode="directional")
    np.testing.assert_array_equal(theta, theta_before)
    np.testing.assert_array_equal(exact, exact_before)
    for a, b in zip(args, args_before):
        np.testing.assert_array_equal(a, b)
    assert theta.flags.writeable


def test_default_step_is_exactly_representable():
    theta = np.array([0.1, 3.7, -1234.5, 1e-12])
    steps = _differences.base_steps(theta, _differences.EPS_MACH, "central")
    points, offsets = _differences.level_points(theta, steps, np.zeros(4, np.int64), nominal=False)
    np.testing.assert_array_equal((theta + offsets[:, 0]) - theta, offsets[:, 0])
    assert np.all(np.abs(offsets[:, 0] - _differences.EPS_MACH ** (1 / 3)) <= 1e-9)  # one absolute step


def test_compiled_cost_with_star_args_gets_a_clear_error():
    @numba.njit
    def cost(theta, *args):
        return np.sum(theta * theta) * args[0].sum()

    with pytest.raises(TypeError, match=r"\*args or \*\*kwargs cannot be passed to the compiled engine"):
        fastgrad.numerical_gradient(cost, np.ones(3), args=(np.ones(2),))
