"""The per-run lock behind "one process per run" (flux.local.claims)."""

from __future__ import annotations

from pathlib import Path

from flux.local import claims


def test_a_claim_excludes_others_in_this_process_too(tmp_path: Path) -> None:
    path = claims.lock_path(tmp_path / "flux.db", "run-1")
    assert path.parent == tmp_path / "flux.db.locks"
    assert not claims.is_held(path)
    first = claims.acquire(path)
    assert first is not None
    assert claims.is_held(path)
    assert claims.acquire(path) is None  # a second claim waits, then gives up
    claims.release(path, first)
    assert not path.exists()
    assert not claims.is_held(path)
    again = claims.acquire(path)
    assert again is not None
    claims.release(path, again)


def test_run_ids_never_name_a_path(tmp_path: Path) -> None:
    db = tmp_path / "flux.db"
    hostile = claims.lock_path(db, "../../etc/passwd\x00\ud800")
    assert hostile.parent == tmp_path / "flux.db.locks"
    assert hostile.name.endswith(".lock") and "/" not in hostile.name
    assert claims.lock_path(db, "a") != claims.lock_path(db, "b")
