"""Logistic regression, soft labels P from a teacher, cost = cross-entropy - entropy (KL, exact fit at w*),
examples as rows. At J ~ 6e-17 the NEGATED / DOUBLED gradient is INCONCLUSIVE (was FAIL before 55f5f80).
The cost's rounding here is flat (eps * CE ~ 1e-17, it does not grow like sqrt(J) at the steps), the tool's
own central differences are within 5e-14 of the mpmath gradient (|g| ~ 5e-9), yet the growth band allows
a relative difference of 3 (> 1, the largest possible), so no bug of any size can fail.
Run: FASTGRAD_QUIET=1 PYTHONPATH=/work/main python repro_kl_signflip_inconclusive.py  (or PYTHONPATH=/tmp/rt9/before)"""
import numpy as np, mpmath, fastgrad
rng = np.random.default_rng(7)
m, d = 50, 5
X = rng.normal(size=(m, d)); wstar = rng.normal(size=d)
P = 1 / (1 + np.exp(-(X @ wstar)))
H = -np.mean(P * np.log(P) + (1 - P) * np.log(1 - P))
J = lambda w: float(np.mean(P * np.logaddexp(0, -(X @ w)) + (1 - P) * np.logaddexp(0, X @ w)) - H)
grad = lambda w: X.T @ (1 / (1 + np.exp(-(X @ w))) - P) / m
dirn = rng.normal(size=d)
t = 1e-2
for _ in range(60):                               # J(theta) ~ 1e-16 along dirn from w*
    v = J(wstar + t * dirn); tn = t * np.sqrt(1e-16 / v)
    if abs(np.log(tn / t)) < 1e-3: t = tn; break
    t = tn
theta = wstar + t * dirn
mpmath.mp.dps = 40
q = [1 / (1 + mpmath.exp(-mpmath.fsum(mpmath.mpf(X[i, j]) * mpmath.mpf(theta[j]) for j in range(d)))) for i in range(m)]
ref = np.array([float(mpmath.fsum(mpmath.mpf(X[i, j]) * (q[i] - mpmath.mpf(P[i])) for i in range(m)) / m) for j in range(d)])
g = grad(theta)
print(f"J(theta) = {J(theta):.3g}; analytic vs mpmath rel {np.linalg.norm(g - ref) / np.linalg.norm(ref):.1e}")
for name, gg in [("exact", g), ("negated", -g), ("doubled", 2 * g)]:
    r = fastgrad.gradcheck(J, gg, theta, progress=False)
    print(f"{name:8s}: {r.verdict:12s} diff {r.difference:.3g} tol {r.tolerance:.3g}  |approx-mpmath|max {np.max(np.abs(np.asarray(r.approx) - ref)):.1e}")
    if r.verdict == "inconclusive": print("   ", r.reasons[0][:230])
