"""Compiled structure-exploiting perturbation kernel for dense networks.

``perturbed_cost_differences`` returns, for every requested component ``k`` and
perturbed value ``p``, the honest cost difference ``J(theta with theta[k] = p) -
J(theta)`` of the network's real forward cost, without running the whole
forward pass per point (see ``docs/dense_engine.md`` for the algorithm):

- perturbing ``W_l[i, j]`` or ``b_l[i]`` changes only row ``i`` of ``Z_l``: the
  unperturbed pre-activations and activations of every layer are computed once,
  and only the change they undergo is propagated;
- an example whose activation ``A_l[i, e]`` does not change (a ReLU unit that
  stays negative, a dropped unit) contributes exactly zero and is skipped; the
  per-example loss *changes* are summed over the examples that did change,
  which is also more accurate than subtracting two full costs;
- every component of one row shares the same downstream path: while no
  ReLU / leaky-ReLU pre-activation further down changes sign (checked per
  example with an exact margin), the logits move along one fixed direction
  ``v`` per example, and the loss change is evaluated for the whole row at once
  in vectorised loops; otherwise the change is pushed through the remaining
  layers as a wide matrix product over the components of the row.

Work is split into pieces of one row each; pieces are spread over ``n_chunks``
``prange`` iterations, each with its own scratch buffers, and every value is
computed the same way whatever piece or chunk it lands in: results are
bit-for-bit independent of the thread count.

No ``fastmath``: these are differences of costs.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from fastgrad._jit import njit, prange

from fastgrad._dense_spec import (
    BINARY_CROSS_ENTROPY,
    LEAKY_RELU,
    LEAKY_SLOPE,
    LINEAR,
    MSE,
    RELU,
    SIGMOID,
    SOFTMAX_CROSS_ENTROPY,
    TANH,
)

__all__ = ["perturbed_cost_differences", "kernel_is_cached"]

STATUS_OK = 0
STATUS_NON_FINITE = 1

#: Largest |x| for which the degree-5 Taylor polynomial of expm1 is exact to
#: rounding (truncation below |x|^5 / 720 ~ 1.3e-18 relative), and for which the
#: degree-6 polynomial of log1p is too (|s|^6 / 7 ~ 1.3e-19 relative).
POLY_LIMIT = 2.0**-10

#: Most components in one piece of work (one row of one layer, or a part of it).
PIECE_MAX = 1024

#: Columns per block of the exact (matrix-product) path.
EXACT_BLOCK = 128

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


# --------------------------------------------------------------------------- #
# Scalar helpers
# --------------------------------------------------------------------------- #
@njit(cache=True)
def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    ex = math.exp(x)
    return ex / (1.0 + ex)


@njit(cache=True, inline="always")
def _expm1_small(x):
    """expm1(x) for |x| <= POLY_LIMIT: its Taylor polynomial, exact to rounding there."""
    return x * (1.0 + x * (_E2 + x * (_E3 + x * (_E4 + x * _E5))))


@njit(cache=True, inline="always")
def _log1p_small(s):
    """log1p(s) for |s| <= 1.001 POLY_LIMIT: its Taylor polynomial, exact to rounding there."""
    return s * (1.0 + s * (_L2 + s * (_L3 + s * (_L4 + s * (_L5 + s * _L6)))))


@njit(cache=True, inline="always")
def _tanh_small(x):
    """tanh(x) for |x| <= POLY_LIMIT: its Taylor polynomial, exact to rounding there."""
    x2 = x * x
    return x * (1.0 + x2 * (_T3 + x2 * _T5))


@njit(cache=True)
def _smooth_change_row(code, z, drop, DZ_row, DA_row, n_cols):
    """DA_row[b] = drop (g(z + DZ_row[b]) - g(z)) for tanh / sigmoid, in loops
    that vectorise: the terms that depend on z only are computed once, and
    tanh / expm1 of the small change are polynomials. Entries beyond
    POLY_LIMIT are redone by ``_activation_change``: each entry's path depends
    on its own value only, never on its neighbours."""
    if code == TANH:
        # tanh(z + d) - tanh(z) = tanh(d) sech(z)^2 / (1 + tanh(z) tanh(d))
        th = math.tanh(z)
        c = math.cosh(z)
        sech2 = 1.0 / (c * c)
        for b in range(n_cols):
            td = _tanh_small(DZ_row[b])
            DA_row[b] = drop * (td * sech2 / (1.0 + th * td))
    else:
        # sigmoid(z + d) - sigmoid(z) = -expm1(-d) sigmoid(z + d) sigmoid(-z), with
        # sigmoid(z + d) from exp(-|z|) (never overflows) and expm1(+-d)
        s_minus = _sigmoid(-z)
        if z >= 0.0:
            ez = math.exp(-z)
            for b in range(n_cols):
                em = _expm1_small(-DZ_row[b])
                DA_row[b] = drop * (-em * (1.0 / (1.0 + ez * (1.0 + em))) * s_minus)
        else:
            ez = math.exp(z)
            for b in range(n_cols):
                d = DZ_row[b]
                g = ez * (1.0 + _expm1_small(d))
                DA_row[b] = drop * (-_expm1_small(-d) * (g / (1.0 + g)) * s_minus)
    n_far = 0
    for b in range(n_cols):
        n_far += not (abs(DZ_row[b]) <= POLY_LIMIT)
    if n_far > 0:
        for b in range(n_cols):
            if not (abs(DZ_row[b]) <= POLY_LIMIT):
                DA_row[b] = drop * _activation_change(code, z, DZ_row[b])


@njit(cache=True)
def _softplus(x):
    """log(1 + e^x), without overflow."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@njit(cache=True)
