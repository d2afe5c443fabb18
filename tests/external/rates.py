"""Detection, localisation and false-failure rates of fastgrad on the external catalogue.

``run_catalogue()`` runs every case through :func:`fastgrad.gradcheck` and
counts; ``python -m tests.external.rates`` prints the counts as a Markdown
table. :mod:`tests.external.test_external_catalogue` asserts the same contract
case by case.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

import numpy as np

from tests.external.cases import FAMILIES, Case, all_cases

CORRECT = ("pass", "not_fail", "inconclusive")


def verdict_of(report) -> tuple[str, bool]:
    """``(verdict, from_attribute)``: ``report.verdict``, or, where a fastgrad
    without that attribute is measured, ``"pass"``/``"fail"`` from ``passed``."""
    if hasattr(report, "verdict"):
        return str(report.verdict), True
    return ("pass" if report.passed else "fail"), False


def judge(case: Case, report) -> dict:
    """What the report got right and wrong for this case (no assertion)."""
    verdict, attribute = verdict_of(report)
    failing = set(getattr(report, "failing_blocks", ()) or ())
    out = {"verdict": verdict, "verdict_attribute": attribute, "failing_blocks": sorted(failing),
           "reasons": tuple(getattr(report, "reasons", ()) or ())}
    if case.expected == "fail":
        out["ok"] = verdict == "fail" and failing == set(case.corrupted)
        out["detected"] = verdict == "fail"
        out["localised"] = verdict == "fail" and failing == set(case.corrupted)
    elif case.expected == "not_pass":
        out["ok"] = verdict != "pass" and not report.passed
    elif case.expected == "pass":
        out["ok"] = verdict == "pass" and report.passed
    elif case.expected == "not_fail":
        out["ok"] = verdict in ("pass", "inconclusive") and (verdict != "inconclusive" or bool(out["reasons"]))
    else:  # "inconclusive"
        out["ok"] = verdict == "inconclusive" and bool(out["reasons"])
    return out


def run_case(case: Case) -> dict:
    """Run one case; an exception from fastgrad is a result too (``error``)."""
    start = time.perf_counter()
    try:
        report = case.run()
    except Exception as exc:  # noqa: BLE001 -- counted and shown, never hidden
        return {"verdict": "error", "error": f"{type(exc).__name__}: {exc}", "ok": False, "detected": False,
                "localised": False, "reasons": (), "failing_blocks": [], "seconds": time.perf_counter() - start}
    result = judge(case, report)
    result["seconds"] = time.perf_counter() - start
    return result


def run_catalogue(families=None, include_heavy: bool = True) -> dict:
    """Run the catalogue and count.

    Parameters
    ----------
    families : iterable of str, optional
        Family names (default: all of :data:`tests.external.cases.FAMILIES`).
    include_heavy : bool
        Include the n = 100,000 Rosenbrock runs.

    Returns
    -------
    dict
        ``bugs``, ``bugs_failed``, ``bugs_localised``, ``bugs_missed`` (names),
        ``correct``, ``false_failures`` (names), ``must_pass_not_passed``
        (names), ``inconclusive_correct`` (name -> reasons),
        ``inconclusive_budget`` (those not marked ``inconclusive_ok``),
        ``not_pass``, ``not_pass_passed`` (names), ``errors`` (name -> message),
        ``wrong`` (every case whose expectation was not met),
        ``verdict_attribute`` (False when fastgrad has no ``report.verdict``
        and verdicts were read from ``passed``), ``per_family`` and ``cases``
        (name -> result).
    """
    wanted = set(FAMILIES) if families is None else set(families)
    cases = [c for c in all_cases() if c.family in wanted and (include_heavy or not c.heavy)]
    results = {c.name: run_case(c) for c in cases}
    return summarise(cases, results)


def summarise(cases, results) -> dict:
    """Counts over ``results`` (name -> :func:`run_case` result)."""
    out = {
        "bugs": 0, "bugs_failed": 0, "bugs_localised": 0, "bugs_missed": [], "bugs_mislocalised": [],
        "correct": 0, "false_failures": [], "must_pass_not_passed": [], "inconclusive_correct": {},
        "inconclusive_budget": 0, "budget_cases": 0, "not_pass": 0, "not_pass_passed": [], "errors": {},
        "verdict_attribute": True, "per_family": {}, "cases": results,
        "wrong": [c.name for c in cases if not results[c.name]["ok"]],
    }
    fam = defaultdict(lambda: defaultdict(int))
    for c in cases:
        r = results[c.name]
        f = fam[c.family]
        if r["verdict"] == "error":
            out["errors"][c.name] = r["error"]
            f["errors"] += 1
        elif not r.get("verdict_attribute", True):
            out["verdict_attribute"] = False
        if c.expected == "fail":
            out["bugs"] += 1
            f["bugs"] += 1
            out["bugs_failed"] += r["detected"]
            f["bugs_failed"] += r["detected"]
            out["bugs_localised"] += r["localised"]
            f["bugs_localised"] += r["localised"]
            if not r["detected"]:
                out["bugs_missed"].append(c.name)
            elif not r["localised"]:
                out["bugs_mislocalised"].append(c.name)
        elif c.expected == "not_pass":
            out["not_pass"] += 1
            f["not_pass"] += 1
            if r["verdict"] == "pass":
                out["not_pass_passed"].append(c.name)
                f["not_pass_passed"] += 1
        else:
            out["correct"] += 1
            f["correct"] += 1
            if r["verdict"] == "fail":
                out["false_failures"].append(c.name)
                f["false_failures"] += 1
            if c.expected == "pass" and r["verdict"] != "pass":
                out["must_pass_not_passed"].append(c.name)
            if r["verdict"] == "inconclusive":
                out["inconclusive_correct"][c.name] = r["reasons"]
                f["inconclusive"] += 1
            if c.expected != "inconclusive" and not c.inconclusive_ok:
                out["budget_cases"] += 1
                out["inconclusive_budget"] += r["verdict"] == "inconclusive"
    out["per_family"] = {k: dict(v) for k, v in fam.items()}
    return out


def markdown(summary: dict) -> str:
    """The counts as a Markdown table, then the cases that went wrong."""
    lines = [
        "| family | bugs failed | bugs localised | correct: false failures | correct: inconclusive | "
        "must-not-pass: passed | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    fams = summary["per_family"]
    for name in list(FAMILIES):
        if name not in fams:
            continue
        f = fams[name]
        lines.append(
            f"| {name} | {f.get('bugs_failed', 0)}/{f.get('bugs', 0)} | {f.get('bugs_localised', 0)}/{f.get('bugs', 0)} "
            f"| {f.get('false_failures', 0)}/{f.get('correct', 0)} | {f.get('inconclusive', 0)}/{f.get('correct', 0)} "
            f"| {f.get('not_pass_passed', 0)}/{f.get('not_pass', 0)} | {f.get('errors', 0)} |"
        )
    s = summary
    lines.append(
        f"| **all** | {s['bugs_failed']}/{s['bugs']} | {s['bugs_localised']}/{s['bugs']} "
        f"| {len(s['false_failures'])}/{s['correct']} | {len(s['inconclusive_correct'])}/{s['correct']} "
        f"| {len(s['not_pass_passed'])}/{s['not_pass']} | {len(s['errors'])} |"
    )
    lines.append("")
    budget = s["inconclusive_budget"] / max(s["budget_cases"], 1)
    lines.append(f"Inconclusive on correct gradients (budget 2 %, {s['budget_cases']} cases count): {budget:.1%}.")
    if not s["verdict_attribute"]:
        lines.append("`report.verdict` is missing: verdicts were read from `report.passed` (no inconclusive).")
    for title, key in (("Bugs not failed", "bugs_missed"), ("Bugs failed in other blocks", "bugs_mislocalised"),
                       ("False failures", "false_failures"), ("Well-conditioned correct cases not passed",
                                                              "must_pass_not_passed"),
                       ("Must-not-pass cases passed", "not_pass_passed")):
        if s[key]:
            lines.append(f"\n{title}:")
            for name in s[key]:
                r = s["cases"][name]
                lines.append(f"- `{name}`: {r['verdict']}, failing {r['failing_blocks']}")
    lines.append(f"\nCases whose expectation was not met: {len(s['wrong'])} of {len(s['cases'])}.")
    if s["inconclusive_correct"]:
        lines.append("\nInconclusive correct cases:")
        for name, reasons in s["inconclusive_correct"].items():
            lines.append(f"- `{name}`: {'; '.join(reasons) or '(no reason given)'}")
    if s["errors"]:
        lines.append("\nErrors:")
        for name, msg in s["errors"].items():
            lines.append(f"- `{name}`: {msg.splitlines()[0][:200]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    families = [a for a in argv if not a.startswith("-")] or None
    summary = run_catalogue(families, include_heavy="--no-heavy" not in argv)
    print(markdown(summary))
    ok = not summary["wrong"] and summary["inconclusive_budget"] <= 0.02 * summary["budget_cases"]
    return 0 if ok else 1


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
