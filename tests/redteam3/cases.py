"""Red-team 3 cases: build, run, print one row per case.

    PYTHONPATH=. python -m tests.redteam3.cases [substring ...]

Columns: name, kind (correct/bug), verdict, ok/inc/VIOLATION, seconds.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from functools import lru_cache

import numpy as np

from . import models as Mo
from .core import Case, LabelError, changed_blocks, cs_grad, run_case, verify_smooth

# ------------------------------------------------------------------ generic bugs
def _gen_bug(M: Mo.Model, kind: str, block: str | None = None):
    g = {k: v.copy() for k, v in M.grad.items()}
    nz = tuple(sorted(k for k, v in g.items() if np.any(v != 0)))
    if kind.startswith("rel"):
        r = float(kind[3:])
        for k in g:
            g[k] = g[k] * (1 + r)
        return g, nz
    if kind == "x2":
        g[block] = 2 * g[block]
    elif kind == "neg":
        g[block] = -g[block]
    elif kind == "zero":
        g[block] = 0 * g[block]
    elif kind == "T":
        g[block] = g[block].T.copy()
    elif kind == "half":
        g[block] = 0.5 * g[block]
    elif kind.startswith("comp"):          # comp1e-3 (largest), comp1e-2s (a median-size one)
        rel = float(kind[4:].rstrip("s"))
        v = g[block].ravel()
        order = np.argsort(np.abs(v))
        j = order[-1] if not kind.endswith("s") else order[len(order) // 2]
        v[j] *= 1 + rel
        g[block] = v.reshape(g[block].shape)
    else:
        raise ValueError(kind)
    return g, (block,)


def _case_from(M, name, kind, grad, expected=None, **kw):
    kwargs = dict(M.kwargs)
    kwargs.update(kw.pop("kwargs", {}))
    th = M.theta
    cost = kw.pop("cost", M.cost)
    skip_verify = kw.pop("skip_verify", False)
    if "layout" not in kwargs:
        import fastgrad
        kwargs["layout"] = fastgrad.pack(M.params)[1]
    if expected is not None and not skip_verify:
        ch = changed_blocks(M.S, M.grad, grad)
        assert ch == tuple(sorted(expected)), (name, ch, expected)
        if not M.smooth:
            # at kinks a changed value may still be a valid derivative: the bug's
            # blocks are those with a component OUTSIDE its range of valid values
            out = outside_blocks(M, grad, kwargs.get("per_example"), cost)
            if not out:
                return None
            expected = out
    return Case(name, kind, cost, grad, th, kwargs, tuple(sorted(expected)) if expected else None, **kw)


def outside_blocks(M, grad, per_example, cost):
    from .core import cs_onesided
    key = (id(M), per_example)
    if key not in _RANGES:
        if per_example:
            r, l = cs_onesided(cost, M.theta)
            lo, hi = np.minimum(r, l).sum(1), np.maximum(r, l).sum(1)
            if per_example == "mean":
                lo, hi = lo / r.shape[1], hi / r.shape[1]
        else:
            f = M.ref if np.ndim(np.real(M.ref(M.theta))) == 0 else (lambda t: np.mean(M.ref(t)))
            r, l = cs_onesided(f if cost is M.cost and not per_example else cost, M.theta)
            lo, hi = np.minimum(r, l), np.maximum(r, l)
        _RANGES[key] = (lo, hi)
    lo, hi = _RANGES[key]
    g = M.S.flat(grad) if isinstance(grad, dict) else np.ravel(grad)
    tol = 1e-9 * np.maximum(np.abs(lo), np.abs(hi)) + 1e-13 * np.max(np.abs(hi))
    bad = (g < lo - tol) | (g > hi + tol)
    return tuple(sorted({M.S.block_of(k) for k in np.flatnonzero(bad)}))


_RANGES = {}


# ------------------------------------------------------------------ registry
# name -> builder (lazy: a model is built once, on first use)
REGISTRY: dict[str, callable] = {}


def reg(name, fn):
    assert name not in REGISTRY, name
    REGISTRY[name] = fn


def model_cases(key, mk, generic=(), api=(), seeds=(1, 2), correct_kwargs=None):
    """Correct case at seed 0 (+ more seeds), model-specific bugs, generic bugs, API variants."""
    reg(f"{key}/correct", lambda: _case_from(mk(0), f"{key}/correct", "correct", mk(0).grad,
                                             kwargs=correct_kwargs or {}))
    for s in seeds:
        reg(f"{key}/correct_seed{s}", lambda s=s: _case_from(mk(s), f"{key}/correct_seed{s}", "correct", mk(s).grad,
                                                             kwargs=correct_kwargs or {}))
    # model-specific bugs: names known only after building; declared here statically
    for bname in SPECIFIC.get(key, ()):
        reg(f"{key}/bug:{bname}", lambda b=bname: _case_from(mk(0), f"{key}/bug:{b}", "bug", mk(0).bugs[b][0],
                                                             mk(0).bugs[b][1]))
    for kind, block in generic:
        nm = f"{key}/bug:{kind}" + (f":{block}" if block else "")

        def b(kind=kind, block=block, nm=nm):
            g, exp = _gen_bug(mk(0), kind, block)
            return _case_from(mk(0), nm, "bug", g, exp)
        reg(nm, b)
    for label, kw, kind in api:
        def a(label=label, kw=kw, kind=kind):
            M = mk(0)
            if kind == "correct":
                return _case_from(M, f"{key}/api:{label}", "correct", M.grad, kwargs=kw)
            g, exp = _gen_bug(M, *kind)
            return _case_from(M, f"{key}/api:{label}", "bug", g, exp, kwargs=kw)
        reg(f"{key}/api:{label}", a)


SPECIFIC = {
    "layernorm": ["ln_var_treated_const"],
    "batchnorm": ["bn_mean_treated_const"],
    "attention": ["softmax_jacobian_diag_only", "missing_scale_in_dQ"],
    "lstm": ["forget_gate_sigmoid_slope", "no_grad_through_h_prev"],
    "gru": ["update_gate_sign"],
    "embedding": ["embedding_overwrite_not_accumulate"],
    "tied": ["tied_counts_output_use_only", "tied_counts_input_use_only"],
    "resnet": ["skip_connection_dropped_in_backward"],
    "gp": ["logdet_grad_missing_half", "log_noise_chain_rule_missing"],
    "poisson": ["tiny_component_off_1e-3", "forgot_data_term_in_weights"],
    "negbin": ["dispersion_grad_missing_term"],
    "gmm": ["mixing_normaliser_ignored"],
    "logistic_sat": ["gradient_of_mse_not_ce"],
    "huber": ["huber_psi_zero_outside"],
    "quantile": ["pinball_wrong_slope_below"],
    "elastic": ["missing_l2_term", "l1_applied_to_bias", "l1_counted_twice"],
    "elastic_allzero": ["allzero_outside_subdifferential"],
    "mlp64": ["tanh_slope_wrong_at_2_units"],
    "mlp32": ["tanh_slope_wrong_at_2_units"],
    "mlp_off1e6": ["tanh_slope_wrong_at_2_units"],
    "mlp_tiny": ["tanh_slope_wrong_at_2_units"],
    "near_opt": ["missing_1/m", "missing_reg_term"],
    "relu_exact": ["W2_unit0_sign"],
    "kinks_misc": ["abs_kink_outside_range", "interp_knot_outside_range"],
}

SMOOTH_GENERIC = [("rel1e-6", None), ("rel1e-5", None), ("rel1e-4", None)]

API_SMOOTH = [
    ("richardson", {"method": "richardson"}, "correct"),
    ("forward", {"method": "forward"}, "correct"),
    ("complex", {"method": "complex"}, "correct"),
    ("sample3", {"sample": 3, "seed": 1}, "correct"),
    ("directional", {"mode": "directional"}, "correct"),
    ("richardson_rel1e-6", {"method": "richardson"}, ("rel1e-6",)),
    ("forward_rel1e-6", {"method": "forward"}, ("rel1e-6",)),
    ("complex_rel1e-6", {"method": "complex"}, ("rel1e-6",)),
    ("directional_rel1e-6", {"mode": "directional"}, ("rel1e-6",)),
]

model_cases("layernorm", Mo.layernorm,
            generic=SMOOTH_GENERIC + [("x2", "gamma"), ("neg", "beta"), ("T", "W1") if False else ("zero", "b1"),
                                      ("comp1e-3", "W2"), ("comp1e-2s", "W1")],
            api=API_SMOOTH)
model_cases("batchnorm", Mo.batchnorm,
            generic=SMOOTH_GENERIC + [("neg", "gamma"), ("x2", "b2"), ("comp1e-3", "W1"), ("comp1e-2s", "W2")],
            api=[API_SMOOTH[2], API_SMOOTH[4], API_SMOOTH[8]])
model_cases("attention", Mo.attention,
            generic=SMOOTH_GENERIC + [("T", "Wq"), ("T", "Wk"), ("neg", "Wv"), ("comp1e-3", "Wo"),
                                      ("comp1e-2s", "Wk")],
            api=API_SMOOTH[:5])
model_cases("lstm", Mo.lstm,
            generic=SMOOTH_GENERIC + [("T", "Wh") if False else ("half", "Wh"), ("neg", "by"),
                                      ("comp1e-3", "Wx"), ("comp1e-2s", "b"), ("zero", "by")],
            api=[API_SMOOTH[0], API_SMOOTH[2], API_SMOOTH[4], API_SMOOTH[7]])
model_cases("gru", Mo.gru,
            generic=SMOOTH_GENERIC + [("x2", "bn"), ("comp1e-3", "Wr"), ("comp1e-2s", "Wn")],
            api=[API_SMOOTH[1], API_SMOOTH[3]])
model_cases("conv_pool", Mo.conv_pool,
            generic=SMOOTH_GENERIC + [("T", "K") if False else ("neg", "K"), ("x2", "bc"), ("comp1e-3", "Wr"),
                                      ("zero", "br")],
            api=[API_SMOOTH[0], API_SMOOTH[4], API_SMOOTH[6]])
model_cases("embedding", Mo.embedding,
            generic=SMOOTH_GENERIC + [("x2", "w"), ("comp1e-3", "E"), ("comp1e-2s", "E")],
            api=[API_SMOOTH[2], API_SMOOTH[4]])
model_cases("tied", Mo.tied,
            generic=SMOOTH_GENERIC + [("T", "W"), ("half", "E"), ("comp1e-3", "b")], api=[API_SMOOTH[4]])
model_cases("resnet", Mo.resnet,
            generic=SMOOTH_GENERIC + [("T", "A2"), ("neg", "a2"), ("comp1e-3", "Wo")], api=[API_SMOOTH[5]])
model_cases("gp", Mo.gp,
            generic=SMOOTH_GENERIC + [("neg", "log_sf"), ("comp1e-3", "log_ell"), ("comp1e-2s", "log_ell")],
            api=[API_SMOOTH[0], API_SMOOTH[2]])
model_cases("poisson", Mo.poisson,
            generic=SMOOTH_GENERIC + [("x2", "w_small"), ("comp1e-3", "w_big"), ("comp1e-3", "w_small")],
            api=[API_SMOOTH[0], API_SMOOTH[1], API_SMOOTH[2], API_SMOOTH[4]])
model_cases("negbin", Mo.negbin,
            generic=SMOOTH_GENERIC + [("neg", "b"), ("comp1e-3", "w")], api=[API_SMOOTH[2]])
model_cases("gmm", Mo.gmm,
            generic=SMOOTH_GENERIC + [("x2", "log_s"), ("comp1e-3", "mu"), ("comp1e-2s", "log_s"), ("zero", "logits")],
            api=[API_SMOOTH[0], API_SMOOTH[4], API_SMOOTH[8]])
model_cases("logistic_sat", Mo.logistic_sat,
            generic=SMOOTH_GENERIC + [("neg", "b"), ("comp1e-3", "w"), ("comp1e-2s", "w")],
            api=[API_SMOOTH[2], API_SMOOTH[0]])
model_cases("huber", Mo.huber, generic=[("rel1e-6", None), ("rel1e-4", None), ("comp1e-3", "w"), ("neg", "b")],
            api=[API_SMOOTH[0], API_SMOOTH[2]])
model_cases("quantile", Mo.quantile, seeds=(),
            generic=[("rel1e-4", None), ("comp1e-3", "w"), ("neg", "b"), ("x2", "w")],
            api=[("per_example_mean", {"per_example": "mean", "cost": None}, "correct")] and [])
model_cases("elastic", Mo.elastic, seeds=(),
            generic=[("rel1e-6", None), ("rel1e-4", None), ("comp1e-3", "w"), ("neg", "w"), ("x2", "b")],
            api=[API_SMOOTH[0], API_SMOOTH[2]])
model_cases("elastic_allzero", lambda s: Mo.elastic(s, all_zero=True), seeds=())
model_cases("mlp64", lambda s: Mo.mlp_rows(s), generic=SMOOTH_GENERIC + [("T", "W1") if False else ("neg", "b2")],
            api=[API_SMOOTH[2]])
model_cases("mlp32", lambda s: Mo.mlp_rows(s, dtype="float32"), seeds=(1, 2, 3, 4, 5, 6),
            generic=[("rel1e-4", None), ("rel1e-3", None), ("rel1e-2", None), ("comp1e-2s", "W1"), ("neg", "b2"),
                     ("x2", "W2")])
model_cases("mlp_off1e6", lambda s: Mo.mlp_rows(s, offset=1e6),
            generic=SMOOTH_GENERIC + [("comp1e-3", "W1"), ("neg", "b1")])
model_cases("mlp_off1e10", lambda s: Mo.mlp_rows(s, offset=1e10), seeds=(),
            generic=[("rel1e-4", None), ("comp1e-2s", "W1"), ("neg", "b1")])
model_cases("mlp_tiny", lambda s: Mo.mlp_rows(s, scale=1e-12),
            generic=SMOOTH_GENERIC + [("comp1e-3", "W2")])
model_cases("multiscale", Mo.multiscale,
            generic=SMOOTH_GENERIC + [("neg", "micro"), ("comp1e-3", "mega"), ("comp1e-3", "micro"), ("x2", "unit")],
            api=[API_SMOOTH[0], API_SMOOTH[2], API_SMOOTH[4]])
model_cases("near_opt", lambda s: Mo.near_optimum(s), generic=[("rel1e-3", None), ("neg", "w"), ("comp1e-2s", "w")],
            api=[API_SMOOTH[0]])
model_cases("near_opt_1e-10", lambda s: Mo.near_optimum(s, tol=1e-10), seeds=(1,),
            generic=[("neg", "w"), ("x2", "w")])
model_cases("relu_exact", Mo.relu_exact, seeds=(1, 2, 3),
            generic=[("rel1e-6", None), ("rel1e-4", None), ("neg", "b2"), ("comp1e-3", "W1"), ("x2", "b1")])
model_cases("kinks_misc", Mo.kinks_misc, seeds=(),
            generic=[("rel1e-4", None), ("neg", "c"), ("comp1e-3", "q")])


# ------------------------------------------------------------------ special cases
def _quantile_pe():
    M = Mo.quantile(0)
    return _case_from(M, "quantile/api:per_example_mean", "correct", M.grad, cost=M.pe_cost,
                      kwargs={"per_example": "mean"})


def _quantile_pe_bug():
    M = Mo.quantile(0)
    g, e = M.bugs["pinball_wrong_slope_below"]
    return _case_from(M, "quantile/api:per_example_mean_bug", "bug", g, e, cost=M.pe_cost,
                      kwargs={"per_example": "mean"})


reg("quantile/api:per_example_mean", _quantile_pe)
reg("quantile/api:per_example_mean_bug", _quantile_pe_bug)


def _relu_generic(seed):
    M = Mo.relu_exact(seed)
    if not M.generic_ok:
        return None   # the convention lies outside the generic one-sided range: no label
    return _case_from(M, f"relu_exact/generic_seed{seed}", "correct", M.grad, cost=M.f_mean,
                      kwargs={"per_example": None})


for _s in (0, 1, 2, 3):
    reg(f"relu_exact/generic_seed{_s}", lambda s=_s: _relu_generic(s))


def _relu_pe_sum():
    M = Mo.relu_exact(0)
    m = 8
    g = {k: v * m for k, v in M.grad.items()}
    c = _case_from(M, "relu_exact/per_example_sum", "correct", g, kwargs={"per_example": "sum"})
    c.cost = M.cost
    return c


reg("relu_exact/per_example_sum", _relu_pe_sum)


def _relu_right_derivative():
    """Gradient = right derivative at every kink (a valid value; the endpoint)."""
    M = Mo.relu_exact(0)
    from .core import cs_onesided
    r, _ = cs_onesided(M.f_mean, M.theta)
    return _case_from(M, "relu_exact/right_derivative", "correct", M.S.split(r), cost=M.f_mean,
                      kwargs={"per_example": None})


reg("relu_exact/right_derivative_generic", _relu_right_derivative)


def _relu_bug_only_kink_examples():
    """Bug only in the examples at a kink: relu'(0) taken as 2 (outside every range)."""
    M = Mo.relu_exact(0)
    from .core import _MODE, cs_grad as _cg
    S = M.S
    rng = np.random.default_rng(0)
    # rebuild data identically to the model
    m, d, h = 8, 3, 4
    X = rng.integers(-2, 3, size=(m, d)).astype(float)
    th = M.theta
    p = S(th)
    Z = X @ p["W1"] + p["b1"]
    kink = Z == 0
    assert kink.sum() >= 4
    # gradient with slope 2 at kinks: add (2 - 0) * contributions of kink entries
    resid = ((relu_np(Z) @ p["W2"]).ravel() + p["b2"][0] - M_y(M))
    dA = np.outer(resid, p["W2"].ravel()) / m
    dZ_extra = 2.0 * dA * kink
    g = {k: v.copy() for k, v in M.grad.items()}
    g["W1"] = g["W1"] + X.T @ dZ_extra
    g["b1"] = g["b1"] + dZ_extra.sum(0)
    exp = changed_blocks(S, M.grad, g)
    return _case_from(M, "relu_exact/bug:slope2_at_kinks", "bug", g, exp)


