"""Measured numerical error: the cost's noise, step choice, and the difference table.

Everything here is plain NumPy on values the engines returned; no cost is
evaluated in this module. The driver (``fastgrad._driver``) asks for
evaluations, this module says what they mean.

The rule, in full
-----------------
**Noise.** The cost's own rounding noise ``sigma`` is measured once per check
from a few evaluations along short coordinate lines (More & Wild's ECnoise: the k-th
differences of a smooth function at a tiny spacing are pure noise, and their
root-mean-square times ``gamma_k = (k!)^2 / (2k)!`` estimates the standard
deviation of the noise). It is at least half an ulp of ``|J(theta)|``. A cost
computed through ``-log(p)`` near ``p = 1`` or a large constant shows a noise
far above ``eps_mach |J|``; a sum of many terms shows its real rounding. A line
along which the cost does not move at all measures nothing: a cost computed in
float32 is flat below its own resolution, so coarser spacings (``1e-5``,
``1e-3``, relative) are tried, and only noise that looks like noise there counts.
Noise found at a spacing is checked at the finest one (``1e-11``): rounding does
not depend on the spacing, structure does, so a ripple finer than any step
(``1e-9 sin(1e7 theta)``), which looks like noise near its period, is not taken
for it (it would send the steps up until they averaged it away). A staircase
gives the same two levels (a cost summed partly in float32: the finest line
falls between two stairs and sees only the float64 rest), and there the coarse
level is the noise: the two are told apart by continuity. The intervals of a
longer line at the coarse spacing that depart most from its trend are cut down
to the finest spacing; a ripple's departure shrinks with them, a jump's does
not, and two jumps make a staircase (one is a threshold the line crossed).

**Step.** Every component is first perturbed by ``h = rho^(1/3)`` for central
differences, where ``rho = sigma / |J|`` is the cost's relative noise
(``rho^(1/2)`` for forward, ``rho^(1/5)`` for Richardson), rounded so that
``theta_k + h`` is exact; the table then moves each component that needs it to
larger steps (rounding dominates) or smaller ones (truncation or a kink does).
A component whose error is pure rounding at its coarsest pair (no truncation
measurable) jumps up by as many doublings as its error must shrink (at most
``MAX_JUMP`` a round), and its row of the table moves up with it, so a cost
with parameters of size 1e8 reaches steps of order 1e3 (never above
``MAX_STEP_RATIO max(|theta_k|, 1)``: a larger step assumes the cost smooth
over that range, it does not measure it). Downwards the same: a table whose
finest pair is still pure truncation and not yet in its asymptotic regime (a
step far above the scale the cost varies on, such as a parameter of size 1e-6
that the cost sees as ``theta / 1e-6``) jumps down, and one in its asymptotic
regime walks on past the table's finest column, to a thousand ulps of
``theta_k``. Going down, a gap a jump up left is filled first. An explicit
``eps`` is used as written (the course's formula, denominators ``2 eps``).

**Error of one central difference** at step ``s``: rounding ``3 sigma / s``
(a three-sigma bound on ``(J+ - J-) / 2s``) plus truncation, which one pair
cannot tell. Components whose first pair already agrees with the analytic
gradient (``|g - a| <= threshold (|g| + |a|) + rounding``) cost nothing more.

**The table.** Every other component is evaluated at more steps ``s 2^j``
(first ``s/2``, then smaller where truncation dominates, larger where rounding
does). From central differences ``D`` at two adjacent steps, Richardson's
``E = (4 D(s/2) - D(s)) / 3`` has error at most ``|D(s) - D(s/2)| / 3`` plus
rounding (asymptotically the error of ``D(s/2)``, a bound for ``E``); the pair
with the least error is kept, and disagreement with the next pair is added to
the error. A pair whose extrapolated one-sided slopes disagree beyond that
error reaches a kink (the central difference there is the mean of two
slopes): the disagreement joins its error and it is never preferred as
following the pattern. One-sided slopes ``(J(theta + s) - J) / s`` and
``(J - J(theta - s)) / s`` extrapolated the same way (first order) give the
right and left derivatives: when they differ by more than four times their
errors, at the finest pair, the component is at a kink. A smooth cost's
one-sided limits agree, so it never yields a kink. Where three steps follow
the pattern and the change of ``E`` shrinks sixteenfold over four steps,
Richardson's second level ``F = (16 E(s/2) - E(s)) / 15`` with error
``|E(s) - E(s/2)| / 15`` replaces the pair when it is tighter: on a cost whose
rounding keeps the steps large (a huge loss, a gradient near zero) the first
level's bound alone would allow a 1e-5 bug.

**Decision per component.** ``agree`` when ``|g - a| <= threshold (|g| + |a|)
+ error``; ``wrong`` when ``|g - a| > 8 error + 10 threshold scale`` and the table
follows its pattern over four steps (``scale``
is ``|g| + |a|``, or the block's root-mean-square of it when larger, so the
rounding of a tiny component cannot make it wrong); ``settled`` when its error is
already far below its share of the threshold (more steps would change nothing);
otherwise more steps, up to twenty-four rounds. Every value judged from a
table is tried once more at its finest step times ``2^-0.5`` and ``2^-4.5``,
off the table's grid of powers of two: a smooth cost's difference there
differs from the estimate by its truncation, which shrinks as the step
squared (a one-sided slope's as the step), within the errors; a cost
oscillating with a period the steps nearly divide (aliased), or a ripple
finer than the steps, does not, and the value is unresolved. A wrong value
just outside (within eight times that range) has the disagreement joined to
its error and is judged again (a cost computed on a grid of its own, such as
float32 parameters, aligns with powers of two and hides its rounding there);
a right one is contradicted only beyond that. A value that still disagrees
with the gradient (wrong, or settled off it) is measured once more, after its
own component's noise: central differences at the steps where that noise
moves them by 1/4 and 1/2 of the disagreement. Where both agree with each
other and with the gradient, each within twice its rounding, and not with the
value, the table had converged on a smoothed cost (a ripple finer than its
steps) and the value is unresolved; on a smooth cost they repeat the value.
At a kink the analytic value must lie between
the one-sided derivatives (the sum of each example's, when the cost gives
per-example losses), widened by their errors, once their errors are small
enough for the verdict (steps far above the scale a smooth cost varies on can
mimic two one-sided slopes; finer steps tell); a value just outside, with no
steps left, counts its excess over the range in its block's norm. When the
cost gives per-example losses, a value about to be called wrong or left
unresolved is first looked at example by example: kinks of single examples can
cancel in the total (which then looks smooth), and the range is theirs.
``method="complex"`` is exact to rounding where the cost is analytic and blind
to kinks: the components it does not confirm are measured again by central
differences with this table.

**Verdict.** A block passes when its relative difference is within the
threshold plus its measured error, and that error alone allows at most
``MAX_ALLOWANCE`` (1e-4): beyond it a wrong gradient could pass, and the check
is inconclusive. A component left undecided (off by one to ``WRONG_FACTOR``
times its error) counts with its error widened that much, so it cannot fail a
right gradient; a block that passes only by that widening is inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EPS_MACH = float(np.finfo(np.float64).eps)

METHODS = ("central", "forward", "richardson", "complex")

#: Default pass threshold: the course's 1e-7 on each block's relative difference.
DEFAULT_THRESHOLD = 1e-7

#: A block whose measured numerical error alone allows a relative difference
#: above this cannot be verified: its verdict is inconclusive.
MAX_ALLOWANCE = 1e-4

#: Agreement counts only once a component's error is below this share of what
#: the verdict tolerates (MAX_ALLOWANCE), while more steps may still shrink it.
PRECISION_SHARE = 0.5
#: A component is wrong when its discrepancy exceeds this many times its error.
WRONG_FACTOR = 8.0
#: ... and this many thresholds of its scale.
WRONG_THRESHOLDS = 10.0
#: One-sided derivatives differing by this many times their errors make a kink.
KINK_FACTOR = 4.0
#: Three-sigma bound of a central difference's rounding, in units of sigma / s.
ROUNDING_FACTOR = 3.0
#: Unit roundoff of the dtypes a user's gradient may come in, and how many of its
#: units its rounding is allowed.
GRAD_EPS = {"float16": float(np.finfo(np.float16).eps), "float32": float(np.finfo(np.float32).eps), "float64": EPS_MACH}
GRAD_ROUNDING_UNITS = 64.0
#: A low-precision gradient from a long computation (back-prop over many
#: examples and layers) carries rounding that builds up far beyond its ulps and
#: depends on terms the check never sees (cancellation). A block that fails only
#: by this much (relative to the block: its difference beyond the tolerance, and
#: its wrong components' discrepancies together) is inconclusive, never failed:
#: float32's 1e-4 is ~840 of its units.
LOW_PRECISION_BAND = {"float16": 1e-2, "float32": 1e-4, "float64": 0.0}


#: Below a dtype's smallest normal number its spacing no longer shrinks with
#: the value (float16's is 6e-8 there, and smaller values round to zero): a
#: value that small carries the rounding of the smallest normal one.
GRAD_TINY = {"float16": float(np.finfo(np.float16).smallest_normal),
             "float32": float(np.finfo(np.float32).smallest_normal), "float64": 0.0}


def to_grad_rounding(magnitude: np.ndarray, dtype: str) -> np.ndarray:
    """The rounding allowed a gradient of ``dtype`` whose ``|values|`` are ``magnitude`` (overwritten, returned)."""
    if GRAD_TINY[dtype]:
        np.maximum(magnitude, GRAD_TINY[dtype], out=magnitude)
    magnitude *= GRAD_ROUNDING_UNITS * GRAD_EPS[dtype]
    return magnitude


def grad_rounding(grad: np.ndarray, grad_dtype: str, block_dtypes: tuple[str, ...] = (),
                  block_ids: np.ndarray | None = None) -> np.ndarray:
    """Allowance for the rounding of the user's gradient in its own dtype.

    ``block_dtypes`` (one per block, when the blocks came in different dtypes)
    with ``block_ids`` (each component's block) give each component its own
    block's; else every component has ``grad_dtype``'s.
    """
    magnitude = np.abs(grad)
    if not block_dtypes:
        return to_grad_rounding(magnitude, grad_dtype)
    for b, dtype in enumerate(block_dtypes):
        members = block_ids == b
        magnitude[members] = to_grad_rounding(magnitude[members], dtype)
    return magnitude


#: Table columns: steps ``s * 2**k`` for k in LEVELS.
LEVELS = np.arange(-12, 13)
ZERO_LEVEL = 12
MAX_ROUNDS = 24

# Component states.
AGREE, WRONG, SETTLED, UNDECIDED, KINK_AGREE, KINK_WRONG, UNRESOLVED = range(7)
STATE_NAMES = ("agree", "wrong", "settled", "undecided", "kink", "wrong at a kink", "unresolved")


def check_method(method: object) -> str:
    """Validate a method name."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(map(repr, METHODS))}.")
    return str(method)


