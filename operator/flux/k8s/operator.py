"""The kopf operator: watches Workflows, WorkflowRuns and their pods, and reconciles.

Handlers only trigger a reconcile; the decisions are in :mod:`flux.k8s.reconcile`.
A reconcile works from the run, its Workflow and its pods as the watches (and
our own writes' responses) last showed them, never from anything older than
what it wrote itself; a run's pods are listed fresh on its first pass after a
start. Status writes that depend on what was read carry JSON-patch tests, so
a view that turns out stale fails the write and the pass runs again on a fresh
read. Reconciles of one run never overlap: an event that arrives during one
marks the run for one more pass.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

import kopf
import prometheus_client
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from flux.k8s import api, archive, metrics, runstore
from flux.k8s.config import OperatorConfig
from flux.k8s.decisions import condition_changed, set_condition, workflow_ready
from flux.k8s.history import FINAL_PHASES
from flux.k8s.kube.http import KubeClient
from flux.k8s.models import Condition, to_json
from flux.k8s.pods import SHARED_DRIVER_ROLE, owner_reference, source_configmap_name
from flux.k8s.protocol import INLINE_SOURCE_MODULE, RESULT_LOG_MARKER
from flux.k8s.reconcile import Observed, Plan, plan_run

log = logging.getLogger("flux.operator")
# Every deadline is also a scheduled wake-up; this pass only catches those lost
# to a restart or a failed pass.
BACKSTOP_SECONDS = 60.0
# Pod creations or deletions of one pass in flight at once.
API_CONCURRENCY = 16
Key = tuple[str, str]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Reconciler:
    def __init__(self, api_client: client.ApiClient, config: OperatorConfig):
        self.config = config
        # Typed as Any: we send and read raw JSON dicts, not the client's model classes.
        self.core: Any = client.CoreV1Api(api_client)
        self.runs = api.Runs(api_client)
        self.configmaps = api.ConfigMaps(api_client)
        self.open_calls = runstore.OpenCallsCache(KubeClient(api_client))
        self._locks: dict[Key, asyncio.Lock] = {}
        self._again: set[Key] = set()
        self._wakers: dict[Key, asyncio.TimerHandle] = {}
        self._rng = random.Random()
        # Last phase seen per run, for the metrics only; never used for decisions.
        self._phases: dict[Key, str] = {}
        # Runs and their pods as last seen (watch events, our writes' responses),
        # so a pass needs no reads: at a thousand runs a minute the reads, not
        # the writes, were most of the API server's work.
        self._runs_seen: dict[Key, dict[str, Any]] = {}
        self._pods_seen: dict[Key, dict[str, dict[str, Any]]] = {}
        # Runs whose pods have been listed since this operator started: until
        # then a pod missing from the watch's view may just not have arrived yet.
        self._pods_listed: set[Key] = set()
        # Pods we deleted, by (namespace, pod): their later watch events bring
        # nothing new; an optimisation only, forgetting one costs a pass.
        self._own_deletes: set[Key] = set()
        # Workflows as their watch last showed them: they change rarely and every
        # reconcile of every run needs its own.
        self._workflows: dict[Key, dict[str, Any]] = {}
        # Runs not known to be finished, with when a pass last started (backstop).
        self._unfinished: dict[Key, float] = {}
        self._backstops: set[asyncio.Task[None]] = set()
        # Shared driver pods known to be up, by (namespace, workflow), and the
        # failures in a row of each Workflow's shared driver with the time before
        # which no new one starts. Both rebuilt from pod events after a restart.
        self._shared_up: dict[Key, str] = {}
        self._shared_failures: dict[Key, tuple[int, float]] = {}

    async def _api(self, verb: str, resource: str, call: Awaitable[Any]) -> Any:
        """One Kubernetes API request, counted."""
        metrics.API_REQUESTS.labels(verb, resource).inc()
        try:
            return await call
        except ApiException as exc:
            metrics.API_ERRORS.labels(verb, resource, str(exc.status)).inc()
            raise

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._locks.pop(key, None)
        self._runs_seen.pop(key, None)
        self._pods_seen.pop(key, None)
        self._pods_listed.discard(key)
        self.open_calls.forget(namespace, name)
        metrics.forget_run(namespace, name)
        self._unfinished.pop(key, None)
        if self._phases.pop(key, None) is not None:
            metrics.set_active(self._phases.values())
        waker = self._wakers.pop(key, None)
        if waker is not None:
            waker.cancel()

    async def backstop(self, interval: float = BACKSTOP_SECONDS) -> None:
        """Reconcile each unfinished run at least every ``interval`` seconds.

        Timers derive from status, so this catches any wake-up lost to a restart
        or a failed pass. Not a kopf timer: those keep per-object state and
        touch every run with an annotation patch, a write per run and pass.
        """
        while True:
            await asyncio.sleep(interval / 3)
            now = time.monotonic()
            for namespace, name in [k for k, t in self._unfinished.items() if now - t >= interval]:
                task = asyncio.create_task(self.reconcile(namespace, name))
                self._backstops.add(task)
                task.add_done_callback(self._backstops.discard)

    def run_created(self, namespace: str, name: str) -> None:
        """A run created while we watch: every pod it will have, we create and see."""
        self._pods_listed.add((namespace, name))

    def run_seen(self, run: dict[str, Any]) -> bool:
        """Hold the newest state of a run; False if ``run`` is not newer than it."""
        meta = run["metadata"]
        key = (meta["namespace"], meta["name"])
        held = self._runs_seen.get(key)
        if held is not None and not api.newer(
            meta.get("resourceVersion"), held["metadata"].get("resourceVersion")
        ):
            return False
        self._runs_seen[key] = run
        return True

    def pod_seen(self, event: str, pod: dict[str, Any]) -> bool:
        """Hold the newest state of a task or driver pod; False if there is nothing new."""
        meta = pod["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        pods = self._pods_seen.setdefault((namespace, meta["labels"][api.LABEL_RUN]), {})
        if event == "DELETED":
            pods.pop(name, None)
            if (namespace, name) in self._own_deletes:
                self._own_deletes.discard((namespace, name))
                return False
            return True
        if (namespace, name) in self._own_deletes:
            return False  # on its way out; we know
        held = pods.get(name)
        if held is not None and not api.newer(
            meta.get("resourceVersion"), held["metadata"].get("resourceVersion")
        ):
            return False
        pods[name] = pod
        return event != "ADDED"  # created by a pass, which holds it; progress comes as MODIFIED

    def forget_workflow(self, namespace: str, name: str) -> None:
        self._workflows.pop((namespace, name), None)

    async def reconcile(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if self._phases.get(key) not in FINAL_PHASES:
            self._unfinished[key] = time.monotonic()
        lock = self._locks.setdefault(key, asyncio.Lock())
        if lock.locked():
            self._again.add(key)
            return
        async with lock:
            stale = False
            while True:
                self._again.discard(key)
                started, result = time.monotonic(), "error"
                try:
                    await self._reconcile_once(namespace, name)
                    result = "ok"
                except ApiException as exc:
                    # A JSON-patch test failed (422) or the run changed under a
                    # write (409): the view was stale. Once, read it fresh and retry.
                    if exc.status not in (409, 422) or stale:
                        raise
                    stale = True
                    self._runs_seen.pop(key, None)
                    self._again.add(key)
                finally:
                    elapsed = time.monotonic() - started
                    metrics.RECONCILE_DURATION.labels(result).observe(elapsed)
                if key not in self._again:
                    return

    async def _reconcile_once(self, namespace: str, name: str) -> None:
        run = await self._run(namespace, name)
        if run is None or run["metadata"].get("deletionTimestamp"):
            return
        workflow = await self._workflow_of(run)
        pods = await self._pods_of(namespace, name)
        logs = await self._result_logs(namespace, pods)
        open_calls = None
        if (run.get("status") or {}).get("historyArchive"):
            open_calls = await self.open_calls.open_calls(run)
        now = utc_now()
        shared_up = (namespace, (run.get("spec") or {}).get("workflowRef", {}).get("name", ""))
        observed = Observed(
            run, workflow, pods, now, logs, open_calls, shared_up in self._shared_up
        )
        plan = plan_run(observed, self.config, self._rng.random())
        await self._carry_out(run, plan)
        self._observe(run, plan, now, pods)

    async def _run(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The run as last seen, or read when it has not been (a restart, a stale view)."""
        held = self._runs_seen.get((namespace, name))
        if held is not None:
            return held
        try:
            run: dict[str, Any] = await self._api(
                "get", "workflowruns", self.runs.get(namespace, name)
            )
        except ApiException as exc:
            if exc.status == 404:
                self.forget(namespace, name)
                return None
            raise
        self.run_seen(run)
        return self._runs_seen[(namespace, name)]

    def _observe(
        self, run: dict[str, Any], plan: Plan, now: dt.datetime, pods: list[dict[str, Any]]
    ) -> None:
        """Metrics of a reconcile whose plan was carried out."""
        key = (run["metadata"]["namespace"], run["metadata"]["name"])
        metrics.record(metrics.deltas(run, plan.status, now, self._phases.get(key), pods))
        phase = plan.status.get("phase") or (run.get("status") or {}).get("phase")
        if phase and self._phases.get(key) != phase:
            self._phases[key] = phase
            metrics.set_active(self._phases.values())
        if phase in FINAL_PHASES:
            self._unfinished.pop(key, None)
            if not pods and not plan.delete:
                # Finished and cleared away: rarely looked at again, and then read.
                self._runs_seen.pop(key, None)
                self._pods_seen.pop(key, None)
                self._pods_listed.discard(key)

    async def _workflow_of(self, run: dict[str, Any]) -> dict[str, Any] | None:
        ref = ((run.get("spec") or {}).get("workflowRef") or {}).get("name")
        if not ref:
            return None
        key = (run["metadata"]["namespace"], ref)
        if key in self._workflows:
            return self._workflows[key]
        try:
            found: dict[str, Any] = await self._api(
                "get", "workflows", self.runs.get_workflow(key[0], ref)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        self._workflows[key] = found
        return found

    async def _pods_of(self, namespace: str, run_name: str) -> list[dict[str, Any]]:
        key = (namespace, run_name)
        if key not in self._pods_listed:
            response = await self._api(
                "list",
                "pods",
                _json_of(
                    self.core.list_namespaced_pod(
                        namespace,
                        label_selector=f"{api.LABEL_RUN}={run_name}",
                        _preload_content=False,
                    )
                ),
            )
            listed = response["items"]
            pods = self._pods_seen.setdefault(key, {})
            pods.clear()
            pods.update((p["metadata"]["name"], p) for p in listed)
            self._pods_listed.add(key)
        return [
            pod
            for name, pod in (self._pods_seen.get(key) or {}).items()
            if (namespace, name) not in self._own_deletes
        ]

    async def _result_logs(self, namespace: str, pods: list[dict[str, Any]]) -> dict[str, str]:
        """Results too large for a termination message are on the log's last line."""
        found: dict[str, str] = {}
        for pod in pods:
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            terminated = (statuses[0].get("state") or {}).get("terminated") if statuses else None
            if not terminated or '"inLog":true' not in (terminated.get("message") or ""):
                continue
            name = pod["metadata"]["name"]
            text: str = await self._api(
                "get", "pods/log", self.core.read_namespaced_pod_log(name, namespace, tail_lines=5)
            )
            for line in reversed(text.splitlines()):
                if line.startswith(RESULT_LOG_MARKER):
                    found[name] = line[len(RESULT_LOG_MARKER) :]
                    break
        return found

    async def _carry_out(self, run: dict[str, Any], plan: Plan) -> None:
        namespace, name = run["metadata"]["namespace"], run["metadata"]["name"]
        if plan.shared_driver is not None:
            # First: it counts as up from its creation on, for the passes of the
            # other runs meanwhile too (see _ensure_shared_driver).
            plan.wake(await self._ensure_shared_driver(plan.shared_driver))
        # Pods first: their names are deterministic, so a pod created by a
        # reconcile whose status patch then failed is found again, not doubled.
        await _bounded(self._create_pod(namespace, pod) for pod in plan.create)
        await self._move_out(run, plan)
        if plan.status:
            ops = status_ops(run.get("status"), plan.status)
            written = await self._api(
                "patch", "workflowruns/status", self.runs.patch_status(namespace, name, ops)
            )
            self.run_seen(written)
        await _bounded(
            self._delete_pod(namespace, pod_name) for pod_name in dict.fromkeys(plan.delete)
        )
        for kind, reason, message in plan.events:
            kopf.event(_body(run), type=kind, reason=reason, message=message)
        self._schedule(namespace, name, plan.wake_at)

    async def _create_pod(self, namespace: str, pod: dict[str, Any]) -> None:
        try:
            created = await self._api(
                "create",
                "pods",
                _json_of(self.core.create_namespaced_pod(namespace, pod, _preload_content=False)),
            )
            self.pod_seen("ADDED", created)
        except ApiException as exc:
            if exc.status != 409:
                raise

    async def _delete_pod(self, namespace: str, name: str) -> None:
        self._own_deletes.add((namespace, name))
        try:
            await self._remove_pod(namespace, name)
        except ApiException as exc:
            self._own_deletes.discard((namespace, name))
            if exc.status != 404:
                raise
            for pods in self._pods_seen.values():
                pods.pop(name, None)

    async def _remove_pod(self, namespace: str, name: str) -> None:
        # The raw answer: decoding it into the client's model classes (dates and all)
        # cost more than the rest of the deletion.
        await self._api(
            "delete",
            "pods",
            _json_of(
                self.core.delete_namespaced_pod(
                    name, namespace, grace_period_seconds=0, _preload_content=False
                )
            ),
        )

    async def _move_out(self, run: dict[str, Any], plan: Plan) -> None:
        """Keep the run in budget: store large outputs and settled records in ConfigMaps."""
        name, status = run["metadata"]["name"], run.get("status") or {}
        for record in plan.status.get("tasks") or []:
            output = record.get("output")
            if output is None or archive.encoded_size(output) <= archive.INLINE_VALUE_BYTES:
                continue
            stored = await self._put_configmap(
                run,
                archive.value_name(name, record["callId"]),
                archive.VALUE,
                archive.pack(output),
            )
            record["outputRef"] = archive.entry(stored, 1)
            record["output"] = None
        if not plan.archive_tasks:
            return
        entries = list(status.get("taskArchive") or [])
        for payload, count in archive.split(plan.archive_tasks):
            chunk = archive.chunk_name(name, archive.TASKS, len(entries))
            stored = await self._put_configmap(run, chunk, archive.TASKS, payload)
            entries.append(archive.entry(stored, count))
        plan.status["taskArchive"] = entries
        plan.status.setdefault("tasks", status.get("tasks") or [])

    async def _put_configmap(
        self, run: dict[str, Any], name: str, kind: str, payload: bytes
    ) -> dict[str, Any]:
        manifest = archive.configmap(run, name, kind, payload)
        return await self._api("put", "configmaps", self.configmaps.put(manifest))  # type: ignore[no-any-return]

    async def _ensure_shared_driver(self, pod: dict[str, Any]) -> dt.datetime | None:
        """Start the Workflow's shared driver unless it is up; when it must wait, until when."""
        meta = pod["metadata"]
        key = (meta["namespace"], meta["labels"][api.LABEL_WORKFLOW])
        if key in self._shared_up:
            return None
        failures, not_before = self._shared_failures.get(key, (0, 0.0))
        if time.time() < not_before:
            return dt.datetime.fromtimestamp(not_before, dt.UTC)
        # Up from now on, for the passes running meanwhile too: a burst of new runs
        # is left to the driver's claims, not each written as Pending first.
        self._shared_up[key] = meta["name"]
        try:
            await self._api(
                "create", "pods", self.core.create_namespaced_pod(meta["namespace"], pod)
            )
            if failures:
                metrics.DRIVER_RESTARTS.labels(key[1]).inc()
        except ApiException as exc:
            if exc.status != 409:
                del self._shared_up[key]
                raise
            # There already; if it has finished, its pod event removes it and
            # wakes the runs again.
        return None

    async def shared_driver_changed(self, event: str, pod: dict[str, Any]) -> None:
        """A shared driver pod's event: track it, clear it away when it ends."""
        meta, phase = pod["metadata"], (pod.get("status") or {}).get("phase")
        key = (meta["namespace"], (meta.get("labels") or {}).get(api.LABEL_WORKFLOW, ""))
        if event == "DELETED":
            if self._shared_up.get(key) == meta["name"]:
                del self._shared_up[key]
            await self._wake_shared_runs(*key)
            return
        if meta.get("deletionTimestamp"):
            return
        if phase not in ("Succeeded", "Failed"):
            self._shared_up[key] = meta["name"]
            return
        failures = self._shared_failures.get(key, (0, 0.0))[0]
        if phase == "Failed":
            failures += 1
            log.warning(
                "shared driver %s/%s failed (%d in a row); see its log",
                meta["namespace"],
                meta["name"],
                failures,
            )
            self._shared_failures[key] = (failures, time.time() + min(2**failures, 60))
        else:
            self._shared_failures.pop(key, None)
        try:
            await self._remove_pod(meta["namespace"], meta["name"])
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def _wake_shared_runs(self, namespace: str, workflow: str) -> None:
        """Reconcile the unfinished shared-mode runs of a Workflow whose driver went away."""
        listed = await self._api(
            "list",
            "workflowruns",
            self.runs.custom.list_namespaced_custom_object(
                api.GROUP,
                api.VERSION,
                namespace,
                api.RUNS,
                field_selector=f"spec.workflowRef.name={workflow}",
            ),
        )
        # Shared runs, and runs not yet claimed by any driver.
        waiting = [
            run["metadata"]["name"]
            for run in listed.get("items") or []
            if _shared_or_unclaimed(run.get("status") or {})
        ]
        await asyncio.gather(*(self.reconcile(namespace, name) for name in waiting))

    def _schedule(self, namespace: str, name: str, when: dt.datetime | None) -> None:
        key = (namespace, name)
        old = self._wakers.pop(key, None)
        if old is not None:
            old.cancel()
        if when is None:
            return
        delay = max((when - utc_now()).total_seconds(), 0.0) + 0.05
        loop = asyncio.get_running_loop()
        self._wakers[key] = loop.call_later(
            delay, lambda: asyncio.ensure_future(self.reconcile(namespace, name))
        )

    async def check_workflow(self, workflow: dict[str, Any]) -> None:
        """Set the Workflow's Ready condition; keep its inline source in a ConfigMap."""
        meta, spec = workflow["metadata"], workflow.get("spec") or {}
        metrics.workflow_seen(meta["name"])
        self._workflows[(meta["namespace"], meta["name"])] = workflow
        if spec.get("source"):
            await self._ensure_source(workflow)
        stored = [
            Condition.model_validate(c)
            for c in (workflow.get("status") or {}).get("conditions") or []
        ]
        wanted = workflow_ready(spec, meta.get("generation"))
        if not condition_changed(stored, wanted):
            return
        conditions = set_condition(stored, wanted, utc_now())
        self._workflows[(meta["namespace"], meta["name"])] = await self._api(
            "patch",
            "workflows/status",
            self.runs.patch_workflow_status(
                meta["namespace"],
                meta["name"],
                {
                    "status": {
                        "conditions": [to_json(c) for c in conditions],
                        "observedGeneration": meta.get("generation"),
                    }
                },
            ),
        )
        kopf.event(
            _body(workflow),
            type="Normal" if wanted.status == "True" else "Warning",
            reason=wanted.reason,
            message=wanted.message,
        )

    async def _ensure_source(self, workflow: dict[str, Any]) -> None:
        meta = workflow["metadata"]
        owner = {**owner_reference(workflow), "kind": "Workflow"}
        configmap: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": source_configmap_name(meta["name"]),
                "namespace": meta["namespace"],
                "ownerReferences": [owner],
                "labels": {api.LABEL_WORKFLOW: meta["name"]},
            },
            "data": {f"{INLINE_SOURCE_MODULE}.py": workflow["spec"]["source"]},
        }
        name = configmap["metadata"]["name"]
        try:
            await self._api(
                "update",
                "configmaps",
                self.core.replace_namespaced_config_map(name, meta["namespace"], configmap),
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            await self._api(
                "create",
                "configmaps",
                self.core.create_namespaced_config_map(meta["namespace"], configmap),
            )


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
    # React within milliseconds: step latency is the product.
    settings.batching.batch_window = 0.01
    settings.watching.server_timeout = 600
    memo["api"] = await api.connect()
    config = OperatorConfig.from_env()
    metrics.set_build_info()
    if config.metrics_port is not None:
        prometheus_client.start_http_server(config.metrics_port)
    memo["reconciler"] = Reconciler(memo["api"], config)
    memo["backstop"] = asyncio.create_task(memo["reconciler"].backstop())


@kopf.on.login()
def _login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """The same credentials as our own client: FLUX_KUBECONFIG first, then the usual ones."""
    kubeconfig = os.environ.get(api.KUBECONFIG_ENV)
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
    await memo["api"].close()


@kopf.on.event(api.GROUP, api.VERSION, api.RUNS)
async def _run_event(
    event: kopf.RawEvent, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    reconciler: Reconciler = memo["reconciler"]
    assert namespace is not None
    if event.get("type") == "DELETED":
        reconciler.forget(namespace, name)
        return
    if event.get("type") == "ADDED":  # not listed at start (kopf gives those no type)
        reconciler.run_created(namespace, name)
    if reconciler.run_seen(dict(event["object"])):
        await reconciler.reconcile(namespace, name)


@kopf.on.event("", "v1", "pods", labels={api.LABEL_RUN: kopf.PRESENT})
async def _pod_event(
    event: kopf.RawEvent,
    namespace: str | None,
    name: str,
    labels: Mapping[str, str],
    memo: Any,
    **_: Any,
) -> None:
    assert namespace is not None
    reconciler: Reconciler = memo["reconciler"]
    if reconciler.pod_seen(str(event.get("type")), dict(event["object"])):
        await reconciler.reconcile(namespace, labels[api.LABEL_RUN])


@kopf.on.event("", "v1", "pods", labels={api.LABEL_ROLE: SHARED_DRIVER_ROLE})
async def _shared_driver_event(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    await memo["reconciler"].shared_driver_changed(str(event.get("type")), _plain(body))


@kopf.on.event(api.GROUP, api.VERSION, api.WORKFLOWS)
async def _workflow_event(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    if event.get("type") != "DELETED":
        await memo["reconciler"].check_workflow(_plain(body))
    else:
        memo["reconciler"].forget_workflow(body["metadata"]["namespace"], body["metadata"]["name"])


def _shared_or_unclaimed(status: dict[str, Any]) -> bool:
    if not status:
        return True
    shared = bool((status.get("driver") or {}).get("shared"))
    return shared and status.get("phase") not in FINAL_PHASES


def status_ops(current: dict[str, Any] | None, changes: dict[str, Any]) -> list[dict[str, Any]]:
    """JSON-patch operations for status changes.

    Not a merge patch: a merge patch drops every null, also inside task outputs.
    A None at the top of a change, or of a task record, means "no longer set".
    """
    current = current or {}
    ops: list[dict[str, Any]] = []
    if not current:
        # Only onto a run without status: a driver's first write may have come first.
        ops = [
            {"op": "test", "path": "/status", "value": None},
            {"op": "add", "path": "/status", "value": {}},
        ]
    elif "phase" in changes or "conditions" in changes:
        # The phase moves only from the one this pass saw (the driver writes it too).
        ops.append({"op": "test", "path": "/status/phase", "value": current.get("phase")})
    for key, value in changes.items():
        if key == "tasks" and current.get("tasks"):
            ops.extend(task_record_ops(current["tasks"], value))
            continue
        if key == "tasks":
            value = [_set_fields(record) for record in value]
        if value is None:
            if key in current:
                ops.append({"op": "remove", "path": f"/status/{key}"})
        else:
            ops.append({"op": "add", "path": f"/status/{key}", "value": value})
    return ops


async def _json_of(response: Awaitable[Any]) -> dict[str, Any]:
    """The body of a request sent with ``_preload_content=False``; its errors raised
    inside the counted call, as the client raises them for the others."""
    return await api.read_json(await response)


async def _bounded(calls: Iterable[Awaitable[None]], limit: int = API_CONCURRENCY) -> None:
    """Await ``calls`` with at most ``limit`` in flight (a fan-out starts hundreds of pods)."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[None]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(c) for c in calls))


def task_record_ops(
    current: list[dict[str, Any]], wanted: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per-record operations turning ``current`` into ``wanted``.

    ``wanted`` keeps the current records' order, with records removed and new
    ones at the end, so a pass touching few records writes only those. Each
    replace first tests the callId at its index, so a stale view fails the
    patch instead of overwriting the wrong record.
    """
    ops: list[dict[str, Any]] = []
    by_id = {r["callId"]: _set_fields(r) for r in wanted}
    for index in reversed(range(len(current))):
        if current[index]["callId"] not in by_id:
            ops.append({"op": "remove", "path": f"/status/tasks/{index}"})
    kept = [r for r in current if r["callId"] in by_id]
    for index, record in enumerate(kept):
        new = by_id[record["callId"]]
        if new != record:
            path = f"/status/tasks/{index}"
            ops.append({"op": "test", "path": f"{path}/callId", "value": record["callId"]})
            ops.append({"op": "replace", "path": path, "value": new})
    known = {r["callId"] for r in current}
    ops.extend(
        {"op": "add", "path": "/status/tasks/-", "value": record}
        for call_id, record in by_id.items()
        if call_id not in known
    )
    return ops


def _set_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None}


def _body(obj: dict[str, Any]) -> kopf.Body:
    return kopf.Body(obj)  # type: ignore[arg-type]


def _plain(body: kopf.Body) -> dict[str, Any]:
    return json.loads(json.dumps(dict(body), default=dict))  # type: ignore[no-any-return]
