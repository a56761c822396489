"""Task pods' logs read before the pods go: for results too large for a
termination message, and to keep each attempt's log tail (:mod:`flux.k8s.log_archive`).

A pass reads each pod's log at most once, whatever it needs it for. Keeping
logs is on the hot path (every finished task pod costs one read), so the reads
are bounded in number and time, and a read or write that fails never holds the
run up: the pod is deleted anyway and its log recorded as missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from flux.k8s import log_archive
from flux.k8s.kube import CONFIGMAPS, Kube, KubeError
from flux.k8s.kube.client import Body
from flux.k8s.kube.objects import create_or_replace

log = logging.getLogger(__name__)

# Log reads of one pass in flight at once (each may carry up to a few MiB).
LOG_READS = 8
# A log read slower than this is given up: the run must not wait on a kubelet.
LOG_READ_SECONDS = 10.0


class PodLogs:
    """The logs one pass read, by pod name; each pod's read at most once."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._texts: dict[str, str] = {}

    async def read(self, name: str) -> str:
        """The tail of the pod's log; raises :class:`KubeError` or :class:`TimeoutError`."""
        text = self._texts.get(name)
        if text is None:
            text = await asyncio.wait_for(
                self.kube.pod_log(self.namespace, name, tail_lines=log_archive.LOG_TAIL_LINES),
                LOG_READ_SECONDS,
            )
            self._texts[name] = text
        return text


class LogKeeper:
    """Keeps the log tails of the task pods a pass deletes, in ConfigMaps of the run."""

    def __init__(self, kube: Kube, reads: int = LOG_READS) -> None:
        self.kube = kube
        self.reads = reads

    async def keep(
        self, run: Body, pods: Sequence[Body], deleting: Sequence[str], logs: PodLogs
    ) -> None:
        names = set(log_archive.pods_to_keep(pods, deleting))
        if not names:
            return
        gate = asyncio.Semaphore(self.reads)

        async def one(pod: Body) -> log_archive.LogEntry:
            async with gate:
                try:
                    text: str | None = await logs.read(pod["metadata"]["name"])
                    missing = None
                except (KubeError, TimeoutError, OSError) as exc:
                    text, missing = None, _why(exc)
            return log_archive.entry(pod, text, missing)

        entries = await asyncio.gather(
            *(one(pod) for pod in pods if pod["metadata"]["name"] in names)
        )
        for manifest in log_archive.configmaps(run, entries):
            try:
                await create_or_replace(self.kube, CONFIGMAPS, manifest)
            except KubeError as exc:
                # The run goes on; only these logs are lost.
                log.warning(
                    "task logs of run %s/%s not kept: %s",
                    run["metadata"]["namespace"],
                    run["metadata"]["name"],
                    exc,
                )


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"the log was not read within {LOG_READ_SECONDS:g} s"
    return f"the log could not be read: {exc}"
