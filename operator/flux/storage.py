"""Where task and workflow outputs are kept.

The default keeps outputs inline in history. Any other backend subclasses
:class:`OutputStorage`: ``store`` returns a :class:`StorageReference` that
history keeps instead of the value, and ``retrieve`` reads it back. A reference
names its backend class and the config needed to rebuild it, so another process
(a resumed run, a pod) can read the value without the original object.

The backend class is looked up among the subclasses of :class:`OutputStorage`
defined in this process (the workflow's code defines or imports the backends
it uses), never imported by the name a reference holds: references are data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from flux import codec


@dataclass(frozen=True)
class StorageReference:
    backend: str
    key: str
    config: dict[str, Any] = field(default_factory=dict)


# Every OutputStorage subclass defined in this process, by ``module:qualname``.
_BACKENDS: dict[str, type[OutputStorage]] = {}


class UnknownBackendError(LookupError):
    """A reference names a backend class this process does not define."""


class OutputStorage(ABC):
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _BACKENDS[f"{cls.__module__}:{cls.__qualname__}"] = cls

    @abstractmethod
    def store(self, key: str, value: Any) -> StorageReference:
        """Persist ``value`` (any codec-encodable value) under ``key``."""

    @abstractmethod
    def retrieve(self, reference: StorageReference) -> Any:
        """Return the value ``store`` saved for ``reference``."""

    def retrieve_as(self, reference: StorageReference, expected: codec.Expected) -> Any:
        """The value, with the classes ``expected`` allows rebuilt (see :mod:`flux.codec`).

        The engine reads stored outputs through this. A backend that keeps values
        as codec JSON decodes them with ``expected``; the default returns what
        :meth:`retrieve` does.
        """
        return self.retrieve(reference)

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


def retrieve(reference: StorageReference, expected: codec.Expected = codec.PLAIN) -> Any:
    """Read a stored value back, rebuilding its backend from the reference."""
    backend_cls = _BACKENDS.get(reference.backend)
    if backend_cls is None:
        raise UnknownBackendError(
            f"stored output {reference.key!r} names the storage backend {reference.backend!r}, "
            "which is not an OutputStorage class defined in this process"
        )
    backend = backend_cls.from_config(reference.config)
    return backend.retrieve_as(reference, expected)
