import sys, numpy as np
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import fastgrad
from fastgrad import Layout
from cases import *
CASES = [("linreg_y100", 1e-16, "central", "comp1e-4"), ("linreg_y100", 1e-18, "central", "blk1e-3"),
         ("logkl", 1e-14, "central", "comp1e-3"), ("logkl", 1e-16, "central", "flip"), ("logkl", 1e-16, "central", "x2"),
         ("linreg_f32", 1e-12, "central", "flip"), ("mlp_f32", 1e-12, "central", "flip"), ("logkl", 1e-10, "forward", "comp1e-5")]
mk = {"linreg_y100": lambda J: make_linreg(7, J, yscale=100.0), "logkl": lambda J: make_logkl(7, J),
      "linreg_f32": lambda J: make_linreg(7, J, f32=True), "mlp_f32": lambda J: make_mlp(7, J, f32=True)}
rng = np.random.default_rng(1)
for fam, Jt, method, bug in CASES:
    J, gf, ref, names, shapes, star, dirn = mk[fam](Jt)
    th = place(J, star, dirn, Jt); r = ref(th); lay = Layout(names, shapes)
    g = pack(buggy(gf, th, names, bug), names)
    rep = fastgrad.gradcheck(J, buggy(gf, th, names, bug), th, layout=lay, method=method, progress=False)
    a = np.asarray(rep.approx); e = np.asarray(rep.error); gr = np.asarray(rep.growth) if rep.growth is not None else np.ones_like(a)
    eps = np.broadcast_to(np.asarray(rep.eps, dtype=float), a.shape)
    # realized noise of the central difference at the tool's own steps: jitter the step by +-10%
    spread = np.empty(a.size)
    for k in range(a.size):
        vals = []
        for _ in range(200):
            h = eps[k] * rng.uniform(0.9, 1.1); tp = th.copy(); tp[k] += h; tm = th.copy(); tm[k] -= h
            vals.append((J(tp) - J(tm)) / (2 * h))
        spread[k] = np.std(vals)
    print(f"\n== {fam} J={J(th):.2e} {method} {bug}: verdict {rep.verdict} diff {rep.difference:.3g} tol {rep.tolerance:.3g} sigma {rep.noise_level:.3g}")
    print("  max over comps: |grad-ref|/|ref|_2 = %.2e ; realized |approx-ref| = %.2e ; step-noise std (200 jittered) = %.2e ; claimed err = %.2e ; (g-1)*err upper = %.2e"
          % (np.max(np.abs(g - r)) / np.linalg.norm(r), np.max(np.abs(a - r)), np.max(spread), np.max(e), np.max((gr - 1) * e)))
    for k in range(a.size):
        print(f"  k={k:2d} ref={r[k]: .3e} bug={g[k]-r[k]: .2e} approx-ref={a[k]-r[k]: .2e} stepnoise={spread[k]:.2e} err={e[k]:.2e} g={gr[k]:.3g} (g-1)err={(gr[k]-1)*e[k]:.2e} h={eps[k]:.2e}")
