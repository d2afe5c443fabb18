"""Red-team cases for fastgrad (second tester), written without reading tests/.

Run:  PYTHONPATH=. python -m tests.redteam2.cases [substring ...]   (pytest: tests/redteam2/test_redteam2.py)

Prints one row per check: name, kind (correct/bug), verdict, ok?, seconds, note.
ok? is
  ok         correct -> pass, bug -> fail
  inc        inconclusive with a reason (tolerated by the contract; see note)
  VIOLATION  bug -> pass, correct -> fail, inconclusive without a reason, exception

Every "correct" gradient is verified independently before use: closed form checked
against a complex-step derivative of a complex-safe version of the same cost
(or, for scikit-learn and float32 costs, against a high-precision extrapolated
difference of a float64/longdouble reimplementation).
"""

from __future__ import annotations

import sys
import time
import traceback
import warnings

import numpy as np

import fastgrad

CASES: list = []  # (name, kind, thunk)


# --------------------------------------------------------------------------- helpers
def where_pos(z):
    return z.real > 0


def relu_c(z):
    return np.where(z.real > 0, z, 0 * z)


def abs_c(z):
    return np.where(z.real >= 0, z, -z)


def complex_step(cost_c, theta, args=()):
    g = np.empty(theta.size)
    for k in range(theta.size):
        t = theta.astype(complex)
        t[k] += 1e-30j
        g[k] = np.imag(cost_c(t, *args)) / 1e-30
    return g


def verify(cost_c, g, theta, args=(), rtol=1e-9):
    """Assert the closed-form gradient g equals the complex-step derivative."""
    cs = complex_step(cost_c, theta, args)
    scale = np.abs(cs) + np.abs(g)
    bad = np.abs(cs - g) > rtol * scale + 1e-300
    if bad.any():
        k = int(np.argmax(np.abs(cs - g) / (scale + 1e-300)))
        raise AssertionError(f"label check failed at {k}: closed {g[k]!r} complex-step {cs[k]!r}")
    return cs


def real_cost(cost_c):
    def cost(theta, *args):
        return float(np.real(cost_c(theta, *args)))
    return cost


def plant(g, layout, bug, block=None, idx=None, idx2=None):
    """Return a copy of flat gradient g with one planted bug."""
    g = np.array(g, dtype=float, copy=True)
    if layout is None:
        blocks = {"theta": g}
    else:
        blocks = {k: np.array(v, copy=True) for k, v in fastgrad.unpack(g, layout).items()}
    name = block or next(iter(blocks))
    b = blocks[name]
    flat = b.reshape(-1)
    if bug == "sign":
        k = int(np.argmax(np.abs(flat))) if idx is None else idx
        flat[k] = -flat[k]
    elif bug == "signmin":  # sign flip of the smallest-magnitude component
        k = int(np.argmin(np.abs(flat)))
        flat[k] = -flat[k]
    elif bug.startswith("scale") and bug not in ("scale1e-4", "scale1e-2"):
        flat *= 1 + float(bug[5:])
    elif bug == "scale1e-4":
        flat *= 1 + 1e-4
    elif bug == "scale1e-2":
        flat *= 1 + 1e-2
    elif bug == "swap":
        if idx is None:
            order = np.argsort(flat)
            i, j = int(order[0]), int(order[-1])
        else:
            i, j = idx, idx2
        flat[i], flat[j] = flat[j].copy(), flat[i].copy()
    elif bug == "zero":
        flat[:] = 0
    elif bug == "transpose":
        assert b.ndim == 2 and b.shape[0] == b.shape[1]
        blocks[name] = b.T.copy()
    elif bug == "add":  # absolute offset on one component
        flat[0 if idx is None else idx] += idx2
    else:
        raise ValueError(bug)
    if layout is None:
        return blocks["theta"]
    return fastgrad.pack(blocks, layout=layout)


def add(name, kind, cost, grad, theta, **kw):
    CASES.append((name, kind, lambda: fastgrad.gradcheck(cost, grad, theta, progress=False, **kw)))


def add_family(name, cost, g, theta, layout=None, bugs=(), **kw):
    """The correct gradient plus each planted bug; bugs: (bug, block, idx, idx2)."""
    add(f"{name}", "correct", cost, g, theta, layout=layout, **kw)
    for spec in bugs:
        if isinstance(spec, str):
            spec = (spec,)
        bug, block, idx, idx2 = (tuple(spec) + (None, None, None))[:4]
        label = bug + (f"[{block}]" if block else "") + (f"@{idx}" if idx is not None and bug != "add" else "")
        if bug == "add":
            label = f"add{idx2:g}@{idx}"
        gb = plant(g, layout, bug, block, idx, idx2)
        add(f"{name}/{label}", "bug", cost, gb, theta, layout=layout, **kw)


ALL_BUGS = ("sign", "scale1e-4", "scale1e-2", "swap", "zero")

rng = np.random.default_rng(12345)

