"""The run's driver pod: started, restarted with back-off, or the Workflow's shared one."""

from __future__ import annotations

import datetime as dt

from flux.k8s.archive import OpenCalls
from flux.k8s.bodies import DriverStatusBody, RunBody, RunStatusBody, WorkflowBody
from flux.k8s.config import OperatorConfig
from flux.k8s.decisions import cancel_requested
from flux.k8s.pod_view import PodView
from flux.k8s.pods import driver_pod, driver_pod_name, revision_of, shared_driver_pod
from flux.k8s.reconcile.failures import Unrunnable, fail
from flux.k8s.reconcile.plan import Plan
from flux.k8s.reconcile.tasks import Records
from flux.k8s.states import FINISHED_TASK_STATES, DriverMode, Phase, PodPhase, Reason


def plan_driver(
    plan: Plan,
    run: RunBody,
    workflow: WorkflowBody,
    drivers: dict[str, PodView],
    now: dt.datetime,
    config: OperatorConfig,
    *,
    records: Records,
    open_calls: OpenCalls,
    shared_driver_up: bool,
    driver_slots: int | None = None,
) -> None:
    """Start, replace or remove the run's driver pods (``drivers``: its driver pods by name).

    ``driver_slots``: how many per-run driver pods this run may start now (the
    operator's bound on them, less those running and the runs queued ahead);
    None: no bound. A run that needs a driver and has no slot is queued."""
    status: RunStatusBody = run.get("status") or {}
    driver: DriverStatusBody = {**(status.get("driver") or {"starts": 0, "failures": 0})}
    before: DriverStatusBody = {**driver}
    if driver.get("shared") or (
        not driver.get("starts")
        and (workflow.get("spec") or {}).get("driverMode") == DriverMode.SHARED
    ):
        # The mode is fixed when the run starts, so two kinds of driver never share
        # it: the first write saying which (this one or the shared driver's claim)
        # requires a run without status. A per-run driver started by a pass whose
        # claim lost is removed here, before it does anything but read.
        if driver_needed(status, records, open_calls, now, cancel=cancel_requested(run)):
            revision = revision_of(run, workflow, config)  # a shared driver serves one
            plan.shared_driver = shared_driver_pod(workflow, config, revision)
        if not driver.get("shared") and (status or not shared_driver_up):
            plan.status["driver"] = {"shared": True}
        plan.delete.extend(drivers)
        return
    current = driver.get("pod")
    active = False
    for name, view in drivers.items():
        if name != current or view.finished:
            plan.delete.append(name)
        if name == current:
            if view.phase == PodPhase.FAILED:
                driver["failures"] = driver.get("failures", 0) + 1
                driver["lastFailure"] = now.isoformat()
                driver["pod"] = None
            elif view.phase == PodPhase.SUCCEEDED:
                driver["failures"] = 0
                driver["pod"] = None
            else:
                active = True
    if current and current not in drivers:
        driver["pod"] = None
    if not active and driver_needed(status, records, open_calls, now, cancel=cancel_requested(run)):
        failures = driver.get("failures", 0)
        if failures >= config.driver_max_failures:
            message = (
                f"the workflow driver failed {failures} times in a row; "
                f"see the logs of pod {before.get('pod') or current}"
            )
            generation = run["metadata"].get("generation")
            fail(plan, status, Unrunnable(Reason.DRIVER_FAILED, message), now, generation)
            return
        last = driver.get("lastFailure")
        not_before = (
            dt.datetime.fromisoformat(last) + dt.timedelta(seconds=min(2**failures, 60))
            if failures and last
            else now
        )
        if not_before > now:
            plan.wake(not_before)
        elif driver_slots is not None and driver_slots < 1:
            # Woken when a driver pod finishes (and by the backstop): no timer.
            driver["queued"] = True
        else:
            starts = driver.get("starts", 0) + 1
            plan.create.append(driver_pod(run, workflow, config, starts))
            driver["starts"] = starts
            driver["pod"] = driver_pod_name(run["metadata"]["name"], starts)
            driver.pop("queued", None)
    elif not active:
        # No longer needs one (finished, cancelled while queued): not waiting either.
        driver.pop("queued", None)
    if driver != before:
        plan.status["driver"] = driver


def driver_needed(
    status: RunStatusBody,
    records: Records,
    open_calls: OpenCalls,
    now: dt.datetime,
    *,
    cancel: bool = False,
) -> bool:
    """Whether the run needs a driver now: to start, to take outcomes, to wake, to
    resume, or to act on ``cancel`` (``spec.cancel`` of a run not finished)."""
    if not open_calls.events:
        return True
    if status.get("phase") == Phase.PAUSED:
        return status.get("resume") is not None or cancel
    if cancel and not cancel_handed_over(status, open_calls):
        return True
    if any(
        r.get("state") in FINISHED_TASK_STATES and cid in open_calls for cid, r in records.items()
    ):
        return True
    sleeps = pending_sleeps(open_calls)
    if any(until <= now for until in sleeps):
        return True
    outstanding_tasks = open_calls.task_count() > 0
    # Nothing outstanding and not finished: the last driver stopped early (crash, deletion).
    return not outstanding_tasks and not sleeps


def cancel_handed_over(status: RunStatusBody, open_calls: OpenCalls) -> bool:
    """Whether a driver has acted on the cancel: it ends sleeps at once and asks the
    operator to stop every task call in flight (``status.cancelRequested``). Until
    then a driver is needed, even for a run waiting on a long sleep; after, only for
    the outcomes, so no driver is started again and again while rollbacks run."""
    if open_calls.sleeps():
        return False
    asked = status.get("cancelRequested") or []
    return sum(1 for call_id in asked if open_calls.is_task(call_id)) == open_calls.task_count()


def pending_sleeps(open_calls: OpenCalls) -> list[dt.datetime]:
    return [dt.datetime.fromisoformat(until) for until in open_calls.sleeps()]
