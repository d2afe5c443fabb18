"""Behaviour 3: float32 / float16 gradient blocks below the normal range next
to float64 blocks, full and directional. J = s * u.a + 0.5 ||b||^2 (a: tiny
block in float32/float16, b: float64 block of normal size).
Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam8/group3_f32sub.py
"""
import sys, os
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np, fastgrad
from harness import check, summary

rng = np.random.default_rng(3)
u = rng.uniform(0.5, 1, size=4) * np.array([1, -1, 1, -1])
for dt, s in [(np.float32, 1e-40), (np.float32, 1e-39), (np.float32, 1e-38), (np.float16, 1e-6), (np.float16, 3e-5), (np.float16, 1e-7)]:
    a = rng.normal(size=4); b = rng.normal(size=3)
    theta, layout = fastgrad.pack({"tiny.weight": a, "lin.weight": b})
    cost = lambda t, s=s: s * float(u @ t[:4]) + 0.5 * float(t[4:] @ t[4:])
    g = {"tiny.weight": (s * u).astype(dt), "lin.weight": b.copy()}
    nm = np.dtype(dt).name
    for mode in ["full", "directional"]:
        check(f"{nm} s={s:g} [{mode}] correct", cost, g, theta, layout=layout, mode=mode, expect="correct")
        gb = dict(g); gb["tiny.weight"] = -g["tiny.weight"]
        check(f"{nm} s={s:g} [{mode}] sign tiny", cost, gb, theta, layout=layout, mode=mode, expect="bug", bad_blocks=["tiny.weight"])
        gb = dict(g); gb["tiny.weight"] = (2 * g["tiny.weight"].astype(float)).astype(dt)
        check(f"{nm} s={s:g} [{mode}] x2 tiny", cost, gb, theta, layout=layout, mode=mode, expect="bug", bad_blocks=["tiny.weight"])
        gb = dict(g); gb["lin.weight"] = b * (1 + 1e-5)
        check(f"{nm} s={s:g} [{mode}] 1e-5 lin(f64)", cost, gb, theta, layout=layout, mode=mode, expect="bug", bad_blocks=["lin.weight"])
        gb = dict(g); gb["lin.weight"] = b.copy(); gb["lin.weight"][0] *= -1
        check(f"{nm} s={s:g} [{mode}] sign-one lin(f64)", cost, gb, theta, layout=layout, mode=mode, expect="bug", bad_blocks=["lin.weight"])
summary()
