"""Red-team 9 cases: conventions outside the project's (examples as rows, own back-prop)."""
import numpy as np, mpmath
mpmath.mp.dps = 40

def unpack(theta, names, shapes):
    out, o = {}, 0
    for n, s in zip(names, shapes):
        k = int(np.prod(s)); out[n] = theta[o:o + k].reshape(s); o += k
    return out

def pack(d, names):
    return np.concatenate([np.asarray(d[n], dtype=np.float64).ravel() for n in names])

# ---------------- family 1: least squares, rows = examples, with bias ------------
def make_linreg(seed, Jt, f32=False, yscale=1.0):
    rng = np.random.default_rng(seed)
    m, d = 40, 6
    X = rng.normal(size=(m, d))
    wstar = rng.normal(size=d); bstar = 0.7
    y = yscale * (X @ wstar + bstar)
    wstar = wstar * yscale; bstar = bstar * yscale
    names, shapes = ("w", "b"), ((d,), (1,))
    def J(th):
        p = unpack(th, names, shapes)
        if f32:
            pred = (X.astype(np.float32) @ p["w"].astype(np.float32) + np.float32(p["b"][0])).astype(np.float64)
        else:
            pred = X @ p["w"] + p["b"][0]
        r = pred - y
        return float(0.5 / m * (r @ r))
    def grad(th, bug=None):
        p = unpack(th, names, shapes)
        r = X @ p["w"] + p["b"][0] - y
        if bug == "drop":   # residual in the gradient forgets the bias
            r = X @ p["w"] - y
        gw = X.T @ r / m; gb = np.array([r.sum() / m])
        return {"w": gw, "b": gb}
    def ref(th):
        p = unpack(th, names, shapes)
        Xm = [[mpmath.mpf(float(v)) for v in row] for row in X]
        r = [sum(Xm[i][j] * mpmath.mpf(float(p["w"][j])) for j in range(d)) + mpmath.mpf(float(p["b"][0])) - mpmath.mpf(float(y[i])) for i in range(m)]
        gw = [sum(Xm[i][j] * r[i] for i in range(m)) / m for j in range(d)]
        gb = [sum(r) / m]
        return np.array([float(v) for v in gw + gb])
    star = pack({"w": wstar, "b": [bstar]}, names)
    dirn = rng.normal(size=star.size)
    return J, grad, ref, names, shapes, star, dirn

# ---------------- family 2: logistic regression, KL form (CE minus entropy) ---------
def make_logkl(seed, Jt):
    rng = np.random.default_rng(seed)
    m, d = 50, 5
    X = rng.normal(size=(m, d))
    wstar = rng.normal(size=d)
    P = 1 / (1 + np.exp(-(X @ wstar)))   # soft labels from a teacher
    H = -np.mean(P * np.log(P) + (1 - P) * np.log(1 - P))
    names, shapes = ("w",), ((d,),)
    def J(th):
        z = X @ th
        ce = np.mean(P * np.logaddexp(0, -z) + (1 - P) * np.logaddexp(0, z))
        return float(ce - H)
    def grad(th, bug=None):
        z = X @ th; q = 1 / (1 + np.exp(-z))
        if bug == "drop":  # loop off by one: last example left out
            return {"w": X[:-1].T @ (q - P)[:-1] / m}
        return {"w": X.T @ (q - P) / m}
    def ref(th):
        out = []
        qs = [1 / (1 + mpmath.exp(-sum(mpmath.mpf(float(X[i, j])) * mpmath.mpf(float(th[j])) for j in range(d)))) for i in range(m)]
        for j in range(d):
            out.append(sum(mpmath.mpf(float(X[i, j])) * (qs[i] - mpmath.mpf(float(P[i]))) for i in range(m)) / m)
        return np.array([float(v) for v in out])
    star = wstar.copy(); dirn = rng.normal(size=d)
    return J, grad, ref, names, shapes, star, dirn

# ---------------- family 3: logistic regression, separable, tiny loss from large margins
def make_logsep(seed, Jt):
    rng = np.random.default_rng(seed)
    m, d = 40, 4
    X = rng.normal(size=(m, d)); w0 = rng.normal(size=d)
    yl = np.sign(X @ w0); 
    names, shapes = ("w", "b"), ((d,), (1,))
    def J(th):
        p = unpack(th, names, shapes)
        z = yl * (X @ p["w"] + p["b"][0])
        return float(np.mean(np.logaddexp(0, -z)))
    def grad(th, bug=None):
        p = unpack(th, names, shapes)
        z = yl * (X @ p["w"] + p["b"][0]); s = 1 / (1 + np.exp(z))   # sigmoid(-z)
        c = -yl * s / m
        if bug == "drop":
            c = c.copy(); c[np.argmax(s)] = 0.0   # drop the dominant example's term
        return {"w": X.T @ c, "b": np.array([c.sum()])}
    def ref(th):
        p = unpack(th, names, shapes)
        gw = [mpmath.mpf(0)] * d; gb = mpmath.mpf(0)
        for i in range(m):
            z = mpmath.mpf(float(yl[i])) * (sum(mpmath.mpf(float(X[i, j])) * mpmath.mpf(float(p["w"][j])) for j in range(d)) + mpmath.mpf(float(p["b"][0])))
            c = -mpmath.mpf(float(yl[i])) / (1 + mpmath.exp(z)) / m
            gw = [gw[j] + mpmath.mpf(float(X[i, j])) * c for j in range(d)]; gb += c
        return np.array([float(v) for v in gw + [gb]])
    # scale w0 until J ~ Jt; bias 0
    s = 1.0
    for _ in range(200):
        th = np.concatenate([s * w0, [0.0]])
        if J(th) <= Jt: break
        s *= 1.15
    star = np.concatenate([s * w0, [0.0]])
    return J, grad, ref, names, shapes, star, None

