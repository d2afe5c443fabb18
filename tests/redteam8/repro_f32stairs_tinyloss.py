"""Violation (behaviour 1, cost summed partly in float32): a tiny loss
(J ~ 1e-16) plus a float32 term float32(1e-12 * sum(t)) whose stairs
(height ~3e-19, width ~3e-7 in t) dwarf J's rounding at theta. The gradient of
the cost as written (2 L^2 (t - c) + 1e-12, the float32 term's slope) FAILS
(diff 5.7e-6 and 4.7e-5). The README says a component with stairs is left
unresolved unless their average slope contradicts grad too; here grad equals
the average slope (printed). Same verdict before today's change (6eee939).

Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam8/repro_f32stairs_tinyloss.py
"""
import numpy as np, fastgrad

L = np.array([1.7075043856180703, 1.7119111846047406, 1.272988341563213, 0.9287020701322124])
cases = [([1.0707130559649853, 1.5698867961866783, 1.418776706247968, 1.9115014628639027],
          [1.0707130666721159, 1.569886811885546, 1.4187767204357349, 1.9115014819789171]),
         ([1.7348780270540474, 0.7358892306260669, 1.1076479792917393, 0.6102099677109163],
          [1.7348780287889256, 0.7358892313619562, 1.1076479803993873, 0.6102099683211263])]
bad = 0
for th, c in cases:
    th = np.array(th); c = np.array(c)
    cost = lambda t: float(np.sum(((1.0 + L * (t - c)) - 1.0) ** 2)) + float(np.float32(1e-12 * np.sum(t)))
    g = 2 * L * L * (th - c) + 1e-12
    # average slope of the float cost over steps spanning many stairs
    H = 3e-4
    avg = np.array([(cost(th + H * e) - cost(th - H * e)) / (2 * H) for e in np.eye(4)])
    print("grad      ", g, "\navg slope ", avg, " rel diff", np.linalg.norm(avg - g) / np.linalg.norm(g))
    r = fastgrad.gradcheck(cost, g, th, progress=False)
    print(f"expected: pass or inconclusive; actual: {r.verdict} (diff {r.difference:.3g}, tol {r.tolerance:.3g})\n")
    bad += r.verdict == "fail"
print("VIOLATIONS:", bad)
