"""The ``fastgrad`` command, run for real in a subprocess (and a few paths in-process)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import fastgrad
from fastgrad import cli
from fastgrad._cases import NETWORK_CASES
from fastgrad.naive import course_backward, course_backward_with_bugs, course_case

REPO = Path(__file__).resolve().parents[1]
COMPILE_NOTICE = "fastgrad: compiling kernels"


def environment():
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    # The subprocess imports this checkout's fastgrad, wherever it runs.
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "fastgrad", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=environment(), timeout=timeout,
    )


def error_lines(stderr):
    """stderr without the one-time compile notice (it appears only on a cold cache)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(COMPILE_NOTICE)]


@pytest.fixture
def saved_course(tmp_path):
    """The course's case saved with numpy.savez: params, data, buggy and fixed gradients."""
    X, Y, params = course_case()
    np.savez(tmp_path / "params.npz", **params)
    np.savez(tmp_path / "data.npz", X=X, Y=Y)
    np.savez(tmp_path / "buggy.npz", **course_backward_with_bugs(X, Y, params))
    np.savez(tmp_path / "fixed.npz", **course_backward(X, Y, params))
    return tmp_path


# --------------------------------------------------------------------------- #
# demo
# --------------------------------------------------------------------------- #


def test_demo_names_w2_and_b1_then_passes_the_fixed_backprop():
    result = run("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "wrong: blocks b1, W2" in out
    failed_at, passed_at = out.index("gradient check FAILED"), out.index("gradient check PASSED")
    assert failed_at < passed_at
    buggy = out[failed_at:passed_at]
    table = [line.split() for line in buggy.splitlines() if line.split() and line.split()[0] in ("W1", "b1", "W2", "b2", "W3", "b3")]
    status = {row[0]: ("FAIL" if "FAIL" in row else "ok") for row in table}
    assert status == {"b1": "FAIL", "W2": "FAIL", "W1": "ok", "b2": "ok", "W3": "ok", "b3": "ok"}
    assert "0.285" in out  # the course's own number
    assert "as expected" in out
    assert "Traceback" not in result.stderr


def test_demo_json_is_valid_and_says_as_expected():
    result = run("demo", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["as_expected"] is True
    assert set(document["buggy"]["failing_blocks"]) == {"W2", "b1"}
    assert document["fixed"]["passed"] is True
    assert document["course_difference"] == pytest.approx(0.2850931567761623, rel=1e-6)


def test_installed_console_script_runs():
    script = shutil.which("fastgrad")
    if script is None:
        pytest.skip("the fastgrad console script is not installed (pip install -e .)")
    result = subprocess.run(
        [script, "check", "--layers", "4,5,3,1", "--batch", "8", "--json"],
        capture_output=True, text=True, env=environment(), timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "pass"


def test_a_check_that_cannot_tell_exits_3_with_its_reason():
    # With 3 random examples, two of layer 2's units sit exactly on their kink for
    # every example (ReLUs off in layer 1), so zero is a valid derivative of b2 too.
    result = run("check", "--layers", "4,5,3,1", "--batch", "3", "--json")
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "inconclusive" and report["inconclusive_blocks"] == ["b2"]
    assert any("zero is also a valid derivative" in reason for reason in report["reasons"])


# --------------------------------------------------------------------------- #
# check on random data
# --------------------------------------------------------------------------- #


def test_check_passing_case_exits_0_with_valid_json():
    result = run("check", "--layers", "6,5,3", "--batch", "4", "--activation", "tanh",
                 "--loss", "softmax_cross_entropy", "--seed", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert report["checked"] == report["size"] == 6 * 5 + 5 + 5 * 3 + 3
    assert {b["name"] for b in report["blocks"]} == {"W1", "b1", "W2", "b2"}


def test_check_failing_case_exits_1_names_the_block_and_gives_valid_json():
    result = run("check", "--layers", "6,5,3", "--batch", "4", "--activation", "tanh",
                 "--loss", "softmax_cross_entropy", "--bug", "double-dW2", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is False
    assert report["failing_blocks"] == ["W2"]
    assert report["worst"][0]["block"] == "W2"


def test_check_text_report_comes_after_a_line_saying_what_is_checked():
    result = run("check", "--layers", "4,5,3,1", "--batch", "3", "--bug", "negate-db1", "--bug", "zero-dW3")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("checking fastgrad's back-prop with planted bug(s) negate-db1, zero-dW3")
    assert lines[1].startswith("gradient check FAILED")
    assert set(lines[2].replace("wrong: blocks", "").replace(",", " ").split()) == {"b1", "W3"}
    assert "\x1b[" not in result.stdout  # not a terminal: no colour


def test_check_options_reach_the_report():
    result = run("check", "--layers", "5,4,2", "--batch", "3", "--loss", "mse", "--activation", "sigmoid",
                 "--method", "richardson", "--sample", "2", "--threshold", "1e-5", "--l2", "0.1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["method"], report["mode"], report["threshold"]) == ("richardson", "sampled", 1e-5)
    assert report["checked"] == 8  # 2 per block, 4 blocks
    assert [t["name"] for t in report["terms"]] == ["data term", "L2 penalty"]


def test_check_directional_mode_and_fixed_eps():
    result = run("check", "--layers", "5,4,2", "--batch", "3", "--mode", "directional", "--bug", "double-db2", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "directional"
    assert report["failing_blocks"] == ["b2"]
    result = run("check", "--layers", "5,4,2", "--batch", "3", "--eps", "1e-7", "--threshold", "1e-7", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["eps"] == 1e-7


def test_colour_always_adds_ansi_codes():
    result = run("check", "--layers", "4,3,2", "--batch", "3", "--color", "always")
    assert result.returncode == 0, result.stderr
    assert "\x1b[1;32mgradient check PASSED" in result.stdout


# --------------------------------------------------------------------------- #
# check on saved arrays
# --------------------------------------------------------------------------- #


def test_saved_buggy_gradients_fail_in_w2_and_b1(saved_course):
    result = run("check", "--params", "params.npz", "--grads", "buggy.npz", "--data", "data.npz",
                 "--layers", "4,5,3,1", "--activation", "relu", "--json", cwd=saved_course)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert set(report["failing_blocks"]) == {"W2", "b1"}
    assert report["size"] == 47


def test_saved_fixed_gradients_pass_and_layers_are_read_from_params(saved_course):
    result = run("check", "--params", "params.npz", "--grads", "fixed.npz", "--data", "data.npz", cwd=saved_course)
    assert result.returncode == 0, result.stderr
    assert "DenseNet([4, 5, 3, 1]" in result.stdout
    assert "gradient check PASSED" in result.stdout


def test_saved_gradients_with_one_planted_bug_name_that_block(saved_course):
    X, Y, params = course_case()
    grads = course_backward(X, Y, params)
    grads["db2"] = grads["db2"] * 3.0
    # Block names without the d prefix are accepted too; float32 as well.
    np.savez(saved_course / "mine.npz", **{k[1:]: v.astype(np.float32) for k, v in grads.items()})
    result = run("check", "--params", "params.npz", "--grads", "mine.npz", "--data", "data.npz", "--json",
                 cwd=saved_course)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["failing_blocks"] == ["b2"]
    assert report["grad_dtype"] == "float32"


def test_saved_params_and_data_without_grads_check_fastgrads_backprop(saved_course):
    result = run("check", "--params", "params.npz", "--data", "data.npz", "--json", cwd=saved_course)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passed"] is True


def test_caller_files_are_left_unchanged(saved_course):
    before = {p.name: p.read_bytes() for p in saved_course.glob("*.npz")}
    run("check", "--params", "params.npz", "--grads", "buggy.npz", "--data", "data.npz", cwd=saved_course)
    assert {p.name: p.read_bytes() for p in saved_course.glob("*.npz")} == before


# --------------------------------------------------------------------------- #
# bad usage and bad input: exit 2, one line, no traceback
# --------------------------------------------------------------------------- #

BAD_USAGE = [
    ([], "choose a command"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["check"], "--layers is required"),
    (["check", "--layers", "4,x"], "not a list of layer sizes"),
    (["check", "--layers", "4"], "at least two positive sizes"),
    (["check", "--layers", "4,3", "--loss", "hinge"], "invalid choice: 'hinge'"),
    (["check", "--layers", "4,3,2", "--activation", "swish"], "Unknown activation 'swish'"),
    (["check", "--layers", "4,3,1", "--loss", "softmax_cross_entropy"], "at least 2 outputs"),
    (["check", "--layers", "4,3,1", "--eps", "-1"], "eps must be positive"),
    (["check", "--layers", "4,3,1", "--threshold", "nan"], "must be a finite number"),
    (["check", "--layers", "4,3,1", "--batch", "0"], "must be at least 1"),
    (["check", "--layers", "4,3,1", "--sample", "two"], "not a whole number"),
    (["check", "--layers", "4,3,1", "--method", "backward"], "invalid choice: 'backward'"),
    (["check", "--layers", "4,3,1", "--bug", "explode-dW1"], "not a bug"),
    (["check", "--layers", "4,3,1", "--bug", "double-dW7"], "no block 'dW7'"),
    (["check", "--layers", "4,3,1", "--no-such-option"], "unrecognized arguments"),
    (["check", "--params", "missing.npz", "--data", "missing.npz"], "--params missing.npz: no such file"),
    (["check", "--grads", "buggy.npz"], "--grads needs --params and --data"),
    (["check", "--params", "params.npz"], "--params needs --data"),
    (["check", "--params", "params.npz", "--data", "data.npz", "--batch", "3"], "drop --batch"),
    (["check", "--params", "params.npz", "--data", "data.npz", "--layers", "4,5,3,2", "--loss", "mse"],
     "--params params.npz: W3 has shape (1, 3)"),
    (["check", "--params", "params.npz", "--data", "transposed.npz"], "--data transposed.npz: X has shape (3, 4)"),
    (["check", "--params", "params.npz", "--data", "no_y.npz"], "no array named Y"),
    (["check", "--params", "params.npz", "--data", "data.npz", "--grads", "short.npz"], "--grads short.npz: "),
    (["check", "--params", "single.npy", "--data", "data.npz"], "holds a single array"),
    (["check", "--params", "junk.npz", "--data", "data.npz"], "is not a .npz file"),
    (["check", "--params", "nan.npz", "--data", "data.npz"], "nan"),
    (["bench", "--cases", "XL"], "unknown case 'XL'"),
]


@pytest.fixture(scope="module")
def bad_usage_results(tmp_path_factory):
    """Every bad command line, run at once (each is a separate process; together they take seconds)."""
    folder = tmp_path_factory.mktemp("bad_usage")
    X, Y, params = course_case()
    np.savez(folder / "params.npz", **params)
    np.savez(folder / "data.npz", X=X, Y=Y)
    np.savez(folder / "buggy.npz", **course_backward_with_bugs(X, Y, params))
    np.savez(folder / "transposed.npz", X=X.T, Y=Y)
    np.savez(folder / "no_y.npz", X=X)
    grads = course_backward(X, Y, params)
    del grads["db3"]
    np.savez(folder / "short.npz", **grads)
    np.save(folder / "single.npy", X)
    (folder / "junk.npz").write_text("not an archive")
    np.savez(folder / "nan.npz", **{**params, "b2": np.full((3, 1), np.nan)})
    processes = {
        tuple(args): subprocess.Popen(
            [sys.executable, "-m", "fastgrad", *args], cwd=folder, env=environment(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for args, _ in BAD_USAGE
    }
    results = {}
    for args, process in processes.items():
        out, err = process.communicate(timeout=300)
        results[args] = (process.returncode, out, err)
    return results


@pytest.mark.parametrize("args, message", BAD_USAGE, ids=[" ".join(a) or "no-command" for a, _ in BAD_USAGE])
def test_bad_usage_exits_2_with_one_line_and_no_traceback(bad_usage_results, args, message):
    returncode, out, err = bad_usage_results[tuple(args)]
    assert returncode == 2, (out, err)
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "error:" in lines[0] and message in lines[0], lines[0]
    assert "Traceback" not in err
    assert out == ""


# --------------------------------------------------------------------------- #
# help, bench
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("command", [[], ["demo"], ["check"], ["bench"]])
def test_help_on_every_command_has_examples(command, capsys):
    assert cli.main([*command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    assert "fastgrad " + (command[0] if command else "demo") in text.split("examples:")[1]


def test_bench_prints_a_table_and_json():
    result = run("bench", "--quick", "--cases", "S")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.split()[:2] == ["case", "network"])
    assert "speed-up" in header and "components/s" in header
    assert any(line.split()[:2] == ["S", "4-5-3-1"] for line in result.stdout.splitlines())
    result = run("bench", "--quick", "--cases", "S", "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["cases"]
    assert row["case"] == "S" and row["parameters"] == 47
    assert row["fastgrad_seconds"] > 0 and row["naive_seconds"] > 0
    assert row["speedup"] == pytest.approx(row["naive_seconds"] / row["fastgrad_seconds"])


# --------------------------------------------------------------------------- #
# Ctrl-C and colour decisions (in-process)
# --------------------------------------------------------------------------- #


def test_interrupted_check_prints_the_partial_report_and_exits_130(monkeypatch, capsys):
    case = NETWORK_CASES["S"]
    (X, Y), net, params = case.data(), case.net(), case.params()
    partial = replace(net.gradcheck(params, X, Y, indices=np.arange(10), progress=False), interrupted=True)

    def interrupted_check(self, *args, **kwargs):
        raise fastgrad.CheckInterrupted(partial, "check interrupted after 10 of 47 components")

    monkeypatch.setattr(fastgrad.DenseNet, "gradcheck", interrupted_check)
    assert cli.main(["check", "--layers", "4,5,3,1", "--batch", "3"]) == 130
    out = capsys.readouterr().out
    assert "gradient check PASSED so far (interrupted after 10 of 47 components)" in out

    assert cli.main(["check", "--layers", "4,5,3,1", "--batch", "3", "--json"]) == 130
    assert json.loads(capsys.readouterr().out)["interrupted"] is True


def test_interrupted_before_any_component_exits_130_with_one_line(monkeypatch, capsys):
    def interrupted_check(self, *args, **kwargs):
        raise fastgrad.CheckInterrupted(None, "check interrupted after 0 of 47 components")

    monkeypatch.setattr(fastgrad.DenseNet, "gradcheck", interrupted_check)
    assert cli.main(["check", "--layers", "4,5,3,1"]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip() == "fastgrad: interrupted (Ctrl-C) before any component was checked"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child process is POSIX-only")
def test_ctrl_c_in_a_long_check_exits_130_without_traceback():
    # The same kernels on a tiny network first, so a cold cache (a fresh clone) is
    # compiled before the timed run: the signal must land in the check, not the compiler.
    assert run("check", "--layers", "4,5,3,1", "--batch", "8", "--engine", "generic").returncode == 0
    # The generic engine on the M network runs for minutes: long enough to interrupt.
    process = subprocess.Popen(
        [sys.executable, "-m", "fastgrad", "check", "--layers", "784,128,64,10", "--batch", "64",
         "--engine", "generic", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(),
    )
    try:
        header = process.stdout.readline()  # printed once the inputs are validated
        assert header.startswith("checking"), header
        time.sleep(8.0)  # past start-up and the noise measurement (on a loaded machine): into the minutes-long loop
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    # The partial report of the components done (at least the first chunk, which was running).
    assert "so far (interrupted after" in out, (out, err)


def test_colour_follows_terminal_and_no_color(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli._use_color("auto") is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli._use_color("auto") is False
    assert cli._use_color("always") is True
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli._use_color("auto") is False
    assert cli._use_color("never") is False
