"""A damaged or missing on-disk kernel cache never breaks a run (issue 11, item 1).

Each test runs fastgrad in a subprocess with its own ``NUMBA_CACHE_DIR`` so the
package's real cache is left alone. The check compiles a small compiled cost
and the generic parallel kernel (a few seconds cold, about one from cache).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastgrad import _jit

ROOT = Path(__file__).resolve().parents[1]

CHECK = textwrap.dedent(
    """
    import numpy as np, fastgrad
    from fastgrad._cases import quadratic_cost, quadratic_gradient
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5)); A = A @ A.T
    b = rng.standard_normal(5); theta = rng.standard_normal(5)
    report = fastgrad.gradcheck(quadratic_cost, quadratic_gradient(theta, A, b), theta, args=(A, b))
    print("PASSED" if report.passed else "FAILED")
    print("hits", sum(quadratic_cost.stats.cache_hits.values()))
    """
)


def _run(cache_dir: Path | None, extra_env: dict[str, str] | None = None, code: str = CHECK):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> Path:
    """A cache directory filled by one run."""
    cache = tmp_path_factory.mktemp("warm") / "cache"
    result = _run(cache)
    assert result.returncode == 0, result.stderr
    assert "PASSED" in result.stdout
    assert list(cache.rglob("*.nbc")) and list(cache.rglob("*.nbi"))
    return cache


def _damage(path: Path, kind: str, other: Path) -> None:
    data = path.read_bytes()
    if kind == "garbage":
        path.write_bytes(bytes((i * 37 + 11) % 256 for i in range(len(data))))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "bitflip":  # still unpickles: only a checksum notices
        flipped = bytearray(data)
        flipped[len(flipped) * 3 // 4] ^= 0x10
        path.write_bytes(bytes(flipped))
    elif kind == "other-overload":  # a valid file written for another function / signature
        shutil.copyfile(other, path)
    else:  # pragma: no cover
        raise ValueError(kind)


DAMAGE = [
    ("nbi", "garbage"),
    ("nbi", "empty"),
    ("nbi", "truncated"),
    ("nbc", "garbage"),
    ("nbc", "empty"),
    ("nbc", "truncated"),
    ("nbc", "bitflip"),
    ("nbc", "other-overload"),
]


@pytest.mark.parametrize(("suffix", "kind"), DAMAGE, ids=[f"{s}-{k}" for s, k in DAMAGE])
def test_damaged_cache_file_is_dropped_and_recompiled(warm_cache, tmp_path, suffix, kind):
    # Fails before the fix: Numba's cache raised EOFError / UnpicklingError /
    # UnicodeDecodeError on every later run, or loaded another overload's code.
    cache = tmp_path / "cache"
    shutil.copytree(warm_cache, cache)
    files = sorted(cache.rglob(f"*.{suffix}"))
    for i, path in enumerate(files):
        _damage(path, kind, other=files[(i + 1) % len(files)])

    result = _run(cache)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PASSED"), result.stdout + result.stderr

    if kind != "garbage":
        return
    # The bad files were replaced by good ones: the next run loads from the cache.
    again = _run(cache)
    assert again.returncode == 0, again.stderr
    assert "PASSED" in again.stdout and "hits 1" in again.stdout, again.stdout


NO_LOCATOR = textwrap.dedent(
    """
    from numba.core.caching import _CacheLocator

    class Nowhere(_CacheLocator):
        '''Numba finds no usable cache location (read-only install, no HOME).'''

        @classmethod
        def from_function(cls, py_func, py_file):
            return None
    """
)


def test_no_cache_location_compiles_in_memory_with_one_warning(tmp_path):
    # Fails before the fix: `import fastgrad` raised "cannot cache function
    # '_activation': no locator available".
    (tmp_path / "nolocator.py").write_text(NO_LOCATOR)
    result = _run(
        None,
        {"PYTHONPATH": str(tmp_path), "NUMBA_CACHE_LOCATOR_CLASSES": "nolocator.Nowhere"},
        code="import warnings; warnings.simplefilter('default')\n" + CHECK,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PASSED")
    warnings_shown = [line for line in result.stderr.splitlines() if "CacheFallbackWarning" in line]
    assert len(warnings_shown) == 1, result.stderr
    assert "NUMBA_CACHE_DIR" in warnings_shown[0]


def test_every_package_kernel_uses_the_robust_cache():
    import numba

    import fastgrad._cases as cases
    import fastgrad._dense_engine as engine
    import fastgrad._dense_kernels as kernels

    dispatchers = [
        value
        for module in (cases, engine, kernels)
        for value in vars(module).values()
        if isinstance(value, numba.core.registry.CPUDispatcher) and value.__module__.startswith("fastgrad")
    ]
    assert len(dispatchers) > 20
    keyed = {path.name for path in _jit._kernel_sources()}
    for dispatcher in dispatchers:
        assert isinstance(dispatcher._cache, _jit.RobustCache), dispatcher.py_func.__qualname__
        # Its module's source is part of every cache key (a change recompiles).
        assert Path(dispatcher.py_func.__code__.co_filename).name in keyed
    assert "_dense_spec.py" in keyed and "cli.py" not in keyed
    # The cache is set up at the first look-up, with Numba's own source stamp,
    # after checking that the source file is the one imported.
    cache = dispatchers[0]._cache
    assert cache._set_up()
    status = os.stat(dispatchers[0].py_func.__code__.co_filename)
    assert cache._import_status == (status.st_mtime, status.st_size)
    assert cache._cache_file._source_stamp == cache._impl.locator.get_source_stamp()


def test_a_source_edited_after_the_import_is_compiled_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    source = tmp_path / "edited_kernel.py"
    source.write_text("def twice(x):\n    return 2.0 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import edited_kernel

    kernel = _jit.njit(cache=True)(edited_kernel.twice)
    source.write_text("def twice(x):\n    return 3.0 * x  # edited\n")
    assert kernel(2.0) == 4.0  # what this process imported
    assert kernel._cache._ready is False and not list(tmp_path.rglob("*.nbi"))


def test_njit_accepts_numba_call_forms():
    import numpy as np

    def double(x):
        return 2.0 * x

    assert _jit.njit(double)(2.0) == 4.0
    assert _jit.njit()(double)(3.0) == 6.0
    eager = _jit.njit("float64(float64)")(double)
    assert eager(1.5) == 3.0 and len(eager.signatures) == 1
    assert np.array_equal(_jit.njit(["float64[:](float64[:])"])(double)(np.ones(2)), [2.0, 2.0])


SPECIALISED = """
from fastgrad._jit import njit, specialise

K = 0

@njit(cache=True)
def pick(x):
    if K == 1:
        return x + 1.0
    return x - 1.0

ONE = specialise(globals(), ["pick"], {"K": 1})
TWO = specialise(globals(), ["pick"], {"K": 2})
print(ONE["pick"](1.0), TWO["pick"](1.0), pick.signatures == [])
"""


def test_specialised_copies_compile_their_own_constants_and_are_cached_apart(tmp_path):
    """specialise: each copy reads its own constants; in the cache the copies are told apart."""
    module = tmp_path / "specialised_module.py"
    module.write_text(SPECIALISED)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    for _ in range(2):  # cold, then from the cache
        done = subprocess.run([sys.executable, str(module)], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["2.0", "0.0", "True"]
