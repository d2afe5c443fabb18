"""Checks on a Dask cluster (``client=``): same reports as in-process, faults, Ctrl-C, missing extra.

One LocalCluster of two single-threaded worker processes over loopback, started
and closed by this module. The costs live in ``tests/distributed_costs.py``, a
module the workers import (they get the test run's ``sys.path``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import fastgrad
from fastgrad import distributed as fd_dist
from fastgrad._driver import run_check
from fastgrad._options import resolve_options
from fastgrad.engines import GenericEngine, prepare_cost

import distributed  # in the test extra: these tests never skip
import distributed_costs as costs


@pytest.fixture(scope="module")
def client():
    with costs.two_worker_client() as client:
        yield client


def same_report(a, b) -> None:
    assert a.verdict == b.verdict
    np.testing.assert_array_equal(a.approx, b.approx)  # bit-identical (NaNs equal where both are NaN)
    np.testing.assert_array_equal(a.error, b.error)
    np.testing.assert_array_equal(a.state, b.state)


def problem(n=24, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((12, n))
    theta = rng.standard_normal(n)
    return A, theta, costs.tanh_grad(theta, A)


# --------------------------------------------------------------------------- #
# Same numbers
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("method", ["central", "forward", "richardson", "complex"])
def test_generic_python_cost_identical_for_every_method(client, method):
    A, theta, grad = problem()
    grad[5] *= 1.5  # one wrong component: the verdict and states must match too
    local = fastgrad.gradcheck(costs.tanh_cost, grad, theta, args=(A,), method=method, progress=False)
    remote = fastgrad.gradcheck(costs.tanh_cost, grad, theta, args=(A,), method=method, progress=False,
                                client=client)
    assert local.verdict == "fail"
    same_report(local, remote)


def test_kinked_cost_with_refinement_identical(client):
    # abs() at zero components: refinement rounds and per-example brackets (client side).
    theta = np.array([0.0, 1.0, -2.0, 0.0, 3e-9, 0.5])
    grad = np.sign(theta)
    local = fastgrad.gradcheck(costs.abs_terms, grad, theta, per_example="sum", progress=False)
    remote = fastgrad.gradcheck(costs.abs_terms, grad, theta, per_example="sum", progress=False, client=client)
    # theta[4] sits 3e-9 from the kink: only the table's smallest steps resolve it.
    assert local.error[4] > 1e3 * local.error[1]
    same_report(local, remote)


def test_compiled_cost_identical(client):
    A, theta, grad = problem()
    local = fastgrad.gradcheck(costs.tanh_cost_jit, grad, theta, args=(A,), progress=False)
    remote = fastgrad.gradcheck(costs.tanh_cost_jit, grad, theta, args=(A,), progress=False, client=client)
    assert local.verdict == "pass"
    same_report(local, remote)


def test_compiled_cost_defined_in_a_function_travels_by_value(client, capsys):
    import numba

    @numba.njit
    def local_cost(theta, A):
        return np.sum(np.tanh(A @ theta)) + 0.5 * theta[0] ** 2

    A, theta, grad = problem()
    grad[0] += theta[0]
    local = fastgrad.gradcheck(local_cost, grad, theta, args=(A,), progress=False)
    remote = fastgrad.gradcheck(local_cost, grad, theta, args=(A,), progress=False, client=client)
    assert local.verdict == "pass"
    same_report(local, remote)
    # Numba rebuilt the dispatcher on each worker, which compiled it: the notice names them.
    assert "Dask worker(s) compiled kernels" in capsys.readouterr().err


def test_cost_defined_in_main_travels_by_value(client):
    # A lambda (as a cost typed at a prompt or in a script's __main__) is pickled by value.
    A, theta, grad = problem()
    cost = lambda t, A: float(np.sum(np.tanh(A @ t)))  # noqa: E731
    local = fastgrad.numerical_gradient(cost, theta, args=(A,))
    remote = fastgrad.numerical_gradient(cost, theta, args=(A,), client=client)
    np.testing.assert_array_equal(local, remote)


@pytest.mark.parametrize("shard_size", [1, 3, None])
def test_any_shard_size_same_report(client, shard_size):
    A, theta, grad = problem(n=30)
    cost = prepare_cost(costs.tanh_cost, (A,))
    opts = resolve_options(theta.size, None, method="richardson", progress=False)
    local_engine = GenericEngine(cost, theta)
    local = run_check(local_engine, grad, opts, None)
    with fd_dist.DaskEngine(client, fd_dist.generic_recipe(cost, theta, False), shard_size=shard_size,
                            progress=False) as engine:
        remote = run_check(engine, grad, opts, None)
        assert engine.tasks >= (30 if shard_size == 1 else 2)
    same_report(local, remote)


def test_estimate_gradient_identical(client):
    A, theta, _ = problem()
    local = fastgrad.estimate_gradient(costs.tanh_cost, theta, args=(A,), indices=[1, 4, 9])
    remote = fastgrad.estimate_gradient(costs.tanh_cost, theta, args=(A,), indices=[1, 4, 9], client=client)
    np.testing.assert_array_equal(local.approx, remote.approx)
    np.testing.assert_array_equal(local.error, remote.error)


@pytest.mark.parametrize("method,engine", [("central", "dense"), ("forward", "dense"), ("richardson", "dense"),
                                           ("complex", "generic"), ("central", "generic")])
def test_dense_network_identical(client, method, engine):
    net = fastgrad.DenseNet([4, 5, 3, 1], "tanh", "binary_cross_entropy", l2=0.1)
    params = net.init(seed=1)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((4, 7))
    Y = (rng.random((1, 7)) > 0.5).astype(float)
    grads = net.gradients(params, X, Y)
    grads["dW2"] = 2.0 * grads["dW2"]
    local = net.gradcheck(params, X, Y, grads, method=method, engine=engine, progress=False)
    remote = net.gradcheck(params, X, Y, grads, method=method, engine=engine, progress=False, client=client)
    assert local.verdict == "fail"
    same_report(local, remote)


@pytest.mark.parametrize("sizes,activation,loss,extra", [
    ([4, 5, 3, 1], "relu", "binary_cross_entropy", {}),
    ([3, 4, 3], "leaky_relu", "softmax_cross_entropy", {"l2": 0.05, "dropout": 0.2}),
    ([3, 4, 2], "tanh", "mse", {"output": "sigmoid"}),
])
@pytest.mark.parametrize("method", ["central", "richardson"])
def test_small_network_runs_the_same_numpy_engine_on_the_workers(monkeypatch, client, sizes, activation, loss, extra,
                                                                 method):
    """engine='auto' on a small network: NumPy on the client and on the workers, the same bits."""
    net = fastgrad.DenseNet(sizes, activation, loss, **extra)
    params = net.init(seed=1)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((sizes[0], 9))
    Y = np.eye(sizes[-1])[:, rng.integers(0, sizes[-1], 9)] if loss == "softmax_cross_entropy" \
        else (rng.random((sizes[-1], 9)) > 0.5).astype(float)
    grads = net.gradients(params, X, Y)
    grads["dW1"] = 1.01 * grads["dW1"]
    engines, built = [], []
    original = fd_dist.DaskEngine.__init__

    def spy(self, client, recipe, *args, **kwargs):
        engines.append(self)
        built.append(type(recipe.build()).__name__)
        original(self, client, recipe, *args, **kwargs)

    local = net.gradcheck(params, X, Y, grads, method=method, progress=False)
    monkeypatch.setattr(fd_dist.DaskEngine, "__init__", spy)
    remote = net.gradcheck(params, X, Y, grads, method=method, progress=False, client=client)
    assert built == ["NumpyDenseEngine"] and engines[0].tasks > 0  # the workers evaluated rows
    assert local.verdict == "fail"
    same_report(local, remote)


# --------------------------------------------------------------------------- #
# Faults
# --------------------------------------------------------------------------- #


def test_cost_that_raises_on_a_worker_reaches_the_client(client):
    theta = np.linspace(-1.0, 1.0, 12)
    with pytest.raises(ValueError, match="component 7 misbehaves") as info:
        fastgrad.gradcheck(costs.raises_on_worker, 2 * theta, theta, args=(7,), progress=False, client=client)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "theta[7]" in notes


def test_worker_killed_mid_check_same_report(client, tmp_path):
    # The first worker to call the cost claims the flag and kills its own process;
    # the scheduler reruns its shard on the other worker (or on the restarted one).
    flag = tmp_path / "kill-one-worker"
    flag.write_text("")
    theta = np.linspace(-1.0, 1.0, 16)
    grad = 2 * theta
    local = fastgrad.gradcheck(costs.dies_once, grad, theta, args=(str(flag),), progress=False)
    assert flag.exists()  # the client never dies
    before = set(client.scheduler_info(n_workers=-1)["workers"])
    remote = fastgrad.gradcheck(costs.dies_once, grad, theta, args=(str(flag),), progress=False, client=client)
    assert not flag.exists()  # a worker did claim it, so one died
    same_report(local, remote)
    client.wait_for_workers(2, timeout=30)  # the nanny restarts it, for the tests that follow
    assert set(client.scheduler_info(n_workers=-1)["workers"]) != before


def test_a_cancelled_shard_is_scattered_and_submitted_again(client, monkeypatch):
    # A worker that dies holding the only copy of the scattered cost (the
    # broadcast had not reached the others) takes it along: the scheduler then
    # cancels the shards that need it. Simulated: the first shard is cancelled.
    theta = np.linspace(-1.0, 1.0, 16)
    grad = 2 * theta
    local = fastgrad.gradcheck(costs.square, grad, theta, progress=False)
    engine_class = fd_dist.DaskEngine
    submit = engine_class._submit
    cancelled = []

    def submit_and_cancel_the_first(self, indices, points, first, last):
        future = submit(self, indices, points, first, last)
        if not cancelled:
            cancelled.append(future.key)
            self.client.cancel([future])
        return future

    monkeypatch.setattr(engine_class, "_submit", submit_and_cancel_the_first)
    remote = fastgrad.gradcheck(costs.square, grad, theta, progress=False, client=client)
    assert cancelled
    same_report(local, remote)


def test_workers_that_cannot_import_the_cost(client, tmp_path, monkeypatch):
    module = tmp_path / "only_on_the_client.py"
    module.write_text("import numpy as np\ndef cost(theta):\n    return float(theta @ theta)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_on_the_client

    theta = np.arange(4.0)
    with pytest.raises(fd_dist.ClusterError, match="could not load the cost.*only_on_the_client"):
        fastgrad.gradcheck(only_on_the_client.cost, 2 * theta, theta, progress=False, client=client)


def test_cluster_without_workers_fails_fast(monkeypatch):
    monkeypatch.setattr(fd_dist, "WORKER_TIMEOUT", 0.5)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as empty, \
            distributed.Client(empty) as no_workers:
        began = time.perf_counter()
        with pytest.raises(fd_dist.ClusterError, match="has no workers"):
            fastgrad.numerical_gradient(costs.tanh_cost, np.ones(3), args=(np.ones((2, 3)),), client=no_workers)
        assert time.perf_counter() - began < 10


def test_client_must_be_a_client():
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        fastgrad.gradcheck(costs.square, np.zeros(2), np.zeros(2), client="tcp://127.0.0.1:8786")


def test_missing_extra_named_in_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"fastgrad\[distributed\]") as info:
        fastgrad.gradcheck(costs.square, np.zeros(2), np.zeros(2), client=object())
    assert "\n" not in str(info.value)
    from fastgrad.cli import main

    assert main(["check", "--layers", "2,2,1", "--workers", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "fastgrad[distributed]" in err and err.count("\n") == 0


# --------------------------------------------------------------------------- #
# Ctrl-C
# --------------------------------------------------------------------------- #


def _interrupt_after(seconds: float, times: int = 1, gap: float = 0.3) -> threading.Thread:
    def send():
        time.sleep(seconds)
        for i in range(times):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(gap)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _our_tasks(client) -> list:
    return [key for keys in client.processing().values() for key in keys if "fastgrad-evaluate" in str(key)]


def test_ctrl_c_stops_between_calls_with_partial_report(client):
    theta = np.linspace(-1.0, 1.0, 300)
    sender = _interrupt_after(1.0)
    with pytest.raises(fastgrad.CheckInterrupted) as info:
        fastgrad.gradcheck(costs.slow_square, 2 * theta, theta, args=(0.005,), progress=False, client=client)
    sender.join()
    partial = info.value.partial
    assert partial is not None and 0 < partial.checked < 300


def test_second_ctrl_c_cancels_tasks_at_once(client):
    theta = np.linspace(-1.0, 1.0, 400)
    sender = _interrupt_after(1.5, times=2, gap=0.2)
    began = time.perf_counter()
    with pytest.raises(fastgrad.CheckInterrupted) as info:
        fastgrad.gradcheck(costs.slow_square, 2 * theta, theta, args=(0.01,), progress=False, client=client)
    sender.join()
    # Cancelled mid-call: the call's rows are dropped, the rows of earlier calls make the partial report.
    partial = info.value.partial
    assert partial is None or (partial.interrupted and partial.checked < theta.size)
    assert time.perf_counter() - began < 4.0  # the whole check takes ~8 s
    deadline = time.perf_counter() + 5
    while _our_tasks(client) and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert _our_tasks(client) == []


def test_cli_scheduler_address_runs_the_check_there(client, capsys):
    from fastgrad.cli import main

    status = main(["check", "--layers", "4,5,3,1", "--scheduler", client.scheduler.address, "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0 and "on 2 Dask workers" in out and "PASSED" in out
