"""The one driver every gradient check runs through.

    public call -> CheckOptions -> Engine -> run_check -> engine.evaluate (kernels) -> Report

:func:`run_check` measures the cost's noise, chooses the steps, runs the
engine over the components in time-sized chunks (progress bar, Ctrl-C),
refines the components whose first pair of evaluations is not conclusive (the
difference table of ``fastgrad._differences``), and builds the
:class:`~fastgrad.report.Report`. :func:`estimate` is the same without an
analytic gradient (``numerical_gradient``). Directional checks run through the
same measurement on a :class:`~fastgrad.engines.DirectionalEngine`.
"""

from __future__ import annotations

import dataclasses
import math

import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from fastgrad import _differences as fd
from fastgrad._compact import Patch
from fastgrad._layout import Layout
from fastgrad._memory import require_memory
from fastgrad._threads import blas_on_one_thread
from fastgrad._options import DIRECTION_REDRAWS, CheckOptions
from fastgrad.engines import DirectionalEngine, Engine

__all__ = ["run_check", "estimate", "CheckInterrupted", "NonFiniteCostError", "Measured"]

#: Aim for chunks of about this many seconds: responsive to Ctrl-C and the
#: progress bar, long enough to keep every thread busy.
CHUNK_SECONDS = 0.2
PROGRESS_AFTER_SECONDS = 1.0
#: A value from the table is tried once more at its finest step times these
#: (off the grid of powers of two the table's steps lie on, one just below the
#: finest step and one far below it; see _Measurement._check_off_grid).
OFF_GRID = (2.0 ** -0.5, 2.0 ** -4.5)
#: _check_fine_step: the component's rounding may move each fine difference by
#: about 1/share of the discrepancy it tests (the steps that allows)...
FINE_SHARES = (4.0, 2.0)
#: ... each used only this many times below the component's own step ...
FINE_BELOW = 8.0
#: ... and at first on this many components of a block, spread over it; of
#: those it left wrong, this many are searched for jumps (_check_jumps).
FINE_SAMPLE = 16
JUMP_SAMPLE = 4
#: A table flat at this many steps establishes its value (_establish_flat_tables).
FLAT_LEVELS = 6


class NonFiniteCostError(FloatingPointError):
    """The cost returned NaN or infinity at a perturbed point."""


class CheckInterrupted(KeyboardInterrupt):
    """Ctrl-C during a check; ``partial`` holds the result for the components done.

    ``partial`` is a :class:`~fastgrad.report.Report` from ``gradcheck`` (None
    when no component was done), an :class:`~fastgrad.numerical.Estimate` from
    ``estimate_gradient``.
    """

    def __init__(self, partial: object, message: str = "check interrupted") -> None:
        super().__init__(message)
        self.partial = partial


class _Stop(Exception):
    """Internal: Ctrl-C arrived; evaluation stopped between chunks."""


# --------------------------------------------------------------------------- #
# Chunks, progress and Ctrl-C
# --------------------------------------------------------------------------- #


class _Runner:
    """Runs an engine over components in chunks sized by time.

    Ctrl-C becomes a flag while compiled kernels run (a KeyboardInterrupt
    raised inside Numba's boxing of results becomes a SystemError or worse);
    the runner stops between chunks and raises :class:`_Stop`.
    """

    def __init__(self, engine: Engine, total: int, progress: bool | None, description: str) -> None:
        self.engine = engine
        self.total = total
        self.done = 0
        self.chunk = max(1, engine.traits.first_chunk)
        self.enabled = progress if progress is not None else bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.description = description
        self.started = time.perf_counter()
        self.bar = None
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_Runner":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if self.bar is not None:
            self.bar.close()

    def _handler(self, signum, frame) -> None:
        self.requested = True

    def run(self, n: int, chunk, count: bool = True) -> None:
        """Call ``chunk(start, stop)`` over ``range(n)`` in time-sized pieces.

        Ctrl-C (flagged, or raised inside the cost) raises :class:`_Stop` with
        the number of rows done; the rows of an interrupted chunk are lost.
        """
        start = 0
        while start < n:
            if self.requested:
                raise _Stop(start)
            stop = min(n, start + self.chunk)
            began = time.perf_counter()
            try:
                chunk(start, stop)
            except KeyboardInterrupt:
                # Raised inside the cost itself (a Python cost, or outside the main
                # thread): the rows of this chunk are lost, the others kept.
                self.requested = True
                raise _Stop(start) from None
            elapsed = time.perf_counter() - began
            rate = (stop - start) / max(elapsed, 1e-9)
            traits = self.engine.traits
            self.chunk = int(min(max(1, rate * (traits.chunk_seconds or CHUNK_SECONDS)),
                                 traits.chunk_growth * self.chunk + 1))
            if count:
                self._advance(stop - start)
            start = stop
        if self.requested:
            raise _Stop(n)

    def evaluate(self, indices: np.ndarray, points: np.ndarray, count: bool = True):
        """``engine.evaluate`` over all rows, chunk by chunk."""
        n = indices.size
        values = np.empty(points.shape, dtype=np.float64)
        kinks = np.zeros(n, dtype=np.uint8)
        status = np.zeros(n, dtype=np.uint8)

        def chunk(start: int, stop: int) -> None:
            v, k, s = self.engine.evaluate(indices[start:stop], np.ascontiguousarray(points[start:stop]))
            values[start:stop], kinks[start:stop], status[start:stop] = v, k, s

        try:
            self.run(n, chunk, count)
        except _Stop as stop:
            raise _Stop(stop.args[0], values, kinks, status) from None
        return values, kinks, status

    def _advance(self, step: int) -> None:
        self.done += step
        if not self.enabled:
            return
        if self.bar is None:
            elapsed = time.perf_counter() - self.started
            if elapsed / max(self.done, 1) * self.total < PROGRESS_AFTER_SECONDS:
                return
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, desc=self.description, unit="comp",
                            unit_scale=True, dynamic_ncols=True, leave=False)
        else:
            self.bar.update(step)


# --------------------------------------------------------------------------- #
# Measurement
# --------------------------------------------------------------------------- #


@dataclass
class Measured:
    """Numerical derivatives of some components, with measured errors and states."""

    approx: np.ndarray
    error: np.ndarray
    rounding: np.ndarray  # the part of error that is rounding (independent between components)
    state: np.ndarray
    steps: np.ndarray
    low: np.ndarray    # subgradient range at kinks (NaN elsewhere)
    high: np.ndarray
    done: int          # components measured (fewer than asked after Ctrl-C)


def measure_noise(engine: Engine, layout: Layout | None) -> float:
    """The cost's rounding noise (standard deviation), from the engine's own evaluations.

    Each of a few components (one from each of the largest blocks, chosen from
    all of theta, so partial checks of the same point measure the same noise and
    merge exactly) is moved along a short line by ``engine.evaluate``, the same
    call the check makes; the largest noise found is the check's.
    """
    if engine.traits.complex_step:
        # The complex step subtracts nothing: its error does not depend on the
        # cost's noise (its derivative's own: complex_step_noise).
        return 0.5 * fd.EPS_MACH * abs(engine.cost_value)
    levels = []
    for k in _noise_components(layout, engine.theta.size):
        found = []
        spacings = [(spacing, fd.NOISE_OFFSET) for spacing in fd.NOISE_SPACINGS]
        while spacings:
            spacing, offset = spacings.pop(0)
            points = fd.noise_points(float(engine.theta[k]), spacing, offset)
            values, _ = _noise_line(engine, k, points)
            sigma, clean = fd.noise_level(values, engine.cost_value)
            coarse = offset == fd.COARSE_NOISE_OFFSET
            if math.isnan(sigma):
                # The line did not move: smaller spacings show nothing more. At the
                # first spacing, larger ones may: a cost computed in float32 moves
                # only in steps of its own resolution, and that is its noise.
                if not found and spacing == fd.NOISE_SPACINGS[0]:
                    spacings = [(spacing, fd.COARSE_NOISE_OFFSET) for spacing in fd.COARSE_NOISE_SPACINGS]
                elif offset != fd.COARSE_NOISE_OFFSET:
                    spacings = []  # (a coarse line still flat: the next coarser one)
                continue
            if coarse and not clean:
                # At a coarse spacing only noise that looks like noise counts: the
                # smooth part of the cost would pass for a huge noise.
                continue
            found.append(sigma)
            if clean:
                break
        # A line that never looked like noise: its smallest estimate (the smooth
        # part shrinks with the spacing, the noise does not). A line flat at every
        # spacing measured nothing: the floor, half an ulp of J.
        floor = 0.5 * fd.EPS_MACH * abs(engine.cost_value)
        level = found[-1] if clean else (min(found) if found else floor)
        if clean and spacing != fd.NOISE_SPACINGS[-1]:
            level = _finer_noise(engine, k, level, points)
        levels.append(level)
    return float(max(levels))


#: Parts each round of :func:`_find_jumps` cuts its interval into, and how
#: many intervals of a line it follows; the points of a scan
#: (:meth:`_Measurement._check_jumps`, :func:`_finer_noise`) and a
#: component's scan's half-width, relative to the component (or absolute at
#: zero): a float16 term's stairs are 1e-3 of it wide, and two must show.
JUMP_PARTS = 8
JUMP_CANDIDATES = 3
JUMP_SCAN_POINTS = 33
JUMP_SCAN_SPAN = 2e-3


def _finer_noise(engine: Engine, k: int, level: float, points: np.ndarray) -> float:
    """The noise along component ``k`` at a finer spacing, when far below ``level`` (what a coarser one showed).

    The finest spacing first; where its line shows no clean noise, the ones
    between. A finer line also lies nearer theta (a thousand spacings away):
    where J's rounding grows away from theta (a tiny loss, whose rounding is
    that of its residuals) it measures the noise the steps will meet.

    Rounding noise does not depend on the spacing; structure does. A ripple
    far finer than any step (``1e-9 sin(1e7 theta)``) looks like noise at a
    spacing near its period, and a noise that large would send the steps up
    until they average it away, measuring a derivative the cost does not have.
    At a spacing far below its period the ripple is smooth, and the noise
    measured there is the cost's own: the steps then start small and the table
    goes down to where the ripple is resolved, or leaves it unresolved.

    A staircase gives the same two levels: a cost summed partly in float32 moves
    in jumps of float32's resolution, which look like noise at the coarser
    spacing, while the finest line falls between two jumps and sees only the
    float64 rest. There the coarse level is the cost's noise (a step inside one
    stair measures the float64 part's slope alone). The two are told apart by
    continuity (:func:`_find_jumps`): a ripple is smooth at the finest spacing,
    a staircase is not. One jump is not a staircase (a fee switched on at a
    threshold the line happens to cross): a line of ``JUMP_SCAN_POINTS`` at the
    coarse spacing, centred on the coarse one, must show two. ``points`` are
    the coarser line.
    """
    spacing = float(points[1] - points[0])
    value = float(engine.theta[k])
    finer = None
    # The finest spacing first; then those between (finest to coarsest) where it
    # showed no clean noise: a cost whose noise grows away from theta (a tiny
    # loss: J's rounding is that of its residuals, which the line's distance,
    # a thousand spacings, enlarges) shows its noise at theta on a nearer line.
    between = [s for s in fd.NOISE_SPACINGS[:-1] if s * (abs(value) or 1.0) < 0.5 * spacing]
    for relative in (fd.NOISE_SPACINGS[-1], *between[::-1]):
        values_fine, failed = _noise_line(engine, k, fd.noise_points(value, relative))
        if failed:
            return level
        sigma, clean = fd.noise_level(values_fine, engine.cost_value)
        if clean:
            if not sigma * fd.STRUCTURE_FACTOR < level:
                return level
            finer = sigma
            break
    if finer is None:
        return level
    finest = fd.NOISE_SPACINGS[-1] * (abs(value) or 1.0)
    centre = 0.5 * float(points[0] + points[-1])
    line = centre + spacing * (np.arange(JUMP_SCAN_POINTS) - (JUMP_SCAN_POINTS - 1) / 2.0)
    line_values, failed = _noise_line(engine, k, line)
    if failed or not np.all(np.isfinite(line_values)):
        return finer
    return level if len(_find_jumps(engine, k, line, line_values, finest, finer)) >= 2 else finer


