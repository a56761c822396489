"""The operator's bound on per-run driver pods running at once, and the runs
waiting for one (``OperatorConfig.max_driver_pods``).

A pass asks :meth:`DriverSlots.slots_for` how many driver pods its run may
start, plans, and tells :meth:`DriverSlots.planned` what it decided, with no
``await`` in between: passes of different runs interleave at every await, and
two of them must not both take the last slot. Driver pods count from their
creation until the watch shows them finished or deleted; runs waiting are
served in turn, those whose driver already started once (a run in progress,
holding task pods) before new ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from flux.k8s import labels
from flux.k8s.bodies import as_pods
from flux.k8s.kube.client import Body
from flux.k8s.operator.cache import Key
from flux.k8s.pod_view import PodView
from flux.k8s.reconcile import Plan
from flux.k8s.states import PodRole


class DriverSlots:
    def __init__(self, limit: int, wake: Callable[[Key], None]) -> None:
        """``wake`` asks for a pass of a waiting run when a slot frees up."""
        self.limit = limit
        self._wake = wake
        # Driver pods counted, (namespace, pod) -> their run's key.
        self._held: dict[Key, Key] = {}
        # Runs waiting, in the order they are served (dicts keep insertion order).
        self._resuming: dict[Key, None] = {}
        self._new: dict[Key, None] = {}

    @property
    def running(self) -> int:
        return len(self._held)

    @property
    def waiting(self) -> int:
        return len(self._resuming) + len(self._new)

    def slots_for(self, run: Key, status: Mapping[str, Any]) -> int:
        """Driver pods ``run`` (its ``status`` as the pass read it) may start now:
        the free slots less the runs ahead of it."""
        free = self.limit - len(self._held)
        if free <= 0:
            return 0
        if run in self._resuming:
            ahead = _position(self._resuming, run, free)
        elif run in self._new:
            ahead = len(self._resuming) + _position(self._new, run, free)
        elif _started_before(status):
            # A run in progress whose driver finished and is needed again.
            ahead = len(self._resuming)
        else:
            ahead = self.waiting
        return max(free - ahead, 0)

    def planned(self, run: Key, status: Mapping[str, Any], plan: Plan) -> None:
        """What the pass of ``run`` (``status`` as it read it) decided: a driver
        pod to create, or to wait."""
        namespace = run[0]
        drivers = [
            pod["metadata"]["name"]
            for pod in plan.create
            if (pod["metadata"].get("labels") or {}).get(labels.LABEL_ROLE) == PodRole.DRIVER
        ]
        for name in drivers:
            self._held[(namespace, name)] = run
        driver = plan.status.get("driver", status.get("driver")) or {}
        if drivers or not driver.get("queued"):
            self._unqueue(run)
        elif run not in self._resuming and run not in self._new:
            (self._resuming if _started_before(status) else self._new)[run] = None

    def pod_seen(self, event: str, pod: Body) -> None:
        """A per-run pod's watch event: a driver pod counts until it finished or is gone.

        Pods listed when the operator starts count too, so a restart keeps the bound."""
        meta = pod["metadata"]
        pod_labels = meta.get("labels") or {}
        if pod_labels.get(labels.LABEL_ROLE) != PodRole.DRIVER:
            return
        key = (meta["namespace"], meta["name"])
        [body] = as_pods([pod])
        if event == "DELETED" or PodView.from_pod(body).finished:
            if self._held.pop(key, None) is not None:
                self._serve()
        elif key not in self._held:
            self._held[key] = (meta["namespace"], pod_labels.get(labels.LABEL_RUN, ""))

    def finished(self, run: Key) -> None:
        """The run has finished: it waits for nothing. Its driver pod counts until
        it has exited (it posts the run's last Event first)."""
        self._unqueue(run)

    def forget_run(self, run: Key) -> None:
        """The run is gone, its pods with it: they count no longer (also those
        whose creation failed, which no watch event will release)."""
        self._unqueue(run)
        held = [pod for pod, owner in self._held.items() if owner == run]
        for pod in held:
            del self._held[pod]
        if held:
            self._serve()

    def _unqueue(self, run: Key) -> None:
        self._resuming.pop(run, None)
        self._new.pop(run, None)

    def _serve(self) -> None:
        """Wake the runs at the head of the queue, as many as slots are free."""
        free = self.limit - len(self._held)
        for run in itertools.islice(itertools.chain(self._resuming, self._new), max(free, 0)):
            self._wake(run)


def _position(queue: dict[Key, None], run: Key, bound: int) -> int:
    """``run``'s place in ``queue``, counted up to ``bound`` (more makes no difference)."""
    for place, key in enumerate(queue):
        if key == run or place >= bound:
            return place
    return bound


def _started_before(status: Mapping[str, Any]) -> bool:
    return bool((status.get("driver") or {}).get("starts"))
