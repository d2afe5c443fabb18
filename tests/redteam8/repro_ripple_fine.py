"""Violation (behaviour 1 area, fine ripples): J = 0.5 sum a t^2 + A sum sin(w t).

With A=1e-12, w=1e11 (ripple = ~5000 ulps of J, period 6e-11 = ~3e5 ulps of
theta, slope A*w = 0.1 per component) the CORRECT gradient (ripple slope
included, verified with mpmath) FAILS, and the gradient that omits the slope
(a 10% error) PASSES. Same with A=1e-14, w=1e11. With A=1e-13, w=1e10 (slope
1e-3) the slope-omitted gradient passes while the right one is inconclusive.
Identical verdicts with the version before today's noise change (6eee939).
Note: for A=1e-12, w=1e11 the analytic gradient uses cos(fl(w*t)), the phase
the cost itself computes; exact-phase mpmath differs from it by 1.8e-7, far
below the 1.6e-2 fastgrad reports. A=1e-14, w=1e11 agrees with mpmath to 2e-9.

Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam8/repro_ripple_fine.py
"""
import numpy as np, mpmath, fastgrad

rng = np.random.default_rng(1)
n = 5
a = rng.uniform(0.5, 2.0, size=n)
bad = 0
for A, w in [(1e-12, 1e11), (1e-14, 1e11), (1e-13, 1e10)]:
    th = np.random.default_rng(100).uniform(-2, 2, size=n)
    cost = lambda t: 0.5 * float(np.sum(a * t * t)) + A * float(np.sum(np.sin(w * t)))
    g_right = a * th + A * w * np.cos(w * th)
    g_omit = a * th
    mpmath.mp.dps = 50
    ref = np.array([float(mpmath.mpf(a[k]) * mpmath.mpf(th[k]) + A * w * mpmath.cos(w * mpmath.mpf(th[k]))) for k in range(n)])
    print(f"A={A:g} w={w:g}: |right - mpmath|/|mpmath| = {np.linalg.norm(g_right - ref) / np.linalg.norm(ref):.1e}, "
          f"|omit - mpmath|/|mpmath| = {np.linalg.norm(g_omit - ref) / np.linalg.norm(ref):.1e}")
    r1 = fastgrad.gradcheck(cost, g_right, th, progress=False)
    r2 = fastgrad.gradcheck(cost, g_omit, th, progress=False)
    print(f"   right gradient : expected pass/inconclusive, got {r1.verdict} (diff {r1.difference:.3g}, tol {r1.tolerance:.3g})")
    print(f"   slope omitted  : expected fail/inconclusive, got {r2.verdict} (diff {r2.difference:.3g}, tol {r2.tolerance:.3g})")
    bad += (r1.verdict == "fail") + (r2.verdict == "pass")
print("VIOLATIONS:", bad)
