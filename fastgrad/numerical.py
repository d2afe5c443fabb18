"""Numerical gradients: the engines' common driver and the generic engine.

An *engine* evaluates the cost at perturbed points for a list of components
(see ``docs/design.md``). This module drives any engine in chunks of
components (progress bar, Ctrl-C), turns what it returns into derivatives, and
packs them into an :class:`Estimate`: a partial result that merges with others,
so a check can be split over chunks, processes or machines.
"""

from __future__ import annotations

import inspect
import math
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numba
import numpy as np
from numba.extending import is_jitted

from fastgrad import _steps
from fastgrad._generic_kernels import kernel_for
from fastgrad._threads import single_threaded_blas
from fastgrad._validation import as_float_vector, as_indices, check_args, check_eps

__all__ = [
    "Estimate",
    "CheckInterrupted",
    "NonFiniteCostError",
    "numerical_gradient",
    "estimate_gradient",
    "estimate_with",
    "merge_estimates",
]

#: evaluate_chunk(indices, points) -> (values, kinks, status)
EvaluateChunk = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]

_CHUNK_SECONDS = 0.25
# A component is examined for a kink when its one-sided slopes differ by more
# than _KINK_SHARE x threshold of their size. A smooth cost's slopes differ by
# h |J''|, which exceeds threshold x |J'| almost everywhere: examining at that
# level doubled the cost of every check, while a kink's slope jump below 20 x
# threshold moves its component by at most 10 x threshold (relative), which a
# block of more than a few components absorbs (measured: no false failure at
# m = 3000 examples on ReLU networks, where one example's kink is a jump of 1/m).
_KINK_SHARE = 20.0
_PROGRESS_AFTER_SECONDS = 1.0


class NonFiniteCostError(FloatingPointError):
    """The cost returned NaN or infinity at a perturbed point."""


class CheckInterrupted(KeyboardInterrupt):
    """Ctrl-C during a check; ``partial`` holds the result for the components done.

    ``partial`` is an :class:`Estimate` when raised by the numerical engines and
    a :class:`~fastgrad.report.Report` when raised by ``gradcheck``.
    """

    def __init__(self, partial: object, message: str = "check interrupted") -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class Estimate:
    """Numerical derivatives for some components of theta: a partial result.

    Attributes
    ----------
    indices : numpy.ndarray
        int64 components covered.
    approx : numpy.ndarray
        The numerical derivative of each.
    steps : numpy.ndarray
        The step used for each.
    noise : numpy.ndarray
        Estimated absolute error of each derivative from rounding (and, for
        Richardson, truncation).
    kinks : numpy.ndarray
        bool: the cost is not differentiable at theta along this component (a
        ReLU kink is crossed, or one-sided slopes disagree).
    method : str
        ``"central"``, ``"forward"``, ``"richardson"`` or ``"complex"``.
    eps : float or None
        The explicit step, or None for the default per-component step.
    cost_value : float
        ``J(theta)``.
    """

    indices: np.ndarray
    approx: np.ndarray
    steps: np.ndarray
    noise: np.ndarray
    kinks: np.ndarray
    method: str
    eps: float | None
    cost_value: float
    error_estimate: np.ndarray | None = field(default=None)
    #: ``(n, 2)`` one-sided difference slopes ``[(J(theta+h)-J)/h, (J-J(theta-h))/h]``
    #: (NaN where not evaluated): the range a derivative at a kink may take.
    one_sided: np.ndarray | None = field(default=None)

    def __len__(self) -> int:
        return int(self.indices.size)

    def subset(self, mask: np.ndarray) -> "Estimate":
        """The estimate restricted to the components where ``mask`` is true."""
        error = None if self.error_estimate is None else self.error_estimate[mask]
        one_sided = None if self.one_sided is None else self.one_sided[mask]
        return replace(
            self,
            one_sided=one_sided,
            indices=self.indices[mask],
            approx=self.approx[mask],
            steps=self.steps[mask],
            noise=self.noise[mask],
            kinks=self.kinks[mask],
            error_estimate=error,
        )


