"""gradcheck: verdicts, reports, merging, and every documented bad input."""

import json

import numpy as np
import pytest

import fastgrad
from fastgrad import merge_reports

from generic_costs import logistic_cost, logistic_gradient, quadratic_cost, tiny_network, tiny_network_gradient


def network_case(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3, 10))
    Y = rng.normal(size=10)
    params = {"W1": rng.normal(size=(4, 3)), "b1": rng.normal(size=4), "W2": rng.normal(size=4), "b2": rng.normal(size=1)}
    theta, layout = fastgrad.pack(params)
    return theta, layout, (X, Y), tiny_network_gradient(theta, X, Y)


def test_correct_gradient_passes_with_named_blocks():
    theta, layout, args, grad = network_case()
    report = fastgrad.gradcheck(tiny_network, grad, theta, args=args, layout=layout)
    assert report.passed and bool(report)
    assert report.difference < 1e-8
    assert {b.name for b in report.blocks} == {"W1", "b1", "W2", "b2"}
    assert all(b.passed for b in report.blocks)
    assert report.checked == theta.size == report.size


def test_wrong_block_fails_alone_and_blocks_are_ranked_failing_first():
    theta, layout, args, grad = network_case(1)
    grads = fastgrad.unpack(grad, layout)
    grads["b1"] = grads["b1"] * 1.5
    report = fastgrad.gradcheck(tiny_network, grads, theta, args=args, layout=layout)
    assert not report.passed
    assert report.failing_blocks == ("b1",)
    assert report.blocks[0].name == "b1"
    assert report.worst(1)[0].block == "b1"
    differences = [b.difference for b in report.blocks[1:]]
    assert differences == sorted(differences, reverse=True)


def test_report_is_immutable_and_serialisable():
    theta, layout, args, grad = network_case()
    report = fastgrad.gradcheck(tiny_network, grad, theta, args=args, layout=layout)
    with pytest.raises(AttributeError):
        report.passed = False
    with pytest.raises(ValueError):
        report.grad[0] = 1.0
    data = json.loads(json.dumps(report.to_dict(arrays=True)))
    assert data["passed"] is True and data["size"] == theta.size
    assert len(data["grad"]) == theta.size and data["blocks"][0]["name"] in layout.names
    text = str(report)
    assert text.splitlines()[0].startswith("gradient check PASSED")


def test_partial_reports_merge_into_the_full_report():
    theta, layout, args, grad = network_case(2)
    grad = grad.copy()
    grad[13] *= -1.0
    full = fastgrad.gradcheck(tiny_network, grad, theta, args=args, layout=layout)
    parts = [
        fastgrad.gradcheck(tiny_network, grad, theta, args=args, layout=layout, indices=range(0, 10)),
        fastgrad.gradcheck(tiny_network, grad, theta, args=args, layout=layout, indices=range(10, 21)),
    ]
    merged = merge_reports(*parts)
    assert merged.passed == full.passed is False
    assert merged.difference == full.difference
    np.testing.assert_array_equal(merged.indices, full.indices)
    np.testing.assert_array_equal(merged.approx, full.approx)
    assert [b.name for b in merged.blocks] == [b.name for b in full.blocks]
    assert merge_reports(list(reversed(parts))).difference == full.difference


def test_merge_rejects_overlap_and_different_checks():
    theta, layout, args, grad = network_case()
    a = fastgrad.gradcheck(tiny_network, grad, theta, args=args, layout=layout, indices=[0, 1])
    b = fastgrad.gradcheck(tiny_network, grad, theta, args=args, layout=layout, indices=[1, 2])
    with pytest.raises(ValueError, match="component 1 appears more than once"):
        merge_reports(a, b)
    c = fastgrad.gradcheck(tiny_network, grad, theta, args=args, layout=layout, indices=[3], threshold=1e-3)
    with pytest.raises(ValueError, match="threshold"):
        merge_reports(a, c)


