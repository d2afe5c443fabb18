"""The result of a gradient check: a verdict, and where the errors are.

A :class:`Report` is an immutable dataclass built from an
:class:`~fastgrad.numerical.Estimate` (numerical derivatives with measured
errors) and the analytic gradient. Its :attr:`Report.verdict` is one of

* ``"pass"``: every block was compared and agrees within the threshold plus the
  measured numerical error, and no component is wrong beyond its own error;
* ``"fail"``: some block or component disagrees beyond what numerical error
  explains (``failing_blocks`` names them);
* ``"inconclusive"``: nothing failed, but fastgrad could not tell: a block was
  not compared, a norm or tolerance is not finite, the measured error would let
  a zero or negated gradient pass, or a directional check found no clean
  direction. ``reasons`` says why and what to do.

Reports for disjoint sets of components of the same check merge into one
(:func:`merge_reports`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from fastgrad import _differences as fd
from fastgrad._compact import EveryComponentWhenNone, Patch, RoundingOfError, rounding_rows, stored
from fastgrad._layout import Layout
from fastgrad._options import DIRECTION_REDRAWS
from fastgrad.numerical import Estimate, merge_estimates

__all__ = ["Report", "BlockResult", "Component", "TermResult", "DirectionalResult", "merge_reports", "VERDICTS"]

VERDICTS = ("pass", "fail", "inconclusive")

_KINK_STATES = (fd.KINK_AGREE, fd.KINK_WRONG)
_WRONG_STATES = (fd.WRONG, fd.KINK_WRONG)


@dataclass(frozen=True)
class BlockResult:
    """The check of one named block (``W1``, ``b1``, ...) on its own.

    ``tolerance`` is the threshold plus the relative difference the measured
    numerical error alone allows (``allowance``).
    """

    name: str
    shape: tuple[int, ...]
    checked: int
    difference: float
    tolerance: float
    verdict: str
    kinks: int
    wrong: int = 0
    unresolved: int = 0
    reasons: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def conclusive(self) -> bool:
        return self.verdict != "inconclusive"

    def to_dict(self) -> dict:
        return {
            "name": self.name, "shape": list(self.shape), "checked": self.checked,
            "difference": self.difference, "tolerance": self.tolerance, "verdict": self.verdict,
            "passed": self.passed, "kinks": self.kinks, "wrong": self.wrong, "unresolved": self.unresolved,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Component:
    """One component of theta, with its analytic and numerical derivative.

    ``score`` is ``|grad - approx|`` over the component's own tolerance (its
    threshold share plus its measured error): above 1 the component is suspect.
    ``error`` is the measured numerical error of ``approx``.
    """

    index: int
    block: str
    position: tuple[int, ...]
    grad: float
    approx: float
    abs_error: float
    score: float
    kink: bool
    error: float = 0.0
    state: str = "agree"

    @property
    def name(self) -> str:
        """``"W2[1, 3]"``: block and position, as a person would write it."""
        return f"{self.block}[{', '.join(map(str, self.position))}]"

    def to_dict(self) -> dict:
        return {
            "index": self.index, "block": self.block, "position": list(self.position), "grad": self.grad,
            "approx": self.approx, "abs_error": self.abs_error, "score": self.score, "kink": self.kink,
            "error": self.error, "state": self.state,
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
        return {"name": self.name, "difference": self.difference, "tolerance": self.tolerance,
                "passed": self.passed, "note": self.note}


@dataclass(frozen=True)
class DirectionalResult:
    """Directional derivatives ``grad . v`` against the difference quotient along ``v``."""

    analytic: np.ndarray
    numerical: np.ndarray
    noise: np.ndarray
    blocks_checked: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"analytic": self.analytic.tolist(), "numerical": self.numerical.tolist(),
                "noise": self.noise.tolist(), "blocks_checked": list(self.blocks_checked)}


# --------------------------------------------------------------------------- #
# The rule
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Judgement:
    verdict: str
    difference: float
    tolerance: float
    reasons: tuple[str, ...]
    wrong: int
    unresolved: int
    kinks: int


def compared_values(grad, estimate: Estimate, grad_dtype: str, owned: bool = False, runs=None):
    """The numerical value each component is compared with, its error, its rounding, and the plain error.

    At a kink the comparison value is the point of the subgradient range nearest
    to grad (so ``|grad - value|`` is how far grad lies outside it). An
    undecided component (neither within its error nor clearly wrong) may be off
    by up to ``WRONG_FACTOR`` times its error without being called wrong: its
    error is widened that much, so that no correct gradient fails on it; the
    plain error is returned as well, so that no gradient passes only by it (the
    error array itself where no component is undecided: the same values).
    The value is ``estimate.approx`` itself (not a copy) where no component is
    at a kink. ``owned``: the estimate's error and rounding are not used
    elsewhere and may be overwritten. ``runs``: grad's dtype per run of rows
    (:func:`_dtype_runs`; None: ``grad_dtype`` for every row).
    """
    # Rows, not masks of every component (a full check's masks are its size each).
    state = estimate.state
    kink = fd.rows_where(state.size, lambda rows: fd.in_states(state[rows], _KINK_STATES))
    value = estimate.approx
    if kink.size:
        value = value.copy()
        value[kink] = np.clip(grad[kink], estimate.low[kink], estimate.high[kink])
    undecided = fd.rows_where(state.size, lambda rows: state[rows] == fd.UNDECIDED)
    widened = bool(undecided.size)
    # The plain error before any is widened (a new array only where one is).
    plain_error = np.array(estimate.error, dtype=np.float64) if widened else None
    # One array for both where every error is rounding (the driver's first pass):
    # rounding is then error's, copied before error is widened in place. Or
    # error's but at a few rows (a Patch): the widened rows join those.
    kept = stored(estimate, "rounding")
    same = kept is estimate.error
    patch = None
    if isinstance(kept, Patch):
        rows = np.union1d(kept.rows, undecided) if widened else kept.rows
        patch = Patch(rows, kept.over(estimate.error, rows))
        rounding = None
    else:
        rounding = np.array(kept, dtype=np.float64) if same and widened else None
    error = _own(estimate.error, owned)
    if widened:
        error[undecided] *= fd.WRONG_FACTOR
    if patch is None and rounding is None:
        rounding = error if same and not widened else _own(kept, owned)  # (error: rounding + grad's rounding's bits)
    # grad's own rounding added to each, in slices (no temporary of every component).
    if runs is None:
        runs = ((0, error.size, grad_dtype),)
    for first, last, dtype in runs:
        for start in range(first, last, fd.SLICE_ROWS):
            rows = slice(start, min(start + fd.SLICE_ROWS, last))
            grad_rounding = fd.to_grad_rounding(np.abs(grad[rows]), dtype)
            for array in {id(a): a for a in (error, rounding, plain_error) if a is not None}.values():
                array[rows] += grad_rounding
    if patch is not None:
        patch.values += _grad_rounding_of(grad, runs, patch.rows)
        rounding = patch
    return value, error, rounding, (error if plain_error is None else plain_error)


def _own(array: np.ndarray, owned: bool) -> np.ndarray:
    """``array`` itself when it is ours to overwrite, else a writable copy."""
    if owned and array.flags.writeable and array.flags.owndata:
        return array
    return np.array(array, dtype=np.float64)


def _row_bounds(n: int, indices: np.ndarray | None, layout: Layout | None) -> tuple[int, ...]:
    """Where each block's rows begin and end among ``n`` checked rows (``indices`` ascending; None: 0 .. n - 1)."""
    if layout is None:
        return (0, n)
    ends = np.minimum(layout._ends, n) if indices is None else np.searchsorted(indices, layout._ends, side="left")
    return (0, *ends.tolist())


