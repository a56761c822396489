"""Errors as history stores them, and back.

History keeps errors as plain dicts so that any process can read them; a
stored error turns back into an exception of its original class when that class
is a builtin exception, one of :mod:`flux.errors`, or an exception class of a
module this process has already loaded, and can be built from a message; else
into ``TaskError``. A stored error is data (a task's, or anyone's who can write
history), so the module it names is only looked up, never imported.
"""

from __future__ import annotations

import builtins
import sys
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
    if not isinstance(module_name, str) or not isinstance(type_name, str):
        return None
    module = builtins if module_name in ("builtins", "") else sys.modules.get(module_name)
    if module is None:
        return None
    # vars(), not getattr(): a module's __getattr__ is code, and the name is data.
    candidate: Any = vars(module).get(type_name)
    if isinstance(candidate, type) and issubclass(candidate, Exception):
        return candidate
    return None
