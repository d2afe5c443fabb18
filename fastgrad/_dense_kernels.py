"""Compiled forward cost, per-example losses and perturbed-cost evaluation of a dense network.

Every kernel takes the network the same way (see ``docs/design.md``):

- ``theta``: the flat parameter vector in the course's layout, ``W1`` ``(n1, n0)``
  in C order, ``b1`` ``(n1, 1)``, ``W2``, ``b2``, ...;
- ``layer_sizes``: int64 ``[n0, n1, ..., nL]``;
- ``activations``: int64 activation code of each of the L layers
  (``fastgrad._dense_spec``); ``loss``: the loss code; ``l2``: the L2 strength
  (penalty ``l2 / (2 m) * sum ||W_l||^2``);
- ``X`` ``(n0, m)`` and ``Y`` ``(nL, m)``, float64, C-contiguous;
- ``dropout_scale``: ``mask / keep_prob`` of every hidden layer, rows stacked
  layer after layer, shape ``(n1 + ... + n_{L-1}, m)``, or ``(0, m)`` for none;
  it multiplies the hidden activations after the activation function.

The forward pass is written once, generically in the scalar type of ``theta``,
so the same source compiles for float64 and for complex128 (the complex step):
activations branch on the real part, and log-sum-exp is shifted by the largest
real part. Nothing here validates its input: ``fastgrad.dense`` does that in
Python before calling.

``fastgrad._dense_engine`` shares this module's activation, slope and
kink tests (``activation(code, z)``, ``activation_slope(code, z)``,
``is_kinked``, ``is_piecewise_linear``) and ``layer_weights`` (``W_l`` as a
view of theta), so that both kernels compute g(z) the same way. The
back-prop is NumPy's (``fastgrad._dense_numpy``). ``per_example_losses`` gives the loss of
each example on its own, for judging one-sided slopes at kinks.

No ``fastmath``: the perturbed costs are differenced, and reassociation would
change them.
"""

from __future__ import annotations

import numpy as np
from fastgrad._jit import njit, prange

from fastgrad._dense_spec import (
    BINARY_CROSS_ENTROPY,
    LEAKY_RELU,
    LEAKY_SLOPE,
    LINEAR,
    RELU,
    SIGMOID,
    SOFTMAX_CROSS_ENTROPY,
    STATUS_NON_FINITE,
    TANH,
)


# --------------------------------------------------------------------------- #
# Activations, shared with fastgrad._dense_engine
# --------------------------------------------------------------------------- #
@njit(cache=True)
def sigmoid(z):
    """1 / (1 + e^-z), with exp of a non-positive real part only: never overflows."""
    if z.real >= 0.0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@njit(cache=True)
def activation(code, z):
    """g(z) for activation ``code``; comparisons look at the real part (complex step).

    A ReLU returns an exact +0.0 below zero (not ``0 * z``, which is -0.0 there
    and NaN at -inf); for complex ``z`` the 0.0 is promoted to 0 + 0j.
    """
    if code == RELU:
        if z.real > 0.0:
            return z
        return 0.0
    if code == LEAKY_RELU:
        if z.real > 0.0:
            return z
        return LEAKY_SLOPE * z
    if code == TANH:
        return np.tanh(z)
    if code == SIGMOID:
        return sigmoid(z)
    return z  # LINEAR


@njit(cache=True)
def activation_slope(code, z):
    """g'(z) for activation ``code``; a (leaky) ReLU takes the slope of the side
    of 0 where ``z`` lies, and the left one at ``z = 0``."""
    if code == RELU:
        if z.real > 0.0:
            return 1.0
        return 0.0
    if code == LEAKY_RELU:
        if z.real > 0.0:
            return 1.0
        return LEAKY_SLOPE
    if code == TANH:
        t = np.tanh(z)
        return 1.0 - t * t
    if code == SIGMOID:
        s = sigmoid(z)
        return s * (1.0 - s)
    return 1.0  # LINEAR


@njit(cache=True)
def is_kinked(code):
    """Whether the activation has a kink at 0 (ReLU, leaky ReLU)."""
    return code == RELU or code == LEAKY_RELU


@njit(cache=True)
def is_piecewise_linear(code):
    """Whether the activation is linear on each side of 0."""
    return code == LINEAR or code == RELU or code == LEAKY_RELU


