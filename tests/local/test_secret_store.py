"""The encrypted secret store."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from flux.local.secrets import SecretStore
from flux.local.store import Store


def test_values_are_encrypted_at_rest_with_a_private_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLUX_SECRET_KEY", raising=False)
    with Store(tmp_path / "flux.db") as store:
        SecretStore(store).set("API_KEY", "s3cr3t-value")
        assert SecretStore(store).resolve(["API_KEY"]) == ({"API_KEY": "s3cr3t-value"}, [])
    assert b"s3cr3t-value" not in (tmp_path / "flux.db").read_bytes()
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_the_encryption_key_is_never_handed_out_as_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUX_SECRET_KEY", "correct horse battery staple")
    with Store(tmp_path / "flux.db") as store:
        found, missing = SecretStore(store).resolve(["KEY"])
    assert found == {} and missing == ["KEY"]


def test_environment_values_win_over_stored_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUX_SECRET_KEY", "passphrase")
    with Store(tmp_path / "flux.db") as store:
        SecretStore(store).set("TOKEN", "stored")
        monkeypatch.setenv("FLUX_SECRET_TOKEN", "from-env")
        assert SecretStore(store).resolve(["TOKEN", "OTHER"]) == ({"TOKEN": "from-env"}, ["OTHER"])
