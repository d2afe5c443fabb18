"""The driver's compact storage gives the same components and values as the plain arrays."""

import numpy as np
import pytest

from fastgrad import _differences as fd
from fastgrad import _driver
from fastgrad._layout import Layout


@pytest.mark.parametrize("seed", range(40))
def test_noise_components_from_the_layout_match_the_per_component_rule(seed):
    rng = np.random.default_rng(seed)
    n_blocks = int(rng.integers(1, 8))
    shapes = [tuple(int(d) for d in rng.integers(0, 6, size=rng.integers(1, 3))) for _ in range(n_blocks)]
    layout = Layout(tuple(f"B{b}" for b in range(n_blocks)), tuple(shapes))
    everything = np.arange(layout.size)
    expected = fd.noise_components(everything, layout.block_of(everything))
    np.testing.assert_array_equal(_driver._noise_components(layout, layout.size), expected)
    for size in (0, 1, 3, 17):
        expected = fd.noise_components(np.arange(size), np.zeros(size, np.int64))
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
