"""The ``fastgrad`` command: check gradients from a terminal or a CI pipeline.

Commands (``fastgrad COMMAND --help`` shows each one's options and examples):

* ``fastgrad demo``: the course's 4-5-3-1 network with its two planted
  back-prop bugs; the report names W2 and b1, then the fixed back-prop passes.
* ``fastgrad check``: a gradient check of a dense network, on random data of a
  given shape or on a user's own saved parameters, gradients and data (.npz).
* ``fastgrad bench``: times the engine against the naive course loop.

Exit status: 0 the check passed, 1 it failed, 2 bad usage or bad input, or the
check cannot run here (not enough memory) (one line on stderr, no traceback),
130 interrupted (Ctrl-C; the partial report is
printed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from fastgrad._dense_spec import ACTIVATIONS, LOSSES
from fastgrad._differences import METHODS

if TYPE_CHECKING:  # pragma: no cover
    from fastgrad.dense import DenseNet
    from fastgrad.report import Report

__all__ = ["main", "build_parser"]

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_INTERRUPTED = 130

#: ``--bug KIND-BLOCK``: what each kind of planted bug does to the gradient block.
BUG_KINDS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "double": lambda block: 2.0 * block,
    "negate": lambda block: -block,
    "zero": lambda block: np.zeros_like(block),
}

class UsageError(Exception):
    """Bad usage or bad input: reported as one line on stderr, exit status 2.

    ``prog`` names the command that complained (``"fastgrad check"``).
    """

    def __init__(self, message: str, prog: str | None = None) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and never exits by itself."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')", self.prog)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-written examples as they are; show defaults."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        shown = not (default is None or default is False or default == [] or default == argparse.SUPPRESS)
        if "%(default)" not in text and shown:
            text += " (default: %(default)s)"
        return text


# --------------------------------------------------------------------------- #
# Argument types: each turns a string into a value or a one-line error
# --------------------------------------------------------------------------- #


def _layer_sizes(text: str) -> list[int]:
    parts = text.replace(" ", "").split(",")
    if "" in parts:
        raise argparse.ArgumentTypeError(
            f"{text!r} has an empty size (two commas in a row, or one at an end): write e.g. 4,5,3,1"
        )
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of layer sizes: write whole numbers separated by commas, e.g. 784,128,64,10"
        ) from None
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(
            f"{text!r} needs at least two positive sizes (inputs and outputs), e.g. 4,5,3,1"
        )
    return sizes


def _int_at_least(minimum: int, wording: str):
    """An argparse type: a whole number no smaller than ``minimum``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be {wording}")
        return value

    return convert


_positive_int = _int_at_least(1, "at least 1")
_non_negative_int = _int_at_least(0, "0 or more")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (write e.g. 1e-7)") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
    return value


def _bug(text: str) -> tuple[str, str]:
    kind, _, block = text.partition("-")
    if kind not in BUG_KINDS or not block:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a bug: write KIND-BLOCK with KIND one of {', '.join(BUG_KINDS)}, e.g. double-dW2"
        )
    return kind, block


# --------------------------------------------------------------------------- #
# The parser
# --------------------------------------------------------------------------- #

_MAIN_EPILOG = """\
examples:
  fastgrad demo                       the course's planted bugs, found and named
  fastgrad check --layers 784,128,64,10 --batch 64 --activation relu --loss softmax_cross_entropy
  fastgrad check --params params.npz --grads grads.npz --data data.npz --activation relu
  fastgrad bench --quick

exit status: 0 passed, 1 failed, 2 bad usage or input, 130 interrupted (Ctrl-C).
"""

_DEMO_EPILOG = """\
The course's gradient-checking exercise: a 4-5-3-1 network (ReLU, ReLU,
sigmoid; binary cross-entropy; 3 examples) whose back-prop has two planted bugs
(dW2 doubled, db1 computed with 4/m instead of 1/m). The first report must name
W2 and b1 as wrong, and nothing else; the second checks the fixed back-prop and
must pass. Exit status 0 when both behave so, 1 otherwise.

examples:
  fastgrad demo
  fastgrad demo --json | python -m json.tool
"""