def relu_np(z):
    return np.maximum(z, 0)


def M_y(M):
    # y of relu_exact: recover from the per-example cost (0.5 r^2 = cost) -- rebuilt by the same RNG
    rng = np.random.default_rng(0)
    m, d, h = 8, 3, 4
    rng.integers(-2, 3, size=(m, d))
    rng.integers(-4, 5, size=(d, h))
    rng.integers(-4, 5, size=(h, 1))
    return rng.integers(-2, 3, size=m) / 2.0


reg("relu_exact/bug:slope2_at_kinks", _relu_bug_only_kink_examples)


def _interp_right():
    M = Mo.kinks_misc(0)
    return _case_from(M, "kinks_misc/right_derivative", "correct", M.S.split(M.right))


def _interp_left():
    M = Mo.kinks_misc(0)
    return _case_from(M, "kinks_misc/left_derivative", "correct", M.S.split(M.left))


reg("kinks_misc/right_derivative", _interp_right)
reg("kinks_misc/left_derivative", _interp_left)


# indices= : a bug outside the checked indices must not be reported; inside, it must
def _indices_case(inside):
    M = Mo.attention(0)
    g, _ = _gen_bug(M, "neg", "Wv")
    off = M.S.offsets[M.S.names.index("Wv")]
    idx = np.arange(off, off + 16) if inside else np.arange(0, off)
    if inside:
        return _case_from(M, "attention/api:indices_bug_inside", "bug", g, ("Wv",), kwargs={"indices": idx})
    return _case_from(M, "attention/api:indices_bug_outside", "correct", g, kwargs={"indices": idx},
                      note="only Wq, Wk checked: correct on those")


