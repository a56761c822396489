"""The reconcile loop's pure decisions, on specs and on histories the real engine wrote."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flux import WorkflowExecutionContext, task, workflow
from flux.engine.instance import WorkflowInstance
from flux.events import EventType, ExecutionState
from flux.k8s.archive import OpenCalls
from flux.k8s.decisions import set_condition, workflow_ready
from flux.k8s.history import event_to_status
from flux.k8s.models import Condition, HistoryEvent
from flux.k8s.states import PHASE_OF_STATE, ConditionStatus, Phase
from flux.tasks import now, parallel, pause, sleep

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


# ------------------------------------------------------------------ workflow_ready


@pytest.mark.parametrize(
    "spec",
    [
        {"entrypoint": "examples.hello:hello"},
        {"entrypoint": "pkg.module:Class.method", "image": "img:1", "parallelism": 2},
        {"entrypoint": "a:b", "homeVolume": {"persistentVolumeClaim": {"claimName": "home"}}},
        {"entrypoint": "a:b", "homeVolume": {"emptyDir": {}}},
        {
            "source": "from flux import workflow\n\n@workflow\nasync def w(ctx): ...\n",
            "function": "w",
        },
    ],
)
def test_a_valid_spec_is_ready(spec: dict[str, Any]) -> None:
    condition = workflow_ready(spec, generation=4)
    assert (condition.type, condition.status, condition.reason) == ("Ready", "True", "Valid")
    assert condition.observed_generation == 4


def test_a_syntax_error_names_its_line() -> None:
    source = "from flux import workflow\n\n\ndef broken(:\n    pass\n"
    condition = workflow_ready({"source": source, "function": "broken"})
    assert condition.status == ConditionStatus.FALSE
    assert condition.reason == "SourceSyntaxError"
    assert condition.message.startswith("spec.source line 4: syntax error")


def test_inline_source_is_compiled_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(3)\n"
    assert workflow_ready({"source": source, "function": "f"}).status == ConditionStatus.TRUE
    assert not marker.exists()


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"entrypoint": "hello"}, "spec.entrypoint 'hello' is not of the form module:function"),
        ({"entrypoint": "a:b", "source": "x = 1"}, "set exactly one of"),
        ({}, "set exactly one of"),
        ({"source": "x = 1"}, "spec.function is required with spec.source"),
        ({"entrypoint": "a:b", "function": "b"}, "spec.function is required with spec.source"),
        ({"source": "x = 1", "function": "not-a-name"}, "is not a Python identifier"),
        ({"entrypoint": "a:b", "parallelism": 0}, "spec.parallelism"),
        ({"source": "x = 1\x00", "function": "f"}, "spec.source"),
        # A home volume is the only pod setting that names what pods mount: nothing that
        # gives task pods API credentials, Secrets, ConfigMaps or the node's files.
        *(
            ({"entrypoint": "a:b", "homeVolume": volume}, f"(found: {found})")
            for volume, found in [
                ({"projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}, "projected"),
                ({"secret": {"secretName": "db"}}, "secret"),
                ({"configMap": {"name": "flux-source-other"}}, "configMap"),
                ({"hostPath": {"path": "/"}}, "hostPath"),
                ({"emptyDir": {}, "hostPath": {"path": "/"}}, "emptyDir, hostPath"),
                ({}, "none"),
            ]
        ),
    ],
)
def test_an_invalid_spec_is_not_ready(spec: dict[str, Any], words: str) -> None:
    condition = workflow_ready(spec)
    assert condition.status == ConditionStatus.FALSE
    assert words in condition.message, condition.message


# ------------------------------------------------------------------- set_condition


def ready(status: str, message: str = "m") -> Condition:
    return Condition(type="Ready", status=ConditionStatus(status), reason="R", message=message)


def test_a_new_condition_is_stamped_with_now() -> None:
    other = Condition(type="Other", status=ConditionStatus.TRUE, last_transition_time=T0)
    assert set_condition([other], ready("True"), T1) == [
        other,
        ready("True").model_copy(update={"last_transition_time": T1}),
    ]


def test_the_transition_time_moves_only_with_the_status() -> None:
    first = set_condition([], ready("False", "old"), T0)
    same = set_condition(first, ready("False", "new message"), T1)
    assert same[0].last_transition_time == T0
    assert same[0].message == "new message"
    flipped = set_condition(same, ready("True"), T1)
    assert flipped[0].last_transition_time == T1
    assert len(flipped) == 1


def test_a_condition_without_a_time_gets_one() -> None:
    assert set_condition([ready("True")], ready("True"), T1)[0].last_transition_time == T1


# ----------------------------------------------------- history: phase, outstanding


@task
def fetch(item: str) -> str:
    return item


@workflow
async def fan_out(ctx: WorkflowExecutionContext[list[str]]) -> Any:
    await now()
    await sleep(30)
    results = await parallel(*(fetch(item) for item in ctx.input))
    return await pause("approve", output=results)


Engine = Callable[..., WorkflowInstance]


@pytest.fixture
def engine() -> Iterator[Engine]:
    """Instances of ``fan_out``; any left unfinished are cancelled, not left to the GC."""
    made: list[WorkflowInstance] = []

    def make(history: list[HistoryEvent] | None = None) -> WorkflowInstance:
        ticks = itertools.count()
        instance = WorkflowInstance(
            fan_out,
            "run-1",
            [e.to_event() for e in history or []],
            clock=lambda: T0 + dt.timedelta(seconds=next(ticks)),
            rng=random.Random(1),
            input=["a", "b"],
        )
        instance.start()
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.cancel()


def recorded(instance: WorkflowInstance) -> list[HistoryEvent]:
    return [HistoryEvent.from_event(e) for e in instance.events]


def open_tasks(history: list[HistoryEvent]) -> OpenCalls:
    """The task calls the operator starts pods for, read from history as it reads it."""
    return OpenCalls().apply(event_to_status(e.to_event()) for e in history)


def fetches(history: list[HistoryEvent]) -> list[str]:
    return [task.call_id for task in open_tasks(history).tasks()]


def phase(instance: WorkflowInstance) -> Phase:
    """The phase the driver writes for the run the engine replayed."""
    return PHASE_OF_STATE[instance.state]


def test_a_run_through_its_phases(engine: Engine) -> None:
    assert PHASE_OF_STATE[ExecutionState.CREATED] == Phase.PENDING
    instance = engine()
    sleep_id = next(c for c in instance.in_flight() if c.startswith("sleep"))
    history = recorded(instance)
    assert phase(instance) == Phase.RUNNING
    # The built-in completed at once, the sleep needs no pod: nothing for pods yet.
    assert fetches(history) == []
    assert open_tasks(history).sleeps() != []

    instance.deliver(EventType.TASK_COMPLETED, sleep_id)
    history = recorded(instance)
    calls = open_tasks(history)
    events = [calls.task_event(t.call_id) for t in calls.tasks()]
    assert [(e["name"], e["value"]["args"]) for e in events] == [("fetch", ["a"]), ("fetch", ["b"])]
    assert events[0]["value"]["task"].endswith(":fetch")
    ids = [e["sourceId"] for e in events]

    instance.deliver(EventType.TASK_COMPLETED, ids[0], "A")
    assert fetches(recorded(instance)) == [ids[1]]
    instance.deliver(EventType.TASK_FAILED, ids[1], {"type": "ValueError"})
    assert fetches(recorded(instance)) == []
    assert phase(instance) == Phase.FAILED


def test_a_paused_run_resumes_and_succeeds(engine: Engine) -> None:
    instance = engine()
    instance.deliver(EventType.TASK_COMPLETED, next(c for c in instance.in_flight()))
    calls = open_tasks(recorded(instance))
    for task_call in list(calls.tasks()):
        args = calls.task_event(task_call.call_id)["value"]["args"]
        instance.deliver(EventType.TASK_COMPLETED, task_call.call_id, args[0])
    history = recorded(instance)
    assert instance.state == ExecutionState.PAUSED
    assert phase(instance) == Phase.PAUSED
    assert phase(engine(history)) == Phase.PAUSED  # as a replay finds it

    instance.resume("yes")
    assert phase(instance) == Phase.SUCCEEDED
    assert instance.state == ExecutionState.COMPLETED
