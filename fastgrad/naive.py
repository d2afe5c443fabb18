"""The naive course loop: the contender every benchmark is measured against.

This is gradient checking as the deep-learning course teaches it, written in
plain NumPy on purpose: flatten the parameter dict into a vector, and for every
component copy the vector, nudge one entry by ``+eps`` and by ``-eps``, rebuild
the parameter dict and run the whole forward pass again, twice. It is correct
and slow; fastgrad's engines must give the same numbers much faster.

Also here: the course's own 4-5-3-1 test case (``course_case``) and its
back-prop with the two planted bugs (``course_backward_with_bugs``), and the
fixed back-prop (``course_backward``). With the bugs, the course's check at
``eps=1e-7`` reports a difference of about 0.2850931567761623.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastgrad._dense_spec import LEAKY_SLOPE

if TYPE_CHECKING:
    from fastgrad.dense import DenseNet

__all__ = [
    "COURSE_LAYER_SIZES",
    "naive_forward_cost",
    "naive_numerical_gradient",
    "dictionary_to_vector",
    "vector_to_dictionary",
    "course_case",
    "course_forward",
    "course_backward",
    "course_backward_with_bugs",
    "course_gradient_check",
]

def dictionary_to_vector(params: dict[str, np.ndarray]) -> np.ndarray:
    """Flatten ``W1, b1, W2, b2, ...`` into one column-less float64 vector, in that order."""
    n_layers = len(params) // 2
    keys = [name for l in range(1, n_layers + 1) for name in (f"W{l}", f"b{l}")]
    return np.concatenate([np.asarray(params[k], dtype=np.float64).reshape(-1) for k in keys])


def vector_to_dictionary(theta: np.ndarray, layer_sizes: list[int]) -> dict[str, np.ndarray]:
    """Rebuild the parameter dict from a vector made by ``dictionary_to_vector``."""
    params = {}
    at = 0
    for l in range(1, len(layer_sizes)):
        n_out, n_in = layer_sizes[l], layer_sizes[l - 1]
        params[f"W{l}"] = theta[at : at + n_out * n_in].reshape(n_out, n_in)
        at += n_out * n_in
        params[f"b{l}"] = theta[at : at + n_out].reshape(n_out, 1)
        at += n_out
    return params


def _activation(name: str, Z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(0, Z)
    if name == "leaky_relu":
        return np.where(Z > 0, Z, LEAKY_SLOPE * Z)
    if name == "tanh":
        return np.tanh(Z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-Z))
    return Z


def naive_forward_cost(
    net: DenseNet, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray
) -> float:
    """The cost of ``net`` written the course's way (NumPy, layer by layer).

    Uses the same dropout masks as ``net`` (drawn from its ``dropout_seed``).

    Parameters
    ----------
    net : DenseNet
        The network (layer sizes, activations, loss, L2, dropout).
    params : dict
        ``W1, b1, ...``.
    X : ndarray, shape (n0, m)
    Y : ndarray, shape (nL, m)

    Returns
    -------
    float
    """
    X = np.asarray(X, dtype=np.float64)
    m = X.shape[1]
    Y = np.asarray(Y, dtype=np.float64).reshape(net.layer_sizes[-1], m)
    n_layers = len(net.layer_sizes) - 1
    scales = net.dropout_scales(m)
    A = X
    for l in range(1, n_layers + 1):
        Z = np.dot(params[f"W{l}"], A) + params[f"b{l}"]
        A = _activation(net.activations[l - 1], Z)
        if scales is not None and l < n_layers:
            A = A * scales[l - 1]
    if net.loss == "binary_cross_entropy":
        logprobs = np.multiply(-np.log(A), Y) + np.multiply(-np.log(1 - A), 1 - Y)
        cost = 1.0 / m * np.sum(logprobs)
    elif net.loss == "softmax_cross_entropy":
        shifted = Z - np.max(Z, axis=0, keepdims=True)
        log_softmax = shifted - np.log(np.sum(np.exp(shifted), axis=0, keepdims=True))
        cost = -1.0 / m * np.sum(Y * log_softmax)
    else:
        cost = 1.0 / (2 * m) * np.sum((A - Y) ** 2)
    if net.l2:
        squares = sum(np.sum(np.square(params[f"W{l}"])) for l in range(1, n_layers + 1))
        cost = cost + net.l2 / (2 * m) * squares
    return float(cost)


def naive_numerical_gradient(
    net: DenseNet,
    params: dict[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    indices: np.ndarray | None = None,
    eps: float = 1e-7,
) -> np.ndarray:
    """The course's gradient-check loop: two full forward passes per component.

    Parameters
    ----------
    net : DenseNet
    params : dict
        ``W1, b1, ...``.
    X, Y : ndarray
        Data, course layout.
    indices : array of int, optional
        Components of theta to estimate (all by default).
    eps : float
        The step: ``(J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)``.

    Returns
    -------
    ndarray
        One derivative per component in ``indices`` (float64).
    """
    parameters_values = dictionary_to_vector(params)
    if indices is None:
        indices = np.arange(parameters_values.size)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    gradapprox = np.zeros(indices.size)
    for r, i in enumerate(indices):
        thetaplus = np.copy(parameters_values)
        thetaplus[i] = thetaplus[i] + eps
        J_plus = naive_forward_cost(net, vector_to_dictionary(thetaplus, net.layer_sizes), X, Y)
        thetaminus = np.copy(parameters_values)
        thetaminus[i] = thetaminus[i] - eps
        J_minus = naive_forward_cost(net, vector_to_dictionary(thetaminus, net.layer_sizes), X, Y)
        gradapprox[r] = (J_plus - J_minus) / (2 * eps)
    return gradapprox


# ---------------------------------------------------------------------------
# The course's 4-5-3-1 case: LINEAR->RELU->LINEAR->RELU->LINEAR->SIGMOID, BCE
# ---------------------------------------------------------------------------

#: Layer sizes of the course's gradient-checking network.
COURSE_LAYER_SIZES = (4, 5, 3, 1)


def course_case() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The course's ``gradient_check_n_test_case``: X (4, 3), Y (3,) = [1, 1, 0], params.

    Drawn with ``np.random.seed(1)`` exactly as the course does (this sets
    NumPy's legacy global seed, as the course did; the state is restored
    afterwards so callers' random streams are left alone).

    Returns
    -------
    X : ndarray, shape (4, 3)
    Y : ndarray, shape (3,)
    params : dict
        ``W1`` (5, 4), ``b1`` (5, 1), ``W2`` (3, 5), ``b2`` (3, 1), ``W3`` (1, 3), ``b3`` (1, 1).
    """
    saved = np.random.get_state()
    try:
        np.random.seed(1)
        x = np.random.randn(4, 3)
        y = np.array([1, 1, 0])
        W1 = np.random.randn(5, 4)
        b1 = np.random.randn(5, 1)
        W2 = np.random.randn(3, 5)
        b2 = np.random.randn(3, 1)
        W3 = np.random.randn(1, 3)
        b3 = np.random.randn(1, 1)
    finally:
        np.random.set_state(saved)
    params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2, "W3": W3, "b3": b3}
    return x, y, params


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def course_forward(X: np.ndarray, Y: np.ndarray, params: dict[str, np.ndarray]):
    """The course's ``forward_propagation_n``: returns (cost, cache)."""
    m = X.shape[1]
    W1, b1 = params["W1"], params["b1"]
    W2, b2 = params["W2"], params["b2"]
    W3, b3 = params["W3"], params["b3"]
    Z1 = np.dot(W1, X) + b1
    A1 = np.maximum(0, Z1)
    Z2 = np.dot(W2, A1) + b2
    A2 = np.maximum(0, Z2)
    Z3 = np.dot(W3, A2) + b3
    A3 = _sigmoid(Z3)
    logprobs = np.multiply(-np.log(A3), Y) + np.multiply(-np.log(1 - A3), 1 - Y)
    cost = 1.0 / m * np.sum(logprobs)
    cache = (Z1, A1, W1, b1, Z2, A2, W2, b2, Z3, A3, W3, b3)
    return cost, cache


