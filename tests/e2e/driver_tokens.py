"""Acting with a driver's credentials: service-account tokens and kubectl with them.

A token bound to a pod is what the kubelet mounts into that pod (a TokenRequest
naming the pod); the API server then sees the pod's name and uid in the
request's userInfo.extra for as long as the pod exists. Tests make the same
request the kubelet makes, for a pod the operator started.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Cluster

DRIVER_ACCOUNT = "flux-driver"
POLICY = Path(__file__).resolve().parents[2] / "deploy/driver-isolation-policy.yaml"


def driver_token(cluster: Cluster, ns: str, pod: str | None = None) -> str:
    """A flux-driver token, bound to ``pod`` (as the kubelet's) or to nothing."""
    args = ["create", "token", DRIVER_ACCOUNT, "-n", ns, "--duration=10m"]
    if pod is not None:
        uid = cluster.get("pod", pod, ns)["metadata"]["uid"]
        args += [
            "--bound-object-kind=Pod",
            f"--bound-object-name={pod}",
            f"--bound-object-uid={uid}",
        ]
    return cluster.kubectl(*args).stdout.strip()


class As:
    """Raw API requests with nothing but a bearer token (the admin kubeconfig's
    server and CA): what a pod's client sends. Not kubectl, which reads first
    (a driver may not read workflowruns/status)."""

    def __init__(self, cluster: Cluster, token: str):
        view = json.loads(
            cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout
        )
        server = view["clusters"][0]["cluster"]
        self.server = server["server"].rstrip("/")
        self.tls = ssl.create_default_context()
        if server.get("certificate-authority-data"):
            ca = base64.b64decode(server["certificate-authority-data"]).decode()
            self.tls.load_verify_locations(cadata=ca)
        else:
            self.tls.load_verify_locations(cafile=server["certificate-authority"])
        self.token = token

    def request(self, method: str, path: str, body: Any, content_type: str) -> Answer:
        request = urllib.request.Request(
            self.server + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, context=self.tls, timeout=30) as response:
                return Answer(response.status, response.read().decode())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.read().decode())

    def patch_status(self, ns: str, run: str, patch: Any, kind: str = "json") -> Answer:
        content_type = "application/json-patch+json" if kind == "json" else MERGE
        path = f"/apis/flux.dev/v1alpha1/namespaces/{ns}/workflowruns/{run}/status"
        return self.request("PATCH", path, patch, content_type)

    def create(self, ns: str, manifest: dict[str, Any]) -> Answer:
        return self.request("POST", _collection(ns, manifest), manifest, "application/json")

    def replace(self, ns: str, manifest: dict[str, Any]) -> Answer:
        path = f"{_collection(ns, manifest)}/{manifest['metadata']['name']}"
        return self.request("PUT", path, manifest, "application/json")


MERGE = "application/merge-patch+json"


@dataclass
class Answer:
    status: int
    body: str

    @property
    def message(self) -> str:
        try:
            return str(json.loads(self.body).get("message", self.body))
        except ValueError:
            return self.body


def _collection(ns: str, manifest: dict[str, Any]) -> str:
    plural = {"ConfigMap": "configmaps", "Event": "events"}[manifest["kind"]]
    return f"/api/v1/namespaces/{ns}/{plural}"


def refused(answer: Answer, *words: str) -> bool:
    """403 from an admission policy, with ``words`` in its message."""
    said = answer.message
    return answer.status == 403 and "denied request" in said and all(w in said for w in words)


def policy_active(cluster: Cluster, ns: str) -> bool:
    """Whether the API server already enforces the policy (it loads new ones in the
    background): a ConfigMap from an unbound driver token is refused."""
    who = As(cluster, driver_token(cluster, ns))
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "policy-probe"}}
    answer = who.create(ns, probe)
    if answer.status < 300:
        cluster.kubectl("delete", "configmap", "policy-probe", "-n", ns, check=False)
    return refused(answer, "bound to the driver's pod")
