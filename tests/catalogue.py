"""Run the back-prop bug catalogue and the false-failure checks; print and save the verdicts.

For every bug of ``tests/bugs.py`` on every architecture where it can be
planted, at several seeds and by both ways of checking (``DenseNet.gradcheck``
and ``fastgrad.gradcheck`` on the NumPy reference cost), the bug must be
*detected* (the report fails) and *localised* (its failing blocks are exactly
the blocks the bug corrupts). Then the correct back-prop must pass on every
network of the false-failure set (every activation and loss, L2 and dropout,
inputs exactly on ReLU kinks, large losses) at every seed.

Prints a Markdown report (one row per bug and architecture), the detection and
localisation rates (must be 100%) and the false-failure rate (must be 0), then
the same catalogue through the directional check, with float32 gradients and
with the course's ``eps=1e-7, threshold=1e-7`` (each must also be 100%) and
through a sampled check (shown only: a sample may miss a block by chance), and
writes it to ``docs/bug_catalogue.md``. Exit status 0 when all of these hold, 1
otherwise.

Usage::

    python tests/catalogue.py                   # 5 seeds per bug, 20 per correct network
    python tests/catalogue.py --bug-seeds 1 --seeds 5 --output -   # quick, print only
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np

# Run as a file (``python tests/catalogue.py``): its own folder (``bugs``,
# ``reference``) is importable as under pytest; the repository root makes
# ``tests.external`` importable too.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fastgrad  # noqa: E402
from bugs import (  # noqa: E402
    ARCHITECTURES,
    CATALOGUE,
    CORRECT,
    NETWORKS,
    Architecture,
    Config,
    check_dense,
    check_generic,
    course_problem,
    kink_problem,
    make_problem,
)

PATHS = ("dense", "generic")


def check(path, backprop, arch, params, X, Y, config, **options):
    if path == "dense":
        return check_dense(backprop, arch, params, X, Y, config, **options)
    return check_generic(backprop, params, X, Y, config, **options)


def as_float32(backprop):
    def float32_backprop(params, X, Y, config):
        return {name: value.astype(np.float32) for name, value in backprop(params, X, Y, config).items()}

    return float32_backprop


#: Other ways of checking, run over the whole catalogue at seed 0: (name, options, gradient wrapper, required).
#: A sampled check looks at a few components per block, so it may by chance draw only components a bug
#: leaves alone: its rates are shown, not required.
MODES = (
    ("directional (8 random directions)", {"mode": "directional"}, None, True),
    ("float32 gradients", {}, as_float32, True),
    ("course settings (eps=1e-7, threshold=1e-7)", {"eps": 1e-7, "threshold": 1e-7}, None, True),
    ("sampled, 3 components per block", {"sample": 3}, None, False),
)


def run_modes():
    """Detection and localisation of the catalogue by the other ways of checking."""
    results = []
    for name, options, wrap, required in MODES:
        checks = detected = localised = 0
        missed = []
        for bug in CATALOGUE:
            for arch in ARCHITECTURES:
                params, X, Y, config = make_problem(arch, 0)
                if not bug.applies(config):
                    continue
                backprop = bug if wrap is None else wrap(bug)
                for path in PATHS:
                    report = check(path, backprop, arch, params, X, Y, config, **options)
                    checks += 1
                    detected += report.verdict == "fail"
                    exact = set(report.failing_blocks) == set(bug.expected(config))
                    localised += exact
                    if report.verdict != "fail" or not exact:
                        missed.append(f"{bug.name} on {arch.name} [{path}]: failing {blocks_text(report.failing_blocks)}")
        results.append({"mode": name, "checks": checks, "detected": detected, "localised": localised,
                        "required": required, "missed": missed})
    return results


def blocks_text(blocks) -> str:
    return ", ".join(sorted(blocks, key=lambda n: (n[1:].zfill(3), n[0]))) or "-"


def run_catalogue(bug_seeds: int):
    """One row per (bug, architecture): verdicts over seeds and both paths."""
    rows = []
    cases = [(bug, arch) for bug in CATALOGUE for arch in ARCHITECTURES]
    for bug, arch in cases:
        if not bug.applies(make_problem(arch, 0)[3]):
            continue
        detected = localised = total = 0
        seen = set()
        expected = None
        for seed in range(bug_seeds):
            params, X, Y, config = make_problem(arch, seed)
            expected = frozenset(bug.expected(config))
            for path in PATHS:
                report = check(path, bug, arch, params, X, Y, config)
                total += 1
                detected += report.verdict == "fail"
                localised += set(report.failing_blocks) == expected
                seen.add(frozenset(report.failing_blocks))
        rows.append(
            {
                "bug": bug.name, "description": bug.description, "architecture": arch.name,
                "expected": expected, "seen": seen, "checks": total,
                "detected": detected, "localised": localised,
            }
        )
    # The course's own planted bugs.
    buggy, arch, params, X, Y, config = course_problem(bugs=True)
    expected = frozenset({"W2", "b1"})
    seen, detected, localised = set(), 0, 0
    for path in PATHS:
        report = check(path, buggy, arch, params, X, Y, config)
        detected += report.verdict == "fail"
        localised += set(report.failing_blocks) == expected
        seen.add(frozenset(report.failing_blocks))
    rows.append(
        {
            "bug": "course_planted_bugs", "description": buggy.name, "architecture": arch.name,
            "expected": expected, "seen": seen, "checks": len(PATHS), "detected": detected, "localised": localised,
        }
    )
    return rows


def run_false_failures(seeds: int):
    """Correct back-prop on every no-false-failure problem: (group, checks, failures, kinks, worst cases)."""
    groups = []

    def run(name, problems, paths=PATHS):
        checks = failures = inconclusive = kinks = 0
        failed = []
        for label, arch, params, X, Y, config in problems:
            for path in paths:
                report = check(path, CORRECT, arch, params, X, Y, config)
                checks += 1
                kinks += report.n_kinks
                if report.verdict == "fail":
                    failures += 1
                    failed.append(f"{label} [{path}]: {report.failing_blocks} difference {report.difference:.3g}")
                elif report.verdict == "inconclusive":
                    inconclusive += 1
                    failed.append(f"{label} [{path}]: inconclusive: {'; '.join(report.reasons)}")
        groups.append({"group": name, "checks": checks, "failures": failures, "inconclusive": inconclusive,
                       "kinks": kinks, "failed": failed})

    def seeded(sizes, activations, loss, seed, **extra):
        arch = Architecture("net", sizes, activations, loss, m=extra.pop("m", 5), **extra)
        return make_problem(arch, seed)

    problems = []
    for sizes, activations, loss in NETWORKS:
        for seed in range(seeds):
            extras = {"l2": 0.2, "dropout": 0.25, "dropout_seed": seed} if seed % 2 and len(sizes) > 3 else {}
            arch = Architecture("net", sizes, activations, loss, m=5, **extras)
            problems.append((f"{'-'.join(activations)} {loss} seed {seed}", arch, *make_problem(arch, seed)))
    run("every activation and loss (odd seeds with L2 and dropout)", problems)

    problems = []
    for arch in ARCHITECTURES:
        for seed in range(seeds):
            problems.append((f"{arch.name} seed {seed}", arch, *make_problem(arch, seed)))
    run("the catalogue's architectures", problems)

    problems = []
    for activation in ("relu", "leaky_relu"):
        for seed in range(seeds):
            problems.append((f"{activation} on kinks seed {seed}", *kink_problem(activation, seed)))
    # Two units of one example exactly on their kinks: only the dense engine knows the
    # units (a generic cost's one-sided slopes exclude a mixed relu'(0) = 0 there).
    run("inputs exactly on ReLU / leaky-ReLU kinks (dense)", problems, paths=("dense",))

    problems = []
    for scale in (1e3, 1e5):
        arch = Architecture("large loss", (4, 6, 2), ("tanh", "linear"), "mse", m=6)
        for seed in range(seeds):
            params, X, Y, config = make_problem(arch, seed)
            problems.append((f"targets ~{scale:g} seed {seed}", arch, params, X, Y * scale, config))
    run("large loss (MSE, targets ~1e3 and ~1e5)", problems)

    problems = []
    arch = Architecture("many examples", (5, 12, 1), ("relu", "linear"), "mse", m=3000)
    for seed in range(seeds):
        problems.append((f"relu m=3000 seed {seed}", arch, *make_problem(arch, seed)))
    run("ReLU with 3000 examples (kinks of one example)", problems)

    # One parameter moving two pre-activations across their kinks in opposite directions:
    # the back-prop's relu'(0) = 0 lies outside the one-sided slopes, and is still correct
    # (so is a missing gradient: inconclusive, not failed, is the right answer).
    arch = Architecture("two kinks", (1, 1, 2, 1), ("relu", "relu", "linear"), "mse", m=1)
    params = {
        "W1": np.array([[1.0]]), "b1": np.array([[0.5]]), "W2": np.array([[1.0], [-1.0]]),
        "b2": np.array([[-1.5], [1.5]]), "W3": np.array([[1.0, -0.5]]), "b3": np.array([[0.25]]),
    }
    config = Config(arch.layer_sizes, arch.activations, arch.loss)
    run("one parameter moving two kinks at once (dense)", [("two kinks", arch, params, np.array([[1.0]]),
                                                             np.array([[-1.0]]), config)], paths=("dense",))
    return groups


def render(rows, groups, args, elapsed, modes=()) -> tuple[str, bool]:
    checks = sum(r["checks"] for r in rows)
    detected = sum(r["detected"] for r in rows)
    localised = sum(r["localised"] for r in rows)
    fchecks = sum(g["checks"] for g in groups)
    ffail = sum(g["failures"] for g in groups)
    modes_ok = all(m["detected"] == m["localised"] == m["checks"] for m in modes if m["required"])
    correct_checks = sum(g["checks"] for g in groups)
    inconclusive = sum(g["inconclusive"] for g in groups)
    # A bug is detected only when the verdict is "fail"; at most 2% of correct checks may be inconclusive.
    ok = (detected == checks and localised == checks and ffail == 0 and modes_ok
          and inconclusive <= 0.02 * correct_checks)
    lines = [
        "# Bug catalogue: detection, localisation and false failures",
        "",
        "Produced by `python tests/catalogue.py"
        + (f" --bug-seeds {args.bug_seeds}" if args.bug_seeds != 5 else "")
        + (f" --seeds {args.seeds}" if args.seeds != 20 else "")
        + "` (the bugs are in `tests/bugs.py`, each a small variation of one correct back-prop; "
        "`tests/test_bug_catalogue.py` asserts the same verdicts).",
        "",
        f"Every bug is checked at {args.bug_seeds} seed(s) by both `DenseNet.gradcheck` (dense engine) and "
        "`fastgrad.gradcheck` on the NumPy reference cost (generic engine), default step and threshold. "
        "*Detected*: the report fails. *Localised*: its failing blocks are exactly the blocks the bug corrupts "
        "(checked against the exact gradient in the tests).",
        "",
        "## Summary",
        "",
        "| measure | value | required |",
        "|---|---|---|",
        f"| detection rate | {detected}/{checks} = {100.0 * detected / checks:.1f}% | 100% |",
        f"| localisation rate | {localised}/{checks} = {100.0 * localised / checks:.1f}% | 100% |",
        f"| false-failure rate (correct back-prop) | {ffail}/{fchecks} = {100.0 * ffail / fchecks:.1f}% | 0% |",
        f"| bugs / architectures | {len(CATALOGUE)} bugs (+ the course's planted pair) / {len(ARCHITECTURES)} | "
        ">= 15 / >= 3 per bug |",
        "",
        f"**Verdict: {'PASS' if ok else 'FAIL'}.**",
        "",
        "## Bugs",
        "",
        "| bug | architecture | detected | localised | failing blocks (expected) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        seen = "; ".join(blocks_text(s) for s in sorted(r["seen"], key=sorted))
        shown = blocks_text(r["expected"])
        if r["seen"] != {r["expected"]}:
            shown = f"{seen} (expected {shown})"
        lines.append(
            f"| `{r['bug']}` | {r['architecture']} | {r['detected']}/{r['checks']} | "
            f"{r['localised']}/{r['checks']} | {shown} |"
        )
    lines += ["", "What each bug is:", ""]
    described = {}
    for r in rows:
        described.setdefault(r["bug"], r["description"])
    lines += [f"- `{name}`: {text}" for name, text in described.items()]
    lines += [
        "",
        "## False failures: the correct back-prop",
        "",
        f"At {args.seeds} seeds per network, both engines.",
        "",
        "| networks | checks | failures | inconclusive | components at kinks (judged by range) |",
        "|---|---|---|---|---|",
    ]
    for g in groups:
        lines.append(f"| {g['group']} | {g['checks']} | {g['failures']} | {g['inconclusive']} | {g['kinks']} |")
    failed = [f for g in groups for f in g["failed"]]
    if failed:
        lines += ["", "False failures and inconclusive verdicts, with their reasons:", ""] + [f"- {f}" for f in failed]
    if modes:
        lines += [
            "",
            "## Other ways of checking",
            "",
            "The whole catalogue at seed 0, both engines.",
            "",
            "| check | detected | localised | required |",
            "|---|---|---|---|",
        ]
        for m in modes:
            lines.append(
                f"| {m['mode']} | {m['detected']}/{m['checks']} | {m['localised']}/{m['checks']} | "
                f"{'100%' if m['required'] else 'shown only'} |"
            )
        for m in modes:
            if m["missed"]:
                lines += ["", f"Not exactly localised by the {m['mode']} check:", ""] + [f"- {x}" for x in m["missed"]]
    lines += [
        "",
        "## Run",
        "",
        f"Python {platform.python_version()}, NumPy {np.__version__}, Numba {numba.__version__}, "
        f"fastgrad {fastgrad.__version__}; {numba.get_num_threads()} Numba thread(s); "
        f"{elapsed:.1f} s including compilation.",
        "",
    ]
    return "\n".join(lines), ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bug-seeds", type=int, default=5, help="seeds per bug and architecture (default 5)")
    parser.add_argument("--seeds", type=int, default=20, help="seeds per correct network (default 20)")
    parser.add_argument(
        "--output", default=str(ROOT / "docs" / "bug_catalogue.md"),
        help="where to write the Markdown report ('-' to only print it)",
    )
    parser.add_argument(
        "--no-external", action="store_true",
        help="skip the external catalogue (tests/external: code in other conventions, scikit-learn, Rosenbrock)",
    )
    parser.add_argument(
        "--threads", type=int, default=1,
        help="Numba threads (default 1: these networks are tiny, and verdicts do not depend on it)",
    )
    args = parser.parse_args(argv)
    if args.bug_seeds < 1 or args.seeds < 1 or args.threads < 1:
        parser.error("--bug-seeds, --seeds and --threads must be positive")

    previous = numba.get_num_threads()
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    try:
        started = time.perf_counter()
        rows = run_catalogue(args.bug_seeds)
        groups = run_false_failures(args.seeds)
        modes = run_modes()
        text, ok = render(rows, groups, args, time.perf_counter() - started, modes)
    finally:
        numba.set_num_threads(previous)
    if not args.no_external:
        from tests.external.rates import markdown as external_markdown, run_catalogue as run_external

        summary = run_external()
        text += "\n## The external catalogue (tests/external: other conventions, public API only)\n\n"
        text += external_markdown(summary) + "\n"
        ok = ok and not summary["wrong"] and summary["inconclusive_budget"] <= 0.02 * summary["budget_cases"]
    print(text)
    if args.output != "-":
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"written to {args.output}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
