"""Finding a workflow from a ``FILE:WORKFLOW`` (or ``module:workflow``) reference."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from flux.workflow import Workflow


class LoadError(Exception):
    """The reference does not name a loadable workflow; the message says why."""


def load_workflow(reference: str) -> Workflow[Any]:
    target, sep, name = reference.rpartition(":")
    if not sep or not target or not name:
        raise LoadError(
            f"expected FILE:WORKFLOW (for example examples/hello.py:hello), got {reference!r}"
        )
    module = load_module(target)
    found = getattr(module, name, None)
    if found is None:
        available = sorted(k for k, v in vars(module).items() if isinstance(v, Workflow))
        hint = f"; workflows in it: {', '.join(available)}" if available else "; it defines none"
        raise LoadError(f"{target} has no workflow named {name!r}{hint}")
    if not isinstance(found, Workflow):
        raise LoadError(f"{target}:{name} is not a @workflow (it is {type(found).__name__})")
    return found


def load_module(target: str) -> Any:
    if target.endswith(".py") or "/" in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise LoadError(f"file not found: {target}")
        module_name = path.stem
        existing = sys.modules.get(module_name)
        if existing is not None and getattr(existing, "__file__", None) == str(path):
            return existing
        directory = str(path.parent)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise LoadError(f"cannot load {target} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            sys.modules.pop(module_name, None)
            raise LoadError(f"{target}:{exc.lineno}: syntax error: {exc.msg}") from None
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise LoadError(f"importing {target} failed: {type(exc).__name__}: {exc}") from None
        return module
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise LoadError(f"cannot import module {target!r}: {exc}") from None


def source_of(workflow: Workflow[Any]) -> dict[str, Any]:
    """Where a workflow can be loaded from again (to resume its runs)."""
    func = workflow.func
    module = sys.modules.get(func.__module__)
    file = getattr(module, "__file__", None)
    attr = (
        next((k for k, v in vars(module).items() if v is workflow), func.__name__)
        if module
        else func.__name__
    )
    return {"module": func.__module__, "file": file, "attr": attr}


def load_from_source(source: dict[str, Any]) -> Workflow[Any]:
    file = source.get("file")
    if file and Path(file).is_file():
        return load_workflow(f"{file}:{source['attr']}")
    return load_workflow(f"{source['module']}:{source['attr']}")
