"""Red-team cases for fastgrad (independent of fastgrad's own tests).

Ground truth: complex-step derivatives (h=1e-30) of complex-safe copies of each
cost (kinks written as x*sign(Re x), where(Re x > 0, ...)), or analytic formulas
checked against them.  One line per check:
  name | kind | verdict | ok/VIOLATION | difference | tolerance | reasons
"""
import os, sys, time, traceback, warnings
import numpy as np
import fastgrad

warnings.filterwarnings("ignore")
os.environ.setdefault("FASTGRAD_QUIET", "1")
T0 = time.time()
ONLY = sys.argv[1] if len(sys.argv) > 1 else None

# ----------------------------------------------------------------- helpers --
def cabs(x):
    return x * np.sign(np.real(x))

def crelu(x):
    return np.where(np.real(x) > 0, x, 0 * x)

def cmax(a, b):
    return np.where(np.real(a) >= np.real(b), a, b)

def cclip(x, lo, hi):
    return np.where(np.real(x) < lo, lo + 0 * x, np.where(np.real(x) > hi, hi + 0 * x, x))

def lse(z, axis):
    m = np.max(np.real(z), axis=axis, keepdims=True)
    return (m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))).squeeze(axis)

def softmax(z, axis):
    m = np.max(np.real(z), axis=axis, keepdims=True)
    e = np.exp(z - m)
    return e / np.sum(e, axis=axis, keepdims=True)


class Unpacker:
    def __init__(self, params):
        self.names = list(params)
        self.shapes = [np.shape(params[k]) for k in self.names]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.offsets = np.cumsum([0] + self.sizes)

    def __call__(self, t):
        return [t[a:b].reshape(s) for a, b, s in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]

    def block(self, name):
        i = self.names.index(name)
        return slice(self.offsets[i], self.offsets[i + 1])


def cstep(f, theta, args=(), reduce=None):
    n = theta.size
    g = np.empty(n)
    tc = theta.astype(complex)
    for k in range(n):
        tc[k] += 1e-30j
        v = f(tc, *args)
        if reduce is not None:
            v = np.mean(v) if reduce == "mean" else np.sum(v)
        g[k] = np.imag(v) / 1e-30
        tc[k] = theta[k]
    return g


RESULTS = []


def record(name, kind, verdict, ok, diff, tol, reasons, extra=""):
    RESULTS.append((name, kind, verdict, ok, diff, tol, reasons, extra))
    line = f"{name} | {kind} | {verdict} | {ok} | {diff:.3e} | {tol:.3e}"
    if not ok.startswith("ok") or verdict == "inconclusive":
        line += f" | reasons={list(reasons)}"
    if extra:
        line += f" | {extra}"
    print(line, flush=True)


BUGREL = {}
def blocks_changed(U, g0, g1):
    must, amb = set(), set()
    BUGREL.clear()
    for nm in U.names:
        sl = U.block(nm)
        a, b = g0[sl], g1[sl]
        d = np.linalg.norm(a - b)
        if d == 0:
            continue
        rel = d / (np.linalg.norm(a) + np.linalg.norm(b) + 1e-300)
        BUGREL[nm] = rel
        (must if rel > 3e-7 else amb).add(nm)
    return must, amb


def judge_correct(name, rep, extra=""):
    v = rep.verdict
    if v == "fail":
        ok = "VIOLATION"
        extra = (extra + f" failing={list(rep.failing_blocks)} worst={rep.worst(2)}").strip()
    elif v == "inconclusive" and not rep.reasons:
        ok = "VIOLATION"
    else:
        ok = "ok"
    record(name, "correct", v, ok, rep.difference, rep.tolerance, rep.reasons, extra)


KINK_BLOCKS = set()
def judge_bug(name, rep, must, amb, well, extra=""):
    v = rep.verdict
    amb = amb | (must & KINK_BLOCKS); must = must - KINK_BLOCKS
    fb = set(rep.failing_blocks) if v == "fail" else set()
    if v == "pass":
        cat = "pass"
        if not must:
            ok = "ok(bug below threshold)"
        else:
            within = all(b.difference <= b.tolerance for b in rep.blocks)
            ok = "VIOLATION(pass-within-stated-tolerance)" if any(b.tolerance > 1.5e-7 for b in rep.blocks if b.name in must) else "VIOLATION"
        extra = (extra + " blocks=" + str([(b.name, f"{b.difference:.2e}", f"{b.tolerance:.2e}") for b in rep.blocks])
                 + " bugrel=" + str({k: f"{v:.2e}" for k, v in BUGREL.items()})).strip()
    elif v == "fail":
        if must <= fb <= (must | amb) or (not must and fb <= amb):
            ok, cat = "ok", "fail-localised"
        elif fb <= (must | amb):
            missing = must - fb
            inc = {b.name for b in rep.blocks if b.verdict == "inconclusive"}
            cat = "fail-subset"
            ok = "ok" if (missing <= inc and not well) else "VIOLATION"
            extra = (extra + f" failing={sorted(fb)} expected={sorted(must)} missing_inconclusive={sorted(missing & inc)}").strip()
        else:
            ok, cat = "VIOLATION", "fail-wrong-blocks"
            extra = (extra + f" failing={sorted(fb)} expected={sorted(must)} ambiguous={sorted(amb)}").strip()
    else:
        cat = "inconclusive"
        if not rep.reasons:
            ok = "VIOLATION"
        elif well:
            ok = "VIOLATION(inconclusive-on-well-scaled)"
        else:
            ok = "ok"
    record(name, f"bug[{cat}]", v, ok, rep.difference, rep.tolerance, rep.reasons, extra)


def standard_bugs(U, g, bug_block, square_block=None, rng=None):
    """Return dict name -> corrupted gradient."""
    rng = rng or np.random.default_rng(1)
    out = {}
    sl = U.block(bug_block)
    b = g.copy(); b[sl] *= -1; out["signflip_" + bug_block] = b
    b = g.copy(); b[sl] *= 2; out["factor2_" + bug_block] = b
    b = g.copy(); b[sl] = 0; out["zeroed_" + bug_block] = b
    blk = g[sl]
    k = int(np.argmax(np.abs(blk)))
    b = g.copy(); b[sl.start + k] += 1e-3 * max(np.max(np.abs(blk)), 1e-300); out["onecomp1e-3_" + bug_block] = b
    b = g.copy(); b[sl.start + k] += 1e-3; out["onecomp_abs1e-3_" + bug_block] = b
    b = g * (1 + 1e-5); out["whole_rel1e-5"] = b
    b = g * (1 + 1e-6); out["whole_rel1e-6"] = b
    b = g.copy(); b[sl] *= (1 + 1e-5); out["block_rel1e-5_" + bug_block] = b
    if square_block is not None:
        s2 = U.block(square_block)
        shp = U.shapes[U.names.index(square_block)]
        b = g.copy(); b[s2] = g[s2].reshape(shp).T.ravel(); out["transposed_" + square_block] = b
    return out