def merge_estimates(estimates: Sequence[Estimate]) -> Estimate:
    """Merge partial results for disjoint sets of components into one.

    Raises
    ------
    ValueError
        If the estimates use different methods, steps or cost values, or
        overlap.
    """
    estimates = list(estimates)
    if not estimates:
        raise ValueError("merge_estimates needs at least one Estimate.")
    first = estimates[0]
    for other in estimates[1:]:
        if (other.method, other.eps) != (first.method, first.eps):
            raise ValueError(
                "Only estimates made with the same method and eps can be merged: "
                f"got {first.method!r}/eps={first.eps} and {other.method!r}/eps={other.eps}."
            )
        if other.cost_value != first.cost_value:
            raise ValueError(
                "Estimates were made at different points theta (J(theta) differs): "
                f"{first.cost_value!r} vs {other.cost_value!r}."
            )
    indices = np.concatenate([e.indices for e in estimates])
    order = np.argsort(indices, kind="stable")
    indices = indices[order]
    if indices.size > 1 and np.any(indices[1:] == indices[:-1]):
        duplicated = int(indices[1:][indices[1:] == indices[:-1]][0])
        raise ValueError(f"Estimates overlap: component {duplicated} appears more than once.")

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(e, name) for e in estimates])[order]

    has_error = all(e.error_estimate is not None for e in estimates)
    has_one_sided = all(e.one_sided is not None for e in estimates)
    return Estimate(
        indices=indices,
        approx=cat("approx"),
        steps=cat("steps"),
        noise=cat("noise"),
        kinks=cat("kinks"),
        method=first.method,
        eps=first.eps,
        cost_value=first.cost_value,
        error_estimate=cat("error_estimate") if has_error else None,
        one_sided=cat("one_sided") if has_one_sided else None,
    )


