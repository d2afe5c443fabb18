"""Minimal standalone reproducers of the violations found by cases.py."""
import numpy as np, fastgrad

def show(tag, r):
    print(f"{tag}: verdict={r.verdict} difference={r.difference:.3e} tolerance={r.tolerance:.3e} failing={r.failing_blocks if r.verdict=='fail' else ()}")
    for c in r.worst(2): print("     ", c)

# R1: high-frequency ripple w=1e7, correct gradient FAILS; a gradient missing the ripple slope PASSES
A = np.array([[1.5, .2, .1, 0, .3], [.2, 1.2, 0, .1, 0], [.1, 0, 1.8, .2, .1], [0, .1, .2, 1.1, 0], [.3, 0, .1, 0, 1.4]])
theta = np.array([0.3, -0.8, 1.1, 0.2, -0.5])
theta_, layout = fastgrad.pack({"a": theta[:2], "r": theta[2:]})
w, amp = 1e7, 1e-2 / 1e7          # ripple slope 1e-2 on components 2..4
def cost(t):
    return 0.5 * t @ A @ t + np.sum(np.exp(0.3 * t)) + amp * np.sum(np.sin(w * t[2:]))
smooth = A @ theta + 0.3 * np.exp(0.3 * theta)
right = smooth.copy(); right[2:] += amp * w * np.cos(w * theta[2:])
# truth by complex step
tc = theta.astype(complex); truth = np.empty(5)
for k in range(5):
    tc[k] += 1e-30j; truth[k] = np.imag(0.5 * tc @ A @ tc + np.sum(np.exp(0.3 * tc)) + amp * np.sum(np.sin(w * tc[2:]))) / 1e-30; tc[k] = theta[k]
print("R1 right vs complex-step truth rel:", np.linalg.norm(right - truth) / np.linalg.norm(truth))
for m in ["central", "richardson"]:
    show(f"R1 correct/{m}", fastgrad.gradcheck(cost, right, theta, layout=layout, method=m))
show("R1 missing ripple slope (bug, rel 2e-3)/central", fastgrad.gradcheck(cost, smooth, theta, layout=layout))

# R2: ripple tuned to the first step (h found by recording the evaluations): correct FAILS, dropped slope PASSES
A2 = np.array([[3.0, .5, .2, .1, 0], [.5, 2, .3, 0, .1], [.2, .3, 4, .2, 0], [.1, 0, .2, 2.5, .3], [0, .1, 0, .3, 3.5]])
th2 = np.array([0.3, -0.7, 1.1, 0.45, -0.2]); th2_, lay2 = fastgrad.pack({"a": th2[:2], "b": th2[2:]})
h = 6.055454452393343e-06  # first central step fastgrad takes here (noise measured on the smooth part)
w2 = np.pi / h; amp2 = 0.05 / w2
def cost2(t):
    return 0.5 * t @ A2 @ t + np.sum(np.cos(t)) + amp2 * np.sin(w2 * t[0])
g_smooth = A2 @ th2 - np.sin(th2)
g_right = g_smooth.copy(); g_right[0] += amp2 * w2 * np.cos(w2 * th2[0])
show("R2 correct/central", fastgrad.gradcheck(cost2, g_right, th2, layout=lay2))
show("R2 dropped ripple slope (0.047 on a 0.57 component)/central", fastgrad.gradcheck(cost2, g_smooth, th2, layout=lay2))

# R3: method="richardson" calls a smooth cost 'wrong at a kink' (parameters of size 1e-6 seen on their own scale)
sc = np.repeat([1e-6, 1e-3, 1.0, 1e3, 1e6], 2)
th3, lay3 = fastgrad.pack({"tiny": 0.7e-6 * np.ones(2), "small": np.array([0.5e-3, -1.2e-3]), "unit": np.array([0.3, 1.1]),
                           "big": np.array([700.0, -1500.0]), "huge": np.array([2.5e6, 0.8e6])})
def cost3(t):
    u = t / sc
    return np.sum(np.sin(u)) + 0.5 * np.sum(u ** 2) + u[0] * u[-1]
u = th3 / sc
g3 = (np.cos(u) + u) / sc; g3[0] += u[-1] / sc[0]; g3[-1] += u[0] / sc[-1]
show("R3 correct/richardson", fastgrad.gradcheck(cost3, g3, th3, layout=lay3, method="richardson"))
show("R3 correct/central", fastgrad.gradcheck(cost3, g3, th3, layout=lay3, method="central"))

# R4: method="complex" at an optimum: the complex step's own rounding (cancellation in the imaginary part) is not counted
rng = np.random.default_rng(7); X = rng.normal(size=(30, 4)); y = np.random.default_rng(8).normal(size=30) * 10
th4 = np.linalg.lstsq(X, y, rcond=None)[0]; _, lay4 = fastgrad.pack({"w": th4[:2], "v": th4[2:]})
def cost4(t):
    return 0.5 * np.sum((X @ t - y) ** 2)
g4 = X.T @ (X @ th4 - y)   # exact gradient, ~1e-13 (rounding level)
print("R4 grad", g4)
show("R4 correct/complex", fastgrad.gradcheck(cost4, g4, th4, layout=lay4, method="complex"))
show("R4 correct/central", fastgrad.gradcheck(cost4, g4, th4, layout=lay4, method="central"))

# R5: passes of a 1e-6 relative bug under a huge loss (J ~ 1e14) and near an optimum
rng = np.random.default_rng(5); X5 = rng.normal(size=(20, 3)); y5 = 1e7 * (1 + rng.random(20))
th5, lay5 = fastgrad.pack({"w": rng.normal(size=3), "b": np.array([0.5])})
def cost5(t):
    return np.mean((X5 @ t[:3] + t[3] - y5) ** 2)
r5 = X5 @ th5[:3] + th5[3] - y5
g5 = np.r_[2 * X5.T @ r5 / 20, 2 * r5.mean()]
print("R5 J =", cost5(th5))
show("R5 correct/central", fastgrad.gradcheck(cost5, g5, th5, layout=lay5))
show("R5 whole gradient *(1+1e-6)/central", fastgrad.gradcheck(cost5, g5 * (1 + 1e-6), th5, layout=lay5))

# R6: smooth cost of parameters of size 1e-8 seen on their own scale: central AND richardson call it 'wrong at a kink'
s = 1e-8
th6, lay6 = fastgrad.pack({"t": np.array([0.7, -1.3, 0.4]) * s, "u": np.array([0.5, 1.5])})
def cost6(t):
    z = t[:3] / s
    return np.sum(np.sin(z)) + 0.5 * np.sum(z ** 2) + np.sum(t[3:] ** 2) + z[0] * t[3]
z = th6[:3] / s
g6 = np.r_[(np.cos(z) + z) / s, 2 * th6[3:]]; g6[0] += th6[3] / s; g6[3] += z[0]
for m in ["central", "richardson"]:
    show(f"R6 correct/{m}", fastgrad.gradcheck(cost6, g6, th6, layout=lay6, method=m))