def _activation(code, z):
    if code == RELU:
        return z if z > 0.0 else 0.0
    if code == LEAKY_RELU:
        return z if z > 0.0 else LEAKY_SLOPE * z
    if code == TANH:
        return math.tanh(z)
    if code == SIGMOID:
        return _sigmoid(z)
    return z


@njit(cache=True)
def _slope(code, z):
    """Slope of a piecewise-linear activation on the side of 0 where z lies."""
    if code == RELU:
        return 1.0 if z > 0.0 else 0.0
    if code == LEAKY_RELU:
        return 1.0 if z > 0.0 else LEAKY_SLOPE
    return 1.0


@njit(cache=True)
def _is_kinked(code):
    return code == RELU or code == LEAKY_RELU


@njit(cache=True)
def _is_piecewise_linear(code):
    return code == LINEAR or code == RELU or code == LEAKY_RELU


@njit(cache=True)
def _activation_change(code, z, dz):
    """g(z + dz) - g(z), accurately (exact identities, no cancellation for small dz)."""
    if dz == 0.0:
        return 0.0
    if code == LINEAR:
        return dz
    zp = z + dz
    if code == RELU or code == LEAKY_RELU:
        low = 0.0 if code == RELU else LEAKY_SLOPE
        if z > 0.0 and zp > 0.0:
            return dz
        if z <= 0.0 and zp <= 0.0:
            return low * dz
        return _activation(code, zp) - _activation(code, z)
    if abs(dz) <= 1.0:
        if code == TANH:
            # tanh(z + d) - tanh(z) = tanh(d) sech(z)^2 / (1 + tanh(z) tanh(d))
            td = math.tanh(dz)
            c = math.cosh(z)
            return td / (c * c) / (1.0 + math.tanh(z) * td)
        # sigmoid(z + d) - sigmoid(z) = -expm1(-d) sigmoid(z + d) sigmoid(-z)
        return -math.expm1(-dz) * _sigmoid(zp) * _sigmoid(-z)
    return _activation(code, zp) - _activation(code, z)


# --------------------------------------------------------------------------- #
# The unperturbed network, once per call
# --------------------------------------------------------------------------- #
@njit(cache=True)
def _tables(layer_sizes, m):
    """Offsets, indexed by layer l = 1..L: W_l and b_l in theta, layer l's rows in
    the stacked pre-activations (and dropout), A_{l-1}^T in the transposed buffer."""
    n_layers = layer_sizes.size - 1
    w_off = np.zeros(n_layers + 2, dtype=np.int64)
    b_off = np.zeros(n_layers + 2, dtype=np.int64)
    z_row = np.zeros(n_layers + 2, dtype=np.int64)
    at_off = np.zeros(n_layers + 2, dtype=np.int64)
    p = 0
    rows = 0
    at = 0
    for l in range(1, n_layers + 1):
        n_in = layer_sizes[l - 1]
        n_out = layer_sizes[l]
        w_off[l] = p
        b_off[l] = p + n_out * n_in
        p += n_out * n_in + n_out
        z_row[l] = rows
        rows += n_out
        at_off[l] = at
        at += m * n_in
    w_off[n_layers + 1] = p
    b_off[n_layers + 1] = p
    z_row[n_layers + 1] = rows
    at_off[n_layers + 1] = at
    return w_off, b_off, z_row, at_off


@njit(cache=True, parallel=True)
def _layer_forward(W, A_prev, b, code, dropped, dropout_scale, row0, Z, A):
    """Z[row0 + i] = W[i] A_prev + b[i], A = activation (times dropout), rows in
    parallel. Our own loops rather than BLAS: BLAS threads left spinning after
    a call compete with the prange workers that follow."""
    m = A_prev.shape[1]
    for i in prange(W.shape[0]):
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
            a = _activation(code, z)
            if dropped:
                a = a * dropout_scale[row, e]
            A[row, e] = a


