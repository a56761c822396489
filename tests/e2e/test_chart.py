"""The Helm chart on the real cluster: lint, render, server-side dry-run, install.

Every value set in charts/flux/ci/ is rendered and sent to the API server with
``kubectl apply --dry-run=server``. Objects of the Prometheus Operator (not
installed on the test cluster) are checked with promtool and by structure
instead. Then the chart is installed into a fresh namespace: the operator runs
as a real pod, watching only that namespace, and a WorkflowRun succeeds.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from flux_runs import run_manifest, status_of, workflow_manifest

if TYPE_CHECKING:
    from conftest import Cluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts/flux"
VALUE_SETS = sorted((CHART / "ci").glob("*-values.yaml"))
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}

pytestmark = pytest.mark.e2e


def _helm_path() -> Path:
    """The pinned helm the cluster scripts build next to kubectl; built if missing."""
    bin_dir = subprocess.run(
        ["bash", "-c", f"source {REPO}/cluster/scripts/lib.sh && echo $BIN_DIR"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    helm = Path(bin_dir) / "helm"
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


@task
def greet(name: str) -> str:
    return f"hello {name}"


@workflow
async def hello(ctx: WorkflowExecutionContext[str]) -> str:
    return await greet(ctx.input)
"""


def test_install_run_upgrade_and_uninstall(
    cluster: Cluster, helm: Any, chart_namespace: str, tmp_path: Path
) -> None:
    """The chart's operator as a real pod, watching only its own namespace."""
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
        # The e2e session already applied the CRDs (crds fixture); do not take them over.
        "--set",
        "crds.install=false",
    ]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    installed = False
    try:
        helm("install", release, str(CHART), *base, "--wait", "--timeout", "180s", timeout=240)
        installed = True
        deployment = f"deployment/{release}"
        cluster.kubectl("rollout", "status", "-n", namespace, deployment, "--timeout=120s")
        pod = _operator_pod(cluster, namespace, release)
        cluster.apply(workflow_manifest("hello", HELLO, "hello"), namespace)
        cluster.apply(run_manifest("hello-1", "hello", "chart"), namespace)

        def done() -> dict[str, Any] | None:
            status = status_of(cluster, namespace, "hello-1")
            return status if status.get("phase") in ("Succeeded", "Failed") else None

        status = cluster.wait_for(
            "the run to finish under the chart's operator",
            done,
            180,
            describe=lambda: (
                cluster.kubectl("logs", "-n", namespace, pod, "--tail=80", check=False).stdout
            ),
        )
        assert status["phase"] == "Succeeded", status
        assert status["output"] == "hello chart"
        metrics = _scrape(cluster, namespace, pod)
        assert 'flux_runs_finished_total{outcome="succeeded",workflow="hello"}' in metrics
        assert "flux_build_info" in metrics
        assert (
            'flux_task_attempts_total{outcome="succeeded",task="greet",workflow="hello"} 1.0'
            in metrics
        )
        assert 'flux_task_stage_duration_seconds_count{stage="running",workflow="hello"}' in metrics
        pod_ip = cluster.get("pod", pod, namespace)["status"]["podIP"]
        _evaluate_with_prometheus(f"{pod_ip}:9090", tmp_path)

        helm(
            "upgrade",
            release,
            str(CHART),
            *base,
            "--set",
            "operator.driverLingerSeconds=5",
            "--wait",
            "--timeout",
            "180s",
            timeout=240,
        )
        env = cluster.get("deployment", release, namespace)["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
        assert {"name": "FLUX_DRIVER_LINGER_SECONDS", "value": "5"} in env
        cluster.kubectl("rollout", "status", "-n", namespace, deployment, "--timeout=120s")
    finally:
        if installed:
            helm("uninstall", release, "--namespace", namespace, "--wait", timeout=180)
    left = cluster.kubectl(
        "get",
        "clusterroles,clusterrolebindings",
        "-l",
        f"app.kubernetes.io/instance={release}",
        "-o",
        "name",
    ).stdout.split()
    assert left == []
    left = cluster.kubectl(
        "get",
        "deployments,services,serviceaccounts,rolebindings,configmaps",
        "-n",
        namespace,
        "-l",
        f"app.kubernetes.io/instance={release}",
        "-o",
        "name",
    ).stdout.split()
    assert left == []
    # The CRDs stay (the e2e session's, and the chart keeps its own by default).
    cluster.kubectl("get", "crd", "workflows.flux.dev", "workflowruns.flux.dev")


def _operator_pod(cluster: Cluster, namespace: str, release: str) -> str:
    def probe() -> str | None:
        out = cluster.kubectl(
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
        return out[0] if len(out) == 1 else None

    return cluster.wait_for("one running operator pod", probe, 120)


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


# Queries that must return data once a run has succeeded (the others may be empty
# while nothing was retried, timed out, rolled back or failed).
MUST_HAVE_DATA = (
    "flux_runs_finished_total",
    "flux_runs_active",
    "flux_task_attempts_total",
    "flux_reconcile_duration_seconds_bucket",
    "flux_kubernetes_api_requests_total",
    "flux_task_stage_duration_seconds_bucket",
)


def _evaluate_with_prometheus(target: str, tmp_path: Path) -> None:
    """A real Prometheus scrapes the operator pod, evaluates the chart's alert rules,
    and answers every dashboard and alert query without an error."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: apt-get install -y prometheus (Debian package)"
    groups = yaml.safe_load((CHART / "files/alerts.yaml").read_text())
    alert_exprs = [r["expr"] for g in groups for r in g["rules"]]
    rules = tmp_path / "alerts.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
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
    base = f"http://127.0.0.1:{port}/api/v1"

    def get(path: str, **params: str) -> dict[str, Any]:
        url = f"{base}/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body: dict[str, Any] = json.loads(response.read())
        return body

    def scraped() -> bool:
        try:
            return len(get("query", query="flux_build_info")["data"]["result"]) == 1
        except OSError:
            return False

    try:
        deadline = time.monotonic() + 60
        while not scraped():
            tail = log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"Prometheus never scraped {target}\n{tail}"
            time.sleep(0.5)
        time.sleep(4)  # a few more scrapes and rule evaluations, for rate() windows
        board = json.loads((CHART / "files/dashboard.json").read_text())
        exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
        for expr in [*exprs, *alert_exprs]:
            answer = get("query", query=expr)
            assert answer["status"] == "success", (expr, answer)
            if expr in exprs and any(name in expr for name in MUST_HAVE_DATA):
                assert answer["data"]["result"], f"no data for {expr}"
        evaluated = [r for g in get("rules")["data"]["groups"] for r in g["rules"]]
        assert len(evaluated) == len(alert_exprs), evaluated
        assert all(r["health"] == "ok" for r in evaluated), evaluated
        firing = [r["name"] for r in evaluated if r.get("state") == "firing"]
        assert firing == [], firing
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
