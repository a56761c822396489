"""A workflow file made ready to ship as a Workflow's inline source
(``flux kube run``): read, parsed with :mod:`ast` (never imported or run here),
and checked for what its pods will not have.

A pod mounts the file alone, with the runtime image around it: the standard
library, ``flux`` and the packages the image installs. A module next to the file
(``import helpers``) or one installed only on this machine fails there at
import, after a driver pod started; here it fails at once, naming the modules.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# The distribution the runtime image installs, with the extras it installs
# (runtime_image/requirements_from_wheel.py): its packages are in every pod.
IMAGE_DISTRIBUTION = "flux-k8s"
IMAGE_EXTRAS = frozenset({"k8s", "ui"})
# Workflow names go into labels (63 characters at most) and, with a suffix, into
# the names of runs, pods and ConfigMaps.
MAX_WORKFLOW_NAME = 40
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GUARDING_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


class SourceError(Exception):
    """The file cannot be shipped as it is; the message says why, in one line."""


@dataclass(frozen=True)
class InlineWorkflow:
    """What ``spec.source`` and ``spec.function`` of the Workflow will hold."""

    name: str  # the Workflow resource's name
    source: str
    function: str


def read_reference(
    reference: str, available: Callable[[str], bool] | None = None
) -> InlineWorkflow:
    """The file and workflow ``FILE:WORKFLOW`` names, checked for shipping."""
    file, sep, function = reference.rpartition(":")
    if not sep or not file or not function:
        raise SourceError(
            f"expected FILE:WORKFLOW (for example examples/hello.py:hello), got {reference!r}"
        )
    path = Path(file)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(f"file not found: {file}") from None
    except UnicodeDecodeError:
        raise SourceError(f"{file} is not valid UTF-8") from None
    except OSError as exc:
        raise SourceError(f"cannot read {file}: {exc.strerror or exc}") from None
    check_source(source, file, function, path.resolve().parent, available or in_image)
    return InlineWorkflow(workflow_name(path.stem, function), source, function)


def check_source(
    source: str, file: str, function: str, directory: Path, available: Callable[[str], bool]
) -> None:
    """Raise :class:`SourceError` unless ``source`` parses, defines ``function`` at
    the top level and imports only modules ``available`` in the pods."""
    if not _IDENTIFIER.match(function):
        raise SourceError(f"{function!r} is not a Python identifier")
    try:
        tree = ast.parse(source, filename=file)
    except SyntaxError as exc:
        raise SourceError(f"{file}:{exc.lineno}: syntax error: {exc.msg}") from None
    defined = top_level_names(tree)
    if function not in defined:
        workflows = sorted(workflow_functions(tree))
        hint = f"; workflows in it: {', '.join(workflows)}" if workflows else ""
        raise SourceError(f"{file} defines no {function!r} at its top level{hint}")
    missing = [m for m in dict.fromkeys(imported_modules(tree)) if not _ships(m, available)]
    if missing:
        raise SourceError(missing_message(file, missing, directory))


def missing_message(file: str, missing: Iterable[str], directory: Path) -> str:
    local: list[str] = []
    absent: list[str] = []
    for module in missing:
        top = module.lstrip(".").partition(".")[0]
        is_local = module.startswith(".") or (directory / f"{top}.py").exists()
        (local if is_local or (directory / top).is_dir() else absent).append(module)
    parts = []
    if local:
        parts.append(f"local module{'s' if len(local) > 1 else ''} {', '.join(local)}")
    if absent:
        parts.append(
            f"{', '.join(absent)}, not installed in the runtime image"
            if not local
            else f"and {', '.join(absent)} (not installed in the runtime image)"
        )
    return (
        f"{file} imports {' '.join(parts)}; its pods get the file alone, with the standard "
        "library, flux and the image's packages: move that code into the file, or use an "
        "image that has it (a Workflow with spec.image and spec.entrypoint)"
    )


def imported_modules(tree: ast.AST) -> list[str]:
    """Modules the code imports, in order; relative ones with their leading dots.
    Imports under ``if TYPE_CHECKING:`` or in a ``try`` that catches their
    ImportError never fail the code, so they are left out."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Try) and _catches_import_error(node):
            for part in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(part)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if module.strip("."):
                found.append(module)
            else:  # from . import a, b: each is a module next to the file
                found.extend("." * node.level + alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).partition(".")[0] for a in node.names)
    return names


def workflow_functions(tree: ast.Module) -> set[str]:
    """Top-level functions decorated with ``workflow`` (or ``workflow.with_options(...)``)."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
            "workflow" in ast.unparse(d).split("(")[0] for d in node.decorator_list
        ):
            found.add(node.name)
    return found


def workflow_name(stem: str, function: str) -> str:
    """The Workflow resource's name: file and function, as a DNS label."""
    words = stem if stem == function else f"{stem}-{function}"
    name = re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-") or "workflow"
    if len(name) <= MAX_WORKFLOW_NAME:
        return name
    digest = hashlib.sha256(words.encode()).hexdigest()[:6]
    return f"{name[: MAX_WORKFLOW_NAME - 7].rstrip('-')}-{digest}"


def in_image(module: str) -> bool:
    """Whether a pod of the runtime image can import ``module`` (by its top-level name)."""
    top = module.partition(".")[0]
    return top in sys.stdlib_module_names or top == "flux" or top in image_modules()


@cache
def image_modules() -> frozenset[str]:
    """Top-level modules of the distributions the runtime image installs: this
    package with its k8s and ui extras, and what they require, as installed here."""
    by_distribution: dict[str, set[str]] = {}
    for module, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            by_distribution.setdefault(_normal(distribution), set()).add(module)
    modules: set[str] = set()
    seen: set[str] = set()
    pending = [(IMAGE_DISTRIBUTION, IMAGE_EXTRAS)]
    while pending:
        name, extras = pending.pop()
        if _normal(name) in seen:
            continue
        seen.add(_normal(name))
        modules |= by_distribution.get(_normal(name), set())
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        pending.extend((required, frozenset()) for required in _required(requirements, extras))
    return frozenset(modules)


def _required(requirements: list[str], extras: frozenset[str]) -> list[str]:
    """Names of the requirements that hold without extras, or with one of ``extras``."""
    names = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if extra is None or extra.group(1) in extras:
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
            if match:
                names.append(match.group(1))
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _ships(module: str, available: Callable[[str], bool]) -> bool:
    return not module.startswith(".") and available(module)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        if handler.type is None:
            return True
        caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(c, ast.Name) and c.id in _GUARDING_ERRORS for c in caught):
            return True
    return False