@njit(cache=True)
def _forward_base(layer_sizes, activations, loss, theta, X, Y, dropout_scale, w_off, b_off, z_row, at_off):
    """Pre-activations Z and activations A (after dropout) of every layer, stacked
    by rows; the output's per-example softmax probabilities / sigmoids P and
    log-sum-exp; and A_{l-1}^T of every layer, for contiguous gathers."""
    n_layers = layer_sizes.size - 1
    m = X.shape[1]
    n_rows = z_row[n_layers + 1]
    Z = np.empty((n_rows, m))
    A = np.empty((n_rows, m))
    has_dropout = dropout_scale.shape[0] > 0
    for l in range(1, n_layers + 1):
        n_in = layer_sizes[l - 1]
        n_out = layer_sizes[l]
        W = theta[w_off[l] : w_off[l] + n_out * n_in].reshape((n_out, n_in))
        if l == 1:
            A_prev = X
        else:
            A_prev = A[z_row[l - 1] : z_row[l - 1] + n_in]
        _layer_forward(
            W, A_prev, theta[b_off[l] : b_off[l] + n_out], activations[l - 1],
            has_dropout and l < n_layers, dropout_scale, z_row[l], Z, A,
        )

    n_out = layer_sizes[n_layers]
    zl = z_row[n_layers]
    P = np.zeros((n_out, m))
    lse = np.zeros(m)
    if loss == SOFTMAX_CROSS_ENTROPY:
        for e in range(m):
            shift = Z[zl, e]
            for c in range(1, n_out):
                shift = max(shift, Z[zl + c, e])
            s = 0.0
            for c in range(n_out):
                s += math.exp(Z[zl + c, e] - shift)
            lse[e] = shift + math.log(s)
            for c in range(n_out):
                P[c, e] = math.exp(Z[zl + c, e] - shift) / s
    elif loss == BINARY_CROSS_ENTROPY:
        for c in range(n_out):
            for e in range(m):
                P[c, e] = _sigmoid(Z[zl + c, e])

    AT = np.empty(at_off[n_layers + 1])
    for l in range(1, n_layers + 1):
        n_in = layer_sizes[l - 1]
        base = at_off[l]
        for e in range(m):
            for j in range(n_in):
                if l == 1:
                    AT[base + e * n_in + j] = X[j, e]
                else:
                    AT[base + e * n_in + j] = A[z_row[l - 1] + j, e]
    return Z, A, P, lse, AT


# --------------------------------------------------------------------------- #
# Splitting the work
# --------------------------------------------------------------------------- #
@njit(cache=True)
def _order_by_decreasing(values):
    """Indices that sort values largest first (Shell sort: a few thousand values,
    and much quicker to compile than numpy's argsort)."""
    n = values.size
    order = np.arange(n)
    gap = 1
    while gap < n // 3:
        gap = 3 * gap + 1
    while gap > 0:
        for t in range(gap, n):
            moving = order[t]
            u = t
            while u >= gap and values[order[u - gap]] < values[moving]:
                order[u] = order[u - gap]
                u -= gap
            order[u] = moving
        gap //= 3
    return order


