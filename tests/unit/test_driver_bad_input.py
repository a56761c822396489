"""A user's value the driver cannot decode fails the run, once, with the reason.

spec.input and resume input come from whoever may create or resume a run. A
value the codec refuses must end as a failed run with an InvalidInput error
(the operator adds the condition and the Event), never as a driver that
crashes on it again at every restart, or a shared driver that stops serving
every other run of its Workflow.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from test_driver import FakeRuns, complete_outstanding, new_run, pipeline_wf

from flux.runtime.driver import Driver
from flux.runtime.shared_driver import SharedDriver

# A tag the codec does not know: refused by the codec of every version.
UNKNOWN_TAG = {"$flux": "no-such-tag", "v": 1}


class MergingRuns(FakeRuns):
    """FakeRuns that also takes a merge patch, as the API server does."""

    async def patch_status(self, namespace: str, name: str, ops: Any) -> dict[str, Any]:
        if isinstance(ops, list):
            return await super().patch_status(namespace, name, ops)
        self.patches += 1
        status = self.body.setdefault("status", {})
        status.update(ops["status"])
        self.body["metadata"]["resourceVersion"] = str(self.patches)
        return copy.deepcopy(self.body)


def _error(runs: FakeRuns) -> dict[str, Any]:
    status = runs.body["status"]
    assert status["phase"] == "Failed", status
    error: dict[str, Any] = status["error"]
    # WorkflowInputError: the operator's condition says InvalidInput.
    assert error["type"] == "WorkflowInputError", error
    return error


def test_spec_input_the_codec_refuses_fails_the_run() -> None:
    runs = MergingRuns(new_run(UNKNOWN_TAG))
    driver = Driver(runs, "ns", "r1", pipeline_wf)  # type: ignore[arg-type]
    assert asyncio.run(driver.run()) == 1
    error = _error(runs)
    assert "WorkflowInputError: spec.input cannot be decoded: " in error["message"]
    assert "no-such-tag" in error["message"]
    assert "history" not in runs.body["status"]  # nothing ran


def _paused_run() -> MergingRuns:
    """A run of pipeline_wf driven to its pause, as the cluster would hold it."""
    runs = MergingRuns(new_run(3))
    driver = Driver(runs, "ns", "r1", pipeline_wf, linger=0)  # type: ignore[arg-type]

    async def to_pause() -> None:
        instance = await driver.begin(copy.deepcopy(runs.body))
        assert instance is not None
        await driver.advance(instance, copy.deepcopy(runs.body))
        for _ in range(2):
            assert complete_outstanding(runs)
            await driver.advance(instance, copy.deepcopy(runs.body))

    asyncio.run(to_pause())
    assert runs.body["status"]["phase"] == "Paused"
    return runs


def _refused(runs: FakeRuns) -> None:
    """A refused resume: removed, the run still paused, nothing failed or written."""
    status = runs.body["status"]
    assert status["phase"] == "Paused", status
    assert "resume" not in status
    assert "error" not in status and "output" not in status


def test_resume_input_the_codec_refuses_is_removed_and_the_run_stays_paused() -> None:
    runs = _paused_run()
    runs.body["status"]["resume"] = {"input": UNKNOWN_TAG}
    events = FakeEvents()
    driver = Driver(runs, "ns", "r1", pipeline_wf, linger=0, events=events)  # type: ignore[arg-type]
    assert asyncio.run(driver.run()) == 0  # the driver ends as for any pause, not a crash
    _refused(runs)
    [(kind, reason, message)] = events.posted
    assert (kind, reason) == ("Warning", "ResumeRefused")
    assert "status.resume.input refused: " in message and "no-such-tag" in message


def test_bad_resume_input_of_one_run_leaves_the_shared_driver_serving() -> None:
    runs = _paused_run()
    runs.body["status"]["resume"] = {"input": UNKNOWN_TAG}
    runs.body["status"]["driver"] = {"shared": True}
    driver = SharedDriver(runs, None, "ns", "wf", pipeline_wf)  # type: ignore[arg-type]

    async def scenario() -> None:
        driver.offer("MODIFIED", copy.deepcopy(runs.body))
        await driver.drain()  # raises what would end the shared driver

    asyncio.run(scenario())
    _refused(runs)
    assert driver.held == {}


class FakeEvents:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []

    async def post(self, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        self.posted.append((kind, reason, message))


def test_resume_input_on_a_run_that_is_not_paused_is_removed_with_a_warning() -> None:
    runs = MergingRuns(new_run(3))
    events = FakeEvents()
    driver = Driver(runs, "ns", "r1", pipeline_wf, events=events)  # type: ignore[arg-type]

    async def scenario() -> None:
        instance = await driver.begin(copy.deepcopy(runs.body))
        assert instance is not None
        await driver.advance(instance, copy.deepcopy(runs.body))  # its first task runs
        runs.body["status"]["resume"] = {"input": "too early"}
        await driver.advance(instance, copy.deepcopy(runs.body))

    asyncio.run(scenario())
    status = runs.body["status"]
    assert status["phase"] == "Running" and "resume" not in status
    (warning,) = [e for e in events.posted if e[1] == "ResumeIgnored"]
    assert warning[0] == "Warning"
    assert warning[2].startswith("status.resume was set while the run was Running, not paused")


def test_a_resume_that_is_delivered_is_no_warning() -> None:
    runs = _paused_run()
    runs.body["status"]["resume"] = {"input": "ok"}
    events = FakeEvents()
    driver = Driver(runs, "ns", "r1", pipeline_wf, linger=0, events=events)  # type: ignore[arg-type]
    assert asyncio.run(driver.run()) == 0
    assert runs.body["status"]["phase"] == "Succeeded"
    assert [e[1] for e in events.posted] == ["Succeeded"]
