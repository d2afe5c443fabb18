"""Behaviour 1 sweep: costs whose rounding is NOT smallest at theta.
J = sum_i (L_i (t_i - c_i))^2 computed through predictions of size P
(r = (P + L(t-c)) - P: rounding eps*P in every residual), with the optimum c
placed at relative offsets s from theta, on either side, so that the noise
lines 1e-4/1e-6/1e-8 away see smaller or larger residuals than theta; plus an
optional fine ripple or float32 term that makes the finest line unclean.
Correct gradient: 2 L^2 (t - c) (the P cancels exactly in exact arithmetic).
Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam8/group1_sweep.py
"""
import sys, os
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np
from harness import check, summary

n = 4
rng = np.random.default_rng(5)
L = rng.uniform(0.5, 2, size=n)
for P in [1.0, 1e3]:
    for s in [1e-4, -1e-4, 1e-6, -1e-6, 1.003e-6, 1e-8, -1e-8, 1e-9, 1e-7]:
        for extra in ["none", "ripple", "f32"]:
            th = rng.uniform(0.5, 2, size=n)
            c = th * (1 + s)
            def cost(t, c=c, P=P, extra=extra):
                r = (P + L * (t - c)) - P
                J = float(np.sum(r * r))
                if extra == "ripple":
                    J += 1e-30 * float(np.sum(np.sin(1e10 * t)))
                elif extra == "f32":
                    J += float(np.float32(1e-12 * np.sum(t)))
                return J
            g = 2 * L * L * (th - c)
            if extra == "ripple":
                g = g + 1e-30 * 1e10 * np.cos(1e10 * th)
            elif extra == "f32":
                g = g + 1e-12   # slope of the smooth version of the float32 term
            r = check(f"P={P:g} s={s:g} extra={extra}", cost, g, th, expect="correct")
            if r.verdict == "fail":
                print("      th =", repr(th.tolist()), "\n      c =", repr(c.tolist()), "\n      L =", repr(L.tolist()))
            gb = g.copy(); gb[1] *= 1 + 1e-5
            check(f"P={P:g} s={s:g} extra={extra} 1e-5 bug comp1", cost, gb, th, expect="bug")
summary()
