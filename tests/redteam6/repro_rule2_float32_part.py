"""Rule 2 hides a block sign flip in a cost summed partly in float32 (w cast to float32 for half of
the loss; the other half in float64). Both readings of the staircase (slope inside a stair = 0.5 g,
average slope = g) are >100% away from -g, yet the check says inconclusive.
Run: cd /tmp/rt6 && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python repro_rule2_float32_part.py"""
import numpy as np, fastgrad
from fastgrad._differences import STATE_NAMES
def show(tag, r):
    st = {}
    for s in r.state: st[STATE_NAMES[s]] = st.get(STATE_NAMES[s], 0) + 1
    print(f"{tag:40s} verdict={r.verdict:12s} failing={list(r.failing_blocks)} diff={r.difference:.3g} noise={r.noise_level:.3g} states={st}")
    for x in r.reasons: print("      reason:", x[:150])
rng = np.random.default_rng(1)
n = 8
A = rng.normal(size=(40, n)); b = rng.normal(size=40)
theta, layout = fastgrad.pack({"w": rng.normal(size=n), "v": rng.normal(size=3)})
def make(frac):
    def cost(t):
        w, v = t[:n], t[n:]
        r = A @ w - b
        part64 = (1 - frac) * 0.5 * (r @ r) / 40 + 0.5 * np.sum(v**2 * np.arange(1, 4))
        rr = A.astype(np.float32) @ w.astype(np.float32) - b.astype(np.float32)
        part32 = float(np.float32(frac) * np.float32(0.5) * (rr @ rr) / np.float32(40))
        return part64 + part32
    return cost
w, v = theta[:n], theta[n:]
g = np.concatenate([A.T @ (A @ w - b) / 40, v * np.arange(1, 4)])
flip = g.copy(); flip[:n] *= -1
for frac in (1.0, 0.5):
    cost = make(frac)
    print(f"== float32 share of the loss: {frac}")
    show("  correct", fastgrad.gradcheck(cost, g, theta, layout=layout))
    show("  BUG: sign of block w flipped", fastgrad.gradcheck(cost, flip, theta, layout=layout))
import fastgrad._driver as D
D._Measurement._check_jumps = lambda self, rows, sigma: np.zeros(rows.size, bool)
show("frac 0.5, sign flip, rule 2 disabled", fastgrad.gradcheck(make(0.5), flip, theta, layout=layout))
