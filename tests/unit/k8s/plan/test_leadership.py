"""Leader election's pure decisions (flux.k8s.leadership): when a Lease may be
taken, what a claim and a release write, when a leader must stop."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from flux.k8s.leadership import (
    LeaderElection,
    LeaseRecord,
    Observed,
    claimed,
    lost,
    may_take,
    new_identity,
    observe,
    released,
)

SETTINGS = LeaderElection(duration=8, renew_deadline=6, retry=1)
WALL = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)


def lease(holder: str, duration: int = 8, **extra: object) -> dict[str, Any]:
    return {"spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, **extra}}


def test_settings_must_let_a_leader_stop_before_its_lease_can_be_taken() -> None:
    with pytest.raises(ValueError, match="retry < renew deadline < lease duration"):
        LeaderElection(duration=5, renew_deadline=6, retry=1)
    with pytest.raises(ValueError):
        LeaderElection(duration=8, renew_deadline=6, retry=0)


def test_settings_from_the_environment() -> None:
    env = {
        "FLUX_LEASE_NAME": "ops",
        "FLUX_LEASE_NAMESPACE": "flux-workflows",
        "FLUX_LEASE_DURATION_SECONDS": "12",
        "FLUX_LEASE_RENEW_DEADLINE_SECONDS": "9",
        "FLUX_LEASE_RETRY_SECONDS": "2",
    }
    got = LeaderElection.from_env(env)
    assert (got.enabled, got.name, got.namespace) == (True, "ops", "flux-workflows")
    assert (got.duration, got.renew_deadline, got.retry) == (12, 9, 2)
    assert LeaderElection.from_env({}) == LeaderElection()
    assert not LeaderElection.from_env({"FLUX_LEADER_ELECTION": "false"}).enabled


def test_identities_name_the_pod_and_differ_per_process() -> None:
    first, second = new_identity({"POD_NAME": "op-1"}), new_identity({"POD_NAME": "op-1"})
    assert first.startswith("op-1_") and second.startswith("op-1_") and first != second


def test_expiry_counts_from_when_the_record_last_changed_on_our_clock() -> None:
    seen = observe(None, lease("a", renewTime="t1"), now=100.0)
    assert observe(seen, lease("a", renewTime="t1"), now=105.0).since == 100.0
    assert observe(seen, lease("a", renewTime="t2"), now=105.0).since == 105.0


def test_a_lease_may_be_taken_when_free_ours_or_not_renewed_for_its_duration() -> None:
    assert may_take(Observed(lease("")["spec"], 0.0), "me", now=0.0)
    assert may_take(Observed(lease("me")["spec"], 0.0), "me", now=0.0)
    held = Observed(lease("other", duration=8)["spec"], 100.0)
    assert not may_take(held, "me", now=107.9)
    assert may_take(held, "me", now=108.0)
    # The holder's declared duration counts, not ours.
    longer = Observed(lease("other", duration=30)["spec"], 100.0)
    assert not may_take(longer, "me", now=120.0)


def test_claims_count_transitions_and_keep_the_acquire_time_on_renewal() -> None:
    new = claimed(None, "me", SETTINGS, WALL)
    assert new == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 8,
        "acquireTime": "2026-01-02T03:04:05.123456Z",
        "renewTime": "2026-01-02T03:04:05.123456Z",
        "leaseTransitions": 0,
    }
    later = WALL + dt.timedelta(seconds=1)
    renewed = claimed(LeaseRecord.of({"spec": new}), "me", SETTINGS, later)
    assert renewed["acquireTime"] == new["acquireTime"]
    assert renewed["renewTime"] == "2026-01-02T03:04:06.123456Z"
    assert renewed["leaseTransitions"] == 0
    taken = claimed(LeaseRecord.of({"spec": renewed}), "you", SETTINGS, later)
    assert taken["holderIdentity"] == "you"
    assert taken["acquireTime"] == renewed["renewTime"]
    assert taken["leaseTransitions"] == 1


def test_a_release_leaves_the_lease_free_at_once() -> None:
    record = LeaseRecord.of(lease("me", leaseTransitions=4))
    spec = released(record, WALL)
    assert spec["holderIdentity"] == "" and spec["leaseTransitions"] == 4
    assert may_take(Observed(spec, 50.0), "you", now=50.0)


def test_a_leader_stops_when_it_could_not_renew_for_the_renew_deadline() -> None:
    assert not lost(last_renewed=100.0, now=105.9, settings=SETTINGS)
    assert lost(last_renewed=100.0, now=106.0, settings=SETTINGS)
