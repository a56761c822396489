"""Pod manifests for drivers and task steps (pure: dicts in, dicts out)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from flux.k8s import labels
from flux.k8s.bodies import RunBody, WorkflowBody
from flux.k8s.config import TASK_IMAGES_ENV, OperatorConfig
from flux.k8s.kube.resources import RUNS
from flux.k8s.protocol import (
    HOME_ENV,
    LINGER_ENV,
    NAMESPACE_ENV,
    REVISION_ENV,
    RUN_ENV,
    SOURCE_DIR_ENV,
    SOURCE_MOUNT_PATH,
    TASK_ENV,
    WORKFLOW_ENV,
    WORKFLOW_NAME_ENV,
    BatchSpec,
    TaskSpec,
)
from flux.k8s.revisions import SOURCE_KEY, Revision, run_revision, workflow_revision
from flux.k8s.states import PodRole, Step
from flux.pod_settings import PodSettings
from flux.step_runner import secret_env_name

# The image's entrypoint is an init (tini) plus python; pods set only python's
# arguments, so that the init stays PID 1 and SIGTERM ends the pod at once.
PYTHON_ARGS = ["-m"]
DRIVER_MODULE = "flux.runtime.driver_main"
TASK_MODULE = "flux.runtime.task"
RUN_AS_USER = 10001
HOME_MOUNT_PATH = "/flux/home"


def short_hash(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dns_label(*parts: str, limit: int = 63) -> str:
    """A name valid as a DNS label, unique for the parts, at most ``limit`` characters."""
    raw = "-".join(parts)
    slug = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    suffix = short_hash(raw, 8)
    return f"{slug[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"


def source_configmap_name(workflow_name: str, revision: str) -> str:
    """The immutable ConfigMap holding one revision of a Workflow (named by its
    hash: see :mod:`flux.k8s.revisions`); an inline one's pods mount its source."""
    prefix = dns_label("flux-source", workflow_name, limit=62 - len(revision))
    return f"{prefix}-{revision}"


def task_pod_name(run_name: str, call_id: str, start: int) -> str:
    """``start`` counts the pods started for the call, so every pod has a new name."""
    return dns_label(run_name, call_id, str(start))


def driver_pod_name(run_name: str, start: int) -> str:
    return dns_label(run_name, PodRole.DRIVER, str(start))


SHARED_DRIVER_SUFFIX = "-shared-driver"


def shared_driver_pod_name(workflow_name: str) -> str:
    """One name per Workflow: creating it when it exists is how runs share it.

    Not hashed: the driver isolation policy (deploy/driver-isolation-policy.yaml)
    recomputes it in CEL from a run's spec.workflowRef.name to tell whether the
    pod asking is that Workflow's shared driver. A Workflow name is a DNS
    subdomain, so the name is a valid pod name; per-run and task pod names end
    in a hash, so none of them ends like this.
    """
    return workflow_name + SHARED_DRIVER_SUFFIX


def current_revision(workflow: WorkflowBody, config: OperatorConfig) -> Revision:
    """The revision a run of ``workflow`` starting now records."""
    return workflow_revision(workflow.get("spec") or {}, workflow_image(workflow, config))


def revision_of(run: RunBody, workflow: WorkflowBody, config: OperatorConfig) -> Revision:
    """The code ``run``'s pods execute: the revision its status recorded at the start,
    never the Workflow's current one (that only for a run whose start is not recorded)."""
    return run_revision(run.get("status") or {}) or current_revision(workflow, config)


