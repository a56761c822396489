"""Workflow schedules on a real cluster: the operator starts the runs a cron
schedule says, records the times in the Workflow's status, and refuses a
schedule it cannot evaluate with a condition and an Event."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from flux_runs import events_for, wait_phase, workflow_manifest

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

SOURCE = """
from flux import WorkflowExecutionContext, task, workflow


@task
def double(n: int) -> int:
    return 2 * n


@workflow
async def ticking(ctx: WorkflowExecutionContext[int]) -> int:
    return await double(ctx.input)
"""


def scheduled_runs(cluster: Cluster, ns: str, workflow: str) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get", "workflowruns", "-n", ns, "-l", f"flux.dev/workflow={workflow}", "-o", "json"
    ).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def test_an_every_minute_schedule_starts_a_run_that_succeeds(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    schedule = {"name": "tick", "cron": "* * * * *", "input": 21, "concurrencyPolicy": "Forbid"}
    cluster.apply(workflow_manifest("ticker", SOURCE, "ticking", schedules=[schedule]), flux_ns)

    def first_run() -> dict[str, Any] | None:
        runs = scheduled_runs(cluster, flux_ns, "ticker")
        return runs[0] if runs else None

    run = cluster.wait_for(
        "a scheduled run",
        first_run,
        75,
        describe=lambda: operator.log_tail() + cluster.describe("workflow", "ticker", flux_ns),
    )
    # Suspend it now: the test needs one run, not one a minute.
    cluster.kubectl(
        "patch", "workflow", "ticker", "-n", flux_ns, "--type=json", "-p",
        json.dumps([{"op": "add", "path": "/spec/schedules/0/suspend", "value": True}]),
    )  # fmt: skip
    meta = run["metadata"]
    assert meta["labels"]["flux.dev/schedule"] == "tick"
    assert meta["ownerReferences"][0]["kind"] == "Workflow"
    minutes = meta["name"].rsplit("-", 1)[1]
    assert meta["name"] == f"ticker-tick-{minutes}"
    status = wait_phase(cluster, operator, flux_ns, meta["name"], "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status
    assert status["output"] == 42

    workflow = cluster.get("workflow", "ticker", flux_ns)
    (entry,) = workflow["status"]["schedules"]
    assert entry["name"] == "tick"
    assert entry["lastScheduleTime"].startswith(
        meta["annotations"]["flux.dev/scheduled-time"][:16]
    )  # the same minute
    assert "nextScheduleTime" not in entry  # suspended
    scheduled = [e for e in events_for(cluster, flux_ns, "ticker") if e["reason"] == "RunScheduled"]
    assert scheduled and meta["name"] in scheduled[0]["message"]


def test_an_unknown_time_zone_is_a_condition_and_an_event_not_a_run(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    bad = {"name": "typo", "cron": "* * * * *", "timeZone": "Europe/Atlantis"}
    cluster.apply(workflow_manifest("misdated", SOURCE, "ticking", schedules=[bad]), flux_ns)

    def scheduled_condition() -> dict[str, Any] | None:
        status = cluster.get("workflow", "misdated", flux_ns).get("status") or {}
        found = [c for c in status.get("conditions") or [] if c["type"] == "Scheduled"]
        return found[0] if found else None

    condition = cluster.wait_for("the Scheduled condition", scheduled_condition, 30)
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSchedule")
    assert "Europe/Atlantis" in condition["message"]
    reasons = {e["reason"] for e in events_for(cluster, flux_ns, "misdated")}
    assert "InvalidSchedule" in reasons
    # The workflow itself can still run; only the schedule is refused.
    ready = cluster.get("workflow", "misdated", flux_ns)["status"]["conditions"]
    assert {c["type"]: c["status"] for c in ready}["Ready"] == "True"
    assert scheduled_runs(cluster, flux_ns, "misdated") == []


def test_the_api_server_refuses_a_malformed_schedule(cluster: Cluster, flux_ns: str) -> None:
    bad = {"name": "Not_A_Name", "cron": "every minute", "concurrencyPolicy": "Sometimes"}
    proc = cluster.kubectl(
        "apply", "-n", flux_ns, "-f", "-",
        input=json.dumps(workflow_manifest("malformed", SOURCE, "ticking", schedules=[bad])),
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    for field in ("schedules[0].name", "schedules[0].cron", "schedules[0].concurrencyPolicy"):
        assert field in proc.stderr, proc.stderr
