"""Every example workflow with its input and exact expected output.

One table for both executors: tests/local runs each case on the embedded
engine, tests/e2e as a WorkflowRun on the cluster, and both expect the same
output.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
API_KEY = "example-api-key-0123"


@dataclass(frozen=True)
class Case:
    ref: str  # FILE:WORKFLOW under examples/
    input: Any = None
    output: Any = None  # the exact output, unless ``check`` is given
    check: Callable[[Any], bool] | None = None
    resume: tuple[str, Any] | None = None  # (pause name, resume input) when the run pauses
    env: dict[str, str] = field(default_factory=dict)


def at_least_five_seconds(value: Any) -> bool:
    return isinstance(value, dt.timedelta) and value >= dt.timedelta(seconds=5)


CASES = [
    Case("hello.py:hello", "World", "Hello, World"),
    Case("basic_task.py:basic_workflow", "hello", "HELLO"),
    Case(
        "configured_task.py:configured_workflow",
        "report",
        {"data": "REPORT", "authenticated": True},
        env={"FLUX_SECRET_API_KEY": API_KEY},
    ),
    Case("retry_config.py:retry_config_workflow", None, None),
    Case("timeout_config.py:timeout_config_workflow", None, None),
    Case(
        "fallback_config.py:fallback_workflow",
        "order-1",
        {"task_with_fallback": None, "unreachable_service": "fallback result"},
    ),
    Case(
        "rollback_config.py:rollback_workflow",
        "order-1",
        {
            "task_with_rollback": None,
            "failing_task": "rolled back: RuntimeError: could not process 'order-1'",
        },
    ),
    Case(
        "parallel_tasks.py:parallel_workflow",
        None,
        ["task1 done", "task2 done", "task3 done"],
    ),
    Case("pipeline_tasks.py:pipeline_workflow", 3, "result: 8"),
    Case("map_tasks.py:mapping_workflow", None, ["A", "B", "C"]),
    Case("retry_mechanism.py:retry_workflow", None, "success"),
    Case(
        "fallback_strategy.py:fallback_strategy_workflow",
        None,
        {"task_with_fallback": None, "always_failing": "fallback result"},
    ),
    Case(
        "rollback_operations.py:rollback_operations_workflow",
        None,
        {
            "task_with_rollback": None,
            "reserve_resources": "rolled back after: OSError: no capacity left",
        },
    ),
    Case(
        "timeout_handling.py:timeout_workflow",
        None,
        {"timed_task": None, "slow_task": "fallback result"},
    ),
    Case("builtins_time.py:timing_workflow", None, check=at_least_five_seconds),
    Case("builtins_random.py:random_workflow", None, None),
    Case("builtins_uuid.py:id_workflow", None, None),
    Case(
        "pause_approval.py:approval_workflow",
        None,
        "Approved: quarterly report",
        resume=("wait_for_approval", "ok"),
    ),
    Case(
        "pause_approval.py:review_workflow",
        None,
        {"result": "quarterly report", "decision": {"approved": True, "by": "alice"}},
        resume=("wait_for_review", {"approved": True, "by": "alice"}),
    ),
    Case("graph_simple.py:graph_workflow", "World", "Hello, World"),
    Case("graph_conditional.py:conditional_workflow", 15, "5 is positive"),
    Case("graph_conditional.py:conditional_workflow", 3, "-7 is not positive"),
    Case("graph_error_handling.py:error_handling_workflow", "21", None),
    Case(
        "graph_error_handling.py:error_handling_workflow",
        "abc",
        "recovered from: invalid literal for int() with base 10: 'abc'",
    ),
]
