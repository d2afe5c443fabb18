"""Small validation gaps of issue 11, item 7: each input is refused in words that name it."""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad
from fastgrad import Layout
from fastgrad._validation import check_compiled_args, check_seed

LAYOUT = Layout(("W1", "b1"), ((2, 3), (2, 1)))


@pytest.mark.parametrize("k", [2.7, 2.0, "3", True, np.bool_(False), None, np.float64(1.0)])
def test_locate_refuses_what_is_not_a_whole_number(k):
    # Fails before the fix: 2.7 and "3" were truncated to 2 and 3, True read as 1.
    with pytest.raises(TypeError, match="Component must be a whole number"):
        LAYOUT.locate(k)


@pytest.mark.parametrize("k", [4, np.int64(4), np.uint8(4)])
def test_locate_accepts_integers_of_any_kind(k):
    assert LAYOUT.locate(k) == ("W1", (1, 1))


@pytest.mark.parametrize(
    ("shapes", "match"),
    [
        (((2.5, 3), (2, 1)), "must hold whole numbers"),
        (((2, "3"), (2, 1)), "must hold whole numbers"),
        (((2, True), (2, 1)), "must hold whole numbers"),
        ((3, (2, 1)), "must be a tuple of sizes"),
        ((None, (2, 1)), "must be a tuple of whole numbers"),
    ],
)
def test_layout_refuses_shapes_that_are_not_whole_numbers(shapes, match):
    # Fails before the fix: (2.5, 3) became (2, 3).
    with pytest.raises(TypeError, match=match):
        Layout(("W1", "b1"), shapes)


def test_layout_accepts_numpy_integer_shapes():
    layout = Layout(("W1",), ((np.int64(2), np.int32(3)),))
    assert layout.shapes == ((2, 3),) and all(type(d) is int for d in layout.shapes[0])


@pytest.mark.parametrize("seed", [0, 7, np.int64(3), 2**70])
def test_check_seed_accepts_non_negative_integers(seed):
    assert check_seed(seed) == int(seed) and type(check_seed(seed)) is int


@pytest.mark.parametrize(
    ("seed", "error", "match"),
    [
        (-1, ValueError, "seed must be 0 or more, got -1"),
        (1.5, TypeError, "seed must be a whole number"),
        ("3", TypeError, "seed must be a whole number"),
        (True, TypeError, "seed must be a whole number"),
        (None, TypeError, "seed must be a whole number"),
    ],
)
def test_check_seed_names_the_seed(seed, error, match):
    with pytest.raises(error, match=match):
        check_seed(seed)


def test_densenet_refuses_a_loss_that_is_not_a_name():
    # Fails before the fix: "unhashable type: 'list'".
    with pytest.raises(TypeError, match=r"loss must be the name of one loss .* got list \['mse'\]"):
        fastgrad.DenseNet([3, 2, 1], "relu", ["mse"])


@pytest.mark.parametrize(("seed", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_densenet_refuses_a_bad_dropout_seed_at_construction(seed, error):
    # Fails before the fix for -1: accepted, then a NumPy error when the masks were drawn.
    with pytest.raises(error, match="dropout_seed"):
        fastgrad.DenseNet([3, 4, 1], "relu", "mse", dropout=0.5, dropout_seed=seed)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.ones(2), {"X": np.ones(2)}), r"args\[1\] is a dict.*pass the arrays themselves"),
        (([1.0, 2.0],), r"args\[0\] is a list.*np.asarray"),
        ((np.array(["a", "b"]),), r"args\[0\] is an array of dtype <U1"),
        ((np.array([{}], dtype=object),), r"args\[0\] is an array of dtype object"),
        (((1.0, {"a": 1}),), r"args\[0\] is a tuple holding a dict"),
        ((object(),), r"args\[0\] is a object"),
    ],
)
def test_check_compiled_args_names_the_argument_numba_cannot_take(args, match):
    with pytest.raises(TypeError, match=match):
        check_compiled_args(args)


def test_check_compiled_args_accepts_what_numba_passes():
    args = (np.ones((2, 2)), np.ones(3, dtype=np.int64), 3, 2.5, True, np.float32(1), (1, np.ones(1)), "mse")
    assert check_compiled_args(args) is args
