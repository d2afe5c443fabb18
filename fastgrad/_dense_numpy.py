"""A small dense network's check in plain NumPy: no compiled code, so no Numba to load.

A new process that checks a small network (the course's 4-5-3-1 one) would
spend most of its time loading Numba and its typing registries for the first
compiled call, far longer than the check itself. ``DenseNet.gradcheck`` takes
this path instead when the network is small (:func:`is_small`) and the
compiled kernels are not loaded yet in the process; it evaluates the same
cost, back-prop, per-example losses and kink crossings as the compiled
kernels (``fastgrad._dense_kernels``, ``fastgrad._dense_engine``), with
NumPy's own arithmetic: values agree with the compiled ones to rounding, not
bit for bit.

The forward pass and the back-prop are those of
``fastgrad._dense_subgradient`` (its per-example back-prop, over every example).
"""

from __future__ import annotations

import numpy as np

from fastgrad._dense_spec import BINARY_CROSS_ENTROPY, LEAKY_RELU, RELU, SOFTMAX_CROSS_ENTROPY, STATUS_NON_FINITE
from fastgrad._dense_subgradient import _example_gradient, _forward, _output_delta, _unpack

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
        # softplus(z) - y z, with exp of a non-positive argument only.
        soft = np.log1p(np.exp(-np.abs(z)))
        return np.where(z > 0.0, (1.0 - Y) * z + soft, soft - Y * z).sum(axis=0)
    if loss == SOFTMAX_CROSS_ENTROPY:
        shift = z.max(axis=0)
        log_sum_exp = np.log(np.exp(z - shift).sum(axis=0)) + shift
        return np.where(Y != 0.0, Y * (log_sum_exp - z), 0.0).sum(axis=0)
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
    """The cost J(theta): mean loss plus the L2 penalty."""
    weights, _, Z, A, _ = _layers(args, theta)
    return float(_losses(args, Z, A).sum() / args[4].shape[1]) + _penalty(args, weights)


def cost_and_gradient(args: tuple, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """The cost and its gradient by back-prop (the left slope at a ReLU exactly on its kink)."""
    layer_sizes, activations, loss, l2, X, Y, _ = args
    m = X.shape[1]
    weights, offsets, Z, A, drops = _layers(args, theta)
    cost = float(_losses(args, Z, A).sum() / m) + _penalty(args, weights)
    output = _output_delta(int(loss), int(activations[-1]), Z[-1], A[-1], Y, m)
    grad = _example_gradient(weights, Z, A, drops, activations, output, np.arange(m), None, offsets, theta.size)
    if l2 != 0.0:
        for W, start in zip(weights, offsets):
            grad[start:start + W.size] += (l2 / m) * W.ravel()
    return cost, grad


def perturbed_differences(args: tuple, theta: np.ndarray, indices: np.ndarray, points: np.ndarray):
    """``J(theta with theta[k] = p) - J(theta)`` for each ``k`` of ``indices`` and ``p`` of its row of ``points``.

    The dense engine's protocol (``fastgrad.engines.Engine``): the differences
    ``(n, p)``, whether a ReLU / leaky ReLU pre-activation changed sign at any
    point of a row (the kink flag), and a status per row. The loss changes are
    summed per example, and the L2 penalty's change is ``l2/(2m) (p - w)(p + w)``.
    """
    _, activations, _, l2, X, _, _ = args
    m = X.shape[1]
    weights, offsets, Z, A, _ = _layers(args, theta)
    base_losses = _losses(args, Z, A)
    kinked = [int(code) in (RELU, LEAKY_RELU) for code in activations]
    base_sides = [z > 0.0 for z in Z]
    is_weight = np.zeros(theta.size, bool)
    for W, start in zip(weights, offsets):
        is_weight[start:start + W.size] = True
    values = np.empty(points.shape, dtype=np.float64)
    kinks = np.zeros(indices.size, np.uint8)
    local = theta.copy()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for r, k in enumerate(indices):
            for j in range(points.shape[1]):
                local[k] = points[r, j]
                _, _, Z_p, A_p, drops = _layers(args, local)
                d = float((_losses(args, Z_p, A_p) - base_losses).sum() / m)
                if is_weight[k] and l2 != 0.0:
                    d += (l2 / (2.0 * m)) * ((points[r, j] - theta[k]) * (points[r, j] + theta[k]))
                values[r, j] = d
                # A crossing counts where the unit's activation is passed on (not dropped).
                if any(flag and np.any(((z > 0.0) != side) & (drop != 0.0))
                       for flag, z, side, drop in zip(kinked, Z_p, base_sides, drops)):
                    kinks[r] = 1
            local[k] = theta[k]
    status = np.where(np.isfinite(values).all(axis=1), 0, STATUS_NON_FINITE).astype(np.uint8)
    return values, kinks, status
