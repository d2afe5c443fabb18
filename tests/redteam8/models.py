"""Own numpy models (examples as rows, PyTorch-style names) with hand-written
gradients and mpmath reference implementations."""
import numpy as np
import mpmath


def mp_tanh_arr(a):
    return np.vectorize(mpmath.tanh, otypes=[object])(a)


def to_mp(a):
    return np.vectorize(lambda v: mpmath.mpf(float(v)), otypes=[object])(np.asarray(a, float))


class MLP:
    """fc1: (H,D) weight, (H,) bias, tanh; fc2: (O,H), (O,); MSE mean over all outputs."""
    def __init__(self, D, H, O, m, seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        self.X = rng.normal(size=(m, D))
        self.shapes = {"fc1.weight": (H, D), "fc1.bias": (H,), "fc2.weight": (O, H), "fc2.bias": (O,)}
        self.teacher = {k: rng.normal(size=s) * (1.0 / np.sqrt(s[-1]) if len(s) > 1 else 0.5)
                        for k, s in self.shapes.items()}
        self.Y = self.forward(self.teacher, self.X)
        self.m, self.O = m, O

    def forward(self, p, X):
        A1 = np.tanh(X @ p["fc1.weight"].T + p["fc1.bias"])
        return A1 @ p["fc2.weight"].T + p["fc2.bias"]

    def loss(self, p):
        R = self.forward(p, self.X) - self.Y
        return float(np.mean(R * R))

    def grads(self, p):
        A1 = np.tanh(self.X @ p["fc1.weight"].T + p["fc1.bias"])
        R = A1 @ p["fc2.weight"].T + p["fc2.bias"] - self.Y
        dO = 2 * R / R.size
        g = {"fc2.weight": dO.T @ A1, "fc2.bias": dO.sum(0)}
        dZ = (dO @ p["fc2.weight"]) * (1 - A1 * A1)
        g["fc1.weight"] = dZ.T @ self.X
        g["fc1.bias"] = dZ.sum(0)
        return g

    def loss_mp(self, p):
        X = to_mp(self.X); Y = to_mp(self.Y)
        A1 = mp_tanh_arr(X @ p["fc1.weight"].T + p["fc1.bias"])
        R = A1 @ p["fc2.weight"].T + p["fc2.bias"] - Y
        return sum((R * R).ravel()) / R.size


class RNN:
    """Elman RNN, h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T), out = h_T W_o^T + b_o, MSE."""
    def __init__(self, D, H, T, m, seed=0):
        rng = np.random.default_rng(seed)
        self.X = rng.normal(size=(m, T, D))
        self.shapes = {"rnn.weight_ih": (H, D), "rnn.weight_hh": (H, H), "rnn.bias": (H,),
                       "out.weight": (1, H), "out.bias": (1,)}
        self.teacher = {k: rng.normal(size=s) * (0.6 / np.sqrt(s[-1]) if len(s) > 1 else 0.3)
                        for k, s in self.shapes.items()}
        self.T = T
        self.Y = self.forward(self.teacher, self.X)

    def forward(self, p, X, tanh=np.tanh, keep=False):
        m = X.shape[0]; H = p["rnn.weight_hh"].shape[0]
        h = np.zeros((m, H), dtype=X.dtype); hs = [h]
        for t in range(self.T):
            h = tanh(X[:, t, :] @ p["rnn.weight_ih"].T + h @ p["rnn.weight_hh"].T + p["rnn.bias"])
            hs.append(h)
        out = h @ p["out.weight"].T + p["out.bias"]
        return (out, hs) if keep else out

    def loss(self, p):
        R = self.forward(p, self.X) - self.Y
        return float(np.mean(R * R))

    def grads(self, p):
        out, hs = self.forward(p, self.X, keep=True)
        R = out - self.Y
        dO = 2 * R / R.size
        g = {"out.weight": dO.T @ hs[-1], "out.bias": dO.sum(0)}
        gih = np.zeros_like(p["rnn.weight_ih"]); ghh = np.zeros_like(p["rnn.weight_hh"]); gb = np.zeros_like(p["rnn.bias"])
        dh = dO @ p["out.weight"]
        for t in range(self.T, 0, -1):
            dz = dh * (1 - hs[t] ** 2)
            gih += dz.T @ self.X[:, t - 1, :]; ghh += dz.T @ hs[t - 1]; gb += dz.sum(0)
            dh = dz @ p["rnn.weight_hh"]
        g.update({"rnn.weight_ih": gih, "rnn.weight_hh": ghh, "rnn.bias": gb})
        return g

    def loss_mp(self, p):
        X = to_mp(self.X); Y = to_mp(self.Y)
        m = X.shape[0]; H = p["rnn.weight_hh"].shape[0]
        h = np.array([[mpmath.mpf(0)] * H] * m, dtype=object)
        for t in range(self.T):
            h = mp_tanh_arr(X[:, t, :] @ p["rnn.weight_ih"].T + h @ p["rnn.weight_hh"].T + p["rnn.bias"])
        R = h @ p["out.weight"].T + p["out.bias"] - Y
        return sum((R * R).ravel()) / R.size


class LogReg:
    """Logistic regression, separable data; mean log(1+exp(-y z)), z = X w^T + b."""
    def __init__(self, D, m, scale, seed=0):
        rng = np.random.default_rng(seed)
        wdir = rng.normal(size=(1, D)); wdir /= np.linalg.norm(wdir)
        X = rng.normal(size=(m, D))
        marg = X @ wdir.ravel()
        keep = np.abs(marg) > 0.5
        self.X = X[keep]; self.y = np.sign(marg[keep])
        self.shapes = {"linear.weight": (1, D), "linear.bias": (1,)}
        self.teacher = {"linear.weight": wdir * scale, "linear.bias": np.array([0.01 * scale])}

    def loss(self, p):
        z = self.X @ p["linear.weight"].ravel() + p["linear.bias"][0]
        return float(np.mean(np.logaddexp(0, -self.y * z)))

    def grads(self, p):
        z = self.X @ p["linear.weight"].ravel() + p["linear.bias"][0]
        s = -self.y * np.exp(-np.logaddexp(0, self.y * z)) / len(self.y)   # -y*sigmoid(-yz)/m
        return {"linear.weight": (s @ self.X)[None, :], "linear.bias": np.array([s.sum()])}

    def loss_mp(self, p):
        X = to_mp(self.X); y = to_mp(self.y)
        z = X @ p["linear.weight"].ravel() + p["linear.bias"][0]
        return sum(mpmath.log1p(mpmath.exp(-yi * zi)) for yi, zi in zip(y, z)) / len(y)


def mp_reference(model, params, layout, dps=40):
    """Gradient of model.loss_mp at params by mpmath.diff, packed as a vector."""
    import fastgrad
    mpmath.mp.dps = dps
    theta = fastgrad.pack(params, layout=layout)
    base = {k: to_mp(v) for k, v in params.items()}
    g = np.zeros(theta.size)
    off = 0
    for name in layout.names:
        shp = base[name].shape
        for j in range(int(np.prod(shp))):
            idx = np.unravel_index(j, shp)
            x0 = base[name][idx]
            def f(x):
                q = dict(base); q[name] = base[name].copy(); q[name][idx] = x
                return model.loss_mp(q)
            g[off + j] = float(mpmath.diff(f, x0))
        off += int(np.prod(shp))
    return g
