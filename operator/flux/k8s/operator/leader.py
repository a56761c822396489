"""The operator's leader election: taking, keeping and giving up the Lease.

One replica acts, the others wait: :meth:`LeaderElector.acquire` returns once
this process holds the Lease, :meth:`LeaderElector.hold` renews it and returns
when leadership is lost (the caller then stops acting), and
:meth:`LeaderElector.release` gives it up at shutdown so a standby takes over
at its next look. The decisions are :mod:`flux.k8s.leadership`'s; this module
only reads and writes the Lease through the :class:`~flux.k8s.kube.Kube` seam.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

from flux.k8s import metrics
from flux.k8s.kube import LEASES, Conflict, Kube, KubeError, NotFound
from flux.k8s.kube.client import Body
from flux.k8s.leadership import (
    LeaderElection,
    LeaseRecord,
    Observed,
    claimed,
    lost,
    may_take,
    observe,
    released,
)

log = logging.getLogger(__name__)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    """This process's candidacy for the Lease ``settings.namespace/settings.name``."""

    def __init__(
        self,
        kube: Kube,
        settings: LeaderElection,
        identity: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.kube, self.settings, self.identity = kube, settings, identity
        self._clock, self._wall = clock, wall
        self._observed: Observed | None = None
        self._held: Body | None = None  # the Lease as our last successful write left it
        self._renewed_at: float | None = None
        # When the API server last answered about the Lease: a standby that hears
        # nothing cannot take over in time (readiness).
        self.answered_at: float | None = None
        # Given up for good (shutting down): never taken again by this process.
        self.released = False
        # Lost while held (not given up): the process must stop acting.
        self.lost = False
        metrics.OPERATOR_LEADER.set(0)

    @property
    def leading(self) -> bool:
        """Holding the Lease, renewed within the renew deadline."""
        return self._renewed_at is not None and not lost(
            self._renewed_at, self._clock(), self.settings
        )

    def in_contact(self) -> bool:
        """The API server answered about the Lease within the renew deadline."""
        return self.answered_at is not None and not lost(
            self.answered_at, self._clock(), self.settings
        )

    async def try_acquire_or_renew(self) -> bool:
        """One attempt: create the Lease, renew it, or take it if it may be taken."""
        if self.released:
            return False
        now = self._clock()
        try:
            lease = await self.kube.get(LEASES, self.settings.namespace, self.settings.name)
        except NotFound:
            self.answered_at = now
            return await self._write(None, self._new_lease())
        self.answered_at = now
        self._observed = observe(self._observed, lease, now)
        if not may_take(self._observed, self.identity, now):
            self._set_leading(None)
            return False
        record = LeaseRecord.of(lease)
        lease["spec"] = claimed(record, self.identity, self.settings, self._wall())
        return await self._write(lease, lease)

    async def acquire(self) -> None:
        """Returns once this process holds the Lease."""
        log.info(
            "leader election: %s is a candidate for lease %s/%s",
            self.identity,
            self.settings.namespace,
            self.settings.name,
        )
        # Polling is the protocol: a Lease says nothing when its holder dies.
        while not await self._attempt():  # noqa: ASYNC110
            await asyncio.sleep(self.settings.retry)
        log.info("leader election: %s now leads", self.identity)

    async def hold(self) -> None:
        """Renews the Lease every ``retry`` seconds; returns once leadership is lost
        (another holder, or no renewal within the renew deadline) or released."""
        while True:
            await asyncio.sleep(self.settings.retry)
            if self.released:
                return
            renewed = await self._attempt()
            if not self.leading:
                log.error(
                    "leader election: %s lost the lease (%s)",
                    self.identity,
                    "taken by another" if self._renewed_at is None else "no renewal in time",
                )
                self._set_leading(None)
                self.lost = True
                return
            if not renewed:
                log.warning("leader election: %s could not renew the lease", self.identity)

    async def release(self) -> None:
        """Give the Lease up, if held: a standby takes it at its next look. Best
        effort: when the API server does not answer, the Lease simply expires."""
        self.released = True
        held, self._held = self._held, None
        self._set_leading(None)
        if held is None:
            return
        held["spec"] = released(LeaseRecord.of(held), self._wall())
        try:
            await self.kube.replace(LEASES, self.settings.namespace, self.settings.name, held)
        except KubeError as exc:
            log.warning("leader election: could not release the lease: %s", exc)
        else:
            log.info("leader election: %s released the lease", self.identity)

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except KubeError as exc:
            # An API server restarting, a network blip: try again at the next
            # tick; the renew deadline decides when a leader must give up.
            log.warning("leader election: %s", exc)
            return False

    async def _write(self, read: Body | None, lease: Body) -> bool:
        started = self._clock()
        try:
            if read is None:
                written = await self.kube.create(LEASES, self.settings.namespace, lease)
            else:
                written = await self.kube.replace(
                    LEASES, self.settings.namespace, self.settings.name, lease
                )
        except Conflict:
            # Someone else wrote first (created it, renewed or took it).
            return False
        self.answered_at = started
        self._observed = observe(self._observed, written, started)
        # From when the request was sent: the Lease may have been valid a
        # little less long than our clock says since the answer came.
        self._set_leading(started, written)
        return True

    def _new_lease(self) -> Body:
        return {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
            "spec": claimed(None, self.identity, self.settings, self._wall()),
        }

    def _set_leading(self, renewed_at: float | None, held: Body | None = None) -> None:
        self._renewed_at, self._held = renewed_at, held
        metrics.OPERATOR_LEADER.set(1 if renewed_at is not None else 0)
