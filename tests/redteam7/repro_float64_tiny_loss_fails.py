"""BORDERLINE (not counted as a fastgrad fault): a textbook float64 back-prop FAILS at a tiny loss.

Logistic regression on separable data at a point where the loss is ~1e-15. The
back-prop X.T @ (sigmoid(s) - y) / N is the correct formula, but for y=1 the
float64 value sigmoid(s) - 1 has lost most of its digits, so the float64 gradient
is itself off by ~1e-3 relative. fastgrad says FAIL in every block; its numerical
values agree to 1e-9 with the exact gradient (mpmath, 50 digits), which PASSES.
The promise "a correct gradient never fails" is broken in letter only: the numbers
handed over really are wrong; there is no float64 allowance as there is for float32.
Same thing seen in a softplus/ELU MLP driven by L-BFGS to a loss of 3e-14
(harness.py full, model softplus_elu_logistic, point optimum).

Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam7/repro_float64_tiny_loss_fails.py
"""
import numpy as np
import fastgrad

rng = np.random.default_rng(0)
N, d = 60, 4
X = rng.normal(size=(N, d))
wt = rng.normal(size=d)
y = (X @ wt > 0).astype(float)
z = X @ wt
w = wt * (80.0 / (z[y == 1].min() - z[y == 0].max()))
z = X @ w
b = 30.0 - z[y == 1].min()          # positives' smallest margin 30, negatives' >= 50: loss ~ 1e-15
theta, layout = fastgrad.pack({"w": w, "b": np.array(b)})


def cost(t):
    s = X @ t[:d] + t[d]
    return float(np.mean(np.logaddexp(0, -(2 * y - 1) * s)))


def grad(t, dt):
    Xc, yc, tc = X.astype(dt), y.astype(dt), t.astype(dt)
    s = Xc @ tc[:d] + tc[d]
    r = (1 / (1 + np.exp(-np.clip(s, -700, 700))) - yc) / N
    return {"w": (Xc.T @ r).astype(np.float64), "b": np.array(r.sum(), dtype=np.float64)}


import mpmath
mpmath.mp.dps = 50


def exact_grad(t):
    r = []
    for i in range(N):
        si = mpmath.fsum(mpmath.mpf(float(X[i, j])) * mpmath.mpf(float(t[j])) for j in range(d)) + mpmath.mpf(float(t[d]))
        r.append((1 / (1 + mpmath.exp(-si)) - int(y[i])) / N)
    w = [float(mpmath.fsum(mpmath.mpf(float(X[i, j])) * r[i] for i in range(N))) for j in range(d)]
    return {"w": np.array(w), "b": np.array(float(mpmath.fsum(r)))}


g64, gld = grad(theta, np.float64), exact_grad(theta)
print("loss", cost(theta))
for k in g64:
    print(f"  {k}: float64 back-prop's own rounding error vs exact {np.linalg.norm(g64[k] - gld[k]) / np.linalg.norm(gld[k]):.2e}")
r64 = fastgrad.gradcheck(cost, g64, theta, layout=layout, progress=False)
rld = fastgrad.gradcheck(cost, gld, theta, layout=layout, progress=False)
print("fastgrad's numerical values vs exact, max rel:", float(np.max(np.abs(r64.approx - np.append(gld["w"], gld["b"])) / np.abs(np.append(gld["w"], gld["b"])))))
print("float64 back-prop (correct formula): expected pass/inconclusive, got", r64.verdict, list(r64.failing_blocks))
print("exact gradient (mpmath)          :", rld.verdict)
