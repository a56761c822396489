"""Secret values never persist or show in plaintext on the embedded executor.

Each workflow of ``workflows/leaky.py`` lets its secret escape one way: returned,
raised, passed as an argument (and in a call name), printed, in the workflow's
output, in fallback and rollback errors. After each run the plaintext must be
nowhere: not in the raw bytes of ``flux.db`` or its WAL, not in ``flux run
--json``, ``flux show`` (plain and ``--json``), nor on stderr.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from workflows import leaky
from workflows.harness import Flux, reference

from flux.local.secrets import SecretStore
from flux.local.store import Store
from flux.redaction import MASK

TOKEN = "tok-3xAmple-S3CRET"


@pytest.fixture
def flux(tmp_path: Path) -> Flux:
    return Flux(home=tmp_path / "home", cwd=tmp_path)


def cli(flux: Flux, *args: str, env_token: bool = False) -> subprocess.CompletedProcess[str]:
    env = flux.env()
    if env_token:
        env["FLUX_SECRET_TOKEN"] = TOKEN
    return subprocess.run(
        flux.command(*args),
        cwd=flux.cwd,
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=120,
    )


def store_token(flux: Flux) -> None:
    stored = flux("secrets", "set", "TOKEN", stdin=TOKEN + "\n")
    assert stored.returncode == 0, stored.stderr


def run_and_show(
    flux: Flux, name: str, *, env_token: bool = False
) -> tuple[str, subprocess.CompletedProcess[str], list[str]]:
    """Run workflow ``name`` of leaky.py with --json; the run id, the result, and
    every text shown about the run afterwards."""
    result = cli(flux, "run", reference("leaky.py", name), "--json", env_token=env_token)
    run_id = flux.stored_run_ids()[0]
    shown = [cli(flux, "show", run_id, *extra) for extra in ((), ("--json",))]
    texts = [result.stdout, result.stderr] + [s.stdout + s.stderr for s in shown]
    return run_id, result, texts


def assert_no_plaintext(flux: Flux, texts: list[str]) -> None:
    for text in texts:
        assert TOKEN not in text
    for path in (flux.db, flux.db.with_name("flux.db-wal")):
        if path.exists():
            assert TOKEN.encode() not in path.read_bytes(), path


def events_json(flux: Flux, run_id: str) -> str:
    return json.dumps([e.to_dict() for e in flux.events(run_id)])


@pytest.mark.parametrize("env_token", [False, True], ids=["stored", "environment"])
def test_a_returned_secret_and_the_argument_it_becomes(flux: Flux, env_token: bool) -> None:
    if not env_token:
        store_token(flux)
    run_id, result, texts = run_and_show(flux, "returned", env_token=env_token)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)["output"]
    assert output == {"token": MASK, MASK: "as a key", "nested": [f"Bearer {MASK}"]}
    # The workflow got the masked value, so the next task's argument is masked too.
    started = [e for e in flux.events(run_id) if e.name == "echo" and e.value]
    assert MASK in json.dumps(started[0].value)
    assert_no_plaintext(flux, texts)


def test_a_secret_in_an_exception_message(flux: Flux) -> None:
    store_token(flux)
    _, result, texts = run_and_show(flux, "raised")
    assert result.returncode == 1
    assert f"login refused for token '{MASK}'" in result.stderr
    assert_no_plaintext(flux, texts)


def test_a_secret_printed_by_a_task(flux: Flux) -> None:
    store_token(flux)
    _, result, texts = run_and_show(flux, "printed")
    assert result.returncode == 0, result.stderr
    everything = result.stdout + result.stderr
    assert f"stdout: using {MASK}" in everything
    assert f"stderr: using {MASK}" in everything
    assert f"partial {MASK}" in everything
    assert json.loads(result.stdout[result.stdout.index("{") :])["output"] == len(TOKEN)
    assert_no_plaintext(flux, texts)


def test_a_workflow_secret_passed_as_an_argument_survives_a_resume(flux: Flux) -> None:
    store_token(flux)
    run_id, result, texts = run_and_show(flux, "passed")
    assert result.returncode == 3, result.stderr  # paused
    started, _ = [e for e in flux.events(run_id) if e.name.startswith("measure_")]  # + outcome
    assert started.name == f"measure_{MASK}"
    assert started.value["args"] == [MASK]
    # The resume replays the call: its arguments, masked in history, still match.
    resumed = cli(flux, "resume", run_id, "--input", "null", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["output"] == len(TOKEN)  # the task got the real value
    assert_no_plaintext(flux, [*texts, resumed.stdout, resumed.stderr])


def test_a_workflow_output_holding_its_secret(flux: Flux) -> None:
    store_token(flux)
    _, result, texts = run_and_show(flux, "output")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"] == {"token": MASK, "length": str(len(TOKEN))}
    plain = cli(flux, "run", reference("leaky.py", "output"))
    assert json.loads(plain.stdout) == {"token": MASK, "length": str(len(TOKEN))}
    assert_no_plaintext(flux, [*texts, plain.stdout, plain.stderr])


@pytest.mark.parametrize("name", ["fell_back", "rolled_back"])
def test_a_secret_in_fallback_and_rollback_errors(flux: Flux, name: str) -> None:
    run_id, result, texts = run_and_show(flux, name, env_token=True)
    assert result.returncode == 1, result.stderr
    history = events_json(flux, run_id)
    step = "fallback" if name == "fell_back" else "rollback"
    assert f"{step} saw {MASK}" in history
    assert f"attempt with {MASK}" in history
    assert_no_plaintext(flux, texts)


def test_a_run_without_secrets_is_unchanged(flux: Flux) -> None:
    result = cli(flux, "run", reference("leaky.py", "no_secrets"), "--input", '"tok"')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout[result.stdout.index('"') :]) == "tok *** stays"
    assert "no secret here" in result.stdout + result.stderr
    (run_id,) = flux.stored_run_ids()
    assert json.loads(events_json(flux, run_id))[-1]["value"] == "tok *** stays"


# ------------------------------------------------------------------ Python API


@pytest.fixture
def api_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("FLUX_SECRET_TOKEN", "FLUX_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLUX_HOME", str(tmp_path))
    with Store() as store:
        SecretStore(store).set("TOKEN", TOKEN)
    return tmp_path


def test_wf_run_returns_outputs_and_errors_masked(api_home: Path) -> None:
    returned = leaky.returned.run()
    assert returned.output == {"token": MASK, MASK: "as a key", "nested": [f"Bearer {MASK}"]}
    output = leaky.output.run()
    assert output.output == {"token": MASK, "length": str(len(TOKEN))}
    raised = leaky.raised.run()
    assert raised.has_failed
    assert TOKEN not in json.dumps(raised.output) and MASK in json.dumps(raised.output)
    for ctx in (returned, output, raised):
        assert TOKEN not in ctx.to_json()
    assert TOKEN.encode() not in (api_home / "flux.db").read_bytes()


def test_a_task_called_directly_raises_without_the_secret(api_home: Path) -> None:
    with pytest.raises(Exception) as caught:
        asyncio.run(_call(leaky.leak_in_error))
    chain: list[BaseException] = []
    error: BaseException | None = caught.value
    while error is not None and len(chain) < 10:
        chain.append(error)
        error = getattr(error, "inner_exception", None) or error.__cause__
    assert all(TOKEN not in str(e) and TOKEN not in repr(e) for e in chain)
    assert any(MASK in str(e) for e in chain)


async def _call(task: Any) -> Any:
    return await task()


def test_rollbacks_run_by_flux_cancel_print_no_secret(flux: Flux) -> None:
    """`flux cancel` of an interrupted run runs the rollbacks of the calls in flight
    in its own process: what they print is masked as during `flux run`."""
    env = {**flux.env(), "FLUX_SECRET_TOKEN": TOKEN}
    running = subprocess.Popen(
        flux.command("run", reference("leaky.py", "interrupted")),
        cwd=flux.cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ids = flux.stored_run_ids()
            if ids and any(e.type.value == "TASK_STARTED" for e in flux.events(ids[0])):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the task never started")
    finally:
        running.kill()  # a crash: the call stays in flight
        running.wait()
    cancelled = cli(flux, "cancel", ids[0], env_token=True)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"undoing with {MASK}" in cancelled.stdout + cancelled.stderr
    assert_no_plaintext(flux, [cancelled.stdout, cancelled.stderr])
