"""Reference cases shared by the tests, the benchmarks and ``fastgrad bench``.

One registry, so that every benchmark, smoke test and CLI run measures the same
problems the same way:

* dense networks in the course's conventions (ReLU hidden layers, seeded data):
  **S**, the course's own 4-5-3-1 network on its 3 examples (47 parameters,
  binary cross-entropy); **M**, 784-128-64-10 on 64 examples (109,386
  parameters, softmax cross-entropy); **L**, 3072-512-256-10 on 32 examples
  (1,707,274 parameters); and **smooth**, a tanh network for the accuracy
  benchmark, where every method's error can be measured against the exact
  gradient;
* general cost functions of growing size for the generic engine, each a
  Numba-compiled ``cost(theta, *args)`` with its exact gradient: a quadratic
  form, logistic regression with its data passed through ``args``, and a
  network written as a plain compiled function of theta.

Nothing is built at import: a case holds only its sizes and seed, and
:meth:`NetworkCase.problem` / :meth:`GenericCase.problem` draw the data when
asked. Every case has a ``small()`` variant (a few dozen parameters) for smoke
tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from fastgrad._dense_spec import BINARY_CROSS_ENTROPY, RELU, SOFTMAX_CROSS_ENTROPY, TANH
from fastgrad._jit import njit
from fastgrad._layout import Layout

if TYPE_CHECKING:
    from fastgrad.dense import DenseNet

__all__ = [
    "NetworkCase",
    "NetworkProblem",
    "GenericCase",
    "GenericProblem",
    "NETWORK_CASES",
    "SMOOTH_CASE",
    "GENERIC_CASES",
    "CASES",
    "get_case",
    "network_cost",
    "quadratic_cost",
    "quadratic_gradient",
    "logistic_cost",
    "logistic_gradient",
]

_HIDDEN_CODES = {"relu": RELU, "tanh": TANH}
_LOSS_CODES = {"binary_cross_entropy": BINARY_CROSS_ENTROPY, "softmax_cross_entropy": SOFTMAX_CROSS_ENTROPY}


# --------------------------------------------------------------------------- #
# A dense network written as a plain compiled cost function of theta
# --------------------------------------------------------------------------- #


@njit(cache=True)
def network_cost(theta, layer_sizes, hidden, loss, X, Y):
    """The cost of a dense network, written as a user would for the generic engine.

    Course layout: ``theta`` holds ``W1`` ``(n1, n0)`` in C order, ``b1``,
    ``W2``, ...; ``X`` is ``(n0, m)``, ``Y`` is ``(nL, m)``. ``hidden`` is the
    activation code of every hidden layer (ReLU or tanh, ``fastgrad._dense_spec``);
    ``loss`` is binary cross-entropy on a sigmoid output (computed from the
    logits) or softmax cross-entropy on linear logits.
    """
    n_layers = layer_sizes.size - 1
    m = X.shape[1]
    A = X.copy()
    Z = X.copy()
    p = 0
    for l in range(n_layers):
        n_in = layer_sizes[l]
        n_out = layer_sizes[l + 1]
        W = theta[p : p + n_out * n_in].reshape((n_out, n_in))
        b = theta[p + n_out * n_in : p + n_out * n_in + n_out]
        p += n_out * n_in + n_out
        Z = np.dot(W, A)
        for i in range(n_out):
            for j in range(m):
                Z[i, j] += b[i]
        if l < n_layers - 1:
            if hidden == RELU:
                A = np.maximum(Z, 0.0)
            else:
                A = np.tanh(Z)
    total = 0.0
    n_out = layer_sizes[n_layers]
    if loss == BINARY_CROSS_ENTROPY:
        # -y log(s(z)) - (1-y) log(1-s(z)) = softplus(z) - y z, computed stably
        for i in range(n_out):
            for j in range(m):
                z = Z[i, j]
                total += max(z, 0.0) + math.log1p(math.exp(-abs(z))) - Y[i, j] * z
    else:
        for j in range(m):
            shift = Z[0, j]
            for i in range(1, n_out):
                shift = max(shift, Z[i, j])
            s = 0.0
            for i in range(n_out):
                s += math.exp(Z[i, j] - shift)
            log_sum = shift + math.log(s)
            for i in range(n_out):
                total += Y[i, j] * (log_sum - Z[i, j])
    return total / m


# --------------------------------------------------------------------------- #
# General cost functions
# --------------------------------------------------------------------------- #


@njit(cache=True)
def quadratic_cost(theta, A, b):
    """``0.5 theta' A theta + b' theta`` (A symmetric)."""
    n = theta.size
    total = 0.0
    for i in range(n):
        row = 0.0
        for j in range(n):
            row += A[i, j] * theta[j]
        total += theta[i] * (0.5 * row + b[i])
    return total


def quadratic_gradient(theta: np.ndarray, A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``A theta + b``."""
    return A @ theta + b