METHODS_ALL = ["central", "forward", "richardson", "complex"]
CASE_INDEX = [0]


def run(name, f, params, args=(), grad=None, truth_f=None, well=True, csafe=True,
        bug_block=None, square_block=None, extra_bugs=None, per_example=None,
        methods=None, bug_methods=None, kw=None, std=True, truth_grad=None):
    if ONLY and ONLY not in name:
        return
    kw = kw or {}
    CASE_INDEX[0] += 1
    try:
        theta, layout = fastgrad.pack({k: np.asarray(v, float) for k, v in params.items()})
        U = Unpacker(params)
        if truth_grad is not None:
            truth = truth_grad
        else:
            truth = cstep(truth_f or f, theta, args, per_example)
        if grad is None:
            g = truth.copy()
        else:
            g = np.asarray(grad, float)
            rel = np.linalg.norm(g - truth) / (np.linalg.norm(truth) + 1e-300)
            if rel > 1e-9 and np.linalg.norm(g - truth) > 1e-14:
                print(f"!! {name}: analytic grad does not match truth rel={rel:.2e}; using truth")
                g = truth.copy()
        if methods is None:
            methods = ["central", "richardson", "forward"] + (["complex"] if csafe else [])
        for m in methods:
            rep = fastgrad.gradcheck(f, g, theta, layout=layout, args=args, method=m,
                                     per_example=per_example, **kw)
            judge_correct(f"{name}/{m}", rep)
        bugs = {}
        if std:
            bugs.update(standard_bugs(U, g, bug_block or U.names[-1], square_block))
        for bn, bg in (extra_bugs or {}).items():
            bugs[bn] = bg(U, g, theta) if callable(bg) else bg
        bm = bug_methods or ["central"]
        for i, (bn, bg) in enumerate(bugs.items()):
            must, amb = blocks_changed(U, g, bg)
            if not must and not amb:
                print(f"!! {name}/{bn}: bug changes nothing, skipped")
                continue
            m = bm[i % len(bm)]
            rep = fastgrad.gradcheck(f, bg, theta, layout=layout, args=args, method=m,
                                     per_example=per_example, **kw)
            judge_bug(f"{name}/{bn}/{m}", rep, must, amb, well and bool(must))
    except Exception as e:
        record(name, "CRASH", "crash", "VIOLATION", float("nan"), float("nan"), (repr(e),))
        traceback.print_exc()


# =================================================================== cases ==
rng = np.random.default_rng(12345)

# 1. MLP, examples as rows, tanh, MSE; analytic gradient --------------------
Xr = rng.normal(size=(40, 6)); yr = rng.normal(size=(40, 2))
P1 = {"W1": rng.normal(size=(6, 6)) * 0.5, "b1": rng.normal(size=6) * 0.1,
      "W2": rng.normal(size=(6, 2)) * 0.5, "b2": rng.normal(size=2) * 0.1}
U1 = Unpacker(P1)

def mlp_rows(t, X, y):
    W1, b1, W2, b2 = U1(t)
    H = np.tanh(X @ W1 + b1)
    return 0.5 * np.mean(np.sum((H @ W2 + b2 - y) ** 2, axis=1))

def mlp_rows_grad(t, X, y):
    W1, b1, W2, b2 = U1(t)
    H = np.tanh(X @ W1 + b1); R = (H @ W2 + b2 - y) / len(X)
    dW2 = H.T @ R; db2 = R.sum(0); dH = R @ W2.T * (1 - H ** 2)
    return np.concatenate([(X.T @ dH).ravel(), dH.sum(0), dW2.ravel(), db2])

g1 = mlp_rows_grad(fastgrad.pack(P1)[0], Xr, yr)
def _bug_tanh_deriv(U, g, th):
    W1, b1, W2, b2 = U1(th)
    H = np.tanh(Xr @ W1 + b1); R = (H @ W2 + b2 - yr) / len(Xr)
    dH = R @ W2.T  # forgot (1-H^2)
    return np.concatenate([(Xr.T @ dH).ravel(), dH.sum(0), g[U.block("W2")], g[U.block("b2")]])
run("mlp_rows_tanh", mlp_rows, P1, (Xr, yr), grad=g1, bug_block="b1", square_block="W1",
    extra_bugs={"missing_tanh_deriv": _bug_tanh_deriv}, bug_methods=["central", "richardson"])

# 2. MLP, examples as columns, sigmoid + softmax CE, analytic ----------------
Xc = rng.normal(size=(5, 30)); yc = rng.integers(0, 4, 30); Yc = np.eye(4)[:, yc]
P2 = {"W1": rng.normal(size=(7, 5)) * 0.7, "b1": rng.normal(size=(7, 1)) * 0.1,
      "W2": rng.normal(size=(4, 7)) * 0.7, "b2": rng.normal(size=(4, 1)) * 0.1}
U2 = Unpacker(P2)
def mlp_cols(t, X, Y):
    W1, b1, W2, b2 = U2(t)
    A = 1 / (1 + np.exp(-(W1 @ X + b1)))
    Z = W2 @ A + b2
    return np.mean(lse(Z, 0) - np.sum(Y * Z, 0))
def mlp_cols_grad(t, X, Y):
    W1, b1, W2, b2 = U2(t); m = X.shape[1]
    A = 1 / (1 + np.exp(-(W1 @ X + b1))); Z = W2 @ A + b2
    dZ = (softmax(Z, 0) - Y) / m
    dA = W2.T @ dZ; dZ1 = dA * A * (1 - A)
    return np.concatenate([(dZ1 @ X.T).ravel(), dZ1.sum(1), (dZ @ A.T).ravel(), dZ.sum(1)])
g2 = mlp_cols_grad(fastgrad.pack(P2)[0], Xc, Yc)
def _bug_nomean(U, g, th):
    b = g.copy(); b[U.block("W1")] *= Xc.shape[1]; return b
run("mlp_cols_sigmoid_ce", mlp_cols, P2, (Xc, Yc), grad=g2, bug_block="W2",
    extra_bugs={"W1_not_divided_by_m": _bug_nomean}, bug_methods=["central", "forward"])

# 3. 1-d CNN: conv (valid) + relu + max-pool + logistic -----------------------
Xs = rng.normal(size=(12, 20)); ys = np.sign(rng.normal(size=12))
P3 = {"K": rng.normal(size=(3, 5)) * 0.5, "c": rng.normal(size=3) * 0.1, "v": rng.normal(size=3)}
U3 = Unpacker(P3)
def cnn1d(t, X, y):
    K, c, v = U3(t)
    L = X.shape[1] - K.shape[1] + 1
    idx = np.arange(L)[:, None] + np.arange(K.shape[1])[None, :]
    patches = X[:, idx]  # (n, L, 5)
    Z = np.einsum("nlk,fk->nfl", patches, K) + c[None, :, None]
    A = crelu(Z)
    # max-pool over pairs of positions
    Lp = L // 2
    Pm = cmax(A[:, :, 0:2 * Lp:2], A[:, :, 1:2 * Lp:2])
    s = np.mean(Pm, axis=2) @ v
    return np.mean(np.log1p(np.exp(-y * s)))
