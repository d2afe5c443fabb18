"""Models of the external catalogue, independent of fastgrad's own conventions.

* :class:`RowMLP` -- a dense network with examples as ROWS: ``Z = A @ W + b``,
  ``W`` shaped ``(n_in, n_out)``, ``b`` shaped ``(n_out,)``, blocks named
  ``layer0.weight``, ``layer0.bias``, ... Its forward pass runs in float64 and in
  complex128 (for complex-step references); its back-prop is NumPy, with
  planted bugs selectable by name.
* :func:`mlp_cost_numba` -- the same cost compiled with Numba.
* :func:`rosenbrock_numba` -- the extended Rosenbrock function, compiled.
* :class:`SklearnLoss` -- scikit-learn's ``_loss_grad_lbfgs`` as a cost and a
  gradient, plus an independent complex-capable re-implementation of its loss.
"""

from __future__ import annotations

import numba
import numpy as np

ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky")
LOSSES = ("softmax_ce", "mse", "bce")

#: Bugs planted inside the back-prop (the others are applied to its result).
INTERNAL_BUGS = (
    "missing_1_over_m",
    "loop_drops_last_example",
    "softmax_without_labels",
    "misaligned_examples",
    "weight_grad_uses_preactivation",
    "bias_first_example_only",
    "bias_missing_1_over_m",
    "l2_missing",
    "l2_doubled",
    "l2_on_bias",
    "derivative_wrong_place",
    "derivative_missing",
    "leaky_slope_wrong",
)


def _active(z: np.ndarray) -> np.ndarray:
    """Where a ReLU is on. For complex input the sign is lexicographic in
    (real, imaginary), so a complex step taken exactly at a kink follows the
    side the step moves into: the complex step then gives the exact one-sided
    directional derivative of a piecewise-linear network."""
    if np.iscomplexobj(z):
        return (z.real > 0) | ((z.real == 0) & (z.imag > 0))
    return z > 0