@njit(cache=True)
def _plan(layer_sizes, activations, loss, indices, n_pts, n_chunks, w_off, b_off, z_row, Z, dropout_scale):
    """Group components by row, cut rows into pieces, and spread the pieces over
    chunks (largest estimated cost first, each to the least-loaded chunk).

    A piece's cost is estimated from the examples its row actually passes on
    (positive ReLU pre-activations, units not dropped), so that the static
    split between chunks comes out even."""
    m = Z.shape[1]
    has_dropout = dropout_scale.shape[0] > 0
    n_layers = layer_sizes.size - 1
    n_idx = indices.size
    n_out = layer_sizes[n_layers]
    row_of = np.empty(n_idx, dtype=np.int64)
    col_of = np.empty(n_idx, dtype=np.int64)
    layer_of_row = np.empty(z_row[n_layers + 1], dtype=np.int64)
    for l in range(1, n_layers + 1):
        for i in range(layer_sizes[l]):
            layer_of_row[z_row[l] + i] = l
    for r in range(n_idx):
        k = indices[r]
        l = 1
        while k >= w_off[l + 1]:
            l += 1
        n_in = layer_sizes[l - 1]
        if k < b_off[l]:
            i = (k - w_off[l]) // n_in
            j = (k - w_off[l]) % n_in
        else:
            i = k - b_off[l]
            j = n_in  # the bias: its "input" is 1
        row_of[r] = z_row[l] + i
        col_of[r] = j
    # Counting sort by row: stable, and linear in the number of components.
    n_rows = z_row[n_layers + 1]
    row_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    for r in range(n_idx):
        row_ptr[row_of[r] + 1] += 1
    for row in range(n_rows):
        row_ptr[row + 1] += row_ptr[row]
    fill = row_ptr[:n_rows].copy()
    order = np.empty(n_idx, dtype=np.int64)
    for r in range(n_idx):
        order[fill[row_of[r]]] = r
        fill[row_of[r]] += 1

    # Pieces small enough that even a small call keeps every chunk busy.
    cap = (n_idx + 4 * n_chunks - 1) // (4 * n_chunks)
    cap = max(16, min(PIECE_MAX, cap))
    n_pieces = 0
    for row in range(n_rows):
        n_pieces += (row_ptr[row + 1] - row_ptr[row] + cap - 1) // cap
    piece_start = np.empty(n_pieces, dtype=np.int64)
    piece_len = np.empty(n_pieces, dtype=np.int64)
    piece_row = np.empty(n_pieces, dtype=np.int64)
    cost = np.empty(n_pieces)
    fast_loss = loss != MSE or activations[n_layers - 1] == LINEAR
    p = 0
    for row in range(n_rows):
        start = row_ptr[row]
        run = row_ptr[row + 1] - start
        if run == 0:
            continue
        parts = (run + cap - 1) // cap
        l = layer_of_row[row]
        downstream = 0
        piecewise = True
        for k in range(l + 1, n_layers + 1):
            downstream += layer_sizes[k] * layer_sizes[k - 1]
            if k < n_layers and not _is_piecewise_linear(activations[k - 1]):
                piecewise = False
        per_column = 12 * n_out + 24 if (piecewise and fast_loss) else downstream + 4 * n_out + 8
        passing = m
        if l < n_layers:
            passing = 0
            code = activations[l - 1]
            for e in range(m):
                if has_dropout and dropout_scale[row, e] == 0.0:
                    continue
                if code != RELU or Z[row, e] > 0.0:
                    passing += 1
        for t in range(parts):
            a = start + (run * t) // parts
            b = start + (run * (t + 1)) // parts
            piece_start[p] = a
            piece_len[p] = b - a
            piece_row[p] = row
            cost[p] = passing * (downstream + (b - a) * n_pts * per_column) + m * (b - a) * n_pts * 4
            p += 1

    chunk_of = np.empty(n_pieces, dtype=np.int64)
    load = np.zeros(n_chunks)
    by_cost = _order_by_decreasing(cost)
    for t in range(n_pieces):
        piece = by_cost[t]
        best = 0
        for c in range(1, n_chunks):
            if load[c] < load[best]:
                best = c
        chunk_of[piece] = best
        load[best] += cost[piece]
    chunk_ptr = np.zeros(n_chunks + 1, dtype=np.int64)
    for piece in range(n_pieces):
        chunk_ptr[chunk_of[piece] + 1] += 1
    for c in range(n_chunks):
        chunk_ptr[c + 1] += chunk_ptr[c]
    fill = chunk_ptr[:n_chunks].copy()
    chunk_pieces = np.empty(n_pieces, dtype=np.int64)
    for piece in range(n_pieces):
        c = chunk_of[piece]
        chunk_pieces[fill[c]] = piece
        fill[c] += 1
    return order, col_of, layer_of_row, piece_start, piece_len, piece_row, chunk_ptr, chunk_pieces, cap


# --------------------------------------------------------------------------- #
# Loss changes
# --------------------------------------------------------------------------- #
@njit(cache=True)
def _loss_change(loss, out_code, n_out, zl, e, Z, A, P, lse, Y, DZ, b, U):
    """Change of example e's loss when the output pre-activations move by DZ[:, b].

    Exact identities evaluated without cancellation: softmax cross-entropy
    ``log1p(sum_c p_c expm1(dz_c)) - y . dz`` (log-sum-exp of the shifted logits
    beyond |dz| = 1); binary cross-entropy, from the logits, ``log1p(s expm1(dz))
    - y dz`` per output; MSE ``da (da + 2 (a - y)) / 2`` per output.
    """
    if loss == SOFTMAX_CROSS_ENTROPY:
        biggest = 0.0
        dot = 0.0
        for c in range(n_out):
            u = DZ[c, b]
            U[c] = u
            biggest = max(biggest, abs(u))
            dot += Y[c, e] * u
        if biggest <= 1.0:
            s = 0.0
            for c in range(n_out):
                s += P[c, e] * math.expm1(U[c])
            return math.log1p(s) - dot
        shift = Z[zl, e] + U[0]
        for c in range(1, n_out):
            shift = max(shift, Z[zl + c, e] + U[c])
        s = 0.0
        for c in range(n_out):
            s += math.exp(Z[zl + c, e] + U[c] - shift)
        return (shift + math.log(s) - lse[e]) - dot
    total = 0.0
    if loss == BINARY_CROSS_ENTROPY:
        for c in range(n_out):
            d = DZ[c, b]
            if abs(d) <= 1.0:
                change = math.log1p(P[c, e] * math.expm1(d))
            else:
                z = Z[zl + c, e]
                change = _softplus(z + d) - _softplus(z)
            total += change - Y[c, e] * d
        return total
    for c in range(n_out):  # MSE
        da = _activation_change(out_code, Z[zl + c, e], DZ[c, b])
        total += 0.5 * da * (da + 2.0 * (A[zl + c, e] - Y[c, e]))
    return total