run("cnn1d_relu_maxpool", cnn1d, P3, (Xs, ys), well=False, bug_block="K",
    bug_methods=["central", "richardson"])

# 4. softmax attention (Wq, Wk, Wv square) ------------------------------------
Xa = rng.normal(size=(6, 4))
P4 = {"Wq": rng.normal(size=(4, 4)) * 0.5, "Wk": rng.normal(size=(4, 4)) * 0.5,
      "Wv": rng.normal(size=(4, 4)) * 0.5, "u": rng.normal(size=4)}
U4 = Unpacker(P4)
def attention(t, X):
    Wq, Wk, Wv, u = U4(t)
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    A = softmax(Q @ K.T / 2.0, 1)
    O = A @ V
    return np.sum(np.tanh(O @ u)) + 0.05 * np.sum(Wq ** 2)
def _bug_nol2(U, g, th):
    b = g.copy(); b[U.block("Wq")] -= 0.1 * U4(th)[0].ravel(); return b
run("attention", attention, P4, (Xa,), bug_block="Wk", square_block="Wq",
    extra_bugs={"missing_l2_Wq": _bug_nol2}, bug_methods=["central", "complex"])

# 5. layer norm + linear --------------------------------------------------------
Xl = rng.normal(size=(10, 6)) * 3 + 1; yl = rng.normal(size=10)
P5 = {"gamma": 1 + 0.1 * rng.normal(size=6), "beta": 0.1 * rng.normal(size=6), "w": rng.normal(size=6)}
U5 = Unpacker(P5)
def layernorm(t, X, y):
    gm, bt, w = U5(t)
    mu = X.mean(1, keepdims=True); var = ((X - mu) ** 2).mean(1, keepdims=True)
    Hn = (X - mu) / np.sqrt(var + 1e-5) * gm + bt
    return np.mean((Hn @ w - y) ** 2)
run("layernorm", layernorm, P5, (Xl, yl), bug_block="gamma", bug_methods=["central", "richardson"])

# 6. batch norm on a hidden layer (normalisation depends on W) ----------------
Xb = rng.normal(size=(16, 4)); yb = rng.normal(size=16)
P6 = {"W": rng.normal(size=(4, 5)), "gamma": 1 + 0.1 * rng.normal(size=5), "beta": 0.1 * rng.normal(size=5),
      "v": rng.normal(size=5)}
U6 = Unpacker(P6)
def batchnorm(t, X, y):
    W, gm, bt, v = U6(t)
    Z = X @ W
    mu = Z.mean(0); var = ((Z - mu) ** 2).mean(0)
    H = np.tanh((Z - mu) / np.sqrt(var + 1e-3) * gm + bt)
    return 0.5 * np.mean((H @ v - y) ** 2)
run("batchnorm", batchnorm, P6, (Xb, yb), bug_block="W", bug_methods=["central", "forward"])

# 7. GLMs: logistic (analytic), Poisson with large curvature ------------------
Xg = rng.normal(size=(60, 5)); yg = (rng.random(60) < 0.5).astype(float)
P7 = {"w": rng.normal(size=5), "b": np.array([0.3])}
U7 = Unpacker(P7)
def logistic(t, X, y):
    w, b = U7(t); z = X @ w + b[0]
    return np.mean(np.logaddexp(0, z) - y * z) if not np.iscomplexobj(t) else np.mean(np.log1p(np.exp(z)) - y * z)
run("glm_logistic", logistic, P7, (Xg, yg), bug_block="w", bug_methods=["central", "richardson"])

Xp = rng.normal(size=(50, 4)); yp = rng.poisson(3.0, size=50).astype(float)
P7b = {"w": np.array([1.5, -1.0, 0.8, 2.0]), "b": np.array([2.0])}
U7b = Unpacker(P7b)
def poisson(t, X, y):
    w, b = U7b(t); z = X @ w + b[0]
    return np.sum(np.exp(z) - y * z)
run("glm_poisson_bigcurv", poisson, P7b, (Xp, yp), bug_block="b", bug_methods=["central", "richardson"])

# 8. physics energies ---------------------------------------------------------
P8 = {"pos": (np.array([[0, 0, 0], [1.12, 0, 0], [0.5, 0.97, 0], [0.5, 0.3, 0.9], [1.6, 1.0, 0.5]])
              + 0.05 * rng.normal(size=(5, 3)))}
U8 = Unpacker(P8)
def lennard_jones(t):
    (x,) = U8(t)
    e = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            r2 = np.sum((x[i] - x[j]) ** 2)
            e = e + 4 * (r2 ** -6 - r2 ** -3)
    return e
def _lj_onepair(U, g, th):
    # forget the pair (0,1) interaction in the gradient
    x = th.reshape(5, 3).astype(complex)
    def pair(tt):
        xx = tt.reshape(5, 3); r2 = np.sum((xx[0] - xx[1]) ** 2); return 4 * (r2 ** -6 - r2 ** -3)
    return g - cstep(pair, th)
run("lennard_jones", lennard_jones, P8, (), bug_block="pos", std=True,
    extra_bugs={"missing_pair01": _lj_onepair}, bug_methods=["central", "richardson"])

# spring network with separate blocks
P8b = {"x": rng.normal(size=(6, 2)), "k": 1 + rng.random(8), "L0": 1 + 0.1 * rng.random(8)}
U8b = Unpacker(P8b)
E8 = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0), (0, 3), (1, 4)]
def springs(t):
    x, k, L0 = U8b(t)
    e = 0
    for i, (a, b) in enumerate(E8):
        r = np.sqrt(np.sum((x[a] - x[b]) ** 2))
        e = e + 0.5 * k[i] * (r - L0[i]) ** 2
    return e
run("springs", springs, P8b, (), bug_block="L0", bug_methods=["central", "forward"])

# 9. ODE unrolled (RK4 damped oscillator, parameters k, c, x0) ----------------
P9 = {"phys": np.array([2.0, 0.3]), "x0": np.array([1.0, 0.0])}
U9 = Unpacker(P9)
def ode_rk4(t):
    (kk, cc), x0 = U9(t)
    def fdyn(s):
        return np.array([s[1], -kk * s[0] - cc * s[1]])
    s = x0 * 1; h = 0.05; J = 0
    for _ in range(60):
        k1 = fdyn(s); k2 = fdyn(s + h / 2 * k1); k3 = fdyn(s + h / 2 * k2); k4 = fdyn(s + h * k3)
        s = s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        J = J + h * (s[0] - 0.5) ** 2
    return J
