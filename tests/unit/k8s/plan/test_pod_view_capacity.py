"""A pod the scheduler cannot place only because its node is full (its pod count)
waits for room; one no node can take (a request too large, a selector no node
matches) fails its attempt after the pending timeout. Found by the chaos suite
(benchmarks/chaos.py): a backlog past a node's 110 pods failed tasks with
PodStartError instead of running them as pods finished."""

from __future__ import annotations

from typing import Any

from flux.k8s.pod_view import PodView

TOO_MANY_PODS = (
    "0/2 nodes are available: 1 Too many pods, 1 node(s) had untolerated taint(s). "
    "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
    "1 Preemption is not helpful for scheduling."
)


def _pending(message: str) -> Any:
    return {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                }
            ],
        },
    }


def test_a_pod_waiting_only_for_room_on_a_full_node_is_not_stuck() -> None:
    assert not PodView.from_pod(_pending(TOO_MANY_PODS)).stuck_pending


def test_a_pod_no_node_can_take_is_stuck() -> None:
    for message in (
        "0/1 nodes are available: 1 Insufficient memory.",
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
    ):
        assert PodView.from_pod(_pending(message)).stuck_pending, message
