"""Plain NumPy reference of a dense network: forward cost and back-prop.

Written the obvious way, layer by layer, with a list of caches, independently
of fastgrad's compiled kernels and of ``fastgrad.naive``, so that tests can
compare the kernels against it. Nothing here is fast or clever on purpose.

Conventions (the course's): X (n0, m), Y (nL, m), params W1 (n1, n0), b1 (n1, 1),
...; BCE on a sigmoid output ``(1/m) sum(-y log a - (1-y) log(1-a))``; softmax
cross-entropy on a linear output; MSE ``(1/(2m)) sum (a - y)^2``; L2 penalty
``l2/(2m) sum ||W_l||^2``; inverted dropout: hidden activations multiplied by
``masks[l] / keep_prob`` after the activation function.
"""

from __future__ import annotations

import numpy as np

LEAKY_SLOPE = 0.01


def activation(name, z):
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_SLOPE * z)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    raise ValueError(name)


def activation_slope(name, z):
    if name == "linear":
        return np.ones_like(z)
    if name == "relu":
        return (z > 0).astype(float)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, LEAKY_SLOPE)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-z))
        return s * (1.0 - s)
    raise ValueError(name)


def forward(params, X, activations, dropout_scales=None):
    """Return the list of (A_prev, Z, A) per layer; A after dropout for hidden layers."""
    n_layers = len(activations)
    caches = []
    A = X
    for l in range(1, n_layers + 1):
        Z = params[f"W{l}"] @ A + params[f"b{l}"]
        A_new = activation(activations[l - 1], Z)
        if dropout_scales is not None and l < n_layers:
            A_new = A_new * dropout_scales[l - 1]
        caches.append((A, Z, A_new))
        A = A_new
    return caches


def loss_value(loss, Z_out, A_out, Y):
    m = Y.shape[1]
    if loss == "binary_cross_entropy":
        return float(np.sum(-Y * np.log(A_out) - (1 - Y) * np.log(1 - A_out)) / m)
    if loss == "softmax_cross_entropy":
        shifted = Z_out - Z_out.max(axis=0, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
        return float(-np.sum(Y * log_softmax) / m)
    if loss == "mse":
        return float(np.sum((A_out - Y) ** 2) / (2 * m))
    raise ValueError(loss)


def cost(params, X, Y, activations, loss, l2=0.0, dropout_scales=None):
    caches = forward(params, X, activations, dropout_scales)
    _, Z_out, A_out = caches[-1]
    m = X.shape[1]
    J = loss_value(loss, Z_out, A_out, Y)
    if l2:
        J += l2 / (2 * m) * sum(np.sum(params[f"W{l}"] ** 2) for l in range(1, len(activations) + 1))
    return J


def gradients(params, X, Y, activations, loss, l2=0.0, dropout_scales=None):
    """Back-prop; returns dict dW1, db1, ..."""
    n_layers = len(activations)
    m = X.shape[1]
    caches = forward(params, X, activations, dropout_scales)
    _, Z_out, A_out = caches[-1]
    if loss == "binary_cross_entropy":
        dZ = (A_out - Y) / m
    elif loss == "softmax_cross_entropy":
        e = np.exp(Z_out - Z_out.max(axis=0, keepdims=True))
        dZ = (e / e.sum(axis=0, keepdims=True) - Y) / m
    elif loss == "mse":
        dZ = (A_out - Y) / m * activation_slope(activations[-1], Z_out)
    else:
        raise ValueError(loss)
    grads = {}
    for l in range(n_layers, 0, -1):
        A_prev, _, _ = caches[l - 1]
        grads[f"dW{l}"] = dZ @ A_prev.T + l2 / m * params[f"W{l}"]
        grads[f"db{l}"] = dZ.sum(axis=1, keepdims=True)
        if l > 1:
            dA = params[f"W{l}"].T @ dZ
            if dropout_scales is not None:
                dA = dA * dropout_scales[l - 2]
            dZ = dA * activation_slope(activations[l - 2], caches[l - 2][1])
    return {name: grads[name] for l in range(1, n_layers + 1) for name in (f"dW{l}", f"db{l}")}


def numerical_gradient(params, X, Y, activations, loss, l2=0.0, dropout_scales=None, eps=1e-6):
    """Central differences, one component at a time, on the reference cost."""
    grads = {}
    for name, value in params.items():
        g = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[name][index] += eps
            minus[name][index] -= eps
            g[index] = (
                cost(plus, X, Y, activations, loss, l2, dropout_scales)
                - cost(minus, X, Y, activations, loss, l2, dropout_scales)
            ) / (2 * eps)
        grads["d" + name] = g
    return grads