# --------------------------------------------------------------------------- #
# Where each layer's parameters lie in theta
# --------------------------------------------------------------------------- #
@njit(cache=True)
def layer_offsets(layer_sizes):
    """Offsets of ``W_l`` and ``b_l`` in theta, indexed by layer ``l = 1..L``.

    Returns
    -------
    weight_offset, bias_offset : int64 arrays of length L + 2
        ``W_l`` is ``theta[weight_offset[l] : bias_offset[l]]`` (``(n_l,
        n_{l-1})`` in C order) and ``b_l`` is ``theta[bias_offset[l] :
        weight_offset[l + 1]]``; entry ``L + 1`` of both is ``theta.size``
        (entry 0 is unused).
    """
    n_layers = layer_sizes.size - 1
    weight_offset = np.zeros(n_layers + 2, dtype=np.int64)
    bias_offset = np.zeros(n_layers + 2, dtype=np.int64)
    at = 0
    for l in range(1, n_layers + 1):
        weight_offset[l] = at
        at += layer_sizes[l] * layer_sizes[l - 1]
        bias_offset[l] = at
        at += layer_sizes[l]
    weight_offset[n_layers + 1] = at
    bias_offset[n_layers + 1] = at
    return weight_offset, bias_offset


@njit(cache=True)
def layer_weights(theta, layer_sizes, weight_offset, l):
    """``W_l`` as an ``(n_l, n_{l-1})`` view of theta."""
    n_out = layer_sizes[l]
    n_in = layer_sizes[l - 1]
    start = weight_offset[l]
    return theta[start : start + n_out * n_in].reshape((n_out, n_in))


# --------------------------------------------------------------------------- #
# Forward pass and cost
# --------------------------------------------------------------------------- #
@njit(cache=True)
def _buffer_sizes(layer_sizes, m):
    """Sizes of the flat pre-activation buffer and of the activation buffer (X first)."""
    n_z = 0
    for l in range(1, layer_sizes.size):
        n_z += layer_sizes[l] * m
    return n_z, n_z + layer_sizes[0] * m


@njit(cache=True)
def _forward_into(theta, layer_sizes, activations, X, dropout_scale, Z, A):
    """Fill the flat buffers Z (pre-activations, layer after layer) and A (X, then activations).

    The activations stored in A are those passed on to the next layer, that is
    after dropout for hidden layers.
    """
    n_layers = layer_sizes.size - 1
    m = X.shape[1]
    n0 = layer_sizes[0]
    for i in range(n0):
        for j in range(m):
            A[i * m + j] = X[i, j]
    weight_offset, bias_offset = layer_offsets(layer_sizes)
    has_dropout = dropout_scale.shape[0] > 0
    a_prev = 0
    z_at = 0
    drop_row = 0
    for l in range(1, n_layers + 1):
        n_in = layer_sizes[l - 1]
        n_out = layer_sizes[l]
        W = layer_weights(theta, layer_sizes, weight_offset, l)
        b = theta[bias_offset[l] : bias_offset[l] + n_out]
        A_prev = A[a_prev : a_prev + n_in * m].reshape((n_in, m))
        a_here = a_prev + n_in * m
        A_here = A[a_here : a_here + n_out * m].reshape((n_out, m))
        Z_here = Z[z_at : z_at + n_out * m].reshape((n_out, m))
        np.dot(W, A_prev, Z_here)
        code = activations[l - 1]
        dropped = has_dropout and l < n_layers
        for i in range(n_out):
            b_i = b[i]
            for j in range(m):
                z = Z_here[i, j] + b_i
                Z_here[i, j] = z
                a = activation(code, z)
                if dropped:
                    a = a * dropout_scale[drop_row + i, j]
                A_here[i, j] = a
        if l < n_layers:
            drop_row += n_out
        a_prev = a_here
        z_at += n_out * m


@njit(cache=True)
def _binary_cross_entropy_term(z, y):
    """softplus(z) - y z from the logit, equal to -y log a - (1 - y) log(1 - a)."""
    if z.real > 0.0:
        return (1.0 - y) * z + np.log1p(np.exp(-z))
    return np.log1p(np.exp(z)) - y * z


@njit(cache=True)
def column_max(Z, j):
    """The largest entry of column ``j`` of real ``Z``: the shift of a stable softmax."""
    shift = Z[0, j]
    for i in range(1, Z.shape[0]):
        shift = max(shift, Z[i, j])
    return shift