run("ode_rk4", ode_rk4, P9, (), bug_block="x0", bug_methods=["central", "richardson"])

# 10. RNN tanh recurrence ------------------------------------------------------
Xq = rng.normal(size=(8, 3)); yq = rng.normal(size=8)
P10 = {"Wh": rng.normal(size=(4, 4)) * 0.4, "Wx": rng.normal(size=(3, 4)) * 0.5, "wo": rng.normal(size=4)}
U10 = Unpacker(P10)
def rnn(t, X, y):
    Wh, Wx, wo = U10(t)
    h = np.zeros(4); J = 0
    for i in range(len(X)):
        h = np.tanh(h @ Wh + X[i] @ Wx)
        J = J + (h @ wo - y[i]) ** 2
    return J / len(X)
def _bug_trunc(U, g, th):
    # truncated BPTT (one step): gradient of loss with h_{t-1} held constant
    Wh, Wx, wo = U10(th)
    hs = [np.zeros(4)]
    for i in range(len(Xq)):
        hs.append(np.tanh(hs[-1] @ Wh + Xq[i] @ Wx))
    def trunc(tt):
        Wh2, Wx2, wo2 = U10(tt); J = 0
        for i in range(len(Xq)):
            h = np.tanh(hs[i] @ Wh2 + Xq[i] @ Wx2); J = J + (h @ wo2 - yq[i]) ** 2
        return J / len(Xq)
    return cstep(trunc, th)
run("rnn_tanh", rnn, P10, (Xq, yq), bug_block="Wx", square_block="Wh",
    extra_bugs={"truncated_bptt": _bug_trunc}, bug_methods=["central", "richardson"])

# 11. matrix factorisation with L2 -------------------------------------------
R = rng.normal(size=(12, 10)); M = rng.random((12, 10)) < 0.6
P11 = {"U": rng.normal(size=(12, 3)) * 0.5, "V": rng.normal(size=(10, 3)) * 0.5}
U11 = Unpacker(P11)
def mf(t, R, M):
    Uu, V = U11(t)
    return 0.5 * np.sum(M * (Uu @ V.T - R) ** 2) + 0.01 * (np.sum(Uu ** 2) + np.sum(V ** 2))
def _mf_nol2(U, g, th):
    return g - 0.02 * th
run("matfact", mf, P11, (R, M), bug_block="V", extra_bugs={"missing_l2_both": _mf_nol2},
    bug_methods=["central", "forward"])

# 12. Gaussian mixture NLL ------------------------------------------------------
xm = np.concatenate([rng.normal(-2, 0.5, 30), rng.normal(1.5, 1.0, 40)])
P12 = {"mu": np.array([-1.8, 1.2, 0.1]), "logsig": np.array([-0.5, 0.1, 0.3]), "logit": np.array([0.2, 0.5, -1.0])}
U12 = Unpacker(P12)
def gmm(t, x):
    mu, ls, lg = U12(t)
    logpi = lg - lse(lg[None, :], 1)[0]
    z = (x[:, None] - mu) / np.exp(ls)
    comp = logpi - 0.5 * z ** 2 - ls - 0.5 * np.log(2 * np.pi)
    return -np.mean(lse(comp, 1))
run("gmm", gmm, P12, (xm,), bug_block="logsig", bug_methods=["central", "richardson"])

# 13. robust losses ------------------------------------------------------------
Xh = rng.normal(size=(40, 4)); yh = Xh @ np.array([1., -2, .5, 3]) + rng.standard_t(2, 40)
P13 = {"w": np.array([0.8, -1.7, 0.3, 2.5]), "b": np.array([0.1])}
U13 = Unpacker(P13)
def huber(t, X, y):
    w, b = U13(t); r = X @ w + b[0] - y; d = 1.0
    ar = cabs(r)
    return np.mean(np.where(np.real(ar) <= d, 0.5 * r ** 2, d * (ar - 0.5 * d)))
run("huber", huber, P13, (Xh, yh), well=False, bug_block="w", bug_methods=["central", "richardson"])
def cauchy(t, X, y):
    w, b = U13(t); r = X @ w + b[0] - y
    return np.mean(np.log1p(r ** 2))
run("cauchy", cauchy, P13, (Xh, yh), bug_block="b", bug_methods=["central", "forward"])
def l1reg(t, X, y):
    w, b = U13(t); r = X @ w + b[0] - y
    return np.mean(cabs(r))
run("l1_regression", l1reg, P13, (Xh, yh), well=False, bug_block="w", per_example=None,
    bug_methods=["central", "richardson"])

# 14. high-degree polynomial -------------------------------------------------
P14 = {"a": np.array([0.9, -0.7, 0.5]), "b": np.array([1.05, 0.3])}
U14 = Unpacker(P14)
def poly(t):
    a, b = U14(t)
    return np.sum(a ** 20) + np.sum(b ** 31) - 3 * np.sum(a ** 7) + np.prod(b) ** 9
run("poly_deg31", poly, P14, (), bug_block="a", bug_methods=["central", "richardson"])

# 15. exp / log with huge curvature ------------------------------------------
P15 = {"u": np.array([1.0, 1.5, 0.2]), "v": np.array([1e-3, 0.5])}
U15 = Unpacker(P15)
def expbig(t):
    u, v = U15(t)
    return np.sum(np.exp(10 * u)) + np.sum(np.log(v)) * 1e-3 + np.sum(-np.log(v + 1e-4))
run("exp_log_curv", expbig, P15, (), bug_block="v", bug_methods=["central", "richardson"])

# 16. near an optimum: grads 1e-6..1e-10 --------------------------------------
A16 = rng.normal(size=(6, 6)); A16 = A16 @ A16.T + 6 * np.eye(6)
for gs in [1e-6, 1e-8, 1e-10]:
    ts = np.linalg.solve(A16, np.ones(6)) + gs * rng.normal(size=6)
    P16 = {"p": ts[:3], "q": ts[3:]}
    def quad(t, A=A16):
        return 0.5 * t @ A @ t - np.sum(t) + 2.0
    run(f"near_opt_{gs:g}", quad, P16, (), bug_block="q", well=(gs >= 1e-6), bug_methods=["central", "richardson"])

# 16b. MLP near optimum (trained logistic reg) --------------------------------
w_opt = np.zeros(5); b_opt = 0.0
Xo = rng.normal(size=(80, 5)); yo = (Xo @ np.array([1, -1, .5, 0, 2]) + rng.normal(size=80) > 0).astype(float)
th = np.zeros(6)
for _ in range(50):
    z = Xo @ th[:5] + th[5]; p = 1 / (1 + np.exp(-z))
    gg = np.concatenate([Xo.T @ (p - yo), [np.sum(p - yo)]]) / 80 + 0.01 * np.r_[th[:5], 0]
    H = (np.c_[Xo, np.ones(80)].T * (p * (1 - p))) @ np.c_[Xo, np.ones(80)] / 80 + 0.01 * np.diag(np.r_[np.ones(5), 0])
    th = th - np.linalg.solve(H, gg)
