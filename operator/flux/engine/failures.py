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
    """Why an attempt failed, which decides what pays for trying again.

    ``CODE`` and ``TIMEOUT`` use the task's own retries, then its fallback or
    rollback. ``INFRASTRUCTURE`` (the pod was deleted, evicted or lost with its
    node) uses the operator's infrastructure-retry budget instead, so a task's
    retries are not spent on faults that are not its own. ``UNSTARTABLE``: a
    pod that could not start within the pending timeout uses the task's retries
    (a pull may succeed later); a call whose secrets or pod settings cannot be
    granted fails at once, without a pod and without retries.
    """

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


# Causes followed when rebuilding or describing a stored error (history is data).
MAX_CAUSES = 20


def error_info(exc: BaseException, kind: FailureKind = FailureKind.CODE) -> ErrorInfo:
    info: ErrorInfo = {
        "type": storable_text(type(exc).__name__),
        "module": storable_text(type(exc).__module__),
        "message": _message(exc),
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


def storable_text(text: str) -> str:
    """``text`` with lone surrogates (a non-UTF-8 file name in an OSError) escaped:
    the store takes only valid Unicode, and an error must always be recordable."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _message(exc: BaseException) -> str:
    try:
        return storable_text(str(exc))
    except Exception:  # an exception whose __str__ fails must still be recorded
        return f"({type(exc).__name__} with a message that cannot be shown)"


def to_exception(info: ErrorInfo, _depth: int = 0) -> BaseException:
    """Rebuild an exception from stored info (original class where possible)."""
    if not isinstance(info, dict):
        return TaskError("Error", "history holds an error it does not describe")
    raw_type = info.get("type")
    type_name = raw_type if isinstance(raw_type, str) and raw_type else "Exception"
    raw_message = info.get("message")
    message = raw_message if isinstance(raw_message, str) else ""
    cause = info.get("cause") if _depth < MAX_CAUSES else None
    if cause is not None and type_name == "ExecutionError":
        return ExecutionError(to_exception(cause, _depth + 1), message)
    if cause is not None and type_name == "RetryError":
        attempts = info.get("attempts")
        count = attempts if type(attempts) is int else 0
        return RetryError(to_exception(cause, _depth + 1), count)
    if type_name == "ExecutionTimeoutError":
        exc = ExecutionTimeoutError.__new__(ExecutionTimeoutError)
        Exception.__init__(exc, message)
        return exc
    module = info.get("module")
    cls = _find_class(module if isinstance(module, str) else "", type_name)
    if cls is not None:
        try:
            return cls(message)
        except Exception:  # constructors with other signatures
            pass
    return TaskError(type_name, message)


def describe(info: ErrorInfo) -> str:
    """One line for people: the innermost cause's type and message."""
    if not isinstance(info, dict):
        return "Error"
    for _ in range(MAX_CAUSES):
        cause = info.get("cause")
        if not isinstance(cause, dict):
            break
        info = cause
    message = info.get("message")
    type_name = info.get("type")
    name = type_name if isinstance(type_name, str) and type_name else "Error"
    return f"{name}: {message}" if message else name


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
