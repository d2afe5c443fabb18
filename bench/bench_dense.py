"""Dense networks S, M, L: every contender against the naive course loop, in the same run.

Contenders per case (``extra_info["contender"]``):

* ``naive``: the course loop (``fastgrad.naive``), timed on a spread subset of
  components and extrapolated (every component costs it the same);
* ``generic``: ``fastgrad.gradcheck`` with the network written as a plain
  compiled cost function of theta (``fastgrad._cases.network_cost``), timed on
  the same subset and extrapolated;
* ``dense-full-forward``: ``DenseNet.gradcheck(engine="generic")``, one
  compiled full forward pass per perturbed point, subset and extrapolated;
* ``dense``: ``DenseNet.gradcheck(engine="dense")``, the structure-exploiting
  engine, every component (skipped until ``fastgrad._dense_engine`` exists);
* ``dense-sampled`` and ``dense-directional``: quick modes, labelled as such;
* ``torch``: ``torch.autograd.gradcheck`` (float64, full mode), only where torch
  is installed; not on L, where it would run for hours.

In a smoke run the cases are the small variants and every engine's numbers are
asserted to equal the naive loop's within rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad
from benchkit import FULL, blas_limit, case_for, record, rounds, timed

NETWORKS = ["S", "M", "L"]

# Rounding noise of the naive loop's difference at eps = 1e-7, in units of |J|.
_NAIVE_NOISE = 256 * np.finfo(np.float64).eps / 1e-7


def _has_dense_engine() -> bool:
    try:
        from fastgrad import _dense_engine
    except ImportError:
        return False
    return hasattr(_dense_engine, "perturbed_cost_differences")


def assert_matches_naive(report, baseline, cost_value: float) -> None:
    """The report's derivatives equal the naive loop's on the components both computed.

    Components at a ReLU kink are left out: there a difference depends on the
    step, so two correct methods with different steps may disagree.
    """
    position = np.searchsorted(report.indices, baseline.indices)
    inside = position < report.indices.size
    position, naive = position[inside], baseline.approx[inside]
    found = report.indices[position] == baseline.indices[inside]
    assert found.any(), "no component in common with the naive loop"
    position, naive = position[found], naive[found]
    smooth = ~report.kinks[position]
    approx = report.approx[position][smooth]
    tolerance = 1e-5 * np.abs(naive[smooth]) + _NAIVE_NOISE * max(1.0, abs(cost_value))
    assert np.all(np.abs(approx - naive[smooth]) <= tolerance), (
        f"{report.method} derivatives differ from the naive loop by up to "
        f"{np.max(np.abs(approx - naive[smooth])):.3g}"
    )


def model_flops(layer_sizes: tuple[int, ...], m: int, n_points: int = 2) -> float:
    """Floating-point operations of the row-grouped algorithm for a full check.

    The model (the algorithm of issue 3 written as matrix products): perturbing
    a component of layer l changes one row of ``Z_l`` (``2m`` flops), whose
    rank-one effect on ``Z_{l+1}`` costs ``2 n_{l+1} m``; every layer below costs
    a full product ``2 n_k n_{k-1} m``, and the loss ``2 n_L m``; per perturbed
    point, ``n_points`` points per component. The engine may skip some of this
    work (examples whose activation does not change), so GFLOP/s computed from
    this model is the rate of an equivalent matrix-product implementation.
    """
    sizes = layer_sizes
    n_layers = len(sizes) - 1
    total = 0.0
    for l in range(1, n_layers + 1):
        components = sizes[l] * (sizes[l - 1] + 1)
        per_point = 2.0 * m
        if l < n_layers:
            per_point += 2.0 * sizes[l + 1] * m
            per_point += sum(2.0 * sizes[k] * sizes[k - 1] * m for k in range(l + 2, n_layers + 1))
        per_point += 2.0 * sizes[-1] * m
        total += components * n_points * per_point
    return total


@pytest.mark.parametrize("blas_threads", ["default", "1"])
@pytest.mark.parametrize("name", NETWORKS)
def test_naive(benchmark, name, blas_threads, problem_of, naive_baseline):
    """The course loop, with BLAS on its default threads and on 1 thread (the faster is the baseline)."""
    from fastgrad.naive import naive_numerical_gradient

    case = case_for(name)
    problem = problem_of(case)
    baseline = naive_baseline(case)
    idx = baseline.indices
    benchmark.group = f"dense {case.name}"

    def run():
        with blas_limit(1 if blas_threads == "1" else None):
            return naive_numerical_gradient(problem.net, problem.params, problem.X, problem.Y, indices=idx)

    timing = timed(benchmark, run, rounds(3), warmup=0)
    kind = "full" if idx.size == case.n_params else "extrapolated"
    contender = "naive" if blas_threads == "default" else "naive (BLAS 1 thread)"
    record(
        benchmark, case=case, contender=contender, kind=kind, seconds=timing.seconds,
        components_timed=idx.size, baseline_seconds_per_component=baseline.seconds_per_component,
        blas_threads=blas_threads, baseline=True,
    )
    # Same loop, so the same numbers up to BLAS summation order; and the course
    # loop is right: it agrees with back-prop (eps = 1e-7 rounding allowed).
    np.testing.assert_allclose(timing.result, baseline.approx, rtol=1e-6, atol=_NAIVE_NOISE * 10)
    exact = problem.grad[idx]
    assert np.linalg.norm(timing.result - exact) <= 1e-5 * (np.linalg.norm(exact) + np.linalg.norm(timing.result))


def _blas_suffix(blas_threads: str) -> str:
    return "" if blas_threads == "default" else " (BLAS 1 thread)"


@pytest.mark.parametrize("blas_threads", ["default", "1"])
@pytest.mark.parametrize("name", NETWORKS)
def test_generic_engine(benchmark, name, blas_threads, problem_of, naive_baseline):
    """The network as a plain compiled cost: its np.dot calls BLAS inside the engine's parallel loop."""
    case = case_for(name)
    problem = problem_of(case)
    baseline = naive_baseline(case)
    idx = baseline.indices
    benchmark.group = f"dense {case.name}"

    def run():
        with blas_limit(1 if blas_threads == "1" else None):
            return fastgrad.gradcheck(
                problem.cost, problem.grad, problem.theta, args=problem.args, layout=problem.layout,
                indices=idx, progress=False,
            )

    run()  # compile (or load) outside the timing
    timing = timed(benchmark, run, rounds(3))
    kind = "full" if idx.size == case.n_params else "extrapolated"
    record(
        benchmark, case=case, contender="generic" + _blas_suffix(blas_threads), kind=kind, seconds=timing.seconds,
        components_timed=idx.size, baseline_seconds_per_component=baseline.seconds_per_component,
        blas_threads=blas_threads,
    )
    assert timing.result.passed, str(timing.result)
    assert_matches_naive(timing.result, baseline, timing.result.cost_value)


