"""Costs for ``tests/test_distributed.py`` (and ``bench/bench_distributed.py``), importable by Dask workers,
and the two-worker cluster both start."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import numba
import numpy as np


@contextmanager
def two_worker_client():
    """A ``Client`` of a LocalCluster of two single-threaded worker processes, closed afterwards."""
    import distributed

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=50)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _on_a_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except Exception:
        return False
    return True


def tanh_cost(theta, A):
    return np.sum(np.tanh(A @ theta))


def tanh_grad(theta, A):
    return A.T @ (1.0 - np.tanh(A @ theta) ** 2)


@numba.njit(cache=True)
def tanh_cost_jit(theta, A):
    return np.sum(np.tanh(A @ theta))


def abs_terms(theta):
    return np.abs(theta)


def square(theta):
    return float(theta @ theta)


def slow_square(theta, seconds):
    time.sleep(seconds)
    return float(theta @ theta)


def raises_on_worker(theta, k):
    if _on_a_worker() and theta[k] > np.linspace(-1.0, 1.0, theta.size)[k]:
        raise ValueError(f"component {k} misbehaves")
    return float(theta @ theta)


def dies_once(theta, flag):
    """Kills the first worker process that calls it (the one that removes ``flag``)."""
    if _on_a_worker():
        try:
            os.remove(flag)
        except FileNotFoundError:
            pass
        else:
            os._exit(1)
    return float(theta @ theta)


def busy_cost(theta, A, repeats):
    """A plain Python cost of about ``repeats`` x 20 us (the benchmark's ~1-10 ms cost)."""
    total = 0.0
    for _ in range(repeats):
        total += float(np.sum(np.tanh(A @ theta)))
    return total / repeats