# --------------------------------------------------------------------------- A. smooth baselines, rows
def build_A():
    # A1 logistic regression, examples as rows, dict params
    X = rng.normal(size=(40, 4))
    y = (rng.random(40) < 0.5).astype(float)
    theta, lay = fastgrad.pack({"w": rng.normal(size=4), "b": np.array([0.3])})

    def cc(t, X, y):
        z = X @ t[:4] + t[4]
        return np.mean(np.log(1 + np.exp(-z)) + (1 - y) * z)

    p = 1 / (1 + np.exp(-(X @ theta[:4] + theta[4])))
    g = np.concatenate([X.T @ (p - y) / 40, [np.mean(p - y)]])
    verify(cc, g, theta, (X, y))
    add_family("A1-logreg-rows", real_cost(cc), g, theta, layout=lay, args=(X, y),
               bugs=[("sign", "w"), ("scale1e-4", "w"), ("scale1e-2", "b"), ("swap", "w"), ("zero", "b")])

    # A2 tanh MLP, rows, square W1 so that a transpose bug is possible
    m, d, hdn, o = 25, 5, 5, 2
    X = rng.normal(size=(m, d))
    Y = rng.normal(size=(m, o))
    P = {"W1": rng.normal(size=(d, hdn)) / 2, "b1": rng.normal(size=hdn) / 4,
         "W2": rng.normal(size=(hdn, o)) / 2, "b2": rng.normal(size=o) / 4}
    theta, lay = fastgrad.pack(P)

    def cc(t, X, Y):
        p = fastgrad.unpack(t, lay) if not np.iscomplexobj(t) else _unpack_c(t, lay)
        H = np.tanh(X @ p["W1"] + p["b1"])
        out = H @ p["W2"] + p["b2"]
        return 0.5 * np.sum((out - Y) ** 2) / X.shape[0]

    H = np.tanh(X @ P["W1"] + P["b1"])
    out = H @ P["W2"] + P["b2"]
    dO = (out - Y) / m
    dH = dO @ P["W2"].T * (1 - H ** 2)
    g = fastgrad.pack({"W1": X.T @ dH, "b1": dH.sum(0), "W2": H.T @ dO, "b2": dO.sum(0)}, layout=lay)
    verify(cc, g, theta, (X, Y))
    add_family("A2-tanhMLP-rows", real_cost(cc), g, theta, layout=lay, args=(X, Y),
               bugs=[("sign", "W2"), ("scale1e-4", "W1"), ("scale1e-2", "b2"), ("swap", "W1"),
                     ("zero", "b1"), ("transpose", "W1")])
    return lay


def _unpack_c(t, lay):
    out, o = {}, 0
    re = fastgrad.unpack(np.zeros(t.size), lay)
    for k, v in re.items():
        out[k] = t[o:o + v.size].reshape(v.shape)
        o += v.size
    return out


# --------------------------------------------------------------------------- B. huge constant offsets
def build_B():
    for C in (1e8, 1e12, 1e15):
        n = 6
        a = rng.uniform(0.5, 2, n)
        b = rng.normal(size=n)
        theta = rng.normal(size=n)

        def cc(t, C=C, a=a, b=b):
            return C + 0.5 * np.sum(a * t * t) + np.sum(b * t)

        g = a * theta + b
        verify(cc, g, theta)
        add_family(f"B-offset{C:.0e}-quad", real_cost(cc), g, theta, bugs=ALL_BUGS)

    # offset + non-quadratic (logistic regression)
    X = rng.normal(size=(30, 3))
    y = np.sign(rng.normal(size=30))
    theta = rng.normal(size=3)
    for C in (1e10, 1e14):
        def cc(t, C=C):
            return C + np.mean(np.log(1 + np.exp(-y * (X @ t))))
        g = -(X.T @ (y / (1 + np.exp(y * (X @ theta))))) / 30
        verify(cc, g, theta)
        add_family(f"B-offset{C:.0e}-logreg", real_cost(cc), g, theta, bugs=("sign", "scale1e-4", "scale1e-2", "zero", "scale3e-4", "scale6e-4", "signmin"))


# --------------------------------------------------------------------------- C. large parameters
def build_C():
    for mag in (1e6, 1e8, 1e10):
        n = 5
        theta = mag * rng.uniform(1, 2, n)
        c = theta + rng.normal(size=n)  # residual ~1, grad ~1, J ~ n

        def cc(t, c=c):
            return 0.5 * np.sum((t - c) ** 2)

        g = theta - c
        verify(cc, g, theta)
        add_family(f"C-theta{mag:.0e}-resid", real_cost(cc), g, theta, bugs=("sign", "scale1e-4", "scale1e-2", "swap"))

        def cc2(t):
            return 0.5 * np.sum(t * t)
        g2 = theta.copy()
        add_family(f"C-theta{mag:.0e}-sq", real_cost(cc2), g2, theta, bugs=("scale1e-4", "scale1e-2", "swap"))

        # log: gradient 1/theta (tiny), and log(theta - s) is NaN for steps > theta
        def cc3(t):
            return np.sum(np.log(t))
        g3 = 1 / theta
        verify(cc3, g3, theta)
        add_family(f"C-theta{mag:.0e}-log", real_cost(cc3), g3, theta, bugs=("sign", "scale1e-4", "scale1e-2", "zero"))


# --------------------------------------------------------------------------- D. tiny next to large
def build_D():
    theta, lay = fastgrad.pack({"big": rng.normal(size=3), "tiny": rng.normal(size=3)})

    def cc(t):
        return 1e6 * np.sum(t[:3] ** 2) + 1e-10 * np.sum(np.sin(t[3:]))

    g = np.concatenate([2e6 * theta[:3], 1e-10 * np.cos(theta[3:])])
    verify(cc, g, theta)
    add_family("D-tiny-own-block", real_cost(cc), g, theta, layout=lay,
               bugs=[("sign", "tiny"), ("scale1e-2", "tiny"), ("scale1e-4", "tiny"), ("zero", "tiny"),
                     ("swap", "tiny"), ("scale1e-4", "big")])

    # same, but the tiny gradient is linear (large steps are exact)
    def cc2(t):
        return 1e6 * np.sum(t[:3] ** 2) + 1e-10 * np.sum(t[3:] * np.arange(1, 4))
    g2 = np.concatenate([2e6 * theta[:3], 1e-10 * np.arange(1, 4.0)])
    verify(cc2, g2, theta)
    add_family("D-tiny-linear", real_cost(cc2), g2, theta, layout=lay,
               bugs=[("sign", "tiny", 2), ("scale1e-2", "tiny"), ("scale1e-4", "tiny"), ("zero", "tiny")])

    # tiny gradient component inside the same block as the large ones (below block threshold)
    theta1 = rng.normal(size=4)
    def cc3(t):
        return np.sum(t[:3] ** 2) + 1e-6 * t[3]
    g3 = np.concatenate([2 * theta1[:3], [1e-6]])
    add_family("D-tiny-mixed-block", real_cost(cc3), g3, theta1, bugs=[("sign", None, 3), ("zero",)])


