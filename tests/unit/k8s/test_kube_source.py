"""`flux kube run` ships a file as inline source only when its pods can import what
it imports: checked from the parsed file, never by importing it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from example_cases import EXAMPLES
from flux.local.kube_source import (
    SourceError,
    check_source,
    image_modules,
    imported_modules,
    in_image,
    read_reference,
    workflow_functions,
    workflow_name,
)

HEADER = "from flux import WorkflowExecutionContext, task, workflow\n"
BODY = "\n@workflow\nasync def main(ctx: WorkflowExecutionContext[str]) -> str:\n    return 'x'\n"


def write(tmp_path: Path, text: str, name: str = "flow.py") -> str:
    path = tmp_path / name
    path.write_text(text)
    return f"{path}:main"


def test_every_example_ships_as_it_is() -> None:
    for file in sorted(EXAMPLES.glob("*.py")):
        tree = ast.parse(file.read_text())
        for function in workflow_functions(tree):
            shipped = read_reference(f"{file}:{function}")
            assert shipped.function == function and shipped.source == file.read_text()


def test_a_module_next_to_the_file_is_named_as_local(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("X = 1\n")
    (tmp_path / "shared").mkdir()
    ref = write(
        tmp_path, HEADER + "import helpers\nfrom shared.util import f\nimport json\n" + BODY
    )
    with pytest.raises(SourceError) as caught:
        read_reference(ref)
    message = str(caught.value)
    assert "imports local modules helpers, shared.util;" in message
    assert "json" not in message and "\n" not in message
    assert "move that code into the file" in message


def test_a_package_the_image_lacks_is_named(tmp_path: Path) -> None:
    ref = write(tmp_path, HEADER + "import numpy_not_here as np\nimport pydantic, yaml\n" + BODY)
    with pytest.raises(SourceError, match="imports numpy_not_here, not installed in the runtime"):
        read_reference(ref)


def test_relative_imports_are_local(tmp_path: Path) -> None:
    ref = write(tmp_path, HEADER + "from . import a\nfrom .b import c\n" + BODY)
    with pytest.raises(SourceError, match=r"imports local modules \.a, \.b;"):
        read_reference(ref)


def test_guarded_imports_never_fail_the_code() -> None:
    source = (
        "from typing import TYPE_CHECKING\nimport typing\n"
        "if TYPE_CHECKING:\n    import helpers\nelse:\n    import other_local\n"
        "if typing.TYPE_CHECKING:\n    import also_typing\n"
        "try:\n    import fast_json\nexcept ImportError:\n    import json as fast_json\n"
        "def f():\n    import inner_local\n"
    )
    assert imported_modules(ast.parse(source)) == [
        "typing",
        "typing",
        "other_local",
        "json",
        "inner_local",
    ]


def test_the_image_has_the_stdlib_flux_and_the_packages_it_installs() -> None:
    assert in_image("json") and in_image("os.path") and in_image("flux.tasks")
    assert {"pydantic", "kopf", "kubernetes_asyncio", "yaml", "starlette"} <= image_modules()
    # Installed here for the tests, never in the image.
    assert not in_image("pytest") and not in_image("hypothesis")


def test_a_workflow_the_file_does_not_define_is_named_with_what_it_has(tmp_path: Path) -> None:
    with pytest.raises(
        SourceError, match=r"defines no 'other' at its top level; workflows in it: main"
    ):
        read_reference(write(tmp_path, HEADER + BODY).replace(":main", ":other"))


def test_unreadable_files_and_syntax_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"file not found: nowhere\.py"):
        read_reference("nowhere.py:main")
    with pytest.raises(SourceError, match=r"flow\.py:2: syntax error"):
        read_reference(write(tmp_path, "x = 1\ndef (:\n"))
    with pytest.raises(SourceError, match="expected FILE:WORKFLOW"):
        read_reference("flow.py")
    with pytest.raises(SourceError, match="is not a Python identifier"):
        check_source("", "f.py", "a-b", tmp_path, in_image)


def test_workflow_names_are_dns_labels_of_file_and_function() -> None:
    assert workflow_name("hello", "hello") == "hello"
    assert workflow_name("map_tasks", "mapping_workflow") == "map-tasks-mapping-workflow"
    long = workflow_name("a" * 50, "b" * 50)
    assert len(long) <= 40 and long != workflow_name("a" * 50, "b" * 51)
