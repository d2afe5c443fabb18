"""A dense network in plain NumPy: ``DenseNet``'s back-prop, and the whole check of a small network.

The back-prop (:func:`cost_and_gradient`) serves every network: a few matrix
products per layer, which BLAS does as fast as compiled loops would, and a
first run compiles nothing for it.

A new process that checks a small network (the course's 4-5-3-1 one) would
spend most of its time loading Numba and its typing registries for the first
compiled call, far longer than the check itself. ``DenseNet.gradcheck`` takes
this path instead when the network is small (:func:`is_small`), the engine is
``"auto"`` and the method real: a choice made from the call alone, so the same
call gives the same bits in any process (and, with ``client=``, on the
workers, which build this same engine). It evaluates the same cost,
per-example losses and kink crossings as the compiled kernels
(``fastgrad._dense_kernels``, ``fastgrad._dense_engine``), with NumPy's own
arithmetic: values agree with the compiled ones to rounding, not bit for bit.

The forward pass and the back-prop are those of
``fastgrad._dense_subgradient`` (its per-example back-prop, over every example).
"""

from __future__ import annotations

import numpy as np

from fastgrad._dense_spec import (BINARY_CROSS_ENTROPY, LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, SOFTMAX_CROSS_ENTROPY,
                                  STATUS_NON_FINITE, TANH)
from fastgrad._dense_subgradient import _example_gradient, _forward, _output_delta, _sigmoid, _unpack
from fastgrad._differences import SLICE_ROWS

__all__ = ["is_small", "cost_and_gradient", "forward_cost", "example_losses", "perturbed_differences"]

#: Largest ``n_params * m * sum(layer_sizes[1:])`` (about the work of one
#: component's forward passes) checked in NumPy: the course's network on its
#: test case is 47 * 3 * 9 = 1,269. A check of this size takes tens of
#: milliseconds in NumPy, against about 0.5 s to load Numba's compiler and
#: registries for the first compiled call.
SMALL_WORK = 20_000


def is_small(layer_sizes, n_params: int, m: int) -> bool:
    """Whether a check of this network on ``m`` examples is small enough for NumPy."""
    return n_params * m * int(np.sum(layer_sizes[1:])) <= SMALL_WORK


def _layers(args: tuple, theta: np.ndarray):
    """The forward pass of ``theta``: weights, biases, offsets, Z, A (X first) and dropout scales."""
    layer_sizes, activations, _, _, X, _, dropout = args
    weights, biases, offsets = _unpack(theta, layer_sizes)
    Z, A, drops = _forward(weights, biases, activations, X, dropout)
    return weights, offsets, Z, A, drops


def _losses(args: tuple, Z: list, A: list) -> np.ndarray:
    """Each example's loss ``(m,)`` from the forward pass (no L2 penalty), as the compiled kernels define it."""
    _, _, loss, _, _, Y, _ = args
    z = Z[-1]
    if loss == BINARY_CROSS_ENTROPY:
        return (_softplus(z) - Y * z).sum(axis=0)
    if loss == SOFTMAX_CROSS_ENTROPY:
        return np.where(Y != 0.0, Y * (_log_sum_exp(z) - z), 0.0).sum(axis=0)
    r = A[-1] - Y  # MSE
    return 0.5 * (r * r).sum(axis=0)


def _penalty(args: tuple, weights: list) -> float:
    l2, m = args[3], args[4].shape[1]
    if l2 == 0.0:
        return 0.0
    return (l2 / (2.0 * m)) * sum(float(W.ravel() @ W.ravel()) for W in weights)


def example_losses(args: tuple, theta: np.ndarray) -> np.ndarray:
    """Each example's loss at ``theta`` ``(m,)``, without the L2 penalty."""
    _, _, Z, A, _ = _layers(args, theta)
    return _losses(args, Z, A)


