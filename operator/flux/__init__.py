"""Flux: durable Python workflows, embedded or on Kubernetes."""

from flux.context import ExecutionContext, WorkflowExecutionContext
from flux.errors import (
    ExecutionError,
    ExecutionTimeoutError,
    NonDeterminismError,
    RetryError,
)
from flux.events import EventType, ExecutionEvent, ExecutionState
from flux.storage import InlineOutputStorage, OutputStorage, StorageReference
from flux.task import Task, task
from flux.workflow import Workflow, workflow

__all__ = [
    "EventType",
    "ExecutionContext",
    "ExecutionError",
    "ExecutionEvent",
    "ExecutionState",
    "ExecutionTimeoutError",
    "InlineOutputStorage",
    "NonDeterminismError",
    "OutputStorage",
    "RetryError",
    "StorageReference",
    "Task",
    "Workflow",
    "WorkflowExecutionContext",
    "task",
    "workflow",
]