# --------------------------------------------------------------------------- #
# The driver
# --------------------------------------------------------------------------- #


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class _Progress:
    """A tqdm bar that appears only once a check is known to take a while."""

    def __init__(self, total: int, enabled: bool, description: str) -> None:
        self.total = total
        self.enabled = enabled
        self.description = description
        self.started = time.perf_counter()
        self.bar = None

    def update(self, done: int, step: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            elapsed = time.perf_counter() - self.started
            expected = elapsed / max(done, 1) * self.total
            if expected < _PROGRESS_AFTER_SECONDS:
                return
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total, initial=done, desc=self.description, unit="comp",
                unit_scale=True, dynamic_ncols=True, leave=False,
            )
        else:
            self.bar.update(step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _DeferredInterrupt:
    """Ctrl-C becomes a flag while compiled kernels run; the driver stops between chunks.

    Python raises a pending KeyboardInterrupt at the next Python code it runs.
    After a long kernel that is Numba's boxing of the kernel's results
    (``numba.core.serialize._numba_unpickle``), where the exception is turned
    into a SystemError or, for a kernel returning several arrays from a
    ``prange`` loop, a crash. Recording the signal instead and checking it
    between chunks stops the check at a safe point. Outside the main thread
    (where signal handlers cannot be set) Ctrl-C keeps its default behaviour.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> "_DeferredInterrupt":
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _run_chunks(
    evaluate_chunk: EvaluateChunk,
    indices: np.ndarray,
    points: np.ndarray,
    progress: bool | None,
    description: str,
    min_chunk: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Evaluate all components in chunks; returns values, kinks, status, n_done."""
    n = indices.size
    values = np.empty(points.shape, dtype=np.float64)
    kinks = np.zeros(n, dtype=np.uint8)
    status = np.zeros(n, dtype=np.uint8)
    bar = _Progress(n, _progress_enabled(progress), description)
    done = 0
    chunk = min(n, min_chunk)
    try:
        with _DeferredInterrupt() as interrupt:
            while done < n and not interrupt.requested:
                stop = min(n, done + chunk)
                started = time.perf_counter()
                v, kk, st = evaluate_chunk(indices[done:stop], points[done:stop])
                values[done:stop] = v
                kinks[done:stop] = kk
                status[done:stop] = st
                elapsed = time.perf_counter() - started
                bar.update(stop, stop - done)
                # Aim for chunks of about _CHUNK_SECONDS: responsive to Ctrl-C and
                # the progress bar, long enough to keep every thread busy.
                rate = (stop - done) / max(elapsed, 1e-9)
                chunk = int(min(max(min_chunk, rate * _CHUNK_SECONDS), 4 * chunk + min_chunk))
                done = stop
    except KeyboardInterrupt:
        bar.close()
        return values, kinks, status, done
    bar.close()
    return values, kinks, status, done


def estimate_with(
    evaluate_chunk: EvaluateChunk,
    theta: np.ndarray,
    indices: np.ndarray,
    *,
    eps: float | None,
    method: str,
    cost_value: float,
    values_are_differences: bool,
    engine_detects_kinks: bool = False,
    kink_threshold: float | None = None,
    suspect_grad: np.ndarray | None = None,
    progress: bool | None = None,
    min_chunk: int = 256,
    description: str = "gradcheck",
) -> Estimate:
    """Drive an engine over ``indices`` and turn its values into an Estimate.

    Parameters
    ----------
    evaluate_chunk : callable
        ``evaluate_chunk(indices_chunk, points_chunk) -> (values, kinks, status)``;
        ``values[r, j]`` is the cost with ``theta[k] = points[r, j]``, minus
        ``J(theta)`` when ``values_are_differences``, or for ``method="complex"``
        the imaginary part of the cost. ``status`` is non-zero for a non-finite
        cost.
    theta : numpy.ndarray
        Validated float64 theta (never modified).
    indices : numpy.ndarray
        Validated int64 component indices.
    eps, method, cost_value
        Step (None for the default rule), method name and ``J(theta)``.
    values_are_differences : bool
        See ``evaluate_chunk``.
    engine_detects_kinks : bool
        True when the engine's ``kinks`` output is exact (the dense engine);
        otherwise kinks are detected numerically here.
    kink_threshold : float, optional
        Components whose one-sided slopes differ by more than this fraction
        of their size are examined for a kink (default: the method's default
        pass threshold; ``gradcheck`` passes its own threshold).
    suspect_grad : numpy.ndarray, optional
        The analytic gradient of ``indices`` (``gradcheck`` passes it): with
        ``method="forward"``, components that disagree with it are examined
        for a kink, which one-sided differences cannot see otherwise.
    progress : bool or None
        Show a progress bar (None: only on a terminal, and only for checks
        that take more than about a second).

    Raises
    ------
    NonFiniteCostError
        If the cost was NaN or infinite at some perturbed point (after the
        loop, naming the components).
    CheckInterrupted
        On Ctrl-C, with the Estimate of the components done so far.
    """
    pts = _steps.perturbation_points(theta, indices, eps, method)
    values, engine_kinks, status, done = _run_chunks(
        evaluate_chunk, indices, pts.values, progress, description, min_chunk
    )
    total = indices.size
    interrupted = done < total
    if interrupted:
        indices, values, engine_kinks, status = indices[:done], values[:done], engine_kinks[:done], status[:done]
        pts = _steps.Points(pts.values[:done], pts.offsets[:done], pts.steps[:done], pts.nominal)

    status = status.astype(bool) | ~np.isfinite(values).all(axis=1)
    if status.any():
        bad = indices[status]
        shown = ", ".join(str(int(k)) for k in bad[:10]) + (" ..." if bad.size > 10 else "")
        raise NonFiniteCostError(
            f"The cost returned NaN or infinity at perturbed points of {bad.size} component(s): {shown}. "
            "Check the cost for log(0), division by zero or overflow near theta, or use a smaller eps."
        )

    if not values_are_differences and method != "complex":
        # Subtracting J(theta) is exact for nearby values (Sterbenz) and lets
        # one formula serve both kinds of engine.
        values = values - cost_value
    estimate = _derivatives(values, pts, indices, method, eps, cost_value)
    if kink_threshold is None:
        kink_threshold = _steps.default_threshold(method)
    if engine_detects_kinks:
        estimate = replace(estimate, kinks=engine_kinks.astype(bool))
    elif method == "forward" and done and not interrupted and suspect_grad is not None:
        estimate = _examine_forward_suspects(
            estimate, evaluate_chunk, theta, pts, values, values_are_differences,
            suspect_grad[:done], kink_threshold,
        )
    elif method in ("central", "richardson") and done and not interrupted:
        # (After Ctrl-C no further evaluations are made: the partial result
        # goes without numerical kink detection.)
        estimate = _detect_kinks(
            estimate, evaluate_chunk, theta, pts, values, values_are_differences, kink_threshold
        )
    if interrupted:
        raise CheckInterrupted(estimate, f"check interrupted after {done} of {total} components")
    return estimate


def _derivatives(
    values: np.ndarray, pts: _steps.Points, indices: np.ndarray, method: str, eps: float | None, cost_value: float
) -> Estimate:
    steps = pts.steps
    noise = _steps.rounding_noise(cost_value, steps, method)
    error = None
    if method == "complex":
        approx = values[:, 0] / steps
    elif method == "forward":
        approx = values[:, 0] / pts.offsets[:, 0]
    else:
        if pts.nominal:
            wide = (values[:, 0] - values[:, 1]) / (2.0 * steps)
        else:
            wide = (values[:, 0] - values[:, 1]) / (pts.offsets[:, 0] - pts.offsets[:, 1])
        approx = wide
        if method == "richardson":
            if pts.nominal:
                narrow = (values[:, 2] - values[:, 3]) / steps
            else:
                narrow = (values[:, 2] - values[:, 3]) / (pts.offsets[:, 2] - pts.offsets[:, 3])
            # Central differences err by c h^2 + O(h^4): eliminating c h^2
            # leaves a fourth-order estimate; |D(h) - D(h/2)| / 3 bounds the
            # error of D(h/2), hence (generously) of the extrapolation.
            approx = (4.0 * narrow - wide) / 3.0
            error = np.abs(wide - narrow) / 3.0
            noise = noise + error
    one_sided = None
    if method in ("central", "richardson"):
        one_sided = np.ascontiguousarray(values[:, :2] / pts.offsets[:, :2])
    elif method == "forward":
        one_sided = np.column_stack([approx, np.full(approx.size, np.nan)])
    return Estimate(
        indices=indices,
        approx=approx,
        steps=steps,
        noise=noise,
        kinks=np.zeros(indices.size, dtype=bool),
        method=method,
        eps=eps,
        cost_value=float(cost_value),
        error_estimate=error,
        one_sided=one_sided,
    )


def kink_test(
    plus: np.ndarray, minus: np.ndarray, half_plus: np.ndarray, half_minus: np.ndarray,
    offsets: np.ndarray, half_offsets: np.ndarray, noise: np.ndarray,
) -> np.ndarray:
    """True where cost differences at ``+-h`` and ``+-h/2`` reveal a kink.

    ``plus``/``minus`` are ``J(theta +- h) - J(theta)``, ``half_*`` the same at
    half the step, ``offsets`` and ``half_offsets`` the ``(n, 2)`` steps taken.
    A smooth cost's one-sided slopes differ by ``h J''``, so halving the step
    halves the gap; its central differences at ``h`` and ``h/2`` agree to
    ``h^2 J'''/8``, far below that gap. A kink at distance ``u h`` keeps the
    gap from halving, or (near ``u = 1/3``, where the gap does halve) moves the
    two central differences apart by ``gap u / (2 (1 - u))``.
    """
    gap = np.abs(plus / offsets[:, 0] - minus / offsets[:, 1])
    half_gap = np.abs(half_plus / half_offsets[:, 0] - half_minus / half_offsets[:, 1])
    expected = gap / 2.0
    halves = np.abs(half_gap - expected) <= 0.25 * expected + 4.0 * noise
    central = (plus - minus) / (offsets[:, 0] - offsets[:, 1])
    half_central = (half_plus - half_minus) / (half_offsets[:, 0] - half_offsets[:, 1])
    agree = np.abs(central - half_central) <= 0.1 * gap + 4.0 * noise
    return ~(halves & agree)


def _examine_forward_suspects(
    estimate: Estimate,
    evaluate_chunk: EvaluateChunk,
    theta: np.ndarray,
    pts: _steps.Points,
    differences: np.ndarray,
    values_are_differences: bool,
    grad: np.ndarray,
    kink_threshold: float,
) -> Estimate:
    """Forward differences see one side only: a kink exactly at theta looks smooth.

    Only a component that disagrees with the analytic gradient can be hurt by
    that, so those (beyond their threshold share and rounding) are evaluated
    at ``-h`` and ``+-h/2`` as well and put to :func:`kink_test`.
    """
    approx = estimate.approx
    suspects = np.flatnonzero(
        np.abs(grad - approx) > kink_threshold * (np.abs(grad) + np.abs(approx)) + estimate.noise
    )
    if suspects.size == 0:
        return estimate
    base = theta[estimate.indices[suspects]]
    h = pts.offsets[suspects, 0]
    points = base[:, None] + np.column_stack([-h, h / 2.0, -h / 2.0])
    offsets = points - base[:, None]
    values, _, status = evaluate_chunk(estimate.indices[suspects], np.ascontiguousarray(points))
    if not values_are_differences:
        values = values - estimate.cost_value
    kinked = kink_test(
        differences[suspects, 0], values[:, 0], values[:, 1], values[:, 2],
        np.column_stack([h, offsets[:, 0]]), offsets[:, 1:], estimate.noise[suspects],
    )
    kinked |= status.astype(bool)
    kinks = estimate.kinks.copy()
    kinks[suspects[kinked]] = True
    one_sided = estimate.one_sided.copy()
    one_sided[suspects, 1] = values[:, 0] / offsets[:, 0]
    return replace(estimate, kinks=kinks, one_sided=one_sided)


def _detect_kinks(
    estimate: Estimate,
    evaluate_chunk: EvaluateChunk,
    theta: np.ndarray,
    pts: _steps.Points,
    differences: np.ndarray,
    values_are_differences: bool,
    kink_threshold: float,
) -> Estimate:
    """Flag components whose one-sided slopes disagree in a way no smooth cost explains.

    A kink within the step moves the central difference by up to half the gap
    between the one-sided slopes. Every component where that could exceed its
    share of the threshold (``gap > _KINK_SHARE * kink_threshold * (|slope+| + |slope-|)``,
    beyond rounding) is re-evaluated at ``+-h/2`` and put to :func:`kink_test`.
    """
    forward_slope = differences[:, 0] / pts.offsets[:, 0]
    backward_slope = differences[:, 1] / pts.offsets[:, 1]
    gap = np.abs(forward_slope - backward_slope)
    scale = np.abs(forward_slope) + np.abs(backward_slope)
    candidates = np.flatnonzero((gap > _KINK_SHARE * kink_threshold * scale) & (gap > 8.0 * estimate.noise))
    if candidates.size == 0:
        return estimate
    base = theta[estimate.indices[candidates]]
    half_points = base[:, None] + pts.offsets[candidates, :2] / 2.0
    half_offsets = half_points - base[:, None]
    values, _, status = evaluate_chunk(estimate.indices[candidates], np.ascontiguousarray(half_points))
    if not values_are_differences:
        values = values - estimate.cost_value
    kinked = kink_test(
        differences[candidates, 0], differences[candidates, 1], values[:, 0], values[:, 1],
        pts.offsets[candidates, :2], half_offsets, estimate.noise[candidates],
    )
    kinks = estimate.kinks.copy()
    kinks[candidates[kinked | status.astype(bool)]] = True
    return replace(estimate, kinks=kinks)


# --------------------------------------------------------------------------- #
# The generic engine: any cost function
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Cost:
    """A validated cost function with its extra arguments."""

    function: Callable
    args: tuple
    compiled: bool

    def __call__(self, theta: np.ndarray) -> float:
        return self.function(theta, *self.args)


def _prepare_cost(cost: Callable, args: object) -> _Cost:
    if not callable(cost):
        raise TypeError(f"cost must be a callable J(theta, *args) -> float, got {type(cost).__name__}.")
    return _Cost(function=cost, args=check_args(args), compiled=is_jitted(cost))


def cost_at(cost: _Cost, theta: np.ndarray, what: str = "theta") -> float:
    """``J(theta)`` as a Python float, with a clear error when it is not a finite scalar."""
    try:
        value = cost(theta.copy())
    except Exception as exc:
        # Keep the user's own exception (its type and arguments); say where it happened.
        exc.add_note(f"fastgrad: raised by the cost at {what}")
        raise
    if isinstance(value, complex) or np.iscomplexobj(value):
        raise TypeError(f"The cost returned a complex value {value!r} at {what}; it must return a real scalar.")
    array = np.asarray(value)
    if array.size != 1:
        raise TypeError(
            f"The cost must return a scalar, but returned an array of shape {array.shape} at {what}: "
            "reduce it (for example with np.sum or np.mean)."
        )
    result = float(array.reshape(()))
    if not math.isfinite(result):
        raise ValueError(
            f"The cost is {result} at {what}; it must be finite there before it can be differentiated."
        )
    return result


def _numba_arg_types(args: tuple) -> tuple:
    try:
        return tuple(numba.typeof(a) for a in args)
    except Exception as exc:
        raise TypeError(f"args must be values Numba can pass to a compiled cost (arrays, numbers): {exc}") from None


def _compiled_evaluator(cost: _Cost, theta: np.ndarray, complex_step: bool) -> EvaluateChunk:
    parameters = inspect.signature(cost.function.py_func).parameters.values()
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        raise TypeError(
            "A compiled cost with *args or **kwargs cannot be passed to the compiled engine (Numba's "
            "function types need a fixed argument list): name its arguments, e.g. def cost(theta, X, y)."
        )
    arg_types = _numba_arg_types(cost.args)
    scalar = numba.types.complex128 if complex_step else numba.types.float64
    vector = numba.types.Array(scalar, 1, "C")
    try:
        cost.function.compile((vector, *arg_types))
        result = cost.function.overloads[(vector, *arg_types)].signature.return_type
    except numba.core.errors.TypingError as exc:
        what = "complex128" if complex_step else "float64"
        hint = " (method='complex' needs a cost written for complex input)" if complex_step else ""
        raise TypeError(f"The compiled cost cannot be called with a {what} theta and args{hint}: {exc}") from None
    if result != scalar:
        raise TypeError(
            f"The compiled cost returns {result}, but fastgrad's compiled engine needs {scalar}: "
            "make the cost return a float64 (for example float(...) or np.float64(...))."
        )
    kernel = kernel_for(arg_types, complex_step)
    base = theta.astype(np.complex128) if complex_step else theta
    n_chunks = max(1, numba.get_num_threads())

    def evaluate(indices: np.ndarray, points: np.ndarray):
        out = np.empty((indices.size, points.shape[1]), dtype=np.float64)
        chunks = min(indices.size, 4 * n_chunks)
        kernel(cost.function, base, indices, np.ascontiguousarray(points), cost.args, chunks, out)
        return out, np.zeros(indices.size, np.uint8), (~np.isfinite(out).all(axis=1)).astype(np.uint8)

    return evaluate


def _python_evaluator(cost: _Cost, theta: np.ndarray, complex_step: bool) -> EvaluateChunk:
    base = theta.astype(np.complex128) if complex_step else theta

    def evaluate(indices: np.ndarray, points: np.ndarray):
        local = base.copy()
        out = np.empty((indices.size, points.shape[1]), dtype=np.float64)
        status = np.zeros(indices.size, dtype=np.uint8)
        for r, k in enumerate(indices):
            for j in range(points.shape[1]):
                local[k] = points[r, j]
                try:
                    value = cost(local)
                    out[r, j] = np.imag(value) if complex_step else float(value)
                except (ArithmeticError, ValueError):
                    out[r, j] = np.nan
                if not math.isfinite(out[r, j]):
                    status[r] = 1
            local[k] = base[k]
        return out, np.zeros(indices.size, np.uint8), status

    return evaluate


@single_threaded_blas
def estimate_gradient(
    cost: Callable,
    theta: np.ndarray,
    *,
    eps: float | None = None,
    indices: object = None,
    args: Sequence = (),
    method: str = "central",
    progress: bool | None = None,
) -> Estimate:
    """Like :func:`numerical_gradient`, but returns the full :class:`Estimate`."""
    cost_fn = _prepare_cost(cost, args)
    theta = as_float_vector(theta, "theta")
    method = _steps.check_method(method)
    eps = None if eps is None else check_eps(eps)
    idx = np.arange(theta.size, dtype=np.int64) if indices is None else as_indices(indices, theta.size)
    cost_value = cost_at(cost_fn, theta)
    return _estimate_prepared(cost_fn, theta, idx, eps, method, cost_value, progress)


def _estimate_prepared(
    cost: _Cost, theta: np.ndarray, indices: np.ndarray, eps: float | None, method: str,
    cost_value: float, progress: bool | None, kink_threshold: float | None = None,
    suspect_grad: np.ndarray | None = None,
) -> Estimate:
    complex_step = method == "complex"
    if complex_step:
        _check_complex_cost(cost, theta)
    make = _compiled_evaluator if cost.compiled else _python_evaluator
    evaluate = make(cost, theta, complex_step)
    return estimate_with(
        evaluate, theta, indices, eps=eps, method=method, cost_value=cost_value,
        values_are_differences=False, kink_threshold=kink_threshold, suspect_grad=suspect_grad,
        progress=progress,
        min_chunk=256 if cost.compiled else 16,
    )


def _check_complex_cost(cost: _Cost, theta: np.ndarray) -> None:
    if cost.compiled:
        return  # checked when the compiled evaluator types the cost
    try:
        value = cost(theta.astype(np.complex128) + 0j)
    except Exception as exc:
        raise TypeError(
            f"method='complex' needs a cost that accepts complex theta, but it raised {type(exc).__name__}: {exc}"
        ) from None
    if not np.iscomplexobj(value):
        raise TypeError(
            "method='complex' needs a cost that keeps complex input complex (it returned a real value); "
            "avoid abs(), np.real and comparisons on complex numbers, or use method='central'."
        )


def numerical_gradient(
    cost: Callable,
    theta: np.ndarray,
    *,
    eps: float | None = None,
    indices: object = None,
    args: Sequence = (),
    method: str = "central",
    progress: bool | None = None,
) -> np.ndarray:
    """Numerical gradient of ``cost`` at ``theta`` by finite differences.

    For each component ``k`` (all, or those in ``indices``) the two-sided
    difference ``(J(theta + h e_k) - J(theta - h e_k)) / (2 h)``.

    Parameters
    ----------
    cost : callable
        ``cost(theta, *args) -> float``. A Numba-compiled function
        (``@numba.njit``) runs inside one compiled parallel kernel with no Python
        per component; any other callable runs in a plain loop with the same
        results.
    theta : array_like
        1-D float vector (float32 is promoted; never modified).
    eps : float, optional
        Explicit step: the course's formula with ``h = eps``. Default: a step
        per component chosen from the numerics (see ``fastgrad._steps``).
    indices : array_like of int, range, slice or bool mask, optional
        Components to differentiate (default: all).
    args : tuple, optional
        Extra arguments passed after theta: ``cost(theta, *args)``.
    method : {"central", "forward", "richardson", "complex"}
        Difference formula. ``"complex"`` (complex step) needs a cost that
        accepts complex theta.
    progress : bool, optional
        Progress bar (default: on a terminal, for checks longer than ~1 s).

    Returns
    -------
    numpy.ndarray
        The derivatives, one per requested component, in the order given.

    Raises
    ------
    NonFiniteCostError
        If the cost is NaN or infinite at a perturbed point.
    CheckInterrupted
        On Ctrl-C; its ``partial`` attribute holds the components done.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> fastgrad.numerical_gradient(lambda t: float(t @ t), np.array([1.0, 2.0]), eps=1e-4)
    array([2., 4.])
    """
    estimate = estimate_gradient(
        cost, theta, eps=eps, indices=indices, args=args, method=method, progress=progress
    )
    return estimate.approx