@njit(cache=True)
def logistic_cost(w, X, y, l2):
    """Mean logistic loss ``log(1 + exp(-y_i x_i . w))`` plus ``l2/2 ||w||^2``; y in {-1, +1}."""
    m, d = X.shape
    total = 0.0
    for i in range(m):
        margin = 0.0
        for k in range(d):
            margin += X[i, k] * w[k]
        z = -y[i] * margin
        total += max(z, 0.0) + math.log1p(math.exp(-abs(z)))
    penalty = 0.0
    for k in range(d):
        penalty += w[k] * w[k]
    return total / m + 0.5 * l2 * penalty


def logistic_gradient(w: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """``-(1/m) sum y_i s(-y_i x_i . w) x_i + l2 w``."""
    z = -y * (X @ w)
    weight = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid(z), without overflow
    return -(X.T @ (y * weight)) / X.shape[0] + l2 * w


# --------------------------------------------------------------------------- #
# Problems: what a case builds when asked
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class GenericProblem:
    """A cost function, the point theta, the cost's extra arguments and the exact gradient.

    Check it with ``fastgrad.gradcheck(p.cost, p.grad, p.theta, args=p.args, layout=p.layout)``.
    """

    cost: Callable
    theta: np.ndarray
    args: tuple
    grad: np.ndarray
    layout: Layout | None = None


@dataclass(frozen=True)
class NetworkProblem(GenericProblem):
    """A :class:`GenericProblem` that is also a dense network with its data.

    Check it with ``p.net.gradcheck(p.params, p.X, p.Y)``; the generic fields
    describe the same network as a compiled cost function of theta
    (:func:`network_cost`), with ``grad`` from fastgrad's back-prop.
    """

    net: DenseNet | None = None
    params: dict = field(default_factory=dict)
    X: np.ndarray | None = None
    Y: np.ndarray | None = None


# --------------------------------------------------------------------------- #
# Cases
# --------------------------------------------------------------------------- #


def _dense_gradient(net: DenseNet, params: dict, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The exact gradient of ``net``'s cost at ``params`` (fastgrad's back-prop), as one vector."""
    grads = net.gradients(params, X, Y)
    return net.pack({name[1:]: block for name, block in grads.items()})


def _network_size(layer_sizes: tuple[int, ...]) -> int:
    return sum(n_out * n_in + n_out for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]))


@dataclass(frozen=True)
class NetworkCase:
    """A dense network with seeded data, in the course's conventions.

    Attributes
    ----------
    name : str
        ``"S"``, ``"M"``, ``"L"`` or ``"smooth"`` (``"-small"`` appended for a small variant).
    layer_sizes : tuple of int
        ``(n0, ..., nL)``.
    m : int
        Number of examples.
    hidden : str
        Activation of every hidden layer (``"relu"`` or ``"tanh"``).
    loss : str
        ``"binary_cross_entropy"`` (sigmoid output) or ``"softmax_cross_entropy"``.
    seed : int
        Seed of the data and parameters.
    naive_components : int
        How many components the naive loop (and other contenders whose every
        component costs the same) is timed on before extrapolating.
    course : bool
        Use the course's own data and parameters (``fastgrad.naive.course_case``).
    description : str
        One line for tables.
    """

    name: str
    layer_sizes: tuple[int, ...]
    m: int
    hidden: str
    loss: str
    seed: int = 0
    naive_components: int = 200
    course: bool = False
    description: str = ""
    small_layer_sizes: tuple[int, ...] | None = None
    small_m: int = 4

    @property
    def n_params(self) -> int:
        """Number of parameters (components of theta)."""
        return _network_size(self.layer_sizes)

    @property
    def is_small(self) -> bool:
        return self.small_layer_sizes is None

    def small(self) -> "NetworkCase":
        """The same kind of network at smoke-test size (a few dozen parameters)."""
        if self.small_layer_sizes is None:
            return self
        return replace(
            self, name=f"{self.name}-small", layer_sizes=self.small_layer_sizes, m=self.small_m,
            naive_components=_network_size(self.small_layer_sizes), small_layer_sizes=None,
            description=f"{self.description} (small variant)",
        )

    def net(self) -> DenseNet:
        """The :class:`fastgrad.DenseNet` of this case."""
        from fastgrad.dense import DenseNet

        return DenseNet(list(self.layer_sizes), self.hidden, self.loss)

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """Seeded ``X`` ``(n0, m)`` and ``Y`` ``(nL, m)`` (one-hot for softmax cross-entropy)."""
        if self.course:
            from fastgrad.naive import course_case

            X, Y, _ = course_case()
            return X, np.asarray(Y, dtype=np.float64).reshape(1, -1)
        rng = np.random.default_rng(self.seed + 1)
        n0, n_out = self.layer_sizes[0], self.layer_sizes[-1]
        X = rng.standard_normal((n0, self.m))
        if self.loss == "binary_cross_entropy":
            Y = (rng.random((n_out, self.m)) < 0.5).astype(np.float64)
        else:
            Y = np.eye(n_out)[rng.integers(0, n_out, self.m)].T.copy()
        return X, Y

    def params(self) -> dict[str, np.ndarray]:
        """Seeded parameters (He / Xavier scaling; small random biases so no unit sits at 0)."""
        if self.course:
            from fastgrad.naive import course_case

            return course_case()[2]
        params = self.net().init(seed=self.seed)
        rng = np.random.default_rng(self.seed + 2)
        for name in params:
            if name.startswith("b"):
                params[name] = 0.1 * rng.standard_normal(params[name].shape)
        return params

    def cost_args(self, X: np.ndarray, Y: np.ndarray) -> tuple:
        """``args`` for :func:`network_cost` on this network."""
        return (
            np.asarray(self.layer_sizes, dtype=np.int64), _HIDDEN_CODES[self.hidden],
            _LOSS_CODES[self.loss], np.ascontiguousarray(X, dtype=np.float64),
            np.ascontiguousarray(Y, dtype=np.float64),
        )

    def problem(self) -> NetworkProblem:
        """Build the network, its data, its parameters and the exact gradient (by back-prop)."""
        net = self.net()
        X, Y = self.data()
        params = self.params()
        return NetworkProblem(
            cost=network_cost, theta=net.pack(params), args=self.cost_args(X, Y),
            grad=_dense_gradient(net, params, X, Y), layout=net.layout,
            net=net, params=params, X=X, Y=Y,
        )


@dataclass(frozen=True)
class GenericCase:
    """A compiled cost function of theta with its exact gradient, at a given size.

    Attributes
    ----------
    name : str
    size : int
        Number of components of theta.
    build : callable
        ``build(size, seed) -> GenericProblem``.
    small_size : int or None
        Size of the small variant (None: this is already small).
    count : callable, optional
        ``count(size)``: the number of parameters a ``size`` builds, when it is
        not ``size`` itself.
    naive_components : int
        Components a plain Python loop is timed on before extrapolating.
    description : str
    """

    name: str
    size: int
    build: Callable[[int, int], GenericProblem]
    seed: int = 0
    small_size: int | None = None
    naive_components: int = 200
    description: str = ""
    count: Callable[[int], int] | None = None

    @property
    def n_params(self) -> int:
        """Number of parameters (components of theta)."""
        return self.size if self.count is None else self.count(self.size)

    @property
    def is_small(self) -> bool:
        return self.small_size is None

    def small(self) -> "GenericCase":
        """The same cost at smoke-test size."""
        if self.small_size is None:
            return self
        return replace(
            self, name=f"{self.name}-small", size=self.small_size, small_size=None,
            naive_components=self.count(self.small_size) if self.count else self.small_size, description=f"{self.description} (small variant)",
        )

    def problem(self) -> GenericProblem:
        """Draw the seeded data and point, and compute the exact gradient."""
        return self.build(self.size, self.seed)


def _build_quadratic(n: int, seed: int) -> GenericProblem:
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, n)) / math.sqrt(n)
    A = np.ascontiguousarray(B @ B.T + np.eye(n))
    b = rng.standard_normal(n)
    theta = rng.standard_normal(n)
    return GenericProblem(quadratic_cost, theta, (A, b), quadratic_gradient(theta, A, b))


def _build_logistic(d: int, seed: int) -> GenericProblem:
    rng = np.random.default_rng(seed)
    m = 2 * d
    X = rng.standard_normal((m, d)) / math.sqrt(d)
    w_true = rng.standard_normal(d)
    y = np.where(X @ w_true + 0.5 * rng.standard_normal(m) > 0, 1.0, -1.0)
    w = 0.5 * rng.standard_normal(d)
    l2 = 1e-2
    return GenericProblem(logistic_cost, w, (X, y, l2), logistic_gradient(w, X, y, l2))


def _mlp_sizes(size: int) -> tuple[int, ...]:
    # A 3-layer tanh network n0-h-h/2-4 whose parameter count is about ``size``.
    for hidden in range(4, 4096, 2):
        sizes = (2 * hidden, hidden, hidden // 2, 4)
        if _network_size(sizes) >= size:
            return sizes
    raise ValueError(f"no network of about {size} parameters")


def _build_mlp(size: int, seed: int) -> GenericProblem:
    from fastgrad.dense import DenseNet

    layer_sizes = _mlp_sizes(size)
    rng = np.random.default_rng(seed)
    theta = np.concatenate([
        np.concatenate([
            rng.standard_normal(n_out * n_in) * math.sqrt(2.0 / (n_in + n_out)),
            0.1 * rng.standard_normal(n_out),
        ])
        for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])
    ])
    m = 16
    X = rng.standard_normal((layer_sizes[0], m))
    Y = np.eye(layer_sizes[-1])[rng.integers(0, layer_sizes[-1], m)].T.copy()
    args = (np.asarray(layer_sizes, dtype=np.int64), TANH, SOFTMAX_CROSS_ENTROPY, X, Y)
    # The same network as a DenseNet: its layout, and the exact gradient by fastgrad's back-prop.
    net = DenseNet(list(layer_sizes), "tanh", "softmax_cross_entropy")
    return GenericProblem(network_cost, theta, args, _dense_gradient(net, net.unpack(theta), X, Y), net.layout)


def _mlp_count(size: int) -> int:
    return _network_size(_mlp_sizes(size))


#: The S, M and L reference networks (ReLU hidden layers).
NETWORK_CASES: dict[str, NetworkCase] = {
    "S": NetworkCase(
        "S", (4, 5, 3, 1), 3, "relu", "binary_cross_entropy", course=True, naive_components=47,
        description="the course's 4-5-3-1 network on its 3 examples",
    ),
    "M": NetworkCase(
        "M", (784, 128, 64, 10), 64, "relu", "softmax_cross_entropy", seed=0, naive_components=200,
        description="784-128-64-10, 64 examples (MNIST-sized)",
        small_layer_sizes=(12, 6, 4, 3), small_m=5,
    ),
    "L": NetworkCase(
        "L", (3072, 512, 256, 10), 32, "relu", "softmax_cross_entropy", seed=0, naive_components=40,
        description="3072-512-256-10, 32 examples (CIFAR-sized)",
        small_layer_sizes=(16, 8, 6, 4), small_m=4,
    ),
}

#: A smooth (tanh) network: the accuracy benchmark's subject.
SMOOTH_CASE = NetworkCase(
    "smooth", (20, 16, 12, 5), 32, "tanh", "softmax_cross_entropy", seed=3, naive_components=200,
    description="20-16-12-5 tanh network, 32 examples (smooth everywhere)",
    small_layer_sizes=(5, 4, 3), small_m=6,
)

#: General compiled cost functions of growing size, for the generic engine.
GENERIC_CASES: dict[str, GenericCase] = {
    "quadratic": GenericCase(
        "quadratic", 300, _build_quadratic, small_size=8,
        description="0.5 theta'A theta + b'theta, n = 300 (O(n^2) per evaluation)",
    ),
    "logistic": GenericCase(
        "logistic", 1000, _build_logistic, small_size=6,
        description="logistic regression, d = 1000, m = 2000 (data passed via args)",
    ),
    "mlp": GenericCase(
        "mlp", 10000, _build_mlp, small_size=40, count=_mlp_count,
        description="tanh network 2h-h-h/2-4 as a plain compiled cost of theta, 16 examples",
    ),
}

#: Every case by name.
CASES: dict[str, NetworkCase | GenericCase] = {**NETWORK_CASES, "smooth": SMOOTH_CASE, **GENERIC_CASES}


def get_case(name: str, small: bool = False) -> NetworkCase | GenericCase:
    """A case by name (``"S"``, ``"M"``, ``"L"``, ``"smooth"``, ``"quadratic"``, ...).

    Parameters
    ----------
    name : str
        A key of :data:`CASES`.
    small : bool
        Return the smoke-test variant.

    Raises
    ------
    KeyError
        For an unknown name, listing the known ones.
    """
    try:
        case = CASES[name]
    except KeyError:
        raise KeyError(f"Unknown case {name!r}; known cases: {', '.join(CASES)}.") from None
    return case.small() if small else case
