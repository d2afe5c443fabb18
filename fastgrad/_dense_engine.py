"""Compiled structure-exploiting perturbation kernel for dense networks.

``cost_differences(base, indices, points)`` returns, for every requested
component ``k`` and perturbed value ``p``, the honest cost difference ``J(theta
with theta[k] = p) - J(theta)`` of the network's real forward cost, without
running the whole forward pass per point (see ``docs/dense_engine.md`` for the
algorithm); ``base = prepare(...)`` holds what every call shares (the offset
tables and the unperturbed forward pass), built once per check:

- perturbing ``W_l[i, j]`` or ``b_l[i]`` changes only row ``i`` of ``Z_l`` (the
  *unit* ``(l, i)``): only the change the unit undergoes is propagated;
- an example whose activation ``A_l[i, e]`` does not change (a ReLU unit that
  stays negative, a dropped unit) contributes exactly zero and is skipped; the
  per-example loss *changes* are summed over the examples that did change,
  which is also more accurate than subtracting two full costs;
- every component of one unit shares the same downstream path: while no
  ReLU / leaky-ReLU pre-activation further down changes sign (checked per
  example with an exact margin), the logits move along one fixed direction
  ``v`` per example, and the loss change is evaluated for all the unit's
  *columns* (component, point) at once in vectorised loops (the fast path);
  otherwise the change is pushed through the remaining layers as a matrix
  product over a block of columns (the exact path).

Work is split into pieces of one unit each; pieces are spread over ``n_chunks``
chunks run on Python threads (``_run_chunk`` releases the GIL), each with its
own scratch buffers (``ChunkScratch``),
and every value is computed the same way whatever piece, chunk or call it lands
in: results are bit-for-bit independent of the thread count and of how the
components are split into calls.

Names used throughout: ``l`` a layer (1..L), ``i`` a unit of it, ``unit`` its
row in the stacked pre-activations ``base.Z``, ``e`` an example, ``a`` a
component of a piece, ``q = a * n_pts + point`` a column, ``b`` a column of an
exact-path block, ``c`` an output class.

No ``fastmath``: these are differences of costs.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np
from fastgrad._jit import njit, specialise

from fastgrad._dense_kernels import (
    activation,
    column_max,
    activation_slope,
    is_kinked,
    is_piecewise_linear,
    layer_weights,
    sigmoid,
)
from fastgrad._dense_spec import (
    BINARY_CROSS_ENTROPY,
    LEAKY_RELU,
    LINEAR,
    MSE,
    RELU,
    SIGMOID,
    SOFTMAX_CROSS_ENTROPY,
    STATUS_NON_FINITE,
    STATUS_OK,
    TANH,
)

__all__ = ["DenseBase", "prepare", "cost_differences", "perturbed_cost_differences", "kernel_is_cached"]

#: Largest |x| for which the degree-5 Taylor polynomial of expm1 is exact to
#: rounding (truncation below |x|^5 / 720 ~ 1.3e-18 relative), and for which the
#: degree-6 polynomial of log1p is too (|s|^6 / 7 ~ 1.3e-19 relative).
POLY_LIMIT = 2.0**-10

#: Terms of the power series of a tanh / sigmoid change used downstream of the
#: perturbed unit (degrees 1..SERIES_TERMS), and the largest change of that
#: unit's pre-activation it serves: the tail beyond degree 6 is below
#: |q_7| |d|^6 <= 0.054 * 2^-60 ~ 5e-20 relative to the first term there.
SERIES_TERMS = 6
SERIES_LIMIT = POLY_LIMIT

#: The loss and whether a hidden layer is tanh / sigmoid, as compile-time
#: constants: the kernels are compiled per variant (``_variant``), each without
#: the code of the other losses, and without the smooth activations' paths
#: when no hidden layer needs them. These module-level values are placeholders;
#: the module's own kernels are never called.
LOSS = -1
SMOOTH = True

#: Activation codes linear on each side of 0 (``is_piecewise_linear``), for the NumPy set-up.
_PIECEWISE = (LINEAR, RELU, LEAKY_RELU)

#: Most components in one piece of work (one unit, or a part of its components).
PIECE_MAX = 1024

#: Columns per block of the exact (matrix-product) path.
EXACT_BLOCK = 128

#: Options of compiled functions called only from other compiled functions:
#: no Python entry point. Numba builds one for every function it compiles, and
#: for arguments such as DenseBase and ChunkScratch (dozens of arrays) it is
#: about 0.4 s of a cold compile each; compiled callers call them directly.
_INTERNAL = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}

# Polynomial coefficients (Horner form).
_E2 = 1.0 / 2.0
_E3 = 1.0 / 6.0
_E4 = 1.0 / 24.0
_E5 = 1.0 / 120.0
_L2 = -1.0 / 2.0
_L3 = 1.0 / 3.0
_L4 = -1.0 / 4.0
_L5 = 1.0 / 5.0
_L6 = -1.0 / 6.0
_T3 = -1.0 / 3.0
_T5 = 2.0 / 15.0
# tanh(a + d) - tanh(a) = sech(a)^2 sum_k q_k(tanh a) d^k, with q_1 = 1 and
# q_{k+1} from (1 - t^2) q_k' - 2 t q_k, divided by k + 1 (max |q_k| on [-1, 1]:
# 1, 1, 2/3, 1/3, 0.133, 0.081, then 0.054 for q_7).
_Q3 = -1.0 / 3.0
_Q4 = 2.0 / 3.0
_Q5 = 2.0 / 15.0
_Q6A = -17.0 / 45.0
_Q6B = 4.0 / 3.0


# --------------------------------------------------------------------------- #
# The arrays the kernels share
# --------------------------------------------------------------------------- #
DenseBase = namedtuple(
    "DenseBase",
    [
        # the network, as given (see docs/design.md)
        "layer_sizes", "activations", "loss", "l2", "theta", "Y", "dropout_scale",
        # offset tables, indexed by layer l = 1..L (entry L + 1: the end)
        "weight_offset",    # W_l starts at theta[weight_offset[l]], (n_l, n_{l-1}) in C order
        "bias_offset",      # b_l starts at theta[bias_offset[l]]
        "unit_offset",      # layer l's units are rows unit_offset[l] + i of Z, A (and of dropout_scale)
        "inputs_t_offset",  # A_{l-1}^T, (m, n_{l-1}) in C order, starts at inputs_t[inputs_t_offset[l]]
        "layer_of_unit",    # (n_units,): the layer of each row of Z
        # the unperturbed forward pass
        "Z",                # (n_units, m): pre-activations of every layer, stacked
        "A",                # (n_units, m): activations (after dropout), stacked
        "P",                # (n_L, m): softmax probabilities / output sigmoids (zeros under MSE)
        "log_sum_exp",      # (m,): log-sum-exp of the logits (softmax; zeros otherwise)
        "inputs_t",         # flat: A_{l-1}^T of every layer (A_0 = X), for contiguous gathers
        "series",           # (m, n_units, SERIES_TERMS): g(Z + d) - g(Z) = sum_k series[e, unit, k - 1] d^k
                            # for tanh / sigmoid units (zeros for the others), |d| <= SERIES_LIMIT
        # the fast and series paths, per unit and example (_fill_unit_losses, once per check)
        "unit_loss",        # (n_units, m, SERIES_TERMS): example e's loss change = sum_k unit_loss[unit, e, k - 1] t^k
                            # when A_l[i, e] changes by t (Z_L[i, e] for an output unit), |t| <= unit_limit
        "unit_limit",       # (n_units, m): the largest |t| the series serves (0: the paths do not apply)
    ],
)
DenseBase.__doc__ = """What every call of ``cost_differences`` shares, from :func:`prepare`.

Plain arrays (and the loss code and L2 strength), so that the compiled
kernels take it as one argument; the fields are described in the source.
"""

ChunkScratch = namedtuple(
    "ChunkScratch",
    [
        # per column q of a piece, (capacity * n_pts,)
        "step",            # p - theta_k
        "z_change",        # change of Z_l[i, e]
        "a_change",        # change of A_l[i, e] (after dropout)
        "contribution",    # change of example e's loss
        "total",           # sum of the loss changes over the examples so far
        "crossed",         # uint8: Z_l[i, e] changes sign (ReLU / leaky ReLU)
        "exact_columns",   # int64: the columns sent to the exact path
        # per component a of a piece, (capacity,)
        "input_column",    # int64: j of W_l[i, j], n_{l-1} for b_l[i]
        "component_kink",  # uint8: a kink was crossed
        # per column b of an exact-path block, (EXACT_BLOCK,)
        "block_a_change",  # change of A_l[i, e] (of Z_L[i, e] for l = L)
        "block_loss",      # change of example e's loss
        "block_label_dot", # softmax: sum_c y_c dz_c
        "block_kink",      # uint8: a kink downstream was crossed
        "block_far",       # uint8: the logits moved beyond POLY_LIMIT
        # (widest layer, EXACT_BLOCK): a block pushed through one layer
        "z_changes",       # change of Z_k[u, e] per column
        "a_changes",       # change of A_k[u, e] per column
        # the fast path's direction
        "carried",         # (widest layer,): change of Z_k[:, e] per unit change of A_l[i, e]
        "scaled",          # (widest layer,): the same times the slopes and dropout of layer k
        "direction",       # (n_L,): v_e, the move of the logits per unit change
        "output_move",     # (n_L,): one column's move of the logits (exact loss changes)
        # the series path's direction
        "series_scaled",   # (SERIES_TERMS, widest layer): the terms of layer L-1's changes per unit
        "series",          # (SERIES_TERMS, n_L): move of the logits = sum_k series[k - 1] t^k
    ],
)
ChunkScratch.__doc__ = """Scratch of one chunk, allocated by the chunk's own call before its loop (``_new_scratch``)."""

