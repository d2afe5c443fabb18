"""Hand-written models for the redteam7 harness (not the course's conventions).

Each model: ``init(rng) -> params``, ``cost(params) -> float``,
``grads(params) -> dict`` (correct back-prop, hand-written), and optional
``bugs(params) -> {name: grads_dict}`` with model-specific planted bugs.
Examples are rows everywhere.
"""
import math
import numpy as np

try:
    from scipy.special import erf as _erf
except Exception:  # pragma: no cover
    _erf = np.vectorize(math.erf)


def logsumexp(a, axis=-1):
    m = np.max(a, axis=axis, keepdims=True)
    return (m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))).squeeze(axis)


def softmax(a, axis=-1):
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def softplus(z):
    return np.logaddexp(0, z)


# --------------------------------------------------------------- softmax reg.
class SoftmaxReg:
    name = "softmax_rows"

    def __init__(self, N=60, d=12, K=5, lam=1e-2, seed=0):
        r = np.random.default_rng(seed)
        self.X = r.normal(size=(N, d))
        self.y = r.integers(0, K, size=N)
        self.Y = np.eye(K)[self.y]
        self.N, self.d, self.K, self.lam = N, d, K, lam

    def init(self, r):
        return {"W": 0.1 * r.normal(size=(self.d, self.K)), "b": np.zeros(self.K)}

    def cost(self, p):
        A = self.X @ p["W"] + p["b"]
        return float(np.mean(logsumexp(A) - A[np.arange(self.N), self.y])
                     + 0.5 * self.lam * np.sum(p["W"] ** 2))

    def _dA(self, p):
        A = self.X @ p["W"] + p["b"]
        return (softmax(A) - self.Y) / self.N

    def grads(self, p):
        dA = self._dA(p)
        return {"W": self.X.T @ dA + self.lam * p["W"], "b": dA.sum(0)}

    def bugs(self, p):
        dA = self._dA(p)
        return {
            "drop_reg": {"W": self.X.T @ dA, "b": dA.sum(0)},
            "missing_1/N": {"W": self.N * (self.X.T @ dA) + self.lam * p["W"], "b": dA.sum(0)},
            "reg_factor2": {"W": self.X.T @ dA + 2 * self.lam * p["W"], "b": dA.sum(0)},
        }


# ----------------------------------------------------------------- GELU MLP
def gelu(z):
    return 0.5 * z * (1 + _erf(z / math.sqrt(2)))


def dgelu(z):
    return 0.5 * (1 + _erf(z / math.sqrt(2))) + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


class GeluMLP:
    name = "gelu_mlp_mse"

    def __init__(self, N=40, d=6, H=8, O=3, seed=1):
        r = np.random.default_rng(seed)
        self.X = r.normal(size=(N, d))
        self.T = r.normal(size=(N, O))
        self.N, self.d, self.H, self.O = N, d, H, O

    def init(self, r):
        return {"W_in": r.normal(size=(self.d, self.H)) / math.sqrt(self.d),
                "bias_h": 0.1 * r.normal(size=self.H),
                "W_out": r.normal(size=(self.H, self.O)) / math.sqrt(self.H),
                "bias_o": np.zeros(self.O)}

    def _fwd(self, p):
        Z = self.X @ p["W_in"] + p["bias_h"]
        Hh = gelu(Z)
        O = Hh @ p["W_out"] + p["bias_o"]
        return Z, Hh, O

    def cost(self, p):
        _, _, O = self._fwd(p)
        return float(0.5 * np.sum((O - self.T) ** 2) / self.N)

    def grads(self, p, transpose_bug=False):
        Z, Hh, O = self._fwd(p)
        dO = (O - self.T) / self.N
        dH = dO @ p["W_out"].T
        dZ = dH * dgelu(Z)
        return {"W_in": self.X.T @ dZ, "bias_h": dZ.sum(0),
                "W_out": Hh.T @ dO, "bias_o": dO.sum(0)}

    def bugs(self, p):
        Z, Hh, O = self._fwd(p)
        dO = (O - self.T) / self.N
        dZ_wrong = (dO @ p["W_out"].T) * (0.5 * (1 + _erf(Z / math.sqrt(2))))  # dropped 2nd term of GELU'
        g = self.grads(p)
        b1 = dict(g, W_in=self.X.T @ dZ_wrong, bias_h=dZ_wrong.sum(0))
        return {"gelu_deriv_dropped_term": b1}


# ----------------------------------------------------- softplus/ELU classifier
def elu(z):
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))


