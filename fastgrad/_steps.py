"""Step sizes, rounding-noise estimates and the pass rule.

The rule, in full (the README summarises it)
-------------------------------------------
**Step.** With ``eps=None`` (the default) component ``k`` is perturbed by
``h_k = eps0 * max(1, |theta_k|)``, rounded so that ``theta_k + h_k`` is exactly
representable (``h_k := (theta_k + h_k) - theta_k``); the derivative divides by
the steps actually taken. ``eps0`` balances truncation against rounding for each
method: ``eps_mach**(1/3)`` (about 6.1e-6) for ``central``, ``eps_mach**(1/2)``
(1.5e-8) for ``forward``, ``eps_mach**(1/5)`` (7.4e-4) for ``richardson`` and
1e-20 for ``complex`` (nothing is subtracted, so the step can be tiny).

With an explicit ``eps`` the course's formula is used as written:
``(J(theta + eps e_k) - J(theta - eps e_k)) / (2 eps)``, so ``eps=1e-7``
reproduces the course's numbers digit for digit.

**Noise.** Each evaluation of ``J`` carries a rounding error of a few units in
the last place of ``|J|``; dividing a difference of two such values by the step
gives an error of about ``ROUNDING_FACTOR * eps_mach * |J| / h_k``. That is the
component's *noise*; Richardson adds its own truncation-error estimate.

**Pass rule.** A set of components S (all of theta, or one block) passes when::

    ||g_S - a_S||  <=  threshold * (||g_S|| + ||a_S||)  +  ||noise_S||

i.e. the course's relative difference must stay below ``threshold`` plus the
share of it that rounding alone can explain. A large loss (rounding grows with
``|J| / h``) therefore no longer fails a correct gradient, while the threshold
still catches real bugs. Components at a kink (non-differentiable at theta) are
left out and counted. The default threshold is 1e-6 (1e-5 for ``forward``,
whose truncation error is first order); float32 gradients get 1e-4 and an extra
per-component allowance of their own rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "METHODS",
    "DEFAULT_STEPS",
    "default_threshold",
    "Points",
    "perturbation_points",
]

EPS_MACH = float(np.finfo(np.float64).eps)
FLOAT32_EPS = float(np.finfo(np.float32).eps)

METHODS = ("central", "forward", "richardson", "complex")

#: Default relative step eps0 per method (see the module docstring).
DEFAULT_STEPS = {
    "central": EPS_MACH ** (1.0 / 3.0),
    "forward": EPS_MACH ** 0.5,
    "richardson": EPS_MACH ** 0.2,
    "complex": 1e-20,
}

#: Units of eps_mach * |J| assumed for the rounding error of one cost evaluation.
ROUNDING_FACTOR = 64.0

#: Rounding of the user's own float32 gradient, in units of float32 eps * |g|.
FLOAT32_ROUNDING_FACTOR = 64.0

_DEFAULT_THRESHOLDS = {"central": 1e-6, "forward": 1e-5, "richardson": 1e-6, "complex": 1e-6}
FLOAT32_THRESHOLD = 1e-4


def default_threshold(method: str, grad_is_float32: bool = False) -> float:
    """The default pass threshold for ``method`` (see the module docstring)."""
    if grad_is_float32:
        return max(FLOAT32_THRESHOLD, _DEFAULT_THRESHOLDS[method])
    return _DEFAULT_THRESHOLDS[method]


def check_method(method: object) -> str:
    """Validate a method name."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(map(repr, METHODS))}.")
    return str(method)


@dataclass(frozen=True)
class Points:
    """Where the cost is evaluated for each checked component.

    Attributes
    ----------
    values : numpy.ndarray
        ``(n, n_points)`` new values of the perturbed component (complex for the
        complex step). Columns: central ``[+h, -h]``; forward ``[+h]``;
        richardson ``[+h, -h, +h/2, -h/2]``; complex ``[theta + i h]``.
    offsets : numpy.ndarray
        ``(n, n_points)`` real step of each point from theta (the denominators).
    steps : numpy.ndarray
        ``(n,)`` the nominal step ``h`` of each component.
    nominal : bool
        True when an explicit ``eps`` asks for the course's formula
        (denominators ``2 eps``) rather than the steps actually taken.
    """

    values: np.ndarray
    offsets: np.ndarray
    steps: np.ndarray
    nominal: bool


_MULTIPLIERS = {
    "central": np.array([1.0, -1.0]),
    "forward": np.array([1.0]),
    "richardson": np.array([1.0, -1.0, 0.5, -0.5]),
}


def _columns(base: np.ndarray, h: np.ndarray, multipliers: np.ndarray) -> np.ndarray:
    """``base + multiplier * h`` for each multiplier, one column each (column-wise: faster than broadcasting)."""
    values = np.empty((base.size, multipliers.size))
    for j, multiplier in enumerate(multipliers):
        values[:, j] = base + multiplier * h
    return values


def perturbation_points(theta: np.ndarray, indices: np.ndarray, eps: float | None, method: str) -> Points:
    """Perturbed values of ``theta[indices]`` for ``method`` (see module docstring).

    Raises
    ------
    ValueError
        If an explicit ``eps`` is too small to change some component
        (``theta_k + eps == theta_k``); the message names the first one.
    """
    base = theta[indices]
    if method == "complex":
        h = DEFAULT_STEPS["complex"] * np.maximum(1.0, np.abs(base)) if eps is None else np.full(base.shape, eps)
        values = (base + 1j * h)[:, None]
        return Points(values=values, offsets=h[:, None].copy(), steps=h, nominal=eps is not None)

    multipliers = _MULTIPLIERS[method]
    if eps is None:
        h = DEFAULT_STEPS[method] * np.maximum(1.0, np.abs(base))
        # Round so that base + h is exact; the derivative then divides by the
        # step really taken, which removes the representation error of h.
        h = (base + h) - base
        values = _columns(base, h, multipliers)
        offsets = values - base[:, None]
        return Points(values=values, offsets=offsets, steps=h, nominal=False)

    h = np.full(base.shape, float(eps))
    values = _columns(base, h, multipliers)
    unchanged = np.flatnonzero((values == base[:, None]).any(axis=1))
    if unchanged.size:
        k = int(indices[unchanged[0]])
        raise ValueError(
            f"eps={eps:g} is too small to change component {k} (theta[{k}] = {theta[k]!r}): "
            f"theta[{k}] + eps rounds back to theta[{k}]. Use a larger eps, or eps=None for a step "
            "scaled to each component."
        )
    offsets = h[:, None] * multipliers[None, :]
    return Points(values=values, offsets=offsets, steps=h, nominal=True)


def rounding_noise(cost_scale: np.ndarray | float, steps: np.ndarray, method: str) -> np.ndarray:
    """Estimated rounding error of the derivative for each component."""
    scale = ROUNDING_FACTOR * EPS_MACH * np.abs(cost_scale)
    if method == "complex":
        # Nothing is subtracted: the error is relative to the derivative itself
        # and is accounted for by the threshold.
        return np.zeros_like(steps)
    if method == "forward":
        return 2.0 * scale / steps
    if method == "richardson":
        # (4 D(h/2) - D(h)) / 3 amplifies the rounding of D(h) by about 3.
        return 3.0 * scale / steps
    return scale / steps


def float32_noise(grad: np.ndarray) -> np.ndarray:
    """Allowance for the rounding of a user's float32 gradient, per component."""
    return FLOAT32_ROUNDING_FACTOR * FLOAT32_EPS * np.abs(grad)
