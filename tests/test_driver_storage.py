"""The driver's compact storage gives the same components and values as the plain arrays."""

import numpy as np
import pytest

from fastgrad import _differences as fd
from fastgrad import _driver
from fastgrad._layout import Layout


def _reference_noise_components(indices: np.ndarray, block_ids: np.ndarray) -> np.ndarray:
    """The rule on per-component arrays: the middle of each of the largest blocks, then evenly spread ones."""
    chosen = []
    blocks, counts = np.unique(block_ids, return_counts=True)
    for b in blocks[np.argsort(-counts, kind="stable")]:
        members = indices[block_ids == b]
        chosen.append(int(members[members.size // 2]))
        if len(chosen) == fd.NOISE_LINES:
            break
    while len(chosen) < min(fd.NOISE_LINES, indices.size):
        chosen.append(int(indices[(len(chosen) * indices.size) // fd.NOISE_LINES]))
    return np.array(sorted(set(chosen)), dtype=np.int64)


@pytest.mark.parametrize("seed", range(40))
def test_noise_components_from_the_layout_match_the_per_component_rule(seed):
    rng = np.random.default_rng(seed)
    n_blocks = int(rng.integers(1, 8))
    shapes = [tuple(int(d) for d in rng.integers(0, 6, size=rng.integers(1, 3))) for _ in range(n_blocks)]
    layout = Layout(tuple(f"B{b}" for b in range(n_blocks)), tuple(shapes))
    everything = np.arange(layout.size)
    expected = _reference_noise_components(everything, layout.block_of(everything))
    np.testing.assert_array_equal(_driver._noise_components(layout, layout.size), expected)
    for size in (0, 1, 3, 17):
        expected = _reference_noise_components(np.arange(size), np.zeros(size, np.int64))
        np.testing.assert_array_equal(_driver._noise_components(None, size), expected)


def test_repeated_values_are_stored_once_and_copied_on_write():
    values = np.full(1000, 0.25)
    compact = _driver._compact(values)
    assert compact.strides == (0,) and not compact.flags.writeable
    np.testing.assert_array_equal(compact, values)
    varied = values.copy()
    varied[3] = 0.5
    assert _driver._compact(varied) is varied
    # -0.0 and 0.0 compare equal but are not the same bits: kept apart.
    signed = np.zeros(4)
    signed[2] = -0.0
    assert _driver._compact(signed) is signed

    class Holder:
        pass

    holder = Holder()
    holder.a = compact
    _driver._writable(holder, "a")[5] = 1.0
    assert holder.a.flags.writeable and holder.a[5] == 1.0 and holder.a[4] == 0.25


def test_columns_assemble_the_analysis_of_every_row():
    rng = np.random.default_rng(1)
    n = 257
    values = rng.standard_normal((n, 2)) * 1e-6
    values[[3, 100]] = np.nan
    steps = np.full(n, 1e-5)
    offsets = np.stack([steps, -steps], axis=1)
    whole = fd.first_pass(values, offsets, steps, 1e-15, False, 2.0)
    columns = _driver._Columns(n)
    for start in range(0, n, 50):
        rows = slice(start, min(n, start + 50))
        columns.put(rows, fd.first_pass(values[rows], offsets[rows], steps[rows], 1e-15, False, 2.0))
    assembled = columns.analysis()
    for name in fd.Analysis.__dataclass_fields__:
        a, b = getattr(whole, name), getattr(assembled, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.ascontiguousarray(b).view(f"u{a.itemsize}"), a.view(f"u{a.itemsize}"))
    # A first pass's rounding is its error: one array, not two.
    assert np.array_equal(whole.rounding.view(np.uint64), whole.error.view(np.uint64))
    assert assembled.rounding is assembled.error


@pytest.mark.parametrize("apart_from", [0, 3, 5])
def test_columns_keep_rounding_apart_from_the_first_piece_where_it_differs(apart_from):
    rng = np.random.default_rng(apart_from)
    n, size = 120, 20
    parts = [_random_analysis(rng, size) for _ in range(n // size)]
    for i, part in enumerate(parts):
        if i < apart_from:
            part.rounding = part.error.copy()
    columns = _driver._Columns(n)
    for i, part in enumerate(parts):
        columns.put(slice(i * size, (i + 1) * size), part)
    assembled = columns.analysis()
    assert assembled.rounding is not assembled.error
    for name in ("error", "rounding", "approx"):
        expected = np.concatenate([getattr(p, name) for p in parts])
        np.testing.assert_array_equal(getattr(assembled, name).view(np.uint64), expected.view(np.uint64))


def _random_analysis(rng, n, repeated=()):
    fields = {}
    for name, kind in (("approx", float), ("error", float), ("rounding", float), ("kink", bool), ("right", float),
                       ("left", float), ("side_error", float), ("best_level", np.int64),
                       ("kink_possible", bool), ("confirmed", bool), ("established", bool)):
        if kind is float:
            values = rng.standard_normal(n)
        elif kind is bool:
            values = rng.random(n) < 0.5
        else:
            values = rng.integers(0, 25, n)
        if name in repeated:
            values = _driver._repeated(values[:1].copy()[0], n)
        fields[name] = values
    return fd.Analysis(**fields)


@pytest.mark.parametrize("aliased", [False, True])
@pytest.mark.parametrize("seed", range(10))
def test_fields_written_at_a_few_rows_read_back_as_full_arrays_would(seed, aliased):
    # The measurement keeps a repeated field's few refined rows in an overlay
    # instead of a full array: every read must see what a full array would hold.
    # ``aliased``: rounding is the error array itself (a first pass), and the
    # rows whose error or rounding is written have their rounding held apart.
    rng = np.random.default_rng(seed)
    n = 200
    repeated = ("kink", "right", "left", "side_error", "best_level", "confirmed", "established")
    work = np.sort(rng.choice(n, 30, replace=False))
    measurement = _driver._Measurement.__new__(_driver._Measurement)
    measurement.analysis = _random_analysis(rng, n, repeated)
    if aliased:
        measurement.analysis.rounding = measurement.analysis.error
    measurement.work, measurement.overlay = work, None
    reference = fd.Analysis(**{name: np.array(getattr(measurement.analysis, name))
                               for name in fd.Analysis.__dataclass_fields__})
    for _ in range(6):
        rows = rng.choice(work, 10, replace=False)
        part = _random_analysis(rng, rows.size)
        if rng.random() < 0.5:
            part.kink[:] = reference.kink[0]  # the repeated value written again: stays repeated
        measurement._put_analysis(part, rows)
        for name in fd.Analysis.__dataclass_fields__:
            getattr(reference, name)[rows] = getattr(part, name)
    # ... and rows refinement never held (a kink's range width, written by judge_kinks).
    outside = np.setdiff1d(np.arange(n), work)[:7]
    for rows in (outside, np.r_[outside[:2], work[:3]]):
        width = rng.random(rows.size)
        measurement._put_field("side_error", rows, width)
        reference.side_error[rows] = width
    # The error alone (the off-grid check widens it), at held rows and others.
    never_held = np.setdiff1d(np.arange(n), work)[7:12]
    for rows in (np.r_[outside[3:6], never_held[:2]], np.r_[work[5:8], never_held[2:]]):
        widened = measurement.analysis.error[rows] + rng.random(rows.size)
        measurement._put_field("error", rows, widened)
        reference.error[rows] = widened
    assert not measurement.analysis.right.flags.writeable  # never made a full array
    assert (measurement.analysis.rounding is measurement.analysis.error) == aliased  # never made a second array
    for rows in (np.arange(n), rng.permutation(n)[:50], work, outside, slice(0, n), slice(17, 140)):
        np.testing.assert_array_equal(measurement._rounding_at(rows).view(np.uint64),
                                      reference.rounding[rows].view(np.uint64))
        if isinstance(rows, slice):
            continue
        got = measurement._analysis_at(rows)
        for name in fd.Analysis.__dataclass_fields__:
            expected = getattr(reference, name)[rows]
            np.testing.assert_array_equal(getattr(got, name).view(f"u{expected.itemsize}"),
                                          expected.view(f"u{expected.itemsize}"), err_msg=name)
    state = rng.choice([fd.AGREE, fd.KINK_AGREE, fd.KINK_WRONG, fd.WRONG], n).astype(np.int8)
    low = np.where(rng.random(n) < 0.5, np.nan, rng.standard_normal(n))
    steps = np.full(n, 1e-5)
    measurement.measured, measurement.n, measurement.state, measurement.steps = None, n, state, steps
    measurement.low, measurement.high = low, low + 1.0
    got = measurement.result()
    expected = _driver._finish(reference, state, steps, low, low + 1.0, n)
    for name in ("approx", "error", "rounding", "state", "low", "high"):
        np.testing.assert_array_equal(np.asarray(getattr(got, name)).view(np.uint8),
                                      np.asarray(getattr(expected, name)).view(np.uint8), err_msg=name)


@pytest.mark.parametrize("seed", range(12))
def test_block_scales_and_precision_targets_match_the_per_component_rules(seed):
    # judge keeps one scale per block and computes the targets block by block:
    # the same bits as fd.block_rms and fd.precision_targets on full arrays.
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    n, n_blocks = 300, int(rng.integers(1, 6))
    block_ids = np.sort(rng.integers(0, n_blocks, n)).astype(np.uint8)
    if seed % 2:
        block_ids = rng.permutation(block_ids)  # a check of unsorted indices
    measurement = _driver._Measurement.__new__(_driver._Measurement)
    measurement.analysis = _random_analysis(rng, n)
    # Some blocks verified (tiny errors: infinite targets), others not.
    measurement.analysis.error = np.abs(measurement.analysis.error) * 10.0 ** rng.uniform(-20, -4, n_blocks)[block_ids]
    measurement.analysis.rounding = measurement.analysis.error * rng.random(n)
    measurement.analysis.approx[rng.random(n) < 0.05] = np.nan
    measurement.grad = rng.standard_normal(n)
    # Some checks with each block's gradient in a dtype of its own (a dict of mixed dtypes).
    block_dtypes = tuple(rng.choice(["float64", "float32", "float16"], n_blocks)) if seed % 4 == 1 else ()
    measurement.opts = SimpleNamespace(threshold=1e-7, grad_dtype=("float64", "float32")[seed % 3 == 0],
                                       block_dtypes=block_dtypes)
    measurement.block_ids, measurement.n_blocks, measurement.overlay = block_ids, n_blocks, None
    magnitude = np.where(np.isfinite(measurement.analysis.approx),
                         np.abs(measurement.grad) + np.abs(measurement.analysis.approx), 0.0)
    scale_floor = fd.block_rms(magnitude, block_ids, n_blocks)
    measurement.block_scale = np.zeros(n_blocks)
    for b, members in _driver._each_block(block_ids, n_blocks):
        if fd._count(members):
            measurement.block_scale[b] = (fd.scaled_norm(measurement._magnitude(members))
                                          / np.sqrt(fd._count(members)))
    np.testing.assert_array_equal(measurement.block_scale[block_ids].view(np.uint64), scale_floor.view(np.uint64))
    grad_error = _driver._grad_rounding(measurement.grad, measurement.opts, block_ids)
    expected = fd.precision_targets(measurement.analysis.error + grad_error, measurement.analysis.rounding + grad_error,
                                    magnitude, scale_floor, block_ids, n_blocks, measurement.opts.threshold)
    measurement._update_precision()
    for rows in (np.arange(n), slice(0, n), rng.permutation(n)[:40]):
        np.testing.assert_array_equal(measurement._precision(rows).view(np.uint64), expected[rows].view(np.uint64))


def test_block_norms_in_parts_match_the_whole_block():
    # The driver's block norms (scale, error spread) are computed in row slices
    # so that their temporaries stay slice-sized: one part gives the same bits
    # as the whole-array functions, several parts the same norm to rounding.
    rng = np.random.default_rng(12)
    x = np.abs(rng.standard_normal(200_001)) * np.exp(rng.uniform(-30, 30, 200_001))
    error = x * (1.0 + rng.random(x.size))
    rounding = x * rng.random(x.size)

    def in_parts(arrays, size):
        """parts() for the in-parts functions: copies of consecutive slices (they overwrite them)."""
        def parts():
            for i in range(0, arrays[0].size, size):
                copies = tuple(np.array(a[i:i + size]) for a in arrays)
                yield copies if len(copies) > 1 else copies[0]
        return parts

    whole = fd.scaled_norm(x)
    assert fd.scaled_norm_in_parts(in_parts([x], x.size)) == whole
    assert fd.scaled_norm_in_parts(in_parts([x], 65536)) == pytest.approx(whole, rel=1e-14)
    spread = fd.block_error(error.copy(), rounding.copy())
    assert fd.block_error_in_parts(in_parts([error, rounding], x.size), x.size) == spread
    assert fd.block_error_in_parts(in_parts([error, rounding], 65536), x.size) == pytest.approx(spread, rel=1e-14)
    # Not finite anywhere: the first non-finite maximum, as the whole-array functions say.
    y = x.copy()
    y[150_000] = np.inf
    assert fd.scaled_norm_in_parts(in_parts([y], 65536)) == np.inf
    assert fd.scaled_norm_in_parts(in_parts([np.zeros(10)], 4)) == 0.0


class _Recording:
    """An engine that forwards to another, says whether it is deterministic, and records what it evaluated."""

    def __init__(self, inner, deterministic: bool) -> None:
        from dataclasses import replace

        self.inner, self.theta, self.cost_value = inner, inner.theta, inner.cost_value
        self.traits = replace(inner.traits, deterministic=deterministic)
        self.rows = []

    def evaluate(self, indices, points):
        self.rows.append(np.array(indices))
        return self.inner.evaluate(indices, points)


def _kinked_cost(theta):
    # Smooth terms, |x| kinks at exact zeros, and a component whose step is
    # rounding-limited: some rows need more steps than the first pair.
    return float(np.sum(np.sin(3.0 * theta)) + np.sum(np.abs(theta[:6])) + 1e6 * theta[-1] ** 2)


@pytest.mark.parametrize("method", ["central", "forward", "richardson"])
def test_deterministic_engines_evaluate_the_first_pair_again_instead_of_keeping_it(method):
    # A deterministic engine's first-pass values are not stored (2 float64s per
    # component): the rows that need more steps are evaluated again at the same
    # points, which gives the same bits, so the report is bit-identical.
    from fastgrad._options import resolve_options
    from fastgrad.engines import GenericEngine

    rng = np.random.default_rng(3)
    theta = rng.standard_normal(40)
    theta[:3] = 0.0  # at the kinks of |x|
    grad = 3.0 * np.cos(3.0 * theta)
    grad[:6] += np.sign(theta[:6])
    grad[-1] += 2e6 * theta[-1]
    grad[10] *= -1.0  # a bug, so that some rows are wrong
    opts = resolve_options(theta.size, None, method=method, progress=False)
    reports, engines = [], []
    for deterministic in (False, True):
        engine = _Recording(GenericEngine(_driver_cost(), theta), deterministic)
        reports.append(_driver.run_check(engine, grad, opts, None))
        engines.append(engine)
    kept, again = reports
    for field in ("approx", "error", "rounding", "state", "steps", "low", "high"):
        np.testing.assert_array_equal(_bits(getattr(kept, field)), _bits(getattr(again, field)))
    assert (kept.verdict, kept.difference, kept.tolerance) == (again.verdict, again.difference, again.tolerance)
    assert kept.verdict == "fail"
    evaluated = [np.concatenate(e.rows) for e in engines]
    refined = np.flatnonzero(kept.state != fd.AGREE)
    assert refined.size  # the kinks and the bug at least
    if method == "richardson":  # every row is in the table: the values are kept either way
        assert evaluated[1].size == evaluated[0].size
    else:  # the undecided rows' first pair, once more
        assert evaluated[0].size < evaluated[1].size <= evaluated[0].size + theta.size


def _driver_cost():
    from fastgrad.engines import prepare_cost

    return prepare_cost(_kinked_cost, ())


def _bits(values) -> np.ndarray:
    """``values`` as unsigned integers of the same width: NaNs and signed zeros compared bit for bit."""
    values = np.asarray(values)
    return values.view(f"u{values.dtype.itemsize}")


def test_a_deterministic_first_pass_stores_no_values():
    from fastgrad._options import resolve_options
    from fastgrad.engines import GenericEngine

    theta = np.linspace(-1.0, 1.0, 50)
    opts = resolve_options(theta.size, None, method="central", progress=False)
    for deterministic, stored in ((False, 50), (True, None)):
        engine = _Recording(GenericEngine(_driver_cost(), theta), deterministic)
        with _driver._Runner(engine, theta.size, False, "test") as runner:
            sigma = _driver.measure_noise(engine, None)
            work = _driver._Measurement(runner, engine, np.arange(theta.size), theta, np.cos(theta), opts, sigma,
                                        np.zeros(theta.size, np.uint8), 1)
            work.first_pass()
        assert (None if work.first is None else work.first[0].shape[0]) == stored


def test_a_full_check_keeps_no_array_of_its_indices():
    # A full check covers 0..n-1 in order: the report and its estimate store
    # None and make the array when read; any other selection is kept as given.
    import pickle

    import fastgrad
    from fastgrad._compact import stored

    theta = np.linspace(-1.0, 1.0, 30)
    cost = lambda t: float(np.sum(np.sin(t)))  # noqa: E731
    full = fastgrad.gradcheck(cost, np.cos(theta), theta, progress=False)
    assert stored(full, "indices") is None
    np.testing.assert_array_equal(full.indices, np.arange(30))
    assert full.indices.dtype == np.int64 and not full.indices.flags.writeable
    assert stored(full.estimate(), "indices") is None and len(full.estimate()) == 30
    again = pickle.loads(pickle.dumps(full))
    assert stored(again, "indices") is None
    np.testing.assert_array_equal(again.indices, np.arange(30))
    some = fastgrad.gradcheck(cost, np.cos(theta), theta, indices=[29, 3, 7], progress=False)
    np.testing.assert_array_equal(stored(some, "indices"), [3, 7, 29])
    # Every component named explicitly is the same check as none named.
    named = fastgrad.gradcheck(cost, np.cos(theta), theta, indices=np.arange(30), progress=False)
    np.testing.assert_array_equal(named.approx, full.approx)
    merged = fastgrad.merge_reports(full)
    np.testing.assert_array_equal(merged.indices, np.arange(30))
    estimate = fastgrad.estimate_gradient(cost, theta)
    assert stored(estimate, "indices") is None
    np.testing.assert_array_equal(estimate.indices, np.arange(30))


@pytest.mark.parametrize("seed", range(8))
def test_a_patch_reads_as_the_full_array_it_stands_for(seed):
    # Report and Estimate keep rounding as error with a few rows replaced: every
    # read (all, a slice, positions, a mask, a sub-block) must give the full array's values.
    from fastgrad._compact import Patch, rounding_rows

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    base = rng.standard_normal(n)
    rows = np.unique(rng.integers(0, n, int(rng.integers(0, 12))))
    values = rng.standard_normal(rows.size)
    full = base.copy()
    full[rows] = values
    patch = Patch(rows, values)
    np.testing.assert_array_equal(patch.over(base), full)
    start = int(rng.integers(0, n))
    stop = int(rng.integers(start, n + 1))
    np.testing.assert_array_equal(patch.over(base, slice(start, stop)), full[start:stop])
    positions = rng.integers(0, n, 20)
    np.testing.assert_array_equal(patch.over(base, positions), full[positions])
    mask = rng.random(n) < 0.5
    np.testing.assert_array_equal(rounding_rows(patch, base, mask), full[mask])
    np.testing.assert_array_equal(patch.sub(slice(start, stop)).over(base[start:stop]), full[start:stop])
    assert not np.shares_memory(patch.over(base), base)  # a new array: the base is never written


@pytest.mark.parametrize("forward_only", [False, True])
def test_a_table_is_analysed_in_parts_with_the_bits_of_one_pass(forward_only):
    # fd.analyse takes ANALYSE_ROWS rows at a time (its temporaries are a few
    # dozen arrays of rows x levels): every field has the bits of one pass.
    rng = np.random.default_rng(3)
    n = 3 * fd.ANALYSE_ROWS + 17
    steps = 10.0 ** rng.uniform(-8, -2, n)
    table = fd.Table.empty(n)
    s = steps[:, None] * np.exp2(fd.LEVELS.astype(np.float64))[None, :]
    slope, curve = rng.standard_normal((2, n, 1))
    filled = rng.random((n, fd.LEVELS.size)) < 0.6
    for side, sign in (("plus", 1.0), ("minus", -1.0)):
        values = sign * slope * s + curve * s ** 2 + 1e-15 * rng.standard_normal(s.shape)
        getattr(table, side)[filled] = values[filled]
        getattr(table, "off_" + side)[filled] = sign * s[filled]
    table.kinked[:] = rng.random(table.kinked.shape) < 0.02
    whole = fd._analyse_rows(table, steps, 1e-16, True, forward_only, 0.5)
    parts = fd.analyse(table, steps, 1e-16, True, forward_only, cost_value=0.5)
    for name in fd.Analysis.__dataclass_fields__:
        a, b = getattr(whole, name), getattr(parts, name)
        assert a.dtype == b.dtype and a.shape == b.shape == (n,), name
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=name)


def test_states_are_tested_as_isin_does():
    rng = np.random.default_rng(4)
    state = rng.integers(0, len(fd.STATE_NAMES), 3 * fd.SLICE_ROWS + 5).astype(np.int8)
    for states in ((fd.WRONG,), (fd.KINK_AGREE, fd.KINK_WRONG), (fd.WRONG, fd.UNDECIDED, fd.UNRESOLVED), ()):
        np.testing.assert_array_equal(fd.in_states(state, states), np.isin(state, states))
    np.testing.assert_array_equal(fd.in_states(state[:0], (fd.WRONG,)), np.zeros(0, bool))


def test_block_runs_read_as_the_array_of_block_ids():
    # A full check keeps each block's end, not a block number per component.
    ends = np.array([3, 3, 10, 17, 17, 40])
    runs = _driver._BlockRuns(ends)
    ids = np.repeat(np.arange(ends.size), np.diff(np.concatenate([[0], ends]))).astype(np.uint8)
    for rows in (slice(None), slice(0, 5), slice(3, 17), slice(16, 40), slice(5, 5), slice(0, 100), slice(2, 30, 3),
                 np.array([0, 2, 3, 9, 10, 16, 17, 39]), np.arange(40)[::-1]):
        np.testing.assert_array_equal(runs[rows], ids[rows])
        assert runs[rows].dtype == ids.dtype
    np.testing.assert_array_equal(np.asarray(runs), ids)
    assert [members for _, members in _driver._each_block(runs, ends.size)] == \
        [members for _, members in _driver._each_block(ids, ends.size)]