def delu(z):
    return np.where(z > 0, 1.0, np.exp(np.minimum(z, 0)))


class SoftplusEluNet:
    """Two hidden layers (softplus, ELU), square hidden-hidden weight, logistic loss."""
    name = "softplus_elu_logistic"

    def __init__(self, N=50, d=5, H=6, seed=2):
        r = np.random.default_rng(seed)
        self.X = r.normal(size=(N, d))
        self.y = (r.random(N) < 0.5).astype(float)
        self.N, self.d, self.H = N, d, H

    def init(self, r):
        return {"A": r.normal(size=(self.d, self.H)) / math.sqrt(self.d),
                "a": 0.1 * r.normal(size=self.H),
                "M": r.normal(size=(self.H, self.H)) / math.sqrt(self.H),
                "m": 0.1 * r.normal(size=self.H),
                "v": r.normal(size=self.H) / math.sqrt(self.H),
                "c": np.array(0.0)}

    def _fwd(self, p):
        Z1 = self.X @ p["A"] + p["a"]
        H1 = softplus(Z1)
        Z2 = H1 @ p["M"] + p["m"]
        H2 = elu(Z2)
        s = H2 @ p["v"] + p["c"]
        return Z1, H1, Z2, H2, s

    def cost(self, p):
        *_, s = self._fwd(p)
        # logistic loss, stable: log(1+exp(-t s)), t in {-1, 1}
        t = 2 * self.y - 1
        return float(np.mean(np.logaddexp(0, -t * s)))

    def grads(self, p, transpose=False):
        Z1, H1, Z2, H2, s = self._fwd(p)
        ds = (sigmoid(s) - self.y) / self.N
        dv = H2.T @ ds
        dc = np.array(ds.sum())
        dH2 = np.outer(ds, p["v"])
        dZ2 = dH2 * delu(Z2)
        dM = H1.T @ dZ2
        dm = dZ2.sum(0)
        dH1 = dZ2 @ (p["M"] if transpose else p["M"].T)
        dZ1 = dH1 * sigmoid(Z1)
        return {"A": self.X.T @ dZ1, "a": dZ1.sum(0), "M": dM, "m": dm, "v": dv, "c": dc}

    def bugs(self, p):
        return {"transposed_M_in_backprop": self.grads(p, transpose=True)}


# ---------------------------------------------------------------- conv1d net
class Conv1dNet:
    """x: (N, C, L); conv 'valid' with kernel (F, C, k); tanh; mean-pool; linear head; MSE."""
    name = "conv1d_tanh"

    def __init__(self, N=12, C=2, L=10, F=3, k=3, seed=3):
        r = np.random.default_rng(seed)
        self.x = r.normal(size=(N, C, L))
        self.t = r.normal(size=N)
        self.N, self.C, self.L, self.F, self.k = N, C, L, F, k
        self.Lo = L - k + 1

    def init(self, r):
        return {"kern": r.normal(size=(self.F, self.C, self.k)) / math.sqrt(self.C * self.k),
                "kb": 0.1 * r.normal(size=self.F),
                "head": r.normal(size=self.F),
                "hb": np.array([0.0])}

    def _patches(self):
        # P[n, l, c, j] = x[n, c, l + j]
        idx = np.arange(self.Lo)[:, None] + np.arange(self.k)[None, :]
        return self.x[:, :, idx].transpose(0, 2, 1, 3)  # (N, Lo, C, k)

    def _fwd(self, p):
        P = self._patches()
        Z = np.einsum("nlcj,fcj->nlf", P, p["kern"]) + p["kb"]
        Hh = np.tanh(Z)
        pooled = Hh.mean(1)
        out = pooled @ p["head"] + p["hb"][0]
        return P, Z, Hh, pooled, out

    def cost(self, p):
        *_, out = self._fwd(p)
        return float(np.mean((out - self.t) ** 2))

    def grads(self, p, flip_kernel=False):
        P, Z, Hh, pooled, out = self._fwd(p)
        dout = 2 * (out - self.t) / self.N
        dhead = pooled.T @ dout
        dhb = np.array([dout.sum()])
        dpooled = np.outer(dout, p["head"])
        dH = np.repeat(dpooled[:, None, :], self.Lo, axis=1) / self.Lo
        dZ = dH * (1 - Hh ** 2)
        dkern = np.einsum("nlcj,nlf->fcj", P, dZ)
        if flip_kernel:
            dkern = dkern[:, :, ::-1]
        return {"kern": dkern, "kb": dZ.sum((0, 1)), "head": dhead, "hb": dhb}

    def bugs(self, p):
        g = self.grads(p)
        return {"kernel_flipped(correlation vs convolution)": self.grads(p, flip_kernel=True),
                "missing_pool_1/Lo": dict(g, kern=g["kern"] * self.Lo, kb=g["kb"] * self.Lo)}


