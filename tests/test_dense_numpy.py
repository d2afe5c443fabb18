"""The NumPy path of small dense checks (``fastgrad._dense_numpy``) against the compiled kernels.

A small ``DenseNet.gradcheck`` with ``engine="auto"`` and a real method runs
in NumPy (issue 13, start-up), whatever the process ran before; its values
agree with the compiled ones to rounding and its verdicts are the same.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad
from fastgrad import _dense_engine, _dense_kernels, _dense_numpy
from fastgrad.naive import course_backward, course_backward_with_bugs, course_case

import reference

NETWORKS = [
    ([4, 5, 3, 1], "relu", "binary_cross_entropy", {}),
    ([3, 4, 2], "leaky_relu", "softmax_cross_entropy", {}),
    ([3, 4, 3, 2], "tanh", "mse", {"l2": 0.1}),
    ([2, 3, 1], "sigmoid", "binary_cross_entropy", {"dropout": 0.3, "dropout_seed": 2}),
    ([3, 3, 2], "linear", "mse", {"output": "tanh"}),
    ([3, 4, 3], "relu", "softmax_cross_entropy", {"l2": 0.05, "dropout": 0.2}),
    ([2, 3, 2], "tanh", "mse", {"output": "sigmoid"}),
    ([2, 4, 1], "relu", "mse", {"output": "relu"}),
]


def _case(sizes, activation, loss, extra, m=5, seed=0):
    net = fastgrad.DenseNet(sizes, activation, loss, **extra)
    rng = np.random.default_rng(seed)
    params = net.init(seed=seed)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}
    X = rng.standard_normal((sizes[0], m))
    if loss == "softmax_cross_entropy":
        Y = np.eye(sizes[-1])[:, rng.integers(0, sizes[-1], m)]
    elif loss == "binary_cross_entropy":
        Y = (rng.random((sizes[-1], m)) < 0.5).astype(float)
    else:
        Y = rng.standard_normal((sizes[-1], m))
    theta = net.pack(params)
    X, Y = net._data(X, Y)
    return net, params, X, Y, theta, net._kernel_args(X, Y)


@pytest.mark.parametrize("sizes, activation, loss, extra", NETWORKS)
def test_cost_gradient_and_example_losses_agree_with_the_kernels(sizes, activation, loss, extra):
    net, params, X, Y, theta, args = _case(sizes, activation, loss, extra)
    cost, grad = _dense_numpy.cost_and_gradient(args, theta)
    assert cost == pytest.approx(_dense_kernels.forward_cost(theta, *args), rel=1e-14)
    # The back-prop (DenseNet's, for every network) against the tests' plain reference.
    scales = net.dropout_scales(X.shape[1])
    expected = reference.gradients(params, X, Y, net.activations, loss, net.l2, scales)
    expected = np.concatenate([expected["d" + name].ravel() for name in net.layout.names])
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)
    assert _dense_numpy.forward_cost(args, theta) == pytest.approx(_dense_kernels.forward_cost(theta, *args), rel=1e-14)
    layer_sizes, activations, loss_code, _, _, _, dropout = args
    np.testing.assert_allclose(_dense_numpy.example_losses(args, theta),
                               _dense_kernels.per_example_losses(theta, layer_sizes, activations, loss_code, X, Y, dropout),
                               rtol=1e-14)


@pytest.mark.parametrize("sizes, activation, loss, extra", NETWORKS)
def test_perturbed_differences_and_kinks_agree_with_the_dense_engine(sizes, activation, loss, extra):
    net, _, X, Y, theta, args = _case(sizes, activation, loss, extra)
    indices = np.arange(theta.size, dtype=np.int64)
    steps = np.array([1e-6, -1e-6, 0.3, -0.3])
    points = theta[:, None] + steps[None, :]
    values, kinks, status = _dense_numpy.perturbed_differences(args, theta, indices, points)
    layer_sizes, activations, loss_code, l2, X, Y, dropout = args
    base = _dense_engine.prepare(layer_sizes, activations, loss_code, l2, theta, X, Y, dropout)
    expected, expected_kinks, expected_status = _dense_engine.cost_differences(base, indices, points)
    # The changes are carried without cancellation, as the compiled engine carries them.
    scale = np.abs(steps)[None, :] * (1.0 + np.abs(_dense_numpy.cost_and_gradient(args, theta)[1]))[:, None]
    assert np.all(np.abs(values - expected) <= 1e-13 * scale + 1e-18)
    np.testing.assert_array_equal(kinks, expected_kinks)
    np.testing.assert_array_equal(status, expected_status)


def _verdicts(report):
    return report.verdict, sorted((b.name, b.verdict) for b in report.blocks)


@pytest.mark.parametrize("sizes, activation, loss, extra", NETWORKS)
@pytest.mark.parametrize("wrong", [False, True])
def test_checks_give_the_compiled_verdicts(sizes, activation, loss, extra, wrong):
    net, params, X, Y, theta, args = _case(sizes, activation, loss, extra)
    grads = net.gradients(params, X, Y)
    if wrong:
        grads = dict(grads)
        grads["dW1"] = grads["dW1"] * 1.001
    assert _dense_numpy.is_small(net.layer_sizes, theta.size, X.shape[1])
    compiled = net.gradcheck(params, X, Y, grads, progress=False, engine="dense")
    in_numpy = net.gradcheck(params, X, Y, grads, progress=False)
    assert _verdicts(in_numpy) == _verdicts(compiled)
    np.testing.assert_allclose(in_numpy.approx, compiled.approx, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("options", [{}, {"eps": 1e-7, "threshold": 1e-7}, {"mode": "directional"}, {"sample": 2}])
def test_the_course_checks_give_the_compiled_verdicts(options):
    X, Y, params = course_case()
    net = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
    for backward in (course_backward, course_backward_with_bugs):
        grads = backward(X, Y, params)
        compiled = net.gradcheck(params, X, Y, grads, progress=False, engine="dense", **options)
        in_numpy = net.gradcheck(params, X, Y, grads, progress=False, **options)
        assert _verdicts(in_numpy) == _verdicts(compiled)
        assert sorted(in_numpy.failing_blocks) == sorted(compiled.failing_blocks)
    # The course's number, as the compiled path gives it (the course's own loop prints 0.2850931567761623).
    if options.get("eps") == 1e-7:
        assert in_numpy.difference == pytest.approx(0.2850931567761623, rel=1e-6)


def test_the_correct_course_gradient_is_as_close_as_compiled():
    X, Y, params = course_case()
    net = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
    grads = course_backward(X, Y, params)
    in_numpy = net.gradcheck(params, X, Y, grads, progress=False)
    compiled = net.gradcheck(params, X, Y, grads, progress=False, engine="dense")
    assert in_numpy.difference < 1e-12  # was ~1.5e-11 with the per-example differences of two forward passes
    assert in_numpy.difference == pytest.approx(compiled.difference, rel=1e-3)


def test_the_path_depends_on_the_call_not_on_what_the_process_ran_before():
    """The same call gives the same bits before and after the compiled kernels are loaded."""
    net, params, X, Y, theta, args = _case([4, 5, 3, 1], "relu", "binary_cross_entropy", {}, seed=3)
    first = net.gradcheck(params, X, Y, progress=False)
    net.gradcheck(params, X, Y, progress=False, engine="dense")  # loads (or reuses) the compiled kernels
    _dense_kernels.forward_cost(theta, *args)
    again = net.gradcheck(params, X, Y, progress=False)
    for field in ("approx", "error", "state"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert first.difference == again.difference


def test_a_large_network_or_an_explicit_engine_stays_compiled(monkeypatch):
    used = []
    original = _dense_numpy.perturbed_differences
    monkeypatch.setattr(_dense_numpy, "perturbed_differences", lambda *a: used.append(1) or original(*a))
    net, params, X, Y, theta, args = _case([4, 5, 3, 1], "relu", "binary_cross_entropy", {})
    net.gradcheck(params, X, Y, progress=False, engine="dense")
    assert used == []
    big = fastgrad.DenseNet([30, 40, 2], "relu", "mse")
    big_params = big.init(seed=1)
    rng = np.random.default_rng(1)
    big.gradcheck(big_params, rng.standard_normal((30, 20)), rng.standard_normal((2, 20)), progress=False, sample=1)
    assert used == []
    net.gradcheck(params, X, Y, progress=False, method="complex")
    assert used == []
    net.gradcheck(params, X, Y, progress=False)
    assert used


@pytest.mark.parametrize("bias", [-30.0, -36.0, -45.0])
def test_backprop_keeps_its_digits_through_saturated_sigmoid_units(bias):
    """A sigmoid unit far below 0 passes on a tiny slope; ``(1 + tanh(z / 2)) / 2`` loses it (3.5% off at -36)."""
    net = fastgrad.DenseNet([6, 5, 3], "sigmoid", "softmax_cross_entropy")
    params = net.init(seed=4)
    params["b1"] = np.full_like(params["b1"], bias)
    rng = np.random.default_rng(4)
    X = 0.1 * rng.standard_normal((6, 40))
    Y = np.eye(3)[:, rng.integers(0, 3, 40)]
    grads = net.gradients(params, X, Y)
    expected = reference.gradients(params, X, Y, net.activations, "softmax_cross_entropy")
    for name in ("dW1", "db1"):
        assert np.all(expected[name] != 0.0)
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-9, err_msg=name)
