"""``@task``: a unit of work that runs durably inside a workflow."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

from flux import _runtime
from flux.pod_settings import PodSettings
from flux.storage import OutputStorage

P = ParamSpec("P")
R = TypeVar("R")

SECRETS_ARGUMENT = "secrets"


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    name: str | None = None
    retry_max_attempts: int = 0
    retry_delay: float = 1
    retry_backoff: float = 2
    # Fraction by which each retry delay is spread at random (0 = exact delays).
    retry_jitter: float = 0.0
    timeout: float = 0
    fallback: Callable[..., Any] | None = None
    rollback: Callable[..., Any] | None = None
    secret_requests: tuple[str, ...] = ()
    output_storage: OutputStorage | None = None
    # Pod settings on Kubernetes (flux.pod_settings); the embedded executor ignores
    # them. None keeps the Workflow's taskDefaults for that setting.
    resources: Mapping[str, Mapping[str, str | int]] | None = None
    node_selector: Mapping[str, str] | None = None
    tolerations: Sequence[Mapping[str, Any]] | None = None
    image: str | None = None
    # The four above, checked; what each call records.
    pod_settings: PodSettings | None = dataclasses.field(
        init=False, default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        numbers = ("retry_delay", "retry_backoff", "retry_jitter", "timeout")
        # NaN passes every comparison below and infinity is no JSON number: the
        # policy is recorded with each call, so both must be refused here.
        not_finite = [n for n in numbers if not _is_finite_number(getattr(self, n))]
        if not_finite:
            raise ValueError(
                "invalid task options: "
                + "; ".join(f"{n} must be a finite number" for n in not_finite)
            )
        problems = []
        if self.retry_max_attempts < 0:
            problems.append("retry_max_attempts must be >= 0")
        if self.retry_delay < 0:
            problems.append("retry_delay must be >= 0")
        if self.retry_backoff <= 0:
            problems.append("retry_backoff must be > 0")
        if not 0 <= self.retry_jitter < 1:
            problems.append("retry_jitter must be in [0, 1)")
        if self.timeout < 0:
            problems.append("timeout must be >= 0 (0 means no timeout)")
        if problems:
            raise ValueError("invalid task options: " + "; ".join(problems))
        settings = PodSettings.from_options(
            self.resources, self.node_selector, self.tolerations, self.image
        )
        object.__setattr__(self, "pod_settings", settings)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Task(Generic[P, R]):
    """A decorated function. Calling it returns an awaitable :class:`TaskCall`."""

    def __init__(self, func: Callable[P, Any], options: TaskOptions | None = None):
        self.func = func
        self.options = options or TaskOptions()
        self.is_async = inspect.iscoroutinefunction(func)
        functools.update_wrapper(self, func)

    @property
    def name(self) -> str:
        return self.options.name or self.func.__name__

    def call_name(self, args: Sequence[Any], kwargs: dict[str, Any]) -> str:
        """The name of one call: ``name`` may be a str.format template over the arguments."""
        template = self.name
        if "{" not in template:
            return template
        try:
            return template.format(*args, **kwargs)
        except (IndexError, KeyError, ValueError, AttributeError):
            pass
        # "fetch_{url}" also names a call that passes ``url`` positionally.
        try:
            named = inspect.signature(self.func).bind_partial(*args, **kwargs).arguments
            return template.format(*args, **{**named, **kwargs})
        except (TypeError, IndexError, KeyError, ValueError, AttributeError):
            return template

    def with_options(self, **changes: Any) -> Task[P, R]:
        if "secret_requests" in changes:
            changes["secret_requests"] = tuple(changes["secret_requests"] or ())
        return Task(self.func, dataclasses.replace(self.options, **changes))

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskCall[R]:
        return TaskCall(self, args, kwargs)

    def map(self, items: Iterable[Any], batch_size: int | None = None) -> Awaitable[list[R]]:
        """One call per item, run concurrently; results in item order.

        ``batch_size`` only changes how the items are packed for execution: on
        Kubernetes up to that many items of this map share one task pod. Each item
        stays its own call, with its own result, retries and failure.
        """
        from flux.tasks.compose import parallel

        batch = MapBatch(_check_batch_size(batch_size)) if batch_size is not None else None
        calls = []
        for item in items:
            call = self(item)  # type: ignore[call-arg]
            call.batch = batch
            calls.append(call)
        return parallel(*calls)

    def __repr__(self) -> str:
        return f"<task {self.name}>"


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(
            f"batch_size must be a positive int or None, not {type(batch_size).__name__} "
            f"{batch_size!r}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int or None, not {batch_size!r}")
    return batch_size


@dataclasses.dataclass(eq=False)
class MapBatch:
    """The items of one ``map(..., batch_size=N)`` call, which may share task pods.

    ``group`` is filled in by the workflow runtime when the first item is called
    (the call id of that item), so it is deterministic under replay.
    """

    size: int
    group: str | None = None


class TaskCall(Generic[R]):
    """One pending call of a task; awaiting it runs the task (durably in a workflow)."""

    __slots__ = ("args", "batch", "kwargs", "task")

    def __init__(self, task: Task[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.batch: MapBatch | None = None

    def __await__(self) -> Generator[Any, None, R]:
        runtime = _runtime.current_workflow.get()
        if runtime is not None:
            awaitable = runtime.call_task(self.task, self.args, self.kwargs, batch=self.batch)
            result = yield from _await(awaitable)
        else:
            executor = _runtime.embedded_executor()
            result = yield from _await(executor.run_task(self.task, self.args, self.kwargs))
        return result  # type: ignore[no-any-return]


def _await(awaitable: Awaitable[Any]) -> Generator[Any, None, Any]:
    return (yield from awaitable.__await__())


class _TaskDecorator:
    """``@task`` and ``@task.with_options(...)``."""

    @overload
    def __call__(self, func: Callable[P, Awaitable[R]]) -> Task[P, R]: ...

    @overload
    def __call__(self, func: Callable[P, R]) -> Task[P, R]: ...

    def __call__(self, func: Callable[P, Any]) -> Task[P, Any]:
        return Task(func)

    def with_options(
        self,
        name: str | None = None,
        retry_max_attempts: int = 0,
        retry_delay: float = 1,
        retry_backoff: float = 2,
        timeout: float = 0,
        fallback: Callable[..., Any] | None = None,
        rollback: Callable[..., Any] | None = None,
        secret_requests: Sequence[str] = (),
        output_storage: OutputStorage | None = None,
        retry_jitter: float = 0.0,
        resources: Mapping[str, Mapping[str, str | int]] | None = None,
        node_selector: Mapping[str, str] | None = None,
        tolerations: Sequence[Mapping[str, Any]] | None = None,
        image: str | None = None,
    ) -> Callable[[Callable[P, Any]], Task[P, Any]]:
        options = TaskOptions(
            name=name,
            retry_max_attempts=retry_max_attempts,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
            retry_jitter=retry_jitter,
            timeout=timeout,
            fallback=fallback,
            rollback=rollback,
            secret_requests=tuple(secret_requests or ()),
            output_storage=output_storage,
            resources=resources,
            node_selector=node_selector,
            tolerations=tolerations,
            image=image,
        )

        def decorate(func: Callable[P, Any]) -> Task[P, Any]:
            if isinstance(func, Task):
                return Task(func.func, options)
            return Task(func, options)

        return decorate


task = _TaskDecorator()
