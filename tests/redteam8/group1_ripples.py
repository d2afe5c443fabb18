"""Behaviour 1 (noise measured nearer theta): ripples, kinks, quantised costs,
float32 partial sums, offsets, and a cost whose rounding peaks at theta.
Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam8/group1_ripples.py
"""
import sys, os
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np, mpmath
from harness import check, summary, rel

rng = np.random.default_rng(1)
n = 5
a = rng.uniform(0.5, 2.0, size=n)


def quad(t):   # smooth part, value O(1)
    return 0.5 * float(np.sum(a * t * t))


def dquad(t):
    return a * t


# --- ripples: J = quad + A sin(w t_k) summed over k
for (A, w) in [(1e-9, 1e7), (1e-12, 1e9), (1e-10, 1e8), (1e-13, 1e10), (1e-11, 1e9),
               (1e-14, 1e11), (1e-15, 1e12), (1e-12, 1e11), (1e-8, 1e6)]:
    for s in range(3):
        th = np.random.default_rng(100 + s).uniform(-2, 2, size=n)
        cost = lambda t, A=A, w=w: quad(t) + A * float(np.sum(np.sin(w * t)))
        g_ok = dquad(th) + A * w * np.cos(w * th)
        # reference: mpmath
        mpmath.mp.dps = 40
        g_ref = np.array([float(mpmath.mpf(a[k]) * mpmath.mpf(th[k]) + A * w * mpmath.cos(w * mpmath.mpf(th[k])))
                          for k in range(n)])
        assert rel(g_ok, g_ref) < 1e-6, rel(g_ok, g_ref)  # phase of fl(w*t) vs exact w*t: <1e-7 for w<=1e12
        check(f"ripple A={A:g} w={w:g} s={s} with slope", cost, g_ok, th, expect="correct")
        if rel(g_ok, dquad(th)) > 1e-6:
            check(f"ripple A={A:g} w={w:g} s={s} slope omitted", cost, dquad(th), th, expect="bug")

# --- ripples on a tiny loss: J = 1e-15 * quad-ish (residual form) + ripple
for (A, w) in [(1e-24, 1e7), (1e-27, 1e9), (1e-26, 1e9), (1e-29, 1e11)]:
    th = np.random.default_rng(7).uniform(-2, 2, size=n)
    c = th + 3e-8 * np.random.default_rng(8).normal(size=n)      # optimum near theta
    cost = lambda t, A=A, w=w: 0.5 * float(np.sum(a * (t - c) ** 2)) + A * float(np.sum(np.sin(w * t)))
    g_ok = a * (th - c) + A * w * np.cos(w * th)
    check(f"tiny loss J~1e-15 + ripple A={A:g} w={w:g} with slope", cost, g_ok, th, expect="correct")
    if rel(g_ok, a * (th - c)) > 1e-6:
        check(f"tiny loss + ripple A={A:g} w={w:g} slope omitted", cost, a * (th - c), th, expect="bug")

# --- kink near theta: J = quad + c |t_0 - (th_0 + delta)|
for delta_rel in [1e-12, 1e-10, 1e-9, 3e-9, 1e-8, 3e-8, 1e-7, 1e-6, 1e-5, 1e-4]:
    th = np.random.default_rng(11).uniform(0.5, 2, size=n)
    kink = th[0] * (1 + delta_rel)
    cost = lambda t, kink=kink: quad(t) + 0.3 * abs(t[0] - kink)
    g = dquad(th).copy(); g[0] += 0.3 * np.sign(th[0] - kink)
    check(f"kink at rel {delta_rel:g} from theta", cost, g, th, expect="correct")
    gb = g.copy(); gb[0] = dquad(th)[0] - 0.3 * np.sign(th[0] - kink)
    check(f"kink at rel {delta_rel:g}, wrong side slope", cost, gb, th, expect="bug")

# --- quantised costs
for dec in [9, 10, 12, 13, 14]:
    for scale in [1.0, 1e-2]:
        th = np.random.default_rng(12).uniform(-2, 2, size=n)
        cost = lambda t, dec=dec, scale=scale: float(np.round(scale * quad(t), dec))
        check(f"np.round(J*{scale:g}, {dec})", cost, scale * dquad(th), th, expect="correct")
        gb = scale * dquad(th); gb[2] *= (1 + 1e-3)
        check(f"np.round(J*{scale:g}, {dec}) bug 1e-3 on comp 2", cost, gb, th, expect="bug")

# --- float32 partial sums
for frac in [1.0, 1e-3, 1e-6]:
    th = np.random.default_rng(13).uniform(-2, 2, size=n)
    def cost(t, frac=frac):
        part = np.float32(0)
        for v in (frac * 0.5 * a[:3] * t[:3] * t[:3]).astype(np.float32):
            part = np.float32(part + v)
        return float(part) + 0.5 * float(np.sum(a[3:] * t[3:] ** 2))
    g = dquad(th).copy(); g[:3] *= frac
    check(f"float32 partial sum frac={frac:g}", cost, g, th, expect="correct")
    gb = g.copy(); gb[4] *= 1.001
    check(f"float32 partial sum frac={frac:g}, bug on float64 comp", cost, gb, th, expect="bug")

# --- large offsets
for off in [1e4, 1e8, 1e10]:
    th = np.random.default_rng(14).uniform(-2, 2, size=n)
    cost = lambda t, off=off: off + quad(t)
    check(f"offset {off:g} + quad", cost, dquad(th), th, expect="correct")
    gb = dquad(th); gb[1] *= 1.01
    check(f"offset {off:g} + quad, 1e-2 bug", cost, gb, th, expect="bug")
    c = th + 3e-8 * np.random.default_rng(8).normal(size=n)
    cost2 = lambda t, off=off, c=c: off + 0.5 * float(np.sum(a * (t - c) ** 2))
    check(f"offset {off:g} + tiny loss", cost2, a * (th - c), th, expect="correct")

# --- rounding that peaks at theta: J = (T + f) - T, T = 1/(u.t - p) with p ~ u.theta
u = np.ones(n)
for dist in [1e-14, 1e-12, 1e-10, 1e-9, 1e-8]:
    th = np.random.default_rng(15).uniform(0.5, 2, size=n)
    p = float(u @ th) * (1 - dist)
    def cost(t, p=p):
        T = 1.0 / (float(u @ t) - p)
        return (T + quad(t)) - T
    check(f"pole rounding at theta dist={dist:g}", cost, dquad(th), th, expect="correct")
    gb = dquad(th); gb[1] *= 1.01
    check(f"pole rounding dist={dist:g}, 1e-2 bug", cost, gb, th, expect="bug")

summary()