def _dtype_runs(n: int, indices: np.ndarray | None, layout: Layout | None, grad_dtype: str,
                block_dtypes: tuple[str, ...]) -> tuple[tuple[int, int, str], ...]:
    """``(first, last, dtype)``: grad's dtype over each run of rows that shares one (a block's, or all)."""
    if not block_dtypes:
        return ((0, n, grad_dtype),)
    bounds = _row_bounds(n, indices, layout)
    return tuple((bounds[b], bounds[b + 1], dtype) for b, dtype in enumerate(block_dtypes) if bounds[b + 1] > bounds[b])


def _grad_rounding_of(grad: np.ndarray, runs, rows: np.ndarray | None = None) -> np.ndarray:
    """grad's rounding allowance at ``rows`` (ascending; None: every row), each in its run's dtype."""
    rows = np.arange(grad.size) if rows is None and len(runs) > 1 else rows
    allowance = np.abs(grad if rows is None else grad[rows])
    if rows is None:
        return fd.to_grad_rounding(allowance, runs[0][2])
    for first, last, dtype in runs:
        inside = slice(*np.searchsorted(rows, [first, last]))
        fd.to_grad_rounding(allowance[inside], dtype)
    return allowance


def judge(grad, value, error, state, threshold: float, low=None, high=None, reference_scale: float = 0.0,
          rounding=None, plain_error=None, grad_dtype: str = "float64") -> _Judgement:
    """The verdict of one set of components (a block, or all of theta).

    ``reference_scale`` (the whole check's ``||g|| + ||a||``) measures the error
    of a block whose gradient and numerical value are both exactly zero;
    ``rounding`` is the rounding part of ``error`` (see
    :func:`fastgrad._differences.block_error`; None counts every error in full;
    a :class:`~fastgrad._compact.Patch` over ``error``).
    ``plain_error`` is ``error`` before undecided components' errors were
    widened (see :func:`compared_values`): a set that passes only with the
    widening is inconclusive, never passed. A ``grad_dtype`` below float64
    that fails only within :data:`~fastgrad._differences.LOW_PRECISION_BAND`
    is inconclusive (its own accumulated rounding could explain it).
    """
    # Counts, and masks only where some component is unresolved: a full check's
    # masks are its size each. (A component at a kink is never unresolved.)
    unresolved = fd.count_states(state, (fd.UNRESOLVED,))
    compared = (state != fd.UNRESOLVED) if unresolved else slice(None)
    n_compared = state.size - unresolved
    wrong = fd.count_states(state, _WRONG_STATES)
    kinks = fd.count_states(state, _KINK_STATES)
    if unresolved:
        g, a, e = grad[compared], value[compared], error[compared]
        r = None if rounding is None else rounding_rows(rounding, error, compared)
    else:  # every component compared: the arrays themselves
        g, a, e, r = grad, value, error, rounding
    # Norms in slices: no temporary the size of the whole set (a full check of L).
    n = g.size
    scale = fd.norm_in_slices(n, lambda s: np.abs(g[s])) + fd.norm_in_slices(n, lambda s: np.abs(a[s]))
    gap = fd.norm_in_slices(n, lambda s: np.abs(g[s] - a[s]))
    spread = fd.norm_in_slices(n, lambda s: np.abs(e[s])) if rounding is None else fd.block_error_in_slices(e, r)
    if scale > 0.0:
        difference, allowance = gap / scale, spread / scale
    elif gap == 0.0:
        # Both exactly zero: nothing disagrees. Measured against the whole
        # gradient when there is one; an all-zero check needs no scale (a zero
        # gradient at a stationary point is checked in absolute terms).
        difference, allowance = 0.0, (spread / reference_scale if reference_scale > 0.0 else 0.0)
    elif reference_scale > 0.0:
        # Both exactly zero (units no example reaches): the error is measured
        # against the size of the whole gradient.
        difference, allowance = 0.0, spread / reference_scale
    else:
        difference, allowance = 0.0, (math.inf if spread > 0.0 else 0.0)
    tolerance = threshold + allowance
    if wrong or difference > tolerance:
        band = fd.LOW_PRECISION_BAND[grad_dtype]
        if band and _within_band(g, a, state[compared], difference, tolerance, scale, band):
            beyond = (f"{wrong} component(s) beyond their measured error" if wrong else
                      f"beyond the tolerance {tolerance:.3g}")
            reason = (f"grad is {grad_dtype} and differs from the numerical values by {difference:.3g} ({beyond}), "
                      f"within {band:g} of the block, which {grad_dtype} rounding "
                      "accumulated over a long computation (back-prop over many examples) can reach: a bug this "
                      "small cannot be told from it; check a float64 gradient (the parameters and data cast to "
                      "float64)")
            return _Judgement("inconclusive", difference, tolerance, (reason,), wrong, unresolved, kinks)
        return _Judgement("fail", difference, tolerance, (), wrong, unresolved, kinks)
    own_rounding = None
    if allowance > fd.MAX_ALLOWANCE and grad_dtype != "float64" and scale > 0.0:
        own = fd.norm_in_slices(n, lambda s: fd.to_grad_rounding(np.abs(g[s]), grad_dtype)) / scale
        own_rounding = (grad_dtype, own)
    every_kink = n_compared > 0 and kinks == n_compared
    reasons = _cannot_tell(difference, tolerance, allowance, n_compared, unresolved,
                           every_kink and low is not None and _all_ranges_hold_zero(state, low, high), own_rounding)
    if 0.0 < scale <= spread and spread <= threshold * reference_scale and allowance > fd.MAX_ALLOWANCE:
        # Both zero within an error far below the whole gradient: a parameter J
        # does not depend on (a bias before a batch norm) looks exactly like this,
        # and so does a real gradient too small to measure, which a sign flip
        # would leave looking the same. Say which it may be.
        reasons.append(
            f"grad and its numerical value are both zero within the measured error ({spread:.2g}, "
            f"{spread / reference_scale:.1g} of the whole gradient): if the cost does not depend on these "
            "parameters (a bias followed by a batch norm, a unit that is normalised away) the gradient is right; "
            "if it does, it is too small to check here"
        )
    if not reasons and plain_error is not None and scale > 0.0:
        undecided = fd.count_states(state, (fd.UNDECIDED,))
        if undecided:  # (the plain error differs only there: its norm is needed only then)
            plain = plain_error[compared]
            plain_spread = (fd.norm_in_slices(plain.size, lambda s: np.abs(plain[s])) if rounding is None
                            else fd.block_error_in_slices(plain, rounding_rows(rounding, error, compared)))
            if difference > threshold + plain_spread / scale:
                reasons.append(
                    f"{undecided} component(s) differ from their numerical values by more than the "
                    f"measured error, too little to call them wrong (less than {fd.WRONG_FACTOR:g} times it); "
                    f"the difference {difference:.3g} is within the tolerance only with their errors taken "
                    f"{fd.WRONG_FACTOR:g} times larger, so a small bug could pass: check at another point, or with "
                    "the cost computed more precisely"
                )
    verdict = "inconclusive" if reasons else "pass"
    return _Judgement(verdict, difference, tolerance, tuple(reasons), wrong, unresolved, kinks)


def _within_band(g, a, state, difference, tolerance, scale, band) -> bool:
    """Whether a failing set fails only within a low-precision gradient's accumulated rounding.

    The set's difference within ``band`` of the tolerance, and its wrong
    components' discrepancies together within ``band`` of the set's size (the
    rounding of a sum that cancels falls on a few components far above the
    set's average, never on a set's worth of it); no component wrong at a kink
    (a range is not a rounding question).
    """
    if not (math.isfinite(difference) and difference <= tolerance + band) or np.any(state == fd.KINK_WRONG):
        return False
    wrong = np.flatnonzero(state == fd.WRONG)
    return not wrong.size or bool(np.linalg.norm(g[wrong] - a[wrong]) <= band * scale)


def _all_ranges_hold_zero(state, low, high) -> bool:
    """Every component at a kink has zero within its range of valid derivatives."""
    kink = fd.in_states(state, _KINK_STATES)
    return bool(np.all((low[kink] <= 0.0) & (high[kink] >= 0.0)))


def _cannot_tell(difference, tolerance, allowance, n_compared, unresolved, zero_everywhere,
                 own_rounding=None) -> list[str]:
    """Why a set of components that did not fail cannot pass (empty: it passes).

    ``zero_everywhere``: every compared component sits at a kink whose range
    holds zero. ``own_rounding``: ``(dtype, allowance)``, the relative
    difference a low-precision grad's own rounding alone allows (None: float64).
    """
    reasons: list[str] = []
    if not n_compared:
        reasons.append("no component could be compared (every one unresolved): move theta a little and check again")
    elif not (math.isfinite(difference) and math.isfinite(tolerance)):
        reasons.append(
            "the gradients or their measured error are not finite (overflow): rescale the data or parameters, "
            "or use float64 throughout"
        )
    elif allowance > fd.MAX_ALLOWANCE:
        if own_rounding is not None and own_rounding[1] > 0.5 * allowance:
            dtype, own = own_rounding
            reasons.append(
                f"grad is {dtype} and its own rounding alone allows a relative difference of {own:.3g} (more than "
                f"{fd.MAX_ALLOWANCE:g}): its values are too close to {dtype}'s resolution (or below its normal "
                "range) to be checked this closely; check a float32 or float64 gradient"
            )
        elif allowance >= 1.0:
            reasons.append(
                f"the gradient is below the measured numerical error here (the error alone allows a relative "
                f"difference of {allowance:.3g}), so a zero or wrong gradient would pass too: check at a point "
                "where this gradient is larger, or with the cost computed more precisely"
            )
        else:
            reasons.append(
                f"the measured numerical error alone allows a relative difference of {allowance:.3g} "
                f"(more than {fd.MAX_ALLOWANCE:g}), so a wrong gradient could pass: the cost is noisy or flat "
                "here even at the best steps tried; compute it more precisely (float64 throughout), or check "
                "at a point where the gradient is larger"
            )
    if unresolved:
        reasons.append(
            f"{unresolved} component(s) could not be resolved (a kink too close to theta, a cost that is "
            "piecewise constant at small steps, such as one that rounds theta or computes in float16, a cost "
            "that varies on a scale finer than the steps, such as a fine ripple, where the steps disagree, or a "
            "cost that failed at the steps tried): move theta a little, or compute the cost in float64, and check "
            "again"
        )
    if n_compared and zero_everywhere:
        reasons.append(
            "every component sits at a kink where zero is also a valid derivative, so a missing gradient "
            "could not be told apart: check again at another point"
        )
    return reasons


def _blocks(grad, value, error, rounding, plain_error, estimate: Estimate, threshold, layout, size,
            reference, grad_dtype: str = "float64", block_dtypes: tuple[str, ...] = ()) -> tuple[BlockResult, ...]:
    # The indices are ascending (Report.build sorts them): each block is one run of them.
    bounds = _row_bounds(estimate.approx.size, stored(estimate, "indices"), layout)
    names, shapes = (("theta",), ((size,),)) if layout is None else (layout.names, layout.shapes)
    dtypes = block_dtypes or (grad_dtype,) * len(names)
    results = []
    for b, (name, shape) in enumerate(zip(names, shapes)):
        members = slice(bounds[b], bounds[b + 1])
        if bounds[b + 1] <= bounds[b]:
            continue
        j = judge(grad[members], value[members], error[members], estimate.state[members], threshold,
                  estimate.low[members], estimate.high[members], reference,
                  rounding.sub(members) if isinstance(rounding, Patch) else rounding[members], plain_error[members],
                  dtypes[b])
        results.append(BlockResult(name, tuple(shape), bounds[b + 1] - bounds[b], j.difference, j.tolerance,
                                   j.verdict, j.kinks, j.wrong, j.unresolved, j.reasons))
    order = {"fail": 0, "inconclusive": 1, "pass": 2}
    results.sort(key=lambda r: (order[r.verdict], -r.difference if math.isfinite(r.difference) else -math.inf))
    return tuple(results)


