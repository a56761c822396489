"""The kopf registration: what the operator does on startup, login and cleanup,
and which watch events reach the :class:`~.reconciler.Reconciler`.

Handlers only hand events on; the only module of the operator importing kopf.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from flux.k8s.config import OperatorConfig
from flux.k8s.kube.client import Body
from flux.k8s.kube.events import EventRecorder
from flux.k8s.kube.http import KUBECONFIG_ENV, KubeClient, connect
from flux.k8s.kube.resources import GROUP, RUNS, VERSION, WORKFLOWS
from flux.k8s.labels import LABEL_ROLE, LABEL_RUN
from flux.k8s.operator.api_metrics import count_request
from flux.k8s.operator.events import COMPONENT, BackgroundEvents
from flux.k8s.operator.reconciler import Reconciler
from flux.k8s.states import PodRole

# How long shutting down waits for Events and pod clearing still on their way.
BACKGROUND_AT_SHUTDOWN_SECONDS = 5.0
# The memo key of an ``async () -> None`` that gives up leadership at cleanup.
RELEASE_LEADERSHIP = "release_leadership"


class _NoDiffBase(kopf.DiffBaseStorage):
    """Every handler here takes raw events; none reacts to what changed, so kopf
    needs no "essence" of each body to diff. Building one deep-copies the whole
    object on every watch event: at a thousand runs a minute, the largest
    single cost in the operator."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
async def _startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    # Only our own Events, not one per handler log line.
    settings.posting.level = logging.ERROR
    settings.persistence.diffbase_storage = _NoDiffBase()
    # (No batching setting: kopf hands each event on as it comes since it dropped
    # time-based batching; setting batch_window only warns that it does nothing.)
    settings.watching.server_timeout = 600
    api_client = await connect()
    memo["kube"] = KubeClient(api_client, observe=count_request)
    config = OperatorConfig.from_env()
    # The metrics server and flux_build are started by flux.k8s.__main__ before the
    # leader election, so that standbys are scraped too.
    # Events go through a client of their own, uncounted: the request metrics
    # are the reconciler's own requests (kopf posted the Events before).
    memo["events"] = BackgroundEvents(EventRecorder(KubeClient(api_client), COMPONENT))
    memo["reconciler"] = Reconciler(memo["kube"], config, memo["events"])
    memo["backstop"] = asyncio.create_task(memo["reconciler"].backstop())
    memo["expiry"] = asyncio.create_task(memo["reconciler"].expire())


@kopf.on.login()
def _login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """The same credentials as our own client: FLUX_KUBECONFIG first, then the usual ones."""
    kubeconfig = os.environ.get(KUBECONFIG_ENV)
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig
        return kopf.login_with_kubeconfig(settings=settings, **kwargs)
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if host:
        info = kopf.login_with_service_account(settings=settings, **kwargs)
        if info is None:
            return None
        # kopf names the API server kubernetes.default.svc, which needs cluster DNS;
        # the address the kubelet gives every pod works without it (as the drivers use).
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return dataclasses.replace(info, server=server)
    return kopf.login_with_kubeconfig(settings=settings, **kwargs)


@kopf.on.cleanup()
async def _cleanup(memo: Any, **_: Any) -> None:
    memo["backstop"].cancel()
    memo["expiry"].cancel()
    memo["reconciler"].stop()
    # Hand over now, not after kopf waited for every task to end (up to 5 s):
    # flux.k8s.__main__ gives the Lease's release, when it elected this process.
    release = memo.get(RELEASE_LEADERSHIP)
    if release is not None:
        await release()
    # The Events and pod deletions still on their way, unless the API server does
    # not answer: shutting down must not wait on a request's timeout. A deletion
    # cut short is planned again by whichever replica leads next.
    await asyncio.gather(
        memo["events"].drain(timeout=BACKGROUND_AT_SHUTDOWN_SECONDS),
        memo["reconciler"].applier.clearing.drain(timeout=BACKGROUND_AT_SHUTDOWN_SECONDS),
    )
    await memo["kube"].close()


@kopf.on.event(GROUP, VERSION, RUNS.plural)
async def _run_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    reconciler: Reconciler = memo["reconciler"]
    await reconciler.run_event(event.get("type"), dict(event["object"]))


@kopf.on.event("", "v1", "pods", labels={LABEL_RUN: kopf.PRESENT})
async def _pod_event(event: kopf.RawEvent, labels: Mapping[str, str], memo: Any, **_: Any) -> None:
    reconciler: Reconciler = memo["reconciler"]
    await reconciler.pod_event(str(event.get("type")), dict(event["object"]), labels[LABEL_RUN])


@kopf.on.event("", "v1", "pods", labels={LABEL_ROLE: PodRole.SHARED_DRIVER.value})
async def _shared_driver_event(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    reconciler: Reconciler = memo["reconciler"]
    await reconciler.shared_driver_event(str(event.get("type")), _plain(body))


@kopf.on.event(GROUP, VERSION, WORKFLOWS.plural)
async def _workflow_event(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    reconciler: Reconciler = memo["reconciler"]
    await reconciler.workflow_event(event.get("type"), _plain(body))


def _plain(body: kopf.Body) -> Body:
    return json.loads(json.dumps(dict(body), default=dict))  # type: ignore[no-any-return]
