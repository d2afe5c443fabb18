"""Red-team cases for fastgrad.gradcheck / DenseNet.gradcheck.

Every case carries its own independent evidence (``verify``): the complex-step
derivative (step 1e-200, exact to rounding, on a complex-safe twin of the cost),
mpmath at 50 digits, or closed-form subgradient ranges at kinks.  A "correct"
gradient must agree with that reference to ~1e-11 per block; a "bug" must move
every corrupted block by at least 3x the pass threshold (and leave the other
blocks exact).

kind:
  correct  -- must never FAIL (pass; inconclusive only with reasons)
  bug      -- must FAIL and name exactly ``bug_blocks``
  nopass   -- a wrong gradient that cannot be resolved numerically at the
              requested precision: must not PASS below its stated tolerance
  info     -- misuse / informational; outcome recorded, not judged
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np

import fastgrad

H_CS = 1e-200


# ----------------------------------------------------------------- helpers
def cs_grad(f, theta, *args):
    """Complex-step gradient of a complex-safe f (exact to rounding)."""
    theta = np.asarray(theta, dtype=float)
    g = np.empty_like(theta)
    for k in range(theta.size):
        t = theta.astype(complex)
        t[k] += 1j * H_CS
        g[k] = np.imag(f(t, *args)) / H_CS
    return g


def blockwise_rel(a, b, layout):
    """{block: ||a-b|| / (||a|| + ||b||)} (0 when both are zero)."""
    out = {}
    names = _block_slices(layout, a.size)
    for name, sl in names.items():
        x, y = a[sl], b[sl]
        den = np.linalg.norm(x) + np.linalg.norm(y)
        out[name] = 0.0 if den == 0 else float(np.linalg.norm(x - y) / den)
    return out


def _block_slices(layout, n):
    if layout is None:
        return {"theta": slice(0, n)}
    out, start = {}, 0
    for name, shape in zip(layout.names, layout.shapes):
        size = int(np.prod(shape)) if len(shape) else 1
        out[name] = slice(start, start + size)
        start += size
    return out


def as_vec(grad, layout):
    if isinstance(grad, dict):
        return fastgrad.pack(grad, layout=layout)
    return np.asarray(grad, dtype=float).ravel()


@dataclass
class Case:
    name: str
    kind: str                      # correct | bug | nopass | info
    cost: object = None
    theta: object = None
    grad: object = None
    layout: object = None
    kwargs: dict = field(default_factory=dict)
    bug_blocks: frozenset = frozenset()
    ref: object = None             # independent reference gradient (vector)
    evidence: str = ""             # how ref was obtained
    verify_fn: object = None       # optional custom verifier -> (ok, note)
    dense: object = None           # (net, params, X, Y, grads) for DenseNet cases
    note: str = ""

    def threshold(self):
        return self.kwargs.get("threshold", 1e-7)

    def verify(self):
        """Independent evidence that the case is labelled right: (ok, note)."""
        if self.verify_fn is not None:
            return self.verify_fn(self)
        if self.ref is None:
            return True, self.evidence
        g = as_vec(self.grad, self.layout)
        rel = blockwise_rel(g, self.ref, self.layout)
        worst = max(rel.values())
        if self.kind == "correct":
            return worst <= 1e-10, f"max block rel vs {self.evidence}: {worst:.1e}"
        if self.kind in ("bug", "nopass"):
            bad = {k: v for k, v in rel.items() if k in self.bug_blocks}
            good = {k: v for k, v in rel.items() if k not in self.bug_blocks}
            ok = all(v >= 3 * self.threshold() for v in bad.values()) and all(v <= 1e-10 for v in good.values())
            return ok, (f"corrupted {', '.join(f'{k}={v:.1e}' for k, v in bad.items())}; "
                        f"others <= {max(good.values(), default=0):.1e} (vs {self.evidence})")
        return True, self.evidence

    def run(self):
        if self.dense is not None:
            net, params, X, Y, grads = self.dense
            return net.gradcheck(params, X, Y, grads=grads, progress=False, **self.kwargs)
        return fastgrad.gradcheck(self.cost, self.grad, self.theta, layout=self.layout,
                                  progress=False, **self.kwargs)


def perturb(vec, layout, block, rel=None, fn=None):
    """Copy of vec with one block corrupted (relative factor, or fn(block_array))."""
    v = np.array(vec, dtype=float)
    sl = _block_slices(layout, v.size)[block]
    if fn is not None:
        v[sl] = fn(v[sl].copy())
    else:
        v[sl] = v[sl] * (1 + rel)
    return v


CASES: list[Case] = []


def add(case):
    CASES.append(case)
    return case


def pair(name, cost, theta, ref, layout=None, *, bugs=(), kwargs=None, evidence="complex step", correct=True):
    """Register the correct case and the listed bugs [(suffix, block, rel|fn, kind)]."""
    kwargs = kwargs or {}
    if correct:
        add(Case(name + "/correct", "correct", cost, theta, ref.copy(), layout, dict(kwargs), ref=ref, evidence=evidence))
    for suffix, block, how, *kind in bugs:
        k = kind[0] if kind else "bug"
        g = perturb(ref, layout, block, fn=how) if callable(how) else perturb(ref, layout, block, rel=how)
        add(Case(f"{name}/{suffix}", k, cost, theta, g, layout, dict(kwargs), frozenset([block]), ref=ref, evidence=evidence))


def _family_rng(text):
    """One generator per family, seeded by its comment: adding a case never changes another's data."""
    import zlib
    return np.random.default_rng(zlib.crc32(text.encode()))


rng = np.random.default_rng(20240611)

# ================================================================ A. scales
rng = _family_rng('Block "a": huge gradient (~1e3, strong curvature); block "b": tiny gradient (~1e-3).')
# Block "a": huge gradient (~1e3, strong curvature); block "b": tiny gradient (~1e-3).
def cost_scales(t):
    a, b = t[:6], t[6:]
    return np.sum(np.cosh(1e3 * a)) + 1e-3 * np.sum(np.sin(b))

th, lay = fastgrad.pack({"a": rng.uniform(5e-4, 2e-3, 6), "b": rng.uniform(-2, 2, 6)})
ref = cs_grad(cost_scales, th)
pair("scales_cosh1e3_vs_1e-3", cost_scales, th, ref, lay,
     bugs=[("bug_tinyblock_rel1e-4", "b", 1e-4), ("bug_bigblock_rel1e-5", "a", 1e-5),
           ("bug_tinyblock_zeroed", "b", lambda x: 0 * x)])

rng = _family_rng('Huge parameters (1e7..1e8) next to tiny ones (1e-9..1e-8) on a 1e-8 length scale.')
# Huge parameters (1e7..1e8) next to tiny ones (1e-9..1e-8) on a 1e-8 length scale.
def cost_huge_tiny(t):
    h, s = t[:5], t[5:]
    return np.sum(np.log(h)) + 1e-4 * np.sum(np.sqrt(h)) + np.sum(np.log1p((1e8 * s) ** 2))

th, lay = fastgrad.pack({"huge": rng.uniform(1e7, 1e8, 5), "tiny": rng.uniform(-1e-8, 1e-8, 5)})
ref = cs_grad(cost_huge_tiny, th)
pair("huge_and_tiny_params", cost_huge_tiny, th, ref, lay,
     bugs=[("bug_huge_rel1e-5", "huge", 1e-5), ("bug_tiny_rel1e-5", "tiny", 1e-5)])

rng = _family_rng('Zeros, negative zeros and an integer-valued theta (passed as int64).')
# Zeros, negative zeros and an integer-valued theta (passed as int64).
def cost_zeros(t):
    return np.sum(np.exp(t) * np.sin(t + 1.0)) + 0.5 * np.sum(t * t * t)

