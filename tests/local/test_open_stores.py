"""``wf.run`` keeps its run store open between calls (issue 17), and loses nothing by it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flux import WorkflowExecutionContext, task, workflow
from flux.local import open_stores
from flux.local import store as store_module
from flux.local.store import Store, StoreError


async def add_one(x: int) -> int:
    return x + 1


step = task(add_one)


@workflow
async def plus_one(ctx: WorkflowExecutionContext[int]) -> int:
    return await step(ctx.input)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    open_stores.close_idle()  # what earlier tests left open is not this test's
    home = tmp_path / "home"
    monkeypatch.setenv("FLUX_HOME", str(home))
    return home


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The path of every Store opened from now on."""
    paths: list[Path] = []
    original = Store.__init__

    def counting(self: Store, path: Path | str | None = None) -> None:
        original(self, path)
        paths.append(self.path)

    monkeypatch.setattr(store_module.Store, "__init__", counting)
    return paths


def stored_runs(home: Path) -> set[str]:
    with Store(home / "flux.db") as store:
        return {r.id for r in store.list_runs(limit=1000)}


def test_runs_in_a_row_share_one_open_store(home: Path, opened: list[Path]) -> None:
    ids = [plus_one.run(i).execution_id for i in range(5)]
    assert len(opened) == 1
    assert stored_runs(home) == set(ids)


def test_a_new_flux_home_gets_its_own_store(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = plus_one.run(1).execution_id
    other = tmp_path / "other"
    monkeypatch.setenv("FLUX_HOME", str(other))
    second = plus_one.run(2).execution_id
    assert stored_runs(home) == {first}
    assert stored_runs(other) == {second}


def test_a_removed_flux_home_is_recreated_not_written_blind(home: Path) -> None:
    plus_one.run(1)
    shutil.rmtree(home)
    again = plus_one.run(2)
    assert again.output == 3
    assert stored_runs(home) == {again.execution_id}


def test_a_replaced_database_file_is_opened_anew(home: Path, tmp_path: Path) -> None:
    first = plus_one.run(1).execution_id
    open_stores.close_idle()
    saved = tmp_path / "saved.db"
    shutil.copy(home / "flux.db", saved)
    plus_one.run(2)  # a store is idle again, on the file about to be replaced
    for suffix in ("-wal", "-shm"):
        (home / f"flux.db{suffix}").unlink(missing_ok=True)
    os.replace(saved, home / "flux.db")
    third = plus_one.run(3).execution_id
    assert stored_runs(home) == {first, third}


def test_a_bad_sync_mode_is_refused_with_an_open_store_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plus_one.run(1)
    monkeypatch.setenv("FLUX_SQLITE_SYNC", "sometimes")
    with pytest.raises(StoreError, match="FLUX_SQLITE_SYNC must be NORMAL or FULL"):
        plus_one.run(2)


def test_a_new_sync_mode_gets_a_store_opened_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    plus_one.run(1)
    monkeypatch.setenv("FLUX_SQLITE_SYNC", "FULL")
    with open_stores.borrowed_store() as store:
        assert store._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_a_store_whose_caller_failed_is_not_lent_again() -> None:
    with open_stores.borrowed_store() as kept:
        pass
    with pytest.raises(RuntimeError), open_stores.borrowed_store() as failed:
        assert failed is kept
        raise RuntimeError("the caller's own failure")
    with open_stores.borrowed_store() as fresh:
        assert fresh is not kept


def test_a_store_left_inside_a_transaction_is_not_lent_again() -> None:
    with open_stores.borrowed_store() as left_open:
        left_open._transaction().__enter__()
    with open_stores.borrowed_store() as fresh:
        assert fresh is not left_open
        assert not fresh.in_transaction


def test_nested_borrowers_get_stores_of_their_own() -> None:
    with open_stores.borrowed_store() as outer, open_stores.borrowed_store() as inner:
        assert inner is not outer


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_store_and_leaves_the_parents(home: Path) -> None:
    plus_one.run(1)
    with open_stores.borrowed_store() as parents:
        pass
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            with open_stores.borrowed_store() as childs:
                code = 2 if childs is parents else 0
            if code == 0:
                plus_one.run(2)
            open_stores.close_idle()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's store still works and sees the child's run.
    with open_stores.borrowed_store() as again:
        assert again is parents
        assert len(again.list_runs()) == 2
    assert plus_one.run(3).output == 4


def test_at_exit_the_log_is_checkpointed_into_the_database(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "one_run.py"
    script.write_text(
        textwrap.dedent(
            """
            from flux import WorkflowExecutionContext, workflow

            @workflow
            async def echo(ctx: WorkflowExecutionContext[int]) -> int:
                return ctx.input

            print(echo.run(7).execution_id)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert not (home / "flux.db-wal").exists()
    # Everything is in flux.db alone, as a copy of that one file would keep it.
    copy = tmp_path / "copy.db"
    shutil.copy(home / "flux.db", copy)
    assert stored_runs_of(copy) == {result.stdout.strip()}


def stored_runs_of(db: Path) -> set[str]:
    with Store(db) as store:
        return {r.id for r in store.list_runs()}