def test_sampled_check_is_seeded_and_covers_every_block():
    theta, layout, args, grad = network_case()
    one = fastgrad.gradcheck(tiny_network, grad, theta, args=args, layout=layout, sample=2, seed=7)
    two = fastgrad.gradcheck(tiny_network, grad, theta, args=args, layout=layout, sample=2, seed=7)
    np.testing.assert_array_equal(one.indices, two.indices)
    assert one.mode == "sampled" and one.checked == 2 + 2 + 2 + 1
    assert {b.name for b in one.blocks} == set(layout.names)


def test_directional_check_passes_correct_and_names_wrong_block():
    theta, layout, args, grad = network_case(3)
    good = fastgrad.gradcheck(tiny_network, grad, theta, args=args, layout=layout, mode="directional")
    assert good.passed and good.mode == "directional" and good.directional is not None
    bad = grad.copy()
    bad[layout.slice("W2")] *= 1.1
    report = fastgrad.gradcheck(tiny_network, bad, theta, args=args, layout=layout, mode="directional")
    assert not report.passed
    assert report.failing_blocks == ("W2",)


def test_float32_gradient_is_accepted_with_stated_tolerance():
    theta, layout, args, grad = network_case(4)
    report = fastgrad.gradcheck(tiny_network, grad.astype(np.float32), theta, args=args, layout=layout)
    assert report.passed and report.grad_dtype == "float32"
    assert report.threshold == 1e-7 and report.tolerance > 1e-6  # float32 rounding allowed on top
    assert any("float32" in note for note in report.notes)
    wrong = grad.astype(np.float32)
    wrong[0] *= 1.1
    assert not fastgrad.gradcheck(tiny_network, wrong, theta, args=args, layout=layout).passed


def test_large_loss_does_not_fail_a_correct_gradient():
    # Rounding in J grows with |J|; the pass rule allows for it.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) * 30
    y = np.where(rng.random(200) < 0.5, -1.0, 1.0)
    theta = rng.normal(size=5) * 30
    report = fastgrad.gradcheck(logistic_cost, logistic_gradient(theta, X, y, 0.0), theta, args=(X, y, 0.0))
    assert report.cost_value > 100
    assert report.passed


def test_course_eps_and_threshold_reproduce_course_numbers_for_quadratic():
    A = np.eye(3) * 2
    b = np.zeros(3)
    theta = np.array([1.0, 2.0, 3.0])
    report = fastgrad.gradcheck(quadratic_cost, A @ theta, theta, args=(A, b), eps=1e-7, threshold=1e-7)
    assert report.eps == 1e-7 and report.threshold == 1e-7
    expected = [
        (quadratic_cost(theta + 1e-7 * e, A, b) - quadratic_cost(theta - 1e-7 * e, A, b)) / 2e-7 for e in np.eye(3)
    ]
    np.testing.assert_array_equal(report.approx, expected)


# ----------------------------------------------------------------------------
# Bad input: a clear error before any compiled code runs
# ----------------------------------------------------------------------------

def quad(theta):
    return float(theta @ theta)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(theta=np.ones((2, 2))), ValueError, r"theta must be a 1-D vector, got shape \(2, 2\)"),
        (dict(theta=np.ones(0)), ValueError, "theta is empty"),
        (dict(theta=np.arange(3)), TypeError, "theta has dtype int64"),
        (dict(theta=np.ones(3, dtype=complex)), TypeError, "theta has complex dtype"),
        (dict(theta=np.array([1.0, np.inf, 1.0])), ValueError, "theta contains inf at index 1"),
        (dict(grad=np.array([1.0, 1.0, np.nan])), ValueError, "grad contains nan at index 2"),
        (dict(grad=np.ones(4)), ValueError, "grad has 4 components but theta has 3"),
        (dict(grad=np.ones(3, dtype=complex)), TypeError, "grad has complex dtype"),
        (dict(eps=0.0), ValueError, "eps must be positive and finite"),
        (dict(eps=-1e-7), ValueError, "eps must be positive and finite"),
        (dict(eps=float("nan")), ValueError, "eps must be positive and finite"),
        (dict(eps=1e-20), ValueError, r"eps=1e-20 is too small to change component 0"),
        (dict(threshold=-1.0), ValueError, "threshold must be a non-negative"),
        (dict(threshold=float("nan")), ValueError, "threshold must be a non-negative"),
        (dict(method="secant"), ValueError, "Unknown method 'secant'"),
        (dict(mode="quick"), ValueError, "Unknown mode 'quick'"),
        (dict(indices=[5]), IndexError, "Component index 5 is outside theta"),
        (dict(indices=[0.5]), TypeError, "indices must be integers"),
        (dict(sample=0), ValueError, "sample must be a positive number"),
        (dict(sample=2, indices=[0]), ValueError, "either indices= or sample="),
        (dict(cost=lambda t: np.ones(2)), TypeError, "must return a scalar"),
        (dict(cost=lambda t: float("nan")), ValueError, "The cost is nan at theta"),
        (dict(cost="not a function"), TypeError, "cost must be a callable"),
        (dict(args=np.ones(2)), TypeError, "args must be a tuple"),
        (dict(grad={"W": np.ones(3)}), ValueError, "needs layout="),
    ],
)
def test_bad_input_gets_a_clear_error(kwargs, error, match):
    call = dict(cost=quad, grad=np.array([2.0, 4.0, 6.0]), theta=np.array([1.0, 2.0, 3.0]))
    call.update(kwargs)
    cost, grad, theta = call.pop("cost"), call.pop("grad"), call.pop("theta")
    theta_before = np.array(theta, copy=True)
    with pytest.raises(error, match=match):
        fastgrad.gradcheck(cost, grad, theta, **call)
    np.testing.assert_array_equal(theta, theta_before)


def test_float32_theta_is_promoted_not_checked_in_float32():
    theta32 = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    seen = []

    def cost(theta):
        seen.append(theta.dtype)
        return float(theta @ theta)

    report = fastgrad.gradcheck(cost, 2.0 * theta32.astype(np.float64), theta32)
    assert report.passed and set(seen) == {np.dtype(np.float64)}


def test_bad_input_is_rejected_before_compiled_code_runs():
    calls = []

    import numba

    @numba.njit
    def cost(theta):
        return np.sum(theta)

    with pytest.raises(ValueError, match="grad has 2 components"):
        fastgrad.gradcheck(cost, np.ones(2), np.ones(3))
    assert cost.signatures == []  # never compiled, never called
    assert calls == []


def test_relative_difference_definition():
    assert fastgrad.relative_difference(np.zeros(3), np.zeros(3)) == 0.0
    g, a = np.array([3.0, 4.0]), np.array([0.0, 0.0])
    assert fastgrad.relative_difference(g, a) == 1.0
    g, a = np.array([1.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0])
    assert fastgrad.relative_difference(g, a) == pytest.approx(1.0 / (3.0 + np.sqrt(14.0)))
    with pytest.raises(ValueError, match="same size"):
        fastgrad.relative_difference(np.ones(2), np.ones(3))


def test_directional_check_skips_an_empty_block():
    layout = fastgrad.Layout(("a", "empty", "b"), ((2,), (0,), (2,)))
    theta = np.array([1.0, -2.0, 0.5, 3.0])
    grad = 2 * theta
    grad[3] *= 1.5  # a bug in block b
    report = fastgrad.gradcheck(quad, grad, theta, layout=layout, mode="directional")
    assert not report.passed
    assert report.failing_blocks == ("b",)
    assert "empty" not in {b.name for b in report.blocks}


def test_the_costs_own_exception_reaches_the_caller_unchanged():
    class CostError(Exception):
        def __init__(self, code, detail):
            super().__init__(code, detail)

    def cost(theta):
        raise CostError(7, "bad")

    with pytest.raises(CostError) as caught:
        fastgrad.gradcheck(cost, np.ones(2), np.ones(2))
    assert caught.value.args == (7, "bad")
    assert any("raised by the cost at theta" in note for note in caught.value.__notes__)