# --------------------------------------------------------------------------- E. flat near theta, trouble further out
def build_E():
    x0 = np.array([1.0, -0.7, 0.4])

    # E1: huge offset forces large steps; a ReLU-like kink 1e-3 to the right of theta[0]
    for C, d in ((1e12, 1e-3), (1e12, 1e-1), (1e8, 1e-2), (0.0, 1e-6)):
        def cc(t, C=C, d=d):
            return C + 0.5 * np.sum(t * t) + 100.0 * np.sum(relu_c(t - (x0 + d)))
        g = x0.copy()
        verify(cc, g, x0)
        add_family(f"E1-offset{C:.0e}-kink+{d:g}", real_cost(cc), g, x0,
                   bugs=("scale1e-2", "scale1e-4", ("add", None, 0, 1.0), ("add", None, 0, 50.0), "sign"))

    # E2: abs kink just to the left/right, with offset
    def cc(t):
        return 1e12 + 0.5 * np.sum(t * t) + 30.0 * np.sum(abs_c(t - x0 - 3e-3))
    g = x0 - 30.0
    verify(cc, g, x0)
    add_family("E2-offset-abs-near", real_cost(cc), g, x0, bugs=("scale1e-2", "scale1e-4", ("add", None, 0, 30.0), "sign"))

    # E3: clip saturating just past theta
    xs = np.array([0.9995, -0.9995, 0.2])
    def cc(t):
        z = np.where(t.real > 1.0, 1.0 + 0 * t, np.where(t.real < -1.0, -1.0 + 0 * t, t))
        return 1e10 + np.sum(3.0 * z * z)
    g = 6 * xs
    verify(cc, g, xs)
    add_family("E3-offset-clip-sat", real_cost(cc), g, xs, bugs=("scale1e-2", "scale1e-4", "sign", "zero"))

    # E4: log barrier, boundary 1e-3 away (large steps give log of negative -> NaN)
    b = x0 - 1e-3
    def cc(t):
        return 1e10 - np.sum(np.log(t - b))
    g = -1.0 / (x0 - b)
    verify(cc, g, x0)
    add_family("E4-offset-log-barrier", real_cost(cc), g, x0, bugs=("scale1e-2", "scale1e-4", "sign"))

    def cc(t):
        return -np.sum(np.log(t - b))
    add_family("E4b-log-barrier", real_cost(cc), g, x0, bugs=("scale1e-2", "scale1e-4"))

    # E5: exp near overflow: J ~ 1e306, step of ~4 overflows
    xe = np.array([704.0, 703.5])
    def cc(t):
        return np.sum(np.exp(t))
    g = np.exp(xe)
    verify(cc, g, xe)
    add_family("E5-exp-near-overflow", real_cost(cc), g, xe, bugs=("scale1e-2", "scale1e-4", "sign", "swap"))

    # E6: smooth but explosive further out (exp wall 0.5 away) + offset
    def cc(t):
        return 1e10 + 0.5 * np.sum(t * t) + np.sum(np.exp(100.0 * (t - x0 - 0.5)))
    g = x0 + 100.0 * np.exp(100.0 * (-0.5))
    verify(cc, g, x0)
    add_family("E6-offset-exp-wall", real_cost(cc), g, x0, bugs=("scale1e-2", "scale1e-4", "sign"))

    # E7: plateau then cliff: C2 cubic cliff 0.05 away, with offset
    def cc(t):
        return 1e9 + 0.5 * np.sum(t * t) + 1e4 * np.sum(relu_c(t - x0 - 0.05) ** 3)
    g = x0.copy()
    verify(cc, g, x0)
    add_family("E7-offset-cliff", real_cost(cc), g, x0, bugs=("scale1e-2", "scale1e-4", "sign", ("add", None, 0, 1e-3), "scale3e-4", "signmin"))

    # E8: exactly flat plateau, cliff 1e-3 away; correct gradient is exactly zero
    def cc(t):
        return 5.0 + 1e3 * np.sum(relu_c(t - x0 - 1e-3) ** 2) + 1e3 * np.sum(relu_c(x0 - 1e-3 - t) ** 2)
    g = np.zeros(3)
    verify(cc, g, x0)
    add_family("E8-flat-plateau-zero-grad", real_cost(cc), g, x0, bugs=[("add", None, 0, 1e-3), ("add", None, 1, 1.0)])

    # E9: NaN region beyond a sqrt boundary, offset
    def cc(t):
        return 1e11 + np.sum(np.sqrt(t - x0 + 2e-3))
    g = 0.5 / np.sqrt(np.full(3, 2e-3))
    verify(cc, g, x0)
    add_family("E9-offset-sqrt-NaN-beyond", real_cost(cc), g, x0, bugs=("scale1e-2", "scale1e-4", "sign"))