Plan = namedtuple(
    "Plan",
    [
        "order",          # (n_idx,): the components (rows of indices), unit after unit
        "input_column",   # (n_idx,): j of each component (n_{l-1} for a bias), by row of indices
        "piece_start",    # (n_pieces,): a piece is order[piece_start : piece_start + piece_length]
        "piece_length",
        "piece_unit",     # (n_pieces,): its unit (row of Z)
        "chunk_start",    # (n_chunks + 1,): chunk c runs chunk_pieces[chunk_start[c] : chunk_start[c + 1]]
        "chunk_pieces",
        "capacity",       # most components in a piece
    ],
)
Plan.__doc__ = """Which chunk runs which components, grouped by unit."""


# --------------------------------------------------------------------------- #
# Scalar helpers
# --------------------------------------------------------------------------- #
@njit(cache=True, inline="always")
def _expm1_small(x):
    """expm1(x) for |x| <= POLY_LIMIT: its Taylor polynomial, exact to rounding there.

    Evaluated as x + x^2 ((1/2 + x/6) + x^2 (1/24 + x/120)) (Estrin's scheme:
    a shorter chain of dependent operations than Horner's, so the loops over
    columns run faster; the terms after x are below 2^-10 |x|, so the result
    is x's rounding plus a fraction of an ulp either way)."""
    x2 = x * x
    return x + x2 * ((_E2 + x * _E3) + x2 * (_E4 + x * _E5))


@njit(cache=True, inline="always")
def _log1p_small(s):
    """log1p(s) for |s| <= 1.001 POLY_LIMIT: its Taylor polynomial, exact to rounding there."""
    return s * (1.0 + s * (_L2 + s * (_L3 + s * (_L4 + s * (_L5 + s * _L6)))))


@njit(cache=True, inline="always")
def _tanh_small(x):
    """tanh(x) for |x| <= POLY_LIMIT: its Taylor polynomial, exact to rounding there."""
    x2 = x * x
    return x * (1.0 + x2 * (_T3 + x2 * _T5))


# Truncated power series in t, as 6-tuples of the coefficients of t^1 .. t^6
# (no constant term): the loss change of one example, built once per unit and
# example, then evaluated at every column (see _loss_series).
_SERIES_ZERO = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
_EXPM1_SERIES = (1.0, 1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0)
_LOG1P_SERIES = (1.0, -1.0 / 2.0, 1.0 / 3.0, -1.0 / 4.0, 1.0 / 5.0, -1.0 / 6.0)


@njit(cache=True, inline="always")
def _series_axpy(alpha, x, y):
    """alpha x + y, term by term."""
    return (alpha * x[0] + y[0], alpha * x[1] + y[1], alpha * x[2] + y[2],
            alpha * x[3] + y[3], alpha * x[4] + y[4], alpha * x[5] + y[5])


@njit(cache=True, inline="always")
def _series_product(a, b):
    """a b, truncated after t^6 (both without constant term, so it starts at t^2)."""
    return (0.0,
            a[0] * b[0],
            a[0] * b[1] + a[1] * b[0],
            a[0] * b[2] + a[1] * b[1] + a[2] * b[0],
            a[0] * b[3] + a[1] * b[2] + a[2] * b[1] + a[3] * b[0],
            a[0] * b[4] + a[1] * b[3] + a[2] * b[2] + a[3] * b[1] + a[4] * b[0])


@njit(cache=True, **_INTERNAL)
def _series_compose(g, x):
    """sum_j g[j - 1] x^j, truncated after t^6 (x without constant term)."""
    x2 = _series_product(x, x)
    x3 = _series_product(x2, x)
    x4 = _series_product(x2, x2)
    x5 = _series_product(x4, x)
    x6 = _series_product(x3, x3)
    out = _series_axpy(g[0], x, _SERIES_ZERO)
    out = _series_axpy(g[1], x2, out)
    out = _series_axpy(g[2], x3, out)
    out = _series_axpy(g[3], x4, out)
    out = _series_axpy(g[4], x5, out)
    return _series_axpy(g[5], x6, out)


@njit(cache=True, **_INTERNAL)
def _softplus(x):
    """log(1 + e^x), without overflow."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@njit(cache=True, **_INTERNAL)
def _activation_change(code, z, dz):
    """g(z + dz) - g(z), accurately (exact identities, no cancellation for small dz)."""
    if dz == 0.0:
        return 0.0
    if code == LINEAR:
        return dz
    zp = z + dz
    if is_kinked(code):
        low = activation_slope(code, -1.0)
        if z > 0.0 and zp > 0.0:
            return dz
        if z <= 0.0 and zp <= 0.0:
            return low * dz
        return activation(code, zp) - activation(code, z)
    if abs(dz) <= 1.0:
        if code == TANH:
            # tanh(z + d) - tanh(z) = tanh(d) sech(z)^2 / (1 + tanh(z) tanh(d))
            td = math.tanh(dz)
            c = math.cosh(z)
            return td / (c * c) / (1.0 + math.tanh(z) * td)
        # sigmoid(z + d) - sigmoid(z) = -expm1(-d) sigmoid(z + d) sigmoid(-z)
        return -math.expm1(-dz) * sigmoid(zp) * sigmoid(-z)
    return activation(code, zp) - activation(code, z)


@njit(cache=True, **_INTERNAL)
def _smooth_changes(code, z, drop, z_changes, a_changes, n_cols):
    """a_changes[b] = drop (g(z + z_changes[b]) - g(z)) for tanh / sigmoid.

    In loops that vectorise: the terms that depend on z only are computed once,
    and tanh / expm1 of the small change are polynomials. Entries beyond
    POLY_LIMIT are redone by ``_activation_change``: each entry's path depends
    on its own value only, never on its neighbours.
    """
    if code == TANH:
        # tanh(z + d) - tanh(z) = tanh(d) sech(z)^2 / (1 + tanh(z) tanh(d))
        th = math.tanh(z)
        c = math.cosh(z)
        sech2 = 1.0 / (c * c)
        for b in range(n_cols):
            td = _tanh_small(z_changes[b])
            a_changes[b] = drop * (td * sech2 / (1.0 + th * td))
    else:
        # sigmoid(z + d) - sigmoid(z) = -expm1(-d) sigmoid(z + d) sigmoid(-z), with
        # sigmoid(z + d) from exp(-|z|) (never overflows) and expm1(+-d)
        s_minus = sigmoid(-z)
        if z >= 0.0:
            ez = math.exp(-z)
            for b in range(n_cols):
                em = _expm1_small(-z_changes[b])
                a_changes[b] = drop * (-em * (1.0 / (1.0 + ez * (1.0 + em))) * s_minus)
        else:
            ez = math.exp(z)
            for b in range(n_cols):
                d = z_changes[b]
                g = ez * (1.0 + _expm1_small(d))
                a_changes[b] = drop * (-_expm1_small(-d) * (g / (1.0 + g)) * s_minus)
    n_far = 0
    for b in range(n_cols):
        n_far += not (abs(z_changes[b]) <= POLY_LIMIT)
    if n_far > 0:
        for b in range(n_cols):
            if not (abs(z_changes[b]) <= POLY_LIMIT):
                a_changes[b] = drop * _activation_change(code, z, z_changes[b])


# --------------------------------------------------------------------------- #
# The unperturbed network, once per check (prepare)
# --------------------------------------------------------------------------- #
def _tables(layer_sizes, m):
    """Offset tables indexed by layer l = 1..L + 1 (entry 0 unused, entry L + 1 the end):
    where W_l and b_l start in theta, layer l's first row of Z (``unit_offset``)
    and the start of A_{l-1}^T in the transposed buffer; and the layer of each row."""
    n_layers = layer_sizes.size - 1
    n_in, n_out = layer_sizes[:-1], layer_sizes[1:]
    layer_end = np.cumsum(n_out * (n_in + 1))
    weight_offset = np.zeros(n_layers + 2, dtype=np.int64)
    bias_offset = np.zeros(n_layers + 2, dtype=np.int64)
    weight_offset[2:] = layer_end
    bias_offset[1:-1] = weight_offset[1:-1] + n_out * n_in
    bias_offset[-1] = layer_end[-1]
    unit_offset = np.zeros(n_layers + 2, dtype=np.int64)
    inputs_t_offset = np.zeros(n_layers + 2, dtype=np.int64)
    unit_offset[2:] = np.cumsum(n_out)
    inputs_t_offset[2:] = np.cumsum(m * n_in)
    layer_of_unit = np.repeat(np.arange(1, n_layers + 1, dtype=np.int64), n_out)
    return weight_offset, bias_offset, unit_offset, inputs_t_offset, layer_of_unit


@njit(cache=True, **_INTERNAL)
def _layer_forward(W, A_prev, b, code, dropped, dropout_scale, row0, Z, A):
    """Z[row0 + i] = W[i] A_prev + b[i], A = activation (times dropout), row by row.
    Our own loops rather than BLAS: BLAS threads left spinning after a call
    compete with the chunks' threads that follow. Serial: once per check (tens
    of milliseconds for L), where a ``prange`` cost a gufunc's compile and
    Numba's thread pool at start-up."""
    m = A_prev.shape[1]
    for i in range(W.shape[0]):
        row = row0 + i
        for e in range(m):
            Z[row, e] = 0.0
        for j in range(W.shape[1]):
            w = W[i, j]
            for e in range(m):
                Z[row, e] += w * A_prev[j, e]
        for e in range(m):
            z = Z[row, e] + b[i]
            Z[row, e] = z
            a = activation(code, z)
            if dropped:
                a = a * dropout_scale[row, e]
            A[row, e] = a


