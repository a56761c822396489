"""On the cluster, a task that returns, raises and prints its secret leaves no plaintext.

The value comes from a Kubernetes Secret; only the task pods that request it get
it (as FLUX_SECRET_API_KEY). The pods mask it in what they report and print, so
the run object, its archive ConfigMaps (decompressed), the namespace's Events,
the pods' logs and the operator's log never hold it.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import pytest
from flux_runs import run_manifest, wait_phase, workflow_manifest

from flux.k8s import archive
from flux.redaction import MASK

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

SOURCE = """
import sys
import time

from flux import WorkflowExecutionContext, task, workflow


@task.with_options(secret_requests=["API_KEY"])
def give(secrets: dict = {}) -> dict:
    token = secrets["API_KEY"]
    print(f"printing {token}")
    print(f"complaining {token}", file=sys.stderr)
    sys.stdout.flush()
    time.sleep(10)  # the pod is deleted once its result is recorded: read its log now
    # Past the inline limit, masked too: the value moves to a ConfigMap of its own.
    return {"token": token, "big": ("pad " + token + "x" * 40 + "\\n") * 800}


@task.with_options(secret_requests=["API_KEY"])
def leak(secrets: dict = {}) -> None:
    raise ValueError(f"refused {secrets['API_KEY']}")


@task.with_options(secret_requests=["API_KEY"])
def item(n: int, secrets: dict = {}) -> str:
    return f"{n}:{secrets['API_KEY']}"


@task
def echo(value: str) -> str:
    return value


@workflow
async def leaky(ctx: WorkflowExecutionContext[None]) -> dict:
    given = await give()
    echoed = await echo(given["token"])
    items = await item.map([1, 2, 3], batch_size=3)
    try:
        await leak()
        caught = ""
    except Exception as exc:
        caught = str(exc)
    return {"token": given["token"], "echoed": echoed, "items": items, "caught": caught}


@workflow
async def failing(ctx: WorkflowExecutionContext[None]) -> None:
    await leak()
"""


def configmap_texts(cluster: Cluster, ns: str) -> list[str]:
    """Every ConfigMap of the namespace as JSON, and each archive payload decompressed."""
    configmaps = json.loads(cluster.kubectl("get", "configmaps", "-n", ns, "-o", "json").stdout)
    texts = [json.dumps(configmaps)]
    for configmap in configmaps["items"]:
        if archive.PAYLOAD_KEY in (configmap.get("binaryData") or {}):
            texts.append(json.dumps(archive.read_payload(configmap)))
    return texts


def pod_logs(cluster: Cluster, ns: str) -> dict[str, str]:
    names = cluster.kubectl(
        "get", "pods", "-n", ns, "-o", "jsonpath={.items[*].metadata.name}"
    ).stdout.split()
    logs = {}
    for name in names:
        proc = cluster.kubectl("logs", name, "-n", ns, "--all-containers", check=False)
        logs[name] = proc.stdout
    return logs


@pytest.mark.timeout(420)
def test_secrets_are_masked_in_run_archive_events_and_logs(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    value = f"s3cr3t-{uuid.uuid4().hex}"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api"},
            "stringData": {"token": value},
        },
        flux_ns,
    )
    secrets = {"API_KEY": {"secretName": "api", "key": "token"}}
    for function in ("leaky", "failing"):
        cluster.apply(workflow_manifest(function, SOURCE, function, secrets=secrets), flux_ns)
        cluster.apply(run_manifest(f"{function}-1", function), flux_ns)

    printed = cluster.wait_for(
        "the log of the task that prints its secret",
        lambda: [log for log in pod_logs(cluster, flux_ns).values() if "printing" in log],
        timeout=180,
        interval=1,
    )
    assert f"printing {MASK}" in printed[0] and f"complaining {MASK}" in printed[0]
    assert value not in printed[0]

    done = wait_phase(cluster, operator, flux_ns, "leaky-1", "Succeeded", "Failed", timeout=300)
    assert done["phase"] == "Succeeded", json.dumps(done.get("error"))
    failed = wait_phase(cluster, operator, flux_ns, "failing-1", "Succeeded", "Failed")
    assert failed["phase"] == "Failed"
    assert f"refused {MASK}" in json.dumps(failed["error"])

    output = done.get("output")
    if done.get("outputRef"):
        configmap = cluster.get("configmap", done["outputRef"]["configMap"], flux_ns)
        output = archive.read_payload(configmap)
    assert output["token"] == MASK and output["echoed"] == MASK
    assert output["items"] == [f"{n}:{MASK}" for n in (1, 2, 3)]
    assert f"refused {MASK}" in output["caught"]

    runs = cluster.kubectl("get", "fxrun", "-n", flux_ns, "-o", "json").stdout
    configmaps = configmap_texts(cluster, flux_ns)
    assert len(configmaps) > 1, "the large value was expected in an archive ConfigMap"
    assert any(f"pad {MASK}" in text for text in configmaps)
    events = cluster.kubectl("get", "events", "-n", flux_ns, "-o", "json").stdout
    logs = pod_logs(cluster, flux_ns)
    everything = {
        "run objects": runs,
        "configmaps": "\n".join(configmaps),
        "events": events,
        "operator log": operator.log_tail(100_000),
        **{f"log of pod {name}": log for name, log in logs.items()},
    }
    leaked = [where for where, text in everything.items() if value in text]
    assert not leaked, f"the secret's value is in: {', '.join(leaked)}"
    for log in logs.values():  # the driver's, and task pods not yet deleted
        if "printing" in log:
            assert f"printing {MASK}" in log
