"""The result of a gradient check: a verdict, and where the errors are.

A :class:`Report` is an immutable dataclass built from an
:class:`~fastgrad.numerical.Estimate` (numerical derivatives for some
components) and the analytic gradient. Reports for disjoint sets of components
of the same check merge into one (:func:`merge_reports`), so a check can be
split across chunks, processes or machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from fastgrad import _steps
from fastgrad._layout import Layout
from fastgrad.numerical import Estimate, merge_estimates

__all__ = ["Report", "BlockResult", "Component", "TermResult", "DirectionalResult", "merge_reports"]


@dataclass(frozen=True)
class BlockResult:
    """The check of one named block (``W1``, ``b1``, ...) on its own.

    ``tolerance`` is the threshold plus the part of the difference that
    rounding alone explains; the block passes when ``difference <= tolerance``.
    """

    name: str
    shape: tuple[int, ...]
    checked: int
    difference: float
    tolerance: float
    passed: bool
    kinks: int
    #: Components at a kink whose grad lies outside the range of the one-sided
    #: slopes: suspicious, but not a failure on its own (with several examples
    #: on one kink, a back-prop convention such as relu'(0) = 0 may lie outside).
    kinks_outside: int = 0

    @property
    def conclusive(self) -> bool:
        """False when every checked component of the block sits at a kink."""
        return self.checked > self.kinks

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "checked": self.checked,
            "difference": self.difference,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "kinks": self.kinks,
            "kinks_outside": self.kinks_outside,
        }


@dataclass(frozen=True)
class Component:
    """One component of theta, with its analytic and numerical derivative.

    ``score`` is ``|grad - approx|`` divided by the component's own tolerance
    (its threshold share, scaled to its size and its block's, plus its
    estimated rounding noise): above 1 the component is suspect.
    """

    index: int
    block: str
    position: tuple[int, ...]
    grad: float
    approx: float
    abs_error: float
    score: float
    kink: bool

    @property
    def name(self) -> str:
        """``"W2[1, 3]"``: block and position, as a person would write it."""
        return f"{self.block}[{', '.join(map(str, self.position))}]"

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "block": self.block,
            "position": list(self.position),
            "grad": self.grad,
            "approx": self.approx,
            "abs_error": self.abs_error,
            "score": self.score,
            "kink": self.kink,
        }


@dataclass(frozen=True)
class TermResult:
    """The check of one term of the cost on its own (data term, L2 penalty)."""

    name: str
    difference: float
    tolerance: float
    passed: bool
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "difference": self.difference,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "note": self.note,
        }


@dataclass(frozen=True)
class DirectionalResult:
    """Directional derivatives ``grad . v`` against ``(J(theta + h v) - J(theta - h v)) / 2h``."""

    analytic: np.ndarray
    numerical: np.ndarray
    noise: np.ndarray
    blocks_checked: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "analytic": self.analytic.tolist(),
            "numerical": self.numerical.tolist(),
            "noise": self.noise.tolist(),
            "blocks_checked": list(self.blocks_checked),
        }


def _passes(error: float, scale: float, noise: float, threshold: float) -> tuple[float, float, bool]:
    """(difference, tolerance, passed) of the pass rule in ``fastgrad._steps``."""
    difference = error / scale if scale > 0.0 else 0.0
    tolerance = threshold + (noise / scale if scale > 0.0 else 0.0)
    return difference, tolerance, bool(error <= threshold * scale + noise)


def _rule(grad: np.ndarray, approx: np.ndarray, noise: np.ndarray, threshold: float) -> tuple[float, float, bool]:
    error = float(np.linalg.norm(grad - approx))
    scale = float(np.linalg.norm(grad)) + float(np.linalg.norm(approx))
    return _passes(error, scale, float(np.linalg.norm(noise)), threshold)


@dataclass(frozen=True)
class Report:
    """What a gradient check found.

    Attributes
    ----------
    passed : bool
        The verdict: every block and the whole pass the rule of
        ``fastgrad._steps`` (kinks excluded).
    difference : float
        ``||grad - approx|| / (||grad|| + ||approx||)`` over the checked
        differentiable components: the course's number.
    threshold : float
        The pass threshold used.
    tolerance : float
        ``threshold`` plus the share of the difference that rounding noise
        explains; the check passes when ``difference <= tolerance``.
    eps : float or None
        The explicit step, or None when each component got its own.
    grad, approx : numpy.ndarray
        Analytic and numerical derivatives of the checked components.
    indices : numpy.ndarray
        The checked components (int64, ascending).
    blocks : tuple of BlockResult
        Each block's own check, failing blocks first, then by difference.
    layout : Layout or None
        Names the blocks; None means one block called ``theta``.
    method, mode : str
        Difference formula and ``"full"``, ``"sampled"`` or ``"directional"``.
    """

    passed: bool
    difference: float
    threshold: float
    tolerance: float
    eps: float | None
    grad: np.ndarray
    approx: np.ndarray
    indices: np.ndarray
    blocks: tuple[BlockResult, ...]
    layout: Layout | None
    method: str
    mode: str
    size: int
    cost_value: float
    noise: np.ndarray = field(repr=False)
    raw_noise: np.ndarray = field(repr=False)
    steps: np.ndarray = field(repr=False)
    kinks: np.ndarray = field(repr=False)
    one_sided: np.ndarray | None = field(default=None, repr=False)
    grad_dtype: str = "float64"
    terms: tuple[TermResult, ...] = ()
    directional: DirectionalResult | None = None
    notes: tuple[str, ...] = ()
    #: True for the partial report of a check stopped by Ctrl-C.
    interrupted: bool = False

    # ------------------------------------------------------------------ #
    # Construction
    # ------------------------------------------------------------------ #
    @classmethod
    def from_estimate(
        cls,
        grad: np.ndarray,
        estimate: Estimate,
        *,
        threshold: float | None,
        layout: Layout | None,
        size: int | None = None,
        grad_dtype: str = "float64",
        mode: str = "full",
        terms: Sequence[TermResult] = (),
        notes: Sequence[str] = (),
        interrupted: bool = False,
    ) -> "Report":
        """Compare ``grad`` with the numerical derivatives in ``estimate``.

        Parameters
        ----------
        grad : numpy.ndarray
            The analytic gradient: the full vector (``size`` components) or
            only the estimate's components, in the estimate's order.
        estimate : Estimate
            Numerical derivatives (possibly merged from several engines).
        threshold : float or None
            None for the default of the method and gradient dtype.
        layout : Layout or None
            Block names; None treats theta as one block.
        size : int, optional
            Number of components of theta (default: ``layout.size`` or
            ``grad.size``).
        grad_dtype : str
            ``"float32"`` when the user's gradient was float32 (its rounding is
            then allowed for, and stated).
        """
        if size is None:
            size = layout.size if layout is not None else int(grad.size)
        grad_selected = grad[estimate.indices] if grad.size == size else grad
        if grad_selected.shape != estimate.approx.shape:
            raise ValueError(
                f"grad has {grad.size} components, which matches neither theta ({size}) "
                f"nor the {estimate.approx.size} checked components."
            )
        order = np.argsort(estimate.indices, kind="stable")
        if np.any(order != np.arange(order.size)):
            estimate = estimate.subset(order)
            grad_selected = grad_selected[order]
        is_float32 = grad_dtype == "float32"
        if threshold is None:
            threshold = _steps.default_threshold(estimate.method, is_float32)
        noise = estimate.noise
        notes = list(notes)
        if is_float32:
            noise = noise + _steps.float32_noise(grad_selected)
            notes.append(
                f"grad is float32: compared with the float64 numerical gradient at threshold {threshold:.3g}, "
                f"allowing {_steps.FLOAT32_ROUNDING_FACTOR:g} float32 ulps of rounding per component."
            )
        report = cls._build(
            grad_selected, estimate, noise, threshold, layout, size, grad_dtype, mode, tuple(terms), tuple(notes)
        )
        return replace(report, interrupted=True) if interrupted else report

    @classmethod
    def _build(cls, grad, estimate, noise, threshold, layout, size, grad_dtype, mode, terms, notes) -> "Report":
        smooth = ~estimate.kinks
        difference, tolerance, passed = _rule(
            grad[smooth], estimate.approx[smooth], noise[smooth], threshold
        )
        excess = kink_excess(grad, estimate.one_sided, estimate.kinks, noise, threshold)
        blocks = _block_results(grad, estimate, noise, threshold, layout, size, excess)
        all_passed = passed and all(b.passed for b in blocks) and all(t.passed for t in terms)
        return cls(
            passed=all_passed,
            difference=difference,
            threshold=float(threshold),
            tolerance=tolerance,
            eps=estimate.eps,
            grad=_readonly(grad),
            approx=_readonly(estimate.approx),
            indices=_readonly(estimate.indices),
            blocks=blocks,
            layout=layout,
            method=estimate.method,
            mode=mode,
            size=int(size),
            cost_value=estimate.cost_value,
            noise=_readonly(noise),
            raw_noise=_readonly(estimate.noise),
            steps=_readonly(estimate.steps),
            kinks=_readonly(estimate.kinks),
            one_sided=None if estimate.one_sided is None else _readonly(estimate.one_sided),
            grad_dtype=grad_dtype,
            terms=terms,
            notes=notes,
        )

    def estimate(self) -> Estimate:
        """The numerical side of this report as an :class:`Estimate`."""
        return Estimate(
            indices=self.indices, approx=self.approx, steps=self.steps, noise=self.raw_noise,
            kinks=self.kinks, method=self.method, eps=self.eps, cost_value=self.cost_value,
            one_sided=self.one_sided,
        )

    def errors(self) -> np.ndarray:
        """Each checked component's error: ``|grad - approx|``, or for a component
        at a kink, how far grad lies outside the range of its one-sided slopes."""
        error = np.abs(self.grad - self.approx)
        return np.where(
            self.kinks, kink_excess(self.grad, self.one_sided, self.kinks, self.noise, self.threshold), error
        )

    # ------------------------------------------------------------------ #
    # Questions people ask of a report
    # ------------------------------------------------------------------ #
    @property
    def n_kinks(self) -> int:
        """Components left out as non-differentiable at this point."""
        return int(np.count_nonzero(self.kinks))

    @property
    def checked(self) -> int:
        """Number of components checked."""
        return int(self.indices.size)

    @property
    def inconclusive_blocks(self) -> tuple[str, ...]:
        """Blocks that could not be checked: every component sits at a kink."""
        return tuple(b.name for b in self.blocks if not b.conclusive)

    @property
    def failing_blocks(self) -> tuple[str, ...]:
        """Names of the blocks that fail, worst first."""
        return tuple(b.name for b in self.blocks if not b.passed)

    def block(self, name: str) -> BlockResult:
        """The result of block ``name``."""
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"No checked block named {name!r}; blocks: {[b.name for b in self.blocks]}.")

    def scores(self) -> np.ndarray:
        """Each checked component's error relative to its own tolerance (>1 is suspect)."""
        return _component_scores(self.errors(), self.grad, self.approx, self.noise, self.threshold, self._block_ids())

    def worst(self, k: int = 5, *, include_kinks: bool = False) -> list[Component]:
        """The ``k`` components with the largest error (see :meth:`errors`).

        Parameters
        ----------
        k : int
            How many.
        include_kinks : bool
            Also list components at a kink (left out of the verdict).
        """
        if self.mode == "directional":
            return []
        error = self.errors()
        candidates = np.arange(error.size) if include_kinks else np.flatnonzero(~self.kinks)
        order = candidates[np.argsort(-error[candidates], kind="stable")][: max(int(k), 0)]
        scores = self.scores()
        result = []
        for r in order:
            index = int(self.indices[r])
            block, position = self._locate(index)
            result.append(
                Component(
                    index=index, block=block, position=position, grad=float(self.grad[r]),
                    approx=float(self.approx[r]), abs_error=float(error[r]), score=float(scores[r]),
                    kink=bool(self.kinks[r]),
                )
            )
        return result

    def _locate(self, index: int) -> tuple[str, tuple[int, ...]]:
        if self.layout is None:
            return "theta", (index,)
        return self.layout.locate(index)

    def _block_ids(self) -> np.ndarray:
        if self.layout is None:
            return np.zeros(self.indices.size, dtype=np.int64)
        return self.layout.block_of(self.indices)

    def to_dict(self, *, arrays: bool = False, worst: int = 10) -> dict:
        """A JSON-ready dict (``json.dumps(report.to_dict())`` works).

        Parameters
        ----------
        arrays : bool
            Include ``grad``, ``approx`` and ``indices`` in full (large for big
            networks).
        worst : int
            How many of the worst components to list.
        """
        result = {
            "passed": self.passed,
            "difference": self.difference,
            "threshold": self.threshold,
            "tolerance": self.tolerance,
            "eps": self.eps,
            "method": self.method,
            "mode": self.mode,
            "size": self.size,
            "checked": self.checked,
            "kinks": self.n_kinks,
            "kinks_outside": sum(b.kinks_outside for b in self.blocks),
            "cost": self.cost_value,
            "grad_dtype": self.grad_dtype,
            "blocks": [b.to_dict() for b in self.blocks],
            "failing_blocks": list(self.failing_blocks),
            "inconclusive_blocks": list(self.inconclusive_blocks),
            "worst": [c.to_dict() for c in self.worst(worst)],
            "terms": [t.to_dict() for t in self.terms],
            "notes": list(self.notes),
            "interrupted": self.interrupted,
        }
        if self.directional is not None:
            result["directional"] = self.directional.to_dict()
        if arrays:
            result["indices"] = self.indices.tolist()
            result["grad"] = self.grad.tolist()
            result["approx"] = self.approx.tolist()
        return result

    def __str__(self) -> str:
        from fastgrad._format import render_report

        return render_report(self, color=False)

    def __bool__(self) -> bool:
        return self.passed


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


