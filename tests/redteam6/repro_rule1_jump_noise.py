"""Rule 1 (staircase keeps coarse noise) turns ONE genuine jump of a piecewise cost into a noise
level ~4e7 times the real one for the WHOLE check: a missing L2 term in an unrelated block (c, which
the jump does not involve) then PASSES; with the old ripple rule (fine level wins) it fails.
Run: cd /tmp/rt6 && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python repro_rule1_jump_noise.py"""
import numpy as np, fastgrad
from fastgrad._differences import STATE_NAMES
import fastgrad._driver as D, fastgrad._differences as fd
def show(tag, r):
    st = {}
    for s in r.state: st[STATE_NAMES[s]] = st.get(STATE_NAMES[s], 0) + 1
    print(f"{tag:46s} verdict={r.verdict:12s} failing={list(r.failing_blocks)} diff={r.difference:.3g} tol={r.tolerance:.3g} noise={r.noise_level:.3g} states={st}")
    for x in r.reasons: print("      reason:", x[:150])
rng = np.random.default_rng(0)
n = 10
A = rng.normal(size=(30, n)); b = rng.normal(size=30)
theta, layout = fastgrad.pack({"w": rng.normal(size=n) + 1.5, "c": rng.normal(size=4)})
k = n // 2                                     # the middle of the largest block: a noise line runs along it
cut = theta[k] * (1 + 1e-4) + 0.3e-7 * abs(theta[k])   # a branch point 1e-4 (relative) from theta[k]
lam, fee = 1e-4, 7e-7
def cost(t):
    w, c = t[:n], t[n:]
    r = A @ w - b
    return (0.5 * r @ r / 30 + 0.5 * c @ c + 0.3 * c.sum() + 0.5 * lam * c @ c
            + (fee if t[k] > cut else 0.0))    # a fee of 7e-7 (J ~ 19.5) once w[5] passes the cut
w, c = theta[:n], theta[n:]
g_true = np.concatenate([A.T @ (A @ w - b) / 30, c + 0.3 + lam * c])
g_bug = g_true.copy(); g_bug[n:] -= lam * c   # BUG: the L2 term of c is missing
print("J =", cost(theta), " relative size of the missing term in c:",
      np.linalg.norm(lam * c) / np.linalg.norm(g_true[n:]))
show("correct", fastgrad.gradcheck(cost, g_true, theta, layout=layout))
show("BUG: missing L2 term in block c", fastgrad.gradcheck(cost, g_bug, theta, layout=layout))
def smooth(t): return cost(t) - (fee if t[k] > cut else 0.0)
show("same bug, cost without the fee", fastgrad.gradcheck(smooth, g_bug, theta, layout=layout))
g2 = g_true.copy(); g2[0] = -g2[0]
fee = 1e-4
show("fee=1e-4, BUG: sign of w[0] flipped", fastgrad.gradcheck(cost, g2, theta, layout=layout))
fee = 7e-7
# attribution: the old rule (finest noise wins when it is 16x below and clean), rule 1 removed
def old_finer_noise(engine, k, level, points, values):
    vals, failed = D._noise_line(engine, k, fd.noise_points(float(engine.theta[k]), fd.NOISE_SPACINGS[-1]))
    if failed: return level
    finer, clean = fd.noise_level(vals, engine.cost_value)
    return finer if (clean and finer * fd.STRUCTURE_FACTOR < level) else level
D._finer_noise = old_finer_noise
show("missing L2 in c, rule 1 removed", fastgrad.gradcheck(cost, g_bug, theta, layout=layout))
fee = 1e-4
show("fee=1e-4, w[0] flipped, rule 1 removed", fastgrad.gradcheck(cost, g2, theta, layout=layout))