# --------------------------------------------------------------------------- #
# The report
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Report:
    """What a gradient check found.

    Attributes
    ----------
    verdict : str
        ``"pass"``, ``"fail"`` or ``"inconclusive"`` (see the module docstring).
    difference : float
        ``||grad - approx|| / (||grad|| + ||approx||)`` over the compared
        components: the course's number (at a kink, ``approx`` is the nearest
        valid derivative).
    threshold : float
        The pass threshold (default 1e-7).
    tolerance : float
        ``threshold`` plus the relative difference the measured numerical
        error allows; a block fails when its difference exceeds its tolerance.
    reasons : tuple of str
        Why the verdict is inconclusive, and what to do.
    eps : float or None
        The explicit step, or None when steps were measured per component.
    grad, approx, error : numpy.ndarray
        Analytic and numerical derivatives of the checked components, and the
        measured error of each numerical value.
    indices : numpy.ndarray
        The checked components (int64, ascending). A full check stores none:
        each read makes ``arange(size)`` (read-only).
    blocks : tuple of BlockResult
        Each block's own check: failing first, then inconclusive, then passing.
    noise_level : float
        Measured rounding noise of the cost (standard deviation of one evaluation).
    grad_dtype : str
        The dtype of the gradient given (of a dict, its least precise block's):
        it is judged against its own rounding.
    block_dtypes : tuple of str
        Each block's gradient dtype where a dict's blocks came in different
        dtypes (each block judged against its own); empty otherwise.
    """

    verdict: str
    difference: float
    threshold: float
    tolerance: float
    eps: float | None
    grad: np.ndarray
    approx: np.ndarray
    indices: np.ndarray = EveryComponentWhenNone()
    blocks: tuple[BlockResult, ...]
    layout: Layout | None
    method: str
    mode: str
    size: int
    cost_value: float
    error: np.ndarray = field(repr=False)
    rounding: np.ndarray = RoundingOfError()
    steps: np.ndarray = field(repr=False)
    state: np.ndarray = field(repr=False)
    low: np.ndarray = field(repr=False)
    high: np.ndarray = field(repr=False)
    noise_level: float = 0.0
    grad_dtype: str = "float64"
    block_dtypes: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    terms: tuple[TermResult, ...] = ()
    directional: DirectionalResult | None = None
    notes: tuple[str, ...] = ()
    interrupted: bool = False

    # ------------------------------------------------------------------ #
    # Construction
    # ------------------------------------------------------------------ #
    @classmethod
    def build(
        cls, grad: np.ndarray, estimate: Estimate, threshold: float, layout: Layout | None, size: int, *,
        grad_dtype: str = "float64", block_dtypes: tuple[str, ...] = (), mode: str = "full",
        terms: Sequence[TermResult] = (), notes: Sequence[str] = (), interrupted: bool = False, owned: bool = False,
    ) -> "Report":
        """Compare ``grad`` (the estimate's components, in its order) with ``estimate``.

        ``owned`` (the driver's own call): ``grad`` and the estimate's arrays
        other than ``indices`` are used nowhere else, so the report keeps them
        (read-only) or overwrites them instead of copying.
        """
        terms, notes = tuple(terms), tuple(notes)
        indices = stored(estimate, "indices")  # None: every component, in order
        if indices is not None and indices.size > 1 and not bool(np.all(indices[1:] > indices[:-1])):
            order = np.argsort(indices, kind="stable")
            estimate = estimate.subset(order)
            grad = grad[order]
            owned = True  # fresh copies
        runs = _dtype_runs(grad.size, stored(estimate, "indices"), layout, grad_dtype, block_dtypes)
        value, error, rounding, plain_error = compared_values(grad, estimate, grad_dtype, owned, runs)
        if (isinstance(rounding, np.ndarray) and rounding is not error
                and np.array_equal(rounding.view(np.int64), error.view(np.int64))):
            rounding = error  # the same values (every error is rounding): one array
        whole = judge(grad, value, error, estimate.state, threshold, estimate.low, estimate.high, rounding=rounding,
                      plain_error=plain_error, grad_dtype=grad_dtype)
        reference = (fd.norm_in_slices(grad.size, lambda s: np.abs(grad[s]))
                     + fd.norm_in_slices(value.size, lambda s: np.abs(value[s])))
        blocks = _blocks(grad, value, error, rounding, plain_error, estimate, threshold, layout, size, reference,
                         grad_dtype, block_dtypes)
        # The blocks' reasons, named; the whole check's only where no block gave one.
        reasons = [f"{b.name}: {r}" for b in blocks for r in b.reasons]
        if not reasons:
            reasons = list(whole.reasons)
        if block_dtypes:
            lower = ", ".join(f"{name} {dtype}" for name, dtype in zip(layout.names, block_dtypes) if dtype != "float64")
            notes = notes + (f"grad's blocks came in different dtypes ({lower}; the rest float64): each block "
                             f"compared allowing {fd.GRAD_ROUNDING_UNITS:g} ulps of its own dtype per component",)
        elif grad_dtype != "float64":
            notes = notes + (f"grad is {grad_dtype}: compared allowing {fd.GRAD_ROUNDING_UNITS:g} {grad_dtype} ulps "
                             "of its own rounding per component",)
        failed = whole.verdict == "fail" or any(b.verdict == "fail" for b in blocks) or any(not t.passed for t in terms)
        dtype_of = dict(zip(layout.names, block_dtypes)) if block_dtypes else {}
        low_precision = [b.name for b in blocks if b.verdict == "fail" and dtype_of.get(b.name, grad_dtype) != "float64"]
        if low_precision:
            notes = notes + (
                f"{', '.join(low_precision)} failed in a low-precision gradient: beyond the rounding such a "
                "gradient accumulates over a long computation (1e-4 of a block in float32), except where its "
                "terms cancel (a sum of large terms near an optimum); if the same back-prop in float64 passes, "
                "the code is right and the failure is its precision",)
        if failed:
            verdict = "fail"
        elif interrupted:
            verdict = "inconclusive"
            reasons.append("interrupted before every component was checked")
        elif whole.verdict == "inconclusive" or any(b.verdict == "inconclusive" for b in blocks):
            verdict = "inconclusive"
        else:
            verdict = "pass"
        keep = _frozen if owned else _readonly
        shared = _frozen if owned else _frozen_or_copy
        return cls(
            verdict=verdict, difference=whole.difference, threshold=float(threshold), tolerance=whole.tolerance,
            eps=estimate.eps, grad=keep(grad), approx=keep(estimate.approx),
            indices=_readonly_or_none(stored(estimate, "indices")), blocks=blocks, layout=layout,
            method=estimate.method, mode=mode,
            size=int(size), cost_value=estimate.cost_value, error=_frozen(error),
            rounding=rounding if isinstance(rounding, Patch) else error if rounding is error else _frozen(rounding),
            steps=shared(estimate.steps),
            state=keep(estimate.state), low=shared(estimate.low), high=shared(estimate.high),
            noise_level=estimate.noise_level, grad_dtype=grad_dtype, block_dtypes=tuple(block_dtypes),
            reasons=tuple(reasons), terms=terms,
            notes=tuple(notes), interrupted=interrupted,
        )

    @classmethod
    def directional_report(cls, analytic, measured, opts, layout, engine, sigma, clean, per_block) -> "Report":
        """The report of a directional check (directions in place of components)."""
        n = analytic.size
        state = measured.state
        value = measured.approx
        grad_rounding = fd.to_grad_rounding(np.abs(analytic), opts.grad_dtype)
        error, rounding = measured.error + grad_rounding, measured.rounding + grad_rounding
        whole = judge(analytic, value, error, state, opts.threshold, rounding=rounding, grad_dtype=opts.grad_dtype)
        reasons = list(whole.reasons)
        if clean == 0:
            reasons = [f"every random direction crossed a kink (after {1 + DIRECTION_REDRAWS} draws each), so nothing was compared: "
                       "check again at another point or use mode='full'"]
        blocks = []
        for name, a, m, c, dtype in per_block:
            r = fd.to_grad_rounding(np.abs(a), dtype)
            j = judge(a, m.approx, m.error + r, m.state, opts.threshold, rounding=m.rounding + r, grad_dtype=dtype)
            shape = layout.shapes[layout.names.index(name)]
            blocks.append(BlockResult(name, tuple(shape), int(np.prod(shape)), j.difference, j.tolerance, j.verdict,
                                      j.kinks, j.wrong, j.unresolved, j.reasons))
        order = {"fail": 0, "inconclusive": 1, "pass": 2}
        blocks.sort(key=lambda r: (order[r.verdict], -r.difference))
        block_reasons = [f"{b.name}: {r}" for b in blocks for r in b.reasons]
        if any(b.verdict == "fail" for b in blocks) or whole.verdict == "fail":
            verdict = "fail"
        elif reasons or any(b.verdict == "inconclusive" for b in blocks):
            verdict = "inconclusive"
            reasons = reasons or block_reasons
        else:
            verdict = "pass"
        nan = np.full(n, np.nan)
        return cls(
            verdict=verdict, difference=whole.difference, threshold=opts.threshold, tolerance=whole.tolerance,
            eps=opts.eps, grad=_readonly(analytic), approx=_readonly(value), indices=_readonly(np.arange(n)),
            blocks=tuple(blocks), layout=layout, method="central", mode="directional", size=int(engine.theta.size),
            cost_value=engine.cost_value, error=_readonly(error), rounding=_readonly(rounding),
            steps=_readonly(measured.steps),
            state=_readonly(state), low=_readonly(nan), high=_readonly(nan), noise_level=sigma,
            grad_dtype=opts.grad_dtype, reasons=tuple(reasons),
            directional=DirectionalResult(_readonly(analytic), _readonly(value), _readonly(error),
                                          tuple(b.name for b in blocks)),
            notes=(f"{n} random directions, each judged with the same measured-error table as components"
                   + ("" if verdict != "fail" or not blocks else ", then the same per block to locate the fault"),),
        )

    def estimate(self) -> Estimate:
        """The numerical side of this report as an :class:`Estimate`."""
        grad_rounding = self._grad_rounding()
        return Estimate(indices=stored(self, "indices"), approx=self.approx, error=self._numerical_error(),
                        rounding=np.maximum(self.rounding - grad_rounding, 0.0), steps=self.steps,
                        state=self.state, low=self.low, high=self.high, method=self.method, eps=self.eps,
                        cost_value=self.cost_value, noise_level=self.noise_level)

    def _grad_rounding(self) -> np.ndarray:
        """The allowance for grad's own rounding that :attr:`error` includes."""
        runs = _dtype_runs(self.grad.size, stored(self, "indices"), self.layout, self.grad_dtype,
                           self.block_dtypes if self.mode != "directional" else ())
        return _grad_rounding_of(self.grad, runs)

    def _numerical_error(self) -> np.ndarray:
        error = self.error - self._grad_rounding()
        undecided = self.state == fd.UNDECIDED
        error = np.maximum(error, 0.0)
        error[undecided] /= fd.WRONG_FACTOR
        return error

    # ------------------------------------------------------------------ #
    # Questions people ask of a report
    # ------------------------------------------------------------------ #
    @property
    def passed(self) -> bool:
        """True only when the verdict is ``"pass"``."""
        return self.verdict == "pass"

    @property
    def kinks(self) -> np.ndarray:
        """bool per checked component: at a kink (judged against its subgradient range)."""
        return fd.in_states(self.state, _KINK_STATES)

    @property
    def noise(self) -> np.ndarray:
        """The measured error of each numerical value (alias of :attr:`error`)."""
        return self.error

    @property
    def n_kinks(self) -> int:
        return int(np.count_nonzero(self.kinks))

    @property
    def checked(self) -> int:
        return int(self.approx.size)

    @property
    def failing_blocks(self) -> tuple[str, ...]:
        """Names of the blocks that fail, worst first."""
        return tuple(b.name for b in self.blocks if b.verdict == "fail")

    @property
    def inconclusive_blocks(self) -> tuple[str, ...]:
        """Names of the blocks that could not be verified."""
        return tuple(b.name for b in self.blocks if b.verdict == "inconclusive")

    def block(self, name: str) -> BlockResult:
        """The result of block ``name``."""
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"No checked block named {name!r}; blocks: {[b.name for b in self.blocks]}.")

    def errors(self) -> np.ndarray:
        """``|grad - approx|`` per checked component (at a kink: how far grad lies outside its range)."""
        value = self.approx.copy()
        kink = self.kinks
        value[kink] = np.clip(self.grad[kink], self.low[kink], self.high[kink])
        return np.abs(self.grad - value)

    def scores(self) -> np.ndarray:
        """Each component's error over its own tolerance (above 1 is suspect)."""
        magnitude = np.abs(self.grad) + np.abs(self.approx)
        tolerance = self.threshold * magnitude + self.error
        with np.errstate(divide="ignore", invalid="ignore"):
            error = self.errors()
            return np.where(tolerance > 0, error / tolerance, np.where(error > 0, np.inf, 0.0))

    def worst(self, k: int = 5, *, include_kinks: bool = True) -> list[Component]:
        """The ``k`` components with the largest score (error over own tolerance), then error."""
        if self.mode == "directional":
            return []
        error = self.errors()
        scores = self.scores()
        candidates = np.arange(error.size) if include_kinks else np.flatnonzero(~self.kinks)
        key = np.lexsort((-error[candidates], -np.nan_to_num(scores[candidates], nan=np.inf)))
        order = candidates[key][: max(int(k), 0)]
        result = []
        indices = self.indices  # (made once: a full check stores none)
        for r in order:
            index = int(indices[r])
            block, position = self._locate(index)
            result.append(Component(
                index=index, block=block, position=position, grad=float(self.grad[r]),
                approx=float(self.approx[r]), abs_error=float(error[r]), score=float(scores[r]),
                kink=bool(self.kinks[r]), error=float(self.error[r]), state=fd.STATE_NAMES[int(self.state[r])],
            ))
        return result

    def _locate(self, index: int) -> tuple[str, tuple[int, ...]]:
        if self.layout is None:
            return "theta", (index,)
        return self.layout.locate(index)

    def to_dict(self, *, arrays: bool = False, worst: int = 10) -> dict:
        """A JSON-ready dict (``json.dumps(report.to_dict())`` works)."""
        result = {
            "verdict": self.verdict, "passed": self.passed, "difference": self.difference,
            "threshold": self.threshold, "tolerance": self.tolerance, "reasons": list(self.reasons),
            "eps": self.eps, "method": self.method, "mode": self.mode, "size": self.size,
            "checked": self.checked, "kinks": self.n_kinks, "cost": self.cost_value,
            "noise_level": self.noise_level, "grad_dtype": self.grad_dtype, "block_dtypes": list(self.block_dtypes),
            "blocks": [b.to_dict() for b in self.blocks], "failing_blocks": list(self.failing_blocks),
            "inconclusive_blocks": list(self.inconclusive_blocks),
            "worst": [c.to_dict() for c in self.worst(worst)], "terms": [t.to_dict() for t in self.terms],
            "notes": list(self.notes), "interrupted": self.interrupted,
        }
        if self.directional is not None:
            result["directional"] = self.directional.to_dict()
        if arrays:
            result["indices"] = self.indices.tolist()
            result["grad"] = self.grad.tolist()
            result["approx"] = self.approx.tolist()
            result["error"] = self.error.tolist()
        return result

    def __str__(self) -> str:
        from fastgrad._format import render_report

        return render_report(self, color=False)

    def __bool__(self) -> bool:
        return self.passed