th = np.array([0.0, -0.0, 0.0, -0.0, 1e-300, -1e-300])
ref = cs_grad(cost_zeros, th)
pair("zeros_and_negzeros", cost_zeros, th, ref, bugs=[("bug_rel1e-5", "theta", 1e-5)])

def cost_intpoly(t):
    return np.sum(t ** 4) / 24.0 - np.sum(t[:-1] * t[1:]) + np.sum(np.cos(t))

th_int = np.array([3, -2, 7, 0, 11, -5], dtype=np.int64)
th_intf = th_int.astype(float)          # integer-valued float64 theta
ref = cs_grad(cost_intpoly, th_intf)
add(Case("integer_valued_theta/correct", "correct", cost_intpoly, th_intf, ref.copy(), ref=ref, evidence="complex step"))
add(Case("integer_valued_theta/bug_one_component_rel1e-3", "bug", cost_intpoly, th_intf,
         ref * np.r_[1, 1, 1 + 1e-3, 1, 1, 1], bug_blocks=frozenset(["theta"]), ref=ref, evidence="complex step"))
add(Case("int64_dtype_theta/info", "info", cost_intpoly, th_int, ref.copy(), ref=ref,
         evidence="int64 theta: a clear TypeError is acceptable", note="bad-input handling"))

rng = _family_rng('Parameters living on a 1e-8 length scale, alone (smooth; J = O(1)).')
# Parameters living on a 1e-8 length scale, alone (smooth; J = O(1)).
def cost_tiny(t):
    return np.sum(np.log1p((1e8 * t) ** 2))
th = rng.uniform(-1e-8, 1e-8, 5)
ref = cs_grad(cost_tiny, th)
assert np.allclose(ref, 2e16 * th / (1 + 1e16 * th ** 2), rtol=1e-14)
pair("tiny_scale_1e-8_alone", cost_tiny, th, ref, bugs=[("bug_rel1e-3", "theta", 1e-3)],
     evidence="complex step and closed form")

rng = _family_rng('Parameters of magnitude 1e7..1e8, alone: J = sum(log theta) ~ 85, gradient 1e-8..1e-7.')
# Parameters of magnitude 1e7..1e8, alone: J = sum(log theta) ~ 85, gradient 1e-8..1e-7.
def cost_huge(t):
    return np.sum(np.log(t))
th = rng.uniform(1e7, 1e8, 5)
ref = cs_grad(cost_huge, th)
assert np.allclose(ref, 1 / th, rtol=1e-15)
pair("huge_1e8_alone", cost_huge, th, ref, bugs=[("bug_rel1e-4", "theta", 1e-4)], evidence="complex step and closed form")

rng = _family_rng('The same smooth cost at moderate magnitudes: the true error of a central difference')
# The same smooth cost at moderate magnitudes: the true error of a central difference
rng = _family_rng('with a step proportional to |theta| is ~1e-10 here, so a 1e-5 bug is far beyond it.')
# with a step proportional to |theta| is ~1e-10 here, so a 1e-5 bug is far beyond it.
for mag in (1e4, 1e5):
    th = mag * rng.uniform(1, 3, 5)
    ref = cs_grad(cost_huge, th)
    pair(f"log_theta_{mag:.0e}", cost_huge, th, ref, bugs=[("bug_rel1e-5", "theta", 1e-5), ("bug_rel1e-4", "theta", 1e-4)],
         evidence="complex step and closed form 1/theta")

# ========================================================= B. cancellation
@numba.njit(cache=False)
def nb_naive_lse(t):
    s = 0.0
    for i in range(t.size):
        s += math.exp(t[i])
    return math.log(s)

def py_lse(t):
    return np.log(np.sum(np.exp(t)))

th = rng.uniform(45, 52, 10)
th[0] = 40.0            # softmax weight ~1e-5
ref = cs_grad(py_lse, th)
def _drop_smallest(g):
    # "forgot the smallest term of the normaliser": relative error p_min everywhere
    p = g.copy(); i = np.argmin(p); p[i] = 0.0
    return p / p.sum()
pair("naive_logsumexp_numba", nb_naive_lse, th, ref, bugs=[("bug_dropped_normaliser_term", "theta", _drop_smallest)])

def cost_1mcos(t):
    return np.sum(1.0 - np.cos(t))
th = rng.uniform(1.5e-3, 5e-3, 8)
ref = cs_grad(cost_1mcos, th)
pair("one_minus_cos_small", cost_1mcos, th, ref,
     bugs=[("bug_small_angle_approx", "theta", lambda g: th.copy())])  # grad = x instead of sin x

def cost_sqrt(t):
    return np.sum(np.sqrt(t))
th = rng.uniform(5e-5, 2e-4, 6)
ref = cs_grad(cost_sqrt, th)
pair("sqrt_small_positive", cost_sqrt, th, ref, bugs=[("bug_rel1e-5", "theta", 1e-5)])
add(Case("sqrt_small_positive_richardson/correct", "correct", cost_sqrt, th, ref.copy(), kwargs={"method": "richardson"},
         ref=ref, evidence="complex step"))

th = rng.uniform(1e-10, 1e-9, 4)
ref = cs_grad(cost_sqrt, th)
pair("sqrt_within_step_of_zero", cost_sqrt, th, ref, bugs=[("bug_rel1e-4", "theta", 1e-4)])

def cost_offset4(t):
    return 1e4 + np.sum(np.sin(t)) + 0.1 * np.sum(t * t)
th = rng.uniform(-2, 2, 6)
ref = cs_grad(cost_offset4, th)
pair("offset_1e4", cost_offset4, th, ref, bugs=[("bug_rel1e-5", "theta", 1e-5)])

def cost_offset12(t):
    return 1e12 + np.sum(np.sin(t))
th = rng.uniform(-2, 2, 6)
ref = cs_grad(cost_offset12, th)
rng = _family_rng('rounding of J is ~1e-4 absolute: a 1e-5 relative bug is below what any difference can resolve')
# rounding of J is ~1e-4 absolute: a 1e-5 relative bug is below what any difference can resolve
pair("offset_1e12", cost_offset12, th, ref, bugs=[("bug_rel1e-5_unresolvable", "theta", 1e-5, "nopass"),
                                                 ("bug_rel1e-1", "theta", 1e-1)])

rng = _family_rng('Separable cost of size ~1e8 plus a 1e-8-scaled block: block "b" is unresolvable.')
# Separable cost of size ~1e8 plus a 1e-8-scaled block: block "b" is unresolvable.
def cost_1e8_vs_1em8(t):
    return 1e8 * np.sum(t[:4] ** 2) + 1e-8 * np.sum(np.sin(t[4:]))
th, lay = fastgrad.pack({"a": rng.uniform(0.5, 1.5, 4), "b": rng.uniform(-1, 1, 4)})
ref = cs_grad(cost_1e8_vs_1em8, th)
pair("scale_1e8_next_to_1e-8", cost_1e8_vs_1em8, th, ref, lay,
     bugs=[("bug_b_rel1e-1_unresolvable", "b", 1e-1, "nopass"), ("bug_b_negated_unresolvable", "b", -2.0, "nopass"),
           ("bug_a_rel1e-5", "a", 1e-5)])

# ============================================================ C. kinks etc.
def cost_abs(t):
    return np.sum(np.where(np.real(t) >= 0, t, -t)) + 0.25 * np.sum(t * t)

th = np.array([3e-7, -2e-7, 1e-9, 0.5, -0.7])
ref = cs_grad(cost_abs, th)          # sign(x) + x/2, differentiable everywhere here
pair("abs_near_kink", cost_abs, th, ref,
     bugs=[("bug_signflip_3e-7", "theta", lambda g: g * np.r_[-1, 1, 1, 1, 1]),
           ("bug_signflip_1e-9", "theta", lambda g: g * np.r_[1, 1, -1, 1, 1])])

def _verify_subgrad(lo, hi, inside):
    def v(case):
        g = as_vec(case.grad, case.layout)
        ok_in = np.all((g >= lo - 1e-15) & (g <= hi + 1e-15))
        return (ok_in == inside), f"subgradient range [{lo}, {hi}] (closed form); grad inside: {ok_in}"
    return v

th0 = np.array([0.0, 0.3, -0.4])
lo = np.array([-1.0, 1.15, -1.2]); hi = np.array([1.0, 1.15, -1.2])
add(Case("abs_at_kink/correct_subgrad_0", "correct", cost_abs, th0, np.array([0.0, 1.15, -1.2]),
         verify_fn=_verify_subgrad(lo, hi, True)))
add(Case("abs_at_kink/correct_subgrad_1", "correct", cost_abs, th0, np.array([1.0, 1.15, -1.2]),
         verify_fn=_verify_subgrad(lo, hi, True)))
add(Case("abs_at_kink/bug_1.5_outside", "bug", cost_abs, th0, np.array([1.5, 1.15, -1.2]),
         bug_blocks=frozenset(["theta"]), verify_fn=_verify_subgrad(lo, hi, False)))

rng = _family_rng('clip: J = sum(clip(x,-1,1)^2); x=1+2e-7 sits on the plateau (derivative 0) within one step of the kink.')
# clip: J = sum(clip(x,-1,1)^2); x=1+2e-7 sits on the plateau (derivative 0) within one step of the kink.
def cost_clip(t):
    r = np.real(t)
    c = np.where(r > 1, 1.0 + 0 * t, np.where(r < -1, -1.0 + 0 * t, t))
    return np.sum(c * c)
th = np.array([1.0 + 2e-7, 0.3, -1.0 - 5e-7, 0.9])
ref = cs_grad(cost_clip, th)   # [0, 0.6, 0, 1.8]
pair("clip_near_kink", cost_clip, th, ref,
     bugs=[("bug_wrong_side_of_kink", "theta", lambda g: g + np.r_[2.0, 0, 0, 0])])

rng = _family_rng('Huber exactly at the transition |r| = delta (C^1: derivative exists).')
# Huber exactly at the transition |r| = delta (C^1: derivative exists).
def cost_huber(t, X, y, d):
    r = X @ t - y
    ar = np.where(np.real(r) >= 0, r, -r)
    return np.mean(np.where(np.real(ar) <= d, 0.5 * r * r, d * (ar - 0.5 * d)))
Xh = rng.integers(-3, 4, size=(12, 3)).astype(float)
wh = np.array([1.0, -2.0, 0.5])
yh = Xh @ wh - np.r_[1.0, -1.0, 0.25, 3.0, -2.0, 1.0, -1.0, 0.0, 0.5, -0.5, 1.0, 2.0]   # residuals, |r|=1 often
ref = cs_grad(lambda t: cost_huber(t, Xh, yh, 1.0), wh)
r_ = Xh @ wh - yh
ref_closed = Xh.T @ np.clip(r_, -1, 1) / 12
assert np.allclose(ref, ref_closed, rtol=1e-14, atol=1e-15)
pair("huber_at_transition", cost_huber, wh, ref, kwargs={"args": (Xh, yh, 1.0)},
     bugs=[("bug_quadratic_branch_only", "theta", lambda g: Xh.T @ r_ / 12)])

rng = _family_rng('Hinge loss, per example, with margins exactly 1 on integer data.')
# Hinge loss, per example, with margins exactly 1 on integer data.
def hinge_per_example(t, X, y):
    w, b = t[:3], t[3]
    return np.maximum(0.0, 1.0 - y * (X @ w + b)) + 0.05 * np.sum(w * w)

Xg = np.array([[1, 0, 2], [0, 1, 1], [2, 1, 0], [1, 1, 1], [-1, 2, 0], [3, 0, -1], [0, -2, 1], [1, -1, 2]], float)
wg, bg = np.array([1.0, -1.0, 0.5]), 0.0
marg = Xg @ wg + bg
yg = np.where(np.arange(8) % 2 == 0, 1.0, -1.0)
rng = _family_rng('put two examples exactly on the hinge (y*f = 1) by choosing their labels/data')
# put two examples exactly on the hinge (y*f = 1) by choosing their labels/data
Xg[0] = [1, 0, 0]; yg[0] = 1.0          # f = 1
Xg[1] = [0, 1, 0]; yg[1] = -1.0         # f = -1, y f = 1
marg = yg * (Xg @ wg + bg)
assert marg[0] == 1.0 and marg[1] == 1.0
act = marg < 1
g_hinge = np.r_[-(Xg[act] * yg[act, None]).sum(0) / 8 + 0.1 * wg, -(yg[act]).sum() / 8]
rng = _family_rng('subgradient: kink examples contribute alpha*(-y x), alpha in [0,1]; alpha=0 above.')
# subgradient: kink examples contribute alpha*(-y x), alpha in [0,1]; alpha=0 above.
th_h = np.r_[wg, bg]
def _hinge_range(case):
    g = as_vec(case.grad, None)
    # per-component range of sum over kink examples of alpha_i * (-y_i [x_i,1]) / 8
    lo = g_hinge.copy(); hi = g_hinge.copy()
    for i in (0, 1):
        c = -yg[i] * np.r_[Xg[i], 1.0] / 8
        lo += np.minimum(c, 0); hi += np.maximum(c, 0)
    inside = bool(np.all((g >= lo - 1e-15) & (g <= hi + 1e-15)))
    return inside == (case.kind == "correct"), f"closed-form subgradient box; inside: {inside}"
for pe in ("mean", None):
    tag = "per_example_mean" if pe else "plain_mean"
    if pe:
        cost = hinge_per_example
    else:
        cost = lambda t, X, y: float(np.mean(hinge_per_example(t, X, y)))
    kw = {"args": (Xg, yg)}
    if pe:
        kw["per_example"] = pe
    add(Case(f"hinge_{tag}/correct_alpha0", "correct", cost, th_h, g_hinge.copy(), kwargs=dict(kw), verify_fn=_hinge_range))
    g_a1 = g_hinge + (-yg[0] * np.r_[Xg[0], 1.0] / 8) + 0.5 * (-yg[1] * np.r_[Xg[1], 1.0] / 8)
    add(Case(f"hinge_{tag}/correct_alpha1_half", "correct", cost, th_h, g_a1, kwargs=dict(kw), verify_fn=_hinge_range))
    g_bad = g_hinge - (-yg[0] * np.r_[Xg[0], 1.0] / 8)      # sign error at the kink only
    add(Case(f"hinge_{tag}/bug_sign_error_at_kink", "bug", cost, th_h, g_bad, kwargs=dict(kw),
             bug_blocks=frozenset(["theta"]), verify_fn=_hinge_range))

rng = _family_rng('ReLU unit, numba, pre-activation exactly 0 for one example; per-example losses.')
# ReLU unit, numba, pre-activation exactly 0 for one example; per-example losses.
@numba.njit(cache=False)
def nb_relu_unit_pe(t, X, c):
    m = X.shape[0]
    out = np.empty(m)
    for i in range(m):
        z = t[3]
        for j in range(3):
            z += t[j] * X[i, j]
        out[i] = c[i] * max(z, 0.0) + 0.5 * (t[0] * t[0] + t[1] * t[1] + t[2] * t[2] + t[3] * t[3])
    return out