@njit(cache=True)
def _base_forward(layer_sizes, activations, theta, X, dropout_scale, weight_offset, bias_offset, unit_offset):
    """Pre-activations Z and activations A (after dropout) of every layer, stacked by rows."""
    n_layers = layer_sizes.size - 1
    m = X.shape[1]
    n_units = unit_offset[n_layers + 1]
    Z = np.empty((n_units, m))
    A = np.empty((n_units, m))
    has_dropout = dropout_scale.shape[0] > 0
    for l in range(1, n_layers + 1):
        n_out = layer_sizes[l]
        if l == 1:
            A_prev = X
        else:
            A_prev = A[unit_offset[l - 1] : unit_offset[l]]
        _layer_forward(
            layer_weights(theta, layer_sizes, weight_offset, l), A_prev,
            theta[bias_offset[l] : bias_offset[l] + n_out], activations[l - 1],
            has_dropout and l < n_layers, dropout_scale, unit_offset[l], Z, A,
        )
    return Z, A


@njit(cache=True)
def _output_probabilities(Z_out):
    """Softmax probabilities and log-sum-exp per example, or the sigmoid of every
    logit, of the output pre-activations ``Z_out`` ``(n_L, m)``."""
    n_out, m = Z_out.shape
    P = np.zeros((n_out, m))
    log_sum_exp = np.zeros(m)
    if LOSS == SOFTMAX_CROSS_ENTROPY:
        for e in range(m):
            shift = column_max(Z_out, e)
            s = 0.0
            for c in range(n_out):
                s += math.exp(Z_out[c, e] - shift)
            log_sum_exp[e] = shift + math.log(s)
            for c in range(n_out):
                P[c, e] = math.exp(Z_out[c, e] - shift) / s
    elif LOSS == BINARY_CROSS_ENTROPY:
        for c in range(n_out):
            for e in range(m):
                P[c, e] = sigmoid(Z_out[c, e])
    return P, log_sum_exp


@njit(cache=True)
def _series_table(layer_sizes, activations, Z, unit_offset):
    """series[e, unit, k - 1]: coefficient of d^k in g(Z[unit, e] + d) - g(Z[unit, e])
    for every tanh / sigmoid hidden unit.

    tanh(a + d) - tanh(a) = sech(a)^2 sum_k q_k(tanh a) d^k (module constants
    _Q*); sigmoid(z) = (1 + tanh(z / 2)) / 2 gives the sigmoid's coefficients
    at a = z / 2, times 2^-(k + 1), with sech(z / 2)^2 = 4 sigmoid(z) sigmoid(-z).
    sech^2 is computed directly, not as 1 - t^2, which cancels where t ~ +-1.
    """
    n_layers = layer_sizes.size - 1
    n_units, m = Z.shape
    series = np.zeros((m, n_units, SERIES_TERMS))
    for l in range(1, n_layers):
        code = activations[l - 1]
        if code != TANH and code != SIGMOID:
            continue
        for unit in range(unit_offset[l], unit_offset[l + 1]):
            for e in range(m):
                z = Z[unit, e]
                if code == TANH:
                    t = math.tanh(z)
                    c = math.cosh(z)
                    first = 1.0 / (c * c)
                    half = 1.0
                else:
                    t = math.tanh(0.5 * z)
                    first = sigmoid(z) * sigmoid(-z)  # sech(z / 2)^2 / 4, times the 1/2 of degree 1
                    half = 0.5
                t2 = t * t
                q = (1.0, -t, t2 + _Q3, t * (_Q4 - t2), t2 * (t2 - 1.0) + _Q5, t * (_Q6A + t2 * (_Q6B - t2)))
                scale = first
                for k in range(SERIES_TERMS):
                    series[e, unit, k] = scale * q[k]
                    scale *= half
    return series


def _prepare_arrays(layer_sizes, activations, loss, theta, X, dropout_scale):
    """The tables and unperturbed forward pass of ``DenseBase``, in its field order.

    Tables and copies in NumPy; the values the kernels compare their changes
    with (Z, A, the output probabilities, the series) from compiled code, the
    same arithmetic as theirs. A first run compiles only those.
    """
    loss = int(loss)
    kernels = _variant(loss, activations)
    n_layers = layer_sizes.size - 1
    m = X.shape[1]
    weight_offset, bias_offset, unit_offset, inputs_t_offset, layer_of_unit = _tables(layer_sizes, m)
    Z, A = _base_forward(layer_sizes, activations, theta, X, dropout_scale, weight_offset, bias_offset, unit_offset)
    P, log_sum_exp = kernels["_output_probabilities"](Z[unit_offset[n_layers] :])
    # A_{l-1}^T of every layer, one after the other (A_0 = X): contiguous gathers for the exact path.
    inputs_t = np.empty(inputs_t_offset[n_layers + 1])
    for l in range(1, n_layers + 1):
        inputs = X if l == 1 else A[unit_offset[l - 1] : unit_offset[l]]
        inputs_t[inputs_t_offset[l] : inputs_t_offset[l + 1]].reshape(m, inputs.shape[0])[...] = inputs.T
    if _variant_key(loss, activations)[1]:
        series = kernels["_series_table"](layer_sizes, activations, Z, unit_offset)
    else:  # no tanh / sigmoid hidden layer: no unit has a series
        series = np.zeros((m, Z.shape[0], SERIES_TERMS))
    return (
        weight_offset, bias_offset, unit_offset, inputs_t_offset, layer_of_unit,
        Z, A, P, log_sum_exp, inputs_t, series,
    )


# --------------------------------------------------------------------------- #
# Splitting the work (per call; NumPy: a first run compiles nothing for it)
# --------------------------------------------------------------------------- #
@njit(cache=True)
def _group_components(indices, layer_sizes, weight_offset, bias_offset, unit_offset):
    """Components (rows of indices) unit after unit (``order``, a stable
    counting sort), where each unit's run starts (``unit_start``, one entry
    per row of Z and the end), and each component's input column j
    (``W_l[i, j]``; ``n_{l-1}`` for the bias ``b_l[i]``, whose "input" is 1).

    Compiled, on plain arrays (a fraction of a second to compile): in NumPy it
    was the plan's largest cost (2 ms a call on M's 109,386 components) and
    its sort's workspace half of theta's bytes more on L.
    """
    n_idx = indices.size
    n_layers = layer_sizes.size - 1
    n_units = unit_offset[n_layers + 1]
    unit_of = np.empty(n_idx, dtype=np.int64)
    input_column = np.empty(n_idx, dtype=np.int64)
    unit_start = np.zeros(n_units + 1, dtype=np.int64)
    for r in range(n_idx):
        k = indices[r]
        l = 1
        while k >= weight_offset[l + 1]:
            l += 1
        n_in = layer_sizes[l - 1]
        if k < bias_offset[l]:
            i = (k - weight_offset[l]) // n_in
            j = (k - weight_offset[l]) % n_in
        else:
            i = k - bias_offset[l]
            j = n_in
        unit_of[r] = unit_offset[l] + i
        input_column[r] = j
        unit_start[unit_of[r] + 1] += 1
    for unit in range(n_units):
        unit_start[unit + 1] += unit_start[unit]
    fill = unit_start[:n_units].copy()
    order = np.empty(n_idx, dtype=np.int64)
    for r in range(n_idx):
        order[fill[unit_of[r]]] = r
        fill[unit_of[r]] += 1
    return order, input_column, unit_start


def _layer_work(base):
    """Per layer l = 1..L (index l): the multiply-adds of one pass through the
    layers downstream, and the work per column and passing example of its units."""
    sizes = base.layer_sizes
    activations = [int(code) for code in base.activations]
    n_layers = sizes.size - 1
    n_out = int(sizes[n_layers])
    polynomial_loss = int(base.loss) != MSE or activations[n_layers - 1] == LINEAR
    smooth_last = n_layers >= 2 and activations[n_layers - 2] in (TANH, SIGMOID)
    downstream = np.zeros(n_layers + 1, dtype=np.int64)
    per_column = np.zeros(n_layers + 1, dtype=np.int64)
    for l in range(1, n_layers + 1):
        downstream[l] = sum(int(sizes[k]) * int(sizes[k - 1]) for k in range(l + 1, n_layers + 1))
        piecewise = all(code in _PIECEWISE for code in activations[l: n_layers - 1])
        # As _downstream_is_series: layer L-1 tanh / sigmoid (so the variant is
        # SMOOTH) and downstream of l, every layer between piecewise linear.
        series = (l <= n_layers - 2 and smooth_last
                  and polynomial_loss and all(code in _PIECEWISE for code in activations[l: n_layers - 2]))
        if piecewise and polynomial_loss:
            per_column[l] = 12 * n_out + 24
        elif series:
            per_column[l] = 26 * n_out + 40  # a degree-6 move and expm1 per class (section 2b)
        else:
            per_column[l] = downstream[l] + 4 * n_out + 8
    return downstream, per_column


def _passing_examples(base, units):
    """Examples each unit passes on: positive ReLU pre-activations (every example
    for other units and the output layer's), units not dropped."""
    n_layers = base.layer_sizes.size - 1
    m = base.Z.shape[1]
    layer = base.layer_of_unit[units]
    passing = np.full(units.size, m, dtype=np.int64)
    hidden = np.flatnonzero(layer < n_layers)
    if hidden.size:
        rows = units[hidden]
        passes = np.ones((rows.size, m), dtype=bool)
        relu = base.activations[layer[hidden] - 1] == RELU
        passes[relu] = base.Z[rows[relu]] > 0.0
        if base.dropout_scale.shape[0] > 0:
            passes &= base.dropout_scale[rows] != 0.0
        passing[hidden] = passes.sum(axis=1)
    return passing


