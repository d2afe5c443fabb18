"""Independent proof that each case is what it claims to be, without fastgrad.

The reference derivative is the complex step ``Im J(theta + i t v) / t`` of the
case's own cost (``case.reference``): no subtraction, so it is exact to
rounding whatever the step. At a ReLU kink the models switch units on by the
lexicographic sign of (real, imaginary) pre-activation, which makes the same
formula the exact one-sided directional derivative along ``+v``.

:func:`verify_case` returns a dict of measurements and raises AssertionError
when a "correct" gradient is not correct, when a bug changes other blocks than
it declares, or when a bug is too small to be seen above finite-difference
rounding.
"""

from __future__ import annotations

import numpy as np

EPS = np.finfo(float).eps
#: Largest theta on which every component is checked one by one.
FULL_LIMIT = 3000


def _norm(x: np.ndarray) -> float:
    """2-norm without overflow for entries near 1e200."""
    big = float(np.max(np.abs(x))) if x.size else 0.0
    return 0.0 if big == 0.0 else big * float(np.linalg.norm(x / big))


def cs_directional(case, v: np.ndarray) -> float:
    """Exact (to rounding) one-sided derivative of the case's cost along +v."""
    z = case.theta.astype(np.complex128) + 1j * case.step * v
    return float(np.imag(case.reference(z)) / case.step)


def cs_components(case, sign: float = 1.0, indices=None) -> np.ndarray:
    """One-sided partial derivatives along ``sign * e_k`` (times sign: a slope)."""
    idx = range(case.theta.size) if indices is None else indices
    out = np.empty(len(idx))
    v = np.zeros(case.theta.size)
    for r, k in enumerate(idx):
        v[k] = sign
        out[r] = sign * cs_directional(case, v)
        v[k] = 0.0
    return out


def cost_value(case, theta=None) -> float:
    """The scalar cost fastgrad differentiates (per-example vectors reduced as declared)."""
    theta = case.theta if theta is None else theta
    value = case.cost(theta.copy(), *case.args)
    reduce = case.kwargs.get("per_example")
    if reduce == "mean":
        return float(np.mean(value))
    if reduce == "sum":
        return float(np.sum(value))
    return float(value)


def fd_noise(case, block_slice) -> float:
    """Rounding noise of central differences on one block, as a norm: one
    rounding of J on each side, step eps^(1/3) max(1, |theta_k|)."""
    J = cost_value(case)
    # The cost's own rounding: one ulp, or its measured distance from the accurate reference.
    noise = max(EPS * abs(J), 4 * abs(J - float(np.real(case.reference(case.theta.copy())))))
    h = np.cbrt(EPS) * np.maximum(1.0, np.abs(case.theta[block_slice]))
    return _norm(noise / h)