# --------------------------------------------------------------------------- F. piecewise-linear losses
def build_F():
    m, d = 30, 3
    X = rng.normal(size=(m, d))
    y = np.sign(rng.normal(size=m))
    w = rng.normal(size=d)
    lam = 0.1
    theta, lay = fastgrad.pack({"w": w, "b": np.array([0.2])})

    def cc(t):
        marg = y * (X @ t[:3] + t[3])
        return np.mean(relu_c(1 - marg)) + 0.5 * lam * np.sum(t[:3] ** 2)

    marg = y * (X @ w + 0.2)
    act = (marg < 1).astype(float)
    g = np.concatenate([-(X.T @ (act * y)) / m + lam * w, [-np.mean(act * y)]])
    verify(cc, g, theta)
    add_family("F1-hinge-generic", real_cost(cc), g, theta, layout=lay,
               bugs=[("sign", "w"), ("scale1e-4", "w"), ("scale1e-2", "b"), ("swap", "w"), ("zero", "b")])

    # F2: hinge at exact kinks: example 0 and 1 have margin exactly 1 (dyadic data)
    X2 = np.round(rng.normal(size=(m, d)) * 8) / 8
    w2 = np.array([0.5, -0.25, 0.75])
    b2 = 0.125
    y2 = np.sign(rng.normal(size=m))
    for i in (0, 1):
        # choose X2[i, 0] so that y*(x.w + b) == 1 exactly
        rest = X2[i, 1:] @ w2[1:] + b2
        X2[i, 0] = (y2[i] * 1.0 - rest) / w2[0]
        assert y2[i] * (X2[i] @ w2 + b2) == 1.0
    theta2, lay2 = fastgrad.pack({"w": w2, "b": np.array([b2])})

    def per_ex(t):
        marg = y2 * (X2 @ t[:3] + t[3])
        return np.maximum(0.0, 1 - marg) + 0.5 * lam * np.sum(t[:3] ** 2)

    def mean_cost(t):
        return float(np.mean(per_ex(t)))

    marg = y2 * (X2 @ w2 + b2)
    for conv, act in (("sub0", (marg < 1).astype(float)), ("sub1", (marg <= 1).astype(float)),
                      ("subhalf", np.where(marg == 1, 0.5, (marg < 1).astype(float)))):
        gk = np.concatenate([-(X2.T @ (act * y2)) / m + lam * w2, [-np.mean(act * y2)]])
        add(f"F2-hinge-at-kink-{conv}-per_example", "correct", per_ex, gk, theta2, layout=lay2, per_example="mean")
        add(f"F2-hinge-at-kink-{conv}-scalar", "correct", mean_cost, gk, theta2, layout=lay2)
    act = (marg < 1).astype(float)
    gk = np.concatenate([-(X2.T @ (act * y2)) / m + lam * w2, [-np.mean(act * y2)]])
    kink = marg == 1
    A = np.hstack([X2, np.ones((m, 1))])
    contrib = -(A[kink] * y2[kink, None]) / m
    lo, hi = gk + np.minimum(contrib, 0).sum(0), gk + np.maximum(contrib, 0).sum(0)
    gz = plant(gk, lay2, "zero", "b")
    assert ((gz >= lo) & (gz <= hi)).all()
    add("F2-hinge-at-kink/zero[b]-on-range-edge(valid)-per_example", "correct", per_ex, gz, theta2, layout=lay2, per_example="mean")
    for bug in (("sign", "w"), ("sign", "b"), ("scale1e-2", "w"), ("scale1e-4", "w")):
        gb = plant(gk, lay2, *bug)
        assert ((gb < lo - 1e-12) | (gb > hi + 1e-12)).any(), bug
        add(f"F2-hinge-at-kink/{bug[0]}[{bug[1]}]-per_example", "bug", per_ex, gb, theta2, layout=lay2, per_example="mean")
        add(f"F2-hinge-at-kink/{bug[0]}[{bug[1]}]-scalar", "bug", mean_cost, gb, theta2, layout=lay2)
    # out of the subgradient range by 3 kink-widths: bias subgradient range is
    # [-(1/m)*sum..., ...]; add 3/m to b (each kink example contributes width 1/m)
    gb = gk.copy(); gb[3] += 3.0 / m
    add("F2-hinge-at-kink/b+3/m-per_example", "bug", per_ex, gb, theta2, layout=lay2, per_example="mean")

    # F3: L1 regression (sum of |r|) at an exact kink, per_example="sum"
    Xr = np.round(rng.normal(size=(12, 2)) * 4) / 4
    wr = np.array([0.5, -1.5])
    yr = Xr @ wr + np.round(rng.normal(size=12) * 4) / 4
    yr[0] = Xr[0] @ wr  # residual exactly 0
    def per_ex_l1(t):
        return np.abs(Xr @ t - yr)
    r = Xr @ wr - yr
    gl = Xr.T @ np.sign(r)
    add("F3-L1-at-kink-per_example-sum", "correct", per_ex_l1, gl, wr, per_example="sum")
    add("F3-L1-at-kink-scalar", "correct", lambda t: float(np.sum(per_ex_l1(t))), gl, wr)
    # valid range at the kink (example 0 has residual 0): gl +- |Xr[0]|
    lo, hi = gl - np.abs(Xr[0]), gl + np.abs(Xr[0])
    for bug, idx, delta in (("swap", None, None), ("add", 0, -2.0), ("add", 1, 1.0), ("add", 1, -0.75)):
        gb = plant(gl, None, bug, None, idx, delta)
        assert ((gb < lo - 1e-9) | (gb > hi + 1e-9)).any()
        add(f"F3-L1-at-kink/{bug}{'' if delta is None else f'{delta:+g}@{idx}'}-per_example-sum", "bug", per_ex_l1, gb, wr, per_example="sum")
    # planted changes that stay inside the valid range are NOT bugs (valid subgradients)
    for bug in ("sign", "scale1e-2"):
        gb = plant(gl, None, bug)
        assert ((gb >= lo) & (gb <= hi)).all()
        add(f"F3-L1-at-kink/{bug}-inside-range(valid)-per_example-sum", "correct", per_ex_l1, gb, wr, per_example="sum")
    # per_example="mean" declared, but the gradient is of the sum: wrong normalisation (bug)
    add("F3-L1-at-kink/per_example-mean-declared-grad-of-sum", "bug", per_ex_l1, gl, wr, per_example="mean")


