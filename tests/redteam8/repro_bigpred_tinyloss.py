"""Violation (behaviour 1): a tiny loss whose residuals are differences of
large predictions and targets (r = (P + L*(t-c)) - P, P = 1000; J ~ 1e-15).
J's rounding near theta is tiny (r ~ 1e-8), but the central-difference steps
fastgrad takes (~1.4% of theta) land where r ~ 1e-2 and the rounding of
P + L*(t-c) (ulp(1000)/2 = 5.7e-14 per residual) gives each difference an
error ~ L*5.7e-14 ~ 1e-13, i.e. ~3e-6 of a gradient of ~3e-8. fastgrad
measures the noise near theta (2.9e-21), claims errors of ~1e-17 and FAILS
the exact gradient 2 L^2 (t - c) (diff 2.4e-7 > tol 1.01e-7). The averaged
slope of the float cost over 4000 random steps and mpmath both agree with
the exact gradient. Same verdict before today's noise change (6eee939).

Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam8/repro_bigpred_tinyloss.py
"""
import numpy as np, mpmath, fastgrad

th = np.array([1.534433900283599, 0.8740728355876866, 0.5983744049860072, 0.7887298436221237])
c = np.array([1.5344338849392598, 0.8740728268469582, 0.5983743990022632, 0.7887298357348252])
L = np.array([1.7075043856180703, 1.7119111846047406, 1.272988341563213, 0.9287020701322124])
P = 1000.0
cost = lambda t: float(np.sum(((P + L * (t - c)) - P) ** 2))
g = 2 * L * L * (th - c)
mpmath.mp.dps = 50
ref = np.array([float(2 * mpmath.mpf(L[k]) ** 2 * (mpmath.mpf(th[k]) - mpmath.mpf(c[k]))) for k in range(4)])
print("analytic vs mpmath rel:", np.linalg.norm(g - ref) / np.linalg.norm(ref))
rng = np.random.default_rng(0)
for k in range(4):
    H = rng.uniform(1e-6, 1e-4, size=4000); v = []
    for h in H:
        tp = th.copy(); tp[k] += h; tm = th.copy(); tm[k] -= h
        v.append((cost(tp) - cost(tm)) / (2 * h))
    print(f"  comp {k}: analytic {g[k]:.10e}  mean float slope {np.mean(v):.10e} +- {np.std(v) / np.sqrt(len(v)):.1e}")
r = fastgrad.gradcheck(cost, g, th, progress=False)
print(f"expected: pass or inconclusive; actual: {r.verdict} (diff {r.difference:.3g}, tol {r.tolerance:.3g}, noise {r.noise_level:.3g})")
print("approx - grad:", r.approx - g, "\nclaimed error:", r.error)