P16b = {"w": th[:5], "b": th[5:]}
U16b = Unpacker(P16b)
def logreg_l2(t, X, y):
    w, b = U16b(t); z = X @ w + b[0]
    return np.mean(np.log1p(np.exp(z)) - y * z) + 0.005 * np.sum(w ** 2)
run("logreg_at_optimum", logreg_l2, P16b, (Xo, yo), well=False, bug_block="w",
    extra_bugs={"missing_l2": lambda U, g, t: g - 0.01 * np.r_[t[:5], 0]})

# 17. huge losses: MSE with targets 1e6 / 1e7 --------------------------------
for tscale in [1e6, 1e7]:
    Xt = rng.normal(size=(20, 3)); yt = tscale * (1 + rng.random(20))
    P17 = {"w": rng.normal(size=3), "b": np.array([0.5])}
    U17 = Unpacker(P17)
    def mse_big(t, X, y, U17=U17):
        w, b = U17(t); return np.mean((X @ w + b[0] - y) ** 2)
    run(f"mse_targets_{tscale:g}", mse_big, P17, (Xt, yt), well=False, bug_block="w",
        bug_methods=["central", "richardson"])

# 18. huge constants added -----------------------------------------------------
for C in [1e4, 1e8, 1e12]:
    P18 = {"x": np.array([0.7, -1.2, 2.0]), "y": np.array([0.4, 0.9])}
    def rosen_c(t, C=C):
        return C + np.sum(100 * (t[1:] - t[:-1] ** 2) ** 2 + (1 - t[:-1]) ** 2)
    run(f"rosen_plus_{C:g}", rosen_c, P18, (), well=(C <= 1e4), bug_block="y", bug_methods=["central", "richardson"])

# 19. mixed parameter scales 1e-6..1e6, cost sees theta/scale --------------------
sc = np.array([1e-6, 1e-3, 1.0, 1e3, 1e6])
P19 = {"tiny": 0.7e-6 * np.ones(2), "small": np.array([0.5e-3, -1.2e-3]), "unit": np.array([0.3, 1.1]),
       "big": np.array([700.0, -1500.0]), "huge": np.array([2.5e6, 0.8e6])}
scv = np.repeat(sc, 2)
def mixed(t):
    u = t / scv
    return np.sum(np.sin(u)) + 0.5 * np.sum(u ** 2) + u[0] * u[-1]
run("mixed_scales_scaled", mixed, P19, (), bug_block="small", bug_methods=["central", "richardson"])
def mixed_raw(t):
    return np.sum(np.cos(1e-3 * t)) + 1e-12 * np.sum(t ** 2) + np.sum(t[:4] ** 2) * 1e3
run("mixed_scales_raw", mixed_raw, P19, (), well=False, bug_block="big", bug_methods=["central", "richardson"])

# 20. ripples --------------------------------------------------------------------
A20 = rng.normal(size=(5, 5)); A20 = A20 @ A20.T / 5 + np.eye(5)
P20base = {"a": np.array([0.3, -0.8]), "r": np.array([1.1, 0.2, -0.5])}
for w in [1e2, 1e3, 1e4, 1e5, 1e6, 1e7]:
    for slope in [1e-2, 1e-6]:
        amp = slope / w
        def ripple(t, w=w, amp=amp):
            return 0.5 * t @ A20 @ t + np.sum(np.exp(0.3 * t)) + amp * np.sum(np.sin(w * t[2:]))
        def _no_ripple(U, g, th, w=w, amp=amp):
            b = g.copy(); b[2:] -= amp * w * np.cos(w * th[2:]); return b
        run(f"ripple_w{w:g}_slope{slope:g}", ripple, P20base, (), well=(slope >= 1e-2 and w <= 1e4),
            bug_block="a", extra_bugs={"missing_ripple_slope": _no_ripple},
            methods=["central", "richardson"], bug_methods=["central", "richardson"])
# ripple with negligible slope but large curvature
for w in [1e5, 1e6, 1e7]:
    amp = 1e-10 / w  # slope 1e-10
    def rip2(t, w=w, amp=amp):
        return 0.5 * t @ A20 @ t + amp * np.sum(np.sin(w * t))
    run(f"ripple_negl_w{w:g}", rip2, P20base, (), well=False, bug_block="r",
        methods=["central", "richardson"], bug_methods=["central", "forward"])

# 21. kinks a few steps away ----------------------------------------------------
for k_off in [2e-6, 6e-6, 2e-5, 1e-4]:
    P21 = {"p": np.array([0.4, -0.3, 0.9]), "q": np.array([1.3, -0.6])}
    cvec = np.array([0.4, -0.3, 0.9, 1.3, -0.6]) + k_off * np.array([1, -1, 3, -2, 1.5])
    def kinkabs(t, c=cvec):
        return np.sum(cabs(t - c)) * 0.3 + 0.5 * np.sum(t ** 2) + np.sum(crelu(t - c)) + np.sum(cclip(t, -0.299, 0.899))
    run(f"kinks_offset_{k_off:g}", kinkabs, P21, (), well=False, bug_block="q",
        methods=["central", "richardson", "forward", "complex"], bug_methods=["central", "richardson", "forward"])
# hinge loss SVM, relu network with preactivations close to zero
Xv = rng.normal(size=(30, 4)); yv = np.sign(rng.normal(size=30))
P21b = {"w": np.array([0.5, -0.4, 0.2, 0.1]), "b": np.array([0.0])}
U21b = Unpacker(P21b)
# put one margin exactly on a few steps of the hinge
wv = P21b["w"]; mrg = yv * (Xv @ wv); i0 = 3; P21b["b"] = np.array([(1 + 3e-6 - mrg[i0]) / yv[i0]])
def hinge(t, X, y):
    w, b = U21b(t); m = y * (X @ w + b[0])
    return np.mean(crelu(1 - m)) + 0.5 * 0.01 * np.sum(w ** 2)
run("hinge_near_kink", hinge, P21b, (Xv, yv), well=False, bug_block="w")
def hinge_pe(t, X, y):
    w, b = U21b(t); m = y * (X @ w + b[0])
    return crelu(1 - m) + 0.5 * 0.01 * np.sum(w ** 2)
run("hinge_near_kink_pe_mean", hinge_pe, P21b, (Xv, yv), well=False, bug_block="w", per_example="mean")
run("hinge_near_kink_pe_sum", hinge_pe, P21b, (Xv, yv), well=False, bug_block="b", per_example="sum")
# hinge exactly at the kink (b chosen so margin == 1 exactly is not representable; use 0-margin for relu)
P21c = dict(P21b); P21c["b"] = np.array([0.0])
Xk = Xv.copy(); Xk[0] = 0.0  # example 0 has margin exactly 0 -> relu(1-m)=1, not a kink; use |m|
def absmargin_pe(t, X, y):
    w, b = U21b(t); m = y * (X @ w + b[0])
    return cabs(m) * 0.5 + np.log1p(np.exp(-m))
