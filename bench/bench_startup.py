"""Start-up: a new process that checks the course network, against a bare ``import numba``.

    python bench/bench_startup.py [--rounds 7]      (about a minute; prints the medians)

The start-up row of issue 13. Each round starts these fresh Python processes,
one right after another, so that all of them see the same background load:

* ``import numba``: the reference of the row;
* **Numba's floor**: ``import numba`` and one call of a trivial
  ``@njit(cache=True)`` function loaded from the on-disk cache. This is what
  any program pays for its first compiled call, whoever wrote the kernel:
  Numba then installs its typing and lowering registries, which import most
  of ``numba.np`` and, through ``numba.np.arraymath``, ``scipy.linalg``;
* **fastgrad**: ``import fastgrad``, ``DenseNet([4, 5, 3, 1]).gradcheck`` of
  the course's back-prop on its test case, and a ``fastgrad.gradcheck`` of a
  6-component cost written in NumPy (the snippet is ``CHECK`` below);
* ``fastgrad demo``: the command (two dense checks, printed reports);
* ``import fastgrad`` alone.

Before the rounds every process runs once, so that Numba's cache (the
project's, or ``NUMBA_CACHE_DIR``) and Python's bytecode are warm. Bytecode
goes to a private ``PYTHONPYCACHEPREFIX``: with ``PYTHONDONTWRITEBYTECODE=1``
in the environment fastgrad's source would be compiled again in every process
(about 0.1 s on the 2-core machine) while Numba's installed bytecode is used,
which is not what an installed fastgrad costs. The fastgrad process reports
how many of fastgrad's kernels it compiled (Numba's cache-miss counters): 0
with a warm cache, asserted.

Reported: the median wall time (start to finish) and CPU time of each process
over the rounds, and the ratios of the medians to ``import numba``. ``python
-X importtime -c "import fastgrad"`` is summarised too: its cumulative
microseconds and every module it loads beyond the interpreter's own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: The checks of the start-up row, run in a new process.
CHECK = textwrap.dedent(
    """
    import numpy as np
    import fastgrad
    from fastgrad.naive import course_backward, course_case

    X, Y, params = course_case()
    net = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
    dense = net.gradcheck(params, X, Y, course_backward(X, Y, params), progress=False)
    theta = np.linspace(-1.0, 1.0, 6)
    generic = fastgrad.gradcheck(lambda t: float(np.sum(t ** 3)), 3.0 * theta ** 2, theta, progress=False)
    """
)

#: Appended to ``CHECK`` after the work is done: the verdicts and fastgrad's cache misses (compiles).
REPORT = textwrap.dedent(
    """
    import json, sys
    misses = sum(
        sum(value._cache_misses.values())
        for name, module in list(sys.modules.items()) if name.startswith("fastgrad")
        for value in vars(module).values() if hasattr(value, "_cache_misses")
    )
    print(json.dumps({"passed": bool(dense.passed and generic.passed), "fastgrad_compiled": misses}))
    """
)

#: A trivial kernel for Numba's floor (written to a temporary module).
FLOOR_MODULE = textwrap.dedent(
    """
    import numba

    @numba.njit(cache=True)
    def total(x):
        s = 0.0
        for i in range(x.size):
            s += x[i]
        return s
    """
)

FLOOR_NAME = "Numba's floor"
FLOOR = "import numba, numpy as np, _startup_floor; _startup_floor.total(np.ones(3))"

#: Modules ``import fastgrad`` must not load: it imports nothing but its ``__init__``.
HEAVY = ("numpy", "numba", "llvmlite", "scipy", "threadpoolctl", "psutil", "dask", "distributed", "tqdm")


def _environment(floor_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "fastgrad-bench-startup-pycache")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(floor_dir), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def contenders() -> dict[str, list[str]]:
    """The command line of each process of a round, by name."""
    return {
        "import numba": [sys.executable, "-c", "import numba"],
        FLOOR_NAME: [sys.executable, "-c", FLOOR],
        "fastgrad check": [sys.executable, "-c", CHECK + REPORT],
        "fastgrad demo": [sys.executable, "-m", "fastgrad", "demo"],
        "import fastgrad": [sys.executable, "-c", "import fastgrad"],
    }


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (all threads) and stdout of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, done.stdout


def import_profile(env: dict[str, str]) -> dict:
    """``python -X importtime -c "import fastgrad"``: its cumulative time and what it loads."""
    code = "import sys; before = set(sys.modules); import fastgrad; print(sorted(set(sys.modules) - before))"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300, check=True)
    cumulative = 0
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == "fastgrad":
            cumulative = int(parts[1])
    loaded = json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))
    return {"import_fastgrad_us": cumulative, "modules_loaded": loaded,
            "heavy_loaded": sorted({name.split(".")[0] for name in loaded} & set(HEAVY))}


def measure(rounds: int = 7) -> dict:
    """Run the rounds; return the medians, the ratios and the import profile."""
    with tempfile.TemporaryDirectory(prefix="fastgrad-startup-") as floor_dir:
        (Path(floor_dir) / "_startup_floor.py").write_text(FLOOR_MODULE)
        env = _environment(Path(floor_dir))
        commands = contenders()
        for command in commands.values():  # warm Numba's cache and the bytecode
            _run(command, env)
        names = list(commands)
        walls: dict[str, list[float]] = {name: [] for name in names}
        cpus: dict[str, list[float]] = {name: [] for name in names}
        outcome: dict = {}
        for r in range(rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order
                wall, cpu, stdout = _run(commands[name], env)
                walls[name].append(wall)
                cpus[name].append(cpu)
                if name == "fastgrad check":
                    outcome = json.loads(stdout.strip().splitlines()[-1])
                    assert outcome["passed"], "the start-up check failed"
                    assert outcome["fastgrad_compiled"] == 0, "a warm cache compiled fastgrad kernels"
        profile = import_profile(env)
    wall = {name: statistics.median(values) for name, values in walls.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    reference = wall["import numba"]
    return {
        "rounds": rounds,
        "wall_s": wall,
        "cpu_s": cpu,
        "ratio_to_import_numba": {name: value / reference for name, value in wall.items()},
        "cpu_ratio_to_import_numba": {name: value / cpu["import numba"] for name, value in cpu.items()},
        "runs_wall_s": walls,
        "fastgrad_compiled": outcome.get("fastgrad_compiled"),
        **profile,
    }


def summary(result: dict) -> str:
    """The measurement as a few lines of text."""
    lines = [f"medians of {result['rounds']} rounds of fresh processes (wall, start to finish; CPU, all threads):"]
    for name, wall in result["wall_s"].items():
        lines.append(
            f"  {name:16s} {wall * 1e3:7.0f} ms  {result['ratio_to_import_numba'][name]:5.2f}x import numba   "
            f"CPU {result['cpu_s'][name] * 1e3:6.0f} ms  {result['cpu_ratio_to_import_numba'][name]:5.2f}x"
        )
    lines.append(
        f"  fastgrad check above Numba's floor: "
        f"{(result['wall_s']['fastgrad check'] - result['wall_s'][FLOOR_NAME]) * 1e3:.0f} ms"
    )
    lines.append(
        f"  import fastgrad: {result['import_fastgrad_us'] / 1e3:.1f} ms cumulative (-X importtime), loads "
        f"{len(result['modules_loaded'])} modules, heavy ones: {result['heavy_loaded'] or 'none'}"
    )
    return "\n".join(lines)


def test_startup(benchmark):
    """The start-up row (one round in a smoke run), with its guarantees asserted."""
    from benchkit import FULL

    benchmark.group = "startup"
    outcome = {}

    def run():
        outcome.update(measure(rounds=7 if FULL else 1))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({
        "case": "S", "n_params": 47, "contender": "start-up", "kind": "startup", "full_run": FULL,
        **{k: v for k, v in outcome.items() if k != "modules_loaded"},
    })
    assert outcome["fastgrad_compiled"] == 0
    assert outcome["heavy_loaded"] == [], f"import fastgrad loaded {outcome['heavy_loaded']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    options = parser.parse_args()
    result = measure(options.rounds)
    print(json.dumps(result, indent=1) if options.json else summary(result))


if __name__ == "__main__":
    main()
