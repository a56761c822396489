"""The API resources Flux reads and writes, named once."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "flux.dev"
VERSION = "v1alpha1"


@dataclass(frozen=True)
class Resource:
    """A namespaced API resource: ``group`` is "" for the core API."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:  # as metrics and log lines name it
        return self.plural


RUNS = Resource(GROUP, VERSION, "workflowruns", "WorkflowRun")
WORKFLOWS = Resource(GROUP, VERSION, "workflows", "Workflow")
PODS = Resource("", "v1", "pods", "Pod")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
EVENTS = Resource("", "v1", "events", "Event")
# The operator's leader election (flux.k8s.leadership).
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
