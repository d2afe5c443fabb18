"""Red-team harness for fastgrad (behaviours: near-theta noise, directional
mixed dtypes, subnormal float16/float32 allowance).

Run:  cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam8/harness.py [group]
Each check states what verdict is acceptable; a violation is printed as VIOLATION.
"""
import sys, time
import numpy as np
import mpmath
import fastgrad

RESULTS = []


def mp_grad(cost_mp, theta, dps=50, idx=None):
    """Reference gradient by mpmath numerical differentiation of a high
    precision re-implementation of the cost (cost_mp(list_of_mpf) -> mpf)."""
    mpmath.mp.dps = dps
    th = [mpmath.mpf(float(t)) for t in theta]
    n = len(th)
    idx = range(n) if idx is None else idx
    g = np.zeros(n)
    for k in idx:
        def f(x, k=k):
            t = list(th); t[k] = x
            return cost_mp(t)
        g[k] = float(mpmath.diff(f, th[k]))
    return g


def rel(a, b):
    a = np.asarray(a, float); b = np.asarray(b, float)
    d = np.linalg.norm(a - b); s = np.linalg.norm(a) + np.linalg.norm(b)
    return d / s if s else 0.0


def check(name, cost, grad, theta, *, expect, layout=None, bad_blocks=None, **kw):
    """expect: 'correct' (pass or sensible inconclusive OK; fail = violation)
               'bug'     (must fail, failing_blocks == bad_blocks; pass = violation,
                          inconclusive = noted, wrong blocks = violation)"""
    t0 = time.time()
    r = fastgrad.gradcheck(cost, grad, theta, layout=layout, progress=False, **kw)
    dt = time.time() - t0
    v = r.verdict
    fb = sorted(r.failing_blocks) if layout is not None else None
    status = "ok"
    if expect == "correct":
        if v == "fail":
            status = "VIOLATION(false fail)"
        elif v == "inconclusive":
            status = "inconclusive"
    else:
        if v == "pass":
            status = "VIOLATION(bug passed)"
        elif v == "inconclusive":
            status = "inconclusive(bug)"
        elif bad_blocks is not None and fb != sorted(bad_blocks):
            status = f"VIOLATION(localisation {fb} != {sorted(bad_blocks)})"
    line = (f"[{status:>24}] {name}: verdict={v} diff={r.difference:.3g} "
            f"noise={r.noise_level:.3g} fb={fb} ({dt:.1f}s)")
    if v != "pass" and status != "ok" or status.startswith("VIOL"):
        line += "\n      reasons=" + "; ".join(map(str, r.reasons))[:400]
        if layout is not None:
            for b in r.blocks:
                line += f"\n      block {b.name}: {b.verdict} d={b.difference:.3g} tol={b.tolerance:.3g}"
    print(line, flush=True)
    RESULTS.append((name, expect, v, status))
    return r


def summary():
    n = len(RESULTS)
    viol = [r for r in RESULTS if r[3].startswith("VIOL")]
    inc = [r for r in RESULTS if r[2] == "inconclusive"]
    print(f"\n{n} checks, {len(viol)} violations, {len(inc)} inconclusive")
    for r in viol:
        print("  ", r)
