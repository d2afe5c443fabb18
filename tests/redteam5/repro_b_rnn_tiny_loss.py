"""(b) A vanilla tanh RNN (BPTT) trained 300 Adam steps to a tiny loss (J ~ 3.6e-15). A bug scaling the
rnn.weight_ih gradient by (1 + 5e-6) PASSES: the block's tolerance is ~3.8e-6 although the numerical
derivatives fastgrad itself returns are accurate to ~1e-9 (checked against long-double differences)."""
import numpy as np, fastgrad

rng = np.random.default_rng(0)
B, T, Din, H = 6, 8, 3, 10
P = {"rnn.weight_ih": rng.uniform(-0.3, 0.3, (H, Din)), "rnn.weight_hh": rng.uniform(-0.3, 0.3, (H, H)),
     "rnn.bias": np.zeros(H), "head.weight": rng.uniform(-0.3, 0.3, (1, H)), "head.bias": np.zeros(1)}
x = rng.normal(size=(B, T, Din)); y = np.cumsum(x[:, :, 0], 1)[:, -1:] * 0.3

def forward(P, x):
    h = np.zeros((x.shape[0], H), dtype=x.dtype); hs = [h]
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ P["rnn.weight_ih"].T + h @ P["rnn.weight_hh"].T + P["rnn.bias"]); hs.append(h)
    return hs, h @ P["head.weight"].T + P["head.bias"]

def loss(P, x, y):
    return np.mean((forward(P, x)[1] - y) ** 2)

def bptt(P, x, y):
    hs, out = forward(P, x)
    dout = 2 * (out - y) / out.size
    G = {"head.weight": dout.T @ hs[-1], "head.bias": dout.sum(0)}
    dh = dout @ P["head.weight"]
    gih, ghh, gb = 0 * P["rnn.weight_ih"], 0 * P["rnn.weight_hh"], 0 * P["rnn.bias"]
    for t in range(x.shape[1] - 1, -1, -1):
        dz = dh * (1 - hs[t + 1] ** 2)
        gih += dz.T @ x[:, t]; ghh += dz.T @ hs[t]; gb += dz.sum(0)
        dh = dz @ P["rnn.weight_hh"]
    G.update({"rnn.weight_ih": gih, "rnn.weight_hh": ghh, "rnn.bias": gb})
    return {k: G[k] for k in P}

m = {k: 0 * v for k, v in P.items()}; v2 = {k: 0 * v for k, v in P.items()}
for t in range(1, 301):
    G = bptt(P, x, y)
    for k in P:
        m[k] = 0.9 * m[k] + 0.1 * G[k]; v2[k] = 0.999 * v2[k] + 0.001 * G[k] ** 2
        P[k] = P[k] - 1e-2 * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v2[k] / (1 - 0.999 ** t)) + 1e-8)
theta, layout = fastgrad.pack(P)
unpack = lambda t, dt: {n: t[layout.slice(n)].astype(dt).reshape(s) for n, s in zip(layout.names, layout.shapes)}
cost = lambda t: float(loss(unpack(t, np.float64), x, y))
G = bptt(P, x, y); g = fastgrad.pack(G, layout=layout)
print("J =", cost(theta))

# long-double Richardson differences: the exact gradient
tl, xl, yl = theta.astype(np.longdouble), x.astype(np.longdouble), y.astype(np.longdouble)
ld = np.zeros(theta.size)
for k in range(theta.size):
    d = []
    for h in (np.longdouble(1e-5), np.longdouble(5e-6)):
        tp, tm = tl.copy(), tl.copy(); tp[k] += h; tm[k] -= h
        d.append((loss(unpack(tp, np.longdouble), xl, yl) - loss(unpack(tm, np.longdouble), xl, yl)) / (2 * h))
    ld[k] = float((4 * d[1] - d[0]) / 3)
rel = lambda a, b: np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b))
print("BPTT vs long double per block:", {n: f"{rel(g[layout.slice(n)], ld[layout.slice(n)]):.1e}" for n in layout.names})

r = fastgrad.gradcheck(cost, G, theta, layout=layout)
print("correct:", r.verdict, " real error of fastgrad's approx per block:",
      {n: f"{rel(np.asarray(r.approx)[layout.slice(n)], ld[layout.slice(n)]):.1e}" for n in layout.names})
for f in (5e-6, 1e-6):
    Gb = dict(G); Gb["rnn.weight_ih"] = G["rnn.weight_ih"] * (1 + f)
    r = fastgrad.gradcheck(cost, Gb, theta, layout=layout)
    b = r.block("rnn.weight_ih")
    print(f"bug rnn.weight_ih x (1+{f:g}): verdict {r.verdict}, failing {r.failing_blocks}, "
          f"block difference {b.difference:.2e}, tolerance {b.tolerance:.2e}")
for meth in ("forward", "richardson"):
    Gb = dict(G); Gb["rnn.weight_ih"] = G["rnn.weight_ih"] * (1 + 2e-5)
    r = fastgrad.gradcheck(cost, Gb, theta, layout=layout, method=meth)
    b = r.block("rnn.weight_ih")
    print(f"method={meth}: bug x (1+2e-5): verdict {r.verdict}, block difference {b.difference:.2e}, tolerance {b.tolerance:.2e}")