KINK_BLOCKS.add("b")  # b sits exactly at example 0's kink: a small change of it stays in the valid range
run("abs_exact_kink_pe_sum", absmargin_pe, P21c, (Xk, yv), well=False, bug_block="w", per_example="sum")
KINK_BLOCKS.clear()

# max with ties across examples cancelling (per-example kinks cancel in total)
P21d = {"s": np.array([0.0, 1.0])}
def cancel_pe(t):
    # example 1: relu(s0); example 2: -relu(s0) + s0 -> sum = s0 for s0>0 and s0 for s0<0?  relu(x)-relu(x)+x = x smooth
    return np.array([crelu(t[0]) + t[1] ** 2, -crelu(t[0]) + t[0]])
run("cancel_kinks_pe_sum", cancel_pe, P21d, (), well=False, bug_block="s", per_example="sum",
    methods=["central", "richardson"], std=False,
    extra_bugs={  # +0.5 on s0 stays inside the documented sum of per-example ranges [0, 2]: not a bug under that rule
                "s0_plus2": lambda U, g, t: g + np.array([2.0, 0.0]),
                "s0_minus2": lambda U, g, t: g - np.array([2.0, 0.0]),
                "s1_sign": lambda U, g, t: g * np.array([1, -1])})

# relu MLP with a unit exactly at a kink (preactivation exactly zero)
Xz = rng.normal(size=(10, 3)); yz = rng.normal(size=10)
P21e = {"W": rng.normal(size=(3, 4)), "b": np.zeros(4), "v": rng.normal(size=4)}
P21e["b"][1] = -(Xz[2] @ P21e["W"][:, 1])
U21e = Unpacker(P21e)
def relumlp(t, X, y):
    W, b, v = U21e(t); H = crelu(X @ W + b)
    return 0.5 * np.mean((H @ v - y) ** 2)
def relumlp_pe(t, X, y):
    W, b, v = U21e(t); H = crelu(X @ W + b)
    return 0.5 * (H @ v - y) ** 2
run("relu_mlp_exact_kink", relumlp, P21e, (Xz, yz), well=False, bug_block="b")
run("relu_mlp_exact_kink_pe_mean", relumlp_pe, P21e, (Xz, yz), well=False, bug_block="W", per_example="mean",
    methods=["central", "richardson"])

# 22. float32 costs ------------------------------------------------------------
Xf = rng.normal(size=(30, 5)).astype(np.float32); yf = rng.normal(size=30).astype(np.float32)
P22 = {"w": rng.normal(size=5), "b": np.array([0.2])}
U22 = Unpacker(P22)
def f32_mse(t, X, y):
    t32 = t.astype(np.float32); w, b = t32[:5], t32[5]
    return float(np.mean((X @ w + b - y) ** 2, dtype=np.float32))
def f64_mse(t, X, y):
    w, b = t[:5], t[5]
    return np.mean((X.astype(float) @ w + b - y.astype(float)) ** 2)
run("float32_mse", f32_mse, P22, (Xf, yf), truth_f=f64_mse, well=False, csafe=False, bug_block="w",
    methods=["central", "richardson", "forward"])
def f32cast_params(t, X, y):
    w = t[:5].astype(np.float32).astype(float); b = float(np.float32(t[5]))
    return np.mean((X.astype(float) @ w + b - y.astype(float)) ** 2)
run("float32_cast_params", f32cast_params, P22, (Xf, yf), truth_f=f64_mse, well=False, csafe=False, bug_block="b",
    methods=["central", "richardson"])
# 23. quantised
for dec in [6, 9, 12]:
    def quant(t, X, y, dec=dec):
        return np.round(f64_mse(t, X, y), dec)
    run(f"quantised_round{dec}", quant, P22, (Xf, yf), truth_f=f64_mse, well=False, csafe=False, bug_block="w",
        methods=["central", "richardson"])

# 24. elastic net exactly at zero (subgradient 0 from sign(0)) -----------------
Xe = rng.normal(size=(40, 6)); ye = rng.normal(size=40)
P24 = {"w": np.array([0.0, 0.5, 0.0, -0.3, 0.0, 0.2]), "b": np.array([0.1])}
U24 = Unpacker(P24)
def enet(t, X, y):
    w, b = U24(t)
    return 0.5 * np.mean((X @ w + b[0] - y) ** 2) + 0.5 * np.sum(cabs(w)) + 0.1 * np.sum(w ** 2)
run("elastic_net_at_zero", enet, P24, (Xe, ye), well=False, bug_block="w",
    extra_bugs={"missing_l1": lambda U, g, t: g - np.r_[0.5 * np.sign(t[:6]), 0]})

# 25. Rosenbrock, well scaled --------------------------------------------------
P25 = {"x": rng.normal(size=20) * 0.5, "y": rng.normal(size=10) * 0.5}
def rosen(t):
    return np.sum(100 * (t[1:] - t[:-1] ** 2) ** 2 + (1 - t[:-1]) ** 2)
run("rosenbrock30", rosen, P25, (), bug_block="x", bug_methods=["central", "forward", "richardson", "complex"])

# 26. -log(p) near p = 1 (noise above eps|J|) -------------------------------
P26 = {"z": np.array([8.0, 9.0, 7.5]), "o": np.array([0.1, -0.2])}
def neglogp(t):
    z = t[:3]; o = t[3:]
    p = 1 / (1 + np.exp(-z))
    return -np.sum(np.log(p)) + 1e-4 * np.sum(o ** 2) + 1e-4 * np.sum(z)
run("neglog_p_near1", neglogp, P26, (), well=False, bug_block="z", bug_methods=["central", "richardson"])

# 27. larger MLP (a few thousand params) --------------------------------------
Xbig = rng.normal(size=(32, 30)); ybig = rng.normal(size=(32, 3))
P27 = {"W1": rng.normal(size=(30, 40)) / 5, "b1": 0.1 * rng.normal(size=40),
       "W2": rng.normal(size=(40, 40)) / 6, "b2": 0.1 * rng.normal(size=40),
       "W3": rng.normal(size=(40, 3)) / 6, "b3": 0.1 * rng.normal(size=3)}
U27 = Unpacker(P27)
def mlp3(t, X, y):
    W1, b1, W2, b2, W3, b3 = U27(t)
    H = np.tanh(X @ W1 + b1); H2 = np.tanh(H @ W2 + b2)
    return 0.5 * np.mean(np.sum((H2 @ W3 + b3 - y) ** 2, 1))
