"""Models in conventions other than 'dense MLP, examples as columns'.

Each builder returns a Model: the parameters (named blocks), a cost for
fastgrad, a complex-safe reference cost (same mathematics, float64/complex128)
and the correct gradient, verified here independently of fastgrad.
Model-specific bugs are produced by complex step of a variant of the cost
whose VALUE is unchanged but whose local derivative is wrong (what a wrong
back-prop line computes), or by arithmetic on the correct gradient.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Callable

import numpy as np
import scipy.special as sp

from .core import (Slicer, absx, cholesky, clipx, cs_grad, cs_onesided, interp, logsumexp,
                   maxx, relu, sigmoid, softmax, softplus, tangent_bug, tri_solve_lower,
                   tri_solve_upper, verify_kink, verify_smooth, _MODE)


@dataclasses.dataclass
class Model:
    name: str
    params: dict
    S: Slicer
    cost: Callable            # what fastgrad is given
    ref: Callable             # complex-safe reference (float64 mathematics)
    grad: dict                # verified correct gradient
    bugs: dict                # name -> (grad dict, expected blocks)
    kwargs: dict = dataclasses.field(default_factory=dict)
    smooth: bool = True
    note: str = ""

    @property
    def theta(self):
        return self.S.flat(self.params).astype(np.float64)


def _finish(name, P, cost, ref=None, grad_vec=None, smooth=True, kink_pe=None, kwargs=None,
            fd_check=True, fd_rel=1e-3, fd_tol=1e-6, note="", grad_from_cs_autodiff=False, atol=0.0):
    S = Slicer(P)
    theta = S.flat(P).astype(np.float64)
    ref = ref or cost
    if grad_vec is None:
        grad_vec = cs_grad(ref, theta, autodiff=grad_from_cs_autodiff)
    if smooth:
        verify_smooth(ref, grad_vec, theta, fd_check=fd_check, fd_rel=fd_rel, fd_tol=fd_tol, atol=atol)
    else:
        if kink_pe is None:
            verify_kink(ref, grad_vec, theta)
        else:
            verify_kink(kink_pe[0], grad_vec, theta, per_example=kink_pe[1])
    return Model(name, P, S, cost, ref, S.split(grad_vec), {}, kwargs or {}, smooth, note)


def add_bug(M: Model, name, gbug_vec_or_dict, expected):
    g = gbug_vec_or_dict if isinstance(gbug_vec_or_dict, dict) else M.S.split(gbug_vec_or_dict)
    from .core import changed_blocks
    ch = changed_blocks(M.S, M.grad, g)
    if tuple(sorted(expected)) != ch:
        raise AssertionError(f"{M.name}/{name}: bug changes {ch}, declared {expected}")
    M.bugs[name] = (g, tuple(sorted(expected)))


def cs_variant(M: Model, f):
    """Gradient of a derivative-buggy variant f (value must equal M.ref)."""
    th = M.theta
    assert np.allclose(np.real(f(th.astype(complex))), float(np.real(M.ref(th))), rtol=1e-13, atol=0)
    return cs_grad(f, th)


# ======================================================== deep-learning models
@lru_cache(None)
def layernorm(seed=0):
    rng = np.random.default_rng(seed)
    m, d, h, c = 10, 5, 6, 3
    X = rng.normal(size=(m, d))
    y = rng.integers(0, c, m)
    P = dict(W1=rng.normal(size=(d, h)) / np.sqrt(d), b1=0.1 * rng.normal(size=h),
             gamma=1 + 0.1 * rng.normal(size=h), beta=0.1 * rng.normal(size=h),
             W2=rng.normal(size=(h, c)) / np.sqrt(h), b2=0.1 * rng.normal(size=c))
    S = Slicer(P)

    def f(theta, var_bug=False):
        p = S(theta)
        z = X @ p["W1"] + p["b1"]
        mu = z.mean(1, keepdims=True)
        if var_bug and np.iscomplexobj(z):   # classic bug: variance treated as a constant
            v = (((z - mu) ** 2).mean(1, keepdims=True)).real
        else:
            v = ((z - mu) ** 2).mean(1, keepdims=True)
        zn = (z - mu) / np.sqrt(v + 1e-5)
        a = np.tanh(zn * p["gamma"] + p["beta"])
        o = a @ p["W2"] + p["b2"]
        return np.mean(logsumexp(o) - o[np.arange(m), y])

    M = _finish("layernorm", P, f)
    add_bug(M, "ln_var_treated_const", cs_variant(M, lambda t: f(t, var_bug=True)), ("W1", "b1"))
    return M


@lru_cache(None)
def batchnorm(seed=0):
    rng = np.random.default_rng(seed)
    m, d, h = 12, 4, 6
    X = rng.normal(size=(m, d)) * np.array([1, 3, 0.5, 2])
    y = rng.normal(size=m)
    P = dict(W1=rng.normal(size=(d, h)) / 2, gamma=1 + 0.2 * rng.normal(size=h),
             beta=0.3 * rng.normal(size=h), W2=rng.normal(size=(h, 1)) / 2, b2=np.array([0.1]))
    S = Slicer(P)

    def f(theta, mean_bug=False):
        p = S(theta)
        z = X @ p["W1"]
        mu = z.mean(0, keepdims=True)
        if mean_bug and np.iscomplexobj(z):  # bug: batch mean's dependence ignored
            mu = mu.real
        v = ((z - mu) ** 2).mean(0, keepdims=True)
        a = np.tanh((z - mu) / np.sqrt(v + 1e-5) * p["gamma"] + p["beta"])
        o = (a @ p["W2"]).ravel() + p["b2"][0]
        return 0.5 * np.mean((o - y) ** 2)

    M = _finish("batchnorm", P, f)
    add_bug(M, "bn_mean_treated_const", cs_variant(M, lambda t: f(t, mean_bug=True)), ("W1",))
    return M


@lru_cache(None)
def attention(seed=0):
    rng = np.random.default_rng(seed)
    T, d, o = 5, 4, 2
    X = rng.normal(size=(T, d))
    tgt = rng.normal(size=o)
    P = dict(Wq=rng.normal(size=(d, d)) / 2, Wk=rng.normal(size=(d, d)) / 2,
             Wv=rng.normal(size=(d, d)) / 2, Wo=rng.normal(size=(d, o)) / 2)
    S = Slicer(P)

    def bad_softmax(z):  # value softmax, Jacobian diag(P) (missing -P P^T)
        if not np.iscomplexobj(z):
            return softmax(z)
        p = softmax(z.real)
        return p + 1j * p * z.imag

    def f(theta, sm=softmax):
        p = S(theta)
        Q, K, V = X @ p["Wq"], X @ p["Wk"], X @ p["Wv"]
        A = sm(Q @ K.T / np.sqrt(d))
        Hh = (A @ V).mean(0) @ p["Wo"]
        return 0.5 * np.sum((Hh - tgt) ** 2)

    M = _finish("attention", P, f)
    add_bug(M, "softmax_jacobian_diag_only", cs_variant(M, lambda t: f(t, sm=bad_softmax)), ("Wk", "Wq"))
    g = dict(M.grad)
    g["Wq"] = g["Wq"] * 2.0  # missing 1/sqrt(d) in the backward of Q only
    add_bug(M, "missing_scale_in_dQ", g, ("Wq",))
    return M


@lru_cache(None)
def lstm(seed=0):
    rng = np.random.default_rng(seed)
    D, H, T = 2, 3, 4
    xs = rng.normal(size=(T, D))
    tgt = 0.3
    P = dict(Wx=rng.normal(size=(4 * H, D)) / 2, Wh=rng.normal(size=(4 * H, H)) / 2,
             b=0.1 * rng.normal(size=4 * H), Wy=rng.normal(size=H), by=np.array([0.05]))
    S = Slicer(P)
    bad_sig = tangent_bug(sigmoid, lambda r: sigmoid(r))  # s instead of s(1-s)

    def f(theta, forget_sig=sigmoid, truncate=False):
        p = S(theta)
        h = np.zeros(H, dtype=theta.dtype)
        c = np.zeros(H, dtype=theta.dtype)
        for t in range(T):
            hp = h.real if (truncate and np.iscomplexobj(h) and t < T - 1 and False) else h
            if truncate and np.iscomplexobj(h):
                hp = h.real + 0j  # truncated BPTT: no gradient through h_{t-1}
            a = p["Wx"] @ xs[t] + p["Wh"] @ hp + p["b"]
            i, fg, og, g = sigmoid(a[:H]), forget_sig(a[H:2 * H]), sigmoid(a[2 * H:3 * H]), np.tanh(a[3 * H:])
            c = fg * c + i * g
            h = og * np.tanh(c)
        yhat = p["Wy"] @ h + p["by"][0]
        return 0.5 * (yhat - tgt) ** 2

    M = _finish("lstm", P, f)
    add_bug(M, "forget_gate_sigmoid_slope", cs_variant(M, lambda t: f(t, forget_sig=bad_sig)), ("Wh", "Wx", "b"))
    add_bug(M, "no_grad_through_h_prev", cs_variant(M, lambda t: f(t, truncate=True)), ("Wh", "Wx", "b"))
    return M


@lru_cache(None)
def gru(seed=0):
    rng = np.random.default_rng(seed)
    D, H, T = 3, 3, 3
    xs = rng.normal(size=(T, D))
    tgt = rng.normal(size=H)
    P = dict(Wz=rng.normal(size=(H, D + H)) / 2, Wr=rng.normal(size=(H, D + H)) / 2,
             Wn=rng.normal(size=(H, D + H)) / 2, bz=0.1 * rng.normal(size=H),
             bn=0.1 * rng.normal(size=H))
    S = Slicer(P)

    def f(theta, zbug=False):
        p = S(theta)
        h = np.zeros(H, dtype=theta.dtype)
        for t in range(T):
            xh = np.concatenate([xs[t].astype(theta.dtype), h])
            z = sigmoid(p["Wz"] @ xh + p["bz"])
            if zbug and np.iscomplexobj(z):
                z = z.real - 1j * z.imag  # bug: derivative of z taken with the wrong sign (z vs 1-z)
            r = sigmoid(p["Wr"] @ xh)
            n = np.tanh(p["Wn"] @ np.concatenate([xs[t].astype(theta.dtype), r * h]) + p["bn"])
            h = (1 - z) * n + z * h
        return 0.5 * np.sum((h - tgt) ** 2)

    M = _finish("gru", P, f)
    add_bug(M, "update_gate_sign", cs_variant(M, lambda t: f(t, zbug=True)), ("Wn", "Wr", "Wz", "bn", "bz"))
    return M


@lru_cache(None)
def conv_pool(seed=0):
    rng = np.random.default_rng(seed)
    m, L, C, k = 6, 12, 2, 3
    X = rng.normal(size=(m, L))
    y = rng.normal(size=m)
    P = dict(K=rng.normal(size=(C, k)) / 2, bc=0.1 * rng.normal(size=C),
             Wr=rng.normal(size=(C, (L - k + 1) // 2)) / 3, br=np.array([0.0]))
    S = Slicer(P)

    def f(theta):
        p = S(theta)
        win = np.stack([X[:, j:j + k] for j in range(L - k + 1)], axis=1)   # (m, L-k+1, k)
        z = np.einsum("mtk,ck->mct", win, p["K"]) + p["bc"][None, :, None]
        a = relu(z)
        pooled = maxx(a[:, :, 0::2], a[:, :, 1::2])                         # (m, C, 5)
        o = np.einsum("mct,ct->m", pooled, p["Wr"]) + p["br"][0]
        return 0.5 * np.mean((o - y) ** 2)

    M = _finish("conv_pool", P, f)
    return M


@lru_cache(None)
def embedding(seed=0):
    rng = np.random.default_rng(seed)
    V, d = 6, 3
    seqs = np.array([[1, 3, 1, 1], [4, 3, 3, 0], [2, 2, 2, 5], [1, 4, 0, 1]])
    lab = np.array([1.0, -1.0, 1.0, -1.0])
    P = dict(E=rng.normal(size=(V, d)), w=rng.normal(size=d), b=np.array([0.1]))
    S = Slicer(P)

    def f(theta):
        p = S(theta)
        pooled = p["E"][seqs].mean(1)            # (4, d)
        s = pooled @ p["w"] + p["b"][0]
        return np.mean(softplus(-lab * s))

    M = _finish("embedding", P, f)
    # untied version: one copy of the row per occurrence -> per-occurrence gradients
    n_occ = seqs.size
    Pu = dict(Eocc=P["E"][seqs.ravel()].copy(), w=P["w"], b=P["b"])
    Su = Slicer(Pu)

    def fu(theta):
        p = Su(theta)
        pooled = p["Eocc"].reshape(seqs.shape + (d,)).mean(1)
        s = pooled @ p["w"] + p["b"][0]
        return np.mean(softplus(-lab * s))

    gu = Su.split(cs_grad(fu, Su.flat(Pu)))
    Eocc = gu["Eocc"]
    over = np.zeros_like(P["E"])
    for j, v in enumerate(seqs.ravel()):        # E[idx] = ... (overwrite): last occurrence wins
        over[v] = Eocc[j]
    assert np.allclose(np.add.reduceat(Eocc[np.argsort(seqs.ravel(), kind="stable")],
                                       np.r_[0, np.flatnonzero(np.diff(np.sort(seqs.ravel()))) + 1]),
                       M.grad["E"][np.unique(seqs)], rtol=1e-12)
    g = dict(M.grad)
    g["E"] = over
    add_bug(M, "embedding_overwrite_not_accumulate", g, ("E",))
    return M


@lru_cache(None)
def tied(seed=0):
    rng = np.random.default_rng(seed)
    V, d = 5, 3
    ctx = np.array([0, 2, 4, 1, 3, 2])
    nxt = np.array([2, 4, 1, 3, 0, 2])
    P = dict(E=rng.normal(size=(V, d)), W=rng.normal(size=(d, d)) / 2, b=0.1 * rng.normal(size=d))
    S = Slicer(P)

    def logits(E_in, E_out, W, b):
        h = np.tanh(E_in[ctx] @ W + b)
        return h @ E_out.T

    def f(theta):
        p = S(theta)
        lo = logits(p["E"], p["E"], p["W"], p["b"])
        return np.mean(logsumexp(lo) - lo[np.arange(len(nxt)), nxt])

    M = _finish("tied", P, f)
    th = M.theta

    def f_out_only(theta):  # gradient reaches E only through the output projection
        p = S(theta)
        p0 = S(th)
        lo = logits(p0["E"] + 0 * p["E"], p["E"], p["W"], p["b"])
        return np.mean(logsumexp(lo) - lo[np.arange(len(nxt)), nxt])

    def f_in_only(theta):
        p = S(theta)
        p0 = S(th)
        lo = logits(p["E"], p0["E"] + 0 * p["E"], p["W"], p["b"])
        return np.mean(logsumexp(lo) - lo[np.arange(len(nxt)), nxt])

    add_bug(M, "tied_counts_output_use_only", cs_variant(M, f_out_only), ("E",))
    add_bug(M, "tied_counts_input_use_only", cs_variant(M, f_in_only), ("E",))
    return M


@lru_cache(None)
def resnet(seed=0):
    rng = np.random.default_rng(seed)
    m, d = 8, 3
    X = rng.normal(size=(m, d))
    Y = rng.normal(size=(m, 1))
    P = dict(A1=rng.normal(size=(d, d)) / 2, a1=0.1 * rng.normal(size=d),
             A2=rng.normal(size=(d, d)) / 2, a2=0.1 * rng.normal(size=d),
             Wo=rng.normal(size=(d, 1)) / 2)
    S = Slicer(P)

    def f(theta, drop_skip2=False):
        p = S(theta)
        h1 = X + np.tanh(X @ p["A1"] + p["a1"])
        skip = h1.real + 0j if (drop_skip2 and np.iscomplexobj(h1)) else h1
        h2 = skip + np.tanh(h1 @ p["A2"] + p["a2"])
        return 0.5 * np.mean((h2 @ p["Wo"] - Y) ** 2)

    M = _finish("resnet", P, f)
    add_bug(M, "skip_connection_dropped_in_backward", cs_variant(M, lambda t: f(t, drop_skip2=True)), ("A1", "a1"))
    return M


# ======================================================== statistics
@lru_cache(None)
def gp(seed=0):
    rng = np.random.default_rng(seed)
    n, d = 12, 3
    X = rng.uniform(-2, 2, size=(n, d))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] + 0.1 * rng.normal(size=n)
    P = dict(log_ell=np.log(np.array([1.0, 1.5, 0.7])) + 0.1 * rng.normal(size=d),
             log_sf=np.array([0.2]), log_sn=np.array([np.log(0.1)]))
    S = Slicer(P)

    def kern(p):
        Xs = X / np.exp(p["log_ell"])
        D2 = np.sum((Xs[:, None, :] - Xs[None, :, :]) ** 2, axis=2)
        return np.exp(2 * p["log_sf"][0]) * np.exp(-0.5 * D2)

    def f(theta):
        p = S(theta)
        K = kern(p) + (np.exp(2 * p["log_sn"][0]) + 1e-10) * np.eye(n)
        L = cholesky(K)
        a = tri_solve_upper(L.T, tri_solve_lower(L, y.astype(K.dtype)))
        return 0.5 * y @ a + np.sum(np.log(np.diag(L))) + 0.5 * n * np.log(2 * np.pi)

    # hand-written gradient: 0.5 tr((K^-1 - a a^T) dK)
    p = S(S.flat(P))
    Kf = kern(p)
    K = Kf + (np.exp(2 * p["log_sn"][0]) + 1e-10) * np.eye(n)
    Ki = np.linalg.inv(K)
    a = Ki @ y
    W = Ki - np.outer(a, a)
    g_ell = np.array([0.5 * np.sum(W * Kf * ((X[:, None, j] - X[None, :, j]) ** 2)
                                   / np.exp(2 * p["log_ell"][j])) for j in range(d)])
    g_sf = np.array([0.5 * np.sum(W * 2 * Kf)])
    g_sn = np.array([0.5 * np.trace(W) * 2 * np.exp(2 * p["log_sn"][0])])
    gvec = np.concatenate([g_ell, g_sf, g_sn])
    M = _finish("gp", P, f, grad_vec=gvec, fd_rel=1e-4)
    # bug: logdet term's gradient without the 1/2 (all blocks)
    gb = np.concatenate([np.array([np.sum(Ki * Kf * ((X[:, None, j] - X[None, :, j]) ** 2)
                                          / np.exp(2 * p["log_ell"][j])) * 0.5 for j in range(d)]), g_sf, g_sn])
    gb = gvec + np.concatenate([[0.5 * np.sum(Ki * Kf * ((X[:, None, j] - X[None, :, j]) ** 2)
                                              / np.exp(2 * p["log_ell"][j])) for j in range(d)],
                                [0.5 * np.sum(Ki * 2 * Kf)], [0.5 * np.trace(Ki) * 2 * np.exp(2 * p["log_sn"][0])]])
    add_bug(M, "logdet_grad_missing_half", gb, ("log_ell", "log_sf", "log_sn"))
    gb2 = gvec.copy()
    gb2[-1] = 0.5 * np.trace(W)  # chain rule of log-parametrisation forgotten (noise only)
    add_bug(M, "log_noise_chain_rule_missing", gb2, ("log_sn",))
    return M


@lru_cache(None)
def poisson(seed=0):
    rng = np.random.default_rng(seed)
    m = 40
    Xs = rng.normal(size=(m, 2)) * np.array([1e-3, 3e-2])
    Xb = rng.normal(size=(m, 2)) * np.array([1.0, 2.0])
    ws, wb, b = np.array([50.0, 5.0]), np.array([0.4, -0.3]), np.array([1.0])
    rate = np.exp(Xs @ ws + Xb @ wb + b[0])
    y = rng.poisson(rate).astype(float)
    P = dict(w_small=ws + 0.3 * rng.normal(size=2), w_big=wb + 0.05 * rng.normal(size=2), b=b + 0.1)
    S = Slicer(P)

    def f(theta):
        p = S(theta)
        eta = Xs @ p["w_small"] + Xb @ p["w_big"] + p["b"][0]
        return np.sum(np.exp(eta) - y * eta)

    p = S(S.flat(P))
    r = np.exp(Xs @ p["w_small"] + Xb @ p["w_big"] + p["b"][0]) - y
    gvec = np.concatenate([Xs.T @ r, Xb.T @ r, [r.sum()]])
    M = _finish("poisson", P, f, grad_vec=gvec, fd_rel=1e-4)
    gb = gvec.copy()
    gb[0] *= 1 + 1e-3   # tiny component off by 1e-3
    add_bug(M, "tiny_component_off_1e-3", gb, ("w_small",))
    gb = gvec.copy()
    gb[:4] = np.concatenate([Xs.T @ (r + y), Xb.T @ (r + y)])  # forgot the -y*eta term for weights
    add_bug(M, "forgot_data_term_in_weights", gb, ("w_big", "w_small"))
    return M


@lru_cache(None)
def negbin(seed=0):
    rng = np.random.default_rng(seed)
    m = 30
    X = rng.normal(size=(m, 3))
    w0 = np.array([0.5, -0.2, 0.3])
    mu = np.exp(X @ w0 + 1.5)
    alpha = 0.5
    y = rng.negative_binomial(1 / alpha, 1 / (1 + alpha * mu)).astype(float)
    P = dict(w=w0 + 0.1 * rng.normal(size=3), b=np.array([1.4]), log_alpha=np.array([np.log(0.6)]))
    S = Slicer(P)

    def f(theta):
        p = S(theta)
        eta = X @ p["w"] + p["b"][0]
        mu = np.exp(eta)
        a = np.exp(p["log_alpha"][0])
        r = 1 / a
        ll = (sp.loggamma(y + r) - sp.loggamma(r) - sp.loggamma(y + 1)
              + r * np.log(r / (r + mu)) + y * np.log(mu / (r + mu)))
        return -np.sum(ll)

    p = S(S.flat(P))
    eta = X @ p["w"] + p["b"][0]
    mu = np.exp(eta)
    a = np.exp(p["log_alpha"][0])
    r = 1 / a
    dl_deta = (y - mu) * r / (r + mu)
    dl_dr = sp.digamma(y + r) - sp.digamma(r) + np.log(r / (r + mu)) + 1 - (r + y) / (r + mu)
    g_loga = -np.sum(dl_dr) * (-r)
    gvec = np.concatenate([-(X.T @ dl_deta), [-dl_deta.sum()], [g_loga]])
    M = _finish("negbin", P, f, grad_vec=gvec, fd_rel=1e-4)
    gb = gvec.copy()
    gb[-1] = -np.sum(sp.digamma(y + r) - sp.digamma(r) + np.log(r / (r + mu)) - (r + y) / (r + mu)) * (-r)  # dropped +1
    add_bug(M, "dispersion_grad_missing_term", gb, ("log_alpha",))
    return M


@lru_cache(None)
def gmm(seed=0):
    rng = np.random.default_rng(seed)
    K, d, n = 3, 2, 25
    X = np.concatenate([rng.normal(size=(9, d)) + 2, rng.normal(size=(8, d)) - 2, rng.normal(size=(8, d))])
    P = dict(logits=0.2 * rng.normal(size=K), mu=rng.normal(size=(K, d)) * 2,
             log_s=0.1 * rng.normal(size=(K, d)))
    S = Slicer(P)

    def comp_ll(p):
        s = np.exp(p["log_s"])
        z = (X[:, None, :] - p["mu"][None]) / s[None]
        return -0.5 * np.sum(z ** 2, 2) - np.sum(p["log_s"], 1)[None] - 0.5 * d * np.log(2 * np.pi)

    def f(theta, logits_bug=False):
        p = S(theta)
        lse_pi = logsumexp(p["logits"])
        if logits_bug and np.iscomplexobj(lse_pi):
            lse_pi = lse_pi.real  # normaliser of the mixing weights treated as constant
        logpi = p["logits"] - lse_pi
        return -np.sum(logsumexp(comp_ll(p) + logpi[None]))

    M = _finish("gmm", P, f)
    add_bug(M, "mixing_normaliser_ignored", cs_variant(M, lambda t: f(t, logits_bug=True)), ("logits",))
    return M


@lru_cache(None)
def logistic_sat(seed=0):
    rng = np.random.default_rng(seed)
    m, d = 30, 4
    X = rng.normal(size=(m, d)) * 8
    y = (rng.random(m) < 0.5).astype(float) * 2 - 1
    P = dict(w=rng.normal(size=d) * 3, b=np.array([0.5]))
    S = Slicer(P)

    def f(theta):
        p = S(theta)
        return np.mean(softplus(-y * (X @ p["w"] + p["b"][0])))

    p = S(S.flat(P))
    s = X @ p["w"] + p["b"][0]
    q = -y * sigmoid(-y * s)
    gvec = np.concatenate([X.T @ q / m, [q.mean()]])
    M = _finish("logistic_sat", P, f, grad_vec=gvec, fd_rel=1e-4)
    # wrong loss: gradient of MSE on the probability instead of cross-entropy
    prob = sigmoid(s)
    t = (y + 1) / 2
    qm = (prob - t) * prob * (1 - prob)
    add_bug(M, "gradient_of_mse_not_ce", np.concatenate([X.T @ qm / m, [qm.mean()]]), ("b", "w"))
    return M


@lru_cache(None)
def huber(seed=0):
    rng = np.random.default_rng(seed)
    m, d, delta = 12, 3, 1.0
    X = rng.integers(-3, 4, size=(m, d)).astype(float)
    w = np.array([0.5, -0.25, 0.75])
    b0 = 0.125
    r_target = np.array([1.0, -1.0, 0.5, 2.0, -1.5, 1.0, 0.0, -0.25, 3.0, -1.0, 0.75, 1.0])  # some |r| = delta exactly
    y = X @ w + b0 - r_target
    P = dict(w=w, b=np.array([b0]))
    S = Slicer(P)

    def hub(r):
        a = absx(r)
        return np.where(a.real <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))

    def f(theta):
        p = S(theta)
        return np.mean(hub(X @ p["w"] + p["b"][0] - y))

    p = S(S.flat(P))
    r = X @ p["w"] + p["b"][0] - y
    assert np.array_equal(r, r_target)
    psi = np.clip(r, -delta, delta)
    gvec = np.concatenate([X.T @ psi / m, [psi.mean()]])
    # Huber is C1: at |r| = delta the one-sided derivatives agree
    M = _finish("huber", P, f, grad_vec=gvec, fd_check=False, note="|r| = delta for 6 residuals")
    psi_b = np.where(np.abs(r) >= delta, 0.0, r)  # bug: psi = 0 at and beyond delta (wrong branch)
    add_bug(M, "huber_psi_zero_outside", np.concatenate([X.T @ psi_b / m, [psi_b.mean()]]), ("b", "w"))
    return M


@lru_cache(None)
def quantile(seed=0):
    rng = np.random.default_rng(seed)
    m, d, tau = 10, 3, 0.3
    X = rng.integers(-2, 3, size=(m, d)).astype(float)
    w = np.array([0.5, -0.25, 1.0])
    b0 = 0.5
    r_t = np.array([0.0, 0.5, -1.0, 0.0, 2.0, -0.5, 1.5, -2.0, 0.25, 1.0])  # 2 residuals exactly 0
    y = X @ w + b0 + r_t
    P = dict(w=w, b=np.array([b0]))
    S = Slicer(P)

    def pin(u):  # u = y - pred
        return maxx(tau * u, (tau - 1) * u)

    def f(theta):
        p = S(theta)
        return np.mean(pin(y - X @ p["w"] - p["b"][0]))

    def fpe(theta):
        p = S(theta)
        return pin(y - X @ p["w"] - p["b"][0])

    u = r_t
    psi = np.where(u > 0, tau, tau - 1)  # convention at u == 0: tau - 1
    gvec = np.concatenate([-(X.T @ psi) / m, [-psi.mean()]])
    M = _finish("quantile", P, f, grad_vec=gvec, smooth=False)
    verify_kink(fpe, gvec, M.theta, per_example="mean")
    M.pe_cost = fpe
    psi_b = np.where(u > 0, tau, -tau)   # classic: (1 - tau) sign wrong
    add_bug(M, "pinball_wrong_slope_below", np.concatenate([-(X.T @ psi_b) / m, [-psi_b.mean()]]), ("b", "w"))
    return M


@lru_cache(None)
def elastic(seed=0, all_zero=False):
    rng = np.random.default_rng(seed)
    m, d = 20, 8
    X = rng.normal(size=(m, d))
    y = X[:, :3] @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=m)
    l1, l2 = 0.05, 1e-3
    if all_zero:
        l1 = 5.0
        w = np.zeros(d)
    else:
        w = np.array([0.9, -1.8, 0.4, 0.0, 0.0, 0.0, 0.02, 0.0])
    P = dict(w=w, b=np.array([0.0]))   # b = 0 exactly but unpenalised (no kink)
    S = Slicer(P)

    def f(theta):
        p = S(theta)
        r = X @ p["w"] + p["b"][0] - y
        return 0.5 * np.mean(r * r) + l1 * np.sum(absx(p["w"])) + 0.5 * l2 * np.sum(p["w"] ** 2)

    r = X @ w - y
    gvec = np.concatenate([X.T @ r / m + l1 * np.sign(w) + l2 * w, [r.mean()]])
    M = _finish("elastic_allzero" if all_zero else "elastic", P, f, grad_vec=gvec, smooth=False)
    if not all_zero:
        gb = gvec.copy()
        gb[:d] -= l2 * w                               # missing small L2 term
        add_bug(M, "missing_l2_term", gb, ("w",))
        gb = gvec.copy()
        gb[d] += l1 * np.sign(0.0) + l1 * 1.0          # L1 subgradient applied to the bias
        add_bug(M, "l1_applied_to_bias", gb, ("b",))
        gb = gvec.copy()
        gb[:d] += l1 * np.sign(w)                      # L1 counted twice (only nonzero w change)
        add_bug(M, "l1_counted_twice", gb, ("w",))
    else:
        gb = gvec.copy()
        gb[:d] = X.T @ r / m + 2 * l1 * np.sign(-X.T @ r / m)  # 'subgradient' outside [-l1, l1]
        add_bug(M, "allzero_outside_subdifferential", gb, ("w",))
    return M


# ======================================================== numerics
@lru_cache(None)
def mlp_rows(seed=0, dtype="float64", offset=0.0, scale=1.0):
    """Tanh MLP, examples as ROWS, softmax cross-entropy; optionally computed in
    float32, with a constant offset, or scaled (tiny loss)."""
    rng = np.random.default_rng(seed)
    m, d, h, c = 16, 4, 5, 3
    X = rng.normal(size=(m, d)).astype(np.float32).astype(np.float64)
    yi = rng.integers(0, c, m)
    P = dict(W1=rng.normal(size=(d, h)) / 2, b1=0.1 * rng.normal(size=h),
             W2=rng.normal(size=(h, c)) / 2, b2=0.1 * rng.normal(size=c))
    if dtype == "float32":
        P = {k: v.astype(np.float32).astype(np.float64) for k, v in P.items()}
    S = Slicer(P)

    def core(theta, act=np.tanh):
        p = S(theta)
        a = act(X @ p["W1"] + p["b1"])
        o = a @ p["W2"] + p["b2"]
        return scale * np.mean(logsumexp(o) - o[np.arange(m), yi]) + offset

    if dtype == "float32":
        X32 = X.astype(np.float32)

        def cost(theta):
            p = S(np.asarray(theta).astype(np.float32))
            a = np.tanh(X32 @ p["W1"] + p["b1"])
            o = a @ p["W2"] + p["b2"]
            mx = o.max(1, keepdims=True)
            lse = (mx + np.log(np.exp(o - mx).sum(1, keepdims=True)))[:, 0]
            return float(np.float32(scale) * np.mean(lse - o[np.arange(m), yi]) + np.float32(offset))
    else:
        cost = core
    name = f"mlp_rows_{dtype}" + (f"_off{offset:g}" if offset else "") + (f"_scale{scale:g}" if scale != 1 else "")
    M = _finish(name, P, cost, ref=core, fd_rel=1e-3, fd_check=(offset == 0))
    # wrong tanh derivative (1 - tanh instead of 1 - tanh^2) at units 1 and 3 only
    def bad_act(z):
        if not np.iscomplexobj(z):
            return np.tanh(z)
        r = np.tanh(z.real)
        slope = 1 - r ** 2
        slope[..., [1, 3]] = 1 - r[..., [1, 3]]
        return r + 1j * z.imag * slope
    add_bug(M, "tanh_slope_wrong_at_2_units", cs_variant(M, lambda t: core(t, act=bad_act)), ("W1", "b1"))
    return M


@lru_cache(None)
def multiscale(seed=0):
    """Blocks whose parameters live at 1e-6, 1, 1e6 (each with a matching scale)."""
    rng = np.random.default_rng(seed)
    sc = {"micro": 1e-6, "unit": 1.0, "mega": 1e6}
    P = {k: s * (1 + 0.5 * rng.normal(size=3)) for k, s in sc.items()}
    A = rng.normal(size=(9, 9)) / 3
    S = Slicer(P)
    svec = np.concatenate([np.full(3, s) for s in sc.values()])

    def f(theta):
        u = theta / svec
        v = A @ u
        return np.sum(np.log1p(v * v)) + 0.1 * np.sum(np.cos(u))

    return _finish("multiscale", P, f, fd_rel=1e-4)


@lru_cache(None)
def near_optimum(seed=0, tol=1e-8):
    """Logistic regression trained by Newton steps until ||grad|| ~ tol."""
    rng = np.random.default_rng(seed)
    m, d = 60, 3
    X = rng.normal(size=(m, d))
    y = (rng.random(m) < sigmoid(X @ np.array([1.0, -1.0, 0.5]))).astype(float) * 2 - 1
    lam = 1e-2

    def grad_hess(w):
        s = X @ w
        q = -y * sigmoid(-y * s)
        pr = sigmoid(s)
        Hm = (X.T * (pr * (1 - pr))) @ X / m + lam * np.eye(d)
        return X.T @ q / m + lam * w, Hm

    w = np.zeros(d)
    for _ in range(50):
        g, Hm = grad_hess(w)
        if np.linalg.norm(g) < 10 * tol:
            break
        w = w - np.linalg.solve(Hm, g)
    # walk back along the Newton direction to a point where ||grad|| ~ tol
    g, Hm = grad_hess(w)
    w = w + np.linalg.solve(Hm, np.array([1.0, 0.5, -0.7]) * tol)
    P = dict(w=w)
    S = Slicer(P)

    def f(theta):
        p = S(theta)
        return np.mean(softplus(-y * (X @ p["w"]))) + 0.5 * lam * np.sum(p["w"] ** 2)

    gvec = grad_hess(w)[0]
    M = _finish(f"near_optimum_{tol:g}", P, f, grad_vec=gvec, fd_check=False, atol=1e-16, note=f"||grad|| = {np.linalg.norm(gvec):.1e}")
    add_bug(M, "missing_1/m", gvec + (m - 1) * (gvec - lam * w), ("w",))
    add_bug(M, "missing_reg_term", gvec - lam * w, ("w",))
    return M


@lru_cache(None)
def relu_exact(seed=0):
    """ReLU MLP, examples as rows, dyadic weights and integer inputs: many hidden
    pre-activations are exactly 0.  Gradient by the back-prop convention relu'(0)=0."""
    rng = np.random.default_rng(seed)
    m, d, h = 8, 3, 4
    X = rng.integers(-2, 3, size=(m, d)).astype(float)
    W1 = rng.integers(-4, 5, size=(d, h)) / 4.0
    Z = X @ W1
    # biases chosen so that unit j is exactly on its kink for example j
    b1 = -Z[np.arange(h), np.arange(h)]
    W2 = rng.integers(-4, 5, size=(h, 1)) / 4.0 + 0.125
    y = rng.integers(-2, 3, size=m) / 2.0
    P = dict(W1=W1, b1=b1, W2=W2, b2=np.array([0.25]))
    S = Slicer(P)

    def fpe(theta):
        p = S(theta)
        a = relu(X @ p["W1"] + p["b1"])
        return 0.5 * ((a @ p["W2"]).ravel() + p["b2"][0] - y) ** 2

    def f(theta):
        return np.mean(fpe(theta))

    th = S.flat(P)
    assert np.sum((X @ W1 + b1) == 0) >= h
    g_conv = cs_grad(f, th, autodiff=True)        # relu'(0) = 0, the back-prop convention
    # label: per-example ranges always contain the convention; the generic
    # one-sided range may not, so the check is made with per_example="mean"
    M = _finish("relu_exact", P, fpe, ref=f, grad_vec=g_conv, smooth=False, kink_pe=(fpe, "mean"),
                kwargs={"per_example": "mean"})
    r, l = cs_onesided(f, th)
    M.generic_ok = bool(np.all((g_conv >= np.minimum(r, l) - 1e-12) & (g_conv <= np.maximum(r, l) + 1e-12)))
    M.f_mean = f
    M.kink_comp = np.flatnonzero(r != l)
    # bug: relu'(0) taken as 1 at the kinks AND the slope of W2 sign-flipped at unit 0
    gb = M.S.flat(M.grad).copy()
    gb[M.S.offsets[2]] = -gb[M.S.offsets[2]]
    add_bug(M, "W2_unit0_sign", gb, ("W2",))
    return M


