"""(a) A correct back-prop computed in float32 (as a float32 framework would), checked against the same
cost in float64, FAILS at a trained point. The float32 gradient differs from the exact gradient only by
float32 rounding accumulated through back-prop (shown below against a float64 back-prop of the same code,
itself checked against long-double central differences)."""
import numpy as np, fastgrad

rng = np.random.default_rng(0)
N, Din, H, K = 40, 8, 16, 3
b1_ = 1 / np.sqrt(Din); b2_ = 1 / np.sqrt(H)
P = {"fc1.weight": rng.uniform(-b1_, b1_, (H, Din)), "fc1.bias": rng.uniform(-b1_, b1_, H),
     "fc2.weight": rng.uniform(-b2_, b2_, (K, H)), "fc2.bias": rng.uniform(-b2_, b2_, K)}
x = rng.normal(size=(N, Din)); y = np.sin(x[:, :K]) + 0.1 * rng.normal(size=(N, K))
x, y = x.astype(np.float32), y.astype(np.float32)          # data in float32

def loss(P, x, y):
    a1 = np.tanh(x @ P["fc1.weight"].T + P["fc1.bias"])
    return np.mean((a1 @ P["fc2.weight"].T + P["fc2.bias"] - y) ** 2)

def backprop(P, x, y):
    a1 = np.tanh(x @ P["fc1.weight"].T + P["fc1.bias"])
    out = a1 @ P["fc2.weight"].T + P["fc2.bias"]
    dout = 2 * (out - y) / out.size
    dz1 = (dout @ P["fc2.weight"]) * (1 - a1 ** 2)
    return {"fc1.weight": dz1.T @ x, "fc1.bias": dz1.sum(0), "fc2.weight": dout.T @ a1, "fc2.bias": dout.sum(0)}

# 300 Adam steps (float64)
m = {k: 0 * v for k, v in P.items()}; v2 = {k: 0 * v for k, v in P.items()}
for t in range(1, 301):
    G = backprop(P, x.astype(float), y.astype(float))
    for k in P:
        m[k] = 0.9 * m[k] + 0.1 * G[k]; v2[k] = 0.999 * v2[k] + 0.001 * G[k] ** 2
        P[k] = P[k] - 1e-2 * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v2[k] / (1 - 0.999 ** t)) + 1e-8)
P = {k: v.astype(np.float32).astype(np.float64) for k, v in P.items()}   # a float32 model's weights
theta, layout = fastgrad.pack(P)

def unpack(t, dt):
    return {n: t[layout.slice(n)].astype(dt).reshape(s) for n, s in zip(layout.names, layout.shapes)}

cost = lambda t: float(loss(unpack(t, np.float64), x, y))                 # float64 cost
G32 = backprop(unpack(theta, np.float32), x, y)                           # float32 back-prop (correct code)
G64 = backprop(unpack(theta, np.float64), x, y)                           # same code in float64

# long-double check of the float64 back-prop (so G64 is the exact gradient to ~1e-12)
tl = theta.astype(np.longdouble); xl, yl = x.astype(np.longdouble), y.astype(np.longdouble)
ld = np.zeros(theta.size, np.longdouble)
for k in range(theta.size):
    d = []
    for h in (np.longdouble(1e-5), np.longdouble(5e-6)):
        tp, tm = tl.copy(), tl.copy(); tp[k] += h; tm[k] -= h
        d.append((loss(unpack(tp, np.longdouble), xl, yl) - loss(unpack(tm, np.longdouble), xl, yl)) / (2 * h))
    ld[k] = (4 * d[1] - d[0]) / 3
g64 = fastgrad.pack(G64, layout=layout); g32 = fastgrad.pack({k: v.astype(float) for k, v in G32.items()}, layout=layout)
rel = lambda a, b: np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b))
for n in layout.names:
    s = layout.slice(n)
    print(f"{n:11s} float64 back-prop vs long double: {rel(g64[s], ld[s].astype(float)):.1e}   "
          f"float32 back-prop vs exact: {rel(g32[s], g64[s]):.1e}")

r = fastgrad.gradcheck(cost, G32, theta, layout=layout)      # G32: dict of float32 arrays
print("\nfloat32 back-prop:", r.verdict, "failing:", r.failing_blocks)
for b in r.blocks:
    print(f"   {b.name:11s} {b.verdict:5s} difference {b.difference:.2e} tolerance {b.tolerance:.2e} wrong={b.wrong}")
print("notes:", r.notes)
r64 = fastgrad.gradcheck(cost, G64, theta, layout=layout)
print("float64 back-prop of the same code:", r64.verdict)