_CHECK_EPILOG = """\
what is checked:
  Without --params: a self-check on random data. fastgrad draws parameters
  (net.init(seed)) and data of the given shape, computes the gradient with its
  own back-prop and checks it by finite differences.
  With --params/--data: your saved parameters and data (.npz files written
  with numpy.savez). With --grads too, your own gradients are checked; without
  it, fastgrad's back-prop on your parameters and data.

saved arrays (course naming):
  --params  W1 (n1, n0), b1 (n1, 1), W2, b2, ...   (the network is read from
            their shapes when --layers is not given)
  --grads   dW1, db1, dW2, ...  (or W1, b1, ...)
  --data    X (n0, m), one column per example; Y (nL, m), or (m,) for one output

planted bugs (--bug KIND-BLOCK, repeatable) make a gradient wrong on purpose,
to see a failing report and its exit status 1:
  double-dW2   dW2 multiplied by 2      negate-db1   db1 with its sign flipped
  zero-dW1     dW1 left at zero (a missing term)

examples:
  fastgrad check --layers 784,128,64,10 --batch 64 --activation relu --loss softmax_cross_entropy
  fastgrad check --layers 4,5,3,1 --batch 3 --bug double-dW2 --bug negate-db1
  fastgrad check --layers 20,10,1 --activation tanh --loss mse --l2 0.1 --json
  fastgrad check --layers 3072,512,256,10 --batch 32 --mode directional
  fastgrad check --layers 784,128,64,10 --sample 50 --method richardson
  # your arrays, saved with numpy.savez("p.npz", W1=W1, b1=b1, ...), savez("g.npz", dW1=dW1, ...)
  # and savez("d.npz", X=X, Y=Y):
  fastgrad check --params p.npz --grads g.npz --data d.npz --activation relu

exit status: 0 passed, 1 failed, 2 bad usage or input, 130 interrupted (Ctrl-C:
the report of the components checked so far is printed).
"""

