"""What is kept of a task pod's log, and for which calls (pure)."""

from __future__ import annotations

import json
import random
from typing import Any

from flux.k8s import archive, log_archive
from flux.k8s.protocol import RESULT_LOG_MARKER, BatchItem, BatchSpec, TaskSpec
from flux.k8s.states import Step


def pod_with(env_value: str, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "r1-p",
            "labels": {"flux.dev/role": "task"},
            "annotations": annotations,
        },
        "spec": {"containers": [{"env": [{"name": "FLUX_TASK", "value": env_value}]}]},
        "status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 0}}}]},
    }


def test_a_long_log_keeps_its_last_64_kib_on_a_character_boundary() -> None:
    text = "é" * 40_000 + "the end\n"  # 80 008 bytes
    kept, truncated = log_archive.log_tail(text)
    assert truncated and kept.endswith("the end\n")
    assert len(kept.encode()) <= log_archive.LOG_TAIL_BYTES
    assert len(kept.encode()) >= log_archive.LOG_TAIL_BYTES - 1
    assert log_archive.log_tail("short\n") == ("short\n", False)


def test_the_result_line_is_not_kept_as_log() -> None:
    text = f"one\ntwo\n\n{RESULT_LOG_MARKER}{{}}\n"
    assert log_archive.log_tail(text) == ("one\ntwo\n", False)


def test_a_batch_pod_names_every_call_it_ran() -> None:
    spec = BatchSpec(
        run="r1",
        task="m:t",
        items=[BatchItem(call_id=f"t#{i}", name="t", attempt=i + 1) for i in range(3)],
    )
    steps = log_archive.pod_steps(pod_with(spec.to_env()))
    assert [(s["callId"], s["attempt"]) for s in steps] == [("t#0", 1), ("t#1", 2), ("t#2", 3)]
    entry = log_archive.entry(pod_with(spec.to_env()), "all three\n")
    assert log_archive.matches(entry, "t#1", 2) and not log_archive.matches(entry, "t#1", 1)


def test_a_single_pod_names_its_call_step_and_attempt() -> None:
    spec = TaskSpec(run="r1", call_id="t#4", name="t", task="m:t", step=Step.ROLLBACK, attempt=2)
    steps = log_archive.pod_steps(pod_with(json.dumps(spec.to_json())))
    assert steps == [{"callId": "t#4", "step": "rollback", "attempt": 2}]
    # An unreadable spec: the annotations say it.
    noted = pod_with("{", **{"flux.dev/call-id": "t#5", "flux.dev/attempt": "3"})
    assert log_archive.pod_steps(noted) == [{"callId": "t#5", "step": "attempt", "attempt": 3}]


def test_logs_too_large_for_one_configmap_are_split_and_each_pod_read_back_once() -> None:
    run = {
        "metadata": {"name": "r1", "namespace": "ns", "uid": "u"},
        "apiVersion": "v",
        "kind": "k",
    }
    noise = random.Random(7).randbytes(64 * 1024)  # compresses little
    entries = [
        log_archive.entry(
            {**pod_with("{"), "metadata": {"name": f"r1-p{i}"}}, noise.hex()[: 60 * 1024]
        )
        for i in range(40)
    ]
    maps = log_archive.configmaps(run, entries)
    assert len(maps) > 1
    assert len({m["metadata"]["name"] for m in maps}) == len(maps)
    back = [item for m in maps for item in archive.read_payload(m)]
    missing = {**entries[0], "missing": "gone", "log": ""}
    assert [e["pod"] for e in log_archive.ordered([missing, *back])] == sorted(
        e["pod"] for e in entries
    )
    assert log_archive.ordered([missing, *back])[0]["missing"] is None