def _cut_pieces(base, unit_start, n_pts, capacity):
    """Each unit's run of components cut into pieces of at most ``capacity``,
    with the estimated cost of each piece (exact integers, as floats)."""
    runs = np.diff(unit_start)
    units = np.flatnonzero(runs)
    runs = runs[units]
    parts = (runs + capacity - 1) // capacity
    downstream, per_column = _layer_work(base)
    layer = base.layer_of_unit[units]
    passing = _passing_examples(base, units)
    # Piece t of a unit with `parts` pieces covers [run * t // parts, run * (t + 1) // parts).
    piece_unit = np.repeat(units, parts)
    first_piece = np.cumsum(parts) - parts
    t = np.arange(piece_unit.size) - np.repeat(first_piece, parts)
    run, part_count, start = np.repeat(runs, parts), np.repeat(parts, parts), np.repeat(unit_start[units], parts)
    piece_start = start + (run * t) // part_count
    piece_length = start + (run * (t + 1)) // part_count - piece_start
    work = np.repeat(passing, parts) * (np.repeat(downstream[layer], parts)
                                        + piece_length * n_pts * np.repeat(per_column[layer], parts))
    piece_cost = (work + base.Z.shape[1] * piece_length * n_pts * 4).astype(np.float64)
    return piece_start, piece_length, piece_unit, piece_cost


def _assign_pieces(piece_cost, n_chunks):
    """Pieces to chunks, largest estimated cost first, each to the least-loaded
    chunk (the lowest-numbered among equals); returned as ``chunk_start`` and
    ``chunk_pieces`` (see ``Plan``)."""
    chunk_of = np.empty(piece_cost.size, dtype=np.int64)
    loads = [(0.0, c) for c in range(n_chunks)]  # a heap: (load, chunk)
    for piece in np.argsort(-piece_cost, kind="stable").tolist():
        load, c = loads[0]
        chunk_of[piece] = c
        heapq.heapreplace(loads, (load + float(piece_cost[piece]), c))
    chunk_start = np.zeros(n_chunks + 1, dtype=np.int64)
    np.cumsum(np.bincount(chunk_of, minlength=n_chunks), out=chunk_start[1:])
    return chunk_start, np.argsort(chunk_of, kind="stable").astype(np.int64)


def _plan(base, indices, n_pts, n_chunks) -> Plan:
    """Group components by unit, cut the units' runs into pieces, and spread the
    pieces over chunks so that the static split comes out even."""
    order, input_column, unit_start = _group_components(indices, base.layer_sizes, base.weight_offset,
                                                        base.bias_offset, base.unit_offset)
    # Pieces small enough that even a small call keeps every chunk busy.
    capacity = (indices.size + 4 * n_chunks - 1) // (4 * n_chunks)
    capacity = max(16, min(PIECE_MAX, capacity))
    piece_start, piece_length, piece_unit, piece_cost = _cut_pieces(base, unit_start, n_pts, capacity)
    chunk_start, chunk_pieces = _assign_pieces(piece_cost, n_chunks)
    return Plan(order, input_column, piece_start.astype(np.int64),
                piece_length.astype(np.int64), piece_unit.astype(np.int64), chunk_start, chunk_pieces,
                np.int64(capacity))


# --------------------------------------------------------------------------- #
# The fast path: piecewise-linear downstream, polynomial loss changes
# --------------------------------------------------------------------------- #
@njit(cache=True, inline="always")
def _downstream_is_fast(base, l):
    """Whether the fast path can serve layer l: every layer below it piecewise
    linear, and a loss the polynomial formulas cover."""
    n_layers = base.layer_sizes.size - 1
    fast = LOSS != MSE or base.activations[n_layers - 1] == LINEAR
    for k in range(l + 1, n_layers):
        if not is_piecewise_linear(base.activations[k - 1]):
            fast = False
    return fast


@njit(cache=True, inline="always")
def _carry_direction(base, k, e, margin, s):
    """carried: the change of Z_k[:, e] per unit change -> that of Z_{k+1}[:, e],
    through layer k's slopes and dropout at example e. Returns the margin
    narrowed by layer k's kinked units: how far the change may go before one of
    them changes sign, halved to leave room for rounding."""
    code = base.activations[k - 1]
    kinked = is_kinked(code)
    has_dropout = base.dropout_scale.shape[0] > 0
    for u in range(base.layer_sizes[k]):
        unit = base.unit_offset[k] + u
        drop = base.dropout_scale[unit, e] if has_dropout else 1.0
        z = base.Z[unit, e]
        wu = s.carried[u]
        if kinked and drop != 0.0 and wu != 0.0:
            margin = min(margin, 0.5 * abs(z) / abs(wu))
        s.scaled[u] = activation_slope(code, z) * drop * wu
    n_here = base.layer_sizes[k]
    n_next = base.layer_sizes[k + 1]
    W = layer_weights(base.theta, base.layer_sizes, base.weight_offset, k + 1)
    # carried[o] = sum_u W[o, u] scaled[u], each sum in the order of u, with the
    # outputs as the inner loop: independent sums, not one chain of additions.
    carried, scaled = s.carried, s.scaled
    for o in range(n_next):
        carried[o] = 0.0
    for u in range(n_here):
        su = scaled[u]
        for o in range(n_next):
            carried[o] += W[o, u] * su
    return margin


@njit(cache=True, **_INTERNAL)
def _logit_direction(base, l, i, e, s):
    """direction = v_e, the move of the logits per unit change of A_l[i, e]
    (of Z_L[i, e] when l = L); returns the largest |change| for which no
    ReLU / leaky-ReLU unit downstream changes sign, and for which the
    polynomials of the loss change stay exact (|move| <= POLY_LIMIT)."""
    n_layers = base.layer_sizes.size - 1
    n_out = base.layer_sizes[n_layers]
    for c in range(n_out):
        s.direction[c] = 0.0
    margin = np.inf
    if l == n_layers:
        s.direction[i] = 1.0
    else:
        W = layer_weights(base.theta, base.layer_sizes, base.weight_offset, l + 1)
        for u in range(base.layer_sizes[l + 1]):
            s.carried[u] = W[u, i]
        for k in range(l + 1, n_layers):
            margin = _carry_direction(base, k, e, margin, s)
        for c in range(n_out):
            s.direction[c] = s.carried[c]
    limit = margin
    if LOSS != MSE:
        biggest = 0.0
        for c in range(n_out):
            biggest = max(biggest, abs(s.direction[c]))
        if biggest > 0.0:
            limit = min(limit, POLY_LIMIT / biggest)
    return limit


@njit(cache=True, **_INTERNAL)
def _loss_series(base, e, n_terms, s):
    """The change of example e's loss as a power series in t (coefficients of
    t^1 .. t^6), when logit c moves by ``x_c = sum_k series[k - 1, c] t^k``
    (k <= n_terms; the fast path's straight line has n_terms = 1).

    Softmax: ``log1p(sum_c p_c expm1(x_c)) - sum_c y_c x_c``; binary
    cross-entropy: ``sum_c log1p(s_c expm1(x_c)) - y_c x_c``; MSE on a linear
    output: ``sum_c (a_c - y_c) x_c + x_c^2 / 2``. Composed once per unit and
    example, so that a column costs one polynomial instead of an expm1 per
    output. Every term dropped is of degree 7 or more in t: where the paths use
    it, |x_c| <= POLY_LIMIT and each degree of the logits' series is below
    2^-10 of the one before, so the dropped terms are below 2^-60 of the
    first-order ones (exact to rounding, as the per-output polynomials were).
    """
    V = s.series
    n_layers = base.layer_sizes.size - 1
    total = _SERIES_ZERO
    inner = _SERIES_ZERO  # softmax: sum_c p_c expm1(x_c)
    for c in range(base.layer_sizes[n_layers]):
        if n_terms == 1:
            if V[0, c] == 0.0:
                continue
            v = (V[0, c], 0.0, 0.0, 0.0, 0.0, 0.0)
        else:
            v = (V[0, c], V[1, c], V[2, c], V[3, c], V[4, c], V[5, c])
        yc = base.Y[c, e]
        if LOSS == SOFTMAX_CROSS_ENTROPY:
            inner = _series_axpy(base.P[c, e], _series_compose(_EXPM1_SERIES, v), inner)
            total = _series_axpy(-yc, v, total)
        elif LOSS == BINARY_CROSS_ENTROPY:
            moved = _series_axpy(base.P[c, e], _series_compose(_EXPM1_SERIES, v), _SERIES_ZERO)
            total = _series_axpy(1.0, _series_compose(_LOG1P_SERIES, moved), total)
            total = _series_axpy(-yc, v, total)
        else:  # MSE on a linear output
            rc = base.A[base.unit_offset[n_layers] + c, e] - yc
            total = _series_axpy(rc, v, total)
            total = _series_axpy(0.5, _series_product(v, v), total)
    if LOSS == SOFTMAX_CROSS_ENTROPY:
        total = _series_axpy(1.0, _series_compose(_LOG1P_SERIES, inner), total)
    return total


@njit(cache=True, inline="always")
def _column_losses(loss, n_q, s):
    """contribution[q] = the loss series (a row of ``unit_loss``) at t = a_change[q], every column."""
    a_change = s.a_change
    contribution = s.contribution
    v = (loss[0], loss[1], loss[2], loss[3], loss[4], loss[5])
    for q in range(n_q):
        contribution[q] = _series_move(v, a_change[q])


@njit(cache=True, inline="always")
def _fast_path(base, l, i, e, n_q, n_crossed, s):
    """contribution[q] of every column by the fast path (or the series path:
    the unit's loss series, ``_fill_unit_losses``); returns how many columns
    it cannot serve (crossed here, or beyond the margin or the polynomials'
    range), listed in exact_columns."""
    a_change = s.a_change
    crossed = s.crossed
    exact_columns = s.exact_columns
    unit = base.unit_offset[l] + i
    limit = base.unit_limit[unit, e]
    _column_losses(base.unit_loss[unit, e], n_q, s)
    n_far = 0
    for q in range(n_q):
        n_far += not (abs(a_change[q]) <= limit)
    n_exact = 0
    if n_far > 0 or n_crossed > 0:
        for q in range(n_q):
            if crossed[q] or not (abs(a_change[q]) <= limit):
                exact_columns[n_exact] = q
                n_exact += 1
    return n_exact


