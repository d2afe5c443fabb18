"""The structure-exploiting dense kernel against a plain full recomputation of the cost.

The reference here is deliberately the naive thing: rebuild the parameters with
one component replaced, run the whole forward pass in extended precision
(``numpy.longdouble``) and subtract the cost at theta. The kernel must agree
to rounding on every component of every layer, for every activation and loss,
with and without L2 and dropout, for small steps (its polynomial fast path)
and large ones (its exact fallback path), and flag exactly the components
whose perturbation moves a ReLU / leaky-ReLU pre-activation across zero.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from fastgrad import _dense_kernels
from fastgrad._dense_engine import (
    POLY_LIMIT,
    SERIES_LIMIT,
    SERIES_TERMS,
    DenseBase,
    _expm1_small,
    _log1p_small,
    _tanh_small,
    cost_differences,
    kernel_is_cached,
    perturbed_cost_differences,
    prepare,
)
from fastgrad._dense_spec import ACTIVATIONS, LEAKY_SLOPE, LOSSES

KINKED = ("relu", "leaky_relu")


# --------------------------------------------------------------------------- #
# Plain NumPy reference, in extended precision
# --------------------------------------------------------------------------- #
def _activation(name, z):
    if name == "linear":
        return z
    if name == "relu":
        return np.where(z > 0, z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_SLOPE * z)
    if name == "tanh":
        return np.tanh(z)
    return 1 / (1 + np.exp(-z))  # sigmoid


def _unpack(theta, sizes):
    weights, offset = [], 0
    for l in range(1, len(sizes)):
        n_out, n_in = sizes[l], sizes[l - 1]
        W = theta[offset : offset + n_out * n_in].reshape(n_out, n_in)
        offset += n_out * n_in
        b = theta[offset : offset + n_out].reshape(n_out, 1)
        offset += n_out
        weights.append((W, b))
    return weights


def reference_forward(theta, sizes, activations, loss, l2, X, Y, dropout):
    """Cost and the list of (Z, keep) per layer; keep marks units that reach the cost."""
    theta = theta.astype(np.longdouble)
    A = X.astype(np.longdouble)
    m = X.shape[1]
    layers = []
    row = 0
    for l, (W, b) in enumerate(_unpack(theta, sizes), start=1):
        Z = W @ A + b
        A = _activation(activations[l - 1], Z)
        keep = np.ones_like(Z, dtype=bool)
        if dropout.shape[0] and l < len(sizes) - 1:
            scale = dropout[row : row + sizes[l]].astype(np.longdouble)
            row += sizes[l]
            A = A * scale
            keep = scale != 0
        layers.append((Z, keep))
    Z_out = layers[-1][0]
    if loss == "softmax_cross_entropy":
        shifted = Z_out - Z_out.max(axis=0)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=0))
        total = -np.sum(Y * log_softmax)
    elif loss == "binary_cross_entropy":
        total = np.sum(-Y * np.log(A) - (1 - Y) * np.log(1 - A))
    else:
        total = np.sum((A - Y) ** 2) / 2
    cost = total / m
    if l2:
        cost += l2 / (2 * m) * sum(np.sum(W**2) for W, _ in _unpack(theta, sizes))
    return cost, layers


def reference_example_losses(theta, sizes, activations, loss, X, Y, dropout):
    """Loss of each example (column), no L2 penalty, in extended precision."""
    theta = theta.astype(np.longdouble)
    A = X.astype(np.longdouble)
    row = 0
    for l, (W, b) in enumerate(_unpack(theta, sizes), start=1):
        Z = W @ A + b
        A = _activation(activations[l - 1], Z)
        if dropout.shape[0] and l < len(sizes) - 1:
            A = A * dropout[row : row + sizes[l]].astype(np.longdouble)
            row += sizes[l]
    if loss == "softmax_cross_entropy":
        shifted = Z - Z.max(axis=0)
        return -np.sum(Y * (shifted - np.log(np.exp(shifted).sum(axis=0))), axis=0)
    if loss == "binary_cross_entropy":
        return np.sum(-Y * np.log(A) - (1 - Y) * np.log(1 - A), axis=0)
    return np.sum((A - Y) ** 2, axis=0) / 2


def reference_differences(theta, sizes, activations, loss, l2, X, Y, dropout, indices, points):
    """Full recomputation at every point: differences and kink flags."""
    base, base_layers = reference_forward(theta, sizes, activations, loss, l2, X, Y, dropout)
    deltas = np.empty(points.shape, dtype=np.longdouble)
    kinks = np.zeros(indices.size, dtype=np.uint8)
    kinked_layers = [l for l, name in enumerate(activations) if name in KINKED]
    if loss != "mse":  # cross-entropies read the logits: the output activation is not used
        kinked_layers = [l for l in kinked_layers if l < len(activations) - 1]
    for r, k in enumerate(indices):
        for p, value in enumerate(points[r]):
            moved = theta.copy()
            moved[k] = value
            cost, layers = reference_forward(moved, sizes, activations, loss, l2, X, Y, dropout)
            deltas[r, p] = cost - base
            for l in kinked_layers:
                Z0, keep = base_layers[l]
                if np.any(((layers[l][0] > 0) != (Z0 > 0)) & keep):
                    kinks[r] = 1
    return deltas, kinks


# --------------------------------------------------------------------------- #
# Cases
# --------------------------------------------------------------------------- #
def make_case(sizes, hidden, output, loss, *, m=5, seed=0, l2=0.0, keep_prob=None):
    rng = np.random.default_rng(seed)
    n_layers = len(sizes) - 1
    activations = [hidden] * (n_layers - 1) + [output]
    theta = []
    for l in range(1, n_layers + 1):
        theta.append(rng.standard_normal(sizes[l] * sizes[l - 1]) / np.sqrt(sizes[l - 1]))
        theta.append(0.3 * rng.standard_normal(sizes[l]))
    theta = np.concatenate(theta)
    if output in KINKED:
        theta[-sizes[-1] :] += 1.0  # mostly on the sloped side, so the output moves
    X = rng.standard_normal((sizes[0], m))
    n_out = sizes[-1]
    if loss == "softmax_cross_entropy":
        Y = np.eye(n_out)[:, rng.integers(0, n_out, m)]
    elif loss == "binary_cross_entropy":
        Y = rng.integers(0, 2, (n_out, m)).astype(float)
    else:
        Y = rng.standard_normal((n_out, m))
    n_hidden = sum(sizes[1:-1])
    if keep_prob is None:
        dropout = np.zeros((0, m))
    else:
        dropout = (rng.random((n_hidden, m)) < keep_prob) / keep_prob
    return dict(
        sizes=list(sizes), activations=activations, loss=loss, l2=l2,
        theta=theta, X=X, Y=Y, dropout=dropout,
    )


def run_kernel(case, indices, points, **kwargs):
    return perturbed_cost_differences(*network_arguments(case), indices, points, **kwargs)


def network_arguments(case):
    """The network as the kernels take it: layer_sizes, activations, loss, l2, theta, X, Y, dropout_scale."""
    return (
        np.array(case["sizes"], dtype=np.int64),
        np.array([ACTIVATIONS[a] for a in case["activations"]], dtype=np.int64),
        LOSSES[case["loss"]], case["l2"], case["theta"], case["X"], case["Y"], case["dropout"],
    )


def run_reference(case, indices, points):
    return reference_differences(
        case["theta"], case["sizes"], case["activations"], case["loss"], case["l2"],
        case["X"], case["Y"], case["dropout"], indices, points,
    )


def central_points(theta, indices, h):
    return np.stack([theta[indices] + h, theta[indices] - h], axis=1)


LOSS_OUTPUTS = [
    ("softmax_cross_entropy", "linear"),
    ("binary_cross_entropy", "sigmoid"),
    ("mse", "linear"),
    ("mse", "sigmoid"),
    ("mse", "tanh"),
    ("mse", "relu"),
]
HIDDEN = ["relu", "leaky_relu", "tanh", "sigmoid", "linear"]
SETTINGS = [dict(), dict(l2=0.7, keep_prob=0.6)]


def assert_close_to_reference(case, deltas, ref, scale=1.0):
    # The reference rounds in extended precision; the kernel's error is a few
    # float64 roundings of the per-example loss changes.
    error = np.abs(deltas - ref.astype(np.float64))
    assert error.max() <= 4e-15 * scale, f"largest error {error.max():.3g}"


# --------------------------------------------------------------------------- #
# Tests
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("setting", SETTINGS, ids=["plain", "l2+dropout"])
@pytest.mark.parametrize("loss,output", LOSS_OUTPUTS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_matches_full_recomputation_small_steps(hidden, loss, output, setting):
    seed = 10 * HIDDEN.index(hidden) + LOSS_OUTPUTS.index((loss, output))
    case = make_case([4, 5, 3, 2], hidden, output, loss, seed=seed, **setting)
    indices = np.arange(case["theta"].size, dtype=np.int64)  # every layer, weights and biases
    # 6e-4 moves the logits by up to about 1e-3, where the fast path's
    # polynomials are used at the edge of their range.
    h = 1e-4 if setting else 6e-4
    points = central_points(case["theta"], indices, h)
    deltas, kinks, status = run_kernel(case, indices, points)
    ref, ref_kinks = run_reference(case, indices, points)
    assert deltas.shape == points.shape
    assert not status.any()
    assert np.abs(ref).max() > 1e-6  # the check is not vacuous
    assert_close_to_reference(case, deltas, ref)
    np.testing.assert_array_equal(kinks, ref_kinks)


@pytest.mark.parametrize("loss,output", LOSS_OUTPUTS[:3])
@pytest.mark.parametrize("hidden", ["relu", "tanh", "leaky_relu"])
def test_matches_full_recomputation_large_steps(hidden, loss, output):
    # Steps of 0.05 to 0.8 leave the fast path's margins: kinks are crossed
    # and the exact path pushes the change through the remaining layers.
    case = make_case([3, 6, 4, 3], hidden, output, loss, m=7, seed=3, l2=0.2, keep_prob=0.75)
    indices = np.arange(case["theta"].size, dtype=np.int64)
    offsets = np.array([0.8, -0.05, 0.3])
    points = case["theta"][indices, None] + offsets
    deltas, kinks, status = run_kernel(case, indices, points)
    ref, ref_kinks = run_reference(case, indices, points)
    assert not status.any()
    assert_close_to_reference(case, deltas, ref, scale=10.0)
    np.testing.assert_array_equal(kinks, ref_kinks)
    if hidden != "tanh":
        assert kinks.sum() > 0  # the exact path was exercised


@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_deeper_network_middle_layers(hidden):
    # Two hidden layers downstream of the first: the margin and direction of a
    # perturbation are carried through a middle layer.
    case = make_case([3, 5, 4, 4, 2], hidden, "linear", "softmax_cross_entropy", m=6, seed=11, keep_prob=0.8)
    indices = np.arange(case["theta"].size, dtype=np.int64)
    for h in (1e-5, 0.2):
        points = central_points(case["theta"], indices, h)
        deltas, kinks, _ = run_kernel(case, indices, points)
        ref, ref_kinks = run_reference(case, indices, points)
        assert_close_to_reference(case, deltas, ref, scale=1.0 if h < 1e-3 else 10.0)
        np.testing.assert_array_equal(kinks, ref_kinks)


@pytest.mark.parametrize("loss,output,n_out", [
    ("binary_cross_entropy", "sigmoid", 1),
    ("softmax_cross_entropy", "linear", 3),
    ("mse", "relu", 2),
])
def test_single_layer_network(loss, output, n_out):
    # Logistic / softmax regression: the only layer is the output layer.
    case = make_case([6, n_out], "relu", output, loss, m=4, seed=7)
    indices = np.arange(case["theta"].size, dtype=np.int64)
    for h in (1e-4, 0.3):
        points = central_points(case["theta"], indices, h)
        deltas, kinks, _ = run_kernel(case, indices, points)
        ref, ref_kinks = run_reference(case, indices, points)
        assert_close_to_reference(case, deltas, ref, scale=1.0 if h < 1e-3 else 10.0)
        np.testing.assert_array_equal(kinks, ref_kinks)


def test_one_point_and_unequal_points():
    case = make_case([4, 5, 3, 2], "relu", "linear", "softmax_cross_entropy", seed=5)
    indices = np.array([30, 0, 47, 24, 3, 24], dtype=np.int64)  # unsorted, repeated, every layer
    theta = case["theta"]
    for points in (theta[indices, None] + 1e-3, theta[indices, None] + np.array([2e-4, -1e-5, 0.0, 3e-3])):
        deltas, _, _ = run_kernel(case, indices, points)
        ref, _ = run_reference(case, indices, points)
        assert_close_to_reference(case, deltas, ref)
    assert np.all(deltas[:, 2] == 0.0)  # theta itself: no change at all


def test_kink_flagged_when_preactivation_sits_on_zero():
    case = make_case([4, 5, 3, 2], "relu", "linear", "softmax_cross_entropy", m=5, seed=2)
    sizes, theta, X = case["sizes"], case["theta"].copy(), case["X"]
    W1 = theta[: sizes[1] * sizes[0]].reshape(sizes[1], sizes[0])
    bias_1 = sizes[1] * sizes[0]  # b1[0]
    # Put Z1[0, 0] within 1e-9 of zero: perturbing W1[0, j] by 1e-6 moves it
    # by 1e-6 X[j, 0], across the kink one way or the other.
    theta[bias_1] = -(W1[0] @ X[:, 0]) + 1e-9
    case["theta"] = theta
    indices = np.arange(theta.size, dtype=np.int64)
    points = central_points(theta, indices, 1e-6)
    deltas, kinks, status = run_kernel(case, indices, points)
    ref, ref_kinks = run_reference(case, indices, points)
    assert not status.any()
    np.testing.assert_array_equal(kinks, ref_kinks)
    row_0 = list(range(sizes[0])) + [bias_1]
    assert kinks[row_0].all()  # every component of row 0 moves Z1[0, 0]
    assert kinks.sum() < theta.size  # and not every component is flagged
    assert_close_to_reference(case, deltas, ref)


def test_kink_downstream_is_flagged():
    # Z2[1, 3] on zero: a perturbation of layer 1 crosses a kink one layer down.
    case = make_case([4, 5, 3, 2], "relu", "linear", "softmax_cross_entropy", m=5, seed=4)
    sizes, theta, X = case["sizes"], case["theta"].copy(), case["X"]
    w1_end = sizes[1] * sizes[0]
    W1 = theta[:w1_end].reshape(sizes[1], sizes[0])
    b1 = theta[w1_end : w1_end + sizes[1]]
    A1 = np.maximum(W1 @ X + b1[:, None], 0.0)
    w2 = w1_end + sizes[1]
    W2 = theta[w2 : w2 + sizes[2] * sizes[1]].reshape(sizes[2], sizes[1])
    theta[w2 + sizes[2] * sizes[1] + 1] = -(W2[1] @ A1[:, 3]) + 1e-10
    case["theta"] = theta
    indices = np.arange(w1_end, dtype=np.int64)  # layer 1 only
    points = central_points(theta, indices, 1e-5)
    deltas, kinks, _ = run_kernel(case, indices, points)
    ref, ref_kinks = run_reference(case, indices, points)
    np.testing.assert_array_equal(kinks, ref_kinks)
    assert kinks.sum() > 0
    assert_close_to_reference(case, deltas, ref)


def test_dropped_unit_is_not_a_kink():
    case = make_case([4, 5, 3, 2], "relu", "linear", "softmax_cross_entropy", m=5, seed=2, keep_prob=0.5)
    sizes, theta, X = case["sizes"], case["theta"].copy(), case["X"]
    dropout = case["dropout"].copy()
    dropout[0, :] = 0.0  # unit 0 of layer 1 dropped for every example
    case["dropout"] = dropout
    W1 = theta[: sizes[1] * sizes[0]].reshape(sizes[1], sizes[0])
    theta[sizes[1] * sizes[0]] = -(W1[0] @ X[:, 0]) + 1e-9
    case["theta"] = theta
    indices = np.arange(sizes[0], dtype=np.int64)  # W1[0, :]
    points = central_points(theta, indices, 1e-6)
    deltas, kinks, _ = run_kernel(case, indices, points)
    assert not kinks.any()
    assert np.all(deltas == 0.0)  # the unit reaches nothing


@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid"])
def test_thread_count_and_chunking_do_not_change_results(hidden):
    case = make_case([30, 16, 8, 4], hidden, "linear", "softmax_cross_entropy", m=16, seed=9, l2=0.1, keep_prob=0.7)
    theta = case["theta"]
    indices = np.arange(theta.size, dtype=np.int64)
    # Steps large enough that some columns take the polynomial formulas and
    # their neighbours the exact ones (and, for ReLU, cross kinks).
    points = central_points(theta, indices, 3e-3)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_kernel(case, indices, points)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = run_kernel(case, indices, points)
    finally:
        numba.set_num_threads(before)
    if hidden == "relu":
        assert one[1].sum() > 0
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    for n_chunks in (3, 7):
        for a, b in zip(one, run_kernel(case, indices, points, n_chunks=n_chunks)):
            np.testing.assert_array_equal(a, b)
    # Evaluated in pieces and in another order: every value the same.
    shuffled = np.random.default_rng(0).permutation(indices.size)
    part = run_kernel(case, indices[shuffled[:100]], points[shuffled[:100]])
    np.testing.assert_array_equal(part[0], one[0][shuffled[:100]])
    np.testing.assert_array_equal(part[1], one[1][shuffled[:100]])


def test_inputs_unchanged():
    case = make_case([4, 5, 3, 2], "relu", "linear", "softmax_cross_entropy", l2=0.5, keep_prob=0.7)
    indices = np.arange(case["theta"].size, dtype=np.int64)
    points = central_points(case["theta"], indices, 1e-3)
    copies = {k: np.copy(v) for k, v in case.items() if isinstance(v, np.ndarray)}
    indices_copy, points_copy = indices.copy(), points.copy()
    run_kernel(case, indices, points)
    for name, value in copies.items():
        np.testing.assert_array_equal(case[name], value)
    np.testing.assert_array_equal(indices, indices_copy)
    np.testing.assert_array_equal(points, points_copy)


def test_non_finite_cost_sets_status():
    case = make_case([4, 5, 3, 2], "relu", "linear", "mse")
    indices = np.array([0, 1, 40], dtype=np.int64)
    points = np.stack([case["theta"][indices] + 1e-3, np.array([1e200, case["theta"][1] - 1e-3, 1e300])], axis=1)
    deltas, _, status = run_kernel(case, indices, points)
    assert status.tolist() == [1, 0, 1]
    assert np.isfinite(deltas[1]).all()


def test_empty_indices():
    case = make_case([4, 5, 3, 2], "relu", "linear", "softmax_cross_entropy")
    deltas, kinks, status = run_kernel(case, np.zeros(0, dtype=np.int64), np.zeros((0, 2)))
    assert deltas.shape == (0, 2) and kinks.shape == (0,) and status.shape == (0,)


def test_misuse_is_refused_before_the_kernel():
    case = make_case([4, 5, 3, 2], "relu", "linear", "softmax_cross_entropy")
    indices = np.array([0, 1], dtype=np.int64)
    points = central_points(case["theta"], indices, 1e-3)
    with pytest.raises(ValueError, match="indices must lie in"):
        run_kernel(case, np.array([0, case["theta"].size], dtype=np.int64), points)
    with pytest.raises(ValueError, match="points must be"):
        run_kernel(case, indices, points[:1])
    bad = dict(case, theta=case["theta"][:-1])
    with pytest.raises(ValueError, match="theta must be a vector of"):
        run_kernel(bad, indices, points)
    bad = dict(case, dropout=np.ones((3, 5)))
    with pytest.raises(ValueError, match="dropout_scale must be"):
        run_kernel(bad, indices, points)
    bad = dict(case, Y=case["Y"][:, :3])
    with pytest.raises(ValueError, match="X must be"):
        run_kernel(bad, indices, points)


def test_kernel_is_cached_after_a_call():
    case = make_case([4, 5, 3, 2], "relu", "linear", "softmax_cross_entropy")
    indices = np.array([0], dtype=np.int64)
    run_kernel(case, indices, central_points(case["theta"], indices, 1e-3))
    _, activations, loss = network_arguments(case)[:3]
    assert kernel_is_cached(loss, activations)


def test_fast_path_polynomials_are_exact_to_rounding():
    # The fast path's expm1 / log1p / tanh are Taylor polynomials, valid only for
    # arguments up to POLY_LIMIT (logits moved by about 1e-3 at most).
    xs = np.concatenate([np.linspace(-POLY_LIMIT, POLY_LIMIT, 2001), [1e-300, -1e-12, 0.0]])
    for x in xs:
        exact = math.expm1(x)
        assert abs(_expm1_small(x) - exact) <= 2.5e-16 * abs(exact)
        s = 1.001 * x
        exact = math.log1p(s)
        assert abs(_log1p_small(s) - exact) <= 2.5e-16 * abs(exact)
        exact = math.tanh(x)
        assert abs(_tanh_small(x) - exact) <= 2.5e-16 * abs(exact)


# --------------------------------------------------------------------------- #
# prepare once, cost_differences per chunk
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("hidden,loss,output", [
    ("relu", "softmax_cross_entropy", "linear"),
    ("tanh", "binary_cross_entropy", "sigmoid"),
    ("leaky_relu", "mse", "relu"),
    ("sigmoid", "mse", "linear"),
])
def test_one_prepare_serves_every_chunking(hidden, loss, output):
    # The set-up is shared by every call: chunks of any size, in any order,
    # repeated, give exactly the values of one call over all components, and
    # the base is not changed by being used.
    case = make_case([12, 9, 6, 3], hidden, output, loss, m=11, seed=21, l2=0.2, keep_prob=0.8)
    theta = case["theta"]
    indices = np.arange(theta.size, dtype=np.int64)
    points = central_points(theta, indices, 2e-3)
    whole = perturbed_cost_differences(*network_arguments(case), indices, points)
    base = prepare(*network_arguments(case))
    assert isinstance(base, DenseBase)
    copies = [np.copy(field) for field in base if isinstance(field, np.ndarray)]
    order = np.random.default_rng(1).permutation(indices.size)
    for size in (1, 17, 100, indices.size):
        got = [np.empty_like(whole[0]), np.empty_like(whole[1]), np.empty_like(whole[2])]
        for start in range(0, indices.size, size):
            rows = order[start : start + size]
            for out, part in zip(got, cost_differences(base, indices[rows], points[rows], n_chunks=3)):
                out[rows] = part
        for a, b in zip(whole, got):
            np.testing.assert_array_equal(a, b)
    for before, after in zip(copies, [field for field in base if isinstance(field, np.ndarray)]):
        np.testing.assert_array_equal(before, after)
    ref, ref_kinks = run_reference(case, indices, points)
    assert_close_to_reference(case, whole[0], ref, scale=10.0)
    np.testing.assert_array_equal(whole[1], ref_kinks)


def test_prepare_holds_the_forward_pass_and_offsets():
    case = make_case([4, 5, 3, 2], "relu", "linear", "softmax_cross_entropy", m=6, seed=3, keep_prob=0.7)
    base = prepare(*network_arguments(case))
    sizes, theta = case["sizes"], case["theta"]
    _, layers = reference_forward(theta, sizes, case["activations"], case["loss"], 0.0, case["X"], case["Y"], case["dropout"])
    for l, (Z, _) in enumerate(layers, start=1):
        rows = slice(base.unit_offset[l], base.unit_offset[l + 1])
        np.testing.assert_allclose(base.Z[rows], Z.astype(np.float64), rtol=1e-13, atol=1e-14)
        assert np.all(base.layer_of_unit[rows] == l)
    for l, (W, b) in enumerate(_unpack(theta, sizes), start=1):
        start = base.weight_offset[l]
        np.testing.assert_array_equal(theta[start : start + W.size].reshape(W.shape), W)
        np.testing.assert_array_equal(theta[base.bias_offset[l] : base.bias_offset[l] + b.size], b.ravel())
    Z_out = layers[-1][0].astype(np.float64)
    softmax = np.exp(Z_out - Z_out.max(axis=0))
    np.testing.assert_allclose(base.P, softmax / softmax.sum(axis=0), rtol=1e-14)


def test_cost_differences_refuses_indices_beyond_the_network():
    case = make_case([4, 5, 3, 2], "relu", "linear", "softmax_cross_entropy")
    base = prepare(*network_arguments(case))
    with pytest.raises(ValueError, match="indices must lie in"):
        cost_differences(base, np.array([case["theta"].size], dtype=np.int64), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="points must be"):
        cost_differences(base, np.array([0, 1], dtype=np.int64), np.zeros((1, 2)))


# --------------------------------------------------------------------------- #
# Shared helpers of the dense kernels
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", HIDDEN)
def test_shared_activation_and_slope_match_numpy(name):
    code = ACTIVATIONS[name]
    zs = np.array([-40.0, -3.0, -1e-3, -0.0, 0.0, 1e-300, 0.5, 2.0, 40.0])
    expected = _activation(name, zs)
    got = np.array([_dense_kernels.activation(code, z) for z in zs])
    np.testing.assert_allclose(got, expected, rtol=2e-16, atol=0.0)
    if name == "relu":  # exactly +0.0 below zero, not -0.0
        assert not np.signbit(got[zs <= 0]).any()
    step = 1e-7
    numeric = (_activation(name, zs + step) - _activation(name, zs - step)) / (2 * step)
    slopes = np.array([_dense_kernels.activation_slope(code, z) for z in zs])
    smooth = np.abs(zs) > 1e-6  # away from the kink
    np.testing.assert_allclose(slopes[smooth], numeric[smooth], rtol=1e-7, atol=1e-12)
    left = {"relu": 0.0, "leaky_relu": LEAKY_SLOPE}.get(name)
    if left is not None:  # at the kink itself: the left slope
        assert _dense_kernels.activation_slope(code, 0.0) == left
    complex_values = np.array([_dense_kernels.activation(code, complex(z, 1e-20)) for z in zs])
    np.testing.assert_allclose(complex_values.real, expected, rtol=1e-15, atol=0.0)


def test_layer_offsets_match_the_course_layout():
    sizes = np.array([7, 5, 3, 2], dtype=np.int64)
    weight_offset, bias_offset = _dense_kernels.layer_offsets(sizes)
    counts = [n * m + n for m, n in zip(sizes[:-1], sizes[1:])]
    starts = np.concatenate([[0], np.cumsum(counts)])
    np.testing.assert_array_equal(weight_offset[1:], starts)
    np.testing.assert_array_equal(bias_offset[1:-1], starts[:-1] + sizes[1:] * sizes[:-1])
    assert bias_offset[-1] == starts[-1]


# --------------------------------------------------------------------------- #
# Per-example losses
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("setting", SETTINGS, ids=["plain", "l2+dropout"])
@pytest.mark.parametrize("loss,output", LOSS_OUTPUTS)
@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_per_example_losses(hidden, loss, output, setting):
    case = make_case([4, 5, 3, 2], hidden, output, loss, m=7, seed=31, **setting)
    sizes, acts, loss_code, l2, theta, X, Y, dropout = network_arguments(case)
    losses = _dense_kernels.per_example_losses(theta, sizes, acts, loss_code, X, Y, dropout)
    expected = reference_example_losses(theta, case["sizes"], case["activations"], loss, X, Y, dropout)
    assert losses.shape == (X.shape[1],) and losses.dtype == np.float64
    np.testing.assert_allclose(losses, expected.astype(np.float64), rtol=1e-14, atol=1e-15)
    assert np.ptp(losses) > 0  # one value per example, not a repeated mean
    cost = _dense_kernels.forward_cost(theta, sizes, acts, loss_code, l2, X, Y, dropout)
    weights = sum(np.sum(W**2) for W, _ in _unpack(theta, case["sizes"]))
    assert cost == pytest.approx(losses.mean() + l2 / (2 * X.shape[1]) * weights, rel=1e-14, abs=0)


# --------------------------------------------------------------------------- #
# The series path (units upstream of a tanh / sigmoid last hidden layer)
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_series_coefficients_give_the_activation_change_to_rounding(name):
    # base.series holds, per example and unit, the power series of
    # g(z + d) - g(z) in d; within SERIES_LIMIT it must equal the change
    # itself to rounding, including where g saturates (large |z|).
    zs = np.array([-30.0, -8.0, -2.5, -0.7, -1e-3, 0.0, 0.4, 1.3, 5.0, 19.0])
    m = zs.size
    case = make_case([1, 1, 1], name, "linear", "mse", m=m)
    theta = np.array([1.0, 0.0, 1.0, 0.0])  # Z_1 = X, so each example's z is chosen
    arguments = list(network_arguments(case))
    arguments[4], arguments[5], arguments[6] = theta, zs.reshape(1, m), np.zeros((1, m))
    base = prepare(*arguments)
    assert base.series.shape == (m, 2, SERIES_TERMS)
    assert not base.series[:, 1].any()  # the output unit (linear) has none
    ds = np.concatenate([np.linspace(-SERIES_LIMIT, SERIES_LIMIT, 101), [1e-300, -1e-9]])
    for e, z in enumerate(zs):
        z_ext = np.longdouble(z)
        for d in ds:
            d_ext = np.longdouble(d)
            # the change in extended precision, by identities free of cancellation
            if name == "tanh":
                exact = np.tanh(d_ext) / np.cosh(z_ext) ** 2 / (1 + np.tanh(z_ext) * np.tanh(d_ext))
            else:
                exact = -np.expm1(-d_ext) * _activation(name, z_ext + d_ext) * _activation(name, -z_ext)
            got = sum(base.series[e, 0, k] * d ** (k + 1) for k in range(SERIES_TERMS))
            assert abs(got - float(exact)) <= 1e-15 * abs(float(exact)) + 1e-300, (z, d)


@pytest.mark.parametrize("first", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("last", ["tanh", "sigmoid"])
@pytest.mark.parametrize("loss,output", LOSS_OUTPUTS[:3])
def test_series_path_at_every_step_the_driver_uses(first, last, loss, output):
    # The check driver evaluates a component at its base step s and at s 2^k,
    # k = -12..6: the series path serves the small changes, and columns whose
    # change leaves SERIES_LIMIT (or moves a logit beyond POLY_LIMIT) are redone
    # by the exact path, column by column, in the same call.
    case = make_case([6, 7, 5, 3], first, output, loss, m=9, seed=41, l2=0.3, keep_prob=0.8)
    case["activations"][1] = last
    theta = case["theta"]
    indices = np.arange(theta.size, dtype=np.int64)
    s = 2e-3 * np.maximum(1.0, np.abs(theta))
    factors = 2.0 ** np.arange(-12, 7)
    points = theta[:, None] + np.concatenate([s[:, None] * factors, -s[:, None] * factors], axis=1)
    deltas, kinks, status = run_kernel(case, indices, points)
    ref, ref_kinks = run_reference(case, indices, points)
    assert not status.any()
    assert_close_to_reference(case, deltas, ref, scale=10.0)
    np.testing.assert_array_equal(kinks, ref_kinks)
    # Relative accuracy of the small differences too (the central difference
    # divides them by 2 s 2^k): a few rounding errors of the loss changes.
    small = np.abs(ref.astype(np.float64)) > 0
    error = np.abs(deltas - ref.astype(np.float64))[small] / np.abs(ref.astype(np.float64))[small]
    assert np.median(error) < 1e-12


@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("loss,output", LOSS_OUTPUTS[:3])
def test_loss_series_is_exact_to_rounding_with_large_output_weights(hidden, loss, output):
    # The loss change of an example is one power series in the perturbed unit's
    # change, composed once per unit and example (degrees 1..6). Output weights
    # 40 times larger move the logits by up to POLY_LIMIT at the larger steps,
    # where the dropped terms (degree >= 7) are largest; a wrong coefficient
    # would leave errors of the order of the squared move (~1e-7), rounding ~1e-17.
    case = make_case([5, 6, 4, 3], hidden, output, loss, m=6, seed=77)
    theta = case["theta"]
    n_out_weights = 3 * 4
    last = theta.size - 3 - n_out_weights
    # (x 8 under binary cross-entropy: the reference's log(1 - sigmoid) in
    # extended precision loses digits of its own once the outputs saturate.)
    theta[last:last + n_out_weights] *= 8.0 if loss == "binary_cross_entropy" else 40.0
    indices = np.arange(theta.size, dtype=np.int64)
    for h in (2e-5, 1e-4, 5e-4, 2e-3):
        points = central_points(theta, indices, h * np.maximum(1.0, np.abs(theta)))
        deltas, kinks, status = run_kernel(case, indices, points)
        ref, ref_kinks = run_reference(case, indices, points)
        assert not status.any()
        assert np.abs(ref).max() > 1e-6  # the logits really move
        assert_close_to_reference(case, deltas, ref, scale=10.0)
        np.testing.assert_array_equal(kinks, ref_kinks)


@pytest.mark.parametrize("loss,expected", [("mse", 0.5 * math.tanh(1.0) ** 2), ("softmax_cross_entropy", None)])
def test_series_path_keeps_the_relu_margin_when_nothing_reaches_the_smooth_layer(loss, expected):
    # ReLU, ReLU, tanh, linear, one unit each, x = 0: z1 = b1 = 1 (on), z2 = z1 - 2
    # = -1 (off), so at theta nothing reaches the tanh layer. b1 moved to 1.5 or 2
    # keeps z2 <= 0 (exactly no change); to 3 it switches z2 on: the exact path
    # must see it (found by a review: the series path dropped the margin, gave 0).
    sizes = np.array([1, 1, 1, 1, 1], np.int64)
    acts = np.array([ACTIVATIONS[a] for a in ("relu", "relu", "tanh", "linear")], np.int64)
    theta = np.array([1.0, 1.0, 1.0, -2.0, 1.0, 0.0, 1.0, 0.0])
    n_out = 2 if loss == "softmax_cross_entropy" else 1
    if n_out == 2:
        theta = np.concatenate([theta[:6], [1.0, -0.5], [0.0, 0.0]])
        Y = np.array([[1.0], [0.0]])
        sizes[-1] = 2
    else:
        Y = np.zeros((1, 1))
    case = dict(sizes=sizes.tolist(), activations=["relu", "relu", "tanh", "linear"], loss=loss, l2=0.0,
                theta=theta, X=np.zeros((1, 1)), Y=Y, dropout=np.zeros((0, 1)))
    indices = np.array([1], np.int64)
    points = np.array([[1.5, 2.0, 3.0]])
    deltas, kinks, status = perturbed_cost_differences(sizes, acts, LOSSES[loss], 0.0, theta, case["X"], Y,
                                                       case["dropout"], indices, points)
    ref, ref_kinks = run_reference(case, indices, points)
    assert deltas[0, 0] == 0.0 and deltas[0, 1] == 0.0
    assert abs(float(ref[0, 2])) > 0.1  # the third point really moves the cost
    if expected is not None:
        assert deltas[0, 2] == pytest.approx(expected, rel=1e-14)
    assert_close_to_reference(case, deltas, ref)
    assert kinks[0] == 1 and ref_kinks[0] == 1