# --------------------------------------------------------------------------- G. periodic costs
def build_G():
    theta = rng.uniform(-1, 1, 4)
    for w in (1e3, 1e4, 1e5, 1e6):
        def cc(t, w=w):
            return np.sum(np.sin(w * t))
        g = w * np.cos(w * theta)
        verify(cc, g, theta)
        add_family(f"G1-sin-w{w:.0e}", real_cost(cc), g, theta, bugs=("sign", "scale1e-4", "scale1e-2", "swap"))

    # G2: offset forces large steps; a small fast ripple whose derivative is 1e-3 of the gradient
    for C, A, w in ((1e12, 1e-6, 1e3), (1e10, 1e-8, 1e5), (1e12, 1e-5, 1e2)):
        def cc(t, C=C, A=A, w=w):
            return C + 0.5 * np.sum(t * t) + A * np.sum(np.sin(w * t))
        g = theta + A * w * np.cos(w * theta)
        verify(cc, g, theta)
        g_noripple = theta.copy()
        add(f"G2-offset{C:.0e}-ripple(A{A:g},w{w:g})", "correct", real_cost(cc), g, theta)
        add(f"G2-offset{C:.0e}-ripple(A{A:g},w{w:g})/missing-ripple-term", "bug", real_cost(cc), g_noripple, theta)
        add(f"G2-offset{C:.0e}-ripple(A{A:g},w{w:g})/scale1e-2", "bug", real_cost(cc), g * 1.01, theta)

    # G3: no offset, ripple only visible below some scale
    def cc(t):
        return 0.5 * np.sum(t * t) + 1e-9 * np.sum(np.sin(1e7 * t))
    g = theta + 1e-2 * np.cos(1e7 * theta)
    verify(cc, g, theta)
    add("G3-ripple-1e-2-of-grad", "correct", real_cost(cc), g, theta)
    add("G3-ripple-1e-2-of-grad/missing-ripple-term", "bug", real_cost(cc), theta.copy(), theta)


# --------------------------------------------------------------------------- H. float32 inside
def build_H():
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = np.sign(rng.normal(size=40)).astype(np.float32)
    theta = rng.normal(size=3)

    def cost32(t):
        z = X @ t.astype(np.float32)
        return float(np.mean(np.log1p(np.exp(-y * z))))

    X64, y64 = X.astype(float), y.astype(float)
    def cc(t):
        return np.mean(np.log(1 + np.exp(-y64 * (X64 @ t))))
    g = -(X64.T @ (y64 / (1 + np.exp(y64 * (X64 @ theta))))) / 40
    verify(cc, g, theta)
    add_family("H1-float32-logreg", cost32, g, theta, bugs=("sign", "scale1e-4", "scale1e-2", "swap", "zero", "scale3e-4", "signmin"))

    theta2 = rng.normal(size=4) * 100
    def cost32b(t):
        return float(np.float32(1e4) + np.sum(np.float32(0.5) * t.astype(np.float32) ** 2))
    add_family("H2-float32-offset-quad", cost32b, theta2.copy(), theta2, bugs=("sign", "scale1e-4", "scale1e-2"))
    # gradient itself in float32
    add("H3-grad-given-float32", "correct", cost32, g.astype(np.float32), theta)
    add("H3-grad-given-float32/scale1e-2", "bug", cost32, (g * 1.01).astype(np.float32), theta)