def mlp3_grad(t, X, y):
    W1, b1, W2, b2, W3, b3 = U27(t)
    H = np.tanh(X @ W1 + b1); H2 = np.tanh(H @ W2 + b2); Rr = (H2 @ W3 + b3 - y) / len(X)
    dH2 = Rr @ W3.T * (1 - H2 ** 2); dH = dH2 @ W2.T * (1 - H ** 2)
    return np.concatenate([(X.T @ dH).ravel(), dH.sum(0), (H.T @ dH2).ravel(), dH2.sum(0), (H2.T @ Rr).ravel(), Rr.sum(0)])
th27, _ = fastgrad.pack(P27)
g27 = mlp3_grad(th27, Xbig, ybig)
run("mlp3_tanh_3k", mlp3, P27, (Xbig, ybig), truth_grad=g27, bug_block="b2", square_block="W2",
    methods=["central"], bug_methods=["central"])
# sampled and directional on the same
if not ONLY or "mlp3" in ONLY:
    U = U27
    for mode_kw in [{"sample": 20}, {"mode": "directional"}]:
        tag = "sample20" if "sample" in mode_kw else "directional"
        rep = fastgrad.gradcheck(mlp3, g27, th27, layout=fastgrad.pack(P27)[1], args=(Xbig, ybig), **mode_kw)
        judge_correct(f"mlp3_tanh_3k/{tag}", rep)
        for bn, bg in standard_bugs(U, g27, "W3", "W2").items():
            if tag == "sample20" and "onecomp" in bn:
                continue  # one component may legitimately be unsampled
            must, amb = blocks_changed(U, g27, bg)
            rep = fastgrad.gradcheck(mlp3, bg, th27, layout=fastgrad.pack(P27)[1], args=(Xbig, ybig), **mode_kw)
            judge_bug(f"mlp3_tanh_3k/{bn}/{tag}", rep, must, amb, True)

# 28. DenseNet built-in --------------------------------------------------------
def dense_cases():
    for acts, loss, ny in [("tanh", "mse", 1), ("sigmoid", "binary_cross_entropy", 1),
                           ("relu", "softmax_cross_entropy", 3)]:
        name = f"densenet_{acts}_{loss}"
        if ONLY and ONLY not in name:
            continue
        try:
            net = fastgrad.DenseNet([4, 6, 5, ny], activations=acts, loss=loss)
            params = net.init(seed=3)
            Xd = rng.normal(size=(4, 12))
            if loss == "softmax_cross_entropy":
                Yd = np.eye(ny)[:, rng.integers(0, ny, 12)]
            elif loss == "binary_cross_entropy":
                Yd = (rng.random((1, 12)) < 0.5).astype(float)
            else:
                Yd = rng.normal(size=(1, 12))
            grads = net.gradients(params, Xd, Yd)
            # independent truth: own forward in complex
            names = list(params)
            U = Unpacker(params)
            def fwd(t):
                ps = U(t); A = Xd
                L = len(ps) // 2
                for l in range(L):
                    Z = ps[2 * l] @ A + ps[2 * l + 1]
                    if l < L - 1:
                        A = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": crelu}[acts](Z)
                    else:
                        A = Z
                m = Xd.shape[1]
                if loss == "mse":
                    return np.sum((A - Yd) ** 2) / (2 * m)
                if loss == "binary_cross_entropy":
                    return np.sum(np.log1p(np.exp(A)) - Yd * A) / m
                return np.sum(lse(A, 0) - np.sum(Yd * A, 0)) / m
            theta, layout = fastgrad.pack(params)
            truth = cstep(fwd, theta)
            g = fastgrad.pack({k: grads["d" + k] for k in names}, layout=layout)
            rel = np.linalg.norm(g - truth) / np.linalg.norm(truth)
            extra = f"netgrad_vs_truth={rel:.1e}"
            if rel > 1e-9:
                print(f"!! {name}: net.gradients differs from independent truth rel={rel:.2e} (loss convention?)")
            rep = net.gradcheck(params, Xd, Yd)
            judge_correct(f"{name}/own", rep, extra)
            rep = net.gradcheck(params, Xd, Yd, grads={("d" + k): v for k, v in grads.items() if False} or grads)
            judge_correct(f"{name}/given", rep, extra)
            # also check with the generic engine on our own cost
            rep = fastgrad.gradcheck(fwd, g, theta, layout=layout)
            judge_correct(f"{name}/generic_owncost", rep, extra)
            for bn, bg in standard_bugs(U, g, "b2", None).items():
                must, amb = blocks_changed(U, g, bg)
                gd = {"d" + k: v for k, v in fastgrad.unpack(bg, layout).items()}
                rep = net.gradcheck(params, Xd, Yd, grads=gd)
                judge_bug(f"{name}/{bn}", rep, must, amb, acts != "relu")
            for mode_kw in [{"mode": "directional"}, {"method": "richardson"}, {"method": "complex"}]:
                tag = "/".join(f"{k}={v}" for k, v in mode_kw.items())
                try:
                    rep = net.gradcheck(params, Xd, Yd, **mode_kw)
                    judge_correct(f"{name}/{tag}", rep)
                    bg = g.copy(); sl = U.block("W1"); bg[sl] *= -1
                    must, amb = blocks_changed(U, g, bg)
                    rep = net.gradcheck(params, Xd, Yd, grads={"d" + k: v for k, v in fastgrad.unpack(bg, layout).items()}, **mode_kw)
                    judge_bug(f"{name}/signflip_W1/{tag}", rep, must, amb, acts != "relu")
                except Exception as e:
                    record(f"{name}/{tag}", "CRASH", "crash", "VIOLATION", float("nan"), float("nan"), (repr(e),))
        except Exception as e:
            record(name, "CRASH", "crash", "VIOLATION", float("nan"), float("nan"), (repr(e),))
            traceback.print_exc()
dense_cases()