def _course_backward(X, Y, cache, dW2_factor, db1_numerator):
    m = X.shape[1]
    (Z1, A1, W1, b1, Z2, A2, W2, b2, Z3, A3, W3, b3) = cache
    dZ3 = A3 - Y
    dW3 = 1.0 / m * np.dot(dZ3, A2.T)
    db3 = 1.0 / m * np.sum(dZ3, axis=1, keepdims=True)
    dA2 = np.dot(W3.T, dZ3)
    dZ2 = np.multiply(dA2, np.int64(A2 > 0))
    dW2 = 1.0 / m * np.dot(dZ2, A1.T) * dW2_factor
    db2 = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
    dA1 = np.dot(W2.T, dZ2)
    dZ1 = np.multiply(dA1, np.int64(A1 > 0))
    dW1 = 1.0 / m * np.dot(dZ1, X.T)
    db1 = db1_numerator / m * np.sum(dZ1, axis=1, keepdims=True)
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2, "dW3": dW3, "db3": db3}


def course_backward_with_bugs(
    X: np.ndarray, Y: np.ndarray, params: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The course's ``backward_propagation_n`` with its two planted bugs.

    ``dW2`` is multiplied by 2 and ``db1`` uses ``4./m`` instead of ``1./m``.
    Returns ``dW1, db1, dW2, db2, dW3, db3``.
    """
    _, cache = course_forward(X, Y, params)
    return _course_backward(X, Y, cache, dW2_factor=2.0, db1_numerator=4.0)


def course_backward(
    X: np.ndarray, Y: np.ndarray, params: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The course's back-prop with both bugs fixed. Returns ``dW1, db1, ..., db3``."""
    _, cache = course_forward(X, Y, params)
    return _course_backward(X, Y, cache, dW2_factor=1.0, db1_numerator=1.0)


def course_gradient_check(
    X: np.ndarray,
    Y: np.ndarray,
    params: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    epsilon: float = 1e-7,
) -> float:
    """The course's ``gradient_check_n``: the relative difference, nothing else.

    With ``course_case()`` and ``course_backward_with_bugs`` it returns about
    0.2850931567761623.
    """
    parameters_values = dictionary_to_vector(params)
    grad = np.concatenate(
        [np.asarray(grads["d" + k]).reshape(-1) for k in ("W1", "b1", "W2", "b2", "W3", "b3")]
    )
    gradapprox = np.zeros(parameters_values.size)
    for i in range(parameters_values.size):
        thetaplus = np.copy(parameters_values)
        thetaplus[i] = thetaplus[i] + epsilon
        J_plus, _ = course_forward(X, Y, vector_to_dictionary(thetaplus, list(COURSE_LAYER_SIZES)))
        thetaminus = np.copy(parameters_values)
        thetaminus[i] = thetaminus[i] - epsilon
        J_minus, _ = course_forward(X, Y, vector_to_dictionary(thetaminus, list(COURSE_LAYER_SIZES)))
        gradapprox[i] = (J_plus - J_minus) / (2 * epsilon)
    numerator = np.linalg.norm(grad - gradapprox)
    denominator = np.linalg.norm(grad) + np.linalg.norm(gradapprox)
    return float(numerator / denominator)