def forward_cost(args: tuple, theta: np.ndarray) -> float:
    """The cost J(theta): mean loss plus the L2 penalty (inf or nan, without a warning, where it overflows)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        weights, _, Z, A, _ = _layers(args, theta)
        return float(_losses(args, Z, A).sum() / args[4].shape[1]) + _penalty(args, weights)


def cost_and_gradient(args: tuple, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """The cost and its gradient by back-prop (the left slope at a ReLU exactly on its kink).

    ``DenseNet``'s back-prop for every network: a few matrix products per
    layer, which NumPy (BLAS) does as fast as compiled loops would. Overflow
    gives inf or nan without a warning; the callers test the cost.
    """
    layer_sizes, activations, loss, l2, X, Y, _ = args
    m = X.shape[1]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        weights, offsets, Z, A, drops = _layers(args, theta)
        cost = float(_losses(args, Z, A).sum() / m) + _penalty(args, weights)
        output = _output_delta(int(loss), int(activations[-1]), Z[-1], A[-1], Y, m)
        # Every example: a slice, so that the back-prop reads Z and A as views.
        grad = _example_gradient(weights, Z, A, drops, activations, output, slice(None), None, offsets, theta.size)
        if l2 != 0.0:
            for W, start in zip(weights, offsets):
                _add_scaled(grad[start:start + W.size], W.ravel(), l2 / m)
    return cost, grad


def _add_scaled(target: np.ndarray, source: np.ndarray, scale: float) -> None:
    """``target += scale * source`` slice by slice: no temporary the size of a weight block."""
    for start in range(0, target.size, SLICE_ROWS):
        target[start:start + SLICE_ROWS] += scale * source[start:start + SLICE_ROWS]


#: Largest |change| of a pre-activation (or logit) for which a unit's or a
#: loss's change is taken in a cancellation-free form (tanh / expm1 / log1p of
#: the change); larger changes are differences of the two values, which lose
#: nothing there.
STABLE_LIMIT = 1.0


def _tanh_change(t: np.ndarray, z: np.ndarray, d: np.ndarray) -> np.ndarray:
    """tanh(z + d) - tanh(z) given t = tanh(z): tanh(d) sech(z)^2 / (1 + tanh(z) tanh(d)) where |d| is small."""
    td = np.tanh(d)
    c = np.cosh(z)
    stable = td / (c * c) / (1.0 + t * td)
    return np.where(np.abs(d) <= STABLE_LIMIT, stable, np.tanh(z + d) - t)


def _unit_change(code: int, z: np.ndarray, d: np.ndarray) -> np.ndarray:
    """g(z + d) - g(z) for the activation ``code``, without cancellation: a kinked unit
    on one side of its kink moves by its slope times d exactly."""
    if code in (RELU, LEAKY_RELU):
        low = 0.0 if code == RELU else LEAKY_SLOPE
        after = z + d
        up, was_up = after > 0.0, z > 0.0
        crossed = np.where(up, after, low * after) - np.where(was_up, z, low * z)
        return np.where(up == was_up, np.where(was_up, d, low * d), crossed)
    if code == TANH:
        return _tanh_change(np.tanh(z), z, d)
    if code == SIGMOID:  # sigmoid(z) = (1 + tanh(z / 2)) / 2
        half = 0.5 * z
        return 0.5 * _tanh_change(np.tanh(half), half, 0.5 * d)
    return d


def _loss_changes(args: tuple, Z_out: np.ndarray, A_out: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Each example's loss change ``(..., m)`` when the output pre-activations move by ``dz``."""
    _, activations, loss, _, _, Y, _ = args
    if loss == BINARY_CROSS_ENTROPY:
        # softplus(z + d) - softplus(z) = log1p(sigmoid(z) expm1(d)); the loss adds - y d.
        p = _sigmoid(Z_out)
        stable = np.log1p(p * np.expm1(dz))
        direct = _softplus(Z_out + dz) - _softplus(Z_out)
        return (np.where(np.abs(dz) <= STABLE_LIMIT, stable, direct) - Y * dz).sum(axis=-2)
    if loss == SOFTMAX_CROSS_ENTROPY:
        # LSE(z + d) - LSE(z) = log1p(sum_c p_c expm1(d_c)); the loss is sum_c y_c (LSE - z_c).
        shifted = np.exp(Z_out - Z_out.max(axis=0))
        p = shifted / shifted.sum(axis=0)
        stable = np.log1p((p * np.expm1(dz)).sum(axis=-2))
        direct = _log_sum_exp(Z_out + dz) - _log_sum_exp(Z_out)
        change = np.where(np.abs(dz).max(axis=-2) <= STABLE_LIMIT, stable, direct)
        return np.where(Y != 0.0, Y * (change[..., None, :] - dz), 0.0).sum(axis=-2)
    r = A_out - Y  # MSE: (r + a)^2 / 2 - r^2 / 2 = a (r + a / 2)
    a = _unit_change(int(activations[-1]), Z_out, dz)
    return (a * (r + 0.5 * a)).sum(axis=-2)


