"""``gradcheck``: compare an analytic gradient with finite differences of any cost.

Validate, build an engine, run the shared driver (``fastgrad._driver``):

* full (default): every component, or those in ``indices``;
* sampled (``sample=k``): ``k`` random components per block, seeded;
* directional (``mode="directional"``): ``grad . v`` against the difference
  quotient along a few random directions ``v``, a constant number of cost
  evaluations whatever the size of theta; when it fails, the same test
  restricted to each block names the failing blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from fastgrad import _differences as fd
from fastgrad._driver import run_check
from fastgrad._layout import Layout, _lookup, pack
from fastgrad._options import CheckOptions, resolve_options
from fastgrad._validation import as_float_vector
from fastgrad.distributed import check_client, generic_recipe, on_cluster
from fastgrad.engines import GenericEngine, prepare_cost
from fastgrad.report import Report

__all__ = ["gradcheck", "prepare_check", "prepare_grad", "check_layout"]

_GRAD_DTYPES = {np.dtype(np.float16): "float16", np.dtype(np.float32): "float32"}


def prepare_grad(grad: object, theta_size: int,
                 layout: Layout | None) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """Validate the analytic gradient: a vector, or a dict of blocks with a layout.

    Returns the float64 vector, the dtype the user gave (``"float16"``,
    ``"float32"`` or ``"float64"``; of a dict, its least precise block's), and
    each block's dtype where a dict's blocks differ (else empty): a gradient is
    judged against its own rounding, each block against its own.
    """
    if isinstance(grad, Mapping):
        if layout is None:
            raise ValueError(
                "grad is a dict of blocks, so gradcheck needs layout= to order them "
                "(theta, layout = fastgrad.pack(params))."
            )
        vector = pack(grad, layout)
        names = [_dtype_name(np.asarray(_lookup(grad, name)).dtype) for name in layout.names]
    else:
        vector = as_float_vector(grad, "grad")
        names = [_dtype_name(np.asarray(grad).dtype)]
    if vector.size != theta_size:
        raise ValueError(
            f"grad has {vector.size} components but theta has {theta_size}: pass the gradient of "
            "the same parameters, packed in the same order (fastgrad.pack(grads, layout=layout))."
        )
    # The least precise dtype among the blocks (the largest unit roundoff) is the check's; each block keeps its own.
    least = max(names, key=fd.GRAD_EPS.__getitem__)
    return vector, least, (tuple(names) if len(set(names)) > 1 else ())


def _dtype_name(dtype: np.dtype) -> str:
    """The rounding a gradient of this dtype carries (anything else is converted to float64 exactly)."""
    return _GRAD_DTYPES.get(np.dtype(dtype), "float64")


def check_layout(layout: object, size: int) -> Layout | None:
    """Validate an optional layout against the size of theta."""
    if layout is None:
        return None
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a fastgrad.Layout (from fastgrad.pack), got {type(layout).__name__}.")
    if layout.size != size:
        raise ValueError(f"layout describes {layout.size} components but theta has {size}.")
    return layout


def prepare_check(
    theta: np.ndarray, grad: object, layout: object, *, grad_optional: bool = False, **options: object,
) -> tuple[np.ndarray | None, Layout | None, CheckOptions]:
    """What every check validates once theta is a float64 vector: layout, gradient, options.

    Shared by :func:`gradcheck` and ``DenseNet.gradcheck``. Returns the
    analytic gradient as a float64 vector (None when ``grad`` is None and
    ``grad_optional``: the caller has a gradient of its own), the layout, and
    the resolved :class:`~fastgrad._options.CheckOptions` (``options`` are the
    keyword arguments of :func:`~fastgrad._options.resolve_options`).
    """
    layout = check_layout(layout, theta.size)
    if grad is None and grad_optional:
        grad_vector, grad_dtype, block_dtypes = None, "float64", ()
    else:
        grad_vector, grad_dtype, block_dtypes = prepare_grad(grad, theta.size, layout)
    return grad_vector, layout, resolve_options(theta.size, layout, grad_dtype=grad_dtype,
                                                block_dtypes=block_dtypes, **options)


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
    per_example: str | None = None,
    client: object = None,
) -> Report:
    """Check an analytic gradient against finite differences of ``cost``.

    Parameters
    ----------
    cost : callable
        ``cost(theta, *args) -> float``; Numba-compiled costs run in one
        compiled parallel kernel, any other callable in a plain loop.
    grad : array_like or dict
        The analytic gradient at theta: a vector, or a dict of blocks
        (``dW1``/``W1`` names) when ``layout`` is given. float32 and float16
        are accepted and judged against their own rounding (stated in the report).
    theta : array_like
        The point, a 1-D vector (see :func:`fastgrad.pack`).
    eps : float, optional
        Explicit step (course formula). Default: a step per component from the
        cost's measured noise, see ``fastgrad._differences``.
    threshold : float, optional
        Pass threshold on each block's relative difference. Default 1e-7, the
        course's; the measured numerical error is allowed for on top (the
        report's ``tolerance``).
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
    per_example : {None, "mean", "sum"}
        Declare that ``cost`` returns each example's loss and the cost is their
        mean or sum: at a kink, the analytic value is then judged against the
        sum of each example's range of one-sided slopes.
    client : distributed.Client, optional
        Evaluate the perturbed costs on this Dask cluster (needs
        ``fastgrad[distributed]``); the report is bit-identical to the
        in-process one. See ``docs/distributed.md``.

    Returns
    -------
    Report
        ``report.verdict`` (``"pass"``, ``"fail"`` or ``"inconclusive"``),
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
    cost_fn = prepare_cost(cost, args, per_example)
    theta = as_float_vector(theta, "theta")
    grad_vector, layout, opts = prepare_check(
        theta, grad, layout, method=method, mode=mode, eps=eps, threshold=threshold, indices=indices,
        sample=sample, seed=seed, directions=directions, progress=progress,
    )
    if client is not None:
        check_client(client)
    complex_step = opts.method == "complex"
    engine = GenericEngine(cost_fn, theta, complex_step=complex_step)
    with on_cluster(client, engine, lambda: generic_recipe(cost_fn, theta, complex_step), opts.progress) as engine:
        # A dict of blocks was packed into a new vector (fastgrad.pack): the check's own, kept by the report.
        return run_check(engine, grad_vector, opts, layout,
                         real_engine=(lambda: GenericEngine(cost_fn, theta)) if complex_step else None,
                         grad_owned=isinstance(grad, Mapping))
