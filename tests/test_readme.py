"""The README's code examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_cost_function_example_runs_and_passes():
    block = python_blocks()[0]
    namespace = {"__name__": "__main__"}  # run as a user's script is (Numba's cache reloads by module name)
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["report"].passed
    assert namespace["report"].blocks[0].name == "w"


def test_readme_dense_network_example_runs_and_names_the_planted_bug():
    block = python_blocks()[1]
    namespace = {"__name__": "__main__"}  # run as a user's script is (Numba's cache reloads by module name)
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["report"].failing_blocks == ("b2",)