@njit(cache=True)
def _log_sum_exp(Z_out, j):
    """log sum_i exp(Z_out[i, j]), shifted by the largest real part."""
    shift = Z_out[0, j].real
    for i in range(1, Z_out.shape[0]):
        if Z_out[i, j].real > shift:
            shift = Z_out[i, j].real
    s = 0.0 * Z_out[0, j]
    for i in range(Z_out.shape[0]):
        s += np.exp(Z_out[i, j] - shift)
    return np.log(s) + shift


@njit(cache=True)
def _softmax_cross_entropy_terms(Z_out, Y, j, total):
    """``total`` plus example ``j``'s softmax cross-entropy terms ``y_i (log sum exp z - z_i)``, in order."""
    log_sum_exp = _log_sum_exp(Z_out, j)
    for i in range(Z_out.shape[0]):
        y = Y[i, j]
        if y != 0.0:
            total += y * (log_sum_exp - Z_out[i, j])
    return total


@njit(cache=True)
def _output_buffers(layer_sizes, m, Z, A):
    """Views ``(n_L, m)`` of the output pre-activations and activations in the flat buffers."""
    n_out = layer_sizes[layer_sizes.size - 1]
    Z_out = Z[Z.size - n_out * m : Z.size].reshape((n_out, m))
    A_out = A[A.size - n_out * m : A.size].reshape((n_out, m))
    return Z_out, A_out


@njit(cache=True)
def _cost_from_buffers(theta, layer_sizes, loss, l2, Y, Z, A):
    """The cost, given buffers filled by ``_forward_into`` for the same theta."""
    n_layers = layer_sizes.size - 1
    n_out = layer_sizes[n_layers]
    m = Y.shape[1]
    Z_out, A_out = _output_buffers(layer_sizes, m, Z, A)
    total = 0.0 * Z_out[0, 0]
    if loss == BINARY_CROSS_ENTROPY:
        for i in range(n_out):
            for j in range(m):
                total += _binary_cross_entropy_term(Z_out[i, j], Y[i, j])
    elif loss == SOFTMAX_CROSS_ENTROPY:
        for j in range(m):
            total = _softmax_cross_entropy_terms(Z_out, Y, j, total)
    else:  # MSE
        for i in range(n_out):
            for j in range(m):
                r = A_out[i, j] - Y[i, j]
                total += 0.5 * (r * r)
    cost = total / m
    if l2 != 0.0:
        weight_offset, bias_offset = layer_offsets(layer_sizes)
        penalty = 0.0 * total
        for l in range(1, n_layers + 1):
            for q in range(weight_offset[l], bias_offset[l]):
                w = theta[q]
                penalty += w * w
        cost = cost + (l2 / (2.0 * m)) * penalty
    return cost


@njit(cache=True)
def forward_cost(theta, layer_sizes, activations, loss, l2, X, Y, dropout_scale):
    """The cost J(theta) (float64 for a float64 theta, complex128 for a complex theta)."""
    n_z, n_a = _buffer_sizes(layer_sizes, X.shape[1])
    Z = np.empty(n_z, dtype=theta.dtype)
    A = np.empty(n_a, dtype=theta.dtype)
    _forward_into(theta, layer_sizes, activations, X, dropout_scale, Z, A)
    return _cost_from_buffers(theta, layer_sizes, loss, l2, Y, Z, A)


@njit(cache=True)
def per_example_losses(theta, layer_sizes, activations, loss, X, Y, dropout_scale):
    """The loss of each example (column of X), without the L2 penalty (float64).

    Returns
    -------
    numpy.ndarray
        ``(m,)``, such that ``forward_cost(theta, ..., l2, ...)`` equals
        ``per_example_losses(...).mean() + l2 / (2 m) * sum_l ||W_l||^2`` up to
        rounding (the cost sums the same terms in another order). With dropout,
        the losses are those of the network with the masks applied.
    """
    m = X.shape[1]
    n_out = layer_sizes[layer_sizes.size - 1]
    n_z, n_a = _buffer_sizes(layer_sizes, m)
    Z = np.empty(n_z)
    A = np.empty(n_a)
    _forward_into(theta, layer_sizes, activations, X, dropout_scale, Z, A)
    Z_out, A_out = _output_buffers(layer_sizes, m, Z, A)
    losses = np.zeros(m)
    for j in range(m):
        total = 0.0
        if loss == BINARY_CROSS_ENTROPY:
            for i in range(n_out):
                total += _binary_cross_entropy_term(Z_out[i, j], Y[i, j])
        elif loss == SOFTMAX_CROSS_ENTROPY:
            total = _softmax_cross_entropy_terms(Z_out, Y, j, total)
        else:  # MSE
            for i in range(n_out):
                r = A_out[i, j] - Y[i, j]
                total += 0.5 * (r * r)
        losses[j] = total
    return losses


