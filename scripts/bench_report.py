"""Run fastgrad's full benchmark suite (or read a saved run) and write the report.

Writes ``docs/benchmarks.md`` (tables: every contender on every case with
seconds, components per second and the speed-up over the naive loop measured in
the same run; the dense engine's rate against numpy's matrix multiply; thread
scaling; compile time cold and from cache; peak memory; accuracy per method)
and ``docs/throughput.png`` (components per second against the number of
parameters, log scales, one line per contender), with the machine recorded.

Usage (from the repository root)::

    python scripts/bench_report.py                       # run the full suite, then write the report
    python scripts/bench_report.py --json run.json       # only write the report from a saved run
    python scripts/bench_report.py --smoke               # small sizes, to try the script quickly

The full run is ``FASTGRAD_BENCH_FULL=1 python -m pytest bench --benchmark-enable
--benchmark-json=...`` (minutes; the naive loop is timed on a subset of
components and extrapolated). Needs matplotlib (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / ".benchmarks" / "full.json"
FULL_COMMAND = "FASTGRAD_BENCH_FULL=1 python -m pytest bench --benchmark-enable --benchmark-json=.benchmarks/full.json"
REPORT_COMMAND = "python scripts/bench_report.py"

NETWORK_ORDER = ["S", "M", "L"]
GENERIC_ORDER = ["quadratic", "logistic", "mlp"]
BASELINES = ("naive", "naive (BLAS 1 thread)", "python-loop")


# --------------------------------------------------------------------------- #
# Running and loading
# --------------------------------------------------------------------------- #


def run_suite(json_path: Path, smoke: bool) -> None:
    """Run the benchmark suite with pytest-benchmark enabled, saving its JSON."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if smoke:
        env.pop("FASTGRAD_BENCH_FULL", None)
    else:
        env["FASTGRAD_BENCH_FULL"] = "1"
    command = [
        sys.executable, "-m", "pytest", "bench", "--benchmark-enable", f"--benchmark-json={json_path}",
        "-q", "-p", "no:cacheprovider",
    ]
    print("running:", " ".join(command), "(FASTGRAD_BENCH_FULL=%s)" % env.get("FASTGRAD_BENCH_FULL", ""), flush=True)
    done = subprocess.run(command, cwd=REPO, env=env)
    if not json_path.exists():
        raise SystemExit(f"the benchmark run wrote no JSON (pytest exit code {done.returncode})")
    if done.returncode != 0:
        print(f"warning: pytest exited with {done.returncode}; reporting the benchmarks that ran", file=sys.stderr)


def load_rows(json_path: Path) -> tuple[list[dict], dict, str]:
    """The benchmarks' extra_info rows (with pytest-benchmark's stats), machine info and date."""
    data = json.loads(json_path.read_text())
    rows = []
    for bench in data.get("benchmarks", []):
        info = dict(bench.get("extra_info", {}))
        if "contender" not in info:
            continue
        info["test"] = bench.get("fullname", bench.get("name", ""))
        info["stats"] = bench.get("stats", {})
        rows.append(info)
    return rows, data.get("machine_info", {}), data.get("datetime", "")


# --------------------------------------------------------------------------- #
# Formatting
# --------------------------------------------------------------------------- #


def fmt_seconds(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 100:
        return f"{seconds:,.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_rate(rate: float) -> str:
    if rate is None or not math.isfinite(rate):
        return "-"
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f} k"
    return f"{rate:.0f}"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "-"
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def fmt_float(value: float, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}e}"


def table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


# --------------------------------------------------------------------------- #
# Sections
# --------------------------------------------------------------------------- #


def _case_key(name: str) -> tuple:
    base = name.removesuffix("-small")
    order = NETWORK_ORDER + GENERIC_ORDER
    return (order.index(base) if base in order else len(order), name)


