"""Plain NumPy reference of a dense network: forward cost and back-prop.

Written the obvious way, layer by layer, with a list of caches, independently
of fastgrad's compiled kernels and of ``fastgrad.naive`` (only the activation
and loss codes and the leaky-ReLU slope come from ``fastgrad._dense_spec``), so
that tests can compare the kernels against it. Nothing here is fast or clever on
purpose. The one NumPy reference of the tests: ``cost`` and ``gradients`` check
``DenseNet.cost`` and ``DenseNet.gradients``, ``network_gradient`` is the
gradient of ``fastgrad._cases.network_cost``, and ``central_differences`` is the
course's finite-difference loop on a vector.

Conventions (the course's): X (n0, m), Y (nL, m), params W1 (n1, n0), b1 (n1, 1),
...; BCE on a sigmoid output ``(1/m) sum(-y log a - (1-y) log(1-a))``; softmax
cross-entropy on a linear output; MSE ``(1/(2m)) sum (a - y)^2``; L2 penalty
``l2/(2m) sum ||W_l||^2``; inverted dropout: hidden activations multiplied by
``masks[l] / keep_prob`` after the activation function.
"""

from __future__ import annotations

import numpy as np

from fastgrad._dense_spec import ACTIVATIONS, LEAKY_SLOPE, LOSSES


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


def unpack(theta, layer_sizes):
    """The parameter dict ``W1, b1, ...`` of a course-layout vector (views of ``theta``)."""
    params, at = {}, 0
    for l in range(1, len(layer_sizes)):
        n_out, n_in = int(layer_sizes[l]), int(layer_sizes[l - 1])
        params[f"W{l}"] = theta[at : at + n_out * n_in].reshape(n_out, n_in)
        at += n_out * n_in
        params[f"b{l}"] = theta[at : at + n_out].reshape(n_out, 1)
        at += n_out
    return params


def pack(blocks):
    """One vector of the blocks ``W1, b1, ...`` (or ``dW1, db1, ...``), in that order."""
    return np.concatenate([np.asarray(value, dtype=np.float64).ravel() for value in blocks.values()])


def network_gradient(theta, layer_sizes, hidden, loss, X, Y):
    """The gradient of ``fastgrad._cases.network_cost`` (same arguments: codes, not names)."""
    names = {code: name for name, code in ACTIVATIONS.items()}
    loss_name = {code: name for name, code in LOSSES.items()}[loss]
    output = "sigmoid" if loss_name == "binary_cross_entropy" else "linear"
    activations = [names[hidden]] * (len(layer_sizes) - 2) + [output]
    return pack(gradients(unpack(theta, layer_sizes), X, Y, activations, loss_name))


def central_differences(cost, theta, eps=1e-6, indices=None):
    """The course's loop on a vector: copy, perturb, evaluate twice, divide by ``2 eps``."""
    indices = range(theta.size) if indices is None else indices
    approx = np.empty(len(indices))
    for r, i in enumerate(indices):
        plus = theta.copy()
        plus[i] += eps
        minus = theta.copy()
        minus[i] -= eps
        approx[r] = (cost(plus) - cost(minus)) / (2 * eps)
    return approx


def numerical_gradient(params, X, Y, activations, loss, l2=0.0, dropout_scales=None, eps=1e-6):
    """Central differences, one component at a time, on the reference cost."""
    weights = [np.shape(params[f"W{l}"]) for l in range(1, len(activations) + 1)]
    layer_sizes = [weights[0][1]] + [shape[0] for shape in weights]

    def vector_cost(theta):
        return cost(unpack(theta, layer_sizes), X, Y, activations, loss, l2, dropout_scales)

    ordered = {name: params[name] for l in range(1, len(activations) + 1) for name in (f"W{l}", f"b{l}")}
    approx = central_differences(vector_cost, pack(ordered), eps)
    return {"d" + name: block for name, block in unpack(approx, layer_sizes).items()}
