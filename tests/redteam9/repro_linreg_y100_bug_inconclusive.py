"""Least squares with a bias, examples as rows, targets ~100 fitted exactly at (w*, b*); J(theta) = 1e-16.
A 1e-4 relative bug in the bias gradient (7.5e-13 absolute) is INCONCLUSIVE (was FAIL before 55f5f80),
although the tool's own central difference of that component is within 2.7e-15 of the mpmath value
(bug / realized error ~ 280) and its ordinary error bar (3.7e-15) was right; the growth factor (~3000)
widens it to ~1e-11. Same for a 1e-4 change of the whole w block (bug 7e-13 per component vs errors ~1e-15).
Run: FASTGRAD_QUIET=1 PYTHONPATH=/work/main python repro_linreg_y100_bug_inconclusive.py"""
import numpy as np, mpmath, fastgrad
rng = np.random.default_rng(7)
m, d = 40, 6
X = rng.normal(size=(m, d)); w0 = rng.normal(size=d)
y = 100.0 * (X @ w0 + 0.7)
star = np.concatenate([100.0 * w0, [70.0]]); dirn = rng.normal(size=d + 1)
def J(th):
    r = X @ th[:d] + th[d] - y
    return float(0.5 / m * (r @ r))
def grad(th):
    r = X @ th[:d] + th[d] - y
    return np.concatenate([X.T @ r / m, [r.sum() / m]])
t = np.sqrt(1e-16 / J(star + dirn * 1e-6)) * 1e-6
theta = star + t * dirn
mpmath.mp.dps = 40
rr = [mpmath.fsum(mpmath.mpf(X[i, j]) * mpmath.mpf(theta[j]) for j in range(d)) + mpmath.mpf(theta[d]) - mpmath.mpf(y[i]) for i in range(m)]
ref = np.array([float(mpmath.fsum(mpmath.mpf(X[i, j]) * rr[i] for i in range(m)) / m) for j in range(d)] + [float(mpmath.fsum(rr) / m)])
g = grad(theta)
lay = fastgrad.Layout(("w", "b"), ((d,), (1,)))
print(f"J(theta) = {J(theta):.3g}; analytic vs mpmath rel {np.linalg.norm(g - ref) / np.linalg.norm(ref):.1e}")
for name, gg in [("exact", g), ("b*(1+1e-4)", np.concatenate([g[:d], g[d:] * (1 + 1e-4)])),
                 ("w*(1+1e-4)", np.concatenate([g[:d] * (1 + 1e-4), g[d:]]))]:
    r = fastgrad.gradcheck(J, {"w": gg[:d], "b": gg[d:]}, theta, layout=lay, progress=False)
    a = np.asarray(r.approx); gro = getattr(r, "growth", None); gmax = 1.0 if gro is None else float(np.max(gro))
    print(f"{name:11s}: {r.verdict:12s} diff {r.difference:.3g} tol {r.tolerance:.3g} | bug max {np.max(np.abs(gg - ref)):.1e}"
          f"  |approx-mpmath|max {np.max(np.abs(a - ref)):.1e}  error max {np.max(r.error):.1e}  growth max {gmax:.3g}")