class RowMLP:
    """Dense network, examples as rows, NumPy back-prop with optional planted bugs.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_in, n_hidden..., n_out]``.
    activation : {"tanh", "sigmoid", "relu", "leaky"}
        Hidden activation (leaky ReLU has slope ``leaky_slope`` below zero).
    loss : {"softmax_ce", "mse", "bce"}
        Softmax + cross-entropy with one-hot rows, identity + half squared
        error, or sigmoid + binary cross-entropy; each averaged over examples.
    l2 : float
        ``0.5 * l2 * sum ||W||^2`` over weights only (not biases).
    """

    def __init__(self, sizes, activation="tanh", loss="softmax_ce", l2=0.0, leaky_slope=0.01):
        if activation not in ACTIVATIONS or loss not in LOSSES:
            raise ValueError((activation, loss))
        self.sizes = tuple(int(s) for s in sizes)
        self.activation, self.loss, self.l2, self.slope = activation, loss, float(l2), float(leaky_slope)
        self.n_layers = len(self.sizes) - 1

    # ---------------------------------------------------------------- layout
    def block_names(self) -> list[str]:
        """Block names in packing order."""
        return [f"layer{l}.{kind}" for l in range(self.n_layers) for kind in ("weight", "bias")]

    def init(self, seed: int, weight_scale: float = 1.0, bias_scale: float = 0.1) -> dict:
        """Glorot-like weights times ``weight_scale``, small random biases."""
        rng = np.random.default_rng(seed)
        params = {}
        for l, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            params[f"layer{l}.weight"] = weight_scale * rng.normal(size=(n_in, n_out)) * np.sqrt(2.0 / (n_in + n_out))
            params[f"layer{l}.bias"] = bias_scale * rng.normal(size=n_out)
        return params

    def split(self, theta: np.ndarray) -> tuple[list, list]:
        """Views ``(Ws, bs)`` into theta, in this model's own offsets (not fastgrad's)."""
        Ws, bs, off = [], [], 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            Ws.append(theta[off : off + n_in * n_out].reshape(n_in, n_out))
            off += n_in * n_out
            bs.append(theta[off : off + n_out])
            off += n_out
        if off != theta.size:
            raise ValueError(f"theta has {theta.size} components, the model {off}")
        return Ws, bs

    # --------------------------------------------------------------- forward
    def act(self, z):
        if self.activation == "tanh":
            return np.tanh(z)
        if self.activation == "sigmoid":
            return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free, complex-safe
        if self.activation == "relu":
            return np.where(_active(z), z, 0.0)
        return np.where(_active(z), z, self.slope * z)

    def per_example_loss(self, out, Y):
        """Loss of each example (row) from the output pre-activation ``out``."""
        if self.loss == "softmax_ce":
            s = np.max(out.real, axis=1, keepdims=True)
            lse = s[:, 0] + np.log(np.sum(np.exp(out - s), axis=1))
            return lse - np.sum(Y * out, axis=1)
        if self.loss == "mse":
            return 0.5 * np.sum((out - Y) ** 2, axis=1)
        r = np.maximum(out.real, 0.0)
        softplus = r + np.log(np.exp(-r) + np.exp(out - r))
        return np.sum(softplus - Y * out, axis=1)

    def forward(self, theta, X):
        """``(Zs, As)``: pre-activations of every layer and inputs of every layer."""
        Ws, bs = self.split(theta)
        As, Zs = [X], []
        for l in range(self.n_layers):
            z = As[-1] @ Ws[l] + bs[l]
            Zs.append(z)
            As.append(self.act(z) if l < self.n_layers - 1 else z)
        return Zs, As

    def penalty(self, theta):
        Ws, _ = self.split(theta)
        return 0.5 * self.l2 * sum(np.sum(W * W) for W in Ws) if self.l2 else 0.0

    def cost(self, theta, X, Y):
        """Mean loss plus L2 penalty; works for float64 and complex128 theta."""
        Zs, _ = self.forward(theta, X)
        value = np.mean(self.per_example_loss(Zs[-1], Y)) + self.penalty(theta)
        return value if np.iscomplexobj(value) else float(value)

    def cost_per_example_mean(self, theta, X, Y):
        """Vector whose MEAN is :meth:`cost` (the penalty is added to every example)."""
        Zs, _ = self.forward(theta, X)
        return self.per_example_loss(Zs[-1], Y) + self.penalty(theta)

    def cost_per_example_sum(self, theta, X, Y):
        """Vector whose SUM is :meth:`cost`."""
        m = X.shape[0]
        Zs, _ = self.forward(theta, X)
        return (self.per_example_loss(Zs[-1], Y) + self.penalty(theta)) / m

    # -------------------------------------------------------------- backprop
    def _derivative(self, z, a, bug):
        if self.activation == "tanh":
            return 1.0 - z * z if bug == "derivative_wrong_place" else 1.0 - a * a
        if self.activation == "sigmoid":
            return z * (1.0 - z) if bug == "derivative_wrong_place" else a * (1.0 - a)
        if self.activation == "relu":
            return (z > 0).astype(float)
        slope = 0.1 if bug == "leaky_slope_wrong" else self.slope
        return np.where(z > 0, 1.0, slope)

    def backprop(self, theta, X, Y, bug=None) -> dict:
        """Gradient of :meth:`cost` as a dict of blocks; ``bug`` plants one of
        :data:`INTERNAL_BUGS` (``None``: the correct gradient).

        At a ReLU kink (pre-activation exactly 0) the derivative is taken as 0.
        """
        if bug is not None and bug not in INTERNAL_BUGS:
            raise ValueError(bug)
        Ws, bs = self.split(theta)
        Zs, As = self.forward(theta, X)
        m, out = X.shape[0], Zs[-1]
        if self.loss == "softmax_ce":
            P = np.exp(out - np.max(out, axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
            d = P if bug == "softmax_without_labels" else P - Y
        elif self.loss == "mse":
            d = out - Y
        else:
            d = 0.5 * (1.0 + np.tanh(0.5 * out)) - Y
        delta = d if bug == "missing_1_over_m" else d / m
        if bug == "loop_drops_last_example":
            delta[-1] = 0.0  # as if the loop over examples ran to m-1
        grads = {}
        for l in range(self.n_layers - 1, -1, -1):
            a_in = As[l]
            if bug == "weight_grad_uses_preactivation" and l == 1:
                a_in = Zs[0]
            if bug == "misaligned_examples" and l == 0:
                a_in = np.roll(X, 1, axis=0)  # example i paired with the error of example i-1
            dW = a_in.T @ delta
            db = delta[0].copy() if (bug == "bias_first_example_only" and l == 0) else delta.sum(axis=0)
            if bug == "bias_missing_1_over_m":
                db = db * m
            if self.l2:
                if bug != "l2_missing":
                    dW = dW + (2.0 if bug == "l2_doubled" else 1.0) * self.l2 * Ws[l]
                if bug == "l2_on_bias":
                    db = db + self.l2 * bs[l]
            grads[f"layer{l}.weight"], grads[f"layer{l}.bias"] = dW, db
            if l > 0:
                back = delta @ Ws[l].T
                if bug == "derivative_missing" and l == self.n_layers - 1:
                    delta = back
                else:
                    delta = back * self._derivative(Zs[l - 1], As[l], bug)
        return {name: grads[name] for name in self.block_names()}

    # -------------------------------------------------------------- training
    def train(self, theta, X, Y, steps: int, rate: float) -> np.ndarray:
        """Plain full-batch gradient descent with the correct back-prop."""
        theta = theta.copy()
        for _ in range(steps):
            g = self.backprop(theta, X, Y)
            theta -= rate * np.concatenate([v.ravel() for v in g.values()])
        return theta

    def codes(self):
        """Integer codes for :func:`mlp_cost_numba`."""
        return (
            np.asarray(self.sizes, dtype=np.int64),
            ACTIVATIONS.index(self.activation),
            LOSSES.index(self.loss),
            self.l2,
        )


@numba.njit(cache=True)
def mlp_cost_numba(theta, X, Y, sizes, act, loss, l2):
    """:meth:`RowMLP.cost`, compiled: same layout, activations and losses (leaky slope 0.01)."""
    m = X.shape[0]
    A = X.copy()
    off = 0
    reg = 0.0
    n_layers = sizes.size - 1
    for l in range(n_layers):
        n_in, n_out = sizes[l], sizes[l + 1]
        W = theta[off : off + n_in * n_out].copy().reshape((n_in, n_out))
        off += n_in * n_out
        b = theta[off : off + n_out]
        off += n_out
        Z = A @ W
        for i in range(m):
            for j in range(n_out):
                z = Z[i, j] + b[j]
                if l < n_layers - 1:
                    if act == 0:
                        z = np.tanh(z)
                    elif act == 1:
                        z = 0.5 * (1.0 + np.tanh(0.5 * z))
                    elif act == 2:
                        z = z if z > 0.0 else 0.0
                    else:
                        z = z if z > 0.0 else 0.01 * z
                Z[i, j] = z
        for i in range(n_in):
            for j in range(n_out):
                reg += W[i, j] * W[i, j]
        A = Z
    total = 0.0
    K = A.shape[1]
    for i in range(m):
        if loss == 0:
            s = A[i, 0]
            for k in range(1, K):
                s = max(s, A[i, k])
            acc = 0.0
            for k in range(K):
                acc += np.exp(A[i, k] - s)
            li = s + np.log(acc)
            for k in range(K):
                li -= Y[i, k] * A[i, k]
        elif loss == 1:
            li = 0.0
            for k in range(K):
                li += 0.5 * (A[i, k] - Y[i, k]) ** 2
        else:
            li = 0.0
            for k in range(K):
                z = A[i, k]
                r = max(z, 0.0)
                li += r + np.log(np.exp(-r) + np.exp(z - r)) - Y[i, k] * z
        total += li
    return total / m + 0.5 * l2 * reg


@numba.njit(cache=True)
def rosenbrock_numba(x):
    """Extended Rosenbrock: ``sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2``."""
    s = 0.0
    for i in range(x.size - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        s += 100.0 * a * a + b * b
    return s


def rosenbrock(x):
    """The same function vectorised (float64, complex128 or longdouble)."""
    a = x[1:] - x[:-1] * x[:-1]
    b = 1.0 - x[:-1]
    return np.sum(100.0 * a * a + b * b)


def rosenbrock_grad(x):
    """Its gradient, written out by hand."""
    g = np.zeros_like(x)
    a = x[1:] - x[:-1] * x[:-1]
    g[:-1] = -400.0 * x[:-1] * a - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * a
    return g


class SklearnLoss:
    """A fitted scikit-learn MLP's L-BFGS objective as ``cost(theta)`` and its gradient.

    The cost calls the estimator's ``_loss_grad_lbfgs`` on a private copy of
    theta (``_unpack`` keeps views into its argument, and fastgrad may reuse
    buffers). Blocks are sklearn's own packing order and names: ``coefs_0``,
    ``coefs_1``, ..., then ``intercepts_0``, ...
    """

    def __init__(self, estimator, X, y):
        self.est = estimator
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        if hasattr(estimator, "_label_binarizer"):
            self.Y = estimator._label_binarizer.transform(y).astype(np.float64)
        else:
            self.Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        self.units = [self.X.shape[1]] + [c.shape[1] for c in estimator.coefs_]

    def params(self) -> dict:
        d = {f"coefs_{i}": c.copy() for i, c in enumerate(self.est.coefs_)}
        d.update({f"intercepts_{i}": b.copy() for i, b in enumerate(self.est.intercepts_)})
        return d

    def loss_and_grad(self, theta):
        n = len(self.units) - 1
        activations = [self.X] + [None] * n
        deltas = [None] * n
        coef_grads = [np.empty((a, b)) for a, b in zip(self.units[:-1], self.units[1:])]
        intercept_grads = [np.empty(b) for b in self.units[1:]]
        loss, grad = self.est._loss_grad_lbfgs(
            np.array(theta, dtype=np.float64, copy=True), self.X, self.Y, None,
            activations, deltas, coef_grads, intercept_grads,
        )
        return float(loss), np.array(grad, dtype=np.float64, copy=True)

    def cost(self, theta):
        return self.loss_and_grad(theta)[0]

    # ------------------------------------------------ independent reference
    def split(self, theta):
        Ws, bs, off = [], [], 0
        for a, b in zip(self.units[:-1], self.units[1:]):
            Ws.append(theta[off : off + a * b].reshape(a, b))
            off += a * b
        for b in self.units[1:]:
            bs.append(theta[off : off + b])
            off += b
        return Ws, bs

    def reference_cost(self, theta, clip=True):
        """Re-implementation of sklearn's loss (complex-capable when ``clip=False``)."""
        est, X, Y = self.est, self.X, self.Y
        Ws, bs = self.split(theta)
        A = X
        for l, (W, b) in enumerate(zip(Ws, bs)):
            Z = A @ W + b
            if l < len(Ws) - 1:
                if est.activation == "tanh":
                    A = np.tanh(Z)
                elif est.activation == "logistic":
                    A = 0.5 * (1.0 + np.tanh(0.5 * Z))
                elif est.activation == "relu":
                    A = np.where(_active(Z), Z, 0.0)
                else:
                    A = Z
            else:
                A = Z
        out, m = A, X.shape[0]
        reg = 0.5 * est.alpha * sum(np.sum(W * W) for W in Ws) / m
        if est.out_activation_ == "identity":
            # sklearn: 0.5 * mean over examples, then mean over outputs
            return 0.5 * np.mean(np.mean((out - Y) ** 2, axis=0)) + reg
        if est.out_activation_ == "softmax":
            s = np.max(out.real, axis=1, keepdims=True)
            logp = out - s - np.log(np.sum(np.exp(out - s), axis=1, keepdims=True))
            if clip:
                logp = np.log(np.clip(np.exp(logp), np.finfo(float).eps, 1 - np.finfo(float).eps))
            return -np.mean(np.sum(Y * logp, axis=1)) + reg
        # logistic output, binary log loss: softplus(z) - y z
        r = np.maximum(out.real, 0.0)
        softplus = r + np.log(np.exp(-r) + np.exp(out - r))
        if clip:
            p = np.clip(0.5 * (1.0 + np.tanh(0.5 * out)), np.finfo(float).eps, 1 - np.finfo(float).eps)
            return -np.mean(np.sum(Y * np.log(p) + (1 - Y) * np.log(1 - p), axis=1)) + reg
        return np.mean(np.sum(softplus - Y * out, axis=1)) + reg

    def clipped_examples(self, theta) -> int:
        """How many predicted probabilities sklearn's loss clips at this point
        (where its loss is flat although its gradient is not)."""
        est = self.est
        if est.out_activation_ == "identity":
            return 0
        Ws, bs = self.split(theta)
        A = self.X
        for l, (W, b) in enumerate(zip(Ws, bs)):
            Z = A @ W + b
            A = (np.tanh(Z) if est.activation == "tanh" else 0.5 * (1 + np.tanh(0.5 * Z)) if est.activation == "logistic"
                 else np.maximum(Z, 0) if est.activation == "relu" else Z) if l < len(Ws) - 1 else Z
        if est.out_activation_ == "softmax":
            P = np.exp(A - A.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
        else:
            P = 0.5 * (1 + np.tanh(0.5 * A))
        eps = np.finfo(float).eps
        return int(np.count_nonzero((P < eps) | (P > 1 - eps)))