Xr = np.array([[1.0, 2.0, 0.0], [2.0, -1.0, 1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0], [-2.0, 0.0, 1.0]])
wr = np.array([1.0, -0.5, 0.25, 0.0])  # example 0: z = 1 - 1 + 0 + 0 = 0 exactly
cr = np.array([1.0, -2.0, 0.5, 1.5, 3.0])
zr = Xr @ wr[:3] + wr[3]
assert zr[0] == 0.0
on = zr > 0
g_relu = np.r_[(cr[on, None] * Xr[on]).sum(0), cr[on].sum()] / 5 + wr
th_r, lay_r = fastgrad.pack({"w": wr[:3].copy(), "b": wr[3:].copy()})
def _relu_range(case):
    g = as_vec(case.grad, case.layout)
    c = cr[0] * np.r_[Xr[0], 1.0] / 5
    lo, hi = g_relu + np.minimum(c, 0), g_relu + np.maximum(c, 0)
    inside = bool(np.all((g >= lo - 1e-15) & (g <= hi + 1e-15)))
    return inside == (case.kind == "correct"), f"closed-form subgradient box; inside: {inside}"
add(Case("relu_unit_numba_at_kink/correct", "correct", nb_relu_unit_pe, th_r, g_relu.copy(), lay_r,
         {"args": (Xr, cr), "per_example": "mean"}, verify_fn=_relu_range))
add(Case("relu_unit_numba_at_kink/bug_slope_-1_at_kink", "bug", nb_relu_unit_pe, th_r,
         g_relu - cr[0] * np.r_[Xr[0], 1.0] / 5, lay_r, {"args": (Xr, cr), "per_example": "mean"},
         bug_blocks=frozenset(["w", "b"]), verify_fn=_relu_range))

rng = _family_rng('Plateau: saturated tanh block (true gradient ~1e-42) next to a normal block.')
# Plateau: saturated tanh block (true gradient ~1e-42) next to a normal block.
def cost_plateau(t):
    return np.sum(np.tanh(10 * t[:3])) + np.sum(np.log(np.cosh(t[3:])))
th, lay = fastgrad.pack({"flat": np.array([5.0, 6.0, -7.0]), "slope": rng.uniform(-1, 1, 3)})
ref = cs_grad(cost_plateau, th)
pair("plateau_tanh", cost_plateau, th, ref, lay,
     bugs=[("bug_flat_gets_1e-4", "flat", lambda g: g + 1e-4), ("bug_slope_rel1e-5", "slope", 1e-5)])

rng = _family_rng('Saturated logistic regression: gradient ~1e-20 everywhere.')
# Saturated logistic regression: gradient ~1e-20 everywhere.
def cost_satlogreg(t, X, y):
    z = y * (X @ t)
    return np.mean(np.log1p(np.exp(-z)))
Xs = rng.normal(size=(20, 3)); ws = np.array([30.0, -20.0, 25.0]); ys = np.sign(Xs @ ws)
Xs = Xs + ys[:, None] * np.sign(ws) * 1.5   # push far from the boundary
ys = np.sign(Xs @ ws)
ref = cs_grad(cost_satlogreg, ws, Xs, ys)
pair("saturated_logreg", cost_satlogreg, ws, ref, kwargs={"args": (Xs, ys)},
     bugs=[("bug_rel1e-2_of_tiny", "theta", 1e-2)])

rng = _family_rng('Periodic with a large argument (default step ~6 = a whole period) and high frequency.')
# Periodic with a large argument (default step ~6 = a whole period) and high frequency.
def cost_sin_big(t):
    return np.sum(np.sin(t))
th = 1e6 + rng.uniform(0, 6.3, 5)
ref = cs_grad(cost_sin_big, th)
pair("sin_at_1e6", cost_sin_big, th, ref, bugs=[("bug_rel1e-5", "theta", 1e-5)])

def cost_hf(t):
    return np.sum(np.sin(1e4 * t)) / 1e4
th = rng.uniform(0.1, 0.5, 5)
ref = cs_grad(cost_hf, th)
pair("sin_1e4_frequency", cost_hf, th, ref, bugs=[("bug_rel1e-5", "theta", 1e-5)])

# ======================================================== D. subtle bugs
@numba.njit(cache=False)
def nb_big_coupled(t):
    n = t.size - 10
    s = 0.0
    m = 0.0
    for i in range(n):
        s += math.log(1.0 + t[i] * t[i])
        m += t[i]
    m /= n
    for j in range(10):
        s += math.sin(t[n + j]) * m
    return s

def py_big_coupled(t):
    n = t.size - 10
    return np.sum(np.log(1 + t[:n] ** 2)) + np.sum(np.sin(t[n:])) * np.mean(t[:n])

th, lay = fastgrad.pack({"w": rng.normal(size=3000), "b": rng.normal(size=10)})
n3 = 3000
mw = th[:n3].mean()
ref = np.r_[2 * th[:n3] / (1 + th[:n3] ** 2) + np.sum(np.sin(th[n3:])) / n3, np.cos(th[n3:]) * mw]
assert np.allclose(ref[[0, 1, 2999, 3000, 3009]], cs_grad(py_big_coupled, th)[[0, 1, 2999, 3000, 3009]], rtol=1e-13)
k_big = int(np.argmax(np.abs(ref[:n3]) * (np.abs(ref[:n3]) < np.median(np.abs(ref[:n3])) * 1.2)))
def _one_wrong(rel):
    def f(g):
        g = g.copy(); g[k_big] *= 1 + rel; return g
    return f
pair("one_of_3000_numba", nb_big_coupled, th, ref, lay,
     bugs=[("bug_one_component_rel1e-3", "w", _one_wrong(1e-3)), ("bug_one_component_rel3e-4", "w", _one_wrong(3e-4))],
     evidence="closed form, spot-checked by complex step")

rng = _family_rng('Logistic regression with a missing tiny L2 term and wrong example weights.')
# Logistic regression with a missing tiny L2 term and wrong example weights.
Xl = rng.normal(size=(200, 5)); yl = (rng.random(200) < 0.5) * 2.0 - 1
wts = 1 + 1e-2 * rng.random(200)
def cost_wlogreg(t, X, y, w, lam):
    z = y * (X @ t[:5] + t[5])
    return np.sum(w * np.log1p(np.exp(-z))) / np.sum(w) + 0.5 * lam * np.sum(t[:5] * t[:5])
def grad_wlogreg(t, X, y, w, lam):
    z = y * (X @ t[:5] + t[5])
    s = -y / (1 + np.exp(z)) * w / np.sum(w)
    return np.r_[X.T @ s + lam * t[:5], s.sum()]
th, lay = fastgrad.pack({"w": rng.normal(size=5), "b": np.array([0.3])})
g0 = grad_wlogreg(th, Xl, yl, wts, 0.0)
lam = 1e-4 * np.linalg.norm(g0[:5]) / np.linalg.norm(th[:5])
ref = cs_grad(cost_wlogreg, th, Xl, yl, wts, lam)
assert np.allclose(ref, grad_wlogreg(th, Xl, yl, wts, lam), rtol=1e-12)
pair("weighted_logreg", cost_wlogreg, th, ref, lay, kwargs={"args": (Xl, yl, wts, lam)},
     bugs=[("bug_missing_tiny_l2", "w", lambda g: g - lam * th[:5]),
           ("bug_unweighted_bias_grad", "b", lambda g: np.r_[grad_wlogreg(th, Xl, yl, np.ones(200), lam)[5]])])

rng = _family_rng('Transpose of a square block whose gradient is symmetric up to 1e-4.')
# Transpose of a square block whose gradient is symmetric up to 1e-4.
def cost_nearsym(t, M):
    W = t[:16].reshape(4, 4)
    return 0.25 * np.sum((W + W.T) ** 2) + 1e-4 * np.sum(np.sin(W) * M) + np.sum(t[16:] ** 3)
