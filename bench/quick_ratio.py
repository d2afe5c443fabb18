"""The whole dense check against the naive course loop, interleaved in one process.

    python bench/quick_ratio.py M        (or S, L, M-tanh, M-sigmoid; about a minute for M)

A quick, fair ratio on a shared machine: each round times one whole
``DenseNet.gradcheck`` and the naive loop on 100 spread components (BLAS on one
thread, extrapolated to every component), one right after the other, and the
medians of five rounds are compared. The full benchmark suite
(``scripts/bench_report.py``) is the reference; this is its quick companion.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from threadpoolctl import threadpool_limits  # noqa: E402

from benchkit import spread_indices  # noqa: E402
from fastgrad._cases import get_case  # noqa: E402
from fastgrad.naive import naive_numerical_gradient  # noqa: E402


def _case_and_problem(name: str):
    """The case and its problem; ``M-tanh`` / ``M-sigmoid`` are M with smooth hidden layers (bench_smooth)."""
    if name.startswith("M-"):
        from dataclasses import replace

        from bench_smooth import smooth_problem

        hidden = name.split("-", 1)[1]
        case = replace(get_case("M"), name=name, hidden=hidden)
        return case, smooth_problem(case)
    case = get_case(name)
    return case, case.problem()


def main(name: str = "M", rounds: int = 5) -> None:
    case, problem = _case_and_problem(name)
    net = case.net()
    indices = spread_indices(problem.theta.size, 100)
    net.gradcheck(problem.params, problem.X, problem.Y, progress=False)  # compile or load the kernels
    checks, naives = [], []
    for _ in range(rounds):
        began = time.perf_counter()
        report = net.gradcheck(problem.params, problem.X, problem.Y, progress=False)
        checks.append(time.perf_counter() - began)
        with threadpool_limits(1, "blas"):
            began = time.perf_counter()
            naive_numerical_gradient(net, problem.params, problem.X, problem.Y, indices=indices)
            naives.append((time.perf_counter() - began) / indices.size * problem.theta.size)
    check, naive = statistics.median(checks), statistics.median(naives)
    print(f"{case.name}: verdict {report.verdict}; whole check {check * 1e3:.1f} ms, naive loop ~{naive * 1e3:,.1f} ms "
          f"(extrapolated); speed-up {naive / check:,.0f}x (medians of {rounds} interleaved rounds)")


if __name__ == "__main__":
    main(*sys.argv[1:2])