# --------------------------------------------------------------------------- #
# Noise
# --------------------------------------------------------------------------- #

#: Points along each line of the noise measurement, the relative spacings tried
#: in turn (smaller when the cost is not yet flat at one), how many lines, and
#: how far from theta their centres lie (in spacings).
NOISE_POINTS = 8
NOISE_SPACINGS = (1e-7, 1e-9, 1e-11)
NOISE_LINES = 4
NOISE_OFFSET = 1000.0
#: Larger spacings, tried in turn when the line does not move at all at the
#: first one (a cost quantised coarsely: computed in float32, or rounded), and
#: their offset from theta in spacings (nearer: the line stays local).
COARSE_NOISE_SPACINGS = (1e-5, 1e-3)
COARSE_NOISE_OFFSET = 10.0
#: A noise this many times larger at a spacing than at the finest one is
#: structure of the cost at that scale (a fine ripple), not rounding.
STRUCTURE_FACTOR = 16.0


def noise_points(value: float, relative_spacing: float, offset: float = NOISE_OFFSET) -> np.ndarray:
    """``NOISE_POINTS`` values of one component on a short line ``NOISE_OFFSET`` spacings from it.

    The line moves one component, as every evaluation of a check does: the
    rounding of ``J`` moves far less when one component changes than along a
    random direction (a long sum's rounding is mostly shared). It lies a
    thousand spacings away: a kink at theta would look like noise. The spacing
    is relative to the component (or absolute at zero), so a parameter of size
    1e-8 is not moved across the features it controls.
    """
    spacing = relative_spacing * (abs(value) if value != 0.0 else 1.0)
    offsets = np.arange(NOISE_POINTS) - (NOISE_POINTS - 1) / 2.0
    return value + (offset + offsets) * spacing


def noise_level(values: np.ndarray, cost_value: float) -> tuple[float, bool]:
    """Standard deviation of the cost's rounding noise from values along a line (ECnoise).

    ``values`` are the cost (or its differences from ``J(theta)``) at
    :func:`noise_points`. The k-th differences of a smooth function at a small
    spacing are noise; where three consecutive orders agree within a factor of
    four and the differences change sign, that level is the noise, and the
    second value returned is True. Otherwise (the spacing is still large for this
    cost) the largest estimate of orders 2-6 and False: the caller tries a
    smaller spacing. Values that did not move at all give NaN (nothing measured).
    Never below half an ulp of ``|J|``.
    """
    floor = 0.5 * EPS_MACH * abs(cost_value)
    values = np.asarray(values, dtype=np.float64)
    if values.size < 4 or not np.all(np.isfinite(values)):
        return max(floor, 64.0 * EPS_MACH * abs(cost_value)), False
    scale = float(np.max(np.abs(values)))
    if scale == 0.0 or np.all(values == values[0]):
        # Flat: a cost that does not move at this spacing (a plateau, or a cost
        # quantised more coarsely, such as one computed in float32) says nothing
        # of its noise: NaN, and the caller keeps what a larger spacing showed.
        return math.nan, False
    table = values / scale  # exact scaling keeps the differences from overflowing
    estimates = []
    sign_changes = []
    for order in range(1, values.size):
        table = np.diff(table)
        gamma = math.factorial(order) ** 2 / math.factorial(2 * order)
        estimates.append(math.sqrt(gamma * float(np.mean(table**2))))
        sign_changes.append(bool(np.any(table > 0) and np.any(table < 0)))
    for k in range(1, len(estimates) - 2):
        window = estimates[k:k + 3]
        if min(window) > 0 and max(window) <= 4.0 * min(window) and sign_changes[k]:
            return max(floor, max(window) * scale), True
    return max(floor, max(estimates[1:6]) * scale), False


