"""Rule 3 hides bugs float32 cannot produce in an elementwise gradient: g = a*w (one float32
multiply, error <= 0.5 ulp = 6e-8 of each component). A sign flip of a component whose value is
3e-5 of the block RMS, and a 1e-3 error of a component at 0.05 of the RMS, are inconclusive in
float32 and FAIL in float64.
Run: cd /tmp/rt6 && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python repro_rule3_small_component.py"""
import numpy as np, fastgrad
rng = np.random.default_rng(3)
n = 200
a = rng.uniform(0.5, 2.0, size=n)
w = rng.normal(size=n); w[7] = 3e-5; w[9] = 0.05
theta, layout = fastgrad.pack({"w": w, "c": rng.normal(size=3)})
def cost(t): return 0.5 * np.sum(a * t[:n] ** 2) + np.sum(np.cos(t[n:]))
def grads(dt): return {"w": (a.astype(dt) * w.astype(dt)), "c": (-np.sin(theta[n:])).astype(dt)}
g64 = grads(np.float64)
print("RMS(g_w) =", np.sqrt(np.mean(g64["w"] ** 2)), " g_w[7] =", g64["w"][7], " g_w[9] =", g64["w"][9])
print("actual float32 rounding of g_w: max |g32-g64|/|g64| =",
      np.max(np.abs(grads(np.float32)["w"] - g64["w"]) / np.abs(g64["w"])))
for dt in (np.float64, np.float32):
    for tag, j, f in (("w[7] sign flipped", 7, -1.0), ("w[9] * 1.001", 9, 1.001)):
        G = grads(dt); G["w"] = G["w"].copy(); G["w"][j] *= dt(f)
        rep = fastgrad.gradcheck(cost, G, theta, layout=layout)
        print(f"{dt.__name__:8s} {tag:18s} verdict={rep.verdict:12s} failing={list(rep.failing_blocks)}",
              (rep.reasons[0][:120] if rep.reasons else ""))
