"""The `flux kube` commands on an in-memory API server: what each one asks of the
cluster, what it prints, and its exit code. The operator's part is played by a
coroutine that writes run status as the driver would."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flux.k8s import archive
from flux.k8s.inspect import connected
from flux.k8s.kube import CONFIGMAPS, RUNS, WORKFLOWS, Forbidden, Kube
from flux.k8s.kube.fake import FakeKube
from flux.k8s.kube.http import context_namespace
from flux.local import cli, kube_cli
from flux.local.kube_runs import MANAGED_BY, MANAGER

NS = "team"
Operator = Callable[[FakeKube], Awaitable[None]]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        lines = [line for line in self.err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, self.err
        return lines[0]


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube()


@pytest.fixture
def flux(
    fake: FakeKube, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., Result]]:
    """``flux kube ARGS`` through the command's entry point, on ``fake``; an
    ``operator`` coroutine runs beside the command while it talks to the cluster."""
    monkeypatch.setenv("FLUX_KUBECONFIG", "/nonexistent")  # never a real cluster

    def call(*args: str, operator: Operator | None = None) -> Result:
        @asynccontextmanager
        async def cluster(kube: Kube | None, doing: str) -> AsyncIterator[Kube]:
            task = asyncio.create_task(operator(fake)) if operator else None
            try:
                async with connected(fake, doing) as reached:
                    yield reached
            finally:
                if task is not None:
                    task.cancel()

        monkeypatch.setattr(kube_cli, "open_cluster", cluster)
        monkeypatch.setattr(sys, "argv", ["flux", "kube", *args])
        with pytest.raises(SystemExit) as exited:
            cli.main()
        captured = capsys.readouterr()
        return Result(int(exited.value.code or 0), captured.out, captured.err)

    yield call


def put_run(fake: FakeKube, name: str, phase: str | None = None, **status: Any) -> None:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": NS},
        "spec": {"workflowRef": {"name": "wf"}, "input": {"n": 1}},
    }
    if phase is not None:
        body["status"] = {"phase": phase, **status}
    fake.put(RUNS, body)


def event(id: int, type: str, value: Any = None, source: str = "run") -> dict[str, Any]:
    return {
        "id": id,
        "type": type,
        "sourceId": source,
        "name": "x",
        "time": "2026-01-01T00:00:00+00:00",
        "value": value,
    }


async def until(fake: FakeKube, holds: Callable[[], bool]) -> None:
    """Wait for a change of the runs after which ``holds()``."""
    async for _ in fake.watch(RUNS, NS, timeout_seconds=5):
        if holds():
            return
    raise AssertionError("the command never got that far")


async def first_run(fake: FakeKube) -> str:
    await until(fake, lambda: bool(fake.all(RUNS, NS)))
    name: str = fake.all(RUNS, NS)[0]["metadata"]["name"]
    return name


async def set_status(fake: FakeKube, name: str, status: dict[str, Any]) -> None:
    await fake.patch(RUNS, NS, name, {"status": status}, status=True)
    await asyncio.sleep(0.01)


def ends(phase: str, **final: Any) -> Operator:
    """A run that starts a task, finishes it and ends in ``phase``."""

    async def operator(fake: FakeKube) -> None:
        name = await first_run(fake)
        started = event(1, "WORKFLOW_STARTED", {"n": 1})
        task = event(2, "TASK_STARTED", {"args": [], "kwargs": {}}, "t#0")
        await set_status(fake, name, {"phase": "Running", "history": [started, task]})
        done = event(3, "TASK_COMPLETED", 1, "t#0")
        await set_status(fake, name, {"phase": phase, "history": [started, task, done], **final})

    return operator


# ---------------------------------------------------------------------- run


def test_run_ships_the_file_and_starts_a_run(flux: Callable[..., Result], fake: FakeKube) -> None:
    example = "examples/hello.py:hello"
    result = flux("run", example, "-n", NS, "--input", '{"big": 123456789012345678901234}')
    assert result.code == 0, result.err
    workflow = fake.stored(WORKFLOWS, NS, "hello")
    assert workflow is not None
    assert workflow["spec"] == {
        "source": Path("examples/hello.py").read_text(),
        "function": "hello",
    }
    assert workflow["metadata"]["labels"] == {MANAGED_BY: MANAGER}
    (run,) = fake.all(RUNS, NS)
    assert result.out.strip() == run["metadata"]["name"]
    assert run["metadata"]["name"].startswith("hello-")
    assert run["spec"]["workflowRef"] == {"name": "hello"}
    # Past int64: tagged, as the API server could not keep it.
    assert run["spec"]["input"] == {"big": {"$flux": "int", "v": "123456789012345678901234"}}
    assert "workflow team/hello created" in result.err


def test_a_large_input_goes_to_a_configmap_the_run_and_its_retries_own(
    flux: Callable[..., Result], fake: FakeKube, tmp_path: Path
) -> None:
    big = tmp_path / "input.json"
    big.write_text(json.dumps("x" * 20_000))
    result = flux("run", "examples/hello.py:hello", "-n", NS, "--input-file", str(big))
    assert result.code == 0, result.err
    (run,) = fake.all(RUNS, NS)
    assert "input" not in run["spec"]
    ref = run["spec"]["inputFrom"]["configMapKeyRef"]
    configmap = fake.stored(CONFIGMAPS, NS, ref["name"])
    assert configmap is not None
    assert json.loads(configmap["data"][ref["key"]]) == "x" * 20_000
    owners = configmap["metadata"]["ownerReferences"]
    assert [(o["kind"], o["uid"]) for o in owners] == [("WorkflowRun", run["metadata"]["uid"])]
    retried = flux("retry", run["metadata"]["name"], "-n", NS).out.strip()
    configmap = fake.stored(CONFIGMAPS, NS, ref["name"])
    assert configmap is not None
    assert [o["name"] for o in configmap["metadata"]["ownerReferences"]] == [
        run["metadata"]["name"],
        retried,
    ]


def test_run_again_updates_only_a_changed_source(
    flux: Callable[..., Result], fake: FakeKube, tmp_path: Path
) -> None:
    file = tmp_path / "flow.py"
    file.write_text(Path("examples/hello.py").read_text())
    assert flux("run", f"{file}:hello", "-n", NS).code == 0
    assert flux("run", f"{file}:hello", "-n", NS).code == 0
    assert fake.count("patch", WORKFLOWS) == 0
    file.write_text(file.read_text() + "\n# changed\n")
    result = flux("run", f"{file}:hello", "-n", NS)
    assert "workflow team/flow-hello updated" in result.err
    # The two runs before it have not ended: they keep the code they started with.
    assert "2 unfinished run(s) of flow-hello (" in result.err
    assert "keep the revision they started with; new runs use the new source" in result.err
    assert "warning" not in result.err
    stored = fake.stored(WORKFLOWS, NS, "flow-hello")
    assert stored is not None and stored["spec"]["source"].endswith("# changed\n")
    assert len(fake.all(RUNS, NS)) == 3


def test_run_never_rewrites_a_workflow_it_did_not_make(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    fake.put(WORKFLOWS, {"metadata": {"name": "hello", "namespace": NS}, "spec": {"x": 1}})
    result = flux("run", "examples/hello.py:hello", "-n", NS)
    assert result.code == 2
    assert "Workflow team/hello exists and was not made by flux kube run" in result.error
    assert not fake.all(RUNS, NS)


def test_run_refuses_local_imports_before_any_request(
    flux: Callable[..., Result], fake: FakeKube, tmp_path: Path
) -> None:
    (tmp_path / "helpers.py").write_text("")
    (tmp_path / "flow.py").write_text("import helpers\n")
    result = flux("run", f"{tmp_path / 'flow.py'}:main", "-n", NS)
    assert result.code == 2 and fake.requests == []
    assert "defines no 'main'" in result.error
    (tmp_path / "flow.py").write_text("import helpers\ndef main(): ...\n")
    result = flux("run", f"{tmp_path / 'flow.py'}:main", "-n", NS)
    assert result.code == 2 and "imports local module helpers;" in result.error


def test_run_refuses_bad_input_before_any_request(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    result = flux("run", "examples/hello.py:hello", "-n", NS, "--input", "{nope")
    assert result.code == 2 and "--input is not valid JSON" in result.error
    assert fake.requests == []


def test_run_watch_succeeds_with_the_output_on_stdout(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    result = flux(
        "run", "examples/hello.py:hello", "-n", NS, "--watch", operator=ends("Succeeded", output=42)
    )
    assert result.code == 0, result.err
    assert json.loads(result.out) == 42
    assert result.err.splitlines()[-1].endswith("succeeded")


def test_run_watch_of_a_failing_run_exits_1_with_its_error(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    error = {"type": "ValueError", "message": "bad n", "kind": "code"}
    result = flux(
        "run", "examples/hello.py:hello", "-n", NS, "-w", operator=ends("Failed", error=error)
    )
    assert result.code == 1
    assert result.error.endswith("failed: ValueError: bad n")
    assert result.out == ""


def test_watch_of_a_paused_run_exits_3_with_the_resume_command(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    put_run(fake, "r1", "Paused", pause={"name": "approve", "output": {"ask": 1}})
    result = flux("watch", "r1", "-n", NS)
    assert result.code == 3
    assert json.loads(result.out) == {"ask": 1}
    assert (
        "paused at 'approve'; resume with: flux kube resume r1 -n team --input JSON" in result.err
    )


def test_watch_reads_events_moved_to_the_archive_once(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    owner = {"metadata": {"name": "r1", "namespace": NS, "uid": "u"}}
    chunk = [event(1, "WORKFLOW_STARTED"), event(2, "TASK_STARTED", {"args": []}, "t#0")]
    stored = fake.put(
        CONFIGMAPS,
        archive.configmap(owner, "r1-h0", archive.HISTORY, archive.pack(chunk)),
    )
    history = [event(3, "TASK_COMPLETED", 1, "t#0"), event(4, "WORKFLOW_COMPLETED", 1)]
    put_run(
        fake,
        "r1",
        "Succeeded",
        history=history,
        historyArchive=[archive.entry(stored, 2)],
        output=1,
    )
    result = flux("watch", "r1", "-n", NS, "--json")
    assert result.code == 0
    assert [e["id"] for e in json.loads(result.out)["history"]] == [1, 2, 3, 4]


def test_a_run_whose_archive_is_gone_or_rewritten_is_one_line(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    owner = {"metadata": {"name": "r1", "namespace": NS, "uid": "u"}}
    chunk = archive.pack([event(1, "WORKFLOW_STARTED")])
    stored = fake.put(CONFIGMAPS, archive.configmap(owner, "r1-h0", archive.HISTORY, chunk))
    put_run(fake, "r1", "Failed", historyArchive=[archive.entry(stored, 1)])
    fake.put(CONFIGMAPS, stored)  # rewritten after it was archived
    result = flux("show", "r1", "-n", NS)
    assert result.code == 2
    assert "part of the run is lost" in result.error and "changed after" in result.error
    del fake.objects[("configmaps", NS, "r1-h0")]
    result = flux("show", "r1", "-n", NS)
    assert result.code == 2 and "'r1-h0' of the run's archive is gone" in result.error


def test_watch_of_a_run_deleted_meanwhile_is_one_line(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    put_run(fake, "r1", "Running")

    async def deletes(fake: FakeKube) -> None:
        await asyncio.sleep(0.05)
        await fake.delete(RUNS, NS, "r1")

    result = flux("watch", "r1", "-n", NS, operator=deletes)
    assert result.code == 2 and "WorkflowRun team/r1 was deleted" in result.error


# ------------------------------------------------------------ resume, cancel


def test_resume_sets_status_resume_and_watch_follows_to_the_end(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    put_run(fake, "r1", "Paused", pause={"name": "approve"})

    async def driver(fake: FakeKube) -> None:
        await until(
            fake, lambda: bool(fake.objects[(RUNS.plural, NS, "r1")]["status"].get("resume"))
        )
        # The driver takes the resume (removing it) and the run goes on.
        await set_status(fake, "r1", {"phase": "Running", "resume": None, "pause": None})
        await set_status(fake, "r1", {"phase": "Succeeded", "output": "approved"})

    result = flux("resume", "r1", "-n", NS, "--input", '{"ok": true}', "--watch", operator=driver)
    assert result.code == 0, result.err
    assert json.loads(result.out) == "approved"
    patches = [r for r in fake.requests if r[0] == "patch"]
    assert patches[0] == ("patch", "workflowruns/status")


def test_resume_puts_the_input_in_status(flux: Callable[..., Result], fake: FakeKube) -> None:
    put_run(fake, "r1", "Paused", pause={"name": "approve"})
    assert flux("resume", "r1", "-n", NS, "-i", '{"ok": true}').code == 0
    stored = fake.stored(RUNS, NS, "r1")
    assert stored is not None and stored["status"]["resume"] == {"input": {"ok": True}}


def test_resume_of_a_run_not_paused_is_refused(flux: Callable[..., Result], fake: FakeKube) -> None:
    put_run(fake, "r1", "Running")
    result = flux("resume", "r1", "-n", NS)
    assert result.code == 2 and "run r1 is Running, not Paused" in result.error
    assert fake.count("patch") == 0


def test_cancel_sets_spec_cancel(flux: Callable[..., Result], fake: FakeKube) -> None:
    put_run(fake, "r1", "Running")
    result = flux("cancel", "r1", "-n", NS)
    assert result.code == 0 and "cancel requested" in result.err
    stored = fake.stored(RUNS, NS, "r1")
    assert stored is not None and stored["spec"]["cancel"] is True


def test_cancel_watch_exits_0_once_cancelled_and_1_if_it_ended_otherwise(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    def ending(phase: str) -> Operator:
        async def operator(fake: FakeKube) -> None:
            await until(
                fake, lambda: bool(fake.objects[(RUNS.plural, NS, "r1")]["spec"].get("cancel"))
            )
            await set_status(fake, "r1", {"phase": phase})

        return operator

    put_run(fake, "r1", "Running")
    assert flux("cancel", "r1", "-n", NS, "--watch", operator=ending("Cancelled")).code == 0
    put_run(fake, "r1", "Running")
    result = flux("cancel", "r1", "-n", NS, "--watch", operator=ending("Succeeded"))
    assert result.code == 1
    assert "ended Succeeded before the cancellation took effect" in result.error


def test_cancel_of_a_finished_run_is_refused(flux: Callable[..., Result], fake: FakeKube) -> None:
    put_run(fake, "r1", "Succeeded")
    result = flux("cancel", "r1", "-n", NS)
    assert result.code == 2 and "already finished (Succeeded)" in result.error


def test_a_cancel_the_crd_prunes_is_said(
    flux: Callable[..., Result], fake: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_run(fake, "r1", "Running")
    patch = fake.patch

    async def pruning(*args: Any, **kwargs: Any) -> dict[str, Any]:
        body = await patch(*args, **kwargs)
        body["spec"].pop("cancel", None)  # as an API server whose CRD lacks the field
        return body

    monkeypatch.setattr(fake, "patch", pruning)
    result = flux("cancel", "r1", "-n", NS)
    assert result.code == 2 and "WorkflowRun CRD has no spec.cancel" in result.error


# ------------------------------------------------------ retry, delete, list


def test_retry_starts_numbered_runs_with_the_same_spec(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    put_run(fake, "r1", "Failed")
    fake.objects[("workflowruns", NS, "r1")]["spec"]["cancel"] = True
    first = flux("retry", "r1", "-n", NS)
    assert first.code == 0 and first.out.strip() == "r1-retry-1"
    second = flux("retry", "r1-retry-1", "-n", NS)
    assert second.out.strip() == "r1-retry-2"
    retried = fake.stored(RUNS, NS, "r1-retry-2")
    assert retried is not None
    assert retried["spec"] == {"workflowRef": {"name": "wf"}, "input": {"n": 1}}
    assert "status" not in retried


def test_delete_and_a_missing_run(flux: Callable[..., Result], fake: FakeKube) -> None:
    put_run(fake, "r1", "Succeeded")
    assert flux("delete", "r1", "-n", NS).code == 0
    assert fake.stored(RUNS, NS, "r1") is None
    for command in ("delete", "show", "watch", "resume", "cancel", "retry"):
        result = flux(command, "r1", "-n", NS)
        assert result.code == 2, command
        assert result.error == "error: WorkflowRun 'r1' not found in namespace 'team'"


def test_a_refusal_is_one_line(flux: Callable[..., Result], fake: FakeKube) -> None:
    fake.fail("list", RUNS, Forbidden("workflowruns is forbidden: User cannot list"))
    result = flux("list", "-n", NS)
    assert result.code == 2
    assert "refused to list WorkflowRuns in namespace team: 403" in result.error


def test_list_shows_runs_newest_first_and_the_next_schedule_times(
    flux: Callable[..., Result], fake: FakeKube
) -> None:
    now = dt.datetime.now(dt.UTC)

    def stamp(seconds: float) -> str:
        return (now - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    put_run(fake, "old", "Succeeded", startTime=stamp(3600), finishTime=stamp(3590))
    fake.objects[("workflowruns", NS, "old")]["metadata"]["creationTimestamp"] = stamp(3601)
    put_run(fake, "new", "Running", startTime=stamp(30))
    fake.put(
        WORKFLOWS,
        {
            "metadata": {"name": "wf", "namespace": NS},
            "spec": {},
            "status": {"schedules": [{"name": "nightly", "nextScheduleTime": stamp(-7200)}]},
        },
    )
    result = flux("list", "-n", NS)
    assert result.code == 0
    lines = result.out.splitlines()
    new, old = (next(i for i, line in enumerate(lines) if f" {n} " in line) for n in ("new", "old"))
    assert new < old
    assert "Succeeded" in lines[old] and "1h" in lines[old] and "10s" in lines[old]
    # The stamp drops the microseconds: two hours from now, within a second.
    assert "nightly" in result.out and ("(in 2h)" in result.out or "(in 1h59m)" in result.out)
    listed = json.loads(flux("list", "-n", NS, "--json").out)
    assert [r["name"] for r in listed["runs"]] == ["new", "old"]
    assert listed["runs"][1]["durationSeconds"] == 10
    assert listed["schedules"][0]["workflow"] == "wf"


def test_list_of_an_empty_namespace(flux: Callable[..., Result]) -> None:
    result = flux("list", "-n", NS)
    assert result.code == 0 and result.err.strip() == "no runs in namespace team"


# ---------------------------------------------------------------- namespace


def test_a_kubeconfig_named_but_missing_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLUX_KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.setattr(sys, "argv", ["flux", "kube", "list"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "error: no kubeconfig: /nonexistent/kubeconfig does not exist; "
        "set FLUX_KUBECONFIG or KUBECONFIG, or run inside a pod\n"
    )


def test_the_namespace_is_the_kubeconfig_contexts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\n'
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u, namespace: other}},"
        " {name: b, context: {cluster: c, user: u, namespace: mine}}]\n"
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("FLUX_KUBECONFIG", str(config))
    assert context_namespace() == "mine"
    from flux.k8s.inspect import default_namespace

    assert default_namespace() == "mine"
    config.write_text(config.read_text().replace(", namespace: mine", ""))
    assert default_namespace() == "default"
    monkeypatch.delenv("FLUX_KUBECONFIG")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert default_namespace() == "default"


def test_without_a_kubeconfig_every_command_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("FLUX_KUBECONFIG", "KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for args in (["list"], ["show", "r1"], ["run", "examples/hello.py:hello"], ["delete", "r"]):
        monkeypatch.setattr(sys, "argv", ["flux", "kube", *args])
        with pytest.raises(SystemExit) as exited:
            cli.main()
        assert exited.value.code == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: no kubeconfig: ") and err.count("\n") == 1, err


def test_python_m_lists_the_kube_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flux.local.cli", "kube", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for command in ("run", "list", "watch", "show", "resume", "cancel", "retry", "delete"):
        assert f"│ {command} " in result.stdout, command


def test_the_flux_command_loads_the_kubernetes_client_only_to_connect() -> None:
    # It takes a second to import: every local command (flux run) would pay it.
    probe = "import sys, flux.local.cli; print('kubernetes_asyncio' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr
