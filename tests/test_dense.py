"""DenseNet: compiled forward cost and back-prop against a plain NumPy reference,
the course's planted bugs, engines against each other, dropout, L2 terms, the
complex step, thread-count independence, and every documented bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import fastgrad
import reference
from fastgrad import _dense_kernels, _dense_numpy, naive
from fastgrad._cases import NETWORK_CASES
from fastgrad.dense import DenseNet

LOSS_OUTPUT = {"binary_cross_entropy": "sigmoid", "softmax_cross_entropy": "linear", "mse": "tanh"}
HIDDEN = ["relu", "leaky_relu", "tanh", "sigmoid", "linear"]


def make_case(loss, hidden="tanh", *, sizes=None, m=5, l2=0.0, dropout=None, seed=0):
    """A small network of the given loss with seeded data and parameters."""
    n_out = 3 if loss == "softmax_cross_entropy" else 2
    sizes = sizes or [4, 5, 3, n_out]
    net = DenseNet(sizes, hidden, loss, l2=l2, dropout=dropout, dropout_seed=seed, output=LOSS_OUTPUT[loss])
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((sizes[0], m))
    if loss == "softmax_cross_entropy":
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], m)].T.copy()
    else:
        Y = rng.random((sizes[-1], m))
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = rng.standard_normal((sizes[l], sizes[l - 1])) * 0.8
        params[f"b{l}"] = rng.standard_normal((sizes[l], 1)) * 0.5
    return net, params, X, Y


def course_network():
    """The registry's S case: the course's 4-5-3-1 network, its parameters and data (Y of shape (1, 3))."""
    case = NETWORK_CASES["S"]
    X, Y = case.data()
    return case.net(), case.params(), X, Y


def vector(grads, net):
    return np.concatenate([np.asarray(grads["d" + name]).ravel() for name in net.layout.names])


# --------------------------------------------------------------------------- #
# Forward cost and back-prop against the reference
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("loss", list(LOSS_OUTPUT))
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("l2, dropout", [(0.0, None), (0.7, None), (0.0, 0.3), (0.4, [0.2, 0.5])])
def test_cost_and_backprop_match_reference(loss, hidden, l2, dropout):
    net, params, X, Y = make_case(loss, hidden, l2=l2, dropout=dropout)
    scales = net.dropout_scales(X.shape[1])
    expected_cost = reference.cost(params, X, Y, net.activations, loss, l2, scales)
    expected_grads = reference.gradients(params, X, Y, net.activations, loss, l2, scales)

    assert net.cost(params, X, Y) == pytest.approx(expected_cost, rel=1e-13, abs=1e-15)
    grads = net.gradients(params, X, Y)
    assert list(grads) == [f"d{name}" for name in net.layout.names]
    for name, value in expected_grads.items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-11, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("loss", list(LOSS_OUTPUT))
def test_reference_backprop_is_the_derivative_of_the_reference_cost(loss):
    # Guards the reference itself: its back-prop against its own finite differences.
    net, params, X, Y = make_case(loss, "tanh", l2=0.3, dropout=0.25)
    scales = net.dropout_scales(X.shape[1])
    analytic = reference.gradients(params, X, Y, net.activations, loss, 0.3, scales)
    numeric = reference.numerical_gradient(params, X, Y, net.activations, loss, 0.3, scales)
    for name in analytic:
        np.testing.assert_allclose(analytic[name], numeric[name], rtol=1e-6, atol=1e-8, err_msg=name)


def test_binary_cross_entropy_is_stable_where_the_course_formula_overflows():
    net = DenseNet([1, 1], ["sigmoid"], "binary_cross_entropy")
    params = {"W1": np.array([[1.0]]), "b1": np.array([[0.0]])}
    # a = sigmoid(800) rounds to 1, so log(1 - a) is -inf in the course's formula.
    cost = net.cost(params, np.array([[800.0]]), np.array([[0.0]]))
    assert cost == pytest.approx(800.0, rel=1e-15)


def test_one_output_accepts_labels_as_a_vector():
    X, Y, params = naive.course_case()
    net = NETWORK_CASES["S"].net()
    assert Y.shape == (3,)
    assert net.cost(params, X, Y) == net.cost(params, X, Y.reshape(1, 3))
    course_cost, _ = naive.course_forward(X, Y, params)
    assert net.cost(params, X, Y) == pytest.approx(course_cost, rel=1e-14)


def test_init_is_seeded_and_scaled_by_activation():
    net = DenseNet([400, 300, 200, 2], ["relu", "tanh", "linear"], "mse")
    first, again, other = net.init(seed=3), net.init(seed=3), net.init(seed=4)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["W1"], other["W1"])
    assert np.std(first["W1"]) == pytest.approx(np.sqrt(2 / 400), rel=0.02)  # He
    assert np.std(first["W2"]) == pytest.approx(np.sqrt(2 / (300 + 200)), rel=0.02)  # Xavier
    assert all(not first[f"b{l}"].any() and first[f"b{l}"].shape == (n, 1) for l, n in [(1, 300), (2, 200), (3, 2)])


def test_activation_shorthand_and_layout():
    net = DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
    assert net.activations == ("relu", "relu", "sigmoid")
    assert DenseNet([4, 5, 3], "tanh", "softmax_cross_entropy").activations == ("tanh", "linear")
    assert DenseNet([4, 5, 3], "tanh", "mse", output="sigmoid").activations == ("tanh", "sigmoid")
    assert net.layout.names == ("W1", "b1", "W2", "b2", "W3", "b3")
    assert net.layout.shapes == ((5, 4), (5, 1), (3, 5), (3, 1), (1, 3), (1, 1))
    assert net.n_params == 47


# --------------------------------------------------------------------------- #
# The course's network and its planted bugs
# --------------------------------------------------------------------------- #


def test_naive_course_loop_reproduces_the_course_numbers_exactly():
    X, Y, params = naive.course_case()
    buggy = naive.course_backward_with_bugs(X, Y, params)
    fixed = naive.course_backward(X, Y, params)
    # The course prints 0.2850931567761623; NumPy versions may round the last bit differently.
    assert naive.course_gradient_check(X, Y, params, buggy, 1e-7) == pytest.approx(0.2850931567761623, rel=1e-15)
    assert naive.course_gradient_check(X, Y, params, fixed, 1e-7) == 1.1890913024229996e-07


def test_course_bugs_fail_near_0285_and_are_localised_to_w2_and_b1():
    net, params, X, Y = course_network()
    report = net.gradcheck(params, X, Y, naive.course_backward_with_bugs(X, Y, params), eps=1e-7, threshold=1e-7)
    assert not report.passed
    assert report.difference == pytest.approx(0.2850931567761623, rel=1e-6)
    assert set(report.failing_blocks) == {"W2", "b1"}
    assert {c.block for c in report.worst(8)} == {"W2", "b1"}


def test_course_fixed_backprop_passes_and_agrees_with_fastgrad_backprop():
    net, params, X, Y = course_network()
    fixed = naive.course_backward(X, Y, params)
    assert net.gradcheck(params, X, Y, fixed, eps=1e-7, threshold=1e-7).passed
    assert net.gradcheck(params, X, Y, fixed).passed
    ours = net.gradients(params, X, Y)
    for name in fixed:
        np.testing.assert_allclose(ours[name], fixed[name], rtol=1e-13, atol=1e-15)


def test_directional_and_sampled_checks_find_the_course_bugs():
    net, params, X, Y = course_network()
    buggy = naive.course_backward_with_bugs(X, Y, params)
    directional = net.gradcheck(params, X, Y, buggy, mode="directional", seed=1)
    assert not directional.passed and directional.mode == "directional"
    assert set(directional.failing_blocks) == {"W2", "b1"}
    sampled = net.gradcheck(params, X, Y, buggy, sample=3, seed=2)
    assert sampled.mode == "sampled" and sampled.checked == 5 * 3 + 1  # b3 has one component
    assert not sampled.passed and set(sampled.failing_blocks) == {"W2", "b1"}
    assert net.gradcheck(params, X, Y, mode="directional").passed


# --------------------------------------------------------------------------- #
# Engines agree
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("loss", list(LOSS_OUTPUT))
@pytest.mark.parametrize("hidden", ["relu", "sigmoid"])
def test_generic_engine_matches_the_naive_loop_component_by_component(loss, hidden):
    net, params, X, Y = make_case(loss, hidden, l2=0.2, dropout=0.3, seed=5)
    report = net.gradcheck(params, X, Y, eps=1e-5, engine="generic")
    expected = naive.naive_numerical_gradient(net, params, X, Y, eps=1e-5)
    # Every layer, biases included: the course formula differs from the kernel's
    # only by rounding of J, amplified by 1/eps.
    np.testing.assert_allclose(report.approx, expected, rtol=0, atol=1e-9)
    assert report.passed


def test_generic_engine_equals_foundation_generic_engine_on_the_dense_cost():
    net, params, X, Y = make_case("softmax_cross_entropy", "relu", l2=0.1, dropout=0.2)
    theta = net.pack(params)
    args = net._kernel_args(*net._data(X, Y))
    expected = fastgrad.numerical_gradient(_dense_kernels.forward_cost, theta, args=args, eps=1e-6)
    report = net.gradcheck(params, X, Y, eps=1e-6, engine="generic")
    np.testing.assert_array_equal(report.approx, expected)


@pytest.mark.parametrize("loss", list(LOSS_OUTPUT))
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("method", ["central", "forward", "richardson"])
def test_dense_engine_equals_generic_engine_within_rounding(loss, hidden, method):
    net, params, X, Y = make_case(loss, hidden, l2=0.3, dropout=0.25, seed=7)
    fast = net.gradcheck(params, X, Y, method=method, engine="dense")
    generic = net.gradcheck(params, X, Y, method=method, engine="generic")
    np.testing.assert_array_equal(fast.indices, generic.indices)
    np.testing.assert_allclose(fast.approx, generic.approx, rtol=0, atol=8 * generic.noise.max())
    np.testing.assert_array_equal(fast.kinks, generic.kinks)
    assert fast.passed and generic.passed


def test_unknown_or_unavailable_engine_is_refused():
    net, params, X, Y = make_case("mse")
    with pytest.raises(ValueError, match="Unknown engine 'turbo'; choose one of auto, dense, generic"):
        net.gradcheck(params, X, Y, engine="turbo")
    with pytest.raises(ValueError, match="method='complex' runs on engine='generic'"):
        net.gradcheck(params, X, Y, method="complex", engine="dense")


# --------------------------------------------------------------------------- #
# Complex step, kinks, threads
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("loss", list(LOSS_OUTPUT))
def test_complex_step_matches_backprop_to_rounding_on_a_smooth_network(loss):
    net, params, X, Y = make_case(loss, "tanh", l2=0.2, dropout=0.3, seed=11)
    report = net.gradcheck(params, X, Y, method="complex")
    grad = vector(net.gradients(params, X, Y), net)
    assert report.method == "complex" and report.passed
    assert report.difference < 1e-13
    np.testing.assert_allclose(report.approx, grad, rtol=1e-12, atol=1e-15)


def test_complex_forward_cost_has_the_real_cost_as_real_part():
    net, params, X, Y = make_case("softmax_cross_entropy", "sigmoid")
    theta = net.pack(params)
    args = net._kernel_args(*net._data(X, Y))
    real = _dense_kernels.forward_cost(theta, *args)
    complex_cost = _dense_kernels.forward_cost(theta.astype(np.complex128), *args)
    assert complex_cost.imag == 0.0
    assert complex_cost.real == pytest.approx(real, rel=1e-15)


@pytest.mark.parametrize("engine", ["generic", "dense"])
def test_relu_kink_is_flagged_not_failed(engine):
    net = DenseNet([2, 3, 1], "relu", "binary_cross_entropy")
    params = net.init(seed=0)
    X = np.array([[0.0, 1.0, -0.5], [0.0, 0.3, 0.8]])  # example 0 is all zeros: Z1[:, 0] = b1 = 0, on the kink
    Y = np.array([1.0, 0.0, 1.0])
    report = net.gradcheck(params, X, Y, engine=engine)
    assert report.passed
    # Moving b1[i] moves Z1[i, 0] off zero; moving W1 leaves it at zero (X[:, 0] = 0).
    kinked = [net.layout.locate(int(k)) for k in report.indices[report.kinks]]
    assert kinked == [("b1", (0, 0)), ("b1", (1, 0)), ("b1", (2, 0))]
    assert report.n_kinks == 3


@pytest.mark.parametrize(
    "method, engine",
    [("central", "generic"), ("complex", "generic")]
    + [("central", "dense"), ("richardson", "dense")],
)
def test_results_do_not_depend_on_the_thread_count(method, engine):
    net, params, X, Y = make_case("softmax_cross_entropy", "relu", sizes=[6, 7, 5, 3], m=4, seed=2)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = net.gradcheck(params, X, Y, method=method, engine=engine)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = net.gradcheck(params, X, Y, method=method, engine=engine)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one.approx, two.approx)
    np.testing.assert_array_equal(one.kinks, two.kinks)


# --------------------------------------------------------------------------- #
# Dropout, L2 terms, float32, training
# --------------------------------------------------------------------------- #


def test_dropout_masks_are_fixed_and_used_everywhere():
    net, params, X, Y = make_case("mse", "relu", dropout=0.5, seed=4)
    masks = net.dropout_masks(X.shape[1])
    again = net.dropout_masks(X.shape[1])
    assert [m.shape for m in masks] == [(5, 5), (3, 5)]
    assert all(np.array_equal(a, b) for a, b in zip(masks, again))
    assert 0 < sum(m.sum() for m in masks) < sum(m.size for m in masks)
    assert net.gradcheck(params, X, Y).passed
    # A back-prop that forgets the mask is caught.
    forgetful = reference.gradients(params, X, Y, net.activations, "mse", 0.0, None)
    assert not net.gradcheck(params, X, Y, forgetful).passed
    undropped = DenseNet(net.layer_sizes, net.activations, "mse")
    assert net.cost(params, X, Y) != undropped.cost(params, X, Y)


def test_l2_report_shows_the_data_term_and_the_penalty_separately():
    net, params, X, Y = make_case("binary_cross_entropy", "tanh", l2=0.5)
    m = X.shape[1]
    grads = net.gradients(params, X, Y)

    correct = net.gradcheck(params, X, Y, grads)
    assert correct.passed
    assert [t.name for t in correct.terms] == ["data term", "L2 penalty"]
    assert all(t.passed for t in correct.terms)

    doubled = {k: v + (0.5 / m * params[k[1:]] if k == "dW2" else 0) for k, v in grads.items()}
    report = net.gradcheck(params, X, Y, doubled)
    data, penalty = report.terms
    assert not report.passed and data.passed and not penalty.passed
    assert "W2: 2 x l2/m * W2" in penalty.note

    missing = {k: v - (0.5 / m * params[k[1:]] if k.startswith("dW") else 0) for k, v in grads.items()}
    data, penalty = net.gradcheck(params, X, Y, missing).terms
    assert data.passed and not penalty.passed and "W1: missing" in penalty.note

    data_bug = dict(grads, db2=grads["db2"] * 2)
    data, penalty = net.gradcheck(params, X, Y, data_bug).terms
    assert not data.passed and penalty.passed and "data term is wrong" in penalty.note


def test_float32_gradients_are_accepted_and_stated():
    net, params, X, Y = make_case("softmax_cross_entropy", "tanh")
    grads32 = {k: v.astype(np.float32) for k, v in net.gradients(params, X, Y).items()}
    report = net.gradcheck(params, X, Y, grads32)
    assert report.passed and report.grad_dtype == "float32"
    assert any("float32" in note for note in report.notes)
    wrong = dict(grads32, dW1=grads32["dW1"] * np.float32(1.01))
    assert not net.gradcheck(params, X, Y, wrong).passed


def test_gradients_as_a_vector_or_with_parameter_names():
    net, params, X, Y = make_case("mse", "sigmoid")
    grads = net.gradients(params, X, Y)
    as_vector = net.gradcheck(params, X, Y, vector(grads, net))
    with_plain_names = net.gradcheck(params, X, Y, {k[1:]: v for k, v in grads.items()})
    assert as_vector.passed and with_plain_names.passed
    np.testing.assert_array_equal(as_vector.grad, with_plain_names.grad)


def test_train_lowers_the_cost_and_checks_before_and_after():
    net, params, X, Y = make_case("binary_cross_entropy", "relu", l2=0.1, m=8)
    trained = net.train(params, X, Y, steps=30, learning_rate=0.5)
    assert net.cost(trained, X, Y) < net.cost(params, X, Y)
    result = net.check_before_and_after_training(params, X, Y, steps=30, learning_rate=0.5)
    assert result.passed and result.before.passed and result.after.passed
    assert result.costs[-1] < result.costs[0] and result.costs.size == 31
    assert net.cost(result.params_after, X, Y) == pytest.approx(result.costs[-1], rel=1e-14)
    # A user's back-prop is checked at both points.
    buggy = lambda p, X_, Y_: dict(net.gradients(p, X_, Y_), db1=net.gradients(p, X_, Y_)["db1"] * 4)  # noqa: E731
    assert not net.check_before_and_after_training(params, X, Y, buggy, steps=5).passed


def test_caller_arrays_are_never_modified():
    net, params, X, Y = make_case("softmax_cross_entropy", "relu", l2=0.2, dropout=0.3)
    grads = net.gradients(params, X, Y)
    saved = {k: v.copy() for k, v in params.items()}, X.copy(), Y.copy(), {k: v.copy() for k, v in grads.items()}
    net.cost(params, X, Y)
    net.gradcheck(params, X, Y, grads)
    net.gradcheck(params, X, Y, grads, method="complex")
    net.gradcheck(params, X, Y, grads, mode="directional")
    net.train(params, X, Y, steps=3)
    net.check_before_and_after_training(params, X, Y, steps=3)
    naive.naive_numerical_gradient(net, params, X, Y, indices=[0, 5])
    for name in params:
        np.testing.assert_array_equal(params[name], saved[0][name])
        np.testing.assert_array_equal(grads["d" + name], saved[3]["d" + name])
    np.testing.assert_array_equal(X, saved[1])
    np.testing.assert_array_equal(Y, saved[2])


def test_ctrl_c_gives_the_partial_report_and_leaves_arrays_alone(monkeypatch):
    net, params, X, Y = make_case("mse", "tanh", sizes=[20, 20, 2], m=3)
    saved = {k: v.copy() for k, v in params.items()}
    real_kernel = _dense_kernels.perturbed_costs
    calls = []

    def interrupted_after_one_chunk(*args):
        if args[8].size > 1:  # a chunk of the check (the noise lines move one component each)
            calls.append(args[8].size)
            if len(calls) > 1:
                raise KeyboardInterrupt
        return real_kernel(*args)

    monkeypatch.setattr(_dense_kernels, "perturbed_costs", interrupted_after_one_chunk)
    with pytest.raises(fastgrad.CheckInterrupted) as caught:
        net.gradcheck(params, X, Y, engine="generic", progress=False)
    partial = caught.value.partial
    assert isinstance(partial, fastgrad.Report) and partial.interrupted
    assert partial.checked == calls[0] < net.n_params
    assert partial.verdict == "inconclusive"  # nothing failed, but not everything was checked
    assert any("interrupted" in note for note in partial.notes)
    for name in params:
        np.testing.assert_array_equal(params[name], saved[name])


# --------------------------------------------------------------------------- #
# Bad input: clear errors, before any compiled code runs
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (([4, 3], "rleu", "mse"), ValueError, r"Unknown activation 'rleu' for the hidden layers; valid activations: linear, relu, leaky_relu, tanh, sigmoid"),
        (([4, 3, 2], ["relu", "soft"], "mse"), ValueError, r"Unknown activation 'soft' for layer 2; valid"),
        (([4, 3], "relu", "hinge"), ValueError, r"Unknown loss 'hinge'; valid losses: binary_cross_entropy, softmax_cross_entropy, mse"),
        (([4, 3], ["relu", "sigmoid"], "softmax_cross_entropy"), ValueError, r"activations lists 2 name\(s\) but the network has 1 layer"),
        (([4, 5, 3], ["relu", "sigmoid"], "softmax_cross_entropy"), ValueError, r"output activation must be 'linear', not 'sigmoid'"),
        (([4, 5, 1], ["relu", "linear"], "binary_cross_entropy"), ValueError, r"binary_cross_entropy needs a 'sigmoid' output activation"),
        (([4, 1], "relu", "softmax_cross_entropy"), ValueError, r"needs at least 2 outputs"),
        (([4], "relu", "mse"), ValueError, r"at least two sizes"),
        (([4, 0, 1], "relu", "mse"), ValueError, r"layer_sizes\[1\] = 0; every layer needs at least one unit"),
        (([4, 2.5, 1], "relu", "mse"), TypeError, r"layer_sizes\[1\] = 2.5 is not an integer"),
    ],
)
def test_bad_network_definitions(arguments, error, match):
    with pytest.raises(error, match=match):
        DenseNet(*arguments)


def test_bad_options():
    with pytest.raises(ValueError, match=r"l2 must be a finite number >= 0, got -1"):
        DenseNet([2, 1], "relu", "mse", l2=-1)
    with pytest.raises(ValueError, match=r"dropout rate 1.0 is outside \[0, 1\)"):
        DenseNet([2, 3, 1], "relu", "mse", dropout=1.0)
    with pytest.raises(ValueError, match=r"dropout lists 1 rate\(s\) but the network has 2 hidden layer"):
        DenseNet([2, 3, 3, 1], "relu", "mse", dropout=[0.5])
    with pytest.raises(ValueError, match=r"output= goes with a single hidden activation"):
        DenseNet([2, 3, 1], ["relu", "linear"], "mse", output="tanh")


@pytest.fixture
def no_kernels(monkeypatch):
    """Fail the test if any dense kernel (compiled, or the NumPy back-prop) is reached."""

    def refuse(*args, **kwargs):
        raise AssertionError("a kernel ran before the input was validated")

    for name in ("forward_cost", "perturbed_costs"):
        monkeypatch.setattr(_dense_kernels, name, refuse)
    for name in ("forward_cost", "cost_and_gradient"):  # the back-prop, in NumPy
        monkeypatch.setattr(_dense_numpy, name, refuse)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda p, X, Y: ({k: v for k, v in p.items() if k != "b2"}, X, Y), ValueError, r"params is missing block 'b2': layer_sizes \[4, 5, 3, 1\] need W1, b1, W2, b2, W3, b3"),
        (lambda p, X, Y: (dict(p, W4=np.ones((1, 1))), X, Y), ValueError, r"params has an unexpected block 'W4'"),
        (lambda p, X, Y: (dict(p, W2=np.ones((3, 4))), X, Y), ValueError, r"W2 has shape \(3, 4\) but layer_sizes \[4, 5, 3, 1\] need \(3, 5\)"),
        (lambda p, X, Y: (dict(p, b1=np.zeros(5)), X, Y), ValueError, r"b1 has shape \(5,\) but .* need \(5, 1\) \(reshape the bias into a column"),
        (lambda p, X, Y: (dict(p, W3=np.array([[1.0, np.nan, 0.0]])), X, Y), ValueError, r"params\['W3'\] contains nan at index \(0, 1\)"),
        (lambda p, X, Y: (dict(p, W1=p["W1"] + 0j), X, Y), TypeError, r"params\['W1'\] is complex"),
        (lambda p, X, Y: ([1, 2], X, Y), TypeError, r"params must be a dict of W1, b1"),
        (lambda p, X, Y: (p, X[:3], Y), ValueError, r"X has shape \(3, 3\) but layer_sizes\[0\] = 4 needs \(4, m\)"),
        (lambda p, X, Y: (p, np.ones((3, 4)), Y), ValueError, r"It looks transposed: .* pass X.T"),
        (lambda p, X, Y: (p, np.where(X > 1, np.inf, X), Y), ValueError, r"X contains inf at index"),
        (lambda p, X, Y: (p, X, np.array([1, 0])), ValueError, r"Y has shape \(2,\) but 1 output\(s\) and X's 3 example\(s\) need \(1, 3\)"),
        (lambda p, X, Y: (p, X, np.array([1, 2, 0])), ValueError, r"Y must lie in \[0, 1\] for binary_cross_entropy, but Y\(0, 1\) = 2.0"),
        (lambda p, X, Y: (p, X, np.array([1, np.nan, 0])), ValueError, r"Y contains nan at index"),
        (lambda p, X, Y: (p, X, np.array(["a", "b", "c"])), TypeError, r"Y has dtype <U1; pass numbers"),
    ],
)
@pytest.mark.parametrize("call", ["cost", "gradients", "gradcheck", "train"])
def test_bad_parameters_and_data_are_refused_before_any_kernel(no_kernels, change, error, match, call):
    net, params, X, Y = course_network()
    params, X, Y = change(params, X, Y)
    with pytest.raises(error, match=match):
        getattr(net, call)(params, X, Y)


def test_bad_labels_for_softmax_and_bad_check_options(no_kernels):
    net = DenseNet([2, 3], ["linear"], "softmax_cross_entropy")
    params = {"W1": np.ones((3, 2)), "b1": np.zeros((3, 1))}
    X = np.ones((2, 2))
    with pytest.raises(ValueError, match=r"Y must be one-hot for softmax_cross_entropy .* column 1 is \[0.5, 0.5, 0.0\]. Convert class labels with np.eye\(3\)\[labels\].T"):
        net.cost(params, X, np.array([[1.0, 0.5], [0.0, 0.5], [0.0, 0.0]]))
    Y = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"grad has 8 components but theta has 9"):
        net.gradcheck(params, X, Y, np.ones(8))
    with pytest.raises(ValueError, match=r"grad contains nan at index 4"):
        net.gradcheck(params, X, Y, np.where(np.arange(9) == 4, np.nan, 1.0))
    with pytest.raises(ValueError, match=r"Block 'b1' is missing"):
        net.gradcheck(params, X, Y, {"dW1": np.ones((3, 2))})
    with pytest.raises(ValueError, match=r"eps must be positive and finite"):
        net.gradcheck(params, X, Y, eps=-1.0)
    with pytest.raises(ValueError, match=r"Unknown method 'secant'"):
        net.gradcheck(params, X, Y, method="secant")
    with pytest.raises(ValueError, match=r"Unknown mode 'fast'"):
        net.gradcheck(params, X, Y, mode="fast")
    with pytest.raises(ValueError, match=r"Give either indices= or sample=, not both"):
        net.gradcheck(params, X, Y, indices=[0], sample=1)
    with pytest.raises(IndexError, match=r"Component index 9 is outside theta"):
        net.gradcheck(params, X, Y, indices=[9])
    with pytest.raises(ValueError, match=r"steps must be a whole number >= 0"):
        net.train(params, X, Y, steps=-1)
    with pytest.raises(ValueError, match=r"learning_rate must be a positive finite number, got 0"):
        net.check_before_and_after_training(params, X, Y, learning_rate=0)


# --------------------------------------------------------------------------- #
# "fastgrad: compiling kernels for ...", once
# --------------------------------------------------------------------------- #


def _run_script(script: str, cache: str, **env) -> subprocess.CompletedProcess:
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache, **env)
    environment.pop("FASTGRAD_QUIET", None)
    environment.update(env)
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], env=environment, capture_output=True, text=True,
        timeout=600, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert run.returncode == 0, run.stderr
    return run


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="nothing is compiled with NUMBA_DISABLE_JIT")
def test_first_compilation_is_announced_and_a_cached_run_is_silent(tmp_path):
    script = """
        import numpy as np
        from fastgrad.dense import DenseNet
        net = DenseNet([2, 3, 1], "tanh", "mse")
        print(net.cost(net.init(0), np.ones((2, 4)), np.zeros(4)))
        """
    runs = [_run_script(script, str(tmp_path / "numba-cache")) for _ in range(2)]
    notice = [line for line in runs[0].stderr.splitlines() if line.startswith("fastgrad: compiling kernels")]
    # one line: the network, the first-run estimate, a dot per further function, the time taken
    assert len(notice) == 1, runs[0].stderr
    assert notice[0].startswith("fastgrad: compiling kernels for tanh/linear/mse (first run only, ~")
    assert notice[0].rstrip().endswith(" s") and " done in " in notice[0]
    assert "compiling" not in runs[1].stderr
    assert runs[0].stdout == runs[1].stdout
    # FASTGRAD_QUIET silences it on a miss
    quiet = _run_script(script, str(tmp_path / "other-cache"), FASTGRAD_QUIET="1")
    assert "compiling" not in quiet.stderr
    assert quiet.stdout == runs[0].stdout


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="nothing is compiled with NUMBA_DISABLE_JIT")
def test_a_relu_check_compiles_only_its_own_kernels(tmp_path):
    """A ReLU network under binary cross-entropy compiles one variant of the perturbation
    kernels (its loss, no smooth hidden layers): not the tanh / sigmoid paths, not the other
    losses' variants, each kernel for one signature; a second process loads them all."""
    script = """
        import json, sys
        from numba.core import event
        compiled = []
        class Listener(event.Listener):
            def on_start(self, ev):
                function = ev.data["dispatcher"].py_func
                if function.__module__.startswith("fastgrad"):
                    compiled.append([function.__qualname__, getattr(function, "_fastgrad_variant", "")])
            def on_end(self, ev):
                pass
        event.register("numba:compile", Listener())
        import fastgrad
        from fastgrad.naive import course_case
        X, Y, params = course_case()
        # engine="dense": the compiled kernels (a small check in a new process runs in NumPy)
        report = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy").gradcheck(
            params, X, Y, progress=False, engine="dense")
        print(json.dumps([report.passed, compiled]))
        """
    cache = str(tmp_path / "numba-cache")
    cold = _run_script(script, cache)
    passed, compiled = json.loads(cold.stdout.strip().splitlines()[-1])
    assert passed
    names = [name for name, _ in compiled]
    assert "_run_chunk" in names and "_base_forward" in names
    # the smooth activations' kernel is not compiled, and only one variant of any kernel
    assert "_smooth_changes" not in names
    assert {variant for _, variant in compiled if variant} == {"LOSS=0,SMOOTH=False"}
    assert len(names) == len(set(names)), names  # no function compiled twice (one signature each)
    assert cold.stderr.count("fastgrad: compiling kernels for relu/sigmoid/binary_cross_entropy") == 1
    warm = _run_script(script, cache)
    assert json.loads(warm.stdout.strip().splitlines()[-1]) == [True, []]
    assert "compiling" not in warm.stderr
