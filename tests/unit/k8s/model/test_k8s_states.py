"""The vocabulary of runs on Kubernetes, and the typed bodies that carry it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from flux.events import ExecutionState
from flux.k8s import bodies, models
from flux.k8s.states import (
    FINAL_PHASES,
    FINISHED_TASK_STATES,
    PHASE_OF_STATE,
    POD_STATES,
    STATE_OF_STEP,
    Phase,
    Step,
    TaskState,
)


def test_every_execution_state_has_a_phase_and_final_ones_a_final_phase() -> None:
    assert set(PHASE_OF_STATE) == set(ExecutionState)
    assert set(PHASE_OF_STATE.values()) == set(Phase)
    assert {PHASE_OF_STATE[s] for s in ExecutionState if s.is_final} == FINAL_PHASES


def test_a_task_state_either_holds_a_pod_waits_to_retry_or_is_finished() -> None:
    assert set(STATE_OF_STEP) == set(Step)
    assert POD_STATES.isdisjoint(FINISHED_TASK_STATES)
    assert POD_STATES | FINISHED_TASK_STATES | {TaskState.RETRYING} == set(TaskState)


def test_members_are_the_strings_the_api_stores() -> None:
    # A member goes into a body as is: it must compare and serialise as its value.
    assert Phase.RUNNING == "Running" and f"{Phase.RUNNING}" == "Running"
    assert {"phase": Phase.FAILED} == {"phase": "Failed"}
    assert models.to_json(models.WorkflowRunStatus(phase=Phase.PAUSED))["phase"] == "Paused"


# The metadata of an object belongs to the API server; the models name only part of it.
_META_ONLY_READ = {"annotations", "creationTimestamp"}


@pytest.mark.parametrize(
    ("body", "model"),
    [
        (bodies.RunBody, models.WorkflowRun),
        (bodies.RunSpecBody, models.WorkflowRunSpec),
        (bodies.WorkflowRefBody, models.WorkflowRef),
        (bodies.RunStatusBody, models.WorkflowRunStatus),
        (bodies.RunErrorBody, models.RunError),
        (bodies.PauseBody, models.Pause),
        (bodies.ResumeBody, models.Resume),
        (bodies.DriverStatusBody, models.DriverStatus),
        (bodies.HistoryEventBody, models.HistoryEvent),
        (bodies.ArchiveRefBody, models.ArchiveRef),
        (bodies.TaskRecordBody, models.TaskRecord),
        (bodies.LastErrorBody, models.LastError),
        (bodies.PolicyStepBody, models.PolicyStep),
        (bodies.ConditionBody, models.Condition),
        (bodies.WorkflowBody, models.Workflow),
        (bodies.WorkflowSpecBody, models.WorkflowSpec),
        (bodies.WorkflowStatusBody, models.WorkflowStatus),
        (bodies.SecretRefBody, models.SecretRef),
        (bodies.TaskDefaultsBody, models.TaskDefaults),
        (bodies.MetaBody, models.ObjectMeta),
    ],
)
def test_a_body_has_the_keys_of_its_model(body: Any, model: type[BaseModel]) -> None:
    """The TypedDicts the pure modules read are the shapes the CRDs admit: no key the
    API server would prune, none it keeps that they miss."""
    keys = set(body.__annotations__) - (_META_ONLY_READ if body is bodies.MetaBody else set())
    assert keys == {field.alias or name for name, field in model.model_fields.items()}
