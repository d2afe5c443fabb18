"""Start-up: what a new process loads before and during a small check (issue 13).

``import fastgrad`` loads nothing but the package's ``__init__``; importing the
kernel modules creates dispatchers but compiles, loads and sets up no cache;
a small dense check imports no optional heavy module. Each runs in a new
process, since this one has long since loaded everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastgrad import _threads, cli

REPO = Path(__file__).resolve().parent.parent

#: Modules ``import fastgrad`` must not load.
HEAVY = ("numpy", "numba", "llvmlite", "scipy", "threadpoolctl", "psutil", "dask", "distributed", "tqdm")


def _run(code: str) -> dict:
    """Run ``code`` in a new Python process; return the JSON it prints last."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_fastgrad_loads_nothing():
    loaded = _run(
        """
        import json, sys
        before = set(sys.modules)
        import fastgrad
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    assert [name for name in loaded if name.startswith("fastgrad")] == ["fastgrad"]
    assert not {name.split(".")[0] for name in loaded} & set(HEAVY), loaded


def test_kernel_modules_compile_load_and_set_up_nothing_at_import():
    outcome = _run(
        """
        import json, sys
        import fastgrad
        net = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
        import fastgrad._dense_engine, fastgrad._dense_kernels, fastgrad._generic_kernels
        dispatchers = [
            value for name, module in list(sys.modules.items()) if name.startswith("fastgrad")
            for value in vars(module).values() if hasattr(value, "overloads") and hasattr(value, "_cache")
        ]
        print(json.dumps({
            "dispatchers": len(dispatchers),
            "with_overloads": [d.py_func.__qualname__ for d in dispatchers if d.overloads],
            "caches_set_up": [d.py_func.__qualname__ for d in dispatchers if d._cache._ready is not None],
            # (import numba itself imports the scipy package, not scipy.linalg)
            "heavy": sorted(m for m in ("scipy.linalg", "psutil", "dask", "distributed", "tqdm") if m in sys.modules),
        }))
        """
    )
    assert outcome["dispatchers"] > 20
    assert outcome["with_overloads"] == []
    assert outcome["caches_set_up"] == []
    assert outcome["heavy"] == []


def test_a_small_check_imports_no_optional_heavy_module():
    outcome = _run(
        """
        import json, sys
        import numpy as np
        import fastgrad
        from fastgrad.naive import course_backward, course_case

        X, Y, params = course_case()
        net = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
        report = net.gradcheck(params, X, Y, course_backward(X, Y, params), progress=False)
        theta = np.linspace(-1.0, 1.0, 6)
        generic = fastgrad.gradcheck(lambda t: float(np.sum(t ** 3)), 3.0 * theta ** 2, theta, progress=False)
        print(json.dumps({
            "passed": bool(report.passed and generic.passed),
            "heavy": sorted(m for m in ("psutil", "dask", "distributed", "tqdm") if m in sys.modules),
        }))
        """
    )
    assert outcome == {"passed": True, "heavy": []}


def test_loaded_libraries_are_scanned_again_only_after_an_import(monkeypatch):
    scans = []

    class Counting(_threads.ThreadpoolController):
        def __init__(self):
            scans.append(1)
            super().__init__()

    monkeypatch.setattr(_threads, "ThreadpoolController", Counting)
    for _ in range(3):
        with _threads.blas_on_one_thread(), _threads.blas_on_one_thread():
            pass
    assert len(scans) == 1
    # A module imported since (it may have brought a BLAS of its own): scanned again.
    monkeypatch.setitem(sys.modules, "fastgrad_test_startup_new_module", type(sys)("fastgrad_test_startup_new_module"))
    with _threads.blas_on_one_thread():
        pass
    assert len(scans) == 2


@pytest.mark.parametrize("as_command", [True, False])
def test_only_the_command_skips_the_final_garbage_collection(monkeypatch, capsys, as_command):
    frozen = []
    monkeypatch.setattr("gc.freeze", lambda: frozen.append(1))
    if as_command:
        monkeypatch.setattr(sys, "argv", ["fastgrad", "--version"])
        status = cli.main()
    else:
        status = cli.main(["--version"])  # called from a program, which lives on: nothing frozen
    assert status == 0
    assert frozen == ([1] if as_command else [])


def test_a_plain_python_cost_loads_neither_numba_nor_scipy_linalg():
    outcome = _run(
        """
        import json, sys
        import numpy as np
        import fastgrad

        theta = np.linspace(-1.0, 1.0, 6)
        report = fastgrad.gradcheck(lambda t: float(np.sum(t ** 3)), 3.0 * theta ** 2, theta, progress=False)
        estimate = fastgrad.estimate_gradient(lambda t: float(t @ t), theta)
        print(json.dumps({
            "passed": bool(report.passed),
            "loaded": sorted(m for m in ("numba", "llvmlite", "scipy.linalg") if m in sys.modules),
        }))
        """
    )
    assert outcome == {"passed": True, "loaded": []}


def test_the_demo_and_a_small_dense_check_load_no_numba():
    outcome = _run(
        """
        import contextlib, io, json, sys
        import fastgrad
        from fastgrad.cli import main
        from fastgrad.naive import course_backward, course_case

        with contextlib.redirect_stdout(io.StringIO()) as out:
            status = main(["demo", "--json"])
        X, Y, params = course_case()
        net = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
        report = net.gradcheck(params, X, Y, course_backward(X, Y, params), progress=False)
        print(json.dumps({
            "status": status,
            "as_expected": json.loads(out.getvalue())["as_expected"],
            "passed": bool(report.passed),
            "loaded": sorted(m for m in ("numba", "llvmlite", "scipy.linalg", "fastgrad._dense_kernels")
                             if m in sys.modules),
        }))
        """
    )
    assert outcome == {"status": 0, "as_expected": True, "passed": True, "loaded": []}