# --------------------------------------------------------------------------- #
# The series path: one tanh / sigmoid layer before the output
# --------------------------------------------------------------------------- #
@njit(cache=True, inline="always")
def _downstream_is_series(base, l):
    """Whether the series path serves layer l: layer L-1 is tanh / sigmoid and
    lies downstream (l <= L-2), every layer between is piecewise linear, and
    the loss is one the polynomial formulas cover."""
    if not SMOOTH:
        return False
    n_layers = base.layer_sizes.size - 1
    if l > n_layers - 2:
        return False
    last = base.activations[n_layers - 2]
    if last != TANH and last != SIGMOID:
        return False
    series = LOSS != MSE or base.activations[n_layers - 1] == LINEAR
    for k in range(l + 1, n_layers - 1):
        if not is_piecewise_linear(base.activations[k - 1]):
            series = False
    return series


@njit(cache=True, **_INTERNAL)
def _series_direction(base, l, i, e, s, WT):
    """series[k - 1] = V_k: the logits move by sum_k V_k t^k when A_l[i, e]
    changes by t, for |t| up to the returned limit.

    The change reaches Z_{L-1}[u, e] as w_u t (``carried``, through any
    piecewise-linear layers between, with their margin); unit u of layer L-1
    then changes by D_u sum_k c_{u,k} (w_u t)^k (``base.series``, exact to
    rounding while |w_u t| <= SERIES_LIMIT), and the logits by W_L times that.
    The limit also keeps every logit's move within POLY_LIMIT (the loss
    polynomials' range), bounded by sum_k max_c |V_k,c| t^k.
    """
    n_layers = base.layer_sizes.size - 1
    n_out = base.layer_sizes[n_layers]
    last = n_layers - 1
    W = layer_weights(base.theta, base.layer_sizes, base.weight_offset, l + 1)
    for u in range(base.layer_sizes[l + 1]):
        s.carried[u] = W[u, i]
    margin = np.inf
    for k in range(l + 1, last):
        margin = _carry_direction(base, k, e, margin, s)
    has_dropout = base.dropout_scale.shape[0] > 0
    n_last = base.layer_sizes[last]
    scaled = s.series_scaled
    coefficients = base.series[e]
    biggest = 0.0
    for u in range(n_last):
        unit = base.unit_offset[last] + u
        w = s.carried[u]
        power = base.dropout_scale[unit, e] if has_dropout else 1.0
        if power != 0.0:
            biggest = max(biggest, abs(w))
        for k in range(SERIES_TERMS):
            power *= w
            scaled[k, u] = coefficients[unit, k] * power
    # series[k, c] = sum_u W_L[c, u] scaled[k, u], each sum in the order of u, with
    # the terms and outputs as the inner loops (W_L transposed, WT: contiguous
    # rows): independent sums, not chains.
    series = s.series
    for k in range(SERIES_TERMS):
        for c in range(n_out):
            series[k, c] = 0.0
    for u in range(n_last):
        row = WT[u]
        for k in range(SERIES_TERMS):
            sku = scaled[k, u]
            out = series[k]
            for c in range(n_out):
                out[c] += row[c] * sku
    if biggest == 0.0:
        # Nothing reaches layer L-1 at theta: every change is exactly zero while
        # the blocking ReLUs stay off, that is within the margin (beyond it, exact path).
        return margin
    limit = min(margin, SERIES_LIMIT / biggest)
    if LOSS != MSE and limit > 0.0:
        for _ in range(64):
            bound = 0.0
            power = 1.0
            for k in range(SERIES_TERMS):
                power *= limit
                largest = 0.0
                for c in range(n_out):
                    largest = max(largest, abs(s.series[k, c]))
                bound += largest * power
            if bound <= POLY_LIMIT:
                break
            limit *= 0.5
    return limit


@njit(cache=True, inline="always")
def _series_move(v, t):
    """sum_k v[k - 1] t^k (degree SERIES_TERMS = 6), by Estrin's scheme (see _expm1_small)."""
    t2 = t * t
    return t * ((v[0] + t * v[1]) + t2 * ((v[2] + t * v[3]) + t2 * (v[4] + t * v[5])))


# --------------------------------------------------------------------------- #
# The exact path: a block of columns pushed through the remaining layers
# --------------------------------------------------------------------------- #
@njit(cache=True, **_INTERNAL)
def _loss_change(base, e, b, s):
    """Change of example e's loss when the logits move by ``s.z_changes[:, b]``.

    Exact identities evaluated without cancellation: softmax cross-entropy
    ``log1p(sum_c p_c expm1(dz_c)) - y . dz`` (log-sum-exp of the shifted logits
    beyond |dz| = 1); binary cross-entropy, from the logits, ``log1p(s expm1(dz))
    - y dz`` per output; MSE ``da (da + 2 (a - y)) / 2`` per output.
    """
    n_layers = base.layer_sizes.size - 1
    n_out = base.layer_sizes[n_layers]
    zl = base.unit_offset[n_layers]
    Z, P, Y, move = base.Z, base.P, base.Y, s.output_move
    if LOSS == SOFTMAX_CROSS_ENTROPY:
        biggest = 0.0
        dot = 0.0
        for c in range(n_out):
            u = s.z_changes[c, b]
            move[c] = u
            biggest = max(biggest, abs(u))
            dot += Y[c, e] * u
        if biggest <= 1.0:
            t = 0.0
            for c in range(n_out):
                t += P[c, e] * math.expm1(move[c])
            return math.log1p(t) - dot
        shift = Z[zl, e] + move[0]
        for c in range(1, n_out):
            shift = max(shift, Z[zl + c, e] + move[c])
        t = 0.0
        for c in range(n_out):
            t += math.exp(Z[zl + c, e] + move[c] - shift)
        return (shift + math.log(t) - base.log_sum_exp[e]) - dot
    total = 0.0
    if LOSS == BINARY_CROSS_ENTROPY:
        for c in range(n_out):
            d = s.z_changes[c, b]
            if abs(d) <= 1.0:
                change = math.log1p(P[c, e] * math.expm1(d))
            else:
                z = Z[zl + c, e]
                change = _softplus(z + d) - _softplus(z)
            total += change - Y[c, e] * d
        return total
    out_code = base.activations[n_layers - 1]
    for c in range(n_out):  # MSE
        da = _activation_change(out_code, Z[zl + c, e], s.z_changes[c, b])
        total += 0.5 * da * (da + 2.0 * (base.A[zl + c, e] - Y[c, e]))
    return total


@njit(cache=True, inline="always")
def _block_first_layer(base, l, i, n_cols, s):
    """z_changes = the change of Z_{l+1}[:, e] (of Z_L[:, e] when l = L) per column."""
    z_changes = s.z_changes
    block_a_change = s.block_a_change
    n_layers = base.layer_sizes.size - 1
    if l == n_layers:
        for c in range(base.layer_sizes[n_layers]):
            for b in range(n_cols):
                z_changes[c, b] = 0.0
        for b in range(n_cols):
            z_changes[i, b] = block_a_change[b]
        return
    W = layer_weights(base.theta, base.layer_sizes, base.weight_offset, l + 1)
    for u in range(base.layer_sizes[l + 1]):
        w = W[u, i]
        for b in range(n_cols):
            z_changes[u, b] = w * block_a_change[b]


@njit(cache=True, inline="always")
def _block_activations(base, k, e, n_cols, s):
    """a_changes = the change of A_k[:, e] for z_changes, the change of Z_k[:, e];
    block_kink set where a ReLU / leaky-ReLU unit (not dropped) changes sign."""
    code = base.activations[k - 1]
    kinked = is_kinked(code)
    has_dropout = base.dropout_scale.shape[0] > 0
    for u in range(base.layer_sizes[k]):
        unit = base.unit_offset[k] + u
        drop = base.dropout_scale[unit, e] if has_dropout else 1.0
        if drop == 0.0:
            for b in range(n_cols):
                s.a_changes[u, b] = 0.0
            continue
        z = base.Z[unit, e]
        if kinked:
            positive = z > 0.0
            for b in range(n_cols):
                if ((z + s.z_changes[u, b]) > 0.0) != positive:
                    s.block_kink[b] = 1
        if SMOOTH and (code == TANH or code == SIGMOID):
            _smooth_changes(code, z, drop, s.z_changes[u], s.a_changes[u], n_cols)
            continue
        for b in range(n_cols):
            s.a_changes[u, b] = drop * _activation_change(code, z, s.z_changes[u, b])


@njit(cache=True, inline="always")
def _block_next_layer(base, k, n_cols, s):
    """z_changes = W_{k+1} a_changes: the change of Z_{k+1}[:, e] per column."""
    # the scratch arrays taken once, outside the loops over columns
    z_changes = s.z_changes
    a_changes = s.a_changes
    n_here = base.layer_sizes[k]
    W = layer_weights(base.theta, base.layer_sizes, base.weight_offset, k + 1)
    for o in range(base.layer_sizes[k + 1]):
        for b in range(n_cols):
            z_changes[o, b] = 0.0
        for u in range(n_here):
            w = W[o, u]
            if w == 0.0:
                continue
            for b in range(n_cols):
                z_changes[o, b] += w * a_changes[u, b]


