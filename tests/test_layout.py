"""pack / unpack / Layout: the course's dictionary_to_vector done right."""

import numpy as np
import pytest

import fastgrad
from fastgrad import Layout


def course_params(rng):
    return {
        "W1": rng.normal(size=(5, 4)),
        "b1": rng.normal(size=(5, 1)),
        "W2": rng.normal(size=(3, 5)),
        "b2": rng.normal(size=(3, 1)),
        "W3": rng.normal(size=(1, 3)),
        "b3": rng.normal(size=(1, 1)),
    }


def test_pack_matches_course_dictionary_to_vector():
    params = course_params(np.random.default_rng(0))
    theta, layout = fastgrad.pack(params)
    # The course: concatenate each block reshaped to (-1, 1), in key order.
    expected = np.concatenate([np.reshape(params[k], (-1, 1)) for k in params]).ravel()
    np.testing.assert_array_equal(theta, expected)
    assert theta.dtype == np.float64 and theta.flags.c_contiguous
    assert layout.names == ("W1", "b1", "W2", "b2", "W3", "b3")
    assert layout.shapes == ((5, 4), (5, 1), (3, 5), (3, 1), (1, 3), (1, 1))
    assert layout.offsets == (0, 20, 25, 40, 43, 46)
    assert layout.size == 47 == theta.size


def test_unpack_round_trips_and_copies():
    params = course_params(np.random.default_rng(1))
    theta, layout = fastgrad.pack(params)
    back = fastgrad.unpack(theta, layout)
    assert list(back) == list(params)
    for name in params:
        np.testing.assert_array_equal(back[name], params[name])
    back["W1"][0, 0] = 1e9
    assert theta[0] == params["W1"][0, 0]


def test_pack_grads_accepts_course_d_prefixed_names_and_orders_by_layout():
    params = course_params(np.random.default_rng(2))
    theta, layout = fastgrad.pack(params)
    grads = {"d" + k: 2 * v for k, v in reversed(list(params.items()))}
    np.testing.assert_array_equal(fastgrad.pack(grads, layout=layout), 2 * theta)
    same_names = {k: 2 * v for k, v in params.items()}
    np.testing.assert_array_equal(fastgrad.pack(same_names, layout), 2 * theta)


def test_pack_converts_float32_to_float64_without_touching_input():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    before = w.copy()
    theta, _ = fastgrad.pack({"W": w})
    assert theta.dtype == np.float64
    theta[0] = 99.0
    np.testing.assert_array_equal(w, before)


def test_locate_maps_every_component_back():
    params = course_params(np.random.default_rng(3))
    theta, layout = fastgrad.pack(params)
    for k in range(layout.size):
        name, position = layout.locate(k)
        assert params[name][position] == theta[k]
    assert layout.locate(20) == ("b1", (0, 0))
    assert layout.slice("W2") == slice(25, 40)
    np.testing.assert_array_equal(layout.block_of([0, 19, 20, 46]), [0, 0, 1, 5])


def test_layout_is_immutable_and_hashable():
    layout = Layout(("W1", "b1"), ((2, 3), (2, 1)))
    with pytest.raises(AttributeError):
        layout.size = 3
    assert layout == Layout(["W1", "b1"], [[2, 3], [2, 1]])
    assert len({layout, Layout(("W1", "b1"), ((2, 3), (2, 1)))}) == 1


def test_locate_out_of_range():
    layout = Layout(("W",), ((2, 2),))
    with pytest.raises(IndexError, match="outside theta"):
        layout.locate(4)
    with pytest.raises(KeyError, match="No block named 'b'"):
        layout.slice("b")


def test_missing_block_is_named():
    _, layout = fastgrad.pack({"W1": np.ones((2, 2)), "b1": np.ones((2, 1))})
    with pytest.raises(ValueError, match=r"Block 'b1' is missing"):
        fastgrad.pack({"dW1": np.ones((2, 2))}, layout)


def test_extra_block_is_named():
    _, layout = fastgrad.pack({"W1": np.ones((2, 2))})
    with pytest.raises(ValueError, match=r"Unexpected block\(s\) \['db9'\]"):
        fastgrad.pack({"dW1": np.ones((2, 2)), "db9": np.ones(1)}, layout)


def test_wrong_shape_names_block_and_both_shapes():
    _, layout = fastgrad.pack({"W1": np.ones((2, 3))})
    with pytest.raises(ValueError, match=r"Block 'W1' has shape \(3, 2\) but the layout expects \(2, 3\)"):
        fastgrad.pack({"dW1": np.ones((3, 2))}, layout)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        ({}, ValueError, "empty mapping"),
        ([np.ones(2)], TypeError, "mapping of block name"),
        ({"W": np.ones(2, dtype=complex)}, TypeError, "complex"),
        ({"W": np.arange(3)}, TypeError, "floating-point"),
        ({"W": np.array([1.0, np.nan])}, ValueError, r"nan at index 1"),
    ],
)
def test_pack_rejects_bad_input(bad, error, match):
    with pytest.raises(error, match=match):
        fastgrad.pack(bad)


def test_unpack_rejects_wrong_size():
    _, layout = fastgrad.pack({"W": np.ones((2, 2))})
    with pytest.raises(ValueError, match="theta has 3 components but the layout describes 4"):
        fastgrad.unpack(np.ones(3), layout)
