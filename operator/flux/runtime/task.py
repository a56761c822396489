"""The task runner: one step (attempt, fallback or rollback) of one task call, in a pod.

Policy (retries, timeouts, what runs next) is the operator's: this process
runs the step once, reports its result, and exits 0 on success, 1 on failure.
An attempt with a ``timeout`` runs as the embedded executor runs it
(:mod:`flux.step_runner`): the deadline counts from the body's start, a late
body is abandoned in its worker thread, its late result is discarded, and the
process exits once the failure is reported, without waiting for it.

A batch pod (``FLUX_TASK`` holds a :class:`~flux.k8s.protocol.BatchSpec`) runs
the steps of several calls of one task, one after another in this process, and
reports a :class:`~flux.k8s.protocol.BatchResult` with one result per call. Each
call is isolated: an exception, an output that cannot be stored or an attempt
past the batch's per-item ``timeout`` fails that call only. The runner
exits 0 when the batch ran, whatever its items' outcomes, and non-zero when it
could not run it (an invalid spec, a task that cannot be imported).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

from flux.engine.failures import error_info
from flux.k8s.protocol import (
    RESULT_LOG_MARKER,
    TASK_ENV,
    TERMINATION_LOG,
    TERMINATION_LOG_ENV,
    TERMINATION_MESSAGE_LIMIT,
    BatchItem,
    BatchResult,
    BatchSpec,
    Outcome,
    ProtocolError,
    Step,
    TaskResult,
    TaskSpec,
    is_batch,
)
from flux.masked_output import mask_std_streams, unmasked
from flux.redaction import Redactor
from flux.runtime.loading import import_object
from flux.step_runner import (
    StepCall,
    StepOutcome,
    abandoned_bodies,
    environment_secret_values,
    run_encoded_step,
)
from flux.task import Task


def run_step(spec: TaskSpec) -> TaskResult:
    try:
        task = _import_task(spec.task)
    except Exception as exc:
        return _failed(exc)
    # The deadline counts from the body's start, as embedded; the pod's own
    # (start-up included) is only a backstop, and Kubernetes enforces it late.
    call = StepCall(task, spec.step, spec.call_id, spec.name)
    ran = run_encoded_step(
        call, spec.positional, spec.keywords, timeout=spec.timeout, secret_names=spec.secrets
    )
    return _task_result(ran)


def run_batch(spec: BatchSpec) -> tuple[BatchResult, bool]:
    """Every item's step, in order. The flag is false when the batch could not run."""
    try:
        task = _import_task(spec.task)
    except Exception as exc:
        return _all_failed(spec.items, exc), False
    results = {item.call_id: _run_item(task, spec, item) for item in spec.items}
    return BatchResult(items=results), True


def _run_item(task: Task[..., Any], spec: BatchSpec, item: BatchItem) -> TaskResult:
    # The batch's timeout is per attempt: the pod's deadline cannot hold one item.
    timeout = spec.timeout if item.step == Step.ATTEMPT else 0
    try:
        call = StepCall(task, item.step, item.call_id, item.name)
        ran = run_encoded_step(
            call, item.positional, item.keywords, timeout=timeout, secret_names=spec.secrets
        )
    except SystemExit as exc:  # one item calling sys.exit must not end the batch
        return _failed(exc)
    return _task_result(ran)


def _task_result(ran: StepOutcome) -> TaskResult:
    if ran.error is not None:
        return TaskResult(outcome=Outcome.FAILED, error=dict(ran.error))
    return TaskResult(outcome=Outcome.COMPLETED, value=ran.value)


def _import_task(reference: str) -> Task[..., Any]:
    task = import_object(reference)
    if not isinstance(task, Task):
        raise TypeError(f"{reference} is not a @task")
    return task


def _failed(exc: BaseException) -> TaskResult:
    return TaskResult(outcome=Outcome.FAILED, error=dict(error_info(exc)))


def _all_failed(items: list[BatchItem], exc: BaseException) -> BatchResult:
    return BatchResult(items={item.call_id: _failed(exc) for item in items})


def secret_redactor() -> Redactor:
    """The values of every secret this pod was given: all the task could see."""
    return Redactor(environment_secret_values())


def redact_result(result: TaskResult | BatchResult, redactor: Redactor) -> TaskResult | BatchResult:
    """The result with secret values masked in its value and error (each item's, for a batch).

    Everything the operator records of a task (status, history, archive,
    Events, its logs) derives from this result, so masking it here, where the
    values are known, keeps them out of all of those.
    """
    if not redactor:
        return result
    if isinstance(result, BatchResult):
        items = {
            call_id: _redact_task_result(item, redactor) for call_id, item in result.items.items()
        }
        return dataclasses.replace(result, items=items)
    return _redact_task_result(result, redactor)


def _redact_task_result(result: TaskResult, redactor: Redactor) -> TaskResult:
    return dataclasses.replace(
        result, value=redactor.redact(result.value), error=redactor.redact(result.error)
    )


def report(result: TaskResult | BatchResult) -> None:
    """Write the result where the operator reads it; large values go to the log."""
    message = redact_result(result, secret_redactor()).to_message()
    if len(message.encode()) > TERMINATION_MESSAGE_LIMIT:
        # The line break first: output of the task that did not end its line
        # must not hide the marker at the start of the result line.
        sys.stdout.write("\n")
        sys.stdout.flush()
        # Past the mask: the result is masked already, and masking its JSON text
        # again must not be able to break the line the operator parses.
        out = unmasked(sys.stdout)
        out.write(RESULT_LOG_MARKER + message + "\n")
        out.flush()
        small: TaskResult | BatchResult
        if isinstance(result, BatchResult):
            small = BatchResult(in_log=True)
        else:
            small = TaskResult(outcome=result.outcome, in_log=True)
        message = small.to_message()
    path = os.environ.get(TERMINATION_LOG_ENV) or TERMINATION_LOG
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(message)
    except OSError:  # outside a pod there is no termination log
        sys.stderr.write(message + "\n")


def _main_batch(data: dict[str, Any]) -> int:
    try:
        spec = BatchSpec.from_json(data)
    except ProtocolError as exc:
        error = ValueError(f"invalid batch spec in {TASK_ENV}: {exc}")
        sys.stderr.write(f"{error}\n")
        # Report the error for every item that can be named at all.
        raw_items = data.get("items")
        ids = [
            i["callId"]
            for i in (raw_items if isinstance(raw_items, list) else [])
            if isinstance(i, dict) and isinstance(i.get("callId"), str)
        ]
        if ids:
            report(BatchResult(items={call_id: _failed(error) for call_id in ids}))
        return 2
    result, ran = run_batch(spec)
    report(result)
    return 0 if ran else 1


def main() -> int:
    # For the rest of the process: a batch item abandoned at its deadline may still print.
    mask_std_streams(secret_redactor())
    raw = os.environ.get(TASK_ENV)
    if not raw:
        sys.stderr.write(f"{TASK_ENV} is not set: this program runs inside Flux task pods\n")
        return 2
    data = json.loads(raw)
    if is_batch(data):
        return _main_batch(data)
    spec = TaskSpec.from_json(data)
    result = run_step(spec)
    report(result)
    return 0 if result.outcome == Outcome.COMPLETED else 1


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    if abandoned_bodies():
        # Bodies past their deadline may still run; the result is reported, so
        # end the process now rather than wait for them or race their late output.
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
