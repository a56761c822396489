"""The operator's leader election on the in-memory API server: one leader at a
time, a standby takes over once the Lease expires or is released, a leader
that cannot renew gives up, and the leader gauge follows."""

from __future__ import annotations

import asyncio
import datetime as dt

from flux.k8s import metrics
from flux.k8s.kube import LEASES, Conflict, Unreachable
from flux.k8s.kube.fake import FakeKube
from flux.k8s.leadership import LeaderElection
from flux.k8s.operator.leader import LeaderElector

SETTINGS = LeaderElection(namespace="flux-workflows", duration=8, renew_deadline=6, retry=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(
    kube: FakeKube, who: str, clock: Clock, settings: LeaderElection = SETTINGS
) -> LeaderElector:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return LeaderElector(
        kube,
        settings,
        who,
        clock=clock,
        wall=lambda: start + dt.timedelta(seconds=clock.now),
    )


def holder(kube: FakeKube) -> str:
    lease = kube.stored(LEASES, "flux-workflows", "flux-operator")
    assert lease is not None
    return str(lease["spec"]["holderIdentity"])


def gauge() -> float:
    return metrics.OPERATOR_LEADER._value.get()


def test_the_first_candidate_creates_the_lease_and_leads() -> None:
    kube, clock = FakeKube(), Clock()
    a = elector(kube, "a", clock)
    assert gauge() == 0
    assert asyncio.run(a.try_acquire_or_renew())
    assert a.leading and holder(kube) == "a" and gauge() == 1
    lease = kube.stored(LEASES, "flux-workflows", "flux-operator")
    assert lease is not None and lease["apiVersion"] == "coordination.k8s.io/v1"
    assert lease["spec"]["leaseDurationSeconds"] == 8


def test_a_standby_waits_while_the_leader_renews_and_takes_over_when_it_stops() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        for _ in range(20):  # 20 s of renewals every second: b never may take it
            clock.now += 1
            assert await a.try_acquire_or_renew()
            assert not await b.try_acquire_or_renew()
            assert not b.leading and b.in_contact()
        # a dies: b counts 8 s from when it last saw the record change.
        clock.now += 7.9
        assert not await b.try_acquire_or_renew()
        clock.now += 0.1
        assert await b.try_acquire_or_renew()

    asyncio.run(scenario())
    assert holder(kube) == "b"
    lease = kube.stored(LEASES, "flux-workflows", "flux-operator")
    assert lease is not None and lease["spec"]["leaseTransitions"] == 1


def test_a_write_that_loses_the_race_does_not_lead() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    asyncio.run(a.try_acquire_or_renew())
    clock.now += 9  # expired for b
    kube.fail("update", LEASES, Conflict("the object has been modified"))
    assert not asyncio.run(b.try_acquire_or_renew())
    assert not b.leading and holder(kube) == "a"


def test_two_candidates_of_an_expired_lease_replace_at_the_version_they_read() -> None:
    """The second write carries the resourceVersion both read: the API server
    (here the fake) refuses it, so one of two racing standbys wins."""
    kube, clock = FakeKube(), Clock()
    a, b, c = (elector(kube, who, clock) for who in "abc")

    async def scenario() -> tuple[bool, bool]:
        await a.try_acquire_or_renew()
        await b.try_acquire_or_renew()
        await c.try_acquire_or_renew()
        clock.now += 9
        read = kube.get

        async def both_read_first(*args: object, **kwargs: object) -> object:
            found = await read(*args, **kwargs)  # type: ignore[arg-type]
            await asyncio.sleep(0)  # let the other candidate read the same version
            return found

        kube.get = both_read_first  # type: ignore[method-assign]
        return tuple(  # type: ignore[return-value]
            await asyncio.gather(b.try_acquire_or_renew(), c.try_acquire_or_renew())
        )

    results = asyncio.run(scenario())
    assert sorted(results) == [False, True]
    assert holder(kube) == ("b" if results[0] else "c")


def test_a_released_lease_is_taken_at_the_next_look() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)

    async def scenario() -> None:
        await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        await a.release()
        assert not a.leading and gauge() == 0
        clock.now += 0.5  # well inside the lease duration
        assert await b.try_acquire_or_renew()

    asyncio.run(scenario())
    assert holder(kube) == "b"


