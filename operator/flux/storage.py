"""Where task and workflow outputs are kept.

The default keeps outputs inline in history. Any other backend subclasses
:class:`OutputStorage`: ``store`` returns a :class:`StorageReference` that
history keeps instead of the value, and ``retrieve`` reads it back. A reference
names its backend class and the config needed to rebuild it, so another process
(a resumed run, a pod) can read the value without the original object.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StorageReference:
    backend: str
    key: str
    config: dict[str, Any] = field(default_factory=dict)


class OutputStorage(ABC):
    @abstractmethod
    def store(self, key: str, value: Any) -> StorageReference:
        """Persist ``value`` (any codec-encodable value) under ``key``."""

    @abstractmethod
    def retrieve(self, reference: StorageReference) -> Any:
        """Return the value ``store`` saved for ``reference``."""

    def config(self) -> dict[str, Any]:
        """JSON-compatible settings from which :meth:`from_config` rebuilds this backend."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OutputStorage:
        return cls(**config)

    def reference(self, key: str) -> StorageReference:
        backend = f"{type(self).__module__}:{type(self).__qualname__}"
        return StorageReference(backend=backend, key=key, config=self.config())


class InlineOutputStorage(OutputStorage):
    """Keep the value in history itself (the default)."""

    def store(self, key: str, value: Any) -> StorageReference:
        raise TypeError("inline outputs are kept in history, not stored")

    def retrieve(self, reference: StorageReference) -> Any:
        raise TypeError("inline outputs are kept in history, not stored")


def is_inline(storage: OutputStorage | None) -> bool:
    return storage is None or isinstance(storage, InlineOutputStorage)


def retrieve(reference: StorageReference) -> Any:
    """Read a stored value back, rebuilding its backend from the reference."""
    module_name, _, qualname = reference.backend.partition(":")
    backend_cls: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        backend_cls = getattr(backend_cls, part)
    backend: OutputStorage = backend_cls.from_config(reference.config)
    return backend.retrieve(reference)