reg("attention/api:indices_bug_inside", lambda: _indices_case(True))
reg("attention/api:indices_bug_outside", lambda: _indices_case(False))


# float32 gradients of a float64 cost
def _f32grad(kind):
    M = Mo.gmm(0)
    g = {k: v.astype(np.float32) for k, v in M.grad.items()}
    if kind == "correct":
        return _case_from(M, "gmm/float32_grad", "correct", g)
    g["mu"] = g["mu"] * np.float32(1 + 1e-3)
    gb = {k: v.astype(np.float64) for k, v in g.items()}
    g32 = {k: v.astype(np.float32) for k, v in M.grad.items()}
    assert changed_blocks(M.S, g32, g) == ("mu",)
    c = _case_from(M, "gmm/float32_grad_bug_mu_1e-3", "bug", g, ("mu",), skip_verify=True)
    return c


reg("gmm/float32_grad", lambda: _f32grad("correct"))
reg("gmm/float32_grad_bug_mu_1e-3", lambda: _f32grad("bug"))


# float32 block inside a float64 cost: the embedding table is used in float32
def _f32_block(bug):
    M = Mo.embedding(0)
    S = M.S
    seqs = np.array([[1, 3, 1, 1], [4, 3, 3, 0], [2, 2, 2, 5], [1, 4, 0, 1]])
    lab = np.array([1.0, -1.0, 1.0, -1.0])

    def cost(theta):
        p = S(theta)
        E = p["E"].astype(np.float32).astype(np.float64)
        pooled = E[seqs].mean(1)
        s = pooled @ p["w"] + p["b"][0]
        return float(np.mean(np.logaddexp(0, -lab * s)))

    P32 = dict(M.params)
    P32["E"] = P32["E"].astype(np.float32).astype(np.float64)
    th = S.flat(P32)
    g = cs_grad(M.ref, th)
    verify_smooth(M.ref, g, th)
    g = S.split(g)
    name = "embedding/float32_block" + ("_bug_1e-3" if bug else "")
    import fastgrad
    lay = fastgrad.pack(M.params)[1]
    if bug:
        gg = {k: v.copy() for k, v in g.items()}
        v = gg["E"].ravel()
        j = int(np.argmax(np.abs(v)))
        v[j] *= 1 + 1e-3
        gg["E"] = v.reshape(gg["E"].shape)
        return Case(name, "bug", cost, gg, th, {"layout": lay}, ("E",))
    return Case(name, "correct", cost, g, th, {"layout": lay})