# --------------------------------------------------------------------------- I. ReLU MLP rows, at kinks
def build_I():
    m, d, hdn = 8, 3, 4
    X = np.round(rng.normal(size=(m, d)) * 4) / 4
    X[0] = 0.0  # example 0: all first-layer pre-activations equal b1 exactly
    Y = rng.normal(size=(m, 1))
    P = {"W1": np.round(rng.normal(size=(d, hdn)) * 4) / 4, "b1": np.array([0.0, 0.25, 0.0, -0.5]),
         "W2": np.round(rng.normal(size=(hdn, 1)) * 4) / 4, "b2": np.array([0.125])}
    P["W2"][[0, 2], 0] = [0.75, -1.25]
    theta, lay = fastgrad.pack(P)

    def forward(p):
        Z = X @ p["W1"] + p["b1"]
        H = np.maximum(Z, 0.0)
        return Z, H, H @ p["W2"] + p["b2"]

    def per_ex(t):
        _, _, out = forward(fastgrad.unpack(t, lay))
        return 0.5 * (out[:, 0] - Y[:, 0]) ** 2

    def mean_cost(t):
        return float(np.mean(per_ex(t)))

    Z, H, out = forward(P)
    assert (Z[0, [0, 2]] == 0).all()

    def grad(conv):
        dO = (out - Y) / m
        mask = (Z > 0) if conv == 0 else (Z >= 0)
        dZ = dO @ P["W2"].T * mask
        return fastgrad.pack({"W1": X.T @ dZ, "b1": dZ.sum(0), "W2": H.T @ dO, "b2": dO.sum(0)}, layout=lay)

    for conv in (0, 1):
        add(f"I1-reluMLP-kink-relu'(0)={conv}-per_example", "correct", per_ex, grad(conv), theta, layout=lay, per_example="mean")
        add(f"I1-reluMLP-kink-relu'(0)={conv}-scalar", "correct", mean_cost, grad(conv), theta, layout=lay)
    g0 = grad(0)
    g1 = grad(1)
    lo_i, hi_i = np.minimum(g0, g1), np.maximum(g0, g1)  # one kink example per kink unit
    for k in (12, 14):
        assert not (lo_i[k] <= -g0[k] <= hi_i[k]), k  # sign flip at a kink lies outside the valid range
    # check label away from the kink (smooth part) by complex step of the non-kink blocks via finite diffs
    for bug in (("sign", "b1", 0), ("sign", "b1", 2), ("sign", "W2"), ("scale1e-2", "b1"), ("scale1e-4", "W1"),
                ("swap", "W1"), ("zero", "b1"), ("transpose", None)):
        b, blk, idx = (bug + (None,))[:3]
        if b == "transpose":
            continue
        gb = plant(g0, lay, b, blk, idx)
        nm = f"I1-reluMLP-kink/{b}[{blk}]" + (f"@{idx}" if idx is not None else "")
        add(nm + "-per_example", "bug", per_ex, gb, theta, layout=lay, per_example="mean")
        add(nm + "-scalar", "bug", mean_cost, gb, theta, layout=lay)
    # bias 0 derivative outside the one-sided range: kink-range width for b1[0] is |W2[0]*dO[0]|
    gb = g0.copy()
    k = 12  # b1[0]
    width = abs(P["W2"][0, 0] * (out[0, 0] - Y[0, 0]) / m)
    gb[k] += 3 * width if (out[0, 0] - Y[0, 0]) * P["W2"][0, 0] > 0 else -3 * width
    add("I1-reluMLP-kink/b1[0]-outside-range-per_example", "bug", per_ex, gb, theta, layout=lay, per_example="mean")
    # per_example=True (docs say "mean"/"sum"): should be rejected clearly or treated sanely
    CASES.append(("I1-reluMLP-kink-per_example=True", "badinput",
                  lambda: fastgrad.gradcheck(per_ex, g0, theta, layout=lay, per_example=True, progress=False)))

    # I2: ReLU MLP kink + huge offset per example
    def per_ex_off(t):
        return per_ex(t) + 1e9
    add("I2-reluMLP-kink-offset1e9-per_example", "correct", per_ex_off, g0, theta, layout=lay, per_example="mean")
    for bug in (("sign", "W2"), ("scale1e-2", "b1"), ("scale1e-4", "W1")):
        add(f"I2-reluMLP-kink-offset1e9/{bug[0]}[{bug[1]}]", "bug", per_ex_off, plant(g0, lay, *bug), theta, layout=lay, per_example="mean")


# --------------------------------------------------------------------------- K. huge and tiny losses
def build_K():
    X = rng.normal(size=(20, 3))
    w = rng.normal(size=3)
    for s in (1e-300, 1e-200, 1e250):
        Y = X @ rng.normal(size=3)
        def cc(t, s=s, Y=Y):
            return s * np.sum((X @ t - Y) ** 2)
        g = s * 2 * X.T @ (X @ w - Y)
        verify(lambda t, Y=Y: np.sum((X @ t - Y) ** 2), g / s, w)  # unscaled (complex step underflows at 1e-300)
        add_family(f"K-loss-scaled-{s:.0e}", real_cost(cc), g, w, bugs=("sign", "scale1e-4", "scale1e-2", "swap", "zero"))
    # targets ~1e100
    Y = X @ rng.normal(size=3) * 1e100
    w2 = rng.normal(size=3) * 1e100
    def cc(t):
        return 0.5 * np.mean((X @ t - Y) ** 2)
    g = X.T @ (X @ w2 - Y) / 20
    verify(cc, g, w2)
    add_family("K-mse-targets-1e100", real_cost(cc), g, w2, bugs=("sign", "scale1e-4", "scale1e-2"))
    # subnormal gradients
    def cc(t):
        return 1e-310 * np.sum(t * t) + 1.0
    add_family("K-subnormal-grad-offset1", real_cost(cc), 2e-310 * w, w, bugs=("sign",))


