"""``@workflow``: an async function orchestrating tasks, run durably."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from flux import _runtime
from flux.context import WorkflowExecutionContext
from flux.errors import WorkflowInputError
from flux.storage import OutputStorage

if TYPE_CHECKING:
    from pydantic import TypeAdapter

T = TypeVar("T")
WorkflowFunction = Callable[[WorkflowExecutionContext[Any]], Coroutine[Any, Any, Any]]


class Workflow(Generic[T]):
    def __init__(
        self,
        func: WorkflowFunction,
        name: str | None = None,
        secret_requests: Sequence[str] = (),
        output_storage: OutputStorage | None = None,
    ):
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"@workflow needs an 'async def' function, got {func!r}")
        self.func = func
        self.name = name or func.__name__
        self.secret_requests = tuple(secret_requests)
        self.output_storage = output_storage
        self.__doc__ = func.__doc__
        self.__wrapped__ = func
        self._input_adapter: TypeAdapter[Any] | bool | None = False  # built on first use

    @functools.cached_property
    def input_type(self) -> Any:
        """``T`` of the ``ctx: WorkflowExecutionContext[T]`` annotation, or None.

        Worked out once: type hints and a signature on every run cost more than
        the rest of a small run's decoding."""
        try:
            hints = typing.get_type_hints(self.func)
        except Exception:  # unresolvable annotations: no input validation
            return None
        params = list(inspect.signature(self.func).parameters)
        annotation = hints.get(params[0]) if params else None
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is WorkflowExecutionContext and args:
            return None if args[0] is Any else args[0]
        return None

    def validate_input(self, value: Any) -> Any:
        """Check ``value`` against the declared input type; return the validated value."""
        if self._input_adapter is False:
            declared = self.input_type
            # pydantic is imported here, not with the module: a task pod imports the
            # workflow's module but never validates a workflow input (issue 17).
            from pydantic import TypeAdapter

            self._input_adapter = TypeAdapter(declared) if declared is not None else None
        adapter = self._input_adapter
        if adapter is None or adapter is True:
            return value
        from pydantic import ValidationError

        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}"
                for err in exc.errors()
            )
            raise WorkflowInputError(
                f"input of workflow {self.name!r} is invalid: {problems}"
            ) from None

    async def __call__(self, ctx: WorkflowExecutionContext[T]) -> Any:
        return await self.func(ctx)

    def run(
        self, input: Any = None, *, execution_id: str | None = None
    ) -> WorkflowExecutionContext[T]:
        """Run to completion or the first pause on the embedded executor.

        With ``execution_id`` of a stored run: an interrupted run continues, a
        paused one resumes with no input, a finished one is returned as stored.
        An ``input`` that fails validation gives a failed context (the error as
        its output) and stores nothing. Raises ``flux.local.runs.RunBusyError``
        while another process executes the run, and ``ResumeError`` (touching
        nothing) for a run of another workflow.
        """
        return _runtime.embedded_executor().run_workflow(self, input, execution_id)

    def resume(self, execution_id: str, input: Any = None) -> WorkflowExecutionContext[T]:
        """Resume a paused run; ``input`` becomes the return value of ``pause``.

        Raises ``flux.local.runs.RunBusyError`` while another process executes
        the run, ``ResumeError`` when it is finished or a run of another workflow.
        """
        return _runtime.embedded_executor().resume_workflow(self, execution_id, input)

    def __repr__(self) -> str:
        return f"<workflow {self.name}>"


class _WorkflowDecorator:
    def __call__(self, func: WorkflowFunction) -> Workflow[Any]:
        return Workflow(func)

    def with_options(
        self,
        name: str | None = None,
        secret_requests: Sequence[str] = (),
        output_storage: OutputStorage | None = None,
    ) -> Callable[[WorkflowFunction], Workflow[Any]]:
        def decorate(func: WorkflowFunction) -> Workflow[Any]:
            return Workflow(func, name, secret_requests, output_storage)

        return decorate


workflow = _WorkflowDecorator()
