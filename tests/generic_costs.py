"""Cost functions for the generic engine's tests, each with its exact gradient.

Written with explicit loops so that the compiled function and its pure-Python
twin (``cost.py_func``) do the same arithmetic.
"""

import numba
import numpy as np

import reference

# The quadratic form and logistic regression come from the case registry shared
# with the benchmarks; the costs below exist only for the tests.
from fastgrad._cases import logistic_cost, logistic_gradient, quadratic_cost, quadratic_gradient


@numba.njit(cache=True)
def tiny_network(theta, X, Y):
    """A 3-4-1 tanh network with squared error; theta = W1 (4x3), b1 (4), W2 (1x4), b2 (1)."""
    m = X.shape[1]
    total = 0.0
    for e in range(m):
        out = theta[20]
        for i in range(4):
            z = theta[12 + i]
            for j in range(3):
                z += theta[3 * i + j] * X[j, e]
            out += theta[16 + i] * np.tanh(z)
        diff = out - Y[e]
        total += 0.5 * diff * diff
    return total / m


def tiny_network_gradient(theta, X, Y):
    """The reference back-prop of the same network: tanh hidden layer, linear output, MSE."""
    params = reference.unpack(theta, (3, 4, 1))
    return reference.pack(reference.gradients(params, X, Y.reshape(1, -1), ["tanh", "linear"], "mse"))


@numba.njit(cache=True)
def complex_safe_smooth(theta, c):
    """sum(c * sin(theta)) + (sum theta^2)^2 / 4: accepts complex theta."""
    s = theta[0] * 0.0
    q = theta[0] * 0.0
    for i in range(theta.shape[0]):
        s += c[i] * np.sin(theta[i])
        q += theta[i] * theta[i]
    return s + 0.25 * q * q


def complex_safe_smooth_gradient(theta, c):
    return c * np.cos(theta) + np.sum(theta**2) * theta


def cases(seed=0):
    """(name, cost, args, theta, exact gradient) for each cost."""
    rng = np.random.default_rng(seed)
    n = 12
    B = rng.normal(size=(n, n))
    A = np.ascontiguousarray(B @ B.T)  # the registry's quadratic assumes a symmetric A
    b = rng.normal(size=n)
    theta_q = rng.normal(size=n)
    X = rng.normal(size=(40, 6))
    y = np.where(rng.random(40) < 0.5, -1.0, 1.0)
    theta_l = rng.normal(size=6)
    Xn = rng.normal(size=(3, 10))
    Yn = rng.normal(size=10)
    theta_n = rng.normal(size=21)
    return [
        ("quadratic", quadratic_cost, (A, b), theta_q, quadratic_gradient(theta_q, A, b)),
        ("logistic", logistic_cost, (X, y, 0.0), theta_l, logistic_gradient(theta_l, X, y, 0.0)),
        ("tiny_network", tiny_network, (Xn, Yn), theta_n, tiny_network_gradient(theta_n, Xn, Yn)),
    ]