@njit(cache=True, inline="always")
def _block_output_kinks(base, e, n_cols, s):
    """Under MSE the output activation reaches the cost: its kinks count too."""
    n_layers = base.layer_sizes.size - 1
    zl = base.unit_offset[n_layers]
    for c in range(base.layer_sizes[n_layers]):
        z = base.Z[zl + c, e]
        for b in range(n_cols):
            if ((z + s.z_changes[c, b]) > 0.0) != (z > 0.0):
                s.block_kink[b] = 1


@njit(cache=True, inline="always")
def _block_polynomial_losses(base, e, n_cols, s):
    """block_loss = the fast path's loss-change formulas, vectorised over the
    block's columns (valid where block_far is 0)."""
    # the scratch arrays taken once, outside the loops over columns
    z_changes = s.z_changes
    block_loss = s.block_loss
    n_layers = base.layer_sizes.size - 1
    n_out = base.layer_sizes[n_layers]
    P, Y = base.P, base.Y
    if LOSS == SOFTMAX_CROSS_ENTROPY:
        dot = s.block_label_dot
        for b in range(n_cols):
            dot[b] = 0.0
        for c in range(n_out):
            pc = P[c, e]
            yc = Y[c, e]
            for b in range(n_cols):
                block_loss[b] += pc * _expm1_small(z_changes[c, b])
            if yc != 0.0:
                for b in range(n_cols):
                    dot[b] += yc * z_changes[c, b]
        for b in range(n_cols):
            block_loss[b] = _log1p_small(block_loss[b]) - dot[b]
    elif LOSS == BINARY_CROSS_ENTROPY:
        for c in range(n_out):
            sc = P[c, e]
            yc = Y[c, e]
            for b in range(n_cols):
                x = z_changes[c, b]
                block_loss[b] += _log1p_small(sc * _expm1_small(x)) - yc * x
    else:  # MSE on a linear output
        zl = base.unit_offset[n_layers]
        for c in range(n_out):
            rc = base.A[zl + c, e] - Y[c, e]
            for b in range(n_cols):
                x = z_changes[c, b]
                block_loss[b] += 0.5 * x * (x + 2.0 * rc)


@njit(cache=True, inline="always")
def _block_losses(base, e, n_cols, s):
    """block_loss = the change of example e's loss for each column of the block."""
    n_layers = base.layer_sizes.size - 1
    out_code = base.activations[n_layers - 1]
    if LOSS == MSE and out_code != LINEAR:
        for b in range(n_cols):
            s.block_loss[b] = _loss_change(base, e, b, s)
        return
    # Vectorised formulas first; columns whose logits moved beyond POLY_LIMIT
    # are then redone one by one (MSE's formula is exact at any size).
    for b in range(n_cols):
        s.block_loss[b] = 0.0
        s.block_far[b] = 0
    for c in range(base.layer_sizes[n_layers]):
        for b in range(n_cols):
            s.block_far[b] |= not (abs(s.z_changes[c, b]) <= POLY_LIMIT)
    _block_polynomial_losses(base, e, n_cols, s)
    if LOSS != MSE:
        for b in range(n_cols):
            if s.block_far[b]:
                s.block_loss[b] = _loss_change(base, e, b, s)


@njit(cache=True, **_INTERNAL)
def _exact_block(base, l, i, e, n_cols, s):
    """block_loss[b]: example e's loss change when A_l[i, e] moves by
    block_a_change[b] (Z_L[i, e] when l = L), pushed through the remaining
    layers as one matrix product per layer over the block's columns;
    block_kink[b] set when a ReLU / leaky-ReLU pre-activation downstream
    changes sign."""
    n_layers = base.layer_sizes.size - 1
    for b in range(n_cols):
        s.block_kink[b] = 0
    _block_first_layer(base, l, i, n_cols, s)
    for k in range(l + 1, n_layers):
        _block_activations(base, k, e, n_cols, s)
        _block_next_layer(base, k, n_cols, s)
    if LOSS == MSE and is_kinked(base.activations[n_layers - 1]):
        _block_output_kinks(base, e, n_cols, s)
    _block_losses(base, e, n_cols, s)


@njit(cache=True, inline="always")
def _exact_path(base, code, z, drop, l, i, e, n_exact, n_pts, s):
    """contribution[q] of the columns listed in exact_columns, in blocks of
    EXACT_BLOCK; component_kink set for columns that cross a kink here or
    downstream."""
    done = 0
    while done < n_exact:
        n_cols = min(EXACT_BLOCK, n_exact - done)
        for b in range(n_cols):
            q = s.exact_columns[done + b]
            if s.crossed[q]:
                s.block_a_change[b] = drop * _activation_change(code, z, s.z_change[q])
            else:
                s.block_a_change[b] = s.a_change[q]
        _exact_block(base, l, i, e, n_cols, s)
        for b in range(n_cols):
            q = s.exact_columns[done + b]
            s.contribution[q] = s.block_loss[b]
            if s.block_kink[b] or s.crossed[q]:
                s.component_kink[q // n_pts] = 1
        done += n_cols


@njit(cache=True, inline="always")
def _unit_series_changes(base, code, unit, e, z, drop, n_q, s):
    """a_change = drop (g(z + z_change) - g(z)) for the perturbed tanh / sigmoid
    unit, by its power series (``base.series``, no division per column);
    entries beyond SERIES_LIMIT are redone by ``_activation_change``, each on
    its own value."""
    z_change, a_change = s.z_change, s.a_change
    c = base.series[e, unit]
    v = (drop * c[0], drop * c[1], drop * c[2], drop * c[3], drop * c[4], drop * c[5])
    n_far = 0
    for q in range(n_q):
        d = z_change[q]
        a_change[q] = _series_move(v, d)
        n_far += not (abs(d) <= SERIES_LIMIT)
    if n_far > 0:
        for q in range(n_q):
            if not (abs(z_change[q]) <= SERIES_LIMIT):
                a_change[q] = drop * _activation_change(code, z, z_change[q])


# --------------------------------------------------------------------------- #
# One piece: some components of one unit
# --------------------------------------------------------------------------- #
@njit(cache=True, inline="always")
def _start_piece(base, indices, points, plan, start, n_comp, s):
    """Each column's step ``p - theta_k``; totals, crossings and kinks cleared."""
    n_pts = points.shape[1]
    for a in range(n_comp):
        r = plan.order[start + a]
        s.input_column[a] = plan.input_column[r]
        s.component_kink[a] = 0
        k = indices[r]
        for p in range(n_pts):
            q = a * n_pts + p
            s.step[q] = points[r, p] - base.theta[k]
            s.total[q] = 0.0
            s.crossed[q] = 0


@njit(cache=True, inline="always")
def _z_changes(base, l, e, n_comp, n_pts, s):
    """z_change[q] = step[q] * A_{l-1}[j, e] (times 1 for a bias): the change of Z_l[i, e]."""
    # the scratch arrays taken once, outside the loops over columns
    input_column = s.input_column
    step = s.step
    z_change = s.z_change
    n_in = base.layer_sizes[l - 1]
    at = base.inputs_t_offset[l] + e * n_in
    for a in range(n_comp):
        j = input_column[a]
        x = 1.0 if j == n_in else base.inputs_t[at + j]
        for p in range(n_pts):
            q = a * n_pts + p
            z_change[q] = step[q] * x


@njit(cache=True, inline="always")
def _piecewise_changes(code, z, drop, n_q, s):
    """a_change = slope * drop * z_change for a piecewise-linear unit, and
    ``crossed`` marked where Z_l[i, e] changes sign (those columns are redone
    exactly). Returns (factor, n_crossed); when both are 0 the unit stays on
    the flat side of a ReLU for every column, and a_change is not written."""
    z_change, a_change, crossed = s.z_change, s.a_change, s.crossed
    factor = drop * activation_slope(code, z)
    n_crossed = 0
    if is_kinked(code):
        positive = z > 0.0
        for q in range(n_q):
            sign_changed = ((z + z_change[q]) > 0.0) != positive
            crossed[q] = sign_changed
            n_crossed += sign_changed
    if factor == 0.0 and n_crossed == 0:
        return factor, n_crossed
    for q in range(n_q):
        a_change[q] = factor * z_change[q]
    return factor, n_crossed


@njit(cache=True, inline="always")
def _list_moving_columns(n_q, s):
    """When the fast path does not apply: every column that moves goes to the exact path."""
    contribution = s.contribution
    crossed = s.crossed
    a_change = s.a_change
    exact_columns = s.exact_columns
    n_exact = 0
    for q in range(n_q):
        contribution[q] = 0.0
        if crossed[q] or a_change[q] != 0.0:
            exact_columns[n_exact] = q
            n_exact += 1
    return n_exact


@njit(cache=True, inline="always")
def _write_piece(base, indices, points, plan, start, n_comp, n_in, deltas, kinks, status, s):
    """deltas = total / m plus the exact change of the L2 penalty, kinks and
    status, in the rows of the piece's components."""
    m = base.Z.shape[1]
    n_pts = points.shape[1]
    l2 = base.l2
    penalty = l2 / (2.0 * m)
    for a in range(n_comp):
        r = plan.order[start + a]
        k = indices[r]
        is_weight = s.input_column[a] < n_in
        bad = False
        for p in range(n_pts):
            q = a * n_pts + p
            d = s.total[q] / m
            if is_weight and l2 != 0.0:
                # l2 / (2m) (p^2 - w^2), as (p - w)(p + w): exact, no cancellation
                d += penalty * (s.step[q] * (points[r, p] + base.theta[k]))
            deltas[r, p] = d
            if not np.isfinite(d):
                bad = True
        kinks[r] = s.component_kink[a]
        status[r] = STATUS_NON_FINITE if bad else STATUS_OK


# --------------------------------------------------------------------------- #
# The loss series of every unit and example, once per check
# --------------------------------------------------------------------------- #
@njit(cache=True, nogil=True)
def _fill_unit_losses(base, n_chunks, c):
    """unit_loss and unit_limit of units c, c + n_chunks, ... (chunk c's share, in its scratch).

    The direction of the logits (fast path) or their series (series path) and
    the loss series composed from it depend on the unit and the example only:
    computed here once, every call and piece of the check reads them (a bias
    checked apart from its unit's weights used to pay for them again). Units
    on the flat side of a ReLU, dropped, or served by neither path keep a
    limit of 0.
    """
    s = _new_scratch(base, 1, 1)
    n_layers = base.layer_sizes.size - 1
    has_dropout = base.dropout_scale.shape[0] > 0
    # W_L transposed, once per call: the series path's sums read its rows.
    WT = np.ascontiguousarray(layer_weights(base.theta, base.layer_sizes, base.weight_offset, n_layers).T)
    for unit in range(c, base.Z.shape[0], n_chunks):
        l = base.layer_of_unit[unit]
        i = unit - base.unit_offset[l]
        is_output = l == n_layers
        code = LINEAR if is_output else base.activations[l - 1]
        fast = _downstream_is_fast(base, l)
        series = SMOOTH and not fast and _downstream_is_series(base, l)
        if not (fast or series):
            continue
        for e in range(base.Z.shape[1]):
            drop = base.dropout_scale[unit, e] if has_dropout and not is_output else 1.0
            if drop == 0.0 or (is_piecewise_linear(code) and activation_slope(code, base.Z[unit, e]) == 0.0):
                continue  # no column of this unit and example reaches the paths
            n_terms = 1  # the fast path: the logits move on a straight line, degree 1 only
            if SMOOTH:  # (the series path is compiled only for networks with tanh / sigmoid hidden layers)
                if not fast:
                    n_terms = SERIES_TERMS
            if n_terms == 1:
                limit = _logit_direction(base, l, i, e, s)
                for o in range(base.layer_sizes[n_layers]):
                    s.series[0, o] = s.direction[o]
            else:
                limit = _series_direction(base, l, i, e, s, WT)
            loss = _loss_series(base, e, n_terms, s)
            base.unit_limit[unit, e] = limit
            row = base.unit_loss[unit, e]
            row[0] = loss[0]
            row[1] = loss[1]
            row[2] = loss[2]
            row[3] = loss[3]
            row[4] = loss[4]
            row[5] = loss[5]


# --------------------------------------------------------------------------- #
# The kernel
# --------------------------------------------------------------------------- #
@njit(cache=True, inline="always")
def _new_scratch(base, capacity, n_pts):
    """A chunk's scratch (see ChunkScratch), allocated by the thread that runs
    the chunk, before its loop: pieces of at most ``capacity`` components at
    ``n_pts`` points each."""
    sizes = base.layer_sizes
    widest = 1
    for l in range(1, sizes.size):
        widest = max(widest, sizes[l])
    n_out = sizes[sizes.size - 1]
    n_q = capacity * n_pts
    return ChunkScratch(
        np.empty(n_q), np.empty(n_q), np.empty(n_q), np.empty(n_q), np.empty(n_q),
        np.zeros(n_q, dtype=np.uint8), np.empty(n_q, dtype=np.int64),
        np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=np.uint8),
        np.empty(EXACT_BLOCK), np.empty(EXACT_BLOCK), np.empty(EXACT_BLOCK),
        np.empty(EXACT_BLOCK, dtype=np.uint8), np.empty(EXACT_BLOCK, dtype=np.uint8),
        np.empty((widest, EXACT_BLOCK)), np.empty((widest, EXACT_BLOCK)),
        np.empty(widest), np.empty(widest), np.empty(n_out), np.empty(n_out),
        np.empty((SERIES_TERMS, widest)), np.empty((SERIES_TERMS, n_out)),
    )