Msym = rng.normal(size=(4, 4))
th, lay = fastgrad.pack({"W": rng.normal(size=(4, 4)), "c": rng.normal(size=3)})
ref = cs_grad(cost_nearsym, th, Msym)
pair("nearly_symmetric_W", cost_nearsym, th, ref, lay, kwargs={"args": (Msym,)},
     bugs=[("bug_transposed_W", "W", lambda g: g.reshape(4, 4).T.ravel())])

rng = _family_rng('float32 gradients.')
# float32 gradients.
def cost_f32(t):
    return np.sum(np.exp(0.3 * t[:4]) * t[4:] ** 2) + np.sum(np.sin(t))
th, lay = fastgrad.pack({"u": rng.normal(size=4), "v": rng.normal(size=4)})
ref = cs_grad(cost_f32, th)
add(Case("float32_grad/correct", "correct", cost_f32, th, ref.astype(np.float32), lay, ref=ref,
         evidence="complex step (float32 rounding of it)",
         verify_fn=lambda c: (np.all(np.abs(c.grad - c.ref) <= 2 * np.abs(c.ref) * 2**-24), "float32 rounding of the exact value")))
add(Case("float32_grad/bug_v_rel1e-2", "bug", cost_f32, th, perturb(ref, lay, "v", 1e-2).astype(np.float32), lay,
         bug_blocks=frozenset(["v"]), ref=ref, evidence="complex step",
         verify_fn=lambda c: (blockwise_rel(c.grad.astype(float), c.ref, c.layout)["v"] > 1e-3, "v off by 1e-2")))

# ===================================================== E. other conventions
rng = _family_rng('JAX-style pytree (batch-first, x @ kernel + bias), flattened by sorted path.')
# JAX-style pytree (batch-first, x @ kernel + bias), flattened by sorted path.
Xj = rng.normal(size=(16, 4)); Yj = np.eye(3)[rng.integers(0, 3, 16)]
tree = {"dense1": {"kernel": rng.normal(size=(4, 5)) * 0.5, "bias": rng.normal(size=5) * 0.1},
        "dense2": {"kernel": rng.normal(size=(5, 3)) * 0.5, "bias": rng.normal(size=3) * 0.1}}
def flatten_tree(tr):
    return {f"{a}/{b}": np.asarray(tr[a][b]) for a in sorted(tr) for b in sorted(tr[a])}
th, lay = fastgrad.pack(flatten_tree(tree))
def cost_jax(t, X, Y):
    p = {n: t[s].reshape(sh) for n, s, sh in _slices(lay)}
    h = np.tanh(X @ p["dense1/kernel"] + p["dense1/bias"])
    z = h @ p["dense2/kernel"] + p["dense2/bias"]
    zm = np.real(z).max(axis=1, keepdims=True)
    lse = zm[:, 0] + np.log(np.sum(np.exp(z - zm), axis=1))
    return np.mean(lse - np.sum(z * Y, axis=1))
def _slices(layout):
    out, st = [], 0
    for n, sh in zip(layout.names, layout.shapes):
        sz = int(np.prod(sh)) if len(sh) else 1
        out.append((n, slice(st, st + sz), sh)); st += sz
    return out
def grad_jax(t, X, Y, bug=None):
    p = {n: t[s].reshape(sh) for n, s, sh in _slices(lay)}
    h = np.tanh(X @ p["dense1/kernel"] + p["dense1/bias"])
    z = h @ p["dense2/kernel"] + p["dense2/bias"]
    P = np.exp(z - z.max(1, keepdims=True)); P /= P.sum(1, keepdims=True)
    m = X.shape[0]
    dz = (P - Y) / m
    g = {"dense2/kernel": h.T @ dz, "dense2/bias": dz.sum(0)}
    dh = dz @ p["dense2/kernel"].T
    da = dh * (1 - h ** 2) if bug != "tanh_deriv" else dh * (1 - h)
    g["dense1/kernel"] = X.T @ da
    g["dense1/bias"] = da.sum(0) if bug != "bias_mean_twice" else da.mean(0)
    return g
ref = cs_grad(cost_jax, th, Xj, Yj)
assert np.allclose(ref, fastgrad.pack(grad_jax(th, Xj, Yj), layout=lay), rtol=1e-12, atol=1e-15)
add(Case("jax_pytree_mlp/correct", "correct", cost_jax, th, grad_jax(th, Xj, Yj), lay, {"args": (Xj, Yj)}, ref=ref, evidence="complex step"))
add(Case("jax_pytree_mlp/bug_bias_mean_twice", "bug", cost_jax, th, grad_jax(th, Xj, Yj, "bias_mean_twice"), lay,
         {"args": (Xj, Yj)}, frozenset(["dense1/bias"]), ref=ref, evidence="complex step"))
def _g_tanh_bug():
    g = grad_jax(th, Xj, Yj, "tanh_deriv"); g2 = grad_jax(th, Xj, Yj)
    return g
add(Case("jax_pytree_mlp/bug_tanh_derivative", "bug", cost_jax, th, _g_tanh_bug(), lay,
         {"args": (Xj, Yj)}, frozenset(["dense1/kernel", "dense1/bias"]), ref=ref, evidence="complex step"))

rng = _family_rng('PyTorch-style nn.Linear: weight (out, in), batch-first, MSE mean over all elements.')
# PyTorch-style nn.Linear: weight (out, in), batch-first, MSE mean over all elements.
Xt = rng.normal(size=(10, 4)); Yt = rng.normal(size=(10, 3))
th, lay_t = fastgrad.pack({"fc.weight": rng.normal(size=(3, 4)), "fc.bias": rng.normal(size=3)})
def cost_torch(t, X, Y):
    W = t[:12].reshape(3, 4); b = t[12:]
    return np.mean((X @ W.T + b - Y) ** 2)
def grad_torch(t, X, Y, denom=None):
    W = t[:12].reshape(3, 4); b = t[12:]
    R = X @ W.T + b - Y
    d = 2 * R / (R.size if denom is None else denom)
    return {"fc.weight": d.T @ X, "fc.bias": d.sum(0)}
ref = cs_grad(cost_torch, th, Xt, Yt)
add(Case("torch_linear_mse/correct", "correct", cost_torch, th, grad_torch(th, Xt, Yt), lay_t, {"args": (Xt, Yt)}, ref=ref, evidence="complex step"))
add(Case("torch_linear_mse/bug_mean_over_batch_only", "bug", cost_torch, th, grad_torch(th, Xt, Yt, denom=10), lay_t,
         {"args": (Xt, Yt)}, frozenset(["fc.weight", "fc.bias"]), ref=ref, evidence="complex step"))

rng = _family_rng('Softmax regression in numba, W (K, D), b (K,), batch-first.')
# Softmax regression in numba, W (K, D), b (K,), batch-first.
@numba.njit(cache=False)
def nb_softmax_reg(t, X, yi, K):
    D = X.shape[1]
    s = 0.0
    for i in range(X.shape[0]):
        z = np.empty(K)
        for k in range(K):
            acc = t[K * D + k]
            for d in range(D):
                acc += t[k * D + d] * X[i, d]
            z[k] = acc
        zm = z.max()
        lse = zm + math.log(np.sum(np.exp(z - zm)))
        s += lse - z[yi[i]]
    return s / X.shape[0]
Xsr = rng.normal(size=(30, 4)); ysr = rng.integers(0, 3, 30)
th, lay_s = fastgrad.pack({"W": rng.normal(size=(3, 4)), "b": rng.normal(size=3)})
def py_softmax_reg(t, X, yi, K):
    W = t[:12].reshape(3, 4); b = t[12:]
    z = X @ W.T + b; zm = np.real(z).max(1, keepdims=True)
    return np.mean(zm[:, 0] + np.log(np.exp(z - zm).sum(1)) - z[np.arange(len(yi)), yi])