def relative_noise(sigma: float, cost_value: float) -> float:
    """``sigma / |J|``, kept within ``[eps_mach, 1e-2]`` for the step rule."""
    if cost_value == 0.0:
        return EPS_MACH if sigma == 0.0 else 1e-2
    return min(max(sigma / abs(cost_value), EPS_MACH), 1e-2)


# --------------------------------------------------------------------------- #
# Steps
# --------------------------------------------------------------------------- #

_STEP_POWER = {"central": 1.0 / 3.0, "forward": 0.5, "richardson": 0.2}


def base_steps(theta_values: np.ndarray, rho: float, method: str) -> np.ndarray:
    """Nominal step of each component (see the module docstring)."""
    if method == "complex":
        return 1e-20 * np.maximum(1.0, np.abs(theta_values))
    return np.full(theta_values.shape, base_step(rho, method))


def base_step(rho: float, method: str) -> np.float64:
    """The nominal step of every component of a real method (``base_steps``' one value)."""
    # The same absolute step for every component: the cost's noise is absolute, so
    # rounding does not grow with |theta_k|, while a step scaled by a large weight
    # (a saturated unit, |w| ~ 1e3) lands far outside the region where the cost is
    # smooth. Components that need another step get one from the table.
    return np.float64(rho ** _STEP_POWER[method])