_BENCH_EPILOG = """\
Times a full gradient check (every component) by fastgrad against the naive
course loop (copy theta, rebuild the dict, two full NumPy forward passes per
component) on ReLU networks with a softmax cross-entropy loss. The naive loop
is timed on a prefix of the components and extrapolated linearly (every
component costs it the same). Compilation is timed separately, before the
measurements. For the full benchmark suite see bench/ and
scripts/bench_report.py.

examples:
  fastgrad bench --quick
  fastgrad bench
  fastgrad bench --json
"""


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON (for CI pipelines)")
    parser.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto",
        help="colour the report: auto = when stdout is a terminal and NO_COLOR is unset",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``fastgrad`` argument parser (exposed for the docs and the tests)."""
    parser = _Parser(
        prog="fastgrad",
        description="fastgrad: fast, trustworthy gradient checking by finite differences.",
        epilog=_MAIN_EPILOG,
        formatter_class=_Formatter,
    )
    from fastgrad import __version__

    parser.add_argument("--version", action="version", version=f"fastgrad {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_demo_command(commands)
    _add_check_command(commands)
    _add_bench_command(commands)
    return parser


def _add_demo_command(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="the course's two planted back-prop bugs, found and named",
        description="Run the course's gradient check exercise with fastgrad.",
        epilog=_DEMO_EPILOG, formatter_class=_Formatter,
    )
    _add_output_options(demo)
    demo.set_defaults(run=_run_demo)


def _add_check_command(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check", help="check the gradient of a dense network (random data or your saved arrays)",
        description="Check a dense network's gradient by finite differences.",
        epilog=_CHECK_EPILOG, formatter_class=_Formatter,
    )
    _add_network_options(check.add_argument_group("network"))
    _add_data_options(check.add_argument_group("data and gradients"))
    _add_how_options(check.add_argument_group("how to check"))
    cluster = check.add_argument_group("cluster (needs fastgrad[distributed])").add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=_positive_int, metavar="N",
                         help="run on a local Dask cluster of N single-threaded worker processes")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://10.0.0.5:8786)")
    out = check.add_argument_group("output")
    _add_output_options(out)
    out.add_argument("--worst", type=_non_negative_int, default=5, metavar="K", help="how many of the worst components to list")
    out.add_argument("--no-progress", action="store_true", help="no progress bar (it is also off when stdout is not a terminal)")
    check.set_defaults(run=_run_check)


def _add_network_options(network: argparse._ArgumentGroup) -> None:
    network.add_argument(
        "--layers", type=_layer_sizes, metavar="N0,N1,...,NL",
        help="layer sizes, inputs first, e.g. 784,128,64,10 (read from --params when omitted)",
    )
    network.add_argument(
        "--activation", default="relu", metavar="NAME[,NAME...]",
        help=f"hidden activation ({', '.join(ACTIVATIONS)}; the output one follows from the loss), "
        "or one name per layer separated by commas",
    )
    network.add_argument(
        "--loss", choices=tuple(LOSSES), metavar="LOSS",
        help="binary_cross_entropy, softmax_cross_entropy or mse (default: binary_cross_entropy for one output, "
        "softmax_cross_entropy for several)",
    )
    network.add_argument("--l2", type=_number, default=0.0, metavar="LAMBDA", help="L2 strength (penalty l2/(2m) sum ||W||^2)")


def _add_data_options(data: argparse._ArgumentGroup) -> None:
    data.add_argument("--batch", type=_positive_int, metavar="M", help="examples of random data (default: 16)")
    data.add_argument("--params", metavar="P.npz", help="saved parameters W1, b1, ... (numpy.savez)")
    data.add_argument("--grads", metavar="G.npz", help="saved gradients dW1, db1, ... to check (needs --params and --data)")
    data.add_argument("--data", metavar="D.npz", help="saved data X (n0, m) and Y (nL, m)")
    data.add_argument(
        "--bug", type=_bug, action="append", default=[], metavar="KIND-BLOCK",
        help=f"plant a bug in the gradient before checking it (KIND: {', '.join(BUG_KINDS)}; e.g. double-dW2)",
    )


def _add_how_options(how: argparse._ArgumentGroup) -> None:
    how.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the random parameters, data, samples and directions")
    how.add_argument("--eps", type=_number, metavar="EPS", help="fixed step (the course's formula); default: a step per component from the numerics")
    how.add_argument("--threshold", type=_number, metavar="T", help="pass threshold on the relative difference (default 1e-6, 1e-5 for forward)")
    how.add_argument("--method", choices=METHODS, default="central", help="difference formula")
    how.add_argument("--sample", type=_positive_int, metavar="K", help="check only K random components per block")
    how.add_argument("--mode", choices=("full", "directional"), default="full",
                     help="directional: a few random directional derivatives, whatever the size")
    how.add_argument("--engine", choices=("auto", "dense", "generic"), default="auto",
                     help="dense: the structure-exploiting kernel; generic: a full forward pass per point")


def _add_bench_command(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench", help="time fastgrad against the naive course loop",
        description="Time fastgrad's full gradient check against the naive course loop.",
        epilog=_BENCH_EPILOG, formatter_class=_Formatter,
    )
    bench.add_argument("--quick", action="store_true", help="only the S and M networks (a few seconds)")
    bench.add_argument("--cases", type=_case_names, metavar="S,M,L",
                       help="which reference networks to time (default: S,M,L; with --quick: S,M)")
    bench.add_argument("--json", action="store_true", help="print the measurements as JSON")
    bench.set_defaults(run=_run_bench)


# --------------------------------------------------------------------------- #
# Output
# --------------------------------------------------------------------------- #


def _use_color(choice: str) -> bool:
    if choice == "always":
        return True
    if choice == "never":
        return False
    return bool(getattr(sys.stdout, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def _progress(args: argparse.Namespace) -> bool | None:
    """None lets the library decide (a bar for checks over ~1 s); False turns it off."""
    if getattr(args, "no_progress", False) or not getattr(sys.stdout, "isatty", lambda: False)():
        return False
    return None


def _jsonable(value: object) -> object:
    """Strict JSON: non-finite floats become the strings "inf", "-inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def _print_json(value: object) -> None:
    print(json.dumps(_jsonable(value), indent=2, allow_nan=False))


def _print_report(report: "Report", args: argparse.Namespace) -> None:
    from fastgrad._format import render_report

    if args.json:
        _print_json(report.to_dict(worst=getattr(args, "worst", 10)))
    else:
        print(render_report(report, color=_use_color(args.color), worst=getattr(args, "worst", 5)))


