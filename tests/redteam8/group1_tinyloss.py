"""Behaviour 1 at tiny losses: MLP / RNN MSE near a perfect fit (student =
teacher + delta), logistic regression on separable data, and the same models
under a constant offset. Correct gradients verified against mpmath; bugs of
1e-5 relative on one block must FAIL in exactly that block.
Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam8/group1_tinyloss.py
"""
import sys, os
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np, fastgrad
from harness import check, summary, rel
from models import MLP, RNN, LogReg, mp_reference

VERIFY = os.environ.get("RT8_VERIFY", "1") == "1"


def run_model(tag, model, params, offset=0.0, bugs=True):
    theta, layout = fastgrad.pack(params)
    def cost(t):
        return offset + model.loss(fastgrad.unpack(t, layout))
    g = model.grads(params)
    gv = fastgrad.pack(g, layout=layout)
    J = model.loss(params)
    if VERIFY:
        ref = mp_reference(model, params, layout)
        err = rel(gv, ref)
        # per block too
        worst = 0
        off = 0
        for name in layout.names:
            sz = g[name].size
            worst = max(worst, rel(gv[off:off + sz], ref[off:off + sz])); off += sz
        note = f" [mp-ref rel {err:.1e}, worst block {worst:.1e}]"
        assert worst < 1e-8, (tag, worst)
    else:
        note = ""
    check(f"{tag} J={J:.2e}{note} correct", cost, g, theta, layout=layout, expect="correct")
    if not bugs:
        return
    for name in layout.names:
        for kind in ("scale", "one"):
            gb = {k: v.copy() for k, v in g.items()}
            if kind == "scale":
                gb[name] *= (1 + 1e-5)
            else:
                flat = gb[name].reshape(-1)
                j = int(np.argmax(np.abs(flat)))
                flat[j] += 1e-5 * np.linalg.norm(flat)
            check(f"{tag} 1e-5 {kind} bug in {name}", cost, gb, theta, layout=layout,
                  expect="bug", bad_blocks=[name])


which = sys.argv[1:] or ["mlp", "rnn", "logreg", "offset"]
if "mlp" in which:
    m = MLP(3, 5, 2, 30, seed=0)
    for delta in [1e-5, 1e-7, 1e-8, 3e-9]:
        rng = np.random.default_rng(1)
        p = {k: v + delta * rng.normal(size=v.shape) for k, v in m.teacher.items()}
        run_model(f"MLP delta={delta:g}", m, p)
if "rnn" in which:
    r = RNN(2, 4, 5, 12, seed=0)
    for delta in [1e-7, 1e-8, 3e-9]:
        rng = np.random.default_rng(2)
        p = {k: v + delta * rng.normal(size=v.shape) for k, v in r.teacher.items()}
        run_model(f"RNN delta={delta:g}", r, p)
if "logreg" in which:
    for scale in [10.0, 20.0, 30.0, 40.0]:
        lr = LogReg(4, 40, scale, seed=3)
        run_model(f"LogReg sep scale={scale:g}", lr, dict(lr.teacher))
if "offset" in which:
    m = MLP(3, 5, 2, 30, seed=0)
    rng = np.random.default_rng(1)
    for delta, off in [(1e-3, 1e8), (1e-5, 1e4), (1e-2, 1e8)]:
        p = {k: v + delta * rng.normal(size=v.shape) for k, v in m.teacher.items()}
        run_model(f"MLP delta={delta:g} offset={off:g}", m, p, offset=off)
summary()