@pytest.mark.parametrize("blas_threads", ["default", "1"])
@pytest.mark.parametrize("name", NETWORKS)
def test_dense_full_forward(benchmark, name, blas_threads, problem_of, naive_baseline):
    case = case_for(name)
    problem = problem_of(case)
    baseline = naive_baseline(case)
    idx = baseline.indices
    benchmark.group = f"dense {case.name}"

    def run():
        with blas_limit(1 if blas_threads == "1" else None):
            return problem.net.gradcheck(
                problem.params, problem.X, problem.Y, indices=idx, engine="generic", progress=False
            )

    run()
    timing = timed(benchmark, run, rounds(3))
    kind = "full" if idx.size == case.n_params else "extrapolated"
    record(
        benchmark, case=case, contender="dense-full-forward" + _blas_suffix(blas_threads), kind=kind,
        seconds=timing.seconds, components_timed=idx.size,
        baseline_seconds_per_component=baseline.seconds_per_component, blas_threads=blas_threads,
    )
    assert timing.result.passed, str(timing.result)
    assert_matches_naive(timing.result, baseline, timing.result.cost_value)


@pytest.mark.skipif(not _has_dense_engine(), reason="fastgrad._dense_engine is not available yet")
@pytest.mark.parametrize("blas_threads", ["default", "1"])
@pytest.mark.parametrize("name", NETWORKS)
def test_dense_engine(benchmark, name, blas_threads, problem_of, naive_baseline, numpy_matmul_gflops):
    """Every component. BLAS is not used inside the engine, but DenseNet's back-prop calls it first."""
    case = case_for(name)
    problem = problem_of(case)
    baseline = naive_baseline(case)
    benchmark.group = f"dense {case.name}"

    def run():
        with blas_limit(1 if blas_threads == "1" else None):
            return problem.net.gradcheck(problem.params, problem.X, problem.Y, engine="dense", progress=False)

    problem.net.gradcheck(problem.params, problem.X, problem.Y, indices=[0, case.n_params - 1], engine="dense")
    timing = timed(benchmark, run, rounds(5))
    matmul = numpy_matmul_gflops()  # measured now, under the same load as this row
    flops = model_flops(case.layer_sizes, case.m)
    gflops = flops / timing.seconds / 1e9
    record(
        benchmark, case=case, contender="dense" + _blas_suffix(blas_threads), kind="full", seconds=timing.seconds,
        components_timed=case.n_params, baseline_seconds_per_component=baseline.seconds_per_component,
        model_gflop=flops / 1e9, model_gflops_per_s=gflops, numpy_matmul_gflops_per_s=matmul,
        fraction_of_matmul_rate=gflops / matmul, kinks=int(timing.result.n_kinks), blas_threads=blas_threads,
    )
    report = timing.result
    assert report.passed, str(report)
    assert report.indices.size == case.n_params
    assert_matches_naive(report, baseline, report.cost_value)