def _softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + e^z), with exp of a non-positive argument only."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _log_sum_exp(z: np.ndarray) -> np.ndarray:
    """log sum_c exp(z_c) over the classes (axis -2), shifted by the largest."""
    shift = z.max(axis=-2)
    return np.log(np.exp(z - shift[..., None, :]).sum(axis=-2)) + shift


def perturbed_differences(args: tuple, theta: np.ndarray, indices: np.ndarray, points: np.ndarray):
    """``J(theta with theta[k] = p) - J(theta)`` for each ``k`` of ``indices`` and ``p`` of its row of ``points``.

    The dense engine's protocol (``fastgrad.engines.Engine``): the differences
    ``(n, p)``, whether a ReLU / leaky ReLU pre-activation changed sign at any
    point of a row (the kink flag), and a status per row.

    As the compiled engine does, the change itself is carried down the
    network rather than the perturbed network evaluated and the base
    subtracted: the perturbed unit's pre-activation moves by ``(p - w) a_j``
    (or ``p - b``), each later layer by ``W`` times its inputs' changes, every
    unit's and the loss's change taken without cancellation where the change
    is small (:func:`_unit_change`, :func:`_loss_changes`). The per-example
    loss changes are summed, and the L2 penalty's change is
    ``l2/(2m) (p - w)(p + w)``. A row's values depend on that row alone.
    """
    layer_sizes, activations, _, l2, X, _, _ = args
    m = X.shape[1]
    weights, offsets, Z, A, drops = _layers(args, theta)
    n_layers = len(weights)
    kinked = [int(code) in (RELU, LEAKY_RELU) for code in activations]
    points = np.asarray(points, dtype=np.float64)
    values = np.empty(points.shape, dtype=np.float64)
    kinks = np.zeros(indices.size, np.uint8)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for r, k in enumerate(indices):
            layer = int(np.searchsorted(offsets, k, side="right")) - 1
            W, start = weights[layer], offsets[layer]
            steps = points[r] - theta[k]  # exact for points near theta[k]
            dz = np.zeros((steps.size,) + Z[layer].shape)
            if k < start + W.size:  # a weight W[i, j]
                i, j = divmod(int(k) - start, W.shape[1])
                dz[:, i, :] = steps[:, None] * A[layer][j]
            else:  # a bias b[i]
                i = int(k) - start - W.size
                dz[:, i, :] = steps[:, None]
            crossed = False
            for l in range(layer, n_layers):
                if l > layer:
                    dz = np.matmul(weights[l], da)
                if kinked[l]:
                    crossed |= bool(np.any(((Z[l] + dz > 0.0) != (Z[l] > 0.0)) & (drops[l] != 0.0)))
                if l < n_layers - 1:
                    da = _unit_change(int(activations[l]), Z[l], dz) * drops[l]
            d = _loss_changes(args, Z[-1], A[-1], dz).sum(axis=-1) / m
            if k < start + W.size and l2 != 0.0:
                d = d + (l2 / (2.0 * m)) * (steps * (points[r] + theta[k]))
            values[r] = d
            kinks[r] = crossed
    status = np.where(np.isfinite(values).all(axis=1), 0, STATUS_NON_FINITE).astype(np.uint8)
    return values, kinks, status
