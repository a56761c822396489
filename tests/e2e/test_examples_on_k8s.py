"""Every example runs as a WorkflowRun and ends with the same output as locally.

The expected outputs come from the table tests/local checks `flux run`
against, so the two executors are held to one answer.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from flux_runs import resume, run_manifest, wait_phase, workflow_manifest

from example_cases import API_KEY, CASES, EXAMPLES, Case
from flux import codec

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e


def workflow_name(ref: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", ref.lower().replace(".py", "")).strip("-")


def matches(case: Case, output: Any) -> bool:
    return case.check(output) if case.check is not None else output == case.output


@pytest.mark.timeout(900)
def test_every_example_gives_its_local_output_on_kubernetes(
    cluster: Cluster, flux_ns: str, operator: Operator, shared_home: dict[str, Any]
) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "example-api"},
            "stringData": {"token": API_KEY},
        },
        flux_ns,
    )
    for ref in dict.fromkeys(case.ref for case in CASES):
        file, function = ref.split(":")
        spec = {
            "homeVolume": shared_home,
            "secrets": {"API_KEY": {"secretName": "example-api", "key": "token"}},
        }
        source = (EXAMPLES / file).read_text()
        cluster.apply(workflow_manifest(workflow_name(ref), source, function, **spec), flux_ns)
    runs = {}
    for index, case in enumerate(CASES):
        name = f"ex-{index}-{uuid.uuid4().hex[:4]}"
        cluster.apply(run_manifest(name, workflow_name(case.ref), case.input), flux_ns)
        runs[name] = case
    problems = []
    for name, case in runs.items():
        status = wait_phase(
            cluster, operator, flux_ns, name, "Succeeded", "Failed", "Paused", timeout=600
        )
        if case.resume is not None and status["phase"] == "Paused":
            pause_name, resume_input = case.resume
            if status["pause"]["name"] != pause_name:
                problems.append(f"{case.ref}: paused at {status['pause']['name']!r}")
                continue
            resume(cluster, flux_ns, name, codec.encode(resume_input))
            status = wait_phase(
                cluster, operator, flux_ns, name, "Succeeded", "Failed", timeout=300
            )
        if status["phase"] != "Succeeded":
            problems.append(f"{case.ref}({case.input!r}): {status['phase']}: {status.get('error')}")
            continue
        output = codec.decode(status.get("output"))
        if not matches(case, output):
            problems.append(
                f"{case.ref}({case.input!r}): output {output!r}, locally {case.output!r}"
            )
    assert not problems, "\n".join(problems)
