"""What the console's timeline must show for a call, worked out from its history:
shared by the browser tests of both executors, so both show the same."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# What the timeline must mark on the calls of the examples that show a policy
# (the marks of every call are also checked against each run's history).
MARKS = {
    "fallback_config.py:fallback_workflow": {"unreachable_service#0": "fallback"},
    "fallback_strategy.py:fallback_strategy_workflow": {
        "always_failing#0": "attempt-failed fallback retry-wait"
    },
    "rollback_config.py:rollback_workflow": {"failing_task#0": "rollback"},
    "rollback_operations.py:rollback_operations_workflow": {"reserve_resources#0": "rollback"},
    "timeout_handling.py:timeout_workflow": {"slow_task#0": "fallback timeout"},
}

# The outcome a call's row shows for each event type that settles it (EventType
# is a StrEnum: its members look these up as well as the plain names do).
OUTCOMES = {
    "TASK_COMPLETED": "COMPLETED",
    "TASK_FAILED": "FAILED",
    "TASK_CANCELLED": "CANCELLED",
    "TASK_PAUSED": "PAUSED",
    "TASK_RESUMED": "RESUMED",
}
# The step of history each timeline mark stands for.
MARK_OF = {
    "TASK_RETRY_STARTED": "retry-wait",
    "TASK_RETRY_FAILED": "attempt-failed",
    "TASK_FALLBACK_STARTED": "fallback",
    "TASK_ROLLBACK_STARTED": "rollback",
}


def outcome(types: Iterable[str]) -> str:
    """The outcome of a call whose events have these types, in order."""
    return [OUTCOMES[t] for t in types if t in OUTCOMES][-1]


def expected_marks(steps: Iterable[tuple[str, Any]]) -> str:
    """The marks of a call's bar for its events as (type, encoded value) pairs."""
    marks: set[str] = set()
    for event_type, value in steps:
        if event_type in MARK_OF:
            marks.add(MARK_OF[event_type])
        text = json.dumps(value)
        if "ExecutionTimeoutError" in text or '"kind": "timeout"' in text:
            marks.add("timeout")
    return " ".join(sorted(marks))
