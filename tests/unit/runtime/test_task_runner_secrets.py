"""A task pod masks the secrets it was given (``FLUX_SECRET_*``) in all it reports.

The runner runs as a pod runs it (``python -m flux.runtime.task`` in a
subprocess): its termination message, the result line in its log, and what the
task prints must not hold the value; the operator, the driver, the run's status,
archive and Events only ever see those.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flux import codec
from flux.k8s.protocol import (
    RESULT_LOG_MARKER,
    TASK_ENV,
    TERMINATION_LOG_ENV,
    BatchItem,
    BatchSpec,
    Outcome,
    Step,
    TaskResult,
    TaskSpec,
    parse_batch_result,
    parse_task_result,
)
from flux.redaction import MASK
from flux.runtime import task as runner

TOKEN = "pod-T0KEN-value"

TASKS = """
import sys
import threading

from flux import task


@task.with_options(secret_requests=["TOKEN"])
def give(n, secrets):
    return {"n": n, "token": secrets["TOKEN"], secrets["TOKEN"]: "key"}


@task.with_options(secret_requests=["TOKEN"])
def leak(n, secrets):
    raise ValueError(f"call {n} refused {secrets['TOKEN']!r}")


@task.with_options(secret_requests=["TOKEN"])
def chatty(n, secrets):
    print(f"out {secrets['TOKEN']}")
    print(f"err {secrets['TOKEN']}", file=sys.stderr)
    thread = threading.Thread(target=print, args=(f"thread {secrets['TOKEN']}",))
    thread.start()
    thread.join()
    sys.stdout.write(f"unended {secrets['TOKEN']}")
    return n


@task.with_options(secret_requests=["TOKEN"])
def big(n, secrets):
    return [secrets["TOKEN"] + "x" * 100] * n
"""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    directory = tmp_path / "source"
    directory.mkdir()
    (directory / "secret_tasks.py").write_text(textwrap.dedent(TASKS))
    return directory


def run_pod(source: Path, spec: str) -> tuple[subprocess.CompletedProcess[str], str]:
    termination = source.parent / "termination-log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLUX_")},
        TASK_ENV: spec,
        "FLUX_SOURCE_DIR": str(source),
        TERMINATION_LOG_ENV: str(termination),
        "FLUX_SECRET_TOKEN": TOKEN,
        "PYTHONUNBUFFERED": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "flux.runtime.task"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    message = termination.read_text()
    for text in (done.stdout, done.stderr, message):
        assert TOKEN not in text
    return done, message


def step(task: str, *args: Any) -> str:
    spec = TaskSpec(
        run="run-1",
        call_id=f"{task}#0",
        name=task,
        task=f"secret_tasks:{task}",
        positional=codec.encode(list(args)),
        secrets=["TOKEN"],
    )
    return json.dumps(spec.to_json())


def batch(task: str, *ns: int) -> str:
    items = [
        BatchItem(call_id=f"{task}#{n}", name=task, step=Step.ATTEMPT, positional=[n]) for n in ns
    ]
    return BatchSpec(
        run="run-1", task=f"secret_tasks:{task}", items=items, secrets=["TOKEN"]
    ).to_env()


def test_a_returned_secret_is_masked_in_the_termination_message(source: Path) -> None:
    done, message = run_pod(source, step("give", 1))
    assert done.returncode == 0, done.stderr
    assert parse_task_result(message).value == {"n": 1, "token": MASK, MASK: "key"}


def test_a_raised_secret_is_masked_in_the_error(source: Path) -> None:
    done, message = run_pod(source, step("leak", 1))
    assert done.returncode == 1
    result = parse_task_result(message)
    assert result.outcome == Outcome.FAILED and result.error is not None
    assert result.error["message"] == f"call 1 refused '{MASK}'"


def test_printed_secrets_are_masked_on_stdout_and_stderr(source: Path) -> None:
    done, _ = run_pod(source, step("chatty", 1))
    assert done.returncode == 0, done.stderr
    assert f"out {MASK}\n" in done.stdout
    assert f"thread {MASK}\n" in done.stdout
    assert f"unended {MASK}" in done.stdout
    assert f"err {MASK}\n" in done.stderr


def test_batch_items_are_masked_each(source: Path) -> None:
    done, message = run_pod(source, batch("give", 1, 2))
    assert done.returncode == 0, done.stderr
    items = parse_batch_result(message).items
    assert [i.value["token"] for i in items.values()] == [MASK, MASK]
    done, message = run_pod(source, batch("leak", 1, 2))
    errors = [i.error for i in parse_batch_result(message).items.values()]
    assert [e["message"] if e else None for e in errors] == [
        f"call 1 refused '{MASK}'",
        f"call 2 refused '{MASK}'",
    ]


def test_a_result_too_large_for_the_termination_message_is_masked_in_the_log(
    source: Path,
) -> None:
    done, message = run_pod(source, step("big", 60))
    assert done.returncode == 0, done.stderr
    assert json.loads(message)["inLog"] is True
    last = done.stdout.splitlines()[-1]
    assert last.startswith(RESULT_LOG_MARKER)
    value = json.loads(last[len(RESULT_LOG_MARKER) :])["value"]
    assert value == [MASK + "x" * 100] * 60


def test_report_masks_the_result_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUX_SECRET_TOKEN", TOKEN)
    monkeypatch.setenv(TERMINATION_LOG_ENV, str(tmp_path / "log"))
    error = {"type": "E", "message": f"x {TOKEN}", "cause": {"message": TOKEN}}
    runner.report(TaskResult(outcome=Outcome.FAILED, value=[TOKEN], error=error))
    reported = parse_task_result((tmp_path / "log").read_text())
    assert reported.value == [MASK]
    assert reported.error == {"type": "E", "message": f"x {MASK}", "cause": {"message": MASK}}


def test_without_secrets_the_result_is_reported_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("FLUX_SECRET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(TERMINATION_LOG_ENV, str(tmp_path / "log"))
    result = TaskResult(outcome=Outcome.COMPLETED, value=["*** as is", TOKEN])
    runner.report(result)
    assert parse_task_result((tmp_path / "log").read_text()) == result