@njit(cache=True)
def _relu_signs(layer_sizes, activations, Z, m, signs):
    """Write 1 where a ReLU / leaky-ReLU pre-activation is positive, else 0."""
    z_at = 0
    for l in range(layer_sizes.size - 1):
        n_out = layer_sizes[l + 1]
        code = activations[l]
        kinked = is_kinked(code)
        for q in range(z_at, z_at + n_out * m):
            signs[q] = 1 if (kinked and Z[q].real > 0.0) else 0
        z_at += n_out * m


@njit(cache=True, parallel=True)
def perturbed_costs(
    layer_sizes,
    activations,
    loss,
    l2,
    theta,
    X,
    Y,
    dropout_scale,
    indices,
    points,
    take_imaginary,
    n_chunks,
):
    """The cost at every perturbed point, by a full forward pass each.

    For row r and column j, ``values[r, j]`` is J(theta with theta[indices[r]]
    replaced by points[r, j]); with ``take_imaginary`` (complex points, the
    complex step) it is the imaginary part of that cost, otherwise its real
    part. ``kinks[r]`` is 1 when a ReLU / leaky-ReLU pre-activation has another
    sign at one of the points than at theta; ``status[r]`` is 1 when a cost is
    not finite.

    The components are split into ``n_chunks`` contiguous runs, one per
    ``prange`` iteration, each with its own copy of theta and its own buffers,
    so every value is computed the same way whatever the thread count.
    """
    n_idx = indices.size
    n_pts = points.shape[1]
    m = X.shape[1]
    n_z, n_a = _buffer_sizes(layer_sizes, m)
    values = np.empty((n_idx, n_pts))
    kinks = np.zeros(n_idx, dtype=np.uint8)
    status = np.zeros(n_idx, dtype=np.uint8)

    base_Z = np.empty(n_z, dtype=points.dtype)
    base_A = np.empty(n_a, dtype=points.dtype)
    base_theta = np.empty(theta.size, dtype=points.dtype)
    base_theta[:] = theta
    _forward_into(base_theta, layer_sizes, activations, X, dropout_scale, base_Z, base_A)
    base_signs = np.empty(n_z, dtype=np.uint8)
    _relu_signs(layer_sizes, activations, base_Z, m, base_signs)

    n_chunks = max(1, min(n_chunks, n_idx))
    work_theta = np.empty((n_chunks, theta.size), dtype=points.dtype)
    work_Z = np.empty((n_chunks, n_z), dtype=points.dtype)
    work_A = np.empty((n_chunks, n_a), dtype=points.dtype)
    work_signs = np.empty((n_chunks, n_z), dtype=np.uint8)
    for c in prange(n_chunks):
        start = (c * n_idx) // n_chunks
        stop = ((c + 1) * n_idx) // n_chunks
        w = work_theta[c]
        w[:] = theta
        Zc = work_Z[c]
        Ac = work_A[c]
        signs = work_signs[c]
        for r in range(start, stop):
            k = indices[r]
            for j in range(n_pts):
                w[k] = points[r, j]
                _forward_into(w, layer_sizes, activations, X, dropout_scale, Zc, Ac)
                cost = _cost_from_buffers(w, layer_sizes, loss, l2, Y, Zc, Ac)
                if take_imaginary:
                    value = cost.imag
                else:
                    value = cost.real
                values[r, j] = value
                if not (np.isfinite(cost.real) and np.isfinite(cost.imag)):
                    status[r] = STATUS_NON_FINITE
                _relu_signs(layer_sizes, activations, Zc, m, signs)
                for q in range(n_z):
                    if signs[q] != base_signs[q]:
                        kinks[r] = 1
                        break
            w[k] = theta[k]
    return values, kinks, status
