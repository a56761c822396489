"""Errors users see and may catch (names kept compatible with the Flux engine)."""

from __future__ import annotations


class FluxError(Exception):
    """Base of every error raised by Flux itself."""


class ExecutionError(FluxError):
    """A task finally failed; wraps the cause (compat name)."""

    def __init__(self, inner_exception: BaseException | None = None, message: str | None = None):
        self.inner_exception = inner_exception
        if message is None:
            message = _describe(inner_exception) if inner_exception else "execution failed"
        super().__init__(message)


class RetryError(FluxError):
    """Every attempt of a task with retries failed; wraps the last error."""

    def __init__(self, inner_exception: BaseException, attempts: int):
        self.inner_exception = inner_exception
        self.attempts = attempts
        super().__init__(f"failed after {attempts} attempts: {_describe(inner_exception)}")


class ExecutionTimeoutError(FluxError):
    """An attempt ran past its deadline (compat name)."""

    def __init__(self, task_name: str, timeout: float):
        self.task_name = task_name
        self.timeout = timeout
        super().__init__(f"task {task_name!r} exceeded its timeout of {timeout:g}s")


class TaskError(FluxError):
    """An error recorded in history whose original class cannot be rebuilt here."""

    def __init__(self, type_name: str, message: str):
        self.type_name = type_name
        self.message = message
        super().__init__(f"{type_name}: {message}" if message else type_name)


class NonDeterminismError(FluxError):
    """Replaying the workflow issued different steps than its history recorded."""


class CodecError(FluxError, TypeError):
    """A value cannot cross a process boundary (not encodable by the Flux codec)."""


class SecretsNotFoundError(FluxError):
    """A task or workflow requested secrets that are not available."""

    def __init__(self, names: list[str], where: str):
        self.names = names
        joined = ", ".join(sorted(names))
        super().__init__(f"{where}: missing secret(s): {joined}")


class WorkflowInputError(FluxError, ValueError):
    """The run's input does not match the workflow's declared input type."""


class PauseMismatchError(FluxError, ValueError):
    """A resume named a pause point other than the one the run waits at."""


class WorkflowCancelled(FluxError):
    """The run was cancelled."""


class TaskExitError(FluxError):
    """User code tried to end the process (sys.exit, KeyboardInterrupt, ...).

    It fails the task (or the workflow) whose code did it, like any other error.
    """

    @classmethod
    def from_exit(cls, name: str, exc: BaseException, kind: str = "task") -> TaskExitError:
        if isinstance(exc, SystemExit):
            code = "" if exc.code is None else repr(exc.code)
            return cls(f"{kind} {name!r} called sys.exit({code})")
        return cls(f"{kind} {name!r} raised {type(exc).__name__}")


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