@njit(cache=True, nogil=True)
def _run_chunk(base, indices, points, plan, deltas, kinks, status, c):
    """Chunk c's pieces, one after the other, in its own scratch (without the GIL).

    The one compiled function that holds the per-piece code: the chunks run
    on Python threads (``_run_chunks``) rather than in a ``prange``, because
    Numba links a callee's code into every caller and optimises it again
    there: a parallel loop (its gufunc, the function holding it) and a
    compiled driver around it compiled the per-piece code three times over.
    """
    s = _new_scratch(base, plan.capacity, points.shape[1])
    for t in range(plan.chunk_start[c], plan.chunk_start[c + 1]):
        piece = plan.chunk_pieces[t]
        unit = plan.piece_unit[piece]
        start = plan.piece_start[piece]
        n_comp = plan.piece_length[piece]
        l = base.layer_of_unit[unit]
        i = unit - base.unit_offset[l]
        n_layers = base.layer_sizes.size - 1
        n_pts = points.shape[1]
        n_q = n_comp * n_pts
        is_output = l == n_layers
        # The cross-entropies read the logits: the output unit moves them linearly.
        code = LINEAR if is_output else base.activations[l - 1]
        piecewise_here = is_piecewise_linear(code)
        fast = _downstream_is_fast(base, l)
        series = _downstream_is_series(base, l)
        has_dropout = base.dropout_scale.shape[0] > 0
        _start_piece(base, indices, points, plan, start, n_comp, s)
        for e in range(base.Z.shape[1]):
            drop = 1.0
            if has_dropout and not is_output:
                drop = base.dropout_scale[unit, e]
                if drop == 0.0:
                    continue  # a dropped unit: nothing downstream sees the change
            z = base.Z[unit, e]
            _z_changes(base, l, e, n_comp, n_pts, s)
            factor = 0.0
            n_crossed = 0
            if piecewise_here:
                factor, n_crossed = _piecewise_changes(code, z, drop, n_q, s)
                if factor == 0.0 and n_crossed == 0:
                    continue  # stays on the flat side of a ReLU: exactly no change
            elif SMOOTH:  # (without tanh / sigmoid hidden layers, every unit here is piecewise linear)
                _unit_series_changes(base, code, unit, e, z, drop, n_q, s)
            if (fast or (SMOOTH and series)) and (factor != 0.0 or not piecewise_here):
                n_exact = _fast_path(base, l, i, e, n_q, n_crossed, s)  # (the unit's loss series, either path's)
            else:
                n_exact = _list_moving_columns(n_q, s)
            _exact_path(base, code, z, drop, l, i, e, n_exact, n_pts, s)
            if n_crossed > 0:
                for q in range(n_q):
                    s.crossed[q] = 0
            total, contribution = s.total, s.contribution
            for q in range(n_q):
                total[q] += contribution[q]
        _write_piece(base, indices, points, plan, start, n_comp, base.layer_sizes[l - 1], deltas, kinks, status, s)


_pool = None
_pool_lock = threading.Lock()


def _thread_pool() -> ThreadPoolExecutor:
    """Worker threads for the chunks, started at the first parallel call and kept."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1), thread_name_prefix="fastgrad")
        return _pool


def _on_threads(kernel, arguments, chunks) -> None:
    """``kernel(*arguments, c)`` for every chunk c: the first on the calling thread, the others on the pool's.

    Each chunk writes only its own rows and its own scratch, and every value is
    computed the same way whatever chunk runs it: the result does not depend on
    the threads.
    """
    if len(chunks) == 1:
        kernel(*arguments, np.int64(chunks[0]))
        return
    pool = _thread_pool()
    futures = [pool.submit(kernel, *arguments, np.int64(c)) for c in chunks[1:]]
    try:
        kernel(*arguments, np.int64(chunks[0]))
    finally:
        # The workers write into the caller's arrays: wait for them even when
        # this thread is interrupted, and raise their first error.
        wait(futures)
    for future in futures:
        future.result()


def _run_chunks(base, indices, points, plan, deltas, kinks, status):
    """Every chunk with work, on the threads (``_on_threads``)."""
    chunk_start = plan.chunk_start
    busy = [c for c in range(chunk_start.size - 1) if chunk_start[c + 1] > chunk_start[c]]
    _on_threads(_variant(base.loss, base.activations)["_run_chunk"],
                (base, indices, points, plan, deltas, kinks, status), busy)


def _cost_differences(base, indices, points, n_chunks):
    """The body of ``cost_differences``, on arrays of the right types: plan, run."""
    n_idx = indices.size
    n_pts = points.shape[1]
    deltas = np.zeros((n_idx, n_pts))
    kinks = np.zeros(n_idx, dtype=np.uint8)
    status = np.zeros(n_idx, dtype=np.uint8)
    if n_idx == 0:
        return deltas, kinks, status
    n_chunks = max(1, int(n_chunks))
    plan = _plan(base, indices, n_pts, n_chunks)
    _run_chunks(base, indices, points, plan, deltas, kinks, status)
    return deltas, kinks, status


# --------------------------------------------------------------------------- #
# Python entry points
# --------------------------------------------------------------------------- #
#: Compiled functions every variant shares (no LOSS or SMOOTH in them or in
#: what they call); the module's other compiled functions are copied per variant.
_SHARED = (
    "_softplus", "_activation_change", "_smooth_changes", "_layer_forward", "_base_forward", "_group_components",
    "_series_table",
)
_variants: dict = {}
_variants_lock = threading.Lock()


def _variant_key(loss, activations) -> tuple[int, bool]:
    """``(LOSS, SMOOTH)`` of a network: its loss code, and whether a hidden layer is tanh / sigmoid."""
    hidden = [int(code) for code in np.asarray(activations)[:-1]]
    return int(loss), any(code in (TANH, SIGMOID) for code in hidden)


def _variant(loss, activations) -> dict:
    """The compiled functions for this loss and these activations (made once per process, compiled lazily)."""
    key = _variant_key(loss, activations)
    with _variants_lock:
        found = _variants.get(key)
        if found is None:
            names = [
                name for name, value in globals().items()
                if hasattr(value, "_fastgrad_njit") and value.py_func.__module__ == __name__ and name not in _SHARED
            ]
            found = _variants[key] = specialise(globals(), names, {"LOSS": key[0], "SMOOTH": key[1]})
        return found


def _base_with_unit_losses(layer_sizes, activations, loss, l2, theta, Y, dropout_scale, arrays) -> DenseBase:
    """DenseBase of the prepared arrays, its per-unit loss series filled on the chunks' threads."""
    Z = arrays[5]
    n_units, m = Z.shape
    base = DenseBase(layer_sizes, activations, loss, l2, theta, Y, dropout_scale, *arrays,
                     np.zeros((n_units, m, SERIES_TERMS)), np.zeros((n_units, m)))
    n_chunks = max(1, min(int(numba.get_num_threads()), n_units))
    _on_threads(_variant(loss, activations)["_fill_unit_losses"], (base, np.int64(n_chunks)), list(range(n_chunks)))
    return base


