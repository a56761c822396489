"""Every example runs on the embedded executor and gives exactly its documented output.

Examples are loaded the way ``flux run examples/<file>.py:<workflow>`` loads
them. The table below lists every workflow in examples/; a workflow added
there without a row here fails ``test_every_example_is_in_the_table``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flux import EventType, StorageReference, Workflow, WorkflowExecutionContext
from flux.codec import decode
from flux.local.loader import load_module, load_workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
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


@pytest.fixture(autouse=True)
def flux_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "flux-home"
    monkeypatch.setenv("FLUX_HOME", str(home))
    monkeypatch.delenv("FLUX_SECRET_API_KEY", raising=False)
    return home


def load(ref: str) -> Workflow[Any]:
    return load_workflow(f"{EXAMPLES / ref}")


def run_case(case: Case) -> WorkflowExecutionContext[Any]:
    wf = load(case.ref)
    ctx = wf.run(case.input)
    if case.resume is not None:
        pause_name, resume_input = case.resume
        assert ctx.is_paused, ctx.output
        paused = [e.name for e in ctx.events if e.type == EventType.TASK_PAUSED]
        assert paused == [pause_name]
        ctx = wf.resume(ctx.execution_id, resume_input)
    return ctx


def case_id(case: Case) -> str:
    return f"{case.ref}({json.dumps(case.input)})"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_example_output(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    ctx = run_case(case)
    assert ctx.has_succeeded, ctx.output
    if case.check is not None:
        assert case.check(ctx.output), ctx.output
    else:
        assert ctx.output == case.output
    # The stored run gives back the same output without running anything again.
    stored = load(case.ref).run(execution_id=ctx.execution_id)
    assert stored.output == ctx.output
    assert len(stored.events) == len(ctx.events)
    json.loads(ctx.to_json())


def test_every_example_is_in_the_table() -> None:
    listed = {case.ref for case in CASES}
    found = set()
    for path in sorted(EXAMPLES.glob("*.py")):
        module = load_module(str(path))
        assert (module.__doc__ or "").strip(), f"{path.name} needs a module docstring"
        for name, value in vars(module).items():
            if isinstance(value, Workflow) and value.func.__module__ == module.__name__:
                found.add(f"{path.name}:{name}")
                assert f"examples/{path.name}:{name}" in (module.__doc__ or ""), (
                    f"the docstring of {path.name} should say how to run {name}"
                )
    assert found == listed


# ------------------------------------------------------ what the examples show


def started_value(ctx: WorkflowExecutionContext[Any], call_id: str) -> Any:
    [value] = [
        e.value for e in ctx.events if e.type == EventType.TASK_STARTED and e.source_id == call_id
    ]
    return value


def call_types(ctx: WorkflowExecutionContext[Any], call_id: str) -> list[EventType]:
    return [e.type for e in ctx.events if e.source_id == call_id]


def test_configured_task_stores_its_output_and_keeps_its_secret_out_of_history(
    monkeypatch: pytest.MonkeyPatch, flux_home: Path
) -> None:
    monkeypatch.setenv("FLUX_SECRET_API_KEY", API_KEY)
    ctx = load("configured_task.py:configured_workflow").run("report")
    policy = started_value(ctx, "process_data#0")
    assert policy["secrets"] == ["API_KEY"]
    assert policy["policy"]["retry_max_attempts"] == 3
    assert policy["policy"]["timeout"] == 30
    assert policy["policy"]["has_fallback"] and policy["policy"]["has_rollback"]
    [completed] = [
        e.value
        for e in ctx.events
        if e.type == EventType.TASK_COMPLETED and e.source_id == "process_data#0"
    ]
    reference = decode(completed)
    assert isinstance(reference, StorageReference)
    assert (flux_home / "outputs" / reference.key).is_file()
    assert API_KEY not in ctx.to_json()


def test_configured_task_without_its_secret_fails_before_running() -> None:
    ctx = load("configured_task.py:configured_workflow").run("report")
    assert ctx.has_failed
    assert ctx.output["type"] == "ExecutionError"
    assert "API_KEY" in ctx.output["message"]
    assert "process_data" in ctx.output["message"]


def test_retry_config_records_the_policy() -> None:
    ctx = load("retry_config.py:retry_config_workflow").run()
    policy = started_value(ctx, "retrying_task#0")["policy"]
    assert (policy["retry_max_attempts"], policy["retry_delay"], policy["retry_backoff"]) == (
        3,
        1,
        2,
    )


def test_fallback_and_rollback_examples_run_their_handlers() -> None:
    ctx = load("fallback_config.py:fallback_workflow").run("x")
    assert EventType.TASK_FALLBACK_COMPLETED not in call_types(ctx, "task_with_fallback#0")
    assert EventType.TASK_FALLBACK_COMPLETED in call_types(ctx, "unreachable_service#0")

    ctx = load("fallback_strategy.py:fallback_strategy_workflow").run()
    steps = call_types(ctx, "always_failing#0")
    assert steps.count(EventType.TASK_RETRY_STARTED) == 2
    assert steps[-2:] == [EventType.TASK_FALLBACK_COMPLETED, EventType.TASK_COMPLETED]

    for ref, call_id in [
        ("rollback_config.py:rollback_workflow", "failing_task#0"),
        ("rollback_operations.py:rollback_operations_workflow", "reserve_resources#0"),
    ]:
        ctx = load(ref).run("x")
        assert call_types(ctx, call_id)[-3:] == [
            EventType.TASK_ROLLBACK_STARTED,
            EventType.TASK_ROLLBACK_COMPLETED,
            EventType.TASK_FAILED,
        ]

    ctx = load("timeout_handling.py:timeout_workflow").run()
    [fallback] = [
        e.value
        for e in ctx.events
        if e.type == EventType.TASK_FALLBACK_STARTED and e.source_id == "slow_task#0"
    ]
    assert fallback["error"]["type"] == "ExecutionTimeoutError"


def test_random_and_uuid_examples_record_their_values() -> None:
    ctx = load("builtins_random.py:random_workflow").run()
    values = {
        e.name: e.value
        for e in ctx.events
        if e.type == EventType.TASK_COMPLETED and e.source_id != ctx.execution_id
    }
    assert set(values) == {"choice", "randint", "randrange"}
    assert values["choice"] in range(3)
    assert 1 <= values["randint"] <= 10
    assert values["randrange"] in range(0, 10, 2)

    ctx = load("builtins_uuid.py:id_workflow").run()
    [value] = [e.value for e in ctx.events if e.source_id == "uuid4#0" and e.value]
    assert decode(value).version == 4
    assert isinstance(decode(value), uuid.UUID)


def test_graph_conditional_takes_one_branch() -> None:
    ctx = load("graph_conditional.py:conditional_workflow").run(15)
    started = [e.source_id for e in ctx.events if e.type == EventType.TASK_STARTED]
    assert started == ["task1_func#0", "task2_func#0"]
