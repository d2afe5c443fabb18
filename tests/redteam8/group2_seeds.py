"""Behaviour 2: directional mode, mixed dtypes, a float64 block whose gradient
is 1e-8..1e-10 of the float32 blocks' (per-block directional check at the
resolution limit). Correct gradients over seeds must never fail.
Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam8/group2_seeds.py
"""
import sys, os
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np, fastgrad
from harness import check, summary
from group23_dtypes import MLPTiny, bugs

f32, f64 = np.float32, np.float64
for s in [1e-8, 3e-9, 1e-9]:
    mdl = MLPTiny(3, 6, 2, 2000, seed=0, s=s)
    rng = np.random.default_rng(1)
    p = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in mdl.teacher.items()}
    theta, layout = fastgrad.pack(p)
    cost = lambda t, mdl=mdl: mdl.loss(fastgrad.unpack(t, layout))
    g64 = mdl.grads(p); g32 = mdl.grads(p, np.float32)
    for mix in ["mixed", "all64"]:
        g = {k: (g32[k] if (k != "tiny.weight" and mix == "mixed") else g64[k]) for k in g64}
        for seed in range(8):
            check(f"s={s:g} {mix} seed={seed} correct", cost, g, theta, layout=layout,
                  mode="directional", seed=seed, expect="correct")
            check(f"s={s:g} {mix} seed={seed} 1e-5 tiny", cost, bugs(g, "tiny.weight", "1e-5"), theta,
                  layout=layout, mode="directional", seed=seed, expect="bug", bad_blocks=["tiny.weight"])
            check(f"s={s:g} {mix} seed={seed} sign tiny", cost, bugs(g, "tiny.weight", "sign"), theta,
                  layout=layout, mode="directional", seed=seed, expect="bug", bad_blocks=["tiny.weight"])
summary()
