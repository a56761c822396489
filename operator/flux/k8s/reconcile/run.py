"""One reconcile of a run: its Workflow checked, its task calls and driver planned."""

from __future__ import annotations

import datetime as dt

from flux.events import WORKFLOW_FINAL_EVENTS
from flux.k8s import archive, labels
from flux.k8s.archive import OpenCalls
from flux.k8s.bodies import PodBody, RunStatusBody, as_pods, as_run, as_workflow
from flux.k8s.config import OperatorConfig
from flux.k8s.pod_view import PodView
from flux.k8s.reconcile.driver import pending_sleeps, plan_driver
from flux.k8s.reconcile.failures import (
    Unrunnable,
    fail,
    history_lost,
    set_conditions,
    workflow_checked,
    workflow_not_found,
    workflow_not_ready,
)
from flux.k8s.reconcile.plan import Observed, Plan
from flux.k8s.reconcile.revision import pin_revision
from flux.k8s.reconcile.tasks import Records, Room, RunContext, TaskPass, in_play, pods_held
from flux.k8s.states import FINAL_PHASES, Phase, PodRole

# A driver that records the workflow's end posts its Event right after the write,
# with a token bound to its pod: deleting the pod at once (which also voids the
# token) lost that Event. Its pod is left this long to exit by itself.
DRIVER_EXIT_GRACE = dt.timedelta(seconds=30)
# While the operator checks a new Workflow spec, its runs look again this soon.
WORKFLOW_CHECK_WAIT = dt.timedelta(seconds=1)
_WORKFLOW_ENDS = frozenset(e.value for e in WORKFLOW_FINAL_EVENTS)


def plan_run(observed: Observed, config: OperatorConfig, unit_random: float = 0.5) -> Plan:
    """What to change for the run ``observed`` shows; ``unit_random`` draws retry jitter."""
    run, now = as_run(observed.run), observed.now
    status: RunStatusBody = run.get("status") or {}
    phase = status.get("phase")
    generation = run["metadata"].get("generation")
    pods = as_pods(observed.pods)
    plan = Plan()
    views = {
        p["metadata"]["name"]: PodView.from_pod(p, observed.logs.get(p["metadata"]["name"]))
        for p in pods
    }
    roles = _roles(pods)
    if phase in FINAL_PHASES:
        _clear_away(plan, status, views, roles, now)
        set_conditions(plan, status, now, generation)
        return plan
    if observed.history_lost is not None:
        lost = history_lost(observed.history_lost)
        return _unrunnable(plan, status, views, lost, now, generation)
    if observed.workflow is None:
        return _unrunnable(plan, status, views, workflow_not_found(run), now, generation)
    workflow = as_workflow(observed.workflow)
    if not workflow_checked(workflow):
        plan.wake(now + WORKFLOW_CHECK_WAIT)
        return plan
    problem = workflow_not_ready(run, workflow)
    if problem is not None:
        return _unrunnable(plan, status, views, problem, now, generation)
    spec = workflow.get("spec") or {}
    problem = pin_revision(plan, run, workflow, config, observed)
    if problem is not None:
        return _unrunnable(plan, status, views, problem, now, generation)
    # From here on the pass acts on the run as it is with its revision recorded: the
    # pods it creates use that revision (written by the same status patch, first).
    run = as_run({**run, "status": {**status, **plan.status}})
    # The operator's write recording the revision comes first, also for a Shared
    # Workflow: a shared driver serves only runs that recorded its revision.
    if phase is None:
        plan.status["phase"] = Phase.PENDING
    open_calls = observed.open_calls
    if open_calls is None:
        open_calls = OpenCalls().apply(status.get("history") or [])
    records: Records = {r["callId"]: r for r in status.get("tasks") or []}
    cap = config.max_task_pods_per_run
    # Records in play (holding a pod, or finished and waiting for the driver to take
    # the outcome) stay in status: the operator's cap bounds them (a batch pod's items
    # each count), so neither a lagging driver nor big batches can make the run
    # outgrow its size budget. The Workflow's parallelism bounds pods.
    room = Room(
        busy=pods_held(records, open_calls),
        in_play=in_play(records, open_calls),
        pod_limit=min(spec.get("parallelism") or cap, cap),
        cap=cap,
    )
    context = RunContext(
        run=run,
        workflow=workflow,
        config=config,
        now=now,
        unit_random=unit_random,
        views=views,
        open_calls=open_calls,
        cancels=frozenset(status.get("cancelRequested") or []),
        secret_refs=spec.get("secrets") or {},
    )
    updated, referenced = TaskPass(plan, context, records, room).run()
    plan.archive_tasks = archive.settled_to_archive(
        [r for cid, r in updated.items() if cid not in open_calls], set(updated)
    )
    if plan.archive_tasks:
        moved = {r.get("callId") for r in plan.archive_tasks}
        updated = {cid: r for cid, r in updated.items() if cid not in moved}
    if updated != records:
        plan.status["tasks"] = list(updated.values())
    # Task pods no record points to any more (finished steps, superseded pods).
    for name in views:
        if roles[name] == PodRole.TASK and name not in referenced and name not in plan.delete:
            plan.delete.append(name)
    plan_driver(
        plan,
        run,
        workflow,
        {name: view for name, view in views.items() if roles[name] == PodRole.DRIVER},
        now,
        config,
        records=updated,
        open_calls=open_calls,
        shared_driver_up=observed.shared_driver_up,
        driver_slots=observed.driver_slots,
    )
    for until in pending_sleeps(open_calls):
        plan.wake(until)
    if status or plan.status:
        set_conditions(plan, {**status, **plan.status}, now, generation)
    return plan


def _unrunnable(
    plan: Plan,
    status: RunStatusBody,
    views: dict[str, PodView],
    problem: Unrunnable,
    now: dt.datetime,
    generation: int | None,
) -> Plan:
    """The run fails for a reason the operator found; whatever pods it has go."""
    fail(plan, status, problem, now, generation)
    plan.delete.extend(views)
    return plan


def _roles(pods: list[PodBody]) -> dict[str, str | None]:
    """Each pod's role label, by name (the first pod of a name, as the API lists them)."""
    roles: dict[str, str | None] = {}
    for pod in pods:
        meta = pod["metadata"]
        roles.setdefault(meta["name"], (meta.get("labels") or {}).get(labels.LABEL_ROLE))
    return roles


def _clear_away(
    plan: Plan,
    status: RunStatusBody,
    views: dict[str, PodView],
    roles: dict[str, str | None],
    now: dt.datetime,
) -> None:
    """Remove a finished run's pods; the driver that finished it once it has exited."""
    history = status.get("history") or []
    ended_by_driver = bool(history) and history[-1].get("type") in _WORKFLOW_ENDS
    finish = status.get("finishTime")
    for name, view in views.items():
        if ended_by_driver and finish and roles[name] == PodRole.DRIVER:
            until = dt.datetime.fromisoformat(finish) + DRIVER_EXIT_GRACE
            if not view.finished and now < until:
                plan.wake(until)  # its pod event comes sooner, when it exits
                continue
        plan.delete.append(name)
