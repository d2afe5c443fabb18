"""A correctly rounded float16 block whose values lie below float16's normal range FAILS.

Cost 0.5*sum(c_i * t_i^2) with a gradient block "small" of size ~1e-8..3e-8 (as after
training a GRU to a loss of 4e-14, where this was found) and a block "big" of size ~1.
Giving "small" as float16 (the nearest float16 values: 0 or 6e-8, i.e. the dtype's
own rounding near underflow) the check FAILS in "small" (full, directional and
sharded+merged). Expected: not fail (pass or inconclusive: float16 cannot hold these
values). It also adds "small" to failing_blocks when a real bug sits in "big".
Likely cause: the allowance "64 ulps of its own dtype per component" is relative
(eps * |value|) and ignores float16's subnormal spacing (6e-8) / flush to zero.

Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam7/repro_float16_subnormal.py
"""
import numpy as np
import fastgrad

rng = np.random.default_rng(0)
params = {"big": rng.normal(size=8), "small": rng.normal(size=12)}
theta, layout = fastgrad.pack(params)
c = np.concatenate([np.ones(8), 2e-8 * np.ones(12)])


def cost(t):
    return float(0.5 * np.sum(c * t * t))


g = fastgrad.unpack(c * theta, layout)
g16 = dict(g, small=g["small"].astype(np.float16))
print("small (float64):", g["small"][:4], " as float16:", g16["small"][:4])
bad = 0
n = theta.size
for label, kw in [("full", {}), ("directional", {"mode": "directional"})]:
    rep = fastgrad.gradcheck(cost, g16, theta, layout=layout, progress=False, **kw)
    bad += rep.verdict == "fail"
    print(f"correct, {label:11s}: expected pass/inconclusive, got {rep.verdict} {list(rep.failing_blocks)}")
rm = fastgrad.merge_reports(
    fastgrad.gradcheck(cost, g16, theta, layout=layout, indices=np.arange(0, n, 2), progress=False),
    fastgrad.gradcheck(cost, g16, theta, layout=layout, indices=np.arange(1, n, 2), progress=False))
bad += rm.verdict == "fail"
print(f"correct, sharded+merged: expected pass/inconclusive, got {rm.verdict} {list(rm.failing_blocks)}")
rep = fastgrad.gradcheck(cost, dict(g16, big=g["big"] * (1 + 1e-5)), theta, layout=layout, progress=False)
bad += list(rep.failing_blocks) != ["big"]
print(f"bug in big only: expected fail ['big'], got {rep.verdict} {list(rep.failing_blocks)}")
print("violations:", bad)
