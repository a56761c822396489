"""The driver pod's program: ``python -m flux.runtime.driver_main``.

The operator starts it with the environment of :mod:`flux.k8s.protocol`:
with ``FLUX_RUN`` it drives that one run (:class:`~flux.runtime.driver.Driver`),
with ``FLUX_WORKFLOW_NAME`` every shared-mode run of that Workflow
(:class:`~flux.runtime.shared_driver.SharedDriver`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from flux.k8s.kube import RUNS, Kube
from flux.k8s.kube.events import EventRecorder
from flux.k8s.kube.incluster import connect_in_cluster
from flux.k8s.kube.rest import KubeClient
from flux.k8s.protocol import (
    LINGER_ENV,
    NAMESPACE_ENV,
    REVISION_ENV,
    RUN_ENV,
    WORKFLOW_ENV,
    WORKFLOW_NAME_ENV,
)
from flux.runtime.driver import Driver, fail_to_load
from flux.runtime.loading import import_object
from flux.runtime.shared_driver import SharedDriver, serves
from flux.workflow import Workflow

# The name the driver's Events are reported by.
COMPONENT = "flux-driver"


async def drive(kube: Kube, env: dict[str, str]) -> int:
    """Drive what ``env`` names; the process's exit status."""
    namespace = env[NAMESPACE_ENV]
    linger = float(env.get(LINGER_ENV, "30"))
    shared_for = env.get(WORKFLOW_NAME_ENV)
    revision = env.get(REVISION_ENV)
    events = EventRecorder(kube, COMPONENT)
    try:
        workflow = import_object(env[WORKFLOW_ENV])
        if not isinstance(workflow, Workflow):
            raise TypeError(f"{env[WORKFLOW_ENV]} is not a @workflow")
    except Exception as exc:
        if shared_for:
            names = await served(kube, namespace, shared_for, revision)
        else:
            names = [env[RUN_ENV]]
        for name in names:
            await fail_to_load(kube, namespace, name, exc, events)
        return 1
    if shared_for:
        shared = SharedDriver(kube, namespace, shared_for, workflow, linger, events, revision)
        return await shared.serve()
    driver = Driver(kube, namespace, env[RUN_ENV], workflow, linger, events=events)
    return await driver.run()


async def served(
    kube: Kube, namespace: str, workflow_name: str, revision: str | None = None
) -> list[str]:
    """The runs a shared driver for ``workflow_name`` (of ``revision``) would serve now."""
    listed = await kube.list(
        RUNS, namespace, field_selector=f"spec.workflowRef.name={workflow_name}"
    )
    return [r["metadata"]["name"] for r in listed.get("items") or [] if serves(r, revision)]


async def main_async() -> int:
    # A driver runs in a pod only: its service account, and none of the
    # kubeconfig machinery (kubernetes-asyncio) to import.
    kube = KubeClient(connect_in_cluster())
    try:
        return await drive(kube, dict(os.environ))
    finally:
        await kube.close()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(main_async())


if __name__ == "__main__":
    sys.exit(main())