# ------------------------------------------------------------------ GRU
class GRUUnrolled:
    name = "gru_unrolled"

    def __init__(self, N=4, T=4, D=3, H=4, seed=4):
        r = np.random.default_rng(seed)
        self.x = r.normal(size=(T, N, D))
        self.t = r.normal(size=N)
        self.N, self.T, self.D, self.H = N, T, D, H

    def init(self, r):
        D, H = self.D, self.H
        p = {}
        for g in "zrn":
            p["Wx" + g] = r.normal(size=(D, H)) / math.sqrt(D)
            p["Wh" + g] = r.normal(size=(H, H)) / math.sqrt(H)
            p["b" + g] = 0.1 * r.normal(size=H)
        p["wo"] = r.normal(size=H) / math.sqrt(H)
        return p

    def _fwd(self, p):
        h = np.zeros((self.N, self.H))
        cache = []
        for t in range(self.T):
            x = self.x[t]
            z = sigmoid(x @ p["Wxz"] + h @ p["Whz"] + p["bz"])
            rr = sigmoid(x @ p["Wxr"] + h @ p["Whr"] + p["br"])
            n = np.tanh(x @ p["Wxn"] + (rr * h) @ p["Whn"] + p["bn"])
            hn = (1 - z) * n + z * h
            cache.append((x, h, z, rr, n))
            h = hn
        out = h @ p["wo"]
        return cache, h, out

    def cost(self, p):
        _, _, out = self._fwd(p)
        return float(0.5 * np.mean((out - self.t) ** 2))

    def grads(self, p, truncate=None):
        cache, h, out = self._fwd(p)
        g = {k: np.zeros_like(v) for k, v in p.items()}
        dout = (out - self.t) / self.N
        g["wo"] = h.T @ dout
        dh = np.outer(dout, p["wo"])
        steps = list(reversed(cache))
        if truncate is not None:
            steps = steps[:truncate]
        for (x, hp, z, rr, n) in steps:
            dn = dh * (1 - z)
            dz = dh * (hp - n)
            dhp = dh * z
            dan = dn * (1 - n ** 2)
            g["Wxn"] += x.T @ dan
            g["Whn"] += (rr * hp).T @ dan
            g["bn"] += dan.sum(0)
            drh = dan @ p["Whn"].T
            drr = drh * hp
            dhp += drh * rr
            daz = dz * z * (1 - z)
            dar = drr * rr * (1 - rr)
            g["Wxz"] += x.T @ daz
            g["Whz"] += hp.T @ daz
            g["bz"] += daz.sum(0)
            g["Wxr"] += x.T @ dar
            g["Whr"] += hp.T @ dar
            g["br"] += dar.sum(0)
            dhp += daz @ p["Whz"].T + dar @ p["Whr"].T
            dh = dhp
        return g

    def bugs(self, p):
        return {"truncated_bptt_T-1": self.grads(p, truncate=self.T - 1)}


# ------------------------------------------------------------------ Huber
class HuberReg:
    name = "huber_linear"

    def __init__(self, N=80, d=8, delta=1.0, seed=5):
        r = np.random.default_rng(seed)
        self.X = r.normal(size=(N, d))
        self.y = self.X @ r.normal(size=d) + 2.0 * r.standard_t(2, size=N)
        self.N, self.d, self.delta = N, d, delta

    def init(self, r):
        return {"w": r.normal(size=self.d), "b0": np.array(0.3)}

    def cost(self, p):
        res = self.X @ p["w"] + p["b0"] - self.y
        a = np.abs(res)
        L = np.where(a <= self.delta, 0.5 * res ** 2, self.delta * (a - 0.5 * self.delta))
        return float(L.mean())

    def grads(self, p, clip_bug=False):
        res = self.X @ p["w"] + p["b0"] - self.y
        dr = np.clip(res, -self.delta, self.delta) / self.N
        if clip_bug:
            dr = np.where(np.abs(res) <= self.delta, res, 0.0) / self.N  # outliers dropped
        return {"w": self.X.T @ dr, "b0": np.array(dr.sum())}

    def bugs(self, p):
        return {"outlier_grad_dropped": self.grads(p, clip_bug=True)}


