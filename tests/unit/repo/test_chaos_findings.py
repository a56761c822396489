"""The chaos suite's judgement (benchmarks/chaos.py): what counts as lost, stuck,
wrong, or a step re-run after its completion was recorded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))

import chaos

T0 = 1_800_000_000.0


def _at(seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(T0 + seconds, dt.UTC).isoformat()


def _history(run: str) -> list[dict[str, Any]]:
    return [
        {"type": "WORKFLOW_STARTED", "source_id": run, "time": _at(0), "value": run},
        {"type": "TASK_STARTED", "source_id": "step#1", "time": _at(1),
         "value": {"args": [f"{run}/a", 1], "kwargs": {}}},
        {"type": "TASK_RETRY_STARTED", "source_id": "step#1", "time": _at(2),
         "value": {"attempt": 2, "error": {"type": "ConnectionError"}}},
        {"type": "TASK_COMPLETED", "source_id": "step#1", "time": _at(10), "value": 2},
    ]  # fmt: skip


def _line(run: str, key: str, t: float, event: str = "start") -> dict[str, Any]:
    return {"run": run, "key": f"{run}/{key}", "step": "attempt", "event": event,
            "pod": "p", "t": T0 + t}  # fmt: skip


def test_a_start_after_the_recorded_completion_is_a_rerun_and_one_before_is_not() -> None:
    history = _history("r")
    assert chaos.reruns(history, [_line("r", "a", 1.5), _line("r", "a", 9.9)]) == []
    found = chaos.reruns(history, [_line("r", "a", 10.5), _line("r", "a", 11, "finish")])
    assert len(found) == 1 and "step#1" in found[0] and "0.50 s after" in found[0]


def test_judge_counts_lost_stuck_wrong_and_retries() -> None:
    def body(workflow: str, phase: str, output: Any) -> dict[str, Any]:
        return {
            "spec": {"workflowRef": {"name": workflow}},
            "status": {"phase": phase, "output": output},
        }

    runs = {
        "sequential-0000": body("sequential", "Succeeded", 3),
        "fan-out-0001": body("fan-out", "Succeeded", [1, 2, 4]),
        "retried-0002": body("retried", "Running", None),
        "rolled-back-0003": body("rolled-back", "Failed", None),
    }
    created = [*runs, "slept-0004"]
    records = {"sequential-0000": [{"infrastructureRetries": 2, "lastError": {"type": "PodLost"}}]}
    found = chaos.judge(
        created, runs, {"sequential-0000": _history("sequential-0000")}, records, {}
    )
    assert found.lost == ["slept-0004: gone"]
    assert found.stuck == ["retried-0002: Running"]
    assert [w.split(" ")[0] for w in found.wrong] == ["fan-out-0001", "rolled-back-0003"]
    assert found.retries == {"ConnectionError": 1}
    assert found.infrastructure_retries == {"PodLost (attempt)": 2}
    assert not found.ok
    every = chaos.judge(["sequential-0000"], runs, {}, {}, {})
    assert every.ok


def test_every_scenario_names_a_function_of_the_source() -> None:
    compiled = compile(chaos.SOURCE, "chaos-source", "exec")
    names = set(compiled.co_names)
    assert {s.function for s in chaos.SCENARIOS} <= names


def test_the_results_section_is_replaced_not_appended(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Other\n\nkept\n")
    chaos.write_results("## Chaos (issue 14.3)\n\nfirst\n", results)
    chaos.write_results("## Chaos (issue 14.3)\n\nsecond\n", results)
    text = results.read_text()
    assert "second" in text and "first" not in text and "kept" in text
    assert text.count("## Chaos") == 1


def test_calls_are_told_apart_by_the_sourceId_status_history_uses() -> None:
    """A fan-out starts three calls before the first completes; the last one's pod
    starting after a sibling completed is no re-run (the first full run counted 13
    such, reading ``source_id``, which status.history does not have)."""

    def event(kind: str, call: str, at: float, value: Any = None) -> dict[str, Any]:
        return {"type": kind, "sourceId": call, "name": "step", "time": _at(at), "value": value}

    history = [
        *[event("TASK_STARTED", f"step#{i}", 1, {"args": [f"r/p{i}", i]}) for i in range(3)],
        event("TASK_COMPLETED", "step#0", 5, 1),
        event("TASK_COMPLETED", "step#1", 6, 2),
        event("TASK_COMPLETED", "step#2", 20, 3),
    ]
    assert chaos.reruns(history, [_line("r", "p2", 8), _line("r", "p0", 4)]) == []
    assert len(chaos.reruns(history, [_line("r", "p1", 7)])) == 1
