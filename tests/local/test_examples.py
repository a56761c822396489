"""Every example runs on the embedded executor and gives exactly its documented output.

Examples are loaded the way ``flux run examples/<file>.py:<workflow>`` loads
them. The table below lists every workflow in examples/; a workflow added
there without a row here fails ``test_every_example_is_in_the_table``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from example_cases import API_KEY, CASES, EXAMPLES, Case
from flux import EventType, StorageReference, Workflow, WorkflowExecutionContext
from flux.codec import decode, expect
from flux.local.loader import load_module, load_workflow


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
    reference = decode(completed, expect(StorageReference))
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