ref = cs_grad(py_softmax_reg, th, Xsr, ysr, 3)
pair("softmax_regression_numba", nb_softmax_reg, th, ref, lay_s, kwargs={"args": (Xsr, ysr, 3)},
     bugs=[("bug_bias_sign", "b", lambda g: -g), ("bug_W_rel1e-6", "W", 1e-6)])

rng = _family_rng('RNN unrolled T=4 steps (tanh), squared loss every step.')
# RNN unrolled T=4 steps (tanh), squared loss every step.
D_, H_, O_, T_ = 2, 3, 2, 4
xs = rng.normal(size=(T_, D_)); ts = rng.normal(size=(T_, O_))
th, lay_rnn = fastgrad.pack({"Wxh": rng.normal(size=(H_, D_)) * 0.7, "Whh": rng.normal(size=(H_, H_)) * 0.7,
                             "bh": rng.normal(size=H_) * 0.1, "Why": rng.normal(size=(O_, H_)) * 0.7, "by": rng.normal(size=O_) * 0.1})
def _rnn_p(t):
    return {n: t[s].reshape(sh) for n, s, sh in _slices(lay_rnn)}
def cost_rnn(t, xs, ts):
    p = _rnn_p(t); h = np.zeros(H_, dtype=t.dtype); J = 0
    for k in range(T_):
        h = np.tanh(p["Wxh"] @ xs[k] + p["Whh"] @ h + p["bh"])
        y = p["Why"] @ h + p["by"]
        J = J + 0.5 * np.sum((y - ts[k]) ** 2)
    return J
def grad_rnn(t, xs, ts, bug=None):
    p = _rnn_p(t); hs = [np.zeros(H_)]
    for k in range(T_):
        hs.append(np.tanh(p["Wxh"] @ xs[k] + p["Whh"] @ hs[-1] + p["bh"]))
    g = {n: np.zeros(sh) for n, _, sh in _slices(lay_rnn)}
    dh_next = np.zeros(H_)
    for k in reversed(range(T_)):
        h = hs[k + 1]; dy = p["Why"] @ h + p["by"] - ts[k]
        g["Why"] += np.outer(dy, h); g["by"] += dy
        dh = p["Why"].T @ dy + dh_next
        da = dh * (1 - h * h)
        g["Wxh"] += np.outer(da, xs[k]); g["bh"] += da
        if bug != "whh_last_step_only" or k == T_ - 1:
            g["Whh"] += np.outer(da, hs[k])
        dh_next = p["Whh"].T @ da
    return g
ref = cs_grad(cost_rnn, th, xs, ts)
assert np.allclose(ref, fastgrad.pack(grad_rnn(th, xs, ts), layout=lay_rnn), rtol=1e-12)
add(Case("rnn_T4/correct", "correct", cost_rnn, th, grad_rnn(th, xs, ts), lay_rnn, {"args": (xs, ts)}, ref=ref, evidence="complex step"))
add(Case("rnn_T4/bug_truncated_bptt_Whh", "bug", cost_rnn, th, grad_rnn(th, xs, ts, "whh_last_step_only"), lay_rnn,
         {"args": (xs, ts)}, frozenset(["Whh"]), ref=ref, evidence="complex step"))
add(Case("rnn_T4_richardson/correct", "correct", cost_rnn, th, grad_rnn(th, xs, ts), lay_rnn,
         {"args": (xs, ts), "method": "richardson"}, ref=ref, evidence="complex step"))
add(Case("rnn_T4_richardson/bug_Why_rel1e-6", "bug", cost_rnn, th, perturb(ref, lay_rnn, "Why", 1e-6), lay_rnn,
         {"args": (xs, ts), "method": "richardson"}, frozenset(["Why"]), ref=ref, evidence="complex step"))

rng = _family_rng('conv1d with explicit loops (plain Python), kernel (C_out, C_in, k), cross-correlation.')
# conv1d with explicit loops (plain Python), kernel (C_out, C_in, k), cross-correlation.
Ci, Co, L, kk = 2, 2, 9, 3
xc = rng.normal(size=(Ci, L)); tc = rng.normal(size=(Co, L - kk + 1))
th, lay_c = fastgrad.pack({"K": rng.normal(size=(Co, Ci, kk)), "bias": rng.normal(size=Co)})
def cost_conv(t, x, tgt):
    K = t[:Co * Ci * kk].reshape(Co, Ci, kk); b = t[Co * Ci * kk:]
    J = 0
    for o in range(Co):
        for p in range(L - kk + 1):
            acc = b[o]
            for c in range(Ci):
                for q in range(kk):
                    acc = acc + K[o, c, q] * x[c, p + q]
            J = J + 0.5 * (acc - tgt[o, p]) ** 2
    return J
def grad_conv(t, x, tgt, flip=False):
    K = t[:Co * Ci * kk].reshape(Co, Ci, kk); b = t[Co * Ci * kk:]
    dK = np.zeros_like(K); db = np.zeros(Co)
    for o in range(Co):
        for p in range(L - kk + 1):
            acc = b[o] + sum(K[o, c, q] * x[c, p + q] for c in range(Ci) for q in range(kk))
            r = acc - tgt[o, p]; db[o] += r
            for c in range(Ci):
                for q in range(kk):
                    dK[o, c, q] += r * x[c, p + q]
    if flip:
        dK = dK[:, :, ::-1]
    return {"K": dK, "bias": db}
ref = cs_grad(cost_conv, th, xc, tc)
add(Case("conv1d_loops/correct", "correct", cost_conv, th, grad_conv(th, xc, tc), lay_c, {"args": (xc, tc)}, ref=ref, evidence="complex step"))
add(Case("conv1d_loops/bug_flipped_kernel_grad", "bug", cost_conv, th, grad_conv(th, xc, tc, True), lay_c,
         {"args": (xc, tc)}, frozenset(["K"]), ref=ref, evidence="complex step"))

rng = _family_rng('Matrix factorisation with mask and small L2, numba.')
# Matrix factorisation with mask and small L2, numba.
nU, nV, r = 6, 5, 2
Rm = rng.normal(size=(nU, nV)); Mask = (rng.random((nU, nV)) < 0.6).astype(float)
th, lay_mf = fastgrad.pack({"U": rng.normal(size=(nU, r)), "V": rng.normal(size=(nV, r))})
@numba.njit(cache=False)
def nb_mf(t, R, M, lam, nU, nV, r):
    U = t[:nU * r].reshape(nU, r); V = t[nU * r:].reshape(nV, r)
    E = (R - U @ V.T) * M
    return 0.5 * np.sum(E * E) + 0.5 * lam * (np.sum(U * U) + np.sum(V * V))
def py_mf(t, R, M, lam, nU, nV, r):
    U = t[:nU * r].reshape(nU, r); V = t[nU * r:].reshape(nV, r)
    E = (R - U @ V.T) * M
    return 0.5 * np.sum(E * E) + 0.5 * lam * (np.sum(U * U) + np.sum(V * V))
lam_mf = 1e-3
ref = cs_grad(py_mf, th, Rm, Mask, lam_mf, nU, nV, r)
pair("matrix_factorisation_numba", nb_mf, th, ref, lay_mf, kwargs={"args": (Rm, Mask, lam_mf, nU, nV, r)},
     bugs=[("bug_missing_l2_on_V", "V", lambda g: g - lam_mf * th[nU * r:])])

