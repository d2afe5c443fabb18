"""Sanity check of the hand-written back-prop in models.py with a plain central difference."""
import numpy as np, sys
sys.path.insert(0, __file__.rsplit('/', 1)[0])
from models import *
for M in MODELS + [BigSoftmax]:
    m = M(); r = np.random.default_rng(0); p = m.init(r)
    g = m.grads(p); worst = 0
    for k in p:
        flat = p[k].reshape(-1)
        idx = range(flat.size) if flat.size < 60 else np.random.default_rng(1).choice(flat.size, 60, replace=False)
        for i in idx:
            q = {kk: vv.copy() for kk, vv in p.items()}
            h = 1e-5
            q[k].reshape(-1)[i] += h; cp = m.cost(q)
            q[k].reshape(-1)[i] -= 2*h; cm = m.cost(q)
            num = (cp - cm) / (2*h); an = np.asarray(g[k]).reshape(-1)[i]
            worst = max(worst, abs(num - an) / (abs(num) + abs(an) + 1e-8))
    print(m.name, sum(v.size for v in p.values()), "worst rel", worst)
