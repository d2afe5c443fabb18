"""(b, borderline) Softmax regression, loss summed over 500 examples (J ~ 693), after 300 Adam steps.
The whole gradient x (1 + 1e-6) PASSES (all methods). Within the stated tolerance (7.8e-6 / 1.3e-5);
here central differences really are limited (~1.5e-6 real error of fastgrad's own values), so this is the
honest-tolerance kind of pass, listed for completeness."""
import numpy as np, fastgrad

rng = np.random.default_rng(0)
N, d, K = 500, 8, 6
X = rng.normal(size=(N, d)); labels = rng.integers(0, K, size=N); X[np.arange(N), labels % d] += 1.0
P = {"linear.weight": 0.01 * rng.normal(size=(K, d)), "linear.bias": np.zeros(K)}

def lse(z):
    m = z.max(1, keepdims=True); return (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
def loss(P, X):
    z = X @ P["linear.weight"].T + P["linear.bias"]; return np.sum(lse(z) - z[np.arange(len(z)), labels])
def grad(P, X):
    z = X @ P["linear.weight"].T + P["linear.bias"]; p = np.exp(z - lse(z)[:, None]); p[np.arange(len(z)), labels] -= 1
    return {"linear.weight": p.T @ X, "linear.bias": p.sum(0)}

m = {k: 0 * v for k, v in P.items()}; v2 = {k: 0 * v for k, v in P.items()}
for t in range(1, 301):
    G = grad(P, X)
    for k in P:
        m[k] = 0.9 * m[k] + 0.1 * G[k]; v2[k] = 0.999 * v2[k] + 0.001 * G[k] ** 2
        P[k] = P[k] - 1e-2 * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v2[k] / (1 - 0.999 ** t)) + 1e-8)
theta, layout = fastgrad.pack(P)
unpack = lambda t, dt: {n: t[layout.slice(n)].astype(dt).reshape(s) for n, s in zip(layout.names, layout.shapes)}
cost = lambda t: float(loss(unpack(t, np.float64), X))
G = grad(P, X); g = fastgrad.pack(G, layout=layout)
tl, Xl = theta.astype(np.longdouble), X.astype(np.longdouble)
ld = np.zeros(theta.size)
for k in range(theta.size):
    dd = []
    for h in (np.longdouble(1e-5), np.longdouble(5e-6)):
        tp, tm = tl.copy(), tl.copy(); tp[k] += h; tm[k] -= h
        dd.append((loss(unpack(tp, np.longdouble), Xl) - loss(unpack(tm, np.longdouble), Xl)) / (2 * h))
    ld[k] = float((4 * dd[1] - dd[0]) / 3)
rel = lambda a, b: np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b))
print("J =", cost(theta), " analytic vs long double:", {n: f"{rel(g[layout.slice(n)], ld[layout.slice(n)]):.1e}" for n in layout.names})
r = fastgrad.gradcheck(cost, G, theta, layout=layout)
print("correct:", r.verdict, " real error of fastgrad's approx:", {n: f"{rel(np.asarray(r.approx)[layout.slice(n)], ld[layout.slice(n)]):.1e}" for n in layout.names})
for meth in ("central", "richardson", "forward"):
    r = fastgrad.gradcheck(cost, {k: v * (1 + 1e-6) for k, v in G.items()}, theta, layout=layout, method=meth)
    print(f"whole gradient x(1+1e-6), {meth}: {r.verdict}", [(b.name, f"d={b.difference:.2e}", f"tol={b.tolerance:.2e}") for b in r.blocks])
