"""The Helm chart on the real cluster: lint, render, server-side dry-run, install.

Every value set in charts/flux/ci/ is rendered and sent to the API server with
``kubectl apply --dry-run=server``. Objects of the Prometheus Operator (not
installed on the test cluster) are checked with promtool and by structure
instead. Then the chart is installed into a fresh namespace, CRDs included
(it adopts the ones the e2e session applied, keeps them on uninstall and gives
them back): the operator runs as a real pod, watching only that namespace, and
serves runs that succeed, retry, time out, fall back, roll back and fail, while
a real Prometheus scrapes it and then answers every dashboard query and alert
expression with data. Upgrade and uninstall leave nothing but the CRDs.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from flux_runs import (
    POLICY_SCENARIOS,
    POLICY_SOURCE,
    run_manifest,
    shared_home_volume,
    wait_phase,
    workflow_manifest,
)

if TYPE_CHECKING:
    from conftest import Cluster

from support.helm import cluster_bin_dir

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts/flux"
VALUE_SETS = sorted((CHART / "ci").glob("*-values.yaml"))
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}

pytestmark = pytest.mark.e2e


def _helm_path() -> Path:
    """The pinned helm the cluster scripts build next to kubectl; built if missing."""
    helm = cluster_bin_dir() / "helm"
    if not helm.is_file():
        subprocess.run(
            ["bash", str(REPO / "cluster/scripts/build-binaries.sh"), "helm"], check=True
        )
    assert helm.is_file(), f"helm not found at {helm} after build-binaries.sh helm"
    return helm


@pytest.fixture(scope="module")
def helm(cluster: Cluster) -> Any:
    path = _helm_path()

    def run(*args: str, check: bool = True, timeout: float = 180) -> str:
        cmd = [str(path), "--kubeconfig", cluster.kubeconfig, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")
        return proc.stdout

    return run


def _namespace(cluster: Cluster, name: str) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    "flux.dev/e2e": "true",
                    "pod-security.kubernetes.io/enforce": "restricted",
                },
            },
        },
        "default",
    )


@pytest.fixture
def chart_namespace(cluster: Cluster) -> Iterator[str]:
    """A namespace outside the e2e-* ones the suite's local operator serves."""
    name = f"chart-{uuid.uuid4().hex[:8]}"
    _namespace(cluster, name)
    cluster.wait_for(
        f"service account {name}/default",
        lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        timeout=60,
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def spare_namespaces(cluster: Cluster) -> Iterator[list[str]]:
    """Two more fresh namespaces, for value sets that name watched namespaces."""
    names = [f"e2e-chart-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:
        _namespace(cluster, name)
    yield names
    for name in names:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _with_our_namespaces(values_file: Path, spare: list[str]) -> list[str]:
    """helm --set-json flags that swap the value set's namespaces for the test's own."""
    values = yaml.safe_load(values_file.read_text()) or {}
    flags: list[str] = []
    watched = values.get("watchNamespaces") or []
    if watched:
        flags += ["--set-json", f"watchNamespaces={json.dumps(spare[: len(watched)])}"]
    drivers = (values.get("driver") or {}).get("namespaces") or []
    if drivers:
        flags += ["--set-json", f"driver.namespaces={json.dumps(spare[: len(drivers)])}"]
    return flags


def _docs(rendered: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def test_helm_lint_passes_for_every_value_set(helm: Any) -> None:
    assert VALUE_SETS, "no charts/flux/ci/*-values.yaml"
    helm("lint", "--strict", str(CHART))
    for values in VALUE_SETS:
        helm("lint", "--strict", str(CHART), "-f", str(values))


def test_the_schema_rejects_unknown_values(helm: Any) -> None:
    out = subprocess.run(
        [str(_helm_path()), "template", "x", str(CHART), "--set", "oprator.replicas=2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0 and "oprator" in out.stderr, out.stderr


@pytest.mark.parametrize("values_file", VALUE_SETS, ids=lambda p: p.name)
def test_every_value_set_renders_and_the_server_accepts_it(
    cluster: Cluster,
    helm: Any,
    namespace: str,
    spare_namespaces: list[str],
    values_file: Path,
    tmp_path: Path,
) -> None:
    rendered = helm(
        "template",
        f"ci-{uuid.uuid4().hex[:6]}",
        str(CHART),
        "--namespace",
        namespace,
        "-f",
        str(values_file),
        *_with_our_namespaces(values_file, spare_namespaces),
    )
    docs = _docs(rendered)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ClusterRole", "ServiceAccount"} <= kinds, kinds
    for doc in docs:
        if doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc["rules"]:
                assert "secrets" not in rule["resources"] and "*" not in rule["resources"]
                assert "*" not in rule["verbs"]
    served = [d for d in docs if d["kind"] not in MONITORING_KINDS]
    applied = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input="\n---\n".join(json.dumps(d) for d in served),
        timeout=120,
    )
    assert applied.stdout.count("(server dry run)") == len(served), applied.stdout
    _check_monitoring(docs, tmp_path)


def _check_monitoring(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    """Prometheus Operator objects: selectors that find the operator, PromQL promtool parses."""
    by_kind = {d["kind"]: d for d in docs}
    deployment = by_kind["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    port_names = {p["name"] for p in container.get("ports", [])}
    for kind in ("ServiceMonitor", "PodMonitor"):
        monitor = by_kind.get(kind)
        if monitor is None:
            continue
        selector = monitor["spec"]["selector"]["matchLabels"]
        if kind == "ServiceMonitor":
            service = by_kind["Service"]
            assert selector.items() <= service["metadata"]["labels"].items()
            assert {p["name"] for p in service["spec"]["ports"]} >= {"metrics"}
            assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
        else:
            assert selector.items() <= pod_labels.items()
            assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in port_names
    rules = by_kind.get("PrometheusRule")
    dashboards = [d for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" in str(d)]
    if rules is None and not dashboards:
        return
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install -y prometheus"
    groups = list(rules["spec"]["groups"]) if rules else []
    for board in dashboards:
        exprs = [
            target["expr"]
            for text in board["data"].values()
            for panel in json.loads(text)["panels"]
            for target in panel.get("targets", [])
        ]
        assert exprs, "the dashboard has no queries"
        groups.append(
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"flux:dashboard:{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        )
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


HELLO = """
from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import sleep


@task
def greet(name: str) -> str:
    return f"hello {name}"


@workflow
async def hello(ctx: WorkflowExecutionContext[str]) -> str:
    return await greet(ctx.input)


@workflow
async def nap(ctx: WorkflowExecutionContext[float]) -> str:
    await sleep(ctx.input)
    return "rested"
"""

CRDS = ("workflows.flux.dev", "workflowruns.flux.dev")
# Metadata keys helm and the chart put on the CRDs; none of them is in crds/.
HELM_KEYS = ("helm.sh/", "meta.helm.sh/", "app.kubernetes.io/")
# Drivers of the installed operator exit after this many idle seconds, so the
# nap workflow's durable sleep (longer) outlives its first driver: the operator
# starts a second one when the sleep is due (flux_driver_restarts_total).
LINGER = 5
NAP = LINGER + 5


@pytest.mark.timeout(600)
def test_install_run_upgrade_and_uninstall(
    cluster: Cluster, helm: Any, chart_namespace: str, tmp_path: Path
) -> None:
    """The chart's operator as a real pod, watching only its own namespace, with
    the chart's CRDs (adopted from the e2e session's, and kept on uninstall).

    The runs it serves succeed, retry, time out, fall back, roll back, fail,
    sleep past their driver and meet a pod quota, so that every dashboard query
    and every alert expression has data in a real Prometheus scraping it."""
    namespace = chart_namespace
    release = f"flux-{namespace[-8:]}"
    base = [
        "--namespace",
        namespace,
        "--set",
        f"image.repository={cluster.image.rsplit(':', 1)[0]}",
        "--set",
        f"image.tag={cluster.image.rsplit(':', 1)[1]}",
        "--set",
        "image.pullPolicy=IfNotPresent",
        "--set-json",
        f"watchNamespaces={json.dumps([namespace])}",
        "--set",
        "crds.install=true",
        "--set",
        "crds.keep=true",
    ]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{c}" for c in CRDS]
    )
    # The e2e session shares these CRDs: the release adopts them, keeps them on
    # uninstall, and they get their own metadata back afterwards.
    saved = _crd_metadata(cluster)
    installed = False
    manifest: list[dict[str, Any]] = []
    try:
        _adopt_crds(cluster, release, namespace)
        helm(
            "install",
            release,
            str(CHART),
            *base,
            "--set",
            f"operator.driverLingerSeconds={LINGER}",
            "--wait",
            "--timeout",
            "180s",
            timeout=240,
        )
        installed = True
        for name in CRDS:
            meta = cluster.get("crd", name)["metadata"]
            assert meta["labels"]["app.kubernetes.io/instance"] == release, meta
            assert meta["annotations"]["helm.sh/resource-policy"] == "keep", meta
        deployment = f"deployment/{release}"
        cluster.kubectl("rollout", "status", "-n", namespace, deployment, "--timeout=120s")
        pod = _operator_pod(cluster, namespace, release)
        pod_ip = cluster.get("pod", pod, namespace)["status"]["podIP"]
        with _prometheus(f"{pod_ip}:9090", tmp_path) as prometheus:
            with shared_home_volume(cluster, namespace) as home:
                _serve_runs(cluster, namespace, _PodOperator(cluster, namespace, pod), home)
            _check_every_query(prometheus)
            _check_first_events_and_pending_pods(prometheus)

        helm(
            "upgrade",
            release,
            str(CHART),
            *base,
            "--set",
            "operator.driverLingerSeconds=7",
            "--wait",
            "--timeout",
            "180s",
            timeout=240,
        )
        env = cluster.get("deployment", release, namespace)["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
        assert {"name": "FLUX_DRIVER_LINGER_SECONDS", "value": "7"} in env
        cluster.kubectl("rollout", "status", "-n", namespace, deployment, "--timeout=120s")
        # The rolling update replaced both replicas, the leader handing over: the
        # new leader serves a new run.
        leader = _operator_pod(cluster, namespace, release)
        assert leader != pod, "the upgrade kept the old leader pod"
        cluster.apply(run_manifest("hello-upgraded", "hello", "upgraded"), namespace)
        status = wait_phase(
            cluster,
            _PodOperator(cluster, namespace, leader),
            namespace,
            "hello-upgraded",
            "Succeeded",
            "Failed",
        )
        assert status["phase"] == "Succeeded" and status["output"] == "hello upgraded", status
    finally:
        try:
            if installed:
                manifest = _uninstall_keeping_crds(helm, release, namespace)
        finally:
            _restore_crds(cluster, saved)
    _check_only_the_crds_are_left(cluster, manifest, release, namespace)
    for name in CRDS:
        meta = cluster.get("crd", name)["metadata"]
        for key in ("labels", "annotations"):
            mine = {k: v for k, v in (meta.get(key) or {}).items() if k.startswith(HELM_KEYS)}
            assert mine == {}, f"{name} still has the release's {key}: {mine}"
    assert _crd_metadata(cluster) == saved


def _crd_metadata(cluster: Cluster) -> dict[str, dict[str, dict[str, str]]]:
    """Labels and annotations of the CRDs, without any that helm or the chart set
    (a run that died before restoring them may have left some)."""
    saved: dict[str, dict[str, dict[str, str]]] = {}
    for name in CRDS:
        meta = cluster.get("crd", name)["metadata"]
        saved[name] = {
            key: {k: v for k, v in (meta.get(key) or {}).items() if not k.startswith(HELM_KEYS)}
            for key in ("labels", "annotations")
        }
    return saved


def _adopt_crds(cluster: Cluster, release: str, namespace: str) -> None:
    """Mark the existing CRDs as the release's, so helm install takes them over."""
    cluster.kubectl("label", "crd", *CRDS, "app.kubernetes.io/managed-by=Helm", "--overwrite")
    cluster.kubectl(
        "annotate",
        "crd",
        *CRDS,
        f"meta.helm.sh/release-name={release}",
        f"meta.helm.sh/release-namespace={namespace}",
        "--overwrite",
    )


def _uninstall_keeping_crds(helm: Any, release: str, namespace: str) -> list[dict[str, Any]]:
    """helm uninstall, once the release's own record says it keeps the CRDs: helm
    decides by the stored manifest, and other tests' runs live in these CRDs.
    Returns that manifest."""
    manifest = _docs(helm("get", "manifest", release, "--namespace", namespace))
    crds = {d["metadata"]["name"]: d for d in manifest if d["kind"] == "CustomResourceDefinition"}
    assert set(crds) == set(CRDS), sorted(crds)
    for crd in crds.values():
        policy = (crd["metadata"].get("annotations") or {}).get("helm.sh/resource-policy")
        assert policy == "keep", f"not uninstalling: {crd['metadata']} would delete the CRD"
    helm("uninstall", release, "--namespace", namespace, "--wait", timeout=180)
    return manifest


def _restore_crds(cluster: Cluster, saved: dict[str, dict[str, dict[str, str]]]) -> None:
    """Give the CRDs their metadata from before the release, and crds/ as applied."""
    for name, wanted in saved.items():
        meta = cluster.get("crd", name)["metadata"]
        patch = {
            key: {**dict.fromkeys(meta.get(key) or {}), **wanted[key]}
            for key in ("labels", "annotations")
        }
        cluster.kubectl("patch", "crd", name, "--type=merge", "-p", json.dumps({"metadata": patch}))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))


def _check_only_the_crds_are_left(
    cluster: Cluster, manifest: list[dict[str, Any]], release: str, namespace: str
) -> None:
    others = [d for d in manifest if d["kind"] != "CustomResourceDefinition"]
    kinds = {d["kind"] for d in others}
    assert {"Deployment", "Service", "ServiceAccount", "ClusterRole", "RoleBinding"} <= kinds
    left = cluster.kubectl(
        "get",
        "-n",
        namespace,
        "-f",
        "-",
        "--ignore-not-found",
        "-o",
        "name",
        input="\n---\n".join(json.dumps(d) for d in others),
    ).stdout.split()
    assert left == [], left

    def nothing_runs() -> bool:
        return not cluster.kubectl(
            "get",
            "replicasets,pods,secrets",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/instance={release}",
            "-o",
            "name",
        ).stdout.split()

    cluster.wait_for("the release's pods to go", nothing_runs, 60)
    releases = cluster.kubectl(
        "get", "secrets", "-n", namespace, "-l", f"owner=helm,name={release}", "-o", "name"
    ).stdout.split()
    assert releases == [], releases
    # The CRDs stay, established: other tests' runs are in them.
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", *[f"crd/{c}" for c in CRDS]
    )


class _PodOperator:
    """The chart's operator pod, for the log a failing wait shows."""

    def __init__(self, cluster: Cluster, namespace: str, pod: str):
        self.cluster, self.namespace, self.pod = cluster, namespace, pod

    def log_tail(self, lines: int = 60) -> str:
        return self.cluster.kubectl(
            "logs", "-n", self.namespace, self.pod, f"--tail={lines}", check=False
        ).stdout


def _serve_runs(
    cluster: Cluster, namespace: str, operator: _PodOperator, home: dict[str, Any]
) -> None:
    """Runs of every kind the dashboard and the alerts are about, under the chart's operator."""
    # A namespace at its pod quota: the operator's pod creations are forbidden (403,
    # an API error the alerts count) until the quota is lifted; then the run goes on.
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods"},
        "spec": {"hard": {"pods": "0"}},
    }
    cluster.apply(quota, namespace)
    cluster.wait_for(
        "the quota to be counted",
        lambda: (cluster.get("resourcequota", "no-pods", namespace).get("status") or {}).get(
            "hard"
        ),
        30,
    )
    cluster.apply(workflow_manifest("hello", HELLO, "hello"), namespace)
    cluster.apply(workflow_manifest("nap", HELLO, "nap"), namespace)
    cluster.apply(run_manifest("hello-1", "hello", "chart"), namespace)
    forbidden = 'flux_kubernetes_api_errors_total{code="403",resource="pods",verb="create"}'
    cluster.wait_for(
        "a pod creation forbidden by the quota",
        lambda: forbidden in _scrape(cluster, namespace, operator.pod),
        60,
        describe=operator.log_tail,
    )
    cluster.kubectl("delete", "resourcequota", "no-pods", "-n", namespace)

    for scenario in POLICY_SCENARIOS:
        name = scenario.replace("_", "-")
        workflow = workflow_manifest(name, POLICY_SOURCE, scenario, homeVolume=home)
        cluster.apply(workflow, namespace)
        cluster.apply(run_manifest(name, name, f"chart-{scenario}"), namespace)
    cluster.apply(run_manifest("nap-1", "nap", NAP), namespace)
    _pending_pod_counted_until_its_run_is_deleted(cluster, namespace, operator)

    status = wait_phase(cluster, operator, namespace, "hello-1", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status
    assert status["output"] == "hello chart"
    metrics = _scrape(cluster, namespace, operator.pod)
    assert 'flux_runs_finished_total{outcome="succeeded",workflow="hello"}' in metrics
    assert "flux_build_info" in metrics
    assert (
        'flux_task_attempts_total{outcome="succeeded",task="greet",workflow="hello"} 1.0' in metrics
    )
    assert 'flux_task_stage_duration_seconds_count{stage="running",workflow="hello"}' in metrics
    # Second runs of a workflow that succeeds and of one that fails, once the first
    # is over: their run counters and duration histograms change between scrapes,
    # so rate() and histogram_quantile() of them give numbers (not 0 and NaN), and
    # the failure-ratio alert has data (it may only go pending here, never fire).
    cluster.apply(run_manifest("hello-2", "hello", "again"), namespace)
    first = wait_phase(cluster, operator, namespace, "retries-exhausted", "Succeeded", "Failed")
    assert first["phase"] == "Failed", first
    cluster.apply(run_manifest("retries-exhausted-2", "retries-exhausted", "again"), namespace)

    phases = {}
    for scenario in POLICY_SCENARIOS:
        name = scenario.replace("_", "-")
        phases[scenario] = wait_phase(
            cluster, operator, namespace, name, "Succeeded", "Failed", timeout=300
        )["phase"]
    assert phases == POLICY_SCENARIOS
    status = wait_phase(cluster, operator, namespace, "nap-1", "Succeeded", "Failed")
    assert status["output"] == "rested", status
    assert status["driver"]["starts"] >= 2, status["driver"]
    status = wait_phase(cluster, operator, namespace, "hello-2", "Succeeded", "Failed")
    assert status["output"] == "hello again", status
    status = wait_phase(cluster, operator, namespace, "retries-exhausted-2", "Succeeded", "Failed")
    assert status["phase"] == "Failed", status
    metrics = _scrape(cluster, namespace, operator.pod)
    for line in (
        'flux_runs_finished_total{outcome="failed",workflow="retries-exhausted"} 2.0',
        'flux_task_retries_total{task="flaky",workflow="retry-then-succeed"} 2.0',
        'flux_task_timeouts_total{task="too_slow",workflow="timeout-to-fallback"} 1.0',
        'flux_task_fallbacks_total{task="always_fails",workflow="exhausted-to-fallback"} 1.0',
        'flux_task_rollbacks_total{task="breaks",workflow="rollback-then-catch"} 1.0',
        'flux_driver_restarts_total{workflow="nap"}',
    ):
        assert line in metrics, line


# No node has this label: the task pod of a run of "stuck" stays Pending (Unschedulable).
STUCK_SELECTOR = {"flux.dev/e2e-no-such-node": "true"}


def _pending_pod_counted_until_its_run_is_deleted(
    cluster: Cluster, namespace: str, operator: _PodOperator
) -> None:
    """flux_task_pods_pending and its age follow a task pod that cannot be scheduled,
    and drop to 0 when its run is deleted (before the operator's pending timeout)."""
    stuck = workflow_manifest(
        "stuck", HELLO, "hello", taskDefaults={"nodeSelector": STUCK_SELECTOR}
    )
    cluster.apply(stuck, namespace)
    cluster.apply(run_manifest("stuck-1", "stuck", "nobody"), namespace)

    def gauges() -> tuple[float, float] | None:
        found = dict(
            re.findall(
                r'^(flux_task_pods_pending\w*)\{workflow="stuck"\} (\S+)$',
                _scrape(cluster, namespace, operator.pod),
                re.M,
            )
        )
        if len(found) < 2:
            return None
        return (
            float(found["flux_task_pods_pending"]),
            float(found["flux_task_pods_pending_max_age_seconds"]),
        )

    def pending() -> tuple[float, float] | None:
        now = gauges()
        # Past 5 s, so Prometheus (scraping every second, later under load) has seen it
        # past 2 s before the run is deleted.
        return now if now is not None and now[0] == 1 and now[1] >= 5 else None

    count, age = cluster.wait_for(
        "the stuck run's task pod to count as pending", pending, 90, describe=operator.log_tail
    )
    print(f"stuck-1 pending: flux_task_pods_pending={count} max_age_seconds={age}")
    cluster.kubectl("delete", "workflowrun", "stuck-1", "-n", namespace, "--wait=false")
    cluster.wait_for(
        "the deleted run's pending pod to be forgotten",
        lambda: gauges() == (0.0, 0.0) or None,
        60,
        describe=operator.log_tail,
    )


def _operator_pod(cluster: Cluster, namespace: str, release: str) -> str:
    """The running operator pod that holds the leader Lease (the other stands by)."""
    env = cluster.get("deployment", release, namespace)["spec"]["template"]["spec"]["containers"][
        0
    ]["env"]
    lease = next(e["value"] for e in env if e["name"] == "FLUX_LEASE_NAME")

    def probe() -> str | None:
        running = cluster.kubectl(
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/instance={release},app.kubernetes.io/component=operator",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ).stdout.split()
        holder = cluster.kubectl(
            "get",
            "lease",
            lease,
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
            check=False,
        ).stdout
        pod = holder.rsplit("_", 1)[0]
        return pod if holder and pod in running else None

    return cluster.wait_for("the leading operator pod", probe, 120)


def _scrape(cluster: Cluster, namespace: str, pod: str) -> str:
    """/metrics of the operator pod, through the API server's pod proxy."""
    deadline = time.monotonic() + 30
    while True:
        proc = cluster.kubectl(
            "get",
            "--raw",
            f"/api/v1/namespaces/{namespace}/pods/{pod}:9090/proxy/metrics",
            check=False,
        )
        if proc.returncode == 0 or time.monotonic() > deadline:
            assert proc.returncode == 0, proc.stderr
            return proc.stdout
        time.sleep(1)


class _Prometheus:
    """The HTTP API of a Prometheus server on this machine."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}/api/v1"

    def get(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.base}/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body: dict[str, Any] = json.loads(response.read())
        return body

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def alerts(self) -> dict[str, dict[str, Any]]:
        groups = self.get("rules", type="alert")["data"]["groups"]
        return {r["name"]: r for g in groups for r in g["rules"]}


@contextmanager
def _prometheus(target: str, tmp_path: Path) -> Iterator[_Prometheus]:
    """A real Prometheus (Debian's package) scraping the operator every second and
    evaluating the chart's alert rules, from before the first run to the queries."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: apt-get install -y prometheus (Debian package)"
    rules = tmp_path / "alerts.yaml"
    rules.write_text(yaml.safe_dump({"groups": _alert_groups()}))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "flux", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    prometheus = _Prometheus(port)

    def scraped() -> bool:
        try:
            return len(prometheus.query("flux_build_info")) == 1
        except OSError:
            return False

    try:
        deadline = time.monotonic() + 60
        while not scraped():
            tail = log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"Prometheus never scraped {target}\n{tail}"
            time.sleep(0.5)
        yield prometheus
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _alert_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load((CHART / "files/alerts.yaml").read_text())
    return groups


def _dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads((CHART / "files/dashboard.json").read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]


# A metric name with its label matchers, as written in a query.
SELECTOR = re.compile(r"\bflux_[a-z0-9_]+(?:\{[^}]*\})?")
# The threshold an alert compares against, at the end of its expression.
THRESHOLD = re.compile(r"\s*(?:[<>]=?|[!=]=)\s*(?:bool\s+)?[-+]?[0-9.]+(?:e[-+]?[0-9]+)?\s*$")


def _without_threshold(expr: str) -> str:
    """What an alert compares (a > 5: a), or what it finds absent (absent(x): x)."""
    expr = expr.strip()
    absent = re.fullmatch(r"absent\((.*)\)", expr, re.DOTALL)
    if absent:
        return absent.group(1).strip()
    inner = THRESHOLD.sub("", expr)
    assert inner != expr, f"no threshold in alert expression {expr!r}"
    return inner


def _shown(result: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{json.dumps(r['metric'], sort_keys=True)}={r['value'][1]}" for r in result[:4]
    ) + (" ..." if len(result) > 4 else "")


# Events that happened exactly so many times in the runs above, and how Prometheus
# must count them: every counter series exists at 0 before its first event (the
# operator creates it when it first sees the Workflow, the run or the task
# record), so the first event is an increase too. A series born at 1 would not be.
FIRST_EVENTS = {
    'flux_task_timeouts_total{workflow="timeout-to-fallback",task="too_slow"}': 1,
    'flux_task_fallbacks_total{workflow="exhausted-to-fallback",task="always_fails"}': 1,
    'flux_task_rollbacks_total{workflow="rollback-then-catch",task="breaks"}': 1,
    'flux_task_retries_total{workflow="retry-then-succeed",task="flaky"}': 2,
    'flux_runs_finished_total{workflow="retries-exhausted",outcome="failed"}': 2,
    'flux_runs_finished_total{workflow="hello",outcome="succeeded"}': 2,
    # Created at 0 when the operator saw the Workflow, long before hello-1 could
    # start (pod creations are forbidden by the quota until then).
    'flux_runs_started_total{workflow="hello"}': 2,
}


def _check_first_events_and_pending_pods(prometheus: _Prometheus) -> None:
    lines, wrong = [], []
    for selector, times in FIRST_EVENTS.items():
        expr = f"increase({selector}[1h])"
        result = prometheus.query(expr)
        value = float(result[0]["value"][1]) if len(result) == 1 else None
        lines.append(f"first events  {expr} -> {value} (happened {times} times)")
        # increase() extrapolates to the end of the range, never below the samples' rise.
        if value is None or not times <= value < times + 1:
            wrong.append(lines[-1])
    for expr, check in (
        ('max_over_time(flux_task_pods_pending{workflow="stuck"}[1h])', lambda v: v == 1),
        ('flux_task_pods_pending{workflow="stuck"}', lambda v: v == 0),
        (
            'max_over_time(flux_task_pods_pending_max_age_seconds{workflow="stuck"}[1h])',
            lambda v: 2 <= v < 120,
        ),
        ('flux_task_pods_pending_max_age_seconds{workflow="stuck"}', lambda v: v == 0),
    ):
        result = prometheus.query(expr)
        value = float(result[0]["value"][1]) if len(result) == 1 else None
        lines.append(f"pending pods  {expr} -> {value}")
        if value is None or not check(value):
            wrong.append(lines[-1])
    print("\n".join(lines))
    assert not wrong, "unexpected:\n" + "\n".join(wrong) + "\n\n" + "\n".join(lines)


def _check_every_query(prometheus: _Prometheus) -> None:
    """Every dashboard query and every alert expression returns data; an alert
    whose expression has none (it must not fire here) is inactive, and what it
    compares against its threshold, and every series it reads, have data."""
    time.sleep(3)  # scrapes and rule evaluations after the last run finished
    lines, empty = [], []
    for title, expr in _dashboard_queries():
        result = prometheus.query(expr)
        lines.append(f"dashboard  {title}: {' '.join(expr.split())}\n    -> {_shown(result)}")
        if not result:
            empty.append(expr)
    alerts = prometheus.alerts()
    rules = [r for g in _alert_groups() for r in g["rules"]]
    assert set(alerts) == {r["alert"] for r in rules}, sorted(alerts)
    assert all(a["health"] == "ok" for a in alerts.values()), alerts
    exprs = [e for _, e in _dashboard_queries()]
    for rule in rules:
        name, expr, state = rule["alert"], rule["expr"], alerts[rule["alert"]]["state"]
        exprs.append(expr)
        result = prometheus.query(expr)
        shown = f"alert      {name} [{state}]: {' '.join(expr.split())}\n    -> {_shown(result)}"
        assert state != "firing", shown
        if not result:
            inner = _without_threshold(expr)
            inner_result = prometheus.query(inner)
            shown += f"\n    without threshold: {' '.join(inner.split())} -> {_shown(inner_result)}"
            assert state == "inactive", shown
            if not inner_result:
                empty.append(inner)
        lines.append(shown)
    for selector in sorted({s for e in exprs for s in SELECTOR.findall(e)}):
        result = prometheus.query(selector)
        lines.append(f"series     {selector}: {len(result)}")
        if not result:
            empty.append(selector)
    print("\n".join(lines))
    assert not empty, "no data for:\n" + "\n".join(empty) + "\n\n" + "\n".join(lines)
