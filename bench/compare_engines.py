"""Two versions of the dense engine in one process, called alternately on case M; the naive loop in the same run.

Usage (from the repository root)::

    git archive <old-commit> | tar -x -C /tmp/old         # the engine to compare against
    PYTHONPATH=. python bench/compare_engines.py /tmp/old/fastgrad/_dense_engine.py [reps] [tanh sigmoid relu]

The old ``_dense_engine.py`` is loaded under another module name (its first
call compiles it into its own directory's cache); both engines get the same
network (M with the given hidden activation), every component at
``theta +- 1e-5 max(1, |theta_k|)``, and are called alternately ``reps`` times
(default 7): medians and ranges, the naive loop's time on 200 components
extrapolated, the largest difference between the two engines' values, and
the central differences against the naive loop's.
"""
import importlib.util, sys, time
import numpy as np
from dataclasses import replace
import fastgrad
from fastgrad._cases import get_case
from fastgrad import _dense_engine as after
from fastgrad._dense_spec import ACTIVATIONS, LOSSES
spec = importlib.util.spec_from_file_location("fastgrad._dense_engine_before", sys.argv[1])
before = importlib.util.module_from_spec(spec); sys.modules[spec.name] = before; spec.loader.exec_module(before)
from fastgrad.naive import naive_numerical_gradient
from threadpoolctl import threadpool_limits

reps = int(sys.argv[2]) if len(sys.argv) > 2 else 7
for hidden in sys.argv[3:] or ["tanh", "sigmoid", "relu"]:
    case = replace(get_case("M"), hidden=hidden)
    net = case.net(); X, Y = case.data(); params = case.params(); theta = net.pack(params)
    sizes = np.array(case.layer_sizes, np.int64)
    acts = np.array([ACTIVATIONS[hidden]] * (sizes.size - 2) + [0], np.int64)
    args = (sizes, acts, LOSSES[case.loss], 0.0, theta, X, Y, np.zeros((0, case.m)))
    idx = np.arange(theta.size)
    step = 1e-5 * np.maximum(1, np.abs(theta))
    pts = np.stack([theta + step, theta - step], 1)
    bases = {"before": before.prepare(*args), "after": after.prepare(*args)}
    mods = {"before": before, "after": after}
    for name in mods:
        mods[name].cost_differences(bases[name], idx[:3], pts[:3])
    times = {"before": [], "after": []}
    results = {}
    for r in range(reps):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            t = time.perf_counter(); results[name] = mods[name].cost_differences(bases[name], idx, pts); times[name].append(time.perf_counter() - t)
    sub = np.unique(np.linspace(0, theta.size - 1, 200).round().astype(np.int64))
    with threadpool_limits(1, "blas"):
        t = time.perf_counter(); naive = naive_numerical_gradient(net, params, X, Y, indices=sub); dt = time.perf_counter() - t
    naive_s = dt / sub.size * theta.size
    d_b, d_a = results["before"][0], results["after"][0]
    rel = np.abs(d_a - d_b).max() / np.abs(d_b).max()
    g_a = (d_a[:, 0] - d_a[:, 1]) / (2 * step)
    grad_err = np.linalg.norm(g_a[sub] - naive) / np.linalg.norm(naive)
    mb, ma = np.median(times["before"]), np.median(times["after"])
    print(f"M-{hidden}: before median {mb:.3f} s (range {min(times['before']):.3f}-{max(times['before']):.3f}), "
          f"after median {ma:.3f} s (range {min(times['after']):.3f}-{max(times['after']):.3f}); "
          f"naive extrapolated {naive_s:.1f} s -> before {naive_s/mb:.0f}x, after {naive_s/ma:.0f}x naive; "
          f"max |after-before| / max|before| = {rel:.2e}; |approx - naive| / |naive| = {grad_err:.1e}", flush=True)
