"""How much of one path the two public checks share, and how deep it is (issue 9's must-holds).

Runs ``fastgrad.gradcheck`` (the generic engine on the course network written
as a compiled cost, ``fastgrad._cases.network_cost``) and ``DenseNet.gradcheck``
(the dense engine on the same 4-5-3-1 course network, ``fastgrad.naive.course_case``)
twice each in this process, and traces the second call of each with
``sys.setprofile`` (kernels compiled and caches warm, so compilation is not
counted). For each it prints the fastgrad functions entered, then the shared
count and both percentages, and the deepest chain of fastgrad frames.

How frames are counted: every Python frame whose code lies in a file of the
``fastgrad`` package counts (functions, methods, lambdas, comprehensions and
the bodies of ``@contextmanager`` generators alike, and the compiled kernels,
which Numba shows to a profiler as a frame of their Python source); frames of
other packages (NumPy, contextlib, Numba's dispatchers) are passed over without
breaking the chain. The public function itself is frame 1, so ``gradcheck ->
run_check`` is a chain of depth 2. A function is named ``module:qualname``;
lambdas and comprehensions count as frames but not as functions of their own
(they belong to the function that holds them).

Targets: each check shares at least 75% of the fastgrad functions it enters
with the other, and no chain is deeper than 6. Exit status 1 if a target is
missed, 0 otherwise.

Usage::

    PYTHONPATH=. python scripts/pipeline_metrics.py
    PYTHONPATH=. python scripts/pipeline_metrics.py --quiet    # figures only
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import fastgrad
from fastgrad._cases import network_cost
from fastgrad._dense_spec import BINARY_CROSS_ENTROPY, RELU
from fastgrad.naive import COURSE_LAYER_SIZES, course_backward, course_case

SHARE_TARGET = 0.75
DEPTH_TARGET = 6

PACKAGE_DIR = os.path.dirname(os.path.abspath(fastgrad.__file__)) + os.sep


def _name(code) -> str:
    module = code.co_filename[len(PACKAGE_DIR):-3].replace(os.sep, ".")
    return f"{module}:{getattr(code, 'co_qualname', code.co_name)}"


class Tracer:
    """``sys.setprofile`` hook: the fastgrad functions entered and the deepest fastgrad chain."""

    def __init__(self) -> None:
        self.entered: set[str] = set()
        self.stack: list[str] = []
        self.deepest: list[str] = []

    def __call__(self, frame, event, arg) -> None:
        if event not in ("call", "return"):
            return  # c_call / c_return: builtins, never fastgrad frames
        code = frame.f_code
        if not code.co_filename.startswith(PACKAGE_DIR):
            return
        name = _name(code)
        if event == "call":
            if not name.endswith(">"):  # <lambda>, <genexpr>, <listcomp>: part of their function
                self.entered.add(name)
            self.stack.append(name)
            if len(self.stack) > len(self.deepest):
                self.deepest = list(self.stack)
        elif self.stack:
            self.stack.pop()


def traced(call) -> Tracer:
    """Run ``call`` once untraced (compile, warm caches), then once under the tracer."""
    call()
    tracer = Tracer()
    sys.setprofile(tracer)
    try:
        call()
    finally:
        sys.setprofile(None)
    return tracer


def course_problem():
    X, Y, params = course_case()
    net = fastgrad.DenseNet(list(COURSE_LAYER_SIZES), "relu", "binary_cross_entropy")
    grads = course_backward(X, Y, params)
    return net, params, X, Y, grads


def run_generic(net, params, X, Y, grads):
    theta, layout = fastgrad.pack(params)
    grad = fastgrad.pack(grads, layout)
    args = (np.asarray(COURSE_LAYER_SIZES, dtype=np.int64), RELU, BINARY_CROSS_ENTROPY, X,
            np.asarray(Y, dtype=np.float64).reshape(1, -1))
    return lambda: fastgrad.gradcheck(network_cost, grad, theta, layout=layout, args=args, progress=False)


def run_dense(net, params, X, Y, grads):
    return lambda: net.gradcheck(params, X, Y, grads, progress=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="print the figures only, not the functions")
    args = parser.parse_args(argv)

    problem = course_problem()
    checks = {
        "fastgrad.gradcheck": traced(run_generic(*problem)),
        "DenseNet.gradcheck": traced(run_dense(*problem)),
    }
    (name_a, a), (name_b, b) = checks.items()
    shared = a.entered & b.entered
    ok = True
    for name, tracer, other in ((name_a, a, b), (name_b, b, a)):
        if not args.quiet:
            print(f"## {name}: {len(tracer.entered)} fastgrad functions entered ('*' = shared)")
            for function in sorted(tracer.entered):
                print(f"  {'*' if function in other.entered else ' '} {function}")
            print()
    print(f"shared: {len(shared)} fastgrad functions")
    for name, tracer in checks.items():
        share = len(shared) / max(1, len(tracer.entered))
        missed = share < SHARE_TARGET
        ok &= not missed
        print(f"  {name}: {len(shared)}/{len(tracer.entered)} = {share:.0%} shared"
              f" (target >= {SHARE_TARGET:.0%}){'  MISSED' if missed else ''}")
    print("deepest chain of fastgrad frames (the public function is frame 1):")
    for name, tracer in checks.items():
        depth = len(tracer.deepest)
        missed = depth > DEPTH_TARGET
        ok &= not missed
        print(f"  {name}: {depth} (target <= {DEPTH_TARGET}){'  MISSED' if missed else ''}")
        print("    " + " -> ".join(tracer.deepest))
    print("all targets hold" if ok else "a target is missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