@njit(cache=True)
def _exact_columns(
    layer_sizes, activations, loss, theta, dropout_scale, w_off, z_row, Z, A, P, lse, Y,
    l, i, e, n_cols, TB, OUT, KB, KF, DZ, DA, U,
):
    """Loss change of example e for each column b: A_l[i, e] moved by TB[b] (or,
    for l = L, Z_L[i, e] moved by TB[b]). The change is pushed through the
    remaining layers as one matrix product per layer over all columns; KB[b]
    is set when a ReLU / leaky-ReLU pre-activation downstream changes sign."""
    n_layers = layer_sizes.size - 1
    n_out = layer_sizes[n_layers]
    has_dropout = dropout_scale.shape[0] > 0
    for b in range(n_cols):
        KB[b] = 0
    if l == n_layers:
        for c in range(n_out):
            for b in range(n_cols):
                DZ[c, b] = 0.0
        for b in range(n_cols):
            DZ[i, b] = TB[b]
    else:
        n_next = layer_sizes[l + 1]
        n_here = layer_sizes[l]
        for u in range(n_next):
            w = theta[w_off[l + 1] + u * n_here + i]
            for b in range(n_cols):
                DZ[u, b] = w * TB[b]
        for k in range(l + 1, n_layers):
            nk = layer_sizes[k]
            code = activations[k - 1]
            kinked = _is_kinked(code)
            for u in range(nk):
                drop = dropout_scale[z_row[k] + u, e] if has_dropout else 1.0
                if drop == 0.0:
                    for b in range(n_cols):
                        DA[u, b] = 0.0
                    continue
                z = Z[z_row[k] + u, e]
                if kinked:
                    positive = z > 0.0
                    for b in range(n_cols):
                        if ((z + DZ[u, b]) > 0.0) != positive:
                            KB[b] = 1
                if code == TANH or code == SIGMOID:
                    _smooth_change_row(code, z, drop, DZ[u], DA[u], n_cols)
                    continue
                for b in range(n_cols):
                    DA[u, b] = drop * _activation_change(code, z, DZ[u, b])
            n_k1 = layer_sizes[k + 1]
            wo = w_off[k + 1]
            for o in range(n_k1):
                for b in range(n_cols):
                    DZ[o, b] = 0.0
                for u in range(nk):
                    w = theta[wo + o * nk + u]
                    if w == 0.0:
                        continue
                    for b in range(n_cols):
                        DZ[o, b] += w * DA[u, b]
    zl = z_row[n_layers]
    out_code = activations[n_layers - 1]
    if loss == MSE and _is_kinked(out_code):
        for c in range(n_out):
            z = Z[zl + c, e]
            for b in range(n_cols):
                if ((z + DZ[c, b]) > 0.0) != (z > 0.0):
                    KB[b] = 1
    if loss != MSE or out_code == LINEAR:
        # The fast path's formulas, vectorised over the columns; columns whose
        # output moved beyond POLY_LIMIT are then redone one by one.
        for b in range(n_cols):
            OUT[b] = 0.0
            KF[b] = 0
        for c in range(n_out):
            for b in range(n_cols):
                KF[b] |= not (abs(DZ[c, b]) <= POLY_LIMIT)
        if loss == SOFTMAX_CROSS_ENTROPY:
            dot = TB  # free now: TB was consumed by the first layer
            for b in range(n_cols):
                dot[b] = 0.0
            for c in range(n_out):
                pc = P[c, e]
                yc = Y[c, e]
                for b in range(n_cols):
                    OUT[b] += pc * _expm1_small(DZ[c, b])
                if yc != 0.0:
                    for b in range(n_cols):
                        dot[b] += yc * DZ[c, b]
            for b in range(n_cols):
                OUT[b] = _log1p_small(OUT[b]) - dot[b]
        elif loss == BINARY_CROSS_ENTROPY:
            for c in range(n_out):
                sc = P[c, e]
                yc = Y[c, e]
                for b in range(n_cols):
                    x = DZ[c, b]
                    OUT[b] += _log1p_small(sc * _expm1_small(x)) - yc * x
        else:
            for c in range(n_out):
                rc = A[zl + c, e] - Y[c, e]
                for b in range(n_cols):
                    x = DZ[c, b]
                    OUT[b] += 0.5 * x * (x + 2.0 * rc)
        for b in range(n_cols):
            if KF[b] and loss != MSE:
                OUT[b] = _loss_change(loss, out_code, n_out, zl, e, Z, A, P, lse, Y, DZ, b, U)
        return
    for b in range(n_cols):
        OUT[b] = _loss_change(loss, out_code, n_out, zl, e, Z, A, P, lse, Y, DZ, b, U)


