"""Cost functions for the generic engine's tests, each with its exact gradient.

Written with explicit loops so that the compiled function and its pure-Python
twin (``cost.py_func``) do the same arithmetic.
"""

import numba
import numpy as np


@numba.njit(cache=True)
def quadratic(theta, A, b):
    """0.5 theta' A theta - b' theta."""
    n = theta.shape[0]
    total = 0.0
    for i in range(n):
        row = 0.0
        for j in range(n):
            row += A[i, j] * theta[j]
        total += 0.5 * theta[i] * row - b[i] * theta[i]
    return total


def quadratic_gradient(theta, A, b):
    return 0.5 * (A + A.T) @ theta - b


@numba.njit(cache=True)
def logistic(theta, X, y):
    """Mean logistic loss of a linear model with weights theta (X is m x n)."""
    m, n = X.shape
    total = 0.0
    for e in range(m):
        z = 0.0
        for j in range(n):
            z += X[e, j] * theta[j]
        # log(1 + exp(-y z)) written stably
        t = -y[e] * z
        total += max(t, 0.0) + np.log1p(np.exp(-abs(t)))
    return total / m


def logistic_gradient(theta, X, y):
    z = X @ theta
    s = 1.0 / (1.0 + np.exp(y * z))
    return -(X.T @ (y * s)) / X.shape[0]


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
    W1, b1, W2, b2 = theta[:12].reshape(4, 3), theta[12:16], theta[16:20], theta[20]
    m = X.shape[1]
    A1 = np.tanh(W1 @ X + b1[:, None])
    out = W2 @ A1 + b2
    d_out = (out - Y) / m
    dW2 = A1 @ d_out
    db2 = d_out.sum()
    dZ1 = np.outer(W2, d_out) * (1 - A1**2)
    dW1 = dZ1 @ X.T
    db1 = dZ1.sum(axis=1)
    return np.concatenate([dW1.ravel(), db1, dW2, [db2]])


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
    A = rng.normal(size=(n, n))
    b = rng.normal(size=n)
    theta_q = rng.normal(size=n)
    X = rng.normal(size=(40, 6))
    y = np.where(rng.random(40) < 0.5, -1.0, 1.0)
    theta_l = rng.normal(size=6)
    Xn = rng.normal(size=(3, 10))
    Yn = rng.normal(size=10)
    theta_n = rng.normal(size=21)
    return [
        ("quadratic", quadratic, (A, b), theta_q, quadratic_gradient(theta_q, A, b)),
        ("logistic", logistic, (X, y), theta_l, logistic_gradient(theta_l, X, y)),
        ("tiny_network", tiny_network, (Xn, Yn), theta_n, tiny_network_gradient(theta_n, Xn, Yn)),
    ]
