"""fastgrad.testing: assertions whose failure message is the report."""

import numpy as np
import pytest

import fastgrad
from fastgrad._cases import NETWORK_CASES
from fastgrad.naive import course_backward, course_backward_with_bugs, course_case
from fastgrad.testing import assert_dense_gradients_correct, assert_gradients_correct

pytest_plugins = ["pytester"]


def cost(theta):
    return float(np.sum(theta**3) / 3.0 + theta[0] * theta[-1])


def gradient(theta):
    grad = theta**2
    grad[0] += theta[-1]
    grad[-1] += theta[0]
    return grad


def blocks():
    params = {"W1": np.linspace(-1.0, 1.0, 6).reshape(2, 3), "b1": np.array([[0.5], [-0.25]])}
    return fastgrad.pack(params)


def course_net():
    return NETWORK_CASES["S"].net()


def test_correct_gradient_returns_the_passing_report():
    theta, layout = blocks()
    report = assert_gradients_correct(cost, gradient(theta), theta, layout=layout)
    assert isinstance(report, fastgrad.Report)
    assert report.passed and report.checked == theta.size


def test_wrong_gradient_raises_with_the_report_naming_the_block():
    theta, layout = blocks()
    grads = fastgrad.unpack(gradient(theta), layout)
    grads["b1"] = grads["b1"] + 0.1
    with pytest.raises(AssertionError, match=r"wrong: block b1\n") as failure:
        assert_gradients_correct(cost, grads, theta, layout=layout)
    message = str(failure.value)
    assert "gradient check FAILED" in message
    assert "W1" in message and "b1[0, 0]" in message  # the block table and the worst components


def test_keyword_arguments_reach_gradcheck():
    theta, layout = blocks()
    report = assert_gradients_correct(cost, gradient(theta), theta, layout=layout, sample=1, seed=3)
    assert report.mode == "sampled" and report.checked == 2
    report = assert_gradients_correct(cost, gradient(theta), theta, eps=1e-4, threshold=1e-5)
    assert report.eps == 1e-4 and report.threshold == 1e-5


def test_bad_input_is_an_error_not_a_failed_assertion():
    with pytest.raises(ValueError, match="grad has 3 components but theta has 4"):
        assert_gradients_correct(cost, np.zeros(3), np.ones(4))


def test_dense_helper_names_the_course_bugs():
    X, Y, params = course_case()
    with pytest.raises(AssertionError, match=r"wrong: blocks b1, W2\n") as failure:
        assert_dense_gradients_correct(course_net(), params, X, Y, course_backward_with_bugs(X, Y, params))
    assert "DenseNet([4, 5, 3, 1]" in str(failure.value)


def test_dense_helper_passes_the_fixed_backprop_and_fastgrads_own():
    X, Y, params = course_case()
    report = assert_dense_gradients_correct(course_net(), params, X, Y, course_backward(X, Y, params))
    assert report.passed and report.checked == 47
    assert assert_dense_gradients_correct(course_net(), params, X, Y).passed


def test_pytest_shows_the_report_of_a_failing_helper(pytester):
    pytester.makepyfile(
        test_user_backprop="""
        import fastgrad
        from fastgrad.naive import course_backward_with_bugs, course_case
        from fastgrad.testing import assert_dense_gradients_correct

        def test_backprop():
            X, Y, params = course_case()
            net = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
            assert_dense_gradients_correct(net, params, X, Y, course_backward_with_bugs(X, Y, params))
        """
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError*", "*gradient check FAILED*", "*wrong: blocks b1, W2*"])