def throughput_rows(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows of the main table grouped by case, each with its speed-up over the case's best baseline.

    The baseline of a network case is the faster of its two naive rows (BLAS on
    default threads or on one); of a generic case, the Python loop. Both were
    measured in the same run as the contenders.
    """
    kinds = ("full", "extrapolated", "sampled", "directional")
    by_case: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("kind") in kinds and "threads" not in row:
            by_case[row["case"]].append(row)
    for case_rows in by_case.values():
        baseline = [r["seconds_check"] for r in case_rows if r["contender"] in BASELINES]
        best = min(baseline) if baseline else None
        for row in case_rows:
            covers_all = row["kind"] in ("full", "extrapolated")
            row["speedup"] = best / row["seconds_check"] if best and covers_all else None
            row["baseline_seconds"] = best
    return dict(sorted(by_case.items(), key=lambda item: _case_key(item[0])))


def _kind_label(row: dict) -> str:
    kind = row["kind"]
    if kind == "extrapolated":
        return f"extrapolated from {row['components_timed']:,} components"
    if kind == "sampled":
        return f"quick: {row['components_timed']:,} sampled components"
    if kind == "directional":
        verdict = "" if row.get("passed", True) else ", verdict FAILED (see notes)"
        return f"quick: {row.get('directions', '?')} random directions{verdict}"
    return "every component"


def main_table(by_case: dict[str, list[dict]]) -> str:
    lines = []
    for case, case_rows in by_case.items():
        order = {name: i for i, name in enumerate(
            ["naive", "naive (BLAS 1 thread)", "python-loop", "torch.autograd.gradcheck", "generic",
             "generic (BLAS 1 thread)", "dense-full-forward", "dense-full-forward (BLAS 1 thread)", "dense",
             "dense (BLAS 1 thread)"])}
        case_rows = sorted(case_rows, key=lambda r: (r["kind"] in ("sampled", "directional"),
                                                     order.get(r["contender"], 99), r["contender"]))
        for row in case_rows:
            rate = row["n_params"] / row["seconds_check"] if row["kind"] in ("full", "extrapolated") else row["components_per_s"]
            lines.append([
                case, f"{row['n_params']:,}", row["contender"], _kind_label(row),
                ("~" if row["kind"] == "extrapolated" else "") + fmt_seconds(row["seconds_check"]),
                fmt_rate(rate), fmt_ratio(row["speedup"]),
            ])
    return table(
        ["case", "parameters", "contender", "what was timed", "seconds (whole check)", "components/s",
         "speed-up vs baseline"],
        lines,
    )


def dense_rate_table(rows: list[dict]) -> str:
    lines = []
    for row in sorted((r for r in rows if "model_gflops_per_s" in r), key=lambda r: (_case_key(r["case"]), r["contender"])):
        lines.append([
            row["case"], f"{row['n_params']:,}", row["contender"], fmt_seconds(row["seconds_check"]),
            f"{row['model_gflop']:.3g}", f"{row['model_gflops_per_s']:.3g}",
            f"{row['numpy_matmul_gflops_per_s']:.1f}", f"{row['fraction_of_matmul_rate']:.2f}",
            str(row.get("kinks", "-")),
        ])
    return table(
        ["case", "parameters", "contender", "whole check", "model GFLOP", "equivalent GFLOP/s",
         "numpy matmul GFLOP/s (measured beside it)", "ratio", "components at a kink"],
        lines,
    )


def thread_table(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        if "interleaved_speedup_median" not in row:
            continue
        engine = row["contender"].split(" (")[0]
        lines.append([
            engine, row["case"], f"{row['n_params']:,}",
            f"{fmt_seconds(row['interleaved_median_1_thread'])} / {fmt_seconds(row['interleaved_min_1_thread'])}",
            f"{fmt_seconds(row['interleaved_median_2_threads'])} / {fmt_seconds(row['interleaved_min_2_threads'])}",
            fmt_ratio(row["interleaved_speedup_median"]), fmt_ratio(row["interleaved_speedup_min"]),
        ])
    return table(
        ["engine", "case", "parameters", "1 thread (median / fastest)", "2 threads (median / fastest)",
         "speed-up (medians)", "speed-up (fastest runs)"],
        lines,
    )


def compile_table(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        if row.get("kind") != "compile":
            continue
        compiled = row.get("compiled_during_first_check", {})
        lines.append([
            row["contender"], row["case"], fmt_seconds(row.get("process_wall_s")),
            fmt_seconds(row.get("import_s")), fmt_seconds(row.get("first_check_s")),
            fmt_seconds(row.get("second_check_s")),
            f"{compiled.get('fastgrad', 0)} fastgrad + {compiled.get('other', 0)} other",
        ])
    return table(
        ["run", "case", "process, start to finish", "import", "first check", "second check (same process)",
         "functions compiled during the first check"],
        lines,
    )


def startup_table(rows: list[dict]) -> str:
    """The start-up rows of ``bench/bench_startup.py``: each process's medians and ratio to ``import numba``."""
    lines = []
    for row in rows:
        if row.get("kind") != "startup":
            continue
        for name, wall in row["wall_s"].items():
            lines.append([
                name, fmt_seconds(wall), f"{row['ratio_to_import_numba'][name]:.2f}x",
                fmt_seconds(row["cpu_s"][name]), f"{row['cpu_ratio_to_import_numba'][name]:.2f}x",
            ])
    return table(["new process", "wall, start to finish (median)", "vs import numba", "CPU (median)",
                  "CPU vs import numba"], lines)


def memory_table(rows: list[dict]) -> str:
    mib = 1024.0 * 1024.0
    lines = []
    for row in rows:
        if row.get("kind") != "memory":
            continue
        lines.append([
            row["contender"], row["case"], f"{row['n_params']:,}", f"{row['components']:,}",
            f"{row['peak_bytes'] / mib:,.0f} MiB", f"{row['maxrss_before_check_kib'] * 1024 / mib:,.0f} MiB",
            f"{row['check_increase_bytes'] / mib:,.1f} MiB ({row['check_increase_bytes'] / row['theta_bytes']:.2f}x)",
            f"{row.get('allocated_peak_bytes', 0) / mib:,.1f} MiB "
            f"({row.get('allocated_peak_bytes', 0) / row['theta_bytes']:.2f}x)",
            f"{row['theta_bytes'] / mib:,.1f} MiB", f"{row['activations_bytes'] / mib:,.2f} MiB",
        ])
    return table(
        ["engine", "case", "parameters", "components checked", "peak RSS", "peak before the check",
         "added by the check (x theta)", "allocated at the peak (NumPy arrays, x theta)", "theta",
         "activations (X and every layer)"],
        lines,
    )


def accuracy_table(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        if row.get("kind") != "accuracy":
            continue
        lines.append([
            row["engine"], row["method"], f"{row['n_params']:,}", fmt_float(row["relative_error"]),
            fmt_float(row["max_abs_error"]), fmt_float(row["max_noise_estimate"]), fmt_seconds(row["seconds_check"]),
        ])
    return table(
        ["engine", "method", "parameters", "relative error: norm(approx - exact) / norm(exact)",
         "largest component error", "largest noise estimate (report)", "time"],
        lines,
    )


def machine_section(machine: dict, when: str) -> str:
    info = machine.get("fastgrad", {})
    blas = "; ".join(
        f"{b.get('internal_api')} {b.get('version') or ''} ({b.get('library', '')}, {b.get('num_threads')} threads"
        f"{', ' + b['architecture'] if b.get('architecture') else ''})"
        for b in info.get("blas", []) if b.get("user_api") == "blas"
    ) or "unknown"
    load = info.get("load_average")
    lines = [
        f"- date: {when or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}"
        + (f", fastgrad at commit `{info['commit']}`" if info.get("commit") else ""),
        f"- CPU: {info.get('cpu', machine.get('cpu', {}).get('brand_raw', 'unknown'))}, "
        f"{info.get('cores', '?')} cores",
        f"- Python {info.get('python', machine.get('python_version', '?'))}, numba {info.get('numba', '?')}, "
        f"numpy {info.get('numpy', '?')}",
        f"- Numba: {info.get('numba_threads', '?')} threads, threading layer `{info.get('numba_threading_layer', '?')}`",
        f"- BLAS: {blas}",
    ]
    if load:
        lines.append(f"- load average at the end of the run: {', '.join(f'{x:.2f}' for x in load)} "
                     "(the machine was shared; see the note on noise)")
    if not info.get("full_run", True):
        lines.append("- **smoke run** (small variants of every case): not the reference sizes")
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# Plot
# --------------------------------------------------------------------------- #


def plot(by_case: dict[str, list[dict]], path: Path) -> None:
    """components/s against parameters, log-log, one line per contender (kept as is without matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        print(f"matplotlib is not installed: {path} left as it was (pip install -e \".[bench]\")", file=sys.stderr)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[tuple[str, str], list[tuple[int, float, str]]] = defaultdict(list)
    for case, case_rows in by_case.items():
        family = "networks" if case.removesuffix("-small") in NETWORK_ORDER else "cost functions"
        for row in case_rows:
            covers_all = row["kind"] in ("full", "extrapolated")
            rate = row["n_params"] / row["seconds_check"] if covers_all else row["components_per_s"]
            lines[(family, row["contender"])].append((row["n_params"], rate, row["kind"]))
    contenders = sorted({contender for _, contender in lines})
    palette = plt.get_cmap("tab20")
    colours = {name: palette(i % 20) for i, name in enumerate(contenders)}
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5))
    titles = {"networks": "dense networks S, M, L (ReLU)", "cost functions": "general cost functions (generic engine)"}
    for ax, family in zip(axes, ("networks", "cost functions")):
        for (fam, contender), points in sorted(lines.items()):
            if fam != family:
                continue
            points.sort()
            quick = {p[2] for p in points} <= {"sampled", "directional"}
            label = contender + (" (quick: not every component)" if quick else "")
            ax.plot([p[0] for p in points], [p[1] for p in points], ":" if quick else "-", marker="o",
                    color=colours[contender], label=label, alpha=0.55 if quick else 1.0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("parameters (components of theta)")
        ax.set_ylabel("components checked per second")
        ax.set_title(titles[family])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("fastgrad gradient-check throughput (medians; naive loops timed on a subset and extrapolated)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


def headline(by_case: dict[str, list[dict]], rows: list[dict]) -> list[str]:
    out = []
    for case in NETWORK_ORDER:
        dense = {r["contender"]: r for r in by_case.get(case, []) if r["contender"].startswith("dense (") or r["contender"] == "dense"}
        r = dense.get("dense")
        if r and r.get("speedup"):
            other = dense.get("dense (BLAS 1 thread)")
            also = (f"; with BLAS limited to 1 thread {fmt_seconds(other['seconds_check'])}, "
                    f"**{fmt_ratio(other['speedup'])}**" if other and other.get("speedup") else "")
            out.append(
                f"- **{case}** ({r['n_params']:,} parameters): the dense engine checks every component in "
                f"{fmt_seconds(r['seconds_check'])}; the naive loop needs ~{fmt_seconds(r['baseline_seconds'])} "
                f"(extrapolated, same run): speed-up **{fmt_ratio(r['speedup'])}**{also}."
            )
    for r in rows:
        if r.get("interleaved_speedup_median"):
            out.append(f"- {r['contender'].split(' (')[0]} engine on {r['case']}: speed-up from 1 to 2 threads "
                       f"**{fmt_ratio(r['interleaved_speedup_median'])}** (medians), "
                       f"{fmt_ratio(r['interleaved_speedup_min'])} (fastest runs).")
    for r in rows:
        if r.get("kind") == "compile":
            out.append(f"- {r['contender']} ({r['case']}): {fmt_seconds(r.get('process_wall_s'))} start to finish, "
                       f"first check {fmt_seconds(r.get('first_check_s'))}.")
    for r in rows:
        if r.get("kind") == "startup":
            ratios = r["ratio_to_import_numba"]
            floor = ratios["Numba's floor"]
            out.append(f"- start-up, a new process with a warm cache checking the course network: "
                       f"{fmt_seconds(r['wall_s']['fastgrad check'])}, **{ratios['fastgrad check']:.2f}x** a bare "
                       f"`import numba` (Numba's own first cached call: {floor:.2f}x); "
                       f"`fastgrad demo` {ratios['fastgrad demo']:.2f}x; `import fastgrad` "
                       f"{fmt_seconds(r['wall_s']['import fastgrad'])}, loading {r['heavy_loaded'] or 'no heavy module'}.")
    for r in rows:
        if r.get("kind") == "memory":
            out.append(f"- peak memory, {r['contender']} engine on {r['case']}: {r['peak_bytes'] / 2**20:,.0f} MiB "
                       f"(the check itself added {r['check_increase_bytes'] / 2**20:,.1f} MiB, allocating "
                       f"{r.get('allocated_peak_bytes', 0) / 2**20:,.1f} MiB of arrays at its peak; theta is "
                       f"{r['theta_bytes'] / 2**20:,.1f} MiB).")
    accuracy = [r for r in rows if r.get("kind") == "accuracy" and r.get("engine") == "dense"]
    if accuracy:
        out.append("- accuracy on the smooth network (relative error against the exact gradient): " + ", ".join(
            f"{r['method']} {r['relative_error']:.1e}" for r in accuracy) + ".")
    return out


def notes(rows: list[dict]) -> list[str]:
    out = [
        "- **Noise.** The machine has 2 cores and was shared with other work while these ran: every time is "
        "the median of its rounds, and ratios (measured in the same run) are more trustworthy than absolute "
        "seconds. Expect differences of tens of percent between runs.",
        "- **Naive loop.** The course loop (copy theta, rebuild the dict, two full NumPy forward passes per "
        "component) is timed on a subset of components spread evenly over theta and extrapolated linearly: "
        "every component costs it the same. It is timed with BLAS on its default threads and on one thread; "
        "the faster of the two is the baseline of the speed-ups. The generic cases' baseline is the same "
        "loop around the same compiled cost function (`python-loop`).",
        "- **generic** on the networks: `fastgrad.gradcheck` with the network written as a plain compiled "
        "cost function of theta (`fastgrad._cases.network_cost`), timed on the naive loop's subset and "
        "extrapolated. **dense-full-forward**: `DenseNet.gradcheck(engine=\"generic\")`, one compiled full "
        "forward pass per perturbed point. **dense**: `DenseNet.gradcheck(engine=\"dense\")`, the "
        "structure-exploiting engine, every component.",
        "- **Quick modes** (`sampled`, `directional`) do not check every component; their components/s "
        "counts what they evaluated (sampled components; for directional, all of theta in a few "
        "directional derivatives) and they have no speed-up against a full check.",
        "- **GFLOP/s** of the dense engine counts the work of the row-grouped algorithm written as matrix "
        "products (rank-one update of the next layer, full products below, per perturbed point) divided by "
        "the engine's time; the engine skips much of that work (examples whose activation does not change, "
        "a linear path while no ReLU flips), so this *equivalent* rate can exceed the machine's "
        "matrix-multiply rate.",
        "- **Generic engine against the Python loop.** The Python loop here already calls the *compiled* "
        "cost, so its only overhead is a copy of theta and two calls per component; against an expensive "
        "cost the engine's gain is at most its threads, and the quadratic form and logistic regression read "
        "a matrix larger than the cache at every evaluation (memory-bound: a second thread barely helps). "
        "With the default step the engine also confirms smoothness numerically (half-step re-evaluation of "
        "components whose one-sided slopes differ beyond the threshold), which on these smooth costs means "
        "about 4 evaluations per component instead of 2. The network cost (`mlp`) is compute-bound and "
        "scales with threads (thread table).",
        "- **BLAS threads.** Rows marked `(BLAS 1 thread)` ran inside `threadpoolctl.threadpool_limits(1)`. "
        "A cost that calls BLAS (`np.dot`) inside fastgrad's parallel loop, and OpenBLAS worker threads still "
        "spinning after DenseNet's back-prop, compete with Numba's threads for the 2 cores.",
    ]
    failed = [r for r in rows if r.get("kind") == "directional" and r.get("passed") is False]
    for r in failed:
        out.append(
            f"- **Directional check on {r['case']} reported a failure** for back-prop's correct gradient "
            f"(difference {r.get('difference', float('nan')):.2g}): a random direction through every "
            "component of a ReLU network crosses kinks at the default step. A full or sampled check of the "
            "same gradient passes."
        )
    if not any(r["contender"].startswith("torch") for r in rows if "contender" in r):
        out.append("- **torch.autograd.gradcheck** was not measured: torch is not installed here "
                   "(`pip install torch` and rerun to add it; it is skipped on L, where it would take hours).")
    return out


def write_report(rows: list[dict], machine: dict, when: str, md_path: Path, png_path: Path) -> None:
    by_case = throughput_rows(rows)
    plot(by_case, png_path)
    sections = [
        "# fastgrad benchmarks",
        "",
        f"Generated by `{REPORT_COMMAND}` (it runs `{FULL_COMMAND}` and writes this file and "
        f"`{png_path.relative_to(REPO) if png_path.is_relative_to(REPO) else png_path}`). "
        "Do not edit by hand: rerun the command.",
        "",
        "## Machine",
        "",
        machine_section(machine, when),
        "",
        "## Headlines",
        "",
        *headline(by_case, rows),
        "",
        "## Throughput: every contender on every case (same run)",
        "",
        main_table(by_case),
        "",
        f"![components per second against parameters]({png_path.name})",
        "",
        "## Dense engine against the machine's matrix-multiply rate",
        "",
        dense_rate_table(rows),
        "",
        "## Thread scaling (1 vs 2 Numba threads; BLAS limited to 1 thread in both runs)",
        "",
        "1-thread and 2-thread runs alternate, so both see the same background load; with other work on the "
        "machine the second core is often busy, which the fastest runs show least.",
        "",
        thread_table(rows),
        "",
        "## Compile time: a check in a new process, cold cache and from cache",
        "",
        "Cold: an empty `NUMBA_CACHE_DIR`; cached: a second process with the same directory. The generic "
        "engine runs on the quadratic form; `generic, new cost function` checks a cost compiled for the first "
        "time in that process (only the cost compiles; fastgrad's kernel loads from the cache). The dense "
        "engine runs on S.",
        "",
        compile_table(rows),
        "",
        "## Start-up: a new process with a warm cache checking the course network",
        "",
        "`bench/bench_startup.py` (also `python bench/bench_startup.py`): fresh processes, one after another in "
        "each round, medians over the rounds. *Numba's floor* is `import numba` and one call of a trivial "
        "`@njit(cache=True)` function loaded from the cache: what any program pays for its first compiled call "
        "(Numba then loads its typing and lowering registries, which import `scipy.linalg`). *fastgrad check*: "
        "`import fastgrad`, `DenseNet([4, 5, 3, 1]).gradcheck` of the course's back-prop and a `fastgrad.gradcheck` "
        "of a 6-component cost.",
        "",
        startup_table(rows),
        "",
        "## Peak memory (ru_maxrss of a new process)",
        "",
        "Numba's one-time start-up runs first, on a trivial function, so that what the check adds is its own. "
        "*Added by the check*: the resident memory (VmHWM) the first check adds; it is less than what the check "
        "allocates as far as the heap already holds freed memory, so it depends on what the process ran before. "
        "*Allocated at the peak*: the most bytes of NumPy arrays a second check holds at once (`tracemalloc`), "
        "the same whatever ran before.",
        "",
        memory_table(rows),
        "",
        "## Accuracy per method on a smooth network (exact gradient by back-prop)",
        "",
        accuracy_table(rows),
        "",
        "## Notes",
        "",
        *notes(rows),
        "",
    ]
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text("\n".join(sections))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="read this saved pytest-benchmark JSON instead of running the suite")
    parser.add_argument("--save-json", type=Path, default=DEFAULT_JSON, help="where a run saves its JSON")
    parser.add_argument("--smoke", action="store_true", help="run the small variants (a quick try of this script)")
    parser.add_argument("--md", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "throughput.png")
    options = parser.parse_args(argv)
    json_path = options.json
    if json_path is None:
        json_path = options.save_json
        run_suite(json_path, smoke=options.smoke)
    rows, machine, when = load_rows(json_path)
    if not rows:
        raise SystemExit(f"{json_path} holds no fastgrad benchmark rows")
    write_report(rows, machine, when, options.md.resolve(), options.png.resolve())
    print(f"wrote {options.md} and {options.png} from {json_path} ({len(rows)} benchmarks)")


if __name__ == "__main__":
    main()
