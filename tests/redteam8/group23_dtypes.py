"""Behaviours 2 and 3: gradient dicts with blocks of different dtypes
(float32 back-prop blocks, float64 blocks, float16 blocks, values below the
normal range), full and directional mode.
Correct float32 blocks come from a genuine float32 back-prop; float64 blocks
from float64 back-prop; both are checked against mpmath (float64 blocks
< 1e-12, float32 blocks < 1e-4).
Run: cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam8/group23_dtypes.py
"""
import sys, os
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np, fastgrad
from harness import check, summary, rel
from models import MLP, mp_reference

VERIFY = os.environ.get("RT8_VERIFY", "1") == "1"


class MLPTiny(MLP):
    """MLP loss + s * sum(u * tiny.weight): a block whose gradient s*u is tiny."""
    def __init__(self, *a, s=1e-6, **k):
        super().__init__(*a, **k)
        self.s = s
        self.u = np.random.default_rng(9).uniform(0.5, 1.0, size=(3,)) * np.array([1, -1, 1])
        self.shapes["tiny.weight"] = (3,)
        self.teacher["tiny.weight"] = np.random.default_rng(10).normal(size=3)

    def loss(self, p):
        return MLP.loss(self, p) + self.s * float(self.u @ p["tiny.weight"])

    def grads(self, p, dtype=np.float64):
        q = {k: v.astype(dtype) for k, v in p.items()}
        X = self.X.astype(dtype); Y = self.Y.astype(dtype)
        A1 = np.tanh(X @ q["fc1.weight"].T + q["fc1.bias"])
        R = A1 @ q["fc2.weight"].T + q["fc2.bias"] - Y
        dO = dtype(2) * R / dtype(R.size)
        g = {"fc2.weight": dO.T @ A1, "fc2.bias": dO.sum(0)}
        dZ = (dO @ q["fc2.weight"]) * (dtype(1) - A1 * A1)
        g["fc1.weight"] = dZ.T @ X
        g["fc1.bias"] = dZ.sum(0)
        g["tiny.weight"] = (self.s * self.u).astype(dtype)
        return g

    def loss_mp(self, p):
        import mpmath
        return MLP.loss_mp(self, p) + mpmath.mpf(self.s) * sum(mpmath.mpf(float(a)) * b for a, b in zip(self.u, p["tiny.weight"]))


def mixed(g64, g32, dtypes):
    out = {}
    for k, dt in dtypes.items():
        out[k] = (g32[k] if dt == np.float32 else g64[k]).astype(dt)
    return out


def bugs(g, name, kind):
    gb = {k: v.copy() for k, v in g.items()}
    dt = gb[name].dtype
    if kind == "1e-5":
        gb[name] = (gb[name].astype(np.float64) * (1 + 1e-5)).astype(dt)
    elif kind == "1e-5one":
        f = gb[name].astype(np.float64).reshape(-1); j = int(np.argmax(np.abs(f)))
        f[j] += 1e-5 * np.linalg.norm(f); gb[name] = f.reshape(gb[name].shape).astype(dt)
    elif kind == "sign":
        gb[name] = -gb[name]
    elif kind == "1e-3":
        gb[name] = (gb[name].astype(np.float64) * (1 + 1e-3)).astype(dt)
    elif kind == "signone":
        f = gb[name].reshape(-1).copy(); j = int(np.argmax(np.abs(f.astype(np.float64)))); f[j] = -f[j]
        gb[name] = f.reshape(gb[name].shape)
    elif kind == "zero":
        gb[name] = np.zeros_like(gb[name])
    return gb


