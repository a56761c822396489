"""Errors as history stores them, and back.

History keeps errors as plain dicts so that any process can read them; a
stored error turns back into an exception of the original class when that
class can be imported and built from a message, else into ``TaskError``.
"""

from __future__ import annotations

import builtins
import importlib
from enum import StrEnum
from typing import Any, TypedDict

from flux.errors import ExecutionError, ExecutionTimeoutError, RetryError, TaskError


class FailureKind(StrEnum):
    """Why an attempt failed: only ``CODE`` and ``TIMEOUT`` use the task's retries."""

    CODE = "code"
    TIMEOUT = "timeout"
    INFRASTRUCTURE = "infrastructure"
    UNSTARTABLE = "unstartable"


class ErrorInfo(TypedDict, total=False):
    type: str
    module: str
    message: str
    kind: str
    attempts: int
    cause: ErrorInfo
    reason: str
    exit_code: int


def error_info(exc: BaseException, kind: FailureKind = FailureKind.CODE) -> ErrorInfo:
    info: ErrorInfo = {
        "type": type(exc).__name__,
        "module": type(exc).__module__,
        "message": str(exc),
        "kind": kind.value,
    }
    inner = getattr(exc, "inner_exception", None)
    if isinstance(exc, ExecutionError | RetryError) and isinstance(inner, BaseException):
        info["cause"] = error_info(inner, kind)
    if isinstance(exc, RetryError):
        info["attempts"] = exc.attempts
    if isinstance(exc, ExecutionTimeoutError):
        info["kind"] = FailureKind.TIMEOUT.value
    return info


def timeout_info(task_name: str, timeout: float) -> ErrorInfo:
    return error_info(ExecutionTimeoutError(task_name, timeout), FailureKind.TIMEOUT)


def wrap_retry(last: ErrorInfo, attempts: int) -> ErrorInfo:
    exc = RetryError(to_exception(last), attempts)
    info = error_info(exc, FailureKind(last.get("kind", "code")))
    info["cause"] = last
    return info


def wrap_execution(cause: ErrorInfo) -> ErrorInfo:
    info = error_info(ExecutionError(to_exception(cause)), FailureKind(cause.get("kind", "code")))
    info["cause"] = cause
    return info


def to_exception(info: ErrorInfo) -> BaseException:
    """Rebuild an exception from stored info (original class where possible)."""
    type_name = info.get("type", "Exception")
    message = info.get("message", "")
    cause = info.get("cause")
    if cause is not None and type_name == "ExecutionError":
        return ExecutionError(to_exception(cause), message)
    if cause is not None and type_name == "RetryError":
        error = RetryError(to_exception(cause), int(info.get("attempts", 0)))
        return error
    if type_name == "ExecutionTimeoutError":
        exc = ExecutionTimeoutError.__new__(ExecutionTimeoutError)
        Exception.__init__(exc, message)
        return exc
    cls = _find_class(info.get("module", ""), type_name)
    if cls is not None:
        try:
            return cls(message)
        except Exception:  # constructors with other signatures
            pass
    return TaskError(type_name, message)


def describe(info: ErrorInfo) -> str:
    """One line for people: the innermost cause's type and message."""
    while info.get("cause") is not None:
        info = info["cause"]
    message = info.get("message", "")
    return f"{info.get('type', 'Error')}: {message}" if message else info.get("type", "Error")


def _find_class(module_name: str, type_name: str) -> type[BaseException] | None:
    candidate: Any
    if module_name in ("builtins", ""):
        candidate = getattr(builtins, type_name, None)
    else:
        try:
            candidate = getattr(importlib.import_module(module_name), type_name, None)
        except ImportError:
            return None
    if isinstance(candidate, type) and issubclass(candidate, Exception):
        return candidate
    return None