# ---------------------------------------------------------------- Poisson GLM
class PoissonGLM:
    name = "poisson_glm"

    def __init__(self, N=100, d=6, seed=6):
        r = np.random.default_rng(seed)
        self.X = 0.5 * r.normal(size=(N, d))
        self.y = r.poisson(np.exp(self.X @ r.normal(size=d) * 0.7 + 1.0)).astype(float)
        self.N, self.d = N, d

    def init(self, r):
        return {"beta": 0.1 * r.normal(size=self.d), "icpt": np.array([0.0])}

    def cost(self, p):
        eta = self.X @ p["beta"] + p["icpt"][0]
        return float(np.mean(np.exp(eta) - self.y * eta))

    def grads(self, p):
        eta = self.X @ p["beta"] + p["icpt"][0]
        r = (np.exp(eta) - self.y) / self.N
        return {"beta": self.X.T @ r, "icpt": np.array([r.sum()])}

    def bugs(self, p):
        eta = self.X @ p["beta"] + p["icpt"][0]
        r = (eta - self.y) / self.N  # identity link used in back-prop
        return {"identity_link_backprop": {"beta": self.X.T @ r, "icpt": np.array([r.sum()])}}


# --------------------------------------------- Gaussian NLL, learned variance
class GaussNLL:
    name = "gauss_nll_hetero"

    def __init__(self, N=60, d=4, H=5, seed=7):
        r = np.random.default_rng(seed)
        self.X = r.normal(size=(N, d))
        self.y = np.sin(self.X[:, 0]) + 0.3 * np.abs(self.X[:, 1]) * r.normal(size=N)
        self.N, self.d, self.H = N, d, H

    def init(self, r):
        return {"U": r.normal(size=(self.d, self.H)) / 2, "u": np.zeros(self.H),
                "wmu": r.normal(size=self.H) / 2, "wlv": r.normal(size=self.H) / 4,
                "bmu": np.array(0.0), "blv": np.array(0.0)}

    def _fwd(self, p):
        Z = self.X @ p["U"] + p["u"]
        Hh = np.tanh(Z)
        mu = Hh @ p["wmu"] + p["bmu"]
        lv = Hh @ p["wlv"] + p["blv"]
        return Z, Hh, mu, lv

    def cost(self, p):
        _, _, mu, lv = self._fwd(p)
        return float(np.mean(0.5 * lv + 0.5 * (self.y - mu) ** 2 * np.exp(-lv)))

    def grads(self, p, bug=None):
        Z, Hh, mu, lv = self._fwd(p)
        iv = np.exp(-lv)
        dmu = -(self.y - mu) * iv / self.N
        dlv = (0.5 - 0.5 * (self.y - mu) ** 2 * iv) / self.N
        if bug == "var_wrong_sign":
            dlv = (0.5 + 0.5 * (self.y - mu) ** 2 * iv) / self.N
        dH = np.outer(dmu, p["wmu"]) + np.outer(dlv, p["wlv"])
        if bug == "dropped_lv_path":
            dH = np.outer(dmu, p["wmu"])
        dZ = dH * (1 - Hh ** 2)
        return {"U": self.X.T @ dZ, "u": dZ.sum(0), "wmu": Hh.T @ dmu, "wlv": Hh.T @ dlv,
                "bmu": np.array(dmu.sum()), "blv": np.array(dlv.sum())}

    def bugs(self, p):
        return {"var_term_sign": self.grads(p, "var_wrong_sign"),
                "dropped_lv_path_into_trunk": self.grads(p, "dropped_lv_path")}


# ------------------------------------------------ weight-tied autoencoder
class TiedAE:
    name = "tied_autoencoder"

    def __init__(self, N=30, D=8, H=3, seed=8):
        r = np.random.default_rng(seed)
        self.X = r.normal(size=(N, D)) @ r.normal(size=(D, D)) * 0.3
        self.N, self.D, self.H = N, D, H

    def init(self, r):
        return {"W": r.normal(size=(self.D, self.H)) / math.sqrt(self.D),
                "enc_b": np.zeros(self.H), "dec_b": np.zeros(self.D)}

    def _fwd(self, p):
        Z = self.X @ p["W"] + p["enc_b"]
        Hh = sigmoid(Z)
        R = Hh @ p["W"].T + p["dec_b"]
        return Z, Hh, R

    def cost(self, p):
        _, _, R = self._fwd(p)
        return float(0.5 * np.sum((R - self.X) ** 2) / self.N)

    def grads(self, p, only_decoder=False, only_encoder=False):
        Z, Hh, R = self._fwd(p)
        dR = (R - self.X) / self.N
        dW_dec = dR.T @ Hh
        dH = dR @ p["W"]
        dZ = dH * Hh * (1 - Hh)
        dW_enc = self.X.T @ dZ
        dW = (0 if only_encoder else dW_dec) + (0 if only_decoder else dW_enc)
        return {"W": dW, "enc_b": dZ.sum(0), "dec_b": dR.sum(0)}

    def bugs(self, p):
        return {"tied_only_decoder_path": self.grads(p, only_decoder=True),
                "tied_only_encoder_path": self.grads(p, only_encoder=True)}


