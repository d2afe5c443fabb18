"""One gradient check in a fresh process, measured from the inside (used by ``bench_compile.py``).

Run as ``python bench/probe.py CASE ENGINE [--small] [--indices N] [--numba-started]``; prints one
JSON object: seconds to import fastgrad, to build the case, of the first and
of a second check, the number of functions Numba compiled during the first
check (fastgrad's own and others), the peak resident memory before and after
the first check (VmHWM, reset just before the check where Linux allows, else ``ru_maxrss``; the second check runs while the first report is
still alive, so its peak is reported apart), and the verdict. With
``--numba-started`` (the memory runs) Numba's one-time start-up runs first, on
a trivial function, so that the memory measured is the check's; and the
second check's NumPy arrays are traced (``tracemalloc``): their peak is what
the check allocates, whatever the heap held before.

ENGINE is ``dense`` (``DenseNet.gradcheck``), ``generic`` (``fastgrad.gradcheck``
on the registry's compiled cost) or ``generic-new-cost`` (``fastgrad.gradcheck``
on a cost function compiled in this process, never seen before: only the cost
itself may compile, fastgrad's kernel must come from the cache).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc

started = time.perf_counter()


def _peak_kib() -> int:
    """Peak resident memory (KiB): VmHWM, which _peak_since_now_kib can reset, else ru_maxrss.

    ru_maxrss alone cannot be reset, and a process started by a large one (a
    pytest run) starts with its parent's peak: the check's own memory hides
    under it.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_since_now_kib() -> int:
    """Reset the peak to the current resident memory where Linux allows it (clear_refs 5); the peak now."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass
    return _peak_kib()


def numba_start() -> None:
    """One call of a trivial compiled function: Numba's one-time start-up, and nothing of fastgrad's."""
    import numba

    numba.njit(lambda x: x + 1.0)(1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("engine", choices=["dense", "generic", "generic-new-cost"])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--indices", type=int, default=0, help="check only this many components (0: all)")
    parser.add_argument("--numba-started", action="store_true",
                        help="start Numba (one trivial compiled call) before measuring the check's memory")
    options = parser.parse_args()

    from numba.core import event

    compiled = {"fastgrad": 0, "other": 0}
    names: list[str] = []

    class Counter(event.Listener):
        def on_start(self, ev):
            dispatcher = (ev.data or {}).get("dispatcher")
            function = getattr(dispatcher, "py_func", None)
            module = getattr(function, "__module__", "") or ""
            compiled["fastgrad" if module.startswith("fastgrad") else "other"] += 1
            if module.startswith("fastgrad"):
                names.append(f"{module}.{getattr(function, '__qualname__', '?')}")

        def on_end(self, ev):
            pass

    event.register("numba:compile", Counter())

    import numpy as np

    import fastgrad
    from fastgrad._cases import get_case

    imported = time.perf_counter()
    case = get_case(options.case, small=options.small)
    problem = case.problem()
    built = time.perf_counter()
    if options.numba_started:
        # Numba's own one-time start-up (its registries, LLVM, SciPy's BLAS) is
        # not the check's memory: start it with a trivial compiled function.
        numba_start()
    rss_before = _peak_since_now_kib()
    compiled_while_building = dict(compiled)
    indices = None
    if options.indices:
        indices = np.unique(np.linspace(0, case.n_params - 1, options.indices).round().astype(np.int64))

    if options.engine == "dense":

        def check():
            return problem.net.gradcheck(problem.params, problem.X, problem.Y, indices=indices, progress=False,
                                         engine="dense")

    elif options.engine == "generic":

        def check():
            return fastgrad.gradcheck(
                problem.cost, problem.grad, problem.theta, args=problem.args, layout=problem.layout,
                indices=indices, progress=False,
            )

    else:
        import numba

        known_cost = problem.cost

        # A wrapper of the registry's cost with the same arguments, compiled
        # here for the first time (explicit parameters: fastgrad compiles the
        # cost for an explicit signature, which star-args functions refuse).
        arity = len(problem.args)
        if arity == 2:

            @numba.njit
            def new_cost(theta, a, b):
                return known_cost(theta, a, b) + 0.0

        elif arity == 3:

            @numba.njit
            def new_cost(theta, a, b, c):
                return known_cost(theta, a, b, c) + 0.0

        else:

            @numba.njit
            def new_cost(theta, a, b, c, d, e):
                return known_cost(theta, a, b, c, d, e) + 0.0

        def check():
            return fastgrad.gradcheck(
                new_cost, problem.grad, problem.theta, args=problem.args, layout=problem.layout,
                indices=indices, progress=False,
            )

    t0 = time.perf_counter()
    report = check()
    t1 = time.perf_counter()
    rss_after_first = _peak_kib()
    compiled_first = {k: compiled[k] - compiled_while_building[k] for k in compiled}
    names_first = sorted(set(names[len(names) - compiled_first["fastgrad"]:])) if compiled_first["fastgrad"] else []
    # Memory run: the second check's NumPy arrays at their peak (tracemalloc): what the check
    # allocates, whatever the heap held before (the resident memory it adds is
    # less where the heap reuses freed memory). Traced only now: tracing slows
    # the check and holds memory of its own.
    if options.numba_started:  # (the memory run; tracing would distort the compile runs' timing)
        tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    t_second = time.perf_counter()
    check()
    t2 = time.perf_counter()
    allocated_peak = tracemalloc.get_traced_memory()[1] - traced_before if options.numba_started else None
    tracemalloc.stop()
    print(json.dumps({
        "case": case.name,
        "engine": options.engine,
        "n_params": case.n_params,
        "components": int(report.indices.size),
        "import_s": imported - started,
        "build_s": built - imported,
        "first_check_s": t1 - t0,
        "second_check_s": t2 - t_second,
        "process_s": t1 - started,
        "compiled_during_first_check": compiled_first,
        "compiled_before_check": compiled_while_building,
        "fastgrad_functions_compiled_during_first_check": names_first,
        "maxrss_before_check_kib": rss_before,
        "maxrss_kib": rss_after_first,
        "allocated_peak_bytes": allocated_peak,
        "maxrss_after_second_check_kib": _peak_kib(),
        "theta_bytes": int(problem.theta.nbytes),
        "passed": bool(report.passed),
    }))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
