"""A missing test prerequisite: a failure in CI (where `make` installs it), a skip elsewhere."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def promtool() -> str:
    """promtool (Debian's prometheus package, installed by `make promtool`)."""
    found = shutil.which("promtool")
    if found is None:
        missing("promtool is missing: install Debian's 'prometheus' package (make promtool)")
    return found
