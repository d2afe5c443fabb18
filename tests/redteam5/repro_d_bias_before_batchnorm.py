"""(d) Linear(bias=True) -> BatchNorm1d (batch statistics) -> ReLU -> Linear -> cross-entropy: PyTorch's
default layers. The bias before BatchNorm has an exactly zero gradient (BN removes any per-feature shift);
the correct gradient (verified in long double) is INCONCLUSIVE at init and after training, every method."""
import numpy as np, fastgrad

rng = np.random.default_rng(0)
N, Din, H, K = 48, 7, 10, 4
def lin(o, i):
    b = 1 / np.sqrt(i); return rng.uniform(-b, b, (o, i)), rng.uniform(-b, b, o)
W1, b1 = lin(H, Din); W2, b2 = lin(K, H)
P = {"fc1.weight": W1, "fc1.bias": b1, "bn.weight": np.ones(H), "bn.bias": np.zeros(H), "fc2.weight": W2, "fc2.bias": b2}
x = rng.normal(size=(N, Din)) * 3 + 1
labels = np.argmax(x[:, :K] ** 2 - 1 + rng.normal(size=(N, K)), 1)

def fwd(P):
    h = x @ P["fc1.weight"].T + P["fc1.bias"]; mu = h.mean(0); sig = np.sqrt(((h - mu) ** 2).mean(0) + 1e-5)
    xh = (h - mu) / sig; z = P["bn.weight"] * xh + P["bn.bias"]; a = np.maximum(z, 0)
    return sig, xh, z, a, a @ P["fc2.weight"].T + P["fc2.bias"]
def lse(z):
    m = z.max(1, keepdims=True); return (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
def loss(P):
    z = fwd(P)[-1]; return np.mean(lse(z) - z[np.arange(len(z)), labels])
def grad(P):
    sig, xh, z, a, lg = fwd(P); d = np.exp(lg - lse(lg)[:, None]); d[np.arange(N), labels] -= 1; d /= N
    G = {"fc2.weight": d.T @ a, "fc2.bias": d.sum(0)}
    dz = (d @ P["fc2.weight"]) * (z > 0); G["bn.weight"] = (dz * xh).sum(0); G["bn.bias"] = dz.sum(0)
    dxh = dz * P["bn.weight"]; dh = (dxh - dxh.mean(0) - xh * (dxh * xh).mean(0)) / sig
    G["fc1.weight"] = dh.T @ x; G["fc1.bias"] = dh.sum(0)
    return {k: G[k] for k in P}

def check(P, label):
    theta, layout = fastgrad.pack(P)
    unpack = lambda t, dt: {n: t[layout.slice(n)].astype(dt).reshape(s) for n, s in zip(layout.names, layout.shapes)}
    cost = lambda t: float(loss(unpack(t, np.float64)))
    G = grad(P); g = fastgrad.pack(G, layout=layout)
    tl = theta.astype(np.longdouble); ld = np.zeros(theta.size)
    global x
    x64 = x; x = x64.astype(np.longdouble)
    for k in range(theta.size):
        dd = []
        for h in (np.longdouble(1e-8), np.longdouble(5e-9)):  # small: ReLU kinks nearby
            tp, tm = tl.copy(), tl.copy(); tp[k] += h; tm[k] -= h
            dd.append((loss(unpack(tp, np.longdouble)) - loss(unpack(tm, np.longdouble))) / (2 * h))
        ld[k] = float((4 * dd[1] - dd[0]) / 3)
    x = x64
    print(f"[{label}] J={cost(theta):.4f}  |exact grad| per block:",
          {n: f"{np.linalg.norm(ld[layout.slice(n)]):.1e}" for n in layout.names})
    print("   max |analytic - exact| per block:", {n: f"{np.abs(g - ld)[layout.slice(n)].max():.1e}" for n in layout.names})
    for meth in ("central", "richardson", "forward"):
        r = fastgrad.gradcheck(cost, G, theta, layout=layout, method=meth)
        print(f"   {meth}: {r.verdict}; reasons: {list(r.reasons)}")
    Gz = dict(G); Gz["fc1.bias"] = np.zeros(H)            # even the exact zero
    r = fastgrad.gradcheck(cost, Gz, theta, layout=layout)
    print(f"   fc1.bias gradient set to exactly 0: {r.verdict}")

check(P, "init")
m = {k: 0 * v for k, v in P.items()}; v2 = {k: 0 * v for k, v in P.items()}
for t in range(1, 301):
    G = grad(P)
    for k in P:
        m[k] = 0.9 * m[k] + 0.1 * G[k]; v2[k] = 0.999 * v2[k] + 0.001 * G[k] ** 2
        P[k] = P[k] - 1e-2 * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v2[k] / (1 - 0.999 ** t)) + 1e-8)
check(P, "after 300 Adam steps")