reg("embedding/float32_block", lambda: _f32_block(False))
reg("embedding/float32_block_bug_1e-3", lambda: _f32_block(True))


# ------------------------------------------------------------------ numba costs
@lru_cache(None)
def _nb_data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 4))
    X[:, 3] *= 1e-3
    y = rng.poisson(np.exp(X @ np.array([0.3, -0.2, 0.5, 100.0]))).astype(float)
    th = np.array([0.25, -0.25, 0.5, 90.0])
    Xh = rng.integers(-2, 3, size=(15, 3)).astype(float)
    thh = np.array([0.5, 0.0, -0.25])      # theta[1] exactly 0 (|.| kink)
    yh = Xh @ thh - np.array([1.0, -1.0, 0.5, 3.0, 0.0, 2.0, -0.5, 1.0, -3.0, 0.25, 1.5, -1.0, 0.0, 2.5, -2.0])
    return X, y, th, Xh, yh, thh


def _poisson_py(theta, X, y):
    eta = X @ theta
    return np.sum(np.exp(eta) - y * eta) / X.shape[0]


def _huber_l1_py(theta, X, y, lam):
    r = X @ theta - y
    a = Mo.absx(r)
    hub = np.where(a.real <= 1.0, 0.5 * r * r, a - 0.5)
    return np.mean(hub) + lam * np.sum(Mo.absx(theta))


