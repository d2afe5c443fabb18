"""(Pre-existing, same verdict before and after 55f5f80.) 1e-5 relative bugs PASS within a tolerance widened
by the measured error: least squares whose predictions are computed in float32 (J ~ 1), and the KL logistic
cost at J ~ 1e-14. The planted bug is 25-50x the 1e-7 threshold.
Run: FASTGRAD_QUIET=1 PYTHONPATH=/work/main python repro_prior_bug_pass.py"""
import sys; sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import numpy as np, fastgrad
from cases import make_linreg, make_logkl, place, buggy, pack
for fam, mk, Jt in [("linreg_f32", lambda J: make_linreg(7, J, f32=True), 1.0), ("logkl", lambda J: make_logkl(7, J), 1e-14)]:
    J, gf, ref, names, shapes, star, dirn = mk(Jt)
    th = place(J, star, dirn, Jt); r = ref(th)
    for bug in ("comp1e-5", "blk1e-5"):
        g = buggy(gf, th, names, bug); gv = pack(g, names)
        rep = fastgrad.gradcheck(J, g, th, layout=fastgrad.Layout(names, shapes), progress=False)
        print(f"{fam} J={J(th):.2g} {bug}: {rep.verdict} diff {rep.difference:.3g} tol {rep.tolerance:.3g}; true rel. bug {np.linalg.norm(gv - r) / (np.linalg.norm(gv) + np.linalg.norm(r)):.2g}")
