"""The seam between the API and whatever executes it.

Task calls, built-ins, sleeps and pauses look up the running workflow here. The
engine implements :class:`WorkflowRuntime`; outside a workflow, calls go to the
embedded default executor, which is loaded by name so that this layer never
imports an executor (see docs/architecture.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import datetime as dt
    import random

    from flux.context import WorkflowExecutionContext
    from flux.task import MapBatch, Task
    from flux.workflow import Workflow

BuiltinCompute = Callable[["random.Random", "dt.datetime"], Any]


class WorkflowRuntime(Protocol):
    def call_task(
        self,
        task: Task[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        batch: MapBatch | None = None,
    ) -> Awaitable[Any]: ...

    def builtin(self, name: str, compute: BuiltinCompute) -> Awaitable[Any]: ...

    def sleep(self, seconds: float) -> Awaitable[None]: ...

    def pause(self, name: str, output: Any) -> Awaitable[Any]: ...


class EmbeddedExecutor(Protocol):
    def run_workflow(
        self, workflow: Workflow[Any], input: Any, execution_id: str | None
    ) -> WorkflowExecutionContext[Any]: ...

    def resume_workflow(
        self, workflow: Workflow[Any], execution_id: str, input: Any
    ) -> WorkflowExecutionContext[Any]: ...

    async def run_task(
        self, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...


current_workflow: ContextVar[WorkflowRuntime | None] = ContextVar("flux_workflow", default=None)

EMBEDDED_EXECUTOR_MODULE = "flux.local.embedded"


def embedded_executor() -> EmbeddedExecutor:
    module = importlib.import_module(EMBEDDED_EXECUTOR_MODULE)
    executor: EmbeddedExecutor = module.executor()
    return executor