def _numba_case(which, bug, jit=True):
    from .core import verify_kink
    pois, hubl1 = Mo.numba_models()
    X, y, th, Xh, yh, thh = _nb_data()
    if which == "poisson":
        g = cs_grad(lambda t: _poisson_py(t, X, y), th)
        verify_smooth(lambda t: _poisson_py(t, X, y), g, th, fd_rel=1e-5)
        assert abs(pois(th, X, y) - _poisson_py(th, X, y)) < 1e-12 * abs(_poisson_py(th, X, y))
        cost, args = (pois if jit else _poisson_py), (X, y)
        exp = None
        if bug == "rel1e-6":
            g = g * (1 + 1e-6)
        elif bug == "comp3_1e-3":
            g = g.copy()
            g[3] *= 1 + 1e-3
    else:
        lam = 0.1
        r = Xh @ thh - yh
        psi = np.clip(r, -1, 1)
        g = Xh.T @ psi / len(r) + lam * np.sign(thh)
        verify_kink(lambda t: _huber_l1_py(t, Xh, yh, lam), g, thh)
        cost, args, th = (hubl1 if jit else _huber_l1_py), (Xh, yh, lam), thh
        if bug == "neg0":
            g = g.copy()
            g[0] = -g[0]
        elif bug == "kink_outside":
            g = g.copy()
            g[1] += 2.5 * lam
    name = f"numba/{which}_{'jit' if jit else 'py'}" + (f"_bug_{bug}" if bug else "")
    return Case(name, "bug" if bug else "correct", cost, g, th, {"args": args})