def owner_reference(run: Mapping[str, Any]) -> dict[str, Any]:
    """The reference that makes ``run`` (or a Workflow) own an object, so it goes with it."""
    meta = run["metadata"]
    return {
        "apiVersion": RUNS.api_version,
        "kind": "WorkflowRun",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _security() -> tuple[dict[str, Any], dict[str, Any]]:
    """Pod- and container-level settings of the restricted Pod Security Standard."""
    pod = {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return pod, container


def _base_pod(
    name: str,
    run: RunBody | WorkflowBody,
    workflow: WorkflowBody,
    config: OperatorConfig,
    role: PodRole,
    module: str,
    env: list[dict[str, Any]],
    revision: Revision,
) -> dict[str, Any]:
    spec = workflow.get("spec") or {}
    pod_security, container_security = _security()
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if spec.get("homeVolume"):
        # Shared by the run's pods: file-backed output storage lives here.
        volumes.append({"name": "flux-home", **spec["homeVolume"]})
        mounts.append({"name": "flux-home", "mountPath": HOME_MOUNT_PATH})
        env = [*env, {"name": HOME_ENV, "value": HOME_MOUNT_PATH}]
    if revision.inline:
        name_of_source = source_configmap_name(workflow["metadata"]["name"], revision.name)
        only_source = [{"key": SOURCE_KEY, "path": SOURCE_KEY}]
        volumes.append(
            {"name": "source", "configMap": {"name": name_of_source, "items": only_source}}
        )
        mounts.append({"name": "source", "mountPath": SOURCE_MOUNT_PATH, "readOnly": True})
        env = [*env, {"name": SOURCE_DIR_ENV, "value": SOURCE_MOUNT_PATH}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": run["metadata"]["namespace"],
            "labels": {labels.LABEL_RUN: run["metadata"]["name"], labels.LABEL_ROLE: role.value},
            "annotations": {},
            "ownerReferences": [owner_reference(run)],
        },
        "spec": {
            "restartPolicy": "Never",
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 5,
            "securityContext": pod_security,
            "volumes": volumes,
            "containers": [
                {
                    "name": role.value,
                    "image": revision.image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": [*PYTHON_ARGS, module],
                    "env": env,
                    "securityContext": container_security,
                    "volumeMounts": mounts,
                    "terminationMessagePolicy": "File",
                }
            ],
        },
    }


def driver_pod(
    run: RunBody, workflow: WorkflowBody, config: OperatorConfig, start: int
) -> dict[str, Any]:
    revision = revision_of(run, workflow, config)
    env = [
        {"name": RUN_ENV, "value": run["metadata"]["name"]},
        {"name": NAMESPACE_ENV, "value": run["metadata"]["namespace"]},
        {"name": WORKFLOW_ENV, "value": revision.entrypoint},
        {"name": REVISION_ENV, "value": revision.name},
        {"name": LINGER_ENV, "value": f"{config.driver_linger:g}"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    name = driver_pod_name(run["metadata"]["name"], start)
    pod = _base_pod(name, run, workflow, config, PodRole.DRIVER, DRIVER_MODULE, env, revision)
    pod["spec"]["serviceAccountName"] = config.driver_service_account
    pod["spec"]["automountServiceAccountToken"] = True
    return pod


def shared_driver_pod(
    workflow: WorkflowBody, config: OperatorConfig, revision: Revision | None = None
) -> dict[str, Any]:
    """The driver pod serving the shared-mode runs of ``workflow`` that recorded
    ``revision`` (by default its current one); owned by the Workflow."""
    meta = workflow["metadata"]
    revision = revision or current_revision(workflow, config)
    env = [
        {"name": WORKFLOW_NAME_ENV, "value": meta["name"]},
        {"name": NAMESPACE_ENV, "value": meta["namespace"]},
        {"name": WORKFLOW_ENV, "value": revision.entrypoint},
        {"name": REVISION_ENV, "value": revision.name},
        {"name": LINGER_ENV, "value": f"{config.driver_linger:g}"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    name = shared_driver_pod_name(meta["name"])
    role = PodRole.DRIVER
    pod = _base_pod(name, workflow, workflow, config, role, DRIVER_MODULE, env, revision)
    pod["metadata"]["labels"] = {
        labels.LABEL_ROLE: PodRole.SHARED_DRIVER.value,
        labels.LABEL_WORKFLOW: meta["name"],
        labels.LABEL_REVISION: revision.name,
    }
    pod["metadata"]["ownerReferences"] = [{**owner_reference(workflow), "kind": "Workflow"}]
    pod["spec"]["serviceAccountName"] = config.driver_service_account
    pod["spec"]["automountServiceAccountToken"] = True
    return pod


def task_pod(
    run: RunBody,
    workflow: WorkflowBody,
    config: OperatorConfig,
    spec: TaskSpec,
    name: str,
    settings: PodSettings | None = None,
) -> dict[str, Any]:
    """The pod of one step of one call; ``settings`` are the task's own (its options)."""
    env_value = json.dumps(spec.to_json())
    pod = _task_pod(run, workflow, config, env_value, spec.secrets, spec.step, name, settings)
    meta, pod_spec = pod["metadata"], pod["spec"]
    meta["labels"][labels.LABEL_CALL] = short_hash(spec.call_id)
    meta["annotations"].update(
        {
            labels.ANNOTATION_CALL_ID: spec.call_id,
            labels.ANNOTATION_STEP: spec.step.value,
            labels.ANNOTATION_ATTEMPT: str(spec.attempt),
        }
    )
    if spec.timeout:
        # The runner enforces the deadline from the body's start; this only
        # stops a pod that is stuck (or whose runner is) past start-up.
        pod_spec["activeDeadlineSeconds"] = math.ceil(spec.timeout + DEADLINE_SLACK)
    return pod


def batch_pod(
    run: RunBody,
    workflow: WorkflowBody,
    config: OperatorConfig,
    spec: BatchSpec,
    name: str,
    settings: PodSettings | None = None,
) -> dict[str, Any]:
    """One pod running several attempts of one task's calls, one after another."""
    env = spec.to_env()
    pod = _task_pod(run, workflow, config, env, spec.secrets, Step.ATTEMPT, name, settings)
    pod["metadata"]["annotations"][labels.ANNOTATION_BATCH_SIZE] = str(len(spec.items))
    if spec.timeout:
        # The runner enforces each item's deadline; this only stops a stuck pod.
        deadline = spec.timeout * len(spec.items) + DEADLINE_SLACK
        pod["spec"]["activeDeadlineSeconds"] = math.ceil(deadline)
    return pod


# Seconds a task pod gets beyond its deadlines (start-up, imports) before
# Kubernetes kills it: Kubernetes counts from the pod's start, the runner from
# each body's.
DEADLINE_SLACK = 30


def _task_pod(
    run: RunBody,
    workflow: WorkflowBody,
    config: OperatorConfig,
    env_value: str,
    secrets: list[str],
    step: Step,
    name: str,
    settings: PodSettings | None,
) -> dict[str, Any]:
    wf_spec = workflow.get("spec") or {}
    secret_map: dict[str, Any] = wf_spec.get("secrets") or {}
    env: list[dict[str, Any]] = [
        {"name": TASK_ENV, "value": env_value},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if step == Step.ATTEMPT:
        for secret in secrets:
            ref = secret_map.get(secret)
            if ref is None:
                continue  # the task runner then fails naming the missing secret
            env.append(
                {
                    "name": secret_env_name(secret),
                    "valueFrom": {"secretKeyRef": {"name": ref["secretName"], "key": ref["key"]}},
                }
            )
    revision = revision_of(run, workflow, config)
    pod = _base_pod(name, run, workflow, config, PodRole.TASK, TASK_MODULE, env, revision)
    pod_spec = pod["spec"]
    pod_spec["automountServiceAccountToken"] = False
    defaults = wf_spec.get("taskDefaults") or {}
    if defaults.get("resources"):
        pod_spec["containers"][0]["resources"] = defaults["resources"]
    for key in ("nodeSelector", "tolerations", "serviceAccountName"):
        if defaults.get(key):
            pod_spec[key] = defaults[key]
    if settings is not None:
        _apply_task_settings(pod_spec, settings)
    return pod


def _apply_task_settings(pod_spec: dict[str, Any], settings: PodSettings) -> None:
    """The task's own settings in place of the Workflow's, each one as a whole.

    Only these four fields change: the security context, the absent token and
    the secrets stay as every task pod has them, and no pull credentials are added.
    """
    container = pod_spec["containers"][0]
    if settings.resources is not None:
        container["resources"] = settings.to_dict()["resources"]
    for key, value in (
        ("nodeSelector", settings.node_selector),
        ("tolerations", list(settings.tolerations) if settings.tolerations is not None else None),
    ):
        if value is None:
            continue
        if value:
            pod_spec[key] = value
        else:
            pod_spec.pop(key, None)  # an empty setting clears the Workflow's
    if settings.image is not None:
        container["image"] = settings.image


def workflow_image(workflow: WorkflowBody, config: OperatorConfig) -> str:
    """The image a Workflow's pods run unless a task names its own."""
    return (workflow.get("spec") or {}).get("image") or config.default_image


def pod_settings_refusal(
    settings: PodSettings | None,
    problem: str | None,
    run_image: str,
    config: OperatorConfig,
) -> str | None:
    """Why a call's pod settings cannot be used, or None when they can.

    ``problem`` is what was wrong with them as history recorded them. A task's
    own image must be the run's (the one its revision recorded: the Workflow's
    image when the run started, even if edited since) or one the operator allows.
    """
    if problem is not None:
        return f"its pod settings in history are invalid: {problem}"
    if settings is None or settings.image is None:
        return None
    if settings.image == run_image:
        return None
    if config.allows_task_image(settings.image):
        return None
    allowed = ", ".join(config.allowed_task_images) or "none"
    return (
        f"image {settings.image!r} is not allowed for task pods: the operator allows "
        f"the run's own image and those matching {TASK_IMAGES_ENV} (chart value "
        f"operator.allowedTaskImages; now: {allowed})"
    )
