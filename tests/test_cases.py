"""The registry of reference cases: sizes are what they say, exact gradients are exact."""

import numpy as np
import pytest

import reference
from fastgrad import _cases
from fastgrad._cases import CASES, GENERIC_CASES, NETWORK_CASES, SMOOTH_CASE, get_case
from fastgrad.naive import course_case, dictionary_to_vector


def central_differences(problem, indices):
    """Plain NumPy two-sided differences of a problem's cost, one component at a time (the reference)."""
    return reference.central_differences(lambda t: problem.cost(t, *problem.args), problem.theta, 1e-6, indices)


def some_indices(size, count=25, seed=0):
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(size, size=min(count, size), replace=False))


def test_reference_network_sizes():
    assert NETWORK_CASES["S"].layer_sizes == (4, 5, 3, 1) and NETWORK_CASES["S"].m == 3
    assert NETWORK_CASES["S"].n_params == 47
    assert NETWORK_CASES["M"].layer_sizes == (784, 128, 64, 10) and NETWORK_CASES["M"].m == 64
    assert NETWORK_CASES["M"].n_params == 109_386
    assert NETWORK_CASES["L"].layer_sizes == (3072, 512, 256, 10) and NETWORK_CASES["L"].m == 32
    assert NETWORK_CASES["L"].n_params == 1_707_274
    for case in NETWORK_CASES.values():
        assert case.hidden == "relu"
        assert case.net().n_params == case.n_params


@pytest.mark.parametrize("name", list(CASES))
def test_small_variants_are_small_and_built_as_described(name):
    case = get_case(name, small=True)
    assert case.is_small and case.small() is case
    assert case.n_params <= 250
    problem = case.problem()
    assert problem.theta.shape == (case.n_params,) and problem.theta.dtype == np.float64
    assert problem.grad.shape == problem.theta.shape
    assert 1 <= case.naive_components <= case.n_params


def test_registry_holds_no_data_at_import():
    # Data are drawn lazily by each case, never held by the module.
    assert not any(isinstance(value, np.ndarray) for value in vars(_cases).values())


@pytest.mark.parametrize("name", ["M", "smooth", "quadratic", "logistic", "mlp"])
def test_cases_are_seeded_and_reproducible(name):
    first, second = get_case(name).problem(), get_case(name).problem()
    np.testing.assert_array_equal(first.theta, second.theta)
    for a, b in zip(first.args, second.args):
        np.testing.assert_array_equal(a, b)


def test_s_is_the_course_case():
    X, Y, params = course_case()
    problem = get_case("S").problem()
    np.testing.assert_array_equal(problem.theta, dictionary_to_vector(params))
    np.testing.assert_array_equal(problem.X, X)
    np.testing.assert_array_equal(problem.Y.ravel(), Y)


@pytest.mark.parametrize("name", ["M", "L"])
def test_softmax_labels_are_one_hot(name):
    case = get_case(name, small=True)
    _, Y = case.data()
    assert Y.shape == (case.layer_sizes[-1], case.m)
    assert set(np.unique(Y)) <= {0.0, 1.0}
    np.testing.assert_array_equal(Y.sum(axis=0), np.ones(case.m))


@pytest.mark.parametrize("name", ["quadratic", "logistic", "mlp"])
@pytest.mark.parametrize("small", [True, False])
def test_generic_exact_gradient_matches_finite_differences(name, small):
    problem = get_case(name, small=small).problem()
    idx = some_indices(problem.theta.size)
    approx = central_differences(problem, idx)
    np.testing.assert_allclose(problem.grad[idx], approx, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["S", "M-small", "L-small", "smooth-small", "smooth", "M"])
def test_network_cost_is_the_dense_net_cost(name):
    case = get_case(name.removesuffix("-small"), small=name.endswith("-small"))
    problem = case.problem()
    expected = problem.net.cost(problem.params, problem.X, problem.Y)
    assert problem.cost(problem.theta, *problem.args) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("name", ["S", "M-small", "L-small", "smooth-small", "smooth", "mlp-small"])
def test_network_gradient_matches_back_prop_and_finite_differences(name):
    case = get_case(name.removesuffix("-small"), small=name.endswith("-small"))
    problem = case.problem()
    # fastgrad's compiled back-prop (problem.grad) and the NumPy reference back-prop agree ...
    numpy_grad = reference.network_gradient(problem.theta, *problem.args)
    np.testing.assert_allclose(numpy_grad, problem.grad, rtol=1e-10, atol=1e-14)
    # ... and both agree with plain finite differences of the cost.
    idx = some_indices(problem.theta.size, count=40)
    approx = central_differences(problem, idx)
    np.testing.assert_allclose(problem.grad[idx], approx, rtol=1e-5, atol=1e-8)


def test_smooth_case_is_smooth():
    assert SMOOTH_CASE.hidden == "tanh"
    assert SMOOTH_CASE.net().activations[:-1] == ("tanh",) * (len(SMOOTH_CASE.layer_sizes) - 2)


def test_generic_cases_grow():
    sizes = [case.n_params for case in GENERIC_CASES.values()]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_unknown_case_is_named():
    with pytest.raises(KeyError, match="Unknown case 'XL'; known cases: S, M, L"):
        get_case("XL")
