"""Rule 2 (per-component jump scan) hides a sign flip: a legitimately piecewise cost whose
only discontinuity lies 5e-4 (relative) away from theta, far outside every finite-difference step.
Run: cd /tmp/rt6 && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python repro_rule2_jump.py"""
import numpy as np, fastgrad
from fastgrad._differences import STATE_NAMES
def show(tag, r):
    st = {}
    for s in r.state: st[STATE_NAMES[s]] = st.get(STATE_NAMES[s], 0) + 1
    print(f"{tag:34s} verdict={r.verdict:12s} failing={list(r.failing_blocks)} diff={r.difference:.3g} states={st}")
    for x in r.reasons: print("      reason:", x[:160])
rng = np.random.default_rng(0)
A = rng.normal(size=(20, 5)); b = rng.normal(size=20)
theta, layout = fastgrad.pack({"w": rng.normal(size=5) + 2.0})
cut = theta[2] * (1 + 5e-4)                     # branch point 5e-4 relative from theta[2]
def cost(t):                                    # J = least squares + a fee of 0.01 once w[2] passes `cut`
    r = A @ t - b
    return 0.5 * r @ r / 20 + (0.01 if t[2] > cut else 0.0)
g = A.T @ (A @ theta - b) / 20                  # exact gradient at theta (the fee is flat there)
print("J =", cost(theta), " grad =", g)
show("correct", fastgrad.gradcheck(cost, g, theta, layout=layout))
bad = g.copy(); bad[2] = -bad[2]
show("BUG: sign of w[2] flipped", fastgrad.gradcheck(cost, bad, theta, layout=layout))
bad = g.copy(); bad[2] *= 1.01
show("BUG: w[2] * 1.01", fastgrad.gradcheck(cost, bad, theta, layout=layout))
# the same bug without the far-away branch fails, as it should:
def smooth(t):
    r = A @ t - b; return 0.5 * r @ r / 20
bad = g.copy(); bad[2] = -bad[2]
show("same sign flip, no branch", fastgrad.gradcheck(smooth, bad, theta, layout=layout))
# attribution: disable only _check_jumps (rule 2)
import fastgrad._driver as D
D._Measurement._check_jumps = lambda self, rows, sigma: np.zeros(rows.size, bool)
show("sign flip, rule 2 disabled", fastgrad.gradcheck(cost, bad, theta, layout=layout))
rep = fastgrad.gradcheck(cost, g, theta, layout=layout)
print("steps used for w[2] (correct run):", rep.steps[2], " distance to the branch:", cut - theta[2])