def _find_jumps(engine: Engine, k: int, points: np.ndarray, values: np.ndarray, finest: float, noise: float,
                candidates: int = JUMP_CANDIDATES) -> list[tuple[float, float]]:
    """Where ``J`` jumps along component ``k`` on the line ``points`` (values ``values``): ``(position, size)``.

    Discontinuities, not smooth bumps or kinks. The line's most irregular
    intervals (up to ``candidates``, apart) are found by its third differences
    (a jump stands out in them while a smooth cost's vanish as the spacing
    cubed). Each is cut in ``JUMP_PARTS`` and the part whose increment departs
    most from the median increment is kept, down to the ``finest`` spacing. A
    smooth cost's departure shrinks with the interval (at least
    ``JUMP_PARTS``-fold a round: a kink's), a jump's stays whole. It is a jump
    when what is left is above a sixteenth of the start and above the ``noise``
    by ``STRUCTURE_FACTOR / 2``; the cutting stops as soon as it cannot be.
    """
    increments = np.diff(values)
    departures = np.abs(increments - np.median(increments))
    if values.size >= 4:
        starts = []
        for i in np.argsort(np.abs(np.diff(values, 3)))[::-1]:
            i = int(i) + int(np.argmax(departures[i:i + 3]))
            if all(abs(i - j) > 2 for j in starts):
                starts.append(i)
            if len(starts) == candidates:
                break
    else:
        starts = [int(np.argmax(departures))]
    floor = 0.5 * fd.STRUCTURE_FACTOR * noise
    found = []
    for i in starts:
        start = left = float(departures[i])
        low, high = float(points[i]), float(points[i + 1])
        while high - low > finest and left * 16.0 >= start and left > floor:
            cut = np.linspace(low, high, JUMP_PARTS + 1)
            cut_values, failed = _noise_line(engine, k, cut)
            if failed or not np.all(np.isfinite(cut_values)):
                left = 0.0
                break
            cut_increments = np.diff(cut_values)
            cut_departures = np.abs(cut_increments - np.median(cut_increments))
            j = int(np.argmax(cut_departures))
            left = float(cut_departures[j])
            low, high = float(cut[j]), float(cut[j + 1])
        if high - low <= finest and left * 16.0 >= start and left > floor:
            found.append((0.5 * (low + high), left))
    return found


def complex_step_noise(engine: Engine, layout: Layout | None) -> np.ndarray:
    """Rounding noise of the complex step's derivative in each block of theta (ECnoise).

    The complex step takes no difference, but the derivative is a sum the cost
    computes, with its own rounding: at an optimum its terms cancel, and the
    result is noise of the size of their rounding. Along a short line of one
    component of each block (its middle one) the derivative's k-th differences
    are that noise; each block has its own (a block of parameters of size 1e6
    has derivatives, and noise, of another size). A line that measured nothing
    leaves its block the largest noise found. Returns one value per block.
    """
    spans = _block_spans(layout, engine.theta.size)
    found_by_block: dict[int, float] = {}
    for b, (offset, count) in enumerate(spans):
        if count == 0:
            continue
        k = offset + count // 2
        value = float(engine.theta[k])
        step = float(fd.base_steps(np.array([value]), 0.0, "complex")[0])
        found = []
        clean = False
        for spacing in fd.NOISE_SPACINGS:
            values, failed = _noise_line(engine, k, fd.noise_points(value, spacing) + 1j * step)
            derivative = values / step
            if failed or not np.all(np.isfinite(derivative)):
                break
            sigma, clean = fd.noise_level(derivative, float(np.max(np.abs(derivative))))
            if math.isnan(sigma):
                break
            found.append(sigma)
            if clean:
                break
        if found:
            found_by_block[b] = found[-1] if clean else min(found)
    largest = max(found_by_block.values(), default=0.0)
    return np.array([found_by_block.get(b, largest) for b in range(len(spans))])


def _noise_line(engine: Engine, k: int, points: np.ndarray) -> tuple[np.ndarray, bool]:
    """The engine's values along one noise line of component ``k``, and whether any evaluation failed."""
    try:
        values, _, status = engine.evaluate(np.array([k], dtype=np.int64), points[None, :])
    except KeyboardInterrupt:
        raise CheckInterrupted(None, "check interrupted before any component was done") from None
    return values[0], bool(np.any(status))


def _block_spans(layout: Layout | None, size: int) -> list[tuple[int, int]]:
    """``(offset, count)`` of each block of theta, in block order (one block without a layout)."""
    if layout is None:
        return [(0, size)]
    return list(zip(layout.offsets, layout._sizes))