# ------------------------------------------------- Gaussian mixture (logsumexp)
class GMM2D:
    name = "gmm_logsumexp"

    def __init__(self, N=80, K=3, seed=9):
        r = np.random.default_rng(seed)
        centers = np.array([[-2, 0], [2, 1], [0, 3.0]])
        self.X = centers[r.integers(0, 3, size=N)] + 0.7 * r.normal(size=(N, 2))
        self.N, self.K = N, K

    def init(self, r):
        return {"logits": np.zeros(self.K), "means": r.normal(size=(self.K, 2)),
                "logsig": np.zeros(self.K)}

    def _comp(self, p):
        diff = self.X[:, None, :] - p["means"][None]  # N,K,2
        s2 = np.exp(2 * p["logsig"])
        logpi = p["logits"] - logsumexp(p["logits"])
        L = logpi - 2 * p["logsig"] - np.log(2 * np.pi) - 0.5 * np.sum(diff ** 2, -1) / s2
        return diff, s2, L

    def cost(self, p):
        _, _, L = self._comp(p)
        return float(-np.mean(logsumexp(L, axis=1)))

    def grads(self, p, bug=None):
        diff, s2, L = self._comp(p)
        R = softmax(L, axis=1)  # responsibilities
        N = self.N
        dlogits = -(R.sum(0) - N * softmax(p["logits"])) / N
        if bug == "no_softmax_norm":
            dlogits = -R.sum(0) / N
        dmeans = -np.einsum("nk,nkd->kd", R, diff) / s2[:, None] / N
        sq = np.sum(diff ** 2, -1)
        dlogsig = -np.sum(R * (-2 + sq / s2), 0) / N
        if bug == "logsig_dim1":
            dlogsig = -np.sum(R * (-1 + sq / s2), 0) / N
        return {"logits": dlogits, "means": dmeans, "logsig": dlogsig}

    def bugs(self, p):
        return {"logits_no_softmax_norm": self.grads(p, "no_softmax_norm"),
                "logsig_dim_as_1": self.grads(p, "logsig_dim1")}


# ------------------------------------------------- L1-penalised regression
class LassoLogistic:
    name = "l1_logistic"

    def __init__(self, N=70, d=10, lam=0.05, seed=10):
        r = np.random.default_rng(seed)
        self.X = r.normal(size=(N, d))
        w = np.zeros(d); w[:3] = [2, -1, 1]
        self.y = (r.random(N) < sigmoid(self.X @ w)).astype(float)
        self.N, self.d, self.lam = N, d, lam

    def init(self, r):
        w = 0.3 * r.normal(size=self.d)
        return {"w": w, "b": np.array(0.0)}

    def cost(self, p):
        s = self.X @ p["w"] + p["b"]
        t = 2 * self.y - 1
        return float(np.mean(np.logaddexp(0, -t * s)) + self.lam * np.sum(np.abs(p["w"])))

    def grads(self, p, drop_l1=False, sign_l1=False):
        s = self.X @ p["w"] + p["b"]
        ds = (sigmoid(s) - self.y) / self.N
        gw = self.X.T @ ds + (0 if drop_l1 else self.lam * np.sign(p["w"]) * (-1 if sign_l1 else 1))
        return {"w": gw, "b": np.array(ds.sum())}

    def bugs(self, p):
        return {"dropped_l1_grad": self.grads(p, drop_l1=True),
                "l1_grad_sign": self.grads(p, sign_l1=True)}


# ------------------------------------------------- big softmax (thousands)
class BigSoftmax(SoftmaxReg):
    name = "softmax_rows_big"

    def __init__(self):
        super().__init__(N=40, d=150, K=10, lam=1e-3, seed=11)


MODELS = [SoftmaxReg, GeluMLP, SoftplusEluNet, Conv1dNet, GRUUnrolled, HuberReg, PoissonGLM,
          GaussNLL, TiedAE, GMM2D, LassoLogistic]
