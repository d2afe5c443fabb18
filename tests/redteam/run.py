"""Run every red-team case and print a table of counts and every contract violation.

    PYTHONPATH=. python -m tests.redteam.run [substring ...]
"""

from __future__ import annotations

import sys
import time
import traceback

from tests.redteam.cases import CASES


def classify(case, report=None, exc=None):
    """-> (outcome, violation_or_None)."""
    if exc is not None:
        return "raised", (None if case.kind == "info" else f"raised {type(exc).__name__}: {exc}")
    v = report.verdict
    fb = set(report.failing_blocks)
    if case.kind == "correct":
        if v == "pass":
            return "pass", None
        if v == "inconclusive":
            return "inconclusive", (None if report.reasons else "inconclusive without reasons")
        return "FALSE FAIL", f"correct gradient failed (blocks {sorted(fb)})"
    if case.kind == "bug":
        if v == "fail":
            if fb == set(case.bug_blocks):
                return "failed+localised", None
            return "failed, mislocalised", f"failing blocks {sorted(fb)} != corrupted {sorted(case.bug_blocks)}"
        if v == "inconclusive":
            return "bug inconclusive", (None if report.reasons else "inconclusive without reasons")
        return "BUG PASSED", f"wrong gradient passed (difference {report.difference:.2e}, tolerance {report.tolerance:.2e})"
    if case.kind == "nopass":
        if v == "pass":
            return "NOPASS PASSED", f"unresolvable wrong gradient passed (difference {report.difference:.2e}, tolerance {report.tolerance:.2e})"
        return v, None
    return v, None


def run(cases):
    rows = []
    for case in cases:
        ok, ev = case.verify()
        t0 = time.perf_counter()
        report = exc = None
        try:
            report = case.run()
        except Exception as e:  # noqa: BLE001
            exc = e
        dt = time.perf_counter() - t0
        outcome, violation = classify(case, report, exc)
        if not ok:
            violation = (violation or "") + " [CASE LABEL NOT VERIFIED: " + ev + "]"
        rows.append((case, report, exc, outcome, violation, ev, dt))
    return rows


def summarise(rows):
    count = lambda kind, outs: sum(1 for c, *_r in rows if c.kind == kind and _r[2] in outs)
    bugs = [r for r in rows if r[0].kind == "bug"]
    corr = [r for r in rows if r[0].kind == "correct"]
    nop = [r for r in rows if r[0].kind == "nopass"]
    info = [r for r in rows if r[0].kind == "info"]
    lines = [
        f"cases: {len(rows)}  (bug {len(bugs)}, correct {len(corr)}, must-not-pass {len(nop)}, info {len(info)})",
        "",
        "| category | count |",
        "|---|---|",
        f"| bugs failed | {sum(r[1] is not None and r[1].verdict == 'fail' for r in bugs)} / {len(bugs)} |",
        f"| bugs failed and localised exactly | {sum(r[3] == 'failed+localised' for r in bugs)} / {len(bugs)} |",
        f"| bugs inconclusive | {sum(r[3] == 'bug inconclusive' for r in bugs)} |",
        f"| bugs PASSED | {sum(r[3] == 'BUG PASSED' for r in bugs)} |",
        f"| correct: pass | {sum(r[3] == 'pass' for r in corr)} / {len(corr)} |",
        f"| correct: FALSE FAIL | {sum(r[3] == 'FALSE FAIL' for r in corr)} |",
        f"| correct: inconclusive (with reasons) | {sum(r[3] == 'inconclusive' for r in corr)} |",
        f"| must-not-pass that passed | {sum(r[3] == 'NOPASS PASSED' for r in nop)} / {len(nop)} |",
        f"| raised an exception | {sum(r[3] == 'raised' for r in rows)} |",
        f"| contract violations | {sum(r[4] is not None for r in rows)} |",
    ]
    return "\n".join(lines)


def main(argv):
    sel = [c for c in CASES if not argv or any(a in c.name for a in argv)]
    rows = run(sel)
    w = max(len(r[0].name) for r in rows)
    for case, report, exc, outcome, violation, ev, dt in rows:
        extra = ""
        if report is not None:
            extra = f"diff {report.difference:.1e} tol {report.tolerance:.1e} fb={list(report.failing_blocks)}"
            if report.reasons:
                extra += f" reasons={[r[:90] for r in report.reasons]}"
        else:
            extra = f"{type(exc).__name__}: {str(exc)[:150]}"
        flag = "  <-- VIOLATION: " + violation if violation else ""
        print(f"{case.name:<{w}}  {case.kind:<7} {outcome:<20} {dt:5.1f}s  {extra}{flag}")
    print()
    print(summarise(rows))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