def _say(args: argparse.Namespace, text: str = "") -> None:
    """Narration for people; silent with --json so stdout stays one JSON document."""
    if not getattr(args, "json", False):
        print(text, flush=True)


# --------------------------------------------------------------------------- #
# demo
# --------------------------------------------------------------------------- #


def _run_demo(args: argparse.Namespace) -> int:
    from fastgrad.dense import DenseNet
    from fastgrad.naive import (
        COURSE_LAYER_SIZES,
        course_backward,
        course_backward_with_bugs,
        course_case,
        course_gradient_check,
    )

    X, Y, params = course_case()
    net = DenseNet(list(COURSE_LAYER_SIZES), "relu", "binary_cross_entropy")
    buggy = course_backward_with_bugs(X, Y, params)
    fixed = course_backward(X, Y, params)

    _say(args, "fastgrad demo: the course's gradient-checking exercise")
    _say(args, f"  network 4-5-3-1 ({', '.join(net.activations)}), binary cross-entropy, "
               f"{X.shape[1]} examples, {net.n_params} parameters")
    _say(args, "  its back-prop has two planted bugs: dW2 is doubled, db1 uses 4/m instead of 1/m")
    course_difference = course_gradient_check(X, Y, params, buggy)
    _say(args, f"  the course's own check (eps=1e-7) says only: difference {course_difference:.6g} > 1e-7, "
               "\"there is a mistake in the backward propagation\"")
    _say(args)
    _say(args, "1) fastgrad checks the buggy back-prop:")
    report_buggy = net.gradcheck(params, X, Y, buggy, progress=False)
    if not args.json:
        _print_report(report_buggy, args)
    _say(args)
    _say(args, "2) fastgrad checks the fixed back-prop:")
    report_fixed = net.gradcheck(params, X, Y, fixed, progress=False)
    if not args.json:
        _print_report(report_fixed, args)
    _say(args)

    named = set(report_buggy.failing_blocks)
    as_expected = report_buggy.verdict == "fail" and named == {"W2", "b1"} and report_fixed.passed
    args.status = EXIT_PASSED if as_expected else EXIT_FAILED
    if args.json:
        _print_json({
            "as_expected": as_expected,
            "course_difference": course_difference,
            "buggy": report_buggy.to_dict(),
            "fixed": report_fixed.to_dict(),
        })
    elif as_expected:
        print("as expected: the bugs are in W2 and b1 and nowhere else, and the fixed back-prop passes.")
    else:
        print(f"NOT as expected: failing blocks {sorted(named)} (expected ['W2', 'b1']), "
              f"fixed back-prop {'passed' if report_fixed.passed else 'failed'}.")
    return args.status


# --------------------------------------------------------------------------- #
# check
# --------------------------------------------------------------------------- #


