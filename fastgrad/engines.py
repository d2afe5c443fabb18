"""Engines: what evaluates the cost at perturbed points.

The check driver (``fastgrad._driver.run_check``) knows nothing of how a cost
is computed; it talks to an :class:`Engine`. An engine is built once per check
(any per-check set-up, such as the dense network's base forward pass, happens
then) and is asked for *chunks*: a list of components, each with the values it
takes in turn. A third engine (a distributed one, a GPU one) implements the
same protocol and needs no change to the driver.

Engines here:

* :class:`GenericEngine`: any cost ``J(theta, *args)``; a Numba-compiled cost
  runs in one compiled ``prange`` kernel, any other callable in a plain loop.
* ``fastgrad.dense.DenseEngine`` and ``DenseForwardEngine``: a dense network's
  structured kernel, and a full forward pass per point.
* :class:`DirectionalEngine`: "components" are random directions ``v_r``;
  evaluating direction ``r`` at ``t`` means ``J(theta + t v_r)``.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from fastgrad._validation import check_args

__all__ = ["EngineTraits", "Engine", "GenericEngine", "DirectionalEngine", "DenseEngine", "DenseForwardEngine",
           "NumpyDenseEngine", "prepare_cost", "Cost", "is_compiled", "compute_threads"]


def is_compiled(function: object) -> bool:
    """Whether ``function`` is a Numba dispatcher, without importing Numba for anything else.

    A Numba dispatcher's class (or a base of it) lives in a ``numba`` module,
    and Numba is then loaded already: a plain Python cost never makes this
    import Numba.
    """
    if "numba" not in sys.modules or not any(
        (getattr(c, "__module__", None) or "").startswith("numba") for c in type(function).__mro__
    ):
        return False
    from numba.extending import is_jitted

    return is_jitted(function)


def compute_threads() -> int:
    """Numba's thread count where Numba is loaded; else the CPUs (no compiled code has run)."""
    if "numba" in sys.modules:
        import numba

        return numba.get_num_threads()
    return os.cpu_count() or 1


@dataclass(frozen=True)
class EngineTraits:
    """What an engine evaluates and what it knows.

    Attributes
    ----------
    name : str
        Shown in reports and notes.
    returns_differences : bool
        ``evaluate`` returns ``J(point) - J(theta)`` (computed in a way that
        keeps their precision) rather than ``J(point)``.
    exact_kinks : bool
        Its ``kinks`` output says exactly whether a kink was crossed.
    first_chunk : int
        Components in the first chunk; later chunks are sized by time.
    per_example : bool
        :meth:`Engine.example_terms` returns the terms the cost sums, so kinks
        can be judged per example.
    complex_step : bool
        Points are complex (``theta_k + i h``) and values are imaginary parts.
    chunk_seconds : float or None
        Seconds of work per ``evaluate`` call that the driver aims at (None:
        the driver's default, a fraction of a second). A distributed engine
        asks for more: each call is a barrier across the cluster.
    chunk_growth : float
        The most a chunk grows from one call to the next (the rate measured on
        a short call can flatter or understate a longer one). A distributed
        engine lets it jump: its short calls cost a round trip each.
    deterministic : bool
        The same points give the same values, bit for bit, on every call: the
        driver may evaluate a point again instead of keeping its value (the
        first pair of every component is then not stored, only the few that
        need more steps are evaluated again). A user's cost may draw random
        numbers, so only fastgrad's own engines say so.
    """

    name: str
    returns_differences: bool = False
    exact_kinks: bool = False
    first_chunk: int = 8
    per_example: bool = False
    complex_step: bool = False
    chunk_seconds: float | None = None
    chunk_growth: float = 4.0
    deterministic: bool = False