# --------------------------------------------------------------------------- L. scikit-learn MLPs
def build_L():
    try:
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    except ImportError:
        return
    from sklearn.exceptions import ConvergenceWarning

    def setup(est, X, y, iters):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.set_params(max_iter=iters)
            est.fit(X, y)
        coefs, inters = est.coefs_, est.intercepts_
        blocks = {}
        for i, c in enumerate(coefs):
            blocks[f"W{i + 1}"] = c
        for i, b in enumerate(inters):
            blocks[f"b{i + 1}"] = b
        theta, lay = fastgrad.pack(blocks)  # same order as sklearn's _pack: coefs then intercepts
        n_layers = len(coefs) + 1
        X_arr = np.asarray(X, dtype=float)
        y_arr = est._label_binarizer.transform(y).astype(float) if hasattr(est, "_label_binarizer") else np.asarray(y, float).reshape(len(y), -1)

        def lg(t):
            activations = [X_arr] + [None] * (n_layers - 1)
            deltas = [None] * (n_layers - 1)
            cg = [np.empty_like(c) for c in coefs]
            ig = [np.empty_like(b) for b in inters]
            return est._loss_grad_lbfgs(t.copy(), X_arr, y_arr, None, activations, deltas, cg, ig)

        loss, g = lg(theta)
        cost = lambda t: float(lg(t)[0])
        return cost, np.array(g, dtype=float), theta, lay

    def richardson_ref(cost, theta, h0=1e-3):
        g = np.empty(theta.size)
        for k in range(theta.size):
            D = []
            for h in (h0, h0 / 2, h0 / 4):
                e = np.zeros_like(theta); e[k] = h
                D.append((cost(theta + e) - cost(theta - e)) / (2 * h))
            E1 = (4 * D[1] - D[0]) / 3
            E2 = (4 * D[2] - D[1]) / 3
            g[k] = (16 * E2 - E1) / 15
        return g

    X = rng.normal(size=(30, 4))
    yr = np.sin(X[:, 0]) + 0.3 * X[:, 1]
    yc = (X[:, 0] + X[:, 2] > 0).astype(int)
    y3 = rng.integers(0, 3, 30)

    specs = [
        ("L1-skl-MLPRegressor-tanh", MLPRegressor(hidden_layer_sizes=(4,), activation="tanh", alpha=1e-3, random_state=0, solver="lbfgs"), yr, 3),
        ("L2-skl-MLPRegressor-tanh-trained", MLPRegressor(hidden_layer_sizes=(4,), activation="tanh", alpha=1e-4, random_state=1, solver="lbfgs"), yr, 300),
        ("L3-skl-MLPClassifier-logistic", MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", alpha=1e-2, random_state=0, solver="lbfgs"), yc, 5),
        ("L4-skl-MLPClassifier-softmax3-tanh", MLPClassifier(hidden_layer_sizes=(4, 4), activation="tanh", alpha=1e-3, random_state=2, solver="lbfgs"), y3, 20),
        ("L5-skl-MLPRegressor-relu", MLPRegressor(hidden_layer_sizes=(4,), activation="relu", alpha=1e-3, random_state=0, solver="lbfgs"), yr, 10),
        ("L6-skl-MLPClassifier-logistic-overtrained", MLPClassifier(hidden_layer_sizes=(4,), activation="tanh", alpha=0.0, random_state=3, solver="lbfgs"), yc, 2000),
    ]
    for name, est, y, iters in specs:
        cost, g, theta, lay = setup(est, X, y, iters)
        if "relu" not in name:  # smooth: verify sklearn's gradient against an independent extrapolated difference
            ref = richardson_ref(cost, theta)
            assert np.allclose(ref, g, rtol=1e-5, atol=1e-7 * np.abs(g).max()), name
        bugs = [("sign", "W1"), ("scale1e-4", "W1"), ("scale1e-2", "b2"), ("swap", "W1"), ("zero", "b1")]
        if est.coefs_[1].shape[0] == est.coefs_[1].shape[1]:
            bugs.append(("transpose", "W2"))
        add_family(name, cost, g, theta, layout=lay, bugs=bugs)


# --------------------------------------------------------------------------- N. Numba-jitted costs
def build_N():
    import numba

    @numba.njit(cache=True)
    def nb_logreg_offset(theta, X, y):
        s = 0.0
        for i in range(X.shape[0]):
            z = 0.0
            for j in range(X.shape[1]):
                z += X[i, j] * theta[j]
            s += np.log1p(np.exp(-y[i] * z))
        return 1e12 + s / X.shape[0]

    X = rng.normal(size=(30, 3))
    y = np.sign(rng.normal(size=30))
    theta = rng.normal(size=3)
    g = -(X.T @ (y / (1 + np.exp(y * (X @ theta))))) / 30
    add_family("N1-numba-logreg-offset1e12", nb_logreg_offset, g, theta, args=(X, y), bugs=("sign", "scale1e-4", "scale1e-2"))

    @numba.njit(cache=True)
    def nb_kink_far(theta, x0, d):
        s = 1e12
        for j in range(theta.size):
            s += 0.5 * theta[j] * theta[j] + 100.0 * max(0.0, theta[j] - x0[j] - d)
        return s

    x0 = np.array([1.0, -0.7, 0.4])
    add_family("N2-numba-offset-kink+1e-3", nb_kink_far, x0.copy(), x0, args=(x0, 1e-3),
               bugs=("scale1e-2", ("add", None, 0, 1.0)))

    @numba.njit(cache=True)
    def nb_ripple(theta, C, A, w):
        s = C
        for j in range(theta.size):
            s += 0.5 * theta[j] * theta[j] + A * np.sin(w * theta[j])
        return s

    th = rng.uniform(-1, 1, 4)
    C, A, w = 1e12, 1e-6, 1e3
    gr = th + A * w * np.cos(w * th)
    add("N3-numba-offset-ripple", "correct", nb_ripple, gr, th, args=(C, A, w))
    add("N3-numba-offset-ripple/missing-ripple-term", "bug", nb_ripple, th.copy(), th, args=(C, A, w))

    @numba.njit(cache=True)
    def nb_relu_mlp_rows(theta, X, Y, d, h):
        # W1 (d,h) row-major, b1 (h), w2 (h), b2
        m = X.shape[0]
        s = 0.0
        for i in range(m):
            out = theta[d * h + h + h]
            for k in range(h):
                z = theta[d * h + k]
                for j in range(d):
                    z += X[i, j] * theta[j * h + k]
                if z > 0:
                    out += z * theta[d * h + h + k]
            r = out - Y[i]
            s += 0.5 * r * r
        return s / m

    m, d, hh = 10, 3, 4
    Xr = rng.normal(size=(m, d))
    Yr = rng.normal(size=m)
    P = {"W1": rng.normal(size=(d, hh)), "b1": rng.normal(size=hh) * 0.1, "w2": rng.normal(size=hh), "b2": np.array([0.1])}
    th, lay = fastgrad.pack(P)
    Z = Xr @ P["W1"] + P["b1"]
    H = np.maximum(Z, 0)
    out = H @ P["w2"] + P["b2"][0]
    dO = (out - Yr) / m
    dZ = np.outer(dO, P["w2"]) * (Z > 0)
    gm = fastgrad.pack({"W1": Xr.T @ dZ, "b1": dZ.sum(0), "w2": H.T @ dO, "b2": np.array([dO.sum()])}, layout=lay)
    add_family("N4-numba-reluMLP-rows", nb_relu_mlp_rows, gm, th, layout=lay, args=(Xr, Yr, d, hh),
               bugs=[("sign", "W1"), ("scale1e-4", "w2"), ("scale1e-2", "b1"), ("swap", "W1"), ("zero", "b2")])


# --------------------------------------------------------------------------- M. other methods / modes
def build_M():
    x0 = np.array([1.0, -0.7, 0.4])
    def cc(t):
        return 1e12 + 0.5 * np.sum(t * t) + 100.0 * np.sum(relu_c(t - (x0 + 1e-3)))
    for method in ("forward", "richardson"):
        add(f"M-{method}-offset-kink", "correct", real_cost(cc), x0.copy(), x0, method=method)
        add(f"M-{method}-offset-kink/scale1e-2", "bug", real_cost(cc), x0 * 1.01, x0, method=method)
        add(f"M-{method}-offset-kink/add1", "bug", real_cost(cc), x0 + np.array([1.0, 0, 0]), x0, method=method)
    add("M-directional-offset-kink", "correct", real_cost(cc), x0.copy(), x0, mode="directional")
    add("M-directional-offset-kink/add1", "bug", real_cost(cc), x0 + np.array([1.0, 0, 0]), x0, mode="directional")
    add("M-directional-offset-kink/scale1e-2", "bug", real_cost(cc), x0 * 1.01, x0, mode="directional")

    th = rng.uniform(-1, 1, 4)
    def rip(t):
        return 1e12 + 0.5 * np.sum(t * t) + 1e-6 * np.sum(np.sin(1e3 * t))
    gr = th + 1e-3 * np.cos(1e3 * th)
    add("M-directional-offset-ripple", "correct", real_cost(rip), gr, th, mode="directional")
    add("M-directional-offset-ripple/missing-ripple", "bug", real_cost(rip), th.copy(), th, mode="directional")
    add("M-richardson-offset-ripple/missing-ripple", "bug", real_cost(rip), th.copy(), th, method="richardson")
    add("M-complex-offset-ripple", "correct", lambda t: rip(t), gr, th, method="complex")
    add("M-complex-offset-ripple/missing-ripple", "bug", lambda t: rip(t), th.copy(), th, method="complex")
    # explicit eps (course formula)
    add("M-eps1e-7-offset-quad/scale1e-2", "bug", lambda t: float(1e12 + 0.5 * t @ t), th * 1.01, th, eps=1e-7)


BUILDERS = [build_A, build_B, build_C, build_D, build_E, build_F, build_G, build_H, build_I, build_K, build_L, build_N, build_M]


def judge(kind, rep):
    v = rep.verdict
    if v == "inconclusive" and not rep.reasons:
        return "VIOLATION"
    if kind == "correct":
        return {"pass": "ok", "inconclusive": "inc", "fail": "VIOLATION"}[v]
    if kind == "bug":
        return {"fail": "ok", "inconclusive": "inc", "pass": "VIOLATION"}[v]
    return "?"


def main(filters):
    for b in BUILDERS:
        b()
    rows = []
    print(f"{'name':66s} {'kind':8s} {'verdict':12s} {'ok?':9s} {'sec':>6s}  note")
    for name, kind, thunk in CASES:
        if filters and not any(f in name for f in filters):
            continue
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rep = thunk()
            verdict = rep.verdict
            ok = judge(kind, rep)
            if verdict == "inconclusive":
                note = (rep.reasons[0] if rep.reasons else "NO REASON")[:110]
            elif verdict == "fail":
                note = f"diff {rep.difference:.2e} tol {rep.tolerance:.2e} blocks {list(rep.failing_blocks)}"
            else:
                note = f"diff {rep.difference:.2e} tol {rep.tolerance:.2e}"
        except Exception as exc:  # noqa: BLE001
            verdict = "exception"
            if kind == "badinput" and isinstance(exc, (ValueError, TypeError)):
                ok = "ok"
            else:
                ok = "VIOLATION"
            note = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"
            if "-v" in sys.argv:
                traceback.print_exc()
        dt = time.perf_counter() - t0
        rows.append((name, kind, verdict, ok, dt))
        print(f"{name:66s} {kind:8s} {verdict:12s} {ok:9s} {dt:6.2f}  {note}", flush=True)
    from collections import Counter
    print()
    print("counts:", dict(Counter((k, o) for _, k, _, o, _ in rows)))
    print("violations:", sum(o == "VIOLATION" for *_, o, _ in rows), "of", len(rows))


if __name__ == "__main__":
    main([a for a in sys.argv[1:] if not a.startswith("-")])