def _noise_components(layout: Layout | None, size: int) -> np.ndarray:
    """Up to NOISE_LINES components of theta to measure the noise along, from the layout's blocks alone.

    The middle of each of the largest blocks, then evenly spread ones, chosen
    from all of theta (partial checks of one point measure the same noise),
    without per-component arrays (the NumPy reference is in the tests).
    """
    blocks = [(offset, count) for offset, count in _block_spans(layout, size) if count]
    chosen = []
    for offset, count in sorted(blocks, key=lambda block: -block[1]):  # stable: ties in block order
        chosen.append(offset + count // 2)
        if len(chosen) == fd.NOISE_LINES:
            break
    while len(chosen) < min(fd.NOISE_LINES, size):
        chosen.append((len(chosen) * size) // fd.NOISE_LINES)
    return np.array(sorted(set(chosen)), dtype=np.int64)


def _pass_one_layout(method: str) -> tuple[tuple[int, ...], int]:
    """Table levels evaluated for every component, and sides per level."""
    if method == "richardson":
        return (0, -1), 2
    if method == "forward":
        return (0,), 1
    return (0,), 2


def _raise_non_finite(bad: np.ndarray) -> None:
    shown = ", ".join(str(int(k)) for k in bad[:10]) + (" ..." if bad.size > 10 else "")
    raise NonFiniteCostError(
        f"The cost returned NaN or infinity at perturbed points of {bad.size} component(s): {shown}. "
        "Check the cost for log(0), division by zero or overflow near theta, or use a smaller eps."
    )


class _Measurement:
    """One measurement: steps, the first pair, the table of more steps, the states.

    ``indices`` are the components measured (None: every component of theta,
    in order, with no array of them made: see :meth:`_components`); ``base``
    and ``grad`` are theta and the analytic gradient at them (``grad`` None: nothing to judge,
    an estimate). :meth:`plan` lists what to run, in order: :meth:`first_pass`
    (every component: one pair), :meth:`second_level` (Richardson only: every
    component at ``s/2`` too), then either :meth:`unjudged` (no gradient) or
    :meth:`judge` (states from what is known), :meth:`refine` (more steps for
    the undecided) and :meth:`judge_kinks` (ranges of valid derivatives where a
    kink sits); ``method="complex"`` is the one step :meth:`complex_pass`. The
    caller runs each step itself and then takes :meth:`result`, so each step
    calls the runner, and the runner the engine, from the driver's own level.
    A step interrupted by Ctrl-C raises :class:`_Stop` holding the partial
    :class:`Measured`.
    """

    def __init__(self, runner, engine, indices, base, grad, opts, sigma, block_ids, n_blocks) -> None:
        self.runner, self.engine, self.indices, self.base, self.opts, self.sigma = (
            runner, engine, indices, base, opts, sigma)
        self.grad, self.block_ids, self.n_blocks = grad, block_ids, n_blocks
        self.n = n = base.size
        self.measured = None  # the complex step's result, which needs no table
        # The complex step's own derivative noise (complex_step_noise), set by the
        # caller (run_check); none here (an estimate without a gradient to judge).
        self.derivative_noise = _repeated(np.float64(0.0), n)
        if opts.method == "complex":
            return
        self.nominal = opts.eps is not None
        if self.nominal:
            self.steps = _repeated(np.float64(opts.eps), n)
            _check_explicit_step(base, self.steps, self._components)
        else:
            # One step for every component (see fd.base_steps): stored once.
            self.steps = _repeated(fd.base_step(fd.relative_noise(sigma, engine.cost_value), opts.method), n)
        # The table's step base per component: the first step, moved up with the
        # row's window when rounding keeps asking for larger steps (a copy of
        # ``steps`` made on the first move: see _next_levels).
        self.table_steps = self.steps
        self.work = np.zeros(0, np.int64)  # components with a table of more steps, ascending: table-row order
        self.table = fd.Table.empty(0)
        self.low = _repeated(np.float64(np.nan), n)
        self.high = _repeated(np.float64(np.nan), n)
        # Tables their off-grid values contradicted (_check_off_grid): one repeated
        # False until one is (then a full array, see _writable).
        self.aliased = _repeated(np.False_, n)
        # The refined rows' values of analysis fields that hold one repeated value
        # for every other row (see _put_analysis).
        self.overlay: _Overlay | None = None

    def plan(self) -> list:
        """The steps of this measurement, in the order the caller runs them."""
        if self.opts.method == "complex":
            return [self.complex_pass]
        steps = [self.first_pass] + ([self.second_level] if self.opts.method == "richardson" else [])
        if self.grad is None:
            return steps + [self.unjudged]
        return steps + [self.judge, self.refine, self.judge_kinks]

    def complex_pass(self) -> None:
        """The complex step: one evaluation per component, no difference taken."""
        runner, base, grad, opts = self.runner, self.base, self.grad, self.opts
        indices = self._components(slice(None))
        steps = fd.base_steps(base, 0.0, "complex") if opts.eps is None else np.full(base.size, opts.eps)
        points = (base + 1j * steps)[:, None]
        values, _, status = runner.evaluate(indices, points)
        bad = status.astype(bool) | ~np.isfinite(values[:, 0])
        if bad.any():
            _raise_non_finite(indices[bad])
        approx = values[:, 0] / steps
        # No difference is taken: the error is rounding relative to the derivative
        # (and to its block, for components far below their block's size), and at
        # least the noise of the derivative as the cost computes it (cancellation
        # at an optimum leaves a derivative far below its terms' rounding).
        block_ids = np.asarray(self.block_ids)  # (every row's: made once)
        rms = fd.block_rms(np.abs(approx), block_ids, self.n_blocks)
        error = 64.0 * fd.EPS_MACH * (np.abs(approx) + 1e-3 * rms) + fd.ROUNDING_FACTOR * self.derivative_noise
        state = np.full(indices.size, fd.AGREE, np.int8)
        if grad is not None:
            nan = np.full(approx.size, np.nan)
            no = np.zeros(approx.size, bool)
            analysis = fd.Analysis(approx, error, error, no, nan, nan, nan, np.zeros(approx.size, np.int64), no, ~no,
                                   ~no)
            state = fd.decide(grad, analysis, opts.threshold, rms, extra_error=_grad_rounding(grad, opts, block_ids))
        nan = np.full(indices.size, np.nan)
        self.measured = Measured(approx, error, error.copy(), state, steps, nan, nan.copy(), indices.size)

    def first_pass(self) -> None:
        """Evaluate the first level for every component.

        Without a gradient to judge, a non-finite cost is an error; with one,
        those components are tried again at smaller steps. Each chunk's points
        are made, evaluated and analysed (``fd.first_pass``, row by row) in
        turn: only the analysis of every row is kept, and the values too unless
        the engine is deterministic (then :meth:`judge` evaluates the few rows
        that need more steps again, and gets the same bits).
        """
        n = self.n
        _, sides = _pass_one_layout(self.opts.method)
        # Richardson puts every row in the table: its values are needed anyway.
        keep = self.opts.method == "richardson" or (self.grad is not None and not self.engine.traits.deterministic)
        values = np.empty((n if keep else 0, sides))
        kinks = np.zeros(n if keep else 0, np.uint8)
        bad = np.zeros(n, bool)
        columns = _Columns(n)
        engine, base, steps, nominal, sigma = self.engine, self.base, self.steps, self.nominal, self.sigma
        cost_value = engine.cost_value

        def chunk(start: int, stop: int, evaluate: bool = True) -> None:
            # The runner's chunk (sized by time) in pieces of bounded size: the
            # temporaries of evaluating and analysing a piece stay small.
            for first in range(start, stop, _FIRST_PASS_ROWS):
                piece(first, min(stop, first + _FIRST_PASS_ROWS), evaluate)

        def piece(start: int, stop: int, evaluate: bool) -> None:
            rows = slice(start, stop)
            points, offsets = fd.level_points(base[rows], steps[rows], np.zeros(stop - start, np.int64), nominal,
                                              sides)
            if evaluate:
                part, piece_kinks, status = engine.evaluate(self._components(rows), points)
                part = np.array(part, dtype=np.float64)  # (the engine's array may be its own buffer)
                b = self._clean_first(part, status)
            else:  # not evaluated (Ctrl-C)
                part = np.full(points.shape, np.nan)
                piece_kinks = np.zeros(stop - start, np.uint8)
                b = np.ones(stop - start, bool)
            if keep:
                values[rows], kinks[rows] = part, piece_kinks
            bad[rows] = b
            columns.put(rows, fd.first_pass(part, offsets, steps[rows], sigma, nominal, cost_value))

        try:
            self.runner.run(n, chunk)
            done, interrupted = n, False
        except _Stop as stop:
            # Ctrl-C: the rows done so far make the partial report (even all of them:
            # the refinement that would follow is not run, and the report says so).
            done, interrupted = stop.args[0], True
            chunk(done, n, evaluate=False)
        if bad[:done].any() and self.grad is None:
            _raise_non_finite(self._components(np.flatnonzero(bad[:done])))
        del bad
        self.first = (values, kinks) if keep else None
        if n == 0:
            self.analysis = fd.first_pass(np.empty((0, sides)), np.empty((0, sides)), steps, sigma, nominal, cost_value)
        else:
            self.analysis = columns.analysis()
        if interrupted:
            raise _Stop(self._partial(done))

    def _clean_first(self, values: np.ndarray, status: np.ndarray) -> np.ndarray:
        """The first level's values as differences, NaN where not finite (in place); returns those rows."""
        if not self.engine.traits.returns_differences:
            values -= self.engine.cost_value
        b = status.astype(bool)
        for column in values.T:  # (not .all(axis=1): NumPy reduces along a short axis slowly)
            b |= ~np.isfinite(column)
        values[b] = np.nan
        return b

    def _first_values(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first level's values and kinks at ``rows``: kept, or evaluated again (the same bits)."""
        if self.first is not None:
            values, kinks = self.first
            return values[rows], kinks[rows]
        _, sides = _pass_one_layout(self.opts.method)
        points, _ = fd.level_points(self.base[rows], self.steps[rows], np.zeros(rows.size, np.int64), self.nominal,
                                    sides)
        values, kinks, status = self.runner.evaluate(self._components(rows), points, count=False)
        self._clean_first(values, status)
        return values, kinks

    def _first_offsets(self, rows) -> np.ndarray:
        """The offsets the first pass took at ``rows`` (recomputed: the same rounding)."""
        _, sides = _pass_one_layout(self.opts.method)
        base, steps = self.base[rows], self.steps[rows]
        return fd.level_points(base, steps, np.zeros(base.size, np.int64), self.nominal, sides)[1]

    def second_level(self) -> None:
        """Richardson: every component gets the table, with ``s/2`` evaluated now."""
        values, kinks = self.first
        n = self.n
        offsets = self._first_offsets(slice(None))
        self.work = np.arange(n)
        self.table = fd.Table.empty(n)
        self.table.store(self.work, np.full(n, fd.ZERO_LEVEL), values, offsets, kinks)
        columns = np.full(n, fd.ZERO_LEVEL - 1)
        points, offsets = self._level_points(self.work, columns)
        try:
            self._store(self.work, columns, offsets, *self.runner.evaluate(self._components(slice(None)), points,
                                                                           count=False))
        except _Stop:
            raise _Stop(self._partial(0)) from None
        self.analysis = fd.analyse(self.table, self.table_steps, self.sigma, self.nominal, cost_value=self.engine.cost_value)

    def unjudged(self) -> None:
        """No gradient to judge: every value stands as measured."""
        self.state = np.full(self.n, fd.AGREE, np.int8)

    def _partial(self, done: int) -> Measured:
        """Ctrl-C before the refinement: the first pass of the rows done is all there is."""
        self.unjudged()
        if self.grad is not None:
            # Judged on the first pair alone: what needed more steps stays unresolved.
            grad, rows = self.grad, np.arange(done)
            magnitude = np.abs(grad[rows]) + np.abs(self.analysis.approx[rows])
            self.state[rows] = fd.decide(grad[rows], self._analysis_at(rows), self.opts.threshold,
                                         fd.block_rms(magnitude, self.block_ids[rows], self.n_blocks),
                                         extra_error=_grad_rounding(grad[rows], self.opts, self.block_ids[rows]))
            self.state[self.state == fd.UNDECIDED] = fd.UNRESOLVED
        return self.result(done)

    def judge(self) -> None:
        """States from what is known so far; the undecided get a table of more steps.

        A block whose measured error alone allows more than the threshold is not
        yet verified: its components whose own error exceeds their share are
        refined too (larger steps where rounding dominates, smaller where
        truncation does), until the table can do no better.
        """
        grad = self.grad
        # Per block, not per component: each block's floor on the scale (its
        # root-mean-square of |g| + |a|, as fd.block_rms), and the rounding of
        # grad computed where it is needed; their per-component arrays are not kept.
        self.block_scale = np.zeros(self.n_blocks)
        for b, members in _each_block(self.block_ids, self.n_blocks):
            if fd._count(members):
                self.block_scale[b] = self._magnitude_norm(members) / math.sqrt(fd._count(members))
        self._update_precision()
        # Row by row (decide is elementwise): its temporaries stay chunk-sized.
        self.state = np.empty(grad.size, np.int8)
        for start in range(0, grad.size, _DECIDE_ROWS):
            rows = slice(start, start + _DECIDE_ROWS)
            self.state[rows] = self._decide(rows, _view(self.analysis, rows))
        if not self.work.size:
            self.work = np.flatnonzero(self.state == fd.UNDECIDED)
            try:
                values, kinks = self._first_values(self.work)
            except _Stop:
                self.state[self.state == fd.UNDECIDED] = fd.UNRESOLVED
                raise _Stop(self.result()) from None
            self.table = fd.Table.empty(self.work.size)
            self.table.store(np.arange(self.work.size), np.full(self.work.size, fd.ZERO_LEVEL),
                             values, self._first_offsets(self.work), kinks)
        self.first = None  # the table holds what the refinement needs

    def _magnitude(self, rows) -> np.ndarray:
        """``|g| + |a|`` at ``rows`` (0 where ``a`` is not finite)."""
        approx = self.analysis.approx[rows]
        magnitude = np.abs(self.grad[rows])
        magnitude += np.abs(approx)
        magnitude[~np.isfinite(approx)] = 0.0
        return magnitude

    def _magnitude_norm(self, members) -> float:
        """``scaled_norm(self._magnitude(members))``, computed in row slices (slice-sized temporaries)."""
        return fd.scaled_norm_in_parts(lambda: (self._magnitude(rows) for rows in _slices(members, _DECIDE_ROWS)))

    def _grad_error(self, rows) -> np.ndarray:
        return _grad_rounding(self.grad[rows], self.opts, self.block_ids[rows])

    def _update_precision(self) -> None:
        """Which blocks are not yet verified, from the errors measured so far.

        ``fd.precision_targets``' rule, one block at a time in row slices (the
        temporaries are a slice's); each component's target is made where it
        is read (:meth:`_precision`), so no array of them is kept.
        """
        threshold = self.opts.threshold
        self.unverified = np.zeros(self.n_blocks, bool)
        error_all = self.analysis.error
        for b, members in _each_block(self.block_ids, self.n_blocks):
            if fd._count(members) == 0:
                continue
            scale = self._magnitude_norm(members)

            def parts(members=members):
                # The block in row slices: its temporaries stay slice-sized.
                for rows in _slices(members, _DECIDE_ROWS):
                    error = self._grad_error(rows)
                    rounding = error + self._rounding_at(rows)
                    error += error_all[rows]
                    yield error, rounding

            spread = fd.block_error_in_parts(parts, fd._count(members))
            self.unverified[b] = not (spread <= threshold * scale)

    def _precision(self, rows) -> np.ndarray:
        """The error target of components ``rows``: the threshold's share of ``max(|g| + |a|, block scale)``
        in a block not yet verified, infinity in the others (see :meth:`_update_precision`)."""
        ids = self.block_ids[rows]
        target = np.full(ids.size, np.inf)
        open_blocks = self.unverified[ids]
        if open_blocks.any():
            target[open_blocks] = self.opts.threshold * np.maximum(self._magnitude(rows)[open_blocks],
                                                                   self.block_scale[ids[open_blocks]])
        return target

    def _decide(self, rows, analysis, **options) -> np.ndarray:
        return fd.decide(self.grad[rows], analysis, self.opts.threshold, self.block_scale[self.block_ids[rows]],
                         extra_error=self._grad_error(rows), precision=self._precision(rows), **options)

    def _level_points(self, rows: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points and offsets of components ``rows`` at step levels ``columns`` (both sides)."""
        return fd.level_points(self.base[rows], self.table_steps[rows], fd.LEVELS[columns], self.nominal, 2)

    def _store(self, local: np.ndarray, columns: np.ndarray, offsets: np.ndarray, values, kinks, status) -> None:
        """Put what the runner returned for table rows ``local`` at step levels ``columns``."""
        if not self.engine.traits.returns_differences:
            values = values - self.engine.cost_value
        values[status.astype(bool)] = np.nan
        self.table.store(local, columns, values, offsets, kinks)

    def _next_levels(self, todo: np.ndarray, local: np.ndarray, sub: fd.Table) -> np.ndarray:
        """The next level of each undecided row; rows whose target lies past the
        table's coarsest column have their window moved up to reach it."""
        analysis = fd.analyse(sub, self.table_steps[todo], self.sigma, self.nominal, cost_value=self.engine.cost_value)
        if self.nominal:  # an explicit eps keeps its grid
            return fd.next_levels(sub, analysis)
        cap = fd.MAX_STEP_RATIO * np.maximum(np.abs(self.base[todo]), 1.0)
        level_cap = np.floor(np.log2(cap / self.table_steps[todo])).astype(np.int64) - fd.LEVELS[0]
        # Steps down to a thousand ulps of the component: its offsets stay exact to 1e-13.
        smallest = fd.MIN_STEP_ULPS * fd.EPS_MACH * np.maximum(np.abs(self.base[todo]), fd.MIN_STEP)
        level_floor = np.ceil(np.log2(smallest / self.table_steps[todo])).astype(np.int64) - fd.LEVELS[0]
        # The error that would decide: the block's precision target, or small enough
        # against the discrepancy for "wrong" to be told (then one more adjacent
        # level only confirms the pair, no jump).
        discrepancy = np.abs(self.grad[todo] - analysis.approx)
        wanted = np.minimum(self._precision(todo), discrepancy / (2.0 * fd.WRONG_FACTOR))
        target = fd.next_levels(sub, analysis, wanted=wanted, level_cap=level_cap, level_floor=level_floor)
        # Past either end of the table: the row's window moves (up, or down for a negative target).
        over = np.where(target == fd.NO_LEVEL, 0, np.maximum(target - (fd.LEVELS.size - 1), 0)
                        + np.minimum(target, 0))
        moved = over != 0
        if moved.any():
            if self.table_steps is self.steps or not self.table_steps.flags.writeable:
                self.table_steps = np.array(self.table_steps)
            self.table.shift(local[moved], over[moved])
            self.table_steps[todo[moved]] *= np.exp2(over[moved].astype(np.float64))
            target = target - over
        return target

    def refine(self) -> None:
        """More steps for undecided components, up to MAX_ROUNDS; then accept what was reached.

        On Ctrl-C, what is still undecided is unresolved.
        """
        try:
            work, state = self.work, self.state
            for _ in range(fd.MAX_ROUNDS):
                local = np.flatnonzero(state[work] == fd.UNDECIDED)
                todo = work[local]
                if todo.size == 0:
                    break
                sub = self.table.subset(local)
                target = self._next_levels(todo, local, sub)
                keep = target != fd.NO_LEVEL
                local, todo, target = local[keep], todo[keep], target[keep]
                if todo.size == 0:
                    break
                points, offsets = self._level_points(todo, target)
                self._store(local, target, offsets, *self.runner.evaluate(self._components(todo), points, count=False))
                sub = self.table.subset(local)
                self._put_analysis(fd.analyse(sub, self.table_steps[todo], self.sigma, self.nominal,
                                              cost_value=self.engine.cost_value), todo)
                # A block's truncation shows only now: its error targets follow what was measured.
                self._update_precision()
                state[todo] = self._decide(todo, self._analysis_at(todo))
            todo = work[state[work] == fd.UNDECIDED]
            state[todo] = self._decide(todo, self._analysis_at(todo), final=True)
            self._establish_flat_tables(todo)
            self._unresolve_staircases()
            self._check_off_grid()
            self._check_fine_step()
        except _Stop:
            self.state[self.state == fd.UNDECIDED] = fd.UNRESOLVED
            raise _Stop(self.result()) from None

    def _establish_flat_tables(self, rows: np.ndarray) -> None:
        """Values left unresolved only because their table is flat: established, and judged.

        A value is trusted to call a gradient wrong once its pairs follow the
        truncation pattern over four steps (``established``). Along a component
        the cost is nearly linear in (a tiny loss, an output layer), truncation
        stays below rounding at every step: there is no pattern to follow, the
        value is confirmed by a second pair and yet left unresolved, however far
        grad is from it. A table whose central differences at ``FLAT_LEVELS``
        steps or more all give the value within twice their rounding and its
        error is that value, measured across a factor of ``2**(FLAT_LEVELS - 1)``
        in step: it is established. An aliased one (steps all multiples of a
        period) is then caught by the off-grid check like every judged value.
        """
        rows = rows[self.state[rows] == fd.UNRESOLVED]
        if rows.size == 0:
            return
        analysis = self._analysis_at(rows)
        candidates = analysis.confirmed & ~analysis.established & ~analysis.kink & ~analysis.kink_possible
        rows, analysis = rows[candidates], _rows(analysis, candidates)
        if rows.size == 0:
            return
        local, _ = _positions(self.work, rows)  # (every one has a table: refine's rows)
        sub = self.table.subset(local)
        steps = self.table_steps[rows]
        central = fd.central_differences(sub, steps, self.nominal)
        sigma = fd.row_noise(self.sigma, self.engine.cost_value, np.hstack([sub.plus, sub.minus]))
        rounding = fd.ROUNDING_FACTOR * sigma[:, None] / (steps[:, None] * np.exp2(fd.LEVELS.astype(np.float64)))
        with np.errstate(invalid="ignore"):
            close = np.abs(central - analysis.approx[:, None]) <= 2.0 * (rounding + analysis.error[:, None])
        measured = np.isfinite(central)
        flat = (measured.sum(axis=1) >= FLAT_LEVELS) & np.all(close | ~measured, axis=1)
        rows = rows[flat]
        if rows.size:
            self._put_field("established", rows, np.ones(rows.size, bool))
            self.state[rows] = self._decide(rows, self._analysis_at(rows), final=True)

    def _check_fine_step(self) -> None:
        """Values that disagree with grad, measured again at two steps far below theirs.

        A table converged at steps above the scale the cost varies on (a ripple
        of period below the step: ``1e-12 sin(1e6 theta)``) settles, smoothly and
        with a small error, on the derivative of the smoothed cost; its off-grid
        steps are as coarse and agree. Such a value is unresolved when central
        differences at two fine steps (where the component's own rounding moves
        them by about 1/4 and 1/2 of the discrepancy) agree with each other and
        with grad, each within twice its rounding, and not with the value. The
        component's own noise is measured first (the check's comes from a few
        components; a term that cancels can round far more coarsely): steps
        that small, with its noise unmeasured, could land anywhere. On a smooth
        cost the fine differences repeat the value, so a wrong value stays
        wrong; a bug smaller than their rounding under such a ripple cannot be
        told and is unresolved. Each block is sampled first: a block wrong
        throughout (a bug) is not measured a second time.
        """
        if self.nominal:
            return
        rows = np.flatnonzero(fd.in_states(self.state, (fd.WRONG, fd.SETTLED)))
        if rows.size == 0:
            return
        analysis = self._analysis_at(rows)
        grad, approx = self.grad[rows], analysis.approx
        with np.errstate(invalid="ignore"):
            keep = ((np.abs(grad - approx) > self.opts.threshold * (np.abs(grad) + np.abs(approx)))
                    & ~analysis.kink_possible & ~analysis.kink)
        rows = rows[keep]
        for _, members in _each_block(self.block_ids[rows], self.n_blocks):
            block_rows = rows[members]
            if block_rows.size == 0:
                continue
            sample = np.unique(block_rows[np.linspace(0, block_rows.size - 1, min(FINE_SAMPLE, block_rows.size))
                                          .round().astype(np.int64)])
            flipped, sigma = self._fine_rows(sample)
            scanned = np.flatnonzero(~flipped)[:JUMP_SAMPLE]
            jumped = self._check_jumps(sample[scanned], sigma[scanned])
            if flipped.any() or jumped.any():
                rest = np.setdiff1d(block_rows, sample)
                flipped_rest, sigma_rest = self._fine_rows(rest)
                if jumped.any():
                    # Stairs along one component are likely along its neighbours: every value is scanned.
                    left = np.setdiff1d(np.flatnonzero(~flipped), scanned)
                    self._check_jumps(sample[left], sigma[left])
                    self._check_jumps(rest[~flipped_rest], sigma_rest[~flipped_rest])

    def _check_jumps(self, rows: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Values that disagree with grad where ``J`` has stairs along their component: unresolved.

        A term rounded more coarsely than the rest of the cost, along this
        component only (a float16 term, one parameter cast to float32), makes a
        staircase the check's noise lines, on other components, never see: a
        table inside one stair measures the slope without the stairs, one across
        them their average. A line of ``JUMP_SCAN_POINTS`` over ``JUMP_SCAN_SPAN``
        of the component (at least ``FINE_BELOW`` of its steps) is searched for
        jumps (:func:`_find_jumps`, against the component's own noise ``sigma``,
        the check's where NaN). Stairs are two jumps or more, or one within the
        steps the table took (a single jump beyond them, a fee switched on at a
        threshold, does not touch the derivative at theta). The component is
        unresolved only when the other reading, the line's average slope
        (central differences over its whole and its half width, within their
        spread and a jump's share), agrees with grad: a value both readings
        contradict stays wrong. A smooth cost has no jumps. Returns which of
        ``rows`` were left unresolved.
        """
        unresolved = np.zeros(rows.size, bool)
        if rows.size == 0:
            return unresolved
        base, grad = self.base[rows], self.grad[rows]
        scale = np.where(base != 0.0, np.abs(base), 1.0)
        span = np.maximum(JUMP_SCAN_SPAN * scale, FINE_BELOW * self.steps[rows])
        lines = base[:, None] + span[:, None] * np.linspace(-1.0, 1.0, JUMP_SCAN_POINTS)
        components = self._components(rows)
        values, _, status = self.runner.evaluate(components, lines, count=False)
        noise = np.where(np.isfinite(sigma), sigma, self.sigma)
        reach = self._reach(rows)
        last, half = JUMP_SCAN_POINTS - 1, (JUMP_SCAN_POINTS - 1) // 4
        for r in np.flatnonzero(~status.astype(bool) & np.all(np.isfinite(values), axis=1)):
            finest = fd.NOISE_SPACINGS[-1] * float(scale[r])
            jumps = _find_jumps(self.engine, int(components[r]), lines[r], values[r], finest, float(noise[r]))
            if not (len(jumps) >= 2 or any(abs(at - base[r]) <= 2.0 * reach[r] for at, _ in jumps)):
                continue
            v, x = values[r], lines[r]
            whole = (v[last] - v[0]) / (x[last] - x[0])
            inner = (v[last - half] - v[half]) / (x[last - half] - x[half])
            biggest = max((size for _, size in jumps), default=0.0)
            error = (abs(whole - inner) + 2.0 * (biggest + fd.ROUNDING_FACTOR * noise[r]) / (x[last - half] - x[half])
                     + self.opts.threshold * (abs(grad[r]) + abs(whole)))
            unresolved[r] = abs(whole - grad[r]) <= error
        self.state[rows[unresolved]] = fd.UNRESOLVED
        return unresolved

    def _reach(self, rows: np.ndarray) -> np.ndarray:
        """The largest offset the check evaluated at each of components ``rows`` (its first step without a table)."""
        reach = np.array(self.steps[rows], dtype=np.float64)
        if self.work.size:
            local, found = _positions(self.work, rows)
            offsets = np.abs(np.hstack([self.table.off_plus[local], self.table.off_minus[local]]))
            widest = np.max(np.where(np.isfinite(offsets), offsets, 0.0), axis=1)
            reach[found] = np.maximum(reach[found], widest[found])
        return reach

    def _fine_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """_check_fine_step for components ``rows``: which of them it left unresolved, and their own noise."""
        flipped = np.zeros(rows.size, bool)
        sigma = np.full(rows.size, np.nan)
        if rows.size == 0:
            return flipped, sigma
        cost_value = self.engine.cost_value
        base, grad, approx = self.base[rows], self.grad[rows], self.analysis.approx[rows]
        discrepancy = np.abs(grad - approx)
        # The component's own noise, at the finest spacing of measure_noise.
        lines = np.stack([fd.noise_points(float(b), fd.NOISE_SPACINGS[-1]) for b in base])
        values, _, status = self.runner.evaluate(self._components(rows), lines, count=False)
        for r in np.flatnonzero(~status.astype(bool)):
            level, _ = fd.noise_level(values[r], cost_value)
            if not math.isnan(level):  # (NaN: the line did not move, quantised: no fine step)
                sigma[r] = max(self.sigma, level)
        central, rounding = [], []
        with np.errstate(divide="ignore", invalid="ignore"):
            for share in FINE_SHARES:
                step = share * fd.ROUNDING_FACTOR * sigma / discrepancy
                step = np.maximum(step, fd.MIN_STEP_ULPS * fd.EPS_MACH * np.maximum(np.abs(base), fd.MIN_STEP))
                step = np.where(np.isfinite(step), step, self.steps[rows])  # (not evaluated: no answer below)
                values, offsets, kinks, status = self._pair_differences(rows, step)
                width = offsets[:, 0] - offsets[:, 1]
                fine = (values[:, 0] - values[:, 1]) / width
                bad = status.astype(bool) | kinks.astype(bool) | ~np.isfinite(fine) | ~np.isfinite(sigma)
                # Only far below the component's own step is there anything to learn.
                bad |= FINE_BELOW * step > self.steps[rows]
                central.append(np.where(bad, np.nan, fine))
                noise = np.maximum(sigma, fd.row_noise(self.sigma, cost_value, values))
                rounding.append(fd.ROUNDING_FACTOR * np.sqrt(2.0) * noise / width)
            threshold = self.opts.threshold
            flipped[:] = np.abs(central[0] - central[1]) <= 2.0 * (rounding[0] + rounding[1])
            for fine, error in zip(central, rounding):
                allowed = 2.0 * error + threshold * (np.abs(grad) + np.abs(fine))
                flipped &= (np.abs(fine - grad) <= allowed) & (np.abs(fine - approx) > allowed)
        self.state[rows[flipped]] = fd.UNRESOLVED
        return flipped, sigma

    def _pair_differences(self, rows: np.ndarray, step: np.ndarray):
        """``J(theta_k + step) - J(theta)`` and ``J(theta_k - step) - J(theta)`` of components ``rows``,
        with the offsets really taken (``(n, 2)`` each), kinks and status."""
        base = self.base[rows]
        points = np.stack([base + step, base - step], axis=1)
        values, kinks, status = self.runner.evaluate(self._components(rows), points, count=False)
        if not self.engine.traits.returns_differences:
            values = values - self.engine.cost_value
        return values, points - base[:, None], kinks, status

    def _unresolve_staircases(self) -> None:
        """Wrong values whose cost did not move at all at any step: flat, or a staircase?

        A cost that rounds its input (``np.round``, a float16 cast) is piecewise
        constant: at steps below its resolution ``J`` does not change at all, and
        the table confidently measures a zero derivative. A dead unit's cost is
        flat as well, and there zero is right. One pair at the largest step the
        rules allow tells them apart: a cost that moves there is a staircase,
        whose small-step zeros say nothing, and the component is unresolved.
        """
        if self.nominal or not self.work.size:
            return
        rows = np.flatnonzero(self.state[self.work] == fd.WRONG)
        if rows.size == 0:
            return
        table = self.table
        seen = table.both_sides()[rows]
        flat = seen.sum(axis=1) >= 2
        for values in (table.plus[rows], table.minus[rows]):
            flat &= np.all(np.where(seen, values == 0.0, True), axis=1)
        rows = rows[flat]
        if rows.size == 0:
            return
        todo = self.work[rows]
        base = self.base[todo]
        step = fd.MAX_STEP_RATIO * np.maximum(np.abs(base), 1.0)
        points = np.stack([base + step, base - step], axis=1)
        values, _, status = self.runner.evaluate(self._components(todo), points, count=False)
        moved = (values[:, 0] != values[:, 1]) & ~status.astype(bool) & np.isfinite(values).all(axis=1)
        self.state[todo[moved]] = fd.UNRESOLVED

    def _check_off_grid(self) -> None:
        """Values from the table tried once more at steps off its grid of powers of two.

        A cost that oscillates with a period the steps are close to a multiple
        of (``sin(1e6 theta)`` at steps of many periods), or with a ripple far
        finer than the steps, gives a table that follows its pattern at every
        power of two, and a derivative that is not the cost's. At the finest
        step times ``OFF_GRID`` (below it, and between its powers of two) a
        smooth cost's difference differs from the estimate by about ``ratio**2``
        times the finest one's truncation (a one-sided slope's by ``ratio``
        times), within the errors; an aliased one does not. A value whose table
        fails this is unresolved, neither right nor wrong; a wrong one just
        outside (within ``WRONG_FACTOR`` times that range) has the disagreement
        added to its error and is judged again, a right one stands. At a kink
        the same holds for each one-sided slope (outside: unresolved).
        """
        if self.nominal or not self.work.size:
            return
        judged = (fd.WRONG, fd.KINK_WRONG, fd.AGREE, fd.KINK_AGREE, fd.SETTLED)
        rows = np.flatnonzero(fd.in_states(self.state[self.work], judged))
        if rows.size == 0:
            return
        todo = self.work[rows]
        table, analysis, j0 = self.table, self._analysis_at(todo), self.engine.cost_value
        finest = np.argmax(table.both_sides()[rows], axis=1)
        grid_plus, grid_minus = table.plus[rows, finest], table.minus[rows, finest]
        grid_off_plus, grid_off_minus = table.off_plus[rows, finest], table.off_minus[rows, finest]
        kink = fd.in_states(self.state[todo], (fd.KINK_WRONG, fd.KINK_AGREE))
        base = self.base[todo]
        with np.errstate(invalid="ignore", divide="ignore"):
            grid_central = (grid_plus - grid_minus) / (grid_off_plus - grid_off_minus)
            grid_slopes = (grid_plus / grid_off_plus, grid_minus / grid_off_minus)
        gap, inside, within_factor = np.zeros(rows.size), np.ones(rows.size, bool), np.ones(rows.size, bool)
        no_answer = np.zeros(rows.size, bool)
        for ratio in OFF_GRID:
            step = np.abs(grid_off_plus) * ratio
            values, offsets, kinks, status = self._pair_differences(todo, step)
            sigma = fd.row_noise(self.sigma, j0, values)
            no_answer |= status.astype(bool) | ~np.isfinite(values).all(axis=1) | kinks.astype(bool).reshape(rows.size, -1).any(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                off_central = (values[:, 0] - values[:, 1]) / (offsets[:, 0] - offsets[:, 1])
                off_gap = np.abs(off_central - analysis.approx)
                # Central truncation is second order: at ``ratio`` times the finest step it
                # is about ``ratio**2`` times the finest one's (half as much again allowed).
                envelope = (1.5 * ratio**2 * np.abs(grid_central - analysis.approx)
                            + 2.0 * (analysis.error + fd.ROUNDING_FACTOR * sigma / step))
                sides = np.ones(rows.size, bool)
                side_rounding = fd.ROUNDING_FACTOR * np.sqrt(2.0) * sigma / step
                for side, limit in ((0, analysis.right), (1, analysis.left)):
                    # A one-sided slope's truncation is first order: at ``ratio`` times the
                    # step it is about ``ratio`` times the finest one's (half as much again allowed).
                    sides &= (np.abs(values[:, side] / offsets[:, side] - limit)
                              <= 1.5 * ratio * np.abs(grid_slopes[side] - limit)
                              + 2.0 * (analysis.side_error + side_rounding))
            inside &= np.where(kink, sides, off_gap <= envelope)
            within_factor &= ~kink & (off_gap <= fd.WRONG_FACTOR * envelope)
            gap = np.fmax(gap, off_gap)
        wrong = fd.in_states(self.state[todo], (fd.WRONG, fd.KINK_WRONG))
        # A value the engine could not give (or that crossed a kink it saw) says
        # nothing: a wrong value stays unconfirmed, a right one as it was. A right
        # one is contradicted only far outside (noise the line did not show, at
        # the smaller off-grid steps, is no aliasing).
        settled = np.where(no_answer, ~wrong, inside | (~wrong & within_factor))
        widened = ~settled & ~no_answer & within_factor
        if widened.any():
            again = todo[widened]
            self._put_field("error", again, self.analysis.error[again] + gap[widened])
            self.state[again] = self._decide(again, self._analysis_at(again), final=True)
        aliased = todo[~settled & ~widened]
        self.state[aliased] = fd.UNRESOLVED
        if aliased.size:
            _writable(self, "aliased")[aliased] = True

    def judge_kinks(self) -> None:
        """Values at a kink against the range of valid derivatives (per example where the engine can)."""
        analysis, state, engine = self.analysis, self.state, self.engine
        # Rows, not masks of every component: a full check's masks would be its size each.
        # (A table its off-grid values contradicted says nothing, at a kink or not.)
        kinked = fd.rows_where(state.size, lambda rows: analysis.kink[rows] & (state[rows] != fd.AGREE)
                             & ~self.aliased[rows])
        if engine.traits.exact_kinks and self.work.size:
            # The engine saw a kink at every step tried: too close to theta for
            # any step to avoid, so judge the value against the examples' ranges.
            unavoidable = self.work[self.table.kinked.any(axis=1) & (state[self.work] == fd.UNRESOLVED)]
            kinked = np.union1d(kinked, unavoidable)
        if engine.traits.per_example:
            # Kinks of single examples can cancel in the total (one example's
            # slope jumps up where another's jumps down): the total then looks
            # smooth, and a back-prop's valid choice at those examples differs
            # from its derivative. Before anything is called wrong, look at the examples.
            suspect = fd.rows_where(state.size, lambda rows: fd.in_states(state[rows], (fd.WRONG, fd.UNDECIDED,
                                                                                      fd.UNRESOLVED)))
            kinked = np.union1d(kinked, self._hidden_kinks(np.setdiff1d(suspect, kinked, assume_unique=True)))
        if not (kinked.size and engine.traits.per_example):
            return
        _writable(analysis, "kink")[kinked] = True
        low, high, width = _example_brackets(engine, self._components(kinked), self.base[kinked], self.steps[kinked])
        exact = getattr(engine, "subgradient_range", None)
        found = None if exact is None else exact(self._components(kinked))
        if found is not None:
            # Every choice of slope at the units exactly on a kink (a back-prop may make any).
            low, high = np.minimum(low, found[0]), np.maximum(high, found[1])
        _writable(self, "low")[kinked] = low
        _writable(self, "high")[kinked] = high
        sub = self._analysis_at(kinked)
        sub.side_error = width
        state[kinked] = self._decide(kinked, sub, bracket=(low, high), at_range=True)
        self._put_field("side_error", kinked, width)

    def _hidden_kinks(self, rows: np.ndarray) -> np.ndarray:
        """Those of ``rows`` where some example has a kink at theta although the total looks smooth."""
        if rows.size == 0:
            return rows
        engine = self.engine
        exact = getattr(engine, "subgradient_range", None)
        if exact is not None:
            # The dense engine knows which units sit exactly on a kink.
            found = exact(self._components(rows))
            if found is None:
                return rows[:0]
            low, high = found
            return rows[high > low]
        return rows[_examples_at_kinks(engine, self._components(rows), self.base[rows], self.steps[rows])]

    def result(self, done: int | None = None, patched: bool = False) -> Measured:
        """The measured derivatives of the first ``done`` components (default: all).

        ``patched``: the rounding may be a :class:`Patch` over the error (where
        the first pass left them one array, and refinement changed a few rows).
        """
        if self.measured is not None:
            return self.measured
        done = self.n if done is None else done
        rounding = self._rounding_patch()
        if rounding is not None and not (patched and self.analysis.rounding is self.analysis.error):
            rounding = rounding.over(self.analysis.rounding)
        return _finish(self.analysis, self.state, self.steps, self.low, self.high, done, self._analysis_at,
                       rounding=rounding)

    def _rounding_patch(self) -> Patch | None:
        """The rows whose rounding the overlay holds, over ``analysis.rounding`` (None: none held, see _put_field)."""
        if self.overlay is None or "rounding" not in self.overlay.values or self.overlay.rows.size == 0:
            return None
        return Patch(self.overlay.rows, self.overlay.values["rounding"])

    def _rounding_at(self, rows: slice | np.ndarray) -> np.ndarray:
        """The rounding of ``rows`` (a copy), the overlay's values included."""
        patch = self._rounding_patch()
        return np.array(self.analysis.rounding[rows]) if patch is None else patch.over(self.analysis.rounding, rows)

    def _components(self, rows: slice | np.ndarray) -> np.ndarray:
        """The int64 components of theta at ``rows`` (a slice, or positions)."""
        if self.indices is not None:
            return self.indices[rows]
        if isinstance(rows, slice):
            return np.arange(*rows.indices(self.n), dtype=np.int64)
        return np.asarray(rows, dtype=np.int64)

    def _analysis_at(self, rows: np.ndarray) -> fd.Analysis:
        """The analysis of components ``rows`` (copies), the overlay's values included."""
        part = _rows(self.analysis, rows)
        if self.overlay is not None:
            self.overlay.read(part, rows)
        return part

    def _put_analysis(self, part: fd.Analysis, rows: np.ndarray) -> None:
        """Write the analysis of components ``rows`` (ascending or not, each once)."""
        for name in fd.Analysis.__dataclass_fields__:
            self._put_field(name, rows, getattr(part, name))

    def _put_field(self, name: str, rows: np.ndarray, value: np.ndarray) -> None:
        """Write one field at ``rows``.

        A field that holds one repeated value (a read-only zero-stride array) is
        not made a full array when a few rows change: those rows' values go to
        the overlay. The fields read for every row (_READ_IN_FULL) are made full.
        Where the first pass left ``rounding`` the same array as ``error`` (see
        _Columns), the rounding of rows written is kept in the overlay: written
        there, and held there before their error changes.
        """
        if name in ("error", "rounding") and self.analysis.rounding is self.analysis.error:
            if self.overlay is None:
                self.overlay = _Overlay(self.work, self.analysis, also=("rounding",))
            if name == "rounding":
                self.overlay.write(name, rows, value, self.analysis)
                return
            self.overlay.hold(rows, self.analysis)  # their rounding: the error they have now
        elif name == "rounding" and self.overlay is not None and name in self.overlay.values:
            self.overlay.write(name, rows, value, self.analysis)
            return
        target = getattr(self.analysis, name)
        if target.flags.writeable:
            target[rows] = value
            return
        if self.overlay is None:
            self.overlay = _Overlay(self.work, self.analysis)
        if name in self.overlay.values:
            self.overlay.write(name, rows, value, self.analysis)
        elif not _same_bits(value, target[:1]):  # (the same value written again changes nothing)
            _writable(self.analysis, name)[rows] = value


def _grad_rounding(grad: np.ndarray, opts: CheckOptions, block_ids: np.ndarray) -> np.ndarray:
    """Allowance for the rounding of the user's gradient in its own dtype (each block's; ``block_ids``: the rows')."""
    return fd.grad_rounding(grad, opts.grad_dtype, opts.block_dtypes, block_ids)


def _check_explicit_step(base: np.ndarray, steps: np.ndarray, components) -> None:
    """Raise when the explicit step does not move some component; ``components(rows)``: their numbers in theta."""
    unchanged = np.flatnonzero((base + steps == base) | (base - steps == base))
    if unchanged.size:
        r = int(unchanged[0])
        k = int(components(unchanged[:1])[0])
        raise ValueError(
            f"eps={steps[r]:g} is too small to change component {k} (theta[{k}] = {base[r]!r}): "
            f"theta[{k}] + eps rounds back to theta[{k}]. Use a larger eps, or eps=None for a step "
            "scaled to each component."
        )


def _positions(ascending: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where ``rows`` lie in the ascending ``ascending``, and which of them are there."""
    place = np.minimum(np.searchsorted(ascending, rows), max(ascending.size - 1, 0))
    found = ascending[place] == rows if ascending.size else np.zeros(np.size(rows), bool)
    return place, found


def _rows(analysis: fd.Analysis, rows: np.ndarray) -> fd.Analysis:
    return fd.Analysis(*(getattr(analysis, f)[rows].copy() for f in fd.Analysis.__dataclass_fields__))


#: Analysis fields read at every row (precision targets, kinks, the result): never in an overlay.
_READ_IN_FULL = ("approx", "error", "rounding", "kink")


class _Overlay:
    """Values of some analysis fields at a few rows, over a field that repeats one value elsewhere.

    The fields are those of ``analysis`` that are read-only (zero-stride) when
    the overlay is made, except those read for every row (_READ_IN_FULL), and
    those named in ``also``; ``rows`` (sorted) starts as the components
    refinement may write, and grows when others are written. Reading a field
    at any rows: the array's values, then these.
    """

    def __init__(self, rows: np.ndarray, analysis: fd.Analysis, also: tuple[str, ...] = ()) -> None:
        self.rows = np.unique(rows)
        self.values = {name: np.array(getattr(analysis, name)[self.rows])
                       for name in fd.Analysis.__dataclass_fields__
                       if name in also or (name not in _READ_IN_FULL and not getattr(analysis, name).flags.writeable)}

    def _find(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where ``rows`` lie in ``self.rows``, and which of them are there."""
        return _positions(self.rows, rows)

    def read(self, part: fd.Analysis, rows: np.ndarray) -> None:
        if not self.values:
            return
        place, found = self._find(rows)
        if found.any():
            for name, values in self.values.items():
                getattr(part, name)[found] = values[place[found]]

    def hold(self, rows: np.ndarray, analysis: fd.Analysis) -> None:
        """Hold ``rows`` from now on: those not yet held, with the values they have now."""
        place, found = self._find(rows)
        if not found.all():
            grown = np.union1d(self.rows, rows)
            for field, values in self.values.items():
                now = np.array(getattr(analysis, field)[grown])
                where, held = self._find(grown)
                now[held] = values[where[held]]
                self.values[field] = now
            self.rows = grown

    def write(self, name: str, rows: np.ndarray, value, analysis: fd.Analysis) -> None:
        self.hold(rows, analysis)
        place, _ = self._find(rows)
        self.values[name][place] = value


def _each_block(block_ids: np.ndarray, n_blocks: int):
    """``(b, positions of block b)`` for every block: slices when ``block_ids`` is sorted, else ``fd._members``'s."""
    if isinstance(block_ids, _BlockRuns):
        yield from block_ids.runs()
        return
    n = block_ids.size
    if _ascending(block_ids):
        # (Block numbers in block_ids' own dtype: others would make a copy of it in theirs.)
        starts = np.searchsorted(block_ids, np.arange(n_blocks, dtype=block_ids.dtype), side="left").tolist()
        bounds = [*starts, n]
        for b in range(n_blocks):
            yield b, slice(bounds[b], bounds[b + 1])
    else:
        for b in range(n_blocks):
            yield b, fd._members(block_ids, b)


def _ascending(values: np.ndarray) -> bool:
    """``values`` never decrease (compared in parts: no temporary of their size)."""
    for start in range(0, values.size - 1, _DECIDE_ROWS):
        stop = min(values.size, start + _DECIDE_ROWS + 1)
        if not bool(np.all(values[start + 1:stop] >= values[start:stop - 1])):
            return False
    return True


def _slices(members, size: int):
    """``members`` (a slice, or an array of positions) in consecutive parts of at most ``size``."""
    if isinstance(members, slice):
        for start in range(members.start, members.stop, size):
            yield slice(start, min(members.stop, start + size))
    else:
        for start in range(0, members.size, size):
            yield members[start:start + size]


def _view(analysis: fd.Analysis, rows: slice) -> fd.Analysis:
    """The rows ``rows`` (a slice) of every field, as views."""
    return fd.Analysis(*(getattr(analysis, f)[rows] for f in fd.Analysis.__dataclass_fields__))


#: Rows per call of ``decide`` over every component (bounds its temporaries).
_DECIDE_ROWS = 1 << 16
#: Rows per piece of the first pass (bounds the temporaries of a time-sized chunk).
_FIRST_PASS_ROWS = 1 << 14


def _repeated(value: np.generic, n: int) -> np.ndarray:
    """``n`` copies of ``value`` as a read-only zero-stride array (no memory per row)."""
    return np.broadcast_to(np.asarray(value).reshape(1), (n,))


def _same_bits(values: np.ndarray, one: np.ndarray) -> bool:
    """Every entry of ``values`` has the bits of ``one[0]`` (NaN included)."""
    values = np.asarray(values)
    if values.dtype != one.dtype:
        return False
    if values.size == 0:
        return True
    if values.ndim == 1 and values.strides[0] == 0:
        values = values[:1]  # repeated already: one value to compare
    kind = f"u{values.dtype.itemsize}"
    return bool(np.all(values.view(kind) == one.view(kind)[0]))


def _same_bits_everywhere(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` and ``b`` have the same dtype and shape and the same bits in every entry (NaN included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    kind = f"u{a.dtype.itemsize}"
    return bool(np.array_equal(a.view(kind), b.view(kind)))


def _compact(values: np.ndarray) -> np.ndarray:
    """``values``, or a zero-stride view of its one value when every entry has the same bits."""
    if values.ndim == 1 and values.size > 1 and values.strides[0] != 0 and _same_bits(values, values[:1]):
        return _repeated(values[0], values.size)
    return values


def _writable(owner: object, name: str) -> np.ndarray:
    """``owner.name``, first replaced by a writable copy when it is a read-only (repeated) array."""
    array = getattr(owner, name)
    if not array.flags.writeable:
        array = np.array(array)
        setattr(owner, name, array)
    return array


class _Columns:
    """An :class:`fd.Analysis` of ``n`` rows assembled from consecutive slices.

    A field whose rows all have the same bits is kept as one value (a
    zero-stride view); the others as full arrays. While every row's rounding
    has the bits of its error (a first pass: one pair tells no truncation),
    rounding is not stored: the analysis's ``rounding`` is its ``error`` array
    itself (see :meth:`_Measurement._put_field` for how writes keep them apart).
    """

    def __init__(self, n: int) -> None:
        self.n, self.full, self.one, self.filled = n, {}, {}, 0
        self.rounding_is_error = True

    def _stored(self, name: str, rows: slice) -> np.ndarray:
        """Field ``name`` at ``rows`` (already put) as stored."""
        return self.full[name][rows] if name in self.full else np.broadcast_to(self.one[name], (rows.stop - rows.start,))

    def put(self, rows: slice, part: fd.Analysis) -> None:
        for name in fd.Analysis.__dataclass_fields__:
            value = np.asarray(getattr(part, name))
            if name == "rounding" and self.rounding_is_error:
                if _same_bits_everywhere(value, np.asarray(part.error)):
                    continue
                # Apart from here on: the rows before have the rounding of their error.
                self.rounding_is_error = False
                full = np.empty(self.n, dtype=value.dtype)
                full[: rows.start] = self._stored("error", slice(0, rows.start))
                full[rows] = value
                self.full[name] = full
                continue
            if name in self.full:
                self.full[name][rows] = value
                continue
            if name not in self.one and value.size:
                self.one[name] = value[:1].copy()
            if name not in self.one or _same_bits(value, self.one[name]):
                continue
            full = np.empty(self.n, dtype=value.dtype)
            full[: rows.start] = self.one.pop(name)
            full[rows] = value
            self.full[name] = full

    def analysis(self) -> fd.Analysis:
        fields = {name: self.full[name] if name in self.full else _repeated(self.one[name][0], self.n)
                  for name in fd.Analysis.__dataclass_fields__ if not (name == "rounding" and self.rounding_is_error)}
        if self.rounding_is_error:
            fields["rounding"] = fields["error"]  # one array, the same object
        return fd.Analysis(**fields)


def _finish(analysis, state, steps, low, high, done, at=None, rounding=None) -> Measured:
    """The measured values; their arrays may share memory with ``analysis`` (read, never written).

    ``at(rows)``: the analysis of ``rows`` (default: ``analysis``'s own rows).
    ``rounding``: every row's rounding, a new array, or a :class:`Patch` over
    ``analysis.error`` (default: ``analysis.rounding``); a patch gives a patch.
    """
    n = state.size
    low = _repeated(np.float64(np.nan), n) if low is None else low
    high = _repeated(np.float64(np.nan), n) if high is None else high
    kink = analysis.kink & fd.in_states(state, (fd.KINK_AGREE, fd.KINK_WRONG))
    given = rounding is not None  # (a new array: the minimum below may overwrite it)
    rounding = analysis.rounding if rounding is None else rounding
    if not kink.any():
        # Nothing at a kink: the errors stand as analysed.
        error = _compact(analysis.error)
        if isinstance(rounding, Patch):
            rounding = Patch(rounding.rows, np.minimum(rounding.values, error[rounding.rows]))
        elif rounding is analysis.error:
            rounding = error  # every row's rounding is its error: one array
        else:
            rounding = _compact(np.minimum(rounding, error, out=rounding if given else None))
        return Measured(analysis.approx, error, rounding, state, steps, low, high, done)
    kinked = np.flatnonzero(kink)
    sub = _rows(analysis, kinked) if at is None else at(kinked)
    no_bracket = np.isnan(low[kinked])
    if no_bracket.any():
        low, high = np.array(low), np.array(high)
        low[kinked[no_bracket]] = np.minimum(sub.left, sub.right)[no_bracket]
        high[kinked[no_bracket]] = np.maximum(sub.left, sub.right)[no_bracket]
    error = np.array(analysis.error)
    error[kinked] = sub.side_error
    if isinstance(rounding, Patch):  # over analysis.error: the kinks' rows join it
        rows = np.union1d(rounding.rows, kinked)
        values = np.minimum(rounding.over(analysis.error, rows), error[rows])
        values[np.isin(rows, kinked)] = 0.0  # a range's width is not noise
        return Measured(analysis.approx, error, Patch(rows, values), state, steps, low, high, done)
    rounding = np.minimum(rounding, error, out=rounding if given else None)
    rounding[kinked] = 0.0  # a range's width is not noise
    return Measured(analysis.approx, error, rounding, state, steps, low, high, done)


def _example_secants(engine, at_theta, k, base_k, step):
    """Each example's right and left secant slopes in component ``k`` at ``+-step``.

    Returns ``(right, left, up, down)``: the slopes and the offsets really taken.
    """
    point = engine.theta.copy()
    point[k] = base_k + step
    up = point[k] - base_k
    right = (np.asarray(engine.example_terms(point)) - at_theta) / up
    point[k] = base_k - step
    down = base_k - point[k]
    left = (at_theta - np.asarray(engine.example_terms(point))) / down
    return right, left, up, down


def _examples_at_kinks(engine, indices, base, steps) -> np.ndarray:
    """Whether some example's loss has a kink at theta, per component (bool).

    An example's right and left secants differ by about ``s f''`` where it is
    smooth (halving with the step) and by the jump in slope at a kink (staying):
    an example whose difference does not shrink when the step halves, and is
    far above its rounding, sits on a kink.
    """
    at_theta = np.asarray(engine.example_terms(engine.theta), dtype=np.float64)
    rounding = 8.0 * fd.EPS_MACH * np.abs(at_theta)
    found = np.zeros(indices.size, bool)
    for r, k in enumerate(indices):
        gaps = []
        for s in (steps[r], 0.5 * steps[r]):
            right, left, up, down = _example_secants(engine, at_theta, k, base[r], s)
            gaps.append((np.abs(right - left), rounding * (1.0 / up + 1.0 / down)))
        (wide, wide_noise), (narrow, narrow_noise) = gaps
        found[r] = bool(np.any((narrow > 0.75 * wide) & (narrow > 8.0 * (narrow_noise + wide_noise))))
    return found


def _example_brackets(engine, indices, base, steps):
    """Per-example one-sided slopes summed: the subgradient range of a sum of losses.

    Each example's secants at ``+-s`` enclose its derivative whether or not its
    kink lies within ``s`` (a kink inside: both one-sided slopes; none: its smooth
    derivative, between the secants of a convex or concave piece), so the first
    step serves: the smaller steps of the table would only add rounding.
    """
    terms_at_theta = np.asarray(engine.example_terms(engine.theta), dtype=np.float64)
    low = np.empty(indices.size)
    high = np.empty(indices.size)
    width = np.empty(indices.size)
    for r, k in enumerate(indices):
        right, left, up, down = _example_secants(engine, terms_at_theta, k, base[r], steps[r])
        low[r] = float(np.sum(np.minimum(left, right)))
        high[r] = float(np.sum(np.maximum(left, right)))
        # Each example's left and right secants enclose its derivative where it is
        # smooth on [-s, s] (convex or concave there), and its one-sided ones at its
        # kink: the range needs no curvature allowance, only the rounding of the
        # per-example differences (a few ulps of each term per step).
        width[r] = 8.0 * fd.EPS_MACH * float(np.sum(np.abs(terms_at_theta))) / min(up, down)
    return low, high, width


# --------------------------------------------------------------------------- #
# Public entry points (called by gradcheck, DenseNet.gradcheck, numerical_gradient)
# --------------------------------------------------------------------------- #


def _block_ids(layout: Layout | None, indices: np.ndarray | None, size: int) -> tuple[np.ndarray, int]:
    """Each component's block number, in the narrowest unsigned dtype that holds it, and the count.

    ``indices`` None: every one of the ``size`` components, in order.
    """
    n = size if indices is None else indices.size
    if layout is None:
        return _BlockRuns(np.array([n], dtype=np.int64)), 1
    n_blocks = len(layout.names)
    if indices is None:
        return _BlockRuns(np.asarray(layout._ends, dtype=np.int64)), n_blocks
    return layout.block_of(indices).astype(np.min_scalar_type(max(n_blocks - 1, 0))), n_blocks


class _BlockRuns:
    """The block numbers of rows that are every component in order, kept as each block's end.

    Reads like the array of them (``ids[rows]``, ``np.asarray(ids)``), which a
    full check does not make: ``ids[rows]`` makes that part only.
    """

    def __init__(self, ends: np.ndarray) -> None:
        self.ends = ends
        self.size = int(ends[-1]) if ends.size else 0
        self.dtype = np.min_scalar_type(max(ends.size - 1, 0))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice) and rows.step in (None, 1):
            first, last, _ = rows.indices(self.size)
            ids = np.empty(max(last - first, 0), dtype=self.dtype)
            start = 0
            for b, end in enumerate(self.ends.tolist()):  # (each block's run: a fill, no search)
                if end > first and start < last:
                    ids[max(start, first) - first:min(end, last) - first] = b
                start = end
            return ids
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(self.size))
        return np.searchsorted(self.ends, np.asarray(rows), side="right").astype(self.dtype)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        ids = self[:]
        return ids if dtype is None else ids.astype(dtype)

    def runs(self):
        """``(b, slice of block b)`` for every block."""
        start = 0
        for b, end in enumerate(self.ends.tolist()):
            yield b, slice(start, end)
            start = end


def _everything(indices: np.ndarray | None, size: int) -> bool:
    """``indices`` is None or ``arange(size)`` (a full check)."""
    if indices is None:
        return True
    n = indices.size
    return n == size and (n == 0 or (indices[0] == 0 and indices[-1] == n - 1
                                     and bool(np.all(indices[1:] > indices[:-1]))))


def estimate(engine: Engine, opts: CheckOptions, description: str = "numerical gradient"):
    """Numerical derivatives of ``opts.indices`` (no analytic gradient to judge)."""
    from fastgrad.numerical import Estimate

    indices = opts.indices  # None: every component
    base = engine.theta if indices is None else engine.theta[indices]
    with blas_on_one_thread(), _Runner(engine, base.size, opts.progress, description) as runner:
        sigma = measure_noise(engine, None)
        work = _Measurement(runner, engine, indices, base, None, opts, sigma, np.zeros(base.size, np.uint8), 1)
        try:
            for step in work.plan():
                step()
        except _Stop as stop:
            partial = stop.args[0]
            part = Estimate.from_measured(_head_indices(indices, partial.done), _head(partial, partial.done), opts,
                                          engine, sigma)
            raise CheckInterrupted(part, f"check interrupted after {partial.done} of {base.size} components") from None
    return Estimate.from_measured(indices, work.result(), opts, engine, sigma)


def _head_indices(indices: np.ndarray | None, count: int) -> np.ndarray | None:
    """The first ``count`` of ``indices`` (None, every component in order: still None)."""
    return None if indices is None else indices[:count]


def _head(measured: Measured, count: int) -> Measured:
    return Measured(*(getattr(measured, f)[:count] for f in ("approx", "error", "rounding", "state", "steps", "low",
                                                             "high")), count)


def run_check(
    engine: Engine, grad: np.ndarray, opts: CheckOptions, layout: Layout | None, *,
    description: str = "gradcheck", terms=None, notes: tuple[str, ...] = (), real_engine=None,
    grad_owned: bool = False,
):
    """Check ``grad`` (the full analytic gradient, float64) against ``engine``; returns a Report.

    ``terms``, when given, is called as ``terms(estimate, grad_selected)`` and
    returns extra :class:`~fastgrad.report.TermResult` rows (the dense
    network's L2 penalty check). ``real_engine``, for ``method="complex"``,
    builds an engine of the same cost at real points: components where the
    complex step disagrees with the gradient are measured again with central
    differences there (the complex step sees one side of a kink only).
    ``grad_owned``: ``grad`` is the caller's own working array, used nowhere
    else afterwards (fastgrad's back-prop): a full check keeps it in the report
    (read-only) instead of a copy.
    """
    from fastgrad.numerical import Estimate
    from fastgrad.report import Report

    if opts.mode == "directional":
        with blas_on_one_thread(), _Runner(engine, 0, False, description) as guard:
            sigma = measure_noise(engine, layout)
            if guard.requested:
                raise CheckInterrupted(None, "check interrupted before any component was done")
            return _run_directional(engine, grad, opts, layout, sigma, description)
    indices = opts.indices
    everything = _everything(indices, engine.theta.size)
    if everything:
        indices = None  # every component, in order: no array of them is made
    n = engine.theta.size if indices is None else indices.size
    # Per component: the first pair of values and offsets, points, the analysis,
    # the report (about 24 float64s); the table of further steps is for a few.
    require_memory(24 * 8 * n, f"a gradient check of {n:,} components")
    block_ids, n_blocks = _block_ids(layout, indices, n)
    grad_selected = (grad if grad_owned else grad.copy()) if everything else grad[indices]
    # theta itself when every component is checked (only read).
    base = engine.theta if everything else engine.theta[indices]
    # Ctrl-C is deferred from here on: it stops the check between chunks, with the partial report.
    # BLAS stays on one thread: its own threads would take the cores Numba's need.
    with blas_on_one_thread(), _Runner(engine, n, opts.progress, description) as runner:
        sigma = measure_noise(engine, layout)
        work = _Measurement(runner, engine, indices, base, grad_selected, opts, sigma, block_ids, n_blocks)
        if engine.traits.complex_step:
            work.derivative_noise = complex_step_noise(engine, layout)[np.asarray(block_ids)]
        try:
            # Each step in turn from here: the steps call the runner, the runner the engine.
            for step in work.plan():
                step()
            del step  # a bound method of the measurement: it would keep its arrays alive
        except _Stop as stop:
            partial = stop.args[0]
            if partial.done == 0:
                raise CheckInterrupted(None, "check interrupted before any component was done") from None
            part = _head(partial, partial.done)
            est = Estimate.from_measured(_head_indices(indices, partial.done), part, opts, engine, sigma)
            report = Report.build(
                grad_selected[: partial.done], est, opts.threshold, layout, engine.theta.size,
                grad_dtype=opts.grad_dtype, block_dtypes=opts.block_dtypes, mode=opts.mode,
                notes=notes + (f"interrupted: only {partial.done} of {n} components were checked",),
                interrupted=True,
            )
            raise CheckInterrupted(report, f"check interrupted after {partial.done} of {n} components") from None
    measured = work.result(patched=True)
    del work, base  # the measurement's own arrays go before the report's are made
    if opts.method == "complex" and real_engine is not None:
        measured, notes = _recheck_complex(measured, real_engine, grad, opts, layout, indices, block_ids, n_blocks,
                                           description, notes)
    del block_ids
    est = Estimate.from_measured(indices, measured, opts, engine, sigma)
    del measured
    extra = () if terms is None else tuple(terms(est, grad_selected))
    # The estimate's arrays and grad_selected are this check's own: the report takes them as they are.
    return Report.build(grad_selected, est, opts.threshold, layout, engine.theta.size, grad_dtype=opts.grad_dtype,
                        block_dtypes=opts.block_dtypes, mode=opts.mode, terms=extra, notes=notes, owned=True)


def _recheck_complex(measured: Measured, real_engine, grad, opts, layout, indices, block_ids, n_blocks,
                     description, notes):
    """Central differences, with their table and kink tests, where the complex step disagreed.

    The complex step is exact to rounding where the cost is analytic, and blind
    to kinks: at ``|x|`` or a ReLU exactly at zero it returns one side's slope,
    and a valid subgradient between the two would fail. Only the components it
    did not confirm are measured again; the rest keep the complex step's value.
    """
    again = np.flatnonzero(measured.state != fd.AGREE)
    if again.size == 0:
        return measured, notes
    engine = real_engine()
    components = again if indices is None else indices[again]
    central = dataclasses.replace(opts, method="central", eps=None, indices=components)
    with blas_on_one_thread(), _Runner(engine, again.size, opts.progress, description) as runner:
        sigma = measure_noise(engine, layout)
        work = _Measurement(runner, engine, components, engine.theta[components], grad[components],
                            central, sigma, block_ids[again], n_blocks)
        try:
            for step in work.plan():
                step()
        except _Stop:
            raise CheckInterrupted(None, "check interrupted while re-measuring the complex step's disagreements") from None
    redone = work.result()
    # Only a kink (or a value a kink nearby leaves unresolved) overrules the complex
    # step: where the cost is smooth its value is the exact one, and a small error
    # it found must not hide behind the central differences' larger error.
    kinked = fd.in_states(redone.state, (fd.KINK_AGREE, fd.KINK_WRONG, fd.UNRESOLVED))
    # ... or central differences that contradict it beyond both errors (at a
    # symmetric kink the central value is the mean of the two slopes).
    with np.errstate(invalid="ignore"):
        kinked |= (np.abs(redone.approx - measured.approx[again])
                   > fd.WRONG_FACTOR * (redone.error + measured.error[again]))
    if not kinked.any():
        return measured, notes
    for name in ("approx", "error", "rounding", "state", "steps", "low", "high"):
        _writable(measured, name)[again[kinked]] = getattr(redone, name)[kinked]
    note = (f"{int(kinked.sum())} component(s) where the complex step disagreed were measured again by central "
            "differences, which contradict it there (a kink: the complex step sees one side of it only)")
    return measured, notes + (note,)


def _direction_weights(grad: np.ndarray, layout: Layout | None) -> np.ndarray:
    """Per-component weights that give every block a comparable share of ``grad . v``.

    A block whose gradient is a millionth of another's would otherwise move
    ``grad . v`` by a millionth: a wrong gradient there could not show. Each
    block is weighted by the inverse of its gradient's root-mean-square (at
    most a million times the smallest weight, so a zero block still moves).
    """
    block_ids, n_blocks = _block_ids(layout, None, grad.size)
    rms = fd.block_rms(np.abs(grad), np.asarray(block_ids), n_blocks)
    largest = float(np.max(rms)) if rms.size else 0.0
    if largest == 0.0 or not np.isfinite(largest):
        return np.ones(grad.size)
    return 1.0 / np.maximum(rms, 1e-6 * largest)


def _draw_directions(rng, weights: np.ndarray, count: int, mask: np.ndarray | None) -> np.ndarray:
    z = rng.standard_normal((count, weights.size)) * weights[None, :]
    if mask is not None:
        z[:, ~mask] = 0.0
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(norms > 0, norms, 1.0)


def _directional_measure(engine, grad, opts, sigma, rng, mask, layout):
    """Measure ``opts.directions`` clean directions (redrawing those that cross a kink)."""
    weights = _direction_weights(grad, layout)
    directions = _draw_directions(rng, weights, opts.directions, mask)
    keep = np.zeros(opts.directions, bool)
    results = None
    for _ in range(1 + DIRECTION_REDRAWS):
        dengine = DirectionalEngine(engine, directions)
        analytic = directions @ grad
        # Moving every component at once changes all of a long sum's rounding:
        # the noise along the directions themselves, not along one component.
        line_sigma = max(sigma, measure_noise(dengine, None))
        with _Runner(dengine, opts.directions, False, "directional") as runner:
            work = _Measurement(runner, dengine, np.arange(opts.directions), np.zeros(opts.directions), analytic,
                                opts, line_sigma, np.zeros(opts.directions, np.int64), 1)
            for step in work.plan():
                step()
            measured = work.result()
        clean = ~fd.in_states(measured.state, (fd.KINK_AGREE, fd.KINK_WRONG, fd.UNRESOLVED))
        if results is None:
            results = (analytic.copy(), measured)
        else:
            old_analytic, old = results
            take = ~keep & clean
            old_analytic[take] = analytic[take]
            for name in ("approx", "error", "rounding", "state", "steps"):
                _writable(old, name)[take] = getattr(measured, name)[take]
        keep |= clean
        if keep.all():
            break
        redraw = _draw_directions(rng, weights, opts.directions, mask)
        directions = np.where(keep[:, None], directions, redraw)
    analytic, measured = results
    _writable(measured, "state")[~keep] = fd.UNRESOLVED
    return analytic, measured, int(keep.sum())


def _run_directional(engine, grad, opts, layout, sigma, description):
    from fastgrad.report import Report

    rng = np.random.default_rng(opts.seed)
    try:
        return _directional(engine, grad, opts, layout, sigma, rng)
    except _Stop:
        raise CheckInterrupted(None, "directional check interrupted (its directions are not a partial result)") from None


def _directional(engine, grad, opts, layout, sigma, rng):
    from fastgrad.report import Report

    # A direction mixes every block: its gradient carries the least precise block's rounding.
    whole = dataclasses.replace(opts, block_dtypes=())
    analytic, measured, clean = _directional_measure(engine, grad, whole, sigma, rng, None, layout)
    per_block = []
    report = Report.directional_report(analytic, measured, whole, layout, engine, sigma, clean, ())
    # Each block on its own where the whole failed (to locate the fault), and
    # always where the blocks' dtypes differ: the whole's allowance is its least
    # precise block's, and a float64 block's bug would hide in it.
    if (report.verdict == "fail" or opts.block_dtypes) and layout is not None and len(layout.names) > 1:
        for b, name in enumerate(layout.names):
            mask = np.zeros(engine.theta.size, bool)
            mask[layout.slice(name)] = True
            if not mask.any():
                continue
            own = dataclasses.replace(whole, grad_dtype=opts.block_dtypes[b]) if opts.block_dtypes else whole
            a, m, c = _directional_measure(engine, grad, own, sigma, rng, mask, layout)
            per_block.append((name, a, m, c, own.grad_dtype))
        report = Report.directional_report(analytic, measured, whole, layout, engine, sigma, clean, per_block)
    return report