def _component_scores(error, grad, approx, noise, threshold, block_ids) -> np.ndarray:
    # A component's share of its block's tolerance: its own size, or the block's
    # root-mean-square size when it is tiny (tiny components are all rounding).
    magnitude = np.abs(grad) + np.abs(approx)
    rms = np.zeros(block_ids.size)
    for b in np.unique(block_ids):
        members = block_ids == b
        rms[members] = np.sqrt(np.mean(magnitude[members] ** 2))
    tolerance = threshold * np.maximum(magnitude, rms) + noise
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tolerance > 0, error / tolerance, np.where(error > 0, np.inf, 0.0))


def kink_excess(grad, one_sided, kinks, noise, threshold) -> np.ndarray:
    """How far the grad of each component at a kink lies outside its one-sided slopes.

    At a kink any value between the left and the right slope is a valid
    (sub)derivative, whatever convention the back-prop uses (``relu'(0)`` = 0 or
    1). Each slope is a secant over one step, so the range is widened by the
    threshold share, the rounding noise, and a tenth of its own width (the
    curvature the secants include). Zero inside the range, for smooth
    components, and where the slopes are unknown.
    """
    excess = np.zeros(grad.size)
    if one_sided is None or not np.any(kinks):
        return excess
    rows = np.flatnonzero(kinks & ~np.all(np.isnan(one_sided), axis=1))
    if rows.size == 0:
        return excess
    lo = np.nanmin(one_sided[rows], axis=1)
    hi = np.nanmax(one_sided[rows], axis=1)
    tolerance = threshold * np.maximum(np.abs(lo), np.abs(hi)) + noise[rows] + 0.1 * (hi - lo)
    g = grad[rows]
    excess[rows] = np.maximum(0.0, np.maximum(lo - tolerance - g, g - hi - tolerance))
    return excess


