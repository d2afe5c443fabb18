"""Numerical gradients, and the partial result every engine produces.

:func:`numerical_gradient` and :func:`estimate_gradient` run the shared driver
(``fastgrad._driver``) without an analytic gradient. An :class:`Estimate`
holds numerical derivatives for some components with their measured errors; estimates
for disjoint components merge (:func:`merge_estimates`), so a check can be
split over chunks, processes or machines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from fastgrad import _differences as fd
from fastgrad._compact import EveryComponentWhenNone, RoundingOfError
from fastgrad._driver import CheckInterrupted, NonFiniteCostError, estimate
from fastgrad._options import resolve_options
from fastgrad._validation import as_float_vector
from fastgrad.distributed import check_client, generic_recipe, on_cluster
from fastgrad.engines import GenericEngine, prepare_cost

__all__ = [
    "Estimate",
    "CheckInterrupted",
    "NonFiniteCostError",
    "numerical_gradient",
    "estimate_gradient",
    "merge_estimates",
]


@dataclass(frozen=True)
class Estimate:
    """Numerical derivatives for some components of theta: a partial result.

    Attributes
    ----------
    indices : numpy.ndarray
        int64 components covered (a full check stores none: each read makes
        ``arange(len(approx))``, read-only).
    approx : numpy.ndarray
        The numerical derivative of each (the best of its difference table).
    error : numpy.ndarray
        Its measured error bound (rounding from the cost's measured noise, plus
        truncation where the table estimated it).
    rounding : numpy.ndarray
        The rounding part of ``error`` (independent between components). Where
        it equals ``error`` but at a few components, only those are stored, and
        each read makes the array (read-only).
    steps : numpy.ndarray
        The base step of each component.
    state : numpy.ndarray
        int8 state of each component (``fastgrad._differences.STATE_NAMES``).
    low, high : numpy.ndarray
        The range of valid derivatives at a kink (NaN elsewhere).
    method : str
        ``"central"``, ``"forward"``, ``"richardson"`` or ``"complex"``.
    eps : float or None
        The explicit step, or None for measured steps.
    cost_value : float
        ``J(theta)``.
    noise_level : float
        The cost's measured rounding noise (standard deviation of one evaluation).
    """

    indices: np.ndarray = EveryComponentWhenNone()
    approx: np.ndarray
    error: np.ndarray
    rounding: np.ndarray = RoundingOfError()
    steps: np.ndarray
    state: np.ndarray
    low: np.ndarray
    high: np.ndarray
    method: str
    eps: float | None
    cost_value: float
    noise_level: float

    @classmethod
    def from_measured(cls, indices, measured, opts, engine, sigma) -> "Estimate":
        return cls(
            indices=None if indices is None else np.asarray(indices, dtype=np.int64), approx=measured.approx, error=measured.error,
            rounding=measured.rounding,
            steps=measured.steps, state=measured.state, low=measured.low, high=measured.high,
            method=opts.method, eps=opts.eps, cost_value=float(engine.cost_value), noise_level=float(sigma),
        )

    def __len__(self) -> int:
        return int(np.asarray(self.approx).size)

    @property
    def kinks(self) -> np.ndarray:
        """bool: the component sits at a kink (one-sided derivatives differ)."""
        return fd.in_states(self.state, (fd.KINK_AGREE, fd.KINK_WRONG))

    @property
    def noise(self) -> np.ndarray:
        """Alias of :attr:`error`."""
        return self.error

    def subset(self, mask: np.ndarray) -> "Estimate":
        """The estimate restricted to the components where ``mask`` is true (or to an index array)."""
        return replace(self, **{name: getattr(self, name)[mask] for name in _ARRAYS})


_ARRAYS = ("indices", "approx", "error", "rounding", "steps", "state", "low", "high")


def merge_estimates(estimates: Sequence[Estimate]) -> Estimate:
    """Merge partial results for disjoint sets of components into one.

    Raises
    ------
    ValueError
        If the estimates use different methods, steps or cost values, or overlap.
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
    arrays = {name: np.concatenate([getattr(e, name) for e in estimates])[order] for name in _ARRAYS}
    return replace(first, **arrays, noise_level=max(e.noise_level for e in estimates))


def estimate_gradient(
    cost: Callable, theta: np.ndarray, *, eps: float | None = None, indices: object = None, args: Sequence = (),
    method: str = "central", progress: bool | None = None, client: object = None,
) -> Estimate:
    """Like :func:`numerical_gradient`, but returns the full :class:`Estimate` (with errors)."""
    cost_fn = prepare_cost(cost, args)
    theta = as_float_vector(theta, "theta")
    opts = resolve_options(theta.size, None, method=method, eps=eps, indices=indices, progress=progress)
    if client is not None:
        check_client(client)
    complex_step = opts.method == "complex"
    engine = GenericEngine(cost_fn, theta, complex_step=complex_step)
    with on_cluster(client, engine, lambda: generic_recipe(cost_fn, theta, complex_step), opts.progress) as engine:
        return estimate(engine, opts)


def numerical_gradient(
    cost: Callable, theta: np.ndarray, *, eps: float | None = None, indices: object = None, args: Sequence = (),
    method: str = "central", progress: bool | None = None, client: object = None,
) -> np.ndarray:
    """Numerical gradient of ``cost`` at ``theta`` by finite differences.

    For each component ``k`` (all, or those in ``indices``) the two-sided
    difference ``(J(theta + h e_k) - J(theta - h e_k)) / (2 h)``, with ``h``
    chosen from the cost's measured noise (or ``eps``).

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
        Explicit step: the course's formula with ``h = eps``.
    indices : array_like of int, range, slice or bool mask, optional
        Components to differentiate (default: all).
    args : tuple, optional
        Extra arguments passed after theta: ``cost(theta, *args)``.
    method : {"central", "forward", "richardson", "complex"}
        Difference formula. ``"complex"`` (complex step) needs a cost that
        accepts complex theta.
    progress : bool, optional
        Progress bar (default: on a terminal, for checks longer than ~1 s).
    client : distributed.Client, optional
        Evaluate on this Dask cluster (needs ``fastgrad[distributed]``); the
        result is bit-identical to the in-process one.

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
    return estimate_gradient(
        cost, theta, eps=eps, indices=indices, args=args, method=method, progress=progress, client=client
    ).approx