for _w, _bugs in (("poisson", (None, "rel1e-6", "comp3_1e-3")), ("huberl1", (None, "neg0", "kink_outside"))):
    for _b in _bugs:
        for _j in (True, False):
            reg(f"numba/{_w}_{'jit' if _j else 'py'}" + (f"_bug_{_b}" if _b else ""),
                lambda w=_w, b=_b, j=_j: _numba_case(w, b, j))


# ------------------------------------------------------------------ assert_gradients_correct
def _parse_wrong(txt):
    import re
    for line in txt.splitlines():
        mm = re.match(r"\s*wrong: blocks? (.*)$", line)
        if mm:
            return tuple(x.strip() for x in mm.group(1).split(",") if x.strip())
    return ()


def _agc_runner(case):
    from fastgrad.testing import assert_gradients_correct
    try:
        rep = assert_gradients_correct(case.cost, case.grad, case.theta, **case.kwargs)
        return "pass", (), (), rep.difference, rep.tolerance, ""
    except AssertionError as e:
        txt = str(e)
        v = "fail" if "FAILED" in txt else ("inconclusive" if "INCONCLUSIVE" in txt else "?")
        failing = ()
        failing = _parse_wrong(txt)
        reasons = tuple(l for l in txt.splitlines() if "cannot tell" in l)
        return v, failing, reasons, float("nan"), float("nan"), txt