def _block_results(grad, estimate, noise, threshold, layout, size, excess) -> tuple[BlockResult, ...]:
    if layout is None:
        names, shapes = ("theta",), ((size,),)
        block_ids = np.zeros(estimate.indices.size, dtype=np.int64)
    else:
        names, shapes = layout.names, layout.shapes
        block_ids = layout.block_of(estimate.indices)
    results = []
    for b, (name, shape) in enumerate(zip(names, shapes)):
        members = block_ids == b
        if not members.any():
            continue
        smooth = members & ~estimate.kinks
        difference, tolerance, passed = _rule(grad[smooth], estimate.approx[smooth], noise[smooth], threshold)
        outside = int(np.count_nonzero(excess[members]))
        # A block made only of kinks cannot fail (a correct back-prop at a kink
        # must not), but it has not been checked either: BlockResult.conclusive
        # and Report.inconclusive_blocks say so, and the summary names it.
        results.append(
            BlockResult(
                name=name, shape=tuple(shape), checked=int(members.sum()), difference=difference,
                tolerance=tolerance, passed=passed,
                kinks=int((members & estimate.kinks).sum()), kinks_outside=outside,
            )
        )
    # Failing blocks first, then by their own difference, largest first.
    results.sort(key=lambda r: (r.passed, -r.difference))
    return tuple(results)


