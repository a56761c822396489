"""Events about runs and Workflows, posted without holding up a pass.

A pass never waits on an Event (kopf's ``kopf.event``, which the operator used
before, queued them the same way): posting one is a request to the API server,
and the change it reports has been written either way. Each is posted by a
background task through an :class:`~flux.k8s.kube.events.EventRecorder`, which
logs a refused one instead of raising.
"""

from __future__ import annotations

import asyncio

from flux.k8s.kube.client import Body
from flux.k8s.kube.events import EventRecorder

COMPONENT = "flux-operator"


class BackgroundEvents:
    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder
        self._posting: set[asyncio.Task[None]] = set()

    def post(self, obj: Body, kind: str, reason: str, message: str) -> None:
        """Post an Event about ``obj`` as it is now, in the background."""
        # The Event names the object as it is now, not as a later pass may hold it.
        about: Body = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
        about["metadata"] = dict(obj["metadata"])
        task = asyncio.create_task(self.recorder.post(about, kind, reason, message))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the Events being posted, at most ``timeout`` seconds (at shutdown,
        and in tests)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._posting:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            await asyncio.wait(set(self._posting), timeout=left)
