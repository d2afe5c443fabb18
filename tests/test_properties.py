"""Property-based tests (Hypothesis): packing round trips and the validation of public entry points.

Random shapes, dtypes, memory layouts (Fortran order, strided views, read-only)
and NaN/inf placements. Every outcome is either a correct result or one of
fastgrad's documented errors (TypeError/ValueError with a message), and the
caller's arrays are never modified. Example counts are kept small: the suite
runs on two shared cores.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastgrad
from fastgrad import Layout, pack, unpack

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REAL_FLOATS = [np.float16, np.float32, np.float64]
OTHER_DTYPES = [np.int8, np.int64, np.bool_, np.complex128, np.uint16]


@st.composite
def arrays(draw, dtypes=REAL_FLOATS, min_dims=0, max_dims=3, min_side=1, max_side=4, nonfinite=False,
           no_tiny=False):
    """Arrays of a drawn dtype and shape, in C or Fortran order, maybe a strided view, maybe read-only.

    ``no_tiny``: values below 1e-6 in magnitude become 0 (see
    ``test_a_correct_gradient_far_below_rounding_noise_is_not_failed``).
    """
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side))
    if np.issubdtype(dtype, np.floating):
        elements = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=np.finfo(dtype).bits)
        if no_tiny:
            elements = elements.map(lambda x: 0.0 if abs(x) < 1e-6 else x)
    else:
        elements = None
    base = draw(hnp.arrays(dtype, shape, elements=elements))
    if nonfinite and base.size and np.issubdtype(dtype, np.floating) and draw(st.booleans()):
        flat = base.reshape(-1)
        flat[draw(st.integers(0, base.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    if layout == "F":
        array = np.asfortranarray(base)
    elif layout == "strided" and base.ndim:
        # The same values, seen through every other element of a bigger buffer.
        big = np.zeros(tuple(2 * s for s in base.shape), dtype=dtype)
        view = big[tuple(slice(None, None, 2) for _ in base.shape)]
        view[...] = base
        array = view
    else:
        array = base
    if draw(st.booleans()):
        array.flags.writeable = False
    return array


def _snapshot(value):
    return np.array(value, copy=True), np.asarray(value).flags.writeable


def _unchanged(value, snapshot) -> bool:
    before, writeable = snapshot
    return np.array_equal(np.asarray(value), before, equal_nan=before.dtype.kind in "fc") and (
        np.asarray(value).flags.writeable == writeable
    )


NAMES = st.lists(st.text("Wbdxyz0123456789", min_size=1, max_size=4), min_size=1, max_size=4, unique=True)


@SETTINGS
@given(names=NAMES, data=st.data())
def test_pack_unpack_round_trip_and_locate(names, data):
    params = {name: data.draw(arrays()) for name in names}
    snapshots = {name: _snapshot(a) for name, a in params.items()}

    theta, layout = pack(params)

    assert theta.dtype == np.float64 and theta.ndim == 1 and theta.flags.c_contiguous
    assert layout.names == tuple(names) and layout.size == theta.size
    back = unpack(theta, layout)
    for name, array in params.items():
        assert back[name].shape == array.shape
        np.testing.assert_array_equal(back[name], array.astype(np.float64))
        assert _unchanged(array, snapshots[name])
    # Every component traces back to the element it came from.
    for k in range(theta.size):
        name, position = layout.locate(k)
        assert theta[k] == np.float64(params[name][position])
    # theta is never a view of the caller's data, nor are the unpacked arrays views of theta.
    theta[:] = 12345.0
    assert all(_unchanged(a, snapshots[n]) for n, a in params.items())
    assert not any(np.shares_memory(theta, b) for b in back.values())


@SETTINGS
@given(names=NAMES, data=st.data())
def test_pack_with_a_layout_takes_d_prefixed_gradients(names, data):
    params = {name: data.draw(arrays(dtypes=[np.float64])) for name in names}
    theta, layout = pack(params)
    grads = {f"d{name}": 2.0 * array for name, array in params.items()}
    np.testing.assert_array_equal(pack(grads, layout), 2.0 * theta)


@SETTINGS
@given(names=NAMES, data=st.data())
def test_pack_gives_a_result_or_a_documented_error(names, data):
    params = {
        name: data.draw(arrays(dtypes=REAL_FLOATS + OTHER_DTYPES, min_side=0, nonfinite=True)) for name in names
    }
    snapshots = {name: _snapshot(a) for name, a in params.items()}
    try:
        theta, layout = pack(params)
    except (TypeError, ValueError) as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc)
        kinds = {np.asarray(a).dtype.kind for a in params.values()}
        has_nonfinite = any(
            np.asarray(a).dtype.kind == "f" and not np.isfinite(np.asarray(a)).all() for a in params.values()
        )
        assert kinds - {"f"} or has_nonfinite  # refused only for a reason the docs give
        message = str(exc)
        assert any(f"'{name}'" in message for name in names)  # names the block
    else:
        event("packed")
        assert all(np.asarray(a).dtype.kind == "f" for a in params.values())
        assert np.isfinite(theta).all() and theta.size == sum(np.asarray(a).size for a in params.values())
    assert all(_unchanged(a, snapshots[n]) for n, a in params.items())


@SETTINGS
@given(shapes=st.lists(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5), min_size=1, max_size=4),
       k=st.one_of(st.integers(-3, 80), st.floats(-1, 80), st.booleans(), st.text(max_size=2)))
def test_locate_returns_a_position_or_a_documented_error(shapes, k):
    layout = Layout(tuple(f"B{i}" for i in range(len(shapes))), tuple(shapes))
    try:
        name, position = layout.locate(k)
    except TypeError as exc:
        assert not isinstance(k, int) or isinstance(k, bool), exc
    except IndexError as exc:
        assert isinstance(k, int) and not 0 <= k < layout.size and "outside theta" in str(exc)
    else:
        assert isinstance(k, int) and not isinstance(k, bool)
        flat = np.arange(layout.size)
        assert unpack(flat.astype(float), layout)[name][position] == k


def _quadratic(theta):
    return 0.5 * float(np.dot(theta, theta))


@SETTINGS
@given(theta=st.one_of(  # mostly vectors (which run), sometimes anything (which is refused)
           arrays(dtypes=REAL_FLOATS, min_dims=1, max_dims=1, max_side=5, nonfinite=True, no_tiny=True),
           arrays(dtypes=REAL_FLOATS, min_dims=1, max_dims=1, max_side=5, no_tiny=True),
           arrays(dtypes=REAL_FLOATS + OTHER_DTYPES, min_dims=0, max_dims=2, min_side=0, max_side=5, nonfinite=True,
                  no_tiny=True),
       ),
       grad_scale=st.sampled_from([1.0, 1.0, 2.0]))
def test_gradcheck_gives_a_report_or_a_documented_error(theta, grad_scale):
    theta_snapshot = _snapshot(theta)
    grad = grad_scale * np.asarray(theta, dtype=np.float64) if np.asarray(theta).dtype.kind in "fiub" else theta
    grad_snapshot = _snapshot(grad)
    try:
        report = fastgrad.gradcheck(_quadratic, grad, theta, progress=False)
    except (TypeError, ValueError) as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc)
        array = np.asarray(theta)
        valid = (array.ndim == 1 and array.size > 0 and array.dtype.kind == "f" and np.isfinite(array).all())
        assert not valid, f"a valid theta was refused: {exc}"
    else:
        event("report")
        array = np.asarray(theta)
        assert array.ndim == 1 and array.size > 0 and array.dtype.kind == "f"
        # The gradient of 0.5 |theta|^2 is theta: right when unscaled, wrong where theta is not 0.
        if grad_scale == 1.0:
            assert report.passed
        elif np.abs(array.astype(np.float64)).max() > 1e-3:
            assert not report.passed
    assert _unchanged(theta, theta_snapshot)
    assert _unchanged(grad, grad_snapshot)


def test_a_correct_gradient_far_below_rounding_noise_is_not_failed():
    # Found by Hypothesis: theta = [4.007515e-113], cost 0.5 theta^2, gradient theta.
    # Both perturbed costs round to h^2, the difference is 0, and the verdict
    # says the (correct) gradient is wrong.
    theta = np.array([4.007515e-113])
    report = fastgrad.gradcheck(_quadratic, theta.copy(), theta, progress=False)
    # The perturbed costs' rounding (of h^2 / 2, not of J(theta)) hides a derivative of 4e-113:
    # fastgrad cannot tell, and says so.
    assert report.verdict == "inconclusive" and report.reasons


@SETTINGS
@given(theta=arrays(dtypes=[np.float64, np.float32], min_dims=1, max_dims=1, min_side=1, max_side=6),
       indices=st.one_of(st.none(), st.lists(st.integers(-8, 8), max_size=4), st.floats(0, 3),
                         st.lists(st.booleans(), min_size=1, max_size=6)))
def test_numerical_gradient_indices_give_a_result_or_a_documented_error(theta, indices):
    snapshot = _snapshot(theta)
    try:
        approx = fastgrad.numerical_gradient(_quadratic, theta, indices=indices)
    except (TypeError, ValueError, IndexError) as exc:
        assert str(exc)
    else:
        expected = np.asarray(theta, dtype=np.float64)
        chosen = np.arange(theta.size) if indices is None else None
        if chosen is not None:
            np.testing.assert_allclose(approx, expected, rtol=1e-5, atol=1e-5)
    assert _unchanged(theta, snapshot)


def test_zero_size_blocks_pack_and_locate():
    theta, layout = pack({"empty": np.zeros((0, 3)), "W": np.ones((2, 2))})
    assert layout.size == 4 and layout.locate(0) == ("W", (0, 0))
    with pytest.raises(IndexError):
        layout.locate(4)