def _as_int_vector(value, name):
    array = np.ascontiguousarray(value, dtype=np.int64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}.")
    return array


def _as_float_matrix(value, name):
    array = np.ascontiguousarray(value, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be two-dimensional, got shape {array.shape}.")
    return array


def prepare(
    layer_sizes: np.ndarray,
    activations: np.ndarray,
    loss: int,
    l2: float,
    theta: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    dropout_scale: np.ndarray,
) -> DenseBase:
    """What every call of :func:`cost_differences` for this network and data shares.

    Builds the offset tables and runs the unperturbed forward pass once, so
    that a check split into many calls (chunks of components) pays for them
    once.

    Parameters
    ----------
    layer_sizes : numpy.ndarray
        int64 ``[n0, n1, ..., nL]``.
    activations : numpy.ndarray
        int64 activation code of each of the L layers (``fastgrad._dense_spec``).
    loss : int
        Loss code. Binary and softmax cross-entropy are computed from the
        output pre-activations (logits); MSE from the output activations.
    l2 : float
        L2 strength: the penalty is ``l2 / (2 m) * sum ||W_l||^2``.
    theta : numpy.ndarray
        float64 parameters in the course's layout (``W1`` C order, ``b1``, ...).
    X, Y : numpy.ndarray
        float64 ``(n0, m)`` inputs and ``(nL, m)`` labels.
    dropout_scale : numpy.ndarray
        float64 ``(n1 + ... + n_{L-1}, m)`` inverted-dropout multipliers of the
        hidden activations, or shape ``(0, m)`` for no dropout.

    Returns
    -------
    DenseBase
        Plain arrays (copies where a conversion was needed; the caller's arrays
        are never written), to pass to :func:`cost_differences`.

    Raises
    ------
    ValueError
        If the arrays do not fit together (the callers validate user input;
        this only guards the kernel against misuse).
    """
    layer_sizes = _as_int_vector(layer_sizes, "layer_sizes")
    activations = _as_int_vector(activations, "activations")
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    X = _as_float_matrix(X, "X")
    Y = _as_float_matrix(Y, "Y")
    dropout_scale = _as_float_matrix(dropout_scale, "dropout_scale")
    n_layers = layer_sizes.size - 1
    if n_layers < 1 or activations.size != n_layers:
        raise ValueError(
            f"activations needs one code per layer: {n_layers} layer(s) from layer_sizes "
            f"{layer_sizes.tolist()}, got {activations.size} code(s)."
        )
    n_params = int(sum(layer_sizes[l] * (layer_sizes[l - 1] + 1) for l in range(1, n_layers + 1)))
    m = X.shape[1]
    if theta.ndim != 1 or theta.size != n_params:
        raise ValueError(f"theta must be a vector of {n_params} parameters for these layer sizes, got shape {theta.shape}.")
    if X.shape[0] != layer_sizes[0] or Y.shape != (layer_sizes[-1], m):
        raise ValueError(
            f"X must be ({layer_sizes[0]}, m) and Y ({layer_sizes[-1]}, m); got X {X.shape} and Y {Y.shape}."
        )
    n_hidden = int(layer_sizes[1:-1].sum())
    if dropout_scale.shape not in ((0, m), (n_hidden, m)):
        raise ValueError(
            f"dropout_scale must be ({n_hidden}, {m}) or (0, {m}), got {dropout_scale.shape}."
        )
    loss, l2 = int(loss), float(l2)
    arrays = _prepare_arrays(layer_sizes, activations, loss, theta, X, dropout_scale)
    return _base_with_unit_losses(layer_sizes, activations, loss, l2, theta, Y, dropout_scale, arrays)


def cost_differences(
    base: DenseBase, indices: np.ndarray, points: np.ndarray, n_chunks: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cost differences of a dense network at perturbed parameter values.

    Any set of components, in any order, in any number of calls: every value is
    bit-for-bit the same as in one call over all components, with any thread
    count.

    Parameters
    ----------
    base : DenseBase
        From :func:`prepare`, for the network, parameters and data.
    indices : numpy.ndarray
        int64 components to perturb (repeats allowed).
    points : numpy.ndarray
        float64 ``(indices.size, n_pts)`` values each component takes in turn.
    n_chunks : int, optional
        Parallel chunks; default: Numba's current thread count.

    Returns
    -------
    deltas : numpy.ndarray
        ``(n_idx, n_pts)``: ``J(theta with theta[indices[r]] = points[r, j]) - J(theta)``.
    kinks : numpy.ndarray
        uint8 ``(n_idx,)``: 1 when a ReLU / leaky-ReLU pre-activation that
        affects the cost (a dropped unit does not) has another sign at one of
        the points than at theta.
    status : numpy.ndarray
        uint8 ``(n_idx,)``: ``STATUS_OK`` (0), or ``STATUS_NON_FINITE`` (1) when
        a difference is not finite.

    Raises
    ------
    ValueError
        If indices or points do not fit the network.
    """
    indices = _as_int_vector(indices, "indices")
    points = _as_float_matrix(points, "points")
    n_params = base.theta.size
    if points.shape[0] != indices.size or points.shape[1] < 1:
        raise ValueError(f"points must be ({indices.size}, n_pts) with n_pts >= 1, got {points.shape}.")
    if indices.size and (indices.min() < 0 or indices.max() >= n_params):
        raise ValueError(f"indices must lie in [0, {n_params}), got values from {indices.min()} to {indices.max()}.")
    if n_chunks is None:
        n_chunks = numba.get_num_threads()
    return _cost_differences(base, indices, points, np.int64(n_chunks))


def perturbed_cost_differences(
    layer_sizes: np.ndarray,
    activations: np.ndarray,
    loss: int,
    l2: float,
    theta: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    dropout_scale: np.ndarray,
    indices: np.ndarray,
    points: np.ndarray,
    *,
    n_chunks: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cost_differences(prepare(...), indices, points)`` in one call.

    For a single call; a check that calls per chunk of components should call
    :func:`prepare` once and :func:`cost_differences` per chunk. Parameters,
    returns and errors: see those two functions.
    """
    base = prepare(layer_sizes, activations, loss, l2, theta, X, Y, dropout_scale)
    return cost_differences(base, indices, points, n_chunks=n_chunks)


def _example_base() -> DenseBase:
    """A DenseBase of the kernels' one specialisation, for cache look-ups."""
    sizes = np.array([1, 1], dtype=np.int64)
    tables = [np.zeros(3, dtype=np.int64)] * 4 + [np.zeros(1, dtype=np.int64)]
    arrays = [np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1), np.zeros(1), np.zeros((1, 1, 1)),
              np.zeros((1, 1, 1)), np.zeros((1, 1))]
    return DenseBase(
        sizes, np.zeros(1, dtype=np.int64), 0, 0.0, np.zeros(2), np.zeros((1, 1)), np.zeros((0, 1)),
        *tables, *arrays,
    )


def _is_cached(kernel, arguments) -> bool:
    if kernel.signatures:
        return True
    try:
        signature = tuple(numba.typeof(arg) for arg in arguments)
        cache = kernel._cache
        key = cache._index_key(signature, kernel.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - Numba internals: any failure means "don't know"
        return False


def kernel_is_cached(loss: int = SOFTMAX_CROSS_ENTROPY, activations=(RELU, LINEAR)) -> bool:
    """Whether the kernels a network needs are compiled in this process or on disk for this machine.

    Parameters
    ----------
    loss : int
        Loss code (``fastgrad._dense_spec``).
    activations : sequence of int
        Activation code of every layer, the output's last.

    Returns
    -------
    bool
        False means the next check of such a network compiles them (seconds,
        once); a failure to tell is reported as False.
    """
    kernels = _variant(loss, activations)
    sizes, codes, offsets = np.zeros(2, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(3, dtype=np.int64)
    forward_arguments = (sizes, codes, np.zeros(2), np.zeros((1, 1)), np.zeros((0, 1)), offsets, offsets, offsets)
    base = _example_base()
    one = np.int64(1)
    index, matrix, flags = np.zeros(1, dtype=np.int64), np.zeros((1, 1)), np.zeros(1, np.uint8)
    plan = Plan(*[index] * 7, 1)
    return (
        _is_cached(_base_forward, forward_arguments)
        and _is_cached(_group_components, (codes, sizes, offsets, offsets, offsets))
        and _is_cached(kernels["_output_probabilities"], (np.zeros((1, 1)),))
        and (not _variant_key(loss, activations)[1]
             or _is_cached(kernels["_series_table"], (sizes, codes, np.zeros((1, 1)), offsets)))
        and _is_cached(kernels["_run_chunk"], (base, index, matrix, plan, matrix, flags, flags, one))
        and _is_cached(kernels["_fill_unit_losses"], (base, one, one))
    )