# ---------------- family 4: MLP tanh, teacher targets, MSE, own back-prop ---------
def make_mlp(seed, Jt, f32=False):
    rng = np.random.default_rng(seed)
    m, d, h, k = 12, 3, 5, 2
    X = rng.normal(size=(m, d))
    names, shapes = ("W1", "b1", "W2", "b2"), ((d, h), (h,), (h, k), (k,))
    T = {"W1": rng.normal(size=(d, h)), "b1": 0.3 * rng.normal(size=h), "W2": rng.normal(size=(h, k)), "b2": 0.3 * rng.normal(size=k)}
    Y = np.tanh(X @ T["W1"] + T["b1"]) @ T["W2"] + T["b2"]
    def fwd(p):
        A = np.tanh(X @ p["W1"] + p["b1"])
        return A, A @ p["W2"] + p["b2"]
    def J(th):
        p = unpack(th, names, shapes)
        if f32:
            p32 = {n: v.astype(np.float32) for n, v in p.items()}
            A = np.tanh(X.astype(np.float32) @ p32["W1"] + p32["b1"]); O = (A @ p32["W2"] + p32["b2"]).astype(np.float64)
        else:
            _, O = fwd(p)
        R = O - Y
        return float(np.sum(R * R) / m)     # no 1/2: gradient has 2/m
    def grad(th, bug=None):
        p = unpack(th, names, shapes)
        A, O = fwd(p); R = 2 * (O - Y) / m
        gW2 = A.T @ R; gb2 = R.sum(0)
        dA = R @ p["W2"].T
        dZ = dA if bug == "drop" else dA * (1 - A * A)   # drop: forgot tanh'
        return {"W1": X.T @ dZ, "b1": dZ.sum(0), "W2": gW2, "b2": gb2}
    def ref(th):
        p = unpack(th, names, shapes)
        mp = lambda a: np.vectorize(lambda v: mpmath.mpf(float(v)), otypes=[object])(a)
        Xm = mp(X); Ym = mp(Y); P = {n: mp(v) for n, v in p.items()}
        A = np.vectorize(mpmath.tanh, otypes=[object])(Xm.dot(P["W1"]) + P["b1"])
        O = A.dot(P["W2"]) + P["b2"]; R = 2 * (O - Ym) / m
        gW2 = A.T.dot(R); gb2 = R.sum(0); dZ = R.dot(P["W2"].T) * (1 - A * A)
        g = {"W1": Xm.T.dot(dZ), "b1": dZ.sum(0), "W2": gW2, "b2": gb2}
        return np.array([float(v) for v in np.concatenate([g[n].ravel() for n in names])])
    star = pack(T, names); dirn = rng.normal(size=star.size)
    return J, grad, ref, names, shapes, star, dirn

def place(J, star, dirn, Jt):
    """theta = star + t*dirn with J(theta) ~ Jt (J ~ t^2 near an exact fit)."""
    if dirn is None: return star.copy()
    t = 1e-2
    for _ in range(60):
        v = J(star + t * dirn)
        if v <= 0: t *= 10; continue
        t_new = t * np.sqrt(Jt / v)
        if abs(np.log(t_new / t)) < 1e-3: t = t_new; break
        t = t_new
    return star + t * dirn

BUGS = ["exact", "flip", "comp1e-3", "comp1e-4", "comp1e-5", "blk1e-3", "blk1e-4", "blk1e-5", "drop", "x2"]

def buggy(gfun, th, names, bug):
    g = gfun(th, "drop" if bug == "drop" else None)
    g = {n: np.array(v, dtype=np.float64).copy() for n, v in g.items()}
    first = names[0]
    if bug == "flip": g[first] = -g[first]
    elif bug.startswith("comp"):
        rel = float(bug[4:]); flat = pack(g, names); i = int(np.argmax(np.abs(flat)))
        # find the block/index of component i
        o = 0
        for n in names:
            k = g[n].size
            if i < o + k: g[n].ravel()[i - o] *= (1 + rel); break
            o += k
    elif bug.startswith("blk"): g[first] = g[first] * (1 + float(bug[3:]))
    elif bug == "x2": g = {n: 2 * v for n, v in g.items()}
    return g
