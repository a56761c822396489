"""Importing user code inside a pod: from the image, or from a mounted inline source."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from flux.k8s.protocol import SOURCE_DIR_ENV


def prepare_imports() -> None:
    """Make an inline Workflow source (mounted into the pod) importable."""
    source_dir = os.environ.get(SOURCE_DIR_ENV)
    if source_dir and source_dir not in sys.path:
        sys.path.insert(0, source_dir)


def import_object(reference: str) -> Any:
    """``module:qualname`` → the object; the error says what could not be found."""
    module_name, sep, qualname = reference.partition(":")
    if not sep or not module_name or not qualname:
        raise ImportError(f"{reference!r} is not of the form module:name")
    prepare_imports()
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"{module_name} has no attribute {qualname!r}") from None
    return obj