def test_a_leader_that_cannot_renew_gives_up_within_the_renew_deadline() -> None:
    fast = LeaderElection(namespace="flux-workflows", duration=0.4, renew_deadline=0.2, retry=0.02)
    kube = FakeKube()
    a = LeaderElector(kube, fast, "a")

    async def scenario() -> float:
        await a.acquire()
        kube.fail("get", LEASES, Unreachable("connection refused"), times=1000)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(a.hold(), 2)
        return loop.time() - started

    took = asyncio.run(scenario())
    assert 0.15 <= took < 0.4
    assert not a.leading and gauge() == 0


def test_a_leader_whose_lease_was_taken_stops_at_its_next_renewal() -> None:
    fast = LeaderElection(namespace="flux-workflows", duration=0.4, renew_deadline=0.2, retry=0.02)
    kube = FakeKube()
    a = LeaderElector(kube, fast, "a")

    async def scenario() -> None:
        await a.acquire()
        lease = await kube.get(LEASES, "flux-workflows", "flux-operator")
        lease["spec"]["holderIdentity"] = "usurper"
        await kube.replace(LEASES, "flux-workflows", "flux-operator", lease)
        await asyncio.wait_for(a.hold(), 0.15)

    asyncio.run(scenario())
    assert not a.leading and holder(kube) == "usurper"


def test_a_released_leader_stops_renewing_and_never_takes_the_lease_again() -> None:
    fast = LeaderElection(namespace="flux-workflows", duration=0.4, renew_deadline=0.2, retry=0.02)
    kube = FakeKube()
    a = LeaderElector(kube, fast, "a")

    async def scenario() -> None:
        await a.acquire()
        holding = asyncio.create_task(a.hold())
        await asyncio.sleep(0.05)
        await a.release()
        await asyncio.wait_for(holding, 0.1)  # returns instead of renewing
        assert not await a.try_acquire_or_renew()  # free, but not for us any more

    asyncio.run(scenario())
    assert holder(kube) == "" and a.released and not a.lost


def test_losing_the_lease_is_told_apart_from_giving_it_up() -> None:
    fast = LeaderElection(namespace="flux-workflows", duration=0.4, renew_deadline=0.2, retry=0.02)
    kube = FakeKube()
    a = LeaderElector(kube, fast, "a")

    async def scenario() -> None:
        await a.acquire()
        kube.fail("get", LEASES, Unreachable("connection refused"), times=1000)
        await asyncio.wait_for(a.hold(), 1)

    asyncio.run(scenario())
    assert a.lost and not a.released


def test_readiness_is_the_leader_with_kopf_started_or_a_standby_in_touch() -> None:
    from flux.k8s.__main__ import ProbeState

    async def scenario() -> list[bool]:
        kube, clock = FakeKube(), Clock()
        seen = []
        state = ProbeState()
        seen.append(state.ready())  # no election, kopf not started
        state.kopf_ready.set()
        seen.append(state.ready())  # no election, kopf started
        state.kopf_ready.clear()
        a, b = elector(kube, "a", clock), elector(kube, "b", clock)
        state.elector = a
        await a.try_acquire_or_renew()
        seen.append(state.ready())  # leading, kopf not started
        state.kopf_ready.set()
        seen.append(state.ready())  # leading, kopf started
        state.elector = b
        await b.try_acquire_or_renew()
        seen.append(state.ready())  # standby that just read the Lease
        clock.now += 6
        seen.append(state.ready())  # standby without an answer for the renew deadline
        state.elector = a
        clock.now -= 6
        state.stopping = True
        seen.append(state.ready())  # shutting down
        return seen

    assert asyncio.run(scenario()) == [False, True, False, True, True, False, False]