@runtime_checkable
class Engine(Protocol):
    """The protocol every engine implements.

    ``theta`` is the float64 point, ``cost_value`` is ``J(theta)``.
    ``evaluate(indices, points)`` takes int64 ``indices`` (n,) and ``points``
    ``(n, p)`` and returns ``(values (n, p) float64, kinks (n,) uint8, status
    (n,) uint8)``: ``values[r, j]`` is the cost with ``theta[indices[r]] =
    points[r, j]`` (minus ``J(theta)`` when ``traits.returns_differences``;
    the imaginary part for a complex step), ``status`` non-zero where a value
    is not finite. ``costs(points)`` evaluates whole points ``(q, n_theta)``
    (used to measure the cost's noise and for directional checks);
    ``example_terms(point)`` returns the per-example terms of the cost (only
    when ``traits.per_example``).
    """

    traits: EngineTraits
    theta: np.ndarray
    cost_value: float

    def evaluate(self, indices: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def costs(self, points: np.ndarray) -> np.ndarray: ...

    def example_terms(self, point: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------- #
# A user's cost function
# --------------------------------------------------------------------------- #

PER_EXAMPLE = (None, "mean", "sum")


@dataclass(frozen=True)
class Cost:
    """A validated cost function with its extra arguments.

    ``per_example`` is None for a scalar cost, or ``"mean"``/``"sum"`` when the
    function returns each example's loss and the cost is their mean or sum.
    """

    function: Callable
    args: tuple
    compiled: bool
    per_example: str | None = None

    def __call__(self, theta: np.ndarray) -> float:
        value = self.function(theta, *self.args)
        if self.per_example is None:
            return value
        terms = np.asarray(value)
        return terms.mean() if self.per_example == "mean" else terms.sum()

    def terms(self, theta: np.ndarray) -> np.ndarray:
        terms = np.asarray(self.function(theta, *self.args), dtype=np.float64).ravel()
        return terms / terms.size if self.per_example == "mean" else terms


def prepare_cost(cost: object, args: object, per_example: object = None) -> Cost:
    """Validate a cost function and its arguments (before anything is evaluated)."""
    if not callable(cost):
        raise TypeError(f"cost must be a callable J(theta, *args) -> float, got {type(cost).__name__}.")
    if per_example not in PER_EXAMPLE:
        raise ValueError(
            f"per_example must be None, 'mean' or 'sum' (how the cost reduces the per-example losses "
            f"it returns), got {per_example!r}."
        )
    return Cost(function=cost, args=check_args(args), compiled=is_compiled(cost), per_example=per_example)


def cost_at(cost: Cost, theta: np.ndarray, what: str = "theta") -> float:
    """``J(theta)`` as a Python float, with a clear error when it is not a finite scalar."""
    working = theta.copy()
    try:
        value = cost(working)
    except Exception as exc:
        # Keep the user's own exception (its type and arguments); say where it happened.
        exc.add_note(f"fastgrad: raised by the cost at {what}")
        raise
    if not np.array_equal(working, theta):
        raise RuntimeError(
            f"The cost modified its theta argument at {what}; a cost must not write into theta: "
            "work on a copy (theta = theta.copy())."
        )
    return as_cost_value(value, what)


def as_cost_value(value: object, what: str) -> float:
    """A cost's return value as a finite float, or a clear error."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"The cost returned {value!r} at {what}; it must return a real number.")
    if isinstance(value, complex) or np.iscomplexobj(value):
        raise TypeError(f"The cost returned a complex value {value!r} at {what}; it must return a real scalar.")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"The cost returned a {type(value).__name__} at {what}; it must return a real number."
        ) from None
    if array.size != 1:
        raise TypeError(
            f"The cost must return a scalar, but returned an array of shape {array.shape} at {what}: "
            "reduce it (for example with np.sum or np.mean), or pass per_example='mean' or 'sum'."
        )
    result = float(array.reshape(()))
    if not math.isfinite(result):
        raise ValueError(
            f"The cost is {result} at {what}; it must be finite there before it can be differentiated."
        )
    return result


# --------------------------------------------------------------------------- #
# The generic engine
# --------------------------------------------------------------------------- #


class CostRaised(Exception):
    """Internal: the user's cost raised at a perturbed point (re-raised by the driver)."""


class GenericEngine:
    """Any cost function: compiled costs in one parallel kernel, others in a loop."""

    def __init__(self, cost: Cost, theta: np.ndarray, *, complex_step: bool = False) -> None:
        self.cost = cost
        self.theta = theta
        self.cost_value = cost_at(cost, theta)
        self._complex = complex_step
        self._kernel = None
        compiled = cost.compiled and cost.per_example is None
        if complex_step:
            _check_complex_cost(cost, theta)
        if compiled:
            self._kernel, self._arg_types = _compiled_kernel(cost, complex_step)
        # One frame fewer between the driver and the cost: evaluate is the loop itself.
        self.evaluate = self._evaluate_compiled if self._kernel is not None else self._evaluate_python
        self._scalar_cost = cost.function if cost.per_example is None else cost.__call__
        self._cost_args = cost.args if cost.per_example is None else ()
        # A cost evaluation costs at least a pass over theta (for the thread choice).
        self._work_per_point = 10.0 * theta.size
        self.traits = EngineTraits(
            name="compiled" if compiled else "python",
            first_chunk=max(2, 2 * compute_threads()) if compiled else 2,
            per_example=cost.per_example is not None,
            complex_step=complex_step,
        )

    def _evaluate_compiled(self, indices, points):
        import numba

        from fastgrad._threads import parallel_region, threads_for

        base = self.theta.astype(np.complex128) if self._complex else self.theta
        out = np.empty((indices.size, points.shape[1]), dtype=np.float64)
        n_chunks = min(indices.size, 4 * max(1, numba.get_num_threads()))
        try:
            with parallel_region(), threads_for(self._work_per_point * out.size):
                # The region is held here: the compiled kernel directly, not its locking call.
                kernel = getattr(self._kernel, "without_lock", self._kernel)
                kernel(self.cost.function, base, indices, np.ascontiguousarray(points), self.cost.args, n_chunks, out)
        except Exception:
            # An exception raised inside the compiled loop reaches Python as a
            # SystemError without the user's own: find the evaluation that
            # raises, calling the compiled cost from Python, and let it raise.
            self._evaluate_one_by_one(indices, points, base)
            raise
        return out, np.zeros(indices.size, np.uint8), (~np.isfinite(out).all(axis=1)).astype(np.uint8)

    def _evaluate_one_by_one(self, indices, points, base) -> None:
        local = base.copy()
        for r, k in enumerate(indices):
            for j in range(points.shape[1]):
                local[k] = points[r, j]
                try:
                    self.cost.function(local, *self.cost.args)
                except Exception as exc:
                    exc.add_note(f"fastgrad: raised by the cost with theta[{int(k)}] = {float(np.real(points[r, j]))!r}")
                    raise
            local[k] = base[k]

    def _evaluate_python(self, indices, points):
        base = self.theta.astype(np.complex128) if self._complex else self.theta
        local = base.copy()
        out = np.empty((indices.size, points.shape[1]), dtype=np.float64)
        for r, k in enumerate(indices):
            for j in range(points.shape[1]):
                local[k] = points[r, j]
                try:
                    value = self._scalar_cost(local, *self._cost_args)
                except Exception as exc:
                    exc.add_note(f"fastgrad: raised by the cost with theta[{int(k)}] = {float(np.real(points[r, j]))!r}")
                    raise
                # The cost must leave theta as it got it (checked on the spot: cheap next to a cost).
                moved = local[k] != points[r, j]
                local[k] = base[k]
                moved = moved or not np.array_equal(local, base)
                local[k] = points[r, j]
                if moved:
                    raise RuntimeError(
                        f"The cost modified its theta argument (while evaluating component {int(k)}); "
                        "a cost must not write into theta: work on a copy (theta = theta.copy())."
                    )
                out[r, j] = value if isinstance(value, float) and not self._complex else _part(value, self._complex, int(k))
            local[k] = base[k]
        status = (~np.isfinite(out).all(axis=1)).astype(np.uint8)
        return out, np.zeros(indices.size, np.uint8), status

    def costs(self, points: np.ndarray) -> np.ndarray:
        values = np.empty(points.shape[0])
        for q, point in enumerate(points):
            try:
                values[q] = _real(self.cost(np.ascontiguousarray(point)))
            except Exception as exc:
                moved = np.flatnonzero(point != self.theta)
                where = (f"theta[{int(moved[0])}] = {point[moved[0]]!r}" if moved.size == 1
                         else f"a point within {float(np.max(np.abs(point - self.theta))):.3g} of theta")
                exc.add_note(f"fastgrad: raised by the cost at {where} (measuring the cost's rounding noise)")
                raise
        return values

    def example_terms(self, point: np.ndarray) -> np.ndarray:
        return self.cost.terms(np.ascontiguousarray(point))


def _real(value) -> float:
    try:
        return float(np.real(value))
    except (TypeError, ValueError):
        return np.nan


def _part(value, complex_step: bool, k: int) -> float:
    if complex_step:
        return float(np.imag(value))
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"The cost returned a {type(value).__name__} when component {k} was perturbed; "
            "it must return a real number."
        ) from None
    if array.size != 1:
        raise TypeError(
            f"The cost returned an array of shape {array.shape} when component {k} was perturbed; "
            "it must return a scalar."
        )
    return float(array.reshape(()))


def _numba_arg_types(args: tuple) -> tuple:
    import numba

    try:
        return tuple(numba.typeof(a) for a in args)
    except Exception as exc:
        raise TypeError(f"args must be values Numba can pass to a compiled cost (arrays, numbers): {exc}") from None


def _compiled_kernel(cost: Cost, complex_step: bool):
    import numba

    from fastgrad._generic_kernels import kernel_for

    parameters = inspect.signature(cost.function.py_func).parameters.values()
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        raise TypeError(
            "A compiled cost with *args or **kwargs cannot be passed to the compiled engine (Numba's "
            "function types need a fixed argument list): name its arguments, e.g. def cost(theta, X, y)."
        )
    from fastgrad._validation import check_compiled_args

    arg_types = _numba_arg_types(check_compiled_args(cost.args))
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
    return kernel_for(arg_types, complex_step), arg_types


def _check_complex_cost(cost: Cost, theta: np.ndarray) -> None:
    if cost.compiled:
        return  # checked when the compiled kernel types the cost
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


# --------------------------------------------------------------------------- #
# Directions as components
# --------------------------------------------------------------------------- #


class DirectionalEngine:
    """Evaluates ``J(theta + t v_r)``: component ``r`` is direction ``v_r``.

    Wraps another engine's :meth:`costs`, so directional checks run through the
    same driver, tables and kink tests as component checks.
    """

    def __init__(self, engine: Engine, directions: np.ndarray) -> None:
        self.engine = engine
        self.directions = directions
        self.theta = np.zeros(directions.shape[0])
        self.cost_value = engine.cost_value
        self.traits = EngineTraits(name=f"directional ({engine.traits.name})", first_chunk=directions.shape[0])

    def evaluate(self, indices: np.ndarray, points: np.ndarray):
        base = self.engine.theta
        full = np.empty((indices.size * points.shape[1], base.size))
        for r, d in enumerate(indices):
            for j in range(points.shape[1]):
                full[r * points.shape[1] + j] = base + points[r, j] * self.directions[d]
        values = self.engine.costs(full).reshape(indices.size, points.shape[1])
        return values, np.zeros(indices.size, np.uint8), (~np.isfinite(values).all(axis=1)).astype(np.uint8)

    def costs(self, points: np.ndarray) -> np.ndarray:
        raise NotImplementedError("a directional engine evaluates directions only")

    def example_terms(self, point: np.ndarray) -> np.ndarray:
        raise NotImplementedError("a directional engine has no per-example terms")


# --------------------------------------------------------------------------- #
# Dense networks
# --------------------------------------------------------------------------- #


class _DenseCosts:
    """Whole-point evaluations shared by both dense engines.

    ``args`` is ``DenseNet._kernel_args``: ``(layer_sizes, activations, loss,
    l2, X, Y, dropout_scale)``, validated float64 arrays.
    """

    def __init__(self, args: tuple, theta: np.ndarray, cost_value: float, layout) -> None:
        self.args = args
        self.theta = theta
        self.cost_value = float(cost_value)
        self.layout = layout
        self._range = None

    def _cost(self, point: np.ndarray) -> float:
        from fastgrad._dense_kernels import forward_cost

        return forward_cost(point, *self.args)

    def _example_losses(self, point: np.ndarray) -> np.ndarray:
        from fastgrad._dense_kernels import per_example_losses

        layer_sizes, activations, loss, _, X, Y, dropout = self.args
        return per_example_losses(point, layer_sizes, activations, loss, X, Y, dropout)

    def costs(self, points: np.ndarray) -> np.ndarray:
        return np.array([self._cost(np.ascontiguousarray(p)) for p in points], dtype=np.float64)

    def example_terms(self, point: np.ndarray) -> np.ndarray:
        """Each example's share of the cost (loss / m), then the L2 penalty as one more term."""
        l2, X = self.args[3], self.args[4]
        point = np.ascontiguousarray(point)
        m = X.shape[1]
        terms = np.empty(m + 1)
        terms[:m] = self._example_losses(point) / m
        penalty = 0.0
        if l2 > 0.0:
            for name in self.layout.names:
                if name.startswith("W"):
                    block = point[self.layout.slice(name)]
                    penalty += float(block @ block)
            penalty *= l2 / (2.0 * m)
        terms[m] = penalty
        return terms

    def subgradient_range(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Each component's range of valid derivatives over every choice of slope at exact kinks."""
        from fastgrad._dense_subgradient import subgradient_range

        if self._range is None:
            found = subgradient_range(self.args, self.theta)
            self._range = (None,) if found is None else found
        if self._range[0] is None:
            return None
        return self._range[0][indices], self._range[1][indices]


class DenseEngine(_DenseCosts):
    """A dense network's structured kernel: only what a perturbation changes is recomputed.

    Kinks are exact (a ReLU pre-activation that changes sign is seen), and the
    values are cost differences computed without cancellation.
    """

    def __init__(self, args: tuple, theta: np.ndarray, cost_value: float, layout) -> None:
        from fastgrad import _dense_engine

        super().__init__(args, theta, cost_value, layout)
        self.traits = EngineTraits(name="dense", returns_differences=True, exact_kinks=True, first_chunk=256,
                                   per_example=True, deterministic=True)
        layer_sizes, activations, loss, l2, X, Y, dropout = args
        # Tables and the base forward pass, once per check. The arrays are
        # DenseNet's validated ones: the compiled set-up directly (prepare()
        # validates them for other callers).
        arrays = _dense_engine._prepare_arrays(layer_sizes, activations, loss, theta, X, dropout)
        self._base = _dense_engine._base_with_unit_losses(layer_sizes, activations, int(loss), float(l2), theta, Y,
                                                          dropout, arrays)

    def evaluate(self, indices: np.ndarray, points: np.ndarray):
        import numba

        from fastgrad import _dense_engine
        from fastgrad._threads import parallel_region, threads_for

        layer_sizes, _, _, _, X, _, _ = self.args
        # Each perturbed row changes at most its layer's downstream work, on m examples.
        work = indices.size * points.shape[1] * X.shape[1] * float(np.sum(layer_sizes[1:])) * 4.0
        with parallel_region(), threads_for(work):
            # The driver's rows and points fit the network by construction: the
            # compiled kernel directly (its Python wrapper validates for other callers).
            kernel = _dense_engine._cost_differences
            return getattr(kernel, "without_lock", kernel)(
                self._base, np.ascontiguousarray(indices, dtype=np.int64),
                np.ascontiguousarray(points, dtype=np.float64), np.int64(numba.get_num_threads()),
            )


class DenseForwardEngine(_DenseCosts):
    """A dense network, one full compiled forward pass per perturbed point (complex step too)."""

    def __init__(self, args: tuple, theta: np.ndarray, cost_value: float, layout, *, complex_step: bool = False):
        super().__init__(args, theta, cost_value, layout)
        # This engine returns costs, from which the driver subtracts J(theta):
        # J(theta) must come from the same compiled forward pass, bit for bit
        # (the caller's value is NumPy's, equal only to rounding).
        self.cost_value = float(self._cost(np.ascontiguousarray(theta)))
        self._complex = complex_step
        import numba

        self.traits = EngineTraits(name="dense forward", first_chunk=2 * max(1, numba.get_num_threads()),
                                   per_example=True, complex_step=complex_step, deterministic=True)

    def evaluate(self, indices: np.ndarray, points: np.ndarray):
        import numba

        from fastgrad import _dense_kernels
        from fastgrad._threads import parallel_region, threads_for

        layer_sizes, activations, loss, l2, X, Y, dropout = self.args

        # Every component costs the same full forward pass: one chunk per thread.
        n_chunks = max(1, min(indices.size, numba.get_num_threads()))
        forward = X.shape[1] * float(np.sum(layer_sizes[1:] * layer_sizes[:-1])) * 2.0
        with parallel_region(), threads_for(indices.size * points.shape[1] * forward):
            return _dense_kernels.perturbed_costs(
                layer_sizes, activations, loss, l2, self.theta, X, Y, dropout,
                np.ascontiguousarray(indices), np.ascontiguousarray(points), self._complex, n_chunks,
            )


class NumpyDenseEngine(_DenseCosts):
    """A small dense network in plain NumPy (``fastgrad._dense_numpy``): no compiled code at all.

    The dense engine's protocol and traits (cost differences, exact kinks,
    per-example terms); its values agree with the compiled engine's to rounding.
    """

    def __init__(self, args: tuple, theta: np.ndarray, cost_value: float, layout) -> None:
        super().__init__(args, theta, cost_value, layout)
        self.traits = EngineTraits(name="dense (NumPy)", returns_differences=True, exact_kinks=True, first_chunk=256,
                                   per_example=True, deterministic=True)

    def _cost(self, point: np.ndarray) -> float:
        from fastgrad._dense_numpy import forward_cost

        return forward_cost(self.args, point)

    def _example_losses(self, point: np.ndarray) -> np.ndarray:
        from fastgrad._dense_numpy import example_losses

        return example_losses(self.args, point)

    def evaluate(self, indices: np.ndarray, points: np.ndarray):
        from fastgrad._dense_numpy import perturbed_differences

        return perturbed_differences(self.args, self.theta, np.asarray(indices), np.asarray(points, dtype=np.float64))
