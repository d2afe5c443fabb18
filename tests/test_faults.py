"""Misbehaving cost functions and tiny checks: what each gets (docs/reliability.md)."""

import numba
import numpy as np
import pytest

import fastgrad


@numba.njit
def raises_near_component_700(theta):
    # Fine at theta and along the noise lines (which move by ~1e-4), raises at the first step.
    if 1.000000001 < theta[700] < 1.0001:
        raise ValueError("the cost refuses this point")
    return np.sum(theta * theta)


@pytest.mark.parametrize("compiled", [True, False], ids=["njit", "python"])
def test_a_cost_that_raises_reaches_the_caller_as_itself_naming_the_component(compiled):
    theta = np.ones(3000)
    cost = raises_near_component_700 if compiled else raises_near_component_700.py_func
    with pytest.raises(ValueError, match="the cost refuses this point") as info:
        fastgrad.gradcheck(cost, 2 * theta, theta, progress=False)
    assert any("theta[700]" in note for note in getattr(info.value, "__notes__", []))


def test_a_one_element_array_is_accepted_as_the_cost():
    theta = np.array([1.0, -2.0])
    report = fastgrad.gradcheck(lambda t: np.array([t @ t]), 2 * theta, theta)
    assert report.verdict == "pass"


@pytest.mark.parametrize("value, match", [(None, "returned None"), ("1.0", "returned '1.0'"),
                                          (np.ones(2), "must return a scalar")])
def test_a_cost_returning_something_else_gets_one_clear_line(value, match):
    with pytest.raises(TypeError, match=match):
        fastgrad.gradcheck(lambda t: value, np.ones(2), np.ones(2))


def test_a_cost_that_writes_into_theta_is_refused():
    def cost(theta):
        theta[0] *= 2.0  # a bug in the user's cost: fastgrad's working copy would drift
        return float(theta @ theta)

    theta = np.array([1.0, 2.0])
    with pytest.raises(RuntimeError, match="modified its theta argument"):
        fastgrad.gradcheck(cost, 2 * theta, theta)
    np.testing.assert_array_equal(theta, [1.0, 2.0])


def test_a_compiled_cost_that_writes_into_theta_is_refused():
    @numba.njit
    def cost(theta):
        theta[1] = 0.0
        return np.sum(theta * theta)

    with pytest.raises(RuntimeError, match="modified its theta argument"):
        fastgrad.gradcheck(cost, np.ones(3), np.ones(3))


def test_a_cost_that_writes_into_theta_only_when_perturbed_is_refused():
    def cost(theta):
        if theta[0] != 1.0:
            theta[1] += 1.0
        return float(theta @ theta)

    with pytest.raises(RuntimeError, match="modified its theta argument"):
        fastgrad.gradcheck(cost, np.array([2.0, 4.0]), np.array([1.0, 2.0]))


def test_tiny_checks_run_on_one_thread_and_restore_the_count():
    from fastgrad._threads import threads_for

    previous = numba.get_num_threads()
    with threads_for(10):
        inside = numba.get_num_threads()
    assert inside == 1 and numba.get_num_threads() == previous
    with threads_for(1e12):
        assert numba.get_num_threads() == previous


def test_a_tiny_check_gives_the_same_numbers_with_any_thread_count():
    net = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
    params = net.init(seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(4, 8)), rng.integers(0, 2, size=8).astype(float)
    previous = numba.get_num_threads()
    reports = []
    try:
        for threads in (1, previous):
            numba.set_num_threads(threads)
            reports.append(net.gradcheck(params, X, Y, progress=False))
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(reports[0].approx, reports[1].approx)
    np.testing.assert_array_equal(reports[0].error, reports[1].error)