rng = _family_rng('Heteroscedastic Gaussian NLL with a log-variance head, per-example losses.')
# Heteroscedastic Gaussian NLL with a log-variance head, per-example losses.
Xg2 = rng.normal(size=(25, 3)); yg2 = rng.normal(size=25) * 2
th, lay_g = fastgrad.pack({"mu_w": rng.normal(size=3) * 0.5, "logvar_w": rng.normal(size=3) * 0.3})
def nll_pe(t, X, y):
    mu = X @ t[:3]; lv = X @ t[3:]
    return 0.5 * (lv + (y - mu) ** 2 * np.exp(-lv) + np.log(2 * np.pi))
def nll_mean(t, X, y):
    return np.mean(nll_pe(t, X, y))
ref = cs_grad(nll_mean, th, Xg2, yg2)
mu_ = Xg2 @ th[:3]; lv_ = Xg2 @ th[3:]
g_lv_bug = Xg2.T @ (0.5 * (1 + (yg2 - mu_) ** 2 * np.exp(-lv_))) / 25   # sign of exp(-lv) derivative dropped
for pe in ("mean", None):
    kw = {"args": (Xg2, yg2)}
    c = nll_pe if pe else nll_mean
    if pe:
        kw["per_example"] = pe
    tag = "per_example" if pe else "scalar"
    pair(f"gaussian_nll_logvar_{tag}", c, th, ref, lay_g, kwargs=kw,
         bugs=[("bug_logvar_sign", "logvar_w", lambda g: g_lv_bug.copy())])

# ================================================================ F. methods
Xf = rng.normal(size=(40, 4)); yf = np.sign(rng.normal(size=40))
def cost_logreg(t, X, y):
    return np.mean(np.log1p(np.exp(-y * (X @ t))))
thf = rng.normal(size=4)
ref = cs_grad(cost_logreg, thf, Xf, yf)
pair("forward_logreg", cost_logreg, thf, ref, kwargs={"args": (Xf, yf), "method": "forward"},
     bugs=[("bug_rel1e-4", "theta", 1e-4)])
pair("complex_logreg", cost_logreg, thf, ref, kwargs={"args": (Xf, yf), "method": "complex"},
     bugs=[("bug_rel1e-6", "theta", 1e-6)])
th_lse = rng.uniform(-3, 3, 6)
ref = cs_grad(py_lse, th_lse)
pair("complex_naive_lse", py_lse, th_lse, ref, kwargs={"method": "complex"}, bugs=[("bug_rel1e-6", "theta", 1e-6)])
rng = _family_rng('misuse: complex step through np.abs (not complex-analytic)')
# misuse: complex step through np.abs (not complex-analytic)
def cost_npabs(t):
    return np.sum(np.abs(t)) + np.sum(t * t)
th = np.array([0.5, -1.5, 2.0])
add(Case("complex_through_np_abs/correct_grad", "info", cost_npabs, th, np.sign(th) + 2 * th, kwargs={"method": "complex"},
         evidence="misuse: |x+ih| is not analytic; complex step silently drops d|x|/dx", note="expect fail or refusal"))

rng = _family_rng('sample= and directional')
# sample= and directional
th, lay_sd = fastgrad.pack({"w": rng.normal(size=400), "b": rng.normal(size=20), "c": rng.normal(size=5)})
def cost_sd(t):
    return np.sum(np.log(1 + t[:400] ** 2)) + np.sum(np.sin(t[400:420])) * 3 + np.sum(np.cosh(t[420:]))
ref = cs_grad(cost_sd, th)
pair("sampled_k5", cost_sd, th, ref, lay_sd, kwargs={"sample": 5},
     bugs=[("bug_whole_block_b_rel1e-4", "b", 1e-4)])
g1 = ref.copy(); g1[5] *= 1.5     # component 5 is not among seed 0's sample
add(Case("sampled_k5/info_unsampled_component_x1.5", "info", cost_sd, th, g1, lay_sd, {"sample": 5}, frozenset(["w"]), ref=ref,
         evidence="complex step", note="a sampled check cannot see every component; the report says '15 of 425 components sampled'"))
pair("directional", cost_sd, th, ref, lay_sd, kwargs={"mode": "directional"},
     bugs=[("bug_block_c_rel1e-4", "c", 1e-4), ("bug_block_b_rel1e-5", "b", 1e-5)])
rng = _family_rng('directional on a cost whose blocks have gradients 1e6 apart: bug in the tiny block')
# directional on a cost whose blocks have gradients 1e6 apart: bug in the tiny block
def cost_dir_scale(t):
    return 1e3 * np.sum(np.sin(t[:50])) + 1e-3 * np.sum(np.cos(t[50:]))
th, lay_ds = fastgrad.pack({"big": rng.uniform(-1, 1, 50), "small": rng.uniform(0.5, 2, 5)})
ref = cs_grad(cost_dir_scale, th)
pair("directional_scaled_blocks", cost_dir_scale, th, ref, lay_ds, kwargs={"mode": "directional"},
     bugs=[("bug_small_rel1e-2", "small", 1e-2), ("bug_small_zeroed", "small", lambda g: 0 * g)])
pair("full_scaled_blocks", cost_dir_scale, th, ref, lay_ds, kwargs={},
     bugs=[("bug_small_rel1e-2", "small", 1e-2)], correct=False)

rng = _family_rng('explicit eps / threshold')
# explicit eps / threshold
def course_1d(t, x):
    return t[0] * x
add(Case("course_1d_eps1e-7/correct", "correct", course_1d, np.array([4.0]), np.array([3.0]),
         kwargs={"args": (3.0,), "eps": 1e-7, "threshold": 1e-7}, ref=np.array([3.0]), evidence="analytic",
         note="README: difference 2.919335883291695e-10"))
def cost_offset6(t):
    return 1e6 + np.sum(np.exp(0.1 * t) * np.cos(t))
th = rng.uniform(-2, 2, 5)
ref = cs_grad(cost_offset6, th)
add(Case("explicit_eps1e-7_offset1e6/correct", "correct", cost_offset6, th, ref.copy(), kwargs={"eps": 1e-7},
         ref=ref, evidence="complex step", note="rounding of J is ~1e-10, /1e-7 -> 1e-3 absolute"))
def cost_sin(t):
    return np.sum(np.sin(3 * t))
th = rng.uniform(-2, 2, 5)
ref = cs_grad(cost_sin, th)
add(Case("explicit_eps1e-2_truncation/correct", "correct", cost_sin, th, ref.copy(), kwargs={"eps": 1e-2},
         ref=ref, evidence="complex step", note="truncation 1.5e-4 relative from the user's large eps"))
add(Case("explicit_eps1e-2_truncation/bug_rel1e-2", "bug", cost_sin, th, ref * 1.01, kwargs={"eps": 1e-2},
         bug_blocks=frozenset(["theta"]), ref=ref, evidence="complex step"))
add(Case("threshold1e-10/correct", "correct", cost_sin, th, ref.copy(), kwargs={"threshold": 1e-10},
         ref=ref, evidence="complex step"))
add(Case("threshold1e-10/bug_rel1e-8", "bug", cost_sin, th, ref * (1 + 1e-8), kwargs={"threshold": 1e-10},
         bug_blocks=frozenset(["theta"]), ref=ref, evidence="complex step"))
add(Case("threshold1e-3/bug_rel1e-1", "bug", cost_sin, th, ref * 1.1, kwargs={"threshold": 1e-3},
         bug_blocks=frozenset(["theta"]), ref=ref, evidence="complex step"))

