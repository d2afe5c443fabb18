"""Directional mode judges a mixed-dtype gradient dict as if every block were float32.

Softmax regression (examples as rows). The gradient dict has W in float32 and b in
float64; b carries a planted relative error of 1e-5 (and 1e-4). In full mode both
bugs FAIL in block b (correct). With mode="directional" the 1e-5 bug PASSES and the
1e-4 bug is INCONCLUSIVE with the reason "grad is float32 ... within 0.0001 of the
block", although the corrupted block is float64 (README: "each block of a dict
against its own dtype's (one float32 block does not widen the float64 ones)").

Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam7/repro_directional_mixed_dtype.py
"""
import numpy as np
import fastgrad

rng = np.random.default_rng(0)
N, d, K = 60, 12, 5
X = rng.normal(size=(N, d)); y = rng.integers(0, K, size=N); Y = np.eye(K)[y]
params = {"W": 0.1 * rng.normal(size=(d, K)), "b": 0.1 * rng.normal(size=K)}
theta, layout = fastgrad.pack(params)


def cost(t):
    p = fastgrad.unpack(t, layout)
    A = X @ p["W"] + p["b"]
    m = A.max(1, keepdims=True)
    lse = (m + np.log(np.exp(A - m).sum(1, keepdims=True)))[:, 0]
    return float(np.mean(lse - A[np.arange(N), y]))


A = X @ params["W"] + params["b"]
P = np.exp(A - A.max(1, keepdims=True)); P /= P.sum(1, keepdims=True)
dA = (P - Y) / N
g = {"W": (X.T @ dA).astype(np.float32), "b": dA.sum(0)}          # W float32, b float64
bad = 0
for r in (1e-5, 1e-4):
    gb = dict(g, b=g["b"] * (1 + r))
    for mode in ("full", "directional"):
        rep = fastgrad.gradcheck(cost, gb, theta, layout=layout, mode=mode, progress=False)
        ok = rep.verdict == "fail" and list(rep.failing_blocks) == ["b"]
        bad += not ok
        print(f"b(float64)*(1+{r:g})  mode={mode:11s} expected fail ['b']  got {rep.verdict} {list(rep.failing_blocks)}"
              + ("" if ok else "   <== VIOLATION  reasons: " + " | ".join(rep.reasons)[:200]))
print("violations:", bad)