# 29. aliasing attack: ripple tuned to the first step --------------------------
def aliasing_case():
    if ONLY and "alias" not in ONLY:
        return
    A = np.array([[3.0, 0.5, 0.2, 0.1, 0.0], [0.5, 2.0, 0.3, 0.0, 0.1], [0.2, 0.3, 4.0, 0.2, 0.0],
                  [0.1, 0.0, 0.2, 2.5, 0.3], [0.0, 0.1, 0.0, 0.3, 3.5]])
    th = np.array([0.3, -0.7, 1.1, 0.45, -0.2])
    P = {"a": th[:2], "b": th[2:]}
    theta, layout = fastgrad.pack(P)
    def base(t):
        return 0.5 * t @ A @ t + np.sum(np.cos(t))
    # learn the first step for each component from a recording run
    log = []
    def rec(t):
        log.append(t.copy()); return base(t)
    gb = cstep(base, theta)
    fastgrad.gradcheck(rec, gb, theta, layout=layout)
    D = np.array(log) - theta
    steps = {}
    for d in D:
        nz = np.nonzero(d)[0]
        if len(nz) == 1 and d[nz[0]] > 0:
            steps.setdefault(nz[0], []).append(d[nz[0]])
    # the pair steps are the ones that appear with both signs; take the last positive (first central pair)
    pair = {}
    for d in D:
        nz = np.nonzero(d)[0]
        if len(nz) == 1:
            pair.setdefault(nz[0], []).append(d[nz[0]])
    hs = {}
    for k, v in pair.items():
        v = np.array(v)
        pos = v[v > 0]; neg = -v[v < 0]
        common = [x for x in pos if np.any(np.isclose(neg, x, rtol=0, atol=0))]
        if common:
            hs[k] = common[0]
    for comp in [0, 4]:
        if comp not in hs:
            continue
        h = hs[comp]
        for mult, tag in [(1.0, "half-period"), (2.0, "full-period")]:
            w = mult * np.pi / h
            amp = 0.05 / w  # ripple slope 0.05 vs gradient O(1)
            def cost(t, w=w, amp=amp, comp=comp):
                return base(t) + amp * np.sin(w * t[comp])
            truth = cstep(cost, theta)
            bad = truth.copy(); bad[comp] -= amp * w * np.cos(w * theta[comp])
            U = Unpacker(P)
            must, amb = blocks_changed(U, truth, bad)
            for m in ["central", "richardson", "forward"]:
                rep = fastgrad.gradcheck(cost, truth, theta, layout=layout, method=m)
                judge_correct(f"alias_comp{comp}_{tag}/{m}", rep, f"h={h:.3e} w={w:.3e}")
                rep = fastgrad.gradcheck(cost, bad, theta, layout=layout, method=m)
                judge_bug(f"alias_comp{comp}_{tag}/missing_ripple/{m}", rep, must, amb, False,
                          f"h={h:.3e} w={w:.3e} dropped={amp*w*np.cos(w*theta[comp]):.3e}")
aliasing_case()


# 31. complex step where the gradient is small through cancellation ----------
for off in [0.0, 1e-12, 1e-9, 1e-6]:
    Xls = np.random.default_rng(7).normal(size=(30, 4)); yls = np.random.default_rng(8).normal(size=30) * 10
    tls = np.linalg.lstsq(Xls, yls, rcond=None)[0] + off
    Pls = {"w": tls[:2], "v": tls[2:]}
    def lsq(t, X=Xls, y=yls):
        return 0.5 * np.sum((X @ t - y) ** 2)
    def lsq_grad(t, X=Xls, y=yls):
        return X.T @ (X @ t - y)
    thl = fastgrad.pack(Pls)[0]
    run(f"lsq_at_opt_off{off:g}", lsq, Pls, (), grad=lsq_grad(thl), truth_grad=lsq_grad(thl), well=(off >= 1e-6),
        bug_block="v", methods=["complex", "central", "richardson"], bug_methods=["complex", "central"])

# 32. tiny-scale parameters seen on their own scale, per method -----------------
for s_ in [1e-6, 1e-4, 1e-8]:
    Pt = {"t": np.array([0.7, -1.3, 0.4]) * s_, "u": np.array([0.5, 1.5])}
    def tinyscale(t, s_=s_):
        z = t[:3] / s_
        return np.sum(np.sin(z)) + 0.5 * np.sum(z ** 2) + np.sum(t[3:] ** 2) + z[0] * t[3]
    run(f"tinyscale_{s_:g}", tinyscale, Pt, (), bug_block="u", well=True,
        methods=["central", "richardson", "forward", "complex"], bug_methods=["central", "richardson"])

# 30. CLI ------------------------------------------------------------------------
def cli_cases():
    if ONLY and "cli" not in ONLY:
        return
    import subprocess, tempfile
    for argv, want in [(["--help"], 0), (["check", "--layers", "3,4,2", "--batch", "5", "--json"], 0),
                       (["check", "--layers", "3,4,1", "--batch", "5", "--activation", "tanh", "--loss", "mse"], 0),
                       (["check", "--layers", "abc"], 2)]:
        p = subprocess.run([sys.executable, "-m", "fastgrad"] + argv, capture_output=True, text=True, timeout=300)
        ok = "ok" if p.returncode == want else "VIOLATION"
        record("cli " + " ".join(argv), "cli", f"rc={p.returncode}", ok, float("nan"), float("nan"),
               (p.stderr[-300:],) if ok != "ok" else ())
    # saved arrays with a planted bug
    with tempfile.TemporaryDirectory() as d:
        net = fastgrad.DenseNet([3, 4, 2], activations="tanh", loss="mse")
        params = net.init(seed=1)
        X = rng.normal(size=(3, 6)); Y = rng.normal(size=(2, 6))
        grads = net.gradients(params, X, Y)
        np.savez(f"{d}/p.npz", **params); np.savez(f"{d}/d.npz", X=X, Y=Y)
        np.savez(f"{d}/g.npz", **grads)
        bad = dict(grads); bad["db2"] = -bad["db2"]; np.savez(f"{d}/gb.npz", **bad)
        for gfile, want, kind in [("g.npz", 0, "correct"), ("gb.npz", 1, "bug")]:
            argv = ["check", "--params", f"{d}/p.npz", "--grads", f"{d}/{gfile}", "--data", f"{d}/d.npz",
                    "--layers", "3,4,2", "--activation", "tanh", "--loss", "mse"]
            p = subprocess.run([sys.executable, "-m", "fastgrad"] + argv, capture_output=True, text=True, timeout=300)
            ok = "ok" if p.returncode == want else "VIOLATION"
            if kind == "bug" and ok == "ok" and "b2" not in p.stdout:
                ok = "VIOLATION"
            record(f"cli check saved arrays {kind}", "cli", f"rc={p.returncode}", ok, float("nan"), float("nan"),
                   (p.stdout[-400:] + p.stderr[-400:],) if ok != "ok" else ())
cli_cases()

# ---------------------------------------------------------------- summary --
print("\n==== SUMMARY ====")
corr = [r for r in RESULTS if r[1] == "correct"]
bugs = [r for r in RESULTS if r[1].startswith("bug")]
print("correct:", {v: sum(r[2] == v for r in corr) for v in ["pass", "inconclusive", "fail"]})
cats = ["fail-localised", "fail-subset", "fail-wrong-blocks", "inconclusive", "pass"]
print("bugs:", {c: sum(r[1] == f"bug[{c}]" for r in bugs) for c in cats})
print("violations:", sum(not r[3].startswith("ok") for r in RESULTS), "of", len(RESULTS), "checks")
for r in RESULTS:
    if not r[3].startswith("ok"):
        print("  VIOL:", r[0], r[1], r[2], r[3], f"{r[4]:.3e} {r[5]:.3e}", r[6], r[7])
print("inconclusive correct:")
for r in corr:
    if r[2] == "inconclusive":
        print("  ", r[0], r[6])
print(f"elapsed {time.time() - T0:.1f}s")
