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
from flux.step_runner import SECRET_ENV_PREFIX, environment_secret

# The store's encryption key is read from the secrets' own prefix: it is never a
# secret's value, yet masked as they are (step_runner.environment_secret_values).
KEY_NAME = "KEY"
KEY_ENV = SECRET_ENV_PREFIX + KEY_NAME
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
            env_value = environment_secret(name) if name != KEY_NAME else None
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
