"""The driver pod's program: what its environment selects, and a workflow that
cannot be loaded failing the runs it was to drive."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import TYPE_CHECKING

from flux.k8s import pods
from flux.k8s import protocol as driver_env
from flux.k8s.config import OperatorConfig
from flux.runtime import driver_main

if TYPE_CHECKING:
    from support.drivers import DriverKube, Runs

ENV = {
    driver_env.NAMESPACE_ENV: "ns",
    driver_env.WORKFLOW_ENV: "no_such_module_anywhere:wf",
    driver_env.LINGER_ENV: "0",
}


def test_a_workflow_that_cannot_be_imported_fails_the_run(kube: DriverKube, runs: Runs) -> None:
    kube.merge_allowed = True
    runs.new(1)
    env = {**ENV, driver_env.RUN_ENV: "r1"}
    assert asyncio.run(driver_main.drive(kube, env)) == 1
    status = runs.status()
    assert status["phase"] == "Failed"
    assert "no_such_module_anywhere" in status["error"]["message"]


def test_a_shared_driver_that_cannot_import_fails_the_runs_it_would_serve(
    kube: DriverKube, runs: Runs
) -> None:
    kube.merge_allowed = True
    runs.new(1, "new")
    runs.new(2, "theirs")
    runs.set_status("theirs", phase="Running", driver={"starts": 1})
    runs.add(
        {
            "metadata": {"name": "elsewhere", "namespace": "ns"},
            "spec": {"workflowRef": {"name": "other"}},
        }
    )
    env = {**ENV, driver_env.WORKFLOW_NAME_ENV: "wf"}
    assert asyncio.run(driver_main.drive(kube, env)) == 1
    assert runs.status("new")["phase"] == "Failed"
    assert runs.status("theirs") == {"phase": "Running", "driver": {"starts": 1}}
    assert "status" not in runs.body("elsewhere")


def test_driver_pods_run_this_program_with_the_environment_it_reads() -> None:
    run = {"metadata": {"name": "r1", "namespace": "ns", "uid": "u"}}
    workflow = {
        "metadata": {"name": "wf", "namespace": "ns", "uid": "w"},
        "spec": {"entrypoint": "examples.hello:hello"},
    }
    config = OperatorConfig(default_image="flux-runtime:test")
    for pod in (
        pods.driver_pod(run, workflow, config, 1),
        pods.shared_driver_pod(workflow, config),
    ):
        container = pod["spec"]["containers"][0]
        assert driver_main.__name__ in [*container.get("command", []), *container.get("args", [])]
        names = {e["name"] for e in container["env"]}
        assert {driver_env.NAMESPACE_ENV, driver_env.WORKFLOW_ENV, driver_env.LINGER_ENV} <= names
        assert len(names & {driver_env.RUN_ENV, driver_env.WORKFLOW_NAME_ENV}) == 1


def test_a_driver_or_task_pod_imports_no_kubeconfig_machinery_nor_the_crd_models() -> None:
    """kubernetes-asyncio imports every generated model (~0.3 s of CPU a pod),
    the CRD models pydantic (~0.1 s); a pod connects with its service account
    and writes plain JSON. The import contract in pyproject.toml pins the
    imports; this pins what actually loads."""
    unwanted = (
        "kubernetes_asyncio",
        "flux.k8s.kube.kubeconfig",
        "yaml",
        "pydantic",
        "flux.k8s.models",
    )
    probe = (
        "import sys, flux.runtime.driver_main, flux.runtime.task; "
        f"print(sorted(m for m in {unwanted!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stderr
