"""A user's value the driver cannot decode fails the run, once, with the reason.

spec.input and resume input come from whoever may create or resume a run. A
value the codec refuses must end as a failed run with an InvalidInput error
(the driver writes the condition with it and posts the Event), never as a driver that
crashes on it again at every restart, or a shared driver that stops serving
every other run of its Workflow.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from flux.k8s.kube import EVENTS, RUNS, Conflict
from flux.k8s.kube.events import EventRecorder
from flux.runtime.driver import Driver
from flux.runtime.shared_driver import SharedDriver
from flux.workflow import Workflow

if TYPE_CHECKING:
    from support.drivers import DriverKube, Runs

# A tag the codec does not know: refused by the codec of every version.
UNKNOWN_TAG = {"$flux": "no-such-tag", "v": 1}


def _error(runs: Runs) -> dict[str, Any]:
    status = runs.status()
    assert status["phase"] == "Failed", status
    error: dict[str, Any] = status["error"]
    # WorkflowInputError: the operator's condition says InvalidInput.
    assert error["type"] == "WorkflowInputError", error
    return error


def test_spec_input_the_codec_refuses_fails_the_run(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    kube.merge_allowed = True
    runs.new(UNKNOWN_TAG)
    driver = Driver(kube, "ns", "r1", pipeline_wf, events=EventRecorder(kube, "flux-driver"))
    assert asyncio.run(driver.run()) == 1
    error = _error(runs)
    assert "WorkflowInputError: spec.input cannot be decoded: " in error["message"]
    assert "no-such-tag" in error["message"]
    assert "history" not in runs.status()  # nothing ran
    # The condition in the same write as the phase, the Event by the same writer:
    # never Failed with a Succeeded condition still Pending, however briefly.
    assert kube.count("patch", "workflowruns/status") == 1
    (condition,) = runs.status()["conditions"]
    assert (condition["type"], condition["status"]) == ("Succeeded", "False")
    assert condition["reason"] == "InvalidInput"
    (event,) = kube.all(EVENTS, "ns")
    assert (event["type"], event["reason"]) == ("Warning", "InvalidInput")


def test_failing_a_run_another_writer_changed_meanwhile_reads_it_again(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    kube.merge_allowed = True
    runs.new(UNKNOWN_TAG)
    kube.fail("patch", "workflowruns/status", Conflict("the object has been modified"))
    assert asyncio.run(Driver(kube, "ns", "r1", pipeline_wf).run()) == 1
    assert kube.count("get", RUNS) >= 2
    assert runs.status()["conditions"][0]["reason"] == "InvalidInput"


def _paused_run(kube: DriverKube, runs: Runs, workflow: Workflow[Any]) -> None:
    """A run of pipeline_wf driven to its pause, as the cluster would hold it."""
    runs.new(3)
    driver = Driver(kube, "ns", "r1", workflow, linger=0)

    async def to_pause() -> None:
        instance = await driver.begin(runs.body())
        assert instance is not None
        await driver.advance(instance, runs.body())
        for _ in range(2):
            assert runs.complete_outstanding()
            await driver.advance(instance, runs.body())

    asyncio.run(to_pause())
    assert runs.status()["phase"] == "Paused"


def _refused(runs: Runs) -> None:
    """A refused resume: removed, the run still paused, nothing failed or written."""
    status = runs.status()
    assert status["phase"] == "Paused", status
    assert "resume" not in status
    assert "error" not in status and "output" not in status


def test_resume_input_the_codec_refuses_is_removed_and_the_run_stays_paused(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    _paused_run(kube, runs, pipeline_wf)
    runs.set_status(resume={"input": UNKNOWN_TAG})
    events = EventRecorder(kube, "flux-driver")
    driver = Driver(kube, "ns", "r1", pipeline_wf, linger=0, events=events)
    assert asyncio.run(driver.run()) == 0  # the driver ends as for any pause, not a crash
    _refused(runs)
    [(_, kind, reason, message)] = runs.events()
    assert (kind, reason) == ("Warning", "ResumeRefused")
    assert "status.resume.input refused: " in message and "no-such-tag" in message


def test_bad_resume_input_of_one_run_leaves_the_shared_driver_serving(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    _paused_run(kube, runs, pipeline_wf)
    runs.set_status(resume={"input": UNKNOWN_TAG}, driver={"shared": True})
    driver = SharedDriver(kube, "ns", "wf", pipeline_wf)

    async def scenario() -> None:
        driver.offer("MODIFIED", runs.body())
        await driver.drain()  # raises what would end the shared driver

    asyncio.run(scenario())
    _refused(runs)
    assert driver.held == {}


def test_resume_input_on_a_run_that_is_not_paused_is_removed_with_a_warning(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    runs.new(3)
    events = EventRecorder(kube, "flux-driver")
    driver = Driver(kube, "ns", "r1", pipeline_wf, events=events)

    async def scenario() -> None:
        instance = await driver.begin(runs.body())
        assert instance is not None
        await driver.advance(instance, runs.body())  # its first task runs
        runs.set_status(resume={"input": "too early"})
        await driver.advance(instance, runs.body())

    asyncio.run(scenario())
    status = runs.status()
    assert status["phase"] == "Running" and "resume" not in status
    (warning,) = [e for e in runs.events() if e[2] == "ResumeIgnored"]
    assert warning[1] == "Warning"
    assert warning[3].startswith("status.resume was set while the run was Running, not paused")


def test_a_resume_that_is_delivered_is_no_warning(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    _paused_run(kube, runs, pipeline_wf)
    runs.set_status(resume={"input": "ok"})
    events = EventRecorder(kube, "flux-driver")
    driver = Driver(kube, "ns", "r1", pipeline_wf, linger=0, events=events)
    assert asyncio.run(driver.run()) == 0
    assert runs.status()["phase"] == "Succeeded"
    assert [e[2] for e in runs.events()] == ["Succeeded"]