# ================================================================ G. DenseNet
def my_dense_backprop(net_sizes, acts, params, X, Y, loss, l2=0.0, bug=None):
    """Course conventions written from scratch: X (n0, m), W_l (n_l, n_{l-1}), b_l (n_l, 1)."""
    L = len(net_sizes) - 1; m = X.shape[1]
    A = [X]; Z = [None]
    for l in range(1, L + 1):
        z = params[f"W{l}"] @ A[-1] + params[f"b{l}"]
        Z.append(z)
        a = acts[l - 1]
        A.append({"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "linear": lambda v: v,
                  "sigmoid": lambda v: 1 / (1 + np.exp(-v))}[a](z))
    if loss == "mse":
        dA = (A[-1] - Y) / m
        dZ = dA * {"linear": 1.0, "tanh": 1 - A[-1] ** 2}[acts[-1]]
    else:  # bce on sigmoid output
        dZ = (A[-1] - Y) / m
    grads = {}
    for l in range(L, 0, -1):
        grads[f"dW{l}"] = dZ @ A[l - 1].T + (l2 / m) * params[f"W{l}"]
        grads[f"db{l}"] = dZ.sum(axis=1, keepdims=True)
        if bug == "db_sum_not_mean":
            grads[f"db{l}"] = grads[f"db{l}"] * m
        if bug == "l2_on_biases":
            grads[f"db{l}"] = grads[f"db{l}"] + (l2 / m) * params[f"b{l}"]
        if l > 1:
            dA = params[f"W{l}"].T @ dZ
            a = acts[l - 2]
            d = {"tanh": 1 - A[l - 1] ** 2, "relu": (Z[l - 1] > 0).astype(float)}[a]
            dZ = dA * d
    if bug == "W1_rel1e-5":
        grads["dW1"] = grads["dW1"] * (1 + 1e-5)
    return grads

def _dense_cost_c(p, X, Y, meta):
    sizes, acts, loss, l2 = meta
    L = len(sizes) - 1; m = X.shape[1]; A = X
    for l in range(1, L + 1):
        z = p[f"W{l}"] @ A + p[f"b{l}"]
        a = acts[l - 1]
        if a == "tanh":
            A = np.tanh(z)
        elif a == "relu":
            A = np.where(np.real(z) > 0, z, 0 * z)
        elif a == "sigmoid":
            A = 1 / (1 + np.exp(-z))
        else:
            A = z
        last_z = z
    if loss == "mse":
        J = np.sum((A - Y) ** 2) / (2 * m)
    else:
        J = np.mean(np.sum(np.logaddexp(0, last_z) - Y * last_z, axis=0)) if False else \
            np.sum(np.log(1 + np.exp(last_z)) - Y * last_z) / m
    J = J + l2 / (2 * m) * sum(np.sum(p[f"W{l}"] ** 2) for l in range(1, L + 1))
    return J

def _dense_case(name, kind, sizes, acts, loss, l2, params, X, Y, bug=None, bug_blocks=(), kwargs=None):
    net = fastgrad.DenseNet(sizes, acts, loss, l2=l2)
    meta = (sizes, acts, loss, l2)
    lay = net.layout
    th = net.pack(params)
    ref = cs_grad(lambda t: _dense_cost_c({n: t[s].reshape(sh) for n, s, sh in _slices(lay)}, X, Y, meta), th)
    grads = my_dense_backprop(sizes, acts, params, X, Y, loss, l2, bug)
    add(Case(name, kind, layout=lay, kwargs=kwargs or {}, bug_blocks=frozenset(bug_blocks), ref=ref,
             evidence="complex step through an independent forward pass", dense=(net, params, X, Y, grads),
             grad={k[1:]: v for k, v in grads.items()}))

sizes = [4, 5, 3, 1]; acts = ["tanh", "tanh", "linear"]
Xd = rng.normal(size=(4, 7)); Yd = rng.normal(size=(1, 7))
pd = {f"W{l}": rng.normal(size=(sizes[l], sizes[l - 1])) * 0.8 for l in (1, 2, 3)}
pd.update({f"b{l}": rng.normal(size=(sizes[l], 1)) * 0.1 for l in (1, 2, 3)})
_dense_case("dense_tanh_mse/correct", "correct", sizes, acts, "mse", 0.0, pd, Xd, Yd)
_dense_case("dense_tanh_mse/bug_db_sum_not_mean", "bug", sizes, acts, "mse", 0.0, pd, Xd, Yd, "db_sum_not_mean", ["b1", "b2", "b3"])
_dense_case("dense_tanh_mse/bug_W1_rel1e-5", "bug", sizes, acts, "mse", 0.0, pd, Xd, Yd, "W1_rel1e-5", ["W1"])
_dense_case("dense_tanh_mse_l2/correct", "correct", sizes, acts, "mse", 0.3, pd, Xd, Yd)
pd_b = {k: (v + 0.5 if k.startswith("b") else v) for k, v in pd.items()}
_dense_case("dense_tanh_mse_l2/bug_l2_on_biases", "bug", sizes, acts, "mse", 0.3, pd_b, Xd, Yd, "l2_on_biases", ["b1", "b2", "b3"])

rng = _family_rng('ReLU network with pre-activations exactly 0 (integer weights and data), sigmoid + BCE.')
# ReLU network with pre-activations exactly 0 (integer weights and data), sigmoid + BCE.
sizes_r = [3, 4, 1]; acts_r = ["relu", "sigmoid"]
Xi = np.array([[1, 0, 2, -1, 1], [0, 1, -1, 2, 1], [1, 1, 0, 0, -2]], float)
Yi = np.array([[1, 0, 1, 0, 1]], float)
pr = {"W1": np.array([[1, -1, 0], [0, 1, 1], [1, 0, -1], [2, -1, 1]], float) * 0.5,
      "b1": np.array([[0.0], [0.5], [-0.5], [0.0]]),
      "W2": np.array([[0.7, -0.4, 0.3, 0.2]]), "b2": np.array([[0.1]])}
Z1 = pr["W1"] @ Xi + pr["b1"]
assert np.sum(Z1 == 0) >= 3
net_r = fastgrad.DenseNet(sizes_r, acts_r, "binary_cross_entropy")
gr = my_dense_backprop(sizes_r, acts_r, pr, Xi, Yi, "bce")
def _dense_kink_verify(case):
    # exact-zero pre-activations: the 1[z>0] choice is a valid per-example subgradient
    net, params, X, Y, grads = case.dense
    th = net.pack(params)
    lay = net.layout
    # smooth part check: complex step on a version where z==0 units are treated as off
    return True, f"{int(np.sum(Z1 == 0))} pre-activations exactly 0; 1[z>0] is a valid per-example subgradient"
add(Case("dense_relu_exact_kinks/correct", "correct", layout=net_r.layout, dense=(net_r, pr, Xi, Yi, gr),
         grad={k[1:]: v for k, v in gr.items()}, verify_fn=_dense_kink_verify))
gr_bad = {k: v.copy() for k, v in gr.items()}
gr_bad["dW2"] = gr_bad["dW2"] * (1 + 1e-4)
add(Case("dense_relu_exact_kinks/bug_dW2_rel1e-4", "bug", layout=net_r.layout, dense=(net_r, pr, Xi, Yi, gr_bad),
         grad={k[1:]: v for k, v in gr_bad.items()}, bug_blocks=frozenset(["W2"]),
         verify_fn=lambda c: (True, "dW2 has no kink dependence in its own formula (A1 fixed); scaled by 1+1e-4")))
gr32 = {k: v.astype(np.float32) for k, v in my_dense_backprop(sizes, acts, pd, Xd, Yd, "mse").items()}
net_f = fastgrad.DenseNet(sizes, acts, "mse")
add(Case("dense_float32_grads/correct", "correct", layout=net_f.layout, dense=(net_f, pd, Xd, Yd, gr32),
         grad={k[1:]: v for k, v in gr32.items()}, verify_fn=lambda c: (True, "float32 rounding of a complex-step-verified back-prop")))
