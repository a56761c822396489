"""Which classes each value of a run may be decoded as, and reading stored values back.

Both executors decode the values of a run through these helpers, so a tagged
value becomes a dataclass, pydantic model or enum only where the run's code
declares that class (see :mod:`flux.codec`):

* the workflow's input: the ``WorkflowExecutionContext[T]`` annotation;
* a task's arguments: the annotation of the parameter each binds to;
* a task's result: its return annotation;
* the workflow's output: the workflow function's return annotation;
* a resume input: nothing declares its type (``pause`` returns ``Any``).

Each also allows the top-level classes of the module that holds the receiving
function (the workflow's or the task's): that module is already loaded, it is
the run's own code, and so ``return Point(1, 2)`` from a task without a return
annotation comes back as the ``Point`` the same file defines. Values given as
text by users (CLI input, ``spec.input``, resume input) are first decoded
plainly and then validated against the declared type, where there is one.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from flux import codec
from flux import storage as output_storage
from flux.errors import CodecError
from flux.storage import StorageReference
from flux.task import Task
from flux.workflow import Workflow

_REFERENCE = codec.expect(StorageReference)
_REFERENCE_PATH = f"{StorageReference.__module__}:{StorageReference.__qualname__}"


def workflow_input(workflow: Workflow[Any]) -> codec.Expected:
    return _workflow_expected(workflow, "input")


def workflow_output(workflow: Workflow[Any]) -> codec.Expected:
    return _workflow_expected(workflow, "output")


def resume_input(workflow: Workflow[Any]) -> codec.Expected:
    """What ``pause`` returns: only the workflow's own classes."""
    return _workflow_expected(workflow, "resume")


def task_result(task: Task[..., Any] | None) -> codec.Expected:
    if task is None:  # built-ins and timers: values of the codec's own types
        return codec.PLAIN
    return _function_expected(task.func, "return")


def decode_arguments(
    task: Task[..., Any], positional: Any, keywords: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A call's encoded arguments, each decoded as the parameter it binds to declares."""
    if not isinstance(positional, list) or not isinstance(keywords, dict):
        raise CodecError("malformed task arguments: expected a list and an object")
    parameters = _parameters(task.func)
    args = tuple(
        codec.decode(value, parameters.for_position(i)) for i, value in enumerate(positional)
    )
    kwargs: dict[str, Any] = {}
    for name, value in keywords.items():
        if not isinstance(name, str):
            raise CodecError("malformed task arguments: keyword names must be str")
        kwargs[name] = codec.decode(value, parameters.for_name(name))
    return args, kwargs


@dataclasses.dataclass(frozen=True)
class _Parameters:
    """What each parameter of a task function declares (an argument binds to one)."""

    positional: tuple[codec.Expected, ...]
    named: dict[str, codec.Expected]
    var_positional: codec.Expected
    var_keyword: codec.Expected

    def for_position(self, index: int) -> codec.Expected:
        return self.positional[index] if index < len(self.positional) else self.var_positional

    def for_name(self, name: str) -> codec.Expected:
        return self.named.get(name, self.var_keyword)


@functools.lru_cache(maxsize=4096)
def _parameters(func: Callable[..., Any]) -> _Parameters:
    hints = _hints(func)
    home = [func.__module__]
    own = codec.expect(modules=home)  # for arguments no parameter declares
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return _Parameters((), {}, own, own)
    positional: list[codec.Expected] = []
    named: dict[str, codec.Expected] = {}
    var_positional = var_keyword = own
    for parameter in signature.parameters.values():
        expected = codec.expect(hints.get(parameter.name), modules=home)
        match parameter.kind:
            case inspect.Parameter.VAR_POSITIONAL:
                var_positional = expected
            case inspect.Parameter.VAR_KEYWORD:
                var_keyword = expected
            case inspect.Parameter.POSITIONAL_ONLY:
                positional.append(expected)
            case inspect.Parameter.POSITIONAL_OR_KEYWORD:
                positional.append(expected)
                named[parameter.name] = expected
            case inspect.Parameter.KEYWORD_ONLY:
                named[parameter.name] = expected
    return _Parameters(tuple(positional), named, var_positional, var_keyword)


def store_value(storage: output_storage.OutputStorage | None, key: str, value: Any) -> Any:
    """Encode ``value`` for history: inline, or as a reference to a storage backend."""
    if output_storage.is_inline(storage):
        return codec.encode(value)
    assert storage is not None
    codec.check(value)
    return codec.encode(storage.store(key, value))


def read_value(value: Any, expected: codec.Expected = codec.PLAIN) -> Any:
    """A value as history keeps it: inline, or a reference the engine stored."""
    reference = _stored_reference(value)
    if reference is None:
        return codec.decode(value, expected)
    try:
        return output_storage.retrieve(reference, expected)
    except (output_storage.UnknownBackendError, TypeError) as exc:
        # TypeError: a config the backend's from_config does not take.
        raise CodecError(f"cannot read stored output {reference.key!r}: {exc}") from None


def _stored_reference(value: Any) -> StorageReference | None:
    """The reference :func:`store_value` records in place of a value."""
    if not (
        isinstance(value, dict)
        and value.get(codec.TAG) == "dataclass"
        and value.get("type") == _REFERENCE_PATH
    ):
        return None
    reference = codec.decode(value, _REFERENCE)
    if not (
        isinstance(reference, StorageReference)
        and isinstance(reference.backend, str)
        and isinstance(reference.key, str)
        and isinstance(reference.config, dict)
    ):
        raise CodecError("malformed stored output reference")
    return reference


def _workflow_expected(workflow: Workflow[Any], which: str) -> codec.Expected:
    # Cached on the function: a map of 100k calls decodes 100k values.
    return _expected_for(workflow.func, which, workflow)


def _function_expected(func: Callable[..., Any], which: str) -> codec.Expected:
    return _expected_for(func, which, None)


@functools.lru_cache(maxsize=4096)
def _cached(func: Callable[..., Any], which: str, input_type: Any) -> codec.Expected:
    hints: list[Any] = []
    if which == "input":
        hints.append(input_type)
    elif which in ("output", "return"):
        hints.append(_hints(func).get("return"))
    return codec.expect(*hints, modules=[func.__module__])


def _expected_for(
    func: Callable[..., Any], which: str, workflow: Workflow[Any] | None
) -> codec.Expected:
    input_type = workflow.input_type if workflow is not None and which == "input" else None
    try:
        return _cached(func, which, input_type)
    except TypeError:  # an unhashable annotation: computed each time
        return _cached.__wrapped__(func, which, input_type)


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(inspect.unwrap(func), include_extras=True)
    except Exception:  # annotations that do not resolve declare nothing usable
        return {}