def _readonly_or_none(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else _readonly(array)


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` itself, made read-only (an array no one else holds)."""
    array = np.asarray(array)
    if array.flags.writeable:
        array.setflags(write=False)
    return array


def _frozen_or_copy(array: np.ndarray) -> np.ndarray:
    """A repeated value (a read-only zero-stride array: steps, or no range) as it is; else a read-only copy."""
    array = np.asarray(array)
    if array.ndim == 1 and array.size > 1 and array.strides[0] == 0 and not array.flags.writeable:
        return array
    return _readonly(array)


def merge_reports(*reports: Report) -> Report:
    """Merge reports of the same check for disjoint sets of components.

    The verdict, differences and blocks are recomputed over the union, so the
    merged report is the report a single run over all those components gives.

    Raises
    ------
    ValueError
        If the reports come from different checks or overlap.
    """
    if len(reports) == 1 and not isinstance(reports[0], Report):
        reports = tuple(reports[0])
    if not reports:
        raise ValueError("merge_reports needs at least one Report.")
    first = reports[0]
    for other in reports[1:]:
        for attribute in ("threshold", "layout", "size", "grad_dtype", "block_dtypes", "mode"):
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
    notes = tuple(dict.fromkeys(n for r in reports for n in r.notes))
    return Report.build(grad, estimate, first.threshold, first.layout, first.size, grad_dtype=first.grad_dtype,
                        block_dtypes=first.block_dtypes, mode=first.mode, terms=first.terms if len(reports) == 1 else (), notes=notes,
                        interrupted=any(r.interrupted for r in reports))
