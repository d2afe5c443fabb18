import sys, collections, numpy as np
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import fastgrad
from cases import *
c = collections.Counter(); bad = []
for fam in ["logkl", "linreg_y100", "mlp"]:
    for seed in (8, 9, 10, 11):
        for Jt in (1e-10, 1e-12, 1e-14, 1e-16):
            mk = {"logkl": lambda: make_logkl(seed, Jt), "linreg_y100": lambda: make_linreg(seed, Jt, yscale=100.0), "mlp": lambda: make_mlp(seed, Jt)}[fam]
            J, gf, ref, names, shapes, star, dirn = mk(); th = place(J, star, dirn, Jt)
            for bug in ("exact", "flip", "x2", "comp1e-4", "blk1e-4", "drop"):
                rep = fastgrad.gradcheck(J, buggy(gf, th, names, bug), th, layout=fastgrad.Layout(names, shapes), progress=False)
                gr = any("rounding grows" in x for x in rep.reasons)
                c[(fam, bug, rep.verdict + ("(growth)" if gr else ""))] += 1
                if (bug == "exact" and rep.verdict == "fail") or (bug != "exact" and rep.verdict == "pass") or (bug in ("flip", "x2") and rep.verdict != "fail"):
                    bad.append((fam, seed, Jt, f"{J(th):.2g}", bug, rep.verdict, gr))
for k, v in sorted(c.items()): print(k, v)
for b in bad: print("NOTE", b)