@pytest.mark.parametrize("name", NETWORKS)
def test_dense_sampled(benchmark, name, problem_of, naive_baseline):
    case = case_for(name)
    problem = problem_of(case)
    benchmark.group = f"dense {case.name}"
    per_block = 20 if FULL else 3

    def run():
        return problem.net.gradcheck(problem.params, problem.X, problem.Y, sample=per_block, progress=False)

    run()
    timing = timed(benchmark, run, rounds(5))
    report = timing.result
    record(
        benchmark, case=case, contender=f"dense-sampled ({per_block}/block)", kind="sampled",
        seconds=timing.seconds, components_timed=report.indices.size, baseline_seconds_per_component=None,
    )
    assert report.mode == "sampled" and report.passed, str(report)
    assert report.indices.size == sum(min(per_block, n) for n in (np.prod(s) for s in problem.layout.shapes))


@pytest.mark.parametrize("name", NETWORKS)
def test_dense_directional(benchmark, name, problem_of):
    case = case_for(name)
    problem = problem_of(case)
    benchmark.group = f"dense {case.name}"

    def run():
        return problem.net.gradcheck(problem.params, problem.X, problem.Y, mode="directional", progress=False)

    run()
    timing = timed(benchmark, run, rounds(5))
    report = timing.result
    record(
        benchmark, case=case, contender="dense-directional", kind="directional", seconds=timing.seconds,
        components_timed=case.n_params, baseline_seconds_per_component=None,
        directions=int(report.indices.size), passed=bool(report.passed), difference=float(report.difference),
    )
    assert report.mode == "directional" and report.indices.size >= 1
    if not FULL:
        # On the reference ReLU networks a random direction through every
        # component can cross ReLU kinks; the full run records the verdict
        # (extra_info["passed"]) instead of asserting it.
        assert report.passed, str(report)


def _torch_cost(torch, case, problem):
    """The network's cost as a torch function of a float64 theta tensor."""
    X = torch.from_numpy(problem.X)
    Y = torch.from_numpy(problem.Y)
    sizes = case.layer_sizes
    m = X.shape[1]

    def cost(theta):
        A, at = X, 0
        for l in range(1, len(sizes)):
            n_in, n_out = sizes[l - 1], sizes[l]
            W = theta[at : at + n_out * n_in].reshape(n_out, n_in)
            b = theta[at + n_out * n_in : at + n_out * n_in + n_out].reshape(n_out, 1)
            at += n_out * n_in + n_out
            Z = W @ A + b
            A = torch.relu(Z) if l < len(sizes) - 1 else Z
        if case.loss == "binary_cross_entropy":
            return (torch.nn.functional.softplus(Z) - Y * Z).sum() / m
        return -(Y * torch.log_softmax(Z, dim=0)).sum() / m

    return cost


@pytest.mark.parametrize("name", NETWORKS)
def test_torch_gradcheck(benchmark, name, problem_of, naive_baseline):
    torch = pytest.importorskip("torch")
    case = case_for(name)
    if FULL and name == "L":
        pytest.skip("torch.autograd.gradcheck in full mode on L would take hours (two forward passes per component)")
    problem = problem_of(case)
    baseline = naive_baseline(case)
    benchmark.group = f"dense {case.name}"
    cost = _torch_cost(torch, case, problem)
    theta = torch.tensor(problem.theta, dtype=torch.float64, requires_grad=True)
    assert float(cost(theta).detach()) == pytest.approx(problem.cost(problem.theta, *problem.args), rel=1e-12)

    def run():
        return torch.autograd.gradcheck(cost, (theta,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False)

    timing = timed(benchmark, run, rounds(1) if name != "S" else rounds(3), warmup=0)
    record(
        benchmark, case=case, contender="torch.autograd.gradcheck", kind="full", seconds=timing.seconds,
        components_timed=case.n_params, baseline_seconds_per_component=baseline.seconds_per_component,
        torch_version=torch.__version__, torch_threads=torch.get_num_threads(),
    )
    assert timing.result is True