# --------------------------------------------------------------------------- #
# One piece: some components of one row
# --------------------------------------------------------------------------- #
@njit(cache=True)
def _process_piece(
    layer_sizes, activations, loss, l2, theta, Y, dropout_scale, indices, points,
    w_off, b_off, z_row, at_off, Z, A, P, lse, AT,
    order, col_of, start, n_comp, l, i,
    deltas, kinks, status,
    DLT, XA, T, S, YD, CONTRIB, ACC, FLIP, EXQ, JC, KINK, TB, OUT, KB, KF, DZ, DA, WA, WB, V, U,
):
    n_layers = layer_sizes.size - 1
    n_out = layer_sizes[n_layers]
    m = Y.shape[1]
    n_pts = points.shape[1]
    n_in = layer_sizes[l - 1]
    has_dropout = dropout_scale.shape[0] > 0
    is_output = l == n_layers
    code = LINEAR if is_output else activations[l - 1]
    kinked = _is_kinked(code)
    piecewise_here = _is_piecewise_linear(code)
    out_code = activations[n_layers - 1]
    exp_loss = loss != MSE
    fast = loss != MSE or out_code == LINEAR
    for k in range(l + 1, n_layers):
        if not _is_piecewise_linear(activations[k - 1]):
            fast = False
    zl = z_row[n_layers]

    n_q = n_comp * n_pts
    for a in range(n_comp):
        r = order[start + a]
        JC[a] = col_of[r]
        KINK[a] = 0
        k = indices[r]
        for p in range(n_pts):
            q = a * n_pts + p
            DLT[q] = points[r, p] - theta[k]
            ACC[q] = 0.0
            FLIP[q] = 0

    at_base = at_off[l]
    for e in range(m):
        drop = 1.0
        if has_dropout and not is_output:
            drop = dropout_scale[z_row[l] + i, e]
            if drop == 0.0:
                continue  # a dropped unit: nothing downstream sees the change
        z = Z[z_row[l] + i, e]
        # change of Z_l[i, e] for every component and point
        row_at = at_base + e * n_in
        for a in range(n_comp):
            j = JC[a]
            x = 1.0 if j == n_in else AT[row_at + j]
            for p in range(n_pts):
                q = a * n_pts + p
                XA[q] = DLT[q] * x
        # change of A_l[i, e]
        n_flip = 0
        factor = 0.0
        if piecewise_here:
            factor = drop * _slope(code, z)
            if kinked:
                positive = z > 0.0
                for q in range(n_q):
                    flipped = ((z + XA[q]) > 0.0) != positive
                    FLIP[q] = flipped
                    n_flip += flipped
            if factor == 0.0 and n_flip == 0:
                continue  # stays on the flat side of a ReLU: exactly no change
            for q in range(n_q):
                T[q] = factor * XA[q]
        else:  # tanh, sigmoid
            _smooth_change_row(code, z, drop, XA, T, n_q)

        n_exact = 0
        if fast and (factor != 0.0 or not piecewise_here):
            # Direction v of the logits' move per unit change of A_l[i, e], and
            # the margin within which no ReLU downstream changes side.
            for c in range(n_out):
                V[c] = 0.0
            margin = np.inf
            if is_output:
                V[i] = 1.0
            else:
                n_next = layer_sizes[l + 1]
                n_here = layer_sizes[l]
                for u in range(n_next):
                    WA[u] = theta[w_off[l + 1] + u * n_here + i]
                for k in range(l + 1, n_layers):
                    nk = layer_sizes[k]
                    code_k = activations[k - 1]
                    kinked_k = _is_kinked(code_k)
                    for u in range(nk):
                        drop_k = dropout_scale[z_row[k] + u, e] if has_dropout else 1.0
                        zk = Z[z_row[k] + u, e]
                        wu = WA[u]
                        if kinked_k and drop_k != 0.0 and wu != 0.0:
                            margin = min(margin, 0.5 * abs(zk) / abs(wu))
                        WB[u] = _slope(code_k, zk) * drop_k * wu
                    nk1 = layer_sizes[k + 1]
                    wo = w_off[k + 1]
                    for o in range(nk1):
                        s = 0.0
                        for u in range(nk):
                            s += theta[wo + o * nk + u] * WB[u]
                        WA[o] = s
                for c in range(n_out):
                    V[c] = WA[c]
            limit = margin
            if exp_loss:
                biggest = 0.0
                for c in range(n_out):
                    biggest = max(biggest, abs(V[c]))
                if biggest > 0.0:
                    limit = min(limit, POLY_LIMIT / biggest)

            if loss == SOFTMAX_CROSS_ENTROPY:
                for q in range(n_q):
                    S[q] = 0.0
                    YD[q] = 0.0
                for c in range(n_out):
                    vc = V[c]
                    if vc == 0.0:
                        continue
                    pc = P[c, e]
                    yc = Y[c, e]
                    for q in range(n_q):
                        x = vc * T[q]
                        S[q] += pc * _expm1_small(x)
                    if yc != 0.0:
                        for q in range(n_q):
                            YD[q] += yc * (vc * T[q])
                for q in range(n_q):
                    s = S[q]
                    CONTRIB[q] = _log1p_small(s) - YD[q]
            elif loss == BINARY_CROSS_ENTROPY:
                for q in range(n_q):
                    CONTRIB[q] = 0.0
                for c in range(n_out):
                    vc = V[c]
                    if vc == 0.0:
                        continue
                    sc = P[c, e]
                    yc = Y[c, e]
                    for q in range(n_q):
                        x = vc * T[q]
                        s = sc * _expm1_small(x)
                        CONTRIB[q] += _log1p_small(s) - yc * x
            else:  # MSE on a linear output
                for q in range(n_q):
                    CONTRIB[q] = 0.0
                for c in range(n_out):
                    vc = V[c]
                    if vc == 0.0:
                        continue
                    rc = A[zl + c, e] - Y[c, e]
                    for q in range(n_q):
                        x = vc * T[q]
                        CONTRIB[q] += 0.5 * x * (x + 2.0 * rc)
            n_far = 0
            for q in range(n_q):
                n_far += not (abs(T[q]) <= limit)
            if n_far > 0 or n_flip > 0:
                for q in range(n_q):
                    if FLIP[q] or not (abs(T[q]) <= limit):
                        EXQ[n_exact] = q
                        n_exact += 1
        else:
            for q in range(n_q):
                CONTRIB[q] = 0.0
                if FLIP[q] or T[q] != 0.0:
                    EXQ[n_exact] = q
                    n_exact += 1

        # Components that cross a kink here, leave the margin, or whose
        # downstream is not piecewise linear: the exact path, in blocks.
        done = 0
        while done < n_exact:
            n_cols = min(EXACT_BLOCK, n_exact - done)
            for b in range(n_cols):
                q = EXQ[done + b]
                if FLIP[q]:
                    TB[b] = drop * _activation_change(code, z, XA[q])
                else:
                    TB[b] = T[q]
            _exact_columns(
                layer_sizes, activations, loss, theta, dropout_scale, w_off, z_row, Z, A, P, lse, Y,
                l, i, e, n_cols, TB, OUT, KB, KF, DZ, DA, U,
            )
            for b in range(n_cols):
                q = EXQ[done + b]
                CONTRIB[q] = OUT[b]
                if KB[b] or FLIP[q]:
                    KINK[q // n_pts] = 1
            done += n_cols
        if n_flip > 0:
            for q in range(n_q):
                FLIP[q] = 0
        for q in range(n_q):
            ACC[q] += CONTRIB[q]

    penalty = l2 / (2.0 * m)
    for a in range(n_comp):
        r = order[start + a]
        k = indices[r]
        is_weight = JC[a] < n_in
        bad = False
        for p in range(n_pts):
            q = a * n_pts + p
            d = ACC[q] / m
            if is_weight and l2 != 0.0:
                d += penalty * (DLT[q] * (points[r, p] + theta[k]))
            deltas[r, p] = d
            if not np.isfinite(d):
                bad = True
        kinks[r] = KINK[a]
        status[r] = STATUS_NON_FINITE if bad else STATUS_OK


# --------------------------------------------------------------------------- #
# The kernel
# --------------------------------------------------------------------------- #
@njit(cache=True, parallel=True)
def _run_pieces(
    layer_sizes, activations, loss, l2, theta, Y, dropout_scale, indices, points,
    w_off, b_off, z_row, at_off, Z, A, P, lse, AT,
    order, col_of, layer_of_row, piece_start, piece_len, piece_row, chunk_ptr, chunk_pieces,
    deltas, kinks, status,
    QF, FLIP, EXQ, JC, KINK, BF, KB, DZA, WAB, VU,
):
    """The only parallel loop: chunk c runs its pieces with its own scratch.

    Kept apart from the serial set-up so that Numba turns nothing else (array
    allocations) into parallel loops: each one would cost compile time."""
    n_chunks = chunk_ptr.size - 1
    for c in prange(n_chunks):
        q_scratch = QF[c]
        for t in range(chunk_ptr[c], chunk_ptr[c + 1]):
            piece = chunk_pieces[t]
            row = piece_row[piece]
            l = layer_of_row[row]
            _process_piece(
                layer_sizes, activations, loss, l2, theta, Y, dropout_scale, indices, points,
                w_off, b_off, z_row, at_off, Z, A, P, lse, AT,
                order, col_of, piece_start[piece], piece_len[piece], l, row - z_row[l],
                deltas, kinks, status,
                q_scratch[0], q_scratch[1], q_scratch[2], q_scratch[3], q_scratch[4], q_scratch[5],
                q_scratch[6], FLIP[c], EXQ[c], JC[c], KINK[c], BF[c, 0], BF[c, 1], KB[c, 0], KB[c, 1],
                DZA[c, 0], DZA[c, 1], WAB[c, 0], WAB[c, 1], VU[c, 0], VU[c, 1],
            )


@njit(cache=True, calls_parallel=True)
def _perturbed_cost_differences(
    layer_sizes, activations, loss, l2, theta, X, Y, dropout_scale, indices, points, n_chunks
):
    n_layers = layer_sizes.size - 1
    m = X.shape[1]
    n_idx = indices.size
    n_pts = points.shape[1]
    n_out = layer_sizes[n_layers]
    deltas = np.zeros((n_idx, n_pts))
    kinks = np.zeros(n_idx, dtype=np.uint8)
    status = np.zeros(n_idx, dtype=np.uint8)
    if n_idx == 0:
        return deltas, kinks, status

    w_off, b_off, z_row, at_off = _tables(layer_sizes, m)
    Z, A, P, lse, AT = _forward_base(
        layer_sizes, activations, loss, theta, X, Y, dropout_scale, w_off, b_off, z_row, at_off
    )
    n_chunks = max(1, n_chunks)
    order, col_of, layer_of_row, piece_start, piece_len, piece_row, chunk_ptr, chunk_pieces, cap = _plan(
        layer_sizes, activations, loss, indices, n_pts, n_chunks, w_off, b_off, z_row, Z, dropout_scale
    )

    n_max = 1
    for l in range(1, n_layers + 1):
        n_max = max(n_max, layer_sizes[l])
    q_cap = cap * n_pts
    # Per-chunk scratch, allocated before the parallel loop: per component and
    # point, DLT XA T S YD CONTRIB ACC; exact-path blocks; direction buffers.
    QF = np.empty((n_chunks, 7, q_cap))
    FLIP = np.zeros((n_chunks, q_cap), dtype=np.uint8)
    EXQ = np.empty((n_chunks, q_cap), dtype=np.int64)
    JC = np.empty((n_chunks, cap), dtype=np.int64)
    KINK = np.empty((n_chunks, cap), dtype=np.uint8)
    BF = np.empty((n_chunks, 2, EXACT_BLOCK))
    KB = np.empty((n_chunks, 2, EXACT_BLOCK), dtype=np.uint8)
    DZA = np.empty((n_chunks, 2, n_max, EXACT_BLOCK))
    WAB = np.empty((n_chunks, 2, n_max))
    VU = np.empty((n_chunks, 2, n_out))
    _run_pieces(
        layer_sizes, activations, loss, l2, theta, Y, dropout_scale, indices, points,
        w_off, b_off, z_row, at_off, Z, A, P, lse, AT,
        order, col_of, layer_of_row, piece_start, piece_len, piece_row, chunk_ptr, chunk_pieces,
        deltas, kinks, status,
        QF, FLIP, EXQ, JC, KINK, BF, KB, DZA, WAB, VU,
    )
    return deltas, kinks, status


# --------------------------------------------------------------------------- #
# Python entry point
# --------------------------------------------------------------------------- #
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
    """Cost differences of a dense network at perturbed parameter values.

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
    indices : numpy.ndarray
        int64 components to perturb.
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
        uint8 ``(n_idx,)``: 0 ok, 1 a difference is not finite.

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
    indices = _as_int_vector(indices, "indices")
    points = _as_float_matrix(points, "points")
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
    if points.shape[0] != indices.size or points.shape[1] < 1:
        raise ValueError(f"points must be ({indices.size}, n_pts) with n_pts >= 1, got {points.shape}.")
    if indices.size and (indices.min() < 0 or indices.max() >= n_params):
        raise ValueError(f"indices must lie in [0, {n_params}), got values from {indices.min()} to {indices.max()}.")
    if n_chunks is None:
        n_chunks = numba.get_num_threads()
    return _perturbed_cost_differences(
        layer_sizes, activations, np.int64(loss), float(l2), theta, X, Y, dropout_scale,
        indices, points, np.int64(n_chunks),
    )


def _example_arguments() -> tuple:
    """Arguments of the kernel's one specialisation, for cache look-ups."""
    return (
        np.zeros(2, dtype=np.int64), np.zeros(1, dtype=np.int64), np.int64(0), 0.0,
        np.zeros(1), np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((0, 1)),
        np.zeros(1, dtype=np.int64), np.zeros((1, 1)), np.int64(1),
    )


def kernel_is_cached() -> bool:
    """Whether the kernel is compiled in this process or on disk for this machine.

    False means the next call compiles it (seconds, once); a failure to tell is
    reported as False.
    """
    kernel = _perturbed_cost_differences
    if kernel.signatures:
        return True
    try:
        signature = tuple(numba.typeof(arg) for arg in _example_arguments())
        cache = kernel._cache
        key = cache._index_key(signature, kernel.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - Numba internals: any failure means "don't know"
        return False
