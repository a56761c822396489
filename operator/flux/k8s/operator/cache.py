"""The operator's view: runs, their pods and Workflows as the watches and our
own writes' responses last showed them.

A pass reads nothing held here: at a thousand runs a minute the reads, not the
writes, were most of the API server's work. A pass never works from anything
older than what it wrote itself (see :func:`flux.k8s.kube.versions.newer`), and a
run's pods are listed fresh on its first pass after a start.
"""

from __future__ import annotations

from flux.k8s.kube import PODS, RUNS, WORKFLOWS, Kube, NotFound
from flux.k8s.kube.client import Body
from flux.k8s.kube.versions import newer
from flux.k8s.labels import LABEL_RUN

Key = tuple[str, str]


class Cache:
    """What the operator last saw; the reads it makes only for what it does not hold."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._runs: dict[Key, Body] = {}
        self._pods: dict[Key, dict[str, Body]] = {}
        # Runs whose pods have been listed since this operator started: until
        # then a pod missing from the watch's view may just not have arrived yet.
        self._pods_listed: set[Key] = set()
        # Pods we deleted, by (namespace, pod): their later watch events bring
        # nothing new; an optimisation only, forgetting one costs a pass.
        self._own_deletes: set[Key] = set()
        # Workflows as their watch last showed them: they change rarely and every
        # reconcile of every run needs its own.
        self._workflows: dict[Key, Body] = {}

    # -- what the watches and our writes show ----------------------------------

    def run_created(self, namespace: str, name: str) -> None:
        """A run created while we watch: every pod it will have, we create and see."""
        self._pods_listed.add((namespace, name))

    def run_seen(self, run: Body) -> bool:
        """Hold the newest state of a run; False if ``run`` is not newer than it."""
        meta = run["metadata"]
        key = (meta["namespace"], meta["name"])
        held = self._runs.get(key)
        if held is not None and not newer(
            meta.get("resourceVersion"), held["metadata"].get("resourceVersion")
        ):
            return False
        self._runs[key] = run
        return True

    def pod_seen(self, event: str, pod: Body) -> bool:
        """Hold the newest state of a task or driver pod; False if there is nothing new."""
        meta = pod["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        pods = self._pods.setdefault((namespace, meta["labels"][LABEL_RUN]), {})
        if event == "DELETED":
            pods.pop(name, None)
            if (namespace, name) in self._own_deletes:
                self._own_deletes.discard((namespace, name))
                return False
            return True
        if (namespace, name) in self._own_deletes:
            return False  # on its way out; we know
        held = pods.get(name)
        if held is not None and not newer(
            meta.get("resourceVersion"), held["metadata"].get("resourceVersion")
        ):
            return False
        pods[name] = pod
        return event != "ADDED"  # created by a pass, which holds it; progress comes as MODIFIED

    def workflow_seen(self, workflow: Body) -> None:
        meta = workflow["metadata"]
        key = (meta["namespace"], meta["name"])
        held = self._workflows.get(key)
        # An event older than our own write's response would undo the status it wrote.
        if held is None or newer(
            meta.get("resourceVersion"), held["metadata"].get("resourceVersion")
        ):
            self._workflows[key] = workflow

    def deleting(self, namespace: str, pod: str) -> None:
        """We are deleting ``pod``: from now on it is not among its run's pods."""
        self._own_deletes.add((namespace, pod))

    def not_deleted(self, namespace: str, pod: str, *, gone: bool) -> None:
        """Our deletion of ``pod`` failed; ``gone`` when because it was not there."""
        self._own_deletes.discard((namespace, pod))
        if gone:
            for pods in self._pods.values():
                pods.pop(pod, None)

    # -- forgetting -------------------------------------------------------------

    def stale(self, namespace: str, name: str) -> None:
        """The run as held turned out stale: the next pass reads it."""
        self._runs.pop((namespace, name), None)

    def forget_run(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._runs.pop(key, None)
        self._pods.pop(key, None)
        self._pods_listed.discard(key)

    def forget_workflow(self, namespace: str, name: str) -> None:
        self._workflows.pop((namespace, name), None)

    # -- what a pass works from --------------------------------------------------

    async def run(self, namespace: str, name: str) -> Body:
        """The run as last seen, or read when it has not been (a restart, a stale view).

        Raises :class:`~flux.k8s.kube.NotFound` when it is gone.
        """
        held = self._runs.get((namespace, name))
        if held is not None:
            return held
        self.run_seen(await self.kube.get(RUNS, namespace, name))
        return self._runs[(namespace, name)]

    async def workflow(self, namespace: str, name: str) -> Body:
        """The Workflow as last seen, or read. Raises :class:`~flux.k8s.kube.NotFound`."""
        key = (namespace, name)
        if key not in self._workflows:
            self._workflows[key] = await self.kube.get(WORKFLOWS, namespace, name)
        return self._workflows[key]

    async def workflow_of(self, run: Body) -> Body | None:
        ref = ((run.get("spec") or {}).get("workflowRef") or {}).get("name")
        if not ref:
            return None
        key = (run["metadata"]["namespace"], ref)
        if key in self._workflows:
            return self._workflows[key]
        try:
            found = await self.kube.get(WORKFLOWS, key[0], ref)
        except NotFound:
            return None
        self._workflows[key] = found
        return found

    async def pods_of(self, namespace: str, run_name: str) -> list[Body]:
        key = (namespace, run_name)
        if key not in self._pods_listed:
            listed = await self.kube.list(PODS, namespace, label_selector=f"{LABEL_RUN}={run_name}")
            pods = self._pods.setdefault(key, {})
            pods.clear()
            pods.update((p["metadata"]["name"], p) for p in listed["items"])
            self._pods_listed.add(key)
        return [
            pod
            for name, pod in (self._pods.get(key) or {}).items()
            if (namespace, name) not in self._own_deletes
        ]
