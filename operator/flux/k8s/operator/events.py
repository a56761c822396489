"""Events about runs and Workflows, posted without holding up a pass.

A pass never waits on an Event (kopf's ``kopf.event``, which the operator used
before, queued them the same way): posting one is a request to the API server,
and the change it reports has been written either way. Each is posted by a
background task through an :class:`~flux.k8s.kube.events.EventRecorder`, which
logs a refused one instead of raising.
"""

from __future__ import annotations

from flux.k8s.kube.client import Body
from flux.k8s.kube.events import EventRecorder
from flux.k8s.operator.background import BackgroundTasks

COMPONENT = "flux-operator"


class BackgroundEvents:
    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder
        self._posting = BackgroundTasks()

    def post(self, obj: Body, kind: str, reason: str, message: str) -> None:
        """Post an Event about ``obj`` as it is now, in the background."""
        # The Event names the object as it is now, not as a later pass may hold it.
        about: Body = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
        about["metadata"] = dict(obj["metadata"])
        self._posting.start(self.recorder.post(about, kind, reason, message))

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the Events being posted, at most ``timeout`` seconds (at shutdown,
        and in tests)."""
        await self._posting.drain(timeout)
