"""Rule 3 applies float32's 1e-4 band to blocks given in float64: one float32 block in the dict makes
the whole gradient 'float32' (prepare_grad: the least precise dtype decides), so a 2e-5 bug in a
float64 block computed exactly in float64 (v**3) comes out inconclusive, with the reason
'grad is float32 ... float32 rounding ... can reach'. All-float64: FAIL.
Run: cd /tmp/rt6 && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python repro_rule3_mixed_dtype.py"""
import numpy as np, fastgrad
rng = np.random.default_rng(5)
N, d = 200, 50
X = rng.normal(size=(N, d)); y = (rng.random(N) < 0.5).astype(float)
theta, layout = fastgrad.pack({"w": 0.3 * rng.normal(size=d), "b": np.array([0.1]), "v": rng.normal(size=5)})
def parts(t):
    p = fastgrad.unpack(t, layout); return p["w"], p["b"][0], p["v"]
def cost(t):
    w, b, v = parts(t); z = X @ w + b
    return np.mean(np.logaddexp(0, z) - y * z) + 0.5e-3 * np.sum(w**2) + 0.25 * np.sum(v**4)
w, b, v = parts(theta); z = X @ w + b; r = 1 / (1 + np.exp(-z)) - y
G = {"w": X.T @ r / N + 1e-3 * w, "b": np.array([r.mean()]), "v": v**3}      # float64, exact
def report(tag, grads):
    rep = fastgrad.gradcheck(cost, grads, theta, layout=layout)
    print(f"{tag:52s} verdict={rep.verdict:12s} failing={list(rep.failing_blocks)}")
    for bl in rep.blocks:
        print(f"      {bl.name}: {bl.verdict:12s} diff={bl.difference:.3g} tol={bl.tolerance:.3g}",
              (bl.reasons[0][:110] if bl.reasons else ""))
bug = {**G, "v": G["v"] * (1 + 2e-5)}                         # BUG in v (float64 block)
report("all float64, v*(1+2e-5)", bug)
report("b given as float32, v (float64) *(1+2e-5)", {**bug, "b": G["b"].astype(np.float32)})
bug = {**G, "w": G["w"] * (1 + 5e-5)}
report("all float64, w*(1+5e-5)", bug)
report("b given as float32, w (float64) *(1+5e-5)", {**bug, "b": G["b"].astype(np.float32)})
