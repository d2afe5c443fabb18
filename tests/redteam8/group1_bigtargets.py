"""Behaviour 1: tiny losses with large targets (outputs ~ 1e3..1e5): the
residual pred - y is rounded at ulp(y)/2, so J's rounding at the finite
difference steps (far from the optimum) is far above J's rounding at theta.
Linear regression (examples as rows, "linear.weight"/"linear.bias") and the
MLP of models.py with a large output bias. Correct gradients verified with
mpmath. Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam8/group1_bigtargets.py
"""
import sys, os
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np, fastgrad, mpmath
from harness import check, summary, rel
from models import MLP, mp_reference


class LinReg:
    def __init__(self, D, m, big, seed):
        rng = np.random.default_rng(seed)
        self.X = rng.normal(size=(m, D))
        self.teacher = {"linear.weight": rng.normal(size=(1, D)), "linear.bias": np.array([big])}
        self.y = self.X @ self.teacher["linear.weight"].ravel() + big

    def loss(self, p):
        r = self.X @ p["linear.weight"].ravel() + p["linear.bias"][0] - self.y
        return float(np.mean(r * r))

    def grads(self, p):
        r = self.X @ p["linear.weight"].ravel() + p["linear.bias"][0] - self.y
        return {"linear.weight": (2 * r @ self.X / len(r))[None, :], "linear.bias": np.array([2 * r.mean()])}

    def loss_mp(self, p):
        from models import to_mp
        X = to_mp(self.X); y = to_mp(self.y)
        r = X @ p["linear.weight"].ravel() + p["linear.bias"][0] - y
        return sum(r * r) / len(r)


def run(tag, model, params):
    theta, layout = fastgrad.pack(params)
    cost = lambda t: model.loss(fastgrad.unpack(t, layout))
    g = model.grads(params)
    gv = fastgrad.pack(g, layout=layout)
    ref = mp_reference(model, params, layout)
    e = rel(gv, ref)
    r = check(f"{tag} J={model.loss(params):.2e} [mp-ref rel {e:.1e}] correct", cost, g, theta,
              layout=layout, expect="correct")
    return e, r


if __name__ == "__main__":
    for big in [1e2, 1e3, 1e4, 1e5]:
        for delta in [1e-6, 1e-8]:
            for seed in range(2):
                lr = LinReg(3, 20, big, seed)
                rng = np.random.default_rng(10 + seed)
                p = {k: v + delta * rng.normal(size=v.shape) for k, v in lr.teacher.items()}
                e, r = run(f"LinReg big={big:g} delta={delta:g} seed={seed}", lr, p)
    for big in [1e3, 1e4]:
        m = MLP(3, 5, 2, 30, seed=0)
        m.teacher["fc2.bias"] = m.teacher["fc2.bias"] + big
        m.Y = m.forward(m.teacher, m.X)
        for delta in [1e-7, 1e-8]:
            rng = np.random.default_rng(1)
            p = {k: v + delta * rng.normal(size=v.shape) for k, v in m.teacher.items()}
            run(f"MLP out~{big:g} delta={delta:g}", m, p)
    summary()