def run_suite(tag, model, params, dtypes, modes=("full", "directional"), kinds=None):
    theta, layout = fastgrad.pack(params)
    cost = lambda t: model.loss(fastgrad.unpack(t, layout))
    g64 = model.grads(params, np.float64); g32 = model.grads(params, np.float32)
    g = mixed(g64, g32, dtypes)
    if VERIFY:
        ref = mp_reference(model, params, layout)
        gv = fastgrad.pack({k: v.astype(np.float64) for k, v in g.items()}, layout=layout)
        off = 0
        for name in layout.names:
            sz = g[name].size
            e = rel(gv[off:off + sz], ref[off:off + sz]); off += sz
            lim = {np.float64: 1e-10, np.float32: 1e-4, np.float16: 3e-2}[dtypes[name]]
            if dtypes[name] == np.float16 and np.max(np.abs(g[name].astype(float))) < 6.1e-5:
                lim = 0.2   # subnormal float16: few bits
            assert e < lim, (tag, name, e)
    for mode in modes:
        check(f"{tag} [{mode}] correct", cost, g, theta, layout=layout, mode=mode, expect="correct")
        for name in layout.names:
            for kind in (kinds or ["1e-5", "1e-5one", "sign", "1e-3", "signone"]):
                if dtypes[name] != np.float64 and kind in ("1e-5", "1e-5one"):
                    continue
                check(f"{tag} [{mode}] {kind} bug in {name}({np.dtype(dtypes[name]).name})", cost,
                      bugs(g, name, kind), theta, layout=layout, mode=mode, expect="bug", bad_blocks=[name])


if __name__ == "__main__":
    which = sys.argv[1:] or ["b2", "b3"]
    f32, f64, f16 = np.float32, np.float64, np.float16
    if "b2" in which:
        for m_ex, delta in [(40, 0.3), (2000, 0.3), (200, 0.03)]:
            mdl = MLPTiny(3, 6, 2, m_ex, seed=0, s=1e-2)
            rng = np.random.default_rng(1)
            p = {k: v + delta * rng.normal(size=v.shape) for k, v in mdl.teacher.items()}
            for dts in [{"fc1.weight": f32, "fc1.bias": f32, "fc2.weight": f64, "fc2.bias": f64, "tiny.weight": f64},
                        {"fc1.weight": f64, "fc1.bias": f64, "fc2.weight": f32, "fc2.bias": f64, "tiny.weight": f32}]:
                tag = f"B2 m={m_ex} delta={delta:g} f32={[k for k, v in dts.items() if v == f32]}"
                run_suite(tag, mdl, p, dts)
    if "b3" in which:
        for s in [1e-6, 3e-5, 1e-7]:
            mdl = MLPTiny(3, 6, 2, 40, seed=0, s=s)
            rng = np.random.default_rng(1)
            p = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in mdl.teacher.items()}
            for dts in [{"fc1.weight": f16, "fc1.bias": f64, "fc2.weight": f64, "fc2.bias": f64, "tiny.weight": f16},
                        {"fc1.weight": f64, "fc1.bias": f64, "fc2.weight": f64, "fc2.bias": f32, "tiny.weight": f16}]:
                tag = f"B3 s={s:g} f16={[k for k, v in dts.items() if v == f16]}"
                run_suite(tag, mdl, p, dts, kinds=["1e-5", "1e-5one", "sign", "signone", "1e-3", "zero"])
    summary()


def b2_small_f64_block():
    """float64 block whose gradient is 1e-4..1e-8 of a float32 block's."""
    f32, f64 = np.float32, np.float64
    for s in [1e-4, 1e-6, 1e-8]:
        mdl = MLPTiny(3, 6, 2, 2000, seed=0, s=s)
        rng = np.random.default_rng(1)
        p = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in mdl.teacher.items()}
        dts = {"fc1.weight": f32, "fc1.bias": f32, "fc2.weight": f32, "fc2.bias": f32, "tiny.weight": f64}
        run_suite(f"B2small s={s:g} all-f32-but-tiny", mdl, p, dts, modes=("directional", "full"),
                  kinds=["1e-5", "1e-5one", "sign"])


if __name__ == "__main__" and "b2small" in sys.argv[1:]:
    b2_small_f64_block(); summary()
