"""Secrets for tasks: from ``FLUX_SECRET_<NAME>`` variables or the encrypted store.

Stored values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key
from ``FLUX_SECRET_KEY`` (a Fernet key, or any passphrase, stretched with
scrypt) or a key file generated next to the database with mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from flux.local.store import Store

ENV_PREFIX = "FLUX_SECRET_"
KEY_ENV = "FLUX_SECRET_KEY"
KEY_FILE = "secret.key"


class SecretKeyError(RuntimeError):
    pass


class SecretStore:
    def __init__(self, store: Store):
        self._store = store
        self._fernet: Fernet | None = None

    def set(self, name: str, value: str) -> None:
        _check_name(name)
        self._store.put_secret(name, self._cipher().encrypt(value.encode("utf-8")))

    def names(self) -> list[str]:
        return self._store.secret_names()

    def remove(self, name: str) -> bool:
        return self._store.delete_secret(name)

    def resolve(self, names: Iterable[str]) -> tuple[dict[str, str], list[str]]:
        """Values for ``names`` (environment first, then the store) and the names not found."""
        found: dict[str, str] = {}
        missing: list[str] = []
        for name in names:
            # FLUX_SECRET_KEY is the store's encryption key, never a secret's value.
            env_name = ENV_PREFIX + name
            env_value = os.environ.get(env_name) if env_name != KEY_ENV else None
            if env_value is not None:
                found[name] = env_value
                continue
            stored = self._store.get_secret(name)
            if stored is None:
                missing.append(name)
                continue
            try:
                found[name] = self._cipher().decrypt(stored).decode("utf-8")
            except InvalidToken:
                raise SecretKeyError(
                    f"secret {name!r} cannot be decrypted with the current key "
                    f"(was {KEY_ENV} or {self._key_path()} changed?)"
                ) from None
        return found, missing

    def _cipher(self) -> Fernet:
        if self._fernet is None:
            self._fernet = Fernet(self._key())
        return self._fernet

    def _key_path(self) -> Path:
        return self._store.path.parent / KEY_FILE

    def _key(self) -> bytes:
        configured = os.environ.get(KEY_ENV)
        if configured:
            return _key_from_text(configured)
        path = self._key_path()
        if not path.exists():
            key = Fernet.generate_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key)
            return key
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SecretKeyError(f"{path} must be readable by its owner only (chmod 600 {path})")
        return path.read_bytes().strip()


def environment_values() -> list[str]:
    """Every ``FLUX_SECRET_*`` value of this process (the store's key included):
    task code running here can read any of them, so all are masked in its run."""
    # Values read for the matching names only: decoding every value of a large
    # environment showed up in the cost of each run (issue 17).
    found = (os.environ.get(name) for name in os.environ if name.startswith(ENV_PREFIX))
    return [value for value in found if value is not None]


def _key_from_text(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.encode())
        if len(raw) == 32:
            return text.encode()
    except ValueError:
        pass
    stretched = hashlib.scrypt(text.encode(), salt=b"flux-secret-key", n=2**14, r=8, p=1, dklen=32)
    return base64.urlsafe_b64encode(stretched)


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "_-." for c in name):
        raise ValueError(f"invalid secret name {name!r}: use letters, digits, '_', '-' or '.'")
