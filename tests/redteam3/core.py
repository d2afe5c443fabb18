"""Infrastructure of the third red-team suite: complex-safe primitives,
independent verification (complex step, one-sided complex step at kinks,
a real 5-point difference as a cross-check), the Case record and the runner.

Nothing here uses fastgrad except ``run_case`` (public API only).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np

H_CS = 1e-30  # complex step (imaginary part of a component)


# ---------------------------------------------------------------- primitives
# Every primitive works on float32/float64 and on complex128.  On complex input
# a branch is chosen on the real part; an exact tie of the real part is broken
# by the sign of the imaginary part, so theta + i h e_k gives the RIGHT
# derivative and -(Im J(theta - i h e_k)) / h the LEFT one (one-sided complex
# step).  ``autodiff=True`` instead mimics a back-prop convention (ties go to
# the "else" branch whatever the imaginary part: relu'(0) = 0, |x|'(0) = -1,
# argmax takes the first maximum).

_MODE = {"autodiff": False}


def _pos(z):
    """Mask 'z > 0' (tie broken by imag unless autodiff convention)."""
    if np.iscomplexobj(z):
        r = z.real
        if _MODE["autodiff"]:
            return r > 0
        return (r > 0) | ((r == 0) & (z.imag > 0))
    return z > 0


def relu(z):
    return np.where(_pos(z), z, 0 * z)


def absx(z):
    if np.iscomplexobj(z) and _MODE["autodiff"]:
        # numpy's sign convention: sign(0) = 0 -> derivative 0 at 0
        r = z.real
        return np.where(r > 0, z, np.where(r < 0, -z, z.real + 0j))
    return np.where(_pos(z), z, -z)


def maxx(a, b):
    return np.where(_pos(a - b), a, b)


def minx(a, b):
    return np.where(_pos(b - a), a, b)


def clipx(z, lo, hi):
    return minx(maxx(z, lo), hi)


def sigmoid(z):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        r = z.real if np.iscomplexobj(z) else z
        e = np.exp(-absx(z)) if np.iscomplexobj(z) else np.exp(-np.abs(z))
        return np.where(r >= 0, 1 / (1 + e), e / (1 + e))


def tangent_bug(value_fn, wrong_slope_fn):
    """An elementwise function whose value is right but whose derivative (as
    seen by the complex step, i.e. by a forward/back-prop) is wrong_slope_fn."""
    def g(z):
        if np.iscomplexobj(z):
            r = z.real
            return value_fn(r) + 1j * z.imag * wrong_slope_fn(r)
        return value_fn(z)
    return g


def softplus(z):
    return maxx(z, 0 * z) + np.log1p(np.exp(-absx(z)))


def logsumexp(z, axis=-1):
    r = z.real if np.iscomplexobj(z) else z
    m = np.max(r, axis=axis, keepdims=True)
    return (m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))).squeeze(axis)


def softmax(z, axis=-1):
    r = z.real if np.iscomplexobj(z) else z
    e = np.exp(z - np.max(r, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def cholesky(A):
    """Complex-symmetric-safe Cholesky (no conjugation), for complex step."""
    if not np.iscomplexobj(A):
        return np.linalg.cholesky(A)
    n = A.shape[0]
    L = np.zeros_like(A)
    for j in range(n):
        s = A[j, j] - np.sum(L[j, :j] * L[j, :j])
        L[j, j] = np.sqrt(s)
        for i in range(j + 1, n):
            L[i, j] = (A[i, j] - np.sum(L[i, :j] * L[j, :j])) / L[j, j]
    return L


def tri_solve_lower(L, b):
    if not np.iscomplexobj(L) and not np.iscomplexobj(b):
        import scipy.linalg
        return scipy.linalg.solve_triangular(L, b, lower=True)
    n = L.shape[0]
    x = np.zeros(b.shape, dtype=complex)
    for i in range(n):
        x[i] = (b[i] - L[i, :i] @ x[:i]) / L[i, i]
    return x


def tri_solve_upper(U, b):
    if not np.iscomplexobj(U) and not np.iscomplexobj(b):
        import scipy.linalg
        return scipy.linalg.solve_triangular(U, b, lower=False)
    n = U.shape[0]
    x = np.zeros(b.shape, dtype=complex)
    for i in range(n - 1, -1, -1):
        x[i] = (b[i] - U[i, i + 1:] @ x[i + 1:]) / U[i, i]
    return x


def interp(x, xp, fp):
    """np.interp, complex-safe in x (knots xp real, fp may be complex)."""
    r = x.real if np.iscomplexobj(x) else x
    # segment index: knot tie broken by imag (right derivative when imag > 0)
    idx = np.searchsorted(xp, r, side="right") - 1
    if np.iscomplexobj(x) and not _MODE["autodiff"]:
        on = (idx >= 0) & (idx < len(xp)) & (xp[np.clip(idx, 0, len(xp) - 1)] == r) & (x.imag < 0)
        idx = np.where(on, idx - 1, idx)
    idx = np.clip(idx, 0, len(xp) - 2)
    x0, x1 = xp[idx], xp[idx + 1]
    t = (x - x0) / (x1 - x0)
    return fp[idx] * (1 - t) + fp[idx + 1] * t


# ---------------------------------------------------------------- layout
class Slicer:
    """Views of theta by block name, complex-safe (fastgrad.unpack casts to float64)."""

    def __init__(self, params: dict):
        self.names = list(params)
        self.shapes = [np.shape(params[n]) for n in self.names]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)

    def __call__(self, theta):
        return {n: theta[self.offsets[i]:self.offsets[i + 1]].reshape(self.shapes[i])
                for i, n in enumerate(self.names)}

    def flat(self, d):
        return np.concatenate([np.ravel(d[n]) for n in self.names])

    def split(self, v):
        return {n: np.array(v[self.offsets[i]:self.offsets[i + 1]]).reshape(self.shapes[i])
                for i, n in enumerate(self.names)}

    def block_of(self, k):
        return self.names[int(np.searchsorted(self.offsets, k, side="right") - 1)]


# ---------------------------------------------------------------- verification
def cs_onesided(f, theta, args=(), h=H_CS, autodiff=False, vector=False):
    """(right, left) derivatives of f by one-sided complex step (exact to rounding).

    vector=True: f returns a vector (per-example terms); returns arrays (n, m)."""
    theta = np.asarray(theta, dtype=np.float64)
    n = theta.size
    R, Lft = [], []
    old = _MODE["autodiff"]
    _MODE["autodiff"] = autodiff
    try:
        for k in range(n):
            t = theta.astype(complex)
            t[k] += 1j * h
            R.append(np.imag(f(t, *args)) / h)
            t[k] = theta[k] - 1j * h
            Lft.append(-np.imag(f(t, *args)) / h)
    finally:
        _MODE["autodiff"] = old
    return np.array(R), np.array(Lft)


def cs_grad(f, theta, args=(), autodiff=False):
    return cs_onesided(f, theta, args, autodiff=autodiff)[0]


def fd5(f, theta, args=(), rel=1e-3, k_list=None):
    """Real 4th-order central difference, for cross-checking the complex step."""
    theta = np.asarray(theta, dtype=np.float64)
    ks = range(theta.size) if k_list is None else k_list
    out = np.full(theta.size, np.nan)
    for k in ks:
        h = rel * (abs(theta[k]) if theta[k] != 0 else 1.0)
        v = []
        for s in (-2, -1, 1, 2):
            t = theta.copy()
            t[k] += s * h
            v.append(float(np.real(f(t, *args))))
        out[k] = (v[0] - 8 * v[1] + 8 * v[2] - v[3]) / (12 * h)
    return out


class LabelError(AssertionError):
    pass


def verify_smooth(f, grad, theta, args=(), rtol=1e-9, fd_check=True, fd_rel=1e-3, fd_tol=1e-6, atol=0.0):
    """A correct gradient of a smooth cost: equal to the complex step, and the
    complex step agrees with a real high-order difference (cross-check)."""
    g = np.asarray(grad, dtype=np.float64)
    d, dl = cs_onesided(f, theta, args)
    scale = np.max(np.abs(d)) if d.size else 1.0
    if not np.allclose(d, dl, rtol=1e-12, atol=1e-14 * scale):
        raise LabelError("cost is not smooth at theta (right != left derivative)")
    err = np.abs(g - d)
    if np.any(err > rtol * np.abs(d) + 1e-13 * scale + atol):
        k = int(np.argmax(err / (np.abs(d) + 1e-300)))
        raise LabelError(f"gradient != complex step at {k}: {g[k]} vs {d[k]}")
    if fd_check:
        fd = fd5(f, theta, args, rel=fd_rel)
        if np.linalg.norm(fd - d) > fd_tol * np.linalg.norm(d) + 1e-300:
            raise LabelError(f"complex step disagrees with real 5-point difference: "
                             f"{np.linalg.norm(fd - d) / np.linalg.norm(d):.2e}")
    return d


def verify_kink(f, grad, theta, args=(), per_example=None, rtol=1e-9):
    """A valid derivative at kinks: each component between its one-sided
    derivatives (generic), or within the sum of each example's one-sided range
    (per_example='mean'/'sum', f returning per-example terms)."""
    g = np.asarray(grad, dtype=np.float64)
    if per_example is None:
        r, l = cs_onesided(f, theta, args)
        lo, hi = np.minimum(r, l), np.maximum(r, l)
    else:
        r, l = cs_onesided(f, theta, args, vector=True)
        lo = np.minimum(r, l).sum(axis=1)
        hi = np.maximum(r, l).sum(axis=1)
        if per_example == "mean":
            m = r.shape[1]
            lo, hi = lo / m, hi / m
    scale = max(np.max(np.abs(lo)), np.max(np.abs(hi)), 1e-300)
    tol = rtol * np.maximum(np.abs(lo), np.abs(hi)) + 1e-13 * scale
    bad = (g < lo - tol) | (g > hi + tol)
    if np.any(bad):
        k = int(np.flatnonzero(bad)[0])
        raise LabelError(f"component {k}: {g[k]} outside [{lo[k]}, {hi[k]}]")
    return lo, hi


def changed_blocks(slicer: Slicer, g_ok, g_bug):
    g_ok = slicer.flat(g_ok) if isinstance(g_ok, dict) else np.ravel(g_ok)
    g_bug = slicer.flat(g_bug) if isinstance(g_bug, dict) else np.ravel(g_bug)
    a, b = np.asarray(g_ok, dtype=np.float64), np.asarray(g_bug, dtype=np.float64)
    diff = np.zeros(a.size, dtype=bool)
    for i, n in enumerate(slicer.names):      # changed beyond rounding, block by block
        sl = slice(slicer.offsets[i], slicer.offsets[i + 1])
        sc = np.max(np.abs(a[sl])) if a[sl].size else 0.0
        diff[sl] = np.abs(a[sl] - b[sl]) > 1e-11 * sc
    return tuple(sorted({slicer.block_of(k) for k in np.flatnonzero(diff)}))


# ---------------------------------------------------------------- cases
@dataclasses.dataclass
class Case:
    name: str
    kind: str                      # "correct" | "bug"
    cost: Callable
    grad: Any                      # dict of blocks (with layout) or vector
    theta: np.ndarray
    kwargs: dict
    expected: tuple | None = None  # failing blocks of a bug (sorted)
    note: str = ""
    honest_inconclusive: bool = False   # a bug finite differences cannot see (flat / overflow)
    runner: Callable | None = None      # custom runner returning a verdict-like object


@dataclasses.dataclass
class Outcome:
    verdict: str
    failing: tuple
    reasons: tuple
    difference: float
    tolerance: float
    seconds: float
    status: str
    text: str = ""


def classify(case: Case, verdict, failing, reasons) -> str:
    if case.kind == "correct":
        if verdict == "pass":
            return "ok"
        if verdict == "inconclusive" and reasons:
            return "inc"
        return "VIOLATION"
    if verdict == "fail":
        if case.expected is None or tuple(sorted(failing)) == tuple(sorted(case.expected)):
            return "ok"
        return "VIOLATION"
    if verdict == "inconclusive" and reasons:
        return "inc"
    return "VIOLATION"


def run_case(case: Case) -> Outcome:
    t0 = time.perf_counter()
    if case.runner is not None:
        verdict, failing, reasons, diff, tol, text = case.runner(case)
    else:
        import fastgrad
        kw = dict(case.kwargs)
        kw.setdefault("progress", False)
        rep = fastgrad.gradcheck(case.cost, case.grad, case.theta, **kw)
        verdict, failing, reasons = rep.verdict, tuple(rep.failing_blocks), tuple(rep.reasons)
        diff, tol, text = rep.difference, rep.tolerance, str(rep)
    dt = time.perf_counter() - t0
    return Outcome(verdict, failing, reasons, diff, tol, dt,
                   classify(case, verdict, failing, reasons), text)
