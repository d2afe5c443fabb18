"""Checks on a Dask LocalCluster against the same checks in-process.

Smoke (default, part of ``python -m pytest``): small sizes, one round each,
asserting the cluster's numbers are bit-identical to the in-process ones.
Full: ``FASTGRAD_BENCH_FULL=1 python -m pytest bench/bench_distributed.py
--benchmark-enable -s`` times

* a plain Python cost of ~2 ms per call on 2 single-threaded workers vs
  in-process (``speedup`` in ``extra_info``; target >= 1.6 on 2 cores);
* a compiled cost and the dense engine on the same cluster vs in-process
  Numba threads;
* the per-task overhead (a round trip of an empty task, and the scatter of the
  recipe) and the shard length that keeps efficiency >= 90%.

The numbers quoted in ``docs/distributed.md`` come from these.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastgrad
from benchkit import FULL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import distributed_costs as costs  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with costs.two_worker_client() as client:
        yield client


def _seconds(run) -> tuple[float, object]:
    began = time.perf_counter()
    result = run()
    return time.perf_counter() - began, result


def _record(benchmark, name, local_s, remote_s, **extra) -> None:
    benchmark.extra_info.update(contender=name, local_seconds=local_s, cluster_seconds=remote_s,
                                speedup=local_s / remote_s, **extra)
    print(f"\n{name}: in-process {local_s:.2f} s, 2 workers {remote_s:.2f} s, speedup {local_s / remote_s:.2f}x "
          f"{extra}")


def test_python_cost_on_two_workers(benchmark, client):
    rng = np.random.default_rng(0)
    n = 1500 if FULL else 16
    A = rng.standard_normal((40, n))
    theta = rng.standard_normal(n)
    repeats = 100 if FULL else 2  # ~2 ms per call in full
    grad = costs.tanh_grad(theta, A)
    per_call, _ = _seconds(lambda: [costs.busy_cost(theta, A, repeats) for _ in range(20)])
    local_s, local = _seconds(lambda: fastgrad.gradcheck(costs.busy_cost, grad, theta, args=(A, repeats),
                                                         progress=False))
    remote = benchmark.pedantic(lambda: fastgrad.gradcheck(costs.busy_cost, grad, theta, args=(A, repeats),
                                                           progress=False, client=client), rounds=1, iterations=1)
    remote_s, _ = _seconds(lambda: fastgrad.gradcheck(costs.busy_cost, grad, theta, args=(A, repeats),
                                                      progress=False, client=client))
    np.testing.assert_array_equal(local.approx, remote.approx)
    _record(benchmark, "python cost", local_s, remote_s, cost_ms=per_call / 20 * 1e3, components=n)


def test_compiled_cost_on_two_workers(benchmark, client):
    rng = np.random.default_rng(1)
    n = 4000 if FULL else 40
    A = rng.standard_normal((200 if FULL else 10, n))
    theta = rng.standard_normal(n)
    grad = costs.tanh_grad(theta, A)
    fastgrad.gradcheck(costs.tanh_cost_jit, grad, theta, args=(A,), progress=False)  # load the kernels
    local_s, local = _seconds(lambda: fastgrad.gradcheck(costs.tanh_cost_jit, grad, theta, args=(A,),
                                                         progress=False))
    remote = benchmark.pedantic(lambda: fastgrad.gradcheck(costs.tanh_cost_jit, grad, theta, args=(A,),
                                                           progress=False, client=client), rounds=1, iterations=1)
    remote_s, _ = _seconds(lambda: fastgrad.gradcheck(costs.tanh_cost_jit, grad, theta, args=(A,), progress=False,
                                                      client=client))
    np.testing.assert_array_equal(local.approx, remote.approx)
    _record(benchmark, "compiled cost", local_s, remote_s, components=n)


def test_dense_engine_on_two_workers(benchmark, client):
    sizes = [64, 128, 64, 10] if FULL else [4, 5, 3, 1]
    net = fastgrad.DenseNet(sizes, "tanh", "softmax_cross_entropy" if sizes[-1] > 1 else "binary_cross_entropy")
    params = net.init(seed=0)
    rng = np.random.default_rng(0)
    m = 256 if FULL else 8
    X = rng.standard_normal((sizes[0], m))
    Y = np.eye(sizes[-1])[:, rng.integers(0, sizes[-1], m)] if sizes[-1] > 1 else (rng.random((1, m)) > 0.5) * 1.0
    net.gradcheck(params, X, Y, progress=False)  # load the kernels
    local_s, local = _seconds(lambda: net.gradcheck(params, X, Y, progress=False))
    remote = benchmark.pedantic(lambda: net.gradcheck(params, X, Y, progress=False, client=client), rounds=1,
                                iterations=1)
    remote_s, _ = _seconds(lambda: net.gradcheck(params, X, Y, progress=False, client=client))
    np.testing.assert_array_equal(local.approx, remote.approx)
    _record(benchmark, "dense engine", local_s, remote_s, parameters=net.n_params)


def _noop(x):
    return x


def test_task_overhead(benchmark, client):
    """Round trip of an empty task, and the scatter of a recipe of 8 MB."""
    rounds = 200 if FULL else 10
    client.submit(_noop, 0, pure=False).result()
    began = time.perf_counter()
    for i in range(rounds):
        client.submit(_noop, i, pure=False).result()
    serial = (time.perf_counter() - began) / rounds
    began = time.perf_counter()
    futures = [client.submit(_noop, i, pure=False) for i in range(rounds)]
    client.gather(futures)
    pipelined = (time.perf_counter() - began) / rounds
    blob = np.random.default_rng(0).standard_normal(1_000_000).tobytes()
    began = time.perf_counter()
    future = benchmark.pedantic(lambda: client.scatter(blob, broadcast=True, hash=False), rounds=1, iterations=1)
    scatter = time.perf_counter() - began
    client.cancel([future])
    # A shard of s seconds loses (overhead / (s + overhead)); >= 90% needs s >= 9 x overhead.
    benchmark.extra_info.update(round_trip_ms=serial * 1e3, pipelined_ms=pipelined * 1e3,
                                scatter_8MB_ms=scatter * 1e3, shard_seconds_for_90pc=9 * serial)
    print(f"\ntask round trip {serial * 1e3:.2f} ms, pipelined {pipelined * 1e3:.2f} ms per task, "
          f"scatter 8 MB to 2 workers {scatter * 1e3:.1f} ms; 90% efficiency needs shards >= {9 * serial * 1e3:.0f} ms")
    assert serial > 0 and scatter > 0