def level_points(
    theta_values: np.ndarray, steps: np.ndarray, levels: np.ndarray, nominal: bool, sides: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Perturbed values and the offsets really taken, ``(n, sides)`` each.

    Column 0 is ``theta_k + s``, column 1 ``theta_k - s`` with ``s = steps * 2**levels``;
    unless ``nominal`` (an explicit eps), ``s`` is rounded so ``theta_k + s`` is exact.
    """
    s = steps * np.exp2(levels.astype(np.float64))
    points = np.empty((theta_values.size, sides))
    points[:, 0] = theta_values + s
    if sides == 2:
        points[:, 1] = theta_values - s
    if nominal:
        offsets = np.empty_like(points)
        offsets[:, 0] = s
        if sides == 2:
            offsets[:, 1] = -s
    else:
        offsets = points - theta_values[:, None]
    return points, offsets


# --------------------------------------------------------------------------- #
# The table of differences
# --------------------------------------------------------------------------- #


@dataclass
class Table:
    """Cost differences of some components at several steps (NaN: not evaluated).

    ``plus[r, c]`` is ``J(theta + o e_k) - J(theta)`` with ``o = off_plus[r, c]`` at
    step level ``LEVELS[c]``; ``minus`` and ``off_minus`` the same on the other side
    (``off_minus < 0``). ``kinked[r, c]``: the engine saw a kink crossed there.
    ``failed[r, c]``: an evaluation there was not finite (never asked again).
    """

    plus: np.ndarray
    minus: np.ndarray
    off_plus: np.ndarray
    off_minus: np.ndarray
    kinked: np.ndarray
    failed: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "Table":
        shape = (n, LEVELS.size)
        nan = lambda: np.full(shape, np.nan)  # noqa: E731
        return cls(nan(), nan(), nan(), nan(), np.zeros(shape, bool), np.zeros(shape, bool))

    def subset(self, rows: np.ndarray) -> "Table":
        return Table(self.plus[rows], self.minus[rows], self.off_plus[rows], self.off_minus[rows],
                     self.kinked[rows], self.failed[rows])

    def store(self, rows: np.ndarray, columns: np.ndarray, values: np.ndarray, offsets: np.ndarray,
              kinks: np.ndarray) -> None:
        """Put evaluations ``(len(rows), 1 or 2)`` at ``(rows, columns)``."""
        finite = np.all(np.isfinite(values), axis=1)
        good_rows, good_columns = rows[finite], columns[finite]
        self.plus[good_rows, good_columns] = values[finite, 0]
        self.off_plus[good_rows, good_columns] = offsets[finite, 0]
        if values.shape[1] > 1:
            self.minus[good_rows, good_columns] = values[finite, 1]
            self.off_minus[good_rows, good_columns] = offsets[finite, 1]
        self.kinked[rows, columns] |= kinks.astype(bool)
        self.failed[rows[~finite], columns[~finite]] = True

    def both_sides(self) -> np.ndarray:
        return np.isfinite(self.plus) & np.isfinite(self.minus)

    def shift(self, rows: np.ndarray, by: np.ndarray) -> None:
        """Move rows' columns ``by`` places to the finer end (their window moves up).

        The ``by`` finest columns of each row are dropped; its step base must
        grow by ``2**by`` to match. A negative ``by`` moves the window down:
        the coarsest columns are dropped and the step base shrinks.
        """
        for k in np.unique(by):
            moved = rows[by == k]
            size = min(abs(int(k)), LEVELS.size)
            for name, empty in (("plus", np.nan), ("minus", np.nan), ("off_plus", np.nan), ("off_minus", np.nan),
                                ("kinked", False), ("failed", False)):
                array = getattr(self, name)
                if k >= 0:
                    kept = array[moved, size:].copy()
                    array[moved, :] = empty
                    array[moved, :kept.shape[1]] = kept
                else:
                    kept = array[moved, :LEVELS.size - size].copy()
                    array[moved, :] = empty
                    array[moved, size:] = kept


@dataclass
class Analysis:
    """What the table says about each component."""

    approx: np.ndarray      # best derivative estimate
    error: np.ndarray       # its measured error bound (rounding + truncation)
    rounding: np.ndarray    # the rounding part of it
    kink: np.ndarray        # bool: one-sided derivatives differ (a kink at theta)
    right: np.ndarray       # right derivative (NaN unless both sides at two levels)
    left: np.ndarray        # left derivative
    side_error: np.ndarray  # error of each one-sided derivative
    best_level: np.ndarray  # table column of the finer step of the pair used (or the single level)
    kink_possible: np.ndarray  # bool: the finest pair's one-sided derivatives differ (stable or not)
    confirmed: np.ndarray   # bool: the best pair has a neighbouring pair (its error bound is checked)
    # bool: the pattern holds over two neighbouring pairs as well (four steps): a
    # single ratio in range can be chance where the steps alias a fast oscillation,
    # so a value is called wrong only when this holds.
    established: np.ndarray


def row_noise(sigma: float, cost_value: float, values: np.ndarray) -> np.ndarray:
    """Each row's noise: the measured ``sigma``, but at least half an ulp of the largest cost it evaluated.

    ``values`` are differences from ``J(theta)``; a perturbed cost far larger than
    ``J(theta)`` (a tiny J at a minimum) rounds on its own scale.
    """
    with np.errstate(invalid="ignore"):
        # fmax skips NaN: nanmax's result, without its copy of the array.
        moved = np.abs(cost_value + values)
        if moved.shape[1] <= 4:  # NumPy reduces along a short axis slowly: column by column
            largest = np.full(moved.shape[0], abs(cost_value))
            for column in moved.T:
                np.fmax(largest, column, out=largest)
        else:
            largest = np.fmax.reduce(moved, axis=1, initial=abs(cost_value))
    return np.maximum(sigma, 0.5 * EPS_MACH * largest)


def first_pass(values: np.ndarray, offsets: np.ndarray, steps: np.ndarray, sigma: float, nominal: bool,
               cost_value: float = 0.0) -> Analysis:
    """The analysis of one level (``(n, 1)`` forward or ``(n, 2)`` central values) for every component.

    Without a second level nothing is known of truncation: the error is the
    rounding bound alone, and no value is ``confirmed``.
    """
    n = steps.size
    sigma = row_noise(sigma, cost_value, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        if values.shape[1] == 1:
            approx = values[:, 0] / offsets[:, 0]
            rounding = 1.5 * ROUNDING_FACTOR * sigma / steps
        else:
            denominator = 2.0 * steps if nominal else offsets[:, 0] - offsets[:, 1]
            approx = (values[:, 0] - values[:, 1]) / denominator
            rounding = ROUNDING_FACTOR * sigma / steps
    nan = np.full(n, np.nan)
    no = np.zeros(n, dtype=bool)
    return Analysis(approx, rounding.copy(), rounding, no, nan, nan.copy(), nan.copy(),
                    np.full(n, ZERO_LEVEL, dtype=np.int64), no.copy(), no.copy(), no.copy())


def central_differences(table: Table, steps: np.ndarray, nominal: bool) -> np.ndarray:
    """``(n, levels)`` central differences (NaN where a side is missing)."""
    if nominal:
        denominators = 2.0 * steps[:, None] * np.exp2(LEVELS.astype(np.float64))[None, :]
    else:
        denominators = table.off_plus - table.off_minus
    with np.errstate(invalid="ignore", divide="ignore"):
        return (table.plus - table.minus) / denominators


#: Rows of a table analysed at once: every row is analysed on its own, and
#: the temporaries (a few dozen arrays of rows x levels) stay this many rows'.
ANALYSE_ROWS = 512


def analyse(table: Table, steps: np.ndarray, sigma: float, nominal: bool, forward_only: bool = False,
            cost_value: float = 0.0) -> Analysis:
    """Best estimate, measured error and kink status of every component of ``table``.

    ``sigma`` is the measured noise, floored per row by :func:`row_noise`.
    Rows are analysed ``ANALYSE_ROWS`` at a time (each row's result depends
    on that row alone: the same bits in any grouping).
    """
    n = steps.size
    if n <= ANALYSE_ROWS:
        return _analyse_rows(table, steps, sigma, nominal, forward_only, cost_value)
    parts = []
    for start in range(0, n, ANALYSE_ROWS):
        rows = slice(start, start + ANALYSE_ROWS)
        part = Table(*(getattr(table, name)[rows] for name in Table.__dataclass_fields__))
        parts.append(_analyse_rows(part, steps[rows], sigma, nominal, forward_only, cost_value))
    return Analysis(*(np.concatenate([getattr(part, name) for part in parts]) for name in Analysis.__dataclass_fields__))


def _analyse_rows(table: Table, steps: np.ndarray, sigma: float, nominal: bool, forward_only: bool,
                  cost_value: float) -> Analysis:
    """:func:`analyse` of every row of ``table`` at once."""
    n = steps.size
    row_sigma = row_noise(sigma, cost_value, np.hstack([table.plus, table.minus]))
    sigma = row_sigma[:, None]
    s = steps[:, None] * np.exp2(LEVELS.astype(np.float64))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        if forward_only:
            single = table.plus / table.off_plus
            single_rounding = 1.5 * ROUNDING_FACTOR * sigma / s
        else:
            single = central_differences(table, steps, nominal)
            single_rounding = ROUNDING_FACTOR * sigma / s
    slopes = None if forward_only else _pair_slopes(table, s, sigma)
    straddle = np.zeros_like(single[:, 1:]) if slopes is None else _straddle(*slopes)
    extrapolated, pair_rounding, total_pair_error, ratio_ok, pattern, linked = _pairs(
        table, single, single_rounding, forward_only, straddle)
    rounding_all = single_rounding
    rows = np.arange(n)
    # Prefer pairs whose table follows the pattern; others only when none does.
    candidates = np.where(ratio_ok, total_pair_error, np.inf)
    any_ok = np.isfinite(candidates).any(axis=1)
    best_pair = np.where(any_ok, np.argmin(candidates, axis=1), np.argmin(total_pair_error, axis=1))
    pair_found = np.isfinite(total_pair_error[rows, best_pair])

    # Components with a single level: the difference itself, with rounding only.
    only_level = np.where(np.isfinite(single), np.arange(LEVELS.size)[None, :], -1).max(axis=1)
    approx = np.where(pair_found, extrapolated[rows, best_pair], single[rows, np.maximum(only_level, 0)])
    error = np.where(pair_found, total_pair_error[rows, best_pair], rounding_all[rows, np.maximum(only_level, 0)])
    rounding = np.where(pair_found, pair_rounding[rows, best_pair], rounding_all[rows, np.maximum(only_level, 0)])
    no_value = ~pair_found & (only_level < 0)
    approx[no_value] = np.nan
    error[no_value] = np.inf

    right, left, side_error, kink, kink_possible = _one_sided(table, s, row_sigma, single, slopes)
    best_level = np.where(pair_found, best_pair, np.maximum(only_level, 0))
    # A value is trusted enough to call a gradient wrong only when a second
    # pair of steps confirms it (Richardson's bound assumes the table has
    # settled; a kink within the step can fool one pair).
    confirmed = pair_found & ratio_ok[rows, best_pair]
    # A value is called wrong only when, in addition, the pattern links the pair
    # to the next finer pair and to one more: over four steps, reaching below the
    # pair. A table aliasing a fast oscillation can follow the pattern over four
    # coarse steps by chance, never down to the steps where it is resolved.
    links = pattern.shape[1]
    p = best_pair
    finer_link = (p >= 1) & pattern[rows, np.clip(p - 1, 0, links - 1)]
    other_link = (((p <= links - 1) & pattern[rows, np.clip(p, 0, links - 1)])
                  | ((p >= 2) & pattern[rows, np.clip(p - 2, 0, links - 1)]))
    # (A second-level value whose order holds from a level below counts the same.)
    established = confirmed & ((finer_link & other_link) | linked[rows, p])
    return Analysis(approx, error, rounding, kink, right, left, side_error, best_level, kink_possible, confirmed,
                    established)


def _pairs(table: Table, single: np.ndarray, rounding_all: np.ndarray, forward_only: bool, straddle: np.ndarray):
    """Richardson's extrapolation of each pair of adjacent levels, with its error, and whether it is trusted.

    ``straddle`` is each pair's one-sided disagreement (:func:`_straddle`).
    Returns ``(extrapolated, pair_rounding, total_pair_error, ratio_ok, pattern, linked)``:
    the first four ``(n, levels - 1)``, pair ``p`` is levels ``p`` (finer) and
    ``p + 1``; ``pattern`` ``(n, levels - 2)``: column ``j`` says pairs ``j`` and
    ``j + 1`` follow the asymptotic pattern together (neither reaching a kink);
    ``linked`` ``(n, levels - 1)``: see :func:`_second_level` (central only).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        coarse, fine = single[:, 1:], single[:, :-1]
        order_gain = 2.0 if forward_only else 4.0
        extrapolated = (order_gain * fine - coarse) / (order_gain - 1.0)
        pair_rounding = (order_gain * rounding_all[:, :-1] + rounding_all[:, 1:]) / (order_gain - 1.0)
        pair_error = np.abs(coarse - fine) / (order_gain - 1.0) + pair_rounding
        # A pair whose one-sided slopes disagree beyond its own measured error
        # reaches a kink: its table may still look asymptotic (below), never trusted.
        straddling = straddle > pair_error
        pair_error = pair_error + straddle
        clean = ~(table.kinked[:, 1:] | table.kinked[:, :-1])
        pair_error = np.where(np.isfinite(pair_error) & clean, pair_error, np.inf)
        # Disagreement with the next finer pair joins the error: Richardson's
        # bound holds only where the table has settled into its asymptotic regime.
        neighbour = np.full_like(pair_error, np.inf)
        neighbour[:, 1:] = np.abs(extrapolated[:, 1:] - extrapolated[:, :-1])
        neighbour[:, :-1] = np.fmin(neighbour[:, :-1], np.abs(extrapolated[:, :-1] - extrapolated[:, 1:]))
        neighbour = np.where(np.isfinite(neighbour), neighbour, 0.0)
        has_neighbour = np.zeros_like(pair_error, dtype=bool)
        finite_pairs = np.isfinite(pair_error)
        has_neighbour[:, 1:] |= finite_pairs[:, :-1]
        has_neighbour[:, :-1] |= finite_pairs[:, 1:]
        total_pair_error = pair_error + np.where(has_neighbour, neighbour, 0.0)

        # Richardson's bound holds only in the asymptotic regime, where the
        # difference D(s) - D(s/2) shrinks fourfold with each halving (or is
        # already down at the rounding level). A kink within the step, or a step
        # still far too large, breaks that pattern.
        change = coarse - fine                      # pair p: D(s_p+1) - D(s_p)
        noise_level = 4.0 * (rounding_all[:, :-1] + rounding_all[:, 1:])
        quiet = np.abs(change) <= noise_level
        ratio_ok = np.zeros_like(quiet)
        ratio = change[:, 1:] / change[:, :-1]      # coarser pair over finer pair
        pattern = ((ratio >= 0.5 * order_gain) & (ratio <= 2.0 * order_gain)) | (quiet[:, 1:] & quiet[:, :-1])
        ratio_ok[:, :-1] |= pattern
        ratio_ok[:, 1:] |= pattern
        ratio_ok &= np.isfinite(pair_error) & ~straddling
        trusted = np.isfinite(pair_error) & ~straddling
        pattern &= trusted[:, 1:] & trusted[:, :-1]
        linked = np.zeros_like(ratio_ok)
        if not forward_only:
            linked = _second_level(extrapolated, pair_rounding, total_pair_error, straddle, pattern)
    return extrapolated, pair_rounding, total_pair_error, ratio_ok, pattern, linked


def _second_level(extrapolated, pair_rounding, total_pair_error, straddle, pattern) -> np.ndarray:
    """Richardson's second level: where three steps follow the pattern, a tighter value and bound (in place).

    A pair's bound ``|D(s) - D(s/2)| / 3`` is the truncation of ``D(s/2)``, far
    above the error of ``E`` itself (fourth order in the step): on a cost whose
    rounding forbids small steps (a huge loss, a gradient near zero) it alone
    can allow more than a 1e-6 bug. Two adjacent pairs extrapolate once more,
    ``F = (16 E(s/2) - E(s)) / 15``, with error ``|E(s) - E(s/2)| / 15`` (the
    fourth-order error of ``E(s/2)``, a bound for ``F``) plus rounding. It is
    trusted only where the table shows that order: both pairs follow the
    pattern (``pattern``), and the change of ``E`` shrinks sixteenfold from the
    next triple of steps (or both changes are at the rounding level), so four
    steps back it; disagreement with a neighbouring triple joins the error. A
    triple replaces its finer pair where its error is smaller.

    Returns ``(n, levels - 1)`` bool: the pair was replaced (its orders then
    hold over four steps reaching a level below it: it is ``established``).
    """
    levels = extrapolated.shape[1]
    linked = np.zeros(extrapolated.shape, dtype=bool)
    if levels < 3:
        return linked
    with np.errstate(invalid="ignore", divide="ignore"):
        finer, coarser = extrapolated[:, :-1], extrapolated[:, 1:]
        change = coarser - finer                              # triple t: E(pair t+1) - E(pair t)
        second = (16.0 * finer - coarser) / 15.0
        rounding = (16.0 * pair_rounding[:, :-1] + pair_rounding[:, 1:]) / 15.0
        error = (np.abs(change) / 15.0 + rounding
                 + np.fmax(straddle[:, :-1], straddle[:, 1:]))
        quiet = np.abs(change) <= 4.0 * (pair_rounding[:, :-1] + pair_rounding[:, 1:])
        ratio = change[:, 1:] / change[:, :-1]               # coarser triple over finer triple
        follows = pattern & np.isfinite(error)
        agreeing = (((ratio >= 8.0) & (ratio <= 32.0)) | (quiet[:, 1:] & quiet[:, :-1])) \
            & follows[:, 1:] & follows[:, :-1]
        # Trusted: the triple and the one a level finer agree (four steps reaching
        # below the pair it would replace, as ``established`` asks of a pair; a
        # table aliasing a fast oscillation can follow a pattern over coarse steps
        # by chance, never down to the steps where it is resolved).
        trusted = np.zeros_like(follows)
        trusted[:, 1:] = agreeing
        neighbour = np.full_like(error, np.inf)
        neighbour[:, 1:] = np.abs(second[:, 1:] - second[:, :-1])
        neighbour[:, :-1] = np.fmin(neighbour[:, :-1], np.abs(second[:, :-1] - second[:, 1:]))
        total = error + np.where(np.isfinite(neighbour), neighbour, 0.0)
        better = trusted & (total < total_pair_error[:, :-1])
    target = (slice(None), slice(0, levels - 1))
    extrapolated[target] = np.where(better, second, finer)
    pair_rounding[target] = np.where(better, rounding, pair_rounding[:, :-1])
    total_pair_error[target] = np.where(better, total, total_pair_error[:, :-1])
    linked[:, :levels - 1] = better
    return linked


def _pair_slopes(table: Table, s: np.ndarray, sigma: np.ndarray):
    """Extrapolated right and left derivatives of every pair of adjacent levels, and their rounding.

    Each ``(n, levels - 1)``, pair ``p`` from levels ``p`` and ``p + 1``;
    ``sigma`` is each row's noise, ``(n, 1)``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        right = 2.0 * table.plus[:, :-1] / table.off_plus[:, :-1] - table.plus[:, 1:] / table.off_plus[:, 1:]
        left = 2.0 * table.minus[:, :-1] / table.off_minus[:, :-1] - table.minus[:, 1:] / table.off_minus[:, 1:]
        # Rounding of 2 p(s/2) - p(s): each slope carries sqrt(2) sigma / step.
        rounding = ROUNDING_FACTOR * math.sqrt(2.0) * sigma * (2.0 / s[:, :-1] + 1.0 / s[:, 1:])
    return right, left, rounding


def _straddle(right: np.ndarray, left: np.ndarray, rounding: np.ndarray) -> np.ndarray:
    """Per pair of levels, half the disagreement of its extrapolated one-sided slopes beyond their rounding.

    For a smooth cost the two agree to third order in the step (far below the
    central difference's own truncation); where the steps reach a kink they
    differ by the jump in slope, and the central difference there is only the
    mean of two different derivatives: the pair's error must say so.
    """
    with np.errstate(invalid="ignore"):
        return 0.5 * np.maximum(np.abs(right - left) - 2.0 * rounding, 0.0)


def _one_sided(table: Table, s: np.ndarray, sigma: np.ndarray, central: np.ndarray, slopes):
    """Right and left derivatives from the finest pair of levels with both sides.

    ``slopes`` is :func:`_pair_slopes` of the table (None for forward differences).

    Returns ``(right, left, side_error, kink, kink_possible)``: ``kink_possible``
    when the finest pair's one-sided derivatives differ beyond their errors;
    ``kink`` when, in addition, the next coarser pair gives the same two
    derivatives (each is stable under step refinement: a kink *at* theta, not
    merely within the step).
    """
    n = s.shape[0]
    nan = np.full(n, np.nan)
    if slopes is None:
        return nan, nan.copy(), nan.copy(), np.zeros(n, bool), np.zeros(n, bool)
    both = table.both_sides()
    pairs = both[:, 1:] & both[:, :-1]
    any_pair = pairs.any(axis=1)
    finest = np.argmax(pairs, axis=1)  # lowest column index = finest step
    rows = np.arange(n)
    right, left, rounding = (part[rows, finest] for part in slopes)
    with np.errstate(invalid="ignore", divide="ignore"):
        side_error = rounding + np.abs(central[rows, finest + 1] - central[rows, finest])
        kink_possible = any_pair & (np.abs(right - left) > KINK_FACTOR * 2.0 * side_error)
        # Stable: at three successive steps each raw one-sided slope changes less
        # and less (curvature halves the change with the step); a kink within the
        # step but not at theta makes the change grow instead.
        third = np.minimum(finest + 2, LEVELS.size - 1)
        has_three = any_pair & (finest + 2 < LEVELS.size) & both[rows, third]
        stable = has_three.copy()
        jump = np.abs(right - left)
        for values, offsets, limit in ((table.plus, table.off_plus, right), (table.minus, table.off_minus, left)):
            slope = [values[rows, c] / offsets[rows, c] for c in (finest, finest + 1, third)]
            noise = ROUNDING_FACTOR * math.sqrt(2.0) * sigma * 2.0 / s[rows, finest]
            stable &= np.abs(slope[0] - slope[1]) <= 0.75 * np.abs(slope[1] - slope[2]) + 4.0 * noise
            # Resolved: at the finest step each raw slope is already nearer its limit
            # than the jump between the limits (steps far above the scale a smooth
            # cost varies on extrapolate to two "limits" no finer step would give).
            stable &= np.abs(slope[0] - limit) <= 0.5 * jump + 4.0 * noise
    right[~any_pair] = np.nan
    left[~any_pair] = np.nan
    side_error[~any_pair] = np.nan
    return right, left, side_error, kink_possible & stable, kink_possible


def decide(
    grad: np.ndarray, analysis: Analysis, threshold: float, scale_floor: np.ndarray,
    bracket: tuple[np.ndarray, np.ndarray] | None = None, extra_error: np.ndarray | float = 0.0,
    final: bool = False, precision: np.ndarray | float = np.inf, at_range: bool = False,
) -> np.ndarray:
    """The state of each component (AGREE, WRONG, SETTLED, UNDECIDED, KINK_AGREE, KINK_WRONG, UNRESOLVED).

    ``scale_floor`` is each component's block root-mean-square of ``|g| + |a|``;
    ``bracket`` optionally overrides the one-sided derivatives at kinks (the
    per-example sums); ``extra_error`` is the analytic side's own rounding.
    Agreement within an error too large for the verdict is not enough while
    more steps may shrink it (``precision``: see :func:`precision_targets`);
    ``final`` (no more steps) accepts it, and leaves an undecided value no
    second pair confirmed UNRESOLVED. ``at_range`` (the last judgement of
    kinks, against their ranges): a value just outside its range is a kink
    whose excess over the range counts in its block's norm.
    """
    a, e = analysis.approx, analysis.error + extra_error
    discrepancy = np.abs(grad - a)
    magnitude = np.abs(grad) + np.abs(a)
    scale = np.maximum(magnitude, scale_floor)
    state = np.full(grad.size, UNDECIDED, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        agree = discrepancy <= threshold * magnitude + e
        if not final:
            agree &= (e <= PRECISION_SHARE * MAX_ALLOWANCE * scale) & (e <= precision)
        # While the one-sided derivatives differ, the value may be a valid one-sided choice.
        wrong = ((discrepancy > WRONG_FACTOR * e + WRONG_THRESHOLDS * threshold * scale)
                 & ~analysis.kink_possible & analysis.established)
        settled = (e <= 0.25 * threshold * magnitude) & ~analysis.kink_possible & analysis.established
    state[settled] = SETTLED
    state[wrong] = WRONG
    state[agree] = AGREE
    kink = analysis.kink
    if np.any(kink):
        low, high, width_error = kink_bracket(analysis, bracket)
        width_error = width_error + extra_error
        excess = np.maximum(0.0, np.maximum(low - grad, grad - high))
        allowance = width_error + threshold * np.maximum(np.abs(low), np.abs(high))
        inside = excess <= allowance
        clearly_out = excess > WRONG_FACTOR * width_error + WRONG_THRESHOLDS * threshold * np.maximum(
            np.maximum(np.abs(low), np.abs(high)), scale_floor)
        # A value the smooth estimate already confirms needs no bracket.
        kink = kink & ~agree
        # Inside a range measured too coarsely for the verdict is not enough while
        # finer steps may still tell (steps far above the scale the cost varies on
        # can mimic two one-sided slopes): as for a smooth value's agreement.
        if not final:
            kink_scale = np.maximum(np.maximum(np.abs(low), np.abs(high)), scale_floor)
            inside &= (width_error <= PRECISION_SHARE * MAX_ALLOWANCE * kink_scale) | at_range
        state[kink & inside] = KINK_AGREE
        state[kink & ~inside & clearly_out] = KINK_WRONG
        # Just outside: more steps may still tell; with none left, the value is
        # judged at its range like every kink (``at_range``), and its block's norm
        # of the excess over the range decides, as for a smooth value's discrepancy.
        state[kink & ~inside & ~clearly_out] = KINK_AGREE if at_range else UNDECIDED
    if final:
        state[(state == UNDECIDED) & ~analysis.established & ~analysis.kink] = UNRESOLVED
    return state


def block_error(error: np.ndarray, rounding: np.ndarray, overwrite: bool = False) -> float:
    """The error norm of a block: systematic parts in full, rounding as its root-mean-square.

    Per-component rounding bounds are about four standard deviations, and the
    norm of n independent rounding errors concentrates near its root mean
    square: a block of n components is allowed ``(1 + 3 / sqrt(n)) / 3`` of their
    norm (the full bound for one component). Truncation estimates and the
    widths of kink ranges are not independent: they count in full.
    ``overwrite``: ``error`` and ``rounding`` are the caller's scratch copies,
    used (and overwritten) in place of new temporaries.
    """
    rounding = np.minimum(rounding, error, out=rounding if overwrite else None)
    share = min(1.0, (1.0 + 3.0 / math.sqrt(max(error.size, 1))) / ROUNDING_FACTOR)
    # error - rounding + share * rounding, in place (the same operations, fewer temporaries)
    combined = np.subtract(error, rounding, out=error if overwrite else None)
    rounding *= share
    combined += rounding
    biggest = float(np.max(combined)) if combined.size else 0.0
    if biggest == 0.0 or not math.isfinite(biggest):  # (scaled_norm, inline: overflow-safe)
        return biggest
    combined /= biggest
    return biggest * float(np.linalg.norm(combined))


def block_error_in_parts(parts, n: int) -> float:
    """``block_error`` of a block of ``n`` components given in parts, without its whole temporaries.

    ``parts()`` yields ``(error, rounding)`` scratch arrays (overwritten here)
    that together make the block, the same each time it is called (it is
    called twice: the largest combined error first, then the norm scaled by
    it). One part gives ``block_error``'s bits; several, the same norm summed
    part by part.
    """
    share = min(1.0, (1.0 + 3.0 / math.sqrt(max(n, 1))) / ROUNDING_FACTOR)

    def combined_parts():
        for error, rounding in parts():
            np.minimum(rounding, error, out=rounding)
            combined = np.subtract(error, rounding, out=error)
            rounding *= share
            combined += rounding
            yield combined

    return scaled_norm_in_parts(combined_parts)


def precision_targets(error, rounding, magnitude, scale_floor, block_ids, n_blocks, threshold) -> np.ndarray:
    """The error each component should reach before its agreement counts.

    A block whose measured errors alone allow more than the threshold is not yet
    verified: each of its components should reach its share of the threshold
    (``threshold * max(|g| + |a|, block rms)``), so it is refined with larger or
    smaller steps. Elsewhere any error is fine (infinity).
    """
    target = np.full(error.size, np.inf)
    for b in range(n_blocks):
        members = _members(block_ids, b)
        if _count(members) == 0:
            continue
        scale = scaled_norm(magnitude[members])
        spread = block_error(error[members], rounding[members])
        if not (spread <= threshold * scale):
            target[members] = threshold * np.maximum(magnitude[members], scale_floor[members])
    return target


def kink_bracket(analysis: Analysis, bracket=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low and high ends of the subgradient range at each component, and their error."""
    if bracket is not None:
        low, high = bracket
    else:
        low = np.minimum(analysis.left, analysis.right)
        high = np.maximum(analysis.left, analysis.right)
    return low, high, analysis.side_error


#: The most levels (a factor 2 each) one round may jump up, past steps whose
#: pairs would only shrink a rounding-bound error by 2 each.
MAX_JUMP = 6
#: No step above this many times ``max(|theta_k|, 1)``.
MAX_STEP_RATIO = 1e-2
#: No step below this many ulps of ``|theta_k|`` (or of MIN_STEP at zero).
MIN_STEP_ULPS = 1024.0
MIN_STEP = 1e-280
#: next_levels' answer for a component with no level left to try.
NO_LEVEL = -(2**40)


def next_levels(table: Table, analysis: Analysis, wanted: np.ndarray | None = None,
                level_cap: np.ndarray | None = None, level_floor: np.ndarray | None = None) -> np.ndarray:
    """The step level to evaluate next for each component (NO_LEVEL when none is left).

    Finer when truncation dominates the error (or a kink may lie within the
    step), coarser when rounding does. With ``wanted`` (the error each
    component should reach), a component whose best pair is the coarsest
    evaluated and purely rounding-bound (its truncation is not measurable)
    jumps up by as many levels as its rounding must shrink (at most
    ``MAX_JUMP``); the next round completes the pair there, and a jump that
    landed where truncation dominates leaves its best pair below the gap,
    which is then filled one level at a time. Targets past the last column are
    returned as they are when ``level_cap`` (the highest level each row may
    reach, possibly beyond the table: the caller moves the row's window) is
    given; otherwise the other direction is tried once. Downwards the same:
    a component whose finest pair is purely truncation-bound (its step is far
    larger than the scale its cost varies on) jumps down as many levels as its
    error must shrink (truncation falls fourfold a level), to ``level_floor``
    (possibly negative: the caller moves the window down).
    """
    evaluated = table.both_sides() | table.failed
    columns = np.arange(LEVELS.size)
    rows = np.arange(evaluated.shape[0])
    lowest = np.where(evaluated, columns[None, :], LEVELS.size).min(axis=1)
    highest = np.where(evaluated, columns[None, :], -1).max(axis=1)
    best = analysis.best_level
    rounding_bound = analysis.rounding >= 0.5 * analysis.error
    go_up = rounding_bound & ~analysis.kink_possible & (lowest < ZERO_LEVEL)
    # Upwards: the first level above the best pair not yet evaluated (the next
    # one when the evaluated levels are contiguous; a gap's first after a jump).
    free_above = ~evaluated & (columns[None, :] > best[:, None])
    above = np.where(free_above.any(axis=1), np.argmax(free_above, axis=1), np.maximum(highest + 1, best + 1))
    if wanted is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            needed = np.ceil(np.log2(analysis.error / wanted))
        jump = np.clip(np.where(np.isfinite(needed), needed, 3.0), 1, MAX_JUMP).astype(np.int64)
        pure_rounding = analysis.rounding >= 0.9 * analysis.error
        at_top = best + 1 == highest
        above = np.where(at_top & pure_rounding, highest + jump, above)
    # Downwards: the first level below the best pair not yet evaluated (the next
    # one below the table when it is contiguous; the gap a jump up left, first).
    free_below = ~evaluated & (columns[None, :] < best[:, None])
    below = np.where(free_below.any(axis=1), LEVELS.size - 1 - np.argmax(free_below[:, ::-1], axis=1), lowest - 1)
    gap_below = below != lowest - 1
    leaves_table = np.zeros(below.shape, bool)
    if wanted is not None and level_floor is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            needed_down = np.ceil(0.5 * np.log2(analysis.error / wanted))
        jump_down = np.clip(np.where(np.isfinite(needed_down), needed_down, 1.0), 1, MAX_JUMP).astype(np.int64)
        pure_truncation = (analysis.rounding <= 0.01 * analysis.error) & ~analysis.kink_possible
        # Only a table not yet in its asymptotic regime jumps (its step is far above
        # the scale the cost varies on); one that is walks down a level at a time,
        # each level a fourfold gain, and keeps its pattern contiguous.
        levels_seen = evaluated.sum(axis=1)
        at_bottom = (best == lowest) & ~analysis.confirmed & (levels_seen >= 3)
        leaves_table = at_bottom & pure_truncation & ~gap_below
        below = np.where(leaves_table, lowest - jump_down, below)
        # A table in its asymptotic regime whose truncation alone still bounds it
        # walks on past the finest column.
        leaves_table |= ((best == lowest) & analysis.confirmed & (analysis.rounding < 0.5 * analysis.error)
                       & ~analysis.kink_possible)
    target = np.where(go_up, above, below)
    # A jump's level alone: complete its pair first (one level finer).
    lone_top = (highest > best + 1) & (highest >= 1) & ~evaluated[rows, np.maximum(highest - 1, 0)]
    target = np.where(lone_top, highest - 1, target)
    # ... and a jump down's (one level coarser).
    lone_bottom = (lowest < best) & (lowest + 1 < LEVELS.size) & ~evaluated[rows, np.minimum(lowest + 1,
                                                                                            LEVELS.size - 1)]
    target = np.where(lone_bottom & (lowest >= 0), lowest + 1, target)
    target = np.where(highest < 0, ZERO_LEVEL, target)
    # Only level 0 so far: look at s/2 first.
    only_zero = (lowest == ZERO_LEVEL) & (highest == ZERO_LEVEL)
    target = np.where(only_zero, ZERO_LEVEL - 1, target)
    # Past either end, try the other way once before giving up. Below the table
    # but not below ``level_floor``: returned as is (the caller moves the window down).
    top = np.full(target.shape, LEVELS.size - 1) if level_cap is None else level_cap
    # Only a jump, or a walk whose table is asymptotic, leaves the table downwards:
    # any other walk ends at its finest column, where rounding (underestimated, it
    # would look like truncation) could otherwise keep it walking.
    bottom = np.zeros(target.shape, np.int64)
    if level_floor is not None:
        bottom = np.where(leaves_table, np.clip(level_floor, -LEVELS.size + 1, 0), 0)
    beyond = target < bottom
    target = np.where(beyond, np.where((highest + 1 < LEVELS.size) & (highest + 1 <= top), highest + 1, NO_LEVEL),
                      target)
    target = np.where(target > top, np.where(highest < top, top, np.where(below >= bottom, below, NO_LEVEL)),
                      target)
    return target


def scaled_norm(x: np.ndarray) -> float:
    """``||x||_2`` without overflow or underflow (inf only when an entry is)."""
    if x.size == 0:
        return 0.0
    size = np.abs(x)
    biggest = float(np.max(size))
    if biggest == 0.0 or not math.isfinite(biggest):
        return biggest
    size /= biggest  # |x| / biggest: the same squares as x / biggest, one temporary
    return biggest * float(np.linalg.norm(size))


def scaled_norm_in_parts(parts) -> float:
    """``scaled_norm`` of the concatenation of what ``parts()`` yields (arrays of
    non-negative values, overwritten here; called twice). One part gives
    ``scaled_norm``'s bits; several, the same norm summed part by part."""
    biggest = 0.0
    for x in parts():
        if x.size:
            largest = float(np.max(x))
            if not math.isfinite(largest):
                return largest
            biggest = max(biggest, largest)
    if biggest == 0.0:
        return biggest
    total = 0.0
    for x in parts():
        x /= biggest
        total += float(np.dot(x, x))
    return biggest * math.sqrt(total)


#: Rows per slice of the norms taken over a whole check (bounds their temporaries).
SLICE_ROWS = 1 << 16


def norm_in_slices(n: int, part) -> float:
    """``scaled_norm`` of ``part(s)`` (a new array of non-negative values) over consecutive
    slices ``s`` of at most SLICE_ROWS of ``range(n)``: ``scaled_norm``'s bits when
    n <= SLICE_ROWS, the same norm to rounding otherwise, without temporaries of n rows."""
    return scaled_norm_in_parts(lambda: (part(slice(i, min(n, i + SLICE_ROWS))) for i in range(0, n, SLICE_ROWS)))


def block_error_in_slices(error: np.ndarray, rounding) -> float:
    """``block_error(error, rounding)`` in slices of SLICE_ROWS (the arrays are not written);
    ``rounding`` an array or a :class:`~fastgrad._compact.Patch` over ``error``."""
    from fastgrad._compact import rounding_rows

    n = error.size

    def parts():
        for i in range(0, n, SLICE_ROWS):
            rows = slice(i, min(n, i + SLICE_ROWS))
            yield np.array(error[rows]), np.array(rounding_rows(rounding, error, rows))

    return block_error_in_parts(parts, n)


def block_rms(magnitude: np.ndarray, block_ids: np.ndarray, n_blocks: int) -> np.ndarray:
    """Each component's block root-mean-square of ``magnitude`` (overflow-safe)."""
    result = np.zeros(magnitude.size)
    for b in range(n_blocks):
        members = _members(block_ids, b)
        if _count(members):
            result[members] = scaled_norm(magnitude[members]) / math.sqrt(_count(members))
    return result


def in_states(state: np.ndarray, states: tuple[int, ...]) -> np.ndarray:
    """bool per component: its state is one of ``states`` (``np.isin``'s result).

    Compared in slices of SLICE_ROWS: ``np.isin`` on int8 states makes
    temporaries of the whole array in a wider dtype (a full check's size).
    """
    state = np.asarray(state)
    found = np.zeros(state.shape, bool)
    flat_state, flat_found = state.reshape(-1), found.reshape(-1)
    for start in range(0, flat_state.size, SLICE_ROWS):
        rows = slice(start, start + SLICE_ROWS)
        part = flat_state[rows]
        for value in states:
            flat_found[rows] |= part == value
    return found


def count_states(state: np.ndarray, states: tuple[int, ...]) -> int:
    """How many components' states are one of ``states`` (counted in slices: no temporary of all of them)."""
    return sum(int(np.count_nonzero(in_states(state[i:i + SLICE_ROWS], states)))
               for i in range(0, state.size, SLICE_ROWS))


def rows_where(n: int, test) -> np.ndarray:
    """The rows of ``range(n)`` where ``test(rows)`` (a bool array for a slice of rows) holds, ascending.

    Tested in slices of SLICE_ROWS: no mask of all ``n`` rows is made.
    """
    found = [np.flatnonzero(test(slice(start, start + SLICE_ROWS))) + start for start in range(0, n, SLICE_ROWS)]
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _members(block_ids: np.ndarray, b: int) -> slice | np.ndarray:
    """The positions of block ``b``: a slice when they are one run (views, not copies), else an index array."""
    where = np.flatnonzero(block_ids == b)
    if where.size and int(where[-1]) - int(where[0]) + 1 == where.size:
        return slice(int(where[0]), int(where[-1]) + 1)
    return where


def _count(members: slice | np.ndarray) -> int:
    return members.stop - members.start if isinstance(members, slice) else int(members.size)