@lru_cache(None)
def kinks_misc(seed=0):
    """np.maximum, np.abs, np.clip, np.interp with parameters exactly at kinks."""
    P = dict(a=np.array([0.0, 1.5, -0.5]), c=np.array([1.0, -1.0, 0.25]),
             q=np.array([1.0, 2.0, 2.5, -1.0]))
    S = Slicer(P)
    xp = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    fp = np.array([1.0, 0.0, 2.0, 1.5, -1.0, 0.5])

    def f(theta):
        p = S(theta)
        t1 = np.sum(absx(p["a"]) * np.array([1.0, 2.0, 0.5]))          # a[0] = 0: |.| kink
        t2 = np.sum(clipx(p["c"], -1.0, 1.0) * np.array([2.0, 1.0, 3.0]))  # c at the clip bounds
        t3 = np.sum(interp(p["q"], xp, fp) * np.array([1.0, 1.0, 1.0, 2.0]))  # q[0], q[1], q[3] on knots
        t4 = 0.5 * np.sum(maxx(p["a"], p["c"][:3] * 0 + 0.0) ** 2)      # max(a, 0)^2 (C1)
        return t1 + t2 + t3 + t4 + 0.1 * np.sum(p["a"] * p["c"])

    th = S.flat(P)
    r, l = cs_onesided(f, th)
    # a back-prop convention: numpy's sign(0)=0, clip passes gradient inside [lo, hi],
    # np.interp slope of the segment to the right of a knot
    g = (r + l) / 2  # midpoint of each one-sided pair: always a valid derivative
    M = _finish("kinks_misc", P, f, grad_vec=g, smooth=False)
    M.right, M.left = r, l
    gb = g.copy()
    k_abs = 0
    gb[k_abs] = r[k_abs] + 0.5 * (r[k_abs] - l[k_abs])  # outside the range at |.| kink
    add_bug(M, "abs_kink_outside_range", gb, ("a",))
    gb = g.copy()
    k_int = S.offsets[2] + 1
    gb[k_int] = max(r[k_int], l[k_int]) + 0.5            # interp slope beyond both one-sided slopes at knot q[1]
    add_bug(M, "interp_knot_outside_range", gb, ("q",))
    return M


# ---------------------------------------------------------------- numba
def numba_models():
    import numba

    @numba.njit(cache=False)
    def poisson_nb(theta, X, y):
        s = 0.0
        for i in range(X.shape[0]):
            eta = 0.0
            for j in range(X.shape[1]):
                eta += X[i, j] * theta[j]
            s += np.exp(eta) - y[i] * eta
        return s / X.shape[0]

    @numba.njit(cache=False)
    def huber_l1_nb(theta, X, y, lam):
        s = 0.0
        for i in range(X.shape[0]):
            r = -y[i]
            for j in range(X.shape[1]):
                r += X[i, j] * theta[j]
            a = abs(r)
            s += 0.5 * r * r if a <= 1.0 else a - 0.5
        s /= X.shape[0]
        for j in range(theta.size):
            s += lam * abs(theta[j])
        return s

    return poisson_nb, huber_l1_nb


ALL_MODELS = [layernorm, batchnorm, attention, lstm, gru, conv_pool, embedding, tied, resnet,
              gp, poisson, negbin, gmm, logistic_sat, huber, quantile, elastic,
              mlp_rows, multiscale, near_optimum, relu_exact, kinks_misc]