def _load_npz(path: str, flag: str) -> dict[str, np.ndarray]:
    """The arrays of a .npz file by name, or a UsageError that says what to do."""
    hint = f"save it with numpy.savez({path!r}, NAME=array, ...)"
    if not os.path.exists(path):
        raise UsageError(f"{flag} {path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path}: is a directory, not a .npz file")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot be read ({_one_line(exc)})") from None
    if magic == b"\x93NUMPY":
        raise UsageError(f"{flag} {path}: holds a single array (.npy), not named arrays; {hint}")
    if not magic.startswith(b"PK"):
        raise UsageError(f"{flag} {path}: is not a .npz file; {hint}")
    _check_declared_sizes(path, flag, hint)
    try:
        with np.load(path, allow_pickle=False) as loaded:
            return {name: loaded[name] for name in loaded.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{flag} {path}: an array could not be read ({_one_line(exc)}); {hint}") from None


def _check_declared_sizes(path: str, flag: str, hint: str) -> None:
    """Refuse, from the headers alone, arrays that are truncated or too big to load."""
    from fastgrad._memory import npz_declared_bytes, require_memory

    try:
        declared = npz_declared_bytes(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{flag} {path}: an array could not be read ({_one_line(exc)}); {hint}") from None
    for name, shape, needed, stored in declared:
        if needed > stored:
            raise UsageError(
                f"{flag} {path}: array {name!r} declares shape {shape} ({needed:,} bytes) but the file holds "
                f"only {max(stored, 0):,} bytes of it (truncated or damaged); {hint}"
            )
    require_memory(sum(needed for _, _, needed, _ in declared), f"loading {flag} {path}")


def _require_memory_for_check(layers: Sequence[int], batch: int) -> None:
    import numba

    from fastgrad._memory import dense_check_bytes, require_memory

    n_params = sum(layers[l + 1] * (layers[l] + 1) for l in range(len(layers) - 1))
    require_memory(
        dense_check_bytes(layers, batch, numba.get_num_threads()),
        f"the check of a {','.join(map(str, layers))} network ({n_params:,} parameters) on {batch:,} examples",
    )


def _about(flag: str, path: str, action: Callable[[], object]) -> object:
    """Run ``action``; a complaint of the library about the file's arrays names the file."""
    try:
        return action()
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{flag} {path}: {_one_line(exc)}") from None


def _layers_from_params(params: dict[str, np.ndarray], path: str) -> list[int]:
    n_layers = sum(1 for name in params if name.startswith("W") and name[1:].isdigit())
    if n_layers == 0:
        raise UsageError(
            f"--params {path}: no arrays named W1, W2, ... (found: {', '.join(params) or 'none'}); "
            "save the parameters with the course's names, or give --layers"
        )
    sizes = []
    for l in range(1, n_layers + 1):
        W = params.get(f"W{l}")
        if W is None or W.ndim != 2:
            what = "missing" if W is None else f"of shape {W.shape}, not a matrix"
            raise UsageError(f"--params {path}: W{l} is {what}; give --layers to say what the network is")
        if l == 1:
            sizes.append(int(W.shape[1]))
        sizes.append(int(W.shape[0]))
    return sizes


def _default_loss(n_outputs: int) -> str:
    return "binary_cross_entropy" if n_outputs == 1 else "softmax_cross_entropy"


def _activations(text: str) -> str | list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError("--activation needs a name, e.g. relu")
    return names[0] if len(names) == 1 else names


def _random_data(net: "DenseNet", batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded inputs and labels that every loss accepts."""
    rng = np.random.default_rng(seed)
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    X = rng.standard_normal((n_in, batch))
    if net.loss == "softmax_cross_entropy":
        Y = np.eye(n_out)[rng.integers(0, n_out, size=batch)].T.copy()
    elif net.loss == "binary_cross_entropy":
        Y = rng.integers(0, 2, size=(n_out, batch)).astype(np.float64)
    else:
        Y = rng.standard_normal((n_out, batch))
    return X, Y


def _plant_bugs(net: "DenseNet", grads: dict[str, np.ndarray], bugs: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
    grads = dict(grads)
    for kind, block in bugs:
        name = block[1:] if block.startswith("d") and block[1:] in net.layout.names else block
        if name not in net.layout.names:
            raise UsageError(
                f"--bug {kind}-{block}: the network has no block {block!r}; "
                f"its blocks are {', '.join('d' + n for n in net.layout.names)}"
            )
        key = next((k for k in (f"d{name}", name) if k in grads), None)
        if key is None:
            raise UsageError(f"--bug {kind}-{block}: the gradients have no {'d' + name} to plant the bug in")
        grads[key] = BUG_KINDS[kind](np.asarray(grads[key], dtype=np.float64))
    return grads


def _problem(args: argparse.Namespace):
    """Network, parameters, data, gradients (None: fastgrad's own) and a description of them."""
    from fastgrad.dense import DenseNet

    if args.grads and not (args.params and args.data):
        raise UsageError("--grads needs --params and --data: a gradient is checked at the parameters "
                         "and data it was computed from")
    if args.params and not args.data:
        raise UsageError("--params needs --data (X and Y saved with numpy.savez)")
    if args.data and args.batch is not None:
        raise UsageError("--batch sets the size of random data; with --data the batch is X's columns, drop --batch")

    params = _load_npz(args.params, "--params") if args.params else None
    layers = args.layers
    if layers is None:
        if params is None:
            raise UsageError("--layers is required (e.g. --layers 784,128,64,10) unless --params gives the network")
        layers = _layers_from_params(params, args.params)
    loss = args.loss or _default_loss(layers[-1])
    net = DenseNet(layers, _activations(args.activation), loss, l2=args.l2)

    if args.data:
        data = _load_npz(args.data, "--data")
        missing = [name for name in ("X", "Y") if name not in data]
        if missing:
            raise UsageError(
                f"--data {args.data}: no array named {' or '.join(missing)} (found: {', '.join(data) or 'none'}); "
                f"save it with numpy.savez({args.data!r}, X=X, Y=Y)"
            )
        X, Y = data["X"], data["Y"]
        _require_memory_for_check(layers, int(np.shape(X)[-1]) if np.ndim(X) else 1)
        where = f"your data ({args.data}, {np.shape(X)[-1] if np.ndim(X) else '?'} examples)"
    else:
        _require_memory_for_check(layers, args.batch or 16)
        X, Y = _random_data(net, args.batch or 16, args.seed)
        where = f"{X.shape[1]} random examples (seed {args.seed})"

    if params is None:
        params = net.init(seed=args.seed)
        at = f"random parameters (seed {args.seed})"
    else:
        at = f"your parameters ({args.params})"

    # Validate every input before any work, each complaint naming its file.
    if args.params:
        _about("--params", args.params, lambda: net.pack(params))
    if args.data:
        _about("--data", args.data, lambda: net.cost(params, X, Y))
    grads = _load_npz(args.grads, "--grads") if args.grads else None
    if grads is not None:
        from fastgrad._layout import pack

        _about("--grads", args.grads, lambda: pack(grads, layout=net.layout))
    whose = f"your gradients ({args.grads})" if grads is not None else "fastgrad's back-prop"
    if args.bug:
        if grads is None:
            grads = net.gradients(params, X, Y)
        grads = _plant_bugs(net, grads, args.bug)
        whose += " with planted bug(s) " + ", ".join(f"{kind}-{block}" for kind, block in args.bug)
    description = f"checking {whose} for {net!r}, {net.n_params:,} parameters, at {at}, on {where}"
    return net, params, X, Y, grads, description


def _run_check(args: argparse.Namespace) -> int:
    from fastgrad._validation import check_eps, check_threshold

    # Settings first: a mistake there should not wait for files to load.
    if args.eps is not None:
        check_eps(args.eps)
    if args.threshold is not None:
        check_threshold(args.threshold)
    net, params, X, Y, grads, description = _problem(args)
    with _dask_client(args) as client:
        if client is not None:
            description += f", on {len(client.scheduler_info(n_workers=-1)['workers'])} Dask workers"
        _say(args, description)
        report = net.gradcheck(
            params, X, Y, grads, eps=args.eps, threshold=args.threshold, method=args.method,
            sample=args.sample, mode=args.mode, seed=args.seed, progress=_progress(args), engine=args.engine,
            client=client,
        )
    # Known before printing, so a reader that stops early (| head) does not change it.
    args.status = {"pass": EXIT_PASSED, "fail": EXIT_FAILED}.get(report.verdict, EXIT_INCONCLUSIVE)
    _print_report(report, args)
    return args.status


@contextlib.contextmanager
def _dask_client(args: argparse.Namespace):
    """A Dask client for --workers (a LocalCluster, closed afterwards) or --scheduler; None without them."""
    if args.workers is None and args.scheduler is None:
        yield None
        return
    from fastgrad.distributed import ClusterError, require_distributed

    try:
        distributed = require_distributed()
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    if args.workers is not None:
        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR)
        closing = [cluster]
        client = distributed.Client(cluster)
    else:
        closing = []
        try:
            client = distributed.Client(args.scheduler, timeout=10)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {args.scheduler}: {_one_line(exc)}") from None
    try:
        yield client
    except ClusterError as exc:
        raise UsageError(_one_line(exc)) from None
    finally:
        client.close()
        for cluster in closing:
            cluster.close()


# --------------------------------------------------------------------------- #
# bench
# --------------------------------------------------------------------------- #

#: Reference networks of ``fastgrad._cases`` timed by ``fastgrad bench`` (and with --quick).
_BENCH_CASES = ("S", "M", "L")
_QUICK_CASES = ("S", "M")


def _best_time(run: Callable[[], object], budget: float) -> float:
    """The best of repeated runs within about ``budget`` seconds (at least one)."""
    best = math.inf
    spent = 0.0
    while spent < budget:
        started = time.perf_counter()
        run()
        elapsed = time.perf_counter() - started
        best = min(best, elapsed)
        spent += elapsed
    return best


def _naive_seconds(problem, components: int) -> tuple[float, int]:
    """Seconds the naive loop needs for every component, extrapolated from a timed prefix."""
    from fastgrad.naive import naive_numerical_gradient

    n = problem.net.n_params
    prefix = min(n, components)
    started = time.perf_counter()
    naive_numerical_gradient(problem.net, problem.params, problem.X, problem.Y, indices=np.arange(prefix))
    elapsed = time.perf_counter() - started
    return elapsed / prefix * n, prefix


def _machine_load() -> str | None:
    """A description of a machine busy with other work, or None when it looks quiet."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return None
    cores = os.cpu_count() or 1
    if load > cores:
        return f"load average {load:.1f} on {cores} core{'s' if cores != 1 else ''}: other work is running"
    return None


def _case_names(text: str) -> list[str]:
    from fastgrad._cases import NETWORK_CASES

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in NETWORK_CASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown case {unknown[0] if unknown else ''!r}; choose from {', '.join(NETWORK_CASES)}"
        )
    return names


def _run_bench(args: argparse.Namespace) -> int:
    import numba

    names = args.cases or (_QUICK_CASES if args.quick else _BENCH_CASES)
    budget = 0.3 if args.quick else 1.0
    _say(args, f"fastgrad bench: {numba.get_num_threads()} thread(s), numba {numba.__version__}, numpy {np.__version__}")
    _say(args, "  a full check of every component; naive = the course's loop, timed on a prefix and extrapolated")
    first_call = _warm_up()
    _say(args, f"  first call (loads or compiles the kernels): {first_call:.2f} s")
    busy = _machine_load()
    if busy is not None:
        _say(args, f"  warning: {busy}; timings (the naive loop's multi-threaded BLAS above all) will be slow and noisy")
    _say(args)
    rows = [_bench_row(name, budget) for name in names]
    if args.json:
        _print_json({
            "threads": numba.get_num_threads(), "first_call_seconds": first_call, "machine_busy": busy,
            "cases": rows,
        })
    else:
        _print_bench_table(rows)
    return EXIT_PASSED


def _warm_up() -> float:
    """Seconds of a first check of S: loads (or compiles, once) the kernels outside the timings."""
    from fastgrad._cases import NETWORK_CASES

    started = time.perf_counter()
    warm = NETWORK_CASES["S"].problem()
    warm.net.gradcheck(warm.params, warm.X, warm.Y, progress=False)
    return time.perf_counter() - started


def _bench_row(name: str, budget: float) -> dict:
    """Time fastgrad's full check of one reference network and the naive loop on it."""
    from fastgrad._cases import NETWORK_CASES

    case = NETWORK_CASES[name]
    problem = case.problem()
    net = problem.net
    fast = _best_time(lambda: net.gradcheck(problem.params, problem.X, problem.Y, progress=False), budget)
    naive, prefix = _naive_seconds(problem, case.naive_components)
    return {
        "case": name, "layers": "-".join(map(str, case.layer_sizes)), "examples": case.m,
        "parameters": net.n_params, "fastgrad_seconds": fast, "components_per_second": net.n_params / fast,
        "naive_seconds": naive, "naive_components_timed": prefix, "speedup": naive / fast,
    }


def _print_bench_table(rows: list[dict]) -> None:
    header = ["case", "network", "m", "parameters", "fastgrad s", "components/s", "naive s", "speed-up"]
    table = [
        [r["case"], r["layers"], str(r["examples"]), f"{r['parameters']:,}", f"{r['fastgrad_seconds']:.3g}",
         f"{r['components_per_second']:.3g}",
         f"{r['naive_seconds']:.3g}" + ("" if r["naive_components_timed"] == r["parameters"] else "*"),
         f"{r['speedup']:.0f}x"]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[c]) for row in table)) for c, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  " + "  ".join(v.ljust(w) if c < 2 else v.rjust(w) for c, (v, w) in enumerate(zip(cells, widths)))

    print(line(header))
    for row in table:
        print(line(row))
    extrapolated = [r for r in rows if r["naive_components_timed"] < r["parameters"]]
    if extrapolated:
        print("  * naive loop timed on " + ", ".join(
            f"{r['naive_components_timed']} components of {r['case']}" for r in extrapolated
        ) + ", extrapolated linearly")


# --------------------------------------------------------------------------- #
# Entry point
# --------------------------------------------------------------------------- #


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _interrupted(partial: object, args: argparse.Namespace) -> int:
    from fastgrad.report import Report

    if isinstance(partial, Report) and partial.checked > 0:
        _print_report(partial, args)  # its verdict line says it is partial
    else:
        print("fastgrad: interrupted (Ctrl-C) before any component was checked", file=sys.stderr)
    return EXIT_INTERRUPTED


def _attach_negative_numbers(argv: list[str]) -> list[str]:
    """``--eps -1e-7`` as ``--eps=-1e-7``.

    argparse reads a value that starts with ``-`` and is not a plain negative
    integer or decimal (``-1e-7``, ``-inf``) as an option, then says the
    option's argument is missing; attached, the value reaches the option's own
    check, which says what is wrong with it.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else None
        if (token.startswith("--") and "=" not in token and token != "--" and following is not None
                and following.startswith("-") and _looks_like_number(following)):
            out.append(f"{token}={following}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def _looks_like_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastgrad`` command; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``, the command line). Run as the
        command, the process ends right after: Python's last garbage
        collections are skipped (``gc.freeze``), see :func:`_end_of_command`.

    Returns
    -------
    int
        0 passed, 1 failed, 2 bad usage or input, 3 inconclusive, 130 interrupted.
    """
    status = _main(argv)
    if argv is None:
        _end_of_command()
    return status


def _end_of_command() -> None:
    """Skip the garbage collections of the interpreter's shutdown: the process ends now.

    Once Numba has loaded a kernel, the collections that Python runs while it
    shuts down walk Numba's typing registries and loaded libraries, and free
    them object by object: about 0.4 s of a 2-3 s ``fastgrad demo`` on the
    2-core machine, more than the checks themselves. Frozen objects are left
    to the operating system, which takes the whole process's memory back at
    once; reference counting, atexit handlers and the flushing of standard
    output and error still run as usual (the command's files are closed by
    ``with`` blocks, its Dask client and cluster in ``finally``).
    """
    import gc

    gc.freeze()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(_attach_negative_numbers(sys.argv[1:] if argv is None else list(argv)))
    except UsageError as exc:
        print(f"{exc.prog or 'fastgrad'}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    if args.command is None:
        print("fastgrad: error: choose a command: demo, check or bench (see 'fastgrad --help')", file=sys.stderr)
        return EXIT_USAGE

    from fastgrad.numerical import CheckInterrupted

    try:
        return args.run(args)
    except CheckInterrupted as exc:
        return _interrupted(exc.partial, args)
    except KeyboardInterrupt:
        print("fastgrad: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemError as exc:
        # Ctrl-C during a compiled call that returns arrays surfaces as a
        # SystemError: Numba runs a little Python while boxing the result, and
        # the pending KeyboardInterrupt is raised there.
        if not _caused_by_interrupt(exc):
            raise
        print("fastgrad: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"fastgrad {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError as exc:
        # The check cannot run here: that is not a failed check (exit 1).
        from fastgrad._memory import NotEnoughMemoryError

        text = _one_line(exc) if isinstance(exc, NotEnoughMemoryError) else f"not enough memory: {_one_line(exc)}"
        print(f"fastgrad {args.command}: error: {text}; try a smaller --layers or --batch", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, KeyError, ArithmeticError, FileNotFoundError) as exc:
        # The library's checks say what is wrong and what to do; show that line
        # only (FASTGRAD_DEBUG=1 shows the traceback, for fastgrad's developers).
        if os.environ.get("FASTGRAD_DEBUG"):
            raise
        print(f"fastgrad {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # Output piped into a command that stopped reading (e.g. head): keep the
        # verdict's status, and silence the flush at exit that would fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return getattr(args, "status", EXIT_FAILED)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