def merge_reports(*reports: Report) -> Report:
    """Merge reports of the same check for disjoint sets of components.

    The verdict, differences and blocks are recomputed over the union, so the
    merged report is the report a single run over all those components gives.

    Raises
    ------
    ValueError
        If the reports come from different checks (threshold, layout, size,
        method, eps, gradient dtype, or mode differ) or overlap.
    """
    if len(reports) == 1 and not isinstance(reports[0], Report):
        reports = tuple(reports[0])  # merge_reports(list_of_reports)
    if not reports:
        raise ValueError("merge_reports needs at least one Report.")
    first = reports[0]
    for other in reports[1:]:
        for attribute in ("threshold", "layout", "size", "grad_dtype", "mode"):
            if getattr(other, attribute) != getattr(first, attribute):
                raise ValueError(
                    f"Reports from different checks cannot be merged: {attribute} is "
                    f"{getattr(first, attribute)!r} in one and {getattr(other, attribute)!r} in another."
                )
    if first.mode == "directional":
        raise ValueError("Directional reports summarise random directions and cannot be merged.")
    estimate = merge_estimates([r.estimate() for r in reports])
    order = np.argsort(np.concatenate([r.indices for r in reports]), kind="stable")
    grad = np.concatenate([r.grad for r in reports])[order]
    noise = np.concatenate([r.noise for r in reports])[order]
    notes = tuple(dict.fromkeys(n for r in reports for n in r.notes))
    return Report._build(
        grad, estimate, noise, first.threshold, first.layout, first.size, first.grad_dtype, first.mode,
        first.terms if len(reports) == 1 else (), notes,
    )