def _agc(bug):
    M = Mo.lstm(0)
    if bug:
        g, e = M.bugs["forget_gate_sigmoid_slope"]
        c = _case_from(M, "testing/assert_lstm_bug", "bug", g, e)
    else:
        c = _case_from(M, "testing/assert_lstm_correct", "correct", M.grad)
    c.runner = _agc_runner
    return c


reg("testing/assert_lstm_correct", lambda: _agc(False))
reg("testing/assert_lstm_bug", lambda: _agc(True))


# ------------------------------------------------------------------ CLI (rows-convention data given transposed)
def _cli_runner(case):
    d = tempfile.mkdtemp(prefix="rt3cli")
    P, G, D, extra, expect_rc = case.kwargs["files"]
    for nm, arrs in (("p", P), ("g", G), ("d", D)):
        if arrs is not None:
            np.savez(os.path.join(d, nm + ".npz"), **arrs)
    cmd = [sys.executable, "-m", "fastgrad", "check", "--params", os.path.join(d, "p.npz"),
           "--data", os.path.join(d, "d.npz"), "--no-progress", "--color", "never"] + extra
    if G is not None:
        cmd += ["--grads", os.path.join(d, "g.npz")]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    pr = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    rc = pr.returncode
    verdict = {0: "pass", 1: "fail", 3: "inconclusive", 2: "bad-input"}.get(rc, f"rc{rc}")
    failing = ()
    failing = _parse_wrong(pr.stdout)
    reasons = tuple(l for l in pr.stdout.splitlines() if "cannot tell" in l)
    if expect_rc == 2:   # a bad-input case: ok iff rc 2
        verdict = "pass" if rc == 2 else verdict
    return verdict, failing, reasons, float("nan"), float("nan"), pr.stdout[-2000:] + pr.stderr[-2000:]


def _cli_net(seed=0):
    """A course-convention tanh network 3-4-2, MSE, params saved by a user whose
    own back-prop works with examples as ROWS (transposes at the end)."""
    rng = np.random.default_rng(seed)
    m = 5
    Xr = rng.normal(size=(m, 3))
    Yr = rng.normal(size=(m, 2))
    P = dict(W1=rng.normal(size=(4, 3)) / 2, b1=0.1 * rng.normal(size=(4, 1)),
             W2=rng.normal(size=(2, 4)) / 2, b2=0.1 * rng.normal(size=(2, 1)))
    from .core import Slicer
    S = Slicer(P)

    def cost(theta):   # course's MSE: (1/(2m)) sum (A - Y)^2, output linear
        p = S(theta)
        A1 = np.tanh(Xr @ p["W1"].T + p["b1"].T)
        A2 = A1 @ p["W2"].T + p["b2"].T
        return np.sum((A2 - Yr) ** 2) / (2 * m)

    th = S.flat(P)
    g = cs_grad(cost, th)
    verify_smooth(cost, g, th)
    G = {"d" + k: v for k, v in S.split(g).items()}
    return P, G, dict(X=Xr.T, Y=Yr.T), S