def verify_case(case, rng_seed: int = 0) -> dict:
    """Check a case against the complex-step reference; see the module docstring."""
    rng = np.random.default_rng(rng_seed)
    out = {}
    theta, true, layout = case.theta, case.true_grad, case.layout
    assert np.all(np.isfinite(theta)) and np.all(np.isfinite(case.grad)) and np.all(np.isfinite(true)), case.name

    # 1. The cost fastgrad sees is the reference function (Numba vs NumPy, sklearn vs re-implementation).
    J, J_ref = cost_value(case), float(np.real(case.reference(theta.copy())))
    out["cost"] = J
    assert np.isfinite(J), f"{case.name}: cost is {J}"
    # 1e-15 absolute: sklearn's log(1 - p) loses all relative precision of a loss near 1e-9.
    assert abs(J - J_ref) <= 1e-12 * abs(J) + 1e-15, f"{case.name}: cost {J!r} but reference {J_ref!r}"

    # 2. The true gradient is the derivative of the cost (one-sided at kinks).
    scale = float(np.max(np.abs(true))) + 1e-300
    if case.expected == "inconclusive":
        # Flat cost: J(theta +- h e_k) is the same float as J(theta) though the gradient is not zero.
        for k in rng.choice(theta.size, size=min(5, theta.size), replace=False):
            for s in (-1, 1):
                t = theta.copy()
                t[k] += s * np.cbrt(EPS) * max(1.0, abs(t[k]))
                assert cost_value(case, t) == J, f"{case.name}: cost is not flat"
        out["flat"] = True
    if theta.size <= FULL_LIMIT:
        right = cs_components(case, +1.0)
        left = cs_components(case, -1.0)
        lo, hi = np.minimum(left, right), np.maximum(left, right)
        outside = np.maximum(lo - true, true - hi)
        # Relative to the largest component, plus rounding of a gradient that is zero at a stationary point.
        tol = case.grad_rtol * scale + 1e-15 * min(abs(J), 1.0)
        out["true_grad_error"] = float(np.max(outside))
        assert np.all(outside <= tol), (
            f"{case.name}: 'correct' gradient off the complex-step reference by {np.max(outside):.3g} "
            f"(tolerance {tol:.3g}) at {layout.locate(int(np.argmax(outside)))}"
        )
        smooth = np.abs(right - left) <= 1e-9 * scale
        kinky = {layout.locate(int(k))[0] for k in np.flatnonzero(~smooth)}
        out["kink_blocks"] = sorted(kinky)
        assert kinky == set(case.kink_blocks), f"{case.name}: kinks in {sorted(kinky)}, declared {case.kink_blocks}"
    else:
        worst = 0.0
        for name in list(layout.names) + [None]:
            for _ in range(3):
                v = np.zeros(theta.size)
                sl = slice(None) if name is None else layout.slice(name)
                v[sl] = rng.normal(size=v[sl].size)
                ref, mine = cs_directional(case, v), float(true @ v)
                err = abs(ref - mine) / (_norm(true) * _norm(v) + 1e-300)
                worst = max(worst, err)
        out["true_grad_error"] = worst
        assert worst <= 1e-10, f"{case.name}: 'correct' gradient off the directional reference by {worst:.3g}"

    # 3. A bug changes exactly the declared blocks, by far more than rounding.
    changed = {n for n in layout.names if not np.array_equal(case.grad[layout.slice(n)], true[layout.slice(n)])}
    assert changed == set(case.corrupted), f"{case.name}: bug changes {sorted(changed)}, declares {sorted(case.corrupted)}"
    if changed:
        margins, rel = {}, {}
        for n in changed:
            sl = layout.slice(n)
            diff = _norm(case.grad[sl] - true[sl])
            rel[n] = float(diff / (_norm(true[sl]) + 1e-300))
            margins[n] = float(diff / (fd_noise(case, sl) + 1e-300))
            assert rel[n] >= (1e-6 if case.debatable else 1e-5) * (1 - 1e-9), f"{case.name}: {n} changed by {rel[n]:.3g} only"
        out["relative_change"], out["fd_margin"] = rel, margins
        if case.expected == "fail" and not case.debatable and case.component is None:
            # Every declared block must be visible above finite-difference rounding.
            assert min(margins.values()) >= 10, f"{case.name}: bug below FD rounding, margins {margins}"
        if case.kink_blocks and case.expected == "fail":
            # The wrong value must leave the interval of one-sided slopes: no kink can explain it.
            right, left = cs_components(case, +1.0), cs_components(case, -1.0)
            lo, hi = np.minimum(left, right), np.maximum(left, right)
            outside = np.maximum(lo - case.grad, case.grad - hi)
            for n in changed:
                sl = layout.slice(n)
                assert np.max(outside[sl]) >= 1e-3 * np.max(np.abs(true[sl])), f"{case.name}: a kink could explain {n}"
                out.setdefault("outside_kink_interval", {})[n] = int(np.count_nonzero(outside[sl] > 1e-9 * scale))
    if case.component is not None:
        block, position = case.component
        k = layout.slice(block).start + int(np.ravel_multi_index(position, layout.shapes[layout.names.index(block)]))
        assert np.flatnonzero(case.grad != true).tolist() == [k], f"{case.name}: not a single-component bug"
        # Against this component's own noise: the modelled rounding, or the error a float64 central
        # difference really makes here, whichever is larger.
        h = np.cbrt(EPS) * max(1.0, abs(theta[k]))
        plus, minus = theta.copy(), theta.copy()
        plus[k] += h
        minus[k] -= h
        fd = (cost_value(case, plus) - cost_value(case, minus)) / (plus[k] - minus[k])
        sigma = max(EPS * abs(J) / h, abs(fd - true[k]))
        out["fd_margin"] = {block: float(abs(case.grad[k] - true[k]) / sigma)}
        assert out["fd_margin"][block] >= 10, f"{case.name}: component bug below FD noise {out['fd_margin']}"
    return out
