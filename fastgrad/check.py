"""``gradcheck``: compare an analytic gradient with finite differences.

Three ways to check, all ending in a :class:`~fastgrad.report.Report`:

* full (default): every component, or those in ``indices``;
* sampled (``sample=k``): ``k`` random components per block, seeded;
* directional (``mode="directional"``): ``grad . v`` against
  ``(J(theta + h v) - J(theta - h v)) / 2h`` for a few random directions ``v``,
  a constant number of cost evaluations whatever the size of theta; when it
  fails, the same test restricted to each block names the failing blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from fastgrad import _steps
from fastgrad._layout import Layout, pack
from fastgrad._threads import single_threaded_blas
from fastgrad._validation import as_float_vector, as_indices, check_eps, check_threshold
from fastgrad.numerical import (
    CheckInterrupted,
    kink_test,
    _estimate_prepared,
    _prepare_cost,
    cost_at,
)
from fastgrad.report import BlockResult, DirectionalResult, Report, _rule

__all__ = ["gradcheck", "sample_indices", "directional_report", "prepare_grad", "MODES"]

MODES = ("full", "directional")

#: Draws of a random direction before one that crosses a kink is kept (and
#: left out of the verdict).
_DIRECTION_DRAWS = 4


def prepare_grad(grad: object, theta_size: int, layout: Layout | None) -> tuple[np.ndarray, str]:
    """Validate the analytic gradient: a vector, or a dict of blocks with a layout.

    Returns the float64 vector and the dtype the user gave (``"float32"`` or
    ``"float64"``), so float32 gradients are compared with tolerances that say so.
    """
    if isinstance(grad, Mapping):
        if layout is None:
            raise ValueError(
                "grad is a dict of blocks, so gradcheck needs layout= to order them "
                "(theta, layout = fastgrad.pack(params))."
            )
        dtypes = {np.asarray(v).dtype for v in grad.values()}
        vector = pack(grad, layout)
    else:
        dtypes = {np.asarray(grad).dtype}
        vector = as_float_vector(grad, "grad")
    if vector.size != theta_size:
        raise ValueError(
            f"grad has {vector.size} components but theta has {theta_size}: pass the gradient of "
            "the same parameters, packed in the same order (fastgrad.pack(grads, layout=layout))."
        )
    grad_dtype = "float32" if any(d == np.float32 for d in dtypes) else "float64"
    return vector, grad_dtype


def check_layout(layout: object, size: int) -> Layout | None:
    """Validate an optional layout against the size of theta."""
    if layout is None:
        return None
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a fastgrad.Layout (from fastgrad.pack), got {type(layout).__name__}.")
    if layout.size != size:
        raise ValueError(f"layout describes {layout.size} components but theta has {size}.")
    return layout


def sample_indices(size: int, layout: Layout | None, sample: object, seed: int) -> np.ndarray:
    """``sample`` random components from each block (all of a smaller block), seeded.

    Raises
    ------
    ValueError
        If ``sample`` is not a positive integer.
    """
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 1:
        raise ValueError(f"sample must be a positive number of components per block, got {sample!r}.")
    rng = np.random.default_rng(seed)
    starts, sizes = ((0,), (size,)) if layout is None else (layout.offsets, [layout.block_size(n) for n in layout.names])
    chosen = [
        start + np.sort(rng.choice(n, size=min(int(sample), n), replace=False))
        for start, n in zip(starts, sizes)
        if n > 0
    ]
    return np.concatenate(chosen).astype(np.int64)


def _check_mode(mode: object) -> str:
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}: choose 'full' (use sample=k for a sampled check) or 'directional'.")
    return str(mode)


def check_directions(directions: object) -> int:
    if isinstance(directions, bool) or not isinstance(directions, (int, np.integer)) or directions < 1:
        raise ValueError(f"directions must be a positive integer, got {directions!r}.")
    return int(directions)


def check_options(
    method: object, mode: object, eps: object, threshold: object, directions: object,
    sample: object, indices: object,
) -> tuple[str, str, float | None, float | None, int]:
    """Validate the options every gradient check shares (``gradcheck``, ``DenseNet.gradcheck``).

    Returns ``(method, mode, eps, threshold, directions)``; ``sample`` itself is
    checked where the components are drawn (:func:`sample_indices`).
    """
    method = _steps.check_method(method)
    mode = _check_mode(mode)
    eps = None if eps is None else check_eps(eps)
    threshold = None if threshold is None else check_threshold(threshold)
    directions = check_directions(directions)
    if sample is not None and indices is not None:
        raise ValueError("Give either indices= or sample=, not both.")
    if mode == "directional" and (sample is not None or indices is not None):
        raise ValueError("mode='directional' checks all of theta at once; drop indices= and sample=.")
    if mode == "directional" and method != "central":
        raise ValueError("mode='directional' uses central differences; drop method= or use mode='full'.")
    return method, mode, eps, threshold, directions


@single_threaded_blas
def gradcheck(
    cost: Callable,
    grad: np.ndarray | Mapping[str, np.ndarray],
    theta: np.ndarray,
    *,
    eps: float | None = None,
    threshold: float | None = None,
    layout: Layout | None = None,
    indices: object = None,
    args: Sequence = (),
    method: str = "central",
    sample: int | None = None,
    mode: str = "full",
    seed: int = 0,
    directions: int = 8,
    progress: bool | None = None,
) -> Report:
    """Check an analytic gradient against finite differences of ``cost``.

    Parameters
    ----------
    cost : callable
        ``cost(theta, *args) -> float``; Numba-compiled costs run in one
        compiled parallel kernel, any other callable in a plain loop.
    grad : array_like or dict
        The analytic gradient at theta: a vector, or a dict of blocks
        (``dW1``/``W1`` names) when ``layout`` is given. float32 is accepted and
        checked with float32 tolerances (stated in the report).
    theta : array_like
        The point, a 1-D vector (see :func:`fastgrad.pack`).
    eps : float, optional
        Explicit step (course formula). Default: a step per component from the
        numerics, see ``fastgrad._steps``.
    threshold : float, optional
        Pass threshold on the relative difference. Default 1e-6 (1e-5 for
        ``method="forward"``, 1e-4 for float32 gradients); rounding noise is
        allowed for on top (the report's ``tolerance``).
    layout : Layout, optional
        Names the blocks of theta, so the report checks and names each block.
    indices : array_like, optional
        Check only these components.
    args : tuple
        Extra arguments for the cost: ``cost(theta, *args)``.
    method : {"central", "forward", "richardson", "complex"}
        Difference formula.
    sample : int, optional
        Check ``sample`` random components per block (seeded by ``seed``).
    mode : {"full", "directional"}
        ``"directional"`` checks ``directions`` random directional derivatives.
    seed : int
        Seed for ``sample`` and ``mode="directional"``.
    directions : int
        Number of random directions of a directional check.
    progress : bool, optional
        Progress bar (default: on a terminal, for checks longer than ~1 s).

    Returns
    -------
    Report
        ``report.passed``, ``report.difference``, ``report.worst(k)``, ...

    Raises
    ------
    CheckInterrupted
        On Ctrl-C; ``exc.partial`` is the report of the components done.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> theta = np.array([1.0, -2.0, 3.0])
    >>> report = fastgrad.gradcheck(lambda t: float(t @ t), 2 * theta, theta)
    >>> report.passed
    True
    """
    cost_fn = _prepare_cost(cost, args)
    theta = as_float_vector(theta, "theta")
    layout = check_layout(layout, theta.size)
    grad_vector, grad_dtype = prepare_grad(grad, theta.size, layout)
    method, mode, eps, threshold, directions = check_options(
        method, mode, eps, threshold, directions, sample, indices
    )

    cost_value = cost_at(cost_fn, theta)
    if mode == "directional":
        return directional_report(
            cost_fn, grad_vector, theta, layout=layout, eps=eps, threshold=threshold,
            directions=directions, seed=seed, cost_value=cost_value, grad_dtype=grad_dtype,
        )

    if sample is not None:
        idx = sample_indices(theta.size, layout, sample, seed)
        report_mode = "sampled"
    else:
        idx = np.arange(theta.size, dtype=np.int64) if indices is None else as_indices(indices, theta.size)
        report_mode = "full"
    try:
        kink_threshold = threshold if threshold is not None else _steps.default_threshold(method, grad_dtype == "float32")
        estimate = _estimate_prepared(
            cost_fn, theta, idx, eps, method, cost_value, progress, kink_threshold, grad_vector[idx]
        )
    except CheckInterrupted as interrupted:
        partial = Report.from_estimate(
            grad_vector, interrupted.partial, threshold=threshold, layout=layout, size=theta.size,
            grad_dtype=grad_dtype, mode=report_mode,
            notes=(f"interrupted: only {len(interrupted.partial)} of {idx.size} components were checked",),
            interrupted=True,
        )
        raise CheckInterrupted(partial, str(interrupted)) from None
    return Report.from_estimate(
        grad_vector, estimate, threshold=threshold, layout=layout, size=theta.size,
        grad_dtype=grad_dtype, mode=report_mode,
    )


def directional_report(
    cost: Callable[[np.ndarray], float],
    grad: np.ndarray,
    theta: np.ndarray,
    *,
    layout: Layout | None,
    eps: float | None,
    threshold: float | None,
    directions: int,
    seed: int,
    cost_value: float,
    grad_dtype: str = "float64",
) -> Report:
    """Directional check: a constant number of cost evaluations for any size of theta.

    ``cost`` is called as ``cost(theta_vector)``; ``grad`` and ``theta`` are
    validated float64 vectors. Each random direction ``v`` has components
    ``z_k * max(1, |theta_k|) / ||z||`` with ``z_k`` standard normal, so every
    component moves in proportion to its own scale and the step along ``v`` is
    the one-dimensional default; the analytic side uses the perturbation
    actually applied, ``(theta_plus - theta_minus) / 2h``. A direction whose
    differences at ``h`` and ``h/2`` reveal a kink is drawn again (up to
    ``_DIRECTION_DRAWS`` times) and otherwise left out of the verdict.
    """
    if threshold is None:
        threshold = _steps.default_threshold("central", grad_dtype == "float32")
    step = _steps.DEFAULT_STEPS["central"] if eps is None else eps
    rng = np.random.default_rng(seed)
    scale = np.maximum(1.0, np.abs(theta))

    def evaluate(point: np.ndarray) -> float:
        value = float(cost(point)) - cost_value
        if not np.isfinite(value):
            raise ValueError("The cost is NaN or infinite at a point of a directional check; use a smaller eps.")
        return value

    offsets = np.array([[step, -step]])
    half_offsets = offsets / 2.0
    rounding = float(_steps.rounding_noise(cost_value, np.array([step]), "central")[0])

    def run(mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        analytic = np.empty(directions)
        numerical = np.empty(directions)
        kinks = np.zeros(directions, dtype=bool)
        for d in range(directions):
            # Moving all of theta at once may cross a ReLU kink; such a
            # direction says nothing about the gradient, so draw another.
            for _ in range(_DIRECTION_DRAWS):
                z = rng.standard_normal(theta.size)
                if mask is not None:
                    z[~mask] = 0.0
                # Unit length in scaled coordinates: each component moves by
                # about h / sqrt(n), so few pre-activations come near a kink.
                v = z * (scale / np.linalg.norm(z))
                plus, minus = theta + step * v, theta - step * v
                j_plus, j_minus = evaluate(plus), evaluate(minus)
                half_plus, half_minus = evaluate(theta + 0.5 * step * v), evaluate(theta - 0.5 * step * v)
                numerical[d] = (j_plus - j_minus) / (2.0 * step)
                analytic[d] = float(grad @ (plus - minus)) / (2.0 * step)
                kinks[d] = bool(
                    kink_test(
                        np.array([j_plus]), np.array([j_minus]), np.array([half_plus]), np.array([half_minus]),
                        offsets, half_offsets, np.array([rounding]),
                    )[0]
                )
                if not kinks[d]:
                    break
        noise = np.full(directions, rounding)
        if grad_dtype == "float32":
            noise += _steps.float32_noise(analytic)
        return analytic, numerical, noise, kinks

    analytic, numerical, noise, kinks = run(None)
    smooth = ~kinks
    difference, tolerance, passed = _rule(analytic[smooth], numerical[smooth], noise[smooth], threshold)
    blocks: list[BlockResult] = []
    if not passed:
        names = ("theta",) if layout is None else layout.names
        for i, name in enumerate(names):
            mask = np.zeros(theta.size, dtype=bool)
            mask[slice(0, theta.size) if layout is None else layout.slice(name)] = True
            if not mask.any():
                continue  # an empty block has no direction to move along
            if layout is None:
                # The whole of theta is the one block: the first run already says it all.
                a, n, z, k = analytic, numerical, noise, kinks
            else:
                a, n, z, k = run(mask)
            d, t, p = _rule(a[~k], n[~k], z[~k], threshold)
            shape = (theta.size,) if layout is None else layout.shapes[i]
            blocks.append(BlockResult(name, tuple(shape), int(mask.sum()), d, t, p, int(k.sum())))
        blocks.sort(key=lambda r: (r.passed, -r.difference))
    return Report(
        passed=passed,
        difference=difference,
        threshold=float(threshold),
        tolerance=tolerance,
        eps=eps,
        grad=analytic,
        approx=numerical,
        indices=np.arange(directions, dtype=np.int64),
        blocks=tuple(blocks),
        layout=layout,
        method="central",
        mode="directional",
        size=int(theta.size),
        cost_value=float(cost_value),
        noise=noise,
        raw_noise=noise,
        steps=np.full(directions, step),
        kinks=kinks,
        grad_dtype=grad_dtype,
        directional=DirectionalResult(analytic, numerical, noise, tuple(b.name for b in blocks)),
        notes=(f"{directions} random directions, 4 cost evaluations each (+-h, +-h/2 to recognise kinks)"
               + ("" if passed else ", then the same per block to locate the fault"),),
    )