def _cli_case(label):
    P, G, D, S = _cli_net()
    extra = ["--activation", "tanh", "--loss", "mse"]
    kind, exp, rc = "correct", None, 0
    if label == "bug_dW2_1e-6":
        G = dict(G)
        G["dW2"] = G["dW2"] * (1 + 1e-6)
        kind, exp = "bug", ("W2",)
    elif label == "bug_db1_transposed_shape":
        G = dict(G)
        G["db1"] = G["db1"].T.copy()      # (1, 4) instead of (4, 1): bad input
        kind, rc = "correct", 2
    elif label == "data_as_rows":
        D = dict(X=D["X"].T, Y=D["Y"].T)   # (m, n0) given: bad input (m=5 != 3)
        kind, rc = "correct", 2
    elif label == "float32_grads":
        G = {k: v.astype(np.float32) for k, v in G.items()}
    elif label == "float32_grads_bug_1e-3":
        G = {k: v.astype(np.float32) for k, v in G.items()}
        G["db2"] = G["db2"] * np.float32(1 + 1e-3)
        kind, exp = "bug", ("b2",)
    c = Case(f"cli/{label}", kind, None, None, None, {"files": (P, G, D, extra, rc)}, exp)
    c.runner = _cli_runner
    return c


for _l in ("correct", "bug_dW2_1e-6", "bug_db1_transposed_shape", "data_as_rows", "float32_grads",
           "float32_grads_bug_1e-3"):
    reg(f"cli/{_l}", lambda l=_l: _cli_case(l))


# ------------------------------------------------------------------ runner
KNOWN_VIOLATIONS: dict[str, str] = {
    # Fixed since the report: the complex step at |w| = 0 (re-measured by central
    # differences where it disagrees), the float32 staircase (the noise line tries
    # coarser spacings when the cost does not move), kinks that cancel between
    # examples (found per example), the 1e-6-scaled block (the table's window
    # moves down), a value just outside its kink range (judged at its range), and
    # the float32 bugs within tolerance (inconclusive above MAX_ALLOWANCE = 1e-4,
    # or failed now that the steps reach the cap).
    # The whole gradient off by 1e-5 under the same constant is inconclusive now:
    # its components were undecided, and a block that passes only by their
    # widened errors no longer passes.
    "mlp_off1e6/bug:rel1e-6": "cost + 1e6: whole gradient off by 1e-6 passes within its stated tolerance "
                              "(diff 5.2e-7 < tol 1.15e-6): the rounding of 1e6 at steps capped at 1e-2 "
                              "bounds the error at about 1e-6",
}
# inconclusive verdicts judged avoidable (finite differences can tell; see the report)
AVOIDABLE_INCONCLUSIVE = {
    "multiscale/bug:neg:micro", "multiscale/bug:comp1e-3:micro", "multiscale/correct_seed1",
    "multiscale/api:richardson", "mlp32/correct_seed5", "mlp32/bug:comp1e-2s:W1",
    "near_opt/correct", "near_opt/correct_seed2", "near_opt/api:richardson", "near_opt/bug:comp1e-2s:w",
}


@lru_cache(None)
def build(name):
    c = REGISTRY[name]()
    return c


def main(argv):
    pats = argv[1:]
    names = [n for n in REGISTRY if not pats or any(p in n for p in pats)]
    tot = {}
    rows = []
    for n in names:
        try:
            c = build(n)
        except Exception as e:
            print(f"{n:60s} BUILD-ERROR {type(e).__name__}: {e}")
            continue
        if c is None:
            continue
        o = run_case(c)
        tot[(c.kind, o.status)] = tot.get((c.kind, o.status), 0) + 1
        extra = ""
        if o.status != "ok":
            extra = f" diff={o.difference:.3g} tol={o.tolerance:.3g} failing={o.failing} reasons={o.reasons}"
        print(f"{n:60s} {c.kind:8s} {o.verdict:13s} {o.status:9s} {o.seconds:6.2f}{extra}", flush=True)
        rows.append((n, c.kind, o))
    print("totals:", {f"{k[0]}/{k[1]}": v for k, v in sorted(tot.items())})
    return rows


if __name__ == "__main__":
    main(sys.argv)
